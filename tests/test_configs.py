"""Every experiment config (configs/*.py but common.py) is loaded, validated and its model built.

New configs are found by globbing, so they are covered without editing this file. Each is
checked for ``arg`` None and "runlocal": a locked ConfigDict with exactly the sections and keys
of ``configs.common``, valid enum values, a docstring giving the build and train commands, a
build command (parsed with ``pipeline.build``'s own flags) that writes ``data.build_dir`` with
the splits the config reads, and a model that builds (weights None: no download) with the
input shape ``trainers.data`` would give it.
"""
from __future__ import annotations

import copy
import importlib
import os
import pathlib
import shlex

import keras
import ml_collections
import pytest

from configs import common
from tfrecords import reader
from trainers import data, models, train

CONFIG_DIR = pathlib.Path(__file__).resolve().parents[1] / "configs"
NOT_CONFIGS = ("__init__.py", "common.py")   # the package and the shared helpers
CONFIG_NAMES = sorted(p.stem for p in CONFIG_DIR.glob("*.py") if p.name not in NOT_CONFIGS)
ARGS = (None, "runlocal")

OPTIMIZERS = ("adam", "sgd", "adamax")
SCHEDULES = ("constant", "cosine", "exponential", "plateau")
# The splits each source writes; folder-like sources write val/test from the fractions,
# ucf101 and hmdb51 'val' from --val_fraction (whole groups held out of train).
SOURCE_SPLITS = {"ucf101": {"train", "test"}, "hmdb51": {"train", "test"},
                 "gestures": {"train", "val"}, "jester": {"train", "val", "test"}}
HELD_OUT_VAL = ("ucf101", "hmdb51")


def load(name: str, arg=None) -> ml_collections.ConfigDict:
    return importlib.import_module(f"configs.{name}").get_config(arg)


def doc_of(name: str) -> str:
    return importlib.import_module(f"configs.{name}").__doc__ or ""


def commands(doc: str, program: str) -> list[list[str]]:
    """The argv of every ``python -m <program>`` command in a docstring (continuations joined)."""
    text = doc.replace("\\\n", " ")
    return [shlex.split(line.strip(), comments=True)[3:] for line in text.splitlines()
            if line.strip().startswith(f"python -m {program} ")]


def planned_build(argv: list[str]) -> dict:
    """What ``python -m pipeline.build ARGV`` would write: directory, splits, keypoint features."""
    from absl import flags
    from pipeline import build
    from pipeline.media import keypoints
    FLAGS = flags.FLAGS
    try:
        rest = build.parse_flags(["pipeline.build", *argv])
        assert rest == ["pipeline.build"], f"flags pipeline.build does not know: {rest[1:]}"
        settings = build.settings_from_flags()
        name = FLAGS.config_name or build.default_config_name(settings, FLAGS.dataset,
                                                              FLAGS.split_id)
        splits = SOURCE_SPLITS.get(FLAGS.dataset) or (
            {"train"} | ({"val"} if FLAGS.val_fraction else set())
            | ({"test"} if FLAGS.test_fraction else set()))
        if FLAGS.dataset in HELD_OUT_VAL and FLAGS.val_fraction:
            splits = splits | {"val"}
        features = None
        if settings.keypoints is not None:   # the layout the docstrings document: BODY_25
            k = settings.keypoints
            points = keypoints.resolve_points(k.keypoints, "BODY_25")
            features = k.max_people * len(points) * len(k.coords)
        return dict(build_dir=os.path.join(FLAGS.output_dir, FLAGS.dataset, name),
                    splits=splits, features=features)
    finally:
        FLAGS.unparse_flags()


def planned_demo_build(argv: list[str]) -> dict:
    """``python -m pipeline.demo --output_dir D`` builds D/records/ucf101/demo."""
    from pipeline import demo
    output_dir = argv[argv.index("--output_dir") + 1]
    return dict(build_dir=os.path.join(output_dir, "records", "ucf101", demo.DEMO_CONFIG_NAME),
                splits={"train", "test"} | ({"val"} if demo.DEMO_VAL_FRACTION else set()),
                features=None)


def build_for(name: str, config) -> dict:
    """The documented build command that writes ``config.data.build_dir``."""
    doc = doc_of(name)
    plans = ([planned_build(argv) for argv in commands(doc, "pipeline.build")]
             + [planned_demo_build(argv) for argv in commands(doc, "pipeline.demo")])
    assert plans, f"{name}: the docstring gives no build command"
    matching = [p for p in plans if p["build_dir"] == config.data.build_dir]
    assert matching, (f"{name}: no documented build command writes {config.data.build_dir}; "
                      f"they write {[p['build_dir'] for p in plans]}")
    return matching[0]


def input_shape(config, features: int | None) -> tuple:
    """As trainers.data.input_shape, from the config (and the build's feature count) alone."""
    d = config.data
    if d.modality == "keypoints":
        return (d.window, features)
    size = (d.crop_size, d.crop_size)
    return size + (3,) if d.modality == "image" else (d.num_frames,) + size + (3,)


def model_knobs(config) -> dict:
    """config.model as plain data, weights forced to None where the family has the knob."""
    knobs = copy.deepcopy(config.model.to_dict())
    if "weights" in models.merged_config(config.model_name, config.model):
        knobs["weights"] = None
    return knobs


