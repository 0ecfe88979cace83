r"""The offline demo: synthetic gesture videos in the UCF101 layout, built, verified, trained on.

    python -m pipeline.demo --output_dir demo_out
    python -m pipeline.demo --output_dir demo_out --notrain     # stop after the build

Writes ``demo_out/data/`` (AVI files written by OpenCV, ``classInd.txt``,
``trainlist01.txt``, ``testlist01.txt``) whose five classes (swipe left, swipe
right, move up, move down, stay still) differ only in motion over time, runs
the real Beam build on it (``--dataset ucf101``, two local workers, whole groups
``gNN`` of the train list held out as the 'val' split by ``--val_fraction``) into
``demo_out/records/`` and verifies the result. It then trains the CNN+GRU of
``configs/demo_cnn_gru.py`` on the build in a subprocess (``python -m
trainers.train``, workdir ``demo_out/run``), which picks the best epoch on the
'val' split (lowest loss), prints its accuracy there, and ends by evaluating the best
checkpoint on the test split, which training never saw (``python -m
trainers.evaluate``): it prints the test accuracy, and writes metrics,
classification report, confusion matrix and per-video predictions in
``demo_out/run/eval/test/``. Nothing is downloaded.
"""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

from pipeline import cli

cli.quiet_unless_verbose(__name__)    # before TensorFlow and Beam load (unless --verbose)
cli.stop_while_starting(__name__, "demo")    # one line, not a traceback

from absl import app, flags


FLAGS = flags.FLAGS

# The videos the demo writes: 16 frames of 64x64 per clip.
DEMO_VIDEO_FRAMES = 16
DEMO_VIDEO_SIZE = 64
# The build the demo runs: 16 evenly spaced frames at 64x64, like a small gesture model wants.
DEMO_BUILD_FLAGS = ("--sampling=uniform", "--num_frames=16", "--size=64x64",
                    "--image_format=jpeg", "--jpeg_quality=90")
# The validation split: a tenth of each class's train groups (4 clips each), held out whole.
DEMO_VAL_FRACTION = 0.1
DEMO_CONFIG_NAME = "demo"
DEMO_SHOW_PER_CLASS = 2    # clips per class on the contact sheet (python -m pipeline.show)
DEMO_TRAIN_PER_CLASS = 200
DEMO_TEST_PER_CLASS = 40
# configs/ lives at the repository root, beside this package. pipeline/ never imports
# trainers/: the demo runs training as a subprocess.
REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
DEMO_TRAIN_CONFIG = REPO_ROOT / "configs" / "demo_cnn_gru.py"
RESULT_FILE = "result.json"


def _loud() -> list[str]:
    """``--verbose`` for the demo's steps when the demo was asked for it."""
    verbose = flags.FLAGS.is_parsed() and "verbose" in flags.FLAGS and flags.FLAGS.verbose
    return ["--verbose"] if verbose else []


def run_demo(output_dir: str, train_per_class: int = DEMO_TRAIN_PER_CLASS,
             test_per_class: int = DEMO_TEST_PER_CLASS, seed: int = 0, workers: int = 2) -> str:
    """Generates the data, builds and verifies it; returns the build directory."""
    from pipeline import synthetic, verify
    data_dir = os.path.join(output_dir, "data")
    records_dir = os.path.join(output_dir, "records")
    t0 = time.monotonic()
    summary = synthetic.write_ucf101_layout(
        data_dir, {"train": train_per_class, "test": test_per_class},
        num_frames=DEMO_VIDEO_FRAMES, size=DEMO_VIDEO_SIZE, seed=seed)
    print(f"[demo] wrote {summary['train']} train + {summary['test']} test synthetic videos "
          f"({', '.join(summary['classes'])}) to {data_dir} in {time.monotonic() - t0:.1f}s",
          flush=True)
    argv = [sys.executable, "-m", "pipeline.build", "--dataset=ucf101", f"--data_dir={data_dir}",
            f"--output_dir={records_dir}", f"--config_name={DEMO_CONFIG_NAME}", "--overwrite",
            *DEMO_BUILD_FLAGS, f"--val_fraction={DEMO_VAL_FRACTION}",
            "--direct_running_mode=multi_processing",
            f"--direct_num_workers={workers}", *_loud()]
    print("[demo] building: python " + " ".join(argv[1:]), flush=True)
    t0 = time.monotonic()
    code = subprocess.call(argv)
    if code != 0:
        raise SystemExit(f"[demo] the build failed (exit {code})")
    build_dir = os.path.join(records_dir, "ucf101", DEMO_CONFIG_NAME)
    problems = verify.verify(build_dir)
    if problems:
        raise SystemExit("[demo] verify failed:\n  " + "\n  ".join(problems))
    print(f"[demo] verified {build_dir} (build {time.monotonic() - t0:.0f}s)", flush=True)
    from pipeline import show
    sheet = show.show(build_dir, "train", os.path.join(output_dir, "show"),
                      per_class=DEMO_SHOW_PER_CLASS)["contact_sheet"]
    print(f"[demo] contact sheet of the training records: {sheet}", flush=True)
    return build_dir


