"""Exactness tests for tfrecords/reader.py on records whose frames encode their own index.

Frame ``i`` of every clip written here holds pixel ``(y, x) = (i, y, x)``
(stored losslessly as PNG or raw), so each returned pixel tells which frame
and which source position it came from. The helpers at the top are imported
by the other ``test_reader_*.py`` files.
"""
from __future__ import annotations

import os
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from tfrecords import reader, schema

CLASSES = ("Swiping Left", "Swiping Right", "Other")
SWAP = {"Swiping Left": "Swiping Right", "Left Swipe": "Right Swipe"}


# --------------------------------------------------------------------------
# Helpers (also used by test_reader_*.py).
# --------------------------------------------------------------------------
def index_frames(n: int, height: int, width: int) -> list[np.ndarray]:
    """n uint8 frames [H, W, 3]; frame i holds pixel (y, x) = (i, y, x)."""
    y, x = np.mgrid[0:height, 0:width]
    return [np.stack([np.full_like(y, i), y, x], axis=-1).astype(np.uint8) for i in range(n)]


def clip(n: int, height: int = 16, width: int = 20, *, label: int = 0, video_id: str = "",
         image_format: str = "png") -> bytes:
    """One serialised clip of n index frames."""
    return schema.encode_clip(index_frames(n, height, width), label=label,
                              label_text=CLASSES[label] if 0 <= label < len(CLASSES) else "",
                              video_id=video_id or f"n{n}_l{label}", image_format=image_format)


def write_shard(path, records: list[bytes]) -> str:
    """A TFRecord file holding the records."""
    with open(path, "wb") as f:
        for r in records:
            f.write(schema.frame_record(r))
    return str(path)


def write_build(root, shards: dict[str, list[list[bytes]]], classes=CLASSES, *,
                image_format: str = "png", modality: str = "video",
                schema_version: str = schema.SCHEMA_VERSION, extra: dict | None = None) -> str:
    """A build directory (shards per split + dataset_info.json); returns its path."""
    root = str(root)
    os.makedirs(root, exist_ok=True)
    splits = {}
    for split, per_shard in shards.items():
        names = [schema.shard_name(split, i, len(per_shard)) for i in range(len(per_shard))]
        for name, records in zip(names, per_shard):
            write_shard(os.path.join(root, name), records)
        splits[split] = {"shards": names, "num_examples": sum(map(len, per_shard))}
    info = {"schema_version": schema_version, "classes": list(classes),
            "num_classes": len(classes), "image_format": image_format, "modality": modality,
            "splits": splits, **(extra or {})}
    with open(os.path.join(root, schema.DATASET_INFO_FILE), "w") as f:
        f.write(schema.dataset_info_to_json(info))
    return root


def elements(ds, limit: int | None = None) -> list:
    """The dataset's first ``limit`` elements as numpy."""
    return [tf.nest.map_structure(lambda t: t.numpy(), e) for e in ds.take(limit or -1)]


def frame_ids(video: np.ndarray) -> np.ndarray:
    """Frame index of each frame of [..., T, H, W, 3] index video (its top-left pixel)."""
    return video[..., 0, 0, 0].astype(int)


def origins(video: np.ndarray) -> np.ndarray:
    """Source (y, x) of the top-left pixel of each view's first frame: [..., 2]."""
    return video[..., 0, 0, 0, 1:].astype(int)


def expected_view(frames: list[int], y: int, x: int, h: int, w: int) -> np.ndarray:
    """The exact uint8 [T, h, w, 3] crop of index frames at (y, x), unflipped."""
    yy, xx = np.mgrid[y:y + h, x:x + w]
    return np.stack([np.stack([np.full_like(yy, i), yy, xx], -1) for i in frames]).astype(np.uint8)


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """train: one 20-frame clip per label; test: 20- and 5-frame clips; 16x20 PNG frames."""
    root = tmp_path_factory.mktemp("reader") / "build"
    return write_build(root, {
        "train": [[clip(20, label=0), clip(20, label=2)]],
        "test": [[clip(20, label=1, video_id="a")], [clip(5, label=2, video_id="b")]],
        "one": [[clip(20, label=0)]],
    })


