"""Any annotation list: one row per clip, a whole video or a time segment of one.

``--annotations FILE`` is a CSV whose header names its columns: ``path`` (or ``video``),
``label`` (or ``class``), optionally ``start_s`` and ``end_s`` (or ``start``/``end``,
``time_start``/``time_end``) and ``split``. A row without times is its whole video; a
row with times is the segment ``[start_s, end_s)``, cut by seeking. Rows of one video
whose segments overlap or lie within ``base.SEGMENT_GAP_S`` of each other become one
item, decoded in one streamed pass that writes one record per segment
(``base.segment_items``); an ActivityNet-, THUMOS- or in-house segment list builds
without code. ``--annotations_format mmaction`` reads mmaction2's video lists instead:
lines ``path label``, space separated.

Paths are relative to ``--data_dir`` (or absolute). Splits come from the ``split``
column, else from ``--annotations train=FILE,val=FILE``, else from ``--val_fraction`` /
``--test_fraction`` by a stable hash of the video's path (``base.hash_split``), so all
segments of one video land in the same split. Labels that are all whole numbers are
class indices (classes ``"0"`` .. ``"N-1"``, as in mmaction2's lists); other labels are
class names, in alphabetical order; an empty label is unlabelled (-1).
"""
from __future__ import annotations

import math
import os

from pipeline.media import files
from pipeline.media.items import Item, Problem, segment_video_id
from pipeline.sources.base import (SPLIT_NAMES, Listing, SegmentRow, SourceError,
                                   SourceOptions, annotation_files, check_fractions,
                                   hash_split, read_csv, segment_items)

NAME = "list"
DEFAULT_SUBDIR = "list"
PUBLISHED_AT = "your own annotation list: no download, point --annotations at it"
LAYOUT = """\
--annotations clips.csv           a header naming the columns, then one row per clip:
    path,start_s,end_s,label[,split]
    games/match1.mp4,12.5,17.0,dribble      a segment [start_s, end_s) of the video
    games/match2.mp4,,,shot                 no times: the whole video
--annotations_format mmaction     lines "games/match1.mp4 3" (path, space, label)
--annotations train=a.txt,val=b.txt         a file per split (or a split column, or
                                            --val_fraction / --test_fraction)
<data_dir>/games/match1.mp4 ...   each row's video, relative to --data_dir (or absolute)
"""
FORMATS = ("csv", "mmaction")
_COLUMNS = {"path": ("path", "video", "filename", "file"),
            "label": ("label", "class", "label_text"),
            "start": ("start_s", "start", "time_start", "t_start"),
            "end": ("end_s", "end", "time_end", "t_end"),
            "split": ("split",)}


def _error(message: str) -> SourceError:
    return SourceError(f"{message}\n\nExpected annotation list layout:\n{LAYOUT}")


def _columns(header: list[str], path: str) -> dict[str, str | None]:
    """Which column holds what, by the header's names."""
    found = {key: next((name for name in names if name in header), None)
             for key, names in _COLUMNS.items()}
    if found["path"] is None or found["label"] is None:
        raise _error(f"{path} needs a 'path' and a 'label' column (its header: "
                     f"{','.join(header)})")
    if (found["start"] is None) != (found["end"] is None):
        raise _error(f"{path} names a start column without an end column, or the reverse")
    return found


def _rows(forced: str | None, path: str, fmt: str):
    """(line, path, start, end, label, split, problem) of every row of one file; ``start``
    is '' for a whole video, ``problem`` the text of a row that does not parse."""
    if fmt == "mmaction":
        for line, text in enumerate(files.read_text(path).splitlines(), 1):
            if not text.strip():
                continue
            parts = text.strip().rsplit(None, 1)
            bad = None if len(parts) == 2 else f"{path}:{line}: {text.strip()!r}"
            yield line, parts[0], "", "", parts[-1] if not bad else "", forced or "", bad
        return
    header, rows = read_csv(path)
    cols = _columns(header, path)
    for line, row in rows:
        value = {key: row.get(name, "") if name else "" for key, name in cols.items()}
        bad = (f"{path}:{line}: {','.join(v for k, v in row.items() if k is not None)!r}"
               if None in row else None)
        yield (line, value["path"], value["start"], value["end"], value["label"],
               forced or value["split"], bad)


