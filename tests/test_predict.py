"""python -m trainers.predict: raw inputs go through the build's code and the reader's
evaluation path, so a prediction on a raw file equals the one on its record."""
from __future__ import annotations

import json
import os
import pathlib
import re
import shutil

import cv2
import ml_collections
import numpy as np
import pytest

from conftest import run_module
from pipeline import synthetic
from trainers import overlay, predict

SYNTH_FPS = 12          # synthetic.write_ucf101_layout's frame rate; tiny videos have 12 frames


# --------------------------------------------------------------------------
# Helpers.
# --------------------------------------------------------------------------
def _build(dataset: str, data_dir, out, *extra) -> pathlib.Path:
    """A build run in this process (one in-memory Beam worker): out/dataset/t."""
    from pipeline import build
    rc = build.build_main(["build", f"--dataset={dataset}", f"--data_dir={data_dir}",
                           f"--output_dir={out}", "--config_name=t", "--noprogress",
                           "--direct_running_mode=in_memory", "--direct_num_workers=1", *extra])
    assert rc == 0
    return pathlib.Path(out) / dataset / "t"


def _workdir(config, workdir) -> pathlib.Path:
    """A training workdir laid out by the trainer's own helpers, its checkpoints the freshly
    built model: predicting needs the layout and a model, not a fit (fitting even the
    smallest image_classifier traces for most of a minute on two CPU cores). Freshly
    initialised backbones give the same output for every input (activations saturate), so
    the BatchNormalization statistics are first set from one batch of the build, as a
    data-dependent initialisation: outputs then differ from input to input."""
    import keras
    import tensorflow as tf
    from trainers import data, train
    workdir = pathlib.Path(workdir)
    keras.utils.set_random_seed(0)          # the same weights on every run
    info = data.load_build(config)
    model, _ = train.build_model(config, info, tf.distribute.get_strategy())
    norms = [layer for layer in model._flatten_layers()
             if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in norms:
        layer.momentum = 0.0
    model(next(iter(data.make_input(config, info, training=False)))[0], training=True)
    for layer in norms:
        layer.momentum = 0.99
    (workdir / "checkpoints").mkdir(parents=True)
    model.save(workdir / "checkpoints" / "best.keras")
    shutil.copy(workdir / "checkpoints" / "best.keras", workdir / "checkpoints" / "last.keras")
    for name, content in (("config.json", train.resolved_config(config)),
                          ("classes.json", info["classes"]), ("dataset_info.json", info)):
        (workdir / name).write_text(json.dumps(content, indent=2, default=str))
    return workdir


def _distinct(probabilities) -> None:
    """The outputs differ between inputs by far more than the 1e-6 the tests compare to."""
    spread = np.ptp(np.asarray(list(probabilities)), axis=0).max()
    assert spread > 1e-4, spread


def _with_build(config, build_dir, split):
    """A copy of a run's config reading ``split`` of another build."""
    cfg = ml_collections.ConfigDict(config.to_dict())
    cfg.data.build_dir = str(build_dir)
    cfg.data.eval_split = cfg.data.train_split = split
    return cfg


def _records(build_dir, info, split) -> list[bytes]:
    """The serialised records of a split, in the order the evaluation input reads them."""
    import tensorflow as tf
    return [raw.numpy() for shard in info["splits"][split]["shards"]
            for raw in tf.data.TFRecordDataset(f"{build_dir}/{shard}")]


def _record_probabilities(model, config, info) -> dict[str, np.ndarray]:
    """video_id -> probabilities of every record of config.data.eval_split, read by the
    trainer's own evaluation input (``trainers.data.make_input``), views averaged."""
    from tfrecords import schema
    from trainers import data
    d = config.data
    outputs = np.concatenate([model(x, training=False).numpy()
                              for x, _ in data.make_input(config, info, training=False)])
    ids = [schema.parse_clip(r)["video_id"].numpy().decode()
           for r in _records(d.build_dir, info, d.eval_split)]
    views = 1 if info["modality"] == "image" else d.num_test_clips * d.num_test_crops
    outputs = outputs.reshape(len(ids), views, -1).mean(axis=1)
    return dict(zip(ids, outputs))


def _write_video(path, frames, fps=SYNTH_FPS):
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    for frame in frames:
        writer.write(frame)
    writer.release()


def _read_frames(path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


# --------------------------------------------------------------------------
# Video model (the shared tiny run).
# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_data(tiny_video_build) -> pathlib.Path:
    """The raw UCF101-layout videos the tiny build was made from."""
    return tiny_video_build.parents[2] / "data" / "UCF-101"


@pytest.fixture(scope="module")
def video_predictor(tiny_video_run) -> predict.Predictor:
    return predict.Predictor.from_workdir(str(tiny_video_run))


def test_raw_videos_predict_as_their_records(video_predictor, tiny_video_build, tiny_data):
    from tfrecords import schema
    p = video_predictor
    assert p.modality == "video" and p.classes == tuple(synthetic.CLASSES)
    expected = _record_probabilities(p.model, p.run.config, p.run.info)
    assert len(expected) == 10                       # 5 classes x 2 test videos
    _distinct(expected.values())
    built = {schema.parse_clip(r)["video_id"].numpy().decode(): r
             for r in _records(tiny_video_build, p.run.info, "test")}
    for video_id, probs in expected.items():
        path = str(tiny_data / video_id)
        result = p.predict(path, top_k=3)
        np.testing.assert_allclose(result["probabilities"], probs, rtol=0, atol=1e-6)
        assert [t["index"] for t in result["top_k"]] == list(np.argsort(-probs)[:3])
        assert result["top_k"][0]["label"] == synthetic.CLASSES[int(np.argmax(probs))]
        assert result["input"] == path and result["source_frames"] == 12
        assert result["sampled_frames"] == [0, 2, 3, 5, 6, 8, 9, 11]   # uniform 8 of 12
        # the clip is the build's, byte for byte
        kind, record = p.record_of(path)
        mine, theirs = schema.parse_clip(record), schema.parse_clip(built[video_id])
        assert kind == "video"
        assert mine["frames"].numpy().tolist() == theirs["frames"].numpy().tolist()


@pytest.mark.integration
def test_each_window_predicts_as_a_clip_of_its_frames(video_predictor, tiny_data, tmp_path):
    path = tiny_data / "MoveUp" / "v_MoveUp_g02_c01.avi"
    p = video_predictor
    whole = p.predict(str(path))
    result = p.predict_windows(str(path), window=0.5, hop=0.25)
    assert [(w["first_frame"], w["last_frame"], w["start"], w["end"])
            for w in result["windows"]] == [(0, 5, 0.0, 0.5), (3, 8, 0.25, 0.75),
                                            (6, 11, 0.5, 1.0)]
    frames = _read_frames(path)
    for w in result["windows"]:
        folder = tmp_path / f"w{w['first_frame']}"
        folder.mkdir()
        for n, frame in enumerate(frames[w["first_frame"]:w["last_frame"] + 1], 1):
            cv2.imwrite(str(folder / f"img_{n:05d}.png"), frame)       # lossless
        clip = p.predict(str(folder))
        assert clip["kind"] == "frames" and clip["short_policy"] == "loop"   # 6 < 8 frames
        np.testing.assert_allclose(w["probabilities"], clip["probabilities"], rtol=0, atol=1e-6)
    mean = np.mean([w["probabilities"] for w in result["windows"]], axis=0)
    np.testing.assert_allclose(result["probabilities"], mean, atol=1e-12)
    # one window holding the whole video is the whole-video prediction
    one = p.predict_windows(str(path), window=5.0)
    assert len(one["windows"]) == 1 and one["windows"][0]["last_frame"] == 11
    np.testing.assert_allclose(one["probabilities"], whole["probabilities"], rtol=0, atol=1e-6)


@pytest.mark.integration
def test_windows_and_overlay_from_the_command_line(tiny_video_run, tiny_data, tmp_path, capsys):
    path = tiny_data / "SwipeRight" / "v_SwipeRight_g02_c02.avi"
    out = tmp_path / "labelled.mp4"
    rc = predict.run_cli(["predict", f"--workdir={tiny_video_run}", "--window=0.5", "--hop=0.25",
                          f"--overlay={out}", str(path)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    lines = [line for line in captured.out.splitlines() if line.startswith("[")]
    labels = "|".join(synthetic.CLASSES)
    assert [line.split("]")[0] + "]" for line in lines] == [
        "[0.00–0.50]", "[0.25–0.75]", "[0.50–1.00]"]
    assert all(re.fullmatch(rf"\[[\d.]+–[\d.]+\] ({labels}) [01]\.\d{{3}}", line)
               for line in lines)
    source, written = _read_frames(path), _read_frames(out)
    assert len(written) == len(source) == 12
    assert written[0].shape == source[0].shape == (40, 40, 3)
    band = overlay.overlay_band_height(40)
    for a, b in zip(source, written):
        diff = np.abs(a.astype(int) - b.astype(int))
        assert diff[:band].mean() > 40                # the label band is drawn
        assert diff[band + 4:].mean() < 12            # the rest is the video (re-encoded)
    assert cv2.VideoCapture(str(out)).get(cv2.CAP_PROP_FPS) == pytest.approx(SYNTH_FPS)
    # for machines: one JSON object for the input, holding its windows
    rc = predict.run_cli(["predict", f"--workdir={tiny_video_run}", "--window=0.5",
                          "--hop=0.25", "--json", str(path)])
    out_lines = capsys.readouterr().out.splitlines()
    assert rc == 0 and len(out_lines) == 1
    result = json.loads(out_lines[0])
    assert [(w["start"], w["end"]) for w in result["windows"]] == [(0.0, 0.5), (0.25, 0.75),
                                                                  (0.5, 1.0)]
    assert result["probabilities"] == pytest.approx(
        np.mean([w["probabilities"] for w in result["windows"]], axis=0))


def test_bad_inputs_get_one_line_errors(video_predictor, tiny_video_run, tiny_data, tmp_path):
    p = video_predictor
    (tmp_path / "text.avi").write_text("this is not a video\n")
    (tmp_path / "empty.avi").write_bytes(b"")
    (tmp_path / "no_frames").mkdir()
    (tmp_path / "no_frames" / "notes.txt").write_text("x")
    cv2.imwrite(str(tmp_path / "still.png"), np.full((20, 20, 3), 128, np.uint8))
    cases = {
        str(tmp_path / "missing.avi"): "no such file or folder",
        str(tmp_path / "empty.avi"): "empty",
        str(tmp_path / "text.avi"): "could not open the file as a video",
        str(tmp_path / "no_frames"): "a folder with no frames",
        str(tmp_path / "still.png"): "is an image; this cnn_rnn model takes video files or "
                                     "frame folders",
    }
    for path, message in cases.items():
        with pytest.raises(predict.InputError, match=re.escape(message)) as e:
            p.predict(path)
        assert "\n" not in str(e.value) and str(e.value).startswith(path)
    # a short video follows the build's policy: looped here ...
    short = tmp_path / "short.avi"
    _write_video(short, _read_frames(tiny_data / "MoveDown" / "v_MoveDown_g02_c01.avi")[:3])
    result = p.predict(str(short))
    assert result["short_policy"] == "loop" and result["sampled_frames"] == [0, 1, 2, 0, 1, 2,
                                                                            0, 1]
    # ... and refused when the build skipped short videos
    skipping = tmp_path / "skip_run"
    shutil.copytree(tiny_video_run, skipping)
    info = json.loads((skipping / "dataset_info.json").read_text())
    info["sampling"]["short"] = "skip"
    (skipping / "dataset_info.json").write_text(json.dumps(info))
    with pytest.raises(predict.InputError, match=r"3 frames decoded, 8 needed .*skips clips "
                                                 r"that short \(too_short\)"):
        predict.Predictor.from_workdir(str(skipping)).predict(str(short))


def test_command_line_errors_and_exit_codes(tiny_video_run, tmp_path, capsys):
    (tmp_path / "text.avi").write_text("not a video")
    rc = predict.run_cli(["predict", f"--workdir={tiny_video_run}", str(tmp_path / "text.avi"),
                          str(tmp_path / "gone.mp4")])
    err = capsys.readouterr().err
    assert rc == 2                                      # every input failed
    assert sum(line.startswith("error: ") for line in err.splitlines()) == 2
    assert "Traceback" not in err
    rc = predict.run_cli(["predict", f"--workdir={tiny_video_run}", "--camera=99", "--window=1"])
    err = capsys.readouterr().err
    assert rc == 2 and "error: cannot open camera 99" in err and "Traceback" not in err
    rc = predict.run_cli(["predict", f"--workdir={tiny_video_run}", "--camera=0"])
    assert rc == 2 and "--camera needs --window" in capsys.readouterr().err
    rc = predict.run_cli(["predict", f"--workdir={tmp_path / 'nowhere'}", "x.avi"])
    assert rc == 2 and "error: workdir" in capsys.readouterr().err
    rc = predict.run_cli(["predict", "--top_k=many", "x.avi"])
    assert rc == 2 and capsys.readouterr().err.startswith("error: ")


def test_a_folder_of_videos_predicts_each_and_a_mixed_folder_is_refused(tiny_video_run,
                                                                       tiny_data, tmp_path,
                                                                       capsys):
    videos = sorted((tiny_data / "MoveUp").glob("*.avi"))[:2]
    folder = tmp_path / "videos"
    folder.mkdir()
    for video in videos:
        shutil.copy(video, folder / video.name)
    (folder / "notes.txt").write_text("not an input")
    rc = predict.run_cli(["predict", f"--workdir={tiny_video_run}", "--json", str(folder)])
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rc == 0
    assert [r["input"] for r in out] == [str(folder / v.name) for v in videos]
    assert all(r["kind"] == "video" and r["source_frames"] == 12 for r in out)
    # videos and frame images together: refused, naming which files are which
    cv2.imwrite(str(folder / "frame_0001.png"), np.zeros((8, 8, 3), np.uint8))
    rc = predict.run_cli(["predict", f"--workdir={tiny_video_run}", str(folder)])
    err = capsys.readouterr().err
    assert rc == 2
    assert (f"error: {folder}: holds videos ({videos[0].name}, {videos[1].name}) and images "
            "(frame_0001.png); a folder is either one clip of frame images or a set of "
            "videos") in err


@pytest.mark.integration
def test_sigterm_stops_between_inputs_with_the_command_for_the_rest(tiny_video_run, tiny_data,
                                                                    tmp_path):
    import signal
    import subprocess
    import sys
    import time
    from conftest import ROOT
    folder = tmp_path / "many"
    folder.mkdir()
    source = next(tiny_data.rglob("*.avi"))
    names = [f"clip{i}.avi" for i in range(8)]
    for name in names:
        shutil.copy(source, folder / name)
    log, results, tmp = tmp_path / "stderr.txt", tmp_path / "stdout.txt", tmp_path / "tmp"
    tmp.mkdir()
    with open(log, "w") as err, open(results, "w") as printed:
        proc = subprocess.Popen([sys.executable, "-m", "trainers.predict",
                                 f"--workdir={tiny_video_run}", str(folder)], cwd=ROOT,
                                env=dict(os.environ, TMPDIR=str(tmp)),
                                stdout=printed, stderr=err, text=True)
        deadline = time.monotonic() + 180
        while results.read_text().count("(video, 12 frames") < 3:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    text, out = log.read_text(), results.read_text()
    assert "[predict] " in text and "/8 inputs" in text     # the progress line
    assert proc.returncode == 143, text
    assert "Traceback" not in text
    (line,) = [x for x in text.splitlines() if "stopped by" in x]
    done = int(re.search(r"stopped by SIGTERM: (\d+) input\(s\) were predicted", line)[1])
    assert done >= 2 and out.count("(video, 12 frames") == done
    assert line.endswith(" ".join(["python", "-m", "trainers.predict",
                                   f"--workdir={tiny_video_run}",
                                   *(str(folder / n) for n in names[done:])]))
    assert list(tmp.iterdir()) == []                 # the predictor's folder is gone too


@pytest.mark.integration
def test_predict_as_a_user_runs_it(tiny_video_run, tiny_data, tmp_path):
    r = run_module("trainers.predict", "--help")
    assert r.returncode == 0 and "--overlay" in r.stdout and "--camera" in r.stdout
    assert "--[no]verbose:" in r.stdout
    good = tiny_data / "StayStill" / "v_StayStill_g02_c02.avi"
    (tmp_path / "broken.avi").write_bytes(b"RIFF\x00\x00\x00\x00AVI garbage")
    r = run_module("trainers.predict", f"--workdir={tiny_video_run}", "--json", "--top_k=2",
                   str(good), str(tmp_path / "broken.avi"))
    assert r.returncode == 1, r.stderr[-2000:]              # one of two inputs failed
    results = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["input"] for x in results] == [str(good), str(tmp_path / "broken.avi")]
    assert len(results[0]["top_k"]) == 2 and len(results[0]["probabilities"]) == 5
    assert sum(results[0]["probabilities"]) == pytest.approx(1.0, abs=1e-5)
    assert "error" in results[1] and "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "broken.avi" in errors[0]


# --------------------------------------------------------------------------
# Image model.
# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    from configs import common
    root = tmp_path_factory.mktemp("predict_images")
    rng = np.random.default_rng(3)
    for cls in ("cats", "dogs", "owls"):
        (root / "data" / cls).mkdir(parents=True)
        for i in range(3):
            cv2.imwrite(str(root / "data" / cls / f"{i}.jpg"),
                        rng.integers(0, 255, (40, 52, 3), dtype=np.uint8))
    build_dir = _build("images", root / "data", root / "out", "--resize_shorter=36")
    config = common.experiment(
        model_name="image_classifier",
        model=dict(backbone="MobileNet", alpha=0.25, weights=None, dense_units=8),
        data=dict(build_dir=str(build_dir), crop_size=32, crop="center", eval_split="train"),
        train=dict(epochs=1, steps_per_epoch=1, batch_size=3))
    return root, _workdir(config, root / "run")


@pytest.mark.integration
def test_raw_images_predict_as_their_records(image_run, tiny_data):
    root, run = image_run
    p = predict.Predictor.from_workdir(str(run), "last")
    assert p.modality == "image" and p.classes == ("cats", "dogs", "owls")
    expected = _record_probabilities(p.model, p.run.config, p.run.info)
    assert len(expected) == 9
    _distinct(expected.values())
    for video_id, probs in expected.items():
        result = p.predict(str(root / "data" / video_id))
        assert result["kind"] == "image"
        np.testing.assert_allclose(result["probabilities"], probs, rtol=0, atol=1e-6)
    with pytest.raises(predict.InputError, match="is a video file; this image_classifier model "
                                                 "takes image files"):
        p.predict(str(tiny_data / "MoveUp" / "v_MoveUp_g02_c01.avi"))


# --------------------------------------------------------------------------
# Keypoint model.
# --------------------------------------------------------------------------
def _write_openpose(folder: pathlib.Path, name: str, frames: int, rng) -> None:
    """OpenPose BODY_25 JSON per frame: one or two people, some frames empty."""
    folder.mkdir(parents=True, exist_ok=True)
    for f in range(frames):
        people = [] if f % 7 == 3 else [
            {"pose_keypoints_2d": np.column_stack([rng.uniform(0, 640, 25),
                                                   rng.uniform(0, 480, 25),
                                                   rng.uniform(0.2, 1.0, 25)]).ravel().tolist()}
            for _ in range(1 if f % 5 else 2)]
        (folder / f"{name}_{f:012d}_keypoints.json").write_text(
            json.dumps({"version": 1.3, "people": people}))


KEYPOINT_BUILD = ("--keypoints=upper_body", "--coords=xy")


@pytest.fixture(scope="module")
def keypoint_run(tmp_path_factory):
    from configs import common
    root = tmp_path_factory.mktemp("predict_keypoints")
    rng = np.random.default_rng(5)
    lengths = {"seq_a": 20, "seq_b": 17, "seq_c": 12, "seq_d": 5}
    for name, n in lengths.items():
        _write_openpose(root / "json", name, n, rng)
    (root / "segments.csv").write_text("video,start_s,end_s,label\nseq_a,0.5,1.2,kick\n"
                                       "seq_b,0.3,0.9,wave\nseq_c,0.0,0.4,kick\n"
                                       "seq_d,0.0,0.2,wave\n")
    build_dir = _build("openpose", root / "json", root / "out", *KEYPOINT_BUILD,
                       f"--segments_csv={root / 'segments.csv'}", "--source_fps=10",
                       "--frame_size=640x480")
    config = common.experiment(
        model_name="keypoint_rnn",
        model=dict(units=(4,), dropouts=(0.0,), recurrent_dropout=0.0, batch_norm=False,
                   dense_units=(4,)),
        data=dict(build_dir=str(build_dir), window=8, window_shift=3, target="frames",
                  eval_split="train"),
        train=dict(epochs=1, steps_per_epoch=1, batch_size=2))
    return root, _workdir(config, root / "run")


def _frame_probabilities(model, config, info, classes) -> dict[str, np.ndarray]:
    """video_id -> [frames, classes] from the trainer's evaluation input: every window's
    frame-wise output averaged over the windows that cover each frame."""
    from tfrecords import reader, schema
    from trainers import data
    d = config.data
    outputs = np.concatenate([model(x, training=False).numpy()
                              for x, *_ in data.make_input(config, info, training=False)])
    if outputs.shape[-1] == 1:
        outputs = np.concatenate([1 - outputs, outputs], axis=-1)
    spec = reader.KeypointSpec(training=False, window=d.window, window_shift=d.window_shift)
    result, row = {}, 0
    for raw in _records(d.build_dir, info, d.eval_split):
        parsed = schema.parse_keypoints(raw)
        n = int(parsed["num_frames"])
        indices, _ = reader.sample_windows(n, spec)
        sums, counts = np.zeros((n, len(classes))), np.zeros(n)
        for window in indices.numpy():
            for t, f in enumerate(window):
                if f >= 0:
                    sums[f] += outputs[row, t]
                    counts[f] += 1
            row += 1
        result[parsed["video_id"].numpy().decode()] = sums / counts[:, None]
    assert row == len(outputs)
    return result


@pytest.mark.integration
def test_openpose_sequences_predict_frame_by_frame_as_their_records(keypoint_run, tmp_path):
    root, run = keypoint_run
    p = predict.Predictor.from_workdir(str(run))
    assert p.modality == "keypoints" and p.classes == ("none", "kick", "wave")
    expected = _frame_probabilities(p.model, p.run.config, p.run.info, p.classes)
    assert sorted(expected) == ["seq_a", "seq_b", "seq_c", "seq_d"]
    _distinct(np.concatenate(list(expected.values())))
    for name, frames in expected.items():
        result = p.predict(str(root / "json" / name), top_k=2)    # FOLDER/NAME
        assert result["kind"] == "keypoints" and result["num_frames"] == len(frames)
        np.testing.assert_allclose(result["frame_probabilities"], frames, rtol=0, atol=1e-6)
        np.testing.assert_allclose(result["probabilities"], frames.mean(axis=0), atol=1e-6)
        assert result["frame_labels"] == [p.classes[i] for i in frames.argmax(axis=1)]
        assert result["aggregate"].startswith("mean of the per-frame probabilities")
        assert len(result["top_k"]) == 2
    # a folder holding one sequence, and one of its files, name the same sequence
    single = tmp_path / "one"
    single.mkdir()
    for f in (root / "json").glob("seq_c_*"):
        shutil.copy(f, single)
    for path in (single, next(single.glob("*.json"))):
        np.testing.assert_allclose(p.predict(str(path))["frame_probabilities"],
                                   expected["seq_c"], rtol=0, atol=1e-6)
    with pytest.raises(predict.InputError, match=r"holds 4 OpenPose sequences .*FOLDER/NAME"):
        p.predict(str(root / "json"))
    for missing in ("seq_z", "seq_z_000000000000_keypoints.json"):
        with pytest.raises(predict.InputError, match=r"no OpenPose sequence named 'seq_z' in "
                                                     r".* \(it has seq_a, seq_b, seq_c, \.\.\.\)"):
            p.predict(str(root / "json" / missing))


# --------------------------------------------------------------------------
# Real media.
# --------------------------------------------------------------------------
@pytest.mark.real
@pytest.mark.integration
def test_real_videos_predict_as_their_records(video_predictor, real_dir, tmp_path):
    p = video_predictor
    data = tmp_path / "data"
    files = {"ucf/ucf_like_320x240_fmp4.avi": real_dir / "videos" / "ucf_like_320x240_fmp4.avi",
             "kinetics/kinetics_like_340x256_h264.mp4":
                 real_dir / "videos" / "kinetics_like_340x256_h264.mp4",
             "soccer/Kick 7.mp4": real_dir / "soccer" / "videos" / "Kick 7.mp4"}
    for rel, src in files.items():
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        (data / rel).symlink_to(src)
    # the real files built with the very settings of the run's build
    build_dir = _build("folder", data, tmp_path / "out", "--sampling=uniform", "--num_frames=8",
                       "--size=32x32")
    info = json.loads((build_dir / "dataset_info.json").read_text())
    assert (info["sampling"], info["frame"]) == (p.run.info["sampling"], p.run.info["frame"])
    expected = _record_probabilities(p.model, _with_build(p.run.config, build_dir, "train"),
                                     info)
    assert sorted(expected) == sorted(files)
    _distinct(expected.values())
    for rel, probs in expected.items():
        result = p.predict(str(files[rel]))
        np.testing.assert_allclose(result["probabilities"], probs, rtol=0, atol=1e-6)
    assert p.predict(str(files["ucf/ucf_like_320x240_fmp4.avi"]))["source_frames"] == 164
    frames = p.predict(str(real_dir / "rawframes" / "img"))
    assert frames["kind"] == "frames" and frames["source_frames"] == 10


@pytest.mark.real
@pytest.mark.integration
def test_real_overlay_keeps_size_and_frames(tiny_video_run, real_dir, tmp_path, capsys):
    video = real_dir / "videos" / "ucf_like_320x240_fmp4.avi"
    out = tmp_path / "ucf_labelled.mp4"
    rc = predict.run_cli(["predict", f"--workdir={tiny_video_run}", f"--overlay={out}",
                          str(video)])
    assert rc == 0, capsys.readouterr().err
    source, written = _read_frames(video), _read_frames(out)
    assert len(written) == len(source) == 164 and written[0].shape == (240, 320, 3)
    band = overlay.overlay_band_height(240)
    diff = np.abs(source[80].astype(int) - written[80].astype(int))
    assert diff[:band].mean() > 3 * diff[band + 8:].mean()


@pytest.mark.real
@pytest.mark.integration
def test_real_openpose_predicts_as_its_record(keypoint_run, real_dir, tmp_path):
    """Real OpenPose output, normalised by the real videos' frame size (--video_dir)."""
    _, run = keypoint_run
    data = tmp_path / "json"
    data.mkdir()
    for f in (real_dir / "soccer" / "openpose").glob("Kick_3_*_keypoints.json"):
        (data / f.name).symlink_to(f)
    videos = real_dir / "soccer" / "videos"
    build_dir = _build("openpose", data, tmp_path / "out", *KEYPOINT_BUILD,
                       f"--video_dir={videos}")
    info = json.loads((build_dir / "dataset_info.json").read_text())
    p = predict.Predictor.from_workdir(str(run), video_dir=str(videos))
    expected = _frame_probabilities(p.model, _with_build(p.run.config, build_dir, "train"),
                                    info, p.classes)
    result = p.predict(str(data))
    _distinct(expected["Kick_3"])
    assert result["layout"] == "BODY_25" and result["num_frames"] == len(expected["Kick_3"])
    np.testing.assert_allclose(result["frame_probabilities"], expected["Kick_3"], rtol=0,
                               atol=1e-6)
    # without the videos the frame size is unknown: say what to give
    with pytest.raises(predict.InputError, match="give --frame_size WxH or --video_dir"):
        predict.Predictor.from_workdir(str(run), video_dir=str(tmp_path)).predict(str(data))
