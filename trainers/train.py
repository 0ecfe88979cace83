r"""Trains any model family on any build: one command on a laptop CPU or a multi-GPU box.

    python -m trainers.train --config configs/demo_cnn_gru.py --workdir runs/demo
    python -m trainers.train --config configs/ucf101_resnet152v2_lstm.py:runlocal --workdir W \
        --config.train.batch_size 8

The workdir keeps everything about the run:

    W/config.json            the resolved config (model knobs merged over the family's defaults)
    W/classes.json           class names, index order
    W/dataset_info.json      the build it trained on
    W/backup/                the resume state (after each epoch, or the step a signal stopped at)
    W/checkpoints/best.keras best epoch by config.train.monitor; last.keras after every epoch
    W/history.csv            per-epoch metrics (appended across resumes)
    W/tensorboard/           TensorBoard logs
    W/curves.png             loss and accuracy, train vs validation, best epoch marked
    W/result.json            the final evaluation of the best checkpoint

Precision ``auto`` is mixed_float16 on a GPU (Keras scales the loss) and
float32 on a CPU; ``mixed_bfloat16`` and ``float32`` can be asked for. The
output layer stays float32. With several GPUs the run uses MirroredStrategy.

Several machines: set ``TF_CONFIG`` on each and run the same command there;
the run uses MultiWorkerMirroredStrategy with its own training loop
(``trainers.multiworker``: Keras's fit() cannot reduce its step results across
workers). The chief (worker 0) writes the workdir above. Another worker saves
its copies in step with the chief's under W/workertemp_<index>/ (saving is
collective) and keeps only history.csv and result.json there at the end. A
restarted cluster resumes from the chief's backup/. See TRAINING.md.

The build is read and checked, and the config's ``data`` section turned into
reader calls, by ``trainers.data``; the shards' framing and CRCs are checked before
training (a damaged shard is refused in one line, or left out with
``data.on_corrupt="skip"``).

Stopping and going on (see TRAINING.md, "Resuming, extending and stopping"): SIGINT or
SIGTERM stops training at the next step boundary with a backup of that step (weights,
optimizer, epoch and step, metric totals, random states, the reader's position), one
line and exit status 130 / 143; the same command resumes there. A run that ended goes on
from its last epoch when started with a larger ``--config.train.epochs``; ``W/STOP``
ends a run after the current epoch, as a finished one.
"""
from __future__ import annotations

import collections
import dataclasses
import json
import logging
import os
import sys
import time

from absl import app, flags
from ml_collections import config_flags

from pipeline import cli
from trainers import multiworker
from trainers.data import ConfigError, binary_frame_output, input_shape, load_build, make_input

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    "config", None, "Experiment config: configs/<experiment>.py, optionally ':runlocal'. "
    "Override any value with --config.<path> VALUE.", lock_config=True)
flags.DEFINE_string("workdir", None, "Where checkpoints, logs, curves and the resolved config "
                                     "go; rerunning with the same workdir resumes.")

PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")


# --------------------------------------------------------------------------
# Set-up.
# --------------------------------------------------------------------------
def resolve_precision(name: str) -> str:
    """The Keras dtype policy for ``name``; 'auto' = mixed_float16 on a GPU, else float32."""
    import tensorflow as tf
    if name not in PRECISIONS:
        raise ConfigError(f"train.precision must be one of {PRECISIONS}, got {name!r}")
    if name == "auto":
        return "mixed_float16" if tf.config.list_physical_devices("GPU") else "float32"
    return name


def make_strategy():
    """MultiWorkerMirrored with TF_CONFIG, Mirrored over several GPUs, else the default."""
    import tensorflow as tf
    if os.environ.get("TF_CONFIG"):
        tf_config = multiworker.check_tf_config(os.environ["TF_CONFIG"])
        task = tf_config["task"]
        hosts = sum(len(v) for v in tf_config["cluster"].values())
        print(f"[train] TF_CONFIG: task {task['type']}:{task.get('index', 0)} of a "
              f"{hosts}-machine cluster; waiting for every worker to start", flush=True)
        # The strategy logs each collective it traces at INFO; warnings still show.
        logging.getLogger("tensorflow").setLevel(logging.WARNING)
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