def one_record(tmp_path, record: bytes, name: str = "r.tfrecord") -> str:
    return write_shard(tmp_path / name, [record])


def _draws(path, n_batches=8, batch_size=50, **kwargs):
    """Training batches from one record file, stacked: (video, label)."""
    kwargs.setdefault("crop_size", None)
    ds = reader.make_dataset(path, training=True, batch_size=batch_size, seed=7,
                             shuffle_buffer=1, image_format="png", **kwargs)
    got = elements(ds, n_batches)
    return np.concatenate([g[0] for g in got]), np.concatenate([g[1] for g in got])


# --------------------------------------------------------------------------
# Temporal sampling.
# --------------------------------------------------------------------------
def test_stride_training_offsets_cover_exactly_the_valid_range(tmp_path):
    path = one_record(tmp_path, clip(20))
    video, _ = _draws(path, num_frames=4, stride=2)
    ids = frame_ids(video)                                   # [400, 4]
    offsets = ids[:, 0]
    np.testing.assert_array_equal(ids, offsets[:, None] + 2 * np.arange(4))
    assert set(offsets.tolist()) == set(range(14))           # 20 - 7 + 1 offsets, all drawn


def test_training_draws_are_seeded(tmp_path):
    path = one_record(tmp_path, clip(20, 24, 40))
    kwargs = dict(training=True, batch_size=8, num_frames=4, stride=2, crop_size=8, flip=True,
                  shuffle_buffer=1, image_format="png")
    a = elements(reader.make_dataset(path, seed=3, **kwargs), 3)
    b = elements(reader.make_dataset(path, seed=3, **kwargs), 3)
    c = elements(reader.make_dataset(path, seed=4, **kwargs), 3)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x[0], y[0])
    assert not all(np.array_equal(x[0], y[0]) for x, y in zip(a, c))


@pytest.mark.parametrize("clips, expected", [
    (1, [[6, 8, 10, 12]]),                                   # centred: offset 13 // 2
    (3, [[0, 2, 4, 6], [7, 9, 11, 13], [13, 15, 17, 19]]),   # offsets 0, 6.5 -> 7, 13
])
def test_stride_eval_clips_are_evenly_spaced(build, clips, expected):
    ds = reader.make_dataset(build, "one", training=False, batch_size=1, num_frames=4, stride=2,
                             num_test_clips=clips, crop_size=None)
    (video, label), = elements(ds)
    assert video.shape == (clips, 4, 16, 20, 3)
    np.testing.assert_array_equal(video, np.stack([expected_view(e, 0, 0, 16, 20)
                                                   for e in expected]))
    assert label.tolist() == [0] * clips


def test_segments_training_draws_one_frame_per_segment(tmp_path):
    video, _ = _draws(one_record(tmp_path, clip(20)), num_frames=4, sampling="segments")
    ids = frame_ids(video)
    for i in range(4):                                       # segment i = [5i, 5i + 5)
        assert set(ids[:, i].tolist()) == set(range(5 * i, 5 * i + 5))


@pytest.mark.parametrize("sampling, clips, expected", [
    ("segments", 1, [[2, 7, 12, 17]]),                       # centres floor((i + .5) * 5)
    ("segments", 2, [[1, 6, 11, 16], [3, 8, 13, 18]]),       # floor((i + (c + .5)/2) * 5)
    ("uniform", 1, [[0, 6, 13, 19]]),                        # round(i * 19/3)
])
def test_segments_and_uniform_eval_indices(build, sampling, clips, expected):
    ds = reader.make_dataset(build, "one", training=False, batch_size=1, num_frames=4,
                             sampling=sampling, num_test_clips=clips, crop_size=None,
                             with_metadata=True)
    (video, _, meta), = elements(ds)
    np.testing.assert_array_equal(frame_ids(video), expected)
    np.testing.assert_array_equal(meta["frame_indices"], expected)


