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
disagree the plan is redone with the real count. Kept frames of a whole video lying
more than ``SEEK_GAP_S`` apart are reached by seeking where the container's count can be
checked (``_seek_pass``), giving the clip the full pass would.

A time range (``decode_video(start_s=, end_s=)``, ``decode_segments``, ``grabs(start_ms,
end_ms)``) reads only the frames timed in ``[start, end)``: the reader notes the first
frame's time (the zero point of the timing rule), seeks to shortly before ``start``
(FFmpeg lands on a keyframe at or before it and decodes forward), checks by the decoder's
time that it landed before ``start`` (else it seeks further back, and at last reads from
the first frame), and skips the frames before ``start``. So a frame carries the same time
whether it was reached by seeking or by reading from the start. Several segments of one
video are cut in one streamed pass from the earliest start to the latest end, each frame
decoded once and processed once however many segments hold it.
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
# A range starting earlier than this is read from the first frame: as cheap as a seek.
SEEK_FROM_S = 2.0
# Whole-video sampling seeks across a gap between kept frames longer than this, in
# containers that store their real frame count (see ``_seek_pass``).
SEEK_GAP_S = 4.0
COUNTED_CONTAINERS = (".mp4", ".m4v", ".mov", ".avi")
# Slack when comparing frame times with range bounds: under half a microsecond, so a frame
# inside the range is still inside once its time is rounded to microseconds.
BOUNDARY_MS = 4e-4

_threads = 0               # see set_threads
# FFmpeg's decoding threads pay only where decoding a frame dwarfs handing frames between
# threads: on smaller frames one thread decodes as fast or faster (up to 3x for the real
# 320x240 MPEG-4 fixture), on larger ones more threads win (1.3-1.6x at 1080p), whatever
# the codec (``benchmarks/build_bench.py --only threads``).
MIN_THREADED_PIXELS = 640 * 480
_last_large = False        # whether the last video opened here had MIN_THREADED_PIXELS


def _capture(path: str, threads: int) -> cv2.VideoCapture:
    """``path`` opened by FFmpeg with ``threads`` decoding threads (0: FFmpeg's default);
    MediaError('cannot_open') when it cannot be."""
    cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG,
                           [cv2.CAP_PROP_N_THREADS, threads] if threads else [])
    if not cap.isOpened():
        cap.release()
        raise MediaError("cannot_open", "OpenCV/FFmpeg could not open the file as a video "
                                        "(not a video, or an unsupported container/codec)")
    return cap


