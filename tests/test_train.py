"""Training end to end on tiny records: every family, precision, resume after a kill."""
from __future__ import annotations

import csv
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT, run_module
from pipeline import synthetic

pytestmark = pytest.mark.integration


def _build(dataset, data_dir, out, *extra) -> pathlib.Path:
    r = run_module("pipeline.build", f"--dataset={dataset}", f"--data_dir={data_dir}",
                   f"--output_dir={out}", "--config_name=t", "--direct_num_workers=1", *extra)
    assert r.returncode == 0, r.stderr
    return pathlib.Path(out) / dataset / "t"


@pytest.fixture(scope="module")
def video_build(tiny_video_build) -> pathlib.Path:
    """5 synthetic classes, 4 train + 2 test videos each, built as 8 uniform frames of 32x32."""
    return tiny_video_build


@pytest.fixture(scope="module")
def image_build(tmp_path_factory) -> pathlib.Path:
    import cv2
    root = tmp_path_factory.mktemp("train_images")
    rng = np.random.default_rng(0)
    for cls in ("cats", "dogs", "owls"):
        (root / "data" / cls).mkdir(parents=True)
        for i in range(6):
            cv2.imwrite(str(root / "data" / cls / f"{i}.jpg"),
                        rng.integers(0, 255, (40, 40, 3), dtype=np.uint8))
    return _build("images", root / "data", root / "out", "--size=32x32", "--val_fraction=0.34")


@pytest.fixture(scope="module")
def soccer_keypoints(tmp_path_factory, real_dir) -> pathlib.Path:
    root = tmp_path_factory.mktemp("soccer_kp")
    segments = root / "segments.csv"
    # frame-wise labels: the kick happens in the second second of every recording
    segments.write_text("video,start_s,end_s,label\n" + "".join(
        f"Kick_{k},1.0,2.0,kick\n" for k in range(1, 21)))
    return _build("openpose", real_dir / "soccer" / "openpose", root / "out",
                  f"--segments_csv={segments}", "--keypoints=upper_body", "--coords=xy",
                  f"--video_dir={real_dir / 'soccer' / 'videos'}", "--test_fraction=0.3")


@pytest.fixture(scope="module")
def soccer_videos(real_video_build) -> pathlib.Path:
    """The 20 real soccer-kick videos, curl | laces, built as 6 uniform frames of 48x32."""
    return real_video_build


def _config(build_dir, model_name, model, *, data=None, train=None):
    from configs import common
    return common.experiment(
        model_name=model_name, model=model,
        data={"build_dir": str(build_dir), "num_frames": 8, "crop_size": 32, "crop": "center",
              **(data or {})},
        train={"epochs": 2, "steps_per_epoch": 2, "batch_size": 2, **(train or {})})


def _train(config, workdir):
    import keras
    from trainers import train
    try:
        return train.train(config, str(workdir))
    finally:
        keras.mixed_precision.set_global_policy("float32")


