"""End-to-end builds: python -m pipeline.build / verify as a user runs them."""
from __future__ import annotations

import json
import os
import pathlib
import shutil

import cv2
import numpy as np
import pytest

from conftest import run_module
from pipeline import synthetic
from tfrecords import schema

pytestmark = pytest.mark.integration

TWO_WORKERS = ("--direct_running_mode=multi_processing", "--direct_num_workers=2")


@pytest.fixture(scope="module")
def ucf_tree(tmp_path_factory) -> pathlib.Path:
    """A small synthetic UCF101-layout tree: 5 classes, 3 train + 2 test videos each."""
    root = tmp_path_factory.mktemp("ucf")
    synthetic.write_ucf101_layout(str(root), {"train": 3, "test": 2}, num_frames=24,
                                  size=(48, 64), seed=3)
    return root


def _build(data_dir, out_dir, *extra, dataset="ucf101"):
    return run_module("pipeline.build", f"--dataset={dataset}", f"--data_dir={data_dir}",
                      f"--output_dir={out_dir}", *extra)


def _info(build_dir) -> dict:
    return json.loads((pathlib.Path(build_dir) / schema.DATASET_INFO_FILE).read_text())


def _errors(build_dir) -> list[dict]:
    text = (pathlib.Path(build_dir) / schema.ERRORS_FILE).read_text()
    return [json.loads(line) for line in text.splitlines()]


def test_build_and_verify_two_workers(ucf_tree, tmp_path):
    r = _build(ucf_tree, tmp_path, "--sampling=uniform", "--num_frames=8", "--size=32x32",
               "--num_shards=2", *TWO_WORKERS)
    assert r.returncode == 0, r.stderr
    build_dir = tmp_path / "ucf101" / "split1_uniform8_32x32_jpeg90"
    assert r.stdout.strip() == str(build_dir)
    assert "25/25 items" in r.stderr and "ETA" in r.stderr     # progress was shown

    info = _info(build_dir)
    assert info["schema_version"] == schema.SCHEMA_VERSION
    assert info["classes"] == list(synthetic.CLASSES)
    train, test = info["splits"]["train"], info["splits"]["test"]
    assert (train["num_examples"], test["num_examples"]) == (15, 10)
    assert (train["num_frames"], test["num_frames"]) == (15 * 8, 10 * 8)
    assert train["per_class"] == {c: 3 for c in synthetic.CLASSES}
    assert test["per_class"] == {c: 2 for c in synthetic.CLASSES}
    assert train["shards"] == ["train.tfrecord-00000-of-00002", "train.tfrecord-00001-of-00002"]
    assert sorted(p.name for p in build_dir.iterdir()) == sorted(
        train["shards"] + test["shards"] + [schema.DATASET_INFO_FILE, schema.ERRORS_FILE])
    assert _errors(build_dir) == []
    assert info["flags"]["num_frames"] == 8 and info["beam"]["args"] == list(TWO_WORKERS)
    assert not any(p.name.startswith(".") for p in (tmp_path / "ucf101").iterdir())

    v = run_module("pipeline.verify", str(build_dir))
    assert v.returncode == 0, v.stderr
    assert "OK:" in v.stdout and "train: 15 records, 120 frames, 5 classes, 2 shards" in v.stdout

    # A second build to the same place is refused; --overwrite replaces it.
    again = _build(ucf_tree, tmp_path, "--sampling=uniform", "--num_frames=8", "--size=32x32")
    assert again.returncode == 2 and "--overwrite" in again.stderr
    assert "Traceback" not in again.stderr
    again = _build(ucf_tree, tmp_path, "--sampling=uniform", "--num_frames=8", "--size=32x32",
                   "--overwrite", "--direct_num_workers=1")
    assert again.returncode == 0, again.stderr
    assert _info(build_dir)["splits"]["train"]["shards"] == ["train.tfrecord-00000-of-00001"]
    assert sorted(p.name for p in build_dir.iterdir() if "tfrecord" in p.name) == [
        "test.tfrecord-00000-of-00001", "train.tfrecord-00000-of-00001"]


def test_forked_workers_and_thread_counts_write_the_same_bytes(ucf_tree, tmp_path):
    """Workers forked from the fork server, one decoding thread each (the default with a
    worker per core), write the shards that fresh workers with two threads each write."""
    flags_ = ("--sampling=all", "--resize_shorter=40", "--num_shards=2", *TWO_WORKERS)
    forked = _build(ucf_tree, tmp_path, "--config_name=forked", *flags_)
    fresh = _build(ucf_tree, tmp_path, "--config_name=fresh", "--nofork_workers",
                   "--decode_threads=2", *flags_)
    assert forked.returncode == 0, forked.stderr
    assert fresh.returncode == 0, fresh.stderr
    shards = {name: {p.name: p.read_bytes() for p in (tmp_path / "ucf101" / name).iterdir()
                     if "tfrecord" in p.name} for name in ("forked", "fresh")}
    assert len(shards["forked"]) == 4 and shards["forked"] == shards["fresh"]
    assert (_info(tmp_path / "ucf101" / "forked")["flags"]["fork_workers"],
            _info(tmp_path / "ucf101" / "fresh")["flags"]["decode_threads"]) == (True, 2)


