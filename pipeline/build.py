r"""Builds sharded TFRecords from a video dataset with Apache Beam.

    python -m pipeline.build --dataset ucf101 --data_dir D --output_dir O \
        [--sampling uniform --num_frames 16] [--resize_shorter 128] [...] \
        [any Beam option: --runner DataflowRunner --project P --region R --temp_location gs://...]

The graph (the same on every runner):

    ListedItems ─► Reshuffle ─► MakeRecords ─┬─ ok ─► AssignShards ─► GroupByKey ─► WriteShards ─► shard list
                                             │        └─► Stats (counts per split/class)
                                             └─ failed ─┐
    ListingProblems ───────────────────────────────────┴─► Errors

Listing runs on the driver; everything after ``Reshuffle`` spreads over the
workers. The driver then writes ``dataset_info.json`` and ``errors.jsonl``
into a temporary directory and commits it by rename, so a killed build never
leaves a half-written output behind.

Flags are ours; every flag we do not define is handed to Beam's
``PipelineOptions`` unchanged. Without ``--runner`` the build runs locally on
all cores (Beam's FnApiRunner, the DirectRunner's batch engine, in
multi-process mode).
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
import sys
import tempfile
import threading
import time
import uuid

import apache_beam as beam
from absl import app, flags
from apache_beam.io.filesystems import FileSystems

from pipeline import cli, sources, video
from pipeline.transforms import PARTS_DIR, BuildSettings, build_graph, shard_counts_for
from pipeline.sources import base as sources_base
from tfrecords import schema

FLAGS = flags.FLAGS

DATASETS = tuple(sources.available())
DATA_DIR_ENV = "ACTIONFLOW_DATA_DIR"
FRAME_FOLDER_DATASETS = ("gestures", "jester")
FILE_STAGE = "file"      # errors.jsonl stage of a bad file inside an item that was still written
DEFAULT_DATA_ROOT = os.path.join("~", "actionflow_data")
BEAM_EPILOG = ("Any other --flag is passed to Beam's PipelineOptions unchanged (e.g. --runner, "
               "--direct_num_workers, --project, --region, --temp_location).")
LOCAL_RUNNERS = ("DirectRunner", "FnApiRunner", "SwitchingDirectRunner", "BundleBasedDirectRunner")

flags.DEFINE_enum("dataset", None, DATASETS,
                  "Which source layout to read: videos (ucf101, hmdb51, folder), frame folders "
                  "(gestures, jester), images, or OpenPose keypoints (openpose).")
flags.DEFINE_string(
    "data_dir", None,
    f"Root of the source dataset (local, gs:// or s3://). Default: ${DATA_DIR_ENV}/<dataset>, "
    f"else {DEFAULT_DATA_ROOT}/<dataset>.")
flags.DEFINE_string("output_dir", None,
                    "Where to write; the build lands in OUTPUT_DIR/DATASET/CONFIG_NAME/.")
flags.DEFINE_string("config_name", None,
                    "Name of this build's folder. Default: derived from the sampling, "
                    "crop, size and format flags, e.g. split1_uniform16_short128_jpeg90.")
flags.DEFINE_integer("split_id", 1, "Official split to use (ucf101, hmdb51: 1..3).")
flags.DEFINE_float("val_fraction", 0.0,
                   "folder: fraction of videos for 'val', by a stable hash of the path.")
flags.DEFINE_float("test_fraction", 0.0,
                   "folder: fraction of videos for 'test', by a stable hash of the path.")
flags.DEFINE_enum("sampling", "all", video.SAMPLING_MODES,
                  "Frames to keep: all (optionally --fps), uniform (K evenly spaced incl. first "
                  "and last), stride (every --stride-th; with --num_frames the centred K), "
                  "segments (TSN: centre frame of K equal segments), indices (--indices).")
flags.DEFINE_integer("num_frames", None, "K, frames per clip, for uniform/segments/stride.")
flags.DEFINE_integer("stride", 1, "Step between kept frames for --sampling stride.")
flags.DEFINE_float("fps", None, "--sampling all: resample to this frame rate by timestamp.")
flags.DEFINE_list("indices", None,
                  "--sampling indices: 0-based frame numbers, e.g. 3,6,9,11,13,15,17,19,21,24,27.")
flags.DEFINE_enum("short", "loop", video.SHORT_POLICIES,
                  "Videos with fewer frames than the sampling needs: loop them, repeat the "
                  "last frame, or skip (quarantine) them. Recorded per clip.")
flags.DEFINE_enum("crop", "none", video.CROPS, "Crop before resizing.")
flags.DEFINE_integer("resize_shorter", None, "Resize so the shorter side is N (keeps aspect).")
flags.DEFINE_string("size", None, "Resize to exactly WxH, e.g. 112x112.")
flags.DEFINE_enum("image_format", "jpeg", video.IMAGE_FORMATS,
                  "How frames are stored: jpeg (small), png (lossless), raw (uint8, fastest "
                  "to read, largest).")
flags.DEFINE_integer("jpeg_quality", 90, "JPEG quality 1..100.")
flags.DEFINE_integer("num_shards", 0,
                     "Shards per split; 0 sizes them for ~150 MB each. Never more than the "
                     "split's examples.")
flags.DEFINE_integer("max_examples_per_split", None,
                     "Keep at most N listed videos per split (a stable hash-ordered subset), "
                     "for quick runs.")
flags.DEFINE_boolean("overwrite", False, "Replace an existing build with the same name.")
flags.DEFINE_float("max_failure_ratio", 0.01,
                   "Fail the build (exit 1, nothing committed) when more than this fraction of "
                   "listed videos is quarantined.")
flags.DEFINE_float("truncation_tolerance", 0.05,
                   "Quarantine a video as truncated when it decodes to fewer frames than its "
                   "container declares by more than this fraction; 1 accepts any shortfall.")
flags.DEFINE_float("source_fps", 0.0,
                   "Frame rate of frame folders and OpenPose sequences when no video says "
                   "otherwise (0 = unknown); sets timestamps and per-frame labels.")
# images
flags.DEFINE_integer("max_per_class", None,
                     "images: keep at most N per class (stable hash order); the rest are counted "
                     "as unused.")
flags.DEFINE_integer("min_per_class", None,
                     "images: drop classes with fewer than N labelled images (counted as unused).")
# openpose
flags.DEFINE_string("label_csv", None,
                    "openpose: CSV with one row per video giving its label (see --id_column, "
                    "--label_column, --id_template).")
flags.DEFINE_string("label_column", "label", "openpose: the --label_csv column holding the label.")
flags.DEFINE_string("id_column", "video", "openpose: the --label_csv column identifying the video.")
flags.DEFINE_string("id_template", "{id}",
                    "openpose: video name from the id column, e.g. 'Kick_{id}'.")
flags.DEFINE_string("segments_csv", None,
                    "openpose: CSV rows video,start_s,end_s,label giving per-frame labels "
                    "(frame/label/index) at the video's frame rate.")
flags.DEFINE_string("background_label", "none",
                    "openpose: per-frame label of frames outside every --segments_csv segment.")
flags.DEFINE_enum("person_policy", "confidence", ["confidence", "largest", "track"],
                  "openpose: which people to keep per frame: highest mean confidence, largest "
                  "box, or the same person across frames by nearest centre.")
flags.DEFINE_integer("max_people", 1, "openpose: people kept per frame (missing ones are zeros "
                                      "with mask 0).")
flags.DEFINE_list("keypoints", [],
                  "openpose: subset of points by name or group (e.g. upper_body); default all.")
flags.DEFINE_enum("coords", "xyc", ["xy", "xyc"],
                  "openpose: store x,y or x,y,confidence per point.")
flags.DEFINE_string("frame_size", None,
                    "openpose: WxH of the source frames, to normalise coordinates to [0, 1].")
flags.DEFINE_string("video_dir", None,
                    "openpose: folder of the matching videos; their size normalises coordinates "
                    "and their frame rate times the frames.")
flags.DEFINE_integer("window", None,
                     "openpose: cut each sequence into windows of N frames (one record each).")
flags.DEFINE_integer("window_stride", None, "openpose: step between window starts (default "
                                            "--window).")
flags.DEFINE_boolean("progress", True,
                     "Show done/total, rate and ETA while a local build runs.")
flags.DEFINE_enum("beam_log_level", "error", ["debug", "info", "warning", "error"],
                  "Log level for Beam's own messages.")


class UserError(Exception):
    """A mistake in the command line or the data: printed without a traceback, exit 2."""


# --------------------------------------------------------------------------
# Settings from flags.
# --------------------------------------------------------------------------
def _parse_size(text: str | None, flag: str = "--size") -> tuple[int, int] | None:
    try:
        return video.parse_size(text, flag)
    except ValueError as e:
        raise UserError(str(e)) from None


def settings_from_flags() -> BuildSettings:
    """Validates our flags into worker settings."""
    try:
        indices = tuple(int(v) for v in FLAGS.indices) if FLAGS.indices else ()
    except ValueError:
        raise UserError(f"--indices must be integers, got {','.join(FLAGS.indices)}") from None
    try:
        sampling = video.SamplingSpec(mode=FLAGS.sampling, num_frames=FLAGS.num_frames,
                                      stride=FLAGS.stride, fps=FLAGS.fps, indices=indices,
                                      short=FLAGS.short)
        frame = video.FrameSpec(crop=FLAGS.crop, resize_shorter=FLAGS.resize_shorter,
                                size=_parse_size(FLAGS.size), image_format=FLAGS.image_format,
                                jpeg_quality=FLAGS.jpeg_quality)
    except ValueError as e:
        raise UserError(str(e)) from None
    if FLAGS.fps and FLAGS.sampling != "all":
        raise UserError("--fps applies to --sampling all only")
    if FLAGS.resize_shorter is not None and FLAGS.resize_shorter <= 0:
        raise UserError("--resize_shorter must be > 0")
    if FLAGS.source_fps < 0:
        raise UserError("--source_fps must be >= 0")
    if FLAGS.fps and FLAGS.dataset in FRAME_FOLDER_DATASETS and not FLAGS.source_fps:
        raise UserError("--fps resamples by time: frame folders carry no timestamps, so give "
                        "their frame rate with --source_fps (Jester: 12)")
    keypoint_spec = None
    if FLAGS.dataset == "openpose":
        from pipeline import keypoints
        try:
            keypoint_spec = keypoints.KeypointSpec(
                person_policy=FLAGS.person_policy, max_people=FLAGS.max_people,
                keypoints=tuple(FLAGS.keypoints), coords=FLAGS.coords,
                frame_size=_parse_size(FLAGS.frame_size, "--frame_size"),
                video_dir=FLAGS.video_dir, source_fps=FLAGS.source_fps,
                window=FLAGS.window, window_stride=FLAGS.window_stride)
        except ValueError as e:
            raise UserError(str(e)) from None
    return BuildSettings(sampling, frame, FLAGS.truncation_tolerance, FLAGS.source_fps,
                         keypoint_spec)


def default_config_name(settings: BuildSettings, dataset: str, split_id: int) -> str:
    """A readable folder name from the settings, e.g. split1_uniform16_short128_jpeg90."""
    s, f = settings.sampling, settings.frame
    if settings.keypoints is not None:
        k = settings.keypoints
        parts = [f"{k.person_policy}{k.max_people}p", k.coords]
        if k.keypoints:
            parts.append("-".join(k.keypoints))
        if k.window:
            parts.append(f"w{k.window}s{k.window_stride or k.window}")
        if k.frame_size or k.video_dir:
            parts.append("norm")
        return "_".join(parts)
    parts = [f"split{split_id}"] if dataset in ("ucf101", "hmdb51") else []
    if s.mode == "all":
        parts.append(f"all{s.fps:g}fps" if s.fps else "all")
    elif s.mode == "stride":
        parts.append(f"stride{s.stride}" + (f"x{s.num_frames}" if s.num_frames else ""))
    elif s.mode == "indices":
        parts.append(f"indices{len(s.indices)}")
    else:
        parts.append(f"{s.mode}{s.num_frames}")
    if f.crop == "center_square":
        parts.append("square")
    if f.resize_shorter:
        parts.append(f"short{f.resize_shorter}")
    if f.size:
        parts.append(f"{f.size[0]}x{f.size[1]}")
    parts.append(f"jpeg{f.jpeg_quality}" if f.image_format == "jpeg" else f.image_format)
    return "_".join(parts)


def resolve_data_dir(dataset: str, data_dir: str | None, source) -> str:
    """--data_dir, else $ACTIONFLOW_DATA_DIR/<dataset>, else ~/actionflow_data/<dataset>."""
    if data_dir:
        return data_dir
    root = os.environ.get(DATA_DIR_ENV) or os.path.expanduser(DEFAULT_DATA_ROOT)
    candidate = os.path.join(root, source.DEFAULT_SUBDIR)
    if not os.path.isdir(candidate):
        raise UserError(
            f"no --data_dir given and the default location {candidate} does not exist.\n"
            f"Put the {dataset} dataset there (or set ${DATA_DIR_ENV}, or pass --data_dir) in "
            f"this layout:\n{source.LAYOUT}\nThe dataset is published at {source.PUBLISHED_AT} "
            "(actionflow never downloads it).")
    return candidate


def select_items(items: list, max_per_split: int | None) -> list[tuple[int, sources_base.Item]]:
    """Orders each split by a stable hash of the video id, caps it, and numbers the slots."""
    by_split: dict[str, list] = {}
    for item in items:
        by_split.setdefault(item.split, []).append(item)
    selected = []
    for split in sorted(by_split):
        ordered = sorted(by_split[split],
                         key=lambda it: (sources_base.stable_fraction(it.video_id), it.video_id))
        if max_per_split is not None:
            ordered = ordered[:max_per_split]
        selected.extend(enumerate(ordered))
    return selected


# --------------------------------------------------------------------------
# Driver.
# --------------------------------------------------------------------------
class FolderWatch:
    """Calls ``report(done)`` every ``interval`` seconds while workers append one byte per
    ``per_item`` to files in ``folder`` (a local run's progress), and once more at the end."""

    def __init__(self, folder: str, report, interval: float = 2.0, per_item: int = 1):
        self.folder, self.report, self.interval, self.per_item = folder, report, interval, per_item
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def done(self) -> int:
        total = 0
        for name in os.listdir(self.folder):
            try:
                total += os.path.getsize(os.path.join(self.folder, name))
            except OSError:
                pass
        return total // self.per_item

    def _run(self):
        last = -1
        while not self._stop.wait(self.interval):
            done = self.done()
            if done != last:
                self.report(done)
                last = done

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.report(self.done())
        return False


class Progress(FolderWatch):
    """Prints done/total, rate and ETA of the build from its workers' progress folder."""

    def __init__(self, total: int, progress_dir: str, stream=sys.stderr, interval: float = 2.0):
        super().__init__(progress_dir, self._print, interval)
        self.total, self.stream = total, stream
        self.start = time.monotonic()

    def _print(self, done: int):
        print(self.line(done), file=self.stream, flush=True)

    def line(self, done: int) -> str:
        elapsed = time.monotonic() - self.start
        rate = done / elapsed if elapsed > 0 else 0.0
        pct = 100.0 * done / self.total if self.total else 100.0
        eta = _format_seconds((self.total - done) / rate) if rate > 0 else "?"
        return (f"[build] {done}/{self.total} items ({pct:.1f}%) · {rate:.1f} items/s · "
                f"elapsed {_format_seconds(elapsed)} · ETA {eta}")


def _format_seconds(s: float) -> str:
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m{sec:02d}s" if h else (f"{m}m{sec:02d}s" if m else f"{sec}s")


def _read_jsonl(work_dir: str, prefix: str, keep: bool = False) -> list[dict]:
    """Rows of the side files ``work_dir/prefix*``, deleting them unless ``keep``."""
    rows = []
    for match in FileSystems.match([FileSystems.join(work_dir, prefix + "*")])[0].metadata_list:
        with FileSystems.open(match.path) as f:
            rows.extend(json.loads(line) for line in f.read().decode().splitlines() if line)
        if not keep:
            FileSystems.delete([match.path])
    return rows


def _write_text(path: str, text: str):
    with FileSystems.create(path) as f:
        f.write(text.encode("utf-8"))


def _commit(tmp_dir: str, final_dir: str, overwrite: bool):
    """Moves the finished build into place; an old build is removed only after."""
    old = None
    if FileSystems.exists(final_dir):
        if not overwrite:
            raise UserError(f"{final_dir} appeared while building; pass --overwrite to replace it")
        old = final_dir.rstrip("/") + f".old-{uuid.uuid4().hex[:8]}"
        _rename_dir(final_dir, old)
    _rename_dir(tmp_dir, final_dir)
    if old:
        FileSystems.delete([old])


def _rename_dir(src: str, dst: str):
    if "://" not in src:
        os.rename(src, dst)
        return
    files = [m.path for m in FileSystems.match([FileSystems.join(src, "*")])[0].metadata_list]
    FileSystems.rename(files, [FileSystems.join(dst, f[len(src):].lstrip("/")) for f in files])


def pipeline_options(beam_args: list[str]):
    """Beam options from the flags we do not own; local multi-process by default."""
    from apache_beam.options.pipeline_options import PipelineOptions
    args = list(beam_args)
    joined = " ".join(args)
    if "--direct_running_mode" not in joined:
        args.append("--direct_running_mode=multi_processing")
    if "--direct_num_workers" not in joined:
        args.append("--direct_num_workers=0")
    if "--default_sdk_harness_log_level" not in joined:
        args.append(f"--default_sdk_harness_log_level={FLAGS.beam_log_level.upper()}")
    options = PipelineOptions(args)
    unknown = sorted(set(options.get_all_options(retain_unknown_options=True))
                     - set(options.get_all_options()))
    if unknown:
        raise UserError("unknown flag(s) " + ", ".join("--" + u for u in unknown) + ": neither "
                        "a build flag (see --help) nor a Beam pipeline option")
    return options


def runner_name(options) -> str:
    """The runner ``options`` select, by name (DirectRunner when none is given)."""
    from apache_beam.options.pipeline_options import StandardOptions
    runner = options.view_as(StandardOptions).runner or "DirectRunner"
    return runner if isinstance(runner, str) else type(runner).__name__


def make_runner(options):
    """The runner named in the options; without one, the local batch engine.

    Beam's DirectRunner first tries to download the Prism runner binary; a
    build must work offline, so without ``--runner`` we start the engine the
    DirectRunner would fall back to (FnApiRunner) ourselves, handing its
    workers the pipeline options (log level, worker count) as the
    DirectRunner does.
    """
    from apache_beam.options.pipeline_options import StandardOptions
    if options.view_as(StandardOptions).runner:
        return None
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle
    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    return fn_runner.FnApiRunner(provision_info=fn_runner.ExtendedProvisionInfo(
        beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded)))


