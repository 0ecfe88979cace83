"""Keypoint evaluation: hand-set models on hand-written records, and a trained model on real
OpenPose output.

The hand-written build has one point with two coordinates (x, y) per frame at 4 fps (video
"a", 10 frames) and 2 fps (video "b", 3 frames: shorter than the 4-frame window, so padded);
the run reads windows of 4 frames every 2 frames. The hand-set models compute their output
from x alone, so every probability, label and score below is worked out by hand.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import pathlib

import keras
import numpy as np
import pytest

from conftest import run_module
from test_reader import write_build
from tfrecords import schema
from trainers import keypoint_eval, timeline, train, workdir
from trainers.workdir import RunError

X_A = [0, .25, 1, 0, 1, .75, 1, .25, .75, 0]
LABELS_A = [0, 1, 1, 0, -1, 1, 0, 0, -1, -1]
X_B = [1, 1, 0]
LABELS_B = [1, 0, 0]


def _sequence(xs, labels, fps, video_id) -> bytes:
    values = np.zeros((len(xs), 1, 1, 2), np.float32)
    values[:, 0, 0, 0] = xs
    values[:, 0, 0, 1] = 0.5
    return schema.encode_keypoints(values, np.ones((len(xs), 1, 1), np.float32), label=1,
                                   video_id=video_id, fps=fps, frame_labels=labels)


def _build(root, classes) -> pathlib.Path:
    records = [_sequence(X_A, LABELS_A, 4.0, "a"), _sequence(X_B, LABELS_B, 2.0, "b")]
    return pathlib.Path(write_build(root, {"train": [records], "test": [records]},
                                    classes=classes, modality="keypoints",
                                    extra={"keypoints": {"max_people": 1, "coords": "xy"}}))


def _run(root: pathlib.Path, build, **data) -> workdir.Run:
    """A workdir as training leaves it (config, classes, build), without checkpoints."""
    from configs import common
    config = common.experiment(
        model_name="keypoint_rnn", model={},
        data=dict(build_dir=str(build), window=4, window_shift=2, target="frames", **data),
        train={})
    info = schema.read_dataset_info(str(build))
    root.mkdir(parents=True, exist_ok=True)
    for name, value in (("config.json", train.resolved_config(config)),
                        ("classes.json", info["classes"]), ("dataset_info.json", info)):
        (root / name).write_text(json.dumps(value))
    return workdir.open_run(str(root))


@pytest.fixture(scope="module")
def binary_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("kp_eval_binary")
    return _run(root / "run", _build(root / "build", ("none", "kick")))


@pytest.fixture(scope="module")
def multiclass_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("kp_eval_multi")
    return _run(root / "run", _build(root / "build", ("none", "kick", "run")))


def _x_model(units: int, kernel_x: list[float], bias: list[float], window: int = 4,
             features: int = 2) -> keras.Model:
    """A per-frame Dense of x only (y weighs 0): sigmoid for one unit, else softmax."""
    inputs = keras.Input((window, features))
    dense = keras.layers.Dense(units, activation="sigmoid" if units == 1 else "softmax")
    model = keras.Model(inputs, dense(inputs))
    kernel = np.zeros((features, units), np.float32)
    kernel[0] = kernel_x
    dense.set_weights([kernel, np.asarray(bias, np.float32)])
    return model


class _WindowPosition(keras.layers.Layer):
    """Outputs k / (W - 1) at position k of every window, whatever the input."""

    def call(self, x):
        w = keras.ops.shape(x)[1]
        position = keras.ops.arange(w, dtype="float32") / keras.ops.cast(w - 1, "float32")
        return keras.ops.zeros_like(x[..., :1]) + position[None, :, None]


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def _load(out_dir, stem):
    """(timeline JSON, npz arrays) of one video."""
    segs = json.loads((out_dir / "timelines" / f"{stem}.json").read_text())
    with np.load(out_dir / "timelines" / f"{stem}.npz") as npz:
        return segs, {k: npz[k] for k in npz.files}


# --------------------------------------------------------------------------
# Hand-set models.
# --------------------------------------------------------------------------
def test_sigmoid_of_x_gives_the_hand_computed_scores(binary_run, tmp_path, capsys):
    # p = sigmoid(4x - 2): x 0, .25, .75, 1 → sigmoid(-2), sigmoid(-1), sigmoid(1), sigmoid(2);
    # predicted positive exactly where x >= 0.5.
    model = _x_model(1, [4.0], [-2.0])
    out = tmp_path / "eval"
    metrics = keypoint_eval.evaluate_keypoints(binary_run, model, split="test", out_dir=str(out),
                                               batch_size=3, checkpoint="best")
    err = capsys.readouterr().err
    assert "[evaluate] 2/2 sequences (100.0%)" in err
    assert "[timelines] 2/2 sequences (100.0%)" in err
    # frames (truth, pred): a: (0,0) (1,0) (1,1) (0,0) (1,1) (0,1) (0,0), b: (1,1) (0,1) (0,0)
    # → tp 3, fp 2, fn 1, tn 4; the loss: -log p(truth) of the same 10 frames
    labelled = [(x, y) for x, y in zip(X_A + X_B, LABELS_A + LABELS_B) if y >= 0]
    loss = np.mean([-math.log(_sigmoid(4 * x - 2) if y else 1 - _sigmoid(4 * x - 2))
                    for x, y in labelled])
    assert metrics["frame"] == {"count": 10, "confusion": [[4, 2], [1, 3]], "accuracy": 0.7,
                                "precision": 0.6, "recall": 0.75, "f1": pytest.approx(2 / 3),
                                "loss": pytest.approx(loss, rel=1e-6)}
    assert (metrics["accuracy"], metrics["loss"]) == (0.7, metrics["frame"]["loss"])
    # seconds (truth = majority, ties to the lower label): a.0 [0,1,1,0] → 0, pred mean
    # (.119,.269,.881,.119) → 0; a.1 [-,1,0,0] → 0, pred mean .69 → 1; a.2 has no labels;
    # b.0 [1,0] → 0, pred .881 → 1; b.1 [0] → 0, pred .119 → 0
    assert metrics["second"] == {"count": 4, "confusion": [[2, 2], [0, 0]], "accuracy": 0.5,
                                 "precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert metrics["counts"] == {"videos": 2, "frames": 13, "labelled_frames": 10,
                                 "predicted_frames": 13, "seconds": 5, "labelled_seconds": 4}
    assert (metrics["split"], metrics["checkpoint"], metrics["threshold"]) == ("test", "best",
                                                                               0.5)
    assert (metrics["output"], metrics["positive_class"]) == ("binary", "kick")
    assert json.loads((out / "metrics.json").read_text()) == metrics
    lines = keypoint_eval.summary(metrics, str(out)).splitlines()
    assert lines[1] == ("[evaluate] frames: accuracy 0.7000 · precision 0.6000 · recall 0.7500 "
                        f"· F1 0.6667 · loss {loss:.4f} ('kick' at threshold 0.5; 10 frames)")
    assert lines[2].startswith("[evaluate] seconds: accuracy 0.5000 · precision 0.0000")

    s = _sigmoid
    segs, data = _load(out, "a")
    np.testing.assert_allclose(data["frame_probs"], [s(4 * x - 2) for x in X_A], rtol=1e-6)
    np.testing.assert_array_equal(data["frame_labels"], LABELS_A)
    assert [(g["start_s"], g["end_s"], g["label"]) for g in segs] == [
        (0.0, 1.0, "none"), (1.0, 2.0, "kick"), (2.0, 2.5, "none")]
    np.testing.assert_allclose([g["score"] for g in segs], [
        1 - (s(-2) + s(-1) + s(2) + s(-2)) / 4, (s(2) + s(1) + s(2) + s(-1)) / 4,
        1 - (s(1) + s(-2)) / 2], rtol=1e-6)
    segs, data = _load(out, "b")
    assert float(data["fps"]) == 2.0
    assert [(g["start_s"], g["end_s"], g["label"]) for g in segs] == [
        (0.0, 1.0, "kick"), (1.0, 1.5, "none")]
    np.testing.assert_allclose([g["score"] for g in segs], [s(2), 1 - s(-2)], rtol=1e-6)
    for stem in ("a", "b"):
        assert (out / "timelines" / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_overlapping_windows_are_averaged_per_frame(binary_run, tmp_path):
    # Windows of 4 every 2 frames: video a starts 0, 2, 4, 6; frame 3 is position 3 of window 0
    # (1) and position 1 of window 2 (1/3) → 2/3. Video b: one padded window.
    inputs = keras.Input((4, 2))
    model = keras.Model(inputs, _WindowPosition()(inputs))
    metrics = keypoint_eval.evaluate_keypoints(binary_run, model, split="test",
                                               out_dir=str(tmp_path), batch_size=2,
                                               threshold=0.6)
    _, a = _load(tmp_path, "a")
    third = 1 / 3
    np.testing.assert_allclose(a["frame_probs"], [0, third, third, 2 * third, third, 2 * third,
                                                  third, 2 * third, 2 * third, 1], atol=1e-6)
    _, b = _load(tmp_path, "b")
    np.testing.assert_allclose(b["frame_probs"], [0, third, 2 * third], atol=1e-6)
    # the threshold applies: frames of a predicted positive where p >= 0.6
    np.testing.assert_array_equal(a["frame_pred"], [0, 0, 0, 1, 0, 1, 0, 1, 1, 1])
    assert metrics["threshold"] == 0.6 and float(a["threshold"]) == 0.6


def test_multiclass_softmax_uses_argmax_and_macro_scores(multiclass_run):
    # logits [0, 8x - 4, 4 - 8x]: class 1 where x > .5, class 2 where x < .5, never class 0
    model = _x_model(3, [0.0, 8.0, -8.0], [0.0, -4.0, 4.0])
    metrics = keypoint_eval.evaluate_keypoints(multiclass_run, model, split="test",
                                               batch_size=8)
    out = pathlib.Path(multiclass_run.workdir) / "eval" / "test"        # the default
    assert json.loads((out / "metrics.json").read_text()) == metrics
    # truth 0 → pred 1 twice (a6, b1), 2 four times; truth 1 → pred 1 three times, 2 once.
    # class 0: p 0 r 0; class 1: p 3/5 r 3/4 f 2/3; class 2: p 0 r 0 → macro over 3 classes
    frame = metrics["frame"]
    assert frame["confusion"] == [[0, 2, 4], [0, 3, 1], [0, 0, 0]]
    assert (frame["count"], frame["accuracy"]) == (10, 0.3)
    assert frame["precision"] == pytest.approx(0.2)
    assert frame["recall"] == pytest.approx(0.25)
    assert frame["f1"] == pytest.approx(2 / 9)
    assert (metrics["output"], metrics["threshold"], metrics["averaging"]) == (
        "multiclass", None, "macro")
    segs, a = _load(out, "a")
    assert a["frame_probs"].shape == (10, 3) and a["second_probs"].shape == (3, 3)
    np.testing.assert_array_equal(a["frame_pred"], [2, 2, 1, 2, 1, 1, 1, 2, 1, 2])
    # softmax rows: x 0 → [.018, .000, .982], .25 → [.117, .016, .867], .75 → [.117, .867,
    # .016], 1 → [.018, .982, .000]; second means: 0 → class 2 .708, 1 → class 1 .712,
    # 2 (x .75, 0) → class 2 .499 over class 1 .434
    assert [(g["start_s"], g["end_s"], g["label"]) for g in segs] == [
        (0.0, 1.0, "run"), (1.0, 2.0, "kick"), (2.0, 2.5, "run")]
    assert (out / "timelines" / "a.png").is_file()


def test_the_trainers_metrics_count_each_labelled_frame_once(binary_run, multiclass_run,
                                                             tmp_path):
    """The trainer's weighted metrics on its validation input (windows of 4 every 2 frames:
    frames twice in windows, padding after video b, unlabelled frames) give the evaluation's
    frame accuracy and loss: these models' output for a frame is the same in every window."""
    import ml_collections
    from trainers import data, train
    for run, model in ((binary_run, _x_model(1, [4.0], [-2.0])),
                       (multiclass_run, _x_model(3, [0.0, 8.0, -8.0], [0.0, -4.0, 4.0]))):
        config = ml_collections.ConfigDict(run.config.to_dict())
        config.data.eval_split = "test"
        model.compile(**train.compile_settings(config, run.info))
        logs = train.name_losses(model.evaluate(data.make_input(config, run.info,
                                                                training=False),
                                                verbose=0, return_dict=True), ())
        metrics = keypoint_eval.evaluate_keypoints(run, model, split="test", batch_size=3,
                                                   out_dir=str(tmp_path / run.classes[-1]))
        assert np.float32(logs["accuracy"]) == np.float32(metrics["accuracy"])
        assert logs["loss"] == pytest.approx(metrics["loss"], rel=1e-6)
        assert metrics["frame"]["count"] == 10


