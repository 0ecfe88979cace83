"""OpenPose JSON output: one ``<video>_<12-digit frame>_keypoints.json`` per frame.

Files are grouped into one item per video (``kind='keypoints'``, ``files`` in
frame order, ``extra['frame_numbers']``); the worker (``pipeline.media.keypoints``)
reads them. Labels come from one of:

* ``--label_csv``: one row per video; the video name is
  ``--id_template.format(id=row[--id_column])`` and the class is
  ``row[--label_column]``. Classes are the sorted distinct values of every row
  (numerically when all are integers). A video without a row is quarantined
  (``unknown_label``); rows whose video has no JSON are counted as unused
  (``label_without_keypoints``).
* ``--segments_csv``: rows ``video,start_s,end_s,label`` (header optional;
  ``video`` also goes through ``--id_template``). Classes are
  ``[--background_label] + sorted segment labels``; each item gets
  ``extra['segments'] = [[start_s, end_s, class_index], ...]`` sorted by start,
  which the worker turns into per-frame labels (a frame at time t belongs to
  the first segment with ``start_s <= t < end_s``, else to the background).
  The sequence label is the non-background class with the longest total
  segment duration (ties: the lower class index), or the background when a
  video only has background segments. Videos without a segment row are
  quarantined (``unknown_label``). Cannot be combined with ``--label_csv``.
* neither: every video is unlabelled (label -1, empty label text).

Splits: everything is ``train`` unless ``--val_fraction``/``--test_fraction``
assign videos by ``base.hash_split`` of the video name.
"""
from __future__ import annotations

import csv
import io
import math

from pipeline.media.files import exists, join, read_text
from pipeline.media.formats import OPENPOSE_FILE, OPENPOSE_PATTERN, OPENPOSE_SUFFIX
from pipeline.media.items import FILE_STAGE, Item, Problem
from pipeline.sources.base import (Listing, SourceError, SourceOptions, hash_split,
                                   list_entries)

NAME = "openpose"
DEFAULT_SUBDIR = "openpose"
PUBLISHED_AT = ("your own OpenPose output (https://github.com/CMU-Perceptual-Computing-Lab/"
                "openpose, --write_json): no download")
LAYOUT = """\
<data_dir>/
  <video>_000000000000_keypoints.json     one OpenPose JSON per frame (BODY_25 or COCO),
  <video>_000000000001_keypoints.json     12-digit frame number; videos are told apart
  ...                                     by the name before the frame number
optional --label_csv FILE        header with --id_column (default video) and --label_column
                                 (default label), e.g. --id_column kick --id_template "Kick_{id}"
optional --segments_csv FILE     rows video,start_s,end_s,label -> per-frame labels
"""

SEGMENT_COLUMNS = ("video", "start_s", "end_s", "label")
UNUSED_LABEL_ROWS = "label_without_keypoints"
# Frame numbers of one sequence further apart than this are not a gap of missing frames
# but a stray file (OpenPose writes every frame; 1,000 frames is over half a minute).
MAX_FRAME_GAP = 1000


def _error(message: str) -> SourceError:
    """Builds a SourceError that shows the expected layout."""
    return SourceError(f"{message}\n\nExpected OpenPose layout:\n{LAYOUT}")


def sorted_labels(values) -> list[str]:
    """Distinct label values sorted numerically when all are integers, else as text."""
    distinct = set(values)
    try:
        return sorted(distinct, key=int)
    except ValueError:
        return sorted(distinct)


def _video_name(template: str, value: str) -> str:
    """Applies --id_template to one id value."""
    try:
        return template.format(id=value)
    except (KeyError, IndexError, ValueError) as e:
        raise SourceError(f"--id_template {template!r} must use only {{id}}: {e}") from None


def _read_csv(path: str, what: str) -> list[list[str]]:
    """Rows of a CSV (cells stripped, blank lines skipped) read through FileSystems."""
    if not exists(path):
        raise SourceError(f"{what} {path} does not exist")
    rows = csv.reader(io.StringIO(read_text(path)))
    return [[cell.strip() for cell in row] for row in rows if any(c.strip() for c in row)]


