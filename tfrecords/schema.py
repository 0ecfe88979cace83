"""The record schema: one ``tf.train.SequenceExample`` per clip.

Every feature key used anywhere in actionflow is a constant in this module.
The keys follow TF Model Garden's video parser and DeepMind DMVR
(``image/encoded`` frames, ``clip/label/index`` label), so their readers can
consume our shards and ours can consume theirs.

Writing needs no TensorFlow: ``encode_clip`` emits the protobuf wire format
directly and ``frame_record`` the TFRecord framing, so Beam workers that build
records stay light (no TensorFlow import, no TF thread pools). Reading uses
TensorFlow: ``parse_clip`` and ``decode_frames`` work eagerly and inside
``tf.data.Dataset.map``.

Layout of one record::

    context                                   feature lists (one value per frame)
      clip/label/index      int64               image/encoded     bytes (jpeg|png|raw)
      clip/label/text       bytes               image/timestamp   int64 microseconds
      video/filename        bytes (source id)   image/source_index int64 frame number in source
      video/fps             float               keypoints/values  float (V*C per frame)
      video/num_frames      int64 (real count)  keypoints/mask    float (V per frame)
      clip/start/timestamp  int64 microseconds  frame/label/index int64
      clip/end/timestamp    int64 microseconds
      clip/num_frames       int64
      clip/short_policy     bytes (none|loop|repeat_last)
      clip/label/filled_text  bytes (optional: the label with its placeholders filled in)
      image/height, image/width, image/channels   int64
      image/format          bytes (jpeg|png|raw)
      keypoints/layout      bytes (BODY_25|COCO|...)
      keypoints/num_points, keypoints/num_people, keypoints/num_coords  int64
      keypoints/names       bytes, one per point

Keypoint records (``encode_keypoints``) carry, per frame, ``keypoints/values``
(P people x V points x C coords, flattened), ``keypoints/mask`` (P x V: 1 where
the point was seen), ``frame/timestamp``, ``frame/source_index`` and,
optionally, ``frame/label/index``; their context holds the clip keys above
plus the keypoints/* keys.
"""
from __future__ import annotations

import json
import struct
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

# --------------------------------------------------------------------------
# Keys.
# --------------------------------------------------------------------------
# Context (per clip).
LABEL_INDEX = "clip/label/index"
LABEL_TEXT = "clip/label/text"
# The label with its placeholders filled in, beside the template kept as the label text
# (Something-Something v2: "Pushing [something] from left to right" ->
# "pushing a pen from left to right").
LABEL_FILLED_TEXT = "clip/label/filled_text"
VIDEO_FILENAME = "video/filename"
VIDEO_FPS = "video/fps"
VIDEO_NUM_FRAMES = "video/num_frames"
CLIP_START_TIMESTAMP = "clip/start/timestamp"
CLIP_END_TIMESTAMP = "clip/end/timestamp"
CLIP_NUM_FRAMES = "clip/num_frames"
CLIP_SHORT_POLICY = "clip/short_policy"
CLIP_NUM_FILLED = "clip/num_filled_frames"
IMAGE_HEIGHT = "image/height"
IMAGE_WIDTH = "image/width"
IMAGE_CHANNELS = "image/channels"
IMAGE_FORMAT = "image/format"
KEYPOINTS_LAYOUT = "keypoints/layout"
KEYPOINTS_NUM_POINTS = "keypoints/num_points"
KEYPOINTS_NUM_PEOPLE = "keypoints/num_people"
KEYPOINTS_NUM_COORDS = "keypoints/num_coords"
KEYPOINTS_NAMES = "keypoints/names"
KEYPOINTS_NUM_MISSING_FRAMES = "keypoints/num_missing_frames"
# Feature lists (per frame).
IMAGE_ENCODED = "image/encoded"
IMAGE_TIMESTAMP = "image/timestamp"
IMAGE_SOURCE_INDEX = "image/source_index"
KEYPOINTS_VALUES = "keypoints/values"
KEYPOINTS_MASK = "keypoints/mask"
FRAME_LABEL_INDEX = "frame/label/index"
FRAME_TIMESTAMP = "frame/timestamp"
FRAME_SOURCE_INDEX = "frame/source_index"

