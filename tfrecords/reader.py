r"""tf.data input functions over actionflow builds (clips, images, keypoint sequences).

One chain of named stages, the same for every reader::

    shards ─► read ─► [cache] ─► [repeat ─► shuffle]
           ─► map( parse ─► sample ─► decode ─► augment ) ─► batch ─► prefetch

- ``read``: TFRecord shards, interleaved in training; files split between
  input pipelines for ``tf.distribute``.
- ``parse``: one serialised SequenceExample to tensors (``schema.parse_clip``).
- ``sample``: where to read. Frame indices from the record's frame count
  (``stride`` with a random offset, TSN ``segments``, ``uniform``; evenly
  spaced clips in evaluation; short records ``loop`` or ``repeat_last``) and
  crop windows from the frame size (random, random-resized or scale-jittered
  in training; centre or 3 along the long side in evaluation).
- ``decode``: gathers only the sampled encoded frames, decodes each distinct
  one once (jpeg, png or raw) and cuts its windows right away (in training a
  JPEG window is decoded alone with ``decode_and_crop_jpeg``).
- ``augment``: resizes windows to ``crop_size``, flips horizontally with an
  optional label swap by class name, jitters brightness/contrast. Video stays
  uint8 throughout.
- ``batch``: batches videos and folds the evaluation views (clips x crops) of
  each video into the batch axis: B videos -> ``[B * views, T, H, W, 3]``,
  labels repeated per view; ``regroup_views`` undoes it. ``prefetch`` ends it.

Parse, sample, decode and augment run as one ``Dataset.map`` with
``num_parallel_calls=AUTOTUNE``; the functions work eagerly too. Training
reads shards interleaved with ``deterministic=False`` unless a ``seed`` is
given (then order and content are reproducible); evaluation reads shards in
listed order, records in file order, and is deterministic. All paths go
through ``tf.io.gfile``: local, ``gs://``, and ``s3://`` after
``import tensorflow_io``.

    ds = make_dataset("records/ucf101/split1_uniform32_short128_jpeg90", "train",
                      training=True, batch_size=32, num_frames=16, crop_size=112, flip=True)
"""
from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, Mapping, Sequence

import tensorflow as tf

from tfrecords import schema

AUTOTUNE = tf.data.AUTOTUNE
SAMPLINGS = ("stride", "segments", "uniform")
SHORT_POLICIES = ("loop", "repeat_last")
CROPS = ("random", "random_resized", "center")
KEYPOINT_SHORT_POLICIES = ("pad", "loop", "repeat_last")
VIDEO_MODALITIES = ("video", "image")


# --------------------------------------------------------------------------
# Sources: a build directory, its dataset_info.json, or record files.
# --------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Source:
    """What a reader reads: shard paths plus what dataset_info.json says about them."""
    files: tuple[str, ...]
    classes: tuple[str, ...] = ()
    image_format: str | None = None
    num_examples: int | None = None
    info: Mapping[str, Any] | None = None


def open_source(source: str | Sequence[str], split: str | None = None, *,
                modalities: Sequence[str] | None = None,
                skip_shards: Sequence[str] = ()) -> Source:
    """Resolves a build directory, a dataset_info.json, a glob pattern or a list of files.

    A build is read through its dataset_info.json (``schema.read_dataset_info``
    refuses an unknown schema major version with ``SchemaVersionError``); its
    split's shards are the names listed there, relative to the build directory.
    Patterns and lists are records without dataset_info (e.g. written by other
    tools); ``split`` is then ignored. ``skip_shards``: file names (or paths) of
    shards to leave out, e.g. those ``tfrecords.integrity`` found damaged;
    ``num_examples`` is then unknown (None).
    """
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if not isinstance(source, str):
        files = tuple(os.fspath(f) for f in source)
        if not files:
            raise ValueError("no record files given")
        return Source(files)
    if any(c in source for c in "*?["):
        files = tuple(sorted(tf.io.gfile.glob(source)))
        if not files:
            raise FileNotFoundError(f"no record files match {source}")
        return Source(files)
    if not source.endswith(".json") and tf.io.gfile.exists(source) and \
            not tf.io.gfile.isdir(source):
        return Source((source,))
    info = schema.read_dataset_info(source)
    build_dir = source.rsplit("/", 1)[0] if source.endswith(".json") else source.rstrip("/")
    modality = info.get("modality")
    if modalities and modality is not None and modality not in modalities:
        raise ValueError(f"{build_dir} holds {modality!r} records; this reader reads "
                         f"{' or '.join(modalities)}")
    splits = info.get("splits", {})
    if split not in splits:
        raise ValueError(f"split {split!r} is not in {build_dir}: it has "
                         f"{', '.join(sorted(splits)) or 'no splits'}")
    shards = splits[split].get("shards", [])
    if not shards:
        raise ValueError(f"split {split!r} of {build_dir} has no shards (0 examples?)")
    skip = {str(s).rstrip("/").rsplit("/", 1)[-1] for s in skip_shards}
    kept = [name for name in shards if name not in skip]
    if not kept:
        raise ValueError(f"every shard of split {split!r} of {build_dir} is left out")
    return Source(files=tuple(f"{build_dir}/{name}" for name in kept),
                  classes=tuple(info.get("classes", ())),
                  image_format=info.get("image_format"),
                  num_examples=splits[split].get("num_examples") if len(kept) == len(shards)
                  else None,
                  info=info)


