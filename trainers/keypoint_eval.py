"""Offline evaluation of keypoint (pose) models: frame probabilities, timelines, plots, metrics.

``python -m trainers.evaluate --workdir W --split test`` calls ``evaluate_keypoints``
for a run whose records are keypoint sequences (family ``keypoint_rnn``, single
models and weighted-mean ensembles alike: an ensemble is one Keras model)::

    run = workdir.open_run(W)
    metrics = evaluate_keypoints(run, run.load_model("best"), split="test",
                                 out_dir=f"{W}/eval/test", batch_size=32)

Steps:

1. read every window of every sequence of the split, in order, with the run's
   windowing (``data.window``, ``data.window_shift``: ``trainers.data.reader_kwargs``;
   the reader of training, ``tfrecords.reader.make_keypoint_dataset``, with
   ``target="frames"``);
2. run the model on them and put each window's frame-wise probabilities back at
   its frames: a frame covered by several windows gets their mean, a frame no
   window covers stays NaN;
3. per sequence, average frames into seconds at the record's ``video/fps`` and
   cut labelled segments (``trainers.timeline``): binary models (one sigmoid
   unit) label a second positive when its mean probability is >= ``threshold``,
   multi-class models take the argmax;
4. score frames and seconds against the frame labels (``frame/label/index``;
   -1 = unlabelled, left out); a second's truth is its majority frame label. Frames
   also get the loss the trainer logs: the mean cross-entropy of the labelled frames
   (``frame_losses``). Padding is no frame of a sequence, so it never counts: the
   trainer's validation accuracy and loss (sample weights 0 on padding and unlabelled
   frames, ``trainers.data.frame_weights``) equal these where windows do not overlap.

Everything lands in ``out_dir``::

    metrics.json                 frame- and second-level scores (frames also the loss), counts,
                                 threshold, split,
                                 checkpoint, one summary per video
    timelines/<video_id>.json    [{"start_s", "end_s", "label", "score"}, ...]
    timelines/<video_id>.png     probability over time (frames and per-second means), threshold,
                                 true segments shaded
    timelines/<video_id>.npz     the plotted data: frame_probs, frame_labels, second_*,
                                 true_segments (start_s, end_s, label), fps, threshold
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from typing import Any

import numpy as np

from pipeline.progress import Progress
from trainers import data as data_lib
from trainers import timeline
from trainers.metrics import EPSILON
from trainers.workdir import RunError

DEFAULT_THRESHOLD = 0.5


# --------------------------------------------------------------------------
# Checks: the run, the split, the model.
# --------------------------------------------------------------------------
def _output_kind(run, model, threshold):
    """(binary, units, threshold) after checking the model's frame-wise output."""
    shape = tuple(model.output_shape) if not isinstance(model.output_shape, list) else None
    if shape is None or len(shape) != 3:
        raise RunError(f"a keypoint model must output frame-wise probabilities [batch, frames, "
                       f"classes]; this one outputs {model.output_shape}")
    units = shape[-1]
    binary = run.frame_binary()
    want = 1 if binary else len(run.classes)
    if units != want:
        raise RunError(f"the model outputs {units} value(s) per frame but the run expects "
                       f"{want} ({'one sigmoid unit' if binary else 'one per class'}: "
                       f"{', '.join(run.classes)}); is this checkpoint from another run?")
    if binary:
        threshold = DEFAULT_THRESHOLD if threshold is None else float(threshold)
        if not 0.0 <= threshold <= 1.0:
            raise RunError(f"threshold must be in [0, 1], got {threshold}")
    elif threshold is not None:
        raise RunError(f"a threshold applies to binary models (one sigmoid unit); this one "
                       f"picks the most probable of {len(run.classes)} classes")
    return binary, units, threshold


def _check_input(model, expected: tuple):
    """The model takes [batch, window, features] as the run's records give them."""
    shape = model.input_shape
    if isinstance(shape, list):
        raise RunError(f"a keypoint model takes one input, this one takes {len(shape)}")
    got = tuple(shape)[1:]
    if len(got) != len(expected) or any(g is not None and g != e
                                        for g, e in zip(got, expected)):
        raise RunError(f"the model takes inputs of shape {got} (frames, features) but the "
                       f"run's records and config give {tuple(expected)}: window "
                       f"(data.window) x people*points*coords")


