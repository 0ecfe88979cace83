"""The package's console commands for trained models (``actionflow-train``, ``-evaluate``,
``-beam-evaluate``, ``-compare``, ``-predict``, ``-serve``, ``-export``).

Each runs its module exactly as ``python -m MODULE`` does (``runpy``, as the interpreter's
``-m`` itself): the same flags, ``--help``, output and exit status. ``python -m`` stays the
documented way; these exist for installs where the package's ``bin`` folder is on the PATH.
"""
from __future__ import annotations

import runpy


def run_module(module: str) -> None:
    """Runs ``module`` as the main program, as ``python -m module`` does."""
    runpy.run_module(module, run_name="__main__", alter_sys=True)


def train() -> None:
    run_module("trainers.train")


def evaluate() -> None:
    run_module("trainers.evaluate")


def beam_evaluate() -> None:
    run_module("trainers.beam_evaluate")


def compare() -> None:
    run_module("trainers.compare")


def predict() -> None:
    run_module("trainers.predict")


def serve() -> None:
    run_module("trainers.serve")


def export() -> None:
    run_module("trainers.export")