def test_mistakes_raise_run_errors(binary_run, multiclass_run, tmp_path):
    good = _x_model(1, [4.0], [-2.0])
    evaluate = keypoint_eval.evaluate_keypoints
    with pytest.raises(RunError, match="split 'val' is not in .*: it has test, train"):
        evaluate(binary_run, good, split="val", out_dir=str(tmp_path))
    with pytest.raises(RunError, match=r"inputs of shape \(5, 2\) .* give \(4, 2\)"):
        evaluate(binary_run, _x_model(1, [1.0], [0.0], window=5), out_dir=str(tmp_path))
    with pytest.raises(RunError, match=r"inputs of shape \(4, 3\)"):
        evaluate(binary_run, _x_model(1, [1.0], [0.0], features=3), out_dir=str(tmp_path))
    with pytest.raises(RunError, match="outputs 3 value.* expects 1"):
        evaluate(binary_run, _x_model(3, [0, 0, 0], [0, 0, 0]), out_dir=str(tmp_path))
    with pytest.raises(RunError, match=r"threshold must be in \[0, 1\]"):
        evaluate(binary_run, good, out_dir=str(tmp_path), threshold=1.5)
    with pytest.raises(RunError, match="a threshold applies to binary models"):
        evaluate(multiclass_run, _x_model(3, [0, 0, 0], [0, 0, 0]), out_dir=str(tmp_path),
                 threshold=0.5)
    with pytest.raises(RunError, match="has classes none, kick, run but the run trained on "
                                       "none, kick"):
        evaluate(dataclasses.replace(binary_run, config=multiclass_run.config), good,
                 out_dir=str(tmp_path))
    video_run = workdir.Run(workdir=str(tmp_path), config=binary_run.config,
                            classes=binary_run.classes, info={**binary_run.info,
                                                              "modality": "video"})
    with pytest.raises(RunError, match="trained on video records; keypoint evaluation"):
        evaluate(video_run, good, out_dir=str(tmp_path))
    assert not (tmp_path / "metrics.json").exists()


