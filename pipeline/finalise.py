"""The end of a build, on the driver: what the workers left becomes ``dataset_info.json``
and ``errors.jsonl``, and the finished folder is committed by rename.

A build works in ``OUTPUT_DIR/DATASET/.CONFIG_NAME.partial/`` (``pipeline.partial``).
The workers leave there the shards, ``_shards-*.jsonl`` (one row per shard, naming its
parts), the ``.json`` of every part (its records' splits, labels and frame counts, and
the bad files of its items) and ``_failed/*.jsonl`` (one line per item that failed).
``finalise`` reads them file by file, so the driver's memory does not grow with the
records, counts per split and class, and writes the two JSON files. ``commit`` removes
the work files and renames the folder to its final name; an old build of the same name
is removed only after, so a build killed at any point leaves the previous output intact.
"""
from __future__ import annotations

import collections
import dataclasses
import datetime
import hashlib
import json
import uuid

from pipeline import partial
from pipeline.media import files
from pipeline.media.items import FILE_STAGE
from tfrecords import schema

SHARDS_PREFIX = "_shards"
ERROR_KEYS = ("split", "path", "reason", "stage", "video_id", "detail")   # errors.jsonl order


class CommitError(Exception):
    """The final folder appeared while building (message for the user)."""


@dataclasses.dataclass
class ListingSummary:
    """What the driver keeps of a listing once the workers have it: no item."""
    classes: list
    splits: tuple
    problems: list          # errors.jsonl rows of listing problems
    unused: dict
    modality: str
    class_groups: dict | None
    listed: dict            # split -> items listed (selected items and listing problems)
    listing_sha256: str
    flip_label_swap: dict | None = None     # {class: mirrored class}, a dataset fact


def summarise(listing, selected) -> ListingSummary:
    """The ListingSummary of a source's listing and the items selected from it."""
    listed = collections.Counter(item.split for _, item in selected)
    listed.update(p.split for p in listing.problems if p.stage != FILE_STAGE)  # not items
    return ListingSummary(
        classes=list(listing.classes), splits=tuple(listing.splits),
        problems=[dict(p.to_json_dict(), video_id="") for p in listing.problems],
        unused=dict(listing.unused), modality=listing.modality,
        class_groups=listing.class_groups, listed=dict(listed),
        listing_sha256=listing_digest(listing),
        flip_label_swap=getattr(listing, "flip_label_swap", None))


@dataclasses.dataclass
class Tally:
    """The quarantine of a finished build: items (counted against --max_failure_ratio) and
    bad files inside or beside items that were written."""
    items: int = 0
    files: int = 0


def read_jsonl(work_dir: str, prefix: str, keep: bool = False) -> list[dict]:
    """Rows of the side files ``work_dir/prefix*``, deleting them unless ``keep``."""
    rows = []
    for path in files.match(files.join(work_dir, prefix + "*")):
        rows.extend(json.loads(line) for line in files.read_text(path).splitlines() if line)
        if not keep:
            files.delete([path])
    return rows


def jsonl(rows) -> str:
    return "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)


def _error_line(row: dict) -> str:
    """One errors.jsonl line: keys in ERROR_KEYS order, so sorting the lines sorts the rows
    by split, then path, then reason."""
    return json.dumps({k: row.get(k, "") for k in ERROR_KEYS})


def _complete_shard_sets(tmp_dir: str, shards: list[dict], shard_counts: dict[str, int]):
    """Writes an empty shard (a valid, empty TFRecord file) for every index no record
    reached, so each split is a complete -of-N set; adds it to ``shards``."""
    written = {(r["split"], r["index"]) for r in shards}
    for split, count in shard_counts.items():
        for index in range(count):
            if (split, index) not in written:
                name = schema.shard_name(split, index, count)
                files.write_text(files.join(tmp_dir, name), "")
                shards.append({"split": split, "name": name, "index": index,
                               "num_examples": 0, "num_bytes": 0, "parts": []})


def _empty_split() -> dict:
    return {"num_examples": 0, "num_items": 0, "num_frames": 0, "per_class": {},
            "unlabelled": 0, "num_bytes": 0, "shards": [], "listed": 0, "quarantined": 0,
            "quarantined_files": 0}


