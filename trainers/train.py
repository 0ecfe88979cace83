r"""Trains any model family on any build: one command on a laptop CPU or a multi-GPU box.

    python -m trainers.train --config configs/demo_cnn_gru.py --workdir runs/demo
    python -m trainers.train --config configs/ucf101_resnet152v2_lstm.py:runlocal --workdir W \
        --config.train.batch_size 8

The workdir keeps everything about one experiment:

    W/config.json            the resolved config (model knobs merged over the family's defaults;
                             data.build_dir absolute, or a gs:// / s3:// URL)
    W/fingerprint.json       model family, input shape, classes and build: a later run whose
                             fingerprint differs is refused (train.overwrite starts afresh)
    W/classes.json           class names, index order
    W/dataset_info.json      the build it trained on
    W/backup/                the resume state (after each epoch, or the step a signal stopped at)
    W/checkpoints/best.keras best epoch by config.train.monitor; last.keras after every epoch
    W/history.csv            per-epoch metrics (appended across resumes)
    W/tensorboard/           TensorBoard logs
    W/curves.png             loss and accuracy, train vs validation, best epoch marked
    W/result.json            the final evaluation of the best checkpoint

``loss`` and ``val_loss`` are the data loss, as ``trainers.evaluate`` defines it: mean
cross-entropy per example (frame-wise keypoint targets: per labelled frame, padding
weighs 0); accuracy likewise. A model with L1/L2 penalties logs them apart as
``regularization_loss`` / ``val_regularization_loss``; the optimiser minimises the sum
(with the class weights, if any).

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

Stopping and going on (``trainers.backup``; TRAINING.md, "Resuming, extending and
stopping"): SIGINT or SIGTERM stops training at the next step boundary with a backup of
that step, one line and exit status 130 / 143; the same command resumes there. A run
that ended goes on from its last epoch when started with a larger
``--config.train.epochs``; ``W/STOP`` ends a run after the current epoch, as a finished
one. The curves are drawn from history.csv by ``trainers.curves``.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
import sys
import time
from typing import Any

from pipeline import cli

cli.quiet_unless_verbose(__name__)    # before TensorFlow and Beam load (unless --verbose)
cli.stop_while_starting(__name__, "train")    # one line, not a traceback

from absl import app, flags
from ml_collections import config_flags

from trainers import backup, curves, multiworker
from trainers import workdir as workdirs
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
    from trainers import models
    shape = input_shape(config, info, skip_shards)
    with strategy.scope():
        try:
            model = models.build_model(config.model_name, config.model, input_shape=shape,
                                       num_classes=len(info["classes"]))
        except (KeyError, ValueError) as e:
            raise ConfigError(f"model: {e}") from None
        model.compile(optimizer=make_optimizer(config, info), jit_compile=bool(config.train.xla),
                      **compile_settings(config, info))
    return model, shape


DATA_LOSS = "data_loss"     # the compiled metric that becomes the logged ``loss``


def frame_targets(config, info) -> bool:
    """Whether the examples are keypoint windows labelled frame by frame (sample-weighted)."""
    return info.get("modality") == "keypoints" and config.data.target == "frames"


def compile_settings(config, info) -> dict:
    """The loss and metrics, the same for training and for ``evaluate_best``.

    Besides accuracy, the data loss is a metric (``DATA_LOSS``): Keras's own ``loss`` adds
    the model's L1/L2 penalties and, for sample-weighted examples, divides by every window
    position rather than by the weights. Frame-wise keypoint targets carry sample weights
    (``trainers.data.frame_weights``: 0 on padding and unlabelled frames), so their
    metrics are weighted metrics: accuracy and loss over labelled frames, as
    ``trainers.keypoint_eval`` counts them."""
    import keras
    binary = info.get("modality") == "keypoints" and binary_frame_output(config, info)
    if binary:
        loss = keras.losses.BinaryCrossentropy()
        metrics = [keras.metrics.BinaryAccuracy(name="accuracy"),
                   keras.metrics.BinaryCrossentropy(name=DATA_LOSS)]
    else:
        loss = keras.losses.SparseCategoricalCrossentropy()
        metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
                   keras.metrics.SparseCategoricalCrossentropy(name=DATA_LOSS)]
    return {"loss": loss,
            ("weighted_metrics" if frame_targets(config, info) else "metrics"): metrics}


def penalised(model) -> bool:
    """Whether the model adds L1/L2 penalties to its loss (weight or activity regularisers)."""
    layers = [model]
    while layers:
        layer = layers.pop()
        if getattr(layer, "activity_regularizer", None) is not None:
            return True
        layers.extend(getattr(layer, "layers", ()))
    return any(getattr(v, "regularizer", None) is not None for v in model.trainable_weights)


def name_losses(logs: dict, penalty_from=("", "val_")) -> dict:
    """Keras's logs as the run reports them: ``loss`` (and ``val_loss``) becomes the data
    loss (``DATA_LOSS``), and for the prefixes in ``penalty_from`` (splits read without
    sample weights, whose Keras loss is the data loss plus the penalties)
    ``regularization_loss`` is the difference. Changes ``logs`` in place; returns it."""
    for prefix in ("", "val_"):
        data = logs.pop(prefix + DATA_LOSS, None)
        if data is None:
            continue
        keras_loss = logs.get(prefix + "loss")
        logs[prefix + "loss"] = data
        if prefix in penalty_from and keras_loss is not None:
            logs[prefix + "regularization_loss"] = keras_loss - data
    return logs


def loss_logs(penalty_from):
    """The callback that renames the epoch's logs (``name_losses``) before the checkpoints,
    early stopping, history.csv, TensorBoard and the printed line read them."""
    import keras

    class LossLogs(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                name_losses(logs, penalty_from)

    return LossLogs()


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
    resume: backup.ResumePoint | None = None


def fit(model, strategy, config, info, outdir: str, steps: int, *, multi_worker: bool,
        is_chief: bool = True, signals=None, skip_shards=(),
        continue_from: backup.ResumePoint | None = None,
        stop_file: str | None = None) -> FitOutcome:
    """Trains ``model``: Keras's fit on one machine, ``multiworker.fit_multi_worker`` on
    several, with the same callbacks writing to ``outdir``.

    ``signals`` (``pipeline.cli.StopSignals``): a stop signal saves a backup at the next
    step boundary and raises ``pipeline.cli.Stopped`` (with ``kept`` saying what was
    saved). ``stop_file``: when it exists after an epoch, the run ends there as a
    finished one. ``continue_from``: a finished run to go on from (``previous_run``)."""
    t = config.train
    signals = signals or _NoSignals()
    callbacks = backup.make_callbacks(config, outdir, continue_from=continue_from)
    saver = callbacks[0]
    # Right after the backup: every callback after it reads the data loss as "loss".
    penalty_from = ()
    if penalised(model) and not frame_targets(config, info):
        penalty_from = ("val_",) if class_weights(config, info) else ("", "val_")
    callbacks.insert(1, loss_logs(penalty_from))
    if not multi_worker:
        # An in-memory cache would be saved whole with the reader's position: not then.
        control = backup.step_control()(signals, saver, steps, stop_file, t.epochs,
                                        save_reader=config.data.cache is not True)
        callbacks.append(control)
        # Keras distributes a plain dataset over the model's strategy itself
        # (splitting the global batch per replica).
        model.fit(make_input(config, info, training=True, skip_shards=skip_shards),
                  epochs=t.epochs, steps_per_epoch=steps,
                  validation_data=make_input(config, info, training=False,
                                             skip_shards=skip_shards),
                  callbacks=callbacks, class_weight=class_weights(config, info), verbose=2,
                  shuffle=False)       # the training split shuffles itself (tfrecords.reader)
        return FitOutcome(stop_file=control.stop_file_seen,
                          early_stopped=_early_stopped(callbacks), resume=saver.resume)
    multiworker.check_config(config, strategy)
    weights = class_weights(config, info)
    restored = continue_from.epoch if continue_from is not None else None
    best = (backup.best_before_resume(outdir, t.monitor, t.monitor_mode, restored)
            if is_chief else None)
    stop_file_seen = multiworker.fit_multi_worker(
        model, strategy, config, info, steps, callbacks, class_weight=weights, best=best,
        signals=signals, stop_file=stop_file, skip_shards=skip_shards)
    return FitOutcome(stop_file=stop_file_seen, early_stopped=_early_stopped(callbacks),
                      resume=saver.resume)


def _early_stopped(callbacks) -> bool:
    import keras
    return any(isinstance(cb, keras.callbacks.EarlyStopping) and cb.stopped_epoch > 0
               for cb in callbacks)


@dataclasses.dataclass
class Setup:
    """A run ready to train: the config (its build path made absolute), the build checked,
    the strategy, this worker's place and folder."""
    config: Any
    info: dict
    strategy: Any
    multi_worker: bool
    skipped: list                # damaged shards left out (data.on_corrupt="skip")
    policy: str
    is_chief: bool
    worker: int
    workers: int
    outdir: str                  # the workdir, or this worker's folder in it

    @property
    def skip(self) -> set:
        return {d.name for d in self.skipped}

    @property
    def splits(self) -> tuple:
        return (self.config.data.train_split, self.config.data.eval_split)