IMAGE_FORMATS = ("jpeg", "png", "raw")
UNLABELLED = -1

# --------------------------------------------------------------------------
# Build outputs.
# --------------------------------------------------------------------------
SCHEMA_VERSION = "1.0"
DATASET_INFO_FILE = "dataset_info.json"
ERRORS_FILE = "errors.jsonl"
SHARD_SUFFIX = ".tfrecord"


class SchemaVersionError(ValueError):
    """A dataset_info.json written by a schema major version we cannot read."""


def shard_name(split: str, index: int, count: int) -> str:
    """File name of shard ``index`` of ``count`` for ``split``."""
    return f"{split}{SHARD_SUFFIX}-{index:05d}-of-{count:05d}"


def dataset_info_to_json(info: Mapping[str, Any]) -> str:
    """Serialises a dataset_info dict, stamping the schema version."""
    out = dict(info)
    out.setdefault("schema_version", SCHEMA_VERSION)
    return json.dumps(out, indent=2, sort_keys=True) + "\n"


def dataset_info_from_json(text: str, source: str = "dataset_info.json") -> dict:
    """Parses dataset_info JSON and refuses a schema major version we do not know."""
    try:
        info = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{source} is not valid JSON: {e}") from None
    if not isinstance(info, dict):
        raise ValueError(f"{source} must hold a JSON object, found {type(info).__name__}")
    version = str(info.get("schema_version", ""))
    major = version.split(".")[0]
    if major != SCHEMA_VERSION.split(".")[0]:
        raise SchemaVersionError(
            f"{source} has schema_version {version or '(missing)'!r}; this actionflow reads "
            f"schema {SCHEMA_VERSION.split('.')[0]}.x. Rebuild the records with this version "
            "or install the actionflow release that wrote them.")
    return info


def write_dataset_info(directory: str, info: Mapping[str, Any]) -> str:
    """Writes ``directory/dataset_info.json`` through tf.io.gfile; returns its path."""
    import tensorflow as tf
    path = _join(directory, DATASET_INFO_FILE)
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(dataset_info_to_json(info))
    return path


def read_dataset_info(path: str) -> dict:
    """Reads a dataset_info.json (or the build directory holding it) through tf.io.gfile."""
    import tensorflow as tf
    if not path.endswith(".json"):
        path = _join(path, DATASET_INFO_FILE)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"no {DATASET_INFO_FILE} at {path}: is this the output "
                                "directory of a finished build?")
    with tf.io.gfile.GFile(path, "r") as f:
        return dataset_info_from_json(f.read(), source=path)


def _join(directory: str, name: str) -> str:
    return directory.rstrip("/") + "/" + name


# --------------------------------------------------------------------------
# Protobuf wire format for tf.train.SequenceExample (no TensorFlow needed).
# Field numbers: SequenceExample{context=1, feature_lists=2};
# Features{map feature=1}; FeatureLists{map feature_list=1}; FeatureList{feature=1};
# Feature{bytes_list=1, float_list=2, int64_list=3}; *List{value=1}.
# --------------------------------------------------------------------------
_MASK64 = (1 << 64) - 1
# Varints below 2**14 (tags, lengths, frame numbers, small labels) come from a table.
_SMALL_VARINTS = tuple(bytes((n,)) if n < 0x80 else bytes(((n & 0x7F) | 0x80, n >> 7))
                       for n in range(1 << 14))


def _varint(n: int) -> bytes:
    if 0 <= n < 16384:
        return _SMALL_VARINTS[n]
    n &= _MASK64
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_TAGS = {number: _varint((number << 3) | 2) for number in (1, 2, 3)}


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return b"".join((_TAGS[number], _varint(len(payload)), payload))


def bytes_feature(values: Iterable[bytes | str]) -> bytes:
    """A serialised ``Feature`` holding a BytesList."""
    items = (v.encode("utf-8") if isinstance(v, str) else bytes(v) for v in values)
    return _field(1, b"".join(_field(1, v) for v in items))