def _fresh_workdir(workdir: str) -> None:
    """Removes the demo's previous run (the trainer would resume it); refuses anything else."""
    if not os.path.exists(workdir):
        return
    ours = (not os.listdir(workdir) or
            any(os.path.exists(os.path.join(workdir, f)) for f in ("config.json", RESULT_FILE)))
    if not ours:
        raise SystemExit(f"[demo] {workdir} exists and is not a training run; move it away")
    shutil.rmtree(workdir)


def run_training(build_dir: str, workdir: str, seed: int = 0) -> dict:
    """Trains configs/demo_cnn_gru.py on ``build_dir`` in a subprocess; returns result.json."""
    build_dir, workdir = os.path.abspath(build_dir), os.path.abspath(workdir)
    _fresh_workdir(workdir)
    argv = [sys.executable, "-m", "trainers.train", "--config", str(DEMO_TRAIN_CONFIG),
            "--workdir", workdir, "--config.data.build_dir", build_dir,
            "--config.train.seed", str(seed), *_loud()]
    print("[demo] training: python " + " ".join(argv[1:]), flush=True)
    # From the repository root, so that trainers/ and configs/ import without installing.
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    code = subprocess.call(argv, cwd=REPO_ROOT, env=env)
    if code != 0:
        raise SystemExit(f"[demo] training failed (exit {code})")
    result_path = os.path.join(workdir, RESULT_FILE)
    try:
        with open(result_path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise SystemExit(f"[demo] training wrote no readable {result_path}: {e}") from None


def run_evaluation(workdir: str, split: str = "test") -> dict:
    """Evaluates the best checkpoint of ``workdir`` on ``split``; returns its metrics.json."""
    workdir = os.path.abspath(workdir)
    argv = [sys.executable, "-m", "trainers.evaluate", "--workdir", workdir, "--split", split,
            *_loud()]
    print("[demo] evaluating: python " + " ".join(argv[1:]), flush=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    code = subprocess.call(argv, cwd=REPO_ROOT, env=env)
    if code != 0:
        raise SystemExit(f"[demo] evaluation failed (exit {code})")
    metrics_path = os.path.join(workdir, "eval", split, "metrics.json")
    try:
        with open(metrics_path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise SystemExit(f"[demo] evaluation wrote no readable {metrics_path}: {e}") from None


def main(argv):
    cli.started()
    if len(argv) > 1:
        print(f"error: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 2
    started = time.monotonic()
    build_dir = run_demo(FLAGS.output_dir, FLAGS.train_per_class, FLAGS.test_per_class,
                         FLAGS.seed, FLAGS.workers)
    if not FLAGS.train:
        print(f"[demo] done. Records and dataset_info.json are in {build_dir}")
        return 0
    workdir = os.path.join(FLAGS.output_dir, "run")
    result = run_training(build_dir, workdir, FLAGS.seed)
    curves = os.path.join(workdir, "curves.png")
    print(f"[demo] {result.get('split', 'val')} accuracy of the best epoch: "
          f"{result['accuracy']:.3f} (best epoch {result['best_epoch']})", flush=True)
    metrics = run_evaluation(workdir, "test")
    print(f"[demo] test accuracy: {metrics['top1']:.3f} (best epoch {result['best_epoch']}, "
          f"{result['train_seconds']:.0f}s training); curves: {curves}")
    report = os.path.join(workdir, "eval", "test")
    print(f"[demo] evaluation report: {os.path.join(report, 'classification_report.txt')}; "
          f"confusion matrix: {os.path.join(report, 'confusion_matrix.png')}; "
          f"predictions: {os.path.join(report, 'predictions.csv')}")
    print(f"[demo] done in {time.monotonic() - started:.0f}s. Records in {build_dir}, "
          f"checkpoints in {workdir}, evaluation in {report}")
    return 0


def _define_flags():
    flags.DEFINE_string("output_dir", "demo_out", "Where the demo writes its data, records "
                        "and training run.")
    flags.DEFINE_integer("train_per_class", DEMO_TRAIN_PER_CLASS,
                         "Synthetic training videos per class.")
    flags.DEFINE_integer("test_per_class", DEMO_TEST_PER_CLASS, "Synthetic test videos per class.")
    flags.DEFINE_integer("seed", 0, "Seed of the synthetic videos and of the training run.")
    flags.DEFINE_integer("workers", 2, "Local Beam worker processes for the build.")
    flags.DEFINE_bool("train", True, "Train configs/demo_cnn_gru.py on the build and print its "
                      "validation and test accuracy (--notrain: stop after the build).")


if __name__ == "__main__":
    _define_flags()
    app.run(lambda argv: sys.exit(main(argv)),
            flags_parser=lambda argv: cli.parse(flags.FLAGS, argv, __name__))
