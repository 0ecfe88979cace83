"""trainers.models: the registry, every family's shapes and dtypes, exact parameter counts.

Expected counts are computed here from layer formulas (Dense: i·o + o; LSTM:
4·(i·u + u·u + u); GRU, reset_after: 3·(i·u + u·u + 2u); BatchNorm: 4·c, of
which 2·c non-trainable), independently of the code under test. Backbone
counts are the published keras.applications no-top figures. Nothing is
downloaded: every transfer backbone is built with weights=None or a local file.
"""
from __future__ import annotations

import keras
import ml_collections
import numpy as np
import pytest

from trainers import models

FAMILIES = ["cnn_rnn", "conv3d", "image_classifier", "keypoint_rnn", "transfer_rnn"]

# keras.applications, include_top=False: (total, non-trainable) parameters.
RESNET152V2_NO_TOP = (58_331_648, 143_744)
EFFICIENTNETB3_NO_TOP = (10_783_535, 87_303)


def dense(i, o):
    return i * o + o


def lstm(i, u):
    return 4 * (i * u + u * u + u)


def gru(i, u):
    return 3 * (i * u + u * u + 2 * u)


def counts(model):
    """(total, trainable, non-trainable) parameters."""
    size = lambda weights: sum(int(np.prod(w.shape)) for w in weights)
    return model.count_params(), size(model.trainable_weights), size(model.non_trainable_weights)


@pytest.fixture(autouse=True)
def float32_policy():
    """Every test starts and ends under the float32 policy, with fixed seeds."""
    keras.mixed_precision.set_global_policy("float32")
    keras.utils.set_random_seed(0)
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.fixture(scope="module")
def resnet_lstm():
    """The UCF101 ResNet152V2 → LSTM network on 16×112×112×3, 101 classes (built once)."""
    keras.mixed_precision.set_global_policy("float32")
    config = models.default_config("transfer_rnn", "resnet152v2_lstm")
    config.weights = None
    return models.build_model("transfer_rnn", config, input_shape=(16, 112, 112, 3),
                              num_classes=101)


@pytest.fixture(scope="module")
def efficientnet_classifier():
    """The EfficientNetB3 image classifier on 32×32×3, 7 classes (built once)."""
    keras.mixed_precision.set_global_policy("float32")
    return models.build_model("image_classifier", {"weights": None}, input_shape=(32, 32, 3),
                              num_classes=7)


def small_mobilenet(**changes):
    """transfer_rnn with MobileNet alpha 0.25 on 2×64×64×3 clips (2×2×256 map), 3 classes."""
    return models.build_model("transfer_rnn", {"weights": None, "alpha": 0.25, **changes},
                              input_shape=(2, 64, 64, 3), num_classes=3)


# ----------------------------------------------------------------------------- registry


def test_available_lists_every_family_module():
    assert models.available() == FAMILIES


def test_unknown_family_names_the_available_ones():
    message = ("unknown model family 'resnet'; available: cnn_rnn, conv3d, image_classifier, "
               "keypoint_rnn, transfer_rnn")
    with pytest.raises(ValueError) as error:
        models.build_model("resnet", None, input_shape=(4, 32, 32, 3), num_classes=2)
    assert str(error.value) == message
    with pytest.raises(ValueError, match="available: cnn_rnn, conv3d"):
        models.default_config("resnet")


def test_every_family_declares_its_modality():
    expected = {"cnn_rnn": "video", "conv3d": "video", "transfer_rnn": "video",
                "image_classifier": "image", "keypoint_rnn": "keypoints"}
    assert models.MODALITIES == ("video", "image", "keypoints")
    for name in models.available():
        declared = models.family(name).MODALITY
        assert declared in models.MODALITIES, name
        assert models.modality(name) == declared == expected[name]
    with pytest.raises(ValueError, match="unknown model family 'resnet'; available: cnn_rnn"):
        models.modality("resnet")


@pytest.mark.parametrize("name", FAMILIES)
def test_default_configs_are_locked(name):
    config = models.default_config(name)
    with pytest.raises(AttributeError):
        config.not_a_knob = 1
    with pytest.raises(ValueError, match="unknown variant 'nope'; available: "):
        models.default_config(name, "nope")


