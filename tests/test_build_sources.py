"""End-to-end builds of frame folders, images and OpenPose keypoints (generated and real)."""
from __future__ import annotations

import csv
import json
import pathlib

import cv2
import numpy as np
import pytest

from conftest import run_module
from tfrecords import schema

pytestmark = pytest.mark.integration

ONE_WORKER = ("--direct_num_workers=1",)


def _build(dataset, data_dir, out, *extra):
    r = run_module("pipeline.build", f"--dataset={dataset}", f"--data_dir={data_dir}",
                   f"--output_dir={out}", "--config_name=b", *extra)
    return r, pathlib.Path(out) / dataset / "b"


def _info(build_dir):
    return json.loads((build_dir / schema.DATASET_INFO_FILE).read_text())


def _errors(build_dir):
    return [json.loads(x) for x in (build_dir / schema.ERRORS_FILE).read_text().splitlines()]


def _records(build_dir, parse=schema.parse_clip):
    import tensorflow as tf
    info = _info(build_dir)
    out = []
    for split, s in sorted(info["splits"].items()):
        for shard in s["shards"]:
            for raw in tf.data.TFRecordDataset(str(build_dir / shard)):
                out.append((split, {k: v.numpy() for k, v in parse(raw).items()}))
    return out


def _verify_ok(build_dir):
    v = run_module("pipeline.verify", "--decode_every=1", str(build_dir))
    assert v.returncode == 0, v.stdout + v.stderr


def _frame_folder(folder: pathlib.Path, n: int, size: tuple[int, int], start_level=0,
                  skip=()):
    """n PNG frames, frame i a flat grey of level 8*i (+start_level); numbers in `skip` absent."""
    folder.mkdir(parents=True)
    for i in range(n):
        if i + 1 in skip:
            continue
        cv2.imwrite(str(folder / f"WIN_20180925_17_08_43_Pro_{i + 1:05d}.png"),
                    np.full((size[1], size[0], 3), start_level + 8 * i, np.uint8))


def test_gestures_mixed_sizes_indices_and_bad_rows(tmp_path):
    data = tmp_path / "gestures"
    rows = {"train": [], "val": []}
    names = ["Left_Swipe_new", "Right_Swipe_new", "Stop_new"]
    for split, count in (("train", 3), ("val", 1)):
        for c, name in enumerate(names):
            for k in range(count):
                folder = f"WIN_{split}_{c}_{k}_{name}"
                size = (360, 360) if k % 2 == 0 else (160, 120)
                _frame_folder(data / split / folder, 30, size)
                rows[split].append(f"{folder};{name};{c}")
    rows["train"].append("WIN_missing_folder;Stop_new;2")                     # missing folder
    _frame_folder(data / "train" / "WIN_bad_label", 30, (64, 64))
    rows["train"].append("WIN_bad_label;Thumbs_Up_new;0")                     # unknown label
    _frame_folder(data / "train" / "WIN_bad_image", 30, (64, 64))
    (data / "train" / "WIN_bad_image" / "WIN_20180925_17_08_43_Pro_00004.png").write_bytes(
        b"not a png")                                                       # frame 3 is chosen
    rows["train"].append("WIN_bad_image;Stop_new;2")
    for split in rows:
        (data / f"{split}.csv").write_text("\n".join(rows[split]) + "\n")
    r, build_dir = _build("gestures", data, tmp_path / "out", "--sampling=indices",
                          "--indices=3,6,9,11,13,15,17,19,21,24,27", "--crop=center_square",
                          "--size=50x50", "--image_format=png", "--max_failure_ratio=0.5",
                          *ONE_WORKER)
    assert r.returncode == 0, r.stderr
    info = _info(build_dir)
    assert info["classes"] == names and info["modality"] == "video"
    train, val = info["splits"]["train"], info["splits"]["val"]
    assert train["per_class"] == {n: 3 for n in names} and val["per_class"] == {n: 1 for n in names}
    assert (train["listed"], train["num_items"], train["quarantined"]) == (12, 9, 3)
    assert train["num_frames"] == 9 * 11
    reasons = {e["path"].rstrip("/").split("/")[-1]: e["reason"] for e in _errors(build_dir)}
    assert reasons == {"WIN_missing_folder": "missing_folder", "WIN_bad_label": "unknown_label",
                       "WIN_bad_image": "bad_image"}
    _verify_ok(build_dir)
    indices = [3, 6, 9, 11, 13, 15, 17, 19, 21, 24, 27]
    for _, p in _records(build_dir):
        assert p["source_indices"].tolist() == indices
        assert (int(p["height"]), int(p["width"])) == (50, 50)
        frames = schema.decode_frames(p["frames"], "png").numpy()
        assert [int(f.mean()) for f in frames] == [8 * i for i in indices]


