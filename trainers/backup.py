"""A run's backups: what is saved at every epoch and at a stop, how a rerun resumes, the STOP file.

``trainers.train`` puts these pieces around Keras's ``fit`` (and
``trainers.multiworker.fit_multi_worker``)::

    callbacks = backup.make_callbacks(config, workdir, continue_from=backup.previous_run(
        config, workdir))       # the Backup first, then best/last checkpoints, history, ...
    control = backup.step_control()(signals, callbacks[0], steps, stop_file, epochs)

What is written where (see TRAINING.md, "Resuming, extending and stopping"):

    W/backup/               after every epoch: weights, optimizer, epoch (Keras's
                            BackupAndRestore, written beside and renamed into place); after a
                            stop signal: ``step-E-S-*/`` with the weights, the epoch's metric
                            totals, the random states and the reader's position, committed by
                            renaming ``training_metadata.json``
    W/checkpoints/*.keras   best (by config.train.monitor) and last, written beside and renamed
    W/STOP                  the user's: the run ends after the current epoch as a finished one

A rerun of the same command resumes from ``backup/`` (mid-epoch from a step backup); a
finished run started with more epochs goes on from ``checkpoints/last.keras``
(``previous_run``); ``best.keras`` is only replaced by an epoch better than those before
the restart (``best_before_resume``).
"""
from __future__ import annotations

import collections
import dataclasses
import json
import os

from trainers.curves import read_history

STOP_FILE = "STOP"
STEP_PREFIX = "step-"


@dataclasses.dataclass
class ResumePoint:
    """Where a restarted run goes on: ``epoch`` (0-based) with ``step`` of its steps done,
    restored from ``path`` (a backup folder or a finished run's last checkpoint)."""
    epoch: int
    step: int
    path: str
    state_dir: str | None = None          # a step backup's extra state (reader, RNG, metrics)
    finished: bool = False                # continued from a finished (or STOP-ped) run


def _read_json(path: str):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _replace_json(path: str, data) -> None:
    """Writes ``data`` beside ``path``, then renames it into place."""
    partial = path + ".partial"
    with open(partial, "w") as f:
        json.dump(data, f)
    os.replace(partial, path)


def _rng_state() -> dict:
    """The host-side random states a run draws from: Python's, NumPy's and Keras's global
    seed generator (the model's own seed generators are saved as variables)."""
    import random
    import numpy as np
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": [version, list(internal), gauss],
             "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)]}
    try:
        from keras.src.backend.common import global_state
        generator = global_state.get_global_attribute("global_seed_generator")
        if generator is not None:
            state["keras_global"] = np.asarray(generator.state.value).tolist()
    except Exception:          # a private Keras detail: without it only this draw is lost
        pass
    return state


def _set_rng_state(state: dict) -> None:
    import random
    import numpy as np
    if state.get("python"):
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
    if state.get("numpy"):
        kind, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((kind, np.asarray(keys, np.uint32), pos, has_gauss, cached))
    if state.get("keras_global") is not None:
        try:
            import keras
            from keras.src.backend.common import global_state
            generator = global_state.get_global_attribute("global_seed_generator")
            if generator is None:
                generator = keras.random.SeedGenerator()
                global_state.set_global_attribute("global_seed_generator", generator)
            generator.state.assign(np.asarray(state["keras_global"], generator.state.dtype))
        except Exception:
            pass


def _model_state_variables(model) -> tuple[list, list]:
    """(metric variables, other non-weight variables such as dropout seed states): what
    ``save_weights`` leaves out but a step backup keeps."""
    metric_vars, seen = [], set()
    for m in model.metrics:
        for v in m.variables:
            if id(v) not in seen:
                seen.add(id(v))
                metric_vars.append(v)
    weights = {id(v) for v in model.weights}
    others = [v for v in model.variables if id(v) not in weights and id(v) not in seen]
    return metric_vars, others


