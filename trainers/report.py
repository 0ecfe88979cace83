"""The evaluation report: metrics.json, the CSV and text tables, the plots.

One function, ``write_report``, for ``python -m trainers.evaluate`` and
``python -m trainers.beam_evaluate`` alike: given the videos' averaged class
probabilities (``Videos``, one row per video), it writes the files that
``trainers.evaluate``'s help (and EVALUATION.md) lists into ``out_dir``.

Pictures: ``confusion_matrix.png``, ``per_class_accuracy.png`` (each class's accuracy,
worst first), ``confused_pairs.png`` (the most confused class pairs, each with a few of
its videos' frames read back from the build's records by video id) and, for builds with
action groups, ``action_groups.png``. Colours are Okabe & Ito's colour-blind-safe ones, and
no picture tells things apart by colour alone.

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
                "confusion_matrix.csv", "confusion_matrix.png", "per_class_accuracy.png",
                "predictions.csv")
# Written when they apply: builds with action groups; evaluations with a confusion.
OPTIONAL_FILES = ("action_groups.png", "confused_pairs.png")
MAX_PAIRS = 6                   # confused_pairs.png: the most confused pairs ...
CLIPS_PER_PAIR = 3              # ... with at most this many of their videos each ...
PAIR_FRAMES = 8                 # ... and this many of each video's stored frames
BLUE, VERMILLION = "#0072B2", "#D55E00"     # Okabe & Ito


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
        written = [name for name in REPORT_FILES + OPTIONAL_FILES
                   if os.path.exists(os.path.join(partial, name))]
        for name in REPORT_FILES + OPTIONAL_FILES:     # nothing stale from earlier
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
        plot_per_class_accuracy(cm, classes, os.path.join(out_dir, "per_class_accuracy.png"),
                                f"{_run_name(header)} on {header.get('split', '')}: accuracy "
                                f"of each class", result["mean_class_accuracy"], result["top1"])
        pairs = confused_pairs(cm, videos, predicted, classes)
        if pairs:
            draw_confused_pairs(pairs, cm, classes, header,
                                os.path.join(out_dir, "confused_pairs.png"))
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


# --------------------------------------------------------------------------
# Per-class accuracy and the most confused pairs.
# --------------------------------------------------------------------------
def plot_per_class_accuracy(cm, classes: Sequence[str], path: str, title: str = "",
                            mean_class_accuracy: float | None = None,
                            top1: float | None = None) -> None:
    """Horizontal bars: the accuracy (recall) of every class with videos, worst first, each
    with right / videos; the mean class accuracy dashed, top-1 dotted. The figure grows with
    the class count (a quarter inch a class)."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    cm = np.asarray(cm)
    support = cm.sum(axis=1)
    have = [i for i in range(len(classes)) if support[i] > 0]
    accuracy = {i: cm[i, i] / support[i] for i in have}
    order = sorted(have, key=lambda i: (accuracy[i], str(classes[i]).lower()))
    k = max(1, len(order))
    longest = max([len(str(classes[i])) for i in order] + [8])
    height = 1.6 + 0.26 * k
    fig = Figure(figsize=(9.5 + 0.06 * min(longest, 40), height))
    ax = fig.add_subplot()
    y = np.arange(len(order))
    values = [accuracy[i] for i in order]
    ax.barh(y, values, height=0.7, color=BLUE, edgecolor="black", linewidth=0.4)
    font = 9 if k <= 40 else 8
    for row, i in enumerate(order):
        text = f" {accuracy[i]:.3f} ({int(cm[i, i])}/{int(support[i])})"
        inside = accuracy[i] > 0.55
        ax.text(accuracy[i] - 0.01 if inside else accuracy[i], row, text, va="center",
                ha="right" if inside else "left", fontsize=font,
                color="white" if inside else "black")
    lines = []
    if mean_class_accuracy is not None:
        ax.axvline(mean_class_accuracy, color=VERMILLION, linestyle="--", linewidth=1.5)
        lines.append(f"dashed: mean class accuracy {mean_class_accuracy:.3f}")
    if top1 is not None:
        ax.axvline(top1, color="black", linestyle=":", linewidth=1.5)
        lines.append(f"dotted: top-1 {top1:.3f}")
    ax.set_yticks(y)
    ax.set_yticklabels([str(classes[i]) for i in order], fontsize=font)
    ax.set_ylim(len(order) - 0.5, -0.5)
    ax.set_xlim(0, 1)
    missing = len(classes) - len(have)
    ax.set_xlabel("accuracy: right / videos of the class" + (f" ({missing} classes without "
                                                              f"videos left out)" if missing
                                                             else ""))
    if k > 25:
        ax.tick_params(axis="x", labeltop=True)
    if title or lines:
        ax.set_title("\n".join(filter(None, [title, " · ".join(lines)])), fontsize=10,
                     pad=18 if k > 25 else 6)
    ax.grid(axis="x", alpha=0.3)
    top = 0.75 + (0.25 if k > 25 else 0)
    fig.subplots_adjust(left=min(0.4, 0.03 + 0.0075 * min(longest, 40) + 0.02), right=0.97,
                        top=1 - top / height, bottom=0.55 / height)
    fig.savefig(path, dpi=100)