def test_jester_test_split_is_unlabelled(tmp_path):
    data = tmp_path / "jester"
    labels = ["Swiping Left", "Swiping Right"]
    (data / "jester-v1-labels.csv").parent.mkdir(parents=True)
    (data / "jester-v1-labels.csv").write_text("\n".join(labels) + "\n")
    rows = {"train": [], "validation": [], "test": []}
    for vid in range(1, 9):
        split = ["train", "train", "validation", "test"][vid % 4]
        _frame_folder(data / "20bn-jester-v1" / str(vid), 12, (32, 24))
        rows[split].append(f"{vid};{labels[vid % 2]}" if split != "test" else str(vid))
    for split, lines in rows.items():
        (data / f"jester-v1-{split}.csv").write_text("\n".join(lines) + "\n")
    r, build_dir = _build("jester", data, tmp_path / "out", "--sampling=uniform",
                          "--num_frames=4", "--source_fps=12", *ONE_WORKER)
    assert r.returncode == 0, r.stderr
    info = _info(build_dir)
    assert info["splits"]["test"]["unlabelled"] == 2 and info["splits"]["test"]["per_class"] == {}
    assert info["splits"]["train"]["num_examples"] == 4
    _verify_ok(build_dir)
    for split, p in _records(build_dir):
        assert (int(p["label"]) == -1) == (split == "test")
        assert p["timestamps_us"].tolist() == [round(i * 1e6 / 12) for i in (0, 4, 7, 11)]


def test_images_csv_layout_with_unlabelled_test_and_bad_image(tmp_path):
    data = tmp_path / "images"
    (data / "train").mkdir(parents=True)
    (data / "test").mkdir()
    train_rows = ["filename,label"]
    for i in range(6):
        cv2.imwrite(str(data / "train" / f"Image_{i + 1}.jpg"),
                    np.full((40 + i, 30, 3), 20 * i, np.uint8))
        train_rows.append(f"Image_{i + 1}.jpg,{['running', 'sitting'][i % 2]}")
    (data / "train" / "Image_7.jpg").write_bytes(b"\xff\xd8 truncated jpeg")
    train_rows.append("Image_7.jpg,running")
    train_rows.append("Image_8.jpg,sitting")                                  # missing file
    (data / "Training_set.csv").write_text("\n".join(train_rows) + "\n")
    for i in range(3):
        cv2.imwrite(str(data / "test" / f"Image_{i + 1}.jpg"), np.zeros((20, 20, 3), np.uint8))
    (data / "Testing_set.csv").write_text("filename\nImage_1.jpg\nImage_2.jpg\nImage_3.jpg\n")
    r, build_dir = _build("images", data, tmp_path / "out", "--size=24x24",
                          "--max_failure_ratio=0.5", *ONE_WORKER)
    assert r.returncode == 0, r.stderr
    info = _info(build_dir)
    assert info["modality"] == "image" and info["classes"] == ["running", "sitting"]
    assert info["splits"]["train"]["per_class"] == {"running": 3, "sitting": 3}
    assert info["splits"]["test"]["unlabelled"] == 3
    assert sorted(e["reason"] for e in _errors(build_dir)) == ["bad_image", "missing_file"]
    assert info["splits"]["train"]["listed"] == 8
    _verify_ok(build_dir)
    assert all(int(p["num_frames"]) == 1 for _, p in _records(build_dir))


@pytest.mark.real
def test_real_rawframes_folder(real_dir, tmp_path):
    data = tmp_path / "g"
    (data / "train").mkdir(parents=True)
    (data / "val").mkdir()
    (data / "train" / "img").symlink_to(real_dir / "rawframes" / "img")
    (data / "train.csv").write_text("img;Clap;0\n")
    (data / "val.csv").write_text("")
    r, build_dir = _build("gestures", data, tmp_path / "out", *ONE_WORKER)
    assert r.returncode == 0, r.stderr
    _verify_ok(build_dir)
    [(split, p)] = _records(build_dir)
    first = cv2.imread(str(real_dir / "rawframes" / "img" / "img_00001.jpg"))
    assert int(p["num_frames"]) == 10 and p["source_indices"].tolist() == list(range(10))
    assert (int(p["height"]), int(p["width"])) == first.shape[:2]


def _soccer_args(real_dir):
    return (f"--label_csv={real_dir / 'soccer' / 'labels.csv'}", "--label_column=type",
            "--id_column=kick", "--id_template=Kick_{id}")


