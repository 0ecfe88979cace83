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
   same records (one op per frame), from memory, through
   ``Dataset.map(num_parallel_calls=AUTOTUNE)`` and ``batch(32)`` (the same
   parallelism); ratio reader / limit;
3. a per-clip OpenCV loader as Keras video generators do it: open the AVI,
   take 16 evenly spaced frames (grab/retrieve), resize to 112x112, float32,
   batches of 8, ``multiprocessing.Pool(2)``; ratios reader / loader for JPEG
   and raw records (raw as the JPEG ones, 32 frames, and 16 frames = exactly
   the clip), with the disk cost per clip;
4. input-boundness: the step time of a small Keras Conv3D model fed by the
   reader vs fed the same batches from memory;
5. the demo records (16x56x56 crops) vs their decode limit; evaluation views/s;
6. with ``--tfm_python``: TF Model Garden's video parser
   (``official.vision.dataloaders.video_input.Parser``) run in that interpreter
   on the same JPEG records.

Each throughput is measured ``--rounds`` times, variants interleaved; the
table gives the best round's wall-clock rate and the least CPU time per clip
(all threads of this process, or of the OpenCV workers). Other processes on
a shared machine slow wall-clock rounds down; CPU time per clip is much less
sensitive to them, and a ratio of CPU times is the ratio an otherwise idle
machine would show with every core busy. Progress goes to stderr; the
command, one markdown table and notes go to stdout. Everything is written
under --work_dir (default $TMPDIR/actionflow_input_bench), never into the
repository.
"""
from __future__ import annotations

import argparse
import gc
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
    _run(cmd)
    return build_dir


def _run(cmd: list[str]):
    proc = subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")


def demo_build(work: str) -> str:
    build_dir = os.path.join(work, "demo", "records", "ucf101", "demo")
    if not os.path.exists(os.path.join(build_dir, "dataset_info.json")):
        log("building the demo records: python -m pipeline.demo")
        _run([sys.executable, "-m", "pipeline.demo", "--notrain", f"--output_dir={os.path.join(work, 'demo')}"])
    return build_dir


# --------------------------------------------------------------------------
# Measurements.
# --------------------------------------------------------------------------
class Best:
    """Best wall-clock rate and least CPU time per unit over rounds of one measurement."""

    def __init__(self):
        self.rate, self.cpu_ms = 0.0, float("inf")

    def add(self, units: float, wall_s: float, cpu_s: float):
        self.rate = max(self.rate, units / wall_s)
        self.cpu_ms = min(self.cpu_ms, 1e3 * cpu_s / units)


def measure(make, batches: int, best: Best, warmup: int = 5):
    """Rows/s and process CPU per row over ``batches`` batches of a fresh pipeline.

    CPU time counts every thread of this process (tf.data's included); in
    steady state the work prefetched before the window balances the work
    prefetched for after it.
    """
    it = iter(make())
    for _ in range(warmup):
        next(it)
    rows, wall, cpu = 0, time.perf_counter(), time.process_time()
    for _ in range(batches):
        rows += int(next(it)[0].shape[0])
    best.add(rows, time.perf_counter() - wall, time.process_time() - cpu)
    del it
    gc.collect()


def decode_limit(build_dir: str, frames: int, batch: int):
    """tf.io.decode_jpeg of ``frames`` stored frames per clip, from memory, AUTOTUNE map."""
    import tensorflow as tf
    from tfrecords import reader, schema
    files = reader.open_source(build_dir, "train").files
    encoded = [schema.parse_clip(r)["frames"].numpy()[:frames]
               for r in tf.data.TFRecordDataset(list(files))]
    # One decode op per frame: cheaper than a tf.map_fn loop, so the tighter limit.
    decode = lambda f: tf.stack([tf.io.decode_jpeg(f[k], channels=3)  # noqa: E731
                                 for k in range(frames)])
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


def _cv_batch(paths: list[str]) -> tuple[int, float]:
    """One float32 batch; returns (clips, CPU seconds this worker spent)."""
    cpu = time.process_time()
    clips = np.stack([_cv_clip(p) for p in paths]).shape[0]
    return clips, time.process_time() - cpu


def _cv_init():
    import cv2
    cv2.setNumThreads(1)


def opencv_round(pool, paths: list[str], batches: int, best: Best):
    jobs = [paths[(i * 8) % len(paths):][:8] or paths[:8] for i in range(batches + 2)]
    list(pool.imap(_cv_batch, jobs[:2]))                       # warm the workers
    wall = time.perf_counter()
    done = list(pool.imap(_cv_batch, jobs[2:]))
    best.add(sum(c for c, _ in done), time.perf_counter() - wall, sum(t for _, t in done))


def keras_steps(build_dir: str, steps: int, rounds: int) -> dict[str, Best]:
    """Seconds and CPU seconds per step of a small Conv3D model, reader-fed and memory-fed."""
    import keras
    import tensorflow as tf
    conv = lambda n, s: keras.layers.Conv3D(n, 3, strides=s, padding="same",  # noqa: E731
                                            activation="relu")
    model = keras.Sequential([
        keras.Input((FRAMES, CROP, CROP, 3), dtype="uint8"),
        keras.layers.Rescaling(1 / 255.0),
        conv(32, (1, 2, 2)), conv(64, 2), conv(128, 2),
        keras.layers.GlobalAveragePooling3D(),
        keras.layers.Dense(len(CLASSES)),
    ])
    model.compile(optimizer="adam",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    fed = train_reader(build_dir)
    held = [b for b in fed.take(4)]
    memory = tf.data.Dataset.from_tensor_slices(
        (tf.stack([v for v, _ in held]), tf.stack([l for _, l in held]))).repeat().prefetch(2)
    best = {"reader": Best(), "memory": Best()}
    for ds in (fed, memory):
        model.fit(ds, epochs=1, steps_per_epoch=2, verbose=0)     # trace and warm up
    for r in range(rounds):
        for name, ds in (("reader", fed), ("memory", memory)):
            wall, cpu = time.perf_counter(), time.process_time()
            model.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0)
            best[name].add(steps, time.perf_counter() - wall, time.process_time() - cpu)
        log(f"keras round {r + 1}: reader-fed {1 / best['reader'].rate:.3f} s/step, "
            f"memory-fed {1 / best['memory'].rate:.3f} s/step (best so far)")
    return best


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
    raw16 = build(data, out, "u16_short128_raw", "--sampling=uniform", "--num_frames=16",
                  "--resize_shorter=128", "--num_shards=4", "--image_format=raw")
    demo = demo_build(work)
    load_before = os.getloadavg()

    import tensorflow as tf
    from tfrecords import reader, schema
    variants = {
        "reader_jpeg": lambda: train_reader(jpeg),
        "limit_jpeg": lambda: decode_limit(jpeg, FRAMES, BATCH),
        "reader_raw": lambda: train_reader(raw),
        "reader_raw16": lambda: train_reader(raw16),
        "reader_demo": lambda: train_reader(demo, crop=56),
        "limit_demo": lambda: decode_limit(demo, FRAMES, BATCH),
        "eval_views": lambda: reader.make_dataset(jpeg, "test", training=False, batch_size=4,
                                                  num_frames=FRAMES, crop_size=CROP,
                                                  num_test_clips=2, num_test_crops=3,
                                                  repeat=True),
    }
    best = {k: Best() for k in list(variants) + ["opencv"]}
    with multiprocessing.get_context("spawn").Pool(2, initializer=_cv_init) as pool:
        for r in range(args.rounds):
            for name, make in variants.items():
                measure(make, args.batches, best[name])
            opencv_round(pool, paths, max(4, args.batches // 3), best["opencv"])
            log(f"round {r + 1}/{args.rounds}: " + ", ".join(
                f"{k} {v.rate:.0f}/s {v.cpu_ms:.2f} ms" for k, v in best.items()))
    steps = keras_steps(jpeg, steps=max(3, args.batches // 4), rounds=args.rounds)
    mg = model_garden(args.tfm_python, jpeg) if args.tfm_python else None
    load_after = os.getloadavg()

    infos = {k: schema.read_dataset_info(b) for k, b in (("jpeg", jpeg), ("raw", raw),
                                                          ("raw16", raw16))}
    per_clip = {k: i["splits"]["train"]["num_bytes"] / i["splits"]["train"]["num_examples"]
                for k, i in infos.items()}
    n_train = infos["jpeg"]["splits"]["train"]["num_examples"]

    def rate(k):
        return f"{best[k].rate:.0f}"

    def cpu(k):
        return f"{best[k].cpu_ms:.2f}"

    def ratio(a, b, target, at_least=True, unit=""):
        """A ratio row's cells: wall ratio, CPU-time ratio, target, verdict for each."""
        wall = best[a].rate / best[b].rate
        by_cpu = best[b].cpu_ms / best[a].cpu_ms
        ok = (lambda x: x >= target) if at_least else (lambda x: x <= target)
        sign = ">=" if at_least else "<="
        verdict = (f"{'met' if ok(wall) else '**NOT met**'} (wall); "
                   f"{'met' if ok(by_cpu) else '**NOT met**'} (CPU)")
        return f"{wall:.2f}{unit}", f"{by_cpu:.2f}{unit}", f"{sign} {target}{unit}", verdict

    step_r, step_m = steps["reader"], steps["memory"]
    bound_wall = step_m.rate / step_r.rate
    bound_cpu = step_r.cpu_ms / step_m.cpu_ms
    rows = [
        ("reader, JPEG records: training clips (batch 32, 16x112x112, random crop + flip)",
         rate("reader_jpeg"), cpu("reader_jpeg"), "", ""),
        ("JPEG-decode limit: tf.io.decode_jpeg, 16 frames per clip from memory, AUTOTUNE map",
         rate("limit_jpeg"), cpu("limit_jpeg"), "", ""),
        ("reader / decode limit", *ratio("reader_jpeg", "limit_jpeg", TARGET_VS_LIMIT)),
        ("OpenCV per-clip loader (16 evenly spaced frames, 112x112 float32, batch 8, Pool(2))",
         f"{best['opencv'].rate:.1f}", cpu("opencv"), "", ""),
        ("reader JPEG / OpenCV loader",
         *ratio("reader_jpeg", "opencv", TARGET_JPEG_VS_CV, unit="x")),
        ("reader, raw records (32 frames stored, as the JPEG ones): training clips",
         rate("reader_raw"), cpu("reader_raw"), "", ""),
        ("reader raw (32 stored) / OpenCV loader",
         *ratio("reader_raw", "opencv", TARGET_RAW_VS_CV, unit="x")),
        ("reader, raw records (16 frames stored = the clip; no temporal jitter): training clips",
         rate("reader_raw16"), cpu("reader_raw16"), "", ""),
        ("reader raw (16 stored) / OpenCV loader",
         *ratio("reader_raw16", "opencv", TARGET_RAW_VS_CV, unit="x")),
        ("disk per clip: source AVI / JPEG 32 frames / raw 32 frames / raw 16 frames",
         f"{os.path.getsize(FIXTURE) / 1e3:.0f} KB / {per_clip['jpeg'] / 1e3:.0f} KB / "
         f"{per_clip['raw'] / 1e6:.2f} MB / {per_clip['raw16'] / 1e6:.2f} MB", "", "",
         f"raw = {per_clip['raw'] / per_clip['jpeg']:.1f}x JPEG"),
        ("Keras step (3 Conv3D layers, batch 32, same 2 CPU cores): s/step and CPU s/step, "
         "reader-fed", f"{1 / step_r.rate:.3f}", f"{step_r.cpu_ms / 1e3:.3f}", "", ""),
        ("... memory-fed (the same 4 batches)", f"{1 / step_m.rate:.3f}",
         f"{step_m.cpu_ms / 1e3:.3f}", "", ""),
        ("reader-fed / memory-fed step", f"{bound_wall:.2f}", f"{bound_cpu:.2f}",
         f"<= {TARGET_INPUT_BOUND}",
         f"{'met' if bound_wall <= TARGET_INPUT_BOUND else '**NOT met**'} (wall); "
         f"{'met' if bound_cpu <= TARGET_INPUT_BOUND else '**NOT met**'} (CPU)"),
        ("demo records (64x64): reader clips, 16x56x56 crops", rate("reader_demo"),
         cpu("reader_demo"), "", ""),
        ("demo records: decode limit, 16 frames per clip", rate("limit_demo"), cpu("limit_demo"),
         "", ""),
        ("demo reader / decode limit", *ratio("reader_demo", "limit_demo", TARGET_VS_LIMIT)),
        ("evaluation views (2 clips x 3 crops per video, JPEG records)", rate("eval_views"),
         cpu("eval_views"), "", ""),
    ]
    if mg is not None:
        if "error" in mg:
            rows.append(("TF Model Garden video_input.Parser on the JPEG records", "failed", "",
                         "", mg["error"][:80]))
        else:
            rows.append(("TF Model Garden video_input.Parser on the JPEG records, training "
                         f"clips (image {mg['train']['image']}; eval {mg['eval']['image']})",
                         f"{mg['train']['clips_per_s']:.0f}", "", "", "reads them"))
    print(f"    {command}\n")
    print("| measurement | per second, wall (best round) | CPU ms per unit (least) | target "
          "| result |")
    print("| --- | ---: | ---: | ---: | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"\nMachine: {os.cpu_count()} cores, {platform.machine()}, TensorFlow {tf.__version__}; "
          f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after (other jobs "
          f"share the machine). {args.copies} fixture copies ({n_train} training clips, 4 shards); "
          f"{args.rounds} interleaved rounds of {args.batches} batches; wall = the best round's "
          "rate, CPU = this process's (or the OpenCV workers') CPU time per clip in the least "
          "round; a CPU ratio is the wall ratio an otherwise idle machine would show when both "
          "sides keep every core busy.")
    return 0


if __name__ == "__main__":
    from stopping import run
    run(main)