def int64_feature(values: Iterable[int]) -> bytes:
    """A serialised ``Feature`` holding a packed Int64List."""
    packed = b"".join([_varint(int(v)) for v in values])
    return _field(3, _field(1, packed) if packed else b"")


def float_feature(values: Iterable[float] | np.ndarray) -> bytes:
    """A serialised ``Feature`` holding a packed FloatList."""
    packed = np.asarray(values, dtype="<f4").ravel().tobytes()
    return _field(2, _field(1, packed) if packed else b"")


def float_rows(values: np.ndarray) -> list[bytes]:
    """``float_feature`` of each row of a 2-D array (one Feature per frame): every row has
    the same length, so the framing is built once and only the floats change."""
    rows = np.ascontiguousarray(values, dtype="<f4")
    if rows.ndim != 2:
        raise ValueError(f"float_rows needs a 2-D array, got shape {rows.shape}")
    if rows.shape[1] == 0:
        return [float_feature(())] * rows.shape[0]
    width = rows.shape[1] * 4
    inner = _TAGS[1] + _varint(width)
    head = _TAGS[2] + _varint(len(inner) + width) + inner
    data = rows.tobytes()
    return [head + data[i:i + width] for i in range(0, len(data), width)]


def int64_rows(values: Iterable[int]) -> list[bytes]:
    """``int64_feature([v])`` for each value (one Feature per frame)."""
    return [int64_feature((v,)) for v in values]


def _feature_for(value: Any) -> bytes:
    """Chooses the Feature type of a python context value."""
    if isinstance(value, (bytes, str)):
        return bytes_feature([value])
    if isinstance(value, (bool, int, np.integer)):
        return int64_feature([int(value)])
    if isinstance(value, (float, np.floating)):
        return float_feature([value])
    arr = np.asarray(value)
    if arr.dtype.kind in "iub":
        return int64_feature(arr.ravel().tolist())
    if arr.dtype.kind == "f":
        return float_feature(arr)
    if arr.dtype.kind in "SUO":
        return bytes_feature(list(arr.ravel()))
    raise TypeError(f"cannot store {type(value).__name__} in a record")


def sequence_example(context: Mapping[str, bytes],
                     feature_lists: Mapping[str, Sequence[bytes]]) -> bytes:
    """Serialises a SequenceExample from serialised Features (see *_feature)."""
    ctx = b"".join(_field(1, _field(1, k.encode()) + _field(2, v))
                   for k, v in sorted(context.items()))
    fls = b"".join(_field(1, _field(1, k.encode()) + _field(2, b"".join(
        [_field(1, f) for f in v]))) for k, v in sorted(feature_lists.items()))
    return _field(1, ctx) + _field(2, fls)


# --------------------------------------------------------------------------
# TFRecord framing.
# --------------------------------------------------------------------------
def _masked_crc(data: bytes) -> int:
    import google_crc32c
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def frame_record(data: bytes) -> bytes:
    """Wraps one serialised record in TFRecord framing (length, CRCs)."""
    length = struct.pack("<Q", len(data))
    return (length + struct.pack("<I", _masked_crc(length)) + data
            + struct.pack("<I", _masked_crc(data)))


