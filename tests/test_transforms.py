"""The build's PTransforms in memory (TestPipeline + assert_that) and its small helpers."""
from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys

import apache_beam as beam
import cv2
import numpy as np
import pytest
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline import build, partial, runner, transforms
from pipeline.media.encode import FrameSpec
from pipeline.media.items import Item
from pipeline.media.records import BuildSettings
from pipeline.media.sampling import SamplingSpec
from pipeline.sources.base import stable_fraction
from tfrecords import schema


def _pipeline():
    return test_pipeline.TestPipeline(runner="FnApiRunner")


def _encoded(split, slot, label_text="a", label=0, frames=2, record=b"r"):
    return transforms.Encoded(split, slot, f"{label_text}/{split}{slot}.avi", label, label_text,
                              frames, record)


def test_finalise_counts_from_the_parts_and_the_failed_items(tmp_path):
    """Counts per split and class come from the parts' .json, errors from the listing, the
    parts and the failed items' logs (a retried bundle's repeated line counted once)."""
    from pipeline import finalise
    parts = tmp_path / partial.PARTS_DIR
    parts.mkdir()
    records = [{"slot": 0, "part": 0, "label": 0, "label_text": "a", "num_frames": 2},
               {"slot": 1, "part": 0, "label": 0, "label_text": "a", "num_frames": 3},
               {"slot": 3, "part": 0, "label": 1, "label_text": "b", "num_frames": 1},
               {"slot": 3, "part": 1, "label": 1, "label_text": "b", "num_frames": 5}]
    bad_frame = {"path": "/d/b/3/frame.json", "video_id": "b/3", "split": "train",
                 "stage": "file", "reason": "malformed_json", "detail": "x"}
    (parts / "p1.part.json").write_text(json.dumps(
        {"split": "train", "shard": 0, "records": records, "problems": [bad_frame]}))
    (parts / "p2.part.json").write_text(json.dumps({"split": "test", "shard": 0, "records": [
        {"slot": 0, "part": 0, "label": -1, "label_text": "", "num_frames": 4}]}))
    (tmp_path / "_shards-all.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [
        {"split": "train", "name": "train.tfrecord-00000-of-00001", "index": 0,
         "num_examples": 4, "num_bytes": 100, "parts": [str(parts / "p1.part")]},
        {"split": "test", "name": "test.tfrecord-00000-of-00002", "index": 0,
         "num_examples": 1, "num_bytes": 10, "parts": [str(parts / "p2.part")]}]))
    failed = tmp_path / partial.FAILED_DIR
    failed.mkdir()
    missing = {"path": "/d/a/2.avi", "video_id": "a/2.avi", "split": "train",
               "stage": "decode", "reason": "missing_file", "detail": "gone"}
    line = json.dumps({"split": "train", "slot": 2, "problem": missing, "file_problems": []})
    (failed / "one.jsonl").write_text(line + "\n" + line + "\n" + '{"split": "tr')  # cut short
    listing_problem = {"path": "/d/x", "stage": "list", "reason": "unknown_class",
                       "detail": "y", "split": "test", "video_id": ""}
    summary = finalise.ListingSummary(
        classes=["a", "b"], splits=("train", "test"), problems=[listing_problem], unused={},
        modality="video", class_groups=None, listed={"train": 4, "test": 2},
        listing_sha256="0")
    settings = BuildSettings(SamplingSpec("uniform", num_frames=4), FrameSpec())
    info, tally = finalise.finalise(str(tmp_path), summary, settings, {"train": 1, "test": 2},
                                    dataset="folder", config_name="t", data_dir="/d", flags={},
                                    beam_args=[], runner="FnApiRunner")
    train, test = info["splits"]["train"], info["splits"]["test"]
    assert (train["listed"], train["num_items"], train["num_examples"], train["num_frames"],
            train["per_class"], train["quarantined"], train["quarantined_files"]) == (
        4, 3, 4, 11, {"a": 2, "b": 2}, 1, 1)
    assert (test["listed"], test["num_items"], test["unlabelled"], test["quarantined"],
            test["shards"]) == (2, 1, 1, 1, ["test.tfrecord-00000-of-00002",
                                             "test.tfrecord-00001-of-00002"])
    assert (tmp_path / "test.tfrecord-00001-of-00002").read_bytes() == b""   # empty, complete
    assert (tally.items, tally.files) == (2, 1)
    assert info["errors_by_reason"] == {"malformed_json": 1, "missing_file": 1,
                                        "unknown_class": 1}
    rows = [json.loads(x) for x in (tmp_path / schema.ERRORS_FILE).read_text().splitlines()]
    assert [(r["split"], r["path"]) for r in rows] == [("test", "/d/x"), ("train", "/d/a/2.avi"),
                                                       ("train", "/d/b/3/frame.json")]
    assert not parts.exists() and not failed.exists()


