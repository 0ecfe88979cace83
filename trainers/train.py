r"""Trains any model family on any build: one command on a laptop CPU or a multi-GPU box.

    python -m trainers.train --config configs/demo_cnn_gru.py --workdir runs/demo
    python -m trainers.train --config configs/ucf101_resnet152v2_lstm.py:runlocal --workdir W \
        --config.train.batch_size 8

The workdir keeps everything about the run:

    W/config.json            the resolved config (model knobs merged over the family's defaults)
    W/classes.json           class names, index order
    W/dataset_info.json      the build it trained on
    W/backup/                BackupAndRestore state: a killed run resumes where it stopped
    W/checkpoints/best.keras best epoch by config.train.monitor; last.keras after every epoch
    W/history.csv            per-epoch metrics (appended across resumes)
    W/tensorboard/           TensorBoard logs
    W/curves.png             loss and accuracy, train vs validation, best epoch marked
    W/result.json            the final evaluation of the best checkpoint

Precision ``auto`` is mixed_float16 on a GPU (Keras scales the loss) and
float32 on a CPU; ``mixed_bfloat16`` and ``float32`` can be asked for. The
output layer stays float32. With several GPUs the run uses MirroredStrategy.

Several machines: set ``TF_CONFIG`` on each and run the same command there;
the run uses MultiWorkerMirroredStrategy with its own training loop (Keras's
fit() cannot reduce its step results across workers). The chief (worker 0)
writes the workdir above. Another worker saves its copies in step with the
chief's under W/workertemp_<index>/ (saving is collective) and keeps only
history.csv and result.json there at the end. A restarted cluster resumes
from the chief's backup/. See TRAINING.md.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sys
import time

from absl import app, flags
from ml_collections import config_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    "config", None, "Experiment config: configs/<experiment>.py, optionally ':runlocal'. "
    "Override any value with --config.<path> VALUE.", lock_config=True)
flags.DEFINE_string("workdir", None, "Where checkpoints, logs, curves and the resolved config "
                                     "go; rerunning with the same workdir resumes.")

PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
MODALITY_OF_FAMILY = {"conv3d": "video", "cnn_rnn": "video", "transfer_rnn": "video",
                      "keypoint_rnn": "keypoints", "image_classifier": "image"}


class ConfigError(ValueError):
    """The config and the records disagree, or the config is invalid (no traceback)."""


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
        tf_config = check_tf_config(os.environ["TF_CONFIG"])
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


def load_build(config) -> dict:
    """Reads the build's dataset_info and checks it against the config."""
    from tfrecords import schema
    family = config.model_name
    if family not in MODALITY_OF_FAMILY:
        from trainers import models
        raise ConfigError(f"model_name {family!r} is not a model family; available: "
                          f"{', '.join(models.available())}")
    try:
        info = schema.read_dataset_info(config.data.build_dir)
    except FileNotFoundError as e:
        raise ConfigError(f"data.build_dir: {e}") from None
    modality = info.get("modality", "video")
    want = MODALITY_OF_FAMILY[family]
    if modality != want:
        raise ConfigError(f"{family} trains on {want} records but {config.data.build_dir} holds "
                          f"{modality} records")
    for split in (config.data.train_split, config.data.eval_split):
        if split not in info["splits"] or not info["splits"][split]["num_examples"]:
            raise ConfigError(f"split {split!r} has no records in {config.data.build_dir} "
                              f"(it has {', '.join(sorted(info['splits']))})")
    classes = info.get("classes", [])
    if config.data.num_classes and config.data.num_classes != len(classes):
        raise ConfigError(f"the config expects {config.data.num_classes} classes but the "
                          f"build has {len(classes)}: {', '.join(classes)}")
    if modality == "video":
        built = (info.get("sampling") or {}).get("num_frames")
        if built and config.data.num_frames > built and config.data.short == "error":
            raise ConfigError(f"data.num_frames {config.data.num_frames} > the {built} frames "
                              "per record of the build")
    return info