def atomic_savers():
    """BackupAndRestore and ModelCheckpoint that write beside their file and rename it into
    place, so a run killed while saving leaves the previous backup and checkpoints whole.

    The backup also saves (``save_step``) and restores a step in the middle of an epoch:
    weights, optimizer, epoch and step, the epoch's metric totals, the model's and the
    host's random states and the reader's position, in a folder ``step-E-S-*`` that the
    metadata file names; renaming the metadata into place is the one commit, so a second
    signal or a kill while saving leaves the previous backup whole."""
    import keras

    class Backup(keras.callbacks.BackupAndRestore):
        def __init__(self, backup_dir, continue_from: ResumePoint | None = None, **kwargs):
            super().__init__(backup_dir, **kwargs)
            self.continue_from = continue_from
            self.resume: ResumePoint | None = None

        # ---- saving -------------------------------------------------------
        def _save_model(self):
            os.makedirs(self.backup_dir, exist_ok=True)
            partial = self._weights_path + ".partial.weights.h5"
            self.model.save_weights(partial, overwrite=True)
            os.replace(partial, self._weights_path)
            _replace_json(self._training_metadata_path,
                          {"epoch": self._current_epoch, "batch": self._last_batch_seen})
            self._remove_step_states(keep=None)

        def save_step(self, epoch: int, step: int, *, iterator=None, metrics=None,
                      with_state: bool = True) -> dict:
            """Saves the state after ``step`` steps of ``epoch`` (0-based); returns what was
            kept (``{"iterator": bool}``). ``metrics``: the epoch's metric variable values
            (default: read now); ``iterator``: the training input's iterator (its position
            is saved with ``tf.train.Checkpoint`` when tf.data allows it)."""
            import uuid
            import numpy as np
            os.makedirs(self.backup_dir, exist_ok=True)
            name = f"{STEP_PREFIX}{epoch}-{step}-{uuid.uuid4().hex[:8]}"
            partial = os.path.join(self.backup_dir, f".partial-{name}")
            os.makedirs(partial)
            self.model.save_weights(os.path.join(partial, "model.weights.h5"), overwrite=True)
            kept = {"iterator": False}
            if with_state:
                metric_vars, others = _model_state_variables(self.model)
                values = metrics if metrics is not None else [np.asarray(v.value)
                                                              for v in metric_vars]
                # By position: variable names change with what a process built before.
                arrays = {f"metric_{i}": np.asarray(x) for i, x in enumerate(values)}
                arrays.update({f"var_{i}": np.asarray(v.value) for i, v in enumerate(others)})
                np.savez(os.path.join(partial, "state.npz"), **arrays)
                with open(os.path.join(partial, "rng.json"), "w") as f:
                    json.dump(_rng_state(), f)
                if iterator is not None:
                    kept["iterator"] = _save_iterator(iterator, os.path.join(partial, "reader"))
            final = os.path.join(self.backup_dir, name)
            os.replace(partial, final)
            _replace_json(self._training_metadata_path,
                          {"epoch": epoch, "batch": step, "step_state": name,
                           "reader": kept["iterator"]})
            self._remove_step_states(keep=name)
            return kept

        def _remove_step_states(self, keep):
            import shutil
            for entry in os.listdir(self.backup_dir):
                if entry != keep and (entry.startswith(STEP_PREFIX)
                                      or entry.startswith(".partial-")):
                    shutil.rmtree(os.path.join(self.backup_dir, entry), ignore_errors=True)

        # ---- restoring ----------------------------------------------------
        def _load_model(self):
            meta = _read_json(self._training_metadata_path)
            if meta is None and self.continue_from is not None:
                self._continue_finished_run()
                return
            state = meta.get("step_state") if meta else None
            if not state:
                super()._load_model()
                if meta is not None:
                    self.resume = ResumePoint(int(meta["epoch"]), 0, self.backup_dir)
                return
            state_dir = os.path.join(self.backup_dir, state)
            self._build_optimizer()
            self.model.load_weights(os.path.join(state_dir, "model.weights.h5"))
            self.model._initial_epoch = int(meta["epoch"])
            self.resume = ResumePoint(int(meta["epoch"]), int(meta.get("batch", 0)),
                                      self.backup_dir, state_dir)

        def _continue_finished_run(self):
            point = self.continue_from
            self.resume = point
            self.model._initial_epoch = point.epoch
            if point.step == 0 and os.path.isfile(point.path):
                self._build_optimizer()
                self.model.load_weights(point.path)

        def _build_optimizer(self):
            if self.model.optimizer is not None and not self.model.optimizer.built:
                self.model.optimizer.build(self.model.trainable_variables)

        def restore_state(self, *, metrics: bool = True) -> None:
            """Puts a step backup's metric totals, seed-generator and host random states
            back (call at the start of the resumed epoch, after the metrics are reset)."""
            import numpy as np
            point = self.resume
            if point is None or not point.state_dir:
                return
            path = os.path.join(point.state_dir, "state.npz")
            if os.path.isfile(path):
                arrays = np.load(path)
                metric_vars, others = _model_state_variables(self.model)
                saved = collections.Counter(k.split("_")[0] for k in arrays.files)
                pairs = [(v, f"var_{i}") for i, v in enumerate(others)] \
                    if saved.get("var", 0) == len(others) else []
                if metrics and saved.get("metric", 0) == len(metric_vars):
                    pairs += [(v, f"metric_{i}") for i, v in enumerate(metric_vars)]
                for v, key in pairs:
                    if key in arrays and tuple(arrays[key].shape) == tuple(v.shape):
                        try:
                            v.assign(arrays[key])
                        except (ValueError, TypeError, RuntimeError):
                            pass       # e.g. a replica-local variable under a strategy
            rng = _read_json(os.path.join(point.state_dir, "rng.json"))
            if rng:
                _set_rng_state(rng)

        def reader_checkpoint(self) -> str | None:
            """The saved reader position of a step backup (a tf.train.Checkpoint prefix)."""
            point = self.resume
            if point is None or not point.state_dir:
                return None
            prefix = os.path.join(point.state_dir, "reader")
            return prefix if os.path.isfile(prefix + ".index") else None

    class Checkpoint(keras.callbacks.ModelCheckpoint):
        def _get_file_path(self, epoch, batch, logs):
            head, name = os.path.split(super()._get_file_path(epoch, batch, logs))
            return os.path.join(head, f".partial-{name}")

        def _save_model(self, epoch, batch, logs):
            partial = self._get_file_path(epoch, batch, logs)
            final = keras.callbacks.ModelCheckpoint._get_file_path(self, epoch, batch, logs)
            super()._save_model(epoch, batch, logs)
            if os.path.exists(partial):
                os.replace(partial, final)

    return Backup, Checkpoint