def test_write_splits_shards_by_slot_without_shuffling_records(tmp_path):
    records = [_encoded("train", s, record=f"train-{s}".encode()) for s in range(5)]
    records += [_encoded("val", 0, record=b"val-0")]
    with _pipeline() as p:
        out = (p | beam.Create(list(reversed(records)))
               | transforms.WriteSplits(str(tmp_path), {"train": 2, "val": 1})
               | beam.Map(lambda r: {k: v for k, v in r.items() if k != "parts"}))
        framed = lambda payloads: sum(len(schema.frame_record(x)) for x in payloads)  # noqa
        assert_that(out, equal_to([
            {"split": "train", "name": "train.tfrecord-00000-of-00002", "index": 0,
             "num_examples": 3, "num_bytes": framed([b"train-0", b"train-2", b"train-4"])},
            {"split": "train", "name": "train.tfrecord-00001-of-00002", "index": 1,
             "num_examples": 2, "num_bytes": framed([b"train-1", b"train-3"])},
            {"split": "val", "name": "val.tfrecord-00000-of-00001", "index": 0,
             "num_examples": 1, "num_bytes": framed([b"val-0"])},
        ]))
    import tensorflow as tf
    got = [r.numpy() for r in tf.data.TFRecordDataset(
        str(tmp_path / "train.tfrecord-00000-of-00002"))]
    assert got == [b"train-0", b"train-2", b"train-4"]              # in slot order
    # the parts were merged; their .json stay for the driver's counts
    assert all(p.name.endswith(".part.json") for p in (tmp_path / partial.PARTS_DIR).iterdir())


def test_shard_counts_from_a_sample_of_encoded_items(tmp_path, small_video):
    settings = BuildSettings(SamplingSpec("uniform", num_frames=4),
                                        FrameSpec(size=(16, 16), image_format="raw"))
    items = [(i, Item(str(small_video), f"c/{i}.avi", "train" if i < 6 else "test", 0, "c"))
             for i in range(8)]
    record = schema.encode_clip([b"\0" * 16 * 16 * 3] * 4, label=0, label_text="c",
                                video_id="c/0.avi", image_format="raw", height=16, width=16)
    assert transforms.estimate_record_bytes(items, settings) == pytest.approx(
        len(record) + 16, abs=64)
    assert transforms.shard_counts_for(items, settings, 0) == {"train": 1, "test": 1}
    assert transforms.shard_counts_for(items, settings, 4) == {"train": 4, "test": 2}
    bad = [(0, Item(str(tmp_path / "missing.avi"), "c/m.avi", "train", 0, "c"))]
    assert transforms.estimate_record_bytes(bad, settings) == 0.0


def test_splits_of_one_item_get_one_shard_without_a_decode(monkeypatch):
    def no_decode(*args, **kwargs):
        raise AssertionError("an item was decoded to size shards")
    monkeypatch.setattr(transforms, "estimate_record_bytes", no_decode)
    settings = BuildSettings(SamplingSpec(), FrameSpec())
    one_each = [(0, Item("a.avi", "c/a.avi", "train", 0, "c")),
                (0, Item("b.avi", "c/b.avi", "test", 0, "c"))]
    assert transforms.shard_counts_for(one_each, settings, 0) == {"train": 1, "test": 1}
    with pytest.raises(AssertionError, match="decoded"):      # two in a split: sized
        transforms.shard_counts_for(one_each + [(1, one_each[0][1])], settings, 0)


