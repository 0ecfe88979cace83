"""Stopping and resuming training: signals at a step boundary, the STOP file, longer runs.

The command-line test sends real signals to ``python -m trainers.train``; the others
call ``trainers.train.train`` in this process with a stand-in for the signal handler
(``signum`` set by a callback at a chosen step), so the stop points are exact.
"""
from __future__ import annotations

import csv
import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import ROOT

pytestmark = pytest.mark.integration


# --------------------------------------------------------------------------
# Helpers.
# --------------------------------------------------------------------------
class Output:
    """A process's stdout and stderr, read by threads as they come (never blocking)."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.out: list[str] = []
        self.err: list[str] = []
        self._threads = [threading.Thread(target=self._pump, args=(s, d), daemon=True)
                         for s, d in ((proc.stdout, self.out), (proc.stderr, self.err))]
        for t in self._threads:
            t.start()

    @staticmethod
    def _pump(stream, into):
        for line in stream:
            into.append(line)

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.out + self.err):
            assert self.proc.poll() is None, (
                f"ended (exit {self.proc.returncode}) before printing {text!r}:\n"
                + "".join(self.out + self.err)[-3000:])
            assert time.monotonic() < deadline, f"{text!r} not printed in {timeout} s"
            time.sleep(0.05)

    def finish(self, timeout: float) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        for t in self._threads:
            t.join(timeout=10)
        return code

    @property
    def stderr(self) -> str:
        return "".join(self.err)

    @property
    def stdout(self) -> str:
        return "".join(self.out)


def start(cmd: list[str], env: dict | None = None) -> Output:
    return Output(subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True,
                                   env=dict(os.environ, **(env or {}))))


# A model that is quick to trace (the cost of each run here): one small Conv3D block and a
# dense layer with dropout (whose random state a step backup keeps).
MODEL = dict(filters=(2,), batch_norm=False, pooling="avg", dense_units=(8,))


def config_file(path: pathlib.Path, build_dir, epochs: int, steps: int) -> pathlib.Path:
    path.write_text(
        "from configs import common\n\n\n"
        "def get_config(arg=None):\n"
        "    return common.experiment(\n"
        "        model_name='conv3d',\n"
        f"        model={MODEL!r},\n"
        f"        data=dict(build_dir={str(build_dir)!r}, num_frames=8, crop_size=32,\n"
        "                  crop='center', sampling='uniform'),\n"
        f"        train=dict(epochs={epochs}, steps_per_epoch={steps}, batch_size=2,\n"
        "                   deterministic=True))\n")
    return path


def tiny_config(build_dir, **train):
    """``MODEL`` on ``tiny_video_build`` (8 frames of 32x32), with ``train`` values."""
    from configs import common
    return common.experiment(
        model_name="conv3d", model=MODEL,
        data=dict(build_dir=str(build_dir), num_frames=8, crop_size=32, crop="center",
                  sampling="uniform"),
        train=dict(dict(epochs=1, steps_per_epoch=2, batch_size=4), **train))


def history(workdir: pathlib.Path) -> list[dict]:
    path = workdir / "history.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def iterations(checkpoint: pathlib.Path) -> int:
    """Optimizer steps a checkpoint has taken."""
    import keras
    return int(keras.models.load_model(str(checkpoint)).optimizer.iterations.numpy())


def metadata(workdir: pathlib.Path) -> dict:
    return json.loads((workdir / "backup" / "training_metadata.json").read_text())


# --------------------------------------------------------------------------
# The command line: real signals.
# --------------------------------------------------------------------------
@pytest.mark.slow
def test_sigint_stops_at_a_step_with_one_line_and_the_same_command_resumes(tiny_video_build,
                                                                          tmp_path):
    epochs, steps = 2, 5
    config = config_file(tmp_path / "exp.py", tiny_video_build, epochs, steps)
    workdir = tmp_path / "run"
    cmd = [sys.executable, "-m", "trainers.train", f"--config={config}", f"--workdir={workdir}"]
    run = start(cmd)
    try:
        run.wait_for("Epoch 1/2", timeout=300)     # the first step (traced) is under way
        os.kill(run.proc.pid, signal.SIGINT)
        time.sleep(0.2)
        if run.proc.poll() is None:
            os.kill(run.proc.pid, signal.SIGTERM)  # a second signal is ignored while it saves
    finally:
        code = run.finish(timeout=120)
    assert code == 130, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    lines = [line for line in run.stderr.splitlines() if line.startswith("[train]")]
    assert len(lines) == 1, run.stderr[-3000:]
    assert lines[0].startswith("[train] stopped by SIGINT: kept a backup after step ")
    assert lines[0].endswith(f"Resume with: python -m trainers.train --config={config} "
                             f"--workdir={workdir}")
    meta = metadata(workdir)
    done = meta["batch"]
    assert meta["epoch"] == 0 and 1 <= done <= steps and meta["reader"] is True
    assert f"after step {done} of {steps} of epoch 1 " in lines[0]
    state = workdir / "backup" / meta["step_state"]
    assert (state / "model.weights.h5").is_file() and (state / "reader.index").is_file()
    assert not history(workdir)                    # no epoch was completed

    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"[train] resuming at epoch 1 step {done} from {workdir / 'backup'}\n" in r.stdout
    assert [int(row["epoch"]) for row in history(workdir)] == [0, 1]
    assert iterations(workdir / "checkpoints" / "last.keras") == epochs * steps
    assert not (workdir / "backup").exists()       # a finished run keeps no backup


# --------------------------------------------------------------------------
# In this process: exact stop points.
# --------------------------------------------------------------------------
class FakeSignals:
    """``pipeline.cli.StopSignals(raise_stop=False)`` as the trainer reads it."""
    signum = None

    def check(self):
        from pipeline import cli
        if self.signum is not None:
            raise cli.Stopped(self.signum)


def _train(config, workdir, signals=None, stop_at=None, monkeypatch=None):
    """``train.train``; ``stop_at`` (epoch, "train", step) or (epoch, "validation") sets
    ``signals.signum`` (SIGTERM) there."""
    import keras
    from trainers import backup, train
    if stop_at is not None:
        make = backup.make_callbacks

        class Trigger(keras.callbacks.Callback):
            epoch = -1

            def on_epoch_begin(self, epoch, logs=None):
                self.epoch = epoch

            def on_train_batch_end(self, batch, logs=None):
                if stop_at == (self.epoch, "train", batch + 1):
                    signals.signum = signal.SIGTERM

            def on_test_batch_begin(self, batch, logs=None):
                if stop_at == (self.epoch, "validation"):
                    signals.signum = signal.SIGTERM

        monkeypatch.setattr(backup, "make_callbacks",
                            lambda *a, **k: make(*a, **k) + [Trigger()])
    try:
        return train.train(config, str(workdir), signals=signals)
    finally:
        monkeypatch and monkeypatch.undo()
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.slow
def test_a_stopped_run_repeats_the_uninterrupted_one_then_goes_on_and_obeys_stop(
        tiny_video_build, tmp_path, monkeypatch, capsys):
    """Stopped mid-epoch, resumed and stopped again during validation, resumed to the end:
    the same numbers as a run never stopped. Then a larger train.epochs continues the
    finished run, and WORKDIR/STOP ends it after an epoch."""
    from pipeline import cli
    from trainers import backup
    config = tiny_config(tiny_video_build, epochs=2, steps_per_epoch=4, batch_size=2,
                         deterministic=True)
    reference = tmp_path / "reference"
    _train(config, reference)

    workdir = tmp_path / "stopped"
    signals = FakeSignals()
    with pytest.raises(cli.Stopped) as stopped:
        _train(config, workdir, signals, (0, "train", 2), monkeypatch)
    assert stopped.value.exit_code == 143
    assert stopped.value.kept.startswith(f"kept a backup after step 2 of 4 of epoch 1 in "
                                         f"{workdir / 'backup'}")
    assert (metadata(workdir)["epoch"], metadata(workdir)["batch"]) == (0, 2)

    signals = FakeSignals()                         # then stopped in epoch 2's validation
    with pytest.raises(cli.Stopped):
        _train(config, workdir, signals, (1, "validation"), monkeypatch)
    assert "[train] resuming at epoch 1 step 2 from" in capsys.readouterr().out
    assert (metadata(workdir)["epoch"], metadata(workdir)["batch"]) == (1, 4)
    assert [int(r["epoch"]) for r in history(workdir)] == [0]

    _train(config, workdir)
    assert "[train] resuming at epoch 2 step 4 from" in capsys.readouterr().out
    ours, theirs = history(workdir), history(reference)
    assert [r["epoch"] for r in ours] == [r["epoch"] for r in theirs] == ["0", "1"]
    for a, b in zip(ours, theirs):                  # the same steps on the same batches
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-5, abs=1e-6), key
    assert iterations(workdir / "checkpoints" / "last.keras") == 8
    assert json.loads((workdir / "result.json").read_text())["loss"] == pytest.approx(
        json.loads((reference / "result.json").read_text())["loss"], rel=1e-5)
    assert not (workdir / "backup").exists()

    # The finished run, asked for 4 epochs with WORKDIR/STOP present: it goes on from its
    # last epoch and ends after the next one, as a finished run, removing the file.
    (workdir / "STOP").touch()
    best_before = (workdir / "checkpoints" / "best.keras").read_bytes()
    longer = tiny_config(tiny_video_build, epochs=4, steps_per_epoch=4, batch_size=2,
                         deterministic=True)
    result = _train(longer, workdir)
    out = capsys.readouterr().out
    assert (f"[train] resuming at epoch 3 step 0 from {workdir / 'checkpoints' / 'last.keras'} "
            "(the run had ended after 2 epoch(s); training to 4)") in out
    assert (f"[train] found {workdir / 'STOP'}: stopped after epoch 3 of 4 as asked, with its "
            f"checkpoints; removed {workdir / 'STOP'}") in out
    assert not (workdir / "STOP").exists() and not (workdir / "backup").exists()
    assert result["stopped_by"] == "stop_file" and result["epochs_trained"] == 3
    assert json.loads((workdir / "result.json").read_text())["stopped_by"] == "stop_file"
    rows = history(workdir)
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    assert iterations(workdir / "checkpoints" / "last.keras") == 12
    scores = [float(r["val_accuracy"]) for r in rows]
    assert result["best_epoch"] == scores.index(max(scores)) + 1
    # best.keras is replaced only by an epoch better than those before
    replaced = (workdir / "checkpoints" / "best.keras").read_bytes() != best_before
    assert replaced == (scores[2] > max(scores[:2]))
    assert backup.best_before_resume(str(workdir), "val_accuracy", "max", 3) == max(scores)

    # started again, it goes on to its 4 epochs; with 3, nothing is left to train
    point = backup.previous_run(longer, str(workdir))
    assert (point.epoch, point.step, point.finished) == (3, 0, True)
    assert backup.previous_run(tiny_config(tiny_video_build, epochs=3), str(workdir)).epoch == 3
    assert backup.resume_line(point, 3) is None
