"""The build's PTransforms and DoFns (kept out of the entry point so workers can import them).

    ListedItems ─► Reshuffle ─► MakeRecords ─┬─ ok ─► WriteSplits (WriteParts ─► GroupParts ─► ConcatShards)
                                             │        └─► Stats (CountPerClass)
                                             └─ failed ─┐
    ListingProblems ───────────────────────────────────┴─► Errors
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
import uuid
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from pipeline import video
from pipeline.sources import base as sources_base
from tfrecords import schema

TARGET_SHARD_BYTES = 150 * 2 ** 20
PARTS_DIR = "_parts"      # per-bundle part files, concatenated into shards


@dataclasses.dataclass(frozen=True)
class BuildSettings:
    """Everything a worker needs to turn an item into records."""
    sampling: video.SamplingSpec
    frame: video.FrameSpec
    truncation_tolerance: float = 0.05
    source_fps: float = 0.0           # frame folders: their frame rate (0 = unknown)
    keypoints: Any = None             # pipeline.keypoints.KeypointSpec for keypoint items


class Encoded(NamedTuple):
    """One written clip on its way to a shard."""
    split: str
    slot: int          # position in the split's stable order; shard = slot % num_shards
    video_id: str
    label: int
    label_text: str
    num_frames: int
    record: bytes
    part: int = 0      # 0 for the first record of a source item (windows number the rest)


def num_shards_for(count: int, num_bytes: int, requested: int) -> int:
    """Shards for a split: as requested, or ~TARGET_SHARD_BYTES each; 1..count."""
    if count <= 0:
        return 0
    n = requested if requested > 0 else math.ceil(num_bytes / TARGET_SHARD_BYTES)
    return max(1, min(n, count))


# --------------------------------------------------------------------------
# Beam transforms.
# --------------------------------------------------------------------------


class ProgressDoFn(beam.DoFn):
    """A DoFn that marks each finished element with one byte in a file of its own under
    ``progress_dir`` (when given), for a local run's progress line to count (see
    ``pipeline.build.FolderWatch``). Workers on one machine never share a file."""

    def __init__(self, progress_dir: str | None = None):
        self.progress_dir = progress_dir
        self._progress = None

    def setup(self):
        if self.progress_dir:
            self._progress = open(os.path.join(self.progress_dir, uuid.uuid4().hex), "ab",
                                  buffering=0)

    def teardown(self):
        if self._progress:
            self._progress.close()

    def mark_done(self):
        if self._progress:
            self._progress.write(b".")


class MakeRecords(ProgressDoFn):
    """Turns one listed item into record(s); failures go to the 'failed' output."""

    FAILED = "failed"

    def __init__(self, settings: BuildSettings, progress_dir: str | None = None):
        super().__init__(progress_dir)
        self.settings = settings
        self.ok = Metrics.counter("actionflow", "items_written")
        self.records = Metrics.counter("actionflow", "records_written")
        self.failed = Metrics.counter("actionflow", "items_quarantined")
        self.bad_files = Metrics.counter("actionflow", "files_quarantined")
        self.frames = Metrics.counter("actionflow", "frames_written")
        self.decode_ms = Metrics.distribution("actionflow", "decode_ms_per_item")

    def process(self, element):
        slot, item = element
        start = time.perf_counter()
        try:
            made, file_problems = self._make(item)
        except video.MediaError as e:
            made, file_problems = [], []
            failure = (e.reason, e.detail)
        except Exception as e:  # an unexpected failure on one item must not sink the build
            made, file_problems = [], []
            failure = ("unexpected_error", f"{type(e).__name__}: {e}")
        else:
            failure = None
        finally:
            self.decode_ms.update(int((time.perf_counter() - start) * 1000))
            self.mark_done()
        for problem in file_problems:
            self.bad_files.inc()
            yield beam.pvalue.TaggedOutput(self.FAILED, problem)
        if failure:
            self.failed.inc()
            Metrics.counter("actionflow", f"quarantined_{failure[0]}").inc()
            yield beam.pvalue.TaggedOutput(self.FAILED, _problem_dict(item, "decode", *failure))
            return
        self.ok.inc()
        for part, (video_id, label, label_text, num_frames, record) in enumerate(made):
            self.records.inc()
            self.frames.inc(num_frames)
            yield Encoded(item.split, slot, video_id, label, label_text, num_frames, record, part)

    def _make(self, item: sources_base.Item):
        """([(video_id, label, label_text, num_frames, record)], [file problem dicts])."""
        return make_item_records(item, self.settings)


def make_item_records(item: sources_base.Item, s: BuildSettings):
    """One item's records as the build writes them (``MakeRecords`` on a worker, and
    ``trainers.predict`` on a raw input): ``([(video_id, label, label_text, num_frames,
    record)], [file problem dicts])``; raises ``video.MediaError`` for an unusable item."""
    if item.kind == "keypoints":
        from pipeline import keypoints
        records, problems = keypoints.make_keypoint_records(item, s.keypoints)
        return [(r.video_id, r.label, r.label_text, r.num_frames, r.record)
                for r in records], problems
    if item.kind == "video":
        clip = video.decode_video(item.path, s.sampling, s.frame, s.truncation_tolerance)
    elif item.kind == "frames":
        from pipeline import frames
        clip = frames.decode_frame_folder(item, s.sampling, s.frame, s.source_fps)
    elif item.kind == "image":
        from pipeline import frames
        clip = frames.decode_image(item.path, s.frame)
    else:
        raise ValueError(f"unknown item kind {item.kind!r}")
    record = clip_record(item, clip, s.frame)
    return [(item.video_id, item.label, item.label_text, len(clip.frames), record)], []


def clip_record(item: sources_base.Item, clip: video.Clip, frame: video.FrameSpec) -> bytes:
    """The serialised record of one decoded clip of ``item``."""
    return schema.encode_clip(
        clip.frames, label=item.label, label_text=item.label_text,
        video_id=item.video_id, image_format=frame.image_format,
        height=clip.height, width=clip.width, fps=clip.fps,
        timestamps_us=clip.timestamps_us, source_indices=clip.source_indices,
        source_num_frames=clip.source_num_frames, short_policy=clip.short_policy,
        extra_context={schema.CLIP_NUM_FILLED: clip.num_filled} if clip.num_filled else None)


def _problem_dict(item: sources_base.Item, stage: str, reason: str, detail: str) -> dict:
    return {"path": item.path, "video_id": item.video_id, "split": item.split,
            "stage": stage, "reason": reason, "detail": detail}


class WriteParts(beam.DoFn):
    """Appends each record to its bundle's part file for (split, shard); emits one row per part.

    Record bytes are written where they are made and never shuffled: only the
    small per-part rows travel to ``ConcatShards``. (A GroupByKey of the records
    themselves would, on the local runner, pass every byte through the driver.)
    """

    def __init__(self, directory: str, shard_counts: dict[str, int]):
        self.directory = directory
        self.shard_counts = dict(shard_counts)

    def start_bundle(self):
        self._parts = {}    # (split, shard) -> [file, path, records, bytes]

    def process(self, r: Encoded):
        key = (r.split, r.slot % self.shard_counts[r.split])
        part = self._parts.get(key)
        if part is None:
            path = FileSystems.join(self.directory, PARTS_DIR,
                                    f"{key[0]}-{key[1]:05d}-{uuid.uuid4().hex}.part")
            part = self._parts[key] = [FileSystems.create(path), path, 0, 0]
        framed = schema.frame_record(r.record)
        part[0].write(framed)
        part[2] += 1
        part[3] += len(framed)

    def finish_bundle(self):
        from apache_beam.transforms.window import GlobalWindows
        for key, (f, path, count, size) in self._parts.items():
            f.close()
            yield GlobalWindows.windowed_value(
                (key, {"path": path, "num_examples": count, "num_bytes": size}))
        self._parts = {}


class ConcatShards(beam.DoFn):
    """Concatenates one shard's part files (TFRecord framing allows it) into the shard file."""

    def __init__(self, directory: str, shard_counts: dict[str, int]):
        self.directory = directory
        self.shard_counts = dict(shard_counts)

    def process(self, element):
        (split, index), parts = element
        parts = sorted(parts, key=lambda part: part["path"])
        name = schema.shard_name(split, index, self.shard_counts[split])
        with FileSystems.create(FileSystems.join(self.directory, name)) as out:
            for part in parts:
                with FileSystems.open(part["path"]) as f:
                    while chunk := f.read(1 << 22):
                        out.write(chunk)
        FileSystems.delete([part["path"] for part in parts])
        yield {"split": split, "name": name, "index": index,
               "num_examples": sum(part["num_examples"] for part in parts),
               "num_bytes": sum(part["num_bytes"] for part in parts)}


