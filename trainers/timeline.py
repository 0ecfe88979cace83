"""Frame-wise probabilities → per-second means → labelled segments, and the scores of labels.

Pure numpy, no TensorFlow: ``trainers.keypoint_eval`` applies these to a whole
sequence of frame probabilities reassembled from a keypoint model's windows.

A frame-probability sequence is either binary, ``[T]`` (the probability of the
positive class, label 1), or multi-class, ``[T, K]`` (a distribution over K
classes). NaN marks a frame no prediction covered; such frames are left out of
every mean, and a second without any covered frame has no label (-1).

Seconds: frame ``i`` is at ``i / fps`` seconds and belongs to second
``floor(i / fps)``; second ``s`` spans ``[s, min(s + 1, T / fps))``, so the last
one may be partial and averages the frames it has::

    probs = np.array([.1, .2, .3, .4,  .9, .8, .7, .6,  .5, .5])   # fps 4
    second_means(probs, 4)          # [0.25, 0.75, 0.5]
    timeline(probs, 4, threshold=0.5)
    # [{"start_s": 0.0, "end_s": 1.0, "label": 0, "score": 0.75},
    #  {"start_s": 1.0, "end_s": 2.5, "label": 1, "score": 0.625}]

Labels: binary, 1 where the mean probability is >= ``threshold`` (else 0);
multi-class, the argmax (the lowest index on ties). A segment is a run of
consecutive seconds with the same label; its score is the mean, over its
seconds, of the per-second probability of its label (``1 - p`` for label 0 of a
binary model).
"""
from __future__ import annotations

import numpy as np

UNKNOWN = -1
_EPS = 1e-9


def _check_fps(fps: float) -> float:
    fps = float(fps)
    if not np.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a positive number, got {fps}")
    return fps


def second_of_frames(num_frames: int, fps: float) -> np.ndarray:
    """The second each frame falls in: int ``[T]``, ``floor(i / fps)``."""
    fps = _check_fps(fps)
    return np.floor(np.arange(int(num_frames)) / fps + _EPS).astype(np.int64)


def num_seconds(num_frames: int, fps: float) -> int:
    """How many (possibly partial) seconds ``num_frames`` frames span."""
    if int(num_frames) <= 0:
        return 0
    return int(second_of_frames(num_frames, fps)[-1]) + 1