def run(argv: list[str]) -> int:
    """Runs the build; returns the process exit code."""
    logging.getLogger("apache_beam").setLevel(FLAGS.beam_log_level.upper())
    if not FLAGS.dataset:
        raise UserError(f"--dataset is required: one of {', '.join(DATASETS)}")
    if not FLAGS.output_dir:
        raise UserError("--output_dir is required: where the build should be written")
    if not 0 <= FLAGS.max_failure_ratio <= 1:
        raise UserError("--max_failure_ratio must be in [0, 1]")
    source = sources.get_source(FLAGS.dataset)
    settings = settings_from_flags()
    options = pipeline_options(argv[1:])
    data_dir = resolve_data_dir(FLAGS.dataset, FLAGS.data_dir, source)
    config_name = FLAGS.config_name or default_config_name(settings, FLAGS.dataset,
                                                           FLAGS.split_id)
    dataset_dir = FileSystems.join(FLAGS.output_dir, FLAGS.dataset)
    final_dir = FileSystems.join(dataset_dir, config_name)
    if FileSystems.exists(final_dir) and not FLAGS.overwrite:
        raise UserError(f"{final_dir} already exists; pass --overwrite to replace it "
                        "(or choose another --config_name)")

    listing = source.list_items(data_dir, sources_base.SourceOptions(
        split_id=FLAGS.split_id, val_fraction=FLAGS.val_fraction,
        test_fraction=FLAGS.test_fraction, max_per_class=FLAGS.max_per_class,
        min_per_class=FLAGS.min_per_class, label_csv=FLAGS.label_csv,
        label_column=FLAGS.label_column, id_column=FLAGS.id_column,
        id_template=FLAGS.id_template, segments_csv=FLAGS.segments_csv,
        background_label=FLAGS.background_label))
    selected = select_items(listing.items, FLAGS.max_examples_per_split)
    listing_problems = [dict(pr.to_json_dict(), video_id="") for pr in listing.problems]
    print(f"[build] {FLAGS.dataset} from {data_dir}: {len(selected)} items to decode, "
          f"{len(listing_problems)} listing problems, {sum(listing.unused.values())} unused; "
          f"{len(listing.classes)} classes", file=sys.stderr)

    tmp_dir = FileSystems.join(dataset_dir, f".{config_name}.tmp-{uuid.uuid4().hex[:8]}")
    if "://" not in tmp_dir:
        os.makedirs(tmp_dir)
    runner_obj = make_runner(options)
    runner = "FnApiRunner" if runner_obj else runner_name(options)
    local = runner in LOCAL_RUNNERS
    progress_dir = tempfile.mkdtemp(prefix="actionflow-progress-") if (
        local and FLAGS.progress) else None
    started = time.monotonic()
    try:
        shard_counts = shard_counts_for(selected, settings, FLAGS.num_shards)
        p = beam.Pipeline(runner=runner_obj, options=options)
        build_graph(p, selected, listing_problems, settings, tmp_dir, shard_counts,
                    progress_dir)
        if progress_dir:
            with Progress(len(selected), progress_dir):
                result = p.run()
                result.wait_until_finish()
        else:
            result = p.run()
            result.wait_until_finish()
        _complete_shard_sets(tmp_dir, shard_counts)
        info, errors = _finalise(tmp_dir, listing, selected, settings, config_name, data_dir,
                                 argv[1:], runner)
    except BaseException:
        _remove_quietly(tmp_dir)
        raise
    finally:
        if progress_dir:
            _remove_quietly(progress_dir)
    _print_metrics(result)

    listed = sum(s["listed"] for s in info["splits"].values())
    failed = [e for e in errors if e["stage"] != FILE_STAGE]
    ratio = len(failed) / listed if listed else 0.0
    failed_errors = final_dir.rstrip("/") + ".failed-errors.jsonl"
    if ratio > FLAGS.max_failure_ratio:
        _write_text(failed_errors, "".join(json.dumps(e, sort_keys=True) + "\n" for e in errors))
        _remove_quietly(tmp_dir)
        print(f"[build] FAILED: {len(failed)} of {listed} listed items quarantined "
              f"({ratio:.1%} > --max_failure_ratio {FLAGS.max_failure_ratio:.1%}). Nothing was "
              f"committed; the reasons are in {failed_errors}", file=sys.stderr)
        return 1
    _commit(tmp_dir, final_dir, FLAGS.overwrite)
    if FileSystems.exists(failed_errors):     # from an earlier failed attempt
        FileSystems.delete([failed_errors])
    elapsed = time.monotonic() - started
    written = sum(s["num_examples"] for s in info["splits"].values())
    bad_files = len(errors) - len(failed)
    print(f"[build] wrote {written} records to {final_dir} in {_format_seconds(elapsed)} "
          f"({len(failed)} items quarantined" + (f", {bad_files} bad files inside written items"
                                                 if bad_files else "") + "; see errors.jsonl)",
          file=sys.stderr)
    for split, s in sorted(info["splits"].items()):
        print(f"[build]   {split}: {s['num_examples']} records in {len(s['shards'])} shards, "
              f"{s['num_bytes'] / 2 ** 20:.1f} MiB", file=sys.stderr)
    print(final_dir)
    return 0


