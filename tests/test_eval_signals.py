"""SIGINT / SIGTERM stop evaluation, the Beam evaluation and export with one line, exit
status 130 / 143, no traceback and no temporary files left."""
from __future__ import annotations

import errno
import os
import shutil
import signal
import sys
import time

import pytest

from test_train_signals import start

pytestmark = pytest.mark.integration


def _stopped_line(stderr: str, program: str, signame: str) -> str:
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.startswith(f"[{program}] stopped")]
    assert len(lines) == 1, stderr[-3000:]
    assert lines[0].startswith(f"[{program}] stopped by {signame}: nothing is kept")
    return lines[0]


def test_evaluate_stops_while_it_checks_the_shards(tiny_video_build, tiny_video_run, tmp_path):
    """The evaluation is held inside its start-up check: one shard is a FIFO that this test
    opens for writing (so the evaluation is reading it) but never writes to."""
    build = tmp_path / "build"
    shutil.copytree(tiny_video_build, build)
    shard = next(build.glob("test.tfrecord-*"))
    shard.unlink()
    os.mkfifo(shard)
    out = tmp_path / "eval"
    cmd = [sys.executable, "-m", "trainers.evaluate", f"--workdir={tiny_video_run}",
           f"--build_dir={build}", f"--out_dir={out}"]
    run = start(cmd)
    fd = None
    try:
        deadline = time.monotonic() + 240
        while fd is None:
            try:
                fd = os.open(shard, os.O_WRONLY | os.O_NONBLOCK)   # once a reader has it
            except OSError as e:
                assert e.errno == errno.ENXIO, e
                assert run.proc.poll() is None, run.stderr[-3000:]
                assert time.monotonic() < deadline, "the evaluation never opened the shard"
                time.sleep(0.05)
        time.sleep(0.2)
        os.kill(run.proc.pid, signal.SIGTERM)
        code = run.finish(timeout=60)
    finally:
        if fd is not None:
            os.close(fd)
        if run.proc.poll() is None:
            run.finish(timeout=10)
    assert code == 143
    line = _stopped_line(run.stderr, "evaluate", "SIGTERM")
    assert line.endswith(f"Resume with: python -m trainers.evaluate --workdir={tiny_video_run} "
                         f"--build_dir={build} --out_dir={out}")
    assert not out.exists()


def test_beam_evaluate_stops_its_workers_and_removes_its_temporary_folders(tiny_video_run,
                                                                          tmp_path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    out = tmp_path / "eval"
    cmd = [sys.executable, "-m", "trainers.beam_evaluate", f"--workdir={tiny_video_run}",
           f"--out_dir={out}", "--direct_num_workers=2"]
    run = start(cmd, env={"TMPDIR": str(temp)})
    try:
        run.wait_for("[evaluate] 0/", timeout=240)     # the pipeline runs, its workers start
        # one folder for the run; the evaluation's own (progress, rows) inside it
        [run_folder] = temp.iterdir()
        assert run_folder.name.startswith("actionflow-run-")
        assert any(p.name.startswith("actionflow-beam-eval-") for p in run_folder.iterdir())
        os.kill(run.proc.pid, signal.SIGTERM)
    finally:
        code = run.finish(timeout=120)
    assert code == 143, run.stderr[-3000:]
    _stopped_line(run.stderr, "beam_evaluate", "SIGTERM")
    assert not list(temp.iterdir())       # its temporary and progress folders, and Beam's
    assert not (out / "metrics.json").exists()


def test_export_stops_and_removes_its_temporary_folder(tiny_video_run, tmp_path):
    output = tmp_path / "exports" / "int8"
    cmd = [sys.executable, "-m", "trainers.export", f"--workdir={tiny_video_run}",
           "--format=tflite", "--quantize=int8", f"--output={output}"]
    run = start(cmd)
    try:
        run.wait_for("[export] reading", timeout=240)   # its temporary folder exists now
        assert [p.name[:8] for p in output.parent.iterdir()] == [".export_"]
        os.kill(run.proc.pid, signal.SIGINT)
    finally:
        code = run.finish(timeout=120)
    assert code == 130, run.stderr[-3000:]
    line = _stopped_line(run.stderr, "export", "SIGINT")
    assert line.endswith(f"--output={output}")
    assert not list(output.parent.iterdir())
