"""The build's PTransforms in memory (TestPipeline + assert_that) and its small helpers."""
from __future__ import annotations

import pathlib

import apache_beam as beam
import cv2
import numpy as np
import pytest
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline import build, transforms, video
from pipeline.sources.base import Item, stable_fraction
from tfrecords import schema


def _pipeline():
    return test_pipeline.TestPipeline(runner="FnApiRunner")


def _encoded(split, slot, label_text="a", label=0, frames=2, record=b"r"):
    return transforms.Encoded(split, slot, f"{label_text}/{split}{slot}.avi", label, label_text,
                              frames, record)


def test_count_per_class():
    records = [_encoded("train", 0, "a", frames=2), _encoded("train", 1, "a", frames=3),
               _encoded("train", 2, "b", 1), _encoded("test", 0, "a", frames=4),
               _encoded("train", 3, "a", frames=5)._replace(part=1),      # a second window
               _encoded("test", 1, "", label=-1, frames=1)]               # unlabelled
    with _pipeline() as p:
        out = p | beam.Create(records) | transforms.CountPerClass()
        assert_that(out, equal_to([
            {"split": "train", "class": "a", "num_examples": 3, "num_items": 2,
             "num_frames": 10},
            {"split": "train", "class": "b", "num_examples": 1, "num_items": 1, "num_frames": 2},
            {"split": "test", "class": "a", "num_examples": 1, "num_items": 1, "num_frames": 4},
            {"split": "test", "class": None, "num_examples": 1, "num_items": 1,
             "num_frames": 1},
        ]))


def test_write_splits_shards_by_slot_without_shuffling_records(tmp_path):
    records = [_encoded("train", s, record=f"train-{s}".encode()) for s in range(5)]
    records += [_encoded("val", 0, record=b"val-0")]
    with _pipeline() as p:
        out = (p | beam.Create(list(reversed(records)))
               | transforms.WriteSplits(str(tmp_path), {"train": 2, "val": 1}))
        framed = lambda payloads: sum(len(schema.frame_record(x)) for x in payloads)  # noqa
        assert_that(out, equal_to([
            {"split": "train", "name": "train.tfrecord-00000-of-00002", "index": 0,
             "num_examples": 3, "num_bytes": framed([b"train-0", b"train-2", b"train-4"])},
            {"split": "train", "name": "train.tfrecord-00001-of-00002", "index": 1,
             "num_examples": 2, "num_bytes": framed([b"train-1", b"train-3"])},
            {"split": "val", "name": "val.tfrecord-00000-of-00001", "index": 0,
             "num_examples": 1, "num_bytes": framed([b"val-0"])},
        ]))
    import tensorflow as tf
    got = sorted(r.numpy() for r in tf.data.TFRecordDataset(
        str(tmp_path / "train.tfrecord-00000-of-00002")))
    assert got == [b"train-0", b"train-2", b"train-4"]
    assert list((tmp_path / transforms.PARTS_DIR).iterdir()) == []     # parts were merged


def test_shard_counts_from_a_sample_of_encoded_items(tmp_path, small_video):
    settings = transforms.BuildSettings(video.SamplingSpec("uniform", num_frames=4),
                                        video.FrameSpec(size=(16, 16), image_format="raw"))
    items = [(i, Item(str(small_video), f"c/{i}.avi", "train" if i < 6 else "test", 0, "c"))
             for i in range(8)]
    record = schema.encode_clip([b"\0" * 16 * 16 * 3] * 4, label=0, label_text="c",
                                video_id="c/0.avi", image_format="raw", height=16, width=16)
    assert transforms.estimate_record_bytes(items, settings) == pytest.approx(
        len(record) + 16, abs=64)
    assert transforms.shard_counts_for(items, settings, 0) == {"train": 1, "test": 1}
    assert transforms.shard_counts_for(items, settings, 4) == {"train": 4, "test": 2}
    bad = [(0, Item(str(tmp_path / "missing.avi"), "c/m.avi", "train", 0, "c"))]
    assert transforms.estimate_record_bytes(bad, settings) == 0.0


