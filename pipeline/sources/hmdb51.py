"""HMDB51: 51 action classes, official 70/30 splits (three of them).

Each ``<class>_test_split<N>.txt`` marks every video of that class with 1
(train), 2 (test) or 0 (not used in split N). Class names contain
underscores (``brush_hair``), so they are parsed from the file name by regex.

HMDB51 publishes train and test only. ``--val_fraction`` holds out whole source videos
of the train split as 'val': a clip's name is its source video's title, its class and
five meta tags (``April_09_brush_hair_u_nm_np1_ba_goo_0.avi``: title ``April_09``; body
part, camera motion, people, viewpoint, quality, clip number), and clips cut from one
source video (in any class) stay together. A source is held out when the stable hash of
its title (``base.hash_split``) falls below the fraction: the same sources on every
machine and run. A name not spelt that way is its own source.
"""
from __future__ import annotations

import dataclasses
import re

from pipeline.media.files import join, read_text
from pipeline.media.items import Item, Problem
from pipeline.sources.base import (Listing, SourceError, SourceOptions, check_fractions,
                                   hash_split, list_files)

NAME = "hmdb51"
DEFAULT_SUBDIR = "hmdb51"
PUBLISHED_AT = ("https://serre-lab.clps.brown.edu/resource/hmdb-a-large-human-motion-database/ "
                "(hmdb51_org.rar and test_train_splits.rar)")
LAYOUT = """\
<data_dir>/
  testTrainMulti_7030_splits/
    brush_hair_test_split1.txt   lines "April_09_brush_hair_u_nm_np1_ba_goo_0.avi 1"
    ...                          (1 = train, 2 = test, 0 = unused; splits 1..3)
  brush_hair/                    (or under <data_dir>/hmdb51_org/ or <data_dir>/videos/)
    April_09_brush_hair_u_nm_np1_ba_goo_0.avi
    ...
"""

SPLIT_DIR = "testTrainMulti_7030_splits"
_SPLIT_FILE = re.compile(r"^(.+)_test_split(\d)\.txt$")
_VIDEO_DIRS = ("", "hmdb51_org", "videos")
_CODES = {"1": "train", "2": "test", "0": None}
# What follows "_<class>_" in a clip's name: body part, camera motion, people, viewpoint,
# quality and clip number.
_META = r"_[a-z]_(?:cm|nm)_np\d+_(?:fr|ba|le|ri)_(?:goo|med|bad)_\d+$"


def source_of(video: str, class_name: str) -> str:
    """The source video a clip was cut from: the title before ``_<class>_<meta tags>`` in
    its file name, lower-cased; the file name itself when it is not spelt that way."""
    stem = video.replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    match = re.match(rf"^(.+)_{re.escape(class_name)}{_META}", stem, re.IGNORECASE)
    return (match.group(1) if match else stem).lower()


def _error(message: str) -> SourceError:
    """Builds a SourceError that shows the expected layout."""
    return SourceError(f"{message}\n\nExpected HMDB51 layout:\n{LAYOUT}")


def _find_video_root(data_dir: str) -> tuple[str, list[str]]:
    """Returns the first candidate video root that has videos, and its files."""
    for name in _VIDEO_DIRS:
        root = join(data_dir, name) if name else data_dir
        files = list_files(root)
        if files:
            return root, files
    return data_dir, []


def _split_files(data_dir: str, split_id: int) -> dict[str, str]:
    """Maps class name -> path of its split file for ``split_id``."""
    split_dir = join(data_dir, SPLIT_DIR)
    listed = list_files(split_dir, extensions=(".txt",), depth=1)
    if not listed:
        raise _error(f"missing {split_dir} (the split lists)")
    found = {}
    for rel in listed:
        match = _SPLIT_FILE.match(rel)
        if match and int(match.group(2)) == split_id:
            found[match.group(1)] = join(split_dir, rel)
    if not found:
        raise _error(f"no *_test_split{split_id}.txt files in {split_dir}")
    return found


def list_items(data_dir: str, options: SourceOptions) -> Listing:
    """Lists the train and test videos of split ``options.split_id`` (1..3)."""
    if options.split_id not in (1, 2, 3):
        raise SourceError(f"HMDB51 has splits 1, 2 and 3; got --split_id={options.split_id}")
    if options.test_fraction:
        raise SourceError("HMDB51 has an official test split: --test_fraction does not apply "
                          "(--val_fraction holds out whole source videos of the train split)")
    check_fractions(options.val_fraction)
    split_files = _split_files(data_dir, options.split_id)
    classes = sorted(split_files)
    video_root, files = _find_video_root(data_dir)
    on_disk = {rel.lower(): rel for rel in files}

    items, problems, unused = [], [], 0
    for label, name in enumerate(classes):
        for line in read_text(split_files[name]).splitlines():
            parts = line.rsplit(None, 1)
            if not parts:
                continue
            listed = f"{name}/{parts[0]}"
            real = on_disk.get(listed.lower())
            path = join(video_root, real or listed)
            if len(parts) != 2 or parts[1] not in _CODES:
                problems.append(Problem(path, "list", "bad_split_line",
                                        f"{split_files[name]}: {line.strip()!r}"))
                continue
            split = _CODES[parts[1]]
            if split is None:
                unused += 1
            elif real is None:
                problems.append(Problem(path, "list", "missing_file",
                                        f"listed in {split_files[name]} but not under "
                                        f"{video_root}", split))
            else:
                items.append(Item(path, real, split, label, name))
    if not items:
        raise _error(f"empty dataset: no video marked 1 or 2 in split {options.split_id} "
                     f"was found under {video_root}")
    splits = ("train", "test")
    if options.val_fraction > 0:
        val = options.val_fraction

        def held(path: str, split: str, name: str) -> bool:
            return split == "train" and hash_split(source_of(path, name), val, 0.0) == "val"
        items = [dataclasses.replace(it, split="val")
                 if held(it.path, it.split, it.label_text) else it for it in items]
        problems = [dataclasses.replace(p, split="val")
                    if held(p.path, p.split, p.path.replace("\\", "/").split("/")[-2]) else p
                    for p in problems]
        splits = ("train", "val", "test")
    return Listing(classes=classes, items=items, problems=problems,
                   unused={"unused_in_split": unused}, splits=splits)