def train(config, workdir: str, signals=None) -> dict:
    """Runs training and a final evaluation; returns the final metrics.

    ``signals`` (``pipeline.cli.StopSignals(raise_stop=False)``, from ``main``): a stop
    signal ends the run at the next step boundary with a backup of that step, raising
    ``pipeline.cli.Stopped`` whose ``kept`` says what was saved."""
    signals = signals or _NoSignals()
    given_build = config.data.build_dir
    run = set_up(config, workdir, signals)
    config, info = run.config, run.info
    continue_from = backup.previous_run(config, run.outdir) if run.is_chief else None
    model, shape = build_model(config, info, run.strategy, run.skip)
    steps = steps_per_epoch(config, info)
    where = (f", worker {run.worker} of {run.workers}" + (" (chief)" if run.is_chief else "")
             if run.multi_worker else "")
    print(f"[train] {config.model_name} on {given_build} ({info['modality']}, "
          f"{len(info['classes'])} classes), input {shape}, precision {run.policy}, "
          f"{run.strategy.num_replicas_in_sync} replica(s){where}, {steps} steps x "
          f"{config.train.epochs} epochs of batch {config.train.batch_size}", flush=True)
    if continue_from is not None and continue_from.epoch >= config.train.epochs:
        print(f"[train] {workdir} has already trained {continue_from.epoch} epoch(s) "
              f"(train.epochs is {config.train.epochs}): nothing to train; pass a larger "
              "--config.train.epochs to train more. Evaluating the best checkpoint again.",
              flush=True)
    stop_file = os.path.join(workdir, backup.STOP_FILE)
    started = time.monotonic()
    outcome = _fit_run(model, run, steps, signals, continue_from, stop_file)
    elapsed = time.monotonic() - started
    if outcome.stop_file:
        if run.is_chief and os.path.exists(stop_file):
            os.remove(stop_file)
        done = curves.epochs_in(os.path.join(run.outdir, "history.csv"))
        print(f"[train] found {stop_file}: stopped after epoch {done} of "
              f"{config.train.epochs} as asked, with its checkpoints; removed {stop_file}. "
              f"Run the same command to train on to {config.train.epochs} epochs.", flush=True)
    return _finish(model, run, outcome, elapsed, signals)