# --------------------------------------------------------------------------
# Clips.
# --------------------------------------------------------------------------
def image_size(data: bytes, image_format: str) -> tuple[int, int]:
    """(height, width) read from a PNG or JPEG header without decoding."""
    if image_format == "png":
        if data[:8] != b"\x89PNG\r\n\x1a\n":
            raise ValueError("not a PNG image")
        width, height = struct.unpack(">II", data[16:24])
        return height, width
    if image_format == "jpeg":
        if data[:2] != b"\xff\xd8":
            raise ValueError("not a JPEG image")
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
                i += 1 if marker == 0xFF else 2
                continue
            seg_len = struct.unpack(">H", data[i + 2:i + 4])[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                height, width = struct.unpack(">HH", data[i + 5:i + 9])
                return height, width
            i += 2 + seg_len
        raise ValueError("JPEG without a frame header")
    raise ValueError(f"cannot read the size of a {image_format!r} image from its bytes")


def _encode_array(frame: np.ndarray, image_format: str, jpeg_quality: int) -> bytes:
    if image_format == "raw":
        return np.ascontiguousarray(frame, dtype=np.uint8).tobytes()
    import tensorflow as tf
    if image_format == "jpeg":
        return tf.io.encode_jpeg(frame, quality=jpeg_quality).numpy()
    return tf.io.encode_png(frame).numpy()


def _frame_times(n: int, fps: float, timestamps_us, source_indices) -> tuple[list, list]:
    """Per-frame timestamps (default index / fps, or 0) and source indices (default 0..n-1)."""
    if timestamps_us is None:
        timestamps_us = [int(round(i * 1e6 / fps)) if fps > 0 else 0 for i in range(n)]
    timestamps_us = [int(t) for t in timestamps_us]
    source_indices = [int(i) for i in (range(n) if source_indices is None else source_indices)]
    if len(timestamps_us) != n or len(source_indices) != n:
        raise ValueError("timestamps_us and source_indices need one value per frame")
    return timestamps_us, source_indices


def _clip_context(label, label_text, video_id, fps, timestamps_us) -> dict:
    """The context keys every record carries: label, source, rate and time span."""
    return {
        LABEL_INDEX: int64_feature([label]),
        LABEL_TEXT: bytes_feature([label_text]),
        VIDEO_FILENAME: bytes_feature([video_id]),
        VIDEO_FPS: float_feature([fps]),
        CLIP_START_TIMESTAMP: int64_feature([timestamps_us[0]]),
        CLIP_END_TIMESTAMP: int64_feature([timestamps_us[-1]]),
    }


def encode_clip(frames: Sequence[np.ndarray] | Sequence[bytes], *,
                label: int,
                label_text: str = "",
                video_id: str = "",
                image_format: str = "jpeg",
                jpeg_quality: int = 90,
                height: int | None = None,
                width: int | None = None,
                fps: float = 0.0,
                timestamps_us: Sequence[int] | None = None,
                source_indices: Sequence[int] | None = None,
                source_num_frames: int | None = None,
                short_policy: str = "none",
                extra_context: Mapping[str, Any] | None = None,
                extra_feature_lists: Mapping[str, Sequence[bytes]] | None = None) -> bytes:
    """Serialises one clip as a SequenceExample.

    Args:
      frames: uint8 RGB arrays ``[H, W, 3]`` (encoded here as ``image_format``)
        or already-encoded frames (bytes, stored as given; ``image_format``
        says what they are; for ``raw`` give ``height`` and ``width``).
      label: class index, or ``UNLABELLED`` (-1).
      timestamps_us: presentation time of each frame in microseconds; defaults
        to ``index / fps`` (or 0 when fps is unknown).
      source_indices: each frame's index in the source video; defaults to 0..T-1.
      extra_context / extra_feature_lists: more keys (constants of this module).
    """
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"image_format must be one of {IMAGE_FORMATS}, got {image_format!r}")
    if len(frames) == 0:
        raise ValueError("a clip needs at least one frame")
    channels = 3
    if isinstance(frames[0], (bytes, bytearray, memoryview)):
        encoded = [bytes(f) for f in frames]
        if height is None or width is None:
            height, width = image_size(encoded[0], image_format)
    else:
        arrays = [np.asarray(f) for f in frames]
        first = arrays[0]
        for a in arrays:
            if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
                raise ValueError(f"frames must be uint8 [H, W, 3], got {a.dtype} {a.shape}")
        if any(a.shape != first.shape for a in arrays):
            raise ValueError("all frames of a clip must have the same size")
        height, width = first.shape[:2]
        encoded = [_encode_array(a, image_format, jpeg_quality) for a in arrays]
    n = len(encoded)
    timestamps_us, source_indices = _frame_times(n, fps, timestamps_us, source_indices)
    context = {
        **_clip_context(label, label_text, video_id, fps, timestamps_us),
        VIDEO_NUM_FRAMES: int64_feature([source_num_frames if source_num_frames is not None
                                         else max(source_indices) + 1]),
        CLIP_NUM_FRAMES: int64_feature([n]),
        CLIP_SHORT_POLICY: bytes_feature([short_policy]),
        IMAGE_HEIGHT: int64_feature([height]),
        IMAGE_WIDTH: int64_feature([width]),
        IMAGE_CHANNELS: int64_feature([channels]),
        IMAGE_FORMAT: bytes_feature([image_format]),
    }
    for key, value in (extra_context or {}).items():
        context[key] = _feature_for(value)
    feature_lists = {
        IMAGE_ENCODED: [bytes_feature([e]) for e in encoded],
        IMAGE_TIMESTAMP: int64_rows(timestamps_us),
        IMAGE_SOURCE_INDEX: int64_rows(source_indices),
    }
    feature_lists.update(extra_feature_lists or {})
    return sequence_example(context, feature_lists)


