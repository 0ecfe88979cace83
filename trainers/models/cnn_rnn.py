"""A small 2D CNN applied per frame (TimeDistributed), then a GRU or LSTM.

The default config is the smart-TV gesture network: on 11×100×100×3 clips
and 5 classes it has exactly 65,221 parameters::

    uint8 clip → Rescaling(1/255)
    → [TimeDistributed Conv2D(f, 3×3, relu, valid) → TimeDistributed MaxPool2D(2×2)] for f in 8, 16, 16, 32
    → TimeDistributed Flatten → TimeDistributed Dense 64 relu → TimeDistributed Dense 128 relu
    → Dropout 0.3 → GRU(32) → Dropout 0.5 → Dense num_classes softmax (float32)

(100 → 98 → 49 → 47 → 23 → 21 → 10 → 8 → 4: 4·4·32 = 512 features per frame.)
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
        filters=(8, 16, 16, 32),  # one Conv2D + MaxPool2D block per entry
        kernel_size=3,
        padding="valid",          # of the convolutions ("valid" | "same")
        pool_size=2,
        conv_activation="relu",
        dense_units=(64, 128),    # per-frame Dense layers after Flatten
        dense_activation="relu",
        dropout=0.3,              # before the recurrent layer (0: none)
        rnn="gru",                # "gru" | "lstm"
        rnn_units=32,
        rnn_dropout=0.5,          # after the recurrent layer (0: none)
        output_activation="softmax",
    )


def build(config: ml_collections.ConfigDict, *, input_shape: tuple,
          num_classes: int) -> keras.Model:
    """Builds the model for uint8 clips of ``input_shape`` = (T, H, W, C)."""
    input_shape = _layers.check_input_shape(input_shape, 4, "(frames, height, width, channels)")
    inputs, x = _layers.uint8_input(input_shape, config.input_scale, config.input_offset)
    td = _layers.FrameWise          # TimeDistributed, the frames folded into the batch
    for i, filters in enumerate(config.filters):
        x = td(keras.layers.Conv2D(filters, config.kernel_size, padding=config.padding,
                                   activation=config.conv_activation), name=f"conv_{i}")(x)
        x = td(keras.layers.MaxPooling2D(config.pool_size), name=f"pool_{i}")(x)
    x = td(keras.layers.Flatten(), name="flatten")(x)
    x = _layers.dense_stack(x, config.dense_units, [0.0] * len(config.dense_units),
                            config.dense_activation, time_distributed=True, name="frame_dense")
    if config.dropout:
        x = keras.layers.Dropout(config.dropout, name="rnn_input_dropout")(x)
    x = _layers.recurrent(config.rnn, config.rnn_units, name="rnn")(x)
    if config.rnn_dropout:
        x = keras.layers.Dropout(config.rnn_dropout, name="rnn_dropout")(x)
    outputs = _layers.classifier(x, num_classes, config.output_activation)
    return keras.Model(inputs, outputs, name="cnn_rnn")
