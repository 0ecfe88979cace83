"""Shared test helpers: markers, the real fixtures in ../shared, running entry points."""
from __future__ import annotations

import collections
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get("ACTIONFLOW_SHARED_DIR", ROOT.parent / "shared"))
REAL = SHARED / "fixtures" / "real"


def pytest_configure(config):
    config.addinivalue_line("markers", "integration: end-to-end runs of entry points (slower)")
    config.addinivalue_line("markers", "real: reads the real media in ../shared/fixtures/real")
    config.addinivalue_line("markers", "slow(seconds=30): takes 20 s or more on 2 cores; the "
                            "files that hold one run first, the longest first")


def pytest_collection_modifyitems(session, config, items):
    """Files holding slow tests first, the longest first (a slow test counts 30 s, or the
    ``seconds`` its marker gives); each file's tests together and in their order (so a
    module fixture is made once). With ``-n 2 --dist loadfile`` the longest files start
    at once on both workers and the short ones fill in around them."""
    slow: collections.Counter = collections.Counter()
    for item in items:
        marker = item.get_closest_marker("slow")
        if marker:
            slow[item.path] += marker.kwargs.get("seconds", 30)
    items.sort(key=lambda item: -slow[item.path])


@pytest.fixture(scope="session", autouse=True)
def temporary_files_stay_with_the_run():
    """The tests and every process they start have a run folder of their own as their
    temporary folder (``pipeline.cli.run_temp_folder``, as the commands do), removed when
    the session ends and, if it is killed, by the next run: code the tests call in-process
    leaves files there that only a normal exit removes (the code TensorFlow generates for
    traced functions, an upload page's folder), and a pytest-xdist worker does not end
    normally."""
    from pipeline import cli
    with cli.run_temp_folder() as folder:
        yield folder


@pytest.fixture(scope="session")
def real_dir() -> pathlib.Path:
    """../shared/fixtures/real; a test that needs it fails (never skips) when it is missing."""
    if not (REAL / "README.md").is_file():
        pytest.fail(f"the real fixtures are missing: expected {REAL} (the shared/ folder beside "
                    "the project, or $ACTIONFLOW_SHARED_DIR)", pytrace=False)
    return REAL


def running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (from /proc/PID/stat)."""
    try:
        state = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def run_module(module: str, *args: str, cwd=None, env=None, timeout=600):
    """Runs ``python -m module args`` as a user would; returns the CompletedProcess."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd or ROOT,
                          env=full_env, capture_output=True, text=True, timeout=timeout)


# Lines users read as "something is wrong" though nothing is: TensorFlow's start-up
# notices, Keras's per-epoch warnings when handed a dataset, Beam's start-up logs.
NOISE = ("Unable to register", "cuDNN", "cuBLAS", "cuFFT", "Could not find cuda",
         "TensorRT", "oneDNN", "cpu_feature_guard", "shuffle=True", "ran out of data",
         "Local rendezvous", "OUT_OF_RANGE", "apitools", "Logging handler created",
         "absl::InitializeLog", "UserWarning", "DeprecationWarning")


def noise_lines(text: str) -> list[str]:
    """The lines of ``text`` that are library noise (NOISE)."""
    return [line for line in text.splitlines() if any(n in line for n in NOISE)]


# --------------------------------------------------------------------------
# A tiny build and a tiny trained run, shared by the tests of everything that
# uses a trained model (evaluate, predict, serve, export): built once a session.
# --------------------------------------------------------------------------
TINY_TRAIN_PER_CLASS = 4
TINY_TEST_PER_CLASS = 2


@pytest.fixture(scope="session")
def tiny_video_build(tmp_path_factory) -> pathlib.Path:
    """The synthetic UCF101 layout (5 classes, 4 train + 2 test videos each, 12 frames of
    40x40), built with 8 uniform frames at 32x32: ``.../records/ucf101/t``."""
    from pipeline import synthetic
    root = tmp_path_factory.mktemp("tiny_video")
    synthetic.write_ucf101_layout(str(root / "data"), {"train": TINY_TRAIN_PER_CLASS,
                                                       "test": TINY_TEST_PER_CLASS},
                                  num_frames=12, size=(40, 40), seed=1)
    r = run_module("pipeline.build", "--dataset=ucf101", f"--data_dir={root / 'data'}",
                   f"--output_dir={root / 'records'}", "--config_name=t",
                   "--direct_num_workers=1", "--sampling=uniform", "--num_frames=8",
                   "--size=32x32")
    assert r.returncode == 0, r.stderr
    return root / "records" / "ucf101" / "t"


def tiny_video_config(build_dir, **train):
    """A small cnn_rnn experiment on ``tiny_video_build`` (8 frames of 32x32)."""
    from configs import common
    return common.experiment(
        model_name="cnn_rnn",
        model=dict(filters=(4, 8), dense_units=(16,), rnn_units=8),
        data=dict(build_dir=str(build_dir), num_frames=8, crop_size=32, crop="center",
                  sampling="uniform"),
        train=dict(epochs=1, steps_per_epoch=2, batch_size=4, **train))


@pytest.fixture(scope="session")
def tiny_video_run(tiny_video_build, tmp_path_factory) -> pathlib.Path:
    """A workdir trained one short epoch on ``tiny_video_build`` (checkpoints best + last).
    Read it, never write into it: copy it first (``shutil.copytree``)."""
    import keras
    from trainers import train
    workdir = tmp_path_factory.mktemp("tiny_video_run")
    try:
        train.train(tiny_video_config(tiny_video_build), str(workdir))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return workdir


@pytest.fixture(scope="session")
def real_video_build(real_dir, tmp_path_factory) -> pathlib.Path:
    """The 20 real soccer-kick videos (class folders ``curl`` | ``laces`` of symlinks in
    ``<root>/data``) built as 6 uniform frames of 48x32: returns ``<root>/out/folder/k``."""
    import csv
    root = tmp_path_factory.mktemp("real_video_build")
    types = {"0": "curl", "1": "laces"}
    with open(real_dir / "soccer" / "labels.csv", newline="") as f:
        for row in csv.DictReader(f):
            link = root / "data" / types[row["type"]] / f"Kick {row['kick']}.mp4"
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(real_dir / "soccer" / "videos" / f"Kick {row['kick']}.mp4")
    r = run_module("pipeline.build", "--dataset=folder", f"--data_dir={root / 'data'}",
                   f"--output_dir={root / 'out'}", "--config_name=k", "--sampling=uniform",
                   "--num_frames=6", "--size=48x32", "--test_fraction=0.3",
                   "--direct_running_mode=multi_processing")
    assert r.returncode == 0, r.stderr
    return root / "out" / "folder" / "k"


@pytest.fixture(scope="session")
def real_video_run(real_video_build) -> pathlib.Path:
    """A tiny cnn_rnn trained by the trainer on ``real_video_build``: returns ``<root>/run``
    (the raw videos are in ``<root>/data``). Read only."""
    import keras
    from configs import common
    from trainers import train
    root = real_video_build.parents[2]
    config = common.experiment(
        model_name="cnn_rnn", model=dict(filters=(4, 8), dense_units=(16,), rnn_units=8),
        data=dict(build_dir=str(real_video_build), num_frames=6, crop_size=32,
                  crop="center", sampling="uniform"),
        train=dict(epochs=1, steps_per_epoch=3, batch_size=4))
    try:
        train.train(config, str(root / "run"))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return root / "run"