def _context_spec():
    import tensorflow as tf
    i64, f32, s = tf.int64, tf.float32, tf.string
    return {
        LABEL_INDEX: tf.io.FixedLenFeature([], i64, default_value=UNLABELLED),
        LABEL_TEXT: tf.io.FixedLenFeature([], s, default_value=""),
        VIDEO_FILENAME: tf.io.FixedLenFeature([], s, default_value=""),
        VIDEO_FPS: tf.io.FixedLenFeature([], f32, default_value=0.0),
        VIDEO_NUM_FRAMES: tf.io.FixedLenFeature([], i64, default_value=-1),
        CLIP_START_TIMESTAMP: tf.io.FixedLenFeature([], i64, default_value=0),
        CLIP_END_TIMESTAMP: tf.io.FixedLenFeature([], i64, default_value=0),
        CLIP_SHORT_POLICY: tf.io.FixedLenFeature([], s, default_value="none"),
        IMAGE_HEIGHT: tf.io.FixedLenFeature([], i64, default_value=0),
        IMAGE_WIDTH: tf.io.FixedLenFeature([], i64, default_value=0),
        IMAGE_CHANNELS: tf.io.FixedLenFeature([], i64, default_value=3),
        IMAGE_FORMAT: tf.io.FixedLenFeature([], s, default_value="jpeg"),
    }


def parse_clip(serialized) -> dict:
    """Parses one serialised clip record into tensors (eager or in Dataset.map).

    Only ``image/encoded`` is required; every other key has a default, so
    SequenceExamples written by other tools with the same keys parse too.

    Returns a dict: ``frames`` (string [T], encoded), ``num_frames`` (int32,
    counted from the frames), ``label`` (int64), ``label_text``, ``video_id``,
    ``fps``, ``source_num_frames``, ``start_us``, ``end_us``, ``short_policy``,
    ``height``, ``width``, ``channels``, ``image_format``, ``timestamps_us``
    (int64 [T] or [0] when absent) and ``source_indices`` (int64 [T] or [0]).
    """
    import tensorflow as tf
    sequence_spec = {
        IMAGE_ENCODED: tf.io.FixedLenSequenceFeature([], tf.string),
        IMAGE_TIMESTAMP: tf.io.FixedLenSequenceFeature([], tf.int64, allow_missing=True),
        IMAGE_SOURCE_INDEX: tf.io.FixedLenSequenceFeature([], tf.int64, allow_missing=True),
    }
    ctx, seq = tf.io.parse_single_sequence_example(
        serialized, context_features=_context_spec(), sequence_features=sequence_spec)
    frames = seq[IMAGE_ENCODED]
    return {
        "frames": frames,
        "num_frames": tf.shape(frames)[0],
        "label": ctx[LABEL_INDEX],
        "label_text": ctx[LABEL_TEXT],
        "video_id": ctx[VIDEO_FILENAME],
        "fps": ctx[VIDEO_FPS],
        "source_num_frames": ctx[VIDEO_NUM_FRAMES],
        "start_us": ctx[CLIP_START_TIMESTAMP],
        "end_us": ctx[CLIP_END_TIMESTAMP],
        "short_policy": ctx[CLIP_SHORT_POLICY],
        "height": ctx[IMAGE_HEIGHT],
        "width": ctx[IMAGE_WIDTH],
        "channels": ctx[IMAGE_CHANNELS],
        "image_format": ctx[IMAGE_FORMAT],
        "timestamps_us": seq[IMAGE_TIMESTAMP],
        "source_indices": seq[IMAGE_SOURCE_INDEX],
    }


