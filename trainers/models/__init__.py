"""Model families by name: ``trainers/models/<family>.py``, no central table.

Every public module in this package is a family. It exposes::

    MODALITY = "video" | "image" | "keypoints"                  # the records it trains on
    default_config(variant=None) -> ml_collections.ConfigDict   # every knob documented
    build(config, *, input_shape, num_classes) -> keras.Model

Adding a family is adding one file; modules whose name starts with ``_`` are
helpers, not families. Inputs stay uint8 (video, images) or float32
(keypoints) until the model: its first layer casts and rescales on the
accelerator. The last layer computes in float32, so every family works under
``keras.mixed_precision`` policies ``mixed_float16`` and ``mixed_bfloat16``.

    >>> from trainers import models
    >>> models.available()
    ['cnn_rnn', 'conv3d', 'image_classifier', 'keypoint_rnn', 'transfer_rnn']
    >>> models.modality('keypoint_rnn')
    'keypoints'
    >>> model = models.build_model('cnn_rnn', {'rnn': 'lstm'},
    ...                            input_shape=(11, 100, 100, 3), num_classes=5)
"""
from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType
from typing import Any, Mapping

import ml_collections

__all__ = ["MODALITIES", "available", "build_model", "default_config", "family",
           "merged_config", "modality"]

MODALITIES = ("video", "image", "keypoints")


def available() -> list[str]:
    """Sorted names of the model families (the public modules of this package)."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__)
                  if not m.name.startswith("_") and not m.ispkg)


def family(name: str) -> ModuleType:
    """Imports and returns the module of family ``name``; ValueError listing the known ones."""
    names = available()
    if name not in names:
        raise ValueError(f"unknown model family {name!r}; available: {', '.join(names)}")
    return importlib.import_module(f"{__name__}.{name}")


def modality(name: str) -> str:
    """The records family ``name`` trains on: its MODALITY, one of MODALITIES.

    ValueError for an unknown family, as ``family`` raises.
    """
    return family(name).MODALITY


def default_config(name: str, variant: str | None = None) -> ml_collections.ConfigDict:
    """The locked default config of family ``name`` (a named ``variant`` where it has some)."""
    return family(name).default_config(variant)


def build_model(name: str, config: Mapping[str, Any] | None = None, *,
                input_shape: tuple, num_classes: int):
    """Builds family ``name`` with ``config`` merged over its default config.

    ``config`` may set only the knobs it changes (a dict or ConfigDict, nested
    sections merge recursively); a key the family does not know raises
    KeyError, so a typo never passes silently. ``input_shape`` excludes the
    batch dimension.
    """
    module = family(name)
    merged = merged_config(name, config)
    return module.build(merged, input_shape=tuple(input_shape), num_classes=int(num_classes))


def merged_config(name: str, config: Mapping[str, Any] | None = None):
    """The family's default config (of ``config['variant']`` when given) updated by ``config``."""
    overrides = dict(config.items()) if config is not None else {}
    variant = overrides.pop("variant", None)
    merged = default_config(name, variant)
    if overrides:
        merged.update(overrides)    # locked: an unknown knob raises KeyError
    return merged