FAMILIES = {
    "conv3d": dict(filters=(4, 8), dense_units=(16,)),
    "cnn_rnn": dict(filters=(4, 8), dense_units=(16,), rnn_units=8),
    "cnn_rnn_lstm": dict(filters=(4, 8), dense_units=(16,), rnn="lstm", rnn_units=8),
    # the backbone's last 5 layers trained, as in fine-tuning: a backward pass through all
    # of it would add half a minute of graph tracing here
    "transfer_rnn": dict(backbone="MobileNet", alpha=0.25, weights=None, rnn_units=8,
                         pool_size=0, trainable_last_n=5),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_video_families_train_from_records(video_build, tmp_path, name):
    family = "cnn_rnn" if name.startswith("cnn_rnn") else name
    result = _train(_config(video_build, family, FAMILIES[name]), tmp_path)
    assert result["split"] == "test" and np.isfinite(result["loss"])
    assert 0 <= result["accuracy"] <= 1
    for f in ("config.json", "classes.json", "dataset_info.json", "history.csv", "curves.png",
              "result.json", "checkpoints/best.keras", "checkpoints/last.keras"):
        assert (tmp_path / f).is_file(), f
    assert json.loads((tmp_path / "classes.json").read_text()) == list(synthetic.CLASSES)
    with open(tmp_path / "history.csv") as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == [0, 1]
    resolved = json.loads((tmp_path / "config.json").read_text())
    assert resolved["model_name"] == family
    for knob, value in FAMILIES[name].items():      # merged over the family's defaults
        assert resolved["model"][knob] == (list(value) if isinstance(value, tuple) else value)


@pytest.mark.slow
def test_image_classifier_trains(image_build, tmp_path):
    # A small frozen backbone: the penalties under test are the dense head's, whatever the
    # backbone (tracing a backward pass through it would double the test's time).
    config = _config(image_build, "image_classifier",
                     dict(backbone="MobileNetV2", alpha=0.35, weights=None, trainable_last_n=0),
                     data={"eval_split": "val"},
                     train={"optimizer": "adamax", "class_weights": "balanced"})
    result = _train(config, tmp_path)
    assert np.isfinite(result["loss"]) and result["split"] == "val"
    # The dense head's L1/L2 penalties are logged apart; loss is the data loss that
    # trainers.evaluate reports for the same split (val: the build has no test split).
    from trainers import evaluate, workdir
    scores = evaluate.evaluate(workdir.open_run(str(tmp_path)), progress=False)
    assert scores["split"] == "val" and scores["views_per_video"] == 1
    with open(tmp_path / "history.csv") as f:
        logged = list(csv.DictReader(f))[result["best_epoch"] - 1]
    for accuracy in (result["accuracy"], float(logged["val_accuracy"])):
        assert np.float32(accuracy) == np.float32(scores["top1"])
    for loss in (result["loss"], float(logged["val_loss"])):
        assert loss == pytest.approx(scores["loss"], rel=1e-5)
    assert result["regularization_loss"] > 0 and float(logged["val_regularization_loss"]) > 0
    # class_weights=balanced weighs the training loss: no training penalty to single out
    assert "regularization_loss" not in logged


@pytest.mark.slow
@pytest.mark.real
def test_keypoint_ensemble_trains_on_real_openpose(soccer_keypoints, tmp_path):
    info = json.loads((soccer_keypoints / "dataset_info.json").read_text())
    assert info["classes"] == ["none", "kick"]
    config = _config(soccer_keypoints, "keypoint_rnn",
                     dict(variant="ensemble", units=(8,), dropouts=(0.2,), dense_units=(8,)),
                     data={"window": 30, "target": "frames"})
    result = _train(config, tmp_path)
    assert np.isfinite(result["loss"]) and 0 <= result["accuracy"] <= 1


@pytest.mark.real
def test_cnn_rnn_trains_on_real_soccer_videos(soccer_videos, tmp_path):
    config = _config(soccer_videos, "cnn_rnn", FAMILIES["cnn_rnn"],
                     data={"num_frames": 6, "crop_size": 32})
    result = _train(config, tmp_path)
    assert np.isfinite(result["loss"])


def test_mixed_bfloat16_runs_on_cpu(video_build, tmp_path):
    config = _config(video_build, "cnn_rnn", FAMILIES["cnn_rnn"],
                     train={"precision": "mixed_bfloat16"})
    result = _train(config, tmp_path)
    assert result["precision"] == "mixed_bfloat16" and np.isfinite(result["loss"])


def test_config_and_records_must_agree(video_build, tmp_path, soccer_keypoints):
    from trainers import data
    with pytest.raises(data.ConfigError, match="expects 7 classes but the build has 5"):
        data.load_build(_config(video_build, "cnn_rnn", {}, data={"num_classes": 7}))
    with pytest.raises(data.ConfigError, match="keypoint_rnn trains on keypoints records"):
        data.load_build(_config(video_build, "keypoint_rnn", {}))
    with pytest.raises(data.ConfigError, match="cnn_rnn trains on video records"):
        data.load_build(_config(soccer_keypoints, "cnn_rnn", {}))
    with pytest.raises(data.ConfigError, match="split 'val' has no records"):
        data.load_build(_config(video_build, "cnn_rnn", {}, data={"eval_split": "val"}))


def _config_file(tmp_path, build_dir, epochs, steps, model=None) -> pathlib.Path:
    """A config file for the command line, like the ones in configs/."""
    path = tmp_path / "exp_config.py"
    path.write_text(
        "from configs import common\n\n\n"
        "def get_config(arg=None):\n"
        "    return common.experiment(\n"
        "        model_name='cnn_rnn',\n"
        f"        model={model or FAMILIES['cnn_rnn']!r},\n"
        f"        data=dict(build_dir={str(build_dir)!r}, num_frames=8, crop_size=32,\n"
        "                  crop='center'),\n"
        f"        train=dict(epochs={epochs}, steps_per_epoch={steps}, batch_size=2,\n"
        "                   deterministic=True))\n")
    return path


def _epochs(history: pathlib.Path) -> list[int]:
    if not history.exists():
        return []
    with open(history) as f:
        return [int(r["epoch"]) for r in csv.DictReader(f)]


@pytest.mark.slow
def test_killed_run_resumes_from_the_saved_epoch(video_build, tmp_path):
    config = _config_file(tmp_path, video_build, epochs=8, steps=6)
    workdir = tmp_path / "run"
    cmd = [sys.executable, "-m", "trainers.train", f"--config={config}", f"--workdir={workdir}"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 300
    while len(_epochs(workdir / "history.csv")) < 2 and time.monotonic() < deadline:
        assert proc.poll() is None, "training ended before it could be killed"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = _epochs(workdir / "history.csv")
    assert 2 <= len(done) < 8
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    epochs = _epochs(workdir / "history.csv")
    resumed = epochs[len(done):]
    assert resumed[0] >= len(done) - 1 > 0           # not from zero
    assert resumed[-1] == 7 and sorted(set(epochs)) == list(range(8))


def test_a_save_cut_short_leaves_the_previous_backup_and_checkpoint_whole(tmp_path, monkeypatch):
    """A run killed while saving must still resume: saves go beside the file, then rename."""
    import keras
    from trainers import backup
    Backup, Checkpoint = backup.atomic_savers()
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    backup = Backup(str(tmp_path / "backup"))
    last = Checkpoint(str(tmp_path / "last.keras"))
    for cb in (backup, last):
        cb.set_model(model)
        cb.on_epoch_end(0, logs={})
    weights = (tmp_path / "backup" / "latest.weights.h5").read_bytes()
    checkpoint = (tmp_path / "last.keras").read_bytes()
    assert json.loads((tmp_path / "backup" / "training_metadata.json").read_text())["epoch"] == 1

    def cut_short(path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(b"half a file")
        raise KeyboardInterrupt
    monkeypatch.setattr(model, "save_weights", cut_short)
    monkeypatch.setattr(model, "save", cut_short)
    for cb in (backup, last):
        with pytest.raises(KeyboardInterrupt):
            cb.on_epoch_end(1, logs={})
    assert (tmp_path / "backup" / "latest.weights.h5").read_bytes() == weights
    assert json.loads((tmp_path / "backup" / "training_metadata.json").read_text())["epoch"] == 1
    assert (tmp_path / "last.keras").read_bytes() == checkpoint
    keras.models.load_model(str(tmp_path / "last.keras"))
