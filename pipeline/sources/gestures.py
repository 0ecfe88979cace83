"""Smart-TV hand gestures: 5 gestures, ~30 frames per video, train/val CSVs.

Each CSV row names a frame folder, its gesture and the gesture's index. The
index is the class; classes are ordered by it and named by the spelling most
rows use. Real CSVs spell names inconsistently (``Left_Swipe_new``,
``Left Swipe_new``), so names are compared ignoring case, spaces and
underscores; a row is quarantined as 'unknown_label' when its name is not
the name the other rows give its index.
"""
from __future__ import annotations

import collections
import re

from pipeline.media.files import exists, join, read_text
from pipeline.media.frames import list_subfolders
from pipeline.media.items import Item, Problem
from pipeline.sources.base import Listing, SourceError, SourceOptions

NAME = "gestures"
DEFAULT_SUBDIR = "gestures"
PUBLISHED_AT = ("the smart-TV gesture recognition case study data (Project_data.zip: train/, "
                "val/, train.csv, val.csv), mirrored on Kaggle as 'gesture recognition'")
LAYOUT = """\
<data_dir>/
  train.csv                    rows "WIN_20180925_17_08_43_Pro_Left_Swipe_new;Left_Swipe_new;0"
  val.csv                      (folder;gesture;index, no header)
  train/
    WIN_20180925_17_08_43_Pro_Left_Swipe_new/
      WIN_20180925_17_08_43_Pro_00001.png ... (~30 frames; 360x360 or 160x120)
  val/
    ...
"""
SPLITS = ("train", "val")


def _error(message: str) -> SourceError:
    return SourceError(f"{message}\n\nExpected gestures layout:\n{LAYOUT}")


def _key(name: str) -> str:
    """A label name compared ignoring case, spaces and underscores."""
    return re.sub(r"[\s_]+", "", name).lower()


def _parse(split: str, path: str, text: str, problems: list[Problem]) -> list[tuple]:
    """Rows (split, folder, name, index) of one CSV; malformed rows become problems."""
    rows = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(";")]
        if len(parts) != 3 or not parts[0] or not parts[1] or not parts[2].isdigit():
            problems.append(Problem(path, "list", "bad_csv_row",
                                    f"{path}: {line.strip()!r}", split))
            continue
        rows.append((split, parts[0], parts[1], int(parts[2])))
    return rows


def _majority(votes: list) -> object:
    """The most common value, the first seen on ties."""
    counts = collections.Counter(votes)
    best = max(counts.values())
    return next(v for v in votes if counts[v] == best)


def list_items(data_dir: str, options: SourceOptions) -> Listing:
    """Lists the frame folders of train.csv and val.csv."""
    del options  # the splits are fixed by the CSVs
    rows, problems = [], []
    for split in SPLITS:
        path = join(data_dir, f"{split}.csv")
        if not exists(path):
            raise _error(f"missing {path}")
        rows += _parse(split, path, read_text(path), problems)
    if not rows:
        raise _error(f"empty dataset: no rows in {data_dir}/train.csv or val.csv")

    names_of = collections.defaultdict(list)
    for _, _, name, index in rows:
        names_of[index].append(name)
    if sorted(names_of) != list(range(len(names_of))):
        raise _error(f"label indices must be 0..N-1 without gaps; found {sorted(names_of)}")
    classes = [_majority(names_of[i]) for i in range(len(names_of))]

    folders = {split: list_subfolders(join(data_dir, split)) for split in SPLITS}
    items = []
    for split, folder, name, index in rows:
        path = join(data_dir, split, folder)
        if _key(name) != _key(classes[index]):
            problems.append(Problem(path, "list", "unknown_label",
                                    f"{name!r} with index {index}, which the other rows call "
                                    f"{classes[index]!r}", split))
        elif folder not in folders[split]:
            problems.append(Problem(path, "list", "missing_folder",
                                    f"listed in {split}.csv but no frames under {path}", split))
        else:
            items.append(Item(path, f"{split}/{folder}", split, index, classes[index],
                              kind="frames"))
    if not items:
        raise _error(f"empty dataset: none of the {len(rows)} listed folders was found "
                     f"under {data_dir}/train or val")
    return Listing(classes=classes, items=items, problems=problems, splits=SPLITS)
