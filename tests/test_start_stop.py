"""A stop signal while a command is still starting (loading TensorFlow or Beam) ends it
with one line and the scheduler's exit status, not a traceback through the imports."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT


def _catches(pid: int, signum: int) -> bool:
    """Whether process ``pid`` has a handler of its own for ``signum`` (/proc SigCgt)."""
    with open(f"/proc/{pid}/status") as f:
        caught = next(int(line.split()[1], 16) for line in f if line.startswith("SigCgt:"))
    return bool(caught >> (signum - 1) & 1)


@pytest.mark.parametrize("module, program, signum", [
    ("pipeline.build", "build", signal.SIGINT),
    ("pipeline.build", "build", signal.SIGTERM),
    ("trainers.train", "train", signal.SIGINT),
    ("trainers.evaluate", "evaluate", signal.SIGTERM),
])
def test_a_stop_while_starting_is_one_line(tmp_path, module, program, signum):
    # Python catches SIGINT from its start; SIGTERM is caught once the command's module
    # has installed its starting handler, a second or more before its main runs.
    proc = subprocess.Popen([sys.executable, "-m", module, f"--workdir={tmp_path}"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        while not _catches(proc.pid, signal.SIGTERM):
            assert proc.poll() is None and time.monotonic() < deadline, proc.poll()
            time.sleep(0.005)
        os.kill(proc.pid, signum)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    name = signal.Signals(signum).name
    assert proc.returncode == 128 + signum, err
    assert err.splitlines() == [f"[{program}] stopped by {name} while starting: nothing was "
                                "done."], err
    assert out == "" and list(tmp_path.iterdir()) == []


def test_only_the_program_gets_the_starting_handler_and_ignored_signals_stay_ignored():
    from pipeline import cli
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        cli.stop_while_starting("pipeline.build", "build")           # imported: nothing
        assert {s: signal.getsignal(s) for s in before} == before
        signal.signal(signal.SIGINT, signal.SIG_IGN)                 # a background job's
        cli.stop_while_starting("__main__", "build")
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) not in (before[signal.SIGTERM], None)
        cli.started()
        assert signal.getsignal(signal.SIGTERM) == before[signal.SIGTERM]
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
