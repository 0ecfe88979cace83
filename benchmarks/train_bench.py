"""Training throughput per model family, and how input-bound the reader leaves training.

    python benchmarks/train_bench.py [--steps 20] [--batch 8] [--work_dir /tmp/af_train_bench]
                                     [--precision float32 --precision mixed_float16 ...]

For each family at small sizes it times ``train_on_batch`` over in-memory
batches (after warm-up steps) and prints clips/s. It then builds the demo's
synthetic dataset with the real build (the demo's settings), and times the same cnn_rnn training
step fed by ``tfrecords.reader.make_dataset`` against the same number of steps
fed from batches already in memory: the ratio (reader / memory) is the
input-boundness (1.0 = the reader costs nothing). Every figure comes from this
one run. On a GPU machine, pass ``--precision float32 --precision
mixed_float16`` (and ``--resnet`` for ResNet152V2) to compare step times.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def families(resnet: bool):
    """(label, family, knobs, input shape, classes, input kind) at benchmark sizes."""
    out = [
        ("cnn_rnn (seed gesture net)", "cnn_rnn", {}, (11, 100, 100, 3), 5, "video"),
        ("conv3d", "conv3d", {}, (16, 64, 64, 3), 5, "video"),
        ("transfer_rnn MobileNet a=0.25", "transfer_rnn",
         dict(alpha=0.25, weights=None), (11, 100, 100, 3), 5, "video"),
        ("keypoint_rnn ensemble (90x30)", "keypoint_rnn", dict(variant="ensemble"), (90, 30), 2,
         "keypoints"),
        ("image_classifier EfficientNetB3", "image_classifier", dict(weights=None),
         (128, 128, 3), 15, "image"),
    ]
    if resnet:
        out.append(("transfer_rnn ResNet152V2+LSTM", "transfer_rnn",
                    dict(variant="resnet152v2_lstm", weights=None), (16, 112, 112, 3), 101,
                    "video"))
    return out


def _batch(shape, classes, kind, batch, rng, binary):
    if kind == "keypoints":
        x = rng.random((batch,) + shape, dtype=np.float32)
        y = rng.integers(0, 2, (batch, shape[0], 1)).astype(np.float32) if binary else \
            rng.integers(0, classes, (batch, shape[0]))
        return x, y
    x = rng.integers(0, 255, (batch,) + shape, dtype=np.uint8)
    return x, rng.integers(0, classes, (batch,))


def time_family(label, name, knobs, shape, classes, kind, *, batch, steps, precision):
    import keras
    from trainers import models
    keras.mixed_precision.set_global_policy(precision)
    model = models.build_model(name, knobs, input_shape=shape, num_classes=classes)
    binary = kind == "keypoints" and model.output.shape[-1] == 1
    model.compile(optimizer="adam", loss="binary_crossentropy" if binary
                  else "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x, y = _batch(shape, classes, kind, batch, rng, binary)
    for _ in range(3):
        model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    step = (time.perf_counter() - start) / steps
    keras.mixed_precision.set_global_policy("float32")
    return step


def input_boundness(work: pathlib.Path, batch: int, steps: int) -> tuple[float, float]:
    """(step seconds fed by the reader, step seconds fed from memory) for cnn_rnn."""
    import tensorflow as tf
    from tfrecords import reader
    from trainers import models
    from pipeline import synthetic
    build = work / "records" / "ucf101" / "bench"
    if not (build / "dataset_info.json").exists():      # the demo's data and build settings
        synthetic.write_ucf101_layout(str(work / "data"), {"train": 16, "test": 6})
        subprocess.run([sys.executable, "-m", "pipeline.build", "--dataset=ucf101",
                        f"--data_dir={work / 'data'}", f"--output_dir={work / 'records'}",
                        "--config_name=bench", "--overwrite", "--sampling=uniform",
                        "--num_frames=16", "--size=64x64"], cwd=ROOT, check=True,
                       capture_output=True)
    ds = reader.make_dataset(str(build), "train", training=True, batch_size=batch,
                             num_frames=16, sampling="uniform", crop_size=64, crop="random")
    model = models.build_model("cnn_rnn", {}, input_shape=(16, 64, 64, 3), num_classes=5)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    batches = list(ds.take(steps + 3))
    memory = tf.data.Dataset.from_tensor_slices(
        (tf.concat([b[0] for b in batches], 0), tf.concat([b[1] for b in batches], 0))
    ).batch(batch).cache()
    list(memory)                                    # materialise the cache
    model.fit(ds, steps_per_epoch=3, epochs=1, verbose=0)
    model.fit(memory, steps_per_epoch=3, epochs=1, verbose=0)
    t0 = time.perf_counter()
    model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
    t_reader = (time.perf_counter() - t0) / steps
    t0 = time.perf_counter()
    model.fit(memory.take(steps), epochs=1, verbose=0)
    t_memory = (time.perf_counter() - t0) / steps
    return t_reader, t_memory


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--precision", action="append", default=None)
    ap.add_argument("--resnet", action="store_true")
    ap.add_argument("--work_dir", default="/tmp/af_train_bench")
    a = ap.parse_args()
    precisions = a.precision or ["float32"]
    work = pathlib.Path(a.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    import tensorflow as tf
    device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    rows = []
    for label, name, knobs, shape, classes, kind in families(a.resnet):
        steps = {p: time_family(label, name, knobs, shape, classes, kind, batch=a.batch,
                                steps=a.steps, precision=p) for p in precisions}
        base = steps[precisions[0]]
        for p in precisions:
            ratio = f"{base / steps[p]:.2f}x {precisions[0]}" if p != precisions[0] else ""
            rows.append((label, str(shape), p, steps[p] * 1000, a.batch / steps[p], ratio))
    t_reader, t_memory = input_boundness(work, a.batch, a.steps)
    print(f"command: python benchmarks/train_bench.py --steps {a.steps} --batch {a.batch} "
          + " ".join(f"--precision {p}" for p in precisions) + (" --resnet" if a.resnet else ""))
    print(f"device: {device}; {os.cpu_count()} CPU cores; batch {a.batch}; "
          f"{a.steps} timed steps after 3 warm-up steps\n")
    print("| family | input | precision | step ms | clips/s | ratio |")
    print("| --- | --- | --- | ---: | ---: | --- |")
    for label, shape, p, ms, rate, ratio in rows:
        print(f"| {label} | {shape} | {p} | {ms:,.0f} | {rate:,.1f} | {ratio} |")
    ratio = t_reader / t_memory
    print(f"\ninput-boundness, cnn_rnn on the demo build (16x64x64, batch {a.batch}): "
          f"step {t_reader * 1000:.0f} ms fed by the reader vs {t_memory * 1000:.0f} ms from "
          f"memory = {ratio:.2f} (target <= 1.1: {'met' if ratio <= 1.1 else 'not met'})")


if __name__ == "__main__":
    from stopping import run
    run(main)
