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


POOLS = """
import multiprocessing, sys
sys.path.insert(0, "benchmarks")
from stopping import run


def main():
    # every pool ends by terminating its workers, some of which may be still starting
    for _ in range(40):
        with multiprocessing.get_context("fork").Pool(2) as pool:
            sum(pool.imap_unordered(abs, range(20), chunksize=1))
    print("pools done")


run(main)
"""


def test_process_pools_of_a_benchmark_end_when_terminated(tmp_path):
    # Forked pool workers used to inherit the benchmark's stop handler: a worker that got
    # its pool's SIGTERM while still starting dropped it and the benchmark waited for it
    # for good (a scaling run hung in its decode-only baseline).
    script = tmp_path / "pools.py"
    script.write_text(POOLS)
    proc = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
        pytest.fail("a pool's terminated workers kept the benchmark waiting")
    assert proc.returncode == 0 and out.strip() == "pools done", err[-3000:]
    assert "Traceback" not in err and "stopped by" not in err, err[-3000:]
