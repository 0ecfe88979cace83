"""HMDB51: 51 action classes, official 70/30 splits (three of them).

Each ``<class>_test_split<N>.txt`` marks every video of that class with 1
(train), 2 (test) or 0 (not used in split N). Class names contain
underscores (``brush_hair``), so they are parsed from the file name by regex.
"""
from __future__ import annotations

import re

from pipeline.media.files import join, read_text
from pipeline.media.items import Item, Problem
from pipeline.sources.base import Listing, SourceError, SourceOptions, list_files

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
    return Listing(classes=classes, items=items, problems=problems,
                   unused={"unused_in_split": unused}, splits=("train", "test"))
