"""Shared test helpers: markers, the real fixtures in ../shared, running entry points."""
from __future__ import annotations

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


@pytest.fixture(scope="session")
def real_dir() -> pathlib.Path:
    """../shared/fixtures/real; a test that needs it fails (never skips) when it is missing."""
    if not (REAL / "README.md").is_file():
        pytest.fail(f"the real fixtures are missing: expected {REAL} (the shared/ folder beside "
                    "the project, or $ACTIONFLOW_SHARED_DIR)", pytrace=False)
    return REAL


def run_module(module: str, *args: str, cwd=None, env=None, timeout=600):
    """Runs ``python -m module args`` as a user would; returns the CompletedProcess."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd or ROOT,
                          env=full_env, capture_output=True, text=True, timeout=timeout)