def set_up(config, workdir: str, signals) -> Setup:
    """Seeds, the strategy, the build (read and checked; its path made absolute), the
    precision and the workdir, claimed for this experiment by the chief."""
    import keras
    import tensorflow as tf
    from pipeline import cli
    from trainers import data
    config = with_absolute_build(config)
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
    signals.check()
    skipped = data.check_build(config.data.build_dir, info,
                               (config.data.train_split, config.data.eval_split),
                               on_corrupt=config.data.on_corrupt, program="train")
    signals.check()
    policy = resolve_precision(config.train.precision)
    keras.mixed_precision.set_global_policy(policy)
    is_chief, worker, workers = (multiworker.worker_role(strategy) if multi_worker
                                 else (True, 0, 1))
    if is_chief:
        claim_workdir(config, info, input_shape(config, info, {d.name for d in skipped}),
                      workdir)
    outdir = workdir if is_chief else multiworker.worker_dir(workdir, worker)
    os.makedirs(outdir, exist_ok=True)
    return Setup(config, info, strategy, multi_worker, skipped, policy, is_chief, worker,
                 workers, outdir)


def with_absolute_build(config):
    """``config`` with ``data.build_dir`` resolved against the current folder (a URL stays
    as it is), so that the workdir says where the build is to whatever folder reads it."""
    build = workdirs.absolute_build(config.data.build_dir)
    if build == config.data.build_dir:
        return config
    config = copy.deepcopy(config)
    config.data.build_dir = build
    return config


