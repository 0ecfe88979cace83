"""A keras.applications backbone applied per frame, then a GRU or LSTM and a dense head.

    uint8 clip → Rescaling (the backbone's preprocess_input: x/127.5 - 1, or none for EfficientNet)
    → TimeDistributed backbone (include_top=False)
    → [TimeDistributed BatchNorm] → [TimeDistributed MaxPool2D(pool_size)] → [Dropout]
    → TimeDistributed Flatten | GlobalMaxPool2D | GlobalAveragePool2D
    → GRU/LSTM → [Dropout] → [Dense relu → Dropout]… → Dense num_classes softmax (float32)

Variants of ``default_config``:

* "mobilenet_gru" (default), the gesture network: MobileNet (alpha 1.0) →
  BatchNorm → MaxPool 2×2 → Dropout 0.3 → Flatten → GRU(16) → Dropout 0.35 →
  Dense 64 relu → Dropout 0.4 → Dense 5. On 11×100×100×3 the backbone's map is
  3×3×1024, pooled to 1×1×1024: 3,284,389 parameters, 23,936 non-trainable
  (MobileNet 3,228,864 of which 21,888 BN statistics; BatchNorm 4,096 of which
  2,048; GRU 50,016; Dense 1,088 and 325).
* "resnet152v2_lstm", the UCF101 network: ResNet152V2 → GlobalMaxPool → LSTM(128)
  → Dense 1024 → Dropout 0.5 → Dense 512 → Dense 128 → Dropout 0.5 → Dense 64 →
  Dense 64 (all relu) → Dense num_classes softmax.

``weights``: "imagenet" (Keras downloads it; needs internet), the path of a
local weights file of the backbone alone (``.weights.h5`` from
``backbone.save_weights``, the Keras 2 ``.h5`` files keras.applications
downloads, or ``.keras``), or None (random initialisation).
"""
from __future__ import annotations

import keras
import ml_collections

from trainers.models import _backbones, _layers

VARIANTS = ("mobilenet_gru", "resnet152v2_lstm")

MODALITY = "video"   # the records it trains on: uint8 clips [T, H, W, 3]


def default_config(variant: str | None = None) -> ml_collections.ConfigDict:
    """The knobs; ``variant`` is one of VARIANTS (None: "mobilenet_gru")."""
    variant = _layers.check_variant(variant, VARIANTS)
    config = _layers.locked(
        backbone="MobileNet",      # MobileNet | MobileNetV2 | ResNet152V2 | EfficientNetB3
        weights="imagenet",        # "imagenet" | local weights file of the backbone | None
        alpha=None,                # MobileNet/MobileNetV2 width multiplier (None: 1.0)
        trainable_last_n=None,     # train only the last n backbone.layers (None: all, 0: none)
        feature_batch_norm=True,   # TimeDistributed BatchNormalization on the feature map
        pool_size=2,               # TimeDistributed MaxPool2D window on the map (0: none)
        feature_dropout=0.3,       # Dropout on the feature map (0: none)
        pooling="flatten",         # per-frame vector: "flatten" | "max" | "avg" (global)
        rnn="gru",                 # "gru" | "lstm"
        rnn_units=16,
        rnn_dropout=0.35,          # after the recurrent layer (0: none)
        dense_units=(64,),         # dense head after the recurrent layer
        dense_dropouts=(0.4,),     # Dropout after each dense layer (0.0: none), same length
        dense_activation="relu",
        output_activation="softmax",
    )
    if variant == "resnet152v2_lstm":
        config.update(dict(
            backbone="ResNet152V2", feature_batch_norm=False, pool_size=0, feature_dropout=0.0,
            pooling="max", rnn="lstm", rnn_units=128, rnn_dropout=0.0,
            dense_units=(1024, 512, 128, 64, 64), dense_dropouts=(0.5, 0.0, 0.5, 0.0, 0.0)))
    return config


def build(config: ml_collections.ConfigDict, *, input_shape: tuple,
          num_classes: int) -> keras.Model:
    """Builds the model for uint8 clips of ``input_shape`` = (T, H, W, C).

    The TimeDistributed backbone is the layer named "backbone"
    (``model.get_layer("backbone").layer`` is the keras.applications model).
    """
    input_shape = _layers.check_input_shape(input_shape, 4, "(frames, height, width, channels)")
    _layers.check_same_length(config, "dense_units", "dense_dropouts")
    backbone = _backbones.make(config.backbone, input_shape=input_shape[1:],
                               weights=config.weights, alpha=config.alpha)
    _backbones.set_trainable_last_n(backbone, config.trainable_last_n)
    scale, offset = _backbones.PREPROCESS[config.backbone]
    inputs, x = _layers.uint8_input(input_shape, scale, offset)
    td = _layers.FrameWise          # TimeDistributed, the frames folded into the batch
    x = td(backbone, name="backbone")(x)
    if config.feature_batch_norm:
        x = td(keras.layers.BatchNormalization(), name="feature_bn")(x)
    if config.pool_size:
        x = td(keras.layers.MaxPooling2D(config.pool_size), name="feature_pool")(x)
    if config.feature_dropout:
        x = keras.layers.Dropout(config.feature_dropout, name="feature_dropout")(x)
    reducers = {"flatten": keras.layers.Flatten, "max": keras.layers.GlobalMaxPooling2D,
                "avg": keras.layers.GlobalAveragePooling2D}
    if config.pooling not in reducers:
        raise ValueError(f"pooling must be one of {sorted(reducers)}, got {config.pooling!r}")
    x = td(reducers[config.pooling](), name="features")(x)
    x = _layers.recurrent(config.rnn, config.rnn_units, name="rnn")(x)
    if config.rnn_dropout:
        x = keras.layers.Dropout(config.rnn_dropout, name="rnn_dropout")(x)
    x = _layers.dense_stack(x, config.dense_units, config.dense_dropouts,
                            config.dense_activation)
    outputs = _layers.classifier(x, num_classes, config.output_activation)
    return keras.Model(inputs, outputs, name="transfer_rnn")
