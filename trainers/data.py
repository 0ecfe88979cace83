"""A config's ``data`` section turned into ``tfrecords.reader`` calls, for every entry point.

``reader_kwargs`` is the one place that says what a clip, an image or a keypoint window
is for a config: the keyword arguments of ``reader.make_dataset``,
``reader.make_image_dataset`` or ``reader.make_keypoint_dataset`` that shape one
example (frames, sampling, crops, augmentation in training, evaluation views). How a
split is read (batch, cache, shuffle buffer, seed, drop_remainder, a worker's input
context, metadata) is up to the caller::

    info = data.load_build(config)               # dataset_info.json, checked against config
    kwargs = data.reader_kwargs(config.data, info["modality"], training=False)
    ds = reader.make_dataset(build, "test", training=False, batch_size=8, **kwargs)

Training reads through ``make_input``; ``trainers.evaluate``, ``trainers.beam_evaluate``,
``trainers.keypoint_eval`` and ``trainers.export`` (int8 calibration) through
``reader_kwargs`` or ``make_input``, so they read the clips the model trained on.

Before they read, training and evaluation check the framing and CRCs of their splits'
shards (``check_build``, ``tfrecords.integrity``): a damaged shard is refused with one
line naming it and the byte offset, or left out in training with ``data.on_corrupt
"skip"``. A damaged record that tf.data meets later (a shard damaged after the check)
is named by ``explain_data_error``.
"""
from __future__ import annotations

import sys
from typing import Collection, Sequence

from trainers.models import MODALITIES

ON_CORRUPT = ("fail", "skip")


class ConfigError(ValueError):
    """The config and the records disagree, or the config is invalid (no traceback)."""


class CorruptData(ConfigError):
    """A shard of the build is damaged (one line naming it; exit status 2)."""

    def __init__(self, message: str, damage: Sequence = ()):
        super().__init__(message)
        self.damage = list(damage)


# --------------------------------------------------------------------------
# The build.
# --------------------------------------------------------------------------
def load_build(config) -> dict:
    """Reads the build's dataset_info and checks it against the config."""
    from tfrecords import schema
    from trainers import models
    family = config.model_name
    try:
        want = models.modality(family)
    except ValueError:
        raise ConfigError(f"model_name {family!r} is not a model family; available: "
                          f"{', '.join(models.available())}") from None
    try:
        info = schema.read_dataset_info(config.data.build_dir)
    except FileNotFoundError as e:
        raise ConfigError(f"data.build_dir: {e}") from None
    modality = info.get("modality", "video")
    if modality != want:
        raise ConfigError(f"{family} trains on {want} records but {config.data.build_dir} holds "
                          f"{modality} records")
    for split in (config.data.train_split, config.data.eval_split):
        if split not in info["splits"] or not info["splits"][split]["num_examples"]:
            raise ConfigError(f"split {split!r} has no records in {config.data.build_dir} "
                              f"(it has {', '.join(sorted(info['splits']))})")
    classes = info.get("classes", [])
    if config.data.num_classes and config.data.num_classes != len(classes):
        raise ConfigError(f"the config expects {config.data.num_classes} classes but the "
                          f"build has {len(classes)}: {', '.join(classes)}")
    if modality == "video":
        built = (info.get("sampling") or {}).get("num_frames")
        if built and config.data.num_frames > built and config.data.short == "error":
            raise ConfigError(f"data.num_frames {config.data.num_frames} > the {built} frames "
                              "per record of the build")
    return info


def keypoint_shape(config, info, skip_shards: Collection[str] = ()) -> tuple[int, int, int]:
    """(people, points, coords) of the build's keypoint records, read from the first record
    of the training split (of its first shard not in ``skip_shards``)."""
    import tensorflow as tf
    from tfrecords import schema
    build = config.data.build_dir.rstrip("/")
    shards = [s for s in info["splits"][config.data.train_split]["shards"]
              if s not in skip_shards] or info["splits"][config.data.train_split]["shards"]
    raw = next(iter(tf.data.TFRecordDataset(f"{build}/{shards[0]}")))
    p = schema.parse_keypoints(raw)
    return int(p["num_people"]), int(p["num_points"]), int(p["num_coords"])


def input_shape(config, info, skip_shards: Collection[str] = ()) -> tuple:
    """The model's input shape (without batch) for this config and build."""
    d = config.data
    if info.get("modality") == "keypoints":
        people, points, coords = keypoint_shape(config, info, skip_shards)
        return (d.window, people * points * coords)
    size = (d.crop_size, d.crop_size)
    return size + (3,) if info.get("modality") == "image" else (d.num_frames,) + size + (3,)


def binary_frame_output(config, info) -> bool:
    """Whether the keypoint model ends in one sigmoid unit (binary frame-wise labels)."""
    from trainers import models
    model = models.merged_config(config.model_name, config.model)
    sigmoid = model.output == "sigmoid" or (model.output == "auto" and len(info["classes"]) <= 2)
    return sigmoid and len(info["classes"]) <= 2 and model.binary_single_unit


