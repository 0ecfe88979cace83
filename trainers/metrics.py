"""Classification metrics in numpy: confusion matrix, top-k, per-class precision/recall/F1.

Labels are class indices ``0..K-1``; probabilities are ``[N, K]`` rows. Conventions, the
same everywhere in the reports of ``python -m trainers.evaluate``:

- a prediction's ranking sorts probabilities from high to low, ties in class-index order,
  so the top-1 class is ``argmax`` and top-k of a row holds exactly k classes;
- a ratio whose denominator is 0 (precision of a class never predicted, recall of a class
  with no examples) is 0;
- macro averages and the mean class accuracy are over the classes that have examples
  (support > 0); weighted averages weigh each class by its support.

    >>> cm = confusion_matrix([0, 0, 1, 2], [0, 1, 1, 2], num_classes=3)
    >>> per_class(cm)["recall"]
    array([0.5, 1. , 1. ])
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

EPSILON = 1e-7     # probabilities are clipped to [EPSILON, 1] before the log, as Keras does


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """int64 [K, K]: entry (i, j) counts examples of true class i predicted as class j."""
    y_true = np.asarray(y_true, dtype=np.int64).reshape(-1)
    y_pred = np.asarray(y_pred, dtype=np.int64).reshape(-1)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{y_true.size} true labels but {y_pred.size} predictions")
    for name, y in (("true", y_true), ("predicted", y_pred)):
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"{name} labels must be in [0, {num_classes}), got "
                             f"{y.min()}..{y.max()}")
    flat = np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes).astype(np.int64)


def ranking(probs, k: int | None = None) -> np.ndarray:
    """int [N, k]: class indices by falling probability (ties: lower index first)."""
    probs = np.asarray(probs)
    order = np.argsort(-probs, axis=-1, kind="stable")
    return order if k is None else order[..., :k]


def top_k_accuracy(probs, y_true, k: int) -> float:
    """Fraction of rows whose true class is among the k first of ``ranking``."""
    y_true = np.asarray(y_true, dtype=np.int64).reshape(-1)
    if not y_true.size:
        return float("nan")
    hits = (ranking(probs, k) == y_true[:, None]).any(axis=1)
    return float(hits.mean())


def cross_entropy(probs, y_true) -> float:
    """Mean of -log p(true class), p clipped to [EPSILON, 1]."""
    probs = np.asarray(probs, dtype=np.float64)
    y_true = np.asarray(y_true, dtype=np.int64).reshape(-1)
    if not y_true.size:
        return float("nan")
    p = np.clip(probs[np.arange(y_true.size), y_true], EPSILON, 1.0)
    return float(-np.log(p).mean())


def _ratio(num, den) -> np.ndarray:
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def per_class(confusion) -> dict[str, np.ndarray]:
    """precision, recall, f1 (float64 [K]) and support (int64 [K]) of each class."""
    cm = np.asarray(confusion, dtype=np.int64)
    correct = np.diag(cm)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    precision = _ratio(correct, predicted)
    recall = _ratio(correct, support)
    f1 = _ratio(2 * precision * recall, precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def mean_class_accuracy(confusion) -> float:
    """Mean recall over the classes that have examples."""
    stats = per_class(confusion)
    present = stats["support"] > 0
    return float(stats["recall"][present].mean()) if present.any() else float("nan")


def accuracy(confusion) -> float:
    cm = np.asarray(confusion)
    total = cm.sum()
    return float(np.trace(cm) / total) if total else float("nan")


def averages(confusion) -> dict[str, dict[str, float]]:
    """'macro' (classes with support) and 'weighted' (by support) precision, recall, f1."""
    stats = per_class(confusion)
    support = stats["support"]
    present = support > 0
    out = {}
    for name, weights in (("macro", present.astype(np.float64)),
                          ("weighted", support.astype(np.float64))):
        total = weights.sum()
        out[name] = {key: float((stats[key] * weights).sum() / total) if total else float("nan")
                     for key in ("precision", "recall", "f1")}
        out[name]["support"] = int(support.sum())
    return out


def classification_report(confusion, class_names: Sequence[str], digits: int = 4) -> str:
    """A text table: precision, recall, F1 and support per class, then accuracy and averages."""
    stats = per_class(confusion)
    avg = averages(confusion)
    total = int(stats["support"].sum())
    headers = ("precision", "recall", "f1-score", "support")
    width = max([len(n) for n in class_names] + [len("weighted avg"), digits + 2])
    col = max(len(h) for h in headers) + 1

    def row(name, values, support):
        cells = "".join(f"{v:>{col}.{digits}f}" if v is not None else " " * col for v in values)
        return f"{name:>{width}}{cells}{support:>{col}}"

    lines = [" " * width + "".join(f"{h:>{col}}" for h in headers), ""]
    for i, name in enumerate(class_names):
        lines.append(row(name, (stats["precision"][i], stats["recall"][i], stats["f1"][i]),
                         int(stats["support"][i])))
    lines.append("")
    lines.append(row("accuracy", (None, None, accuracy(confusion)), total))
    for key in ("macro", "weighted"):
        a = avg[key]
        lines.append(row(f"{key} avg", (a["precision"], a["recall"], a["f1"]), total))
    return "\n".join(lines) + "\n"


def group_accuracy(y_true, y_pred, class_group: Mapping[int, str]) -> dict[str, dict]:
    """Accuracy of the examples of each group of classes: {group: {accuracy, correct, videos}}.

    ``class_group`` maps a class index to its group; classes it lacks belong to none.
    Groups are listed in the order of their first class index; groups without examples
    are left out.
    """
    y_true = np.asarray(y_true, dtype=np.int64).reshape(-1)
    y_pred = np.asarray(y_pred, dtype=np.int64).reshape(-1)
    out: dict[str, dict] = {}
    for group in dict.fromkeys(class_group[i] for i in sorted(class_group)):
        members = [i for i, g in class_group.items() if g == group]
        mask = np.isin(y_true, members)
        n = int(mask.sum())
        if n:
            correct = int((y_pred[mask] == y_true[mask]).sum())
            out[group] = {"accuracy": correct / n, "correct": correct, "videos": n}
    return out