@pytest.fixture()
def small_video(tmp_path) -> pathlib.Path:
    path = tmp_path / "v.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 24))
    for i in range(12):
        w.write(np.full((24, 32, 3), 10 * i, np.uint8))
    w.release()
    return path


def test_make_records_writes_good_items_and_logs_bad_ones(small_video, tmp_path):
    settings = BuildSettings(SamplingSpec("uniform", num_frames=4),
                             FrameSpec(size=(16, 16), image_format="png"))
    good = Item(str(small_video), "c/v.avi", "train", 1, "c")
    missing = Item(str(tmp_path / "nope.avi"), "c/nope.avi", "test", 1, "c")
    (tmp_path / "progress").mkdir()
    with _pipeline() as p:
        out = (p | beam.Create([(7, good), (0, missing)])
               | beam.ParDo(transforms.MakeRecords(settings, str(tmp_path / "progress"),
                                                   str(tmp_path))))
        summary = out | beam.Map(lambda r: (r.split, r.slot, r.video_id, r.label, r.num_frames,
                                            schema_indices(r.record)))
        assert_that(summary, equal_to([("train", 7, "c/v.avi", 1, 4, [0, 4, 7, 11])]))
    (log,) = (tmp_path / partial.FAILED_DIR).iterdir()
    assert [json.loads(x) for x in log.read_text().splitlines()] == [{
        "split": "test", "slot": 0, "file_problems": [], "problem": {
            "path": str(tmp_path / "nope.avi"), "video_id": "c/nope.avi", "split": "test",
            "stage": "decode", "reason": "missing_file", "detail": "the file does not exist"}}]
    # one progress byte per processed item, whatever the outcome
    assert sum(f.stat().st_size for f in (tmp_path / "progress").iterdir()) == 2


def schema_indices(record: bytes) -> list[int]:
    parsed = schema.parse_clip(record)
    return parsed["source_indices"].numpy().tolist()


@pytest.mark.parametrize("count, num_bytes, requested, expected", [
    (0, 0, 0, 0),
    (10, 1, 0, 1),
    (10, transforms.TARGET_SHARD_BYTES * 3 + 1, 0, 4),
    (2, transforms.TARGET_SHARD_BYTES * 30, 0, 2),
    (10, 1, 4, 4),
    (3, 1, 16, 3),
])
def test_num_shards_for(count, num_bytes, requested, expected):
    assert transforms.num_shards_for(count, num_bytes, requested) == expected


def test_select_items_is_stable_hash_ordered_and_capped():
    items = [Item(f"/d/{i}.avi", f"c/{i}.avi", "train" if i % 3 else "test", 0, "c")
             for i in range(12)]
    selected = build.select_items(list(reversed(items)), max_per_split=3)
    for split in ("train", "test"):
        mine = [it for _, it in selected if it.split == split]
        expected = sorted((it for it in items if it.split == split),
                          key=lambda it: stable_fraction(it.video_id))[:3]
        assert mine == expected
        assert [slot for slot, it in selected if it.split == split] == [0, 1, 2]
    assert build.select_items(items, None) == build.select_items(list(reversed(items)), None)


@pytest.mark.parametrize("sampling, frame, dataset, expected", [
    (SamplingSpec("uniform", num_frames=16), FrameSpec(resize_shorter=128),
     "ucf101", "split1_uniform16_short128_jpeg90"),
    (SamplingSpec("all", fps=10), FrameSpec(crop="center_square", size=(112, 112),
                                                        image_format="png"),
     "folder", "all10fps_square_112x112_png"),
    (SamplingSpec("stride", stride=2, num_frames=8), FrameSpec(image_format="raw"),
     "hmdb51", "split1_stride2x8_raw"),
    (SamplingSpec("indices", indices=(3, 6, 9)), FrameSpec(jpeg_quality=75),
     "folder", "indices3_jpeg75"),
])
def test_default_config_name(sampling, frame, dataset, expected):
    settings = BuildSettings(sampling, frame)
    assert build.default_config_name(settings, dataset, 1) == expected