def set_threads(n: int) -> None:
    """Decodes each video of at least ``MIN_THREADED_PIXELS`` with ``n`` FFmpeg threads,
    and lets OpenCV's own operations (colour conversion, resizing) use ``n`` threads, in
    this process; 0 leaves both at the libraries' defaults (a thread per core). Smaller
    videos decode with one thread whatever ``n`` is. One thread spends less CPU per frame
    (``benchmarks/build_bench.py --only threads``), so a process that shares the cores
    with other worker processes should use one."""
    global _threads
    _threads = max(0, int(n))
    cv2.setNumThreads(_threads if _threads else -1)


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
    FFmpeg cannot open the file. ``exhausted`` turns true when the file has no more frames
    (rather than a range having ended)."""

    def __init__(self, path: str):
        self.path = path
        self.exhausted = False
        self.cap = self._open(path)
        fps = self.cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if math.isfinite(fps) and 0 < fps < 1000 else 0.0   # 0: unknown
        claimed = self.cap.get(cv2.CAP_PROP_FRAME_COUNT)
        self.claimed = int(claimed) if math.isfinite(claimed) and claimed > 0 else 0

    @staticmethod
    def _open(path: str) -> cv2.VideoCapture:
        """The file opened with one decoding thread, or, for a video of at least
        ``MIN_THREADED_PIXELS`` in a process given more than one (``set_threads``), with
        those. Opening costs up to milliseconds (FFmpeg decodes a little to learn the
        streams), so the file is opened for the size of the last video this process
        opened, and again only where its own size asks for the other choice: once in a
        dataset of one size."""
        global _last_large
        threads = _threads if _last_large else 1
        cap = _capture(path, threads)
        large = (cap.get(cv2.CAP_PROP_FRAME_WIDTH) * cap.get(cv2.CAP_PROP_FRAME_HEIGHT)
                 >= MIN_THREADED_PIXELS)
        if large != _last_large:
            _last_large = large
            if _threads != 1:
                cap.release()
                cap = _capture(path, _threads if large else 1)
        return cap

    @property
    def rate(self) -> float:
        """The nominal frame rate, DEFAULT_FPS when the container gives none."""
        return self.fps or DEFAULT_FPS

    def grabs(self, start_ms: float = 0.0,
              end_ms: float = math.inf) -> Iterator[tuple[int, float]]:
        """Yields (index, timestamp in ms relative to the first frame), increasing.

        With a range, only the frames timed in [start_ms, end_ms): a range starting at
        ``SEEK_FROM_S`` or later is reached by seeking (see the module's docstring), an
        earlier one by reading from the first frame. After a seek, indices are the
        decoder's frame numbers (exact for constant-rate files; time x nominal rate where
        the rate varies); times follow the one rule either way.
        """
        if start_ms <= 0 and end_ms == math.inf:
            yield from self._timed()
            return
        landed = self._seek_before(start_ms) if start_ms >= SEEK_FROM_S * 1000 else None
        for index, t in (self._timed(*landed) if landed else self._timed()):
            if t >= end_ms - BOUNDARY_MS:
                return
            if t >= start_ms - BOUNDARY_MS:
                yield index, t

    def _timed(self, first: float | None = None, index: int = 0,
               pending: float | None = None) -> Iterator[tuple[int, float]]:
        """The one timing rule over the frames from here: (index, ms since the first
        frame). ``first`` is the first frame's decoder time when it was read before (a
        seek), ``pending`` the decoder time of a frame already grabbed, numbered ``index``."""
        step = 1000.0 / self.rate
        prev = -math.inf
        while True:
            if pending is not None:
                t, pending = pending, None
            elif self.cap.grab():
                t = self.cap.get(cv2.CAP_PROP_POS_MSEC)
            else:
                self.exhausted = True
                return
            if first is None:
                first = t if math.isfinite(t) else 0.0
            t = t - first if math.isfinite(t) else prev + step
            if t <= prev:          # some containers report 0 or repeat at the end
                t = prev + step
            prev = t
            yield index, t
            index += 1

    def _seek_before(self, start_ms: float,
                     first: float | None = None) -> tuple[float, int, float] | None:
        """Puts the reader on a frame timed before ``start_ms`` by seeking: returns (the
        first frame's decoder time, the landed frame's index, its decoder time), the landed
        frame grabbed; or None, the file opened again at its start, when no seek landed
        before ``start_ms`` (a file that seeks late or not at all is read from the start).
        ``first``: the first frame's decoder time, when known (else the reader must be at
        the start of the file, and reads it)."""
        if first is None:
            if not self.cap.grab():
                return self._reopen()
            first = self.cap.get(cv2.CAP_PROP_POS_MSEC)
        if not math.isfinite(first):
            return self._reopen()
        period = 1000.0 / self.rate
        for back in (2 * period, 1000.0, 5000.0):      # landed late: seek further back
            target = start_ms - back
            if target < period:
                break
            if not self.cap.set(cv2.CAP_PROP_POS_MSEC, first + target) or not self.cap.grab():
                break
            raw = self.cap.get(cv2.CAP_PROP_POS_MSEC)
            index = int(round(self.cap.get(cv2.CAP_PROP_POS_FRAMES))) - 1
            if math.isfinite(raw) and index > 0 and 0 < raw - first < start_ms - BOUNDARY_MS:
                return first, index, raw
        return self._reopen()

    def _reopen(self) -> None:
        self.cap.release()
        self.cap = self._open(self.path)
        return None

    def retrieve(self) -> np.ndarray:
        """The BGR frame last grabbed."""
        ok, frame = self.cap.retrieve()
        if not ok or frame is None:
            raise MediaError("decode_failed", "a grabbed frame could not be decoded")
        return frame

    def frames(self, start_s: float = 0.0,
               end_s: float = math.inf) -> Iterator[tuple[int, float, np.ndarray]]:
        """Yields (index, seconds, BGR frame) of every frame (of those timed in [start_s,
        end_s) when given)."""
        for index, t in self.grabs(start_s * 1000.0, end_s * 1000.0):
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


def _decode_pass(path: str, keep: Callable[[int, float], bool], spec: FrameSpec,
                 opened: VideoReader | None = None) -> _Pass:
    """One streamed pass over the video, processing only the frames ``keep`` accepts.
    ``opened``: the file opened already and not read yet (closed by the pass)."""
    kept: dict[int, tuple[bytes, float]] = {}
    src_hw = (0, 0)
    n, last = 0, 0.0
    with opened or VideoReader(path) as reader:
        for index, t in reader.grabs():
            n, last = index + 1, t
            if keep(index, t):
                bgr = reader.retrieve()
                src_hw = bgr.shape[:2]
                kept[index] = (process_frame(bgr, spec), t)
        return _Pass(kept, n, reader.fps, reader.claimed, src_hw, last)


def _on_grid(index: int, t: float, period: float) -> bool:
    """Whether a frame's time is its index times the nominal period, to a millionth per
    frame: what makes an index reached by seeking the index a full pass would count. A
    frame dropped or added anywhere before it, a variable rate, or timestamps rounded to
    the millisecond move it off that grid (a full pass then decides)."""
    return abs(t - index * period) <= 1e-6 * max(index, 1) * period


def _seek_pass(path: str, wanted: list[int], spec: FrameSpec, claimed: int,
               fps: float) -> _Pass | None:
    """The pass ``_decode_pass`` would make for the sorted frame indices ``wanted`` of a
    video whose container claims ``claimed`` frames at ``fps``, reading only around them:
    a gap longer than ``SEEK_GAP_S`` is crossed by seeking (see ``VideoReader.grabs``).

    Only for containers that store their real frame count (MP4/MOV's sample tables, AVI's
    header): the count is then checked against the last frame, reached by seeking, which
    must be frame ``claimed - 1`` by its time and be followed by the end of the file; a
    frame dropped anywhere makes the two disagree. None when the file does not allow it,
    and the caller makes the full pass: the container does not count its frames, the
    count and the last frame disagree, or a frame read is off its index times the nominal
    period (variable frame rate, edit lists)."""
    if not path.lower().endswith(COUNTED_CONTAINERS):
        return None
    period = 1000.0 / fps
    with VideoReader(path) as reader:               # the count, checked at the end
        landed = reader._seek_before((claimed - 1) * period)
        if landed is None:
            return None
        last = None
        for index, t in reader._timed(*landed):
            if not _on_grid(index, t, period):
                return None
            last = index, t
        if last is None or last[0] != claimed - 1:
            return None
        first = landed[0]
    kept: dict[int, tuple[bytes, float]] = {}
    src_hw = (0, 0)
    with VideoReader(path) as reader:
        frames = reader._timed()
        at = -1                                     # the index last read
        for i in wanted:
            gap_ms = (i - max(at, 0)) * period
            if gap_ms > SEEK_GAP_S * 1000 and i * period >= SEEK_FROM_S * 1000:
                landed = reader._seek_before(i * period, first)
                frames = reader._timed(*landed) if landed else reader._timed()
                at = -1
            for index, t in frames:
                at = index
                if not _on_grid(index, t, period) or index > i:
                    return None
                if index == i:
                    bgr = reader.retrieve()
                    src_hw = bgr.shape[:2]
                    kept[i] = (process_frame(bgr, spec), t)
                    break
            else:
                return None
    return _Pass(kept, claimed, fps, claimed, src_hw, last[1])


def _wide_gaps(wanted: list[int], fps: float) -> bool:
    """Whether sorted ``wanted`` frames leave a gap that ``_seek_pass`` would seek across."""
    limit = SEEK_GAP_S * fps
    return any(b - a > limit for a, b in zip([0] + wanted, wanted))


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
                 truncation_tolerance: float = 0.05, start_s: float | None = None,
                 end_s: float | None = None) -> Clip:
    """Decodes one video file into a Clip (path may be remote: copied to a temp file).

    A video whose frames fall short of what its container declares by more
    than ``truncation_tolerance`` (see ``_check_truncation``) is rejected as
    truncated; 1.0 accepts any shortfall. With ``start_s`` and/or ``end_s`` only the
    frames timed in [start_s, end_s) are read (``decode_segments``), reached by seeking.
    """
    if start_s is not None or end_s is not None:
        result = decode_segments(path, [(start_s or 0.0, end_s)], sampling, frame_spec,
                                 truncation_tolerance)[0]
        if isinstance(result, MediaError):
            raise result
        return result
    with local_copy(path) as local:
        if os.path.getsize(local) == 0:
            raise MediaError("empty_file", "the file is 0 bytes")
        if not sampling.needs_count:
            result = _decode_pass(local, stream_selector(sampling), frame_spec)
            claimed = result.claimed
            _require_frames(result)
            order, policy = sorted(result.kept), "none"
        else:
            # The file is opened once to learn its frame count, and the full pass reads
            # on from there: no second open (a few ms for a large video).
            probe = VideoReader(local)
            try:
                claimed, fps = probe.claimed, probe.fps
                if claimed == 0:
                    claimed = count_frames(local)
                try:
                    wanted = set(plan_indices(sampling, claimed)[0])
                except MediaError:  # the claimed count may be wrong: decide on the real one
                    wanted = set()
                result, ordered = None, sorted(wanted)
                if ordered and claimed and fps and _wide_gaps(ordered, fps):
                    result = _seek_pass(local, ordered, frame_spec, claimed, fps)
                if result is None:
                    opened, probe = probe, None
                    result = _decode_pass(local, lambda i, t: i in wanted, frame_spec, opened)
            finally:
                if probe is not None:
                    probe.close()
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


# --------------------------------------------------------------------------
# Time ranges: segments of a video, cut in one streamed pass.
# --------------------------------------------------------------------------
class _Span:
    """What one pass saw of one segment [start_ms, end_ms): its frames counted from 0
    (``n``), the kept ones (segment frame number -> (encoded, ms, source index))."""

    def __init__(self, start_ms: float, end_ms: float, keep: Callable[[int, float], bool]):
        self.start_ms, self.end_ms, self.keep = start_ms, end_ms, keep
        self.kept: dict[int, tuple[bytes, float, int]] = {}
        self.n = 0
        self.first_ms = self.last_ms = 0.0
        self.src_hw = (0, 0)

    def holds(self, t: float) -> bool:
        return self.start_ms - BOUNDARY_MS <= t < self.end_ms - BOUNDARY_MS


def _spans_pass(path: str, spans: list[_Span], spec: FrameSpec) -> VideoReader:
    """One streamed pass from the earliest start to the latest end of ``spans``, each frame
    retrieved and processed once, however many spans keep it; returns the (closed) reader
    (its ``fps``, ``claimed`` and ``exhausted``)."""
    lo = min(s.start_ms for s in spans)
    hi = max(s.end_ms for s in spans)
    with VideoReader(path) as reader:
        for index, t in reader.grabs(lo, hi):
            encoded, hw = None, (0, 0)
            for span in spans:
                if not span.holds(t):
                    continue
                j = span.n
                span.n += 1
                if j == 0:
                    span.first_ms = t
                span.last_ms = t
                if span.keep(j, t - span.start_ms):
                    if encoded is None:
                        bgr = reader.retrieve()
                        hw = bgr.shape[:2]
                        encoded = process_frame(bgr, spec)
                    span.kept[j] = (encoded, t, index)
                    span.src_hw = hw
    return reader


def _estimated_count(start_ms: float, end_ms: float, rate: float, claimed: int) -> int:
    """Frames a segment should hold by the container's rate and count (a plan's first
    guess, checked against the frames really decoded)."""
    first = math.ceil(start_ms * rate / 1000.0 - 1e-6)
    last = (end_ms * rate / 1000.0) if math.isfinite(end_ms) else math.inf
    if claimed:
        last = min(last, claimed)
    if not math.isfinite(last):
        return 0
    return max(0, math.ceil(last - 1e-6) - first)


def _span_keep(sampling: SamplingSpec, estimate: int) -> Callable[[int, float], bool]:
    if not sampling.needs_count:
        return stream_selector(sampling)
    try:
        wanted = set(plan_indices(sampling, estimate)[0])
    except MediaError:          # the estimate may be wrong: decide on the real count
        wanted = set()
    return lambda j, t: j in wanted


def _bounds(start_ms: float, end_ms: float) -> str:
    end = f"{end_ms / 1000:.3f}" if math.isfinite(end_ms) else "end"
    return f"[{start_ms / 1000:.3f}, {end}) s"


def _span_clip(local: str, span: _Span, reader: VideoReader, sampling: SamplingSpec,
               spec: FrameSpec, estimate: int, tolerance: float) -> Clip:
    """The Clip of one segment after its pass (a second pass over the segment alone when
    its planned frame count was wrong)."""
    declared_end = (reader.claimed * 1000.0 / reader.fps if reader.claimed and reader.fps
                    else 0.0)
    if span.n == 0:
        if reader.exhausted and span.start_ms < (1.0 - tolerance) * declared_end:
            raise MediaError("truncated", f"no frame is timed in "
                                          f"{_bounds(span.start_ms, span.end_ms)} though the "
                                          f"container declares {declared_end / 1000:.2f}s: "
                                          "truncated or damaged file")
        raise MediaError("empty_segment", "no frame is timed in "
                                          f"{_bounds(span.start_ms, span.end_ms)} (the segment "
                                          "lies outside the video)")
    if sampling.needs_count:
        order, policy = plan_indices(sampling, span.n)
        if not set(order) <= span.kept.keys():
            wanted = set(order)
            again = _Span(span.start_ms, span.end_ms, lambda j, t: j in wanted)
            _spans_pass(local, [again], spec)
            if again.n != span.n or not set(order) <= again.kept.keys():
                raise MediaError("unstable_decode", f"two decode passes gave {span.n} and "
                                                    f"{again.n} frames in "
                                                    f"{_bounds(span.start_ms, span.end_ms)}")
            span = again
    else:
        order, policy = sorted(span.kept), "none"
    period = 1000.0 / reader.rate
    if reader.exhausted and declared_end:
        expected = min(span.end_ms, declared_end) - span.start_ms
        decoded = span.last_ms + period - span.start_ms
        if expected - decoded > period and decoded < (1.0 - tolerance) * expected:
            raise MediaError("truncated", f"the frames of {_bounds(span.start_ms, span.end_ms)} "
                                          f"stop at {(span.last_ms + period) / 1000:.2f}s, the "
                                          f"container declares {declared_end / 1000:.2f}s: "
                                          "truncated or damaged file")
    fps = reader.fps
    if span.n >= 2 and span.last_ms > span.first_ms:
        measured = (span.n - 1) * 1000.0 / (span.last_ms - span.first_ms)
        if not (fps and abs(measured - fps) <= 0.05 * fps):
            fps = measured
    out_h, out_w = output_size(spec, *span.src_hw)
    return Clip(
        frames=[span.kept[j][0] for j in order],
        timestamps_us=[int(round(span.kept[j][1] * 1000)) for j in order],
        source_indices=[span.kept[j][2] for j in order],
        fps=fps,
        source_num_frames=span.n,
        claimed_num_frames=estimate,
        height=out_h, width=out_w,
        source_height=int(span.src_hw[0]), source_width=int(span.src_hw[1]),
        short_policy=policy,
    )


def decode_segments(path: str, segments: list[tuple[float, float]], sampling: SamplingSpec,
                    frame_spec: FrameSpec,
                    truncation_tolerance: float = 0.05) -> list[Clip | MediaError]:
    """Decodes segments ``[(start_s, end_s), ...]`` of one video in one streamed pass (from
    the earliest start, reached by seeking, to the latest end): one Clip per segment of the
    frames timed in [start_s, end_s), sampled by ``sampling`` as if the segment were the
    whole video, or the MediaError of that segment (``empty_segment``, ``too_short``,
    ``truncated``, ...). Timestamps and source indices stay those of the whole video.
    Raises MediaError for the file itself (missing, empty, cannot be opened)."""
    with local_copy(path) as local:
        if os.path.getsize(local) == 0:
            raise MediaError("empty_file", "the file is 0 bytes")
        with VideoReader(local) as probe:
            rate, claimed = probe.rate, probe.claimed
        results: list[Clip | MediaError | None] = [None] * len(segments)
        spans: dict[int, tuple[_Span, int]] = {}
        for k, (start_s, end_s) in enumerate(segments):
            start_ms = 1000.0 * start_s
            end_ms = 1000.0 * end_s if end_s is not None else math.inf
            if not (0 <= start_ms < end_ms):
                results[k] = MediaError("bad_segment", f"{_bounds(start_ms, end_ms)} is no "
                                                       "time range (start >= 0 and end > start)")
                continue
            estimate = _estimated_count(start_ms, end_ms, rate, claimed)
            spans[k] = (_Span(start_ms, end_ms, _span_keep(sampling, estimate)), estimate)
        if spans:
            reader = _spans_pass(local, [span for span, _ in spans.values()], frame_spec)
            for k, (span, estimate) in spans.items():
                try:
                    results[k] = _span_clip(local, span, reader, sampling, frame_spec,
                                            estimate, truncation_tolerance)
                except MediaError as e:
                    results[k] = e
    return results
