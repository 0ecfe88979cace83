"""20BN-Jester v1: 27 hand gestures, one JPEG frame folder per video.

Labels come from jester-v1-labels.csv (line order = class index). The test
CSV has ids only, so its items are unlabelled (label -1).
"""
from __future__ import annotations

from pipeline.media.files import exists, join, read_text
from pipeline.media.frames import list_subfolders
from pipeline.media.items import Item, Problem
from pipeline.sources.base import Listing, SourceError, SourceOptions

NAME = "jester"
DEFAULT_SUBDIR = "jester"
PUBLISHED_AT = ("https://developer.qualcomm.com/software/ai-datasets/jester "
                "(Qualcomm's 20BN-Jester v1 page, formerly 20bn.com; registration required)")
LAYOUT = """\
<data_dir>/
  jester-v1-labels.csv         one label per line ("Swiping Left"), line order = index
  jester-v1-train.csv          rows "34870;Drumming Fingers"
  jester-v1-validation.csv     rows "9223;Thumb Up"
  jester-v1-test.csv           rows "5" (optional; unlabelled)
  20bn-jester-v1/              (or the id folders directly in <data_dir>)
    34870/
      00001.jpg 00002.jpg ...
"""
FRAMES_SUBDIR = "20bn-jester-v1"
_SPLIT_FILES = (("train", "jester-v1-train.csv"), ("val", "jester-v1-validation.csv"),
                ("test", "jester-v1-test.csv"))


def _error(message: str) -> SourceError:
    return SourceError(f"{message}\n\nExpected 20BN-Jester layout:\n{LAYOUT}")


def _read_labels(path: str) -> list[str]:
    """Class names, in line order."""
    classes = [line.strip() for line in read_text(path).splitlines() if line.strip()]
    if not classes:
        raise _error(f"no labels in {path}")
    if len(set(classes)) != len(classes):
        raise _error(f"{path} lists a label twice")
    return classes


def _frame_root(data_dir: str) -> tuple[str, str, set[str]]:
    """(root of the id folders, its path relative to data_dir, the id folders found)."""
    nested = join(data_dir, FRAMES_SUBDIR)
    found = list_subfolders(nested)
    if found:
        return nested, FRAMES_SUBDIR + "/", found
    return data_dir, "", list_subfolders(data_dir)


def list_items(data_dir: str, options: SourceOptions) -> Listing:
    """Lists the train and validation videos, and the test videos when the test CSV exists."""
    del options  # the splits are fixed by the CSVs
    labels_path = join(data_dir, "jester-v1-labels.csv")
    if not exists(labels_path):
        raise _error(f"missing {labels_path}")
    classes = _read_labels(labels_path)
    label_of = {name: i for i, name in enumerate(classes)}

    split_texts = []
    for split, name in _SPLIT_FILES:
        path = join(data_dir, name)
        if exists(path):
            split_texts.append((split, path, read_text(path)))
        elif split != "test":
            raise _error(f"missing {path}")

    root, rel_root, folders = _frame_root(data_dir)
    items, problems = [], []
    for split, csv_path, text in split_texts:
        for line in text.splitlines():
            if not line.strip():
                continue
            parts = [p.strip() for p in line.split(";")]
            video = parts[0]
            label_text = parts[1] if len(parts) == 2 else ""
            path = join(root, video) if video else csv_path
            if not video or len(parts) > 2 or (split != "test" and not label_text):
                problems.append(Problem(csv_path, "list", "bad_csv_row",
                                        f"{csv_path}: {line.strip()!r}", split))
            elif label_text and label_text not in label_of:
                problems.append(Problem(path, "list", "unknown_label",
                                        f"{label_text!r} is not in jester-v1-labels.csv", split))
            elif video not in folders:
                problems.append(Problem(path, "list", "missing_folder",
                                        f"listed in {csv_path} but no frames under {path}",
                                        split))
            else:
                label = label_of[label_text] if label_text else -1
                items.append(Item(path, rel_root + video, split, label, label_text,
                                  kind="frames"))
    if not items:
        raise _error(f"empty dataset: none of the listed videos was found under {root}")
    splits = tuple(split for split, _, _ in split_texts)
    return Listing(classes=classes, items=items, problems=problems, splits=splits)
