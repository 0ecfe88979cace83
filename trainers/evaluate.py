r"""Evaluates a trained model on a split of a build: the numbers and pictures people read.

    python -m trainers.evaluate --workdir runs/demo --split test
    python -m trainers.evaluate --workdir runs/ucf101 --split test --num_test_clips 10 \
        --num_test_crops 3 --checkpoint last --batch_size 4
    python -m trainers.evaluate --workdir runs/ucf101 --split test \
        --build_dir records/ucf101/split1_uniform32_short128_jpeg90

Clip and image models read every video of the split as the run's config reads its
evaluation split (sampling, frames, crop size), in ``--num_test_clips`` x
``--num_test_crops`` views per video, and average the views' class probabilities per video
(views are matched to their video by the record index the reader attaches, never by
position in a batch). Keypoint models are handed to ``trainers.keypoint_eval``.

Written into WORKDIR/eval/SPLIT/ (or --out_dir):

    metrics.json               top-1, top-5, mean class accuracy, loss, counts, settings
    classification_report.txt  precision, recall, F1 and support per class, averages
    per_class.csv              the same numbers as a table
    confusion_matrix.csv       rows: true class, columns: predicted class
    confusion_matrix.png       the matrix as a heatmap, coloured by the fraction of each row
    predictions.csv            per video: true and predicted class, probability, top 5
    action_groups.png          UCF101 builds: accuracy of each of the five action types

A split without labels (label -1, e.g. Jester's test split) gets predictions.csv and a
metrics.json with counts only. The same evaluation runs as an Apache Beam pipeline with
``python -m trainers.beam_evaluate`` (see EVALUATION.md).
"""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import sys
import time
from typing import Any, Mapping, Sequence

import numpy as np
from absl import app, flags

from trainers import cli, metrics
from trainers.workdir import RunError

# A FlagValues of its own: every entry point that uses a trained model takes --workdir,
# and several of them may be imported into one process (tests, the Beam workers).
FLAGS = flags.FlagValues()
TOP_K = 5
MAX_ANNOTATED_CLASSES = 30      # confusion_matrix.png writes counts in cells up to this many
REPORT_FILES = ("metrics.json", "classification_report.txt", "per_class.csv",
                "confusion_matrix.csv", "confusion_matrix.png", "predictions.csv")


def define_flags(fv: flags.FlagValues) -> None:
    """The flags of an evaluation (shared by trainers.evaluate and trainers.beam_evaluate)."""
    flags.DEFINE_string("workdir", None, "The training workdir to evaluate (python -m "
                        "trainers.train --workdir ...).", flag_values=fv)
    flags.DEFINE_string("split", "test", "Which split of the build to evaluate on.",
                        flag_values=fv)
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


def plan_evaluation(run, *, split: str = "test", checkpoint: str = "best",
                    build_dir: str | None = None, num_test_clips: int | None = None,
                    num_test_crops: int | None = None, batch_size: int | None = None,
                    out_dir: str | None = None) -> Plan:
    """Checks that the run, the build and the split fit together; RunError says what does not."""
    import ml_collections
    from tfrecords import schema
    from trainers import train
    path = run.checkpoint_path(checkpoint)
    build = (build_dir or run.config.data.build_dir).rstrip("/")
    try:
        info = schema.read_dataset_info(build)
    except FileNotFoundError:
        raise RunError(f"no build at {build} (its dataset_info.json is missing)") from None
    except ValueError as e:                         # includes SchemaVersionError
        raise RunError(f"{build}: {e}") from None
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
        train.load_build(config)                    # the trainer's own checks of a build
    except train.ConfigError as e:
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


def input_shape(plan: Plan) -> tuple:
    """The input shape (without batch) the reader produces for this plan."""
    d = plan.config.data
    size = (int(d.crop_size), int(d.crop_size))
    return size + (3,) if plan.modality == "image" else (int(d.num_frames),) + size + (3,)