# --------------------------------------------------------------------------
# The reader.
# --------------------------------------------------------------------------
def reader_kwargs(data, modality: str, *, training: bool) -> dict:
    """What one example is for the config's ``data`` section: the ``tfrecords.reader``
    keyword arguments of ``modality``'s reader (make_dataset, make_image_dataset,
    make_keypoint_dataset).

    In training: the config's crop and augmentation, one view. Otherwise: centre crops,
    no augmentation, ``num_test_clips`` x ``num_test_crops`` views. A config's
    ``short="error"`` (a build too short is refused by ``load_build``) reads as "loop".
    """
    d = data
    if modality == "keypoints":
        return dict(window=d.window, window_shift=d.window_shift or None, target=d.target)
    crop = d.crop if training else "center"
    num_test_crops = 1 if training else d.num_test_crops
    if modality == "image":
        kwargs = dict(crop_size=d.crop_size, crop=crop, num_test_crops=num_test_crops)
        if training:
            kwargs["flip"] = d.flip
        return kwargs
    if modality != "video":
        raise ValueError(f"modality must be one of {', '.join(MODALITIES)}, got {modality!r}")
    kwargs = dict(num_frames=d.num_frames, sampling=d.sampling, stride=d.stride,
                  short=d.short if d.short != "error" else "loop", crop_size=d.crop_size,
                  crop=crop, resize_shorter=d.resize_shorter or None,
                  num_test_clips=1 if training else d.num_test_clips,
                  num_test_crops=num_test_crops)
    if training:
        kwargs.update(flip=d.flip,
                      flip_label_swap=dict(d.flip_label_swap) if d.flip_label_swap else None,
                      brightness=d.brightness, contrast=d.contrast)
    return kwargs


def make_input(config, info, *, training: bool, input_context=None,
               skip_shards: Collection[str] = ()):
    """The tf.data pipeline of one split for Keras: (inputs, targets[, sample weights]).

    Frame-wise keypoint targets come with sample weights (``frame_weights``): the losses
    and the weighted metrics of training count labelled frames only, once each.

    With ``input_context`` (from ``strategy.distribute_datasets_from_function``)
    it is one worker's part of the split, batched per replica. ``skip_shards``: shard
    file names left out (``check_build`` with ``on_corrupt="skip"``)."""
    import tensorflow as tf
    from tfrecords import reader
    d = config.data
    split = d.train_split if training else d.eval_split
    modality = info.get("modality", "video")
    kwargs = dict(reader_kwargs(d, modality, training=training), training=training,
                  batch_size=config.train.batch_size, cache=d.cache,
                  shuffle_buffer=d.shuffle_buffer,
                  seed=config.train.seed if training and config.train.deterministic else None,
                  drop_remainder=training or None)
    if input_context is not None:
        kwargs["input_context"] = input_context
    if skip_shards:
        kwargs["skip_shards"] = tuple(skip_shards)
    if modality in ("image", "video"):
        make = reader.make_image_dataset if modality == "image" else reader.make_dataset
        return _counted(make(d.build_dir, split, **kwargs), info, split, config.train.batch_size,
                        known=not (training or input_context is not None or skip_shards))
    people, points, coords = keypoint_shape(config, info, skip_shards)
    frames = d.target == "frames"
    # Evaluation windows: their starts say which frames an earlier window already holds.
    once = frames and not training
    ds = reader.make_keypoint_dataset(d.build_dir, split, num_people=people, num_points=points,
                                      num_coords=coords, with_metadata=once, **kwargs)
    if not (training or input_context is not None or skip_shards):
        # Windows per sequence vary: count the batches once (keypoints are small), so
        # Keras reads the split to its end without running out of data.
        batches = int(ds.reduce(tf.constant(0, tf.int64), lambda count, *_: count + 1))
        ds = ds.apply(tf.data.experimental.assert_cardinality(batches))
    binary = binary_frame_output(config, info)

    def to_keras(features, target, meta=None):
        if not frames:
            return features["keypoints"], target
        weight = frame_weights(features["valid"], target,
                               meta if once else None, d.window, d.window_shift)
        target = tf.maximum(target, 0)
        if binary:
            target = tf.cast(target, tf.float32)[..., None]
        return features["keypoints"], target, weight
    return ds.map(to_keras, num_parallel_calls=tf.data.AUTOTUNE)


