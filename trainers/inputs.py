"""What a raw input of a trained model is: a video, a frame folder, an image or an OpenPose
sequence, told from its path alone, and the build's ``Item`` for it.

Shared by ``trainers.predict`` and the upload page (``trainers.serve``); Beam-free, like
the media code it hands the item to.
"""
from __future__ import annotations

import os

from pipeline.media.formats import (IMAGE_EXTENSIONS, OPENPOSE_FILE, OPENPOSE_PATTERN,
                                    VIDEO_EXTENSIONS, is_image, is_video)
from pipeline.media.items import Item, MediaError
from pipeline.sources import openpose
from pipeline.sources.base import SourceError, SourceOptions

KIND_MODALITY = {"video": "video", "videos": "video", "frames": "video", "image": "image",
                 "keypoints": "keypoints"}
KIND_WORDS = {"video": "a video file", "videos": "a folder of videos", "frames": "a frame folder",
              "image": "an image", "keypoints": "OpenPose keypoints"}
MODALITY_TAKES = {"video": "video files or frame folders", "image": "image files",
                  "keypoints": f"OpenPose JSON folders ({OPENPOSE_PATTERN})"}


class InputError(ValueError):
    """An unreadable, unsupported or wrong-modality input (message for the user)."""


def _some(names: list[str], limit: int = 3) -> str:
    return ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit
                                       else "")


def _files_in(folder: str, wanted) -> list[str]:
    """Names of the regular files directly in ``folder`` that ``wanted(name)`` accepts, sorted."""
    return sorted(n for n in os.listdir(folder)
                  if wanted(n) and os.path.isfile(os.path.join(folder, n)))


def input_kind(path: str) -> str:
    """'video', 'videos' (a folder of videos), 'frames', 'image' or 'keypoints' from the path
    alone; InputError if none, or for a folder of videos and images together."""
    if os.path.isdir(path):
        images, videos = _files_in(path, is_image), _files_in(path, is_video)
        if images and videos:
            raise InputError(f"{path}: holds videos ({_some(videos)}) and images "
                             f"({_some(images)}); a folder is either one clip of frame images "
                             "or a set of videos: give the videos by name, or move the frames "
                             "into a folder of their own")
        if videos:
            return "videos"
        if images:
            return "frames"
        if any(OPENPOSE_FILE.match(n) for n in os.listdir(path)):
            return "keypoints"
        raise InputError(f"{path}: a folder with no frames ({', '.join(IMAGE_EXTENSIONS)}), no "
                         f"videos ({', '.join(VIDEO_EXTENSIONS)}) and no OpenPose "
                         f"{OPENPOSE_PATTERN} files")
    if os.path.isfile(path):
        name = os.path.basename(path).lower()
        if is_image(name):
            return "image"
        if OPENPOSE_FILE.match(os.path.basename(path)):
            return "keypoints"
        if name.endswith(".json"):
            raise InputError(f"{path}: a JSON file not named like OpenPose output "
                             f"({OPENPOSE_PATTERN})")
        if os.path.getsize(path) == 0:
            raise InputError(f"{path}: the file is empty (0 bytes)")
        return "video"   # .avi, .mp4, ... or any other name: OpenCV says if it is no video
    folder, name = os.path.split(path.rstrip("/"))
    if os.path.isdir(folder or ".") and name:
        stem = OPENPOSE_FILE.match(name)
        name = stem.group(1) if stem else name
        sequences = sorted({m.group(1) for n in os.listdir(folder or ".")
                            if (m := OPENPOSE_FILE.match(n))})
        if name in sequences:
            return "keypoints"
        if sequences:
            raise InputError(f"{path}: no such file or folder, and no OpenPose sequence named "
                             f"{name!r} in {folder or '.'} (it has {', '.join(sequences[:3])}"
                             f"{', ...' if len(sequences) > 3 else ''})")
    raise InputError(f"{path}: no such file or folder")


def expand(paths: list[str]) -> list[str]:
    """The inputs with every folder of videos replaced by its videos (sorted), each to be
    predicted on its own; anything else (a frame folder, a bad path) stays as given."""
    out = []
    for path in paths:
        try:
            kind = input_kind(path)
        except InputError:
            kind = None
        if kind == "videos":
            out.extend(os.path.join(path, name) for name in _files_in(path, is_video))
        else:
            out.append(path)
    return out


def keypoint_item(path: str) -> Item:
    """The OpenPose item of ``path``: a folder of one sequence, FOLDER/NAME, or one of its files."""
    if os.path.isdir(path):
        folder, name = path, None
    else:
        folder, name = os.path.split(path.rstrip("/"))
        match = OPENPOSE_FILE.match(name)
        if match:
            name = match.group(1)
    try:
        listing = openpose.list_items(folder or ".", SourceOptions())
    except SourceError as e:
        raise InputError(f"{path}: {str(e).splitlines()[0]}") from None
    items = {item.video_id: item for item in listing.items}
    if name is not None:
        if name not in items:
            raise InputError(f"{path}: no OpenPose sequence named {name!r} in {folder}")
        return items[name]
    if len(items) > 1:
        names = sorted(items)
        raise InputError(f"{path} holds {len(items)} OpenPose sequences "
                         f"({', '.join(names[:3])}{', ...' if len(names) > 3 else ''}): give "
                         f"one as FOLDER/NAME, e.g. {os.path.join(path, names[0])}")
    return next(iter(items.values()))


def item_for(path: str, kind: str) -> Item:
    """The build's ``Item`` for a raw input (unlabelled, split 'predict')."""
    if kind == "keypoints":
        return keypoint_item(path)
    if kind == "videos":
        raise InputError(f"{path} is a folder of videos: predict them one by one "
                         "(python -m trainers.predict FOLDER does)")
    name = os.path.basename(path.rstrip("/")) or path
    return Item(path=path, video_id=name, split="predict", label=-1, label_text="",
                     kind=kind)


def media_message(path: str, error: MediaError) -> str:
    """A MediaError as one line for the user."""
    detail = error.detail
    if error.reason == "too_short":
        detail += "; the build this model was trained on skips clips that short"
    return f"{path}: {detail} ({error.reason})"