def _group_files(data_dir: str, val: float,
                 test: float) -> tuple[dict[str, list[tuple[int, str]]], list[Problem]]:
    """Lists data_dir once; returns video -> [(frame number, path)] sorted, and the files
    that belong to no sequence: bad names, non-files, stray frame numbers. Those are bad
    files (stage ``file``, in the split of their sequence where they name one), never a
    reason to lose a sequence."""
    videos: dict[str, list[tuple[int, str]]] = {}
    problems = []
    found, odd = list_entries(data_dir, extensions=(OPENPOSE_SUFFIX,), depth=1)
    prefix = join(data_dir, "")          # rel has no leading '/': prefix + rel is the join
    for rel, reason, detail in odd:
        match = OPENPOSE_FILE.match(rel)
        problems.append(Problem(prefix + rel, FILE_STAGE, reason, detail,
                                hash_split(match.group(1) if match else rel, val, test)))
    for rel in found:
        match = OPENPOSE_FILE.match(rel)
        if not match:
            problems.append(Problem(prefix + rel, FILE_STAGE, "bad_file_name",
                                    f"expected {OPENPOSE_PATTERN}", hash_split(rel, val, test)))
            continue
        videos.setdefault(match.group(1), []).append((int(match.group(2)), prefix + rel))
    for video, frames in videos.items():
        frames.sort()
        kept, stray = _main_run(frames)
        videos[video] = kept
        split = hash_split(video, val, test)
        problems.extend(Problem(path, FILE_STAGE, "stray_frame_number",
                                f"frame {number} is more than {MAX_FRAME_GAP} frames away from "
                                f"the other {len(kept)} frames of {video!r}", split)
                        for number, path in stray)
    return videos, problems


def _main_run(frames: list[tuple[int, str]]):
    """(the longest run of frames whose numbers are at most MAX_FRAME_GAP apart, the rest):
    a file numbered far from its sequence is a stray, not a gap to fill with missing frames."""
    runs, start = [], 0
    for i in range(1, len(frames) + 1):
        if i == len(frames) or frames[i][0] - frames[i - 1][0] > MAX_FRAME_GAP:
            runs.append(frames[start:i])
            start = i
    best = max(runs, key=len)            # ties: the earliest run
    return best, [f for run in runs if run is not best for f in run]


def _csv_labels(options: SourceOptions) -> dict[str, str]:
    """video name -> label text from --label_csv."""
    rows = _read_csv(options.label_csv, "--label_csv")
    if not rows:
        raise SourceError(f"--label_csv {options.label_csv} is empty")
    header, body = rows[0], rows[1:]
    if not body:
        raise SourceError(f"--label_csv {options.label_csv} has a header but no rows")
    for column, flag in ((options.id_column, "--id_column"),
                         (options.label_column, "--label_column")):
        if column not in header:
            raise SourceError(f"{flag} {column!r} is not a column of {options.label_csv}; "
                              f"columns: {', '.join(header)}")
    id_at, label_at = header.index(options.id_column), header.index(options.label_column)
    labels: dict[str, str] = {}
    for line, row in enumerate(body, start=2):
        if len(row) != len(header) or not row[id_at] or not row[label_at]:
            raise SourceError(f"{options.label_csv} row {line}: expected {len(header)} cells "
                              f"with a non-empty {options.id_column!r} and "
                              f"{options.label_column!r}, got {row}")
        video = _video_name(options.id_template, row[id_at])
        if labels.setdefault(video, row[label_at]) != row[label_at]:
            raise SourceError(f"{options.label_csv} gives video {video!r} two labels: "
                              f"{labels[video]!r} and {row[label_at]!r}")
    return labels


