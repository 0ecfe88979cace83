"""Predictions drawn on a video: the label and its probability in a band across the top
of every frame (``trainers.predict --overlay``)."""
from __future__ import annotations

import bisect
import os
from typing import Callable

import cv2
import numpy as np

from pipeline.media.streams import BOUNDARY_S
from pipeline.media.video import VideoReader


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


def write_overlay(path: str, out: str, label_at: Callable[[float], str],
                  progress: Callable[[int, int], None] | None = None) -> int:
    """Writes ``path`` to ``out`` (mp4v, same size and fps) with ``label_at(seconds)`` drawn on
    every frame, timed as the build and the windows time them; returns the number of
    frames written. MediaError when the video cannot be read, OSError when ``out`` cannot
    be written."""
    folder, name = os.path.split(os.path.abspath(out))
    stem, ext = os.path.splitext(name)
    partial = os.path.join(folder, f".{stem}.partial{ext}")   # renamed into place when whole
    with VideoReader(path) as reader:
        writer = None
        n = 0
        try:
            for _, t, bgr in reader.frames():
                if writer is None:
                    os.makedirs(folder, exist_ok=True)
                    writer = cv2.VideoWriter(partial, cv2.VideoWriter_fourcc(*"mp4v"),
                                             reader.rate, (bgr.shape[1], bgr.shape[0]))
                    if not writer.isOpened():
                        raise OSError(f"cannot write the overlay video {out}")
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