def test_items_encoded_to_size_the_shards_are_not_decoded_again(ucf_tree, tmp_path):
    """Without --num_shards the driver encodes the first 3 items to size the shards and
    keeps them as finished parts: the workers decode the other 22, and the shards are the
    bytes of a build told its shard counts (which sizes nothing)."""
    flags_ = ("--sampling=uniform", "--num_frames=4", "--size=32x24", *TWO_WORKERS)
    sized = _build(ucf_tree, tmp_path, "--config_name=sized", *flags_)
    told = _build(ucf_tree, tmp_path, "--config_name=told", "--num_shards=1", *flags_)
    assert sized.returncode == 0, sized.stderr
    assert told.returncode == 0, told.stderr
    assert "items_written=22," in sized.stderr and "items_written=25," in told.stderr
    shards = {name: {p.name: p.read_bytes() for p in (tmp_path / "ucf101" / name).iterdir()
                     if "tfrecord" in p.name} for name in ("sized", "told")}
    assert len(shards["sized"]) == 2 and shards["sized"] == shards["told"]
    assert _info(tmp_path / "ucf101" / "sized")["splits"]["train"]["num_items"] == 15


def test_records_hold_the_sampled_frames(ucf_tree, tmp_path):
    r = _build(ucf_tree, tmp_path, "--sampling=segments", "--num_frames=4", "--image_format=png",
               "--config_name=seg", "--max_examples_per_split=2", "--direct_num_workers=1")
    assert r.returncode == 0, r.stderr
    build_dir = tmp_path / "ucf101" / "seg"
    info = _info(build_dir)
    assert info["splits"]["train"]["num_examples"] == 2
    assert info["splits"]["test"]["num_examples"] == 2
    import tensorflow as tf
    shard = build_dir / info["splits"]["train"]["shards"][0]
    for raw in tf.data.TFRecordDataset(str(shard)):
        p = schema.parse_clip(raw)
        assert p["source_indices"].numpy().tolist() == [3, 9, 15, 21]   # TSN centres of 24
        assert p["short_policy"].numpy() == b"none"
        assert p["source_num_frames"].numpy() == 24
        video_id = p["video_id"].numpy().decode()
        frames = schema.decode_frames(p["frames"], "png").numpy()
        cap = cv2.VideoCapture(str(ucf_tree / "UCF-101" / video_id))
        decoded = []
        while True:
            ok, f = cap.read()
            if not ok:
                break
            decoded.append(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
        np.testing.assert_array_equal(frames, np.stack([decoded[i] for i in (3, 9, 15, 21)]))
        label = int(p["label"].numpy())
        assert info["classes"][label] == p["label_text"].numpy().decode()
        assert video_id.startswith(info["classes"][label] + "/")


def _write_video(path: pathlib.Path, frames: int, size=(48, 64)):
    clip = synthetic.make_clip(0, np.random.default_rng(frames), num_frames=frames, size=size)
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 12, (size[1], size[0]))
    for f in clip:
        w.write(f)
    w.release()


