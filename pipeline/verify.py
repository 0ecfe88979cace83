r"""Checks a finished build against its dataset_info.json.

    python -m pipeline.verify OUTPUT_DIR/DATASET/CONFIG_NAME [--decode_every 10]
    python -m pipeline.verify OUTPUT_DIR/DATASET/CONFIG_NAME --stats stats.png

Reads every shard and parses every record with the reader's own parser, then
checks: the shard files are exactly those listed; no record is corrupt; counts
per split and per class and frame totals match; labels agree with the class
list; every record's frame count, size and format match its context; and a
sample of frames (every Nth record, first and last frame) decodes to the
recorded size. Prints a summary and exits 1 on any mismatch, listing each.

``--stats OUT.png`` also draws what the records hold: records per class and split,
the histogram of clip lengths (frames per record), the frame sizes, and why inputs
were quarantined (errors.jsonl, else dataset_info.json's ``errors_by_reason``). It is
written even when problems are found.
"""
from __future__ import annotations

import collections
import sys

from pipeline import cli

cli.quiet_unless_verbose(__name__)    # before TensorFlow and Beam load (unless --verbose)
cli.stop_while_starting(__name__, "verify")    # one line, not a traceback

from absl import app, flags


from tfrecords import schema

FLAGS = flags.FLAGS
flags.DEFINE_integer("decode_every", 10,
                     "Decode the first and last frame of every Nth record (1 = all records).")
flags.DEFINE_integer("max_problems", 50, "Print at most this many problems.")
flags.DEFINE_string("stats", None, "Also write a PNG of the build's statistics here: records "
                    "per class and split, clip lengths, frame sizes, quarantine reasons.")

# Okabe & Ito's colour-blind-safe colours, and hatches, for the splits on --stats.
SPLIT_STYLES = (("#0072B2", "", "-"), ("#E69F00", "//", "--"), ("#009E73", "..", ":"),
                ("#CC79A7", "xx", "-."), ("#56B4E9", "\\\\", "-"), ("#D55E00", "++", "--"))


def _check_label(p: dict, classes: list, where: str, problems: list):
    label, text = int(p["label"]), p["label_text"].decode()
    if label == schema.UNLABELLED:
        return
    if not 0 <= label < len(classes):
        problems.append(f"{where}: label {label} outside 0..{len(classes) - 1}")
    elif text and text != classes[label]:
        problems.append(f"{where}: label {label} is {classes[label]!r} in dataset_info "
                        f"but the record says {text!r}")


def _check_clip(p: dict, info: dict, where: str, decode: bool, problems: list):
    """Checks one parsed clip record (numpy values) against the build's info."""
    _check_label(p, info.get("classes", []), where, problems)
    fmt = p["image_format"].decode()
    if fmt != info.get("image_format", fmt):
        problems.append(f"{where}: image/format {fmt!r}, build says {info['image_format']!r}")
    n = int(p["num_frames"])
    if n == 0:
        problems.append(f"{where}: no frames")
        return
    if not decode:
        return
    import numpy as np
    frames = schema.decode_frames(np.stack([p["frames"][0], p["frames"][n - 1]]), fmt,
                                  int(p["height"]), int(p["width"])).numpy()
    if frames.shape[1:3] != (int(p["height"]), int(p["width"])):
        problems.append(f"{where}: frames decode to {frames.shape[2]}x{frames.shape[1]}, "
                        f"record says {int(p['width'])}x{int(p['height'])}")


def _check_keypoints(p: dict, info: dict, where: str, decode: bool, problems: list):
    """Checks one parsed keypoint record (numpy values) against the build's info."""
    import numpy as np
    classes = info.get("classes", [])
    _check_label(p, classes, where, problems)
    t, people, points, coords = (int(p[k]) for k in ("num_frames", "num_people", "num_points",
                                                     "num_coords"))
    if t == 0:
        problems.append(f"{where}: no frames")
    if p["values"].shape != (t, people * points * coords):
        problems.append(f"{where}: keypoints/values shape {p['values'].shape}, expected "
                        f"{(t, people * points * coords)}")
    if p["mask"].shape != (t, people * points):
        problems.append(f"{where}: keypoints/mask shape {p['mask'].shape}, expected "
                        f"{(t, people * points)}")
    if not np.isfinite(p["values"]).all():
        problems.append(f"{where}: non-finite keypoint values")
    labels = p["frame_labels"]
    if ((labels < schema.UNLABELLED) | (labels >= len(classes))).any():
        problems.append(f"{where}: frame labels outside -1..{len(classes) - 1}")


