"""Still images, one per record (a clip of one frame): CSV-labelled or folder-per-class.

Two layouts: the 15-class human-action image set (Training_set.csv with
``filename,label`` for train/, Testing_set.csv for the unlabelled test/), or
one folder per class (used when Training_set.csv is absent).

Everything here is reproducible run to run and machine to machine: within
each class, labelled images are ordered by ``stable_fraction(video_id)``;
``--max_per_class`` keeps the first N in that order, and ``--test_fraction``
/ ``--val_fraction`` take exactly round(n * fraction) of each class
(rounded half up) from the front of it, test first, then val.
"""
from __future__ import annotations

import collections
import csv
import io
import math

from pipeline.media.files import exists, join, read_text
from pipeline.media.formats import IMAGE_EXTENSIONS
from pipeline.media.items import Item, Problem
from pipeline.sources.base import (Listing, SourceError, SourceOptions, hash_split,
                                   list_entries, list_files, stable_fraction)

NAME = "images"
DEFAULT_SUBDIR = "images"
PUBLISHED_AT = ("https://www.kaggle.com/datasets/meetnagadia/human-action-recognition-har-dataset"
                " (15-class human action images), or your own images in class folders")
LAYOUT = f"""\
<data_dir>/
  Training_set.csv             header "filename,label", rows "Image_1.jpg,sitting"
  Testing_set.csv              header "filename" (optional; unlabelled test split)
  train/Image_1.jpg ...
  test/Image_1.jpg ...
or, without Training_set.csv, one folder per class:
<data_dir>/
  <class_a>/img1.jpg           extensions: {', '.join(IMAGE_EXTENSIONS)} (any case)
  <class_b>/...
"""


def _error(message: str) -> SourceError:
    return SourceError(f"{message}\n\nExpected images layout:\n{LAYOUT}")


# An image found by the layout, before labels are numbered ("" = unlabelled).
_Entry = collections.namedtuple("_Entry", "video_id path label_text")


def _files_in(folder: str) -> set[str]:
    """Names of all files directly in ``folder`` (one listing)."""
    return set(list_files(folder, extensions=("",), depth=1))  # "" matches every name


def _read_csv(path: str, split: str, need_label: bool, problems: list[Problem]):
    """Yields (filename, label) rows of a ``filename[,label]`` CSV with a header."""
    rows = [row for row in csv.reader(io.StringIO(read_text(path))) if any(c.strip() for c in row)]
    header = [c.strip().lower() for c in rows[0]] if rows else []
    if "filename" not in header or (need_label and "label" not in header):
        raise _error(f"{path} needs a header row with 'filename'"
                     + (" and 'label'" if need_label else ""))
    name_col = header.index("filename")
    label_col = header.index("label") if "label" in header else None
    for row in rows[1:]:
        row = [c.strip() for c in row] + [""] * (len(header) - len(row))
        name = row[name_col]
        label = row[label_col] if label_col is not None else ""
        if not name or any(row[len(header):]) or (need_label and not label):
            problems.append(Problem(path, "list", "bad_csv_row", f"{path}: {','.join(row)!r}",
                                    split))
            continue
        yield name, label


def _from_csv(data_dir: str, problems: list[Problem]):
    """(classes, labelled train entries, test entries) of the CSV layout."""
    train_csv, test_csv = join(data_dir, "Training_set.csv"), join(data_dir, "Testing_set.csv")
    on_disk = _files_in(join(data_dir, "train"))
    pool = []
    for name, label in _read_csv(train_csv, "train", True, problems):
        path = join(data_dir, "train", name)
        if name not in on_disk:
            problems.append(Problem(path, "list", "missing_file",
                                    "listed in Training_set.csv but not in train/", "train"))
        else:
            pool.append(_Entry(f"train/{name}", path, label))
    classes = sorted({e.label_text for e in pool})
    fixed = []
    if exists(test_csv):
        on_disk = _files_in(join(data_dir, "test"))
        for name, label in _read_csv(test_csv, "test", False, problems):
            path = join(data_dir, "test", name)
            if label and label not in classes:
                problems.append(Problem(path, "list", "unknown_label",
                                        f"{label!r} is not a label of Training_set.csv", "test"))
            elif name not in on_disk:
                problems.append(Problem(path, "list", "missing_file",
                                        "listed in Testing_set.csv but not in test/", "test"))
            else:
                fixed.append(_Entry(f"test/{name}", path, label))
    return classes, pool, fixed


