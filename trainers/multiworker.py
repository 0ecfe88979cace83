"""Training on several machines: TF_CONFIG, MultiWorkerMirroredStrategy, its training loop.

``python -m trainers.train`` uses this module when ``TF_CONFIG`` is set on each machine
(see TRAINING.md). Keras 3's ``fit`` cannot run under MultiWorkerMirroredStrategy (it
reduces its step results with ``strategy.reduce(..., axis=0)``, which fails on scalars
across workers), so ``fit_multi_worker`` runs Keras's own ``train_step``/``test_step``
epoch by epoch with the single-machine run's callbacks.

The chief (worker 0, or the "chief" task) writes the workdir. Another worker saves its
copies in step with the chief's under ``W/workertemp_<index>/`` (saving is collective)
and keeps only history.csv and result.json there at the end (``keep_only``). On a
restart every worker takes the chief's weights, optimizer state and epoch
(``sync_from_chief``); a lost worker stops the others with a line saying how to resume
(``exit_if_lost_worker``).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sys

from trainers.data import ConfigError, make_input


# --------------------------------------------------------------------------
# The cluster.
# --------------------------------------------------------------------------
def check_tf_config(text: str) -> dict:
    """TF_CONFIG parsed and checked: a cluster of workers and this task's place in it."""
    try:
        tf_config = json.loads(text)
    except ValueError as e:
        raise ConfigError(f"TF_CONFIG is not valid JSON: {e}") from None
    cluster = tf_config.get("cluster") if isinstance(tf_config, dict) else None
    task = tf_config.get("task") if isinstance(tf_config, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise ConfigError('TF_CONFIG needs "cluster" and "task", e.g. {"cluster": {"worker": '
                          '["host0:port", "host1:port"]}, "task": {"type": "worker", '
                          '"index": 0}}')
    unknown = sorted(set(cluster) - {"chief", "worker"})
    if unknown:
        raise ConfigError(f"TF_CONFIG cluster has {', '.join(unknown)} jobs; multi-worker "
                          "training uses only 'chief' and 'worker'")
    kind, index = task.get("type"), task.get("index", 0)
    if kind not in cluster or not isinstance(index, int) or \
            not 0 <= index < len(cluster[kind]):
        raise ConfigError(f"TF_CONFIG task {task} is not in its cluster {cluster}")
    return tf_config


def worker_role(strategy) -> tuple[bool, int, int]:
    """(is_chief, this worker's number, workers in all) of a multi-worker strategy."""
    resolver = strategy.cluster_resolver
    jobs = resolver.cluster_spec().as_dict()
    workers = sum(len(tasks) for tasks in jobs.values())
    kind, index = resolver.task_type, resolver.task_id
    if "chief" in jobs:
        return kind == "chief", (0 if kind == "chief" else index + len(jobs["chief"])), workers
    return index == 0, index, workers


def worker_dir(workdir: str, worker: int) -> str:
    """Where another worker than the chief keeps its copies: ``workdir/workertemp_<worker>``.

    Apart from the chief's, so that a workdir shared with the chief (one file system
    for all) holds the chief's files only. Its backup from an earlier start is
    removed: only the chief's is read on a restart, and this worker's is written
    again in step with the chief's (saving is collective).
    """
    outdir = os.path.join(workdir, f"workertemp_{worker}")
    os.makedirs(outdir, exist_ok=True)
    shutil.rmtree(os.path.join(outdir, "backup"), ignore_errors=True)
    return outdir


def check_config(config, strategy) -> None:
    """What multi-worker training needs of the config (ConfigError says what to change)."""
    import tensorflow as tf
    t = config.train
    if t.batch_size % strategy.num_replicas_in_sync:
        raise ConfigError(f"train.batch_size {t.batch_size} is the global batch: it must be "
                          f"a multiple of the {strategy.num_replicas_in_sync} replicas")
    if t.xla and not tf.config.list_logical_devices("GPU"):
        raise ConfigError("train.xla with TF_CONFIG needs GPU workers: TensorFlow's XLA has no "
                          "collectives for CPU devices. Run with --config.train.xla=False")


# --------------------------------------------------------------------------
# Training.
# --------------------------------------------------------------------------
def fit_multi_worker(model, strategy, config, info, steps: int, callbacks: list, *,
                     class_weight: dict | None = None, best: float | None = None,
                     signals=None, stop_file: str | None = None, skip_shards=()) -> bool:
    """Trains ``model`` under MultiWorkerMirroredStrategy, epoch by epoch.

    This loop runs Keras's own ``train_step``/``test_step`` in ``strategy.run``: the
    loss is scaled by the replicas and the optimizer sums the gradients across all of
    them, so every worker applies the same update. Metrics are Keras metrics whose
    per-replica totals are summed across workers when read. ``callbacks`` are those
    of the single-machine run (``trainers.backup.make_callbacks`` and the one naming the
    losses, ``trainers.train.loss_logs``; the backup first);
    every worker must call them, since saving reads the distributed variables.
    ``class_weight`` weighs the training examples as ``fit`` does; ``best`` is the
    chief's best monitored value of the epochs a resumed run restores (None: a fresh
    run, or not the chief). Check the config with ``check_config`` first.

    Stopping: after every training step the workers agree (one small all-reduce)
    whether any of them got a stop signal (``signals.signum``); if so, every worker
    saves a backup of that step (the chief's in its workdir) and raises
    ``pipeline.cli.Stopped``, so all stop at the same step. A signal during validation
    is acted on when the epoch's validation ends. After each epoch they agree whether
    ``stop_file`` exists on any of them; if so the run ends there as a finished one
    (returns True). A restart takes the chief's epoch and step (``sync_from_chief``)
    and runs the rest of that epoch from a fresh reader position.
    """
    import keras
    import tensorflow as tf
    t = config.train

    def dataset_fn(training):
        def make(input_context):
            ds = make_input(config, info, training=training, input_context=input_context,
                            skip_shards=skip_shards)
            return _with_class_weights(ds, class_weight, len(info["classes"])) if training \
                else ds
        return make

    train_data = strategy.distribute_datasets_from_function(dataset_fn(True))
    val_data = strategy.distribute_datasets_from_function(dataset_fn(False))
    with strategy.scope():
        # Keras's fit builds the loss, metric and optimizer state from the first batch
        # the same way; specs are enough.
        spec = _with_class_weights(make_input(config, info, training=True,
                                              skip_shards=skip_shards), class_weight,
                                   len(info["classes"])).element_spec
        model._symbolic_build(data_batch=spec)

    # As in Keras's fit: with train.xla, each replica's step is compiled by XLA.
    replica_train = tf.function(model.train_step, jit_compile=True) if t.xla \
        else model.train_step
    replica_test = tf.function(model.test_step, jit_compile=True) if t.xla \
        else model.test_step

    @tf.function
    def train_step(iterator):
        strategy.run(replica_train, args=(next(iterator),))

    @tf.function(reduce_retracing=True)
    def test_step(batch):
        strategy.run(replica_test, args=(batch,))

    def results(prefix=""):
        # Read in the cross-replica context: on-read metric variables sum over workers.
        return {prefix + k: float(v) for k, v in model.get_metrics_result().items()}

    agree = _agreement(strategy)

    def flags(check_file: bool) -> tuple[int | None, bool]:
        """(the signal any worker got, whether any worker found the stop file)."""
        import signal as signal_lib
        signum = getattr(signals, "signum", None)
        local = [signum == signal_lib.SIGINT, signum == signal_lib.SIGTERM,
                 bool(check_file and stop_file and os.path.exists(stop_file))]
        seen = agree(local)
        found = (signal_lib.SIGTERM if seen[1] else signal_lib.SIGINT if seen[0] else None)
        return (int(found) if found is not None else None), seen[2]

    callback_list = callbacks
    backup = callback_list[0]
    callbacks = keras.callbacks.CallbackList(
        callback_list, add_history=True, add_progbar=True, model=model,
        verbose=2, epochs=t.epochs, steps=steps)
    model.stop_training = False
    callbacks.on_train_begin()      # the chief's BackupAndRestore restores a stopped run
    point = getattr(backup, "resume", None)
    step_done = point.step if point is not None and point.state_dir else 0
    epoch, step_done, has_best, best = sync_from_chief(
        strategy, model, getattr(model, "_initial_epoch", 0) or 0, step_done,
        best is not None, best or 0.0)
    initial_epoch, initial_step = int(epoch), int(step_done)
    for callback in callback_list:  # the same decisions to save on every worker
        if isinstance(callback, keras.callbacks.ModelCheckpoint) and callback.save_best_only:
            callback.best = best if has_best else None
    if initial_step:
        print(f"[train] resuming at epoch {initial_epoch + 1} step {initial_step} from the "
              f"chief's backup", flush=True)
    elif initial_epoch and initial_epoch < t.epochs:
        print(f"[train] resuming after epoch {initial_epoch} from the chief's backup",
              flush=True)
    iterator = iter(train_data)
    logs = {}
    stop_file_seen = False
    for epoch in range(initial_epoch, t.epochs):
        model.reset_metrics()
        callbacks.on_epoch_begin(epoch)
        first = initial_step if epoch == initial_epoch else 0
        for step in range(first, steps):
            callbacks.on_train_batch_begin(step)
            train_step(iterator)
            callbacks.on_train_batch_end(step)
            signum, _ = flags(False)
            if signum is not None:
                _stop(signum, backup, epoch, step + 1, steps)
        logs = results()
        model.reset_metrics()
        for batch in val_data:
            test_step(batch)
        logs.update(results("val_"))
        callbacks.on_epoch_end(epoch, logs)
        signum, stop_file_seen = flags(True)
        if signum is not None:
            from pipeline import cli
            stop = cli.Stopped(signum)
            stop.kept = _kept(backup, f"the backup after epoch {epoch + 1}")
            raise stop
        if model.stop_training or stop_file_seen:
            break
    if isinstance(model.optimizer, keras.optimizers.Optimizer) and t.epochs > 0:
        model.optimizer.finalize_variable_values(model.trainable_weights)
    callbacks.on_train_end(logs)
    return stop_file_seen


def _kept(backup, what: str) -> str:
    """What a stopped worker says was kept: the chief keeps the backup in its workdir."""
    where = backup.backup_dir
    if os.path.basename(os.path.dirname(where)).startswith("workertemp_"):
        return f"{what} is in the chief's --workdir (this worker keeps a copy in {where})"
    return f"kept {what} in {where}"


def _stop(signum: int, backup, epoch: int, step: int, steps: int):
    """Every worker saves the same step (saving is collective), then stops."""
    from pipeline import cli
    backup.save_step(epoch, step, with_state=False)
    stop = cli.Stopped(signum)
    stop.kept = _kept(backup, f"a backup after step {step} of {steps} of epoch {epoch + 1} "
                              "(model, optimizer)")
    raise stop


def _agreement(strategy):
    """A function of a few local flags that returns, on every worker, whether any worker
    raised each (one all-reduce; every replica of a worker passes the same flags)."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def reduce(flags):
        def replica_fn():       # the value made on the replica's device, as all_reduce needs
            return tf.distribute.get_replica_context().all_reduce("SUM", tf.identity(flags))
        return strategy.run(replica_fn)

    def agree(flags) -> list[bool]:
        out = reduce(tf.constant([1.0 if f else 0.0 for f in flags], tf.float32))
        values = strategy.experimental_local_results(out)[0].numpy()
        return [bool(v > 0) for v in values]
    return agree


def _with_class_weights(ds, weights: dict | None, num_classes: int):
    """(inputs, targets) -> (inputs, targets, class weight of each target), as fit does."""
    if not weights:
        return ds
    import tensorflow as tf
    table = tf.constant([weights.get(i, 1.0) for i in range(num_classes)], tf.float32)
    return ds.map(lambda x, y: (x, y, tf.gather(table, tf.cast(y, tf.int32))))


def sync_from_chief(strategy, model, *numbers: float) -> list[float]:
    """Every worker takes the chief's weights and optimizer state; returns its ``numbers``.

    On a restart only the chief's backup counts: another worker may have been
    stopped a moment earlier or later, or run on a fresh machine. The values are
    summed across replicas with only the chief's first replica (replica 0)
    contributing: one all-reduce per dtype.
    """
    import tensorflow as tf
    variables, seen = [], set()
    for v in list(model.weights) + list(model.optimizer.variables):
        if id(v) not in seen:
            seen.add(id(v))
            variables.append(v)
    values = [tf.convert_to_tensor(v.value) for v in variables]
    values += [tf.constant(n, tf.float64) for n in numbers]
    sent = [tf.cast(x, tf.float64) if x.dtype.is_integer or x.dtype == tf.bool else x
            for x in values]

    groups: dict = {}                   # one all-reduce per dtype (they are packed)
    for i, x in enumerate(sent):
        groups.setdefault(x.dtype, []).append(i)

    @tf.function
    def from_chief():
        def replica_fn():
            ctx = tf.distribute.get_replica_context()
            mine = tf.equal(ctx.replica_id_in_sync_group, 0)
            return [ctx.all_reduce("SUM", [tf.where(mine, sent[i], tf.zeros_like(sent[i]))
                                           for i in group]) for group in groups.values()]
        return strategy.run(replica_fn)

    received = [None] * len(sent)
    for group, reduced in zip(groups.values(), from_chief()):
        for i, r in zip(group, reduced):
            received[i] = tf.cast(strategy.experimental_local_results(r)[0], values[i].dtype)
    for v, value in zip(variables, received[:len(variables)]):
        v.assign(value)
    return [float(n) for n in received[len(variables):]]


# --------------------------------------------------------------------------
# The end of a run.
# --------------------------------------------------------------------------
def weights_sha256(model) -> str:
    """A checksum of the model's weights (values and shapes), to compare workers."""
    import hashlib
    import numpy as np
    digest = hashlib.sha256()
    for w in model.get_weights():
        w = np.ascontiguousarray(w)
        digest.update(str((w.dtype.str, w.shape)).encode())
        digest.update(w.tobytes())
    return digest.hexdigest()


def keep_only(folder: str, names) -> None:
    """Removes everything in ``folder`` but ``names`` (another worker's copies)."""
    for name in os.listdir(folder):
        if name not in names:
            path = os.path.join(folder, name)
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)