def _times(start: str, end: str) -> tuple[float, float] | None | str:
    """(start, end) seconds, None for a whole video, 'bad' when they do not parse."""
    if not start and not end:
        return None
    try:
        a, b = float(start), float(end)
    except ValueError:
        return "bad"
    return (a, b) if math.isfinite(a) and math.isfinite(b) and 0 <= a < b else "bad"


def _classes(labels: set[str]) -> tuple[list[str], dict[str, int]]:
    """Class names and the index of each label text (whole numbers: indices themselves)."""
    if labels and all(text.isdigit() for text in labels):
        count = max(int(text) for text in labels) + 1
        return [str(i) for i in range(count)], {text: int(text) for text in labels}
    classes = sorted(labels)
    return classes, {name: i for i, name in enumerate(classes)}


def _is_file(path: str) -> bool:
    return files.exists(path) if files.is_remote(path) else os.path.isfile(path)


def list_items(data_dir: str, options: SourceOptions) -> Listing:
    """Lists every row of the ``--annotations`` files: whole videos and segments."""
    if options.annotations_format not in FORMATS:
        raise SourceError(f"--annotations_format must be one of {', '.join(FORMATS)}, got "
                          f"{options.annotations_format!r}")
    val, test = options.val_fraction, options.test_fraction
    check_fractions(val, test)
    rows = [(path,) + row for forced, path in annotation_files(data_dir, options, NAME, LAYOUT)
            for row in _rows(forced, path, options.annotations_format)]
    classes, label_of = _classes({row[5] for row in rows if row[5] and not row[7]})
    hashed = False
    bad_reason = "bad_split_line" if options.annotations_format == "mmaction" else "bad_csv_row"

    items, segments, problems = [], [], []
    seen: set[tuple] = set()
    is_file: dict[str, bool] = {}
    for list_path, line, rel, start, end, label_text, split_text, bad in rows:
        rel = rel.replace("\\", "/")
        absolute = files.is_remote(rel) or os.path.isabs(rel)
        path = rel if absolute else files.join(data_dir, rel)
        if split_text:
            split = SPLIT_NAMES.get(split_text.lower(), "")
        else:
            split, hashed = hash_split(rel, val, test), True
        times = _times(start, end)
        if bad or not rel or not split or times == "bad":
            problems.append(Problem(list_path, "list", bad_reason,
                                    bad or f"{list_path}:{line}: path {rel!r}, times "
                                           f"{start!r}-{end!r}, split {split_text!r}", split))
            continue
        video_id = (segment_video_id(rel, *times) if times else rel)
        key = (video_id, split)
        if key in seen:
            problems.append(Problem(path, "list", "duplicate_row",
                                    f"{list_path}:{line}: {video_id} is listed twice", split))
            continue
        seen.add(key)
        if path not in is_file:
            is_file[path] = _is_file(path)
        if not is_file[path]:
            problems.append(Problem(path, "list", "missing_file",
                                    f"{list_path}:{line}: no such file", split))
            continue
        label = label_of.get(label_text, -1)
        if times:
            segments.append(SegmentRow(path, rel, split, *times, label, label_text))
        else:
            items.append(Item(path, rel, split, label, label_text))
    items.extend(segment_items(segments))
    if not items:
        raise _error(f"empty dataset: none of the {len(rows)} listed videos was found "
                     f"({len(problems)} rows had problems)")
    named = {it.split for it in items} | {p.split for p in problems}
    if hashed:
        named |= {"train"} | ({"val"} if val > 0 else set()) | ({"test"} if test > 0 else set())
    splits = tuple(split for split in ("train", "val", "test") if split in named)
    return Listing(classes=classes, items=items, problems=problems, splits=splits)
