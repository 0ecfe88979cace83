"""Decode, sample, crop, resize and encode the frames of one video, streamed.

    open ─► plan indices ─► grab() every frame, retrieve() only kept ones ─► crop ─► resize ─► encode
                 ▲                                                         │
                 └────── re-plan (second pass) if the real frame count ◄───┘
                         differs from what the container claimed

Only kept frames are converted and encoded, and only their encoded bytes are
held, so memory per video is bounded by the kept frames, not the video.
Container frame counts lie (truncated files, edit lists, variable frame
rate), so indices are planned from the claimed count and checked against the
frames really decoded; when they disagree the plan is redone with the real
count. Timestamps come from the decoder's presentation times.

Frame folders and images (``pipeline.frames``) go through the same sampling
plan and crop/resize/encode steps.
"""
from __future__ import annotations

import dataclasses
import math
import os
import shutil
import tempfile
from typing import Callable, Iterator, NamedTuple, Sequence

import cv2
import numpy as np

SAMPLING_MODES = ("all", "uniform", "stride", "segments", "indices")
SHORT_POLICIES = ("loop", "repeat_last", "skip")
CROPS = ("none", "center_square")
IMAGE_FORMATS = ("jpeg", "png", "raw")


class MediaError(Exception):
    """A video that cannot become a clip; ``reason`` is a short code for errors.jsonl."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclasses.dataclass(frozen=True)
class SamplingSpec:
    """Which frames of a video become the clip."""
    mode: str = "all"
    num_frames: int | None = None      # K for uniform/segments/stride; None = as many as exist
    stride: int = 1
    fps: float | None = None           # 'all' only: resample to this rate by timestamp
    indices: tuple[int, ...] = ()      # 'indices' only: 0-based frame numbers
    short: str = "loop"                # what to do when the video has too few frames

    def __post_init__(self):
        if self.mode not in SAMPLING_MODES:
            raise ValueError(f"sampling must be one of {SAMPLING_MODES}, got {self.mode!r}")
        if self.short not in SHORT_POLICIES:
            raise ValueError(f"short must be one of {SHORT_POLICIES}, got {self.short!r}")
        if self.mode in ("uniform", "segments") and not (self.num_frames and self.num_frames > 0):
            raise ValueError(f"sampling {self.mode!r} needs num_frames > 0")
        if self.num_frames is not None and self.num_frames < 1:
            raise ValueError("num_frames must be >= 1")
        if self.mode == "indices" and (not self.indices or min(self.indices) < 0):
            raise ValueError("sampling 'indices' needs a non-empty list of indices >= 0")
        if self.stride < 1:
            raise ValueError("stride must be >= 1")
        if self.fps is not None and self.fps <= 0:
            raise ValueError("fps must be > 0")

    @property
    def needs_count(self) -> bool:
        """Whether the plan depends on the total number of frames."""
        return self.mode in ("uniform", "segments", "indices") or (
            self.mode == "stride" and self.num_frames is not None)


@dataclasses.dataclass(frozen=True)
class FrameSpec:
    """How each kept frame is cropped, resized and encoded."""
    crop: str = "none"
    resize_shorter: int | None = None
    size: tuple[int, int] | None = None    # (width, height)
    image_format: str = "jpeg"
    jpeg_quality: int = 90

    def __post_init__(self):
        if self.crop not in CROPS:
            raise ValueError(f"crop must be one of {CROPS}, got {self.crop!r}")
        if self.image_format not in IMAGE_FORMATS:
            raise ValueError(f"image_format must be one of {IMAGE_FORMATS}")
        if self.resize_shorter is not None and self.size is not None:
            raise ValueError("give resize_shorter or size, not both")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError("jpeg_quality must be in 1..100")


@dataclasses.dataclass
class Clip:
    """The kept frames of one video, encoded, with where they came from."""
    frames: list[bytes]
    timestamps_us: list[int]
    source_indices: list[int]
    fps: float
    source_num_frames: int          # frames really decoded
    claimed_num_frames: int         # what the container said
    height: int
    width: int
    source_height: int
    source_width: int
    short_policy: str               # 'none', or the policy that filled a short video
    num_filled: int = 0             # frame folders: missing frame numbers filled with a neighbour


# --------------------------------------------------------------------------
# Sampling plans.
# --------------------------------------------------------------------------
def needed_frames(spec: SamplingSpec) -> int:
    """How many source frames the plan needs before a video counts as short."""
    if spec.mode in ("uniform", "segments"):
        return spec.num_frames
    if spec.mode == "indices":
        return max(spec.indices) + 1
    if spec.mode == "stride" and spec.num_frames:
        return (spec.num_frames - 1) * spec.stride + 1
    return 1


def _fill_short(base: Sequence[int], count: int, policy: str) -> list[int]:
    if policy == "loop":
        return [base[i % len(base)] for i in range(count)]
    return [base[min(i, len(base) - 1)] for i in range(count)]


def plan_indices(spec: SamplingSpec, n: int) -> tuple[list[int], str]:
    """Source frame indices of the clip for a video of ``n`` frames, and the short policy used.

    uniform:  K evenly spaced frames including the first and last (the middle one for K=1).
    segments: TSN, K equal segments, the centre frame of each.
    stride:   every stride-th frame; with K, the centred window of K frames.
    indices:  the given 0-based indices.
    all:      every frame.
    Raises MediaError('too_short') when the video is short and the policy is 'skip'.
    """
    if n <= 0:
        raise MediaError("no_frames", "the video has no decodable frame")
    need = needed_frames(spec)
    short = n < need
    if short and spec.short == "skip":
        raise MediaError("too_short", f"{n} frames decoded, {need} needed "
                                      f"({spec.mode}, --short skip)")
    k = spec.num_frames
    if spec.mode == "all":
        return list(range(n)), "none"
    if spec.mode == "stride" and not k:
        return list(range(0, n, spec.stride)), "none"
    if spec.mode == "stride":
        if not short:
            start = (n - need) // 2
            return [start + i * spec.stride for i in range(k)], "none"
        return _fill_short(list(range(0, n, spec.stride)), k, spec.short), spec.short
    if spec.mode == "indices":
        if not short:
            return list(spec.indices), "none"
        if spec.short == "loop":
            return [i % n for i in spec.indices], "loop"
        return [min(i, n - 1) for i in spec.indices], "repeat_last"
    if short:
        return _fill_short(list(range(n)), k, spec.short), spec.short
    if spec.mode == "uniform":
        if k == 1:
            return [(n - 1) // 2], "none"
        return [int(math.floor(i * (n - 1) / (k - 1) + 0.5)) for i in range(k)], "none"
    return [int(math.floor((i + 0.5) * n / k)) for i in range(k)], "none"  # segments


# --------------------------------------------------------------------------
# Per-frame processing.
# --------------------------------------------------------------------------
def parse_size(text: str | None, flag: str, example: str = "112x112") -> tuple[int, int] | None:
    """``"WIDTHxHEIGHT"`` -> (width, height); None for an empty value.

    Raises ValueError naming ``flag`` for anything else, so every command line that
    takes a size reports a mistake the same way.
    """
    if not text:
        return None
    w, sep, h = text.strip().lower().partition("x")
    if not sep or not (w.isdigit() and h.isdigit()):
        raise ValueError(f"{flag} must look like {example} (WIDTHxHEIGHT), got {text!r}")
    if int(w) <= 0 or int(h) <= 0:
        raise ValueError(f"{flag} needs a positive width and height, got {text!r}")
    return int(w), int(h)


def output_size(spec: FrameSpec, height: int, width: int) -> tuple[int, int]:
    """(height, width) of a processed frame from a source frame of this size."""
    if spec.crop == "center_square":
        height = width = min(height, width)
    if spec.size is not None:
        return spec.size[1], spec.size[0]
    if spec.resize_shorter:
        scale = spec.resize_shorter / min(height, width)
        return max(1, int(round(height * scale))), max(1, int(round(width * scale)))
    return height, width


def process_frame(bgr: np.ndarray, spec: FrameSpec) -> bytes:
    """Crops, resizes and encodes one BGR frame."""
    h, w = bgr.shape[:2]
    if spec.crop == "center_square" and h != w:
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        bgr = bgr[top:top + side, left:left + side]
        h = w = side
    out_h, out_w = output_size(spec, *bgr.shape[:2])
    if (out_h, out_w) != (h, w):
        # Area averaging only where it matters (shrinking 2x or more): it
        # avoids aliasing there, and below 2x bilinear looks the same at a
        # third of the cost.
        heavy_shrink = out_h * 2 <= h and out_w * 2 <= w
        bgr = cv2.resize(bgr, (out_w, out_h),
                         interpolation=cv2.INTER_AREA if heavy_shrink else cv2.INTER_LINEAR)
    if spec.image_format == "raw":
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).tobytes()
    if spec.image_format == "jpeg":
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, spec.jpeg_quality])
    else:
        ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise MediaError("encode_failed", f"OpenCV could not encode a {out_w}x{out_h} frame")
    return buf.tobytes()


# --------------------------------------------------------------------------
# Video decoding.
# --------------------------------------------------------------------------
class _Frames:
    """Iterates (index, timestamp_ms, grab ok) over a video with cheap grab()."""

    def __init__(self, path: str):
        self.cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
        if not self.cap.isOpened():
            raise MediaError("cannot_open", "OpenCV/FFmpeg could not open the file as a video "
                                            "(not a video, or an unsupported container/codec)")
        fps = self.cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if math.isfinite(fps) and 0 < fps < 1000 else 0.0
        claimed = self.cap.get(cv2.CAP_PROP_FRAME_COUNT)
        self.claimed = int(claimed) if math.isfinite(claimed) and claimed > 0 else 0

    def __iter__(self) -> Iterator[tuple[int, float]]:
        """Yields (index, timestamp in ms relative to the first frame), monotonic."""
        step = 1000.0 / self.fps if self.fps else 40.0
        first = None
        prev = -math.inf
        i = 0
        while self.cap.grab():
            t = self.cap.get(cv2.CAP_PROP_POS_MSEC)
            if first is None:
                first = t if math.isfinite(t) else 0.0
            t = t - first if math.isfinite(t) else prev + step
            if t <= prev:          # some containers report 0 or repeat at the end
                t = prev + step
            prev = t
            yield i, t
            i += 1

    def retrieve(self) -> np.ndarray:
        ok, frame = self.cap.retrieve()
        if not ok or frame is None:
            raise MediaError("decode_failed", "a grabbed frame could not be decoded")
        return frame

    def close(self):
        self.cap.release()


def count_frames(path: str) -> int:
    """The real number of decodable frames (a full grab pass)."""
    frames = _Frames(path)
    try:
        n = 0
        for n, _ in enumerate(frames, 1):
            pass
        return n
    finally:
        frames.close()


class _Pass(NamedTuple):
    """What one decode pass saw."""
    kept: dict          # index -> (encoded bytes, timestamp ms)
    n: int              # frames decoded
    fps: float          # container's nominal rate (0 if unknown)
    claimed: int        # container's frame count (0 if unknown)
    src_hw: tuple       # source frame (height, width)
    last_ms: float      # timestamp of the last frame


def _decode_pass(path: str, keep: Callable[[int, float], bool], spec: FrameSpec) -> _Pass:
    """One streamed pass over the video, processing only the frames ``keep`` accepts."""
    frames = _Frames(path)
    kept: dict[int, tuple[bytes, float]] = {}
    src_hw = (0, 0)
    n, last = 0, 0.0
    try:
        for index, t in frames:
            n, last = index + 1, t
            if keep(index, t):
                bgr = frames.retrieve()
                src_hw = bgr.shape[:2]
                kept[index] = (process_frame(bgr, spec), t)
        return _Pass(kept, n, frames.fps, frames.claimed, src_hw, last)
    finally:
        frames.close()


def _effective_fps(result: _Pass) -> float:
    """The container's rate, unless the timestamps say otherwise (variable frame rate)."""
    if result.n < 2 or result.last_ms <= 0:
        return result.fps
    measured = (result.n - 1) * 1000.0 / result.last_ms
    if result.fps and abs(measured - result.fps) <= 0.05 * result.fps:
        return result.fps
    return measured


