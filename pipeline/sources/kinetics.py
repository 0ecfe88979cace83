"""Kinetics-400/600/700: the published CSVs of YouTube segments, each row's split in its
``split`` column.

The CSVs have the header ``label,youtube_id,time_start,time_end,split`` (Kinetics-400's
adds ``is_cc``; the test CSV has no ``label`` column: its rows are unlabelled, label -1).
Labels may hold spaces, and commas inside quotes. A row's video is found under
``--data_dir`` (in one folder, or one per split and/or class) by either name the
downloaders use:

- ``<youtube_id>_<time_start:06d>_<time_end:06d>.<ext>``: already trimmed, read whole;
- ``<youtube_id>.<ext>``: the full video; ``[time_start, time_end)`` is cut from it by
  seeking (``pipeline.media.video.decode_segments``), several rows of one video sharing
  a decode pass (``base.segment_items``).

Classes are the labels of every CSV given, in alphabetical order. A row whose video is
under neither name is quarantined as ``missing_file``, a row that does not parse as
``bad_csv_row``, a second row of the same segment as ``duplicate_row``.
"""
from __future__ import annotations

import math

from pipeline.media.files import join
from pipeline.media.items import Item, Problem
from pipeline.sources.base import (SPLIT_NAMES, Listing, SegmentRow, SourceError,
                                   SourceOptions, annotation_files, index_videos, pick_video,
                                   present_splits, read_csv, segment_items)

NAME = "kinetics"
DEFAULT_SUBDIR = "kinetics"
PUBLISHED_AT = ("https://github.com/cvdfoundation/kinetics-dataset (the CVDF's mirror of the "
                "Kinetics-400/600/700 videos and CSVs; the CSVs also at "
                "https://deepmind.com/research/open-source/kinetics)")
LAYOUT = """\
--annotations train.csv,validate.csv[,test.csv]
    header "label,youtube_id,time_start,time_end,split"      (the test CSV: no label column)
    rows   "abseiling,0347ZoDXyP0,14,24,train"       (a label holding a comma is quoted)
<data_dir>/                       the videos, in one folder or one per split and/or class
  0347ZoDXyP0_000014_000024.mp4   trimmed to [time_start, time_end): read whole
  0347ZoDXyP0.mp4                 the full video: the segment is cut from it
  train/abseiling/...             (folders down to <split>/<class>/<file>)
"""
REQUIRED = ("youtube_id", "time_start", "time_end")


def _error(message: str) -> SourceError:
    return SourceError(f"{message}\n\nExpected Kinetics layout:\n{LAYOUT}")


def trimmed_name(youtube_id: str, start_s: float, end_s: float) -> str:
    """The name (without extension) of a clip trimmed to [start_s, end_s)."""
    return f"{youtube_id}_{int(round(start_s)):06d}_{int(round(end_s)):06d}"


def _times(row: dict) -> tuple[float, float] | None:
    try:
        start, end = float(row["time_start"]), float(row["time_end"])
    except ValueError:
        return None
    if not (math.isfinite(start) and math.isfinite(end) and 0 <= start < end):
        return None
    return start, end


def list_items(data_dir: str, options: SourceOptions) -> Listing:
    """Lists every row of the ``--annotations`` CSVs in the split its ``split`` column
    names (or ``split=FILE``'s)."""
    tables = []
    for forced, path in annotation_files(data_dir, options, NAME, LAYOUT):
        header, rows = read_csv(path)
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise _error(f"{path} has no column {', '.join(missing)} (its header: "
                         f"{','.join(header)})")
        if forced is None and "split" not in header:
            raise _error(f"{path} has no 'split' column: give its split as "
                         f"--annotations train={path}")
        tables.append((forced, path, rows))
    classes = sorted({row.get("label", "") for _, _, rows in tables for _, row in rows}
                     - {""})
    label_of = {name: i for i, name in enumerate(classes)}
    videos = index_videos(data_dir)

    items, segments, problems = [], [], []
    seen: set[tuple] = set()
    for forced, csv_path, rows in tables:
        for line, row in rows:
            text = ",".join(v for k, v in row.items() if k is not None)
            split = forced or SPLIT_NAMES.get(row.get("split", "").lower(), "")
            times = _times(row)
            youtube_id = row["youtube_id"]
            if None in row or not youtube_id or times is None or not split:
                problems.append(Problem(csv_path, "list", "bad_csv_row",
                                        f"{csv_path}:{line}: {text!r}", split))
                continue
            label_text = row.get("label", "")
            label = label_of.get(label_text, -1)
            name = trimmed_name(youtube_id, *times)
            key = (youtube_id, times, split)
            if key in seen:
                problems.append(Problem(join(data_dir, name), "list", "duplicate_row",
                                        f"{csv_path}:{line}: this segment is listed twice",
                                        split))
                continue
            seen.add(key)
            hints = (split, row.get("split", ""), label_text)
            if name in videos:
                rel = pick_video(videos[name], hints)
                items.append(Item(join(data_dir, rel), rel, split, label, label_text))
            elif youtube_id in videos:
                rel = pick_video(videos[youtube_id], hints)
                segments.append(SegmentRow(join(data_dir, rel), rel, split, *times, label,
                                           label_text))
            else:
                problems.append(Problem(join(data_dir, name + ".mp4"), "list", "missing_file",
                                        f"{csv_path}:{line}: neither {name}.* (trimmed) nor "
                                        f"{youtube_id}.* (the full video) is under {data_dir}",
                                        split))
    items.extend(segment_items(segments))
    if not items:
        raise _error(f"empty dataset: none of the videos the CSVs list was found under "
                     f"{data_dir} ({len(problems)} rows had problems)")
    return Listing(classes=classes, items=items, problems=problems,
                   splits=present_splits(items, problems))
