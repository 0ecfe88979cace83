"""The README's first command: the offline demo builds and verifies the synthetic dataset."""
from __future__ import annotations

import json

import pytest

from conftest import run_module
from pipeline import synthetic
from tfrecords import schema

pytestmark = pytest.mark.integration


def test_demo_builds_and_verifies(tmp_path):
    r = run_module("pipeline.demo", f"--output_dir={tmp_path}")
    assert r.returncode == 0, r.stderr
    build_dir = tmp_path / "records" / "ucf101" / "demo"
    assert f"[demo] verified {build_dir}" in r.stdout
    info = json.loads((build_dir / schema.DATASET_INFO_FILE).read_text())
    assert info["classes"] == list(synthetic.CLASSES)
    assert info["splits"]["train"]["per_class"] == {c: 16 for c in synthetic.CLASSES}
    assert info["splits"]["test"]["per_class"] == {c: 6 for c in synthetic.CLASSES}
    assert info["splits"]["train"]["num_frames"] == 80 * 16
    assert (build_dir / schema.ERRORS_FILE).read_text() == ""
    # Running it again replaces its own output instead of refusing.
    again = run_module("pipeline.demo", f"--output_dir={tmp_path}", "--train_per_class=2",
                       "--test_per_class=1")
    assert again.returncode == 0, again.stderr
    info = json.loads((build_dir / schema.DATASET_INFO_FILE).read_text())
    assert info["splits"]["train"]["num_examples"] == 10


def test_demo_rejects_stray_arguments(tmp_path):
    r = run_module("pipeline.demo", f"--output_dir={tmp_path}", "extra")
    assert r.returncode == 2 and "unexpected arguments" in r.stderr
