"""Keypoint windows from ``make_keypoint_dataset``: exact frames, people, masks, labels.

Every value written here encodes where it came from:
``values[t, p, v, c] = 1000 p + 10 t + 3 v + c`` (V=2 points, C=3 coords).
"""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from test_reader import elements, write_build, write_shard
from tfrecords import reader, schema

V, C = 2, 3


def sequence(n: int, people: int = 2, *, label: int = 1, video_id: str = "") -> bytes:
    t, p, v, c = np.meshgrid(np.arange(n), np.arange(people), np.arange(V), np.arange(C),
                             indexing="ij")
    values = (1000 * p + 10 * t + 3 * v + c).astype(np.float32)
    mask = ((t[..., 0] + p[..., 0] + v[..., 0]) % 4 != 0).astype(np.float32)
    return schema.encode_keypoints(values, mask, label=label, video_id=video_id or f"s{n}",
                                   layout="TEST", frame_labels=[i % 3 for i in range(n)])


def person0(frames) -> np.ndarray:
    """Expected keypoints of person 0 for these frame indices: [len, V*C]."""
    return np.array([[10 * t + 3 * v + c for v in range(V) for c in range(C)] for t in frames],
                    np.float32)


def mask0(frames) -> np.ndarray:
    return np.array([[float((t + v) % 4 != 0) for v in range(V)] for t in frames], np.float32)


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    root = tmp_path_factory.mktemp("kp") / "build"
    return write_build(root, {"test": [[sequence(11, label=2, video_id="a"),
                                        sequence(3, label=0, video_id="b")]],
                              "long": [[sequence(11)]]},
                       classes=("x", "y", "z"), modality="keypoints",
                       extra={"keypoints": {"max_people": 2, "coords": "xyc"}})


def test_eval_windows_cover_every_frame_in_order(build):
    ds = reader.make_keypoint_dataset(build, "test", training=False, batch_size=8, window=4,
                                      window_shift=3, num_people=1, num_points=V,
                                      with_metadata=True)
    assert ds.element_spec[0]["keypoints"].shape.as_list() == [None, 4, V * C]
    (features, label, meta), = elements(ds)
    starts = [0, 3, 6, 7]                                    # 0, 3, 6 and the last, 11 - 4
    assert meta["window_start"].tolist() == starts + [0]
    assert meta["video_id"].tolist() == [b"a"] * 4 + [b"b"]
    assert label.tolist() == [2, 2, 2, 2, 0]
    for row, s in enumerate(starts):
        np.testing.assert_array_equal(features["keypoints"][row], person0(range(s, s + 4)))
        np.testing.assert_array_equal(features["mask"][row], mask0(range(s, s + 4)))
        assert features["frame_labels"][row].tolist() == [t % 3 for t in range(s, s + 4)]
    # The 3-frame sequence is padded: zeros, mask 0, label -1, valid 0.
    np.testing.assert_array_equal(features["keypoints"][4], np.concatenate(
        [person0(range(3)), np.zeros((1, V * C), np.float32)]))
    assert features["valid"].tolist() == [[1, 1, 1, 1]] * 4 + [[1, 1, 1, 0]]
    assert features["frame_labels"][4].tolist() == [0, 1, 2, -1]
    assert features["mask"][4, 3].tolist() == [0, 0]


@pytest.mark.parametrize("short, expected", [("loop", [0, 1, 2, 0]),
                                             ("repeat_last", [0, 1, 2, 2])])
def test_short_sequences_loop_or_repeat(build, short, expected):
    ds = reader.make_keypoint_dataset(build, "test", training=False, batch_size=8, window=4,
                                      short=short, num_people=1, with_metadata=True)
    (features, _, meta), = elements(ds)
    assert meta["frame_indices"][-1].tolist() == expected
    np.testing.assert_array_equal(features["keypoints"][-1], person0(expected))
    assert features["valid"][-1].tolist() == [1, 1, 1, 1]


def test_training_window_offsets_cover_the_valid_range(build):
    ds = reader.make_keypoint_dataset(build, "long", training=True, batch_size=50, window=4,
                                      stride=2, seed=3, num_people=1, target="frames")
    got = elements(ds, 4)
    keypoints = np.concatenate([g[0]["keypoints"] for g in got])
    frames = (keypoints[:, :, 0] // 10).astype(int)          # [200, 4] frame of each step
    starts = frames[:, 0]
    np.testing.assert_array_equal(frames, starts[:, None] + 2 * np.arange(4))
    assert set(starts.tolist()) == set(range(5))             # 0 .. 11 - 7
    target = np.concatenate([g[1] for g in got])
    np.testing.assert_array_equal(target, frames % 3)        # target="frames": frame labels


def test_people_are_truncated_or_zero_padded(build):
    ds = reader.make_keypoint_dataset(build, "long", training=False, batch_size=4, window=2,
                                      window_shift=9, num_people=3)
    (features, _), = elements(ds)
    k = features["keypoints"].reshape(-1, 2, 3, V * C)       # [windows, W, people, V*C]
    np.testing.assert_array_equal(k[0, :, 0], person0([0, 1]))
    np.testing.assert_array_equal(k[0, :, 1], person0([0, 1]) + 1000)
    assert (k[:, :, 2] == 0).all()
    m = features["mask"].reshape(-1, 2, 3, V)
    assert (m[:, :, 2] == 0).all() and m[:, :, 1].any()
    # Default people: the build's max_people (2); coords from its "xyc".
    ds = reader.make_keypoint_dataset(build, "long", training=False, batch_size=4, window=2,
                                      num_points=V)
    assert ds.element_spec[0]["keypoints"].shape.as_list() == [None, 2, 2 * V * C]


def test_one_hot_clip_labels(build):
    ds = reader.make_keypoint_dataset(build, "test", training=False, batch_size=8, window=8,
                                      one_hot=True)
    (_, target), = elements(ds)
    np.testing.assert_array_equal(target, [[0, 0, 1], [0, 0, 1], [1, 0, 0]])


def test_sample_windows_eagerly_and_in_graph():
    spec = reader.KeypointSpec(training=True, window=5, stride=3)
    seed = tf.constant([4, 2], tf.int64)
    eager = reader.sample_windows(40, spec, seed)
    graph = tf.function(reader.sample_windows, autograph=False)(tf.constant(40), spec, seed)
    np.testing.assert_array_equal(eager[0].numpy(), graph[0].numpy())
    start = int(eager[1].numpy()[0])
    assert 0 <= start <= 40 - 13
    assert eager[0].numpy().tolist() == [[start + 3 * j for j in range(5)]]


def test_records_without_dataset_info_read_by_pattern(tmp_path):
    write_shard(tmp_path / "kp-00000", [sequence(6, people=1, label=4)])
    ds = reader.make_keypoint_dataset(str(tmp_path / "kp-*"), training=False, batch_size=2,
                                      window=3)
    (features, label), = elements(ds)
    np.testing.assert_array_equal(features["keypoints"], [person0(range(3)), person0(range(3, 6))])
    assert label.tolist() == [4, 4]
