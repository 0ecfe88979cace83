"""The evaluation report: metrics.json, the CSV and text tables, the plots.

One function, ``write_report``, for ``python -m trainers.evaluate`` and
``python -m trainers.beam_evaluate`` alike: given the videos' averaged class
probabilities (``Videos``, one row per video), it writes the files that
``trainers.evaluate``'s help (and EVALUATION.md) lists into ``out_dir``.

Action groups come from the build (``action_groups``): its dataset_info.json's
``class_groups`` (``{group: [class names]}``, written by ``python -m pipeline.build``
for datasets that have them, e.g. UCF101's five action types). A UCF101 build made
before builds recorded them gets UCF101's groups from ``pipeline.sources.ucf101``.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import os
from typing import Mapping, Sequence

import numpy as np

from trainers import metrics
from trainers.workdir import RunError

TOP_K = 5
MAX_ANNOTATED_CLASSES = 30      # confusion_matrix.png writes counts in cells up to this many
REPORT_FILES = ("metrics.json", "classification_report.txt", "per_class.csv",
                "confusion_matrix.csv", "confusion_matrix.png", "predictions.csv")


@dataclasses.dataclass
class Videos:
    """One row per video, in record order: the averaged probabilities of its views."""
    video_index: np.ndarray      # int64 [N]
    video_id: list               # str [N]
    label: np.ndarray            # int64 [N]
    probs: np.ndarray            # float64 [N, K]
    num_views: int
    outputs: str                 # "probabilities" or "logits (softmax applied)"


def action_groups(info: Mapping) -> dict[int, str] | None:
    """Class index -> action group of a build (its dataset_info), or None when it has none.

    The build's ``class_groups`` (``{group: [class names]}``) name them; classes it
    does not list belong to no group. A build without the key (made before builds
    recorded groups) of dataset "ucf101" gets UCF101's action types when every class
    is a UCF101 class.
    """
    classes = list(info.get("classes", ()))
    if "class_groups" in info:
        named = info.get("class_groups") or {}
    elif info.get("dataset") == "ucf101":
        from pipeline.sources import ucf101
        named = ucf101.class_groups(classes) or {}
    else:
        named = {}
    index = {name: i for i, name in enumerate(classes)}
    groups = {index[name]: group for group, names in named.items() for name in names
              if name in index}
    return groups or None


def write_report(out_dir: str, videos: Videos, classes: Sequence[str], header: Mapping,
                 groups: Mapping[int, str] | None = None) -> dict:
    """Writes every report file into ``out_dir``; returns the metrics (as in metrics.json).

    ``groups`` maps class indices to action groups (``action_groups`` of the build's
    info); with it, the accuracy of each group goes into metrics.json
    (``action_groups``) and action_groups.png.

    The files are written into a temporary folder inside ``out_dir`` and renamed into
    place when all are written, so an evaluation stopped while writing (a signal, an
    error) leaves the earlier report as it was and no half-written files.
    """
    import shutil
    import tempfile
    os.makedirs(out_dir, exist_ok=True)
    partial = tempfile.mkdtemp(prefix=".partial-report-", dir=out_dir)
    try:
        result = _write_report(partial, videos, classes, header, groups)
        written = [name for name in REPORT_FILES + ("action_groups.png",)
                   if os.path.exists(os.path.join(partial, name))]
        for name in REPORT_FILES + ("action_groups.png",):     # nothing stale from earlier
            path = os.path.join(out_dir, name)
            if os.path.exists(path) and name not in written:
                os.remove(path)
        for name in sorted(written, key=lambda n: n == "metrics.json"):   # metrics.json last
            os.replace(os.path.join(partial, name), os.path.join(out_dir, name))
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return result


def _write_report(out_dir, videos, classes, header, groups) -> dict:
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
        if groups:
            result["action_groups"] = metrics.group_accuracy(y, p, groups)
            kind = " ".join(filter(None, (str(header.get("dataset") or "").upper(),
                                          "action types")))
            plot_action_groups(result["action_groups"], result["top1"],
                               os.path.join(out_dir, "action_groups.png"),
                               f"{_run_name(header)} on {header.get('split', '')}: {kind}")
    _write_text(os.path.join(out_dir, "metrics.json"),
                json.dumps(result, indent=2, sort_keys=True) + "\n")
    return result


def _run_name(header: Mapping) -> str:
    return os.path.basename(str(header.get("run", "")).rstrip("/")) or "model"


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
