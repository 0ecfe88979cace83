"""A run's curves: ``history.csv`` read back and drawn.

``history.csv`` (Keras's ``CSVLogger``, appended across resumes) holds one row per epoch
started; a resumed run may log an epoch twice, and the latest row of an epoch counts::

    h = curves.read_history("runs/demo/history.csv")      # {"epoch": [...], "loss": [...]}
    best = curves.plot_curves("runs/demo/history.csv", "runs/demo/curves.png",
                              "val_accuracy", "max")     # the best epoch, counted from 1
"""
from __future__ import annotations

import os


def read_history(path: str) -> dict[str, list[float]]:
    """history.csv as columns; a resumed run's repeated epochs keep their last values."""
    import csv
    rows: dict[int, dict] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            rows[int(row["epoch"])] = row
    columns: dict[str, list[float]] = {}
    for epoch in sorted(rows):
        for key, value in rows[epoch].items():
            columns.setdefault(key, []).append(float(value))
    return columns


def plot_curves(history_csv: str, out_png: str, monitor: str, mode: str) -> int:
    """Loss and accuracy, train vs validation, best epoch marked; returns the best epoch."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    h = read_history(history_csv)
    epochs = [int(e) + 1 for e in h["epoch"]]
    scores = h.get(monitor) or h.get("loss")
    pick = max if mode == "max" else min
    best = epochs[scores.index(pick(scores))]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key in zip(axes, ("loss", "accuracy")):
        if key in h:
            ax.plot(epochs, h[key], "o-", label=f"train {key}")
        if f"val_{key}" in h:
            ax.plot(epochs, h[f"val_{key}"], "s-", label=f"validation {key}")
        ax.axvline(best, color="grey", linestyle="--", label=f"best epoch {best} ({monitor})")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return best


def epochs_in(history_csv: str) -> int:
    """Distinct epochs logged in history.csv (0 when there is none)."""
    if not os.path.isfile(history_csv):
        return 0
    try:
        return len(read_history(history_csv).get("epoch", []))
    except (OSError, ValueError, KeyError):
        return 0