def claim_workdir(config, info, shape, workdir: str) -> None:
    """Writes the run's config, classes, build and fingerprint into ``workdir`` after
    checking that it holds no other experiment (``trainers.workdir.check_experiment``);
    ``train.overwrite`` removes an earlier run's outputs first."""
    os.makedirs(workdir, exist_ok=True)
    new = workdirs.fingerprint(config.model_name, shape, info["classes"],
                               config.data.build_dir)
    if config.train.overwrite:
        removed = workdirs.clear_outputs(workdir)
        if removed:
            print(f"[train] train.overwrite: removed the earlier run's outputs from {workdir} "
                  f"({', '.join(removed)}); starting afresh", flush=True)
    else:
        try:
            workdirs.check_experiment(workdir, new)
        except workdirs.RunError as e:
            raise ConfigError(str(e)) from None
    write_json(os.path.join(workdir, "config.json"), resolved_config(config))
    write_json(os.path.join(workdir, "classes.json"), info["classes"])
    write_json(os.path.join(workdir, "dataset_info.json"), info)
    workdirs.write_fingerprint(workdir, new)


def _fit_run(model, run: Setup, steps: int, signals, continue_from,
             stop_file: str) -> FitOutcome:
    """``fit``, with a damaged record named in one line and a stop saying what was kept."""
    from pipeline import cli
    from trainers import data
    try:
        signals.check()
        try:
            return fit(model, run.strategy, run.config, run.info, run.outdir, steps,
                       multi_worker=run.multi_worker, is_chief=run.is_chief, signals=signals,
                       skip_shards=run.skip, continue_from=continue_from, stop_file=stop_file)
        except Exception as e:
            error = data.explain_data_error(
                e, run.config.data.build_dir, run.info, run.splits,
                f"training stopped: {backup.backup_note(run.outdir)}", ignore=run.skip)
            if error is None:
                raise
            raise error from None
    except cli.Stopped as stop:
        if not hasattr(stop, "kept"):
            stop.kept = backup.backup_note(run.outdir)
        raise


