r"""Evaluates a trained model on a split of a build: the numbers and pictures people read.

    python -m trainers.evaluate --workdir runs/demo             # the build's test split, else val
    python -m trainers.evaluate --workdir runs/ucf101 --split test --num_test_clips 10 \
        --num_test_crops 3 --checkpoint last --batch_size 4
    python -m trainers.evaluate --workdir runs/ucf101 --split test \
        --build_dir records/ucf101/split1_uniform32_short128_jpeg90

Clip and image models read every video of the split as the run's config reads its
evaluation split (sampling, frames, crop size: ``trainers.data.reader_kwargs``), in
``--num_test_clips`` x ``--num_test_crops`` views per video, and average the views' class
probabilities per video (views are matched to their video by the record index the reader
attaches, never by position in a batch). Keypoint models are handed to ``trainers.keypoint_eval``.

Written into WORKDIR/eval/SPLIT/ (or --out_dir) by ``trainers.report.write_report``:

    metrics.json               top-1, top-5, mean class accuracy, loss, counts, settings
    classification_report.txt  precision, recall, F1 and support per class, averages
    per_class.csv              the same numbers as a table
    confusion_matrix.csv       rows: true class, columns: predicted class
    confusion_matrix.png       the matrix as a heatmap, coloured by the fraction of each row
    predictions.csv            per video: true and predicted class, probability, top 5
    action_groups.png          builds whose classes come in action groups (UCF101's five
                               action types): accuracy of each group

Without --split, the build's test split is evaluated when it has labelled records, else its
validation split ('val'); the first line printed says which (``default_split``). The run's
build is read where its workdir records it (an absolute path or a URL, so any folder will do;
``python -m trainers.workdir relocate`` records a new place), or at --build_dir.

A split without labels (label -1, e.g. Jester's test split) gets predictions.csv and a
metrics.json with counts only. The same evaluation runs as an Apache Beam pipeline with
``python -m trainers.beam_evaluate`` (see EVALUATION.md).

Before reading, the split's shards are checked (TFRecord framing and CRCs,
``tfrecords.integrity``): a damaged shard is refused with one line naming it and the
byte offset (exit status 2). SIGINT / SIGTERM stop it with one line (exit status 130 /
143); the report is only written at the end, so nothing half-written is left.
"""
from __future__ import annotations

import dataclasses
import os
import sys
from typing import Any, Mapping, Sequence

from pipeline import cli

cli.quiet_unless_verbose(__name__)    # before TensorFlow and Beam load (unless --verbose)
cli.stop_while_starting(__name__, "evaluate")    # one line, not a traceback

import numpy as np
from absl import app, flags

from pipeline.progress import Progress
from trainers import data, report
from trainers.workdir import RunError

# A FlagValues of its own: every entry point that uses a trained model takes --workdir,
# and several of them may be imported into one process (tests, the Beam workers).
FLAGS = flags.FlagValues()


def define_flags(fv: flags.FlagValues) -> None:
    """The flags of an evaluation (shared by trainers.evaluate and trainers.beam_evaluate)."""
    flags.DEFINE_string("workdir", None, "The training workdir to evaluate (python -m "
                        "trainers.train --workdir ...).", flag_values=fv)
    flags.DEFINE_string("split", None, "Which split of the build to evaluate on. Default: "
                        "its test split when that has labelled records, else its validation "
                        "split (val); the first line printed says which.", flag_values=fv)
    flags.DEFINE_string("checkpoint", "best", "best | last (WORKDIR/checkpoints/NAME.keras) or "
                        "the path of a .keras file.", flag_values=fv)
    flags.DEFINE_string("build_dir", None, "The build to read. Default: the run's "
                        "config.data.build_dir; another build must have the same classes.",
                        flag_values=fv)
    flags.DEFINE_integer("num_test_clips", None, "Clips per video, evenly spaced (stride and "
                         "segments sampling). Default: the run's config.data.num_test_clips.",
                         flag_values=fv)
    flags.DEFINE_integer("num_test_crops", None, "1 (centre) or 3 (along the long side) crops "
                         "per clip. Default: the run's config.data.num_test_crops.",
                         flag_values=fv)
    flags.DEFINE_integer("batch_size", None, "Videos per batch (each brings clips x crops "
                         "views). Default: the run's config.train.batch_size.", flag_values=fv)
    flags.DEFINE_string("out_dir", None, "Where the report goes. Default: WORKDIR/eval/SPLIT.",
                        flag_values=fv)
    flags.DEFINE_float("threshold", None, "Keypoint models with one sigmoid output: the "
                       "probability at or above which a second is labelled with the positive "
                       "class (default 0.5). Not for other models.", flag_values=fv)
    flags.DEFINE_boolean("progress", True, "Show videos done / total and the rate on stderr.",
                         flag_values=fv)