@pytest.mark.real
def test_real_openpose_soccer_sequences(real_dir, tmp_path):
    r, build_dir = _build("openpose", real_dir / "soccer" / "openpose", tmp_path / "out",
                          *_soccer_args(real_dir), f"--video_dir={real_dir / 'soccer' / 'videos'}",
                          "--direct_running_mode=multi_processing", "--direct_num_workers=2")
    assert r.returncode == 0, r.stderr
    info = _info(build_dir)
    assert info["modality"] == "keypoints"
    with open(real_dir / "soccer" / "labels.csv", newline="") as f:
        expected = {f"Kick_{row['kick']}": row["type"] for row in csv.DictReader(f)}
    records = _records(build_dir, schema.parse_keypoints)
    assert len(records) == 20 == info["splits"]["train"]["num_examples"]
    files = sorted((real_dir / "soccer" / "openpose").glob("*_keypoints.json"))
    for _, p in records:
        video = p["video_id"].decode()
        assert p["label_text"].decode() == expected[video]
        assert info["classes"][int(p["label"])] == expected[video]
        count = sum(1 for f in files if f.name.startswith(video + "_"))
        assert 88 <= int(p["num_frames"]) == count <= 90
        assert p["layout"] == b"BODY_25" and p["values"].shape == (count, 25 * 3)
        seen = p["mask"] > 0
        xy = p["values"].reshape(count, 25, 3)[..., :2]
        assert (xy[seen] >= 0).all() and (xy[seen] <= 1).all()      # normalised by the video
        assert (p["frame_width"], p["frame_height"]) == (1920, 1080)
    assert _errors(build_dir) == []
    _verify_ok(build_dir)


@pytest.mark.real
def test_real_openpose_windows(real_dir, tmp_path):
    r, build_dir = _build("openpose", real_dir / "soccer" / "openpose", tmp_path / "out",
                          *_soccer_args(real_dir), "--window=30", "--window_stride=30",
                          "--coords=xy", "--keypoints=upper_body", *ONE_WORKER)
    assert r.returncode == 0, r.stderr
    train = _info(build_dir)["splits"]["train"]
    files = list((real_dir / "soccer" / "openpose").glob("*_keypoints.json"))
    lengths = [sum(1 for f in files if f.name.startswith(f"Kick_{k}_")) for k in range(1, 21)]
    assert train["num_items"] == 20 == train["listed"]
    assert train["num_examples"] == sum((n - 30) // 30 + 1 for n in lengths)
    assert train["num_frames"] == 30 * train["num_examples"]
    for _, p in _records(build_dir, schema.parse_keypoints):
        assert int(p["num_coords"]) == 2 and int(p["num_frames"]) == 30
    _verify_ok(build_dir)


def test_openpose_bad_files_are_quarantined_but_the_sequence_is_kept(tmp_path):
    data = tmp_path / "pose"
    data.mkdir()
    person = [0.5] * 75

    def write(video, frame, payload):
        (data / f"{video}_{frame:012d}_keypoints.json").write_text(payload)

    for f in range(6):
        write("good", f, json.dumps({"version": 1.3, "people": [{"pose_keypoints_2d": person}]}))
    write("bad", 0, json.dumps({"people": [{"pose_keypoints_2d": person}]}))
    write("bad", 1, "{not json")                                               # malformed
    write("bad", 2, json.dumps({"version": 1.3}))                              # people missing
    write("bad", 3, json.dumps({"people": [{"pose_keypoints_2d": [1.0] * 10}]}))  # length
    write("bad", 4, '{"people": [{"pose_keypoints_2d": [NaN' + ", 1" * 74 + "]}]}")  # NaN
    write("bad", 7, json.dumps({"people": [{"pose_keypoints_2d": person}]}))   # gap 5, 6
    (tmp_path / "labels.csv").write_text("video,label\ngood,kick\nbad,kick\n")
    r, build_dir = _build("openpose", data, tmp_path / "out",
                          f"--label_csv={tmp_path / 'labels.csv'}", *ONE_WORKER)
    assert r.returncode == 0, r.stderr
    errors = _errors(build_dir)
    assert sorted((e["path"].split("/")[-1], e["reason"], e["stage"]) for e in errors) == [
        ("bad_000000000001_keypoints.json", "malformed_json", "file"),
        ("bad_000000000002_keypoints.json", "people_missing", "file"),
        ("bad_000000000003_keypoints.json", "wrong_length", "file"),
        ("bad_000000000004_keypoints.json", "non_finite", "file"),
    ]
    train = _info(build_dir)["splits"]["train"]
    assert (train["num_items"], train["quarantined"], train["quarantined_files"]) == (2, 0, 4)
    records = {p["video_id"].decode(): p for _, p in _records(build_dir, schema.parse_keypoints)}
    bad = records["bad"]
    assert int(bad["num_frames"]) == 8
    assert bad["mask"].reshape(8, 25).any(axis=1).tolist() == [True] + [False] * 6 + [True]
    assert bad["source_indices"].tolist() == list(range(8))
    _verify_ok(build_dir)
