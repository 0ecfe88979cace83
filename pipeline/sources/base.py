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

import csv
import dataclasses
import hashlib
import io
import json
import os
from typing import Iterable

from pipeline.media import files
from pipeline.media.formats import VIDEO_EXTENSIONS
from pipeline.media.items import SPLITS, Item, Problem, segment, segment_video_id, seconds_text


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
    # annotation lists (kinetics, list): files, each optionally "split=FILE"
    annotations: tuple[str, ...] = ()
    annotations_format: str = "csv"       # list: 'csv' (a header names the columns) | 'mmaction'


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
    # The classes a horizontal flip turns into each other ({class: mirrored class}, one
    # direction per pair; Something-Something v2's left/right motions), written into
    # dataset_info.json as ``flip_label_swap``, or None.
    flip_label_swap: dict[str, str] | None = None


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
    found, odd = [], []
    for path, is_file in files.entries_below(root, depth):
        rel = path[len(root):].lstrip("/").replace(os.sep, "/")
        if not (rel.lower().endswith(exts) and rel.count("/") == depth - 1):
            continue
        if is_file:
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


# --------------------------------------------------------------------------
# Validation splits that keep related videos together.
# --------------------------------------------------------------------------
def check_fractions(val_fraction: float, test_fraction: float = 0.0) -> None:
    """Refuses fractions ``hash_split`` would refuse (before anything is listed)."""
    hash_split("", val_fraction, test_fraction)


def held_out_per_class(groups_by_class: dict[str, Iterable[str]], fraction: float) -> set[str]:
    """Groups to hold out, whole, from the train split: in each class, the first
    ``round(fraction x its groups)`` groups ordered by ``stable_fraction`` of the group name
    (at least one of a class with two or more groups). The same groups on every machine
    and run; every class gets its share."""
    out: set[str] = set()
    if fraction <= 0:
        return out
    for groups in groups_by_class.values():
        ordered = sorted(set(groups), key=lambda g: (stable_fraction(g), g))
        take = round(fraction * len(ordered))
        if take == 0 and len(ordered) >= 2:
            take = 1
        out.update(ordered[:min(take, len(ordered) - 1)])
    return out


# --------------------------------------------------------------------------
# Annotation lists: files, CSV rows, videos found by name, segments grouped per video.
# --------------------------------------------------------------------------
SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val",
               "validate": "val", "validation": "val", "test": "test", "testing": "test"}
# Segments of one video closer than this (or overlapping) are cut in one decode pass.
SEGMENT_GAP_S = 5.0
# At most this many segments are cut in one pass (their kept frames are held together).
MAX_SEGMENTS_PER_ITEM = 64


def annotation_files(data_dir: str, options: SourceOptions, dataset: str,
                     layout: str) -> list[tuple[str | None, str]]:
    """``--annotations`` as [(split or None, path)]: ``split=FILE`` gives every row of FILE
    that split; a relative FILE is looked for where the build runs, then in ``data_dir``."""
    if not options.annotations:
        raise SourceError(f"--dataset {dataset} needs --annotations FILE[,FILE...]"
                          f"\n\nExpected layout:\n{layout}")
    out = []
    for entry in options.annotations:
        head, sep, tail = entry.partition("=")
        split = SPLIT_NAMES.get(head.strip().lower()) if sep else None
        path = (tail if split else entry).strip()
        if not files.is_remote(path):
            path = os.path.expanduser(path)
        found = path if files.exists(path) else None
        if found is None and not files.is_remote(path) and not os.path.isabs(path):
            candidate = files.join(data_dir, path)
            found = candidate if files.exists(candidate) else None
        if found is None:
            raise SourceError(f"--annotations: {path} does not exist (nor under {data_dir})"
                              f"\n\nExpected layout:\n{layout}")
        out.append((split, found))
    return out


def read_csv(path: str) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """A CSV file with a header: (lower-cased column names, [(line number, row)]), blank
    lines left out. Quoted fields may hold commas (Kinetics labels do)."""
    reader = csv.reader(io.StringIO(files.read_text(path), newline=""))
    header: list[str] | None = None
    rows = []
    for values in reader:
        if not any(v.strip() for v in values):
            continue
        if header is None:
            header = [v.strip().lower() for v in values]
            continue
        row = {name: (values[i].strip() if i < len(values) else "")
               for i, name in enumerate(header)}
        if len(values) > len(header):
            row[None] = values[len(header):]        # the caller reports the extra fields
        rows.append((reader.line_num, row))
    if header is None:
        raise SourceError(f"{path} is empty: expected a header line naming its columns")
    return header, rows