define_flags(FLAGS)


# --------------------------------------------------------------------------
# What to evaluate: the run, the build and the reader settings, checked.
# --------------------------------------------------------------------------
@dataclasses.dataclass
class Plan:
    """A checked evaluation: the run, its config pointed at the build and split to read."""
    run: Any
    config: Any                # the run's config with data.build_dir / splits / views set
    info: dict                 # dataset_info.json of the build read
    split: str
    checkpoint: str            # a file path
    out_dir: str
    batch_size: int

    @property
    def build_dir(self) -> str:
        return self.config.data.build_dir

    @property
    def modality(self) -> str:
        return self.info.get("modality", "video")

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.info.get("classes", ()))

    @property
    def num_test_clips(self) -> int:
        return 1 if self.modality == "image" else int(self.config.data.num_test_clips)

    @property
    def num_test_crops(self) -> int:
        return int(self.config.data.num_test_crops)

    @property
    def num_views(self) -> int:
        return self.num_test_clips * self.num_test_crops

    @property
    def num_videos(self) -> int:
        return int(self.info["splits"][self.split]["num_examples"])

    def header(self) -> dict:
        """The settings every metrics.json starts with."""
        return {"run": self.run.workdir, "model_family": self.run.model_name,
                "modality": self.modality, "checkpoint": self.checkpoint, "split": self.split,
                "build_dir": self.build_dir, "dataset": self.info.get("dataset", ""),
                "num_test_clips": self.num_test_clips, "num_test_crops": self.num_test_crops,
                "views_per_video": self.num_views}


def read_build(run, build_dir: str | None = None) -> tuple[str, dict]:
    """(build path, its dataset_info.json): ``build_dir``, else the build the run recorded."""
    from tfrecords import schema
    from trainers import workdir
    build = (build_dir or run.config.data.build_dir).rstrip("/")
    try:
        return build, schema.read_dataset_info(build)
    except FileNotFoundError:
        hint = "" if build_dir else f"; {workdir.missing_build_hint(run.workdir)}"
        raise RunError(f"no build at {build} (its dataset_info.json is missing){hint}") from None
    except ValueError as e:                         # includes SchemaVersionError
        raise RunError(f"{build}: {e}") from None


def default_split(info: Mapping) -> tuple[str, str]:
    """The split an evaluation reads when none is asked for, and why: the build's test split
    when it has labelled records, else its validation split ('val'); failing both, the
    split of the two that has records (its predictions, no scores)."""
    splits = info.get("splits", {})

    def records(name):
        return int((splits.get(name) or {}).get("num_examples", 0))

    def labelled(name):
        return records(name) - int((splits.get(name) or {}).get("unlabelled", 0)) > 0

    if labelled("test"):
        return "test", "the build's test split"
    why = ("its test split has no labels" if records("test") else "it has no test split")
    if labelled("val"):
        return "val", f"the build's validation split ({why})"
    for name in ("test", "val"):
        if records(name):
            return name, "no test or validation split of the build has labels: predictions only"
    return "test", "the build has no test or validation split"


def choose_split(run, build_dir: str | None = None) -> tuple[str, str]:
    """``default_split`` of the build the evaluation reads (``build_dir``, else the run's)."""
    return default_split(read_build(run, build_dir)[1])


