"""A small 3D CNN for gesture clips.

    uint8 clip → Rescaling(1/255)
    → [Conv3D(f, k, same, no bias) → BatchNorm → ReLU → MaxPool3D(pool, same)] for f in filters
    → Flatten (or global average/max pooling) → [Dense units relu → Dropout] → Dense num_classes softmax (float32)

Pooling uses "same" padding, so short clips keep at least one frame.
"""
from __future__ import annotations

import keras
import ml_collections

from trainers.models import _layers

MODALITY = "video"   # the records it trains on: uint8 clips [T, H, W, 3]


def default_config(variant: str | None = None) -> ml_collections.ConfigDict:
    """The knobs (one variant, "gesture")."""
    _layers.check_variant(variant, ("gesture",))
    return _layers.locked(
        input_scale=1.0 / 255,   # uint8 pixels x → x * input_scale + input_offset
        input_offset=0.0,
        filters=(16, 32, 64, 128),  # one Conv3D block per entry
        kernel_size=3,           # cubic kernel of every Conv3D
        pool_size=2,             # cubic MaxPool3D window and stride after every block
        batch_norm=True,         # BatchNorm after each Conv3D (the conv then has no bias)
        pooling="flatten",       # head input: "flatten" | "avg" | "max" (global pooling)
        dense_units=(128,),
        dropout=0.5,             # after every dense layer (0: none)
        output_activation="softmax",
    )


def build(config: ml_collections.ConfigDict, *, input_shape: tuple,
          num_classes: int) -> keras.Model:
    """Builds the model for uint8 clips of ``input_shape`` = (T, H, W, C)."""
    input_shape = _layers.check_input_shape(input_shape, 4, "(frames, height, width, channels)")
    inputs, x = _layers.uint8_input(input_shape, config.input_scale, config.input_offset)
    for i, filters in enumerate(config.filters):
        x = keras.layers.Conv3D(filters, config.kernel_size, padding="same",
                                use_bias=not config.batch_norm, name=f"conv_{i}")(x)
        if config.batch_norm:
            x = keras.layers.BatchNormalization(name=f"conv_{i}_bn")(x)
        x = keras.layers.Activation("relu", name=f"conv_{i}_relu")(x)
        x = keras.layers.MaxPooling3D(config.pool_size, padding="same", name=f"pool_{i}")(x)
    heads = {"flatten": keras.layers.Flatten, "avg": keras.layers.GlobalAveragePooling3D,
             "max": keras.layers.GlobalMaxPooling3D}
    if config.pooling not in heads:
        raise ValueError(f"pooling must be one of {sorted(heads)}, got {config.pooling!r}")
    x = heads[config.pooling](name="features")(x)
    x = _layers.dense_stack(x, config.dense_units, [config.dropout] * len(config.dense_units),
                            "relu")
    outputs = _layers.classifier(x, num_classes, config.output_activation)
    return keras.Model(inputs, outputs, name="conv3d")
