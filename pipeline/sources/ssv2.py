"""Something-Something v2: 174 templates of hand-object actions, one VP9 WebM per video.

``labels.json`` maps each template (``"Pushing something from left to right"``) to its
class index (a string); ``train.json`` and ``validation.json`` list the videos as
``{"id", "label", "template", "placeholders"}``, where ``template`` is the class with
its placeholders in brackets (``"Pushing [something] from left to right"``) and
``label`` the template filled in (``"pushing a pen from left to right"``);
``test.json`` lists ids only (unlabelled, label -1). A record keeps the template as its
label text and the filled-in label as ``clip/label/filled_text``.

Three pairs of classes are each other's mirror image (an object pushed or pulled from
left to right, the camera turned left or right): ``FLIP_LABEL_SWAP`` holds them, the
build writes them into ``dataset_info.json`` (``flip_label_swap``), and a training
config that flips clips horizontally must swap them (``data.flip_label_swap``), as the
gesture configs swap the left and right swipes.
"""
from __future__ import annotations

import json

from pipeline.media.files import exists, join, read_text
from pipeline.media.items import Item, Problem
from pipeline.sources.base import Listing, SourceError, SourceOptions, list_entries

NAME = "ssv2"
DEFAULT_SUBDIR = "ssv2"
PUBLISHED_AT = ("https://developer.qualcomm.com/software/ai-datasets/something-something "
                "(Qualcomm's Something-Something v2 page, formerly 20bn.com; registration "
                "required)")
LAYOUT = """\
<data_dir>/
  labels/                        (or these files directly in <data_dir>)
    labels.json                  {"Pushing something from left to right": "93", ...}
    train.json                   [{"id": "78687", "label": "pushing a pen from left to right",
    validation.json                "template": "Pushing [something] from left to right",
                                   "placeholders": ["a pen"]}, ...]     (the 'val' split)
    test.json                    [{"id": "1420"}, ...]     (optional; unlabelled, label -1)
  20bn-something-something-v2/   (or the videos directly in <data_dir>, or videos/)
    78687.webm ...
"""
# Each pair once; a horizontal flip turns either class into the other.
FLIP_LABEL_SWAP: dict[str, str] = {
    "Pulling something from left to right": "Pulling something from right to left",
    "Pushing something from left to right": "Pushing something from right to left",
    "Turning the camera left while filming something":
        "Turning the camera right while filming something",
}
_LABEL_DIRS = ("labels", "")
_VIDEO_DIRS = ("20bn-something-something-v2", "", "videos")
_SPLIT_FILES = (("train", "train.json"), ("val", "validation.json"), ("test", "test.json"))


def _error(message: str) -> SourceError:
    return SourceError(f"{message}\n\nExpected Something-Something v2 layout:\n{LAYOUT}")


def class_name(template: str) -> str:
    """The class of a template: its placeholders without brackets
    ("Putting [something] onto [something]" -> "Putting something onto something")."""
    return template.replace("[", "").replace("]", "")


def flip_label_swap(classes) -> dict[str, str] | None:
    """The pairs of ``FLIP_LABEL_SWAP`` whose two classes are both in ``classes``."""
    names = set(classes)
    pairs = {a: b for a, b in FLIP_LABEL_SWAP.items() if a in names and b in names}
    return pairs or None


def _load_json(path: str):
    try:
        return json.loads(read_text(path))
    except ValueError as e:
        raise _error(f"{path} is not valid JSON: {e}") from None


def _read_labels(path: str) -> list[str]:
    """Class names ordered by their index in labels.json."""
    data = _load_json(path)
    try:
        by_index = {int(index): name for name, index in data.items()}
    except (AttributeError, TypeError, ValueError):
        raise _error(f"{path} must map each template to its class index") from None
    if sorted(by_index) != list(range(len(by_index))) or len(by_index) != len(data):
        raise _error(f"{path} must number its {len(data)} templates 0..N-1, each once")
    return [by_index[i] for i in range(len(by_index))]


def _find(data_dir: str, dirs, name: str) -> str | None:
    for sub in dirs:
        path = join(data_dir, sub, name) if sub else join(data_dir, name)
        if exists(path):
            return path
    return None


def _video_root(data_dir: str) -> tuple[str, str, set[str]]:
    """(root of the videos, its path relative to data_dir, the .webm names found there)."""
    for sub in _VIDEO_DIRS:
        root = join(data_dir, sub) if sub else data_dir
        found, _ = list_entries(root, (".webm",), depth=1)
        if found:
            return root, (sub + "/" if sub else ""), set(found)
    return join(data_dir, _VIDEO_DIRS[0]), _VIDEO_DIRS[0] + "/", set()


def list_items(data_dir: str, options: SourceOptions) -> Listing:
    """Lists the train and validation videos, and the test videos when test.json exists."""
    del options  # the splits are fixed by the JSON files
    labels_path = _find(data_dir, _LABEL_DIRS, "labels.json")
    if labels_path is None:
        raise _error(f"missing {join(data_dir, 'labels', 'labels.json')}")
    classes = _read_labels(labels_path)
    label_of = {name: i for i, name in enumerate(classes)}
    tables = []
    for split, name in _SPLIT_FILES:
        path = _find(data_dir, _LABEL_DIRS, name)
        if path is None and split != "test":
            raise _error(f"missing {join(data_dir, 'labels', name)}")
        if path is not None:
            rows = _load_json(path)
            if not isinstance(rows, list):
                raise _error(f"{path} must hold a list of videos")
            tables.append((split, path, rows))

    root, rel_root, videos = _video_root(data_dir)
    items, problems = [], []
    for split, json_path, rows in tables:
        for number, row in enumerate(rows):
            video = str(row.get("id", "")).strip() if isinstance(row, dict) else ""
            template = row.get("template") if isinstance(row, dict) else None
            filled = row.get("label") if isinstance(row, dict) else None
            if not video or (split != "test" and not isinstance(template, str)):
                problems.append(Problem(json_path, "list", "bad_json_row",
                                        f"{json_path}: entry {number}: {row!r}"[:300], split))
                continue
            path = join(root, video + ".webm")
            name = class_name(template) if isinstance(template, str) else ""
            if name and name not in label_of:
                problems.append(Problem(path, "list", "unknown_label",
                                        f"{template!r} is not in labels.json", split))
            elif video + ".webm" not in videos:
                problems.append(Problem(path, "list", "missing_file",
                                        f"listed in {json_path} but not under {root}", split))
            else:
                extra = {"filled_text": filled} if isinstance(filled, str) and filled else {}
                items.append(Item(path, rel_root + video + ".webm", split,
                                  label_of[name] if name else -1, name, extra=extra))
    if not items:
        raise _error(f"empty dataset: none of the listed videos was found under {root}")
    return Listing(classes=classes, items=items, problems=problems,
                   splits=tuple(split for split, _, _ in tables),
                   flip_label_swap=flip_label_swap(classes))