def lost_worker_message(error: Exception) -> str | None:
    """What to do when a multi-worker run stops because a machine of its cluster went
    away, or None when ``error`` is something else.

    Every collective step needs every worker, so when one is killed or its machine is
    lost, TensorFlow's coordination service notices the missing heartbeats within
    seconds and aborts the collectives on the others with UnavailableError (or
    Aborted / DeadlineExceeded). Nothing is lost: the chief's backup is written
    atomically at every epoch end, and the same commands resume from it.
    """
    import tensorflow as tf
    if not isinstance(error, (tf.errors.UnavailableError, tf.errors.AbortedError,
                              tf.errors.DeadlineExceededError)):
        return None
    text = str(error.message)
    found = re.search(r"Task (/job:\w+/replica:\d+/task:\d+) heartbeat timeout", text)
    if found:
        who = f"{found.group(1)} stopped answering"
    else:       # e.g. "{{function_node ...}} Collective ops is aborted by: Connection reset"
        first = re.sub(r"\{\{[^}]*\}\}", "", text).strip().splitlines() or [""]
        who = first[0].split("aborted by:")[-1].strip()[:200] or type(error).__name__
    return (f"the cluster lost a worker ({who}). Stop every worker, then start them all "
            "again with the same commands: training resumes from the last backup in the "
            "chief's --workdir.")


def exit_if_lost_worker(error: Exception) -> None:
    """Under TF_CONFIG, a lost worker ends the process at once (exit 1) with one line
    saying how to resume; anything else returns, for the caller to raise."""
    message = lost_worker_message(error) if os.environ.get("TF_CONFIG") else None
    if message is None:
        return
    print(f"error: {message}", file=sys.stderr)
    # TensorFlow's exit handlers then wait on the lost worker for a minute or two
    # more; the epoch ends already on disk (backup, history.csv) are all a resume needs.
    from pipeline import cli
    cli.remove_run_temp_folders()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)