def _complete_shard_sets(tmp_dir: str, shard_counts: dict[str, int]):
    """Writes an empty shard (a valid, empty TFRecord file) for every index no record reached,
    so each split is a complete -of-N set; also records it in the shard list."""
    written = {(r["split"], r["index"]) for r in _read_jsonl(tmp_dir, "_shards", keep=True)}
    extra = []
    for split, count in shard_counts.items():
        for index in range(count):
            if (split, index) not in written:
                name = schema.shard_name(split, index, count)
                _write_text(FileSystems.join(tmp_dir, name), "")
                extra.append({"split": split, "name": name, "index": index, "num_examples": 0,
                              "num_bytes": 0})
    if extra:
        _write_text(FileSystems.join(tmp_dir, "_shards-empty.jsonl"),
                    "".join(json.dumps(e) + "\n" for e in extra))
    parts = FileSystems.join(tmp_dir, PARTS_DIR)
    if FileSystems.exists(parts):
        _remove_quietly(parts)


def _empty_split() -> dict:
    return {"num_examples": 0, "num_items": 0, "num_frames": 0, "per_class": {},
            "unlabelled": 0, "num_bytes": 0, "shards": [], "listed": 0, "quarantined": 0,
            "quarantined_files": 0}


def _finalise(tmp_dir, listing, selected, settings, config_name, data_dir, beam_args, runner):
    """Reads the side files, writes errors.jsonl and dataset_info.json into tmp_dir.

    Per split: ``listed`` items = ``num_items`` written + ``quarantined``; one item
    can give several records (``num_examples``: keypoint windows); bad files
    inside a written item (a frame's JSON) are ``quarantined_files``.
    """
    shards = _read_jsonl(tmp_dir, "_shards")
    stats = _read_jsonl(tmp_dir, "_stats")
    errors = sorted(_read_jsonl(tmp_dir, "_errors"),
                    key=lambda e: (e["split"], e["path"], e["reason"]))
    _write_text(FileSystems.join(tmp_dir, schema.ERRORS_FILE),
                "".join(json.dumps(e, sort_keys=True) + "\n" for e in errors))

    splits = {split: _empty_split() for split in listing.splits}
    for shard in sorted(shards, key=lambda sh: (sh["split"], sh["index"])):
        s = splits.setdefault(shard["split"], _empty_split())
        s["shards"].append(shard["name"])
        s["num_bytes"] += shard["num_bytes"]
    for _, item in selected:
        splits.setdefault(item.split, _empty_split())["listed"] += 1
    for problem in listing.problems:
        if problem.split in splits:
            splits[problem.split]["listed"] += 1
    for e in errors:
        if e["split"] in splits:
            splits[e["split"]]["quarantined_files" if e["stage"] == FILE_STAGE
                               else "quarantined"] += 1
    for row in stats:
        s = splits.setdefault(row["split"], _empty_split())
        s["num_examples"] += row["num_examples"]
        s["num_items"] += row["num_items"]
        s["num_frames"] += row["num_frames"]
        if row["class"] is None:
            s["unlabelled"] += row["num_examples"]
        else:
            s["per_class"][row["class"]] = row["num_examples"]
    unsplit = [e for e in errors if e["split"] not in splits]
    frame = settings.frame
    info = {
        "schema_version": schema.SCHEMA_VERSION,
        "dataset": FLAGS.dataset,
        "config_name": config_name,
        "modality": listing.modality,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "classes": list(listing.classes),
        "num_classes": len(listing.classes),
        "image_format": frame.image_format,
        "splits": splits,
        "unused": dict(listing.unused),
        "quarantined_without_split": len(unsplit),
        "errors_by_reason": _count_by(errors, "reason"),
        "source": {"data_dir": data_dir, "listing_sha256": _listing_digest(listing)},
        "sampling": dataclasses.asdict(settings.sampling),
        "frame": dataclasses.asdict(settings.frame),
        "source_fps": settings.source_fps,
        "keypoints": dataclasses.asdict(settings.keypoints) if settings.keypoints else None,
        "flags": {name: FLAGS[name].value for name in _our_flag_names()},
        "beam": {"runner": runner, "args": list(beam_args)},
    }
    _write_text(FileSystems.join(tmp_dir, schema.DATASET_INFO_FILE),
                schema.dataset_info_to_json(info))
    return info, errors