def confused_pairs(cm, videos: Videos, predicted: np.ndarray, classes: Sequence[str],
                   max_pairs: int = MAX_PAIRS, per_pair: int = CLIPS_PER_PAIR) -> list[dict]:
    """The most confused (true, predicted) pairs, most videos first (ties: the larger share
    of the true class, then class order), each with its most confidently wrong videos:
    [{"true", "predicted", "count", "videos": [(row, video_id, p(predicted), p(true))]}]."""
    cm = np.asarray(cm)
    support = cm.sum(axis=1)
    cells = [(int(cm[i, j]), cm[i, j] / support[i], i, j) for i in range(len(classes))
             for j in range(len(classes)) if i != j and cm[i, j] > 0]
    cells.sort(key=lambda c: (-c[0], -c[1], c[2], c[3]))
    out = []
    for count, _, i, j in cells[:max_pairs]:
        rows = np.flatnonzero((videos.label == i) & (predicted == j))
        rows = sorted(rows, key=lambda r: -videos.probs[r, j])[:per_pair]
        out.append({"true": i, "predicted": j, "count": count,
                    "videos": [(int(r), str(videos.video_id[r]), float(videos.probs[r, j]),
                                float(videos.probs[r, i])) for r in rows]})
    return out


def read_clips(build_dir: str, split: str, video_ids, max_frames: int = PAIR_FRAMES) -> dict:
    """{video_id: (frames uint8 [n, H, W, 3], captions)} of the records of ``split`` whose
    video id is wanted: up to ``max_frames`` evenly spaced stored frames each, captioned with
    their frame number in the source and time. Reads the split's shards in order and stops
    when every id is found."""
    import tensorflow as tf
    from tfrecords import schema
    wanted = set(video_ids)
    info = schema.read_dataset_info(build_dir)
    found: dict = {}
    spec = {schema.VIDEO_FILENAME: tf.io.FixedLenFeature([], tf.string, default_value="")}
    for shard in (info.get("splits") or {}).get(split, {}).get("shards") or []:
        for raw in tf.data.TFRecordDataset(build_dir.rstrip("/") + "/" + shard):
            ctx, _ = tf.io.parse_single_sequence_example(raw, context_features=spec)
            video_id = ctx[schema.VIDEO_FILENAME].numpy().decode()
            if video_id not in wanted or video_id in found:
                continue
            p = schema.parse_clip(raw)
            n = int(p["num_frames"])
            shown = sorted({int(round(i * (n - 1) / max(1, max_frames - 1)))
                            for i in range(min(n, max_frames))}) if n > 1 else [0]
            frames = schema.decode_frames(tf.gather(p["frames"], shown),
                                          p["image_format"].numpy().decode(), int(p["height"]),
                                          int(p["width"])).numpy()
            numbers = p["source_indices"].numpy().tolist()
            times = p["timestamps_us"].numpy().tolist()
            captions = [f"#{numbers[i] if i < len(numbers) else i}"
                        + (f" {times[i] / 1e6:.2f}s" if i < len(times) and float(p["fps"]) > 0
                           else "") for i in shown]
            found[video_id] = (frames, captions)
            if len(found) == len(wanted):
                return found
    return found