def _from_folders(data_dir: str, problems: list[Problem], val: float, test: float):
    """(classes, labelled entries, no test entries) of the folder-per-class layout; entries
    named like images that are no file become problems (split by hash, as folder does)."""
    found, odd = list_entries(data_dir, IMAGE_EXTENSIONS, depth=2)
    pool = [_Entry(rel, join(data_dir, rel), rel.split("/")[0]) for rel in found]
    problems.extend(Problem(join(data_dir, rel), "list", reason, detail,
                            hash_split(rel, val, test)) for rel, reason, detail in odd)
    return sorted({e.label_text for e in pool}), pool, []


def _round(x: float) -> int:
    """Rounds half up (2.5 -> 3), tolerant of float error in n * fraction."""
    return int(math.floor(x + 0.5 + 1e-9))


def _stable_order(entries: list[_Entry]) -> list[_Entry]:
    return sorted(entries, key=lambda e: (stable_fraction(e.video_id), e.video_id))


def list_items(data_dir: str, options: SourceOptions) -> Listing:
    """Lists the images, trims classes by --min/--max_per_class, draws stratified splits."""
    val, test = options.val_fraction, options.test_fraction
    hash_split("", val, test)  # rejects bad fractions before listing the disk
    problems: list[Problem] = []
    if exists(join(data_dir, "Training_set.csv")):
        classes, pool, fixed = _from_csv(data_dir, problems)
    else:
        classes, pool, fixed = _from_folders(data_dir, problems, val, test)
    unused: collections.Counter = collections.Counter()

    by_class = collections.defaultdict(list)
    for entry in pool:
        by_class[entry.label_text].append(entry)
    if options.min_per_class:
        small = {c for c in classes if len(by_class[c]) < options.min_per_class}
        classes = [c for c in classes if c not in small]
        unused["class_below_min_per_class"] += sum(len(by_class.pop(c)) for c in small)
        unused["class_below_min_per_class"] += sum(e.label_text in small for e in fixed)
        fixed = [e for e in fixed if e.label_text not in small]

    split_of = {}
    for name in classes:
        ordered = _stable_order(by_class[name])
        if options.max_per_class is not None:
            unused["over_max_per_class"] += len(ordered[options.max_per_class:])
            ordered = ordered[:options.max_per_class]
        n_test = _round(len(ordered) * test)
        n_val = min(_round(len(ordered) * val), len(ordered) - n_test)
        for i, entry in enumerate(ordered):
            split_of[entry.video_id] = ("test" if i < n_test else
                                        "val" if i < n_test + n_val else "train")

    if test > 0:  # the labelled test split replaces the unlabelled one
        unused["unlabelled_test"] += sum(not e.label_text for e in fixed)
        fixed = [e for e in fixed if e.label_text]
    for entry in fixed:
        split_of[entry.video_id] = "test"

    label_of = {name: i for i, name in enumerate(classes)}
    items = [Item(e.path, e.video_id, split_of[e.video_id], label_of.get(e.label_text, -1),
                  e.label_text, kind="image")
             for e in pool + fixed if e.video_id in split_of]
    if not items:
        raise _error(f"empty dataset: no images found under {data_dir}")
    splits = ("train",) + (("val",) if val > 0 else ()) + (("test",) if test > 0 or fixed else ())
    return Listing(classes=classes, items=items, problems=problems,
                   unused={k: v for k, v in unused.items() if v}, splits=splits,
                   modality="image")
