"""A keras.applications image classifier with a regularised dense head.

    uint8 image → (the backbone's preprocessing; EfficientNet normalises inside itself)
    → EfficientNetB3(include_top=False, pooling="max") → BatchNormalization
    → Dense 256 relu (kernel L2 0.016, activity L1 0.006, bias L1 0.006) → Dropout 0.4
    → Dense num_classes softmax (float32)

``train_defaults`` carries what the recipe trains with (Adamax, learning rate
0.001); the trainer may read them, the model does not.
"""
from __future__ import annotations

import keras
import ml_collections

from trainers.models import _backbones, _layers

MODALITY = "image"   # the records it trains on: uint8 images [H, W, 3]


def default_config(variant: str | None = None) -> ml_collections.ConfigDict:
    """The knobs (one variant, "efficientnet")."""
    _layers.check_variant(variant, ("efficientnet",))
    return _layers.locked(
        backbone="EfficientNetB3",  # any of trainers.models._backbones.PREPROCESS
        weights="imagenet",         # "imagenet" | local weights file of the backbone | None
        alpha=None,                 # MobileNet/MobileNetV2 width multiplier (None: 1.0)
        trainable_last_n=None,      # train only the last n backbone.layers (None: all, 0: none)
        backbone_pooling="max",     # global pooling inside the backbone: "max" | "avg"
        batch_norm=True,            # BatchNormalization on the pooled features
        dense_units=256,
        dense_activation="relu",
        kernel_l2=0.016,            # regularisers of the dense layer (0: none)
        activity_l1=0.006,
        bias_l1=0.006,
        dropout=0.4,                # after the dense layer (0: none)
        output_activation="softmax",
        train_defaults=dict(optimizer="adamax", learning_rate=0.001),
    )


def build(config: ml_collections.ConfigDict, *, input_shape: tuple,
          num_classes: int) -> keras.Model:
    """Builds the model for uint8 images of ``input_shape`` = (H, W, C).

    The backbone is the layer named after the keras.applications model
    (e.g. "efficientnetb3"); ``model.layers[2]``.
    """
    input_shape = _layers.check_input_shape(input_shape, 3, "(height, width, channels)")
    backbone = _backbones.make(config.backbone, input_shape=input_shape, weights=config.weights,
                               alpha=config.alpha, pooling=config.backbone_pooling)
    _backbones.set_trainable_last_n(backbone, config.trainable_last_n)
    scale, offset = _backbones.PREPROCESS[config.backbone]
    inputs, x = _layers.uint8_input(input_shape, scale, offset)
    x = backbone(x)
    if config.batch_norm:
        x = keras.layers.BatchNormalization(name="feature_bn")(x)
    regularizers = keras.regularizers
    x = keras.layers.Dense(
        config.dense_units, activation=config.dense_activation, name="dense",
        kernel_regularizer=regularizers.L2(config.kernel_l2) if config.kernel_l2 else None,
        activity_regularizer=regularizers.L1(config.activity_l1) if config.activity_l1 else None,
        bias_regularizer=regularizers.L1(config.bias_l1) if config.bias_l1 else None)(x)
    if config.dropout:
        x = keras.layers.Dropout(config.dropout, name="dropout")(x)
    outputs = _layers.classifier(x, num_classes, config.output_activation)
    return keras.Model(inputs, outputs, name="image_classifier")
