#!/usr/bin/env python
r"""What the start-up check of a build's shards costs (tfrecords/integrity.py).

    python benchmarks/integrity_bench.py [--copies 200] [--rounds 3] [--work_dir D]

Copies ../shared/fixtures/real/videos/ucf_like_320x240_fmp4.avi ``--copies`` times into
a UCF101 layout under ``--work_dir`` (never into the repository) and builds it with the
real ``python -m pipeline.build`` (``--sampling uniform --num_frames 32
--resize_shorter 128``, JPEG, 4 shards per split), then times, in one run, on this
machine:

1. the check training and evaluation run when they start: the TFRecord framing and
   both CRCs of every record of the train and test shards (``integrity.check_splits``;
   no parsing, no decoding);
2. reading the same shards with tf.data (``tf.data.TFRecordDataset``, every record's
   bytes counted in the graph; no parsing, no decoding);
3. one training epoch's input pipeline (``trainers.data.make_input`` with a UCF101
   config's data settings: 16 uniform frames, random 112x112 crop, flip, batch 16):
   parse, sample, decode, crop, batch, for training examples // batch steps, with
   no model.

Each is run ``--rounds`` times, interleaved; the table gives the medians and the
ratios of the medians. The shards are in the page cache (just built and read): the
check is then bound by CRC32C and Python's per-record loop, the tf.data read by its
C++ reader; from a cold disk both wait for the disk. Progress goes to stderr; the
command and one markdown table go to stdout.
"""
from __future__ import annotations

import argparse
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, PROJECT_ROOT)
FIXTURE = os.path.normpath(os.path.join(
    PROJECT_ROOT, "..", "shared", "fixtures", "real", "videos", "ucf_like_320x240_fmp4.avi"))
CLASSES = ("ApplyEyeMakeup", "Basketball", "Diving", "Fencing", "Rowing")
BATCH = 16


def log(msg: str):
    print(f"[integrity_bench] {msg}", file=sys.stderr, flush=True)


