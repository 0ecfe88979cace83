#!/usr/bin/env python
r"""Size and CPU latency of the demo model exported by ``python -m trainers.export``.

    python benchmarks/export_bench.py [--runs 200] [--warmup 20] [--epochs 10] [--threads 1]
                                      [--work_dir D]

Builds a small synthetic dataset as the demo does (``pipeline.synthetic``
videos of 16 frames of 64x64, ``--train_per_class`` + ``--test_per_class`` per
class; ``python -m pipeline.build --sampling uniform --num_frames 16 --size
64x64``), trains the demo's CNN+GRU
(``configs/demo_cnn_gru.py``: 8 frames of 32x32) on it for ``--epochs`` epochs
with ``python -m trainers.train``, exports it as a SavedModel and as TFLite
float32, float16 and int8, and measures in this one run, for the Keras model
and every export:

- size: the .keras checkpoint, the SavedModel directory (saved_model.pb and
  variables/), the .tflite file;
- latency per clip: batch 1, median (and 90th percentile) over ``--runs``
  calls after ``--warmup`` calls, the variants interleaved call by call so that
  load from other processes hits them alike. Keras: ``model.predict_on_batch``;
  SavedModel: its ``serving_default`` signature; TFLite:
  ``trainers.tflite.TFLiteModel`` (one interpreter, XNNPACK, ``--threads``
  threads; quantising the input and dequantising the output included);
- parity on the test split: largest |probability difference| and top-1
  agreement with Keras.

Ratios are to Keras. The load average before and after is printed: the machine
may be shared. Progress goes to stderr; the command, the table and notes go to
stdout. Everything is written under --work_dir (default
$TMPDIR/actionflow_export_bench), never into the repository.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def log(message: str):
    print(f"[export_bench] {message}", file=sys.stderr, flush=True)


def build(work: str, per_class: tuple[int, int]) -> str:
    """The synthetic UCF101 layout built with the demo's settings; returns the build dir."""
    from pipeline import demo, synthetic
    name = f"bench_{per_class[0]}_{per_class[1]}"
    out = os.path.join(work, "records", "ucf101", name)
    if os.path.isfile(os.path.join(out, "dataset_info.json")):
        return out
    log(f"writing synthetic videos ({per_class[0]} train + {per_class[1]} test per class)")
    synthetic.write_ucf101_layout(os.path.join(work, f"data_{name}"),
                                  {"train": per_class[0], "test": per_class[1]},
                                  num_frames=demo.DEMO_VIDEO_FRAMES, size=demo.DEMO_VIDEO_SIZE)
    log("building records")
    subprocess.run([sys.executable, "-m", "pipeline.build", "--dataset=ucf101",
                    f"--data_dir={os.path.join(work, f'data_{name}')}",
                    f"--output_dir={os.path.join(work, 'records')}", f"--config_name={name}",
                    "--overwrite", "--sampling=uniform", "--num_frames=16", "--size=64x64"],
                   cwd=ROOT, check=True, capture_output=True)
    return out


