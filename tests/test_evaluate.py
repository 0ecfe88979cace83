"""python -m trainers.evaluate: exact reports from models whose outputs are known by hand.

The "code" model below reads a clip's mean red value r (pixels stored as PNG, so exact) and
outputs softmax_k(-(k - x)^2 / 2) with x = r / 2: a clip painted red = 2c predicts class c,
the nearest classes next. Tests work out x for every view from the pixels they wrote and
compute the expected probabilities with that formula.
"""
from __future__ import annotations

import csv
import json
import os
import pathlib
import re
import shutil
import sys
import types

import numpy as np
import pytest

from conftest import run_module
from configs import common
from pipeline.sources import ucf101
from tfrecords import schema
from trainers import evaluate, report, workdir

CLASSES6 = ("Alpha", "Bravo", "Charlie", "Delta", "Echo", "Foxtrot")


# --------------------------------------------------------------------------
# Hand-made builds, models and runs.
# --------------------------------------------------------------------------
def code_probs(x, num_classes: int) -> np.ndarray:
    """The code model's output for mean red / 2 = x: softmax over k of -(k - x)^2 / 2."""
    k = np.arange(num_classes, dtype=np.float64)
    z = -((k - x) ** 2) / 2
    e = np.exp(z - z.max())
    return e / e.sum()


def code_model(num_classes: int, input_shape: tuple):
    """uint8 frames -> mean over all axes but colour -> Dense on red -> softmax."""
    import keras
    inputs = keras.Input(input_shape, dtype="uint8")
    x = keras.layers.Rescaling(1.0 / 255)(inputs)
    pool = (keras.layers.GlobalAveragePooling3D() if len(input_shape) == 4
            else keras.layers.GlobalAveragePooling2D())
    x = pool(x)
    dense = keras.layers.Dense(num_classes)
    out = keras.layers.Softmax()(dense(x))
    model = keras.Model(inputs, out)
    k = np.arange(num_classes, dtype=np.float32)
    kernel = np.zeros((3, num_classes), np.float32)
    kernel[0] = k * 127.5                # (r / 255) * 127.5 * k = x * k
    dense.set_weights([kernel, -(k ** 2) / 2])
    return model