def check_model(model, plan: Plan) -> None:
    """The model's class count and input shape against the build and the reader's clips."""
    outputs = model.output_shape[-1]
    if outputs != len(plan.classes):
        raise RunError(f"the model in {plan.checkpoint} outputs {outputs} classes but "
                       f"{plan.build_dir} has {len(plan.classes)}")
    want = input_shape(plan)
    have = tuple(model.input_shape[1:])
    if len(have) != len(want) or any(h is not None and h != w for h, w in zip(have, want)):
        what = "frames" if plan.modality == "video" else "images"
        raise RunError(f"the model in {plan.checkpoint} takes input {have} but the run's config "
                       f"reads {what} of shape {want} (data.num_frames, data.crop_size)")


def reader_args(config, modality: str) -> dict:
    """The evaluation reader's arguments for a config, as ``trainers.train.make_input`` maps
    them for its validation split (centre crops, no augmentation), plus the test views."""
    d = config.data
    if modality == "image":
        return dict(crop_size=d.crop_size, crop="center", num_test_crops=d.num_test_crops,
                    cache=d.cache)
    return dict(num_frames=d.num_frames, sampling=d.sampling, stride=d.stride,
                short=d.short if d.short != "error" else "loop", crop_size=d.crop_size,
                crop="center", resize_shorter=d.resize_shorter or None,
                num_test_clips=d.num_test_clips, num_test_crops=d.num_test_crops, cache=d.cache)


def make_eval_dataset(plan: Plan):
    """Batches of (views uint8, label, metadata) of the plan's split, in record order."""
    from tfrecords import reader
    make = reader.make_image_dataset if plan.modality == "image" else reader.make_dataset
    try:
        return make(plan.build_dir, plan.split, training=False, batch_size=plan.batch_size,
                    with_metadata=True, drop_remainder=False,
                    **reader_args(plan.config, plan.modality))
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


@dataclasses.dataclass
class Videos:
    """One row per video, in record order: the averaged probabilities of its views."""
    video_index: np.ndarray      # int64 [N]
    video_id: list               # str [N]
    label: np.ndarray            # int64 [N]
    probs: np.ndarray            # float64 [N, K]
    num_views: int
    outputs: str                 # "probabilities" or "logits (softmax applied)"


def as_probabilities(outputs: np.ndarray) -> tuple[np.ndarray, str]:
    """Rows that are already distributions are kept; anything else (logits) gets a softmax."""
    x = np.asarray(outputs, dtype=np.float64)
    if x.size == 0 or ((x >= 0).all() and np.allclose(x.sum(axis=1), 1.0, atol=1e-3)):
        return x, "probabilities"
    z = np.exp(x - x.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True), "logits (softmax applied)"


def collect_videos(views: Views, num_views: int) -> Videos:
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
    return Videos(video_index=index[:, 0].astype(np.int64),
                  video_id=[views.video_id[i] for i in firsts],
                  label=labels[:, 0].astype(np.int64),
                  probs=probs.reshape(n, num_views, -1).mean(axis=1),
                  num_views=num_views, outputs=kind)


# --------------------------------------------------------------------------
# Single-process inference.
# --------------------------------------------------------------------------
class Progress:
    """'[evaluate] done/total videos (pct) · rate · elapsed · ETA' on stderr, every 2 s."""

    def __init__(self, total: int, enabled: bool = True, stream=None, interval: float = 2.0,
                 prefix: str = "[evaluate]"):
        self.total, self.enabled, self.interval, self.prefix = total, enabled, interval, prefix
        self.stream = stream or sys.stderr
        self.start = time.monotonic()
        self._last_print = -math.inf
        self.done = 0

    def line(self) -> str:
        elapsed = time.monotonic() - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        pct = 100.0 * self.done / self.total if self.total else 100.0
        eta = _seconds((self.total - self.done) / rate) if rate > 0 else "?"
        return (f"{self.prefix} {self.done}/{self.total} videos ({pct:.1f}%) · "
                f"{rate:.1f} videos/s · elapsed {_seconds(elapsed)} · ETA {eta}")

    def update(self, done: int, final: bool = False) -> None:
        self.done = done
        now = time.monotonic()
        if self.enabled and (final or now - self._last_print >= self.interval):
            print(self.line(), file=self.stream, flush=True)
            self._last_print = now


