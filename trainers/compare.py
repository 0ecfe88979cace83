r"""Compares evaluated runs: a table of their metrics and a grouped bar chart.

    python -m trainers.compare runs/gesture_cnn_gru runs/gesture_conv3d runs/gesture_mnet
    python -m trainers.compare runs/a runs/b --split val --metric top1 --metric loss \
        --out compare_val.png

Reads WORKDIR/eval/SPLIT/metrics.json of every run (written by ``python -m
trainers.evaluate``), prints one row per run (run = the workdir's folder name, model family,
top-1, top-5, mean class accuracy, loss, videos) and draws the ``--metric`` values side by
side, one group of bars per metric (accuracies on a 0..1 axis, the loss on its own).
"""
from __future__ import annotations

import json
import math
import os
import sys
from typing import Sequence

from pipeline import cli

cli.quiet_unless_verbose(__name__)    # before TensorFlow and Beam load (unless --verbose)
cli.stop_while_starting(__name__, "compare")    # one line, not a traceback

from absl import app, flags

from trainers.workdir import RunError

FLAGS = flags.FlagValues()
flags.DEFINE_string("split", "test", "Which evaluation to read: WORKDIR/eval/SPLIT/metrics.json.",
                    flag_values=FLAGS)
flags.DEFINE_multi_string("metric", ["top1", "top5", "mean_class_accuracy"],
                          "A metric of metrics.json to draw (repeat the flag, or give a comma "
                          "list): top1, top5, mean_class_accuracy, loss, macro_f1, weighted_f1.",
                          flag_values=FLAGS)
flags.DEFINE_string("out", "compare.png", "Where to write the bar chart.", flag_values=FLAGS)

COLUMNS = (("run", "run"), ("family", "model_family"), ("top-1", "top1"), ("top-5", "top5"),
           ("mean class acc", "mean_class_accuracy"), ("loss", "loss"), ("videos", "videos"))
LABELS = {"top1": "top-1", "top5": "top-5", "mean_class_accuracy": "mean class accuracy",
          "loss": "loss", "macro_f1": "macro F1", "weighted_f1": "weighted F1"}
UNBOUNDED = ("loss",)          # drawn on their own axis, not 0..1


def read_run(workdir: str, split: str) -> dict:
    """One run's row: its metrics.json plus its name and model family."""
    path = os.path.join(workdir, "eval", split, "metrics.json")
    if not os.path.isdir(workdir):
        raise RunError(f"{workdir} does not exist")
    if not os.path.isfile(path):
        raise RunError(f"run {workdir} has no evaluation of split {split!r} yet ({path} is "
                       f"missing): run python -m trainers.evaluate --workdir {workdir} "
                       f"--split {split}")
    try:
        with open(path) as f:
            result = json.load(f)
    except ValueError as e:
        raise RunError(f"{path} is not valid JSON: {e}") from None
    family = result.get("model_family")
    if not family:
        try:
            with open(os.path.join(workdir, "config.json")) as f:
                family = json.load(f).get("model_name", "")
        except (OSError, ValueError):
            family = ""
    row = dict(result)
    row["run"] = os.path.basename(os.path.normpath(workdir))
    row["model_family"] = family or "?"
    row["videos"] = (result.get("counts") or {}).get("videos")
    return row


def read_runs(workdirs: Sequence[str], split: str) -> list[dict]:
    rows = [read_run(w, split) for w in workdirs]
    names = [r["run"] for r in rows]
    for row, workdir in zip(rows, workdirs):
        if names.count(row["run"]) > 1:          # same folder name in two places: full path
            row["run"] = os.path.normpath(workdir)
    return rows


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def table(rows: Sequence[dict]) -> str:
    """The rows as an aligned text table (one header line, one line per run)."""
    cells = [[h for h, _ in COLUMNS]] + [[_cell(r.get(k)) for _, k in COLUMNS] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    lines = []
    for n, line in enumerate(cells):
        parts = [c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))]
        lines.append("  ".join(parts).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def metric_names(requested: Sequence[str], rows: Sequence[dict]) -> list[str]:
    """The --metric values (comma lists split), each checked to be a number of some run."""
    names = [m.strip() for item in requested for m in item.split(",") if m.strip()]
    if not names:
        raise RunError("--metric needs at least one metric name")
    numeric = sorted({k for r in rows for k, v in r.items()
                      if isinstance(v, (int, float)) and not isinstance(v, bool)
                      and k not in ("videos",)})
    for name in names:
        if not any(isinstance(r.get(name), (int, float)) for r in rows):
            raise RunError(f"no run has a metric {name!r} in its metrics.json; they have "
                           f"{', '.join(numeric) or 'no numbers'}")
    return list(dict.fromkeys(names))


# Okabe & Ito's colour-blind-safe colours; past eight runs the colours repeat with hatches.
COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
           "#000000")
HATCHES = ("", "//", "..", "xx")
MAX_LEGEND_CHARS = 48        # longer run names are shortened in the middle


def short_name(name: str, limit: int = MAX_LEGEND_CHARS) -> str:
    """``name`` shortened in the middle with an ellipsis to at most ``limit`` characters."""
    if len(name) <= limit:
        return name
    head = (limit - 1) // 2
    return name[:head] + "…" + name[len(name) - (limit - 1 - head):]