def draw_confused_pairs(pairs: list[dict], cm, classes: Sequence[str], header: Mapping,
                        path: str) -> tuple[int, int]:
    """The most confused pairs as a PNG: a band per pair (true → predicted, how many of the
    class's videos, the count the other way), then a row per example video: its id, the
    probabilities of the predicted and the true class, and its stored frames (read from the
    build's records; a note where they cannot be read). Returns (width, height)."""
    import logging

    from PIL import Image, ImageDraw

    from trainers.overlay import fit, font, frame_row
    cm = np.asarray(cm)
    build_dir = str(header.get("build_dir") or "")
    split = str(header.get("split") or "")
    ids = [v[1] for pair in pairs for v in pair["videos"]]
    clips: dict = {}
    problem = ""
    if build_dir:
        try:
            clips = read_clips(build_dir, split, ids)
        except Exception as e:  # noqa: BLE001 - the pictures are extra: the report stands
            problem = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            logging.getLogger(__name__).warning("confused_pairs.png: cannot read frames from "
                                                "%s: %s", build_dir, problem)
    text_w, thumb, pad = 330, 72, 10
    bold, plain, small, title_f = font(14, True), font(12), font(11), font(16, True)
    blocks = []
    for pair in pairs:
        rows = []
        for _, video_id, p_pred, p_true in pair["videos"]:
            clip = clips.get(video_id)
            rows.append((video_id, p_pred, p_true,
                         frame_row(*clip, height=thumb) if clip else None))
        blocks.append((pair, rows))
    row_h = thumb + 16 + pad
    width = max([900] + [text_w + r[3].width + 2 * pad for _, rows in blocks for r in rows
                         if r[3] is not None])
    height = 70 + sum(34 + len(rows) * row_h + pad for _, rows in blocks)
    image = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(image)
    run = os.path.basename(str(header.get("run", "")).rstrip("/")) or "model"
    d.text((pad, pad), fit(f"{run} on {split}: the {len(pairs)} most confused class pairs",
                           title_f, width - 2 * pad), fill="black", font=title_f)
    d.text((pad, pad + 24), fit("true class → predicted class; rows: up to "
                                f"{CLIPS_PER_PAIR} of its videos, the most confidently wrong "
                                "first, with frames stored in " + (build_dir or "the build"),
                                small, width - 2 * pad), fill="#444444", font=small)
    y = 60
    for pair, rows in blocks:
        i, j = pair["true"], pair["predicted"]
        support = int(cm[i].sum())
        d.rectangle([0, y, width, y + 28], fill="#E8E8E8")
        line = (f"{classes[i]} → predicted {classes[j]}: {pair['count']} of {support} "
                f"videos ({pair['count'] / support:.0%})")
        back = int(cm[j, i])
        tail = f"   ({classes[j]} → {classes[i]}: {back})"
        d.text((pad, y + 6), fit(line, bold, width - 2 * pad - 200), fill="black", font=bold)
        d.text((width - pad - min(200, int(plain.getlength(tail))), y + 7),
               fit(tail, plain, 200), fill="#333333", font=plain)
        y += 34
        for video_id, p_pred, p_true, strip in rows:
            d.text((pad, y + 4), fit(video_id, plain, text_w - 2 * pad), fill="black",
                   font=plain)
            d.text((pad, y + 22), fit(f"p({classes[j]}) {p_pred:.2f}", small,
                                      text_w - 2 * pad), fill=VERMILLION, font=small)
            d.text((pad, y + 38), fit(f"p({classes[i]}) {p_true:.2f}", small,
                                      text_w - 2 * pad), fill=BLUE, font=small)
            if strip is not None:
                image.paste(strip, (text_w, y))
            else:
                note = ("frames not found in " + build_dir) if not problem else \
                    f"frames unavailable ({problem})"
                d.rectangle([text_w, y, width - pad, y + thumb], outline="#BBBBBB")
                d.text((text_w + 8, y + thumb // 2 - 7), fit(note, small, width - text_w - 24),
                       fill="#666666", font=small)
            y += row_h
        y += pad
    image.save(path, optimize=True)
    return image.size