def _open_split(run, split: str):
    from tfrecords import reader
    from trainers import workdir
    build = run.config.data.build_dir
    try:
        return reader.open_source(build, split, modalities=("keypoints",))
    except FileNotFoundError as e:
        raise RunError(f"the run's build {build} cannot be read: {e}; "
                       f"{workdir.missing_build_hint(run.workdir)}") from None
    except ValueError as e:
        raise RunError(str(e)) from None


# --------------------------------------------------------------------------
# Reading and predicting.
# --------------------------------------------------------------------------
def read_sequences(files) -> list[dict]:
    """Per record, in reading order: ``video_id``, ``fps``, ``frame_labels`` int [T]."""
    from tfrecords import reader, schema

    def fields(serialized):
        rec = schema.parse_keypoints(serialized)
        return rec["video_id"], rec["fps"], rec["frame_labels"]

    ds = reader.read(files, training=False, deterministic=True).map(fields)
    out = []
    for video_id, fps, labels in ds.as_numpy_iterator():
        out.append({"video_id": video_id.decode("utf-8", "replace"), "fps": float(fps),
                    "frame_labels": labels.astype(np.int64)})
    return out


def _add_windows(model, features, meta, lengths, sums, counts) -> None:
    """Adds one batch of windows' probabilities to their frames' sums and counts."""
    out = np.asarray(model.predict_on_batch(features["keypoints"]), dtype=np.float64)
    videos = meta["video_index"].numpy()
    frames = meta["frame_indices"].numpy()
    for b, video in enumerate(videos):
        if video >= len(lengths):
            raise RunError("the split's records changed while they were read")
        keep = frames[b] >= 0
        sums[video][frames[b][keep]] += out[b][keep]
        counts[video][frames[b][keep]] += 1


def predict_frames(model, dataset, lengths: list[int], units: int) -> list[np.ndarray]:
    """Frame-wise probabilities ``[T, units]`` per sequence from the windows of ``dataset``
    (``make_keypoint_dataset(..., with_metadata=True)`` in evaluation order): the mean over
    the windows that cover a frame, NaN where none does."""
    sums = [np.zeros((n, units)) for n in lengths]
    counts = [np.zeros(n) for n in lengths]
    with Progress(len(lengths), "evaluate", unit="sequences") as progress:
        for features, _, meta in dataset:
            _add_windows(model, features, meta, lengths, sums, counts)
            # windows come in sequence order: every sequence before the current one is done
            progress.update(int(meta["video_index"].numpy()[-1]))
        progress.update(len(lengths))
    probs = []
    for total, count in zip(sums, counts):
        with np.errstate(invalid="ignore", divide="ignore"):
            p = total / count[:, None]
        p[count == 0] = np.nan
        probs.append(p)
    return probs


# --------------------------------------------------------------------------
# Outputs.
# --------------------------------------------------------------------------
def file_stems(video_ids: list[str]) -> list[str]:
    """Safe, unique file names for the video ids (``video_<i>`` when an id is empty)."""
    stems, seen = [], set()
    for i, vid in enumerate(video_ids):
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", vid).strip("._") or f"video_{i}"
        base, k = stem, 1
        while stem in seen:
            k += 1
            stem = f"{base}_{k}"
        seen.add(stem)
        stems.append(stem)
    return stems


def sequence_data(frame_probs: np.ndarray, frame_labels: np.ndarray, fps: float,
                  threshold: float | None) -> dict[str, np.ndarray]:
    """Everything the timeline, the plot and the scores of one sequence use, as arrays.

    ``frame_probs``: ``[T]`` (binary) or ``[T, K]``.
    """
    second_probs = timeline.second_means(frame_probs, fps)
    second_pred = timeline.predict_labels(second_probs, threshold)
    starts, ends = timeline.second_bounds(len(frame_labels), fps)
    truth = timeline.frame_segments(frame_labels, fps)
    return {
        "fps": np.float64(fps),
        "threshold": np.float64(np.nan if threshold is None else threshold),
        "frame_probs": frame_probs,
        "frame_labels": np.asarray(frame_labels, dtype=np.int64),
        "frame_pred": timeline.predict_labels(frame_probs, threshold),
        "second_start_s": starts,
        "second_end_s": ends,
        "second_probs": second_probs,
        "second_pred": second_pred,
        "second_score": timeline.label_probs(second_probs, second_pred),
        "second_truth": timeline.majority_labels(frame_labels, fps),
        "true_segments": np.asarray(truth, dtype=np.float64).reshape(-1, 3),
    }


