"""A finished (or running) training workdir, read back: config, classes, build, checkpoints.

Everything that uses a trained model (``trainers.evaluate``, ``trainers.predict``,
``trainers.serve``, ``trainers.export``) starts here, so they agree on what a
workdir holds (see ``trainers/train.py``)::

    run = workdir.open_run("runs/demo")
    model = run.load_model("best")          # best | last | a path to a .keras file
    run.config.data.num_frames, run.classes, run.info["modality"]

A workdir belongs to one experiment: the first run writes ``fingerprint.json`` (model
family, input shape, classes, build) and a later run whose fingerprint differs is refused
(``check_experiment``) unless it asks to start afresh (``clear_outputs``). The build is
recorded as an absolute path (or a gs:// / s3:// URL), so a run is read from any folder;
a workdir copied to another machine is pointed at the build's new place with::

    python -m trainers.workdir relocate runs/demo /data/records/ucf101/demo
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
from typing import Any

import ml_collections

CHECKPOINTS = ("best", "last")
FINGERPRINT = "fingerprint.json"
# What a run writes into its workdir; an experiment started afresh removes them all.
OUTPUTS = ("checkpoints", "backup", "history.csv", "tensorboard", "curves.png", "result.json",
           "eval", "export", "STOP", "config.json", "classes.json", "dataset_info.json",
           FINGERPRINT)
WORKER_PREFIX = "workertemp_"      # another worker's copies (trainers.multiworker.worker_dir)


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
        from trainers.models import _layers     # noqa: F401  (registers FrameWise)
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


# --------------------------------------------------------------------------
# Where the build is.
# --------------------------------------------------------------------------
def is_url(path: str) -> bool:
    """gs://, s3:// and other scheme paths: left as they are."""
    return "://" in path


def absolute_build(path: str) -> str:
    """A build path as a run records it: absolute (resolved against the current folder),
    or the URL unchanged."""
    if not path or is_url(path):
        return path
    return os.path.abspath(os.path.expanduser(path))


def missing_build_hint(workdir: str) -> str:
    """What to do when the build a run recorded is not where it says."""
    return (f"if the build has moved (say, the workdir was copied from another machine), "
            f"point the run at its new place: python -m trainers.workdir relocate {workdir} "
            "NEW_BUILD_DIR")


# --------------------------------------------------------------------------
# One experiment per workdir.
# --------------------------------------------------------------------------
def fingerprint(model_name: str, input_shape, classes, build_dir: str) -> dict:
    """What makes two runs the same experiment (train.epochs and the optimiser's settings
    may change between starts; these may not)."""
    return {"model_name": model_name, "input_shape": [int(n) for n in input_shape],
            "classes": list(classes), "build_dir": build_dir}


def recorded_fingerprint(workdir: str) -> dict | None:
    """The fingerprint of the experiment ``workdir`` holds: ``fingerprint.json``, or for a
    workdir written before runs recorded one, what its config.json and classes.json say
    (no input shape). None when it holds no run."""
    try:
        with open(os.path.join(workdir, FINGERPRINT)) as f:
            return json.load(f)
    except (OSError, ValueError):
        pass
    try:
        with open(os.path.join(workdir, "config.json")) as f:
            config = json.load(f)
        with open(os.path.join(workdir, "classes.json")) as f:
            classes = json.load(f)
    except (OSError, ValueError):
        return None
    return {"model_name": config.get("model_name"), "classes": classes,
            "build_dir": absolute_build((config.get("data") or {}).get("build_dir", ""))}


def leftovers(workdir: str) -> list[str]:
    """The run outputs present in ``workdir`` (``OUTPUTS`` and other workers' folders)."""
    if not os.path.isdir(workdir):
        return []
    return sorted(name for name in os.listdir(workdir)
                  if name in OUTPUTS or name.startswith(WORKER_PREFIX))


def _shown(value) -> str:
    if isinstance(value, list) and value and isinstance(value[0], str):
        names = ", ".join(value[:4]) + (", ..." if len(value) > 4 else "")
        return f"{len(value)} classes ({names})"
    if isinstance(value, list):
        return "(" + ", ".join(str(v) for v in value) + ")"
    return str(value)