def _finish(model, run: Setup, outcome: FitOutcome, elapsed: float, signals) -> dict:
    """result.json: the run's record and, on the chief, the curves and the best
    checkpoint evaluated on the evaluation split."""
    from pipeline import cli
    from trainers import data
    config, outdir = run.config, run.outdir
    history = os.path.join(outdir, "history.csv")
    result = {"split": config.data.eval_split, "train_seconds": round(elapsed, 1),
              "precision": run.policy, "replicas": run.strategy.num_replicas_in_sync,
              "epochs": config.train.epochs, "epochs_trained": curves.epochs_in(history),
              "stopped_by": ("stop_file" if outcome.stop_file else
                             "early_stopping" if outcome.early_stopped else None),
              "skipped_shards": [d.to_json() for d in run.skipped]}
    if run.multi_worker:
        result.update(workers=run.workers, worker=run.worker, chief=run.is_chief,
                      weights_sha256=multiworker.weights_sha256(model))
    if not run.is_chief:
        # Another worker's copies only kept the saves in step; the chief evaluates.
        write_json(os.path.join(outdir, "result.json"), result)
        multiworker.keep_only(outdir, ("history.csv", "result.json"))
        print(f"[train] worker {run.worker} done ({elapsed:.0f}s training; weights sha256 "
              f"{result['weights_sha256'][:12]}). The chief writes the run: "
              f"{os.path.join(outdir, 'result.json')} is this worker's record.", flush=True)
        return result
    result["best_epoch"] = curves.plot_curves(history, os.path.join(outdir, "curves.png"),
                                              config.train.monitor, config.train.monitor_mode)
    # The chief evaluates the best checkpoint on the whole split, outside the strategy.
    try:
        scores = evaluate_best(config, run.info, outdir, signals, run.skip)
    except cli.Stopped as stop:
        stop.kept = (f"training is done ({result['epochs_trained']} epochs: checkpoints/ and "
                     "history.csv are kept); only the final evaluation was cut short")
        raise
    except Exception as e:
        error = data.explain_data_error(
            e, config.data.build_dir, run.info, (config.data.eval_split,),
            "training is done (checkpoints/ and history.csv are kept) but the final "
            "evaluation could not read it", ignore=run.skip)
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


def evaluate_best(config, info, outdir: str, signals=None, skip_shards=()) -> dict:
    """The best checkpoint evaluated on the whole evaluation split, with the metrics of
    training (``compile_settings``, ``name_losses``); a stop signal raises
    ``pipeline.cli.Stopped`` at the next batch."""
    import keras
    from pipeline import cli
    best = keras.models.load_model(os.path.join(outdir, "checkpoints", "best.keras"),
                                   compile=False)
    best.compile(**compile_settings(config, info))

    class StopOnSignal(keras.callbacks.Callback):
        def on_test_batch_end(self, batch, logs=None):
            if signals.signum is not None:
                raise cli.Stopped(signals.signum)

    signals = signals or _NoSignals()
    scores = best.evaluate(make_input(config, info, training=False, skip_shards=skip_shards),
                           verbose=0, return_dict=True, callbacks=[StopOnSignal()])
    exact = penalised(best) and not frame_targets(config, info)
    return name_losses({k: float(v) for k, v in scores.items()}, ("",) if exact else ())


def write_json(path: str, data):
    """``data`` as indented, key-sorted JSON with a final newline."""
    with open(path, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True, default=str)
        f.write("\n")


def main(argv):
    """Trains from parsed flags; returns the exit code (2 for user mistakes and damaged
    records, 130 / 143 when SIGINT / SIGTERM stopped it)."""
    cli.started()
    # TensorFlow's generated code and the libraries' other temporary files go into a
    # folder of the run's own, removed at the end (a lost worker's exit at once included)
    with cli.StopSignals(raise_stop=False) as signals, cli.run_temp_folder():
        try:
            _check_usage(argv)
            if os.environ.get("TF_CONFIG"):
                multiworker.check_tf_config(os.environ["TF_CONFIG"])  # before TensorFlow loads
            train(FLAGS.config, FLAGS.workdir, signals=signals)
        except cli.Stopped as stop:         # before training began, or from it
            kept = getattr(stop, "kept", None) or backup.backup_note(FLAGS.workdir)
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
    """The command that resumes this run: the same one (with TF_CONFIG when it is set),
    less a ``--config.train.overwrite``, which would start it afresh."""
    command = cli.command_line("trainers.train", without_overwrite(sys.argv[1:]))
    if os.environ.get("TF_CONFIG"):
        import shlex
        command = f"TF_CONFIG={shlex.quote(os.environ['TF_CONFIG'])} {command}"
    return command


def without_overwrite(args: list[str]) -> list[str]:
    """``args`` less ``--config.train.overwrite[=VALUE]`` (and a separate VALUE)."""
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
            if arg.lower() in ("true", "false", "1", "0"):
                continue
        if arg.startswith("--config.train.overwrite"):
            skip = "=" not in arg
            continue
        out.append(arg)
    return out


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