def test_uniform_training_equals_eval_and_single_frame_is_the_middle(tmp_path):
    path = one_record(tmp_path, clip(20))
    video, _ = _draws(path, n_batches=1, batch_size=4, num_frames=4, sampling="uniform")
    np.testing.assert_array_equal(frame_ids(video), [[0, 6, 13, 19]] * 4)
    video, _ = _draws(path, n_batches=1, batch_size=2, num_frames=1, sampling="uniform")
    np.testing.assert_array_equal(frame_ids(video), [[9], [9]])


@pytest.mark.parametrize("sampling, stride, num_frames, short, expected", [
    ("stride", 1, 8, "loop", [0, 1, 2, 3, 4, 0, 1, 2]),
    ("stride", 1, 8, "repeat_last", [0, 1, 2, 3, 4, 4, 4, 4]),
    ("stride", 2, 4, "loop", [0, 2, 4, 0]),                  # span 7 > 5: steps 0, 2, 4
    ("stride", 2, 4, "repeat_last", [0, 2, 4, 4]),
    ("uniform", 1, 7, "loop", [0, 1, 2, 3, 4, 0, 1]),
    ("segments", 1, 7, "repeat_last", [0, 1, 2, 3, 4, 4, 4]),
])
def test_short_records_loop_or_repeat_the_last_frame(build, sampling, stride, num_frames, short,
                                                     expected):
    clips = 1 if sampling == "uniform" else 2
    ds = reader.make_dataset(build, "test", training=False, batch_size=2, num_frames=num_frames,
                             stride=stride, sampling=sampling, short=short,
                             num_test_clips=clips, crop_size=None)
    (video, label), = elements(ds)
    short_clip = frame_ids(video)[clips:]                    # second video: the 5-frame one
    np.testing.assert_array_equal(short_clip, [expected] * clips)
    assert label.tolist() == [1] * clips + [2] * clips
    video, _ = _draws(os.path.join(build, "test.tfrecord-00001-of-00002"), n_batches=1,
                      batch_size=4, num_frames=num_frames, stride=stride, sampling=sampling,
                      short=short)                           # training: the same frames
    np.testing.assert_array_equal(frame_ids(video), [expected] * 4)


# --------------------------------------------------------------------------
# Spatial: crops, resize, flip with label swap.
# --------------------------------------------------------------------------
@pytest.mark.parametrize("height, width, crops, expected", [
    (24, 40, 1, [(4, 12)]),
    (24, 40, 3, [(4, 0), (4, 12), (4, 24)]),                 # along the long side (x)
    (40, 24, 3, [(0, 4), (12, 4), (24, 4)]),                 # portrait: along y
])
def test_eval_crop_positions_are_exact(tmp_path, height, width, crops, expected):
    path = one_record(tmp_path, clip(20, height, width))
    ds = reader.make_dataset(path, training=False, batch_size=1, num_frames=2, stride=3,
                             num_test_clips=2, num_test_crops=crops, crop_size=16,
                             image_format="png", with_metadata=True)
    (video, label, meta), = elements(ds)
    clip_frames = [[0, 3], [16, 19]]                         # offsets 0 and 20 - 4
    want = np.stack([expected_view(f, y, x, 16, 16) for f in clip_frames for y, x in expected])
    np.testing.assert_array_equal(video, want)
    assert meta["view"].tolist() == list(range(2 * crops))
    assert meta["video_index"].tolist() == [0] * 2 * crops


def test_eval_resize_shorter_scales_the_window(tmp_path):
    spec = reader.VideoSpec(training=False, crop_size=(8, 8), resize_shorter=12,
                            num_test_crops=3, image_format="png")
    boxes = reader.crop_boxes(24, 40, spec).numpy()          # 2 source px per output px
    np.testing.assert_array_equal(boxes, [[4, 0, 16, 16], [4, 12, 16, 16], [4, 24, 16, 16]])
    path = one_record(tmp_path, clip(3, 24, 40))
    ds = reader.make_dataset(path, training=False, batch_size=1, num_frames=1, crop_size=8,
                             resize_shorter=12, num_test_crops=3, image_format="png")
    (video, _), = elements(ds)
    assert video.shape == (3, 1, 8, 8, 3)
    # Bilinear 2x down-sampling: output pixel (j, k) averages source rows 4 + 2j, 4 + 2j + 1.
    np.testing.assert_allclose(video[1, 0, :, 0, 1], 4 + 2 * np.arange(8) + 0.5, atol=0.5)
    np.testing.assert_allclose(video[2, 0, 0, :, 2], 24 + 2 * np.arange(8) + 0.5, atol=0.5)


