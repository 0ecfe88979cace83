#!/usr/bin/env python
r"""Training step time per model family on whatever accelerator is visible, and how much the
reader holds training back.

    python benchmarks/gpu_bench.py [--steps 20] [--batch 8] [--copies 40] [--work_dir D]
    python benchmarks/gpu_bench.py --small          # a CPU-sized run of every code path
    python benchmarks/gpu_bench.py --small --families conv3d,keypoint_rnn --steps 1   # the tests'

For each model family it times training steps (``model.fit`` over a fixed number of
steps, after warm-up) in float32, mixed_float16 and mixed_bfloat16 (the latter where the
device supports it), each without and with XLA (``jit_compile``), fed from batches held
in memory; then, for float32 and for the fastest setting, fed by the real reader
(``tfrecords.reader``) from a real build: reader / memory is the input-boundness (1.0:
the reader costs nothing). Last, the reader alone: clips/s of the training input, and on a
GPU with ``prefetch_to_device``.

The builds are made here, from the real fixtures in ../shared/fixtures/real (read, never
copied into the repository): ``--copies`` links of the UCF-like AVI in class folders
(16 uniform frames at 112x112; ``--small``: 8 at 32x32) for the video and image families,
the real soccer OpenPose JSON for the keypoint family. Prints one markdown table; every
ratio is between figures of this run.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time


ROOT = pathlib.Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "fixtures" / "real"
sys.path.insert(0, str(ROOT))

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


STARTED = time.monotonic()


def log(message: str):
    print(f"[gpu_bench {time.monotonic() - STARTED:5.1f}s] {message}", file=sys.stderr,
          flush=True)


# --------------------------------------------------------------------------
# Builds.
# --------------------------------------------------------------------------
def _build(args: list[str]) -> None:
    import contextlib
    from pipeline import build
    with contextlib.redirect_stdout(sys.stderr):        # its output folder: not the table's
        rc = build.build_main(["build", "--noprogress", "--overwrite",
                               "--direct_running_mode=in_memory", "--direct_num_workers=1",
                               *args])
    if rc:
        sys.exit(f"the benchmark's build failed ({rc}): {' '.join(args)}")


def make_builds(work: pathlib.Path, copies: int, small: bool) -> dict[str, str]:
    """{'video': build dir, 'keypoints': build dir} made from the real fixtures."""
    data = work / "data" / "videos"
    if not data.exists():
        for i in range(copies):
            folder = data / f"class_{i % 4}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"copy_{i:04d}.avi").symlink_to(
                REAL / "videos" / "ucf_like_320x240_fmp4.avi")
    frames, size = ("8", "32x32") if small else ("16", "112x112")
    out = work / "records"
    if not (out / "folder" / "video" / "dataset_info.json").exists():
        log(f"building {copies} videos, {frames} frames of {size}")
        _build(["--dataset=folder", f"--data_dir={data}", f"--output_dir={out}",
                "--config_name=video", "--sampling=uniform", f"--num_frames={frames}",
                f"--size={size}"])
    poses = work / "data" / "openpose"
    if not poses.exists():              # --small: three of the twenty sequences
        poses.mkdir(parents=True)
        for path in sorted((REAL / "soccer" / "openpose").glob("Kick_*_keypoints.json")):
            if not small or path.name.split("_")[1] in ("1", "2", "3"):
                (poses / path.name).symlink_to(path)
    if not (out / "openpose" / "keypoints" / "dataset_info.json").exists():
        log("building the soccer OpenPose sequences")
        _build(["--dataset=openpose", f"--data_dir={poses}",
                f"--output_dir={out}", "--config_name=keypoints", "--frame_size=1920x1080",
                f"--label_csv={REAL / 'soccer' / 'labels.csv'}", "--id_column=kick",
                "--id_template=Kick_{id}", "--label_column=type"])
    return {"video": str(out / "folder" / "video"),
            "keypoints": str(out / "openpose" / "keypoints")}


# --------------------------------------------------------------------------
# Families.
# --------------------------------------------------------------------------
def families(small: bool) -> list[tuple]:
    """(label, family, knobs, modality) of every model family at benchmark sizes."""
    tiny = dict(filters=(4, 8), dense_units=(16,))
    return [
        ("conv3d", "conv3d", tiny if small else {}, "video"),
        ("cnn_rnn", "cnn_rnn", dict(tiny, rnn_units=8) if small else {}, "video"),
        ("transfer_rnn MobileNet", "transfer_rnn",
         dict(alpha=0.25, weights=None, rnn_units=8, pool_size=1) if small
         else dict(weights=None), "video"),
        ("keypoint_rnn lstm", "keypoint_rnn",
         dict(units=(8,), dropouts=(0.1,), dense_units=(8,), output="softmax") if small
         else dict(output="softmax"), "keypoints"),
        ("image_classifier MobileNetV2", "image_classifier",
         dict(backbone="MobileNetV2", alpha=0.35, weights=None, dense_units=8) if small
         else dict(backbone="MobileNetV2", weights=None), "image"),
    ]


def _input(build: str, modality: str, batch: int, small: bool):
    """(the real reader's training input, its input shape, classes) for a modality."""
    import tensorflow as tf
    from tfrecords import reader, schema
    info = schema.read_dataset_info(build)
    classes = len(info["classes"])
    if modality == "keypoints":
        first = next(iter(tf.data.TFRecordDataset(
            f"{build}/{info['splits']['train']['shards'][0]}")))
        p = schema.parse_keypoints(first)
        people, points, coords = int(p["num_people"]), int(p["num_points"]), int(p["num_coords"])
        window = 30 if small else 90
        ds = reader.make_keypoint_dataset(build, "train", training=True, batch_size=batch,
                                          window=window, num_people=people,
                                          num_points=points, num_coords=coords,
                                          target="frames", drop_remainder=True)
        ds = ds.map(lambda f, y: (f["keypoints"], tf.maximum(y, 0)))
        return ds, (window, people * points * coords), classes
    crop = 32 if small else 112
    if modality == "image":
        ds = reader.make_image_dataset(build, "train", training=True, batch_size=batch,
                                       crop_size=crop, crop="random", drop_remainder=True)
        return ds, (crop, crop, 3), classes
    frames = 8 if small else 16
    ds = reader.make_dataset(build, "train", training=True, batch_size=batch,
                             num_frames=frames, sampling="uniform", crop_size=crop,
                             crop="random", drop_remainder=True)
    return ds, (frames, crop, crop, 3), classes


def supported(precision: str) -> bool:
    """Whether the visible device runs this policy natively (bfloat16 needs a GPU of compute
    capability 8.0 or more, or a CPU; float16 a GPU)."""
    import tensorflow as tf
    gpus = tf.config.list_physical_devices("GPU")
    if precision == "mixed_float16":
        return bool(gpus)
    if precision == "mixed_bfloat16" and gpus:
        major = tf.config.experimental.get_device_details(gpus[0]).get(
            "compute_capability", (0, 0))[0]
        return major >= 8
    return True


def step_time(family: str, knobs: dict, shape, classes: int, feed, *, precision: str,
              xla: bool, steps: int) -> float:
    """Seconds per training step of ``family`` fed by ``feed`` (a repeating dataset)."""
    import keras
    from trainers import models
    keras.mixed_precision.set_global_policy(precision)
    try:
        model = models.build_model(family, knobs, input_shape=shape, num_classes=classes)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                      jit_compile=xla)
        model.fit(feed, steps_per_epoch=2, epochs=1, verbose=0)             # warm-up, tracing
        start = time.perf_counter()
        model.fit(feed, steps_per_epoch=steps, epochs=1, verbose=0)
        return (time.perf_counter() - start) / steps
    finally:
        keras.mixed_precision.set_global_policy("float32")