def _size_key(p: dict, keypoints: bool) -> str:
    if keypoints:
        w, h = int(p["frame_width"]), int(p["frame_height"])
        return f"{w}x{h}" if w > 0 and h > 0 else "pixel coordinates"
    return f"{int(p['width'])}x{int(p['height'])}"


def verify(build_dir: str, decode_every: int = 10, out=sys.stdout,
           stats: dict | None = None) -> list[str]:
    """Verifies a build directory; returns the list of problems (empty = good).

    ``stats``, when given, receives per split ``lengths`` (frames of each record) and
    ``sizes`` (a Counter of "WxH" frame sizes), for ``plot_stats``."""
    import tensorflow as tf
    problems: list[str] = []
    try:
        info = schema.read_dataset_info(build_dir)
    except (FileNotFoundError, ValueError) as e:
        return [str(e)]
    build_dir = build_dir.rstrip("/")
    present = {p.split("/")[-1] for p in tf.io.gfile.glob(f"{build_dir}/*{schema.SHARD_SUFFIX}-*")}
    listed = {name for s in info["splits"].values() for name in s.get("shards", [])}
    for name in sorted(listed - present):
        problems.append(f"missing shard {name} (listed in {schema.DATASET_INFO_FILE})")
    for name in sorted(present - listed):
        problems.append(f"unexpected shard {name} (not listed in {schema.DATASET_INFO_FILE})")

    if info.get("modality") == "keypoints":
        parse, check = schema.parse_keypoints, _check_keypoints
    else:
        parse, check = schema.parse_clip, _check_clip
    seen = 0
    for split, expected in sorted(info["splits"].items()):
        per_class = collections.Counter()
        examples = frames = unlabelled = 0
        for name in expected.get("shards", []):
            if name not in present:
                continue
            i = -1
            try:
                for i, raw in enumerate(tf.data.TFRecordDataset(f"{build_dir}/{name}")):
                    where = f"{name} record {i}"
                    p = {k: v.numpy() for k, v in parse(raw).items()}
                    check(p, info, where, decode_every > 0 and seen % decode_every == 0,
                          problems)
                    seen += 1
                    if stats is not None:
                        st = stats.setdefault(split, {"lengths": [],
                                                      "sizes": collections.Counter()})
                        st["lengths"].append(int(p["num_frames"]))
                        st["sizes"][_size_key(p, parse is schema.parse_keypoints)] += 1
                    examples += 1
                    frames += int(p["num_frames"])
                    label = int(p["label"])
                    if label == schema.UNLABELLED:
                        unlabelled += 1
                    else:
                        per_class[p["label_text"].decode() or str(label)] += 1
            except tf.errors.OpError as e:
                problems.append(f"{name}: unreadable after {i + 1} records "
                                f"({type(e).__name__}: {e.message.splitlines()[0]})")
        if examples != expected.get("num_examples"):
            problems.append(f"{split}: {examples} records read, dataset_info says "
                            f"{expected.get('num_examples')}")
        if frames != expected.get("num_frames"):
            problems.append(f"{split}: {frames} frames read, dataset_info says "
                            f"{expected.get('num_frames')}")
        if unlabelled != expected.get("unlabelled", 0):
            problems.append(f"{split}: {unlabelled} unlabelled records read, dataset_info says "
                            f"{expected.get('unlabelled', 0)}")
        want = collections.Counter(expected.get("per_class", {}))
        for cls in sorted(set(want) | set(per_class)):
            if want[cls] != per_class[cls]:
                problems.append(f"{split}/{cls}: {per_class[cls]} records read, dataset_info "
                                f"says {want[cls]}")
        print(f"{split}: {examples} records, {frames} frames, {len(per_class)} classes, "
              f"{len(expected.get('shards', []))} shards", file=out)
    return problems


