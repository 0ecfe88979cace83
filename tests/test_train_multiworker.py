"""Training on several machines (TF_CONFIG): two CPU worker processes on 127.0.0.1.

One module-wide scenario, run as a user would: both workers are started with
``python -m trainers.train``; after the first epoch worker 1 is killed, and the
chief stops by itself with an error saying what to do. Both are started again
with the same commands; they resume from the chief's backup and finish. The
tests read what the two runs wrote and printed.
"""
from __future__ import annotations

import csv
import json
import math
import os
import pathlib
import shlex
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import ROOT, run_module

pytestmark = pytest.mark.integration

EPOCHS = 4
STEPS = 2


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _config_file(path: pathlib.Path, build_dir) -> pathlib.Path:
    """A tiny cnn_rnn experiment on the tiny build, as a config file for the command line."""
    path.write_text(
        "from configs import common\n\n\n"
        "def get_config(arg=None):\n"
        "    return common.experiment(\n"
        "        model_name='cnn_rnn',\n"
        "        model=dict(filters=(4, 8), dense_units=(16,), rnn_units=8),\n"
        f"        data=dict(build_dir={str(build_dir)!r}, num_frames=8, crop_size=32,\n"
        "                  crop='center', sampling='uniform'),\n"
        f"        train=dict(epochs={EPOCHS}, steps_per_epoch={STEPS}, batch_size=4,\n"
        "                   learning_rate=0.01, class_weights='balanced',\n"
        "                   deterministic=True))\n")
    return path


def _tf_config(ports, index: int) -> str:
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                       "task": {"type": "worker", "index": index}})


class _Cluster:
    """Two ``python -m trainers.train`` processes, one per worker, never left running."""

    def __init__(self, config, workdirs, logdir: pathlib.Path, tag: str):
        ports = _free_ports(len(workdirs))
        self.logs = [logdir / f"{tag}.worker{i}.log" for i in range(len(workdirs))]
        self.temps = [logdir / f"{tag}.worker{i}.tmp" for i in range(len(workdirs))]
        self.procs = []
        try:
            for i, workdir in enumerate(workdirs):
                self.temps[i].mkdir()
                env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TMPDIR=str(self.temps[i]),
                           TF_CONFIG=_tf_config(ports, i), TF_CPP_MIN_LOG_LEVEL="2")
                with open(self.logs[i], "w") as log:
                    self.procs.append(subprocess.Popen(
                        [sys.executable, "-m", "trainers.train", f"--config={config}",
                         f"--workdir={workdir}"], cwd=ROOT, env=env, stdout=log,
                        stderr=subprocess.STDOUT, start_new_session=True))
        except BaseException:
            self.kill()
            raise

    def kill(self):
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
        for p in self.procs:
            p.wait()

    def wait(self, timeout: float) -> list[int]:
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                codes = [p.poll() for p in self.procs]
                if all(c is not None for c in codes):
                    return codes
                if any(c not in (None, 0) for c in codes):
                    break                   # one failed: the other would wait for it forever
                time.sleep(0.2)
            return [p.poll() for p in self.procs]
        finally:
            self.kill()

    def output(self) -> list[str]:
        return [log.read_text() for log in self.logs]


