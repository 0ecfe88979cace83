"""Frame folders and single images into Clips (worker side).

A frame folder holds one image per frame, numbered in the file name
(``img_00001.jpg``, ``WIN_20180925_17_08_43_Pro_00014.png``, ``00001.jpg``).
Frames are ordered by that number, never by listing order, and span the
number range first..last: a missing number is filled with the nearest earlier
frame and counted in ``Clip.num_filled``. Sampling is ``sampling.plan_positions``
over that range and crop/resize/encode is ``encode.process_frame``, so frame
folders and videos give identical clips for identical frames. Only the chosen
files are read and decoded.

All file access goes through ``pipeline.media.files``, so gs:// and s3:// work.
"""
from __future__ import annotations

import bisect
import re

import cv2
import numpy as np

from pipeline.media import files
from pipeline.media.encode import FrameSpec, keeps_jpeg, output_size, process_frame
from pipeline.media.formats import IMAGE_EXTENSIONS, basename, is_image
from pipeline.media.items import Clip, Item, MediaError
from pipeline.media.sampling import SamplingSpec, plan_positions

_DIGITS = re.compile(r"\d+")


def frame_number(name: str) -> int | None:
    """The last run of digits in the file's stem (``img_00014.png`` -> 14), or None."""
    base = basename(name)
    stem = base.rsplit(".", 1)[0] if "." in base else base
    runs = _DIGITS.findall(stem)
    return int(runs[-1]) if runs else None


def _sorted_frames(numbered: list[tuple[int | None, str]]) -> list[tuple[int, str]]:
    """Sorts (number, path) by number; rejects missing and duplicate numbers."""
    for number, path in numbered:
        if number is None:
            raise MediaError("bad_frame_name", f"no frame number in the file name {path}")
    frames = sorted(numbered)
    for (a, path_a), (b, path_b) in zip(frames, frames[1:]):
        if a == b:
            raise MediaError("duplicate_frame_number",
                             f"{path_a} and {path_b} both have frame number {a}")
    return frames


def list_frame_files(folder: str) -> list[tuple[int, str]]:
    """(frame number, path) of the images directly in ``folder``, sorted by number.

    Files that are not images (by extension, any case) are ignored.
    Raises MediaError 'bad_frame_name' for an image without a number in its
    name and 'duplicate_frame_number' when two images share a number.
    """
    root = folder.rstrip("/")
    found = []
    for path in files.files_below(root):
        rel = path[len(root):].lstrip("/\\")
        if "/" not in rel and "\\" not in rel and is_image(rel):
            found.append((frame_number(rel), path))
    return _sorted_frames(found)


def list_subfolders(root: str) -> set[str]:
    """Names of the folders directly under ``root`` that contain at least one file.

    One listing of ``root/*/*`` (object stores have no folder entries), so a
    source can check thousands of frame folders without a call per folder.
    """
    root = root.rstrip("/")
    names = set()
    for path in files.files_below(root, 2):
        rel = path[len(root):].lstrip("/\\").replace("\\", "/")
        if rel.count("/") == 1:
            names.add(rel.split("/")[0])
    return names


def _read_bytes(path: str) -> bytes:
    try:
        data = files.read_bytes(path)
    except Exception:
        if not files.exists(path):
            raise MediaError("missing_file", f"{path} does not exist") from None
        raise
    if not data:
        raise MediaError("empty_file", f"{path} is 0 bytes")
    return data


def _decode(data: bytes, path: str) -> np.ndarray:
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise MediaError("bad_image", f"OpenCV could not decode {path} as an image")
    return bgr


def load_frame(path: str, spec: FrameSpec) -> tuple[bytes, tuple[int, int], tuple[int, int]]:
    """(stored bytes, source (height, width), stored (height, width)) of one image file: its
    own bytes when ``encode.keeps_jpeg`` allows, else decoded, cropped, resized, encoded."""
    data = _read_bytes(path)
    kept = keeps_jpeg(data, spec)
    if kept is not None:
        return data, kept, kept
    bgr = _decode(data, path)
    return process_frame(bgr, spec), bgr.shape[:2], output_size(spec, *bgr.shape[:2])


def _frames_of(item: Item) -> list[tuple[int, str]]:
    """The item's (number, path) frames: from item.files when given, else listed."""
    if not item.files:
        return list_frame_files(item.path)
    numbers = item.extra.get("frame_numbers")
    if numbers is None:
        numbers = [frame_number(path) for path in item.files]
    elif len(numbers) != len(item.files):
        raise ValueError(f"{item.video_id}: {len(numbers)} frame_numbers for "
                         f"{len(item.files)} files")
    return _sorted_frames(list(zip(numbers, item.files)))


def decode_frame_folder(item: Item, sampling: SamplingSpec, frame_spec: FrameSpec,
                        source_fps: float = 0.0) -> Clip:
    """Turns a frame folder (``item.path``, or ``item.files``) into a Clip.

    Positions 0..n-1 stand for frame numbers first..last; a missing number
    shows the nearest earlier frame (counted in ``num_filled``, not an error).
    ``source_indices`` are positions, timestamps are ``i * 1e6 / source_fps``
    (0 when the rate is unknown). Frames of different sizes within one clip
    are fine when ``frame_spec`` makes them the same size, else MediaError
    'mixed_frame_sizes'.
    """
    frames = _frames_of(item)
    if not frames:
        raise MediaError("no_frames", f"no {'/'.join(IMAGE_EXTENSIONS)} frames in {item.path}")
    numbers = [number for number, _ in frames]
    n = numbers[-1] - numbers[0] + 1
    order, policy = plan_positions(sampling, n, source_fps)

    encoded: dict[int, bytes] = {}      # file index -> processed frame
    first_hw, out_hw = None, None
    chosen = []
    for position in order:
        f = bisect.bisect_right(numbers, numbers[0] + position) - 1
        chosen.append(f)
        if f in encoded:
            continue
        data, source_hw, hw = load_frame(frames[f][1], frame_spec)
        if out_hw is None:
            first_hw, out_hw = source_hw, hw
        elif hw != out_hw:
            raise MediaError("mixed_frame_sizes",
                             f"{frames[f][1]} is {source_hw[1]}x{source_hw[0]}, the clip's first "
                             f"frame {first_hw[1]}x{first_hw[0]}: give --size (or --crop "
                             "center_square with --resize_shorter) to make them uniform")
        encoded[f] = data

    return Clip(
        frames=[encoded[f] for f in chosen],
        timestamps_us=[int(round(i * 1e6 / source_fps)) if source_fps > 0 else 0
                       for i in order],
        source_indices=list(order),
        fps=float(source_fps),
        source_num_frames=n,
        claimed_num_frames=len(frames),
        height=out_hw[0], width=out_hw[1],
        source_height=int(first_hw[0]), source_width=int(first_hw[1]),
        short_policy=policy,
        num_filled=n - len(frames),
    )


def decode_image(path: str, frame_spec: FrameSpec) -> Clip:
    """One image as a clip of one frame (its own bytes when ``encode.keeps_jpeg`` allows).

    Raises MediaError 'missing_file', 'empty_file' (0 bytes) or 'bad_image'.
    """
    data, (src_h, src_w), (out_h, out_w) = load_frame(path, frame_spec)
    return Clip(frames=[data], timestamps_us=[0],
                source_indices=[0], fps=0.0, source_num_frames=1, claimed_num_frames=1,
                height=out_h, width=out_w, source_height=int(src_h), source_width=int(src_w),
                short_policy="none")
