"""Text in pictures: matplotlib's DejaVu Sans through Pillow (which matplotlib brings),
for the contact sheets of ``pipeline.show`` and the frame strips of ``trainers.overlay``."""
from __future__ import annotations

import functools
import os

import numpy as np


@functools.lru_cache(maxsize=None)
def font(size: int, bold: bool = False):
    import matplotlib
    from PIL import ImageFont
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    return ImageFont.truetype(os.path.join(matplotlib.get_data_path(), "fonts", "ttf", name),
                              size)


def text_width(text: str, f) -> int:
    return int(np.ceil(f.getlength(text)))


def fit(text: str, f, width: int) -> str:
    """``text``, shortened in the middle with an ellipsis until it is at most ``width`` px."""
    if text_width(text, f) <= width:
        return text
    keep = len(text)
    while keep > 1:
        keep -= 1
        head = (keep + 1) // 2
        short = text[:head] + "…" + text[len(text) - (keep - head):]
        if text_width(short, f) <= width:
            return short
    return "…"
