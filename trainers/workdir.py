"""A finished (or running) training workdir, read back: config, classes, build, checkpoints.

Everything that uses a trained model (``trainers.evaluate``, ``trainers.predict``,
``trainers.serve``, ``trainers.export``) starts here, so they agree on what a
workdir holds (see ``trainers/train.py``)::

    run = workdir.open_run("runs/demo")
    model = run.load_model("best")          # best | last | a path to a .keras file
    run.config.data.num_frames, run.classes, run.info["modality"]
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import ml_collections

CHECKPOINTS = ("best", "last")


class RunError(ValueError):
    """The workdir is not a usable training run (message for the user, no traceback)."""


@dataclasses.dataclass(frozen=True)
class Run:
    """A training workdir: ``config`` is the resolved config the run trained with."""
    workdir: str
    config: ml_collections.ConfigDict
    classes: tuple[str, ...]
    info: dict[str, Any]

    @property
    def modality(self) -> str:
        return self.info.get("modality", "video")

    @property
    def model_name(self) -> str:
        return self.config.model_name

    def checkpoint_path(self, checkpoint: str = "best") -> str:
        """``best`` / ``last`` inside the workdir, or a path given as is."""
        if checkpoint in CHECKPOINTS:
            path = os.path.join(self.workdir, "checkpoints", f"{checkpoint}.keras")
        else:
            path = checkpoint
        if not os.path.isfile(path):
            raise RunError(f"no checkpoint at {path}" + (
                " (has training finished an epoch?)" if checkpoint in CHECKPOINTS else ""))
        return path

    def load_model(self, checkpoint: str = "best"):
        """The Keras model of ``checkpoint`` (float32 policy for inference)."""
        import keras
        path = self.checkpoint_path(checkpoint)
        try:
            return keras.models.load_model(path, compile=False)
        except (OSError, ValueError) as e:
            raise RunError(f"cannot load the model in {path}: {e}") from None

    def frame_binary(self) -> bool:
        """Whether a keypoint model ends in one sigmoid unit (binary frame-wise output)."""
        model = self.config.model
        classes = len(self.classes)
        sigmoid = model.get("output") == "sigmoid" or (model.get("output") == "auto"
                                                        and classes <= 2)
        return bool(sigmoid and classes <= 2 and model.get("binary_single_unit", False))


def _read_json(path: str, what: str):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise RunError(f"{os.path.dirname(path) or '.'} is not a training workdir: "
                       f"{os.path.basename(path)} ({what}) is missing") from None
    except ValueError as e:
        raise RunError(f"{path} is not valid JSON: {e}") from None


def open_run(workdir: str) -> Run:
    """Reads ``config.json``, ``classes.json`` and ``dataset_info.json`` of a workdir."""
    if not os.path.isdir(workdir):
        raise RunError(f"workdir {workdir} does not exist")
    config = _read_json(os.path.join(workdir, "config.json"), "the resolved config")
    classes = _read_json(os.path.join(workdir, "classes.json"), "the class names")
    info = _read_json(os.path.join(workdir, "dataset_info.json"), "the build trained on")
    cfg = ml_collections.ConfigDict(config)
    cfg.lock()
    return Run(workdir=workdir, config=cfg, classes=tuple(classes), info=info)