def test_finalise_writes_the_dataset_facts_of_the_listing(tmp_path):
    from pipeline import finalise
    from pipeline.sources.base import Listing
    settings = BuildSettings(SamplingSpec("uniform", num_frames=4), FrameSpec())
    groups = {"Sports": ["Basketball"], "Body-Motion Only": ["HandstandPushups"]}
    listing = Listing(classes=["Basketball", "HandstandPushups"], items=[],
                      class_groups=groups)
    kwargs = dict(config_name="t", data_dir="d", flags={}, beam_args=[], runner="FnApiRunner")
    info, tally = finalise.finalise(str(tmp_path), finalise.summarise(listing, []), settings,
                                    {}, dataset="ucf101", **kwargs)
    assert info["class_groups"] == groups and (tally.items, tally.files) == (0, 0)
    written = schema.read_dataset_info(str(tmp_path))
    assert written["class_groups"] == groups
    listing.class_groups = None
    info, _ = finalise.finalise(str(tmp_path), finalise.summarise(listing, []), settings, {},
                                dataset="folder", **kwargs)
    assert "class_groups" not in info


def test_type_inference_is_off_unless_asked_for():
    """Graph type inference is skipped (start-up); a user's own flag still wins."""
    from apache_beam.options.pipeline_options import TypeOptions
    assert runner.pipeline_options([]).view_as(TypeOptions).pipeline_type_check is False
    asked = runner.pipeline_options(["--pipeline_type_check"])
    assert asked.view_as(TypeOptions).pipeline_type_check is True


@pytest.mark.parametrize("args,cores,want", [
    ([], 2, 1),                                         # a worker per core: one thread each
    (["--direct_num_workers=2"], 8, 4),
    (["--direct_num_workers=3"], 8, 2),
    (["--direct_num_workers=16"], 8, 1),
    (["--direct_num_workers=1"], 4, 4),
    (["--direct_running_mode=in_memory"], 8, 0),        # the driver alone: defaults
    (["--runner=DaskRunner"], 8, 1),                    # its local cluster: a worker per core
    (["--runner=DaskRunner", "--dask_client_address=h:1"], 8, 0),   # a cluster's: defaults
    (["--runner=PortableRunner", "--job_endpoint=h:1"], 8, 0),
])
def test_threads_per_worker_share_the_cores(monkeypatch, args, cores, want):
    monkeypatch.setattr(runner.os, "cpu_count", lambda: cores)
    options = runner.pipeline_options(args)
    assert runner.threads_per_worker(options, runner.make_runner(options)) == want


def test_make_records_gives_its_threads_to_the_libraries():
    """The worker's DoFn sets the decoder's and OpenCV's threads once, in setup."""
    from pipeline.media import video
    settings = BuildSettings(SamplingSpec(), FrameSpec())
    try:
        fn = transforms.MakeRecords(settings, threads=1)
        fn.setup()
        assert (cv2.getNumThreads(), video._threads) == (1, 1)
        video.set_threads(0)
        transforms.MakeRecords(settings).setup()        # 0: left as they are
        assert video._threads == 0 and cv2.getNumThreads() == cv2.getNumberOfCPUs()
    finally:
        video.set_threads(0)


class _Result:
    """A runner's result as cancel_job sees it."""

    def __init__(self, state, cancel=None):
        self.state, self._cancel, self.cancelled = state, cancel, False

    def cancel(self):
        if self._cancel:
            raise self._cancel
        self.cancelled = True


def test_cancel_job_says_what_became_of_a_stopped_job():
    from apache_beam.runners.runner import PipelineState
    running = _Result(PipelineState.RUNNING)
    assert runner.cancel_job(running) == "its job on the runner was cancelled"
    assert running.cancelled
    done = _Result(PipelineState.DONE)
    assert runner.cancel_job(done) == "" and not done.cancelled      # nothing to cancel
    assert runner.cancel_job(_Result(PipelineState.CANCELLED)) == \
        "its job on the runner was cancelled"                        # cancelled on its way out
    assert "cannot cancel" in runner.cancel_job(
        _Result(PipelineState.RUNNING, NotImplementedError()))
    assert "cancelling its job failed (ConnectionError: gone)" in runner.cancel_job(
        _Result(PipelineState.RUNNING, ConnectionError("gone")))