def test_random_crop_windows_are_exact_and_cover_every_position(tmp_path):
    path = one_record(tmp_path, clip(20, 24, 40))
    video, _ = _draws(path, num_frames=3, crop_size=16)
    assert video.shape == (400, 3, 16, 16, 3)
    for v in video:
        (y, x) = origins(v[None])[0]
        np.testing.assert_array_equal(v, expected_view(frame_ids(v).tolist(), y, x, 16, 16))
    o = origins(video)
    assert set(o[:, 0].tolist()) == set(range(9)) and set(o[:, 1].tolist()) == set(range(25))


def test_frames_smaller_than_the_crop_are_scaled_up(tmp_path):
    spec = reader.VideoSpec(training=True, crop_size=(32, 32))
    for seed in range(5):
        box = reader.crop_boxes(16, 20, spec, tf.constant([seed, 1])).numpy()
        assert box[0, 2:].tolist() == [16, 16] and 0 <= box[0, 1] <= 4 and box[0, 0] == 0
    video, _ = _draws(one_record(tmp_path, clip(20)), n_batches=1, batch_size=2, num_frames=2,
                      crop_size=32)
    assert video.shape == (2, 2, 32, 32, 3)


def test_scale_jitter_window_sizes(tmp_path):
    spec = reader.VideoSpec(training=True, crop_size=(16, 16), scale_jitter=(12, 24))
    sizes = {tuple(reader.crop_boxes(24, 40, spec, tf.constant([s, 0])).numpy()[0, 2:])
             for s in range(300)}
    # shorter side s in 12..24 -> window 16 * 24 / s source px, at most the frame height 24.
    expected = {(min(24, int(np.floor(16 * 24 / s + 0.5))),) * 2 for s in range(12, 25)}
    assert sizes == expected


def test_random_resized_crop_area_and_aspect(tmp_path):
    spec = reader.VideoSpec(training=True, crop_size=(16, 16), crop="random_resized",
                            area_range=(0.25, 0.5), aspect_ratio_range=(0.5, 2.0))
    boxes = np.stack([reader.crop_boxes(60, 80, spec, tf.constant([s, 5])).numpy()[0]
                      for s in range(200)])
    y, x, h, w = boxes.T
    assert (y >= 0).all() and (x >= 0).all() and (y + h <= 60).all() and (x + w <= 80).all()
    area = h * w / (60 * 80)
    assert area.min() >= 0.25 - 0.03 and area.max() <= 0.5 + 0.03
    assert area.min() < 0.3 and area.max() > 0.45              # the whole range is drawn
    ratio = w / h
    assert ratio.min() >= 0.5 * 0.9 and ratio.max() <= 2.0 * 1.1 and ratio.min() < 0.7


def test_flip_swaps_the_mirrored_labels_only(build):
    ds = reader.make_dataset(build, "train", training=True, batch_size=50, seed=5,
                             crop_size=None, num_frames=1, flip=True, flip_label_swap=SWAP)
    got = elements(ds, 4)
    video = np.concatenate([g[0] for g in got])[:, 0]          # [200, 16, 20, 3]
    label = np.concatenate([g[1] for g in got])
    flipped = video[:, 0, 0, 2] == 19                          # x of the left column
    unflipped = video[:, 0, 0, 2] == 0
    assert (flipped | unflipped).all() and flipped.any() and unflipped.any()
    xs = np.where(flipped[:, None], 19 - np.arange(20), np.arange(20))
    np.testing.assert_array_equal(video[:, 0, :, 2], xs)
    original = np.where(label == 2, 2, 0)                      # records are labels 0 and 2
    is_left = original == 0
    np.testing.assert_array_equal(label[is_left], np.where(flipped[is_left], 1, 0))
    assert (label[~is_left] == 2).all() and flipped[~is_left].any()


