#!/usr/bin/env python
r"""Throughput of the tf.data readers (tfrecords/reader.py) against their limits and baselines.

    python benchmarks/input_bench.py [--copies 200] [--rounds 3] [--work_dir D] [--quick] \
        [--tfm_python /tmp/tfm/bin/python]

Builds, with the real ``python -m pipeline.build``, records from ``--copies``
symlinks of ../shared/fixtures/real/videos/ucf_like_320x240_fmp4.avi in a
UCF101 layout (``--sampling uniform --num_frames 32 --resize_shorter 128``,
JPEG and raw), and the demo records (``python -m pipeline.demo``, 64x64), then
measures in one run, on this machine:

1. reader clips/s: training batches of 32 clips of 16x112x112 (16 consecutive
   stored frames at a random offset, random 112 crop, random flip);
2. the JPEG-decode limit: ``tf.io.decode_jpeg`` of 16 frames per clip of the
   same records, from memory, through ``Dataset.map(num_parallel_calls=AUTOTUNE)``
   and ``batch(32)`` (the same parallelism); ratio reader / limit;
3. a per-clip OpenCV loader as Keras video generators do it: open the AVI,
   take 16 evenly spaced frames (grab/retrieve), resize to 112x112, float32,
   batches of 8, ``multiprocessing.Pool(2)``; ratios reader / loader for JPEG
   and raw records, with the disk cost per clip;
4. input-boundness: the step time of a small Keras Conv3D model fed by the
   reader vs fed the same batches from memory;
5. the demo records (16x56x56 crops) vs their decode limit; evaluation views/s;
6. with ``--tfm_python``: TF Model Garden's video parser
   (``official.vision.dataloaders.video_input.Parser``) run in that interpreter
   on the same JPEG records.

Each throughput is measured ``--rounds`` times, variants interleaved, and the
best round is reported (other processes on a shared machine only slow a
round down). Progress goes to stderr; the command, one markdown table and
notes go to stdout. Everything is written under --work_dir (default
$TMPDIR/actionflow_input_bench), never into the repository.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time

import numpy as np

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.normpath(os.path.join(
    PROJECT_ROOT, "..", "shared", "fixtures", "real", "videos", "ucf_like_320x240_fmp4.avi"))
CLASSES = ("ApplyEyeMakeup", "Basketball", "Diving", "Fencing", "Rowing")
BATCH, FRAMES, CROP = 32, 16, 112
TARGET_VS_LIMIT, TARGET_JPEG_VS_CV, TARGET_RAW_VS_CV, TARGET_INPUT_BOUND = 0.8, 10.0, 20.0, 1.1


def log(msg: str):
    print(f"[input_bench] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Data.
# --------------------------------------------------------------------------
def write_tree(root: str, copies: int) -> list[str]:
    """UCF101 layout of fixture symlinks: 5 classes, 4 of every 5 videos in train."""
    lists = os.path.join(root, "ucfTrainTestlist")
    os.makedirs(lists, exist_ok=True)
    train, test, paths = [], [], []
    for c, name in enumerate(CLASSES):
        os.makedirs(os.path.join(root, "UCF-101", name), exist_ok=True)
        for g in range(copies // len(CLASSES)):
            rel = f"{name}/v_{name}_g{g + 1:02d}_c01.avi"
            path = os.path.join(root, "UCF-101", rel)
            if not os.path.lexists(path):
                os.symlink(FIXTURE, path)
            paths.append(path)
            (test if g % 5 == 4 else train).append((rel, c + 1))
    with open(os.path.join(lists, "classInd.txt"), "w") as f:
        f.writelines(f"{i + 1} {n}\n" for i, n in enumerate(CLASSES))
    with open(os.path.join(lists, "trainlist01.txt"), "w") as f:
        f.writelines(f"{rel} {c}\n" for rel, c in train)
    with open(os.path.join(lists, "testlist01.txt"), "w") as f:
        f.writelines(f"{rel}\n" for rel, _ in test)
    return paths


def build(data_dir: str, out_dir: str, name: str, *flags: str) -> str:
    """Runs the real build once (reused when its output exists); returns the build dir."""
    build_dir = os.path.join(out_dir, "ucf101", name)
    if os.path.exists(os.path.join(build_dir, "dataset_info.json")):
        log(f"reusing {build_dir}")
        return build_dir
    cmd = [sys.executable, "-m", "pipeline.build", "--dataset=ucf101", f"--data_dir={data_dir}",
           f"--output_dir={out_dir}", f"--config_name={name}", "--progress=false", *flags]
    log("building: " + " ".join(shlex.quote(c) for c in cmd[1:]))
    subprocess.run(cmd, cwd=PROJECT_ROOT, check=True, stdout=subprocess.DEVNULL)
    return build_dir


def demo_build(work: str) -> str:
    build_dir = os.path.join(work, "demo", "records", "ucf101", "demo")
    if not os.path.exists(os.path.join(build_dir, "dataset_info.json")):
        log("building the demo records: python -m pipeline.demo")
        subprocess.run([sys.executable, "-m", "pipeline.demo",
                        f"--output_dir={os.path.join(work, 'demo')}"], cwd=PROJECT_ROOT,
                       check=True, stdout=subprocess.DEVNULL)
    return build_dir


# --------------------------------------------------------------------------
# Measurements.
# --------------------------------------------------------------------------
def clips_per_second(ds, batches: int, warmup: int = 5) -> float:
    """Rows per second over ``batches`` batches of a fresh iterator, after ``warmup``."""
    it = iter(ds)
    for _ in range(warmup):
        next(it)
    rows = 0
    start = time.perf_counter()
    for _ in range(batches):
        rows += int(next(it)[0].shape[0])
    return rows / (time.perf_counter() - start)


def decode_limit(build_dir: str, frames: int, batch: int):
    """tf.io.decode_jpeg of ``frames`` stored frames per clip, from memory, AUTOTUNE map."""
    import tensorflow as tf
    from tfrecords import reader, schema
    files = reader.open_source(build_dir, "train").files
    encoded = [schema.parse_clip(r)["frames"].numpy()[:frames]
               for r in tf.data.TFRecordDataset(list(files))]
    spec = tf.TensorSpec([None, None, 3], tf.uint8)
    decode = lambda f: tf.map_fn(lambda x: tf.io.decode_jpeg(x, channels=3), f,  # noqa: E731
                                 fn_output_signature=spec)
    return (tf.data.Dataset.from_tensor_slices(np.stack(encoded)).repeat()
            .map(lambda f: (decode(f),), num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
            .batch(batch).prefetch(tf.data.AUTOTUNE))


def train_reader(build_dir: str, crop: int = CROP):
    from tfrecords import reader
    return reader.make_dataset(build_dir, "train", training=True, batch_size=BATCH,
                               num_frames=FRAMES, crop_size=crop, flip=True)


def _cv_clip(path: str) -> np.ndarray:
    """One clip as a Keras video generator loads it: 16 evenly spaced frames, 112x112 float32."""
    import cv2
    cap = cv2.VideoCapture(path)
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    wanted = set(np.linspace(0, n - 1, FRAMES).round().astype(int).tolist())
    frames = []
    for i in range(n):
        if not cap.grab():
            break
        if i in wanted:
            ok, bgr = cap.retrieve()
            if ok:
                frames.append(cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (CROP, CROP)))
    cap.release()
    frames += frames[-1:] * (FRAMES - len(frames))
    return np.stack(frames).astype(np.float32) / 255.0


def _cv_batch(paths: list[str]) -> int:
    return np.stack([_cv_clip(p) for p in paths]).shape[0]


def _cv_init():
    import cv2
    cv2.setNumThreads(1)


def opencv_rate(pool, paths: list[str], batches: int) -> float:
    jobs = [paths[(i * 8) % len(paths):][:8] or paths[:8] for i in range(batches + 2)]
    list(pool.imap(_cv_batch, jobs[:2]))                       # warm the workers
    start = time.perf_counter()
    clips = sum(pool.imap(_cv_batch, jobs[2:]))
    return clips / (time.perf_counter() - start)


def keras_step_times(build_dir: str, steps: int, rounds: int) -> tuple[float, float]:
    """Best seconds per training step of a small Conv3D model: reader-fed, memory-fed."""
    import keras
    import tensorflow as tf
    model = keras.Sequential([
        keras.Input((FRAMES, CROP, CROP, 3), dtype="uint8"),
        keras.layers.Rescaling(1 / 255.0),
        keras.layers.Conv3D(16, 3, strides=2, activation="relu"),
        keras.layers.Conv3D(32, 3, strides=2, activation="relu"),
        keras.layers.GlobalAveragePooling3D(),
        keras.layers.Dense(len(CLASSES)),
    ])
    model.compile(optimizer="adam",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    fed = train_reader(build_dir)
    held = [b for b in fed.take(4)]
    memory = tf.data.Dataset.from_tensor_slices(
        (tf.stack([v for v, _ in held]), tf.stack([l for _, l in held]))).repeat().prefetch(2)
    best = {"reader": float("inf"), "memory": float("inf")}
    for ds in (fed, memory):
        model.fit(ds, epochs=1, steps_per_epoch=2, verbose=0)     # trace and warm up
    for r in range(rounds):
        for name, ds in (("reader", fed), ("memory", memory)):
            start = time.perf_counter()
            model.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0)
            best[name] = min(best[name], (time.perf_counter() - start) / steps)
            log(f"keras round {r + 1}: {name}-fed {best[name]:.3f} s/step (best so far)")
    return best["reader"], best["memory"]


MG_CODE = r"""
import json, os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf
from official.vision.configs import video_classification as vc
from official.vision.dataloaders import video_input
out = {"tf": tf.__version__}
for training in (True, False):
    files = sys.argv[2 if training else 1].split(",")
    cfg = vc.DataConfig(is_training=training, feature_shape=(16, 112, 112, 3), num_classes=5,
                        min_image_size=128, num_test_clips=1 if training else 2,
                        num_test_crops=1 if training else 3, one_hot=False, dtype="uint8")
    parse = video_input.Parser(cfg).parse_fn(training)
    ds = tf.data.TFRecordDataset(files).map(video_input.Decoder().decode)
    if training:
        ds = ds.repeat()
    ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE).batch(32 if training else 4)
    ds = ds.prefetch(tf.data.AUTOTUNE)
    it = iter(ds)
    feats, label = next(it)
    key = "train" if training else "eval"
    out[key] = {"image": feats["image"].shape.as_list(), "label": label.numpy().ravel().tolist()}
    if training:
        for _ in range(5):
            next(it)
        start = time.perf_counter()
        for _ in range(30):
            next(it)
        out[key]["clips_per_s"] = 30 * 32 / (time.perf_counter() - start)
