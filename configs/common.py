"""Shared pieces of the experiment configs: one helper, no copy-pasted factories.

An experiment config is a Python file with ``get_config(arg=None)`` returning a
locked ``ml_collections.ConfigDict`` with three sections:

- ``data``: which build to read and how (``tfrecords.reader`` arguments);
- ``model_name`` and ``model``: the family (``trainers/models/<name>.py``) and
  the knobs that differ from its defaults;
- ``train``: optimisation, precision, callbacks.

``arg`` may be ``runlocal``: a run that finishes in about a minute on a CPU.
"""
from __future__ import annotations

import ml_collections

DATA_DEFAULTS = dict(
    build_dir="",            # a build: OUTPUT_DIR/DATASET/CONFIG_NAME (see BUILD.md); a relative
                             # path is resolved against the folder training starts in, and the
                             # workdir records it absolute
    train_split="train",
    eval_split="test",
    num_classes=0,           # 0 = whatever the build has; otherwise checked against it
    modality="video",        # video | image | keypoints (checked against the build)
    num_frames=16,           # clip length read from each record
    sampling="stride",       # stride | segments | uniform (tfrecords.reader)
    stride=1,
    short="loop",            # loop | repeat_last for records shorter than the clip
    crop_size=112,
    crop="random",           # random | random_resized | center (evaluation is always center)
    resize_shorter=0,        # 0 = keep the stored size before cropping
    flip=False,
    flip_label_swap={},      # class name -> mirrored class name, e.g. left/right swipes
    brightness=0.0,
    contrast=0.0,
    num_test_clips=1,
    num_test_crops=1,
    window=90,               # keypoints: frames per window
    window_shift=0,          # keypoints: evaluation window step (0 = window)
    target="frames",         # keypoints: frames (frame-wise labels) | clip
    cache=False,
    shuffle_buffer=64,
    on_corrupt="fail",       # a shard whose framing or CRCs are damaged (checked before training):
                             # fail = refuse to start, naming it | skip = train without it
)

TRAIN_DEFAULTS = dict(
    batch_size=16,
    epochs=30,
    steps_per_epoch=0,       # 0 = training examples // batch_size
    optimizer="adam",        # adam | sgd | adamax
    learning_rate=1e-3,
    momentum=0.9,            # sgd only
    schedule="constant",     # constant | cosine | exponential | plateau (ReduceLROnPlateau)
    monitor="val_accuracy",
    monitor_mode="max",
    early_stopping_patience=0,   # 0 = off
    class_weights="none",    # none | balanced
    precision="auto",        # auto | float32 | mixed_float16 | mixed_bfloat16
    xla=False,
    seed=0,
    deterministic=False,     # reproducible input order and ops (slower)
    overwrite=False,         # True: delete an earlier run's outputs in the workdir and start
                             # afresh; False: a workdir holding another experiment (model family,
                             # input shape, classes or build differ) is refused. Resuming and
                             # extending the same experiment need neither.
)


def experiment(*, model_name: str, model: dict, data: dict, train: dict,
               runlocal: bool = False, runlocal_overrides: dict | None = None):
    """A locked experiment config from the defaults above and the experiment's choices."""
    config = ml_collections.ConfigDict()
    config.data = ml_collections.ConfigDict({**DATA_DEFAULTS, **data})
    config.model_name = model_name
    config.model = ml_collections.ConfigDict(model)
    config.train = ml_collections.ConfigDict({**TRAIN_DEFAULTS, **train})
    if runlocal:
        config.train.epochs = 2
        config.train.steps_per_epoch = 2
        config.train.batch_size = 2
        for section, values in (runlocal_overrides or {}).items():
            getattr(config, section).update(values)
    config.lock()
    return config


def parse_arg(arg: str | None) -> bool:
    """True for 'runlocal'; anything else is a mistake worth an error."""
    if arg in (None, ""):
        return False
    if arg == "runlocal":
        return True
    raise ValueError(f"unknown config argument {arg!r}; the only one is 'runlocal'")


def _runlocal(build_dir: str, pretrained: bool, **data) -> dict:
    """runlocal overrides: the capped '_tiny' build, smaller inputs, no weight download."""
    overrides = {"data": dict(build_dir=build_dir + "_tiny", **data)}
    if pretrained:
        overrides["model"] = dict(weights=None)
    return overrides


GESTURES_BUILD = "records/gestures/indices11_square_100x100_jpeg90"


def gesture_experiment(arg, *, model_name: str, model: dict, learning_rate: float):
    """The smart-TV gesture setting every gesture config shares (11 frames of 100x100, 5
    classes, validated on 'val', flips that swap left and right swipes)."""
    return experiment(
        model_name=model_name, model=model,
        data=dict(build_dir=GESTURES_BUILD, eval_split="val", num_classes=5, num_frames=11,
                  sampling="uniform", crop_size=100, crop="center", flip=True,
                  flip_label_swap={"Left_Swipe_new": "Right_Swipe_new"}),
        train=dict(batch_size=16, epochs=30, learning_rate=learning_rate, schedule="plateau",
                   early_stopping_patience=10),
        runlocal=parse_arg(arg),
        runlocal_overrides=_runlocal(GESTURES_BUILD, model.get("weights") == "imagenet",
                                     crop_size=64, resize_shorter=64))


def resnet_clip_experiment(arg, *, build_dir: str, num_classes: int, epochs: int,
                           rnn: str = "lstm"):
    """ImageNet ResNet152V2 per frame + recurrent head on 16 random 112x112 crops (UCF101, HMDB51)."""
    return experiment(
        model_name="transfer_rnn",
        model=dict(variant="resnet152v2_lstm", weights="imagenet",
                   **({} if rnn == "lstm" else {"rnn": rnn})),
        data=dict(build_dir=build_dir, num_classes=num_classes, num_frames=16,
                  sampling="uniform", crop_size=112, crop="random", flip=True),
        train=dict(batch_size=16, epochs=epochs, learning_rate=1e-4, schedule="cosine"),
        runlocal=parse_arg(arg),
        runlocal_overrides=_runlocal(build_dir, True, num_frames=4, crop_size=64,
                                     resize_shorter=64))
