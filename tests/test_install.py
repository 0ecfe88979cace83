"""Packaging checks: the pinned stack imports, loads its native parts, and is declared.

Each import check runs in a fresh interpreter (``sys.executable``) so a broken
native library shows up as it would for a user, not masked by this process.
"""
from __future__ import annotations

import importlib.metadata
import json
import os
import socket
import subprocess
import sys

import pytest
from packaging.requirements import Requirement

from conftest import ROOT

# Text that tensorflow-io prints (as warnings, not exceptions) when its native
# libraries do not load against the installed TensorFlow.
LOAD_FAILURES = ("undefined symbol", "unable to load libtensorflow_io_plugins.so",
                 "file system plugins are not loaded", "unable to open file")


def _python(code: str, env: dict | None = None, timeout: float = 60):
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def _last_json(stdout: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    assert lines, f"no JSON line in stdout:\n{stdout}"
    return json.loads(lines[-1])


IMPORT_CODE = r"""
import json
import pipeline, trainers, tfrecords, configs
import tensorflow as tf
import tensorflow_io
from tensorflow_io.python.ops import core_ops
import numpy, cv2, apache_beam
# core_ops is lazy: touching an op loads libtensorflow_io.so against this TF.
assert callable(core_ops.io_decode_tiff)
print(json.dumps({"tf": tf.__version__, "tfio": tensorflow_io.__version__,
                  "numpy": numpy.__version__, "cv2": cv2.__version__,
                  "beam": apache_beam.__version__}))
"""


@pytest.fixture(scope="module")
def imported():
    proc = _python(IMPORT_CODE)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def test_packages_import_without_native_load_errors(imported):
    for text in LOAD_FAILURES:
        assert text not in imported.stderr, imported.stderr[-4000:]


def test_pinned_versions(imported):
    v = _last_json(imported.stdout)
    assert v["tf"].startswith("2.17."), v
    assert v["tfio"] == "0.37.1", v
    assert int(v["numpy"].split(".")[0]) < 2, v
    assert v["cv2"].startswith("4.10."), v
    assert v["beam"].startswith("2.77."), v


# tf.io.gfile.exists on three paths, before and after ``import tensorflow_io``.
# os._exit skips interpreter teardown: tensorflow-io's S3 client aborts at exit
# ("pure virtual method called") once it has been used.
S3_CODE = r"""
import json, os, sys
import tensorflow as tf

def probe(path):
    try:
        return ["ok", tf.io.gfile.exists(path)]
    except tf.errors.OpError as e:
        return [type(e).__name__, e.message]

out = {"before": probe("s3://bucket/key")}
import tensorflow_io
out["s3_key"] = probe("s3://bucket/key")
out["s3_no_bucket"] = probe("s3://bucket")
out["unknown"] = probe("nosuchfs://x")
print(json.dumps(out))
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)
"""


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_tensorflow_io_registers_the_s3_file_system():
    env = {
        # A closed local port: the S3 client gets "connection refused" at once.
        "S3_ENDPOINT": f"http://127.0.0.1:{_closed_port()}",
        "S3_USE_HTTPS": "0", "S3_VERIFY_SSL": "0",
        "S3_CONNECT_TIMEOUT_MSEC": "2000", "S3_REQUEST_TIMEOUT_MSEC": "2000",
        "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "dummy",
        "AWS_SECRET_ACCESS_KEY": "dummy", "AWS_EC2_METADATA_DISABLED": "true",
        # Without these the SDK's default strategy retries with backoff for ~50 s.
        "AWS_RETRY_MODE": "standard", "AWS_MAX_ATTEMPTS": "1",
        # Ignore a developer's ~/.aws; log the SDK's errors (its default is fatal only).
        "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_LOG_LEVEL": "error", "TF_CPP_MIN_LOG_LEVEL": "0",
    }
    proc = _python(S3_CODE, env=env, timeout=30)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = _last_json(proc.stdout)

    # Control: plain TensorFlow 2.17 has no s3 scheme, and unknown schemes fail
    # with the error the registered s3 scheme must not give.
    assert out["before"][0] == "UnimplementedError", out
    assert "File system scheme 's3' not implemented" in out["before"][1], out
    assert out["unknown"] == ["UnimplementedError",
                              "File system scheme 'nosuchfs' not implemented (file: "
                              "'nosuchfs://x')"], out
    # After import tensorflow_io: the S3 plugin handles s3:// paths. It parses the
    # path itself (no network) ...
    assert out["s3_no_bucket"] == ["InvalidArgumentError",
                                   "S3 path doesn't contain a bucket name."], out
    # ... and for a full path asks the (unreachable) endpoint, which answers False.
    assert out["s3_key"] == ["ok", False], out
    assert "Couldn't connect to server" in proc.stderr, proc.stderr[-4000:]


# --------------------------------------------------------------------------
# Declared metadata of the installed distribution.
# --------------------------------------------------------------------------
def _requirements() -> list[Requirement]:
    reqs = importlib.metadata.requires("actionflow")
    assert reqs, "actionflow is not installed (pip install -e .[test])"
    return [Requirement(r) for r in reqs]


def _base(name: str) -> Requirement:
    found = [r for r in _requirements() if r.name == name and r.marker is None]
    assert len(found) == 1, [str(r) for r in _requirements()]
    return found[0]


def test_install_requires_pins():
    assert str(_base("tensorflow").specifier) == "==2.17.1"
    assert str(_base("tensorflow-io").specifier) == "==0.37.1"
    numpy = _base("numpy").specifier
    assert "1.26.4" in numpy and "2.0.0" not in numpy and "1.25.0" not in numpy
    cv = _base("opencv-python-headless").specifier
    assert cv.contains("4.10.0.84") and not cv.contains("4.11.0.86")
    assert not cv.contains("5.0.0")
    beam = _base("apache-beam").specifier
    assert beam.contains("2.77.0") and not beam.contains("2.78.0")
    assert not beam.contains("2.76.0")
    flask = _base("flask").specifier
    assert flask.contains("3.1.3") and not flask.contains("4.0.0") and not flask.contains("2.3.3")


def test_extras_test_gpu_and_dask():
    extras = {}
    for r in _requirements():
        if r.marker is not None:
            for extra in ("test", "gpu", "dask"):
                if r.marker.evaluate({"extra": extra}):
                    extras.setdefault(extra, []).append(r)
    assert set(extras) == {"test", "gpu", "dask"}
    assert sorted(r.name for r in extras["test"]) == ["av", "boto3", "dask", "moto", "pytest",
                                                         "pytest-xdist", "selenium"]
    (gpu,) = extras["gpu"]
    assert (gpu.name, gpu.extras, str(gpu.specifier)) == ("tensorflow", {"and-cuda"}, "==2.17.1")
    (dask,) = extras["dask"]                # the test extra includes it, so CI runs Dask
    assert (dask.name, dask.extras) == ("dask", {"distributed"})
    assert dask.specifier.contains("2024.4.2") and not dask.specifier.contains("2024.4.1")
    assert set(importlib.metadata.metadata("actionflow").get_all("Provides-Extra")) == \
        {"test", "gpu", "dask"}


def test_ci_runs_exactly_the_readme_test_command():
    """.ci/run ends with the README's second command; the README's first installs and demos."""
    import re
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, re.S)
    install, test = blocks[0].strip(), blocks[1].strip()
    assert install.startswith("python3 -m venv .venv && .venv/bin/pip install -e '.[test]'")
    assert install.endswith("-m pipeline.demo --output_dir demo_out")
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == test
    assert "pip install --quiet -e '.[test]'" in "\n".join(ci)
    assert (ROOT / "tests" / "install_browser.sh").stat().st_mode & 0o111