def decode_frames(frames, image_format: str, height=None, width=None, channels: int = 3):
    """Decodes encoded frames ``string [T]`` to ``uint8 [T, H, W, C]``.

    ``image_format`` is a python string (readers know it from dataset_info);
    ``raw`` needs ``height`` and ``width`` (python ints or scalar tensors).
    """
    import tensorflow as tf
    if image_format == "raw":
        flat = tf.io.decode_raw(frames, tf.uint8)
        return tf.reshape(flat, tf.stack([-1, tf.cast(height, tf.int32),
                                          tf.cast(width, tf.int32), channels]))
    if image_format == "jpeg":
        decode = lambda x: tf.io.decode_jpeg(x, channels=channels)  # noqa: E731
    elif image_format == "png":
        decode = lambda x: tf.io.decode_png(x, channels=channels)  # noqa: E731
    else:
        raise ValueError(f"image_format must be one of {IMAGE_FORMATS}, got {image_format!r}")
    return tf.map_fn(decode, frames, fn_output_signature=tf.TensorSpec([None, None, channels],
                                                                       tf.uint8))


# --------------------------------------------------------------------------
# Keypoint sequences.
# --------------------------------------------------------------------------
def encode_keypoints(values: np.ndarray, mask: np.ndarray, *,
                     label: int,
                     label_text: str = "",
                     video_id: str = "",
                     layout: str = "",
                     point_names: Sequence[str] = (),
                     fps: float = 0.0,
                     timestamps_us: Sequence[int] | None = None,
                     source_indices: Sequence[int] | None = None,
                     frame_labels: Sequence[int] | None = None,
                     extra_context: Mapping[str, Any] | None = None) -> bytes:
    """Serialises a keypoint sequence as a SequenceExample.

    Args:
      values: float ``[T, P, V, C]``: T frames, P people, V points, C coords
        (x, y[, confidence]); missing people/points are zeros.
      mask: ``[T, P, V]``, 1 where the point was seen, 0 where it is missing.
      frame_labels: optional per-frame class index (``frame/label/index``).
    """
    values = np.asarray(values, dtype=np.float32)
    mask = np.asarray(mask, dtype=np.float32)
    if values.ndim != 4:
        raise ValueError(f"values must be [T, P, V, C], got shape {values.shape}")
    t, p, v, c = values.shape
    if t == 0:
        raise ValueError("a keypoint sequence needs at least one frame")
    if mask.shape != (t, p, v):
        raise ValueError(f"mask must be [T, P, V] = {(t, p, v)}, got {mask.shape}")
    if not np.isfinite(values).all():
        raise ValueError("keypoint values must be finite")
    timestamps_us, source_indices = _frame_times(t, fps, timestamps_us, source_indices)
    context = {
        **_clip_context(label, label_text, video_id, fps, timestamps_us),
        CLIP_NUM_FRAMES: int64_feature([t]),
        KEYPOINTS_LAYOUT: bytes_feature([layout]),
        KEYPOINTS_NUM_PEOPLE: int64_feature([p]),
        KEYPOINTS_NUM_POINTS: int64_feature([v]),
        KEYPOINTS_NUM_COORDS: int64_feature([c]),
        KEYPOINTS_NAMES: bytes_feature(list(point_names)),
    }
    for key, value in (extra_context or {}).items():
        context[key] = _feature_for(value)
    feature_lists = {
        KEYPOINTS_VALUES: float_rows(values.reshape(t, -1)),
        KEYPOINTS_MASK: float_rows(mask.reshape(t, -1)),
        FRAME_TIMESTAMP: int64_rows(timestamps_us),
        FRAME_SOURCE_INDEX: int64_rows(source_indices),
    }
    if frame_labels is not None:
        if len(frame_labels) != t:
            raise ValueError("frame_labels needs one value per frame")
        feature_lists[FRAME_LABEL_INDEX] = int64_rows(int(x) for x in frame_labels)
    return sequence_example(context, feature_lists)