def split_line(split: str, why: str, program: str = "evaluate") -> str:
    """The first line of an evaluation whose split was not asked for."""
    return f"[{program}] evaluating split {split!r}: {why} (--split chooses another)"


def plan_evaluation(run, *, split: str | None = None, checkpoint: str = "best",
                    build_dir: str | None = None, num_test_clips: int | None = None,
                    num_test_crops: int | None = None, batch_size: int | None = None,
                    out_dir: str | None = None) -> Plan:
    """Checks that the run, the build and the split fit together; RunError says what does
    not. ``split`` None: ``default_split``."""
    import ml_collections
    path = run.checkpoint_path(checkpoint)
    build, info = read_build(run, build_dir)
    if split is None:
        split = default_split(info)[0]
    modality = info.get("modality", "video")
    if modality != run.modality:
        raise RunError(f"the run trained on {run.modality} records but {build} holds "
                       f"{modality} records")
    splits = info.get("splits", {})
    if split not in splits:
        raise RunError(f"split {split!r} is not in {build}: it has "
                       f"{', '.join(sorted(splits)) or 'no splits'}")
    if not splits[split].get("num_examples"):
        raise RunError(f"split {split!r} of {build} has no records")
    classes = tuple(info.get("classes", ()))
    if len(classes) != len(run.classes):
        raise RunError(f"the run was trained on {len(run.classes)} classes but {build} has "
                       f"{len(classes)}: {_names(classes)}")
    if classes != run.classes:
        diff = [f"{i}: {a!r} vs {b!r}" for i, (a, b) in enumerate(zip(run.classes, classes))
                if a != b]
        raise RunError(f"{build} has the run's {len(classes)} classes under other names or in "
                       f"another order (run vs build at index {'; '.join(diff[:3])})")

    config = ml_collections.ConfigDict(run.config.to_dict())
    d = config.data
    d.build_dir, d.train_split, d.eval_split = build, split, split
    if num_test_clips is not None:
        d.num_test_clips = num_test_clips
    if num_test_crops is not None:
        d.num_test_crops = num_test_crops
    if modality == "image" and d.num_test_clips != 1:
        if num_test_clips is not None:
            raise RunError("an image has one clip: --num_test_clips must be 1 for image models")
        d.num_test_clips = 1
    if d.num_test_clips < 1:
        raise RunError(f"--num_test_clips must be >= 1, got {d.num_test_clips}")
    if d.num_test_crops not in (1, 3):
        raise RunError(f"--num_test_crops must be 1 or 3, got {d.num_test_crops}")
    if modality == "video" and d.sampling == "uniform" and d.num_test_clips > 1:
        raise RunError(f"the run samples frames 'uniform' (one clip spanning the video): "
                       f"--num_test_clips {d.num_test_clips} needs stride or segments sampling")
    try:
        data.load_build(config)                     # the trainer's own checks of a build
    except data.ConfigError as e:
        raise RunError(str(e)) from None
    config.lock()
    batch = batch_size if batch_size is not None else int(config.train.batch_size)
    if batch < 1:
        raise RunError(f"--batch_size must be >= 1, got {batch}")
    out = out_dir or os.path.join(run.workdir, "eval", split)
    return Plan(run=run, config=config, info=info, split=split, checkpoint=path,
                out_dir=out, batch_size=batch)