# --------------------------------------------------------------------------
# Model.
# --------------------------------------------------------------------------
def build_model(config, info, strategy, skip_shards=()):
    """Builds and compiles the model inside the strategy's scope."""
    import keras
    from trainers import models
    t = config.train
    shape = input_shape(config, info, skip_shards)
    with strategy.scope():
        try:
            model = models.build_model(config.model_name, config.model, input_shape=shape,
                                       num_classes=len(info["classes"]))
        except (KeyError, ValueError) as e:
            raise ConfigError(f"model: {e}") from None
        binary = info.get("modality") == "keypoints" and binary_frame_output(config, info)
        loss = (keras.losses.BinaryCrossentropy() if binary
                else keras.losses.SparseCategoricalCrossentropy())
        metrics = [keras.metrics.BinaryAccuracy(name="accuracy") if binary
                   else keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        model.compile(optimizer=make_optimizer(config, info), loss=loss, metrics=metrics,
                      jit_compile=bool(t.xla))
    return model, shape


def make_optimizer(config, info):
    """adam / sgd / adamax with a constant, cosine or exponential schedule."""
    import keras
    t = config.train
    steps = max(1, steps_per_epoch(config, info)) * t.epochs
    lr = t.learning_rate
    if t.schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(t.learning_rate, decay_steps=steps,
                                                    warmup_target=None)
    elif t.schedule == "exponential":
        lr = keras.optimizers.schedules.ExponentialDecay(t.learning_rate, decay_steps=steps,
                                                         decay_rate=0.1)
    elif t.schedule not in ("constant", "plateau"):
        raise ConfigError(f"train.schedule must be constant|cosine|exponential|plateau, got "
                          f"{t.schedule!r}")
    if t.optimizer == "adam":
        return keras.optimizers.Adam(lr)
    if t.optimizer == "adamax":
        return keras.optimizers.Adamax(lr)
    if t.optimizer == "sgd":
        return keras.optimizers.SGD(lr, momentum=t.momentum, nesterov=True)
    raise ConfigError(f"train.optimizer must be adam|adamax|sgd, got {t.optimizer!r}")


def steps_per_epoch(config, info) -> int:
    if config.train.steps_per_epoch:
        return config.train.steps_per_epoch
    n = info["splits"][config.data.train_split]["num_examples"]
    return max(1, n // config.train.batch_size)


def class_weights(config, info) -> dict | None:
    """'balanced': N / (K * n_c) from the build's per-class counts; 'none': None."""
    mode = config.train.class_weights
    if mode == "none" or info.get("modality") == "keypoints":
        return None
    if mode != "balanced":
        raise ConfigError(f"train.class_weights must be none|balanced, got {mode!r}")
    counts = info["splits"][config.data.train_split]["per_class"]
    classes = info["classes"]
    total = sum(counts.values())
    return {i: total / (len(classes) * counts[c]) for i, c in enumerate(classes)
            if counts.get(c)}


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


def _atomic_savers():
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


def _step_control():
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
            line = _resume_line(point, self.epochs)
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
    Backup, Checkpoint = _atomic_savers()
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


# --------------------------------------------------------------------------
# Curves.
# --------------------------------------------------------------------------
def read_history(path: str) -> dict[str, list[float]]:
    """history.csv as columns; a resumed run's repeated epochs keep their last values."""
    import csv
    rows: dict[int, dict] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            rows[int(row["epoch"])] = row
    columns: dict[str, list[float]] = {}
    for epoch in sorted(rows):
        for key, value in rows[epoch].items():
            columns.setdefault(key, []).append(float(value))
    return columns


def plot_curves(history_csv: str, out_png: str, monitor: str, mode: str) -> int:
    """Loss and accuracy, train vs validation, best epoch marked; returns the best epoch."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    h = read_history(history_csv)
    epochs = [int(e) + 1 for e in h["epoch"]]
    scores = h.get(monitor) or h.get("loss")
    pick = max if mode == "max" else min
    best = epochs[scores.index(pick(scores))]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key in zip(axes, ("loss", "accuracy")):
        if key in h:
            ax.plot(epochs, h[key], "o-", label=f"train {key}")
        if f"val_{key}" in h:
            ax.plot(epochs, h[f"val_{key}"], "s-", label=f"validation {key}")
        ax.axvline(best, color="grey", linestyle="--", label=f"best epoch {best} ({monitor})")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return best


# --------------------------------------------------------------------------
# The run.
# --------------------------------------------------------------------------
def resolved_config(config) -> dict:
    """The config with the model knobs merged over the family's defaults, as plain data."""
    from trainers import models
    out = _plain(config)
    out["model"] = _plain(models.merged_config(config.model_name, config.model))
    return out


def _plain(value):
    """ConfigDicts (also inside tuples and lists) as JSON-ready dicts and lists."""
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


class _NoSignals:
    """Stands in for ``pipeline.cli.StopSignals`` when training is called as a library."""
    signum = None

    def check(self):
        pass


@dataclasses.dataclass
class FitOutcome:
    """How ``fit`` ended, besides training all its epochs."""
    stop_file: bool = False          # WORKDIR/STOP ended it after an epoch
    early_stopped: bool = False      # EarlyStopping ended it
    resume: ResumePoint | None = None


def fit(model, strategy, config, info, outdir: str, steps: int, *, multi_worker: bool,
        is_chief: bool = True, signals=None, skip_shards=(),
        continue_from: ResumePoint | None = None, stop_file: str | None = None) -> FitOutcome:
    """Trains ``model``: Keras's fit on one machine, ``multiworker.fit_multi_worker`` on
    several, with the same callbacks writing to ``outdir``.

    ``signals`` (``pipeline.cli.StopSignals``): a stop signal saves a backup at the next
    step boundary and raises ``pipeline.cli.Stopped`` (with ``kept`` saying what was
    saved). ``stop_file``: when it exists after an epoch, the run ends there as a
    finished one. ``continue_from``: a finished run to go on from (``previous_run``)."""
    t = config.train
    signals = signals or _NoSignals()
    callbacks = make_callbacks(config, outdir, continue_from=continue_from)
    backup = callbacks[0]
    if not multi_worker:
        # An in-memory cache would be saved whole with the reader's position: not then.
        control = _step_control()(signals, backup, steps, stop_file, t.epochs,
                                  save_reader=config.data.cache is not True)
        callbacks.append(control)
        # Keras distributes a plain dataset over the model's strategy itself
        # (splitting the global batch per replica).
        model.fit(make_input(config, info, training=True, skip_shards=skip_shards),
                  epochs=t.epochs, steps_per_epoch=steps,
                  validation_data=make_input(config, info, training=False,
                                             skip_shards=skip_shards),
                  callbacks=callbacks, class_weight=class_weights(config, info), verbose=2)
        return FitOutcome(stop_file=control.stop_file_seen,
                          early_stopped=_early_stopped(callbacks), resume=backup.resume)
    multiworker.check_config(config, strategy)
    weights = class_weights(config, info)
    restored = continue_from.epoch if continue_from is not None else None
    best = best_before_resume(outdir, t.monitor, t.monitor_mode, restored) if is_chief else None
    stop_file_seen = multiworker.fit_multi_worker(
        model, strategy, config, info, steps, callbacks, class_weight=weights, best=best,
        signals=signals, stop_file=stop_file, skip_shards=skip_shards)
    return FitOutcome(stop_file=stop_file_seen, early_stopped=_early_stopped(callbacks),
                      resume=backup.resume)


def _early_stopped(callbacks) -> bool:
    import keras
    return any(isinstance(cb, keras.callbacks.EarlyStopping) and cb.stopped_epoch > 0
               for cb in callbacks)


def _resume_line(point: ResumePoint | None, epochs: int) -> str | None:
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


def train(config, workdir: str, signals=None) -> dict:
    """Runs training and a final evaluation; returns the final metrics.

    ``signals`` (``pipeline.cli.StopSignals(raise_stop=False)``, from ``main``): a stop
    signal ends the run at the next step boundary with a backup of that step, raising
    ``pipeline.cli.Stopped`` whose ``kept`` says what was saved."""
    import keras
    import tensorflow as tf
    from pipeline import cli
    from trainers import data
    signals = signals or _NoSignals()
    keras.utils.set_random_seed(config.train.seed)
    if config.train.deterministic:
        tf.config.experimental.enable_op_determinism()
    # MultiWorkerMirroredStrategy must exist before TensorFlow runs anything.
    strategy = make_strategy()
    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    if multi_worker and isinstance(signals, cli.StopSignals):
        # TensorFlow's coordination service puts a SIGTERM handler of its own in place
        # (for its preemption notices); take SIGINT and SIGTERM back.
        signals.reinstall()
    info = load_build(config)
    build = config.data.build_dir
    splits = (config.data.train_split, config.data.eval_split)
    signals.check()
    skipped = data.check_build(build, info, splits, on_corrupt=config.data.on_corrupt,
                               program="train")
    skip = {d.name for d in skipped}
    signals.check()
    policy = resolve_precision(config.train.precision)
    keras.mixed_precision.set_global_policy(policy)
    is_chief, worker, workers = (multiworker.worker_role(strategy) if multi_worker
                                 else (True, 0, 1))
    outdir = workdir if is_chief else multiworker.worker_dir(workdir, worker)
    os.makedirs(outdir, exist_ok=True)
    if is_chief:
        write_json(os.path.join(workdir, "config.json"), resolved_config(config))
        write_json(os.path.join(workdir, "classes.json"), info["classes"])
        write_json(os.path.join(workdir, "dataset_info.json"), info)
    continue_from = previous_run(config, outdir) if is_chief else None

    model, shape = build_model(config, info, strategy, skip)
    steps = steps_per_epoch(config, info)
    where = (f", worker {worker} of {workers}" + (" (chief)" if is_chief else "")
             if multi_worker else "")
    print(f"[train] {config.model_name} on {config.data.build_dir} ({info['modality']}, "
          f"{len(info['classes'])} classes), input {shape}, precision {policy}, "
          f"{strategy.num_replicas_in_sync} replica(s){where}, {steps} steps x "
          f"{config.train.epochs} epochs of batch {config.train.batch_size}", flush=True)
    if continue_from is not None and continue_from.epoch >= config.train.epochs:
        print(f"[train] {workdir} has already trained {continue_from.epoch} epoch(s) "
              f"(train.epochs is {config.train.epochs}): nothing to train; pass a larger "
              "--config.train.epochs to train more. Evaluating the best checkpoint again.",
              flush=True)
    stop_file = os.path.join(workdir, STOP_FILE)
    started = time.monotonic()
    try:
        signals.check()
        try:
            outcome = fit(model, strategy, config, info, outdir, steps,
                          multi_worker=multi_worker, is_chief=is_chief, signals=signals,
                          skip_shards=skip, continue_from=continue_from, stop_file=stop_file)
        except Exception as e:
            error = data.explain_data_error(e, build, info, splits,
                                            f"training stopped: {backup_note(outdir)}",
                                            ignore=skip)
            if error is None:
                raise
            raise error from None
    except cli.Stopped as stop:
        if not hasattr(stop, "kept"):
            stop.kept = backup_note(outdir)
        raise
    elapsed = time.monotonic() - started
    if outcome.stop_file:
        if is_chief and os.path.exists(stop_file):
            os.remove(stop_file)
        done = epochs_in(os.path.join(outdir, "history.csv"))
        print(f"[train] found {stop_file}: stopped after epoch {done} of "
              f"{config.train.epochs} as asked, with its checkpoints; removed {stop_file}. "
              f"Run the same command to train on to {config.train.epochs} epochs.", flush=True)

    history = os.path.join(outdir, "history.csv")
    result = {"split": config.data.eval_split, "train_seconds": round(elapsed, 1),
              "precision": policy, "replicas": strategy.num_replicas_in_sync,
              "epochs": config.train.epochs, "epochs_trained": epochs_in(history),
              "stopped_by": ("stop_file" if outcome.stop_file else
                             "early_stopping" if outcome.early_stopped else None),
              "skipped_shards": [d.to_json() for d in skipped]}
    if multi_worker:
        result.update(workers=workers, worker=worker, chief=is_chief,
                      weights_sha256=multiworker.weights_sha256(model))
    if not is_chief:
        # Another worker's copies only kept the saves in step; the chief evaluates.
        write_json(os.path.join(outdir, "result.json"), result)
        multiworker.keep_only(outdir, ("history.csv", "result.json"))
        print(f"[train] worker {worker} done ({elapsed:.0f}s training; weights sha256 "
              f"{result['weights_sha256'][:12]}). The chief writes the run: "
              f"{os.path.join(outdir, 'result.json')} is this worker's record.", flush=True)
        return result
    result["best_epoch"] = plot_curves(history, os.path.join(outdir, "curves.png"),
                                       config.train.monitor, config.train.monitor_mode)
    # The chief evaluates the best checkpoint on the whole split, outside the strategy.
    try:
        scores = evaluate_best(model, config, info, outdir, signals, skip)
    except cli.Stopped as stop:
        stop.kept = (f"training is done ({result['epochs_trained']} epochs: checkpoints/ and "
                     "history.csv are kept); only the final evaluation was cut short")
        raise
    except Exception as e:
        error = data.explain_data_error(
            e, build, info, (config.data.eval_split,),
            "training is done (checkpoints/ and history.csv are kept) but the final "
            "evaluation could not read it", ignore=skip)
        if error is None:
            raise
        raise error from None
    result.update(scores)
    write_json(os.path.join(outdir, "result.json"), result)
    print(f"[train] best epoch {result['best_epoch']}: {config.data.eval_split} accuracy "
          f"{result.get('accuracy', float('nan')):.4f}, loss {result['loss']:.4f} "
          f"({elapsed:.0f}s training). Curves: {os.path.join(outdir, 'curves.png')}",
          flush=True)
    return result


def evaluate_best(model, config, info, outdir: str, signals, skip_shards=()) -> dict:
    """The best checkpoint evaluated on the whole evaluation split (a stop signal raises
    ``pipeline.cli.Stopped`` at the next batch)."""
    import keras
    from pipeline import cli
    best = keras.models.load_model(os.path.join(outdir, "checkpoints", "best.keras"))
    best.compile(loss=model.loss, metrics=[type(m)(name="accuracy")
                                           for m in model.metrics if m.name == "accuracy"]
                 or ["accuracy"])

    class StopOnSignal(keras.callbacks.Callback):
        def on_test_batch_end(self, batch, logs=None):
            if signals.signum is not None:
                raise cli.Stopped(signals.signum)

    signals = signals or _NoSignals()
    scores = best.evaluate(make_input(config, info, training=False, skip_shards=skip_shards),
                           verbose=0, return_dict=True, callbacks=[StopOnSignal()])
    return {k: float(v) for k, v in scores.items()}


def epochs_in(history_csv: str) -> int:
    """Distinct epochs logged in history.csv (0 when there is none)."""
    if not os.path.isfile(history_csv):
        return 0
    try:
        return len(read_history(history_csv).get("epoch", []))
    except (OSError, ValueError, KeyError):
        return 0


def write_json(path: str, data):
    """``data`` as indented, key-sorted JSON with a final newline."""
    with open(path, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True, default=str)
        f.write("\n")


def main(argv):
    """Trains from parsed flags; returns the exit code (2 for user mistakes and damaged
    records, 130 / 143 when SIGINT / SIGTERM stopped it)."""
    with cli.StopSignals(raise_stop=False) as signals:
        try:
            _check_usage(argv)
            if os.environ.get("TF_CONFIG"):
                multiworker.check_tf_config(os.environ["TF_CONFIG"])  # before TensorFlow loads
            train(FLAGS.config, FLAGS.workdir, signals=signals)
        except cli.Stopped as stop:         # before training began, or from it
            kept = getattr(stop, "kept", None) or backup_note(FLAGS.workdir)
            print(cli.stopped_line("train", stop, kept, resume_command()), file=sys.stderr,
                  flush=True)
            return stop.exit_code
        except ConfigError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        except Exception as e:
            multiworker.exit_if_lost_worker(e)
            raise
    return 0


def resume_command() -> str:
    """The command that resumes this run: the same one (with TF_CONFIG when it is set)."""
    command = cli.command_line("trainers.train", sys.argv[1:])
    if os.environ.get("TF_CONFIG"):
        import shlex
        command = f"TF_CONFIG={shlex.quote(os.environ['TF_CONFIG'])} {command}"
    return command


def _check_usage(argv):
    if len(argv) > 1:
        raise ConfigError(f"unexpected arguments {argv[1:]}")
    if FLAGS.config is None or not FLAGS.workdir:
        raise ConfigError("--config and --workdir are required, e.g.\n  python -m "
                          "trainers.train --config configs/demo_cnn_gru.py --workdir runs/demo")


def _parse(argv):
    """absl flags_parser (``pipeline.cli.parse``): a bad flag, or a --config.<path> override
    naming no key of the locked config, is a one-line error."""
    return cli.parse(FLAGS, argv, __name__,
                     errors=(flags.Error, AttributeError, KeyError, ValueError, TypeError))


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=_parse)
