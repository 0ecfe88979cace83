"""Which files the toolkit reads, by name: one definition for the build, predict and serve."""
from __future__ import annotations

import re

VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".mov", ".webm")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
# OpenPose's --write_json output: one file per frame, the video's name before a
# 12-digit frame number.
OPENPOSE_SUFFIX = "_keypoints.json"
OPENPOSE_FILE = re.compile(r"^(.*)_(\d{12})_keypoints\.json$")
OPENPOSE_PATTERN = "<name>_<12-digit frame>_keypoints.json"


def basename(path: str) -> str:
    """The last part of a local or remote path (either separator, trailing ones ignored)."""
    return path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def is_video(path: str) -> bool:
    return path.lower().endswith(VIDEO_EXTENSIONS)


def is_image(path: str) -> bool:
    return path.lower().endswith(IMAGE_EXTENSIONS)


def openpose_name(path: str) -> tuple[str, int] | None:
    """(sequence name, frame number) of an OpenPose frame file, or None for another name."""
    match = OPENPOSE_FILE.match(basename(path))
    return (match.group(1), int(match.group(2))) if match else None