def test_build_model_merges_partial_config_and_refuses_typos():
    model = models.build_model("cnn_rnn", {"rnn": "lstm", "rnn_units": 8},
                               input_shape=(3, 46, 46, 3), num_classes=4)
    rnn = model.get_layer("rnn")
    assert (type(rnn).__name__, rnn.units, model.output.shape) == ("LSTM", 8, (None, 4))
    with pytest.raises(KeyError, match="rnn_unit"):
        models.build_model("cnn_rnn", {"rnn_unit": 8}, input_shape=(3, 46, 46, 3), num_classes=4)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match=r"input_shape must be \(frames, height, width, channels\)"):
        models.build_model("cnn_rnn", None, input_shape=(46, 46, 3), num_classes=4)
    with pytest.raises(ValueError, match="alpha is only for MobileNet, MobileNetV2, not ResNet152V2"):
        models.build_model("transfer_rnn", {"backbone": "ResNet152V2", "weights": None,
                                            "alpha": 0.5}, input_shape=(2, 64, 64, 3),
                           num_classes=3)
    with pytest.raises(ValueError, match="unknown backbone 'VGG16'"):
        small_mobilenet(backbone="VGG16")
    with pytest.raises(ValueError, match="dense_units and dense_dropouts need one entry per layer"):
        small_mobilenet(dense_units=(64, 32))
    with pytest.raises(ValueError, match="rnn must be one of"):
        small_mobilenet(rnn="rnn")


# ----------------------------------------------------------------------------- every family

# name, config changes, input shape, output shape for a batch of 2 and 3 classes
SMALL = [
    ("cnn_rnn", {}, (2, 46, 46, 3), (2, 3)),
    ("conv3d", {}, (4, 16, 16, 3), (2, 3)),
    ("image_classifier", {"weights": None}, (32, 32, 3), (2, 3)),
    ("keypoint_rnn", {}, (5, 6), (2, 5, 3)),
    ("transfer_rnn", {"weights": None, "alpha": 0.25}, (2, 64, 64, 3), (2, 3)),
]


@pytest.mark.parametrize("name,changes,input_shape,output_shape", SMALL,
                         ids=[row[0] for row in SMALL])
def test_mixed_float16_builds_and_outputs_float32(name, changes, input_shape, output_shape):
    keras.mixed_precision.set_global_policy("mixed_float16")
    model = models.build_model(name, changes, input_shape=input_shape, num_classes=3)
    if name == "conv3d":
        model.compile(jit_compile=True)  # TF has no float16 MaxPool3D kernel for CPU (GPU has)
    input_dtype = "float32" if name == "keypoint_rnn" else "uint8"
    assert model.inputs[0].dtype == input_dtype
    assert model.layers[-2].compute_dtype == "float16"
    assert model.get_layer("predictions").compute_dtype == "float32"
    x = np.random.RandomState(0).randint(0, 256, (2, *input_shape)).astype(input_dtype)
    y = model.predict(x, verbose=0)
    assert (model.output.dtype, y.dtype, y.shape) == ("float32", np.float32, output_shape)
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, atol=1e-3)  # softmax rows


@pytest.mark.parametrize("name,changes,scale,offset", [
    ("cnn_rnn", {}, 1 / 255, 0.0),
    ("conv3d", {}, 1 / 255, 0.0),
    ("transfer_rnn", {"weights": None, "alpha": 0.25}, 1 / 127.5, -1.0),  # MobileNet "tf" mode
])
def test_uint8_input_is_rescaled_inside_the_model(name, changes, scale, offset):
    model = models.build_model(name, changes, input_shape=(2, 64, 64, 3), num_classes=3)
    rescale = keras.Model(model.inputs, model.get_layer("rescale").output)
    x = np.zeros((1, 2, 64, 64, 3), np.uint8)
    x[0, 0, 0, 0] = (0, 128, 255)
    y = rescale.predict(x, verbose=0)
    np.testing.assert_allclose(y[0, 0, 0, 0], np.array([0, 128, 255]) * scale + offset,
                               rtol=1e-6, atol=1e-6)


def test_efficientnet_takes_raw_pixels(efficientnet_classifier):
    """EfficientNet rescales inside keras.applications: our layer only casts."""
    layer = efficientnet_classifier.get_layer("rescale")
    assert (layer.scale, layer.offset, efficientnet_classifier.inputs[0].dtype) == \
        (1.0, 0.0, "uint8")