def index_videos(root: str, max_depth: int = 3) -> dict[str, list[str]]:
    """Video files under ``root`` down to ``max_depth`` folders (``<split>/<class>/<file>``):
    file name without extension -> relative paths, sorted (names compared exactly: YouTube
    ids differ by case)."""
    found: dict[str, list[str]] = {}
    for depth in range(1, max_depth + 1):
        for rel in list_files(root, VIDEO_EXTENSIONS, depth):
            stem = rel.rsplit("/", 1)[-1].rsplit(".", 1)[0]
            found.setdefault(stem, []).append(rel)
    return {stem: sorted(rels) for stem, rels in found.items()}


def _folder_key(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def pick_video(candidates: list[str], hints: Iterable[str] = ()) -> str:
    """One of several files of the same name: the first whose folders name one of
    ``hints`` (a split, a class; case, spaces and underscores ignored), else the first."""
    keys = {_folder_key(h) for h in hints if h}
    for rel in candidates:
        if keys & {_folder_key(part) for part in rel.split("/")[:-1]}:
            return rel
    return candidates[0]


@dataclasses.dataclass(frozen=True)
class SegmentRow:
    """One listed segment ``[start_s, end_s)`` of a video, before grouping into items."""
    path: str           # the video (full path)
    video_id: str       # the video relative to the data directory
    split: str
    start_s: float
    end_s: float
    label: int
    label_text: str
    more: tuple = ()    # further (key, value) pairs for the record, e.g. filled_text


def segment_items(rows: Iterable[SegmentRow], gap_s: float = SEGMENT_GAP_S,
                  max_segments: int = MAX_SEGMENTS_PER_ITEM) -> list[Item]:
    """Groups segments into items: the segments of one video and split, in start order,
    share an item (one decode pass) while each starts at most ``gap_s`` after the latest
    end so far (overlapping or close) and the item holds fewer than ``max_segments``;
    a segment farther on starts the next item. An item of one segment has that segment's
    id (``<video>#<start>-<end>``); an item of several, the span it covers and a digest of
    its segments."""
    by_video: dict[tuple[str, str, str], list[SegmentRow]] = {}
    for row in rows:
        by_video.setdefault((row.path, row.video_id, row.split), []).append(row)
    items = []
    for (path, video_id, split), group in sorted(by_video.items()):
        group.sort(key=lambda r: (r.start_s, r.end_s, r.label_text))
        runs: list[list[SegmentRow]] = []
        run_end = None
        for row in group:
            if runs and row.start_s <= run_end + gap_s and len(runs[-1]) < max_segments:
                runs[-1].append(row)
                run_end = max(run_end, row.end_s)
            else:
                runs.append([row])
                run_end = row.end_s
        for run in runs:
            segments = [segment(r.start_s, r.end_s, r.label, r.label_text,
                                segment_video_id(video_id, r.start_s, r.end_s), **dict(r.more))
                        for r in run]
            labels = {(r.label, r.label_text) for r in run}
            label, label_text = labels.pop() if len(labels) == 1 else (-1, "")
            if len(run) == 1:
                item_id = segments[0]["video_id"]
            else:
                digest = hashlib.sha256(json.dumps(segments, sort_keys=True).encode())
                start, end = run[0].start_s, max(r.end_s for r in run)
                item_id = (f"{video_id}#{seconds_text(start)}-{seconds_text(end)} "
                           f"({len(run)} segments, {digest.hexdigest()[:8]})")
            items.append(Item(path, item_id, split, label, label_text, kind="video",
                              extra={"segments": segments}))
    return items


def present_splits(items: Iterable[Item], problems: Iterable[Problem]) -> tuple[str, ...]:
    """The splits (in train, val, test order) that items or listing problems name."""
    named = {it.split for it in items} | {p.split for p in problems}
    return tuple(split for split in SPLITS if split in named)