def test_flip_without_swap_keeps_labels_and_eval_never_flips(build):
    ds = reader.make_dataset(build, "one", training=True, batch_size=40, seed=1,
                             crop_size=None, num_frames=1, flip=True)
    (video, label), = elements(ds, 1)
    assert set(video[:, 0, 0, 0, 2].tolist()) == {0, 19} and (label == 0).all()
    ds = reader.make_dataset(build, "one", training=False, batch_size=1, crop_size=None,
                             num_frames=1, flip=True)
    (video, _), = elements(ds)
    assert video[0, 0, 0, 0, 2] == 0


def test_label_swap_table():
    assert reader.label_swap_table(CLASSES, SWAP) == (1, 0, 2)
    assert reader.label_swap_table(CLASSES, {"Swiping Right": "Swiping Left"}) == (1, 0, 2)
    with pytest.raises(ValueError, match="'Swiping Lft' is not a class"):
        reader.label_swap_table(CLASSES, {"Swiping Right": "Swiping Lft"})
    with pytest.raises(ValueError, match="swaps 'Swiping Left' with both"):
        reader.label_swap_table(CLASSES, {"Swiping Left": "Swiping Right",
                                          "Other": "Swiping Left"})
    with pytest.raises(ValueError, match="names none of this dataset's classes"):
        reader.label_swap_table(CLASSES, {"Left Swipe": "Right Swipe"})


def test_colour_jitter_moves_values_within_amplitude(tmp_path):
    path = one_record(tmp_path, clip(4, 64, 8))
    video, _ = _draws(path, n_batches=1, batch_size=20, num_frames=1, crop_size=None,
                      brightness=0.1)
    rows = np.arange(26, 64)                                       # y + delta never clips
    delta = video[:, 0, 26:, :, 1].astype(int) - rows[:, None]
    per_clip = delta.reshape(20, -1)
    assert (per_clip == per_clip[:, :1]).all()                     # one delta per clip
    assert np.abs(per_clip[:, 0]).max() <= 26 and len(set(per_clip[:, 0])) > 5


# --------------------------------------------------------------------------
# Stages eagerly, in tf.function and inside Dataset.map; batching and order.
# --------------------------------------------------------------------------
def _stages(serialized, spec, seed):
    record = reader.parse(serialized)
    plan = reader.sample(record, spec, seed[0])
    frames = reader.decode(record["frames"], plan, spec.image_format, record["height"],
                           record["width"])
    return reader.augment(frames, record["label"], spec, seed[1])


@pytest.mark.parametrize("image_format", ["png", "raw"])
@pytest.mark.parametrize("training", [True, False])
def test_stages_agree_eagerly_in_tf_function_and_in_dataset_map(image_format, training):
    serialized = tf.constant(clip(20, 24, 40, label=1, image_format=image_format))
    spec = reader.VideoSpec(training=training, num_frames=4, stride=2, crop_size=(16, 16),
                            scale_jitter=(16, 30), flip=True, swap_table=(1, 0, 2),
                            num_test_clips=2, num_test_crops=3, brightness=0.2, contrast=0.3,
                            image_format=image_format)
    seed = tf.constant([[11, 12], [13, 14]], tf.int64)
    eager = _stages(serialized, spec, seed)
    graph = tf.function(_stages, autograph=False)(serialized, spec, seed)
    in_map = next(iter(tf.data.Dataset.from_tensors((serialized, seed)).map(
        lambda s, k: _stages(s, spec, k))))
    for other in (graph, in_map):
        np.testing.assert_array_equal(eager[0].numpy(), other[0].numpy())
        np.testing.assert_array_equal(eager[1].numpy(), other[1].numpy())
    assert eager[0].shape == ((1 if training else 6), 4, 16, 16, 3)
    if not training:        # evaluation: exact views, no jitter
        want = [expected_view(f, 4, x, 16, 16) for f in ([0, 2, 4, 6], [13, 15, 17, 19])
                for x in (0, 12, 24)]
        np.testing.assert_array_equal(eager[0].numpy(), np.stack(want))


