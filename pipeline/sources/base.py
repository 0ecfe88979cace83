"""What every source module returns, and helpers they share.

A source lists items and splits and nothing else: no decoding. Each module in
``pipeline/sources/`` exposes:

    NAME: str               the ``--dataset`` value
    LAYOUT: str             the expected directory layout, shown to users
    PUBLISHED_AT: str       where the dataset is published (we never download)
    def list_items(data_dir: str, options: SourceOptions) -> Listing

``list_items`` raises ``SourceError`` for user mistakes (missing split file,
empty dataset) with a message saying what was expected; per-item problems
(a listed file that is missing, an unknown class) go into
``Listing.problems`` and the build quarantines them.

Sources never import Beam: ``trainers.predict`` lists an OpenPose folder with the
OpenPose source. All file access goes through ``pipeline.media.files``, so gs:// and
s3:// data directories work.
"""
from __future__ import annotations

import dataclasses
import glob
import hashlib
import os
from typing import Iterable

from pipeline.media import files
from pipeline.media.formats import VIDEO_EXTENSIONS
from pipeline.media.items import Item, Problem


class SourceError(Exception):
    """A user mistake in the source data (shown without a traceback)."""


@dataclasses.dataclass(frozen=True)
class SourceOptions:
    """Source-side settings from the command line (each source reads the ones it knows)."""
    split_id: int = 1
    val_fraction: float = 0.0
    test_fraction: float = 0.0
    # images
    max_per_class: int | None = None      # keep at most N per class (stable hash order)
    min_per_class: int | None = None      # drop classes with fewer than N (counted as unused)
    # openpose labels
    label_csv: str | None = None          # CSV with one row per video
    label_column: str = "label"
    id_column: str = "video"
    id_template: str = "{id}"             # video name from the id column, e.g. "Kick_{id}"
    segments_csv: str | None = None       # rows video,start_s,end_s,label -> per-frame labels
    background_label: str = "none"        # per-frame label outside every segment


@dataclasses.dataclass
class Listing:
    """Everything a source found."""
    classes: list[str]
    items: list[Item]
    problems: list[Problem] = dataclasses.field(default_factory=list)
    unused: dict[str, int] = dataclasses.field(default_factory=dict)  # reason -> count
    splits: tuple[str, ...] = ("train", "test")
    modality: str = "video"        # 'video' (videos, frame folders), 'image' or 'keypoints'
    # Dataset facts about the classes, written into dataset_info.json: {group: [class
    # names]} (UCF101's five action types), or None.
    class_groups: dict[str, list[str]] | None = None


def list_entries(root: str, extensions: Iterable[str] = VIDEO_EXTENSIONS,
                 depth: int = 2) -> tuple[list[str], list[tuple[str, str, str]]]:
    """What lies ``depth`` levels below ``root`` with a name ending in ``extensions`` (any
    case): the relative '/'-separated paths of regular files, and (relative path, reason,
    detail) of the entries named like one that are no readable file, so that a source can
    account for them instead of leaving them out: a folder named like a video
    (``not_a_file``), a link that leads nowhere or to itself (``broken_link``).

    ``depth=2`` lists ``root/<class>/<file>``.
    """
    exts = tuple(e.lower() for e in extensions)
    root = root.rstrip("/")
    pattern = files.join(root, *(["*"] * depth))
    found, odd = [], []
    paths = files.match(pattern) if files.is_remote(root) else sorted(glob.glob(pattern))
    for path in paths:
        rel = path[len(root):].lstrip("/").replace(os.sep, "/")
        if not (rel.lower().endswith(exts) and rel.count("/") == depth - 1):
            continue
        if files.is_remote(path) or os.path.isfile(path):
            found.append(rel)
        elif os.path.islink(path) and not os.path.exists(path):
            odd.append((rel, "broken_link", "a link that leads nowhere (missing target, or "
                                            "a loop of links)"))
        else:
            odd.append((rel, "not_a_file", "a folder (or another non-file) with a file's "
                                           "name"))
    return sorted(found), odd


def list_files(root: str, extensions: Iterable[str] = VIDEO_EXTENSIONS,
               depth: int = 2) -> list[str]:
    """The regular files of ``list_entries`` (sources whose own lists name every item, and
    so account for what is missing, use this)."""
    return list_entries(root, extensions, depth)[0]


def stable_fraction(key: str) -> float:
    """A number in [0, 1) from a string, identical on every machine and run."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def hash_split(key: str, val_fraction: float, test_fraction: float) -> str:
    """Deterministic train/val/test assignment of ``key`` (a relative path)."""
    if not (val_fraction >= 0 and test_fraction >= 0 and val_fraction + test_fraction < 1):
        raise SourceError("--val_fraction and --test_fraction must be >= 0 and sum to < 1")
    u = stable_fraction(key)
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"