def _sum_tuples(tuples):
    """Element-wise sum of equal-length tuples (a CombineFn callable)."""
    total = None
    for t in tuples:
        total = list(t) if total is None else [a + b for a, b in zip(total, t)]
    return tuple(total)


class WriteSplits(beam.PTransform):
    """Writes every split's records into ``shard_counts[split]`` TFRecord shards.

    A record goes to shard ``slot % count``: membership depends only on the
    listing, not on the runner; order within a shard follows processing order.
    Emits one dict per written shard (a shard that got no record is not written).
    """

    def __init__(self, directory: str, shard_counts: dict[str, int]):
        super().__init__()
        self.directory = directory
        self.shard_counts = dict(shard_counts)

    def expand(self, records):
        return (records
                | "WriteParts" >> beam.ParDo(WriteParts(self.directory, self.shard_counts))
                | "GroupParts" >> beam.GroupByKey()
                | "ConcatShards" >> beam.ParDo(ConcatShards(self.directory, self.shard_counts)))


class CountPerClass(beam.PTransform):
    """Per (split, class) counts of records, source items and frames; class None = unlabelled."""

    def expand(self, records):
        return (records
                | "KeyByClass" >> beam.Map(lambda r: (
                    (r.split, r.label_text if r.label != schema.UNLABELLED else None),
                    (1, int(r.part == 0), r.num_frames)))
                | "SumPerClass" >> beam.CombinePerKey(_sum_tuples)
                | "StatsToDict" >> beam.Map(lambda kv: {
                    "split": kv[0][0], "class": kv[0][1], "num_examples": kv[1][0],
                    "num_items": kv[1][1], "num_frames": kv[1][2]}))