def _seconds(s: float) -> str:
    s = int(round(s))
    m, sec = divmod(s, 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{sec:02d}s" if h else (f"{m}m{sec:02d}s" if m else f"{sec}s")


def predict_views(model, plan: Plan, progress: bool = True) -> Views:
    """Runs the model over every view of the split (single process)."""
    dataset = make_eval_dataset(plan)
    meter = Progress(plan.num_videos, progress)
    parts = []
    videos = 0
    for video, label, meta in dataset:
        out = np.asarray(model.predict_on_batch(video), dtype=np.float32)
        ids = [v.decode("utf-8", "replace") for v in meta["video_id"].numpy()]
        parts.append(Views(meta["video_index"].numpy().astype(np.int64), ids,
                           label.numpy().astype(np.int64),
                           meta["view"].numpy().astype(np.int64), out))
        videos += out.shape[0] // plan.num_views
        meter.update(videos)
    meter.update(videos, final=True)
    if not parts:
        raise RunError(f"split {plan.split!r} of {plan.build_dir} yielded no records")
    return Views.concat(parts)


# --------------------------------------------------------------------------
# The report (one function for the single-process and the Beam evaluation).
# --------------------------------------------------------------------------
def write_report(out_dir: str, videos: Videos, classes: Sequence[str], header: Mapping,
                 dataset: str = "") -> dict:
    """Writes every report file into ``out_dir``; returns the metrics (as in metrics.json)."""
    os.makedirs(out_dir, exist_ok=True)
    for name in REPORT_FILES + ("action_groups.png",):     # nothing stale from an earlier run
        path = os.path.join(out_dir, name)
        if os.path.exists(path):
            os.remove(path)
    k_classes = len(classes)
    k = min(TOP_K, k_classes)
    if videos.probs.shape[1] != k_classes:
        raise RunError(f"the model outputs {videos.probs.shape[1]} classes but the build has "
                       f"{k_classes}")
    labelled = videos.label >= 0
    if (videos.label >= k_classes).any():
        raise RunError(f"records carry labels up to {int(videos.label.max())} but the build has "
                       f"{k_classes} classes")
    top = metrics.ranking(videos.probs, k)
    predicted = top[:, 0]
    y, p = videos.label[labelled], predicted[labelled]
    per_class_count = np.bincount(y, minlength=k_classes)
    result = dict(header)
    result["num_classes"] = k_classes
    result["outputs"] = videos.outputs
    result["counts"] = {"videos": int(videos.label.size),
                        "views": int(videos.label.size * videos.num_views),
                        "labelled": int(labelled.sum()),
                        "unlabelled": int((~labelled).sum()),
                        "per_class": {c: int(n) for c, n in zip(classes, per_class_count)}}
    _write_predictions(os.path.join(out_dir, "predictions.csv"), videos, classes, top)
    if labelled.any():
        cm = metrics.confusion_matrix(y, p, k_classes)
        avg = metrics.averages(cm)
        result.update({
            "top1": metrics.accuracy(cm),
            "top5": metrics.top_k_accuracy(videos.probs[labelled], y, k),
            "top5_k": k,
            "mean_class_accuracy": metrics.mean_class_accuracy(cm),
            "loss": metrics.cross_entropy(videos.probs[labelled], y),
            "macro_f1": avg["macro"]["f1"],
            "weighted_f1": avg["weighted"]["f1"],
        })
        _write_text(os.path.join(out_dir, "classification_report.txt"),
                    metrics.classification_report(cm, classes))
        _write_per_class(os.path.join(out_dir, "per_class.csv"), cm, classes)
        _write_confusion_csv(os.path.join(out_dir, "confusion_matrix.csv"), cm, classes)
        title = (f"{_run_name(header)} on {header.get('split', '')}: {int(labelled.sum())} "
                 f"videos, top-1 {result['top1']:.3f}")
        plot_confusion_matrix(cm, classes, os.path.join(out_dir, "confusion_matrix.png"), title)
        groups = ucf101_groups(classes) if dataset == "ucf101" else None
        if groups:
            result["action_groups"] = metrics.group_accuracy(y, p, groups)
            plot_action_groups(result["action_groups"], result["top1"],
                               os.path.join(out_dir, "action_groups.png"),
                               f"{_run_name(header)} on {header.get('split', '')}: UCF101 "
                               "action types")
    _write_text(os.path.join(out_dir, "metrics.json"),
                json.dumps(result, indent=2, sort_keys=True) + "\n")
    return result


def _run_name(header: Mapping) -> str:
    return os.path.basename(str(header.get("run", "")).rstrip("/")) or "model"


def ucf101_groups(classes: Sequence[str]) -> dict[int, str] | None:
    """Class index -> UCF101 action type when every class is a UCF101 class, else None."""
    from configs import ucf101_action_groups
    groups = {i: ucf101_action_groups.group_of(c) for i, c in enumerate(classes)}
    return groups if groups and all(groups.values()) else None


def _write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def _fmt(x: float) -> str:
    return f"{x:.6f}"


def _write_predictions(path: str, videos: Videos, classes: Sequence[str], top: np.ndarray):
    k = top.shape[1]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["index", "video_id", "true_label", "predicted_label", "probability",
                    "true_label_probability", "correct"]
                   + [f"top{r + 1}_{what}" for r in range(k) for what in ("label", "probability")])
        for i in range(videos.label.size):
            label = int(videos.label[i])
            probs = videos.probs[i]
            pred = int(top[i, 0])
            row = [int(videos.video_index[i]), videos.video_id[i],
                   classes[label] if label >= 0 else "", classes[pred], _fmt(probs[pred]),
                   _fmt(probs[label]) if label >= 0 else "",
                   int(pred == label) if label >= 0 else ""]
            for c in top[i]:
                row += [classes[int(c)], _fmt(probs[int(c)])]
            w.writerow(row)