def _float(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise SourceError(f"{where}: {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise SourceError(f"{where}: times must be finite and >= 0, got {text!r}")
    return value


def _csv_segments(options: SourceOptions) -> dict[str, list[tuple[float, float, str]]]:
    """video name -> [(start_s, end_s, label text)] from --segments_csv."""
    rows = _read_csv(options.segments_csv, "--segments_csv")
    if rows and [c.lower() for c in rows[0]] == list(SEGMENT_COLUMNS):
        rows = rows[1:]
        first_line = 2
    else:
        first_line = 1
    segments: dict[str, list[tuple[float, float, str]]] = {}
    for line, row in enumerate(rows, start=first_line):
        where = f"{options.segments_csv} row {line}"
        if len(row) != 4 or not row[0] or not row[3]:
            raise SourceError(f"{where}: expected {','.join(SEGMENT_COLUMNS)}, got {row}")
        start, end = _float(row[1], where), _float(row[2], where)
        if end <= start:
            raise SourceError(f"{where}: end_s {row[2]} must be after start_s {row[1]}")
        video = _video_name(options.id_template, row[0])
        segments.setdefault(video, []).append((start, end, row[3]))
    if not segments:
        raise SourceError(f"--segments_csv {options.segments_csv} has no segment rows")
    return segments


def _sequence_label(segments: list[list], background: int = 0) -> int:
    """The non-background class with the longest total duration (ties: lower index)."""
    duration: dict[int, float] = {}
    for start, end, label in segments:
        if label != background:
            duration[label] = duration.get(label, 0.0) + end - start
    if not duration:
        return background
    return min(duration, key=lambda label: (-duration[label], label))


def list_items(data_dir: str, options: SourceOptions) -> Listing:
    """Groups the per-frame JSON files under ``data_dir`` into one item per video."""
    val, test = options.val_fraction, options.test_fraction
    hash_split("", val, test)  # rejects bad fractions before listing
    if options.label_csv and options.segments_csv:
        raise SourceError("--label_csv and --segments_csv cannot be combined: give per-video "
                          "labels or labelled segments")
    videos, problems = _group_files(data_dir, val, test)
    if not videos:
        missing = "" if exists(data_dir) else " (the directory does not exist)"
        raise _error(f"empty dataset: no <video>_<frame>_keypoints.json files in "
                     f"{data_dir}{missing}")

    labels, segments, labelled, classes, source = None, None, None, [], ""
    if options.label_csv:
        labels = _csv_labels(options)
        classes = sorted_labels(labels.values())
        source = f"--label_csv {options.label_csv}"
        labelled = labels
    elif options.segments_csv:
        segments = _csv_segments(options)
        names = {label for rows in segments.values() for _, _, label in rows}
        classes = [options.background_label] + sorted_labels(names - {options.background_label})
        source = f"--segments_csv {options.segments_csv}"
        labelled = segments
    index_of = {name: i for i, name in enumerate(classes)}

    items = []
    for video in sorted(videos):
        frames = videos[video]
        split = hash_split(video, val, test)
        extra = {"frame_numbers": [number for number, _ in frames]}
        label, text = -1, ""
        if labelled is not None and video not in labelled:
            problems.append(Problem(frames[0][1], "list", "unknown_label",
                                    f"video {video!r} ({len(frames)} frames) has no row in "
                                    f"{source}", split))
            continue
        if labels is not None:
            text = labels[video]
            label = index_of[text]
        elif segments is not None:
            rows = sorted(segments[video])
            extra["segments"] = [[start, end, index_of[name]] for start, end, name in rows]
            label = _sequence_label(extra["segments"])
            text = classes[label]
        items.append(Item(data_dir, video, split, label, text, kind="keypoints",
                          files=tuple(path for _, path in frames), extra=extra))

    unused = {}
    if labelled is not None:
        if not items:
            raise SourceError(
                f"no video has a row in {source}: videos are named like "
                f"{', '.join(sorted(videos)[:3])}; the CSV names like "
                f"{', '.join(sorted(labelled)[:3])} (check --id_column and --id_template)")
        unused[UNUSED_LABEL_ROWS] = len(set(labelled) - set(videos))
    splits = ("train",) + (("val",) if val > 0 else ()) + (("test",) if test > 0 else ())
    return Listing(classes=classes, items=items, problems=problems, unused=unused,
                   splits=splits, modality="keypoints")