def _build_metrics(model, iterator) -> None:
    """Builds the compiled metrics from the input's spec (Keras builds them when it first
    traces a step, which a resumed epoch's skipped steps never do)."""
    metrics = getattr(model, "_compile_metrics", None)
    if metrics is not None and not metrics.built:
        model._symbolic_build(data_batch=iterator.element_spec)


def _save_iterator(iterator, prefix: str) -> bool:
    """Saves a tf.data iterator's position; False when tf.data cannot (say, a
    distributed iterator of some strategies)."""
    import tensorflow as tf
    from absl import logging as absl_logging
    level = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.WARNING)     # not the saver's INFO lines
    try:
        tf.train.Checkpoint(reader=iterator).write(prefix)
        return True
    except (tf.errors.OpError, ValueError, TypeError, AttributeError, NotImplementedError):
        return False
    finally:
        absl_logging.set_verbosity(level)


def _restore_iterator(iterator, prefix: str) -> str | None:
    """Restores an iterator's position saved by ``_save_iterator``; returns why not."""
    import tensorflow as tf
    try:
        tf.train.Checkpoint(reader=iterator).read(prefix).assert_consumed()
        return None
    except (tf.errors.OpError, ValueError, TypeError, AttributeError, AssertionError,
            NotImplementedError) as e:
        return (str(e).strip().splitlines() or [type(e).__name__])[0][:160]


