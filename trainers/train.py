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
Several machines (``TF_CONFIG``) are refused with an explanation: see
TRAINING.md.
"""
from __future__ import annotations

import json
import os
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
        # Keras 3.15's fit() builds its state by strategy.reduce() of the first distributed
        # (inputs, targets) tuple, which MultiWorkerMirroredStrategy cannot reduce (a tuple,
        # uint8 frames); once that is worked around, the train step fails on a scalar
        # reduction. Refuse clearly instead of failing deep inside Keras.
        raise ConfigError("multi-worker training (TF_CONFIG) does not work with the Keras "
                          f"{_keras_version()} that TensorFlow 2.17 installs: its fit() cannot "
                          "reduce distributed (inputs, targets) batches across workers. Use one "
                          "machine (all its GPUs are used through MirroredStrategy).")
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def _keras_version() -> str:
    import keras
    return keras.__version__


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


def make_input(config, info, *, training: bool):
    """The tf.data pipeline of one split for Keras: (inputs, targets[, sample weights])."""
    import tensorflow as tf
    from tfrecords import reader
    d = config.data
    split = d.train_split if training else d.eval_split
    batch = config.train.batch_size
    common = dict(training=training, batch_size=batch, cache=d.cache,
                  seed=config.train.seed if training and config.train.deterministic else None,
                  drop_remainder=training or None)
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


def make_callbacks(config, workdir: str):
    import keras
    t = config.train
    ckpt = os.path.join(workdir, "checkpoints")
    os.makedirs(ckpt, exist_ok=True)
    callbacks = [
        keras.callbacks.BackupAndRestore(os.path.join(workdir, "backup")),
        keras.callbacks.ModelCheckpoint(os.path.join(ckpt, "best.keras"), monitor=t.monitor,
                                        mode=t.monitor_mode, save_best_only=True),
        keras.callbacks.ModelCheckpoint(os.path.join(ckpt, "last.keras")),
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
    info = load_build(config)
    policy = resolve_precision(config.train.precision)
    keras.mixed_precision.set_global_policy(policy)
    strategy = make_strategy()
    os.makedirs(workdir, exist_ok=True)
    _write_json(os.path.join(workdir, "config.json"), resolved_config(config))
    _write_json(os.path.join(workdir, "classes.json"), info["classes"])
    _write_json(os.path.join(workdir, "dataset_info.json"), info)

    model, shape = build_model(config, info, strategy)
    steps = steps_per_epoch(config, info)
    # Keras distributes a plain dataset over the model's strategy itself (sharding it
    # by file across workers where it can, splitting the global batch per replica);
    # it does not take the PerReplica values of distribute_datasets_from_function.
    train_ds = make_input(config, info, training=True)
    val_ds = make_input(config, info, training=False)
    print(f"[train] {config.model_name} on {config.data.build_dir} ({info['modality']}, "
          f"{len(info['classes'])} classes), input {shape}, precision {policy}, "
          f"{strategy.num_replicas_in_sync} replica(s), {steps} steps x {config.train.epochs} "
          f"epochs of batch {config.train.batch_size}", flush=True)
    started = time.monotonic()
    model.fit(train_ds, epochs=config.train.epochs, steps_per_epoch=steps,
              validation_data=val_ds, callbacks=make_callbacks(config, workdir),
              class_weight=class_weights(config, info), verbose=2)
    elapsed = time.monotonic() - started

    history = os.path.join(workdir, "history.csv")
    best_epoch = plot_curves(history, os.path.join(workdir, "curves.png"),
                             config.train.monitor, config.train.monitor_mode)
    best = keras.models.load_model(os.path.join(workdir, "checkpoints", "best.keras"))
    best.compile(loss=model.loss, metrics=[type(m)(name="accuracy")
                                           for m in model.metrics if m.name == "accuracy"]
                 or ["accuracy"])
    scores = best.evaluate(make_input(config, info, training=False), verbose=0,
                           return_dict=True)
    result = {"split": config.data.eval_split, "best_epoch": best_epoch,
              "train_seconds": round(elapsed, 1), "precision": policy,
              "replicas": strategy.num_replicas_in_sync,
              **{k: float(v) for k, v in scores.items()}}
    _write_json(os.path.join(workdir, "result.json"), result)
    print(f"[train] best epoch {best_epoch}: {config.data.eval_split} accuracy "
          f"{result.get('accuracy', float('nan')):.4f}, loss {result['loss']:.4f} "
          f"({elapsed:.0f}s training). Curves: {os.path.join(workdir, 'curves.png')}",
          flush=True)
    return result


def _write_json(path: str, data):
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
        train(FLAGS.config, FLAGS.workdir)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


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