def test_eval_order_is_deterministic_and_views_regroup(build):
    kwargs = dict(training=False, batch_size=2, num_frames=2, stride=1, num_test_clips=2,
                  num_test_crops=3, crop_size=8, with_metadata=True)
    first = elements(reader.make_dataset(build, "train", **kwargs))
    again = elements(reader.make_dataset(build, "train", **kwargs))
    video, label, meta = first[0]
    assert video.shape == (12, 2, 8, 8, 3) and label.tolist() == [0] * 6 + [2] * 6
    assert meta["video_id"].tolist() == [b"n20_l0"] * 6 + [b"n20_l2"] * 6
    assert meta["video_index"].tolist() == [0] * 6 + [1] * 6
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a[0], b[0])
    grouped = reader.regroup_views(tf.constant(video), 6).numpy()
    assert grouped.shape == (2, 6, 2, 8, 8, 3)
    np.testing.assert_array_equal(grouped[1, 4], video[10])
    # Shards in listed order, records in file order; the last batch is partial.
    ids = [m["video_id"].tolist() for _, _, m in elements(reader.make_dataset(
        build, "test", training=False, batch_size=1, num_frames=2, crop_size=8,
        with_metadata=True))]
    assert ids == [[b"a"], [b"b"]]


def test_one_hot_labels_and_static_training_shapes(build):
    ds = reader.make_dataset(build, "train", training=True, batch_size=3, seed=0, num_frames=2,
                             crop_size=(8, 12), one_hot=True)
    assert ds.element_spec[0].shape == (3, 2, 8, 12, 3)
    assert ds.element_spec[1].shape == (3, 3) and ds.element_spec[1].dtype == tf.float32
    assert elements(ds, 1)[0][0].dtype == np.uint8
    ds = reader.make_dataset(build, "test", training=False, batch_size=2, num_frames=2,
                             crop_size=8, num_test_clips=2, one_hot=True)
    (_, label), = elements(ds)
    np.testing.assert_array_equal(label, [[0, 1, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1]])


def test_cache_gives_the_same_records(build, tmp_path):
    plain = elements(reader.make_dataset(build, "test", training=False, batch_size=2,
                                         num_frames=2, crop_size=8))
    for cache in (True, str(tmp_path / "cache")):
        ds = reader.make_dataset(build, "test", training=False, batch_size=2, num_frames=2,
                                 crop_size=8, cache=cache)
        for _ in range(2):                                   # fills, then reads the cache
            np.testing.assert_array_equal(elements(ds)[0][0], plain[0][0])


# --------------------------------------------------------------------------
# Sources, dataset_info and sharding for tf.distribute.
# --------------------------------------------------------------------------
def test_unknown_schema_major_version_is_refused(tmp_path):
    root = write_build(tmp_path / "b", {"train": [[clip(2)]]}, schema_version="2.1")
    with pytest.raises(schema.SchemaVersionError, match=r"schema_version '2.1'.*reads schema 1"):
        reader.make_dataset(root, "train", training=False, batch_size=1)


def test_source_errors_are_clear(build, tmp_path):
    with pytest.raises(ValueError, match="split 'val' is not in .* it has one, test, train"):
        reader.make_dataset(build, "val", training=False, batch_size=1)
    with pytest.raises(FileNotFoundError, match="no dataset_info.json"):
        reader.make_dataset(str(tmp_path / "missing"), "train", training=False, batch_size=1)
    with pytest.raises(FileNotFoundError, match="no record files match"):
        reader.make_dataset(str(tmp_path / "*.tfrecord"), training=False, batch_size=1)
    keypoints = write_build(tmp_path / "kp", {"train": [[clip(2)]]}, modality="keypoints")
    with pytest.raises(ValueError, match="holds 'keypoints' records"):
        reader.make_dataset(keypoints, "train", training=False, batch_size=1)
    with pytest.raises(ValueError, match="uniform sampling has one clip"):
        reader.make_dataset(build, "train", training=False, batch_size=1, sampling="uniform",
                            num_test_clips=2)


