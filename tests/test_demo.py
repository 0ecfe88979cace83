"""The README's first command: the offline demo builds, verifies and trains on the synthetic data."""
from __future__ import annotations

import ast
import csv
import json
import pathlib
import re

import numpy as np
import pytest

from conftest import ROOT, noise_lines, run_module
from pipeline import demo, synthetic
from tfrecords import schema

ACCURACY_LINE = re.compile(r"^\[demo\] test accuracy: (\d\.\d{3}) \(best epoch (\d+), (\d+)s "
                           r"training\); curves: (.+)$", re.M)
VAL_LINE = re.compile(r"^\[demo\] val accuracy of the best epoch: (\d\.\d{3}) \(best epoch "
                      r"(\d+)\)$", re.M)


@pytest.mark.slow(seconds=300)   # measured: 5 to 6 minutes on 2 cores
@pytest.mark.integration
def test_demo_builds_trains_and_reaches_90_percent(tmp_path):
    """The README command exactly: defaults, training included (a few minutes on 2 cores)."""
    r = run_module("pipeline.demo", "--output_dir", str(tmp_path), timeout=1500)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    # The build, the trainer (python -m trainers.train) and the evaluation it runs print
    # their own lines and no library noise (tests/test_quiet.py: --verbose brings it back).
    out = r.stdout + r.stderr
    assert not noise_lines(out), noise_lines(out)
    assert re.search(r"Epoch \d+/\d+", out) and "[train] best epoch" in out, out[-3000:]
    build_dir = tmp_path / "records" / "ucf101" / "demo"
    assert f"[demo] verified {build_dir}" in r.stdout
    info = json.loads((build_dir / schema.DATASET_INFO_FILE).read_text())
    assert info["classes"] == list(synthetic.CLASSES)
    n_train, n_test = demo.DEMO_TRAIN_PER_CLASS, demo.DEMO_TEST_PER_CLASS
    # whole groups of 4 clips held out of train: a tenth of each class's 50 groups
    groups = n_train // synthetic.CLIPS_PER_GROUP
    n_val = round(demo.DEMO_VAL_FRACTION * groups) * synthetic.CLIPS_PER_GROUP
    assert info["splits"]["train"]["per_class"] == {c: n_train - n_val for c in synthetic.CLASSES}
    assert info["splits"]["val"]["per_class"] == {c: n_val for c in synthetic.CLASSES}
    assert info["splits"]["test"]["per_class"] == {c: n_test for c in synthetic.CLASSES}
    assert info["splits"]["train"]["num_frames"] == 5 * (n_train - n_val) * 16
    assert (build_dir / schema.ERRORS_FILE).read_text() == ""

    run = tmp_path / "run"
    match = ACCURACY_LINE.search(r.stdout)
    assert match, r.stdout[-3000:]
    printed, best_epoch, _, curves = match.groups()
    assert float(printed) >= 0.9, r.stdout[-3000:]
    assert curves == str(run / "curves.png")
    # the best epoch is picked on 'val'; the test split is read once, at the end
    result = json.loads((run / "result.json").read_text())
    assert result["split"] == "val" and result["best_epoch"] == int(best_epoch)
    val_match = VAL_LINE.search(r.stdout)
    assert val_match and val_match.groups() == (f"{result['accuracy']:.3f}", best_epoch)
    assert (run / "curves.png").stat().st_size > 0
    assert (run / "checkpoints" / "best.keras").stat().st_size > 0
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["build_dir"] == str(build_dir)

    # ... and ends by evaluating the best checkpoint on the test split
    report = run / "eval" / "test"
    assert (f"[demo] evaluation report: {report / 'classification_report.txt'}; confusion "
            f"matrix: {report / 'confusion_matrix.png'}") in r.stdout
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["counts"]["videos"] == 5 * n_test
    assert f"{metrics['top1']:.3f}" == printed       # the printed test accuracy is the report's
    for name in ("classification_report.txt", "per_class.csv", "confusion_matrix.csv",
                 "confusion_matrix.png", "predictions.csv"):
        assert (report / name).stat().st_size > 0, name
    assert len((report / "predictions.csv").read_text().splitlines()) == 1 + 5 * n_test

    # The demo model on raw files: three test videos predict as the evaluation of their records
    with open(report / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    picked = rows[:3]
    paths = [str(tmp_path / "data" / "UCF-101" / row["video_id"]) for row in picked]
    p = run_module("trainers.predict", "--workdir", str(run), "--json", *paths)
    assert p.returncode == 0, p.stderr[-3000:]
    for line, row in zip(p.stdout.splitlines(), picked, strict=True):
        top = json.loads(line)["top_k"][0]
        assert top["label"] == row["predicted_label"], (line, row)
        assert abs(top["probability"] - float(row["probability"])) < 1e-5, (line, row)

    # ... and exports to full-integer TFLite that agrees with it on the test split
    e = run_module("trainers.export", "--workdir", str(run), "--format", "tflite",
                   "--quantize", "int8")
    assert e.returncode == 0, e.stderr[-3000:]
    from tfrecords import reader
    from trainers import tflite
    int8 = tflite.TFLiteModel(str(run / "export" / "tflite_int8"))
    ds = reader.make_dataset(str(build_dir), "test", training=False, batch_size=1, num_frames=8,
                             sampling="uniform", resize_shorter=32, crop_size=32, crop="center",
                             with_metadata=True)
    by_id = {row["video_id"]: row["predicted_label"] for row in rows}
    agree = [info["classes"][int(np.argmax(int8(video.numpy())[0]))]
             == by_id[meta["video_id"].numpy()[0].decode()] for video, _, meta in ds]
    assert len(agree) == 5 * n_test and np.mean(agree) >= 0.95, np.mean(agree)


@pytest.mark.slow
@pytest.mark.integration
def test_demo_notrain_builds_and_reruns_over_its_output(tmp_path):
    r = run_module("pipeline.demo", f"--output_dir={tmp_path}", "--notrain",
                   "--train_per_class=4", "--test_per_class=2")
    assert r.returncode == 0, r.stderr
    build_dir = tmp_path / "records" / "ucf101" / "demo"
    assert f"[demo] verified {build_dir}" in r.stdout
    sheet = tmp_path / "show" / "train_contact_sheet.png"
    assert f"[demo] contact sheet of the training records: {sheet}" in r.stdout, r.stdout
    assert sheet.stat().st_size > 10_000
    assert "test accuracy" not in r.stdout and not (tmp_path / "run").exists()
    info = json.loads((build_dir / schema.DATASET_INFO_FILE).read_text())
    # one group of 4 clips per class: nothing to hold out without emptying train
    assert info["splits"]["train"]["per_class"] == {c: 4 for c in synthetic.CLASSES}
    assert info["splits"]["val"]["num_examples"] == 0
    assert info["splits"]["test"]["per_class"] == {c: 2 for c in synthetic.CLASSES}
    assert info["splits"]["train"]["num_frames"] == 20 * 16
    # Running it again replaces its own output instead of refusing.
    again = run_module("pipeline.demo", f"--output_dir={tmp_path}", "--notrain",
                       "--train_per_class=2", "--test_per_class=1")
    assert again.returncode == 0, again.stderr
    info = json.loads((build_dir / schema.DATASET_INFO_FILE).read_text())
    assert info["splits"]["train"]["num_examples"] == 10


def test_demo_rejects_stray_arguments(tmp_path):
    r = run_module("pipeline.demo", f"--output_dir={tmp_path}", "extra")
    assert r.returncode == 2 and "unexpected arguments" in r.stderr


def test_demo_trains_the_demo_config_without_importing_trainers():
    assert demo.DEMO_TRAIN_CONFIG == ROOT / "configs" / "demo_cnn_gru.py"
    assert demo.DEMO_TRAIN_CONFIG.is_file()
    tree = ast.parse(pathlib.Path(demo.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom)}
    assert not any(name.split(".")[0] == "trainers" for name in imported), imported


def test_fresh_workdir_replaces_a_run_and_refuses_anything_else(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text("{}")
    demo._fresh_workdir(str(run))
    assert not run.exists()
    demo._fresh_workdir(str(run))            # nothing there: nothing to do
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit, match="not a training run"):
        demo._fresh_workdir(str(other))
    assert (other / "notes.txt").exists()
