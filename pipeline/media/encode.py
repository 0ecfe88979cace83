"""Crop, resize and encode one kept frame: the last stage of every clip the build writes."""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from pipeline.media.items import MediaError

CROPS = ("none", "center_square")
IMAGE_FORMATS = ("jpeg", "png", "raw")


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