def quarantine_counts(build_dir: str, info: dict) -> dict[str, collections.Counter]:
    """reason -> Counter(split) of the quarantined inputs and bad files: from errors.jsonl,
    else from dataset_info.json's ``errors_by_reason`` (split unknown: "")."""
    import json

    import tensorflow as tf
    path = build_dir.rstrip("/") + "/" + schema.ERRORS_FILE
    out: dict[str, collections.Counter] = {}
    if tf.io.gfile.exists(path):
        with tf.io.gfile.GFile(path, "r") as f:
            for line in f:
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                if isinstance(row, dict):
                    reason = str(row.get("reason") or "unknown")
                    out.setdefault(reason, collections.Counter())[str(row.get("split") or "")] += 1
        return out
    for reason, n in (info.get("errors_by_reason") or {}).items():
        out.setdefault(str(reason), collections.Counter())[""] += int(n)
    return out


def _records(n: int) -> str:
    return f"{n} record" + ("" if n == 1 else "s")


def plot_stats(build_dir: str, info: dict, stats: dict, reasons: dict, path: str) -> None:
    """The --stats picture: records per class and split (left); clip lengths, frame sizes
    and quarantine reasons (right). Splits differ in colour and hatch (or line style)."""
    import os

    import matplotlib
    matplotlib.use("Agg")
    import numpy as np
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    splits = sorted(info.get("splits") or {}, key=lambda s: (s != "train", s != "val", s))
    style = {s: SPLIT_STYLES[i % len(SPLIT_STYLES)] for i, s in enumerate(splits)}
    classes = [str(c) for c in info.get("classes") or []]
    rows = classes + (["(unlabelled)"] if any((info["splits"][s].get("unlabelled") or 0)
                                               for s in splits) else [])
    k = max(1, len(rows))
    longest = max([len(r) for r in rows] + [8])
    # About 0.1 inch a bar on the left; the right-hand panels keep their size.
    height = float(np.clip(0.1 * k * max(1, len(splits)) + 2.0, 10.0, 80.0))
    fig = Figure(figsize=(15 + 0.05 * min(longest, 40), height))
    top, bottom = 1 - 1.0 / height, 0.6 / height
    left = 0.04 + 0.0065 * min(longest, 40)
    grid = fig.add_gridspec(3, 1, left=0.56, right=0.98, top=top, hspace=0.45,
                            bottom=max(bottom, top - 9.6 / height))
    ax = fig.add_subplot(fig.add_gridspec(1, 1, left=left, right=0.47, top=top,
                                          bottom=bottom)[0, 0])
    y = np.arange(k)
    bar = 0.8 / max(1, len(splits))
    for i, split in enumerate(splits):
        s = info["splits"][split]
        counts = [int((s.get("per_class") or {}).get(c, 0)) for c in classes]
        if len(rows) > len(classes):
            counts.append(int(s.get("unlabelled") or 0))
        colour, hatch, _ = style[split]
        ax.barh(y - 0.4 + bar * (i + 0.5), counts, bar, color=colour, hatch=hatch,
                edgecolor="black", linewidth=0.4,
                label=f"{split} ({_records(s.get('num_examples', sum(counts)))})")
    font = float(np.clip(300.0 / k, 8.0, 10.0))
    ax.set_yticks(y)
    ax.set_yticklabels(rows, fontsize=font)
    ax.invert_yaxis()
    ax.set_ylim(k - 0.5, -0.5)
    ax.set_xlabel("records")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if k > 25:                                  # a tall chart: counts on top too
        ax.tick_params(axis="x", labeltop=True)
    ax.set_title("records per class and split", pad=20 if k > 25 else 6)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right", fontsize=9, framealpha=0.9)

    ax = fig.add_subplot(grid[0, 0])
    lengths = [v for s in splits for v in (stats.get(s) or {}).get("lengths", [])]
    if lengths:
        lo, hi = min(lengths), max(lengths)
        bins = np.arange(lo, hi + 2) - 0.5 if hi - lo < 60 else 40
        for split in splits:
            values = (stats.get(split) or {}).get("lengths") or []
            if values:
                colour, _, line = style[split]
                ax.hist(values, bins=bins, histtype="step", linewidth=2, color=colour,
                        linestyle=line, label=split)
        ax.legend(fontsize=9)
        ax.set_title(f"frames per record (min {lo}, median {int(np.median(lengths))}, "
                     f"max {hi})")
    else:
        ax.text(0.5, 0.5, "no records", ha="center", va="center", transform=ax.transAxes)
        ax.set_title("frames per record")
    ax.set_xlabel("frames")
    ax.set_ylabel("records")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if lengths and min(lengths) == max(lengths):        # one length: a bar, centred
        ax.set_xlim(lengths[0] - 3, lengths[0] + 3)

    ax = fig.add_subplot(grid[1, 0])
    total = collections.Counter()
    for split in splits:
        total.update((stats.get(split) or {}).get("sizes") or {})
    sizes = [size for size, _ in total.most_common(12)]
    if sizes:
        y = np.arange(len(sizes))
        bar = 0.8 / max(1, len(splits))
        for i, split in enumerate(splits):
            counter = (stats.get(split) or {}).get("sizes") or {}
            colour, hatch, _ = style[split]
            ax.barh(y - 0.4 + bar * (i + 0.5), [counter.get(z, 0) for z in sizes], bar,
                    color=colour, hatch=hatch, edgecolor="black", linewidth=0.4, label=split)
        ax.set_yticks(y)
        ax.set_yticklabels(sizes, fontsize=9)
        ax.invert_yaxis()
        ax.legend(fontsize=9, loc="lower right")
        more = f", {len(total) - len(sizes)} more not shown" if len(total) > len(sizes) else ""
        what = "keypoint frame sizes (width x height)" if info.get("modality") == "keypoints" \
            else "frame sizes in the records (width x height)"
        ax.set_title(what + more)
    else:
        ax.text(0.5, 0.5, "no records", ha="center", va="center", transform=ax.transAxes)
        ax.set_title("frame sizes")
    ax.set_xlabel("records")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))

    ax = fig.add_subplot(grid[2, 0])
    names = sorted(reasons, key=lambda r: -sum(reasons[r].values()))
    count = sum(sum(c.values()) for c in reasons.values())
    if names:
        y = np.arange(len(names))
        left = np.zeros(len(names))
        groups = sorted({s for c in reasons.values() for s in c},
                        key=lambda s: (s not in style, splits.index(s) if s in style else 0, s))
        for j, split in enumerate(groups):
            values = np.array([reasons[r].get(split, 0) for r in names], float)
            colour, hatch, _ = style.get(split, ("#999999", "oo", "-"))
            ax.barh(y, values, left=left, color=colour, hatch=hatch, edgecolor="black",
                    linewidth=0.4, label=split or "split unknown")
            left += values
        for i, n in enumerate(left):
            ax.text(n, i, f" {int(n)}", va="center", fontsize=9)
        ax.set_yticks(y)
        ax.set_yticklabels(names, fontsize=9)
        ax.invert_yaxis()
        ax.set_xlim(0, max(left) * 1.15 + 0.5)
        ax.legend(fontsize=9, loc="lower right")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"quarantined inputs and bad files by reason ({count})")
    else:
        ax.text(0.5, 0.5, "nothing was quarantined", ha="center", va="center",
                transform=ax.transAxes, fontsize=11)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title("quarantined inputs and bad files by reason")
    ax.set_xlabel("inputs")

    totals = " · ".join(f"{s}: {_records(info['splits'][s].get('num_examples', 0))}"
                        for s in splits)
    fig.suptitle(f"{build_dir.rstrip('/')} ({info.get('modality', 'video')}, {len(classes)} "
                 f"classes) — {totals}", fontsize=12, y=1 - 0.25 / height)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fig.savefig(path, dpi=100)