def _history(path: pathlib.Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def two_workers(tiny_video_build, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("multiworker")
    config = _config_file(root / "exp_config.py", tiny_video_build)
    workdirs = [root / "chief", root / "worker1"]

    # The first run loses worker 1 (killed) after the chief has logged an epoch; the
    # chief must then stop by itself, saying what to do.
    first = _Cluster(config, workdirs, root, "first")
    try:
        deadline = time.monotonic() + 240
        while len(_history(workdirs[0] / "history.csv")) < 1:
            codes = [p.poll() for p in first.procs]
            assert all(c is None for c in codes), (
                f"a worker ended before it could be stopped (exit codes {codes}):\n"
                + "\n".join(out[-3000:] for out in first.output()))
            assert time.monotonic() < deadline, "no epoch finished in 240 s"
            time.sleep(0.1)
        os.killpg(first.procs[1].pid, signal.SIGKILL)
        try:
            chief_code = first.procs[0].wait(timeout=180)
        except subprocess.TimeoutExpired:
            chief_code = None                               # still waiting for the lost worker
    finally:
        first.kill()
    stopped_after = len(_history(workdirs[0] / "history.csv"))

    second = _Cluster(config, workdirs, root, "second")
    codes = second.wait(timeout=300)
    return {"workdirs": workdirs, "stopped_after": stopped_after, "codes": codes,
            "output": second.output(), "first_chief_code": chief_code,
            "first_chief_output": first.output()[0],
            "left_in_temp": {str(t): sorted(p.name for p in t.iterdir())
                             for t in (first.temps[0], *second.temps)}}


def _resumed(output: str) -> list[int]:
    """The epochs a run says it resumes after."""
    return [int(line.split()[4]) for line in output.splitlines()
            if line.startswith("[train] resuming after epoch")]


def _results(run) -> list[dict]:
    chief, worker1 = run["workdirs"]
    return [json.loads((chief / "result.json").read_text()),
            json.loads((worker1 / "workertemp_1" / "result.json").read_text())]


@pytest.mark.slow
def test_both_workers_finish_after_a_restart(two_workers):
    assert two_workers["codes"] == [0, 0], "\n".join(o[-4000:] for o in two_workers["output"])
    stopped = two_workers["stopped_after"]
    assert 1 <= stopped < EPOCHS, f"stopped after {stopped} of {EPOCHS} epochs"
    for i, out in enumerate(two_workers["output"]):
        assert "2 replica(s), worker %d of 2" % i in out
        # the backup is written just before history.csv: it may hold one more epoch
        resumed = _resumed(out)
        assert len(resumed) == 1 and resumed[0] in (stopped, stopped + 1), out[-3000:]
        assert f"Epoch {resumed[0] + 1}/{EPOCHS}" in out and "Epoch 1/" not in out
        assert "Traceback" not in out


def test_workers_leave_nothing_in_their_temporary_folders(two_workers):
    """TensorFlow's generated code goes into the run's own temporary folder, removed at the
    end, also by the chief that ends at once after losing a worker (the killed worker's
    folder is not checked: nothing runs after SIGKILL)."""
    assert two_workers["first_chief_code"] == 1
    assert two_workers["left_in_temp"] == {t: [] for t in two_workers["left_in_temp"]}


def test_a_lost_worker_stops_the_chief_with_what_to_do(two_workers):
    out = two_workers["first_chief_output"]
    assert two_workers["first_chief_code"] == 1, out[-4000:]
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith("error: the cluster lost a worker ("), errors
    assert "start them all again with the same commands" in errors[0]
    assert "Traceback" not in out


def test_the_chief_writes_the_workdir_and_the_other_worker_only_its_record(two_workers):
    chief, worker1 = two_workers["workdirs"]
    for name in ("config.json", "classes.json", "dataset_info.json", "history.csv",
                 "curves.png", "result.json", "checkpoints/best.keras",
                 "checkpoints/last.keras"):
        assert (chief / name).is_file(), name
    assert (chief / "tensorboard").is_dir()
    assert not (chief / "backup").exists()          # a finished run deletes its backup
    assert sorted(os.listdir(worker1)) == ["workertemp_1"]
    assert sorted(os.listdir(worker1 / "workertemp_1")) == ["history.csv", "result.json"]
    epochs = [int(r["epoch"]) for r in _history(chief / "history.csv")]
    assert sorted(set(epochs)) == list(range(EPOCHS))


def test_workers_agree_on_weights_and_metrics(two_workers):
    chief_result, worker_result = _results(two_workers)
    assert (chief_result["worker"], chief_result["chief"]) == (0, True)
    assert (worker_result["worker"], worker_result["chief"]) == (1, False)
    assert chief_result["workers"] == worker_result["workers"] == 2
    assert chief_result["replicas"] == 2
    assert len(chief_result["weights_sha256"]) == 64
    same = ("weights_sha256", "split", "precision")
    assert {k: chief_result[k] for k in same} == {k: worker_result[k] for k in same}
    assert "loss" not in worker_result              # the chief alone evaluates the run
    # every epoch logged by both workers, with the same metrics (a worker stopped a moment
    # before writing its row of the epoch the chief logged last misses only that row)
    chief, worker1 = two_workers["workdirs"]
    chief_rows = {r["epoch"]: r for r in _history(chief / "history.csv")}
    worker_rows = {r["epoch"]: r for r in _history(worker1 / "workertemp_1" / "history.csv")}
    assert set(worker_rows) <= set(chief_rows)
    resumed = _resumed(two_workers["output"][0])[0]
    assert {str(e) for e in range(resumed, EPOCHS)} <= set(worker_rows)
    for epoch, row in worker_rows.items():
        assert row == chief_rows[epoch], epoch


def test_reported_weights_are_the_chiefs_last_checkpoint(two_workers):
    from trainers import multiworker, workdir
    chief, _ = two_workers["workdirs"]
    model = workdir.open_run(str(chief)).load_model("last")    # registers the custom layers
    assert multiworker.weights_sha256(model) == _results(two_workers)[0]["weights_sha256"]


def test_training_changed_the_weights(two_workers):
    chief, _ = two_workers["workdirs"]
    rows = _history(chief / "history.csv")
    val_losses = [float(r["val_loss"]) for r in rows]
    assert all(math.isfinite(v) for v in val_losses)
    # validation reads the same clips in the same order every epoch: only new weights
    # change its loss
    assert len(set(val_losses)) > 1, val_losses


def test_validation_across_workers_equals_one_pass_over_the_split(two_workers):
    """Each worker validates its half of the test split; the metrics gathered from both
    must equal the chief's final evaluation of the best checkpoint on the whole split."""
    chief, _ = two_workers["workdirs"]
    result = _results(two_workers)[0]
    rows = {int(r["epoch"]): r for r in _history(chief / "history.csv")}
    best = rows[result["best_epoch"] - 1]
    assert float(best["val_loss"]) == pytest.approx(result["loss"], rel=1e-5)
    assert float(best["val_accuracy"]) == pytest.approx(result["accuracy"], abs=1e-6)


def test_check_tf_config_explains_mistakes():
    from trainers import multiworker
    from trainers.data import ConfigError
    good = _tf_config([1, 2], 1)
    assert multiworker.check_tf_config(good)["task"] == {"type": "worker", "index": 1}
    with pytest.raises(ConfigError, match="not valid JSON"):
        multiworker.check_tf_config("{worker: 1}")
    with pytest.raises(ConfigError, match='needs "cluster" and "task"'):
        multiworker.check_tf_config(json.dumps({"cluster": {"worker": ["a:1"]}}))
    with pytest.raises(ConfigError, match="is not in its cluster"):
        multiworker.check_tf_config(_tf_config([1, 2], 2))
    with pytest.raises(ConfigError, match="ps jobs"):
        multiworker.check_tf_config(json.dumps({"cluster": {"worker": ["a:1"], "ps": ["b:2"]},
                                                "task": {"type": "worker", "index": 0}}))


def test_a_bad_tf_config_exits_2_without_traceback(tiny_video_build, tmp_path):
    config = _config_file(tmp_path / "exp_config.py", tiny_video_build)
    r = run_module("trainers.train", f"--config={config}", f"--workdir={tmp_path / 'w'}",
                   env={"TF_CONFIG": _tf_config([1, 2], 5), "CUDA_VISIBLE_DEVICES": ""},
                   timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("error: TF_CONFIG task")
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "w").exists()


def test_xla_on_cpu_workers_is_refused_with_a_way_out(tiny_video_build, tmp_path):
    config = _config_file(tmp_path / "exp_config.py", tiny_video_build)
    r = run_module("trainers.train", f"--config={config}", f"--workdir={tmp_path / 'w'}",
                   "--config.train.xla=True",
                   env={"TF_CONFIG": _tf_config(_free_ports(1), 0), "CUDA_VISIBLE_DEVICES": ""},
                   timeout=180)
    assert r.returncode == 2, r.stderr[-3000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: train.xla with TF_CONFIG needs GPU workers"), last
    assert "--config.train.xla=False" in last and "Traceback" not in r.stderr


def test_sigterm_stops_the_worker_at_a_step_with_a_backup_and_one_line(tiny_video_build,
                                                                      tmp_path):
    """One worker under TF_CONFIG runs the multi-worker loop: SIGTERM mid-epoch ends it at
    the next step (agreed by all workers) with a backup of that step and one line."""
    from test_train_signals import config_file, start
    epochs, steps = 2, 5
    config = config_file(tmp_path / "exp.py", tiny_video_build, epochs, steps)
    workdir = tmp_path / "run"
    env = {"TF_CONFIG": _tf_config(_free_ports(1), 0), "CUDA_VISIBLE_DEVICES": "",
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    cmd = [sys.executable, "-m", "trainers.train", f"--config={config}", f"--workdir={workdir}"]
    run = start(cmd, env=env)
    try:
        run.wait_for("Epoch 1/2", timeout=240)
        os.kill(run.proc.pid, signal.SIGTERM)
    finally:
        code = run.finish(timeout=120)
    assert code == 143, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    lines = [line for line in run.stderr.splitlines() if line.startswith("[train] stopped")]
    assert len(lines) == 1, run.stderr[-3000:]
    meta = json.loads((workdir / "backup" / "training_metadata.json").read_text())
    assert meta["epoch"] == 0 and 1 <= meta["batch"] <= steps
    assert (workdir / "backup" / meta["step_state"] / "model.weights.h5").is_file()
    assert lines[0] == (
        f"[train] stopped by SIGTERM: kept a backup after step {meta['batch']} of {steps} of "
        f"epoch 1 (model, optimizer) in {workdir / 'backup'}. Resume with: "
        f"TF_CONFIG={shlex.quote(env['TF_CONFIG'])} python -m trainers.train "
        f"--config={config} --workdir={workdir}")