def reader_rate(feed, batch: int, steps: int, device: str | None) -> float:
    """Clips/s the training input delivers alone (to ``device`` with prefetch_to_device)."""
    import tensorflow as tf
    ds = feed
    if device:
        ds = ds.apply(tf.data.experimental.prefetch_to_device(device))
    it = iter(ds)
    next(it)
    start = time.perf_counter()
    for _ in range(steps):
        next(it)
    return steps * batch / (time.perf_counter() - start)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=20, help="timed steps per setting (20)")
    ap.add_argument("--batch", type=int, default=8, help="clips per step (8)")
    ap.add_argument("--copies", type=int, default=40, help="videos in the real build (40)")
    ap.add_argument("--small", action="store_true",
                    help="tiny models and inputs, float32 for all families and the other "
                         "settings for one: a check that every path runs, on a CPU")
    ap.add_argument("--families", default="",
                    help="comma-separated families to run (default all: "
                         f"{','.join(dict.fromkeys(f[1] for f in families(False)))})")
    ap.add_argument("--work_dir", default=os.path.join(os.environ.get("TMPDIR", "/tmp"),
                                                       "actionflow_gpu_bench"))
    a = ap.parse_args()
    known = [f[1] for f in families(False)]
    chosen = [f for f in a.families.split(",") if f]
    if any(f not in known for f in chosen):
        ap.error(f"--families: choose among {', '.join(known)}")
    if a.small:
        a.steps, a.copies = min(a.steps, 3), min(a.copies, 8)
    if not (REAL / "README.md").exists():
        sys.exit(f"the real fixtures are missing: {REAL}")
    work = pathlib.Path(a.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    builds = make_builds(work, a.copies, a.small)
    import tensorflow as tf
    gpus = tf.config.list_physical_devices("GPU")
    device = (f"GPU: {tf.config.experimental.get_device_details(gpus[0]).get('device_name', '?')}"
              if gpus else f"CPU ({os.cpu_count()} cores)")
    rows, reads = [], []
    for number, (label, family, knobs, modality) in enumerate(
            f for f in families(a.small) if not chosen or f[1] in chosen):
        build = builds["keypoints" if modality == "keypoints" else "video"]
        real, shape, classes = _input(build, modality, a.batch, a.small)
        real = real.repeat()
        x, y = next(iter(real))
        memory = tf.data.Dataset.from_tensors((x, y)).repeat()
        settings = [(p, xla) for p in PRECISIONS if supported(p) for xla in (False, True)]
        if a.small and number:                   # the other families: the plain setting
            settings = [("float32", False)]
        times = {}
        for precision, xla in settings:
            log(f"{label}: {precision}{' + XLA' if xla else ''}")
            times[precision, xla] = step_time(family, knobs, shape, classes, memory,
                                              precision=precision, xla=xla, steps=a.steps)
        base = times["float32", False]
        best = min(times, key=times.get)
        for key in dict.fromkeys([("float32", False), best]):
            log(f"{label}: {key[0]}{' + XLA' if key[1] else ''} fed by the reader")
            fed = step_time(family, knobs, shape, classes, real, precision=key[0], xla=key[1],
                            steps=a.steps)
            times[key + ("reader",)] = fed
        for (precision, xla), t in ((k, v) for k, v in times.items() if len(k) == 2):
            fed = times.get((precision, xla, "reader"))
            rows.append((label, str(shape), precision, "yes" if xla else "no", t * 1e3,
                         f"{fed * 1e3:,.1f}" if fed else "", f"{fed / t:.2f}" if fed else "",
                         f"{t / base:.2f}"))
        reads.append((label, reader_rate(real, a.batch, a.steps * 2, None),
                      reader_rate(real, a.batch, a.steps * 2, "/gpu:0") if gpus else None))

    print(f"$ python benchmarks/gpu_bench.py {' '.join(sys.argv[1:])}\n")
    print(f"device: {device}; TensorFlow {tf.__version__}; batch {a.batch}; {a.steps} timed "
          "steps after 2 warm-up steps; builds from ../shared/fixtures/real\n")
    print("| family | input | precision | XLA | step ms (memory) | step ms (reader) | "
          "reader / memory | step / float32 |")
    print("| --- | --- | --- | --- | ---: | ---: | ---: | ---: |")
    for label, shape, precision, xla, ms, fed, ratio, vs in rows:
        print(f"| {label} | {shape} | {precision} | {xla} | {ms:,.1f} | {fed} | {ratio} | {vs} |")
    print("\n| family | reader alone (clips/s) | with prefetch_to_device |")
    print("| --- | ---: | ---: |")
    for label, plain, prefetched in reads:
        print(f"| {label} | {plain:,.0f} | "
              f"{'n/a (no GPU)' if prefetched is None else f'{prefetched:,.0f}'} |")
    print("\nTargets (GPU): mixed_float16 step <= 0.5x float32 for the conv and transfer "
          "families; reader / memory <= 1.1 (the input is never the bottleneck).")


if __name__ == "__main__":
    from stopping import run
    run(main)
