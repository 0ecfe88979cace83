"""The package's console commands (``actionflow-build``, ``-verify``, ``-show``, ``-demo``).

Each runs its module exactly as ``python -m MODULE`` does (``runpy``, as the interpreter's
``-m`` itself): the same flags, ``--help``, output and exit status. ``python -m`` stays the
documented way; these exist for installs where the package's ``bin`` folder is on the PATH.
"""
from __future__ import annotations

import runpy


def run_module(module: str) -> None:
    """Runs ``module`` as the main program, as ``python -m module`` does."""
    runpy.run_module(module, run_name="__main__", alter_sys=True)


def build() -> None:
    run_module("pipeline.build")


def verify() -> None:
    run_module("pipeline.verify")


def show() -> None:
    run_module("pipeline.show")


def demo() -> None:
    run_module("pipeline.demo")