def run_style(i: int) -> dict:
    """Bar style of run ``i``: an Okabe–Ito colour, and a hatch from the ninth run on."""
    colour = COLOURS[i % len(COLOURS)]
    return {"color": colour, "hatch": HATCHES[(i // len(COLOURS)) % len(HATCHES)],
            "edgecolor": "white" if colour == "#000000" else "black", "linewidth": 0.5}


def plot(rows: Sequence[dict], names: Sequence[str], path: str, split: str) -> None:
    """Grouped bars: one group per metric, one bar per run (bounded metrics share 0..1).

    The figure widens with runs x metrics (about a third of an inch a bar), values are
    written on the bars (turned upright when bars are narrow), and the legend sits under
    the chart in as many columns as the run names allow, so it never covers a bar."""
    import matplotlib
    matplotlib.use("Agg")
    import numpy as np
    from matplotlib.figure import Figure
    groups = [[n for n in names if n not in UNBOUNDED], [n for n in names if n in UNBOUNDED]]
    groups = [g for g in groups if g]
    n_runs = max(1, len(rows))
    per_bar = 0.34 if n_runs > 3 else 0.5
    widths = [max(2.6, len(g) * (per_bar * n_runs + 0.6)) for g in groups]
    width = sum(widths) + 1.2 + 0.5 * len(groups)
    labels = [short_name(str(r["run"])) for r in rows]
    longest = max(len(x) for x in labels) if labels else 10
    columns = max(1, min(len(labels), int(width / (0.45 + 0.075 * longest))))
    legend_rows = -(-len(labels) // columns)
    plot_h = 4.0
    height = plot_h + 0.9 + 0.25 * legend_rows
    fig = Figure(figsize=(width, height))
    grid = fig.add_gridspec(1, len(groups), width_ratios=widths, left=1.0 / width,
                            right=1 - 0.2 / width, top=1 - 0.55 / height,
                            bottom=(0.45 + 0.25 * legend_rows) / height, wspace=0.25)
    bar = 0.8 / n_runs
    narrow = (widths[0] / max(1, len(groups[0])) * bar) < 0.3     # inches per bar
    handles = []
    for g, group in enumerate(groups):
        ax = fig.add_subplot(grid[0, g])
        x = np.arange(len(group))
        top = 0.0
        for i, row in enumerate(rows):
            values = [row.get(n) if isinstance(row.get(n), (int, float)) else np.nan
                      for n in group]
            bars = ax.bar(x - 0.4 + bar * (i + 0.5), values, bar, label=labels[i],
                          **run_style(i))
            if g == 0:
                handles.append(bars)
            for b, v in zip(bars, values):
                if np.isnan(v):
                    continue
                top = max(top, v)
                ax.annotate(f"{v:.3f}", (b.get_x() + b.get_width() / 2, b.get_height()),
                            xytext=(0, 2), textcoords="offset points", ha="center",
                            va="bottom", fontsize=7, rotation=90 if narrow else 0)
        ax.set_xticks(x)
        ax.set_xticklabels([LABELS.get(n, n) for n in group], fontsize=10)
        if group[0] not in UNBOUNDED:
            ax.set_ylim(0, 1.18 if narrow else 1.08)
            ax.set_ylabel("fraction of videos")
        else:
            ax.set_ylim(0, (top or 1.0) * (1.3 if narrow else 1.12))
            ax.set_ylabel(", ".join(LABELS.get(n, n) for n in group))
        ax.grid(axis="y", alpha=0.3)
        ax.set_xlim(-0.5, len(group) - 0.5)
    if handles:
        fig.legend(handles=handles, labels=labels, loc="lower center", ncol=columns,
                   fontsize=9, frameon=False, bbox_to_anchor=(0.5, 0.05 / height))
    runs = f"{len(rows)} run" + ("s" if len(rows) != 1 else "")
    fig.suptitle(f"{runs} compared on {split}", fontsize=12, y=1 - 0.12 / height)
    fig.savefig(path, dpi=100)


def compare(workdirs: Sequence[str], *, split: str = "test",
            metrics: Sequence[str] = ("top1", "top5", "mean_class_accuracy"),
            out: str = "compare.png") -> tuple[list[dict], str]:
    """Reads the runs, writes the chart; returns the rows and the printed table."""
    if not workdirs:
        raise RunError("give the workdirs to compare, e.g. python -m trainers.compare "
                       "runs/a runs/b")
    rows = read_runs(workdirs, split)
    names = metric_names(metrics, rows)
    folder = os.path.dirname(out)
    if folder:
        os.makedirs(folder, exist_ok=True)
    plot(rows, names, out, split)
    return rows, table(rows)


def main(argv: list[str]) -> int:
    cli.started()
    try:
        _, text = compare(argv[1:], split=FLAGS.split, metrics=FLAGS.metric, out=FLAGS.out)
    except RunError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(text)
    print(f"[compare] chart: {FLAGS.out}")
    return 0


def compare_main(argv: list[str]) -> int:
    """Parses ``argv`` (argv[0] is the program name) and compares: for scripts and tests."""
    return main(cli.parse(FLAGS, argv, __name__))


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)),
            flags_parser=lambda argv: cli.parse(FLAGS, argv, __name__))