def test_source_from_info_counts_and_classes(build):
    src = reader.open_source(pathlib.Path(build) / schema.DATASET_INFO_FILE, "test")
    assert src.classes == CLASSES and src.image_format == "png" and src.num_examples == 2
    assert [os.path.basename(f) for f in src.files] == [
        "test.tfrecord-00000-of-00002", "test.tfrecord-00001-of-00002"]


def test_input_context_shards_files_and_splits_the_global_batch(tmp_path):
    root = write_build(tmp_path / "b", {"train": [[clip(3, label=0, video_id=f"s{i}")]
                                                  for i in range(4)]})
    ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=1,
                                     num_replicas_in_sync=2)
    ds = reader.make_dataset(root, "train", training=True, batch_size=4, seed=0, num_frames=1,
                             crop_size=4, input_context=ctx, with_metadata=True)
    assert ds.element_spec[0].shape[0] == 2                  # per-replica batch
    ids = {i for _, _, m in elements(ds, 10) for i in m["video_id"].tolist()}
    assert ids == {b"s1", b"s3"}
    ctx = tf.distribute.InputContext(num_input_pipelines=3, input_pipeline_id=2,
                                     num_replicas_in_sync=3)
    few = write_build(tmp_path / "few", {"test": [[clip(3, video_id=f"r{i}") for i in range(7)]]})
    ds = reader.make_dataset(few, "test", training=False, batch_size=3, num_frames=1,
                             crop_size=4, input_context=ctx, with_metadata=True)
    ids = [i for _, _, m in elements(ds) for i in m["video_id"].tolist()]
    assert ids == [b"r2", b"r5"]                             # record-level: every 3rd record


# --------------------------------------------------------------------------
# Images and records written by others.
# --------------------------------------------------------------------------
def test_image_reader_gives_uint8_images(tmp_path):
    root = write_build(tmp_path / "img", {"test": [[clip(1, 24, 40, label=l, video_id=f"i{l}")
                                                    for l in (0, 1, 2)]]}, modality="image")
    ds = reader.make_image_dataset(root, "test", training=False, batch_size=2, crop_size=16,
                                   num_test_crops=3)
    (a, la), (b, lb) = elements(ds)
    assert a.shape == (6, 16, 16, 3) and b.shape == (3, 16, 16, 3)
    np.testing.assert_array_equal(a[4], expected_view([0], 4, 12, 16, 16)[0])
    assert la.tolist() == [0, 0, 0, 1, 1, 1] and lb.tolist() == [2, 2, 2]
    ds = reader.make_image_dataset(root, "test", training=True, batch_size=8, seed=1,
                                   crop_size=16, crop="random")
    images, _ = elements(ds, 1)[0]
    y, x = images[:, 0, 0, 1], images[:, 0, 0, 2]
    assert images.shape == (8, 16, 16, 3) and y.max() <= 8 and x.max() <= 24
    with pytest.raises(TypeError, match="no 'num_frames'"):
        reader.make_image_dataset(root, "test", training=False, batch_size=1, num_frames=2)


def test_dmvr_style_sequence_example_without_context_reads(tmp_path):
    """Only image/encoded and clip/label/index, JPEG, no size: as DMVR writes them."""
    encoded = [tf.io.encode_jpeg(np.full((24, 32, 3), 10 * i, np.uint8)).numpy()
               for i in range(6)]
    ex = tf.train.SequenceExample()
    ex.context.feature[schema.LABEL_INDEX].int64_list.value.append(2)
    frames = ex.feature_lists.feature_list[schema.IMAGE_ENCODED]
    for e in encoded:
        frames.feature.add().bytes_list.value.append(e)
    path = write_shard(tmp_path / "dmvr-00000-of-00001", [ex.SerializeToString()])
    ds = reader.make_dataset(str(tmp_path / "dmvr-*"), training=False, batch_size=1,
                             num_frames=3, stride=2, crop_size=16)
    (video, label), = elements(ds)
    want = np.stack([tf.io.decode_jpeg(encoded[i]).numpy()[4:20, 8:24] for i in (0, 2, 4)])
    np.testing.assert_array_equal(video[0], want)
    assert label.tolist() == [2] and path.endswith("dmvr-00000-of-00001")