def _count(tmp_dir: str, summary: ListingSummary, shards: list[dict]):
    """Per split counts, and the errors.jsonl lines, from the shard rows, the parts' .json
    and the failed items' logs, read one file at a time. Per split: ``listed`` items =
    ``num_items`` written + ``quarantined``; one item can give several records
    (``num_examples``: keypoint windows); bad files of items (a frame's JSON) and beside
    them are ``quarantined_files``."""
    splits = {split: _empty_split() for split in summary.splits}
    lines = [_error_line(p) for p in summary.problems]
    for split, n in summary.listed.items():
        splits.setdefault(split, _empty_split())["listed"] += n
    for shard in sorted(shards, key=lambda sh: (sh["split"], sh["index"])):
        s = splits.setdefault(shard["split"], _empty_split())
        s["shards"].append(shard["name"])
        s["num_bytes"] += shard["num_bytes"]
        for part in shard["parts"]:
            info = json.loads(files.read_text(partial.part_info_path(part)))
            for r in info["records"]:
                s["num_examples"] += 1
                s["num_items"] += r["part"] == 0
                s["num_frames"] += r["num_frames"]
                if r["label"] == schema.UNLABELLED:
                    s["unlabelled"] += 1
                else:
                    s["per_class"][r["label_text"]] = s["per_class"].get(r["label_text"], 0) + 1
            lines.extend(_error_line(p) for p in info.get("problems", ()))
    seen = set()
    for path in files.match(files.join(tmp_dir, partial.FAILED_DIR, "*.jsonl")):
        for text in files.read_lines(path):
            try:
                row = json.loads(text)
            except ValueError:          # a line cut short by a killed worker
                continue
            key = (row["split"], row["slot"])
            if key not in seen:         # a retried bundle logs its failures again
                seen.add(key)
                lines.extend(_error_line(p) for p in [row["problem"], *row["file_problems"]])
    lines.sort()
    by_reason: collections.Counter = collections.Counter()
    tally, unsplit = Tally(), 0
    for line in lines:
        row = json.loads(line)
        by_reason[row["reason"]] += 1
        if row["stage"] == FILE_STAGE:
            tally.files, stage = tally.files + 1, "quarantined_files"
        else:
            tally.items, stage = tally.items + 1, "quarantined"
        if row["split"] in splits:
            splits[row["split"]][stage] += 1
        else:
            unsplit += 1
    return splits, lines, dict(sorted(by_reason.items())), tally, unsplit


def finalise(tmp_dir: str, summary: ListingSummary, settings, shard_counts: dict[str, int], *,
             dataset: str, config_name: str, data_dir: str, flags: dict, beam_args: list[str],
             runner: str) -> tuple[dict, Tally]:
    """Counts what the workers left in ``tmp_dir``, writes errors.jsonl and
    dataset_info.json there, completes the shard sets and removes the work files; returns
    (info, tally)."""
    shards = read_jsonl(tmp_dir, SHARDS_PREFIX)
    _complete_shard_sets(tmp_dir, shards, shard_counts)
    splits, lines, by_reason, tally, unsplit = _count(tmp_dir, summary, shards)
    with files.create(files.join(tmp_dir, schema.ERRORS_FILE)) as out:
        for line in lines:                 # one at a time: a build may have many errors
            out.write(line.encode("utf-8") + b"\n")
    del lines
    info = {
        "schema_version": schema.SCHEMA_VERSION,
        "dataset": dataset,
        "config_name": config_name,
        "modality": summary.modality,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "classes": list(summary.classes),
        "num_classes": len(summary.classes),
        "image_format": settings.frame.image_format,
        "splits": splits,
        "unused": dict(summary.unused),
        "quarantined_without_split": unsplit,
        "errors_by_reason": by_reason,
        "source": {"data_dir": data_dir, "listing_sha256": summary.listing_sha256},
        "sampling": dataclasses.asdict(settings.sampling),
        "frame": dataclasses.asdict(settings.frame),
        "source_fps": settings.source_fps,
        "keypoints": dataclasses.asdict(settings.keypoints) if settings.keypoints else None,
        "flags": dict(flags),
        "beam": {"runner": runner, "args": list(beam_args)},
    }
    if summary.class_groups:
        info["class_groups"] = {group: list(names)
                                for group, names in summary.class_groups.items()}
    if summary.flip_label_swap:
        info["flip_label_swap"] = dict(summary.flip_label_swap)
    files.write_text(files.join(tmp_dir, schema.DATASET_INFO_FILE),
                     schema.dataset_info_to_json(info))
    for name in (partial.PARTS_DIR, partial.FAILED_DIR, partial.PROGRESS_DIR,
                 partial.LISTING_DIR):
        remove_quietly(files.join(tmp_dir, name))
    return info, tally


def listing_digest(listing) -> str:
    """A checksum of what the source listed: video ids, splits and labels."""
    h = hashlib.sha256()
    for it in sorted(listing.items, key=lambda it: it.video_id):
        h.update(f"{it.video_id}\t{it.split}\t{it.label}\n".encode())
    return h.hexdigest()


def commit(tmp_dir: str, final_dir: str, overwrite: bool):
    """Moves the finished build into place; an old build is removed only after."""
    if files.exists(final_dir) and not overwrite:
        raise CommitError(f"{final_dir} appeared while building; pass --overwrite to "
                          "replace it")
    for name in (partial.MANIFEST, partial.LOCK):
        if files.exists(files.join(tmp_dir, name)):
            files.delete([files.join(tmp_dir, name)])
    old = None
    if files.exists(final_dir):
        old = final_dir.rstrip("/") + f".old-{uuid.uuid4().hex[:8]}"
        files.rename_tree(final_dir, old)
    files.rename_tree(tmp_dir, final_dir)
    if old:
        remove_quietly(old)


def remove_quietly(path: str):
    """Removes a folder (local or remote) if it is there; never raises."""
    try:
        files.remove_tree(path)
    except Exception:  # a leftover temporary folder is not worth failing for
        pass