@pytest.fixture()
def small_video(tmp_path) -> pathlib.Path:
    path = tmp_path / "v.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 24))
    for i in range(12):
        w.write(np.full((24, 32, 3), 10 * i, np.uint8))
    w.release()
    return path


def test_make_records_routes_good_and_bad_items(small_video, tmp_path):
    settings = transforms.BuildSettings(video.SamplingSpec("uniform", num_frames=4),
                                        video.FrameSpec(size=(16, 16), image_format="png"))
    good = Item(str(small_video), "c/v.avi", "train", 1, "c")
    missing = Item(str(tmp_path / "nope.avi"), "c/nope.avi", "test", 1, "c")
    (tmp_path / "progress").mkdir()
    with _pipeline() as p:
        out = (p | beam.Create([(7, good), (0, missing)])
               | beam.ParDo(transforms.MakeRecords(settings, str(tmp_path / "progress")))
               .with_outputs(transforms.MakeRecords.FAILED, main="ok"))
        summary = out.ok | beam.Map(lambda r: (r.split, r.slot, r.video_id, r.label, r.num_frames,
                                               schema_indices(r.record)))
        assert_that(summary, equal_to([("train", 7, "c/v.avi", 1, 4, [0, 4, 7, 11])]),
                    label="ok")
        assert_that(out[transforms.MakeRecords.FAILED], equal_to([{
            "path": str(tmp_path / "nope.avi"), "video_id": "c/nope.avi", "split": "test",
            "stage": "decode", "reason": "missing_file", "detail": "the file does not exist"}]),
            label="failed")
    # one progress byte per processed item, whatever the outcome
    assert sum(f.stat().st_size for f in (tmp_path / "progress").iterdir()) == 2


def schema_indices(record: bytes) -> list[int]:
    parsed = schema.parse_clip(record)
    return parsed["source_indices"].numpy().tolist()


@pytest.mark.parametrize("count, num_bytes, requested, expected", [
    (0, 0, 0, 0),
    (10, 1, 0, 1),
    (10, transforms.TARGET_SHARD_BYTES * 3 + 1, 0, 4),
    (2, transforms.TARGET_SHARD_BYTES * 30, 0, 2),
    (10, 1, 4, 4),
    (3, 1, 16, 3),
])
def test_num_shards_for(count, num_bytes, requested, expected):
    assert transforms.num_shards_for(count, num_bytes, requested) == expected


def test_select_items_is_stable_hash_ordered_and_capped():
    items = [Item(f"/d/{i}.avi", f"c/{i}.avi", "train" if i % 3 else "test", 0, "c")
             for i in range(12)]
    selected = build.select_items(list(reversed(items)), max_per_split=3)
    for split in ("train", "test"):
        mine = [it for _, it in selected if it.split == split]
        expected = sorted((it for it in items if it.split == split),
                          key=lambda it: stable_fraction(it.video_id))[:3]
        assert mine == expected
        assert [slot for slot, it in selected if it.split == split] == [0, 1, 2]
    assert build.select_items(items, None) == build.select_items(list(reversed(items)), None)


@pytest.mark.parametrize("sampling, frame, dataset, expected", [
    (video.SamplingSpec("uniform", num_frames=16), video.FrameSpec(resize_shorter=128),
     "ucf101", "split1_uniform16_short128_jpeg90"),
    (video.SamplingSpec("all", fps=10), video.FrameSpec(crop="center_square", size=(112, 112),
                                                        image_format="png"),
     "folder", "all10fps_square_112x112_png"),
    (video.SamplingSpec("stride", stride=2, num_frames=8), video.FrameSpec(image_format="raw"),
     "hmdb51", "split1_stride2x8_raw"),
    (video.SamplingSpec("indices", indices=(3, 6, 9)), video.FrameSpec(jpeg_quality=75),
     "folder", "indices3_jpeg75"),
])
def test_default_config_name(sampling, frame, dataset, expected):
    settings = transforms.BuildSettings(sampling, frame)
    assert build.default_config_name(settings, dataset, 1) == expected
