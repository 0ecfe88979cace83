r"""Builds sharded TFRecords from a video dataset with Apache Beam.

    python -m pipeline.build --dataset ucf101 --data_dir D --output_dir O \
        [--sampling uniform --num_frames 16] [--resize_shorter 128] [...] \
        [any Beam option: --runner DataflowRunner --project P --region R --temp_location gs://...]

The graph (the same on every runner; ``pipeline.transforms``):

    ListedItems ─► Reshuffle ─► MakeRecords ─┬─ ok ─► WriteSplits (WriteParts ─► GroupParts ─► ConcatShards)
                                             │        └─► Stats (CountPerClass)
                                             └─ failed ─┐
    ListingProblems ───────────────────────────────────┴─► Errors

Listing (``pipeline.sources``) runs on the driver; everything after ``Reshuffle``
spreads over the workers, which make each item's records with ``pipeline.media``.
The driver then writes ``dataset_info.json`` and ``errors.jsonl`` into a temporary
directory and commits it by rename (``pipeline.finalise``), so a killed build never
leaves a half-written output behind. Runner and options: ``pipeline.runner``.

Flags are ours; every flag we do not define is handed to Beam's
``PipelineOptions`` unchanged. Without ``--runner`` the build runs locally on
all cores (Beam's FnApiRunner, the DirectRunner's batch engine, in
multi-process mode).
"""
from __future__ import annotations

import dataclasses
import os
import sys
import time

from pipeline import cli

cli.quiet_unless_verbose(__name__)    # before TensorFlow and Beam load (unless --verbose)
cli.stop_while_starting(__name__, "build")    # one line, not a traceback

import apache_beam as beam
from absl import app, flags

from pipeline import finalise, partial, runner, sources
from pipeline.media import files, keypoints
from pipeline.media.encode import CROPS, IMAGE_FORMATS, FrameSpec, parse_size
from pipeline.media.items import Item
from pipeline.media.records import BuildSettings
from pipeline.media.sampling import SAMPLING_MODES, SHORT_POLICIES, SamplingSpec
from pipeline.sources import base as sources_base
from pipeline.transforms import build_graph, shard_counts_for, write_parts
from tfrecords import schema

FLAGS = flags.FLAGS

DATASETS = tuple(sources.available())
DATA_DIR_ENV = "ACTIONFLOW_DATA_DIR"
FRAME_FOLDER_DATASETS = ("gestures", "jester")
DEFAULT_DATA_ROOT = os.path.join("~", "actionflow_data")
BEAM_EPILOG = ("Any other --flag is passed to Beam's PipelineOptions unchanged (e.g. --runner, "
               "--direct_num_workers, --project, --region, --temp_location).")

flags.DEFINE_enum("dataset", None, DATASETS,
                  "Which source layout to read: videos (ucf101, hmdb51, folder), annotation "
                  "lists of videos and time segments (kinetics, list, ssv2), frame folders "
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
                   "folder, list: fraction of videos for 'val', by a stable hash of the path; "
                   "ucf101: fraction of each class's train groups (gNN) held out whole as "
                   "'val'; hmdb51: train source videos held out whole as 'val'.")
flags.DEFINE_float("test_fraction", 0.0,
                   "folder, list: fraction of videos for 'test', by a stable hash of the path.")
flags.DEFINE_list("annotations", [],
                  "kinetics, list: the annotation files (comma-separated; 'split=FILE' gives "
                  "all rows of FILE that split, e.g. train=train.txt,val=val.txt). Relative "
                  "paths are looked for here, then under --data_dir.")
flags.DEFINE_enum("annotations_format", "csv", ["csv", "mmaction"],
                  "list: 'csv' (a header naming path, label and optionally start_s, end_s, "
                  "split) or 'mmaction' (lines 'path label', space separated).")
flags.DEFINE_enum("sampling", "all", SAMPLING_MODES,
                  "Frames to keep: all (optionally --fps), uniform (K evenly spaced incl. first "
                  "and last), stride (every --stride-th; with --num_frames the centred K), "
                  "segments (TSN: centre frame of K equal segments), indices (--indices).")
flags.DEFINE_integer("num_frames", None, "K, frames per clip, for uniform/segments/stride.")
flags.DEFINE_integer("stride", 1, "Step between kept frames for --sampling stride.")
flags.DEFINE_float("fps", None, "--sampling all: resample to this frame rate by timestamp.")
flags.DEFINE_list("indices", None,
                  "--sampling indices: 0-based frame numbers, e.g. 3,6,9,11,13,15,17,19,21,24,27.")