def main(argv):
    cli.started()
    if len(argv) != 2:
        print("usage: python -m pipeline.verify BUILD_DIR   (the folder holding "
              f"{schema.DATASET_INFO_FILE})", file=sys.stderr)
        return 2
    stats = {} if FLAGS.stats else None
    problems = verify(argv[1], FLAGS.decode_every, stats=stats)
    if FLAGS.stats:
        try:
            info = schema.read_dataset_info(argv[1])
        except (FileNotFoundError, ValueError):
            info = None
        if info is not None:
            plot_stats(argv[1], info, stats, quarantine_counts(argv[1], info), FLAGS.stats)
            print(f"[verify] stats: {FLAGS.stats}")
    if problems:
        print(f"FAILED: {len(problems)} problem(s) in {argv[1]}:", file=sys.stderr)
        for p in problems[:FLAGS.max_problems]:
            print(f"  - {p}", file=sys.stderr)
        if len(problems) > FLAGS.max_problems:
            print(f"  ... and {len(problems) - FLAGS.max_problems} more", file=sys.stderr)
        return 1
    print(f"OK: {argv[1]} matches its {schema.DATASET_INFO_FILE}")
    return 0


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)),
            flags_parser=lambda argv: cli.parse(flags.FLAGS, argv, __name__))