def frame_losses(frame_probs, frame_labels) -> np.ndarray:
    """Cross-entropy of each labelled frame that has a probability, the probability clipped
    to [EPSILON, 1 - EPSILON] as Keras does: -log p(true class); ``frame_probs`` ``[T]``
    (binary: p of the positive class) or ``[T, K]``."""
    probs = np.asarray(frame_probs, dtype=np.float64)
    labels = np.asarray(frame_labels, dtype=np.int64)
    known = np.isfinite(probs) if probs.ndim == 1 else np.isfinite(probs).all(axis=1)
    keep = known & (labels >= 0)
    if probs.ndim == 1:
        p = np.clip(probs[keep], EPSILON, 1 - EPSILON)
        p = np.where(labels[keep] == 1, p, 1 - p)
    else:
        rows = probs[keep]
        p = np.clip(rows[np.arange(len(rows)), labels[keep]] / rows.sum(axis=1),
                    EPSILON, 1 - EPSILON)
    return -np.log(p)


def plot_sequence(path: str, data: dict[str, np.ndarray], classes, title: str):
    """Probability over time: per frame (thin) and per-second means (bars), the threshold,
    true segments shaded (binary: those of the positive class)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    probs = data["frame_probs"]
    binary = probs.ndim == 1
    fps = float(data["fps"])
    t = (np.arange(len(probs)) + 0.5) / fps            # frame i spans [i / fps, (i + 1) / fps)
    colours = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(10, 3.4))
    shaded = set()
    for start, end, label in data["true_segments"]:
        label = int(label)
        if binary and label != 1:
            continue
        ax.axvspan(start, end, color=colours(label % 10) if not binary else "tab:green",
                   alpha=0.18, lw=0,
                   label=None if label in shaded else f"true {classes[label]}")
        shaded.add(label)
    columns = [probs] if binary else [probs[:, k] for k in range(probs.shape[1])]
    means = [data["second_probs"]] if binary else [data["second_probs"][:, k]
                                                   for k in range(probs.shape[1])]
    for k, (frame_p, second_p) in enumerate(zip(columns, means)):
        colour = "tab:blue" if binary else colours(k % 10)
        name = f"P({classes[1]})" if binary else classes[k]
        ax.plot(t, frame_p, color=colour, lw=0.9, alpha=0.55,
                label=f"{name} per frame" if binary else None)
        ax.hlines(second_p, data["second_start_s"], data["second_end_s"], color=colour, lw=2.5,
                  label=f"{name} per second" if binary else name)
    if binary:
        ax.axhline(float(data["threshold"]), color="grey", ls="--",
                   label=f"threshold {float(data['threshold']):g}")
    ax.set_xlim(0, len(probs) / fps)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("probability")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _write_json(path: str, data, sort_keys: bool = True):
    with open(path, "w") as f:
        json.dump(data, f, indent=2, sort_keys=sort_keys)
        f.write("\n")


# --------------------------------------------------------------------------
# The evaluation.
# --------------------------------------------------------------------------
def evaluate_keypoints(run, model, split: str = "test", out_dir: str | None = None,
                       batch_size: int = 32, *, threshold: float | None = None,
                       checkpoint: str | None = None) -> dict[str, Any]:
    """Evaluates a keypoint model on ``split`` of the run's build; writes into ``out_dir``
    (default ``<workdir>/eval/<split>``) and returns the metrics written to metrics.json.

    Raises ``RunError`` when the run is not a keypoint run, the split has no records, or the
    model does not fit the run (input window/features, output units, threshold).
    """
    import ml_collections
    import tensorflow as tf

    from tfrecords import reader
    from trainers.data import input_shape, keypoint_shape, reader_kwargs

    if run.modality != "keypoints":
        raise RunError(f"{run.workdir} trained on {run.modality} records; keypoint evaluation "
                       "needs a run on keypoint records")
    if int(batch_size) < 1:
        raise RunError(f"batch size must be >= 1, got {batch_size}")
    binary, units, threshold = _output_kind(run, model, threshold)
    source = _open_split(run, split)
    build = run.config.data.build_dir
    try:                      # the framing and CRCs of the split's shards, before reading
        data_lib.check_build(build, source.info, [split], on_corrupt="fail",
                             program="evaluate")
    except data_lib.CorruptData as e:
        raise RunError(str(e)) from None
    if source.classes and tuple(source.classes) != tuple(run.classes):
        raise RunError(f"{run.config.data.build_dir} has classes {', '.join(source.classes)} "
                       f"but the run trained on {', '.join(run.classes)}")
    # the trainer's shape of the records and of the model input, read from this split
    config = ml_collections.ConfigDict(run.config.to_dict())
    config.data.train_split = split
    try:
        people, points, coords = keypoint_shape(config, source.info)
        _check_input(model, input_shape(config, source.info))
    except (tf.errors.OpError, KeyError, IndexError) as e:
        raise RunError(f"cannot read {split} of {config.data.build_dir}: {e}") from None

    try:
        sequences = read_sequences(source.files)
    except Exception as e:
        _raise_read_error(e, build, source.info, split)
        raise
    for seq in sequences:
        if not seq["fps"] > 0:
            raise RunError(f"record {seq['video_id']!r} of {split} has no frame rate "
                           "(video/fps), so its frames cannot be put into seconds")
    d = run.config.data
    # the run's windows, every one of them in order, scored frame by frame
    windows = dict(reader_kwargs(d, "keypoints", training=False), target="frames")
    dataset = reader.make_keypoint_dataset(
        d.build_dir, split, training=False, batch_size=int(batch_size), num_people=people,
        num_points=points, num_coords=coords, with_metadata=True, **windows)
    try:
        probs = predict_frames(model, dataset, [len(s["frame_labels"]) for s in sequences],
                               units)
    except Exception as e:
        _raise_read_error(e, build, source.info, split)
        raise

    out_dir = out_dir or os.path.join(run.workdir, "eval", split)
    os.makedirs(out_dir, exist_ok=True)
    # Written beside, then renamed into place: a stopped evaluation leaves no half set.
    final_timelines = os.path.join(out_dir, "timelines")
    timelines_dir = tempfile.mkdtemp(prefix=".partial-timelines-", dir=out_dir)
    try:
        metrics = _write_timelines(run, split, sequences, probs,
                                   timelines_dir=timelines_dir, binary=binary,
                                   threshold=threshold, source=source, checkpoint=checkpoint)
        if os.path.isdir(final_timelines):
            shutil.rmtree(final_timelines)
        os.rename(timelines_dir, final_timelines)
    finally:
        shutil.rmtree(timelines_dir, ignore_errors=True)
    _write_json(os.path.join(out_dir, "metrics.json"), metrics)
    return metrics


def _raise_read_error(error: BaseException, build: str, info, split: str) -> None:
    """A record tf.data could not read, as one line naming its shard (else returns)."""
    explained = data_lib.explain_data_error(error, build, info or {}, [split],
                                            "evaluate stopped; nothing was written")
    if explained is not None:
        raise RunError(str(explained)) from None


def _write_timelines(run, split, sequences, probs, *, timelines_dir, binary,
                     threshold, source, checkpoint) -> dict[str, Any]:
    """Writes each sequence's timeline files into ``timelines_dir``; returns the metrics."""
    d = run.config.data
    classes = list(run.classes)
    stems = file_stems([s["video_id"] for s in sequences])
    frame_truth, frame_pred, second_truth, second_pred, per_video = [], [], [], [], []
    losses = []
    with Progress(len(sequences), "timelines", unit="sequences") as bar:
        for seq, p, stem in zip(sequences, probs, stems):
            bar.update(len(per_video))
            data = sequence_data(p[:, 0] if binary else p, seq["frame_labels"], seq["fps"],
                                 threshold)
            segs = timeline.segments(data["second_pred"], data["second_score"],
                                     data["second_start_s"], data["second_end_s"])
            for seg in segs:
                seg["label"] = classes[seg["label"]]
            _write_json(os.path.join(timelines_dir, f"{stem}.json"), segs, sort_keys=False)
            np.savez(os.path.join(timelines_dir, f"{stem}.npz"), **data)
            frame = timeline.scores(data["frame_labels"], data["frame_pred"],
                                    num_classes=len(classes), binary=binary)
            plot_sequence(os.path.join(timelines_dir, f"{stem}.png"), data, classes,
                          f"{seq['video_id']} ({split}): frame accuracy "
                          + ("n/a" if frame["accuracy"] is None else f"{frame['accuracy']:.3f}"))
            losses.append(frame_losses(data["frame_probs"], data["frame_labels"]))
            frame_truth.append(data["frame_labels"])
            frame_pred.append(data["frame_pred"])
            second_truth.append(data["second_truth"])
            second_pred.append(data["second_pred"])
            per_video.append({
                "video_id": seq["video_id"], "file": stem, "frames": len(seq["frame_labels"]),
                "seconds": len(data["second_pred"]), "segments": len(segs),
                "frame_accuracy": frame["accuracy"],
                "second_accuracy": timeline.scores(data["second_truth"], data["second_pred"],
                                                   num_classes=len(classes),
                                                   binary=binary)["accuracy"]})
        bar.update(len(per_video))
    cat = lambda parts: np.concatenate(parts) if parts else np.zeros(0, np.int64)  # noqa: E731
    frames = timeline.scores(cat(frame_truth), cat(frame_pred), num_classes=len(classes),
                             binary=binary)
    losses = np.concatenate(losses) if losses else np.zeros(0)
    frames["loss"] = float(losses.mean()) if losses.size else None
    seconds = timeline.scores(cat(second_truth), cat(second_pred), num_classes=len(classes),
                              binary=binary)
    all_labels = cat(frame_truth)
    metrics = {
        "run": run.workdir, "model_family": run.model_name, "modality": "keypoints",
        "checkpoint": checkpoint, "split": split, "build_dir": d.build_dir,
        "dataset": (source.info or {}).get("dataset", ""), "classes": classes,
        "output": "binary" if binary else "multiclass",
        "positive_class": classes[1] if binary else None,
        "threshold": threshold,
        "averaging": "positive class" if binary else "macro",
        "accuracy": frames["accuracy"], "loss": frames["loss"],
        "frame": frames, "second": seconds,
        "counts": {
            "videos": len(sequences),
            "frames": int(len(all_labels)),
            "labelled_frames": int((all_labels >= 0).sum()),
            "predicted_frames": int(sum(np.isfinite(p).all(axis=1).sum() for p in probs)),
            "seconds": int(len(cat(second_pred))),
            "labelled_seconds": int((cat(second_truth) >= 0).sum()),
        },
        "window": int(d.window), "window_shift": int(d.window_shift or d.window),
        "videos": per_video,
    }
    return metrics


