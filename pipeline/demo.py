r"""The offline demo: synthetic gesture videos in the UCF101 layout, built and verified.

    python -m pipeline.demo --output_dir demo_out

Writes ``demo_out/data/`` (AVI files written by OpenCV, ``classInd.txt``,
``trainlist01.txt``, ``testlist01.txt``) whose five classes (swipe left, swipe
right, move up, move down, stay still) differ only in motion over time, then
runs the real Beam build on it (``--dataset ucf101``, two local workers) into
``demo_out/records/`` and verifies the result. Nothing is downloaded.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

from absl import app, flags

from pipeline import cli

FLAGS = flags.FLAGS

# The build the demo runs: 16 evenly spaced frames at 64x64, like a small gesture model wants.
DEMO_BUILD_FLAGS = ("--sampling=uniform", "--num_frames=16", "--size=64x64",
                    "--image_format=jpeg", "--jpeg_quality=90")
DEMO_CONFIG_NAME = "demo"


def run_demo(output_dir: str, train_per_class: int = 16, test_per_class: int = 6,
             seed: int = 0, workers: int = 2) -> str:
    """Generates the data, builds and verifies it; returns the build directory."""
    from pipeline import synthetic, verify
    data_dir = os.path.join(output_dir, "data")
    records_dir = os.path.join(output_dir, "records")
    t0 = time.monotonic()
    summary = synthetic.write_ucf101_layout(
        data_dir, {"train": train_per_class, "test": test_per_class}, seed=seed)
    print(f"[demo] wrote {summary['train']} train + {summary['test']} test synthetic videos "
          f"({', '.join(summary['classes'])}) to {data_dir} in {time.monotonic() - t0:.1f}s")
    argv = [sys.executable, "-m", "pipeline.build", "--dataset=ucf101", f"--data_dir={data_dir}",
            f"--output_dir={records_dir}", f"--config_name={DEMO_CONFIG_NAME}", "--overwrite",
            *DEMO_BUILD_FLAGS, "--direct_running_mode=multi_processing",
            f"--direct_num_workers={workers}"]
    print("[demo] building: python " + " ".join(argv[1:]), flush=True)
    code = subprocess.call(argv)
    if code != 0:
        raise SystemExit(f"[demo] the build failed (exit {code})")
    build_dir = os.path.join(records_dir, "ucf101", DEMO_CONFIG_NAME)
    problems = verify.verify(build_dir)
    if problems:
        raise SystemExit("[demo] verify failed:\n  " + "\n  ".join(problems))
    print(f"[demo] verified {build_dir}")
    return build_dir


def main(argv):
    if len(argv) > 1:
        print(f"error: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 2
    build_dir = run_demo(FLAGS.output_dir, FLAGS.train_per_class, FLAGS.test_per_class,
                         FLAGS.seed, FLAGS.workers)
    print(f"[demo] done. Records and dataset_info.json are in {build_dir}")
    return 0


def _define_flags():
    flags.DEFINE_string("output_dir", "demo_out", "Where the demo writes its data and records.")
    flags.DEFINE_integer("train_per_class", 16, "Synthetic training videos per class.")
    flags.DEFINE_integer("test_per_class", 6, "Synthetic test videos per class.")
    flags.DEFINE_integer("seed", 0, "Seed of the synthetic videos.")
    flags.DEFINE_integer("workers", 2, "Local Beam worker processes for the build.")


if __name__ == "__main__":
    _define_flags()
    app.run(lambda argv: sys.exit(main(argv)),
            flags_parser=lambda argv: cli.parse_strict(argv, __name__))
