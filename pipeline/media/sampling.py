"""Which source frames become the clip: one plan for videos, frame folders and windows.

    uniform   K evenly spaced frames including the first and last (the middle one for K=1)
    segments  TSN: K equal segments, the centre frame of each
    stride    every stride-th frame; with K, the centred window of K frames
    indices   the given 0-based indices
    all       every frame, or with ``fps`` the first frame at or after each tick of that rate

A source with fewer frames than the plan needs is looped, repeats its last frame, or
is refused (``short``), and the clip records which.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Sequence

from pipeline.media.items import MediaError

SAMPLING_MODES = ("all", "uniform", "stride", "segments", "indices")
SHORT_POLICIES = ("loop", "repeat_last", "skip")


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


def stream_selector(spec: SamplingSpec) -> Callable[[int, float], bool]:
    """Keep-decision ``keep(index, time_ms)`` for plans that need no frame count (all,
    all@fps, stride), decided frame by frame as a stream goes by."""
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


def plan_positions(sampling: SamplingSpec, n: int,
                   source_fps: float) -> tuple[list[int], str]:
    """Positions 0..n-1 of a run of frames to keep, and the short policy used.

    ``plan_indices``, except that ``all`` with ``fps`` picks by the times
    ``i / source_fps`` (frame folders and other frame runs without decoder times).
    """
    if sampling.mode == "all" and sampling.fps:
        if source_fps <= 0:
            raise MediaError("unknown_fps", "resampling to --fps needs the frame rate of "
                                            "the frame folders (--source_fps)")
        keep = stream_selector(sampling)
        return [i for i in range(n) if keep(i, i * 1000.0 / source_fps)], "none"
    return plan_indices(sampling, n)