@pytest.mark.parametrize("name,input_shape,y_shape,loss", [
    ("cnn_rnn", (3, 46, 46, 3), (4,), "sparse_categorical_crossentropy"),
    ("conv3d", (4, 16, 16, 3), (4,), "sparse_categorical_crossentropy"),
    ("keypoint_rnn", (6, 8), (4, 6, 1), "binary_crossentropy"),
])
def test_one_epoch_of_training_updates_the_weights(name, input_shape, y_shape, loss):
    num_classes = 2 if name == "keypoint_rnn" else 3
    model = models.build_model(name, None, input_shape=input_shape, num_classes=num_classes)
    model.compile(optimizer="adam", loss=loss)
    rng = np.random.RandomState(1)
    x = rng.randint(0, 256, (4, *input_shape)).astype(model.inputs[0].dtype)
    y = rng.randint(0, num_classes, y_shape)
    before = {w.path: w.numpy().copy() for w in model.trainable_weights}
    history = model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    assert len(history.history["loss"]) == 1 and np.isfinite(history.history["loss"][0])
    unchanged = [w.path for w in model.trainable_weights if np.array_equal(before[w.path], w)]
    assert unchanged == [] and len(before) > 10


# ----------------------------------------------------------------------------- cnn_rnn, conv3d


def test_cnn_rnn_default_is_the_gesture_network_with_65221_parameters():
    model = models.build_model("cnn_rnn", None, input_shape=(11, 100, 100, 3), num_classes=5)
    convs = sum(dense(3 * 3 * i, o) for i, o in [(3, 8), (8, 16), (16, 16), (16, 32)])
    expected = (convs + dense(4 * 4 * 32, 64) + dense(64, 128) + gru(128, 32) + dense(32, 5))
    assert expected == 65_221
    assert counts(model) == (65_221, 65_221, 0)
    assert model.get_layer("flatten").output.shape == (None, 11, 512)
    assert [model.get_layer(n).rate for n in ("rnn_input_dropout", "rnn_dropout")] == [0.3, 0.5]


def test_conv3d_default_parameter_count():
    model = models.build_model("conv3d", None, input_shape=(8, 32, 32, 3), num_classes=5)
    channels = [3, 16, 32, 64, 128]
    convs = sum(27 * i * o + 4 * o for i, o in zip(channels, channels[1:]))  # no bias; BN
    # same-padded pools: 8 → 4 → 2 → 1 → 1 frames, 32 → 16 → 8 → 4 → 2 pixels
    expected = convs + dense(1 * 2 * 2 * 128, 128) + dense(128, 5)
    assert counts(model) == (expected, expected - 2 * 240, 2 * 240)


# ----------------------------------------------------------------------------- transfer_rnn


def test_transfer_mobilenet_gru_reproduces_3284389_parameters():
    model = models.build_model("transfer_rnn", {"weights": None}, input_shape=(11, 100, 100, 3),
                               num_classes=5)
    assert model.get_layer("backbone").output.shape == (None, 11, 3, 3, 1024)
    assert model.get_layer("features").output.shape == (None, 11, 1024)
    assert counts(model) == (3_284_389, 3_284_389 - 23_936, 23_936)
    mobilenet = 3_228_864  # keras.applications.MobileNet(include_top=False), 21,888 BN stats
    head = 4 * 1024 + gru(1024, 16) + dense(16, 64) + dense(64, 5)
    assert mobilenet + head == 3_284_389


def test_transfer_resnet152v2_lstm_head(resnet_lstm):
    head = (lstm(2048, 128) + dense(128, 1024) + dense(1024, 512) + dense(512, 128)
            + dense(128, 64) + dense(64, 64) + dense(64, 101))
    total, non_trainable = RESNET152V2_NO_TOP[0] + head, RESNET152V2_NO_TOP[1]
    assert counts(resnet_lstm) == (total, total - non_trainable, non_trainable)
    assert resnet_lstm.get_layer("backbone").output.shape == (None, 16, 4, 4, 2048)
    assert resnet_lstm.get_layer("features").output.shape == (None, 16, 2048)
    assert [layer.rate for layer in resnet_lstm.layers if isinstance(layer, keras.layers.Dropout)] \
        == [0.5, 0.5]
    assert [layer.units for layer in resnet_lstm.layers if isinstance(layer, keras.layers.Dense)] \
        == [1024, 512, 128, 64, 64, 101]