def test_sizing_stops_at_its_time_budget(small_video, monkeypatch):
    """Past the budget the driver sizes from the items encoded so far (at least one), and
    every item it encoded comes back to be kept."""
    settings = BuildSettings(SamplingSpec("uniform", num_frames=4), FrameSpec(size=(16, 16)))
    items = [(i, Item(str(small_video), f"c/{i}.avi", "train", 0, "c")) for i in range(5)]
    made: list = []
    assert transforms.estimate_record_bytes(items, settings, made=made, budget_s=0.0) > 0
    assert [r.slot for r in made] == [0]
    made.clear()
    transforms.estimate_record_bytes(items, settings, made=made, budget_s=60.0)
    assert [r.slot for r in made] == [0, 1, 2]


def test_sizing_makes_its_items_in_as_many_processes_as_the_run_has_workers(small_video,
                                                                            monkeypatch):
    """With local workers to come, the driver makes the sizing items that many at a time
    in forked processes, each from its own share of the items (a long video no longer
    leaves the other cores idle): the same records, a bad item passed over within its
    share, the time budget checked between rounds."""
    settings = BuildSettings(SamplingSpec("uniform", num_frames=4), FrameSpec(size=(16, 16)))
    items = [(i, Item(str(small_video), f"c/{i}.avi", "train", 0, "c")) for i in range(5)]
    items.insert(1, (9, Item("/no/such/video.avi", "c/9.avi", "train", 0, "c")))
    serial: list = []
    size = transforms.estimate_record_bytes(items, settings, made=serial)
    parallel: list = []
    assert transforms.estimate_record_bytes(items, settings, made=parallel,
                                            processes=2) == size
    assert [r.slot for r in serial] == [0, 1, 2]
    assert [r.slot for r in parallel] == [0, 2, 1]          # shares: slots 0, 1, 3 | 9, 2, 4
    assert sorted(parallel) == sorted(serial)
    real = transforms.make_item_records

    def where(item, s):           # the records, named by the process that made them
        made, problems = real(item, s)
        return [(str(os.getpid()), *m[1:]) for m in made], problems

    monkeypatch.setattr(transforms, "make_item_records", where)
    made: list = []
    transforms.estimate_record_bytes(items, settings, made=made, processes=2)
    pids = [r.video_id for r in made]
    assert len(pids) == 3 and str(os.getpid()) not in pids     # made in forked processes
    made.clear()                  # past the budget: one round, an item from each share
    transforms.estimate_record_bytes(items, settings, made=made, processes=2, budget_s=0.0)
    assert [r.slot for r in made] == [0, 2]
    bad = [(i, Item(f"/no/such/{i}.avi", f"c/{i}.avi", "train", 0, "c")) for i in range(50)]
    assert transforms.estimate_record_bytes(bad, settings, processes=2) == 0.0


def test_sizing_processes_start_with_the_stops_held_back(small_video, tmp_path, monkeypatch):
    """The driver ends its sizing processes with SIGTERM, possibly while one is still
    starting: a stop that reached a child before its own handlers were set was lost there
    (the child then waited for work and the driver for it, for good) or ran the driver's
    handler. The stops are held back from the fork to the child's own handlers; the
    driver's mask is as it was."""
    settings = BuildSettings(SamplingSpec("uniform", num_frames=4), FrameSpec(size=(16, 16)))
    items = [(i, Item(str(small_video), f"c/{i}.avi", "train", 0, "c")) for i in range(4)]
    real = transforms._sizing_process
    notes_dir = tmp_path / "notes"
    notes_dir.mkdir()

    def noting(threads):
        at_start = signal.pthread_sigmask(signal.SIG_BLOCK, [])
        real(threads)
        after = signal.pthread_sigmask(signal.SIG_BLOCK, [])
        (notes_dir / str(os.getpid())).write_text(json.dumps([sorted(map(int, at_start)),
                                                           sorted(map(int, after))]))

    monkeypatch.setattr(transforms, "_sizing_process", noting)
    before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    transforms.estimate_record_bytes(items, settings, processes=2)
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == before
    stops = {int(signal.SIGINT), int(signal.SIGTERM)}
    notes = [json.loads(p.read_text()) for p in notes_dir.iterdir()]
    assert len(notes) == 2
    for at_start, after in notes:
        assert stops <= set(at_start) and not stops & set(after), notes