def parse_keypoints(serialized) -> dict:
    """Parses a keypoint record (eager or in Dataset.map).

    Returns ``values`` float32 ``[T, P*V*C]``, ``mask`` float32 ``[T, P*V]``,
    ``frame_labels`` int64 ``[T]`` (-1 where absent), ``timestamps_us``,
    ``source_indices``, ``num_frames``, ``num_people``, ``num_points``,
    ``num_coords``, ``layout``, ``label``, ``label_text``, ``video_id``, ``fps``, and
    ``frame_height``/``frame_width``: the source frame size that normalised x, y
    to [0, 1] (0 when the coordinates are in pixels).
    """
    import tensorflow as tf
    i64, f32, s = tf.int64, tf.float32, tf.string
    context_spec = {
        LABEL_INDEX: tf.io.FixedLenFeature([], i64, default_value=UNLABELLED),
        LABEL_TEXT: tf.io.FixedLenFeature([], s, default_value=""),
        VIDEO_FILENAME: tf.io.FixedLenFeature([], s, default_value=""),
        VIDEO_FPS: tf.io.FixedLenFeature([], f32, default_value=0.0),
        KEYPOINTS_LAYOUT: tf.io.FixedLenFeature([], s, default_value=""),
        KEYPOINTS_NUM_PEOPLE: tf.io.FixedLenFeature([], i64, default_value=1),
        KEYPOINTS_NUM_POINTS: tf.io.FixedLenFeature([], i64),
        KEYPOINTS_NUM_COORDS: tf.io.FixedLenFeature([], i64),
        IMAGE_HEIGHT: tf.io.FixedLenFeature([], i64, default_value=0),
        IMAGE_WIDTH: tf.io.FixedLenFeature([], i64, default_value=0),
    }
    sequence_spec = {
        KEYPOINTS_VALUES: tf.io.RaggedFeature(f32),
        KEYPOINTS_MASK: tf.io.RaggedFeature(f32),
        FRAME_LABEL_INDEX: tf.io.FixedLenSequenceFeature([], i64, allow_missing=True),
        FRAME_TIMESTAMP: tf.io.FixedLenSequenceFeature([], i64, allow_missing=True),
        FRAME_SOURCE_INDEX: tf.io.FixedLenSequenceFeature([], i64, allow_missing=True),
    }
    ctx, seq = tf.io.parse_single_sequence_example(
        serialized, context_features=context_spec, sequence_features=sequence_spec)
    p, v, c = ctx[KEYPOINTS_NUM_PEOPLE], ctx[KEYPOINTS_NUM_POINTS], ctx[KEYPOINTS_NUM_COORDS]
    values = seq[KEYPOINTS_VALUES].to_tensor()
    t = tf.shape(values)[0]
    values = tf.reshape(values, tf.stack([t, tf.cast(p * v * c, tf.int32)]))
    mask = tf.reshape(seq[KEYPOINTS_MASK].to_tensor(), tf.stack([t, tf.cast(p * v, tf.int32)]))
    labels = seq[FRAME_LABEL_INDEX]
    labels = tf.cond(tf.shape(labels)[0] == t, lambda: labels,
                     lambda: tf.fill([t], tf.constant(UNLABELLED, tf.int64)))
    return {
        "values": values, "mask": mask, "frame_labels": labels,
        "timestamps_us": seq[FRAME_TIMESTAMP], "source_indices": seq[FRAME_SOURCE_INDEX],
        "num_frames": t, "num_people": p, "num_points": v, "num_coords": c,
        "layout": ctx[KEYPOINTS_LAYOUT], "label": ctx[LABEL_INDEX],
        "label_text": ctx[LABEL_TEXT], "video_id": ctx[VIDEO_FILENAME], "fps": ctx[VIDEO_FPS],
        "frame_height": ctx[IMAGE_HEIGHT], "frame_width": ctx[IMAGE_WIDTH],
    }