def _count_by(rows, key):
    out: dict[str, int] = {}
    for r in rows:
        out[r[key]] = out.get(r[key], 0) + 1
    return dict(sorted(out.items()))


def _listing_digest(listing) -> str:
    import hashlib
    h = hashlib.sha256()
    for it in sorted(listing.items, key=lambda it: it.video_id):
        h.update(f"{it.video_id}\t{it.split}\t{it.label}\n".encode())
    return h.hexdigest()


def _our_flag_names() -> list[str]:
    return sorted(f.name for f in FLAGS.get_key_flags_for_module(sys.modules[__name__]))


def _print_metrics(result):
    try:
        counters = result.metrics().query()["counters"]
    except Exception:  # some runners do not report metrics
        return
    totals: dict[str, int] = {}
    for c in counters:
        totals[c.key.metric.name] = totals.get(c.key.metric.name, 0) + c.committed
    if totals:
        print("[build] metrics: " + ", ".join(f"{k}={v}" for k, v in sorted(totals.items())),
              file=sys.stderr)


def _remove_quietly(path: str):
    try:
        if "://" not in path:
            import shutil
            shutil.rmtree(path, ignore_errors=True)
        elif FileSystems.exists(path):
            FileSystems.delete([path])
    except Exception:
        pass


def parse_flags(argv: list[str]) -> list[str]:
    """Parses our flags (from their defaults); returns argv[0] plus the rest, for Beam."""
    return cli.parse_known(argv, __name__, BEAM_EPILOG)


def main(argv):
    """Runs a build from parsed flags; returns the exit code (2 for user mistakes)."""
    try:
        return run(argv)
    except (UserError, sources_base.SourceError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def build_main(argv: list[str]) -> int:
    """Parses ``argv`` (argv[0] is the program name) and builds: for scripts and tests."""
    return main(parse_flags(argv))


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=parse_flags)