print(json.dumps(out))
"""


def model_garden(tfm_python: str, build_dir: str) -> dict:
    """Runs Model Garden's video parser on our records in the given interpreter."""
    from tfrecords import reader
    test = ",".join(reader.open_source(build_dir, "test").files)
    train = ",".join(reader.open_source(build_dir, "train").files)
    proc = subprocess.run([tfm_python, "-c", MG_CODE, test, train], capture_output=True,
                          text=True, timeout=600)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
    return json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])


# --------------------------------------------------------------------------
# Report.
# --------------------------------------------------------------------------
def _met(ok: bool) -> str:
    return "met" if ok else "**NOT met**"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--copies", type=int, default=200, help="fixture symlinks (videos) to build")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds per measurement")
    p.add_argument("--batches", type=int, default=30, help="timed batches per reader round")
    p.add_argument("--work_dir", default=os.path.join(tempfile.gettempdir(),
                                                       "actionflow_input_bench"))
    p.add_argument("--quick", action="store_true", help="50 copies, 1 round, short timings")
    p.add_argument("--tfm_python", default=None,
                   help="python of a venv with tf-models-official, to run its video parser")
    args = p.parse_args(argv)
    if args.quick:
        args.copies, args.rounds, args.batches = 50, 1, 8
    command = "python benchmarks/input_bench.py " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    if not os.path.exists(FIXTURE):
        print(f"error: the fixture {FIXTURE} is missing (../shared beside the project)",
              file=sys.stderr)
        return 2
    sys.path.insert(0, PROJECT_ROOT)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    work = os.path.abspath(args.work_dir)
    data = os.path.join(work, f"ucf_{args.copies}")
    paths = write_tree(data, args.copies)
    out = os.path.join(work, f"records_{args.copies}")
    common = ("--sampling=uniform", "--num_frames=32", "--resize_shorter=128", "--num_shards=4")
    jpeg = build(data, out, "u32_short128_jpeg90", *common)
    raw = build(data, out, "u32_short128_raw", *common, "--image_format=raw")
    demo = demo_build(work)
    load_before = os.getloadavg()

    import tensorflow as tf
    from tfrecords import reader, schema
    variants = {
        "reader_jpeg": lambda: train_reader(jpeg),
        "limit_jpeg": lambda: decode_limit(jpeg, FRAMES, BATCH),
        "reader_raw": lambda: train_reader(raw),
        "reader_demo": lambda: train_reader(demo, crop=56),
        "limit_demo": lambda: decode_limit(demo, FRAMES, BATCH),
        "eval_views": lambda: reader.make_dataset(jpeg, "test", training=False, batch_size=4,
                                                  num_frames=FRAMES, crop_size=CROP,
                                                  num_test_clips=2, num_test_crops=3,
                                                  repeat=True),
    }
    best = {k: 0.0 for k in list(variants) + ["opencv"]}
    with multiprocessing.get_context("spawn").Pool(2, initializer=_cv_init) as pool:
        for r in range(args.rounds):
            for name, make in variants.items():
                best[name] = max(best[name], clips_per_second(make(), args.batches))
            best["opencv"] = max(best["opencv"], opencv_rate(pool, paths, max(4, args.batches // 3)))
            log(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{k} {v:.0f}"
                                                             for k, v in best.items()))
    step_reader, step_memory = keras_step_times(jpeg, steps=max(3, args.batches // 4),
                                                rounds=args.rounds)
    mg = model_garden(args.tfm_python, jpeg) if args.tfm_python else None
    load_after = os.getloadavg()

    info_j, info_r = schema.read_dataset_info(jpeg), schema.read_dataset_info(raw)
    per_clip = {k: i["splits"]["train"]["num_bytes"] / i["splits"]["train"]["num_examples"]
                for k, i in (("jpeg", info_j), ("raw", info_r))}
    avi = os.path.getsize(FIXTURE)
    n_train = info_j["splits"]["train"]["num_examples"]
    r_limit = best["reader_jpeg"] / best["limit_jpeg"]
    r_cv_j = best["reader_jpeg"] / best["opencv"]
    r_cv_r = best["reader_raw"] / best["opencv"]
    r_demo = best["reader_demo"] / best["limit_demo"]
    bound = step_reader / step_memory
    rows = [
        ("reader, JPEG records: training clips/s (batch 32, 16x112x112, random crop + flip)",
         f"{best['reader_jpeg']:.0f}", "", ""),
        ("JPEG-decode limit: tf.io.decode_jpeg of 16 frames/clip from memory, AUTOTUNE map",
         f"{best['limit_jpeg']:.0f}", "", ""),
        ("reader / decode limit", f"{r_limit:.2f}", f">= {TARGET_VS_LIMIT}",
         _met(r_limit >= TARGET_VS_LIMIT)),
        ("OpenCV per-clip loader clips/s (16 evenly spaced frames, 112x112 float32, batch 8, "
         "Pool(2))", f"{best['opencv']:.1f}", "", ""),
        ("reader JPEG / OpenCV loader", f"{r_cv_j:.1f}x", f">= {TARGET_JPEG_VS_CV:.0f}x",
         _met(r_cv_j >= TARGET_JPEG_VS_CV)),
        ("reader, raw records: training clips/s", f"{best['reader_raw']:.0f}", "", ""),
        ("reader raw / OpenCV loader", f"{r_cv_r:.1f}x", f">= {TARGET_RAW_VS_CV:.0f}x",
         _met(r_cv_r >= TARGET_RAW_VS_CV)),
        ("disk per clip: source AVI / JPEG records (32 frames) / raw records (32 frames)",
         f"{avi / 1e3:.0f} KB / {per_clip['jpeg'] / 1e3:.0f} KB / {per_clip['raw'] / 1e6:.2f} MB",
         "", f"raw = {per_clip['raw'] / per_clip['jpeg']:.1f}x JPEG"),
        ("Keras Conv3D step, reader-fed / memory-fed (s/step)",
         f"{step_reader:.3f} / {step_memory:.3f} = {bound:.2f}", f"<= {TARGET_INPUT_BOUND}",
         _met(bound <= TARGET_INPUT_BOUND)),
        ("demo records (64x64): reader clips/s, 16x56x56 crops / decode limit",
         f"{best['reader_demo']:.0f} / {best['limit_demo']:.0f} = {r_demo:.2f}",
         f">= {TARGET_VS_LIMIT}", _met(r_demo >= TARGET_VS_LIMIT)),
        ("evaluation, 2 clips x 3 crops per video: views/s (JPEG records)",
         f"{best['eval_views']:.0f}", "", ""),
    ]
    if mg is not None:
        if "error" in mg:
            rows.append(("TF Model Garden video_input.Parser on these records", "failed", "",
                         mg["error"][:80]))
        else:
            rows.append(("TF Model Garden video_input.Parser on these records: train clips/s "
                         f"(image {mg['train']['image']}; eval image {mg['eval']['image']})",
                         f"{mg['train']['clips_per_s']:.0f}", "", "reads them"))
    print(f"    {command}\n")
    print("| measurement | measured | target | result |")
    print("| --- | ---: | ---: | --- |")
    for what, value, target, result in rows:
        print(f"| {what} | {value} | {target} | {result} |")
    print(f"\nMachine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
          f"TensorFlow {tf.__version__}; load average {load_before[0]:.2f} before, "
          f"{load_after[0]:.2f} after. {args.copies} fixture copies ({n_train} training "
          f"clips, 4 shards); best of {args.rounds} interleaved rounds of {args.batches} "
          "batches each.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