def _check_truncation(result: _Pass, claimed: int, tolerance: float):
    """Rejects a video whose decoded frames fall well short of what the container declares.

    Frame counts alone lie (variable-frame-rate files report duration x nominal
    rate), so a video counts as truncated only when both its frame count and
    the time its frames span fall short by more than ``tolerance``.
    """
    missing = claimed - result.n
    if not (claimed and result.fps and missing > 1 and missing > tolerance * claimed):
        return
    declared_ms = claimed * 1000.0 / result.fps
    decoded_ms = result.last_ms + 1000.0 / result.fps
    if decoded_ms < (1.0 - tolerance) * declared_ms:
        raise MediaError("truncated", f"decoded {result.n} of the {claimed} frames "
                                      f"({decoded_ms / 1000:.2f}s of {declared_ms / 1000:.2f}s) "
                                      "the container declares: truncated or damaged file")


def decode_video(path: str, sampling: SamplingSpec, frame_spec: FrameSpec,
                 truncation_tolerance: float = 0.05) -> Clip:
    """Decodes one video file into a Clip (path may be remote: copied to a temp file).

    A video whose frames fall short of what its container declares by more
    than ``truncation_tolerance`` (see ``_check_truncation``) is rejected as
    truncated; 1.0 accepts any shortfall.
    """
    with local_copy(path) as local:
        if os.path.getsize(local) == 0:
            raise MediaError("empty_file", "the file is 0 bytes")
        if not sampling.needs_count:
            result = _decode_pass(local, _stream_selector(sampling), frame_spec)
            claimed = result.claimed
            _require_frames(result)
            order, policy = sorted(result.kept), "none"
        else:
            probe = _Frames(local)
            claimed = probe.claimed
            probe.close()
            if claimed == 0:
                claimed = count_frames(local)
            try:
                wanted = set(plan_indices(sampling, claimed)[0])
            except MediaError:      # the claimed count may be wrong: decide on the real one
                wanted = set()
            result = _decode_pass(local, lambda i, t: i in wanted, frame_spec)
            _require_frames(result)
            order, policy = plan_indices(sampling, result.n)
            if not set(order) <= result.kept.keys():   # the claimed count was wrong: again
                wanted = set(order)
                again = _decode_pass(local, lambda i, t: i in wanted, frame_spec)
                if again.n != result.n or not set(order) <= again.kept.keys():
                    raise MediaError("unstable_decode",
                                     f"two decode passes gave {result.n} and {again.n} frames")
                result = again
    _check_truncation(result, claimed, truncation_tolerance)
    out_h, out_w = output_size(frame_spec, *result.src_hw)
    return Clip(
        frames=[result.kept[i][0] for i in order],
        timestamps_us=[int(round(result.kept[i][1] * 1000)) for i in order],
        source_indices=list(order),
        fps=_effective_fps(result),
        source_num_frames=result.n,
        claimed_num_frames=claimed,
        height=out_h, width=out_w,
        source_height=int(result.src_hw[0]), source_width=int(result.src_hw[1]),
        short_policy=policy,
    )


