"""Any ``<class>/<video>`` tree: one folder per class, splits drawn by hash.

Each video goes to train, val or test by ``base.hash_split`` of its relative
path, so the assignment is the same on every run and machine and does not
change when other videos are added or removed.
"""
from __future__ import annotations

from pipeline.media.files import join
from pipeline.media.formats import VIDEO_EXTENSIONS
from pipeline.media.items import Item, Problem
from pipeline.sources.base import (Listing, SourceError, SourceOptions, hash_split,
                                   list_entries)

NAME = "folder"
DEFAULT_SUBDIR = "folder"
PUBLISHED_AT = "your own videos: no download, point --data_dir at the class folders"
LAYOUT = f"""\
<data_dir>/
  <class_a>/
    clip1.mp4                  extensions: {', '.join(VIDEO_EXTENSIONS)} (any case)
    clip2.avi
  <class_b>/
    ...
"""


def list_items(data_dir: str, options: SourceOptions) -> Listing:
    """Lists every video under ``data_dir/<class>/``; classes sorted, splits hashed."""
    val, test = options.val_fraction, options.test_fraction
    hash_split("", val, test)  # rejects bad fractions before listing the disk
    files, odd = list_entries(data_dir)
    if not files:
        raise SourceError(f"empty dataset: no videos in class folders under {data_dir}"
                          f"\n\nExpected folder layout:\n{LAYOUT}")
    classes = sorted({rel.split("/")[0] for rel in files})
    label_of = {name: i for i, name in enumerate(classes)}
    items = []
    for rel in files:
        label = label_of[rel.split("/")[0]]
        items.append(Item(join(data_dir, rel), rel, hash_split(rel, val, test),
                          label, classes[label]))    # one string per class, not per item
    # Entries named like videos that are no file are listed items too, quarantined here.
    problems = [Problem(join(data_dir, rel), "list", reason, detail, hash_split(rel, val, test))
                for rel, reason, detail in odd]
    splits = ("train",) + (("val",) if val > 0 else ()) + (("test",) if test > 0 else ())
    return Listing(classes=classes, items=items, problems=problems, splits=splits)