def test_a_damaged_shard_is_refused_in_one_line_before_reading(tmp_path):
    """The split's shards are checked first (framing and CRCs); a damaged one is named with
    its byte offset, and nothing is written."""
    build = _build(tmp_path / "build", ("none", "kick"))
    shard = build / schema.shard_name("test", 0, 1)
    data = bytearray(shard.read_bytes())
    second = len(schema.frame_record(_sequence(X_A, LABELS_A, 4.0, "a")))
    data[second + 20] ^= 0xFF                       # inside the second record's bytes
    shard.write_bytes(bytes(data))
    run = _run(tmp_path / "run", build)
    out = tmp_path / "eval"
    with pytest.raises(RunError) as error:
        keypoint_eval.evaluate_keypoints(run, _x_model(1, [4.0], [-2.0]), out_dir=str(out))
    assert str(error.value) == (
        f"damaged shard {shard} at byte {second} (record 1): data CRC mismatch (the record's "
        "bytes are damaged); the evaluation did not start. Check the whole build with: "
        f"python -m pipeline.verify {build}")
    assert not out.exists()


# --------------------------------------------------------------------------
# A trained model on real OpenPose output.
# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def soccer_keypoints(tmp_path_factory, real_dir) -> pathlib.Path:
    """The 20 soccer kicks as keypoint records; the kick is labelled from 1.0 s to 2.0 s."""
    root = tmp_path_factory.mktemp("kp_eval_soccer")
    segments = root / "segments.csv"
    segments.write_text("video,start_s,end_s,label\n" + "".join(
        f"Kick_{k},1.0,2.0,kick\n" for k in range(1, 21)))
    r = run_module("pipeline.build", "--dataset=openpose",
                   f"--data_dir={real_dir / 'soccer' / 'openpose'}", f"--output_dir={root}",
                   "--config_name=t", "--direct_num_workers=1", f"--segments_csv={segments}",
                   "--keypoints=upper_body", "--coords=xy",
                   f"--video_dir={real_dir / 'soccer' / 'videos'}", "--test_fraction=0.3")
    assert r.returncode == 0, r.stderr
    return root / "openpose" / "t"