def keypoint_shape(config, info) -> tuple[int, int, int]:
    """(people, points, coords) of the build's keypoint records, read from its first record."""
    import tensorflow as tf
    from tfrecords import schema
    build = config.data.build_dir.rstrip("/")
    shard = info["splits"][config.data.train_split]["shards"][0]
    raw = next(iter(tf.data.TFRecordDataset(f"{build}/{shard}")))
    p = schema.parse_keypoints(raw)
    return int(p["num_people"]), int(p["num_points"]), int(p["num_coords"])


# --------------------------------------------------------------------------
# Input.
# --------------------------------------------------------------------------
def input_shape(config, info) -> tuple:
    """The model's input shape for this config and build."""
    d = config.data
    if info.get("modality") == "keypoints":
        people, points, coords = keypoint_shape(config, info)
        return (d.window, people * points * coords)
    size = (d.crop_size, d.crop_size)
    return size + (3,) if info.get("modality") == "image" else (d.num_frames,) + size + (3,)


def make_input(config, info, *, training: bool, input_context=None):
    """The tf.data pipeline of one split for Keras: (inputs, targets[, sample weights]).

    With ``input_context`` (from ``strategy.distribute_datasets_from_function``)
    it is one worker's part of the split, batched per replica."""
    import tensorflow as tf
    from tfrecords import reader
    d = config.data
    split = d.train_split if training else d.eval_split
    batch = config.train.batch_size
    common = dict(training=training, batch_size=batch, cache=d.cache,
                  seed=config.train.seed if training and config.train.deterministic else None,
                  drop_remainder=training or None)
    if input_context is not None:
        common["input_context"] = input_context
    modality = info.get("modality")
    if modality == "keypoints":
        people, points, coords = keypoint_shape(config, info)
        ds = reader.make_keypoint_dataset(
            d.build_dir, split, window=d.window, window_shift=d.window_shift or None,
            num_people=people, num_points=points, num_coords=coords, target=d.target,
            shuffle_buffer=d.shuffle_buffer, **common)
        binary = _binary_frame_output(config, info)

        def to_keras(features, target):
            if d.target != "frames":
                return features["keypoints"], target
            weight = features["valid"] * tf.cast(target >= 0, tf.float32)
            target = tf.maximum(target, 0)
            if binary:
                target = tf.cast(target, tf.float32)[..., None]
            return features["keypoints"], target, weight
        return ds.map(to_keras, num_parallel_calls=tf.data.AUTOTUNE)
    if modality == "image":
        return reader.make_image_dataset(
            d.build_dir, split, crop_size=d.crop_size, crop=d.crop if training else "center",
            flip=d.flip and training, shuffle_buffer=d.shuffle_buffer, **common)
    swap = dict(d.flip_label_swap) if d.flip_label_swap else None
    return reader.make_dataset(
        d.build_dir, split, num_frames=d.num_frames, sampling=d.sampling, stride=d.stride,
        short=d.short if d.short != "error" else "loop", crop_size=d.crop_size,
        crop=d.crop if training else "center", resize_shorter=d.resize_shorter or None,
        flip=d.flip and training, flip_label_swap=swap if training else None,
        brightness=d.brightness if training else 0.0, contrast=d.contrast if training else 0.0,
        num_test_clips=1 if training else d.num_test_clips,
        num_test_crops=1 if training else d.num_test_crops,
        shuffle_buffer=d.shuffle_buffer, **common)


def _binary_frame_output(config, info) -> bool:
    """Whether the keypoint model ends in one sigmoid unit (binary frame-wise labels)."""
    from trainers import models
    model = models.merged_config(config.model_name, config.model)
    sigmoid = model.output == "sigmoid" or (model.output == "auto" and len(info["classes"]) <= 2)
    return sigmoid and len(info["classes"]) <= 2 and model.binary_single_unit