def label_swap_table(classes: Sequence[str], swap: Mapping[str, str]) -> tuple[int, ...]:
    """Label permutation applied when a clip is flipped, from pairs of class names.

    The map is symmetric ({"Swiping Left": "Swiping Right"} swaps both ways).
    Pairs naming no class of this dataset are ignored (one map may serve
    several datasets); a pair naming only one of its classes, a name swapped
    with two others, or a map matching no class at all is an error.
    """
    index = {name: i for i, name in enumerate(classes)}
    table = list(range(len(classes)))
    partner: dict[str, str] = {}
    used = 0
    for a, b in swap.items():
        known = (a in index, b in index)
        if not any(known):
            continue
        if not all(known):
            missing = b if known[0] else a
            raise ValueError(f"flip_label_swap pairs {a!r} with {b!r}, but {missing!r} is not a "
                             f"class of this dataset ({len(classes)} classes)")
        for x, y in ((a, b), (b, a)):
            if partner.setdefault(x, y) != y:
                raise ValueError(f"flip_label_swap swaps {x!r} with both {partner[x]!r} and {y!r}")
        table[index[a]], table[index[b]] = index[b], index[a]
        used += 1
    if swap and not used:
        raise ValueError("flip_label_swap names none of this dataset's classes: "
                         f"{sorted(swap)} vs {list(classes)[:10]}...")
    return tuple(table)


# --------------------------------------------------------------------------
# What to produce.
# --------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class VideoSpec:
    """Sampling and augmentation settings shared by the sample/decode/augment stages."""
    training: bool
    num_frames: int = 16
    sampling: str = "stride"
    stride: int = 1
    short: str = "loop"
    num_test_clips: int = 1
    num_test_crops: int = 1
    crop_size: tuple[int, int] | None = (112, 112)
    crop: str = "random"
    resize_shorter: int | None = None
    scale_jitter: tuple[int, int] | None = None
    area_range: tuple[float, float] = (0.25, 1.0)
    aspect_ratio_range: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = False
    swap_table: tuple[int, ...] | None = None
    brightness: float = 0.0
    contrast: float = 0.0
    image_format: str = "jpeg"
    num_classes: int | None = None
    one_hot: bool = False

    def __post_init__(self):
        _check(self.sampling in SAMPLINGS, f"sampling must be one of {SAMPLINGS}")
        _check(self.short in SHORT_POLICIES, f"short must be one of {SHORT_POLICIES}")
        _check(self.crop in CROPS, f"crop must be one of {CROPS}")
        _check(self.image_format in schema.IMAGE_FORMATS,
               f"image_format must be one of {schema.IMAGE_FORMATS}")
        _check(self.num_frames >= 1 and self.stride >= 1, "num_frames and stride must be >= 1")
        _check(self.num_test_clips >= 1, "num_test_clips must be >= 1")
        _check(self.num_test_crops in (1, 3), "num_test_crops must be 1 or 3")
        _check(self.sampling != "uniform" or self.num_test_clips == 1,
               "uniform sampling has one clip per video: use num_test_clips=1")
        _check(self.crop_size is not None or self.num_test_crops == 1,
               "num_test_crops=3 needs a crop_size")
        if self.scale_jitter is not None:
            lo, hi = self.scale_jitter
            _check(0 < lo <= hi, "scale_jitter must be (min, max) shorter sides, 0 < min <= max")
        _check(0 < self.area_range[0] <= self.area_range[1] <= 1, "area_range within (0, 1]")
        _check(0 < self.aspect_ratio_range[0] <= self.aspect_ratio_range[1],
               "aspect_ratio_range must be (min, max) > 0")
        _check(not self.one_hot or bool(self.num_classes), "one_hot needs the class count")

    @property
    def num_views(self) -> int:
        """Views per video in a batch: 1 in training, clips x crops in evaluation."""
        return 1 if self.training else self.num_test_clips * self.num_test_crops


def _check(ok: bool, message: str):
    if not ok:
        raise ValueError(message)


def crop_hw(crop_size) -> tuple[int, int] | None:
    """A ``crop_size`` setting (an int for square crops, or (height, width)) as (height, width)."""
    if crop_size is None:
        return None
    if isinstance(crop_size, int):
        return crop_size, crop_size
    h, w = crop_size
    return int(h), int(w)


# --------------------------------------------------------------------------
# Stages.
# --------------------------------------------------------------------------
def parse(serialized) -> dict:
    """Stage 1: a serialised clip record to tensors (see ``schema.parse_clip``)."""
    return schema.parse_clip(serialized)


def _round_div(num, den):
    """Integer num / den rounded half up (num, den >= 0)."""
    return (2 * num + den) // (2 * den)


def _fill_short(i, count, short: str):
    """Step positions for a record with ``count`` usable steps: loop or hold the last."""
    return i % count if short == "loop" else tf.minimum(i, count - 1)


def _seeds(seed, n: int):
    """n stateless seeds [n, 2] from one; a fresh random one when ``seed`` is None."""
    if seed is None:
        seed = tf.random.uniform([2], maxval=2 ** 31 - 1, dtype=tf.int32)
    return tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), n)


