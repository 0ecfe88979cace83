"""One video reader and one timing rule, for the build, prediction and the upload page.

    open ─► plan indices ─► grab() every frame, retrieve() only kept ones ─► crop ─► resize ─► encode
                 ▲                                                         │
                 └────── re-plan (second pass) if the real frame count ◄───┘
                         differs from what the container claimed

Frame times come from the decoder's presentation times, relative to the first frame
and forced to increase (a repeated or missing time becomes the previous one plus one
period of the nominal rate, 25 fps when the container gives none). ``VideoReader`` is
the only place that reads a video file, so a clip the build writes, a sliding window
of ``trainers.predict`` and an overlay frame all carry the same time for the same frame.

Only kept frames are converted and encoded, and only their encoded bytes are held,
so memory per video is bounded by the kept frames, not the video. Container frame
counts lie (truncated files, edit lists, variable frame rate), so indices are planned
from the claimed count and checked against the frames really decoded; when they
disagree the plan is redone with the real count.
"""
from __future__ import annotations

import math
import os
from typing import Callable, Iterator, NamedTuple

import cv2
import numpy as np

from pipeline.media import files
from pipeline.media.encode import FrameSpec, output_size, process_frame
from pipeline.media.items import Clip, MediaError
from pipeline.media.sampling import SamplingSpec, plan_indices, stream_selector

DEFAULT_FPS = 25.0         # the frame period assumed where a container gives no rate


class Capture:
    """An OpenCV capture (a file or a camera) used as a context manager."""

    cap: cv2.VideoCapture

    def close(self):
        self.cap.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class VideoReader(Capture):
    """A local video file, frame by frame: ``grabs()`` yields (index, ms) without
    converting a frame, ``retrieve()`` converts the one just grabbed, ``frames()`` yields
    (index, seconds, BGR frame). A context manager; MediaError('cannot_open') when
    FFmpeg cannot open the file."""

    def __init__(self, path: str):
        self.path = path
        self.cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
        if not self.cap.isOpened():
            self.cap.release()
            raise MediaError("cannot_open", "OpenCV/FFmpeg could not open the file as a video "
                                            "(not a video, or an unsupported container/codec)")
        fps = self.cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if math.isfinite(fps) and 0 < fps < 1000 else 0.0   # 0: unknown
        claimed = self.cap.get(cv2.CAP_PROP_FRAME_COUNT)
        self.claimed = int(claimed) if math.isfinite(claimed) and claimed > 0 else 0

    @property
    def rate(self) -> float:
        """The nominal frame rate, DEFAULT_FPS when the container gives none."""
        return self.fps or DEFAULT_FPS

    def grabs(self) -> Iterator[tuple[int, float]]:
        """Yields (index, timestamp in ms relative to the first frame), increasing."""
        step = 1000.0 / self.rate
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
        """The BGR frame last grabbed."""
        ok, frame = self.cap.retrieve()
        if not ok or frame is None:
            raise MediaError("decode_failed", "a grabbed frame could not be decoded")
        return frame

    def frames(self) -> Iterator[tuple[int, float, np.ndarray]]:
        """Yields (index, seconds, BGR frame) of every frame."""
        for index, t in self.grabs():
            yield index, t / 1000.0, self.retrieve()

    def __iter__(self):
        return self.frames()


def count_frames(path: str) -> int:
    """The real number of decodable frames (a full grab pass)."""
    with VideoReader(path) as reader:
        n = 0
        for n, _ in enumerate(reader.grabs(), 1):
            pass
        return n


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
    kept: dict[int, tuple[bytes, float]] = {}
    src_hw = (0, 0)
    n, last = 0, 0.0
    with VideoReader(path) as reader:
        for index, t in reader.grabs():
            n, last = index + 1, t
            if keep(index, t):
                bgr = reader.retrieve()
                src_hw = bgr.shape[:2]
                kept[index] = (process_frame(bgr, spec), t)
        return _Pass(kept, n, reader.fps, reader.claimed, src_hw, last)


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


def local_copy(path: str) -> files.local_copy:
    """A local path for a video (remote files copied to a temporary file); MediaError
    'missing_file' for a local path that does not exist."""
    return files.local_copy(path, MediaError("missing_file", "the file does not exist"))


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
            result = _decode_pass(local, stream_selector(sampling), frame_spec)
            claimed = result.claimed
            _require_frames(result)
            order, policy = sorted(result.kept), "none"
        else:
            with VideoReader(local) as probe:
                claimed = probe.claimed
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