@pytest.mark.parametrize("arg", ARGS, ids=["full", "runlocal"])
@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_config_is_locked_and_complete(name, arg):
    config = load(name, arg)
    assert isinstance(config, ml_collections.ConfigDict) and config.is_locked
    with pytest.raises(AttributeError):
        config.train.batch_sise = 8          # a typo in an override fails
    with pytest.raises(AttributeError):
        config.extra = 1
    assert set(config) == {"data", "model_name", "model", "train"}
    # Exactly the common keys: a misspelt key in data=/train= would otherwise be a new one.
    assert set(config.data) == set(common.DATA_DEFAULTS)
    assert set(config.train) == set(common.TRAIN_DEFAULTS)


@pytest.mark.parametrize("arg", ARGS, ids=["full", "runlocal"])
@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_config_values_are_valid(name, arg):
    config = load(name, arg)
    d, t = config.data, config.train
    assert config.model_name in models.available()
    assert d.modality == models.modality(config.model_name)
    assert d.sampling in reader.SAMPLINGS
    assert d.short in reader.SHORT_POLICIES + ("error",)
    assert d.crop in reader.CROPS
    assert d.target in ("frames", "clip")
    if config.model_name == "keypoint_rnn":
        assert d.target == "frames", "keypoint_rnn predicts one label per frame"
    assert d.num_classes > 0, "a config names its dataset's class count"
    assert d.num_frames > 0 and d.crop_size > 0 and d.window > 0 and d.stride > 0
    assert d.train_split != d.eval_split
    assert d.num_test_crops in (1, 3) and d.num_test_clips >= 1
    if d.flip_label_swap:
        assert d.flip, "flip_label_swap without flip is refused by the reader"
    assert t.optimizer in OPTIMIZERS
    assert t.schedule in SCHEDULES
    assert t.precision in train.PRECISIONS
    assert t.class_weights in ("none", "balanced")
    assert t.overwrite is False, "a config must not delete a workdir's outputs by itself"
    assert t.monitor_mode in ("min", "max") and t.monitor.startswith("val_")
    assert t.batch_size > 0 and t.epochs > 0 and t.learning_rate > 0
    if arg == "runlocal":
        assert (t.epochs, t.steps_per_epoch, t.batch_size) == (2, 2, 2)
        merged = models.merged_config(config.model_name, config.model)
        assert merged.get("weights") is None, "runlocal must not download weights"


@pytest.mark.parametrize("arg", ARGS, ids=["full", "runlocal"])
@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_docstring_commands_make_the_build_and_train(name, arg):
    config = load(name, arg)
    doc = doc_of(name)
    assert f"python -m trainers.train --config configs/{name}.py" in doc
    if not commands(doc, "pipeline.demo"):
        assert "python -m pipeline.build" in doc
    build = build_for(name, config)
    assert {config.data.train_split, config.data.eval_split} <= build["splits"]
    if build["features"] is not None:
        assert f"{build['features']} features" in doc, "document the keypoint feature count"


@pytest.mark.parametrize("arg", ARGS, ids=["full", "runlocal"])
@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_model_builds(name, arg):
    config = load(name, arg)
    shape = input_shape(config, build_for(name, config)["features"])
    classes = config.data.num_classes
    keras.backend.clear_session()
    model = models.build_model(config.model_name, model_knobs(config), input_shape=shape,
                               num_classes=classes)
    assert tuple(model.input_shape) == (None,) + shape
    if config.data.modality == "keypoints":
        binary = data.binary_frame_output(config, {"classes": [""] * classes})
        assert tuple(model.output_shape) == (None, shape[0], 1 if binary else classes)
    else:
        assert tuple(model.output_shape) == (None, classes)
    keras.backend.clear_session()


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_unknown_argument_raises(name):
    with pytest.raises(ValueError, match="runlocal"):
        load(name, "runlokal")


# Each config names its family's variant and changes only what its docstring says.
VARIANTS = [
    ("gesture_cnn_gru", "gesture", {}),
    ("gesture_conv3d", "gesture", {}),
    ("gesture_mobilenet_gru", "mobilenet_gru", {}),
    ("gesture_mobilenet_lstm", "mobilenet_gru", {"rnn": "lstm"}),
    ("ucf101_resnet152v2_lstm", "resnet152v2_lstm", {}),
    ("ucf101_resnet152v2_gru", "resnet152v2_lstm", {"rnn": "gru"}),
    ("hmdb51_resnet152v2_lstm", "resnet152v2_lstm", {}),
    ("keypoint_lstm_bilstm_ensemble", "ensemble", {}),
    ("image_efficientnetb3", "efficientnet", {}),
]


def _plain(value):
    """ConfigDicts (also inside tuples) as plain dicts, for comparison."""
    if isinstance(value, ml_collections.ConfigDict):
        value = value.to_dict()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return tuple(_plain(v) for v in value)
    return value


@pytest.mark.parametrize("name,variant,changes", VARIANTS)
def test_config_is_the_named_variant(name, variant, changes):
    config = load(name)
    assert config.model.variant == variant
    built = models.merged_config(config.model_name, config.model)   # what build_model builds
    expected = models.default_config(config.model_name, variant)
    expected.update(changes)
    assert _plain(built) == _plain(expected)


def test_every_config_is_covered():
    assert {"demo_cnn_gru", *(name for name, _, _ in VARIANTS)} <= set(CONFIG_NAMES)