def _require_frames(result: _Pass):
    if result.n == 0:
        raise MediaError("no_frames", "the file opened but no frame could be decoded "
                                      "(truncated or corrupt)")


def _stream_selector(spec: SamplingSpec) -> Callable[[int, float], bool]:
    """Keep-decision for plans that need no frame count (all, all@fps, stride)."""
    if spec.mode == "stride":
        return lambda i, t: i % spec.stride == 0
    if spec.fps:
        period = 1000.0 / spec.fps
        state = {"next": 0.0}

        def keep(i, t):
            if t + 1e-6 >= state["next"]:
                # next target after this frame; skip targets this frame already covers
                state["next"] = (math.floor((t + 1e-6) / period) + 1) * period
                return True
            return False
        return keep
    return lambda i, t: True


class local_copy:
    """Context manager giving a local path for ``path``; remote files are copied to a temp file."""

    def __init__(self, path: str):
        self.path = path
        self.tmp = None

    def __enter__(self) -> str:
        if "://" not in self.path:
            if not os.path.exists(self.path):
                raise MediaError("missing_file", "the file does not exist")
            return self.path
        from apache_beam.io.filesystems import FileSystems
        suffix = os.path.splitext(self.path)[1]
        fd, self.tmp = tempfile.mkstemp(suffix=suffix, prefix="actionflow-")
        with os.fdopen(fd, "wb") as out, FileSystems.open(self.path) as src:
            shutil.copyfileobj(src, out, 1 << 20)
        return self.tmp

    def __exit__(self, *exc):
        if self.tmp:
            os.unlink(self.tmp)
        return False
