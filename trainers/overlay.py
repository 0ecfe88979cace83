"""Predictions drawn on videos and pictures: the label and its probability in a band across
the top of every frame of a video (``trainers.predict --overlay``, the upload page), a strip
of the frames a model read, and a timeline of the label over time.

Video formats, by the output's extension (``writer_format``):

    .webm   VP8 in WebM: every browser plays it (the upload page's choice)
    .mp4    H.264 when this OpenCV's FFmpeg can encode it (browsers play it), else MPEG-4
            part 2 (``mp4v``: players such as VLC and ffplay do, browsers do not)
    other   MPEG-4 part 2

The opencv-python wheels ship FFmpeg without an H.264 encoder, so there ``.mp4`` is
``mp4v``; ``browser_extension()`` says which extension a browser can play here.
"""
from __future__ import annotations

import bisect
import contextlib
import functools
import os
import tempfile
from typing import Callable, Sequence

import cv2
import numpy as np

from pipeline.media.drawing import fit, font
from pipeline.media.streams import BOUNDARY_S
from pipeline.media.video import VideoReader

# Okabe & Ito's colour-blind-safe palette.
OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7",
             "#000000")


def draw_label(bgr: np.ndarray, text: str) -> np.ndarray:
    """Draws ``text`` in white on a black band across the top of the frame (in place)."""
    h, w = bgr.shape[:2]
    band = overlay_band_height(h)
    cv2.rectangle(bgr, (0, 0), (w - 1, band - 1), (0, 0, 0), thickness=-1)
    scale = band / 32.0
    thickness = max(1, int(round(band / 24)))
    cv2.putText(bgr, text, (max(2, band // 4), int(band * 0.75)), cv2.FONT_HERSHEY_SIMPLEX,
                scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return bgr


def overlay_band_height(height: int) -> int:
    """Rows of the band ``draw_label`` covers in a frame ``height`` rows high."""
    return max(12, int(round(height * 0.08)))


# --------------------------------------------------------------------------
# Video writers.
# --------------------------------------------------------------------------
@contextlib.contextmanager
def _quiet_opencv():
    """Silences OpenCV's and FFmpeg's own lines while a writer opens: its log, and the
    line FFmpeg's WebM muxer makes OpenCV print (on stderr, not through its log) about
    the codec tag, which WebM files do not store."""
    level = cv2.getLogLevel()
    cv2.setLogLevel(0)
    saved = None
    try:
        import sys
        sys.stderr.flush()
        saved = os.dup(2)
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
    except OSError:
        saved = None
    try:
        yield
    finally:
        if saved is not None:
            os.dup2(saved, 2)
            os.close(saved)
        cv2.setLogLevel(level)


@functools.lru_cache(maxsize=None)
def h264_writable() -> bool:
    """Whether this OpenCV's FFmpeg can write H.264 (``avc1``) into MP4."""
    with tempfile.TemporaryDirectory() as folder:
        with _quiet_opencv():
            writer = cv2.VideoWriter(os.path.join(folder, "probe.mp4"),
                                     cv2.VideoWriter_fourcc(*"avc1"), 10, (64, 48))
        ok = writer.isOpened()
        writer.release()
    return ok


def writer_format(path: str) -> tuple[str, str]:
    """(fourcc, description) of the video ``path`` will hold, from its extension: VP8 for
    .webm, H.264 for .mp4 where this OpenCV can write it, MPEG-4 part 2 otherwise."""
    ext = os.path.splitext(path)[1].lower()
    if ext == ".webm":
        return "VP80", "VP8 in WebM"
    if ext == ".mp4" and h264_writable():
        return "avc1", "H.264 in MP4"
    return "mp4v", "MPEG-4 part 2 (mp4v)"


def browser_extension() -> str:
    """The extension of a video a browser plays that this OpenCV can write: .mp4 (H.264)
    where it can, else .webm (VP8)."""
    return ".mp4" if h264_writable() else ".webm"


def _even(n: int) -> int:
    return max(2, n - n % 2)


def write_overlay(path: str, out: str, label_at: Callable[[float], str],
                  progress: Callable[[int, int], None] | None = None, *,
                  max_side: int | None = None, max_fps: float | None = None) -> int:
    """Writes ``path`` to ``out`` with ``label_at(seconds)`` drawn on every frame, timed as
    the build and the windows time them; returns the number of frames written.

    The format follows ``out``'s extension (``writer_format``). By default the video keeps
    its size and rate; ``max_side`` scales it down to at most that many pixels on its long
    side (even sizes), ``max_fps`` keeps only the frames at or after each tick of that rate
    (for small previews). MediaError when the video cannot be read, OSError when ``out``
    cannot be written."""
    fourcc, _ = writer_format(out)
    folder, name = os.path.split(os.path.abspath(out))
    stem, ext = os.path.splitext(name)
    partial = os.path.join(folder, f".{stem}.partial{ext}")   # renamed into place when whole
    with VideoReader(path) as reader:
        writer = None
        n = 0
        rate = reader.rate
        step = 0.0
        if max_fps and rate > max_fps:
            step, rate = 1.0 / max_fps, max_fps
        next_t = 0.0
        try:
            for _, t, bgr in reader.frames():
                if step:
                    if t < next_t - BOUNDARY_S:
                        continue
                    next_t = max(next_t + step, t)
                if writer is None:
                    h, w = bgr.shape[:2]
                    if max_side and max(h, w) > max_side:
                        scale = max_side / max(h, w)
                        size = (_even(int(round(w * scale))), _even(int(round(h * scale))))
                    elif fourcc in ("VP80", "avc1"):          # 4:2:0 needs even sizes
                        size = (_even(w), _even(h))
                    else:
                        size = (w, h)
                    os.makedirs(folder, exist_ok=True)
                    with _quiet_opencv():
                        writer = cv2.VideoWriter(partial, cv2.VideoWriter_fourcc(*fourcc),
                                                 rate, size)
                    if not writer.isOpened():
                        raise OSError(f"cannot write the overlay video {out}")
                if (bgr.shape[1], bgr.shape[0]) != size:
                    bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
                writer.write(draw_label(bgr, label_at(t)))
                n += 1
                if progress:
                    progress(n, reader.claimed)
            if writer is not None:
                writer.release()
                writer = None
                os.replace(partial, out)
        finally:
            if writer is not None:
                writer.release()
            if os.path.exists(partial):
                os.remove(partial)
    return n


def window_label_at(windows: list[dict]) -> Callable[[float], str]:
    """label_at(t) for an overlay: the latest window starting at or before t."""
    starts = [w["start"] for w in windows]

    def label_at(t: float) -> str:
        i = max(0, bisect.bisect_right(starts, t + BOUNDARY_S) - 1)
        best = windows[i]["top_k"][0]
        return f"{best['label']} {best['probability']:.2f}"
    return label_at


# --------------------------------------------------------------------------
# Pictures: frame strips (Pillow, which matplotlib brings; matplotlib's DejaVu Sans).
# --------------------------------------------------------------------------


def thumbnail(frame: np.ndarray, height: int):
    """``frame`` (uint8 RGB) as a PIL image ``height`` px high: enlarged without smoothing
    (the pixels stay visible), reduced with area averaging."""
    from PIL import Image
    h, w = frame.shape[:2]
    width = max(1, min(int(round(w * height / h)), 3 * height))
    image = Image.fromarray(np.ascontiguousarray(frame[..., :3]))
    return image.resize((width, height), Image.NEAREST if height >= h else Image.BOX)


def frame_row(frames: Sequence[np.ndarray], captions: Sequence[str], height: int = 96,
              gap: int = 4):
    """The frames side by side, each ``height`` px high with its caption under it; a PIL
    image with a white background."""
    from PIL import Image, ImageDraw
    thumbs = [thumbnail(f, height) for f in frames]
    cap = font(11)
    width = max(1, sum(t.width for t in thumbs) + gap * max(0, len(thumbs) - 1))
    image = Image.new("RGB", (width, height + 16), "white")
    d = ImageDraw.Draw(image)
    x = 0
    for thumb, caption in zip(thumbs, captions):
        image.paste(thumb, (x, 0))
        d.text((x, height + 2), fit(caption, cap, thumb.width), fill="#333333", font=cap)
        x += thumb.width + gap
    return image


def frame_strip(rows: Sequence[tuple[str, Sequence[np.ndarray], Sequence[str]]], path: str,
                title: str, *, height: int = 96, note: str = "") -> tuple[int, int]:
    """A PNG of labelled frame rows: ``rows`` = [(row label, frames, captions)], under a
    bold ``title`` (and a grey ``note``). Returns its (width, height)."""
    from PIL import Image, ImageDraw
    pad = 10
    drawn = [(label, frame_row(frames, captions, height)) for label, frames, captions in rows]
    label_f, title_f, note_f = font(12), font(14, True), font(11)
    width = max([480] + [r.width + 2 * pad for _, r in drawn])
    head = pad + 20 + (16 if note else 0)
    total = head + sum(18 + r.height + pad for _, r in drawn) + pad
    image = Image.new("RGB", (width, total), "white")
    d = ImageDraw.Draw(image)
    d.text((pad, pad), fit(title, title_f, width - 2 * pad), fill="black", font=title_f)
    if note:
        d.text((pad, pad + 20), fit(note, note_f, width - 2 * pad), fill="#555555",
               font=note_f)
    y = head
    for label, row in drawn:
        d.text((pad, y), fit(label, label_f, width - 2 * pad), fill="#222222", font=label_f)
        image.paste(row, (pad, y + 18))
        y += 18 + row.height + pad
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    image.save(path, optimize=True)
    return image.size


# --------------------------------------------------------------------------
# Timeline: the label over time.
# --------------------------------------------------------------------------
def window_segments(windows: list[dict]) -> list[tuple[float, float, str, float]]:
    """(start, end, label, probability) per window, as the overlay shows them: each window
    from its start to the next one's start (the last one to its end)."""
    out = []
    for i, w in enumerate(windows):
        end = windows[i + 1]["start"] if i + 1 < len(windows) else w["end"]
        best = w["top_k"][0]
        out.append((float(w["start"]), float(max(end, w["start"])), str(best["label"]),
                    float(best["probability"])))
    return out


def frame_segments(labels: Sequence[str], probabilities: Sequence[Sequence[float]],
                   times: Sequence[float], period: float) -> list[tuple[float, float, str, float]]:
    """Runs of frames with the same label as (start, end, label, mean probability of it)."""
    out = []
    start = 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or labels[i] != labels[start]:
            c = int(np.argmax(probabilities[start]))
            mean = float(np.mean([probabilities[j][c] for j in range(start, i)]))
            out.append((float(times[start]), float(times[i - 1] + period), labels[start], mean))
            start = i
    return out


def plot_timeline(segments: list[tuple[float, float, str, float]], path: str, title: str,
                  classes: Sequence[str] = (), xlabel: str = "seconds") -> None:
    """The label over time as a PNG: one row per label that occurs (ordered by class index),
    a bar for each segment with its probability written on it when it fits, and the
    probability of the shown label as a line below. Rows tell the labels apart, and their
    Okabe–Ito colours repeat that."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    order = {c: i for i, c in enumerate(classes)}
    labels = sorted({s[2] for s in segments}, key=lambda c: (order.get(c, len(order)), c))
    row = {c: i for i, c in enumerate(labels)}
    end = max([s[1] for s in segments] + [1e-3])
    longest = max([len(c) for c in labels] + [6])
    left = min(0.35, 0.04 + 0.0085 * min(longest, 36))
    fig = Figure(figsize=(10.5, 1.9 + 0.42 * len(labels) + 1.4))
    grid = fig.add_gridspec(2, 1, height_ratios=[0.42 * len(labels) + 0.4, 1.3], hspace=0.15)
    ax = fig.add_subplot(grid[0])
    colour = {c: OKABE_ITO[order.get(c, i) % len(OKABE_ITO)] for i, c in enumerate(labels)}
    axis_inches = 10.5 * (0.98 - left)
    for start, stop, label, p in segments:
        y = row[label]
        ax.barh(y, stop - start, left=start, height=0.7, color=colour[label],
                edgecolor="black", linewidth=0.6)
        text = f"{p:.2f}"
        # Written on the bar when it fits: 8-point digits are about 0.06 inch wide.
        if (stop - start) / end * axis_inches > 0.06 * len(text) + 0.08:
            dark = colour[label] in ("#0072B2", "#000000", "#D55E00", "#009E73", "#CC79A7")
            ax.text((start + stop) / 2, y, text, ha="center", va="center", fontsize=8,
                    color="white" if dark else "black")
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels, fontsize=10)
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.set_xlim(0, end)
    ax.tick_params(axis="x", labelbottom=False)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title, fontsize=11)
    low = fig.add_subplot(grid[1], sharex=ax)
    xs, ys = [], []
    for start, stop, _, p in segments:
        xs += [start, stop]
        ys += [p, p]
    low.plot(xs, ys, color="black", linewidth=1.5)
    low.set_ylim(0, 1.05)
    low.set_ylabel("probability", fontsize=9)
    low.set_xlabel(xlabel)
    low.grid(alpha=0.3)
    fig.subplots_adjust(left=left, right=0.98,
                        top=1 - 0.45 / fig.get_figheight(), bottom=0.5 / fig.get_figheight())
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