def _write_jsonl(pcoll, label: str, prefix: str):
    return (pcoll
            | f"{label}ToJson" >> beam.Map(json.dumps, sort_keys=True)
            | f"Write{label}" >> beam.io.WriteToText(prefix, file_name_suffix=".jsonl"))


def estimate_record_bytes(selected, settings: BuildSettings, sample: int = 3) -> float:
    """Mean serialised bytes per listed item, from encoding the first few items that work."""
    maker = MakeRecords(settings)
    sizes = []
    for _, item in selected:
        if len(sizes) >= sample:
            break
        try:
            made, _ = maker._make(item)
        except Exception:  # a bad item says nothing about the size of good ones
            continue
        sizes.append(sum(len(m[-1]) + 16 for m in made))
    return sum(sizes) / len(sizes) if sizes else 0.0


def shard_counts_for(selected, settings: BuildSettings, requested: int) -> dict[str, int]:
    """Shards per split: ``requested`` (capped at the split's items), else ~TARGET_SHARD_BYTES each."""
    per_split: dict[str, int] = {}
    for _, item in selected:
        per_split[item.split] = per_split.get(item.split, 0) + 1
    per_item = estimate_record_bytes(selected, settings) if requested <= 0 else 0.0
    return {split: num_shards_for(n, int(per_item * n), requested)
            for split, n in per_split.items()}


def build_graph(p, selected, listing_problems: list[dict], settings: BuildSettings,
                work_dir: str, shard_counts: dict[str, int], progress_dir: str | None):
    """Adds the build to pipeline ``p``; side files land in ``work_dir``."""
    made = (p
            | "ListedItems" >> beam.Create(selected, reshuffle=False)
            | "Reshuffle" >> beam.Reshuffle()
            | "MakeRecords" >> beam.ParDo(MakeRecords(settings, progress_dir)).with_outputs(
                MakeRecords.FAILED, main="ok"))
    records = made.ok
    shards = records | "WriteSplits" >> WriteSplits(work_dir, shard_counts)
    stats = records | "Stats" >> CountPerClass()
    problems = p | "ListingProblems" >> beam.Create(listing_problems, reshuffle=False)
    errors = (made[MakeRecords.FAILED], problems) | "Errors" >> beam.Flatten()
    _write_jsonl(shards, "ShardList", FileSystems.join(work_dir, "_shards"))
    _write_jsonl(stats, "Stats", FileSystems.join(work_dir, "_stats"))
    _write_jsonl(errors, "Errors", FileSystems.join(work_dir, "_errors"))