def _write_per_class(path: str, cm: np.ndarray, classes: Sequence[str]):
    stats = metrics.per_class(cm)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["class", "precision", "recall", "f1", "support", "predicted"])
        predicted = cm.sum(axis=0)
        for i, name in enumerate(classes):
            w.writerow([name, f"{stats['precision'][i]:.4f}", f"{stats['recall'][i]:.4f}",
                        f"{stats['f1'][i]:.4f}", int(stats["support"][i]), int(predicted[i])])


def _write_confusion_csv(path: str, cm: np.ndarray, classes: Sequence[str]):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["true \\ predicted", *classes])
        for name, row in zip(classes, cm):
            w.writerow([name, *(int(v) for v in row)])


def plot_confusion_matrix(cm, classes: Sequence[str], path: str, title: str = "") -> None:
    """A heatmap of the confusion matrix, coloured by the fraction of each true class.

    The figure and the fonts scale with the class count; counts are written in the cells
    only when there are at most MAX_ANNOTATED_CLASSES classes.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    cm = np.asarray(cm)
    k = len(classes)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=np.float64), where=rows > 0)
    side = float(np.clip(0.2 * k + 3.0, 5.0, 32.0))        # 0.2 inch = 14 points a class
    font = float(np.clip(220.0 / k, 5.5, 11.0))
    fig, ax = plt.subplots(figsize=(side + 1.2, side))
    image = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    ticks = np.arange(k)
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.set_xticklabels(classes, rotation=90 if k > 8 else 45, ha="center" if k > 8 else "right",
                       fontsize=font)
    ax.set_yticklabels(classes, fontsize=font)
    if k > MAX_ANNOTATED_CLASSES:
        ax.tick_params(length=0)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if k <= MAX_ANNOTATED_CLASSES:
        for i in range(k):
            for j in range(k):
                if cm[i, j]:
                    ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=font,
                            color="white" if norm[i, j] > 0.5 else "black")
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02)
    bar.set_label("fraction of the true class")
    if title:
        ax.set_title(title, fontsize=max(font, 9.0))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_action_groups(groups: Mapping[str, Mapping], overall: float, path: str,
                       title: str = "") -> None:
    """Horizontal bars: accuracy of each action type, its video count, overall top-1 dashed."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = list(groups)
    values = [groups[n]["accuracy"] for n in names]
    fig, ax = plt.subplots(figsize=(8, 1.0 + 0.6 * len(names)))
    y = np.arange(len(names))
    ax.barh(y, values, color="tab:blue")
    for i, n in enumerate(names):
        ax.text(min(values[i], 0.98), i, f" {values[i]:.3f} ({groups[n]['videos']} videos)",
                va="center", ha="right" if values[i] > 0.6 else "left",
                color="white" if values[i] > 0.6 else "black")
    ax.axvline(overall, color="grey", linestyle="--")
    ax.set_yticks(y)
    ax.set_yticklabels(names)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"accuracy (dashed line: overall top-1 {overall:.3f})")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --------------------------------------------------------------------------
