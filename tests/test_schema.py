"""Tests for tfrecords/schema.py: the record layout, its wire format and framing.

Every check compares against TensorFlow's own protobuf classes, parsers and
TFRecord reader, so a hand-written encoder that drifts from the real format fails.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from tfrecords import schema

T = 5  # frames per test clip


def _frames(height: int, width: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8) for _ in range(T)]


def _parse_eager(record: bytes, image_format: str) -> dict:
    out = schema.parse_clip(tf.constant(record))
    out["decoded"] = schema.decode_frames(out["frames"], image_format,
                                          out["height"], out["width"])
    return {k: v.numpy() for k, v in out.items()}


def _parse_in_dataset(record: bytes, image_format: str) -> dict:
    def fn(serialized):
        out = schema.parse_clip(serialized)
        out["decoded"] = schema.decode_frames(out["frames"], image_format,
                                              out["height"], out["width"])
        return out

    ds = tf.data.Dataset.from_tensor_slices([record]).map(fn)
    items = [{k: v.numpy() for k, v in item.items()} for item in ds]
    assert len(items) == 1
    return items[0]


PARSERS = pytest.mark.parametrize("parse", [_parse_eager, _parse_in_dataset],
                                  ids=["eager", "dataset_map"])


# --------------------------------------------------------------------------
# Round trips through parse_clip + decode_frames.
# --------------------------------------------------------------------------
@PARSERS
def test_png_round_trip_is_lossless_and_carries_the_context(parse):
    frames = _frames(6, 7, seed=1)
    record = schema.encode_clip(
        frames, image_format="png", label=3, label_text="ApplyEyeMakeup",
        video_id="v_ApplyEyeMakeup_g08_c01", fps=30.0, source_indices=[100, 101, 102, 103, 104],
        short_policy="loop")
    out = parse(record, "png")

    assert out["decoded"].dtype == np.uint8
    assert out["decoded"].shape == (T, 6, 7, 3)
    np.testing.assert_array_equal(out["decoded"], np.stack(frames))
    assert all(f.startswith(b"\x89PNG\r\n\x1a\n") for f in out["frames"])
    assert out["num_frames"] == T
    assert out["label"] == 3
    assert out["label_text"] == b"ApplyEyeMakeup"
    assert out["video_id"] == b"v_ApplyEyeMakeup_g08_c01"
    assert out["fps"] == np.float32(30.0)
    # Default timestamps: round(i * 1e6 / fps).
    assert out["timestamps_us"].tolist() == [0, 33333, 66667, 100000, 133333]
    assert out["start_us"] == 0
    assert out["end_us"] == 133333
    assert out["source_indices"].tolist() == [100, 101, 102, 103, 104]
    assert out["source_num_frames"] == 105  # max(source_indices) + 1 by default
    assert out["short_policy"] == b"loop"
    assert (out["height"], out["width"], out["channels"]) == (6, 7, 3)
    assert out["image_format"] == b"png"


@PARSERS
def test_pre_encoded_jpeg_bytes_are_stored_unchanged(parse):
    arrays = _frames(24, 32, seed=2)
    encoded = [tf.io.encode_jpeg(a, quality=75).numpy() for a in arrays]
    record = schema.encode_clip(
        encoded, image_format="jpeg", label=7, fps=25.0,
        timestamps_us=[5, 40_005, 80_005, 120_005, 2**40], source_num_frames=999)
    out = parse(record, "jpeg")

    assert out["frames"].tolist() == encoded
    expected = np.stack([tf.io.decode_jpeg(e, channels=3).numpy() for e in encoded])
    assert out["decoded"].shape == (T, 24, 32, 3)
    np.testing.assert_array_equal(out["decoded"], expected)
    # Height and width sniffed from the JPEG header (not swapped).
    assert (out["height"], out["width"]) == (24, 32)
    assert out["image_format"] == b"jpeg"
    assert out["timestamps_us"].tolist() == [5, 40_005, 80_005, 120_005, 2**40]
    assert (out["start_us"], out["end_us"]) == (5, 2**40)
    assert out["source_indices"].tolist() == [0, 1, 2, 3, 4]
    assert out["source_num_frames"] == 999
    assert out["fps"] == np.float32(25.0)
    assert out["label"] == 7
    assert out["label_text"] == b""
    assert out["video_id"] == b""
    assert out["short_policy"] == b"none"


@PARSERS
def test_jpeg_from_arrays_matches_tf_encoder(parse):
    arrays = _frames(24, 32, seed=3)
    record = schema.encode_clip(arrays, image_format="jpeg", jpeg_quality=80, label=1)
    out = parse(record, "jpeg")
    expected_bytes = [tf.io.encode_jpeg(a, quality=80).numpy() for a in arrays]
    assert out["frames"].tolist() == expected_bytes
    np.testing.assert_array_equal(
        out["decoded"], np.stack([tf.io.decode_jpeg(b).numpy() for b in expected_bytes]))
    assert (out["height"], out["width"]) == (24, 32)
    # fps unknown: every default timestamp is 0.
    assert out["timestamps_us"].tolist() == [0, 0, 0, 0, 0]
    assert out["fps"] == 0.0


@PARSERS
def test_raw_round_trip_from_arrays(parse):
    frames = _frames(6, 7, seed=4)
    record = schema.encode_clip(frames, image_format="raw", label=schema.UNLABELLED)
    out = parse(record, "raw")
    assert out["frames"].tolist() == [f.tobytes() for f in frames]
    assert out["decoded"].shape == (T, 6, 7, 3)
    np.testing.assert_array_equal(out["decoded"], np.stack(frames))
    assert out["label"] == -1
    assert out["image_format"] == b"raw"


@PARSERS
def test_raw_round_trip_from_bytes_with_given_size(parse):
    frames = _frames(6, 7, seed=5)
    record = schema.encode_clip([f.tobytes() for f in frames], image_format="raw",
                                height=6, width=7, label=2)
    out = parse(record, "raw")
    assert (out["height"], out["width"]) == (6, 7)
    np.testing.assert_array_equal(out["decoded"], np.stack(frames))


@PARSERS
def test_pre_encoded_png_size_is_sniffed(parse):
    frames = _frames(6, 7, seed=6)
    encoded = [tf.io.encode_png(f).numpy() for f in frames]
    record = schema.encode_clip(encoded, image_format="png", label=0)
    out = parse(record, "png")
    assert out["frames"].tolist() == encoded
    assert (out["height"], out["width"]) == (6, 7)
    np.testing.assert_array_equal(out["decoded"], np.stack(frames))


def test_image_size_reads_headers_height_first():
    img = np.zeros((24, 32, 3), np.uint8)
    assert schema.image_size(tf.io.encode_png(img).numpy(), "png") == (24, 32)
    assert schema.image_size(tf.io.encode_jpeg(img).numpy(), "jpeg") == (24, 32)
    assert schema.image_size(tf.io.encode_jpeg(img[:6, :7], quality=95).numpy(), "jpeg") == (6, 7)
    with pytest.raises(ValueError, match="not a PNG"):
        schema.image_size(b"GIF89a" + b"\0" * 30, "png")
    with pytest.raises(ValueError, match="not a JPEG"):
        schema.image_size(b"\x89PNG\r\n\x1a\n" + b"\0" * 30, "jpeg")
    with pytest.raises(ValueError, match="'raw'"):
        schema.image_size(b"\0" * 30, "raw")


# --------------------------------------------------------------------------
# The hand-written wire format against TF's protobuf classes.
# --------------------------------------------------------------------------
def _expected_proto(context: dict, feature_lists: dict) -> tf.train.SequenceExample:
    se = tf.train.SequenceExample()
    for key, (kind, values) in context.items():
        getattr(se.context.feature[key], kind).value.extend(values)
    for key, per_frame in feature_lists.items():
        fl = se.feature_lists.feature_list[key]
        for kind, values in per_frame:
            getattr(fl.feature.add(), kind).value.extend(values)
    return se


def test_wire_format_equals_tf_train_sequence_example():
    payloads = [bytes([i]) * 12 for i in range(T)]  # raw 2x2x3 frames
    record = schema.encode_clip(
        payloads, image_format="raw", height=2, width=2, label=12, label_text="Basketball",
        video_id="v_Basketball_g08_c01", fps=29.97, timestamps_us=[-1, 0, 1, 2**40, 2**63 - 1],
        source_indices=[0, 2, 4, 6, 8], short_policy="repeat_last",
        extra_context={"clip/extra/int": 7, "clip/extra/float": 0.5,
                       "clip/extra/str": "héllo", "clip/extra/ints": [-2**63, -1, 0, 2**40]},
        extra_feature_lists={"frame/label/index": [schema.int64_feature([-1]) for _ in range(T)]})
    parsed = tf.train.SequenceExample.FromString(record)

    expected = _expected_proto(
        {
            schema.LABEL_INDEX: ("int64_list", [12]),
            schema.LABEL_TEXT: ("bytes_list", [b"Basketball"]),
            schema.VIDEO_FILENAME: ("bytes_list", [b"v_Basketball_g08_c01"]),
            schema.VIDEO_FPS: ("float_list", [29.97]),
            schema.VIDEO_NUM_FRAMES: ("int64_list", [9]),
            schema.CLIP_START_TIMESTAMP: ("int64_list", [-1]),
            schema.CLIP_END_TIMESTAMP: ("int64_list", [2**63 - 1]),
            schema.CLIP_NUM_FRAMES: ("int64_list", [T]),
            schema.CLIP_SHORT_POLICY: ("bytes_list", [b"repeat_last"]),
            schema.IMAGE_HEIGHT: ("int64_list", [2]),
            schema.IMAGE_WIDTH: ("int64_list", [2]),
            schema.IMAGE_CHANNELS: ("int64_list", [3]),
            schema.IMAGE_FORMAT: ("bytes_list", [b"raw"]),
            "clip/extra/int": ("int64_list", [7]),
            "clip/extra/float": ("float_list", [0.5]),
            "clip/extra/str": ("bytes_list", ["héllo".encode()]),
            "clip/extra/ints": ("int64_list", [-2**63, -1, 0, 2**40]),
        },
        {
            schema.IMAGE_ENCODED: [("bytes_list", [p]) for p in payloads],
            schema.IMAGE_TIMESTAMP: [("int64_list", [t]) for t in [-1, 0, 1, 2**40, 2**63 - 1]],
            schema.IMAGE_SOURCE_INDEX: [("int64_list", [i]) for i in [0, 2, 4, 6, 8]],
            schema.FRAME_LABEL_INDEX: [("int64_list", [-1]) for _ in range(T)],
        })
    assert parsed == expected
    # Spot checks, independent of the helper above.
    ctx = parsed.context.feature
    assert list(ctx["clip/extra/ints"].int64_list.value) == [-2**63, -1, 0, 2**40]
    assert ctx[schema.VIDEO_FPS].float_list.value[0] == pytest.approx(29.97, rel=1e-7)
    assert ctx["clip/extra/str"].bytes_list.value[0].decode() == "héllo"
    ts = parsed.feature_lists.feature_list[schema.IMAGE_TIMESTAMP].feature
    assert [f.int64_list.value[0] for f in ts] == [-1, 0, 1, 2**40, 2**63 - 1]


def test_int64_edges_survive_parse_clip():
    values = [-1, 0, 2**40, -2**40, 2**63 - 1]
    record = schema.encode_clip([b"\x01" * 3] * T, image_format="raw", height=1, width=1,
                                label=-1, timestamps_us=values, source_indices=[0, 1, 2**40, 3, 4])
    out = schema.parse_clip(record)
    assert out["timestamps_us"].numpy().tolist() == values
    assert out["source_indices"].numpy().tolist() == [0, 1, 2**40, 3, 4]
    assert out["source_num_frames"].numpy() == 2**40 + 1
    assert out["label"].numpy() == -1


def test_feature_helpers_against_tf_feature():
    def as_feature(serialized: bytes) -> tf.train.Feature:
        return tf.train.Feature.FromString(serialized)

    f = as_feature(schema.float_feature([]))
    assert f.WhichOneof("kind") == "float_list"
    assert list(f.float_list.value) == []
    f = as_feature(schema.float_feature(np.array([[1.5, -2.0], [0.0, 3.25]])))
    assert list(f.float_list.value) == [1.5, -2.0, 0.0, 3.25]
    f = as_feature(schema.int64_feature([]))
    assert f.WhichOneof("kind") == "int64_list"
    assert list(f.int64_list.value) == []
    f = as_feature(schema.int64_feature([-1, 0, 2**40, 127, 128, -2**63]))
    assert list(f.int64_list.value) == [-1, 0, 2**40, 127, 128, -2**63]
    f = as_feature(schema.bytes_feature([b"", "é", b"\x00\xff" * 100]))
    assert list(f.bytes_list.value) == [b"", "é".encode(), b"\x00\xff" * 100]
    # Context values with an empty float list and a bool.
    record = schema.encode_clip([b"\0" * 3], image_format="raw", height=1, width=1, label=0,
                                extra_context={"x/empty": [], "x/flag": True,
                                               "x/floats": np.array([0.25, 4.0], np.float64)})
    ctx = tf.train.SequenceExample.FromString(record).context.feature
    assert ctx["x/empty"].WhichOneof("kind") == "float_list"
    assert list(ctx["x/empty"].float_list.value) == []
    assert list(ctx["x/flag"].int64_list.value) == [1]
    assert list(ctx["x/floats"].float_list.value) == [0.25, 4.0]


def test_record_written_by_another_tool_parses_with_defaults():
    """Only image/encoded and clip/label/index, built with tf.train (like DMVR)."""
    arrays = _frames(6, 7, seed=7)[:3]
    encoded = [tf.io.encode_jpeg(a).numpy() for a in arrays]
    se = tf.train.SequenceExample()
    se.context.feature["clip/label/index"].int64_list.value.append(42)
    for e in encoded:
        se.feature_lists.feature_list["image/encoded"].feature.add().bytes_list.value.append(e)
    record = se.SerializeToString()

    for out in (_parse_eager(record, "jpeg"), _parse_in_dataset(record, "jpeg")):
        assert out["num_frames"] == 3
        assert out["frames"].tolist() == encoded
        assert out["label"] == 42
        assert out["label_text"] == b""
        assert out["video_id"] == b""
        assert out["fps"] == 0.0
        assert out["timestamps_us"].tolist() == []
        assert out["source_indices"].tolist() == []
        assert out["source_num_frames"] == -1
        assert (out["start_us"], out["end_us"]) == (0, 0)
        assert out["short_policy"] == b"none"
        assert out["image_format"] == b"jpeg"
        assert out["channels"] == 3
        assert (out["height"], out["width"]) == (0, 0)  # unknown: not in the record
        np.testing.assert_array_equal(
            out["decoded"], np.stack([tf.io.decode_jpeg(e).numpy() for e in encoded]))


# --------------------------------------------------------------------------
# TFRecord framing.
# --------------------------------------------------------------------------
def test_frame_record_is_readable_by_tfrecord_dataset(tmp_path):
    records = [schema.encode_clip(_frames(6, 7, seed=8), image_format="png", label=1),
               b"", b"second record \x00\xff"]
    ours = tmp_path / "ours.tfrecord"
    ours.write_bytes(b"".join(schema.frame_record(r) for r in records))

    assert [r.numpy() for r in tf.data.TFRecordDataset(str(ours))] == records
    theirs = tmp_path / "theirs.tfrecord"
    with tf.io.TFRecordWriter(str(theirs)) as writer:
        for r in records:
            writer.write(r)
    assert ours.read_bytes() == theirs.read_bytes()
    assert len(schema.frame_record(b"")) == 16  # u64 length, 2 CRCs, no payload


@pytest.mark.parametrize("where", ["payload", "length"])
def test_a_flipped_byte_is_a_data_loss_error(tmp_path, where):
    first, second = b"first record", b"second record"
    data = bytearray(schema.frame_record(first) + schema.frame_record(second))
    offset = len(schema.frame_record(first))
    data[offset + (12 + 3 if where == "payload" else 0)] ^= 0x01
    path = tmp_path / "bad.tfrecord"
    path.write_bytes(bytes(data))
    it = iter(tf.data.TFRecordDataset(str(path)))
    assert next(it).numpy() == first
    with pytest.raises(tf.errors.DataLossError):
        next(it)


# --------------------------------------------------------------------------
# dataset_info.json and shard names.
# --------------------------------------------------------------------------
INFO = {"num_classes": 3, "classes": ["a", "b", "c"], "splits": {"train": 10}, "fps": 12.5}


def test_dataset_info_json_round_trip():
    text = schema.dataset_info_to_json(INFO)
    assert json.loads(text)["schema_version"] == "1.0"
    back = schema.dataset_info_from_json(text)
    assert back == {**INFO, "schema_version": "1.0"}
    assert "schema_version" not in INFO  # the input is not modified
    # A minor version of the same major is read.
    assert schema.dataset_info_from_json('{"schema_version": "1.7"}') == {"schema_version": "1.7"}


def test_write_and_read_dataset_info(tmp_path):
    path = schema.write_dataset_info(str(tmp_path) + "/", INFO)
    assert path == str(tmp_path / "dataset_info.json")
    assert json.loads((tmp_path / "dataset_info.json").read_text())["num_classes"] == 3
    expected = {**INFO, "schema_version": schema.SCHEMA_VERSION}
    assert schema.read_dataset_info(str(tmp_path)) == expected
    assert schema.read_dataset_info(path) == expected


def test_dataset_info_newer_major_version_is_refused(tmp_path):
    (tmp_path / "dataset_info.json").write_text(json.dumps({**INFO, "schema_version": "2.0"}))
    with pytest.raises(schema.SchemaVersionError, match=r"schema_version '2\.0'") as e:
        schema.read_dataset_info(str(tmp_path))
    assert str(tmp_path / "dataset_info.json") in str(e.value)
    assert "1.x" in str(e.value)
    assert isinstance(e.value, ValueError)
    with pytest.raises(schema.SchemaVersionError, match=r"\(missing\)"):
        schema.dataset_info_from_json('{"num_classes": 3}')


def test_dataset_info_missing_and_invalid(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset_info.json"):
        schema.read_dataset_info(str(tmp_path))
    with pytest.raises(FileNotFoundError):
        schema.read_dataset_info(str(tmp_path / "elsewhere.json"))
    (tmp_path / "dataset_info.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON") as e:
        schema.read_dataset_info(str(tmp_path))
    assert not isinstance(e.value, schema.SchemaVersionError)
    with pytest.raises(ValueError, match="JSON object"):
        schema.dataset_info_from_json("[1, 2]")


def test_shard_name():
    assert schema.shard_name("train", 3, 16) == "train.tfrecord-00003-of-00016"
    assert schema.shard_name("test", 0, 1) == "test.tfrecord-00000-of-00001"


# --------------------------------------------------------------------------
# encode_clip errors.
# --------------------------------------------------------------------------
def test_encode_clip_rejects_bad_input():
    good = _frames(6, 7)
    with pytest.raises(ValueError, match="at least one frame"):
        schema.encode_clip([], label=0)
    with pytest.raises(ValueError, match="uint8"):
        schema.encode_clip([f.astype(np.float32) for f in good], label=0)
    with pytest.raises(ValueError, match="uint8"):
        schema.encode_clip([f[..., 0] for f in good], label=0)  # grey [H, W]
    with pytest.raises(ValueError, match="same size"):
        schema.encode_clip([good[0], good[1][:5]], image_format="png", label=0)
    with pytest.raises(ValueError, match="image_format"):
        schema.encode_clip(good, image_format="gif", label=0)
    with pytest.raises(ValueError, match="one value per frame"):
        schema.encode_clip(good, image_format="raw", label=0, timestamps_us=[0, 1])
    with pytest.raises(ValueError, match="'raw'"):
        schema.encode_clip([f.tobytes() for f in good], image_format="raw", label=0)


def test_encode_clip_checks_the_dtype_of_every_frame():
    """A float frame after a uint8 one must not be silently truncated to uint8."""
    good = _frames(6, 7)
    with pytest.raises(ValueError, match="uint8"):
        schema.encode_clip([good[0], good[1].astype(np.float32) / 255], image_format="raw",
                           label=0)


@pytest.mark.parametrize("coords", [3, 2])
def test_keypoint_records_are_the_canonical_protobuf_bytes(coords):
    """The per-frame fast paths (``float_rows``, ``int64_rows``) write exactly the bytes
    protobuf's own deterministic serialiser writes for the same message."""
    rng = np.random.default_rng(coords)
    t = 17
    values = rng.normal(size=(t, 2, 25, coords)).astype(np.float32)
    mask = (rng.random((t, 2, 25)) > 0.3).astype(np.float32)
    record = schema.encode_keypoints(
        values, mask, label=3, label_text="kick", video_id="a/b#4", layout="BODY_25",
        point_names=[f"p{i}" for i in range(25)], fps=29.97,
        timestamps_us=[-5, 0, 127, 128, 16383, 16384, 2**40, 2**63 - 1] + list(range(9)),
        source_indices=list(range(100_000, 100_000 + t)),
        frame_labels=list(rng.integers(-1, 5, t)), extra_context={"image/width": 1920})
    parsed = tf.train.SequenceExample.FromString(record)
    assert parsed.SerializeToString(deterministic=True) == record
    rows = parsed.feature_lists.feature_list[schema.KEYPOINTS_VALUES].feature
    np.testing.assert_array_equal([list(f.float_list.value) for f in rows],
                                  values.reshape(t, -1))
    stamps = parsed.feature_lists.feature_list[schema.FRAME_TIMESTAMP].feature
    assert [f.int64_list.value[0] for f in stamps][:8] == [-5, 0, 127, 128, 16383, 16384,
                                                          2**40, 2**63 - 1]


def test_clip_records_are_the_canonical_protobuf_bytes():
    record = schema.encode_clip(
        [bytes([i]) * 12 for i in range(T)], image_format="raw", height=2, width=2, label=1,
        timestamps_us=[0, 33_366, 66_733, 2**35, 2**35 + 1], source_indices=[0, 1, 2, 300, 20_000])
    assert tf.train.SequenceExample.FromString(record).SerializeToString(
        deterministic=True) == record
    assert schema.float_rows(np.zeros((3, 0))) == [schema.float_feature(())] * 3
