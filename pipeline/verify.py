r"""Checks a finished build against its dataset_info.json.

    python -m pipeline.verify OUTPUT_DIR/DATASET/CONFIG_NAME [--decode_every 10]

Reads every shard and parses every record with the reader's own parser, then
checks: the shard files are exactly those listed; no record is corrupt; counts
per split and per class and frame totals match; labels agree with the class
list; every record's frame count, size and format match its context; and a
sample of frames (every Nth record, first and last frame) decodes to the
recorded size. Prints a summary and exits 1 on any mismatch, listing each.
"""
from __future__ import annotations

import collections
import sys

from absl import app, flags

from pipeline import cli

from tfrecords import schema

FLAGS = flags.FLAGS
flags.DEFINE_integer("decode_every", 10,
                     "Decode the first and last frame of every Nth record (1 = all records).")
flags.DEFINE_integer("max_problems", 50, "Print at most this many problems.")


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


def verify(build_dir: str, decode_every: int = 10, out=sys.stdout) -> list[str]:
    """Verifies a build directory; returns the list of problems (empty = good)."""
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


def main(argv):
    if len(argv) != 2:
        print("usage: python -m pipeline.verify BUILD_DIR   (the folder holding "
              f"{schema.DATASET_INFO_FILE})", file=sys.stderr)
        return 2
    problems = verify(argv[1], FLAGS.decode_every)
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