# --------------------------------------------------------------------------
# Console commands: actionflow-* run their module as python -m does.
# --------------------------------------------------------------------------
COMMANDS = {"actionflow-build": "pipeline.build", "actionflow-verify": "pipeline.verify",
            "actionflow-show": "pipeline.show", "actionflow-demo": "pipeline.demo",
            "actionflow-train": "trainers.train", "actionflow-evaluate": "trainers.evaluate",
            "actionflow-beam-evaluate": "trainers.beam_evaluate",
            "actionflow-compare": "trainers.compare", "actionflow-predict": "trainers.predict",
            "actionflow-serve": "trainers.serve", "actionflow-export": "trainers.export"}


def test_console_commands_are_declared_and_installed(monkeypatch):
    import importlib
    import pathlib
    import runpy
    points = {ep.name: ep for ep in importlib.metadata.entry_points(group="console_scripts")
              if ep.name.startswith("actionflow-")}
    assert sorted(points) == sorted(COMMANDS)
    ran = []
    monkeypatch.setattr(runpy, "run_module", lambda name, **kw: ran.append((name, kw)))
    for name, module in COMMANDS.items():
        points[name].load()()
        assert ran.pop() == (module, {"run_name": "__main__", "alter_sys": True}), name
        assert (pathlib.Path(sys.executable).parent / name).is_file(), \
            f"{name} is not installed: rerun pip install -e '.[test]'"


@pytest.mark.parametrize("command", ["actionflow-build", "actionflow-show",
                                     "actionflow-serve", "actionflow-export"])
def test_console_command_help_equals_python_m(command, tmp_path):
    """Run from another folder, as a user would: the same help, exit status 0."""
    import pathlib
    script = pathlib.Path(sys.executable).parent / command
    ours = subprocess.run([str(script), "--help"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    theirs = subprocess.run([sys.executable, "-m", COMMANDS[command], "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert ours.returncode == theirs.returncode == 0, ours.stderr[-2000:]
    assert ours.stdout == theirs.stdout and "--" in ours.stdout
    bad = subprocess.run([str(script), "--no_such_flag"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ")
