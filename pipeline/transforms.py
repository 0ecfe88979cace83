"""The build's Beam graph: PTransforms and DoFns around ``pipeline.media``'s record making
(kept out of the entry point so workers can import them).

    Listing ─► ItemFiles ─► SpreadFiles ─► ReadItems ─► MakeRecords ─► WriteSplits ─► ShardList
                                                          │   (WriteParts ─► GroupParts ─► ConcatShards)
                                                          │                     ▲
                        failed items: WORK/_failed/*.jsonl    FinishedParts ────┘ (a resumed build)

The items reach the workers from the files the driver wrote (``pipeline.partial``:
``_listing/``, a few hundred items a file), never inside the job graph, so its size does
not grow with the dataset (Dataflow refuses graphs over about 10 MB). Nothing per item
comes back through the runner either: each part's ``.json`` holds its records' labels
and frame counts, and each bundle's failed items are lines of its log, which the driver
reads at the end to count and to write errors.jsonl; only one row per shard is gathered
(``ShardList``).

Shards are the same whatever ran them: a record goes to shard ``slot % count`` and
``ConcatShards`` writes each shard's records in slot order, so a build on one worker
or several, on any runner, stopped and resumed or not, writes the same bytes.
"""
from __future__ import annotations

import json
import math
import os
import time
import uuid
from typing import NamedTuple

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from pipeline import cli, partial
from pipeline.finalise import SHARDS_PREFIX
from pipeline.media import files, heap, video
from pipeline.media.items import Item, MediaError
from pipeline.media.records import BuildSettings, make_item_records, problem_dict
from pipeline.runner import ProgressDoFn, WriteJsonLines
from tfrecords import schema

TARGET_SHARD_BYTES = 150 * 2 ** 20


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
    problems: tuple = ()   # part 0: the item's bad files (errors.jsonl rows), kept with it


def encoded(slot: int, item: Item, made, file_problems) -> list[Encoded]:
    """The records ``make_item_records`` made of the item in ``slot``, on their way to a
    shard; the item's bad files travel with its first record."""
    return [Encoded(item.split, slot, video_id, label, label_text, num_frames, record, part,
                    tuple(file_problems) if part == 0 else ())
            for part, (video_id, label, label_text, num_frames, record) in enumerate(made)]


def num_shards_for(count: int, num_bytes: int, requested: int) -> int:
    """Shards for a split: as requested, or ~TARGET_SHARD_BYTES each; 1..count."""
    if count <= 0:
        return 0
    n = requested if requested > 0 else math.ceil(num_bytes / TARGET_SHARD_BYTES)
    return max(1, min(n, count))


# --------------------------------------------------------------------------
# Beam transforms.
# --------------------------------------------------------------------------


class MakeRecords(ProgressDoFn):
    """Turns one listed item into record(s). An item that fails is one line of the bundle's
    log ``WORK/_failed/<id>.jsonl`` (its errors.jsonl row and its bad files), written as it
    happens; the bad files of an item that is written travel with its first record."""

    def __init__(self, settings: BuildSettings, progress_dir: str | None = None,
                 work_dir: str | None = None, threads: int = 0):
        super().__init__(progress_dir)
        self.settings = settings
        self.work_dir = work_dir
        self.threads = threads          # per worker process (video.set_threads); 0: defaults
        self._failed_log = None
        self.ok = Metrics.counter("actionflow", "items_written")
        self.records = Metrics.counter("actionflow", "records_written")
        self.failed = Metrics.counter("actionflow", "items_quarantined")
        self.bad_files = Metrics.counter("actionflow", "files_quarantined")
        self.frames = Metrics.counter("actionflow", "frames_written")
        self.decode_ms = Metrics.distribution("actionflow", "decode_ms_per_item")

    def setup(self):
        super().setup()
        heap.keep_frames_on_the_heap()      # Dask's workers: 1.32x the work without it
        if self.threads:
            video.set_threads(self.threads)

    def finish_bundle(self):
        if self._failed_log is not None:     # closed with its bundle: whole on every runner
            self._failed_log.close()
            self._failed_log = None

    def teardown(self):
        self.finish_bundle()
        super().teardown()

    def _log_failure(self, line: dict):
        if not self.work_dir:
            return
        if self._failed_log is None:
            path = partial.new_failed_log(self.work_dir)
            # Locally unbuffered: a worker killed mid-bundle has logged every line it wrote.
            self._failed_log = (files.create(path) if files.is_remote(path)
                                else _unbuffered(path))
        self._failed_log.write((json.dumps(line) + "\n").encode())

    def process(self, element):
        slot, item = element
        start = time.perf_counter()
        try:
            made, file_problems = self._make(item)
        except MediaError as e:
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
        self.bad_files.inc(len(file_problems))
        if failure:
            self.failed.inc()
            Metrics.counter("actionflow", f"quarantined_{failure[0]}").inc()
            self._log_failure({"split": item.split, "slot": slot,
                               "problem": problem_dict(item, "decode", *failure),
                               "file_problems": file_problems})
            return
        self.ok.inc()
        for r in encoded(slot, item, made, file_problems):
            self.records.inc()
            self.frames.inc(r.num_frames)
            yield r

    def _make(self, item: Item):
        """([(video_id, label, label_text, num_frames, record)], [file problem dicts])."""
        return make_item_records(item, self.settings)


