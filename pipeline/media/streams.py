"""Frames as they arrive (a camera, a video being read) and sliding windows over them.

A stream yields ``(index, seconds, BGR frame)``: ``video.VideoReader`` for a file (decoder
times), ``CameraFrames`` for a live camera (wall-clock times since its first frame).
``sliding_windows`` cuts any stream into windows ``[k * hop, k * hop + window)`` and
hands each one on as soon as it is complete, every frame processed once by the
build's crop/resize/encode.
"""
from __future__ import annotations

import collections
import dataclasses
import math
import time
from typing import Callable, Iterable, Iterator

import cv2
import numpy as np

from pipeline.media.items import MediaError
from pipeline.media.video import DEFAULT_FPS, Capture

BOUNDARY_S = 1e-6          # slack when comparing frame times with window edges


class CameraFrames(Capture):
    """(index, seconds since the first frame, BGR frame) from camera ``index`` until it
    stops or the caller does; a context manager. MediaError('cannot_open') when the
    device cannot be opened."""

    def __init__(self, index: int):
        self.path = f"camera {index}"
        level = cv2.getLogLevel()
        cv2.setLogLevel(0)                  # silent: probing a missing device warns
        try:
            self.cap = cv2.VideoCapture(index)
            opened = self.cap.isOpened()
        finally:
            cv2.setLogLevel(level)
        if not opened:
            self.cap.release()
            raise MediaError("cannot_open", f"cannot open camera {index} (no such device, no "
                                            "permission, or in use by another program)")
        fps = self.cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if math.isfinite(fps) and 0 < fps < 1000 else DEFAULT_FPS

    def __iter__(self) -> Iterator[tuple[int, float, np.ndarray]]:
        start = None
        i = 0
        while True:
            ok, frame = self.cap.read()
            if not ok or frame is None:
                return
            now = time.monotonic()
            start = now if start is None else start
            yield i, now - start, frame
            i += 1


@dataclasses.dataclass
class Window:
    """The frames of one window, processed as the build processes kept frames."""
    start: float                 # seconds
    end: float
    indices: list[int]           # frame numbers in the stream
    times: list[float]
    encoded: list[bytes]
    source_hw: tuple[int, int]


def sliding_windows(frames: Iterable[tuple[int, float, np.ndarray]], window: float, hop: float,
                    process: Callable[[np.ndarray], bytes]) -> Iterator[Window]:
    """Windows [k * hop, k * hop + window) of a frame stream, each as soon as it is complete.

    Every frame is processed once (``process``: the build's crop/resize/encode)
    and kept only while a later window can still use it. When the stream ends,
    a stream shorter than one window gives one window of all its frames, and a
    tail after the last whole window gives one last window ending with the
    stream, so every frame is covered.
    """
    if window <= 0 or hop <= 0:
        raise ValueError("window and hop must be > 0 seconds")
    kept: collections.deque = collections.deque()     # (index, t, encoded)
    k, emitted, last_end, hw = 0, 0, 0.0, (0, 0)
    period = None
    prev_t = None

    def make(start: float, end: float) -> Window:
        inside = [f for f in kept if start - BOUNDARY_S <= f[1] < end - BOUNDARY_S]
        return Window(start, end, [f[0] for f in inside], [f[1] for f in inside],
                      [f[2] for f in inside], hw)

    for index, t, bgr in frames:
        if prev_t is not None and t > prev_t:
            period = t - prev_t
        prev_t = t
        while t >= k * hop + window - BOUNDARY_S:
            if any(f[1] >= k * hop - BOUNDARY_S for f in kept):
                yield make(k * hop, k * hop + window)
                emitted += 1
                last_end = k * hop + window
            k += 1
        while kept and kept[0][1] < min(k * hop, t - window) - BOUNDARY_S:
            kept.popleft()
        hw = bgr.shape[:2]
        kept.append((index, t, process(bgr)))
    if not kept:
        return
    end = kept[-1][1] + (period or 1.0 / DEFAULT_FPS)
    while k * hop + window <= end + BOUNDARY_S:          # whole windows ending with the stream
        yield make(k * hop, k * hop + window)
        emitted += 1
        last_end = k * hop + window
        k += 1
    if not emitted:
        yield make(kept[0][1], end)
    elif last_end < end - BOUNDARY_S:
        yield make(max(0.0, end - window), end)
