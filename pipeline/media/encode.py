"""Crop, resize and encode one kept frame: the last stage of every clip the build writes.

A stored JPEG that needs no pixel change (no crop, no resize, or one that leaves it as
it is) is kept as its own bytes instead (``keeps_jpeg``): re-encoding it would cost a
decode and an encode and lose quality for nothing.
"""
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


def jpeg_header(data: bytes) -> tuple[int, int, int, bool] | None:
    """(height, width, components, has EXIF) from a JPEG's markers without decoding it;
    None for bytes that are not a readable JPEG header."""
    if data[:2] != b"\xff\xd8":
        return None
    exif = False
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if marker == 0xE1 and data[i + 4:i + 8] == b"Exif":
            exif = True
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height = int.from_bytes(data[i + 5:i + 7], "big")
            width = int.from_bytes(data[i + 7:i + 9], "big")
            return height, width, data[i + 9], exif
        i += 2 + length
    return None


def keeps_jpeg(data: bytes, spec: FrameSpec) -> tuple[int, int] | None:
    """(height, width) when the stored frame can be these very bytes: a colour JPEG without
    EXIF (whose orientation a decoder might apply), whole (its header readable, a scan
    present, the end-of-image marker last: a truncated file is decoded instead, and
    refused if it cannot be), that the spec's crop and size leave unchanged; otherwise
    None (decode and process it). The check reads markers only: with the file's read, a
    16th of the time a read and a full decode take (``benchmarks/sources_bench.py``)."""
    if spec.image_format != "jpeg" or data[-2:] != b"\xff\xd9":
        return None
    header = jpeg_header(data)
    if header is None:
        return None
    height, width, components, exif = header
    if components != 3 or exif or height < 1 or width < 1:
        return None
    if spec.crop == "center_square" and height != width:
        return None
    if output_size(spec, height, width) != (height, width):
        return None
    if data.find(b"\xff\xda") < 0:
        return None
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