def _unbuffered(path: str):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return open(path, "ab", buffering=0)


class WriteParts(beam.DoFn):
    """Appends each record to its bundle's part file for (split, shard); emits one row per part.

    Record bytes are written where they are made and never shuffled: only the
    small per-part rows travel to ``ConcatShards``. (A GroupByKey of the records
    themselves would, on the local runner, pass every byte through the driver.)
    A row lists each record's slot, part, offset and length; once a part is closed,
    ``<part>.json`` beside it says it is whole and what it holds (its row, its records'
    labels and frame counts, its items' bad files), for a build resumed after a stop.
    A local runner's bundle can hold half the dataset, so a part is also closed (and a
    new one begun) once it has been open for ``ROTATE_FRACTION`` of the bundle's time so
    far (at least ``ROTATE_MIN_S``) or holds ``ROTATE_BYTES``: a stop loses at most that
    share of the work, and a long bundle makes few parts.
    """

    ROTATE_MIN_S = 2.0
    ROTATE_FRACTION = 0.05
    ROTATE_BYTES = 256 * 2 ** 20

    def __init__(self, directory: str, shard_counts: dict[str, int]):
        self.directory = directory
        self.shard_counts = dict(shard_counts)

    def start_bundle(self):
        self._parts = {}    # (split, shard) -> _Part
        self._started = time.monotonic()

    def process(self, r: Encoded):
        key = (r.split, r.slot % self.shard_counts[r.split])
        part = self._parts.get(key)
        if part is None:
            path = FileSystems.join(self.directory, partial.PARTS_DIR,
                                    f"{key[0]}-{key[1]:05d}-{uuid.uuid4().hex}.part")
            part = self._parts[key] = _Part(FileSystems.create(path), path)
        framed = schema.frame_record(r.record)
        part.index.append([r.slot, r.part, part.size, len(framed)])
        part.records.append({"slot": r.slot, "part": r.part, "video_id": r.video_id,
                             "label": r.label, "label_text": r.label_text,
                             "num_frames": r.num_frames})
        part.problems.extend(r.problems)
        part.file.write(framed)
        part.size += len(framed)
        now = time.monotonic()
        if part.size >= self.ROTATE_BYTES or now - part.opened >= max(
                self.ROTATE_MIN_S, self.ROTATE_FRACTION * (now - self._started)):
            yield self._close(key, self._parts.pop(key))

    def finish_bundle(self):
        from apache_beam.transforms.window import GlobalWindows
        for key, part in self._parts.items():
            yield GlobalWindows.windowed_value(self._close(key, part))
        self._parts = {}

    @staticmethod
    def _close(key: tuple[str, int], part: "_Part"):
        """Closes a part and writes its ``.json``; returns its (key, row) for the shard."""
        part.file.close()
        row = {"path": part.path, "num_examples": len(part.index),
               "num_bytes": part.size, "index": part.index}
        info = partial.part_info_path(part.path)
        with FileSystems.create(info + ".tmp") as f:
            f.write(json.dumps({"split": key[0], "shard": key[1], "row": row,
                                "records": part.records,
                                "problems": part.problems}).encode())
        FileSystems.rename([info + ".tmp"], [info])
        return key, row


class _Part:
    """One open part file of a bundle."""

    def __init__(self, file, path: str):
        self.file, self.path = file, path
        self.opened = time.monotonic()
        self.size = 0
        self.index: list[list[int]] = []      # [slot, part, offset, length] per record
        self.records: list[dict] = []
        self.problems: list[dict] = []