def _records(build, split):
    """video_id → (fps, frame labels, keypoints [T, F]) read straight from the records."""
    import tensorflow as tf
    info = schema.read_dataset_info(str(build))
    out = {}
    for shard in info["splits"][split]["shards"]:
        for raw in tf.data.TFRecordDataset(str(build / shard)):
            rec = schema.parse_keypoints(raw)
            out[rec["video_id"].numpy().decode()] = (float(rec["fps"]),
                                                      rec["frame_labels"].numpy(),
                                                      rec["values"].numpy())
    return out


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.real
def test_trained_ensemble_on_real_openpose(soccer_keypoints, tmp_path):
    from configs import common
    config = common.experiment(
        model_name="keypoint_rnn",
        model=dict(variant="ensemble", units=(4,), dropouts=(0.0,), dense_units=(4,),
                   recurrent_dropout=0.0),
        # 90-frame windows: the 88- and 89-frame sequences end in padding
        data=dict(build_dir=str(soccer_keypoints), window=90, target="frames"),
        train=dict(epochs=1, steps_per_epoch=2, batch_size=2))
    try:
        trained = train.train(config, str(tmp_path))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    run = workdir.open_run(str(tmp_path))
    model = run.load_model("best")
    metrics = keypoint_eval.evaluate_keypoints(run, model, split="test", batch_size=4,
                                               checkpoint="best")
    out = tmp_path / "eval" / "test"
    assert json.loads((out / "metrics.json").read_text()) == metrics
    # The trainer validated on the same split: over the labelled frames, padding left out.
    with open(tmp_path / "history.csv") as f:
        logged = next(csv.DictReader(f))
    for trainer in (trained["accuracy"], float(logged["val_accuracy"])):
        assert np.float32(trainer) == np.float32(metrics["accuracy"])
    for trainer in (trained["loss"], float(logged["val_loss"])):
        assert trainer == pytest.approx(metrics["loss"], rel=1e-5)
    assert (metrics["checkpoint"], metrics["output"], metrics["threshold"]) == ("best",
                                                                                "binary", 0.5)
    records = _records(soccer_keypoints, "test")
    assert metrics["counts"]["videos"] == len(records) == 5
    assert metrics["counts"]["frames"] == sum(len(r[1]) for r in records.values())

    truth, pred, second_truth, second_pred = [], [], [], []
    for video_id, (fps, labels, _) in records.items():
        segs, data = _load(out, video_id)
        n = len(labels)
        assert data["frame_probs"].shape == (n,) and np.isfinite(data["frame_probs"]).all()
        assert ((data["frame_probs"] >= 0) & (data["frame_probs"] <= 1)).all()
        np.testing.assert_array_equal(data["frame_labels"], labels)
        # the plotted truth comes from the frame labels: the kick is frames 30..59
        # (1.0 <= i / 29.97 < 2.0), everything else is background
        assert labels.tolist() == [0] * 30 + [1] * 30 + [0] * (n - 60)
        np.testing.assert_allclose(data["true_segments"], [[0, 30 / fps, 0],
                                                           [30 / fps, 60 / fps, 1],
                                                           [60 / fps, n / fps, 0]])
        # the timeline is the per-second means of the saved frame probabilities: seconds are
        # frames 0-29, 30-59 and 60-end at 29.97 fps, the last one ending at min(3, n / fps)
        means = [data["frame_probs"][a:b].mean() for a, b in ((0, 30), (30, 60), (60, n))]
        np.testing.assert_allclose(data["second_probs"], means, rtol=1e-6)
        np.testing.assert_allclose(data["second_end_s"], [1, 2, min(3, n / fps)])
        labels_s = [int(m >= 0.5) for m in means]
        assert [g["label"] for g in segs] == [
            ("none", "kick")[lab] for i, lab in enumerate(labels_s)
            if i == 0 or lab != labels_s[i - 1]]
        assert segs[0]["start_s"] == 0.0 and segs[-1]["end_s"] == pytest.approx(min(3, n / fps))
        assert timeline.timeline(data["frame_probs"], fps, 0.5) == [
            {**g, "label": ("none", "kick").index(g["label"])} for g in segs]
        assert (out / "timelines" / f"{video_id}.png").is_file()
        truth.append(labels == 1)
        pred.append(data["frame_probs"] >= 0.5)
        second_truth.append(np.array([0, 1, 0], bool))
        second_pred.append(np.array(labels_s, bool))
    # metrics recomputed from the saved probabilities
    for level, t, p in (("frame", np.concatenate(truth), np.concatenate(pred)),
                        ("second", np.concatenate(second_truth), np.concatenate(second_pred))):
        tp, fp, fn = int((p & t).sum()), int((p & ~t).sum()), int((~p & t).sum())
        assert metrics[level]["count"] == len(t)
        assert metrics[level]["accuracy"] == pytest.approx(np.mean(p == t))
        assert metrics[level]["precision"] == pytest.approx(tp / (tp + fp) if tp + fp else 0)
        assert metrics[level]["recall"] == pytest.approx(tp / (tp + fn))

    # The ensemble is one model: its frame probabilities are 0.8 x those of its LSTM member
    # plus 0.2 x those of its BiLSTM member, each evaluated alone the same way.
    members = []
    for i in (0, 1):
        member_out = tmp_path / f"member_{i}"
        keypoint_eval.evaluate_keypoints(run, model.get_layer(f"member_{i}"), split="test",
                                         out_dir=str(member_out), batch_size=4)
        members.append({v: _load(member_out, v)[1]["frame_probs"] for v in records})
    for video_id in records:
        np.testing.assert_allclose(_load(out, video_id)[1]["frame_probs"],
                                   0.8 * members[0][video_id] + 0.2 * members[1][video_id],
                                   atol=1e-6)


def test_file_names_of_video_ids_are_safe_and_unique():
    assert keypoint_eval.file_stems(["a", "a", "", "x/y z.mp4", "..", "a_2"]) == [
        "a", "a_2", "video_2", "x_y_z.mp4", "video_4", "a_2_2"]