flags.DEFINE_enum("short", "loop", SHORT_POLICIES,
                  "Videos with fewer frames than the sampling needs: loop them, repeat the "
                  "last frame, or skip (quarantine) them. Recorded per clip.")
flags.DEFINE_enum("crop", "none", CROPS, "Crop before resizing.")
flags.DEFINE_integer("resize_shorter", None, "Resize so the shorter side is N (keeps aspect).")
flags.DEFINE_string("size", None, "Resize to exactly WxH, e.g. 112x112.")
flags.DEFINE_enum("image_format", "jpeg", IMAGE_FORMATS,
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
flags.DEFINE_boolean("resume", True,
                     "Reuse the records a stopped or killed build of the same config, settings "
                     "and listing finished (kept in OUTPUT_DIR/DATASET/.CONFIG_NAME.partial/); "
                     "--noresume starts over and keeps nothing when stopped.")
flags.DEFINE_integer(
    "decode_threads", 0,
    "Threads each worker process gives FFmpeg's decoder and OpenCV (colour conversion, "
    "resizing). 0: on the local runner with worker processes, the cores divided by the "
    "worker processes (1 with a worker per core, which spends less CPU per frame than "
    "threads do), 1 on the Dask runner's own local cluster; elsewhere the libraries' "
    "defaults, a thread per core. Give 1 on a cluster "
    "that runs a worker process per core (e.g. Dask workers with --nthreads 1). Videos "
    "smaller than 640x480 decode with one thread whatever this says: on frames that "
    "small, threads cost more than they give. The records are the same either way.",
    lower_bound=0)
flags.DEFINE_boolean(
    "fork_workers", True,
    "Start the local worker processes as forks of one process that has imported Beam, "
    "OpenCV and the project already (milliseconds each), instead of fresh interpreters that "
    "import them again (about 2 s of CPU each). The command only: a build run through "
    "build_main() in a longer-lived program always starts fresh workers.")
flags.DEFINE_enum("beam_log_level", "error", runner.LOG_LEVELS,
                  "Log level for Beam's own messages.")


class UserError(Exception):
    """A mistake in the command line or the data: printed without a traceback, exit 2."""


# --------------------------------------------------------------------------
# Settings from flags.
# --------------------------------------------------------------------------
def _parse_size(text: str | None, flag: str = "--size") -> tuple[int, int] | None:
    try:
        return parse_size(text, flag)
    except ValueError as e:
        raise UserError(str(e)) from None


def settings_from_flags() -> BuildSettings:
    """Validates our flags into worker settings."""
    try:
        indices = tuple(int(v) for v in FLAGS.indices) if FLAGS.indices else ()
    except ValueError:
        raise UserError(f"--indices must be integers, got {','.join(FLAGS.indices)}") from None
    try:
        sampling = SamplingSpec(mode=FLAGS.sampling, num_frames=FLAGS.num_frames,
                                      stride=FLAGS.stride, fps=FLAGS.fps, indices=indices,
                                      short=FLAGS.short)
        frame = FrameSpec(crop=FLAGS.crop, resize_shorter=FLAGS.resize_shorter,
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


def select_items(items: list, max_per_split: int | None) -> list[tuple[int, Item]]:
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


def source_options() -> sources_base.SourceOptions:
    """The source-side flags."""
    return sources_base.SourceOptions(
        split_id=FLAGS.split_id, val_fraction=FLAGS.val_fraction,
        test_fraction=FLAGS.test_fraction, max_per_class=FLAGS.max_per_class,
        min_per_class=FLAGS.min_per_class, label_csv=FLAGS.label_csv,
        label_column=FLAGS.label_column, id_column=FLAGS.id_column,
        id_template=FLAGS.id_template, segments_csv=FLAGS.segments_csv,
        background_label=FLAGS.background_label, annotations=tuple(FLAGS.annotations),
        annotations_format=FLAGS.annotations_format)


def _check_required_flags():
    if not FLAGS.dataset:
        raise UserError(f"--dataset is required: one of {', '.join(DATASETS)}")
    if not FLAGS.output_dir:
        raise UserError("--output_dir is required: where the build should be written")
    if not 0 <= FLAGS.max_failure_ratio <= 1:
        raise UserError("--max_failure_ratio must be in [0, 1]")


def _options(beam_args: list[str]):
    try:
        return runner.pipeline_options(beam_args, FLAGS.beam_log_level,
                                       own_flags="a build flag")
    except runner.OptionsError as e:
        raise UserError(str(e)) from None


# --------------------------------------------------------------------------
# Driver.
# --------------------------------------------------------------------------
def run(argv: list[str]) -> int:
    """Runs the build; returns the process exit code (130 or 143 when stopped by a signal)."""
    runner.quiet_beam(FLAGS.beam_log_level)
    _check_required_flags()
    source = sources.get_source(FLAGS.dataset)
    settings = settings_from_flags()
    options = _options(argv[1:])
    # forked now, before this process starts a thread or decodes a frame
    forks = (runner.start_forks(options, "build") if _MAY_FORK and FLAGS.fork_workers
             else None)
    try:
        return _run(argv, source, settings, options, forks)
    finally:
        if forks:                   # closed by _build_into after a run; else not needed
            forks.close(wait=False)


def _run(argv, source, settings, options, forks) -> int:
    data_dir = resolve_data_dir(FLAGS.dataset, FLAGS.data_dir, source)
    config_name = FLAGS.config_name or default_config_name(settings, FLAGS.dataset,
                                                           FLAGS.split_id)
    dataset_dir = files.join(FLAGS.output_dir, FLAGS.dataset)
    final_dir = files.join(dataset_dir, config_name)
    if files.exists(final_dir) and not FLAGS.overwrite:
        raise UserError(f"{final_dir} already exists; pass --overwrite to replace it "
                        "(or choose another --config_name)")

    work_dir = partial.work_dir_for(dataset_dir, config_name)
    # the folders this build makes, to remove again if it ends with nothing in them
    made = [d for d in (dataset_dir, FLAGS.output_dir) if not files.exists(d)]
    for gone in partial.remove_legacy(dataset_dir, config_name):
        print(f"[build] removed {gone}, left by a build that was killed", file=sys.stderr)
    try:
        resumable = partial.acquire(work_dir)
    except partial.BuildLocked as e:
        raise UserError(str(e)) from None
    started = time.monotonic()
    plan = None
    with cli.StopSignals(on_stop=runner.stop_local_workers) as signals:
        try:
            plan = _prepare(work_dir, resumable, source, data_dir, settings,
                            runner.local_worker_processes(options))
            info, tally = _build_into(work_dir, plan, settings, options, config_name,
                                      data_dir, argv[1:], forks)
        except cli.Stopped as stop:
            code = _stopped(stop, work_dir, plan, argv)
            _remove_if_empty(made)
            return code
        except BaseException:
            _keep_for_resume(work_dir)
            _remove_if_empty(made)
            raise
        signals.raise_stop = False        # a signal now waits for the commit (a rename)
        return _commit_or_refuse(work_dir, final_dir, info, tally, time.monotonic() - started)


@dataclasses.dataclass
class Plan:
    """What the workers are to do, once the listing is on disk (no item is held here)."""
    summary: finalise.ListingSummary
    shard_counts: dict
    listing_dir: str
    total: int          # items selected
    already: int        # of which a stopped build finished


def _prepare(work_dir, resumable, source, data_dir, settings, processes: int = 1) -> Plan:
    """Lists and selects the items, takes over what a stopped build finished, and writes
    what is left for the workers (``_listing/``). The items live only in this call.
    ``processes``: the local worker processes the run will have, as many as may make the
    items that size the shards."""
    listing = source.list_items(data_dir, source_options())
    selected = select_items(listing.items, FLAGS.max_examples_per_split)
    print(f"[build] {FLAGS.dataset} from {data_dir}: {len(selected)} items to decode, "
          f"{len(listing.problems)} listing problems, "
          f"{sum(listing.unused.values())} unused; {len(listing.classes)} classes",
          file=sys.stderr)
    finished, shard_counts = _resume_or_start(work_dir, resumable, selected, settings, data_dir,
                                              processes)
    todo = ([(slot, item) for slot, item in selected if (item.split, slot) not in finished.slots]
            if finished.slots else selected)
    return Plan(finalise.summarise(listing, selected), shard_counts,
                partial.write_listing(work_dir, todo, finished), len(selected),
                finished.num_items)


def _settings_print(selected, settings, data_dir) -> str:
    """The fingerprint a stopped build's work must match to be reused."""
    return partial.fingerprint(
        dataset=FLAGS.dataset, data_dir=data_dir, selected=selected,
        settings_dict={"build": dataclasses.asdict(settings), "num_shards": FLAGS.num_shards})


def _resume_or_start(work_dir, resumable, selected, settings, data_dir, processes: int = 1):
    """What a stopped build in ``work_dir`` finished (empty unless it matches this one) and
    the shard counts; clears everything else out of the folder."""
    print_ = _settings_print(selected, settings, data_dir)
    manifest = partial.read_manifest(work_dir) if resumable else None
    if FLAGS.resume and manifest and manifest.get("fingerprint") == print_:
        partial.clear_for_resume(work_dir, keep_finished=True)
        finished = partial.scan(work_dir, selected)
        print(f"[build] resuming: {finished.num_items} of {len(selected)} items were finished "
              f"by a stopped build in {work_dir}; decoding the other "
              f"{len(selected) - finished.num_items}", file=sys.stderr)
        return finished, {k: int(v) for k, v in manifest["shard_counts"].items()}
    if manifest:
        why = ("--noresume" if not FLAGS.resume else
               "it had other settings or another listing")
        print(f"[build] not reusing the stopped build in {work_dir} ({why}): starting over",
              file=sys.stderr)
    partial.clear_for_resume(work_dir, keep_finished=False)
    made: list = []
    def slow():
        print(f"[build] sizing the shards: making the first items, {processes} at a time "
              "(kept: no worker makes them again; give --num_shards to skip this)",
              file=sys.stderr, flush=True)

    shard_counts = shard_counts_for(selected, settings, FLAGS.num_shards, made, processes,
                                    on_slow=slow)
    partial.write_manifest(work_dir, print_, shard_counts)
    if not made:
        return partial.Finished(), shard_counts
    # The items encoded to size the shards are kept as finished parts, as a stopped
    # build's are: no worker decodes them again (for long videos, minutes saved).
    write_parts(work_dir, made, shard_counts)
    return partial.scan(work_dir, selected), shard_counts


SMALL_BUILD = 4      # items: fewer run in the driver's process (no worker to start)


def _build_into(work_dir, plan: Plan, settings, options, config_name, data_dir, beam_args,
                forks=None):
    """Runs the pipeline into ``work_dir`` and finalises it there; returns (info, tally).
    ``forks``: the fork server that starts the local workers (fresh ones without)."""
    if plan.total - plan.already <= SMALL_BUILD and not any(
            a.startswith("--direct_running_mode") for a in beam_args):
        # Starting a worker process costs more than a few items take.
        from apache_beam.options.pipeline_options import DirectOptions
        options.view_as(DirectOptions).direct_running_mode = "in_memory"
        options.view_as(DirectOptions).direct_num_workers = 1
    runner_obj = runner.make_runner(options, forks.command() if forks else None)
    local = runner.is_local(options, runner_obj)
    progress_dir = runner.progress_dir(work_dir) if local and FLAGS.progress else None
    with cli.run_temp_folder():          # removed once the workers have ended
        try:
            p = beam.Pipeline(runner=runner_obj, options=options)
            threads = FLAGS.decode_threads or runner.threads_per_worker(options, runner_obj)
            build_graph(p, plan.listing_dir, settings, work_dir, plan.shard_counts,
                        progress_dir, threads)
            progress = runner.watch(progress_dir, plan.total, "build",
                                    already=plan.already) if progress_dir else None
            result = runner.run_and_wait(p, progress)
        finally:
            if forks:
                forks.close()        # its workers have ended with the run
            if progress_dir:
                finalise.remove_quietly(progress_dir)
    info, tally = finalise.finalise(
        work_dir, plan.summary, settings, plan.shard_counts, dataset=FLAGS.dataset,
        config_name=config_name, data_dir=data_dir,
        flags={name: FLAGS[name].value for name in _our_flag_names()},
        beam_args=beam_args, runner=runner.describe_runner(options, runner_obj))
    _print_metrics(result)
    return info, tally


def _keep_for_resume(work_dir: str) -> None:
    """After a stop, a crash or a user mistake: drop what was half written, keep what was
    finished for a resumed build (nothing with --noresume), and let the folder go."""
    try:
        if FLAGS.resume:
            partial.clear_for_resume(work_dir, keep_finished=True)
        if FLAGS.resume and partial.has_finished_work(work_dir):
            partial.release(work_dir)
        else:
            finalise.remove_quietly(work_dir)
    except OSError:
        pass


def _remove_if_empty(folders: list[str]) -> None:
    """Removes the local folders of ``folders`` (innermost first) that are empty: a build
    that ends with nothing kept leaves no empty OUTPUT_DIR/DATASET behind."""
    for folder in folders:
        if not files.is_remote(folder):
            try:
                os.rmdir(folder)
            except OSError:         # not empty (a kept work folder, another build), or gone
                return


def _stopped(stop: cli.Stopped, work_dir: str, plan: Plan | None, argv) -> int:
    """The one line of a build stopped by a signal; returns its exit status."""
    _keep_for_resume(work_dir)
    resume = cli.command_line("pipeline.build", _COMMAND_LINE or argv[1:])
    if plan is None:
        kept = "it was still preparing (listing the dataset or sizing the shards); nothing kept"
    elif not FLAGS.resume:
        kept = "nothing kept (--noresume)"
    else:
        done = partial.scan(work_dir).num_items if files.exists(work_dir) else 0
        kept = (f"{done} of {plan.total} items finished and kept in {work_dir}" if done
                else "no item had finished; nothing kept")
    print(cli.stopped_line("build", stop, kept, resume), file=sys.stderr, flush=True)
    return stop.exit_code


def _commit_or_refuse(tmp_dir, final_dir, info, tally: finalise.Tally, elapsed: float) -> int:
    """Commits the build, or refuses it (exit 1) when too many items were quarantined."""
    listed = sum(s["listed"] for s in info["splits"].values())
    ratio = tally.items / listed if listed else 0.0
    failed_errors = final_dir.rstrip("/") + ".failed-errors.jsonl"
    if ratio > FLAGS.max_failure_ratio:
        files.write_text(failed_errors,
                         files.read_text(files.join(tmp_dir, schema.ERRORS_FILE)))
        finalise.remove_quietly(tmp_dir)
        print(f"[build] FAILED: {tally.items} of {listed} listed items quarantined "
              f"({ratio:.1%} > --max_failure_ratio {FLAGS.max_failure_ratio:.1%}). Nothing was "
              f"committed; the reasons are in {failed_errors}", file=sys.stderr)
        return 1
    try:
        finalise.commit(tmp_dir, final_dir, FLAGS.overwrite)
    except finalise.CommitError as e:
        _keep_for_resume(tmp_dir)
        raise UserError(str(e)) from None
    if files.exists(failed_errors):     # from an earlier failed attempt
        files.delete([failed_errors])
    written = sum(s["num_examples"] for s in info["splits"].values())
    print(f"[build] wrote {written} records to {final_dir} in {cli.format_seconds(elapsed)} "
          f"({tally.items} items quarantined" + (f", {tally.files} bad files inside or beside "
                                                 "written items" if tally.files else "")
          + "; see errors.jsonl)", file=sys.stderr)
    for split, s in sorted(info["splits"].items()):
        print(f"[build]   {split}: {s['num_examples']} records in {len(s['shards'])} shards, "
              f"{s['num_bytes'] / 2 ** 20:.1f} MiB", file=sys.stderr)
    print(final_dir)
    return 0


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


_COMMAND_LINE: list[str] = []      # the arguments as given, for the resume command
# Whether this process may fork its local workers (``--fork_workers``): true for the
# command, whose driver forks before it starts any thread; a program that calls
# build_main() may have started threads (gRPC's among them) a fork does not carry.
_MAY_FORK = False


def parse_flags(argv: list[str]) -> list[str]:
    """Parses our flags (from their defaults); returns argv[0] plus the rest, for Beam."""
    _COMMAND_LINE[:] = argv[1:]
    return cli.parse(FLAGS, argv, __name__, known_only=True, epilog=BEAM_EPILOG)


def main(argv):
    """Runs a build from parsed flags; returns the exit code (2 for user mistakes)."""
    cli.started()
    try:
        return run(argv)
    except (UserError, sources_base.SourceError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def build_main(argv: list[str]) -> int:
    """Parses ``argv`` (argv[0] is the program name) and builds: for scripts and tests."""
    return main(parse_flags(argv))


if __name__ == "__main__":
    # every file is written and committed (or removed) before main returns
    _MAY_FORK = True
    app.run(lambda argv: cli.exit_at_once(main(argv)), flags_parser=parse_flags)
