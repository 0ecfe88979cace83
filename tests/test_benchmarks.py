"""A benchmark stopped half-way (benchmarks/stopping.py): one line, exit status 130 or 143,
no traceback and no table of half a run, and none of the commands it was timing left
running."""
from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, running

pytestmark = pytest.mark.real


def _processes_naming(*texts: str) -> list[int]:
    """Process ids whose command line holds every one of ``texts``."""
    found = []
    for pid in os.listdir("/proc"):
        try:
            cmdline = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if pid.isdigit() and all(t.encode() in cmdline for t in texts) and running(int(pid)):
            found.append(int(pid))
    return found


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stopped_benchmark_says_so_in_one_line(real_dir, tmp_path, signum):
    work = tmp_path / "work"
    proc = subprocess.Popen([sys.executable, "benchmarks/build_bench.py", "--only=startup",
                             "--quick", f"--work_dir={work}"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        # the start-up part times builds once its data is made and read into the cache
        while not _processes_naming("pipeline.build", str(work)) and \
                time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            time.sleep(0.05)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode == 128 + signum, err[-3000:]
    assert "Traceback" not in err and "|" not in out, (out, err[-3000:])
    assert err.strip().splitlines()[-1].startswith(
        f"[build_bench] stopped by {signal.Signals(signum).name}: no table"), err[-3000:]
    deadline = time.monotonic() + 20
    while _processes_naming(str(work)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes_naming(str(work)) == []        # the build it was timing is gone too
    assert (work / "data" / "one").is_dir()          # its data stays for the next run