def sample(record: Mapping[str, Any], spec: VideoSpec, seed=None) -> dict:
    """Stage 2: where to read, in time and space.

    Returns ``indices`` int32 [clips, T] (``sample_indices``) and ``boxes``
    int32 [crops, 4] (``crop_boxes``) for a parsed record; clips and crops are
    1 in training.
    """
    seeds = _seeds(seed, 2) if spec.training else (None, None)
    height, width = frame_size(record, spec.image_format)
    return {"indices": sample_indices(record["num_frames"], spec, seeds[0]),
            "boxes": crop_boxes(height, width, spec, seeds[1])}


def sample_indices(num_frames, spec: VideoSpec, seed=None):
    """Which frames of a record of ``num_frames`` frames to read: int32 [clips, T].

    stride:   T frames ``stride`` apart. Training: one clip at a random offset
              in [0, N - span] (span = (T-1)*stride + 1); evaluation:
              ``num_test_clips`` clips at offsets evenly spaced from 0 to
              N - span (rounded half up), or the centred clip when there is one.
    segments: TSN; N frames cut into T equal segments [floor(i*N/T),
              floor((i+1)*N/T)). Training: a random frame in each; evaluation
              clip c of C: frame floor((i + (c + 0.5)/C) * N/T) (the centres for C=1).
    uniform:  T frames evenly spaced including the first and last (the middle
              one for T=1), the same in training and evaluation.
    Records shorter than the clip (N < span, or N < T) take the available
    steps 0, stride, 2*stride, ... and ``loop`` them or ``repeat_last``, as
    the build does.
    """
    n = tf.cast(num_frames, tf.int32)
    t, s = spec.num_frames, spec.stride
    i = tf.range(t, dtype=tf.int32)
    clips = 1 if spec.training else spec.num_test_clips
    if spec.sampling == "stride":
        span = (t - 1) * s + 1
        max_offset = tf.maximum(n - span, 0)
        if spec.training:
            offsets = tf.random.stateless_uniform([1], _seeds(seed, 1)[0], 0, max_offset + 1,
                                                  dtype=tf.int32)
        elif clips == 1:
            offsets = tf.reshape(max_offset // 2, [1])
        else:
            offsets = _round_div(tf.range(clips) * max_offset, clips - 1)
        steps = _fill_short(i, (n + s - 1) // s, spec.short) * s   # == i*s unless short
        return offsets[:, None] + steps[None, :]
    fill = tf.tile(_fill_short(i, n, spec.short)[None], [clips, 1])
    if spec.sampling == "uniform":
        picked = (tf.fill([1, 1], (n - 1) // 2) if t == 1
                  else _round_div(i * (n - 1), t - 1)[None, :])
    elif spec.training:
        start, end = (i * n) // t, ((i + 1) * n) // t
        u = tf.random.stateless_uniform([t], _seeds(seed, 1)[0])
        jitter = tf.cast(tf.floor(u * tf.cast(end - start, tf.float32)), tf.int32)
        picked = (start + tf.minimum(jitter, tf.maximum(end - start - 1, 0)))[None, :]
    else:
        c = tf.range(clips, dtype=tf.int32)[:, None]
        picked = ((2 * i[None, :] * clips + 2 * c + 1) * n) // (2 * clips * t)
    return tf.where(n < t, fill, tf.broadcast_to(picked, [clips, t]))


def frame_size(record: Mapping[str, Any], image_format: str):
    """(height, width) of a record's frames: from the first frame's header, or the record (raw)."""
    if image_format == "raw":
        return record["height"], record["width"]
    first = record["frames"][0]
    if image_format == "jpeg":
        shape = tf.io.extract_jpeg_shape(first)
        return shape[0], shape[1]
    size = tf.io.decode_raw(tf.strings.substr(first, 16, 8), tf.int32, little_endian=False)
    return size[1], size[0]                                  # PNG IHDR: width, height


def crop_boxes(height, width, spec: VideoSpec, seed=None):
    """The crop windows of one clip in source pixels: int32 [crops, 4] rows (y, x, h, w).

    A window is later resized to ``crop_size`` when its size differs. Its size:
    ``crop_size`` scaled by (shorter side / ``resize_shorter``) when
    ``resize_shorter`` is given (or by shorter side / s, s drawn from
    ``scale_jitter`` in training), else ``crop_size``; shrunk to fit the frame.
    ``random_resized`` draws the area fraction and log aspect ratio instead.
    Training places one window uniformly at random (``center``: centred);
    evaluation places 1 centred window or 3 along the long side (start, centre,
    end; top to bottom for portrait frames). Sizes round half up.
    """
    h = tf.cast(height, tf.int32)
    w = tf.cast(width, tf.int32)
    if spec.crop_size is None:
        return tf.stack([[0, 0, h, w]])
    ch, cw = spec.crop_size
    hf, wf = tf.cast(h, tf.float32), tf.cast(w, tf.float32)
    seeds = _seeds(seed, 4) if spec.training else None
    if spec.training and spec.crop == "random_resized":
        lo, hi = spec.area_range
        area = tf.random.stateless_uniform([], seeds[0], lo, hi) * hf * wf
        log_lo, log_hi = math.log(spec.aspect_ratio_range[0]), math.log(spec.aspect_ratio_range[1])
        ratio = tf.exp(tf.random.stateless_uniform([], seeds[1], log_lo, log_hi))
        bh = tf.cast(tf.floor(tf.sqrt(area / ratio) + 0.5), tf.int32)
        bw = tf.cast(tf.floor(tf.sqrt(area * ratio) + 0.5), tf.int32)
    else:
        short = tf.minimum(hf, wf)
        if spec.training and spec.scale_jitter is not None:
            lo, hi = spec.scale_jitter
            target = tf.cast(tf.random.stateless_uniform([], seeds[0], lo, hi + 1, tf.int32),
                             tf.float32)
            scale = short / target
        elif spec.resize_shorter:
            scale = short / spec.resize_shorter
        else:
            scale = tf.constant(1.0)
        scale = tf.minimum(scale, tf.minimum(hf / ch, wf / cw))
        bh = tf.cast(tf.floor(ch * scale + 0.5), tf.int32)
        bw = tf.cast(tf.floor(cw * scale + 0.5), tf.int32)
    bh = tf.clip_by_value(bh, 1, h)
    bw = tf.clip_by_value(bw, 1, w)
    if spec.training and spec.crop != "center":
        y = tf.random.stateless_uniform([], seeds[2], 0, h - bh + 1, tf.int32)
        x = tf.random.stateless_uniform([], seeds[3], 0, w - bw + 1, tf.int32)
        return tf.stack([[y, x, bh, bw]])
    y, x = (h - bh) // 2, (w - bw) // 2
    if spec.training or spec.num_test_crops == 1:
        return tf.stack([[y, x, bh, bw]])
    landscape = w >= h
    room = tf.where(landscape, w - bw, h - bh)
    along = tf.stack([0, room // 2, room])
    ys = tf.where(landscape, tf.fill([3], y), along)
    xs = tf.where(landscape, along, tf.fill([3], x))
    return tf.stack([ys, xs, tf.fill([3], bh), tf.fill([3], bw)], axis=1)


def decode(frames, plan: Mapping[str, Any], image_format: str, height=None, width=None, *,
           crop_jpeg: bool = False):
    """Stage 3: decodes the sampled frames only and cuts their crop windows.

    ``frames`` string [N] (encoded), ``plan`` from ``sample`` -> uint8
    [clips * crops, T, h, w, 3], clip-major. The encoded strings are gathered
    first; with several clips each distinct frame is decoded once (in a
    ``tf.map_fn``), else each frame has its own decode op (no loop overhead).
    Each frame is cropped right after decoding, so full frames are never
    copied. ``crop_jpeg`` (one window) decodes only the window's pixels with
    ``tf.io.decode_and_crop_jpeg``, as the training readers do (with 4:2:0
    chroma the window's edge column may differ slightly from decode-then-crop).
    """
    indices, boxes = plan["indices"], plan["boxes"]
    clips, t = indices.shape
    crops = boxes.shape[0]
    flat = tf.reshape(indices, [-1])
    unique, position = tf.unique(flat) if clips > 1 else (flat, None)
    encoded = tf.gather(frames, unique)
    windows = tf.unstack(boxes, num=crops)

    def cut(image):
        return tf.stack([image[..., b[0]:b[0] + b[2], b[1]:b[1] + b[3], :] for b in windows],
                        axis=-4)

    if image_format == "raw":
        full = tf.reshape(tf.io.decode_raw(encoded, tf.uint8),
                          tf.stack([-1, tf.cast(height, tf.int32), tf.cast(width, tf.int32), 3]))
        views = cut(full)                                    # [U, crops, h, w, 3]
    else:
        if image_format not in ("jpeg", "png"):
            raise ValueError(f"image_format must be one of {schema.IMAGE_FORMATS}")
        if crop_jpeg and image_format == "jpeg" and crops == 1:
            one = lambda e: tf.io.decode_and_crop_jpeg(e, boxes[0], channels=3)[None]  # noqa: E731
        else:
            decode_image = tf.io.decode_jpeg if image_format == "jpeg" else tf.io.decode_png
            one = lambda e: cut(decode_image(e, channels=3))  # noqa: E731
        if position is None:
            views = tf.stack([one(encoded[k]) for k in range(clips * t)])
        else:
            views = tf.map_fn(one, encoded,
                              fn_output_signature=tf.TensorSpec([crops, None, None, 3], tf.uint8))
    if position is not None:
        views = tf.gather(views, position)
    size = tf.shape(views)[-3:]
    if crops == 1:
        return tf.reshape(views, tf.concat([[clips, t], size], 0))
    views = tf.reshape(views, tf.concat([[clips, t, crops], size], 0))
    views = tf.transpose(views, [0, 2, 1, 3, 4, 5])
    return tf.reshape(views, tf.concat([[clips * crops, t], size], 0))


def augment(video, label, spec: VideoSpec, seed=None):
    """Stage 4: resizes crop windows to ``crop_size``, flips (swapping labels), jitters colour.

    ``video`` uint8 [views, T, h, w, 3] -> uint8 [views, T, crop_h, crop_w, 3];
    ``label`` -> [views] int32 (or float32 one-hot [views, classes]). Flip and
    colour jitter are drawn in training only, once per clip (all its frames alike).
    """
    views, t = spec.num_views, spec.num_frames
    if spec.crop_size is not None:
        ch, cw = spec.crop_size
        shape = tf.shape(video)
        same = tf.logical_and(tf.equal(shape[2], ch), tf.equal(shape[3], cw))
        video = tf.cond(same, lambda: video, lambda: _resize(video, ch, cw))
        video = tf.ensure_shape(video, [views, t, ch, cw, 3])
    label = tf.fill([views], tf.cast(label, tf.int32))
    seeds = _seeds(seed, 3) if spec.training else None
    if spec.training and spec.flip:
        flipped = tf.random.stateless_uniform([], seeds[0]) < 0.5
        video = tf.cond(flipped, lambda: _flip(video), lambda: video)
        if spec.swap_table is not None:
            swapped = tf.gather(tf.constant(spec.swap_table, tf.int32), tf.maximum(label, 0))
            label = tf.where(tf.logical_and(flipped, label >= 0), swapped, label)
    if spec.training and (spec.brightness > 0 or spec.contrast > 0):
        video = _colour(video, spec, seeds[1], seeds[2])
    if spec.one_hot:
        label = tf.one_hot(label, spec.num_classes, dtype=tf.float32)
    return video, label


def _flip(video):
    """Mirrors left-right (reversing a [rows, W, 3] view is ~4x faster than the 5-D tensor)."""
    shape = tf.shape(video)
    rows = tf.reshape(video, tf.stack([-1, shape[-2], 3]))
    return tf.reshape(tf.reverse(rows, axis=[1]), shape)


def _resize(video, height: int, width: int):
    shape = tf.shape(video)
    flat = tf.reshape(video, tf.concat([[-1], shape[-3:]], 0))
    out = tf.image.resize(flat, [height, width], method="bilinear")
    out = tf.cast(tf.clip_by_value(tf.round(out), 0, 255), tf.uint8)
    return tf.reshape(out, tf.concat([shape[:-3], [height, width, 3]], 0))


def _colour(video, spec: VideoSpec, brightness_seed, contrast_seed):
    """Brightness delta (x 255) and contrast factor around the clip's channel mean."""
    x = tf.cast(video, tf.float32)
    if spec.contrast > 0:
        factor = tf.random.stateless_uniform([], contrast_seed, max(0.0, 1 - spec.contrast),
                                             1 + spec.contrast)
        mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
        x = (x - mean) * factor + mean
    if spec.brightness > 0:
        x += 255.0 * tf.random.stateless_uniform([], brightness_seed, -spec.brightness,
                                                 spec.brightness)
    return tf.cast(tf.clip_by_value(tf.round(x), 0, 255), tf.uint8)


def batch(dataset: tf.data.Dataset, batch_size: int, *, drop_remainder: bool,
          deterministic: bool | None = None) -> tf.data.Dataset:
    """Stage 5: batches elements whose tensors lead with a views axis and folds it into the batch.

    B elements of [V, ...] become [B * V, ...]: video j of the batch owns rows
    j*V .. j*V + V - 1 (``regroup_views`` gives [B, V, ...] back).
    """
    def fold(x):
        shape = tf.shape(x)
        static = x.shape
        lead = static[0] * static[1] if static[0] is not None and static[1] is not None else -1
        return tf.reshape(x, tf.concat([[lead], shape[2:]], 0))

    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder,
                            num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    return dataset.map(lambda *xs: tf.nest.map_structure(fold, xs if len(xs) > 1 else xs[0]))


def prefetch(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Stage 6: overlaps input with the training step."""
    return dataset.prefetch(AUTOTUNE)


def regroup_views(x, num_views: int):
    """[B * views, ...] -> [B, views, ...]: e.g. average logits per video with ``.mean(1)``."""
    return tf.reshape(x, tf.concat([[-1, num_views], tf.shape(x)[1:]], 0))


# --------------------------------------------------------------------------
# Datasets.
# --------------------------------------------------------------------------
def read(files: Sequence[str], *, training: bool, deterministic: bool, seed: int | None = None,
         input_context: tf.distribute.InputContext | None = None) -> tf.data.Dataset:
    """Serialised records from shard files (gzip when a name ends in .gz).

    With ``input_context`` each input pipeline reads every
    ``num_input_pipelines``-th file starting at its ``input_pipeline_id``
    (record-level sharding when there are fewer files than pipelines).
    Training interleaves the shards (one record from each in turn) in a
    shuffled order, reading in parallel threads for remote paths (gs://,
    s3://) and in one for local files, where extra reader threads only add
    copying (measured: 40 % more CPU per 2 MB record). Evaluation reads them
    in the given order, records in file order.
    """
    files = list(files)
    record_shard = None
    if input_context is not None and input_context.num_input_pipelines > 1:
        n, i = input_context.num_input_pipelines, input_context.input_pipeline_id
        if len(files) >= n:
            files = files[i::n]
        else:
            record_shard = (n, i)
    compression = "GZIP" if all(f.endswith(".gz") for f in files) else ""
    names = tf.data.Dataset.from_tensor_slices(files)
    if training:
        names = names.shuffle(len(files), seed=seed)
        remote = any("://" in f for f in files)
        ds = names.interleave(lambda f: tf.data.TFRecordDataset(f, compression),
                              cycle_length=min(len(files), 16), block_length=1,
                              num_parallel_calls=AUTOTUNE if remote else None,
                              deterministic=deterministic if remote else None)
    else:
        ds = tf.data.TFRecordDataset(files, compression)
    if record_shard:
        ds = ds.shard(*record_shard)
    return ds


def _options(deterministic: bool) -> tf.data.Options:
    options = tf.data.Options()
    options.deterministic = deterministic
    options.autotune.enabled = True
    options.experimental_optimization.map_parallelization = True
    return options


def _records(source: Source, *, training: bool, batch_size: int, cache, shuffle_buffer: int,
             repeat: bool | None, seed, input_context, deterministic: bool):
    """read ─► enumerate ─► [cache] ─► [repeat] ─► [shuffle], zipped with per-record seeds."""
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    if input_context is not None:
        batch_size = input_context.get_per_replica_batch_size(batch_size)
    ds = read(source.files, training=training, deterministic=deterministic, seed=seed,
              input_context=input_context).enumerate()
    if cache:
        ds = ds.cache(cache if isinstance(cache, str) else "")
    if training if repeat is None else repeat:
        ds = ds.repeat()       # before shuffle: no buffer refill stall at epoch ends
    if training and shuffle_buffer > 1:
        ds = ds.shuffle(shuffle_buffer, seed=seed)
    if training:
        ds = tf.data.Dataset.zip((ds, tf.data.Dataset.random(seed=seed).batch(2)))
        ds = ds.map(lambda rec, s: (rec[0], rec[1], s))
    return ds, batch_size


def clip_fn(spec: VideoSpec, with_metadata: bool):
    """parse ─► sample ─► decode ─► augment for one record, as one map function."""
    def fn(index, serialized, seed=None):
        seeds = (None, None) if seed is None else _seeds(seed, 2)
        record = parse(serialized)
        plan = sample(record, spec, seeds[0])
        frames = decode(record["frames"], plan, spec.image_format, record["height"],
                        record["width"], crop_jpeg=spec.training)
        video, label = augment(frames, record["label"], spec, seeds[1])
        if not with_metadata:
            return video, label
        views = spec.num_views
        crops = views // plan["indices"].shape[0]
        meta = {"video_id": tf.fill([views], record["video_id"]),
                "video_index": tf.fill([views], index),
                "view": tf.range(views, dtype=tf.int32),
                "frame_indices": tf.repeat(plan["indices"], crops, axis=0)}
        return video, label, meta
    return fn


def make_dataset(source: str | Sequence[str], split: str | None = None, *, training: bool,
                 batch_size: int, num_frames: int = 16, sampling: str = "stride",
                 stride: int = 1, short: str = "loop",
                 crop_size: int | tuple[int, int] | None = 112, crop: str = "random",
                 resize_shorter: int | None = None,
                 scale_jitter: tuple[int, int] | None = None,
                 area_range: tuple[float, float] = (0.25, 1.0),
                 aspect_ratio_range: tuple[float, float] = (3 / 4, 4 / 3),
                 brightness: float = 0.0, contrast: float = 0.0, flip: bool = False,
                 flip_label_swap: Mapping[str, str] | None = None, num_test_clips: int = 1,
                 num_test_crops: int = 1, one_hot: bool = False, cache: bool | str = False,
                 shuffle_buffer: int = 64, repeat: bool | None = None, seed: int | None = None,
                 input_context: tf.distribute.InputContext | None = None,
                 deterministic: bool | None = None, drop_remainder: bool | None = None,
                 with_metadata: bool = False, image_format: str | None = None,
                 classes: Sequence[str] | None = None,
                 skip_shards: Sequence[str] = ()) -> tf.data.Dataset:
    """Batches of ``(video uint8 [B', T, H, W, 3], label int32 [B'])`` from a build's split.

    Args:
      source: a build directory (``OUTPUT_DIR/DATASET/CONFIG_NAME``, local,
        gs:// or s3://), its dataset_info.json, or a glob / list of record files
        (then give ``image_format`` unless jpeg, and ``classes`` for one_hot or
        a label swap).
      split: the split to read from a build ("train", "test", ...).
      training: random sampling and augmentation, shuffling, endless repeat;
        otherwise deterministic evaluation views.
      batch_size: videos per batch; the global batch when ``input_context`` is
        given (each replica gets ``get_per_replica_batch_size`` of it). In
        evaluation B' = batch_size x num_test_clips x num_test_crops rows.
      num_frames, sampling, stride, short: see ``sample``.
      crop_size, crop, resize_shorter, scale_jitter, area_range,
        aspect_ratio_range: see ``crop_boxes``; ``crop_size=None`` keeps frames whole.
      brightness, contrast: colour jitter amplitudes in training (0 = off).
      flip: random horizontal flip in training; ``flip_label_swap`` maps class
        names to their mirror image, e.g. {"Swiping Left": "Swiping Right"}
        (symmetric; see ``label_swap_table``).
      num_test_clips, num_test_crops (1 or 3): evaluation views per video,
        folded into the batch clip-major (``regroup_views``).
      one_hot: float32 one-hot labels [B', classes] instead of int32.
      cache: cache serialised records in memory (True) or in this file.
      shuffle_buffer: records in the training shuffle buffer.
      repeat: repeat forever (default: in training only).
      seed: makes training draws, shuffles and order reproducible.
      input_context: from ``strategy.distribute_datasets_from_function``.
      deterministic: element order; default True except training without seed.
      drop_remainder: default True in training (static batch shape).
      with_metadata: add a third element {"video_id", "video_index" (record
        position in this pipeline's stream), "view", "frame_indices" [B', T]}.
      skip_shards: shard file names of the split to leave out (see ``open_source``).
    """
    src = open_source(source, split, modalities=VIDEO_MODALITIES, skip_shards=skip_shards)
    names = tuple(classes) if classes is not None else src.classes
    swap = label_swap_table(names, flip_label_swap) if flip_label_swap else None
    if swap is not None and not flip:
        raise ValueError("flip_label_swap is given but flip=False")
    spec = VideoSpec(training=training, num_frames=num_frames, sampling=sampling, stride=stride,
                     short=short, num_test_clips=num_test_clips, num_test_crops=num_test_crops,
                     crop_size=crop_hw(crop_size), crop=crop, resize_shorter=resize_shorter,
                     scale_jitter=tuple(scale_jitter) if scale_jitter else None,
                     area_range=tuple(area_range), aspect_ratio_range=tuple(aspect_ratio_range),
                     flip=flip, swap_table=swap, brightness=brightness, contrast=contrast,
                     image_format=image_format or src.image_format or "jpeg",
                     num_classes=len(names) or None, one_hot=one_hot)
    return _video_pipeline(src, spec, batch_size=batch_size, cache=cache,
                           shuffle_buffer=shuffle_buffer, repeat=repeat, seed=seed,
                           input_context=input_context, deterministic=deterministic,
                           drop_remainder=drop_remainder, with_metadata=with_metadata)


def _video_pipeline(src: Source, spec: VideoSpec, *, batch_size, cache, shuffle_buffer, repeat,
                    seed, input_context, deterministic, drop_remainder, with_metadata):
    if deterministic is None:
        deterministic = not spec.training or seed is not None
    ds, per_replica = _records(src, training=spec.training, batch_size=batch_size, cache=cache,
                               shuffle_buffer=shuffle_buffer, repeat=repeat, seed=seed,
                               input_context=input_context, deterministic=deterministic)
    ds = ds.map(clip_fn(spec, with_metadata), num_parallel_calls=AUTOTUNE,
                deterministic=deterministic)
    ds = batch(ds, per_replica, deterministic=deterministic,
               drop_remainder=spec.training if drop_remainder is None else drop_remainder)
    return prefetch(ds).with_options(_options(deterministic))


def make_image_dataset(source: str | Sequence[str], split: str | None = None, *, training: bool,
                       batch_size: int, crop_size: int | tuple[int, int] | None = 224,
                       crop: str = "random_resized", **kwargs) -> tf.data.Dataset:
    """Batches of ``(image uint8 [B', H, W, 3], label)`` from one-frame clips.

    Takes ``make_dataset``'s keyword arguments except the temporal ones
    (num_frames, sampling, stride, short, num_test_clips).
    """
    for name in ("num_frames", "sampling", "stride", "short", "num_test_clips"):
        if name in kwargs:
            raise TypeError(f"make_image_dataset() takes no {name!r}: images are one frame")
    ds = make_dataset(source, split, training=training, batch_size=batch_size, num_frames=1,
                      sampling="uniform", crop_size=crop_size, crop=crop, **kwargs)

    def squeeze(video, *rest):
        out = (tf.squeeze(video, axis=1),) + rest
        if len(rest) == 2:
            meta = dict(rest[1])
            meta["frame_indices"] = tf.squeeze(meta["frame_indices"], axis=1)
            out = out[:2] + (meta,)
        return out

    return ds.map(squeeze)


# --------------------------------------------------------------------------
# Keypoint sequences.
# --------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class KeypointSpec:
    """Windowing settings for keypoint sequences."""
    training: bool
    window: int = 32
    stride: int = 1
    window_shift: int | None = None
    short: str = "pad"
    num_people: int = 1
    num_points: int | None = None
    num_coords: int | None = None
    target: str = "clip"
    num_classes: int | None = None
    one_hot: bool = False

    def __post_init__(self):
        _check(self.window >= 1 and self.stride >= 1, "window and stride must be >= 1")
        _check(self.window_shift is None or self.window_shift >= 1, "window_shift must be >= 1")
        _check(self.short in KEYPOINT_SHORT_POLICIES,
               f"short must be one of {KEYPOINT_SHORT_POLICIES}")
        _check(self.num_people >= 1, "num_people must be >= 1")
        _check(self.target in ("clip", "frames"), "target must be 'clip' or 'frames'")
        _check(not self.one_hot or bool(self.num_classes), "one_hot needs the class count")


def sample_windows(num_frames, spec: KeypointSpec, seed=None):
    """Frame indices of the windows of a sequence: (int32 [windows, W], starts [windows]).

    A window is ``window`` frames ``stride`` apart (span = (W-1)*stride + 1).
    Training: one window at a random start in [0, N - span]; evaluation: starts
    0, shift, 2*shift, ... (shift = ``window_shift``, default ``window``) and
    N - span, so every frame is covered. Short sequences: index -1 (padding)
    past the end for ``pad``, else ``loop`` / ``repeat_last`` as for clips.
    """
    n = tf.cast(num_frames, tf.int32)
    w, s = spec.window, spec.stride
    span = (w - 1) * s + 1
    last = tf.maximum(n - span, 0)
    if spec.training:
        starts = tf.random.stateless_uniform([1], _seeds(seed, 1)[0], 0, last + 1, tf.int32)
    else:
        starts = tf.range(0, last + 1, spec.window_shift or w)
        starts = tf.cond(starts[-1] < last, lambda: tf.concat([starts, [last]], 0),
                         lambda: starts)
    i = tf.range(w, dtype=tf.int32)
    if spec.short == "pad":
        steps = i * s
    else:
        steps = _fill_short(i, (n + s - 1) // s, spec.short) * s
    indices = starts[:, None] + steps[None, :]
    return tf.where(indices < n, indices, -1), starts


def _keypoint_fn(spec: KeypointSpec, with_metadata: bool):
    """parse ─► sample ─► gather ("decode") ─► people pad/truncate, as one map function."""
    def people(x, p, per_person):
        """[N, P*per_person] -> [N, num_people*per_person]: first people kept, zeros added."""
        n = tf.shape(x)[0]
        x = tf.reshape(x, [n, p, per_person])[:, :spec.num_people]
        x = tf.pad(x, [[0, 0], [0, spec.num_people - tf.shape(x)[1]], [0, 0]])
        return tf.reshape(x, [n, spec.num_people * per_person])

    def fn(index, serialized, seed=None):
        rec = schema.parse_keypoints(serialized)
        p = tf.cast(rec["num_people"], tf.int32)
        v, c = tf.cast(rec["num_points"], tf.int32), tf.cast(rec["num_coords"], tf.int32)
        values = people(rec["values"], p, v * c)
        mask = people(rec["mask"], p, v)
        n = tf.shape(values)[0]
        indices, starts = sample_windows(n, spec, seed)
        rows = tf.where(indices < 0, n, indices)        # row n: padding
        pad = lambda x, value: tf.concat([x, tf.fill(tf.concat([[1], tf.shape(x)[1:]], 0),
                                                     tf.cast(value, x.dtype))], 0)  # noqa: E731
        keypoints = tf.gather(pad(values, 0), rows)
        mask = tf.gather(pad(mask, 0), rows)
        frame_labels = tf.gather(pad(tf.cast(rec["frame_labels"], tf.int32), -1), rows)
        valid = tf.cast(indices >= 0, tf.float32)
        if spec.num_points and spec.num_coords:
            d = spec.num_people * spec.num_points
            keypoints = tf.ensure_shape(keypoints, [None, spec.window, d * spec.num_coords])
            mask = tf.ensure_shape(mask, [None, spec.window, d])
        else:
            keypoints = tf.reshape(keypoints, [-1, spec.window, spec.num_people * v * c])
            mask = tf.reshape(mask, [-1, spec.window, spec.num_people * v])
        windows = tf.shape(indices)[0]
        label = tf.fill([windows], tf.cast(rec["label"], tf.int32))
        target = label if spec.target == "clip" else frame_labels
        if spec.one_hot:
            target = tf.one_hot(target, spec.num_classes, dtype=tf.float32)
        features = {"keypoints": keypoints, "mask": mask, "valid": valid,
                    "frame_labels": frame_labels}
        out = (features, target)
        if with_metadata:
            out += ({"video_id": tf.fill([windows], rec["video_id"]),
                     "video_index": tf.fill([windows], index), "window_start": starts,
                     "frame_indices": indices},)
        return out
    return fn


def make_keypoint_dataset(source: str | Sequence[str], split: str | None = None, *,
                          training: bool, batch_size: int, window: int = 32, stride: int = 1,
                          window_shift: int | None = None, short: str = "pad",
                          num_people: int | None = None, num_points: int | None = None,
                          num_coords: int | None = None, target: str = "clip",
                          one_hot: bool = False, cache: bool | str = False,
                          shuffle_buffer: int = 256, repeat: bool | None = None,
                          seed: int | None = None,
                          input_context: tf.distribute.InputContext | None = None,
                          deterministic: bool | None = None, drop_remainder: bool | None = None,
                          with_metadata: bool = False,
                          classes: Sequence[str] | None = None,
                          skip_shards: Sequence[str] = ()) -> tf.data.Dataset:
    """Batches of keypoint windows: ``(features, target)``.

    features: ``keypoints`` float32 [B, W, P*V*C] (P = ``num_people`` people,
    the first ones of each record, zero-padded when fewer; default: the
    build's ``max_people``, else 1), ``mask`` float32
    [B, W, P*V] (1 where a point was seen), ``valid`` float32 [B, W] (0 on
    padding frames), ``frame_labels`` int32 [B, W] (-1 where absent or padded).
    target: the clip label int32 [B] (``target="clip"``) or the frame labels
    [B, W] (``"frames"``); one-hot on request. Training draws one window per
    sequence; evaluation yields every window (``sample_windows``) in order.
    ``num_points`` and ``num_coords`` (default: from the build's ``coords``)
    make the feature size static, as Keras needs. Other arguments as in
    ``make_dataset``.
    """
    src = open_source(source, split, modalities=("keypoints",), skip_shards=skip_shards)
    names = tuple(classes) if classes is not None else src.classes
    built = ((src.info or {}).get("keypoints") or {})
    num_people = num_people or built.get("max_people") or 1
    if num_coords is None and built.get("coords"):
        num_coords = len(built["coords"])
    spec = KeypointSpec(training=training, window=window, stride=stride,
                        window_shift=window_shift, short=short, num_people=num_people,
                        num_points=num_points, num_coords=num_coords, target=target,
                        num_classes=len(names) or None, one_hot=one_hot)
    if deterministic is None:
        deterministic = not training or seed is not None
    ds, per_replica = _records(src, training=training, batch_size=batch_size, cache=cache,
                               shuffle_buffer=shuffle_buffer, repeat=repeat, seed=seed,
                               input_context=input_context, deterministic=deterministic)
    ds = ds.map(_keypoint_fn(spec, with_metadata), num_parallel_calls=AUTOTUNE,
                deterministic=deterministic).unbatch()
    ds = ds.batch(per_replica, drop_remainder=training if drop_remainder is None
                  else drop_remainder, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    return prefetch(ds).with_options(_options(deterministic))