def red_frames(reds, height=8, width=8, right=None):
    """PNG-able frames: frame t red = reds[t] (left half; right half = right[t] if given)."""
    frames = []
    for t, r in enumerate(reds):
        f = np.zeros((height, width, 3), np.uint8)
        f[..., 0] = r
        if right is not None:
            f[:, width // 2:, 0] = right[t]
        frames.append(f)
    return frames


def write_build(directory, classes, splits: dict, *, dataset="ucf101", modality="video",
                **extra_info):
    """A build of PNG clips: splits = {split: [(video_id, label, frames), ...]}, one shard.
    Without ``class_groups`` in ``extra_info``: a build made before builds recorded them."""
    import tensorflow as tf
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    info = {"dataset": dataset, "modality": modality, "classes": list(classes),
            "num_classes": len(classes), "image_format": "png", "splits": {}, **extra_info}
    for split, videos in splits.items():
        name = schema.shard_name(split, 0, 1)
        with tf.io.TFRecordWriter(str(directory / name)) as w:
            for video_id, label, frames in videos:
                w.write(schema.encode_clip(frames, label=label, video_id=video_id,
                                           label_text=classes[label] if label >= 0 else "",
                                           image_format="png"))
        per_class = {c: sum(1 for _, lab, _ in videos if lab == i) for i, c in enumerate(classes)}
        info["splits"][split] = {"num_examples": len(videos), "shards": [name],
                                 "per_class": per_class}
    schema.write_dataset_info(str(directory), info)
    return directory


def write_run(directory, build_dir, model, *, model_name="cnn_rnn", **data):
    """A training workdir as trainers.train leaves it, with ``model`` as best.keras."""
    from trainers import train
    directory = pathlib.Path(directory)
    (directory / "checkpoints").mkdir(parents=True, exist_ok=True)
    info = schema.read_dataset_info(str(build_dir))
    config = common.experiment(model_name=model_name, model={},
                               data=dict(build_dir=str(build_dir), **data),
                               train=dict(batch_size=4))
    for name, value in (("config.json", train.resolved_config(config)),
                        ("classes.json", info["classes"]), ("dataset_info.json", info)):
        (directory / name).write_text(json.dumps(value, indent=2))
    model.save(str(directory / "checkpoints" / "best.keras"))
    return directory


# Known videos of the 6-class build: (label, code) = the class painted on it.
KNOWN = [(0, 0), (0, 0), (0, 0), (1, 1), (1, 2), (2, 2), (2, 2), (3, 0), (3, 3), (4, 4), (4, 5),
         (5, 5), (5, 1)]


@pytest.fixture(scope="module")
def known(tmp_path_factory):
    """A 6-class build whose test videos are painted with KNOWN codes, and its run."""
    root = tmp_path_factory.mktemp("known")
    test = [(f"v{i:02d}", label, red_frames([2 * code] * 4))
            for i, (label, code) in enumerate(KNOWN)]
    unlabelled = [(f"u{i}", -1, red_frames([2 * code] * 4)) for i, code in enumerate((3, 0))]
    build = write_build(root / "build", CLASSES6, {"test": test, "train": test[:2],
                                                   "unlabelled": unlabelled})
    run = write_run(root / "run", build, code_model(6, (2, 8, 8, 3)), num_frames=2,
                    sampling="uniform", crop_size=8, crop="center")
    return types.SimpleNamespace(root=root, build=build, run=run)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


# --------------------------------------------------------------------------
# Exact reports.
# --------------------------------------------------------------------------
def test_known_model_gives_known_metrics_and_report(known, tmp_path):
    out = tmp_path / "eval"
    result = evaluate.evaluate(workdir.open_run(str(known.run)), split="test",
                               out_dir=str(out), progress=False)
    # Rows true class, columns predicted: the code painted on each video (KNOWN).
    expected_cm = [[3, 0, 0, 0, 0, 0],
                   [0, 1, 1, 0, 0, 0],
                   [0, 0, 2, 0, 0, 0],
                   [1, 0, 0, 1, 0, 0],
                   [0, 0, 0, 0, 1, 1],
                   [0, 1, 0, 0, 0, 1]]
    rows = read_csv(out / "confusion_matrix.csv")
    assert rows[0] == ["true \\ predicted", *CLASSES6]
    assert [r[0] for r in rows[1:]] == list(CLASSES6)
    assert [[int(v) for v in r[1:]] for r in rows[1:]] == expected_cm
    # 9 of 13 on the diagonal; the true class is outside the top 5 only for (5, code 1),
    # whose ranking from x=1 is 1, 0, 2, 3, 4, 5 (ties: lower index first).
    assert result["top1"] == pytest.approx(9 / 13)
    assert result["top5"] == pytest.approx(12 / 13) and result["top5_k"] == 5
    assert result["mean_class_accuracy"] == pytest.approx((1 + .5 + 1 + .5 + .5 + .5) / 6)
    loss = np.mean([-np.log(code_probs(code, 6)[label]) for label, code in KNOWN])
    assert result["loss"] == pytest.approx(loss, rel=1e-5)
    assert result["counts"] == {"videos": 13, "views": 13, "labelled": 13, "unlabelled": 0,
                                "per_class": dict(zip(CLASSES6, (3, 2, 2, 2, 2, 2)))}
    assert json.loads((out / "metrics.json").read_text()) == result
    assert result["split"] == "test" and result["num_test_clips"] == 1
    assert result["checkpoint"] == str(known.run / "checkpoints" / "best.keras")
    # an older ucf101 build (no class_groups), but not of UCF101's classes
    assert "action_groups" not in result

    # precision = diagonal / column sum, recall = diagonal / row sum, F1 their harmonic mean
    per_class = read_csv(out / "per_class.csv")
    assert per_class[0] == ["class", "precision", "recall", "f1", "support", "predicted"]
    assert per_class[1:] == [
        ["Alpha", "0.7500", "1.0000", "0.8571", "3", "4"],
        ["Bravo", "0.5000", "0.5000", "0.5000", "2", "2"],
        ["Charlie", "0.6667", "1.0000", "0.8000", "2", "3"],
        ["Delta", "1.0000", "0.5000", "0.6667", "2", "1"],
        ["Echo", "1.0000", "0.5000", "0.6667", "2", "1"],
        ["Foxtrot", "0.5000", "0.5000", "0.5000", "2", "2"]]
    report = (out / "classification_report.txt").read_text().splitlines()
    assert report[0].split() == ["precision", "recall", "f1-score", "support"]
    assert report[2].split() == ["Alpha", "0.7500", "1.0000", "0.8571", "3"]
    assert report[-3].split() == ["accuracy", f"{9 / 13:.4f}", "13"]
    macro_f1 = (0.8571428 + 0.5 + 0.8 + 0.6666667 + 0.6666667 + 0.5) / 6
    assert report[-2].split() == ["macro", "avg", f"{4.41666667 / 6:.4f}",
                                  f"{4 / 6:.4f}", f"{macro_f1:.4f}", "13"]
    assert result["macro_f1"] == pytest.approx(macro_f1, abs=1e-6)

    preds = read_csv(out / "predictions.csv")
    assert preds[0][:7] == ["index", "video_id", "true_label", "predicted_label", "probability",
                            "true_label_probability", "correct"]
    assert preds[0][7:] == [f"top{r}_{w}" for r in range(1, 6) for w in ("label", "probability")]
    last = preds[-1]                       # v12: Foxtrot painted 1 (Bravo)
    p = code_probs(1, 6)
    assert last[:4] == ["12", "v12", "Foxtrot", "Bravo"]
    assert float(last[4]) == pytest.approx(p[1], abs=2e-6)
    assert float(last[5]) == pytest.approx(p[5], abs=2e-6) and last[6] == "0"
    assert last[7::2] == ["Bravo", "Alpha", "Charlie", "Delta", "Echo"]
    assert [float(v) for v in last[8::2]] == pytest.approx([p[1], p[0], p[2], p[3], p[4]],
                                                           abs=2e-6)
    assert [r[1] for r in preds[1:]] == [f"v{i:02d}" for i in range(13)]
    assert (out / "confusion_matrix.png").stat().st_size > 5000


def test_views_are_averaged_per_video(tmp_path):
    # Frames 8 high, 16 wide: left half red L[t], right half R[t]. 2 clips of 2 frames at
    # offsets 0 and 6 of 8 (evenly spaced), 3 crops of 8x8 at x = 0, 4, 8 (left half, the
    # middle, right half): 6 views, clip-major.
    lefts = {"a": [0, 0, 99, 99, 99, 99, 4, 4], "b": [6, 2, 99, 99, 99, 99, 10, 10]}
    rights = {"a": [8, 8, 99, 99, 99, 99, 10, 10], "b": [2, 2, 99, 99, 99, 99, 0, 0]}
    videos = [(v, i, red_frames(lefts[v], 8, 16, rights[v])) for i, v in enumerate("ab")]
    build = write_build(tmp_path / "build", ("C0", "C1", "C2", "C3", "C4", "C5"),
                        {"test": videos, "train": videos})
    run = write_run(tmp_path / "run", build, code_model(6, (2, 8, 8, 3)), num_frames=2,
                    sampling="stride", crop_size=8, crop="center", num_test_clips=2,
                    num_test_crops=3)
    # x = mean red / 2 of each view: clip 0 uses frames 0-1, clip 1 frames 6-7.
    x = {"a": [0, 2, 4,                    # L=0, (0+8)/2, R=8 -> halved
               2, 3.5, 5],                 # L=4, (4+10)/2, R=10
         "b": [2, 1.5, 1,                  # L=(6+2)/2=4, (4+2)/2=3, R=2
               5, 2.5, 0]}                 # L=10, 5, R=0
    for batch in (1, 3):
        out = tmp_path / f"eval{batch}"
        result = evaluate.evaluate(workdir.open_run(str(run)), split="test", batch_size=batch,
                                   out_dir=str(out), progress=False)
        assert result["views_per_video"] == 6 and result["counts"]["views"] == 12
        rows = read_csv(out / "predictions.csv")[1:]
        for row, v in zip(rows, "ab"):
            mean = np.mean([code_probs(xi, 6) for xi in x[v]], axis=0)
            order = np.argsort(-mean, kind="stable")
            assert row[1] == v and row[3] == f"C{order[0]}"
            assert [float(p) for p in row[8::2]] == pytest.approx(mean[order[:5]], abs=2e-6)
    # One centred view instead: frames 3-4 (offset 3), x = 4..12 -> red 99 -> x 49.5.
    result = evaluate.evaluate(workdir.open_run(str(run)), split="test", num_test_clips=1,
                               num_test_crops=1, out_dir=str(tmp_path / "one"), progress=False)
    assert result["views_per_video"] == 1
    assert read_csv(tmp_path / "one" / "predictions.csv")[1][3] == "C5"


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    """An image build (one-frame records, 8 high x 16 wide: left half red L, right half R)
    and a run of the 2-D code model reading 3 crops of 8x8 at x = 0, 4, 8."""
    root = tmp_path_factory.mktemp("image")
    images = [("i0", 1, red_frames([2], 8, 16, [6])), ("i1", 4, red_frames([10], 8, 16, [6]))]
    build = write_build(root / "build", CLASSES6, {"test": images, "train": images},
                        modality="image")
    return write_run(root / "run", build, code_model(6, (8, 8, 3)), model_name="image_classifier",
                     crop_size=8, num_test_crops=3)


def test_image_models_average_their_crops(image_run, tmp_path):
    result = evaluate.evaluate(workdir.open_run(str(image_run)), split="test",
                               out_dir=str(tmp_path), progress=False)
    assert result["modality"] == "image" and result["views_per_video"] == 3
    assert result["num_test_clips"] == 1 and result["model_family"] == "image_classifier"
    # x = red / 2 of the left crop, the middle one (half each) and the right one
    x = {"i0": [1, 2, 3], "i1": [5, 4, 3]}
    rows = read_csv(tmp_path / "predictions.csv")[1:]
    for row in rows:
        mean = np.mean([code_probs(v, 6) for v in x[row[1]]], axis=0)
        order = np.argsort(-mean, kind="stable")
        assert row[3] == CLASSES6[order[0]]
        assert [float(p) for p in row[8::2]] == pytest.approx(mean[order[:5]], abs=2e-6)
    assert [r[3] for r in rows] == ["Charlie", "Echo"]      # i0 is Bravo, i1 Echo
    assert result["top1"] == pytest.approx(0.5)


def test_collect_videos_matches_views_by_index_not_position():
    # Views arrive shuffled (as from several workers); video 7 has two views.
    views = evaluate.Views(video_index=np.array([7, 3, 7, 3]), video_id=["x", "y", "x", "y"],
                           label=np.array([1, 0, 1, 0]), view=np.array([1, 0, 0, 1]),
                           outputs=np.array([[.2, .8], [.9, .1], [.6, .4], [.5, .5]],
                                            np.float32))
    videos = evaluate.collect_videos(views, 2)
    assert videos.video_index.tolist() == [3, 7] and videos.video_id == ["y", "x"]
    assert videos.probs == pytest.approx(np.array([[.7, .3], [.4, .6]]))
    with pytest.raises(ValueError, match="exactly once"):
        evaluate.collect_videos(evaluate.Views(np.array([1, 1]), ["x", "x"], np.array([0, 0]),
                                               np.array([0, 0]), np.ones((2, 2)) / 2), 2)
    logits = evaluate.collect_videos(evaluate.Views(np.array([0]), ["x"], np.array([0]),
                                                    np.array([0]), np.array([[0.0, np.log(3)]])),
                                     1)
    assert logits.probs == pytest.approx(np.array([[0.25, 0.75]]))
    assert logits.outputs.startswith("logits")


def test_unlabelled_split_gives_predictions_and_counts_only(known, tmp_path):
    out = tmp_path / "eval"
    result = evaluate.evaluate(workdir.open_run(str(known.run)), split="unlabelled",
                               out_dir=str(out), progress=False)
    assert result["counts"]["videos"] == 2 and result["counts"]["unlabelled"] == 2
    assert result["counts"]["labelled"] == 0
    for key in ("top1", "top5", "mean_class_accuracy", "loss"):
        assert key not in result
    assert sorted(os.listdir(out)) == ["metrics.json", "predictions.csv"]
    rows = read_csv(out / "predictions.csv")[1:]
    assert [(r[1], r[2], r[3], r[6]) for r in rows] == [("u0", "", "Delta", ""),
                                                       ("u1", "", "Alpha", "")]


@pytest.mark.slow
@pytest.mark.parametrize("recorded", [True, False], ids=["class_groups", "older_build"])
def test_ucf101_action_groups(tmp_path, monkeypatch, recorded):
    classes = [c for g in ucf101.ACTION_GROUPS.values() for c in g]
    classes = sorted(classes, key=str.lower)
    classes[classes.index("HandstandPushups")] = "HandStandPushups"    # as in the video names
    wrong = {"ApplyEyeMakeup": 1, "Drumming": 2, "Archery": 5}         # painted as another class
    videos = [(c, i, red_frames([2 * (i + wrong.get(c, 0))] * 2, 4, 4))
              for i, c in enumerate(classes)]
    # The build records its groups; one made before builds did gets UCF101's own.
    extra = {"class_groups": ucf101.class_groups(classes)} if recorded else {}
    build = write_build(tmp_path / "build", classes, {"test": videos, "train": videos[:1]},
                        **extra)
    if recorded:
        monkeypatch.setattr(ucf101, "class_groups", lambda names: pytest.fail("not read"))
    run = write_run(tmp_path / "run", build, code_model(101, (1, 4, 4, 3)), num_frames=1,
                    sampling="uniform", crop_size=4, crop="center")
    out = tmp_path / "eval"
    result = evaluate.evaluate(workdir.open_run(str(run)), split="test", out_dir=str(out),
                               progress=False)
    assert result["top1"] == pytest.approx(98 / 101)
    groups = {g: (v["correct"], v["videos"]) for g, v in result["action_groups"].items()}
    assert groups == {"Human-Object Interaction": (19, 20), "Body-Motion Only": (16, 16),
                      "Human-Human Interaction": (5, 5), "Playing Musical Instruments": (9, 10),
                      "Sports": (49, 50)}
    assert result["action_groups"]["Sports"]["accuracy"] == pytest.approx(49 / 50)
    assert (out / "action_groups.png").stat().st_size > 5000
    # 101 classes: a 23.2 x 24.4 inch heatmap (0.2 inch a class), the diagonal dark blue
    from test_metrics import check_confusion_png
    check_confusion_png(out / "confusion_matrix.png", 101)


def test_keypoint_runs_go_to_keypoint_eval(known, tmp_path, monkeypatch):
    import trainers
    run_dir = tmp_path / "kp"
    shutil.copytree(known.run, run_dir)
    info = json.loads((run_dir / "dataset_info.json").read_text())
    info["modality"] = "keypoints"
    (run_dir / "dataset_info.json").write_text(json.dumps(info))
    calls = []

    def evaluate_keypoints(run, model, *, split, out_dir, batch_size, threshold, checkpoint):
        calls.append((run.workdir, model.output_shape, split, out_dir, batch_size, threshold,
                      checkpoint))
        return {"frame_accuracy": 0.5}

    stub = types.ModuleType("trainers.keypoint_eval")
    stub.evaluate_keypoints = evaluate_keypoints
    monkeypatch.setitem(sys.modules, "trainers.keypoint_eval", stub)
    monkeypatch.setattr(trainers, "keypoint_eval", stub, raising=False)
    result = evaluate.evaluate(workdir.open_run(str(run_dir)), split="val", batch_size=3,
                               threshold=0.25, checkpoint="best")
    assert result == {"frame_accuracy": 0.5}
    assert calls == [(str(run_dir), (None, 6), "val", str(run_dir / "eval" / "val"), 3, 0.25,
                      "best")]
    with pytest.raises(workdir.RunError, match="--threshold applies to keypoint models"):
        evaluate.evaluate(workdir.open_run(str(known.run)), threshold=0.5)


# --------------------------------------------------------------------------
# Mistakes: exit 2, one line, no traceback.
# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mistakes(known):
    """Builds and checkpoints that disagree with the known run in one way each."""
    root = known.root / "mistakes"
    write_build(root / "three", CLASSES6[:3], {"test": [("x", 0, red_frames([0] * 2))]})
    write_build(root / "renamed", CLASSES6[:5] + ("Golf",),
                {"test": [("x", 0, red_frames([0] * 2))]})
    write_build(root / "images", CLASSES6, {"test": [("x", 0, red_frames([0]))]},
                modality="image")
    code_model(4, (2, 8, 8, 3)).save(str(root / "four_classes.keras"))
    code_model(6, (3, 8, 8, 3)).save(str(root / "three_frames.keras"))
    (root / "empty").mkdir()
    return root


MISTAKES = [
    (["--workdir", "{root}/empty"], "is not a training workdir: config.json"),
    (["--workdir", "{root}/nowhere"], "workdir .* does not exist"),
    (["--workdir", "{run}", "--split", "val"], "split 'val' is not in .*: it has test, train, "
                                               "unlabelled"),
    (["--workdir", "{run}", "--build_dir", "{root}/three"], "trained on 6 classes but .* has 3"),
    (["--workdir", "{run}", "--build_dir", "{root}/renamed"], "under other names .* 'Foxtrot' "
                                                              "vs 'Golf'"),
    (["--workdir", "{run}", "--build_dir", "{root}/images"], "trained on video records but .* "
                                                             "holds image records"),
    (["--workdir", "{run}", "--build_dir", "{root}/nowhere"], "no build at"),
    (["--workdir", "{run}", "--checkpoint", "{root}/four_classes.keras"],
     "outputs 4 classes but .* has 6"),
    (["--workdir", "{run}", "--checkpoint", "{root}/three_frames.keras"],
     r"takes input \(3, 8, 8, 3\) but the run's config reads frames of shape \(2, 8, 8, 3\)"),
    (["--workdir", "{run}", "--checkpoint", "last"], "no checkpoint at"),
    (["--workdir", "{run}", "--num_test_clips", "2"], "'uniform'.*--num_test_clips 2 needs "
                                                      "stride or segments"),
    (["--workdir", "{run}", "--num_test_crops", "2"], "--num_test_crops must be 1 or 3"),
    (["--workdir", "{run}", "--batch_size", "0"], "--batch_size must be >= 1"),
    (["--split", "test"], "--workdir is required"),
    (["--workdir", "{run}", "extra"], "unexpected arguments"),
]


@pytest.mark.parametrize("args,message", MISTAKES, ids=[m[1][:30] for m in MISTAKES])
def test_mistakes_exit_2_with_one_line(known, mistakes, capsys, args, message):
    argv = [a.format(root=mistakes, run=known.run) for a in args]
    assert evaluate.evaluate_main(["trainers.evaluate", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("error: ") and "Traceback" not in "\n".join(err)
    assert re.search(message, err[0]), err[0]
    assert not (known.run / "eval").exists()


# --------------------------------------------------------------------------
# The entry point on a trained run.
# --------------------------------------------------------------------------
def test_reader_matches_the_trainers_validation_input(tiny_video_run):
    from trainers import data
    run = workdir.open_run(str(tiny_video_run))
    plan = evaluate.plan_evaluation(run, split="test", batch_size=run.config.train.batch_size)
    ours = [(v.numpy(), y.numpy()) for v, y, _ in evaluate.make_eval_dataset(plan)]
    theirs = [(v.numpy(), y.numpy()) for v, y in data.make_input(plan.config, plan.info,
                                                                 training=False)]
    assert len(ours) == len(theirs) == 3
    for (v1, y1), (v2, y2) in zip(ours, theirs):
        np.testing.assert_array_equal(v1, v2)
        np.testing.assert_array_equal(y1, y2)


def test_the_default_split_is_test_with_labels_else_val():
    def info(**splits):
        return {"splits": {name: {"num_examples": n, "unlabelled": u}
                           for name, (n, u) in splits.items()}}
    assert evaluate.default_split(info(train=(8, 0), val=(2, 0), test=(3, 0))) == (
        "test", "the build's test split")
    assert evaluate.default_split(info(train=(8, 0), val=(2, 0))) == (
        "val", "the build's validation split (it has no test split)")
    assert evaluate.default_split(info(train=(8, 0), val=(2, 0), test=(3, 3))) == (
        "val", "the build's validation split (its test split has no labels)")
    assert evaluate.default_split(info(train=(8, 0), test=(3, 3)))[0] == "test"
    assert evaluate.split_line("val", "why") == ("[evaluate] evaluating split 'val': why "
                                                 "(--split chooses another)")


@pytest.mark.integration
def test_command_line_on_a_trained_run(tiny_video_run, tmp_path):
    """From another folder than the one it trained in, without --split: the run's build is
    found where the workdir recorded it, its test split is chosen and said first, and the
    numbers are the trainer's own on that split."""
    work = tmp_path / "run"
    shutil.copytree(tiny_video_run, work)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = run_module("trainers.evaluate", "--workdir=../run", "--batch_size=3", cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == ("[evaluate] evaluating split 'test': the build's test "
                                        "split (--split chooses another)")
    assert "[evaluate] 10/10 videos (100.0%)" in r.stderr
    out, shown = work / "eval" / "test", pathlib.PurePath("..", "run", "eval", "test")
    assert f"[evaluate] plots: {shown / 'confusion_matrix.png'}" in r.stdout
    assert str(shown / "classification_report.txt") in r.stdout
    for name in report.REPORT_FILES:
        assert (out / name).stat().st_size > 0, name
    result = json.loads((out / "metrics.json").read_text())
    trained = json.loads((work / "result.json").read_text())
    # The trainer's final evaluation and its validation read the same 10 test clips with the
    # same reader: the same accuracy to the last digit, the same loss.
    with open(work / "history.csv") as f:
        logged = list(csv.DictReader(f))[-1]
    for accuracy in (trained["accuracy"], float(logged["val_accuracy"])):
        assert np.float32(accuracy) == np.float32(result["top1"])
    for loss in (trained["loss"], float(logged["val_loss"])):
        assert loss == pytest.approx(result["loss"], rel=1e-5)
    assert result["counts"]["videos"] == 10 and result["model_family"] == "cnn_rnn"
    assert f"top-1 {result['top1']:.4f}" in r.stdout

    h = run_module("trainers.evaluate", "--help")
    assert h.returncode == 0 and "--num_test_crops" in h.stdout and "--build_dir" in h.stdout
    assert "--[no]verbose:" in h.stdout