class ConcatShards(beam.DoFn):
    """Writes one shard from its part files (TFRecord framing allows plain concatenation),
    its records in slot order whichever part and bundle they came from."""

    MAX_OPEN = 64

    def __init__(self, directory: str, shard_counts: dict[str, int]):
        self.directory = directory
        self.shard_counts = dict(shard_counts)

    def process(self, element):
        (split, index), parts = element
        parts = list(parts)
        order = sorted((slot, part_no, offset, length, row["path"])
                       for row in parts for slot, part_no, offset, length in row["index"])
        name = schema.shard_name(split, index, self.shard_counts[split])
        handles: dict[str, object] = {}
        try:
            with FileSystems.create(FileSystems.join(self.directory, name)) as out:
                for _, _, offset, length, path in order:
                    f = handles.get(path)
                    if f is None:
                        if len(handles) >= self.MAX_OPEN:
                            handles.pop(next(iter(handles))).close()
                        f = handles[path] = FileSystems.open(path)
                    f.seek(offset)
                    out.write(f.read(length))
        finally:
            for f in handles.values():
                f.close()
        paths = [row["path"] for row in parts]
        FileSystems.delete(paths)      # their .json stay for the driver's counts
        yield {"split": split, "name": name, "index": index, "num_examples": len(order),
               "num_bytes": sum(row["num_bytes"] for row in parts), "parts": paths}


def _item_files(listing_dir: str):
    """The files of listed items a build's ``_listing`` folder holds."""
    return files.match(files.join(listing_dir, "items-*.jsonl"))


def _read_items(path: str):
    """(slot, Item) of every line of one listing file."""
    for line in files.read_text(path).splitlines():
        row = json.loads(line)
        yield row["slot"], Item.from_json_dict(row["item"])


def _read_rows(path: str):
    """The JSON rows of one file (none when it is missing)."""
    if files.exists(path):
        yield from (json.loads(line) for line in files.read_text(path).splitlines() if line)


class ReadRows(beam.PTransform):
    """The JSON rows of one file of the build's ``_listing`` folder, read by a worker."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def expand(self, pbegin):
        return (pbegin
                | "Path" >> beam.Create([self.path], reshuffle=False)
                | "Read" >> beam.FlatMap(_read_rows))


class WriteSplits(beam.PTransform):
    """Writes every split's records into ``shard_counts[split]`` TFRecord shards.

    A record goes to shard ``slot % count``, and each shard holds its records in slot
    order: both depend only on the listing, not on the runner or the workers.
    ``finished_parts`` (a PCollection, when given) holds ((split, shard), row) of parts a
    stopped build finished, concatenated with the new ones. Emits one dict per written
    shard (a shard that got no record is not written).
    """

    def __init__(self, directory: str, shard_counts: dict[str, int], finished_parts=None):
        super().__init__()
        self.directory = directory
        self.shard_counts = dict(shard_counts)
        self.finished_parts = finished_parts

    def expand(self, records):
        parts = records | "WriteParts" >> beam.ParDo(WriteParts(self.directory,
                                                                self.shard_counts))
        if self.finished_parts is not None:
            parts = (parts, self.finished_parts) | "AllParts" >> beam.Flatten()
        return (parts
                | "GroupParts" >> beam.GroupByKey()
                | "ConcatShards" >> beam.ParDo(ConcatShards(self.directory, self.shard_counts)))


def _write_jsonl(pcoll, label: str, prefix: str):
    return pcoll | f"Write{label}" >> WriteJsonLines(prefix)


SIZING_BUDGET_S = 1.0
SIZING_NOTICE_S = 3.0     # sizing that has run this long says so (long videos)


def _sizing_process(threads: int) -> None:
    """A process that makes items for sizing: the driver stops the build (and ends it).
    It is forked with the stops held (``cli.stops_held``): none is lost or taken by the
    driver's handler before its own are set."""
    cli.stop_with_the_parent()
    heap.keep_frames_on_the_heap()
    video.set_threads(threads)


_SIZING: tuple = ()       # (settings, items) while sizing: forked processes read them here


def _first_that_works(job: tuple[int, int]):
    """From position ``start`` of the items being sized, every ``step``-th: (the position
    after the first item that makes records, that item's (slot, Item) and (records, file
    problems)), or (the end, None, None) when none does."""
    start, step = job
    settings, items = _SIZING
    maker = MakeRecords(settings)
    for position in range(start, len(items), step):
        slot, item = items[position]
        try:
            return position + step, (slot, item), maker._make(item)
        except Exception:  # a bad item says nothing about the size of good ones
            continue
    return len(items), None, None