def summary(metrics: dict, out_dir: str) -> str:
    """The lines to print after an evaluation: what was evaluated, the scores, the files."""
    c = metrics["counts"]
    fmt = lambda x: "n/a" if x is None else f"{x:.4f}"  # noqa: E731
    what = (f"{metrics['positive_class']!r} at threshold {metrics['threshold']:g}"
            if metrics["output"] == "binary" else "macro over classes")
    lines = [f"[evaluate] {metrics['model_family']} {metrics['run']} ({metrics['checkpoint']}) "
             f"on {metrics['split']} of {metrics['build_dir']}: {c['videos']} sequences, "
             f"{c['frames']} frames ({c['labelled_frames']} labelled), {c['seconds']} seconds"]
    for level in ("frame", "second"):
        m = metrics[level]
        loss = f" · loss {fmt(m['loss'])}" if "loss" in m else ""
        lines.append(f"[evaluate] {level}s: accuracy {fmt(m['accuracy'])} · precision "
                     f"{fmt(m['precision'])} · recall {fmt(m['recall'])} · F1 {fmt(m['f1'])}"
                     f"{loss} ({what}; {m['count']} {level}s)")
    lines.append(f"[evaluate] metrics: {os.path.join(out_dir, 'metrics.json')}; timelines and "
                 f"plots: {os.path.join(out_dir, 'timelines')}/<video_id>.json|png|npz")
    return "\n".join(lines)