@pytest.fixture()
def bad_tree(tmp_path) -> pathlib.Path:
    """UCF layout with every kind of bad input beside good videos."""
    root = tmp_path / "bad"
    synthetic.write_ucf101_layout(str(root), {"train": 2, "test": 1}, num_frames=24,
                                  size=(48, 64), seed=5)
    videos = root / "UCF-101" / "SwipeLeft"
    (videos / "v_SwipeLeft_g90_c01.avi").write_bytes(b"")                       # zero bytes
    _write_video(videos / "full.avi", 60)
    data = (videos / "full.avi").read_bytes()
    (videos / "v_SwipeLeft_g90_c02.avi").write_bytes(data[: len(data) // 2])    # truncated
    (videos / "full.avi").unlink()
    (videos / "v_SwipeLeft_g90_c03.avi").write_text("this is not a video\n" * 20)  # text
    _write_video(videos / "v_SwipeLeft_g90_c04.avi", 3)                           # too short
    lists = root / "ucfTrainTestlist"
    with open(lists / "trainlist01.txt", "a") as f:
        for name in ("c01", "c02", "c03", "c04"):
            f.write(f"SwipeLeft/v_SwipeLeft_g90_{name}.avi 1\n")
        f.write("Juggling/v_Juggling_g01_c01.avi 6\n")                              # unknown
        f.write("SwipeLeft/v_SwipeLeft_g91_c01.avi 1\n")                            # missing
    return root


EXPECTED_BAD = {
    "SwipeLeft/v_SwipeLeft_g90_c01.avi": "empty_file",
    "SwipeLeft/v_SwipeLeft_g90_c02.avi": "truncated",
    "SwipeLeft/v_SwipeLeft_g90_c03.avi": "cannot_open",
    "SwipeLeft/v_SwipeLeft_g90_c04.avi": "too_short",
    "Juggling/v_Juggling_g01_c01.avi": "unknown_class",
    "SwipeLeft/v_SwipeLeft_g91_c01.avi": "missing_file",
}


def test_bad_inputs_are_quarantined_and_accounted_for(bad_tree, tmp_path):
    out = tmp_path / "out"
    r = _build(bad_tree, out, "--sampling=uniform", "--num_frames=16", "--short=skip",
               "--size=32x32", "--max_failure_ratio=0.5", *TWO_WORKERS)
    assert r.returncode == 0, r.stderr
    build_dir = out / "ucf101" / "split1_uniform16_32x32_jpeg90"
    info = _info(build_dir)
    errors = _errors(build_dir)
    got = {e["path"].split("UCF-101/")[-1]: e["reason"] for e in errors}
    assert got == EXPECTED_BAD
    assert all(e["detail"] and e["split"] == "train" for e in errors)
    assert info["errors_by_reason"] == {reason: 1 for reason in EXPECTED_BAD.values()}
    train = info["splits"]["train"]
    assert train["num_examples"] == 10 and train["quarantined"] == 6
    for split in info["splits"].values():
        assert split["listed"] == split["num_examples"] + split["quarantined"]
    assert info["splits"]["train"]["listed"] == 16 and info["splits"]["test"]["listed"] == 5
    assert run_module("pipeline.verify", str(build_dir)).returncode == 0


def test_too_many_failures_fail_the_build_after_writing_errors(bad_tree, tmp_path):
    out = tmp_path / "out"
    r = _build(bad_tree, out, "--sampling=uniform", "--num_frames=16", "--short=skip",
               "--size=32x32", "--config_name=strict", "--max_failure_ratio=0.1",
               "--direct_num_workers=1")
    assert r.returncode == 1
    assert "6 of 21 listed items quarantined" in r.stderr
    failed = out / "ucf101" / "strict.failed-errors.jsonl"
    reasons = sorted(json.loads(line)["reason"] for line in failed.read_text().splitlines())
    assert reasons == sorted(EXPECTED_BAD.values())
    assert sorted(p.name for p in (out / "ucf101").iterdir()) == ["strict.failed-errors.jsonl"]


def test_hmdb51_unused_videos_are_counted(ucf_tree, tmp_path):
    root = tmp_path / "hmdb"
    splits = root / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True)
    for cls in ("brush_hair", "fall_floor"):
        (root / cls).mkdir()
        lines = []
        for i, src in enumerate(sorted((ucf_tree / "UCF-101" / "MoveUp").glob("*.avi"))):
            name = f"{cls}_{i}.avi"
            shutil.copy(src, root / cls / name)
            lines.append(f"{name} {[1, 2, 0, 1, 2][i]}")
        (splits / f"{cls}_test_split1.txt").write_text("\n".join(lines) + "\n")
    r = _build(root, tmp_path / "out", "--sampling=uniform", "--num_frames=4",
               "--resize_shorter=24", "--direct_num_workers=1", dataset="hmdb51")
    assert r.returncode == 0, r.stderr
    build_dir = tmp_path / "out" / "hmdb51" / "split1_uniform4_short24_jpeg90"
    info = _info(build_dir)
    assert info["classes"] == ["brush_hair", "fall_floor"]
    assert info["unused"] == {"unused_in_split": 2}
    assert info["splits"]["train"]["per_class"] == {"brush_hair": 2, "fall_floor": 2}
    assert info["splits"]["test"]["per_class"] == {"brush_hair": 2, "fall_floor": 2}
    listed = sum(s["listed"] for s in info["splits"].values()) + sum(info["unused"].values())
    written = sum(s["num_examples"] for s in info["splits"].values())
    quarantined = sum(s["quarantined"] for s in info["splits"].values())
    assert listed == 10 == written + quarantined + sum(info["unused"].values())
    assert run_module("pipeline.verify", str(build_dir)).returncode == 0


def test_verify_catches_a_corrupt_and_a_missing_shard(ucf_tree, tmp_path):
    r = _build(ucf_tree, tmp_path, "--sampling=uniform", "--num_frames=4", "--size=16x16",
               "--num_shards=3", "--config_name=v", "--direct_num_workers=1")
    assert r.returncode == 0, r.stderr
    build_dir = tmp_path / "ucf101" / "v"
    shards = _info(build_dir)["splits"]["train"]["shards"]
    assert len(shards) == 3
    corrupt = build_dir / shards[0]
    data = bytearray(corrupt.read_bytes())
    data[len(data) // 2] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    (build_dir / shards[1]).unlink()
    v = run_module("pipeline.verify", str(build_dir))
    assert v.returncode == 1
    assert f"missing shard {shards[1]}" in v.stderr
    assert f"{shards[0]}: unreadable after" in v.stderr
    assert "train: " in v.stderr and "dataset_info says 15" in v.stderr
    assert "Traceback" not in v.stderr


def test_verify_catches_count_mismatch_and_unknown_schema(ucf_tree, tmp_path):
    r = _build(ucf_tree, tmp_path, "--sampling=uniform", "--num_frames=2", "--size=16x16",
               "--config_name=c", "--direct_num_workers=1")
    assert r.returncode == 0, r.stderr
    info_path = tmp_path / "ucf101" / "c" / schema.DATASET_INFO_FILE
    info = json.loads(info_path.read_text())
    info["splits"]["test"]["per_class"]["MoveUp"] = 3
    info_path.write_text(json.dumps(info))
    v = run_module("pipeline.verify", str(info_path.parent))
    assert v.returncode == 1
    assert "test/MoveUp: 2 records read, dataset_info says 3" in v.stderr
    info["schema_version"] = "2.0"
    info_path.write_text(json.dumps(info))
    v = run_module("pipeline.verify", str(info_path.parent))
    assert v.returncode == 1 and "schema_version '2.0'" in v.stderr


@pytest.mark.parametrize("args, expected", [
    (("--dataset=ucf101", "--output_dir=OUT"), ["no --data_dir given", "classInd.txt",
                                                 "crcv.ucf.edu", "never downloads"]),
    (("--dataset=ucf101", "--data_dir=EMPTY", "--output_dir=OUT"), ["classInd.txt"]),
    (("--dataset=hmdb51", "--data_dir=EMPTY", "--output_dir=OUT"),
     ["testTrainMulti_7030_splits"]),
    (("--dataset=folder", "--data_dir=EMPTY", "--output_dir=OUT"), ["<class_a>"]),
    (("--dataset=ucf101", "--data_dir=EMPTY"), ["--output_dir is required"]),
    (("--data_dir=EMPTY", "--output_dir=OUT"), ["--dataset is required"]),
    (("--dataset=folder", "--data_dir=EMPTY", "--output_dir=OUT", "--sampling=uniform"),
     ["needs num_frames"]),
    (("--dataset=folder", "--data_dir=EMPTY", "--output_dir=OUT", "--size=12"), ["WIDTHxHEIGHT"]),
    (("--dataset=nosuch", "--output_dir=OUT"), ["--dataset"]),
])
def test_user_mistakes_print_what_was_expected(tmp_path, args, expected):
    (tmp_path / "empty").mkdir()
    args = [a.replace("EMPTY", str(tmp_path / "empty")).replace("OUT", str(tmp_path / "o"))
            for a in args]
    env = {"ACTIONFLOW_DATA_DIR": str(tmp_path / "nothing-here"), "HOME": str(tmp_path)}
    r = run_module("pipeline.build", *args, env=env)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    for text in expected:
        assert text in r.stderr
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").rglob("*.tfrecord*"))


def test_default_data_dir_comes_from_the_environment(ucf_tree, tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    os.symlink(ucf_tree, root / "ucf101")
    r = run_module("pipeline.build", "--dataset=ucf101", f"--output_dir={tmp_path / 'o'}",
                   "--sampling=uniform", "--num_frames=2", "--size=8x8",
                   "--max_examples_per_split=1", "--direct_num_workers=1",
                   env={"ACTIONFLOW_DATA_DIR": str(root)})
    assert r.returncode == 0, r.stderr
    assert f"ucf101 from {root / 'ucf101'}" in r.stderr


def test_help_explains_every_flag():
    r = run_module("pipeline.build", "--help")
    assert r.returncode == 0
    for flag in ("dataset", "data_dir", "output_dir", "split_id", "val_fraction", "sampling",
                 "num_frames", "stride", "fps", "indices", "short", "crop", "resize_shorter",
                 "size", "image_format", "jpeg_quality", "num_shards", "max_examples_per_split",
                 "overwrite", "max_failure_ratio", "truncation_tolerance", "config_name",
                 "verbose"):
        assert f"--{flag}:" in r.stdout or f"--[no]{flag}:" in r.stdout, flag
    # Beam's notice that its optional Google Cloud client is absent is not shown.
    assert "apitools" not in r.stderr + r.stdout