def check_experiment(workdir: str, new: dict) -> None:
    """Refuses (RunError, one line naming what differs) to train the experiment ``new``
    (``fingerprint``) into a workdir that holds another one."""
    old = recorded_fingerprint(workdir)
    if old is None:
        # Another worker's folder may appear before the chief gets here: not an output.
        found = [n for n in leftovers(workdir) if not n.startswith(WORKER_PREFIX)
                 and n not in ("config.json", "classes.json", "dataset_info.json")]
        if found:
            raise RunError(f"{workdir} holds outputs of an earlier run ({', '.join(found)}) "
                           "but no record of its experiment: use another --workdir, or pass "
                           "--config.train.overwrite=True to delete them and start afresh")
        return
    differ = [key for key in ("model_name", "input_shape", "classes", "build_dir")
              if key in old and key in new and old[key] != new[key]]
    if not differ:
        return
    what = "; ".join(f"{key} {_shown(old[key])} there, {_shown(new[key])} now"
                     for key in differ)
    hint = (f" (a build that moved: python -m trainers.workdir relocate {workdir} "
            f"{new['build_dir']})" if differ == ["build_dir"] else "")
    raise RunError(f"{workdir} holds another experiment: {what}. Use another --workdir, or "
                   f"pass --config.train.overwrite=True to delete its outputs and start "
                   f"afresh{hint}")


def clear_outputs(workdir: str) -> list[str]:
    """Removes every run output of ``workdir`` (checkpoints, backup, history, TensorBoard
    logs, curves, result, evaluations, exports, the recorded config); returns their names.
    Other files are left alone."""
    removed = leftovers(workdir)
    for name in removed:
        path = os.path.join(workdir, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
    return removed


def write_fingerprint(workdir: str, value: dict) -> None:
    _replace_json(os.path.join(workdir, FINGERPRINT), value)


def _replace_json(path: str, data) -> None:
    """``data`` as indented, key-sorted JSON, written beside ``path`` and renamed into place."""
    partial = path + ".partial"
    with open(partial, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(partial, path)


# --------------------------------------------------------------------------
# A build that moved.
# --------------------------------------------------------------------------
def relocate(workdir: str, build_dir: str) -> str:
    """Points the run in ``workdir`` at ``build_dir`` (its build, moved or copied): checks
    that it holds the run's classes and modality, then records it (absolute) in
    config.json and fingerprint.json. Returns the path recorded."""
    from tfrecords import schema
    run = open_run(workdir)
    build = absolute_build(build_dir.rstrip("/"))
    try:
        info = schema.read_dataset_info(build)
    except FileNotFoundError:
        raise RunError(f"no build at {build} (its dataset_info.json is missing)") from None
    except ValueError as e:
        raise RunError(f"{build}: {e}") from None
    if info.get("modality", "video") != run.modality:
        raise RunError(f"{build} holds {info.get('modality', 'video')} records but the run "
                       f"trained on {run.modality} records")
    if tuple(info.get("classes", ())) != run.classes:
        raise RunError(f"{build} does not have the run's classes in the run's order "
                       f"({_shown(list(run.classes))} in the run, "
                       f"{_shown(list(info.get('classes', ())))} there)")
    config = _read_json(os.path.join(workdir, "config.json"), "the resolved config")
    config.setdefault("data", {})["build_dir"] = build
    _replace_json(os.path.join(workdir, "config.json"), config)
    recorded = recorded_fingerprint(workdir)
    if os.path.isfile(os.path.join(workdir, FINGERPRINT)) and recorded is not None:
        write_fingerprint(workdir, {**recorded, "build_dir": build})
    return build


def main(argv: list[str]) -> int:
    """``relocate WORKDIR BUILD_DIR``; --help prints this module's docstring; a mistake is
    one line and exit status 2."""
    from absl import flags
    from pipeline import cli
    args = cli.parse(flags.FlagValues(), argv, __name__)[1:]
    if len(args) != 3 or args[0] != "relocate":
        print(f"error: expected: relocate WORKDIR BUILD_DIR (got {' '.join(args) or 'nothing'})"
              "\nRun with --help to see what it does.", file=sys.stderr)
        return 2
    try:
        build = relocate(args[1], args[2])
    except RunError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"[workdir] {args[1]} now reads its build at {build}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