def step_control():
    """The callback that stops a single-machine ``fit`` at a step boundary."""
    import keras

    class StepControl(keras.callbacks.Callback):
        """Stops ``model.fit`` cleanly and resumes it mid-epoch.

        On a stop signal (``signals.signum``, set by ``pipeline.cli.StopSignals``) it saves
        a step backup at the next step boundary (``Backup.save_step``) and raises
        ``pipeline.cli.Stopped``; a signal during validation keeps the epoch's training
        steps. After an epoch that finds ``stop_file`` it ends the run as a finished one.
        Resuming a step backup, it skips the steps done (without reading input), restores
        the reader's position and the epoch's metric totals, so the epoch goes on where
        it stopped.
        """

        def __init__(self, signals, backup, steps: int, stop_file: str | None, epochs: int,
                     save_reader: bool = True):
            super().__init__()
            self.signals, self.backup, self.steps, self.stop_file = (signals, backup, steps,
                                                                     stop_file)
            self.epochs, self.save_reader = epochs, save_reader
            self.epoch = 0
            self.done = 0
            self.floor = 0                  # steps already done in the resumed epoch
            self.iterator = None
            self.end_metrics = None         # metric values after the epoch's last step
            self.stopped_at: tuple[int, int] | None = None
            self.stop_file_seen = False
            self.reader_note: str | None = None

        def on_train_begin(self, logs=None):
            point = self.backup.resume
            line = resume_line(point, self.epochs)
            if line:
                print(line, flush=True)
            self.skip = point.step if point is not None and point.state_dir else 0
            self.pending_restore = False
            reader = self.backup.reader_checkpoint()
            original = self.model.train_function
            model = self.model

            def train_function(iterator):
                if self.iterator is None:
                    self.iterator = iterator
                    why = _restore_iterator(iterator, reader) if reader else None
                    if why:
                        self.reader_note = (f"the reader's position was not restored ({why}); "
                                            "it reads from a fresh position")
                        print(f"[train] note: {self.reader_note}", flush=True)
                if self.pending_restore:
                    self.pending_restore = False
                    _build_metrics(model, iterator)
                    self.backup.restore_state()
                if self.skip:
                    self.skip -= 1          # a step the backup already holds
                    return model.get_metrics_result()
                return original(iterator)
            self.model.train_function = train_function

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch, self.done, self.end_metrics = epoch, 0, None
            point = self.backup.resume
            self.floor = 0
            if point is not None and point.state_dir and epoch == point.epoch:
                self.floor = point.step
                self.pending_restore = True     # at the first step: the metrics exist then

        def on_train_batch_end(self, batch, logs=None):
            self.done = max(batch + 1, self.floor)
            if self.done >= self.steps:
                import numpy as np
                metric_vars, _ = _model_state_variables(self.model)
                self.end_metrics = [np.asarray(v.value) for v in metric_vars]
            if self.signals is not None and self.signals.signum is not None:
                self._stop(self.done, None)

        def on_test_batch_end(self, batch, logs=None):
            if self.signals is not None and self.signals.signum is not None \
                    and self.end_metrics is not None:
                self._stop(self.steps, self.end_metrics)     # validation of a whole epoch

        def _stop(self, done, metrics):
            from pipeline import cli
            stop = cli.Stopped(self.signals.signum)
            kept = self.backup.save_step(self.epoch, done, metrics=metrics,
                                         iterator=self.iterator if self.save_reader else None)
            self.stopped_at = (self.epoch, done)
            stop.kept = (f"kept a backup after step {done} of {self.steps} of epoch "
                         f"{self.epoch + 1} in {self.backup.backup_dir} (model, optimizer, "
                         f"metrics, random states" + (", reader position)" if kept["iterator"]
                                                      else ")"))
            raise stop

        def on_epoch_end(self, epoch, logs=None):
            if self.signals is not None and self.signals.signum is not None:
                from pipeline import cli
                stop = cli.Stopped(self.signals.signum)
                stop.kept = (f"kept the backup after epoch {epoch + 1} in "
                             f"{self.backup.backup_dir}")
                raise stop
            if self.stop_file and os.path.exists(self.stop_file):
                self.stop_file_seen = True
                self.model.stop_training = True

    return StepControl