def train(work: str, build_dir: str, epochs: int) -> str:
    run = os.path.join(work, f"run_{os.path.basename(build_dir)}_{epochs}")
    if os.path.isfile(os.path.join(run, "result.json")):
        return run
    log(f"training configs/demo_cnn_gru.py for {epochs} epochs")
    r = subprocess.run([sys.executable, "-m", "trainers.train", "--config",
                        "configs/demo_cnn_gru.py", "--workdir", run,
                        "--config.data.build_dir", build_dir, "--config.train.epochs", str(epochs),
                        "--config.train.early_stopping_patience", "0"],
                       cwd=ROOT, capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"training failed:\n{r.stderr[-3000:]}")
    return run


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200, help="timed calls per variant")
    ap.add_argument("--warmup", type=int, default=20, help="untimed calls per variant first")
    ap.add_argument("--epochs", type=int, default=10, help="training epochs of the demo model")
    ap.add_argument("--train_per_class", type=int, default=100)
    ap.add_argument("--test_per_class", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1,
                    help="TFLite interpreter threads (TensorFlow uses its own default pools); "
                         "1, as on a phone core; more threads only help large models")
    ap.add_argument("--work_dir", default=os.path.join(tempfile.gettempdir(),
                                                       "actionflow_export_bench"))
    a = ap.parse_args()
    os.makedirs(a.work_dir, exist_ok=True)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    load_before = os.getloadavg()

    build_dir = build(a.work_dir, (a.train_per_class, a.test_per_class))
    run_dir = train(a.work_dir, build_dir, a.epochs)

    import tensorflow as tf
    from trainers import data, export, saved_model, tflite, workdir
    run = workdir.open_run(run_dir)
    outs = {}
    for fmt, quantize in (("saved_model", "none"), ("tflite", "none"), ("tflite", "float16"),
                          ("tflite", "int8")):
        key = fmt if fmt == "saved_model" else f"tflite_{quantize}"
        log(f"exporting {key}")
        with contextlib.redirect_stdout(sys.stderr):          # its [export] lines
            outs[key] = export.export(run_dir, fmt, quantize=quantize,
                                      output=os.path.join(a.work_dir, "exports", key),
                                      overwrite=True, representative_examples=100)["path"]

    model = run.load_model("best")
    xs = [x.numpy() for x, _ in data.make_input(run.config, run.info, training=False)]
    test = np.concatenate(xs)
    serve = tf.saved_model.load(outs["saved_model"]).signatures[saved_model.SIGNATURE]
    tflites = {k: tflite.TFLiteModel(outs[k], a.threads)
               for k in ("tflite_none", "tflite_float16", "tflite_int8")}
    call = {
        "keras": lambda x: model.predict_on_batch(x),
        "saved_model": lambda x: serve(inputs=tf.constant(x))[saved_model.OUTPUT_NAME].numpy(),
        **{k: (lambda m: (lambda x: m(x)))(m) for k, m in tflites.items()},
    }
    names = list(call)
    log(f"parity on the {len(test)} test clips")
    reference = model.predict(test, verbose=0)
    parity = {}
    for name in names:
        probs = np.concatenate([call[name](test[i:i + 1]) for i in range(len(test))])
        parity[name] = (float(np.abs(probs - reference).max()),
                        float((probs.argmax(-1) == reference.argmax(-1)).mean()))

    log(f"timing {a.warmup} + {a.runs} calls per variant, interleaved")
    clip = test[:1]
    times = {name: [] for name in names}
    for i in range(a.warmup + a.runs):
        for name in names:
            start = time.perf_counter()
            call[name](clip)
            if i >= a.warmup:
                times[name].append(time.perf_counter() - start)
    load_after = os.getloadavg()

    sizes = {"keras": os.path.getsize(run.checkpoint_path("best")),
             **{name: export.model_bytes(outs[name]) for name in names if name != "keras"}}
    labels = {"keras": "Keras (.keras, predict_on_batch)", "saved_model": "SavedModel",
              "tflite_none": "TFLite float32", "tflite_float16": "TFLite float16",
              "tflite_int8": "TFLite int8 (uint8 in, int8 out)"}
    median = {n: float(np.median(times[n])) for n in names}
    p90 = {n: float(np.percentile(times[n], 90)) for n in names}

    print(f"command: python benchmarks/export_bench.py --runs {a.runs} --warmup {a.warmup} "
          f"--epochs {a.epochs} --train_per_class {a.train_per_class} --test_per_class "
          f"{a.test_per_class} --threads {a.threads}")
    with open(os.path.join(run_dir, "result.json")) as f:
        result = json.load(f)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
          f"TensorFlow {tf.__version__}; load average {load_before[0]:.2f} before, "
          f"{load_after[0]:.2f} after (1 min)")
    print(f"model: configs/demo_cnn_gru.py ({model.count_params():,} parameters, input "
          f"{tuple(model.input_shape[1:])} uint8), {a.epochs} epochs on "
          f"{a.train_per_class * 5} synthetic training clips, test accuracy "
          f"{result.get('accuracy', float('nan')):.3f}; parity on {len(test)} test clips\n")
    print("| model | size KB | size ratio | latency ms (median) | p90 ms | latency ratio "
          "| max abs diff p | top-1 = Keras |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for n in names:
        print(f"| {labels[n]} | {sizes[n] / 1024:,.1f} | {sizes[n] / sizes['keras']:.2f} | "
              f"{median[n] * 1000:.2f} | {p90[n] * 1000:.2f} | "
              f"{median[n] / median['keras']:.3f} | {parity[n][0]:.2g} | {parity[n][1]:.3f} |")


if __name__ == "__main__":
    from stopping import run
    run(main)