@pytest.mark.parametrize("processes", [1, 2])
def test_sizing_that_runs_long_says_so_once(small_video, processes):
    """Sizing still at work after ``notice_s`` calls ``on_slow`` once (the build prints a
    line: long videos keep it at work for minutes); quick sizing calls nothing."""
    settings = BuildSettings(SamplingSpec("uniform", num_frames=4), FrameSpec(size=(16, 16)))
    items = [(i, Item(str(small_video), f"c/{i}.avi", "train", 0, "c")) for i in range(5)]
    calls: list = []
    transforms.estimate_record_bytes(items, settings, processes=processes,
                                     on_slow=lambda: calls.append(1), notice_s=0.0)
    assert calls == [1]
    transforms.estimate_record_bytes(items, settings, processes=processes,
                                     on_slow=lambda: calls.append(2), notice_s=3600.0)
    assert calls == [1]


@pytest.mark.parametrize("mode", ["in_memory", "multi_processing"])
def test_bundles_sample_their_state_often_so_they_end_at_once(tmp_path, mode):
    """Beam's 200 ms sampling period held up the end of every long bundle by up to 200 ms:
    the local runner's bundles, in the driver or in its workers, sample every 10 ms."""
    from pipeline import worker
    folder = str(tmp_path)

    def report(element):        # a nested function: pickled whole, for the workers
        import os
        from apache_beam.runners.worker import statesampler
        with open(os.path.join(folder, f"{os.getpid()}.txt"), "w") as f:
            f.write(str(statesampler.get_current_tracker().sampling_period_ms))
        return element

    options = runner.pipeline_options([f"--direct_running_mode={mode}",
                                       "--direct_num_workers=2"])
    with beam.Pipeline(runner=runner.make_runner(options), options=options) as p:
        _ = p | beam.Create(range(4)) | beam.Map(report)
    seen = {path.stem: path.read_text() for path in tmp_path.glob("*.txt")}
    assert seen and set(seen.values()) == {str(worker.STATE_SAMPLING_MS)}
    assert (str(os.getpid()) in seen) == (mode == "in_memory")     # where the bundles ran


# Page faults of allocating and freeing 1 MiB buffers (frames), before and after a
# MakeRecords DoFn's setup, in a process started as Dask's nanny starts its workers.
HEAP_PROBE = r"""
import resource
import numpy as np
from pipeline import transforms
from pipeline.media.encode import FrameSpec
from pipeline.media.records import BuildSettings
from pipeline.media.sampling import SamplingSpec

def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(50):
        frame = np.ones(1 << 20, np.uint8)
        del frame
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

first = faults()
transforms.MakeRecords(BuildSettings(SamplingSpec(), FrameSpec())).setup()
print(first, faults())
"""


def test_workers_keep_frame_buffers_on_the_heap():
    """Under MALLOC_TRIM_THRESHOLD_ (Dask's workers run with 64 KiB) every frame buffer was
    fresh pages from the kernel, a page fault per 4 KiB: the build's DoFn sets glibc's
    thresholds so that freed frames are reused."""
    out = subprocess.run([sys.executable, "-c", HEAP_PROBE], capture_output=True, text=True,
                         timeout=120, cwd=pathlib.Path(__file__).resolve().parents[1],
                         env=dict(os.environ, MALLOC_TRIM_THRESHOLD_="65536"))
    assert out.returncode == 0, out.stderr[-2000:]
    before, after = map(int, out.stdout.split())
    assert before >= 50 * 200            # 256 pages a buffer, nearly every time
    assert after < before / 20
