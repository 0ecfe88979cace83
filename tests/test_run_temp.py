"""A run's temporary folder (``pipeline.cli.run_temp_folder``): what a run killed outright
left there, the next run removes; the folder of a run still going is left alone."""
from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import tempfile

from conftest import ROOT
from pipeline import cli

# A run that has written into its temporary folder, as TensorFlow's generated code is.
HOLDER = r"""
import os, time
from pipeline import cli
with cli.run_temp_folder() as folder:
    with open(os.path.join(folder, "generated.py"), "w") as f:
        f.write("x = 1\n")
    print(folder, flush=True)
    time.sleep(600)
"""


def _holder(parent) -> tuple[subprocess.Popen, str]:
    """A process inside its run folder under ``parent``, and that folder."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER], cwd=ROOT, text=True,
                            env=dict(os.environ, TMPDIR=str(parent)), stdout=subprocess.PIPE)
    ready, _, _ = select.select([proc.stdout], [], [], 60)
    if not ready:
        proc.kill()
        proc.wait(timeout=30)
        raise AssertionError("the run did not start within 60 s")
    return proc, proc.stdout.readline().strip()


def test_the_next_run_removes_the_folder_of_a_run_killed_outright(tmp_path, monkeypatch):
    killed, killed_folder = _holder(tmp_path)
    alive, alive_folder = _holder(tmp_path)
    try:
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait(timeout=30)
        assert os.path.isfile(os.path.join(killed_folder, "generated.py"))   # left behind
        unlocked = tmp_path / "actionflow-run-without-a-lock"     # not one to judge
        unlocked.mkdir()
        monkeypatch.setenv("TMPDIR", str(tmp_path))
        monkeypatch.setattr(tempfile, "tempdir", None)
        with cli.run_temp_folder() as mine:
            assert sorted(os.listdir(tmp_path)) == sorted(
                os.path.basename(f) for f in (alive_folder, mine, str(unlocked)))
            assert os.path.isfile(os.path.join(alive_folder, "generated.py"))
        assert not os.path.exists(mine)
    finally:
        alive.kill()
        alive.wait(timeout=30)
        alive.stdout.close()
        killed.stdout.close()
    # once its process has ended too, the other one goes
    assert cli.remove_abandoned_run_folders(str(tmp_path)) == [alive_folder]
    assert os.listdir(tmp_path) == [unlocked.name]