def estimate_record_bytes(selected, settings: BuildSettings, sample: int = 3,
                          made: list | None = None,
                          budget_s: float = SIZING_BUDGET_S, processes: int = 1,
                          on_slow=None, notice_s: float = SIZING_NOTICE_S) -> float:
    """Mean serialised bytes per listed item, from encoding the first few items that work:
    ``sample`` of them, or fewer once ``budget_s`` has passed (long videos: the driver
    works while the workers have not started, and they share the rest). With
    ``processes`` > 1 that many forked processes make them, each from its own share of
    the items (every ``processes``-th), one item each per round (a build whose workers
    are local: the cores are free while the driver sizes, and a long video no longer
    keeps all but one of them idle). ``made``, when given, receives their records
    (``Encoded``), for them to be kept. ``on_slow()`` is called once when the items are
    still being made after ``notice_s`` (with one process: between items)."""
    global _SIZING
    sizes: list[int] = []
    started = time.monotonic()
    processes = max(1, min(processes, sample, len(selected)))
    _SIZING = (settings, selected)
    pool = None
    try:
        if processes > 1:
            import multiprocessing
            cores = os.cpu_count() or 1
            with cli.stops_held():
                pool = multiprocessing.get_context("fork").Pool(
                    processes, _sizing_process, (max(1, cores // processes),))
        positions = list(range(processes))      # where each share goes on
        while len(sizes) < sample and not (sizes and time.monotonic() - started > budget_s):
            shares = [k for k in range(processes) if positions[k] < len(selected)]
            shares = shares[:sample - len(sizes)]
            if not shares:
                break
            jobs = [(positions[k], processes) for k in shares]
            if pool is None:
                found = [_first_that_works(job) for job in jobs]
            else:
                pending = pool.map_async(_first_that_works, jobs, chunksize=1)
                if on_slow:
                    pending.wait(max(0.0, started + notice_s - time.monotonic()))
                    if not pending.ready():
                        on_slow()
                        on_slow = None
                found = pending.get()
            if on_slow and time.monotonic() - started > notice_s:
                on_slow()
                on_slow = None
            for k, (position, pair, outcome) in zip(shares, found):
                positions[k] = position
                if pair is None:
                    continue
                records, file_problems = outcome
                sizes.append(sum(len(m[-1]) + 16 for m in records))
                if made is not None:
                    made.extend(encoded(*pair, records, file_problems))
    finally:
        _SIZING = ()
        if pool is not None:
            pool.terminate()
            pool.join()
    return sum(sizes) / len(sizes) if sizes else 0.0


def shard_counts_for(selected, settings: BuildSettings, requested: int,
                     made: list | None = None, processes: int = 1,
                     on_slow=None) -> dict[str, int]:
    """Shards per split: ``requested`` (capped at the split's items), else ~TARGET_SHARD_BYTES
    each, from the items ``estimate_record_bytes`` encodes (their records into ``made``;
    ``processes`` at a time; ``on_slow``: see there)."""
    per_split: dict[str, int] = {}
    for _, item in selected:
        per_split[item.split] = per_split.get(item.split, 0) + 1
    # A split of one item has one shard whatever its size: no item need be decoded here.
    sized = requested <= 0 and any(n > 1 for n in per_split.values())
    per_item = (estimate_record_bytes(selected, settings, made=made, processes=processes,
                                      on_slow=on_slow) if sized else 0.0)
    return {split: num_shards_for(n, int(per_item * n), requested)
            for split, n in per_split.items()}


def write_parts(directory: str, records, shard_counts: dict[str, int]) -> None:
    """Writes ``records`` (``Encoded``) into part files of ``directory`` as the workers'
    ``WriteParts`` does, each closed with its ``.json``: what a stopped build finished, for
    ``partial.scan`` to find."""
    writer = WriteParts(directory, shard_counts)
    writer.start_bundle()
    for r in records:
        for _ in writer.process(r):      # a part closed early is written already
            pass
    for _ in writer.finish_bundle():
        pass


def build_graph(p, listing_dir: str, settings: BuildSettings, work_dir: str,
                shard_counts: dict[str, int], progress_dir: str | None, threads: int = 0):
    """Adds the build to pipeline ``p``: the items and a stopped build's finished parts come
    from the files in ``listing_dir`` (``partial.write_listing``); part files, their
    ``.json``, failed items' logs and the shard list land in ``work_dir``, from which the
    driver counts and writes the rest (``pipeline.finalise``). ``threads``: what each
    worker process gives its decoder and OpenCV (``video.set_threads``; 0: defaults)."""
    records = (p
               | "Listing" >> beam.Create([listing_dir], reshuffle=False)
               | "ItemFiles" >> beam.FlatMap(_item_files)
               | "SpreadFiles" >> beam.Reshuffle()
               | "ReadItems" >> beam.FlatMap(_read_items)
               | "MakeRecords" >> beam.ParDo(MakeRecords(settings, progress_dir, work_dir,
                                                              threads)))
    finished_parts = (p | "FinishedParts" >> ReadRows(files.join(listing_dir, "parts.jsonl"))
                      | "KeyParts" >> beam.Map(lambda r: ((r[0], r[1]), r[2])))
    shards = records | "WriteSplits" >> WriteSplits(work_dir, shard_counts, finished_parts)
    _write_jsonl(shards, "ShardList", FileSystems.join(work_dir, SHARDS_PREFIX))