def second_bounds(num_frames: int, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """``(start_s, end_s)`` float ``[S]``: second s spans [s, min(s + 1, T / fps))."""
    fps = _check_fps(fps)
    starts = np.arange(num_seconds(num_frames, fps), dtype=np.float64)
    return starts, np.minimum(starts + 1.0, int(num_frames) / fps)


def second_means(frame_probs, fps: float) -> np.ndarray:
    """Per-second means of frame probabilities: ``[S]`` or ``[S, K]``, NaN frames skipped.

    A second whose frames are all NaN is NaN.
    """
    probs = np.asarray(frame_probs, dtype=np.float64)
    if probs.ndim not in (1, 2):
        raise ValueError(f"frame probabilities must be [T] or [T, K], got shape {probs.shape}")
    t = probs.shape[0]
    seconds = second_of_frames(t, fps)
    rows = probs.reshape(t, 1 if probs.ndim == 1 else probs.shape[1])
    covered = np.isfinite(rows).all(axis=1)
    count = np.bincount(seconds[covered], minlength=num_seconds(t, fps)).astype(np.float64)
    total = np.zeros((len(count), rows.shape[1]))
    np.add.at(total, seconds[covered], rows[covered])
    with np.errstate(invalid="ignore", divide="ignore"):
        means = total / count[:, None]
    means[count == 0] = np.nan
    return means[:, 0] if probs.ndim == 1 else means


def predict_labels(probs, threshold: float | None = None) -> np.ndarray:
    """Labels of probability rows: binary ``[N]`` → 1 where p >= threshold, else 0;
    multi-class ``[N, K]`` → argmax. -1 where the probability is NaN."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim == 1:
        if threshold is None:
            raise ValueError("binary probabilities need a threshold")
        known = np.isfinite(probs)
        return np.where(known, (np.nan_to_num(probs) >= threshold).astype(np.int64), UNKNOWN)
    if probs.ndim != 2:
        raise ValueError(f"probabilities must be [N] or [N, K], got shape {probs.shape}")
    known = np.isfinite(probs).all(axis=1)
    return np.where(known, np.argmax(np.nan_to_num(probs, nan=-np.inf), axis=1), UNKNOWN)


def label_probs(probs, labels) -> np.ndarray:
    """The probability of each row's label: ``p`` for 1 and ``1 - p`` for 0 (binary), or
    ``probs[i, labels[i]]`` (multi-class); NaN where the label is -1."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    known = labels >= 0
    if probs.ndim == 1:
        out = np.where(labels == 1, probs, 1.0 - probs)
    else:
        out = probs[np.arange(len(labels)), np.where(known, labels, 0)]
    return np.where(known, out, np.nan)


def segments(labels, scores, starts, ends) -> list[dict]:
    """Runs of equal consecutive labels (-1 breaks a run and starts none), merged.

    ``labels``, ``scores``, ``starts``, ``ends``: one value per second. Each segment is
    ``{"start_s", "end_s", "label", "score"}`` with the mean score of its seconds.
    """
    labels = np.asarray(labels, dtype=np.int64)
    out: list[dict] = []
    i, n = 0, len(labels)
    while i < n:
        j = i
        while j + 1 < n and labels[j + 1] == labels[i]:
            j += 1
        if labels[i] >= 0:
            out.append({"start_s": float(starts[i]), "end_s": float(ends[j]),
                        "label": int(labels[i]),
                        "score": float(np.mean(np.asarray(scores[i:j + 1], dtype=np.float64)))})
        i = j + 1
    return out


def timeline(frame_probs, fps: float, threshold: float | None = None) -> list[dict]:
    """Frame probabilities → labelled segments of whole seconds (see the module docstring)."""
    probs = np.asarray(frame_probs, dtype=np.float64)
    means = second_means(probs, fps)
    labels = predict_labels(means, threshold)
    starts, ends = second_bounds(probs.shape[0], fps)
    return segments(labels, label_probs(means, labels), starts, ends)


def frame_segments(frame_labels, fps: float) -> list[tuple[float, float, int]]:
    """Runs of equal known frame labels as ``(start_s, end_s, label)``; frame i spans
    [i / fps, (i + 1) / fps). Unknown frames (-1) belong to no run."""
    fps = _check_fps(fps)
    labels = np.asarray(frame_labels, dtype=np.int64)
    out = []
    i, n = 0, len(labels)
    while i < n:
        j = i
        while j + 1 < n and labels[j + 1] == labels[i]:
            j += 1
        if labels[i] >= 0:
            out.append((i / fps, (j + 1) / fps, int(labels[i])))
        i = j + 1
    return out


def majority_labels(frame_labels, fps: float) -> np.ndarray:
    """The true label of each second: the most frequent known frame label in it (the lowest
    label on ties); -1 for a second without a labelled frame."""
    labels = np.asarray(frame_labels, dtype=np.int64)
    seconds = second_of_frames(len(labels), fps)
    out = np.full(num_seconds(len(labels), fps), UNKNOWN, dtype=np.int64)
    for s in range(len(out)):
        known = labels[(seconds == s) & (labels >= 0)]
        if len(known):
            out[s] = int(np.argmax(np.bincount(known)))
    return out


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else 0.0


def _prf(tp: float, fp: float, fn: float) -> tuple[float, float, float]:
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    return precision, recall, _ratio(2 * precision * recall, precision + recall)


def scores(truth, pred, *, num_classes: int, binary: bool) -> dict:
    """Accuracy, precision, recall, F1 and the confusion matrix of label sequences.

    Only positions where both ``truth`` and ``pred`` are known (>= 0) count. ``binary``:
    precision/recall/F1 of the positive class (label 1); otherwise their macro average over
    the classes that occur in the truth or the predictions. A ratio with a zero
    denominator is 0; with nothing to count, every score is None.
    """
    truth = np.asarray(truth, dtype=np.int64)
    pred = np.asarray(pred, dtype=np.int64)
    keep = (truth >= 0) & (pred >= 0)
    truth, pred = truth[keep], pred[keep]
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (truth, pred), 1)
    out = {"count": int(keep.sum()), "confusion": confusion.tolist()}
    if not len(truth):
        return {**out, "accuracy": None, "precision": None, "recall": None, "f1": None}
    tp = np.diag(confusion).astype(np.float64)
    fp = confusion.sum(axis=0) - tp
    fn = confusion.sum(axis=1) - tp
    if binary:
        precision, recall, f1 = _prf(tp[1], fp[1], fn[1])
    else:
        present = [c for c in range(num_classes) if confusion[c].sum() or confusion[:, c].sum()]
        per_class = np.array([_prf(tp[c], fp[c], fn[c]) for c in present])
        precision, recall, f1 = (float(x) for x in per_class.mean(axis=0))
    return {**out, "accuracy": float((truth == pred).mean()), "precision": precision,
            "recall": recall, "f1": f1}