# --------------------------------------------------------------------------
# Model.
# --------------------------------------------------------------------------
def build_model(config, info, strategy):
    """Builds and compiles the model inside the strategy's scope."""
    import keras
    from trainers import models
    t = config.train
    shape = input_shape(config, info)
    with strategy.scope():
        try:
            model = models.build_model(config.model_name, config.model, input_shape=shape,
                                       num_classes=len(info["classes"]))
        except (KeyError, ValueError) as e:
            raise ConfigError(f"model: {e}") from None
        binary = info.get("modality") == "keypoints" and _binary_frame_output(config, info)
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


def _atomic_savers():
    """BackupAndRestore and ModelCheckpoint that write beside their file and rename it into
    place, so a run killed while saving leaves the previous backup and checkpoints whole."""
    import keras

    class Backup(keras.callbacks.BackupAndRestore):
        def _save_model(self):
            os.makedirs(self.backup_dir, exist_ok=True)
            partial = self._weights_path + ".partial.weights.h5"
            self.model.save_weights(partial, overwrite=True)
            os.replace(partial, self._weights_path)
            partial = self._training_metadata_path + ".partial"
            with open(partial, "w") as f:
                json.dump({"epoch": self._current_epoch, "batch": self._last_batch_seen}, f)
            os.replace(partial, self._training_metadata_path)

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


