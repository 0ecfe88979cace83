"""Dataset sources: one module per ``--dataset`` value, found by module name."""
from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

from pipeline.sources.base import SourceError

_NOT_SOURCES = {"base"}


def available() -> list[str]:
    """Names of the source modules in this package, sorted."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__)
                  if m.name not in _NOT_SOURCES and not m.name.startswith("_"))


def get_source(name: str) -> ModuleType:
    """Returns the source module for ``--dataset=name``."""
    names = available()
    if name not in names:
        raise SourceError(f"unknown dataset {name!r}; available: {', '.join(names)}")
    return importlib.import_module(f"{__name__}.{name}")