# The evaluation.
# --------------------------------------------------------------------------
def evaluate(run, *, split: str = "test", checkpoint: str = "best", build_dir: str | None = None,
             num_test_clips: int | None = None, num_test_crops: int | None = None,
             batch_size: int | None = None, out_dir: str | None = None,
             progress: bool = True, threshold: float | None = None) -> dict:
    """Evaluates ``run`` (``workdir.open_run``) on ``split``; writes the report, returns metrics."""
    if run.modality == "keypoints":
        return _evaluate_keypoints(run, split=split, checkpoint=checkpoint, build_dir=build_dir,
                                   num_test_clips=num_test_clips, num_test_crops=num_test_crops,
                                   batch_size=batch_size, out_dir=out_dir, threshold=threshold)
    if threshold is not None:
        raise RunError("--threshold applies to keypoint models with one sigmoid output")
    plan = plan_evaluation(run, split=split, checkpoint=checkpoint, build_dir=build_dir,
                           num_test_clips=num_test_clips, num_test_crops=num_test_crops,
                           batch_size=batch_size, out_dir=out_dir)
    model = run.load_model(plan.checkpoint)
    check_model(model, plan)
    views = predict_views(model, plan, progress)
    videos = collect_videos(views, plan.num_views)
    return write_report(plan.out_dir, videos, plan.classes, plan.header(),
                        plan.info.get("dataset", ""))


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
        plots = [os.path.join(out_dir, n) for n in ("confusion_matrix.png", "action_groups.png")
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
print_help, parse = cli.print_help, cli.parse


def settings(fv: flags.FlagValues) -> dict:
    if not fv.workdir:
        raise RunError("--workdir is required: the training workdir to evaluate")
    return dict(split=fv.split, checkpoint=fv.checkpoint, build_dir=fv.build_dir,
                num_test_clips=fv.num_test_clips, num_test_crops=fv.num_test_crops,
                batch_size=fv.batch_size, out_dir=fv.out_dir, threshold=fv.threshold)


def main(argv: list[str]) -> int:
    """Runs the evaluation from parsed flags; returns the exit code (2 for user mistakes)."""
    from trainers import workdir
    if len(argv) > 1:
        print(f"error: unexpected arguments {argv[1:]}\nRun with --help to see every flag.",
              file=sys.stderr)
        return 2
    try:
        kwargs = settings(FLAGS)
        run = workdir.open_run(FLAGS.workdir)
        result = evaluate(run, progress=FLAGS.progress, **kwargs)
    except RunError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = kwargs["out_dir"] or os.path.join(run.workdir, "eval", kwargs["split"])
    print(summary(result, out))
    return 0


def evaluate_main(argv: list[str]) -> int:
    """Parses ``argv`` (argv[0] is the program name) and evaluates: for scripts and tests."""
    return main(parse(FLAGS, argv, __name__))


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)),
            flags_parser=lambda argv: parse(FLAGS, argv, __name__))