@pytest.mark.parametrize("n", [None, 0, 5])
def test_trainable_last_n_freezes_all_but_the_last_n_backbone_layers(n):
    model = small_mobilenet(trainable_last_n=n)
    backbone = model.get_layer("backbone").layer
    flags = [layer.trainable for layer in backbone.layers]
    size = lambda weights: sum(int(np.prod(w.shape)) for w in weights)
    if n is None:
        assert all(flags)
        # MobileNet alpha 0.25 has 218,544 parameters; its BatchNorms hold these channels:
        bn_channels = (8 + (8 + 16) + (16 + 32) + (32 + 32) + (32 + 64) + (64 + 64) + (64 + 128)
                       + 5 * (128 + 128) + (128 + 256) + (256 + 256))
        assert size(backbone.trainable_weights) == 218_544 - 2 * bn_channels  # all but BN stats
        return
    assert flags == [False] * (len(flags) - n) + [True] * n
    trainable = [layer.name for layer in backbone.layers if layer.trainable]
    assert trainable == ["conv_dw_13_bn", "conv_dw_13_relu", "conv_pw_13", "conv_pw_13_bn",
                         "conv_pw_13_relu"][:n]
    # alpha 0.25: 256 channels; BN gamma and beta, the 1×1 conv (no bias)
    assert size(backbone.trainable_weights) == {0: 0, 5: 2 * 256 + 256 * 256 + 2 * 256}[n]
    head = 2 * 256 + gru(256, 16) + dense(16, 64) + dense(64, 3)  # BN γ, β of 256
    assert counts(model)[1] == size(backbone.trainable_weights) + head


@pytest.mark.parametrize("filename", ["backbone.weights.h5", "backbone.h5", "backbone.keras"])
def test_weights_load_from_a_local_file(tmp_path, filename):
    source = keras.applications.MobileNet(include_top=False, weights=None, alpha=0.25,
                                          input_shape=(64, 64, 3))
    for w in source.weights:  # BN statistics too, so every weight differs from a fresh build
        w.assign(np.random.RandomState(len(w.path)).normal(size=w.shape).astype("float32")
                 if "variance" not in w.path else np.full(w.shape, 2.0, "float32"))
    path = tmp_path / filename
    (source.save_weights if filename.endswith(".weights.h5") else source.save)(str(path))
    loaded = small_mobilenet(weights=str(path)).get_layer("backbone").layer
    fresh = small_mobilenet().get_layer("backbone").layer
    assert len(loaded.weights) == len(source.weights) == 135
    for want, got, other in zip(source.weights, loaded.weights, fresh.weights):
        np.testing.assert_array_equal(got.numpy(), want.numpy())
        assert not np.array_equal(other.numpy(), want.numpy())


# ----------------------------------------------------------------------------- keypoint_rnn


def test_keypoint_lstm_counts_and_framewise_sigmoid():
    model = models.build_model("keypoint_rnn", None, input_shape=(90, 30), num_classes=2)
    assert model.get_layer("lstm_0").count_params() == lstm(30, 180) == 151_920
    expected = (lstm(30, 180) + 2 * lstm(180, 180) + 3 * 4 * 180
                + dense(180, 180) + dense(180, 45) + dense(45, 1))
    assert counts(model) == (expected, expected - 3 * 2 * 180, 3 * 2 * 180)
    assert model.output.shape == (None, 90, 1)
    assert model.get_layer("predictions").layer.activation.__name__ == "sigmoid"
    assert [model.get_layer(f"lstm_{i}_dropout").rate for i in range(3)] == [0.2, 0.2, 0.5]
    assert [model.get_layer(f"lstm_{i}").recurrent_dropout for i in range(3)] == [0.2] * 3


@pytest.mark.parametrize("changes,num_classes,units,activation", [
    ({}, 4, 4, "softmax"),
    ({"output": "sigmoid"}, 4, 4, "sigmoid"),
    ({"binary_single_unit": False}, 2, 2, "sigmoid"),
    ({"output": "softmax"}, 2, 2, "softmax"),
])
def test_keypoint_output_choices(changes, num_classes, units, activation):
    model = models.build_model("keypoint_rnn", {"units": (8,), "dropouts": (0.2,), **changes},
                               input_shape=(7, 5), num_classes=num_classes)
    assert model.output.shape == (None, 7, units)
    assert model.get_layer("predictions").layer.activation.__name__ == activation


def test_keypoint_bilstm_doubles_the_recurrent_parameters():
    model = models.build_model("keypoint_rnn", models.default_config("keypoint_rnn", "bilstm"),
                               input_shape=(90, 30), num_classes=2)
    assert model.get_layer("bilstm_0").count_params() == 2 * 151_920
    assert model.get_layer("bilstm_1").output.shape == (None, 90, 360)


