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

All file access goes through Beam's ``FileSystems`` so gs:// and s3:// data
directories work.
"""
from __future__ import annotations

import dataclasses
import glob
import hashlib
import os
from typing import Iterable

from apache_beam.io.filesystems import FileSystems

VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".webm", ".mov")
SPLITS = ("train", "val", "test")


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


KINDS = ("video", "frames", "image", "keypoints")


@dataclasses.dataclass(frozen=True)
class Item:
    """One input to turn into record(s).

    kind:  'video' (path is a video file), 'frames' (path is a folder of frame
           images), 'image' (path is one image: a clip of one frame) or
           'keypoints' (``files`` are one OpenPose JSON per frame).
    files: for 'frames' and 'keypoints', the per-frame files in frame order
           when the source already knows them (else the worker lists ``path``).
    extra: source-specific details for the worker (e.g. frame numbers,
           labelled segments), JSON-compatible values only.
    """
    path: str          # full path (local, gs://, s3://)
    video_id: str      # path relative to the data directory, '/'-separated
    split: str         # one of SPLITS
    label: int         # class index, -1 when unlabelled
    label_text: str
    kind: str = "video"
    files: tuple[str, ...] = ()
    extra: dict = dataclasses.field(default_factory=dict, compare=False)


@dataclasses.dataclass(frozen=True)
class Problem:
    """An input that is quarantined: written to errors.jsonl, counted, never decoded."""
    path: str
    stage: str         # 'list' for source problems, 'decode'/'encode' for media problems
    reason: str        # short machine-readable code, e.g. 'missing_file', 'unknown_class'
    detail: str = ""
    split: str = ""

    def to_json_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Listing:
    """Everything a source found."""
    classes: list[str]
    items: list[Item]
    problems: list[Problem] = dataclasses.field(default_factory=list)
    unused: dict[str, int] = dataclasses.field(default_factory=dict)  # reason -> count
    splits: tuple[str, ...] = ("train", "test")
    modality: str = "video"        # 'video' (videos, frame folders), 'image' or 'keypoints'


def join(*parts: str) -> str:
    """Joins path parts for local and remote paths alike."""
    return FileSystems.join(*parts)


def exists(path: str) -> bool:
    return FileSystems.exists(path)


def read_text(path: str) -> str:
    """Reads a small text file (split lists, CSVs) through FileSystems."""
    with FileSystems.open(path) as f:
        return f.read().decode("utf-8-sig")


def match_paths(pattern: str) -> list[str]:
    """Paths matching a glob pattern: local ones through glob (which, unlike Beam's local
    match, follows symlinked folders and does not walk below the pattern's depth),
    remote ones through FileSystems.match."""
    if "://" not in pattern:
        return sorted(p for p in glob.glob(pattern) if os.path.isfile(p))
    return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)


def list_files(root: str, extensions: Iterable[str] = VIDEO_EXTENSIONS,
               depth: int = 2) -> list[str]:
    """Relative '/'-separated paths of files ``depth`` levels below ``root``.

    ``depth=2`` lists ``root/<class>/<file>``. Extensions match case-insensitively.
    """
    exts = tuple(e.lower() for e in extensions)
    root = root.rstrip("/")
    pattern = join(root, *(["*"] * depth))
    found = []
    for path in match_paths(pattern):
        rel = path[len(root):].lstrip("/").replace(os.sep, "/")
        if rel.lower().endswith(exts) and rel.count("/") == depth - 1:
            found.append(rel)
    return sorted(found)


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