def make_callbacks(config, workdir: str, *, continue_from: ResumePoint | None = None):
    import keras
    t = config.train
    ckpt = os.path.join(workdir, "checkpoints")
    os.makedirs(ckpt, exist_ok=True)
    Backup, Checkpoint = atomic_savers()
    restored = continue_from.epoch if continue_from is not None else None
    callbacks = [
        Backup(os.path.join(workdir, "backup"), continue_from=continue_from),
        Checkpoint(
            os.path.join(ckpt, "best.keras"), monitor=t.monitor, mode=t.monitor_mode,
            save_best_only=True,
            initial_value_threshold=best_before_resume(workdir, t.monitor, t.monitor_mode,
                                                       restored)),
        Checkpoint(os.path.join(ckpt, "last.keras")),
        keras.callbacks.CSVLogger(os.path.join(workdir, "history.csv"), append=True),
    ]
    callbacks.append(keras.callbacks.TensorBoard(os.path.join(workdir, "tensorboard")))
    if t.early_stopping_patience:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=t.monitor, mode=t.monitor_mode, patience=t.early_stopping_patience))
    if t.schedule == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau(
            monitor=t.monitor, mode=t.monitor_mode, factor=0.5,
            patience=max(1, t.early_stopping_patience // 2 or 2)))
    return callbacks


def best_before_resume(workdir: str, monitor: str, mode: str,
                       restored: int | None = None) -> float | None:
    """The best ``monitor`` value of the epochs a resumed run restores (None: a fresh run).

    So that best.keras is replaced only by a better epoch after a restart, as the
    curves and result.json (which read history.csv) assume. ``restored``: the epochs
    a continued finished run keeps (default: the backup's epoch).
    """
    meta = os.path.join(workdir, "backup", "training_metadata.json")
    history = os.path.join(workdir, "history.csv")
    if not os.path.isfile(history) or (restored is None and not os.path.isfile(meta)):
        return None
    try:
        if os.path.isfile(meta):
            with open(meta) as f:
                restored = int(json.load(f)["epoch"])
        h = read_history(history)
    except (OSError, ValueError, KeyError):
        return None
    scores = [v for e, v in zip(h.get("epoch", []), h.get(monitor, [])) if e < restored]
    if not scores:
        return None
    return max(scores) if mode == "max" else min(scores)


def previous_run(config, workdir: str) -> ResumePoint | None:
    """Where a run that ended (finished, early-stopped or stopped by ``WORKDIR/STOP``)
    goes on when started again; None when ``workdir`` holds a backup (Keras's
    BackupAndRestore resumes it) or no ended run.

    It continues from its last epoch (``checkpoints/last.keras``: weights and optimizer)
    up to ``train.epochs``. A run ended by early stopping counts as done unless
    ``train.epochs`` is larger than the epochs it was run for. ``step`` 0; ``epoch`` is
    the next epoch to train, ``train.epochs`` or more when nothing is left to train.
    """
    if os.path.isfile(os.path.join(workdir, "backup", "training_metadata.json")):
        return None
    last = os.path.join(workdir, "checkpoints", "last.keras")
    history = os.path.join(workdir, "history.csv")
    if not (os.path.isfile(last) and os.path.isfile(history)):
        return None
    try:
        epochs = read_history(history).get("epoch", [])
    except (OSError, ValueError, KeyError):
        return None
    if not epochs:
        return None
    done = int(max(epochs)) + 1
    result = _read_json(os.path.join(workdir, "result.json")) or {}
    target = config.train.epochs
    if result.get("stopped_by") == "early_stopping" and target <= int(result.get("epochs", 0)):
        done = max(done, target)
    return ResumePoint(done, 0, last, finished=True)


def resume_line(point: ResumePoint | None, epochs: int) -> str | None:
    """``[train] resuming at epoch E step S from PATH`` (epochs counted from 1)."""
    if point is None:
        return None
    if point.finished:
        if point.epoch >= epochs:
            return None
        return (f"[train] resuming at epoch {point.epoch + 1} step 0 from {point.path} (the run "
                f"had ended after {point.epoch} epoch(s); training to {epochs})")
    return f"[train] resuming at epoch {point.epoch + 1} step {point.step} from {point.path}"


def backup_note(outdir: str) -> str:
    """What the workdir's backup holds, for the line a stopped or failed run prints."""
    meta = _read_json(os.path.join(outdir, "backup", "training_metadata.json"))
    where = os.path.join(outdir, "backup")
    if meta is None:
        return "nothing was saved yet"
    if meta.get("step_state"):
        return f"the backup after step {meta.get('batch')} of epoch {int(meta['epoch']) + 1} " \
               f"in {where} is kept"
    if int(meta.get("epoch", 0)) == 0:
        return "nothing was saved yet"
    return f"the backup after epoch {meta['epoch']} in {where} is kept"