def test_keypoint_ensemble_is_the_weighted_mean_of_its_members():
    config = models.default_config("keypoint_rnn", "ensemble")
    config.update({"units": (16, 16), "dropouts": (0.2, 0.5), "dense_units": (8,)})
    model = models.build_model("keypoint_rnn", config, input_shape=(12, 30), num_classes=2)
    lstm_member, bilstm_member = model.get_layer("member_0"), model.get_layer("member_1")
    assert isinstance(bilstm_member.get_layer("bilstm_0"), keras.layers.Bidirectional)
    assert isinstance(lstm_member.get_layer("lstm_0"), keras.layers.LSTM)
    assert counts(model)[0] == counts(lstm_member)[0] + counts(bilstm_member)[0]
    x = np.random.RandomState(2).uniform(size=(3, 12, 30)).astype("float32")
    a, b = lstm_member.predict(x, verbose=0), bilstm_member.predict(x, verbose=0)
    y = model.predict(x, verbose=0)
    assert y.shape == a.shape == (3, 12, 1)
    assert np.abs(a - b).max() > 1e-3  # the members differ, so the weights matter
    np.testing.assert_allclose(y, 0.8 * a + 0.2 * b, rtol=0, atol=1e-6)


def test_keypoint_ensemble_weights_are_normalised_and_members_checked():
    config = models.default_config("keypoint_rnn")
    config.update({"units": (4,), "dropouts": (0.0,), "dense_units": ()})
    config.ensemble = (ml_collections.ConfigDict({"weight": 3.0}),
                       ml_collections.ConfigDict({"weight": 1.0, "units": (6,)}))
    model = models.build_model("keypoint_rnn", config, input_shape=(5, 3), num_classes=3)
    assert [model.get_layer(f"member_{i}_weight").scale for i in (0, 1)] == [0.75, 0.25]
    config.ensemble = (ml_collections.ConfigDict({"weight": 1.0, "unit": (6,)}),)
    with pytest.raises(KeyError, match="unit"):
        models.build_model("keypoint_rnn", config, input_shape=(5, 3), num_classes=3)


# ----------------------------------------------------------------------------- image_classifier


def test_image_classifier_head_and_train_defaults(efficientnet_classifier):
    model = efficientnet_classifier
    head = 4 * 1536 + dense(1536, 256) + dense(256, 7)
    total, non_trainable = EFFICIENTNETB3_NO_TOP[0] + head, EFFICIENTNETB3_NO_TOP[1] + 2 * 1536
    assert counts(model) == (total, total - non_trainable, non_trainable)
    assert model.get_layer("efficientnetb3").output.shape == (None, 1536)  # pooling="max"
    layer = model.get_layer("dense")
    assert (layer.units, layer.activation.__name__) == (256, "relu")
    regularizers = [layer.kernel_regularizer, layer.activity_regularizer, layer.bias_regularizer]
    assert [type(r).__name__ for r in regularizers] == ["L2", "L1", "L1"]
    # Keras keeps L1 factors as float32
    assert [r.get_config() for r in regularizers] == [
        {"l2": pytest.approx(0.016, rel=1e-7)}, {"l1": pytest.approx(0.006, rel=1e-7)},
        {"l1": pytest.approx(0.006, rel=1e-7)}]
    assert model.get_layer("dropout").rate == 0.4
    defaults = models.default_config("image_classifier").train_defaults
    assert (defaults.optimizer, defaults.learning_rate) == ("adamax", 0.001)


# ----------------------------------------------------------------------------- saving


@pytest.mark.parametrize("name,changes,input_shape", [
    ("cnn_rnn", {}, (2, 46, 46, 3)),
    ("keypoint_rnn", {"units": (8,), "dropouts": (0.2,), "dense_units": (4,),
                      "ensemble": models.default_config("keypoint_rnn", "ensemble").ensemble},
     (5, 4)),
    ("transfer_rnn", {"weights": None, "alpha": 0.25, "trainable_last_n": 5}, (2, 64, 64, 3)),
])
def test_keras_file_round_trip_needs_no_custom_objects(tmp_path, name, changes, input_shape):
    model = models.build_model(name, changes, input_shape=input_shape, num_classes=3)
    model.save(tmp_path / "model.keras")
    restored = keras.models.load_model(tmp_path / "model.keras")
    x = np.random.RandomState(3).randint(0, 256, (2, *input_shape)).astype(model.inputs[0].dtype)
    np.testing.assert_array_equal(restored.predict(x, verbose=0), model.predict(x, verbose=0))
    assert counts(restored) == counts(model)