def write_tree(root: str, copies: int) -> None:
    """UCF101 layout of fixture copies: 5 classes, 4 of every 5 videos in train."""
    if not os.path.isfile(FIXTURE):
        sys.exit(f"the fixture is missing: {FIXTURE}")
    lists = os.path.join(root, "ucfTrainTestlist")
    os.makedirs(lists, exist_ok=True)
    train, test = [], []
    for c, name in enumerate(CLASSES):
        os.makedirs(os.path.join(root, "UCF-101", name), exist_ok=True)
        for g in range(copies // len(CLASSES)):
            rel = f"{name}/v_{name}_g{g + 1:02d}_c01.avi"
            path = os.path.join(root, "UCF-101", rel)
            if not os.path.exists(path):
                shutil.copyfile(FIXTURE, path)
            (test if g % 5 == 4 else train).append((rel, c + 1))
    with open(os.path.join(lists, "classInd.txt"), "w") as f:
        f.writelines(f"{i + 1} {n}\n" for i, n in enumerate(CLASSES))
    with open(os.path.join(lists, "trainlist01.txt"), "w") as f:
        f.writelines(f"{rel} {c}\n" for rel, c in train)
    with open(os.path.join(lists, "testlist01.txt"), "w") as f:
        f.writelines(f"{rel}\n" for rel, _ in test)


def build(data_dir: str, out_dir: str) -> str:
    """Runs the real build once (reused when its output exists); returns the build dir."""
    build_dir = os.path.join(out_dir, "ucf101", "bench")
    if os.path.exists(os.path.join(build_dir, "dataset_info.json")):
        log(f"reusing {build_dir}")
        return build_dir
    cmd = [sys.executable, "-m", "pipeline.build", "--dataset=ucf101", f"--data_dir={data_dir}",
           f"--output_dir={out_dir}", "--config_name=bench", "--progress=false",
           "--sampling=uniform", "--num_frames=32", "--resize_shorter=128", "--num_shards=4"]
    log("building: " + " ".join(shlex.quote(c) for c in cmd[1:]))
    proc = subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"the build failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return build_dir


def time_check(build_dir: str, info: dict) -> float:
    from tfrecords import integrity
    started = time.perf_counter()
    damage = integrity.check_splits(build_dir, ["train", "test"], info)
    elapsed = time.perf_counter() - started
    if damage:
        sys.exit(f"the fresh build is damaged: {damage[0].describe()}")
    return elapsed


def time_tf_read(files: list[str]) -> float:
    import tensorflow as tf
    started = time.perf_counter()
    total = tf.data.TFRecordDataset(files).map(tf.strings.length).reduce(
        tf.constant(0, tf.int64), lambda s, n: s + tf.cast(n, tf.int64))
    int(total)
    return time.perf_counter() - started


def time_epoch(config, info, steps: int) -> float:
    from trainers import data
    started = time.perf_counter()
    it = iter(data.make_input(config, info, training=True))
    for _ in range(steps):
        next(it)
    elapsed = time.perf_counter() - started
    del it
    return elapsed


def ucf_config(build_dir: str):
    from configs import common
    return common.experiment(
        model_name="cnn_rnn", model={},
        data=dict(build_dir=build_dir, num_frames=16, sampling="uniform", crop_size=112,
                  crop="random", flip=True),
        train=dict(batch_size=BATCH))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work_dir", default=os.path.join(tempfile.gettempdir(),
                                                           "actionflow_integrity_bench"))
    args = parser.parse_args()
    command = " ".join(["python benchmarks/integrity_bench.py",
                        *(shlex.quote(a) for a in sys.argv[1:])])
    write_tree(os.path.join(args.work_dir, "data"), args.copies)
    build_dir = build(os.path.join(args.work_dir, "data"), os.path.join(args.work_dir, "out"))

    from tfrecords import integrity, schema
    info = schema.read_dataset_info(build_dir)
    files = (integrity.split_files(build_dir, "train", info)
             + integrity.split_files(build_dir, "test", info))
    size = sum(os.path.getsize(f) for f in files)
    train_size = sum(os.path.getsize(f) for f in integrity.split_files(build_dir, "train", info))
    records = sum(info["splits"][s]["num_examples"] for s in ("train", "test"))
    config = ucf_config(build_dir)
    steps = max(1, info["splits"]["train"]["num_examples"] // BATCH)
    time_tf_read(files)                  # warm the page cache and TensorFlow's start-up
    time_epoch(config, info, 1)

    checks, reads, epochs = [], [], []
    for r in range(args.rounds):
        checks.append(time_check(build_dir, info))
        reads.append(time_tf_read(files))
        epochs.append(time_epoch(config, info, steps))
        log(f"round {r + 1}/{args.rounds}: check {checks[-1]:.3f}s, tf.data read "
            f"{reads[-1]:.3f}s, epoch input {epochs[-1]:.2f}s")
    check, read, epoch = (statistics.median(x) for x in (checks, reads, epochs))
    mb = size / 1e6
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    print(f"    {command}\n")
    print("| measurement | seconds (median of {0}) | MB/s | check / this |".format(args.rounds))
    print("| --- | ---: | ---: | ---: |")
    print(f"| framing + CRC check (`tfrecords.integrity`), {len(files)} shards, {records} "
          f"records, {mb:.1f} MB | {check:.3f} | {mb / check:.0f} | 1.00 |")
    print(f"| tf.data `TFRecordDataset` read of the same shards (no parse, no decode) | "
          f"{read:.3f} | {mb / read:.0f} | {check / read:.2f} |")
    print(f"| one training epoch's input (`make_input`: parse, 16 frames, decode, 112 crop, "
          f"flip; {steps} steps of batch {BATCH}), no model | {epoch:.2f} | "
          f"{train_size / 1e6 / epoch:.0f} | "
          f"{check / epoch:.3f} |")
    print(f"\nMachine: {os.cpu_count()} cores, {platform.machine()}, Python "
          f"{platform.python_version()}; load average {load:.2f} at the end; shards in the "
          "page cache. The epoch row's MB/s counts the train split's bytes (what one epoch reads).")
    return 0


if __name__ == "__main__":
    from stopping import run
    run(main)
