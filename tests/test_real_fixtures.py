"""Builds from the real media in ../shared/fixtures/real (linked, never copied) and verifies them."""
from __future__ import annotations

import csv
import json
import pathlib

import cv2
import pytest

from conftest import run_module
from tfrecords import schema

pytestmark = [pytest.mark.integration, pytest.mark.real]


def _opencv_facts(path: pathlib.Path) -> tuple[int, int, int]:
    """(frames counted by a grab loop, height, width) as OpenCV reports them."""
    cap = cv2.VideoCapture(str(path))
    ok, frame = cap.read()
    assert ok, path
    n = 1
    while cap.grab():
        n += 1
    return n, frame.shape[0], frame.shape[1]


def _records(build_dir: pathlib.Path) -> dict[str, dict]:
    import tensorflow as tf
    info = json.loads((build_dir / schema.DATASET_INFO_FILE).read_text())
    out = {}
    for split in info["splits"].values():
        for shard in split["shards"]:
            for raw in tf.data.TFRecordDataset(str(build_dir / shard)):
                p = schema.parse_clip(raw)
                frames = schema.decode_frames(p["frames"][:1], info["image_format"]).numpy()
                out[p["video_id"].numpy().decode()] = {
                    "num_frames": int(p["num_frames"]), "height": int(p["height"]),
                    "width": int(p["width"]), "label_text": p["label_text"].numpy().decode(),
                    "decoded_hw": frames.shape[1:3],
                    "source_num_frames": int(p["source_num_frames"]),
                    "timestamps_us": p["timestamps_us"].numpy().tolist(),
                }
    return out


def _link_tree(root: pathlib.Path, files: dict[str, pathlib.Path]):
    for rel, target in files.items():
        link = root / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target)


def test_real_videos_all_frames_match_opencv(real_dir, tmp_path):
    videos = {"ucf_like/ucf_like_320x240_fmp4.avi": real_dir / "videos/ucf_like_320x240_fmp4.avi",
              "kinetics_like/kinetics_like_340x256_h264.mp4":
                  real_dir / "videos/kinetics_like_340x256_h264.mp4"}
    _link_tree(tmp_path / "data", videos)
    r = run_module("pipeline.build", "--dataset=folder", f"--data_dir={tmp_path / 'data'}",
                   f"--output_dir={tmp_path / 'out'}", "--sampling=all",
                   "--direct_running_mode=multi_processing", "--direct_num_workers=2")
    assert r.returncode == 0, r.stderr
    build_dir = tmp_path / "out" / "folder" / "all_jpeg90"
    v = run_module("pipeline.verify", "--decode_every=1", str(build_dir))
    assert v.returncode == 0, v.stderr
    records = _records(build_dir)
    assert sorted(records) == sorted(videos)
    for rel, target in videos.items():
        n, h, w = _opencv_facts(target)
        rec = records[rel]
        assert (rec["num_frames"], rec["source_num_frames"], rec["height"], rec["width"]) == (
            n, n, h, w), rel
        assert rec["decoded_hw"] == (h, w)
        ts = rec["timestamps_us"]
        assert ts[0] == 0 and all(b > a for a, b in zip(ts, ts[1:]))
    assert (records["ucf_like/ucf_like_320x240_fmp4.avi"]["num_frames"],
            records["kinetics_like/kinetics_like_340x256_h264.mp4"]["num_frames"]) == (164, 300)


@pytest.mark.slow
def test_real_soccer_videos_build_with_labels_from_csv(real_dir, tmp_path):
    types = {"0": "curl", "1": "laces"}
    with open(real_dir / "soccer/labels.csv", newline="") as f:
        label_of = {row["kick"]: types[row["type"]] for row in csv.DictReader(f)}
    videos = {f"{label_of[k]}/Kick {k}.mp4": real_dir / f"soccer/videos/Kick {k}.mp4"
              for k in label_of}
    assert len(videos) == 20
    _link_tree(tmp_path / "data", videos)
    r = run_module("pipeline.build", "--dataset=folder", f"--data_dir={tmp_path / 'data'}",
                   f"--output_dir={tmp_path / 'out'}", "--sampling=all", "--resize_shorter=96",
                   "--direct_running_mode=multi_processing", "--direct_num_workers=2")
    assert r.returncode == 0, r.stderr
    build_dir = tmp_path / "out" / "folder" / "all_short96_jpeg90"
    v = run_module("pipeline.verify", str(build_dir))
    assert v.returncode == 0, v.stderr
    info = json.loads((build_dir / schema.DATASET_INFO_FILE).read_text())
    expected_counts = {}
    for label in label_of.values():
        expected_counts[label] = expected_counts.get(label, 0) + 1
    assert info["classes"] == ["curl", "laces"]
    assert info["splits"]["train"]["per_class"] == expected_counts
    records = _records(build_dir)
    assert sorted(records) == sorted(videos)
    for rel, target in videos.items():
        n, h, w = _opencv_facts(target)
        short = min(h, w)
        expected_hw = (round(h * 96 / short), round(w * 96 / short))
        rec = records[rel]
        assert rec["num_frames"] == n, rel
        assert (rec["height"], rec["width"]) == expected_hw == rec["decoded_hw"], rel
        assert rec["label_text"] == rel.split("/")[0]
    assert {r["num_frames"] for r in records.values()} <= set(range(88, 91))