def _names(classes: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(classes[:limit])
    return shown + (f", ... ({len(classes)} in all)" if len(classes) > limit else "")


def check_model(model, plan: Plan) -> None:
    """The model's class count and input shape against the build and the reader's clips."""
    outputs = model.output_shape[-1]
    if outputs != len(plan.classes):
        raise RunError(f"the model in {plan.checkpoint} outputs {outputs} classes but "
                       f"{plan.build_dir} has {len(plan.classes)}")
    want = data.input_shape(plan.config, plan.info)
    have = tuple(model.input_shape[1:])
    if len(have) != len(want) or any(h is not None and h != w for h, w in zip(have, want)):
        what = "frames" if plan.modality == "video" else "images"
        raise RunError(f"the model in {plan.checkpoint} takes input {have} but the run's config "
                       f"reads {what} of shape {want} (data.num_frames, data.crop_size)")


def make_eval_dataset(plan: Plan):
    """Batches of (views uint8, label, metadata) of the plan's split, in record order: the
    clips of the trainer's validation input (``data.reader_kwargs``), in every view."""
    from tfrecords import reader
    make = reader.make_image_dataset if plan.modality == "image" else reader.make_dataset
    try:
        return make(plan.build_dir, plan.split, training=False, batch_size=plan.batch_size,
                    with_metadata=True, drop_remainder=False, cache=plan.config.data.cache,
                    **data.reader_kwargs(plan.config.data, plan.modality, training=False))
    except ValueError as e:
        raise RunError(f"cannot read {plan.split} of {plan.build_dir}: {e}") from None


# --------------------------------------------------------------------------
# Views to videos.
# --------------------------------------------------------------------------
@dataclasses.dataclass
class Views:
    """Model outputs of evaluation views: one row per view, any order."""
    video_index: np.ndarray      # int64 [M]: the record's position in the split
    video_id: list               # str [M]
    label: np.ndarray            # int64 [M]: class index, -1 when unlabelled
    view: np.ndarray             # int64 [M]: clip-major view number within its video
    outputs: np.ndarray          # float32 [M, K]: the model's output for the view

    @staticmethod
    def concat(parts: Sequence["Views"]) -> "Views":
        return Views(np.concatenate([p.video_index for p in parts]),
                     [v for p in parts for v in p.video_id],
                     np.concatenate([p.label for p in parts]),
                     np.concatenate([p.view for p in parts]),
                     np.concatenate([p.outputs for p in parts]))


def as_probabilities(outputs: np.ndarray) -> tuple[np.ndarray, str]:
    """Rows that are already distributions are kept; anything else (logits) gets a softmax."""
    x = np.asarray(outputs, dtype=np.float64)
    if x.size == 0 or ((x >= 0).all() and np.allclose(x.sum(axis=1), 1.0, atol=1e-3)):
        return x, "probabilities"
    z = np.exp(x - x.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True), "logits (softmax applied)"


def collect_videos(views: Views, num_views: int) -> report.Videos:
    """Groups views by video index, checks each video has all its views once, averages them."""
    order = np.lexsort((views.view, views.video_index))
    index = views.video_index[order]
    probs, kind = as_probabilities(views.outputs[order])
    if index.size % num_views:
        raise ValueError(f"{index.size} views are not a whole number of videos of {num_views}")
    n = index.size // num_views
    index = index.reshape(n, num_views)
    view = views.view[order].reshape(n, num_views)
    if not ((index == index[:, :1]).all() and (view == np.arange(num_views)).all()):
        raise ValueError("every video must come with views 0.."
                         f"{num_views - 1} exactly once")
    firsts = order.reshape(n, num_views)[:, 0]
    labels = views.label[order].reshape(n, num_views)
    if not (labels == labels[:, :1]).all():
        raise ValueError("views of one video carry different labels")
    return report.Videos(video_index=index[:, 0].astype(np.int64),
                         video_id=[views.video_id[i] for i in firsts],
                         label=labels[:, 0].astype(np.int64),
                         probs=probs.reshape(n, num_views, -1).mean(axis=1),
                         num_views=num_views, outputs=kind)


# --------------------------------------------------------------------------
# Single-process inference.
# --------------------------------------------------------------------------
def check_shards(plan: Plan, program: str = "evaluate") -> None:
    """The framing and CRCs of the split's shards; RunError naming a damaged one."""
    try:
        data.check_build(plan.build_dir, plan.info, [plan.split], on_corrupt="fail",
                         program=program)
    except data.CorruptData as e:
        raise RunError(str(e)) from None


def read_error(error: BaseException, plan: Plan, program: str = "evaluate") -> RunError | None:
    """A record tf.data could not read mid-run, as a one-line RunError naming its shard
    (None: ``error`` is not about the records)."""
    explained = data.explain_data_error(error, plan.build_dir, plan.info, [plan.split],
                                        f"{program} stopped; nothing was written")
    return RunError(str(explained)) if explained is not None else None


def predict_views(model, plan: Plan, progress: bool = True) -> Views:
    """Runs the model over every view of the split (single process)."""
    try:
        return _predict_views(model, plan, progress)
    except Exception as e:
        error = read_error(e, plan)
        if error is None:
            raise
        raise error from None


def _predict_views(model, plan: Plan, progress: bool) -> Views:
    dataset = make_eval_dataset(plan)
    parts: list[Views] = []
    with Progress(plan.num_videos, "evaluate", unit="videos", enabled=progress) as meter:
        _predict_batches(model, dataset, plan, parts, meter)
    if not parts:
        raise RunError(f"split {plan.split!r} of {plan.build_dir} yielded no records")
    return Views.concat(parts)


def _predict_batches(model, dataset, plan: Plan, parts: list, meter) -> None:
    """Appends each batch's views to ``parts``, counting videos on ``meter``."""
    videos = 0
    for video, label, meta in dataset:
        out = np.asarray(model.predict_on_batch(video), dtype=np.float32)
        ids = [v.decode("utf-8", "replace") for v in meta["video_id"].numpy()]
        parts.append(Views(meta["video_index"].numpy().astype(np.int64), ids,
                           label.numpy().astype(np.int64),
                           meta["view"].numpy().astype(np.int64), out))
        videos += out.shape[0] // plan.num_views
        meter.update(videos)


# --------------------------------------------------------------------------
# The evaluation.
# --------------------------------------------------------------------------
def evaluate(run, *, split: str | None = None, checkpoint: str = "best",
             build_dir: str | None = None,
             num_test_clips: int | None = None, num_test_crops: int | None = None,
             batch_size: int | None = None, out_dir: str | None = None,
             progress: bool = True, threshold: float | None = None) -> dict:
    """Evaluates ``run`` (``workdir.open_run``) on ``split`` (None: ``default_split``);
    writes the report, returns metrics."""
    if run.modality == "keypoints":
        if split is None:
            split = choose_split(run, build_dir)[0]
        return _evaluate_keypoints(run, split=split, checkpoint=checkpoint, build_dir=build_dir,
                                   num_test_clips=num_test_clips, num_test_crops=num_test_crops,
                                   batch_size=batch_size, out_dir=out_dir, threshold=threshold)
    if threshold is not None:
        raise RunError("--threshold applies to keypoint models with one sigmoid output")
    plan = plan_evaluation(run, split=split, checkpoint=checkpoint, build_dir=build_dir,
                           num_test_clips=num_test_clips, num_test_crops=num_test_crops,
                           batch_size=batch_size, out_dir=out_dir)
    check_shards(plan)
    model = run.load_model(plan.checkpoint)
    check_model(model, plan)
    views = predict_views(model, plan, progress)
    videos = collect_videos(views, plan.num_views)
    return report.write_report(plan.out_dir, videos, plan.classes, plan.header(),
                               report.action_groups(plan.info))


def _evaluate_keypoints(run, *, split, checkpoint, build_dir, num_test_clips, num_test_crops,
                        batch_size, out_dir, threshold=None) -> dict:
    """Keypoint models: trainers.keypoint_eval writes its own report."""
    if num_test_clips is not None or num_test_crops is not None:
        raise RunError("--num_test_clips and --num_test_crops apply to clip and image models; "
                       "keypoint models are evaluated over windows")
    if build_dir:
        import ml_collections
        config = ml_collections.ConfigDict(run.config.to_dict())
        config.data.build_dir = build_dir
        config.lock()
        run = dataclasses.replace(run, config=config)
    model = run.load_model(checkpoint)
    out = out_dir or os.path.join(run.workdir, "eval", split)
    batch = batch_size if batch_size is not None else int(run.config.train.batch_size)
    from trainers import keypoint_eval
    return keypoint_eval.evaluate_keypoints(run, model, split=split, out_dir=out,
                                            batch_size=batch, threshold=threshold,
                                            checkpoint=checkpoint)


def summary(result: Mapping, out_dir: str) -> str:
    """The lines printed at the end: what was evaluated, the numbers, where the files are."""
    if "frame" in result and "second" in result:        # a keypoint model's timelines
        from trainers import keypoint_eval
        return keypoint_eval.summary(dict(result), out_dir)
    counts = result.get("counts", {})
    head = (f"[evaluate] {result.get('model_family', '')} {result.get('run', '')} "
            f"({os.path.basename(str(result.get('checkpoint', '')))}) on "
            f"{result.get('split', '')} of {result.get('build_dir', '')}: "
            f"{counts.get('videos', '?')} videos x {result.get('views_per_video', 1)} view(s)")
    lines = [head]
    if "top1" in result:
        lines.append(f"[evaluate] top-1 {result['top1']:.4f} · top-{result['top5_k']} "
                     f"{result['top5']:.4f} · mean class accuracy "
                     f"{result['mean_class_accuracy']:.4f} · loss {result['loss']:.4f}")
        lines.append(f"[evaluate] report: {os.path.join(out_dir, 'classification_report.txt')}"
                     f" (metrics.json, per_class.csv, predictions.csv beside it)")
        plots = [os.path.join(out_dir, n) for n in ("confusion_matrix.png", "per_class_accuracy.png",
                                                       "confused_pairs.png", "action_groups.png")
                 if os.path.exists(os.path.join(out_dir, n))]
        lines.append(f"[evaluate] plots: {', '.join(plots)}")
    else:
        lines.append(f"[evaluate] the split has no labels: predictions in "
                     f"{os.path.join(out_dir, 'predictions.csv')}, counts in "
                     f"{os.path.join(out_dir, 'metrics.json')}")
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Command line.
# --------------------------------------------------------------------------


def settings(fv: flags.FlagValues) -> dict:
    if not fv.workdir:
        raise RunError("--workdir is required: the training workdir to evaluate")
    return dict(split=fv.split, checkpoint=fv.checkpoint, build_dir=fv.build_dir,
                num_test_clips=fv.num_test_clips, num_test_crops=fv.num_test_crops,
                batch_size=fv.batch_size, out_dir=fv.out_dir, threshold=fv.threshold)


def main(argv: list[str]) -> int:
    """Runs the evaluation from parsed flags; returns the exit code (2 for user mistakes)."""
    cli.started()
    from trainers import workdir
    if len(argv) > 1:
        print(f"error: unexpected arguments {argv[1:]}\nRun with --help to see every flag.",
              file=sys.stderr)
        return 2
    with cli.StopSignals() as signals:
        try:
            kwargs = settings(FLAGS)
            run = workdir.open_run(FLAGS.workdir)
            if kwargs["split"] is None:
                kwargs["split"], why = choose_split(run, kwargs["build_dir"])
                print(split_line(kwargs["split"], why), flush=True)
            result = evaluate(run, progress=FLAGS.progress, **kwargs)
            out = kwargs["out_dir"] or os.path.join(run.workdir, "eval", kwargs["split"])
            print(summary(result, out))
        except RunError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        except cli.Stopped as stop:
            return stopped(stop, "evaluate", "trainers.evaluate", signals)
    return 0


def stopped(stop, program: str, module: str, signals=None) -> int:
    """Prints the one line of a stopped evaluation; returns its exit status."""
    print(cli.stopped_line(program, stop, "nothing is kept (the report is written only "
                           "when the evaluation ends)", cli.command_line(module, sys.argv[1:])),
          file=sys.stderr, flush=True)
    return stop.exit_code


def evaluate_main(argv: list[str]) -> int:
    """Parses ``argv`` (argv[0] is the program name) and evaluates: for scripts and tests."""
    return main(cli.parse(FLAGS, argv, __name__))


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)),
            flags_parser=lambda argv: cli.parse(FLAGS, argv, __name__))