def make_callbacks(config, workdir: str):
    import keras
    t = config.train
    ckpt = os.path.join(workdir, "checkpoints")
    os.makedirs(ckpt, exist_ok=True)
    Backup, Checkpoint = _atomic_savers()
    callbacks = [
        Backup(os.path.join(workdir, "backup")),
        Checkpoint(
            os.path.join(ckpt, "best.keras"), monitor=t.monitor, mode=t.monitor_mode,
            save_best_only=True,
            initial_value_threshold=best_before_resume(workdir, t.monitor, t.monitor_mode)),
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


def best_before_resume(workdir: str, monitor: str, mode: str) -> float | None:
    """The best ``monitor`` value of the epochs a resumed run restores (None: a fresh run).

    So that best.keras is replaced only by a better epoch after a restart, as the
    curves and result.json (which read history.csv) assume.
    """
    meta = os.path.join(workdir, "backup", "training_metadata.json")
    history = os.path.join(workdir, "history.csv")
    if not (os.path.isfile(meta) and os.path.isfile(history)):
        return None
    try:
        with open(meta) as f:
            restored = int(json.load(f)["epoch"])
        h = read_history(history)
    except (OSError, ValueError, KeyError):
        return None
    scores = [v for e, v in zip(h.get("epoch", []), h.get(monitor, [])) if e < restored]
    if not scores:
        return None
    return max(scores) if mode == "max" else min(scores)


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


def train(config, workdir: str) -> dict:
    """Runs training and a final evaluation; returns the final metrics."""
    import keras
    import tensorflow as tf
    keras.utils.set_random_seed(config.train.seed)
    if config.train.deterministic:
        tf.config.experimental.enable_op_determinism()
    # MultiWorkerMirroredStrategy must exist before TensorFlow runs anything.
    strategy = make_strategy()
    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    info = load_build(config)
    policy = resolve_precision(config.train.precision)
    keras.mixed_precision.set_global_policy(policy)
    is_chief, worker, workers = worker_role(strategy) if multi_worker else (True, 0, 1)
    # Another worker keeps its copies apart, so that a workdir shared with the chief
    # (one file system for all) holds the chief's files only.
    outdir = workdir if is_chief else os.path.join(workdir, f"workertemp_{worker}")
    os.makedirs(outdir, exist_ok=True)
    if is_chief:
        write_json(os.path.join(workdir, "config.json"), resolved_config(config))
        write_json(os.path.join(workdir, "classes.json"), info["classes"])
        write_json(os.path.join(workdir, "dataset_info.json"), info)

    model, shape = build_model(config, info, strategy)
    steps = steps_per_epoch(config, info)
    where = (f", worker {worker} of {workers}" + (" (chief)" if is_chief else "")
             if multi_worker else "")
    print(f"[train] {config.model_name} on {config.data.build_dir} ({info['modality']}, "
          f"{len(info['classes'])} classes), input {shape}, precision {policy}, "
          f"{strategy.num_replicas_in_sync} replica(s){where}, {steps} steps x "
          f"{config.train.epochs} epochs of batch {config.train.batch_size}", flush=True)
    started = time.monotonic()
    if multi_worker:
        fit_multi_worker(model, strategy, config, info, outdir, steps)
    else:
        # Keras distributes a plain dataset over the model's strategy itself
        # (splitting the global batch per replica).
        model.fit(make_input(config, info, training=True), epochs=config.train.epochs,
                  steps_per_epoch=steps, validation_data=make_input(config, info, training=False),
                  callbacks=make_callbacks(config, outdir),
                  class_weight=class_weights(config, info), verbose=2)
    elapsed = time.monotonic() - started

    history = os.path.join(outdir, "history.csv")
    result = {"split": config.data.eval_split, "train_seconds": round(elapsed, 1),
              "precision": policy, "replicas": strategy.num_replicas_in_sync}
    if multi_worker:
        result.update(workers=workers, worker=worker, chief=is_chief,
                      weights_sha256=weights_sha256(model))
    if not is_chief:
        # Another worker's copies only kept the saves in step; the chief evaluates.
        write_json(os.path.join(outdir, "result.json"), result)
        _keep_only(outdir, ("history.csv", "result.json"))
        print(f"[train] worker {worker} done ({elapsed:.0f}s training; weights sha256 "
              f"{result['weights_sha256'][:12]}). The chief writes the run: "
              f"{os.path.join(outdir, 'result.json')} is this worker's record.", flush=True)
        return result
    result["best_epoch"] = plot_curves(history, os.path.join(outdir, "curves.png"),
                                       config.train.monitor, config.train.monitor_mode)
    # The chief evaluates the best checkpoint on the whole split, outside the strategy.
    best = keras.models.load_model(os.path.join(outdir, "checkpoints", "best.keras"))
    best.compile(loss=model.loss, metrics=[type(m)(name="accuracy")
                                           for m in model.metrics if m.name == "accuracy"]
                 or ["accuracy"])
    scores = best.evaluate(make_input(config, info, training=False), verbose=0,
                           return_dict=True)
    result.update({k: float(v) for k, v in scores.items()})
    write_json(os.path.join(outdir, "result.json"), result)
    print(f"[train] best epoch {result['best_epoch']}: {config.data.eval_split} accuracy "
          f"{result.get('accuracy', float('nan')):.4f}, loss {result['loss']:.4f} "
          f"({elapsed:.0f}s training). Curves: {os.path.join(outdir, 'curves.png')}",
          flush=True)
    return result


# --------------------------------------------------------------------------
# Several machines.
# --------------------------------------------------------------------------
def fit_multi_worker(model, strategy, config, info, outdir: str, steps: int):
    """Trains ``model`` under MultiWorkerMirroredStrategy, epoch by epoch.

    Keras 3's ``fit`` cannot run under this strategy (it reduces its step results
    with ``strategy.reduce(..., axis=0)``, which fails on scalars across workers), so
    this loop runs Keras's own ``train_step``/``test_step`` in ``strategy.run``: the
    loss is scaled by the replicas and the optimizer sums the gradients across all of
    them, so every worker applies the same update. Metrics are Keras metrics whose
    per-replica totals are summed across workers when read. The callbacks are those
    of the single-machine run, writing to ``outdir``; every worker must call them,
    since saving reads the distributed variables.
    """
    import keras
    import tensorflow as tf
    t = config.train
    if t.batch_size % strategy.num_replicas_in_sync:
        raise ConfigError(f"train.batch_size {t.batch_size} is the global batch: it must be "
                          f"a multiple of the {strategy.num_replicas_in_sync} replicas")
    if t.xla and not tf.config.list_logical_devices("GPU"):
        raise ConfigError("train.xla with TF_CONFIG needs GPU workers: TensorFlow's XLA has no "
                          "collectives for CPU devices. Run with --config.train.xla=False")
    weights = class_weights(config, info)

    def dataset_fn(training):
        def make(input_context):
            ds = make_input(config, info, training=training, input_context=input_context)
            return _with_class_weights(ds, weights, len(info["classes"])) if training else ds
        return make

    train_data = strategy.distribute_datasets_from_function(dataset_fn(True))
    val_data = strategy.distribute_datasets_from_function(dataset_fn(False))
    with strategy.scope():
        # Keras's fit builds the loss, metric and optimizer state from the first batch
        # the same way; specs are enough.
        spec = _with_class_weights(make_input(config, info, training=True), weights,
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

    is_chief = worker_role(strategy)[0]
    if not is_chief:
        # Saving is collective (it reads the metrics' on-read variables), so every worker
        # keeps a backup in step with the chief's; only the chief's is read on a restart.
        shutil.rmtree(os.path.join(outdir, "backup"), ignore_errors=True)
    best = best_before_resume(outdir, t.monitor, t.monitor_mode) if is_chief else None
    callback_list = make_callbacks(config, outdir)
    callbacks = keras.callbacks.CallbackList(
        callback_list, add_history=True, add_progbar=True, model=model,
        verbose=2, epochs=t.epochs, steps=steps)
    model.stop_training = False
    callbacks.on_train_begin()      # the chief's BackupAndRestore restores a stopped run
    epoch, has_best, best = sync_from_chief(
        strategy, model, getattr(model, "_initial_epoch", 0) or 0, best is not None, best or 0.0)
    initial_epoch = int(epoch)
    for callback in callback_list:  # the same decisions to save on every worker
        if isinstance(callback, keras.callbacks.ModelCheckpoint) and callback.save_best_only:
            callback.best = best if has_best else None
    if initial_epoch:
        print(f"[train] resuming after epoch {initial_epoch} from the chief's backup",
              flush=True)
    iterator = iter(train_data)
    logs = {}
    for epoch in range(initial_epoch, t.epochs):
        model.reset_metrics()
        callbacks.on_epoch_begin(epoch)
        for step in range(steps):
            callbacks.on_train_batch_begin(step)
            train_step(iterator)
            callbacks.on_train_batch_end(step)
        logs = results()
        model.reset_metrics()
        for batch in val_data:
            test_step(batch)
        logs.update(results("val_"))
        callbacks.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    if isinstance(model.optimizer, keras.optimizers.Optimizer) and t.epochs > 0:
        model.optimizer.finalize_variable_values(model.trainable_weights)
    callbacks.on_train_end(logs)


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


def _keep_only(folder: str, names) -> None:
    """Removes everything in ``folder`` but ``names`` (another worker's copies)."""
    for name in os.listdir(folder):
        if name not in names:
            path = os.path.join(folder, name)
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)


def write_json(path: str, data):
    """``data`` as indented, key-sorted JSON with a final newline."""
    with open(path, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True, default=str)
        f.write("\n")


def main(argv):
    if len(argv) > 1:
        print(f"error: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 2
    if FLAGS.config is None or not FLAGS.workdir:
        print("error: --config and --workdir are required, e.g.\n  python -m trainers.train "
              "--config configs/demo_cnn_gru.py --workdir runs/demo", file=sys.stderr)
        return 2
    try:
        if os.environ.get("TF_CONFIG"):
            check_tf_config(os.environ["TF_CONFIG"])     # before TensorFlow loads
        train(FLAGS.config, FLAGS.workdir)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:
        message = lost_worker_message(e) if os.environ.get("TF_CONFIG") else None
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        # TensorFlow's exit handlers then wait on the lost worker for a minute or two
        # more; the epoch ends already on disk (backup, history.csv) are all a resume needs.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)
    return 0


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


def _parse(argv):
    if any(a in ("-h", "--help", "--helpshort") for a in argv[1:]):
        print(__doc__)
        print(FLAGS.module_help(sys.modules[__name__]))
        sys.exit(0)
    try:
        return FLAGS(argv)
    except (flags.Error, AttributeError, KeyError, ValueError, TypeError) as e:
        # a bad flag, or a --config.<path> override naming no key of the locked config
        print(f"error: {e}\nRun with --help to see the flags.", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=_parse)