def _counted(ds, info, split: str, batch_size: int, known: bool):
    """``ds`` (one batch per ``batch_size`` records, the last one short), telling tf.data
    and Keras how many batches it has when that is ``known`` from the build's record count:
    Keras then reads a validation split to its end without running out of data. A split
    whose shards hold another count than the build says fails on reading it."""
    if not known:
        return ds
    import tensorflow as tf
    records = int(info["splits"][split]["num_examples"])
    return ds.apply(tf.data.experimental.assert_cardinality(-(-records // batch_size)))


def frame_weights(valid, target, meta=None, window: int = 0, window_shift: int = 0):
    """Sample weights of frame-wise targets [B, W]: 1 on a labelled frame, 0 on padding
    (``valid`` 0) and unlabelled frames (target -1), so losses and weighted metrics count
    labelled frames only.

    With the evaluation windows' ``meta`` (``window_start``, ``frame_indices``; windows of
    ``window`` frames every ``window_shift``, 0 = ``window``), frames an earlier window of
    the sequence already covers weigh 0 too, so each labelled frame counts once (the last
    window of a sequence, placed to end at its last frame, overlaps the one before it).
    The evaluation (``trainers.keypoint_eval``) averages the windows covering a frame
    instead: the two agree exactly where windows do not overlap."""
    import tensorflow as tf
    weight = valid * tf.cast(target >= 0, tf.float32)
    if meta is None:
        return weight
    shift = window_shift or window
    start = tf.cast(meta["window_start"], tf.int32)[:, None]
    # Evaluation windows start at 0, shift, 2 shift, ... and at the sequence's last start:
    # the one before a window starting at s starts at ((s - 1) // shift) * shift.
    covered = tf.where(start > 0, (start - 1) // shift * shift + window, 0)
    return weight * tf.cast(tf.cast(meta["frame_indices"], tf.int32) >= covered, tf.float32)


# --------------------------------------------------------------------------
# Damaged shards.
# --------------------------------------------------------------------------
def verify_hint(build_dir: str) -> str:
    """Where the full check of a build is."""
    from pipeline import cli
    return f"Check the whole build with: {cli.command_line('pipeline.verify', [build_dir])}"


def damage_line(damage: Sequence, build_dir: str, what: str) -> str:
    """One line: the first damaged shard and byte offset, how many more, the full check."""
    first = damage[0]
    more = f" (and {len(damage) - 1} more damaged shard(s))" if len(damage) > 1 else ""
    return (f"damaged shard {first.describe()}{more}; {what}. {verify_hint(build_dir)}")


def check_build(build_dir: str, info: dict, splits: Sequence[str], *, on_corrupt: str = "fail",
                program: str = "train", stream=None) -> list:
    """Checks the framing and CRCs of every shard of ``splits`` (``tfrecords.integrity``).

    ``on_corrupt="fail"``: damage raises ``CorruptData`` (one line naming the shard and
    the byte offset). ``"skip"``: each damaged shard gets a warning line on ``stream``
    (stderr) and is returned, for the reader to leave out (``make_input(skip_shards=)``);
    a split left without shards still raises. Returns the damage skipped (a list of
    ``tfrecords.integrity.Damage``).
    """
    from tfrecords import integrity
    if on_corrupt not in ON_CORRUPT:
        raise ConfigError(f"data.on_corrupt must be one of {', '.join(ON_CORRUPT)}, got "
                          f"{on_corrupt!r}")
    damage = integrity.check_splits(build_dir, list(dict.fromkeys(splits)), info)
    if not damage:
        return []
    if on_corrupt == "fail":
        what = ("training did not start (set --config.data.on_corrupt=skip to train without "
                "damaged shards)" if program == "train" else "the evaluation did not start")
        raise CorruptData(damage_line(damage, build_dir, what), damage)
    stream = stream or sys.stderr
    for d in damage:
        print(f"[{program}] warning: skipping damaged shard {d.describe()} "
              f"(data.on_corrupt=skip)", file=stream, flush=True)
    names = {d.name for d in damage}
    for split in dict.fromkeys(splits):
        shards = info["splits"][split].get("shards", [])
        if shards and all(s in names for s in shards):
            raise CorruptData(damage_line(damage, build_dir, f"every shard of split {split!r} "
                                          f"is damaged, nothing is left to {program} on"), damage)
    return damage


def is_data_error(error: BaseException) -> bool:
    """Whether ``error`` is what tf.data raises on a damaged or unparsable record."""
    import tensorflow as tf
    return isinstance(error, (tf.errors.DataLossError, tf.errors.InvalidArgumentError))


def explain_data_error(error: BaseException, build_dir: str, info: dict,
                       splits: Sequence[str], what: str,
                       ignore: Collection[str] = ()) -> CorruptData | None:
    """A damaged record met mid-run (tf.data's error names no file): the shards of
    ``splits`` (but those in ``ignore``, left out already) are checked again to name it.
    Returns the one-line ``CorruptData``, or None when ``error`` is not a data error."""
    if not is_data_error(error):
        return None
    from tfrecords import integrity
    damage = [d for d in integrity.check_splits(build_dir, list(dict.fromkeys(splits)), info)
              if d.name not in ignore]
    if damage:
        return CorruptData(damage_line(damage, build_dir, what), damage)
    import tensorflow as tf
    first = (str(getattr(error, "message", error)).strip().splitlines() or [""])[0][:200]
    if isinstance(error, tf.errors.DataLossError):
        return CorruptData(f"a record of {build_dir} could not be read ({first}), though "
                           f"every shard's framing and CRCs check out now; {what}. "
                           f"{verify_hint(build_dir)}")
    if any(word in first.lower() for word in ("parse", "jpeg", "png", "decode")):
        return CorruptData(f"a record of {build_dir} could not be parsed or decoded ({first}); "
                           f"its framing and CRCs are whole, so it was written so; {what}. "
                           f"{verify_hint(build_dir)} (it names the record)")
    return None
