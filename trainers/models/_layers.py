"""Layers and checks shared by the families (a helper module, not a family)."""
from __future__ import annotations

from typing import Sequence

import keras
import ml_collections


@keras.saving.register_keras_serializable(package="actionflow")
class FrameWise(keras.layers.TimeDistributed):
    """``TimeDistributed`` that runs its layer once over every frame of the batch.

    Keras 3's ``TimeDistributed`` unrolls a static time axis: its layer is called once per
    frame, so a 16-frame clip puts 16 copies of a backbone into the graph (tracing a
    ResNet152V2 that way takes minutes) and runs 16 small batches. Here the frames are
    folded into the batch, ``(B, T, ...) → (B*T, ...)``, the layer runs once and the
    result is unfolded, as Keras 2's ``TimeDistributed`` did. Same weights and outputs
    (a BatchNormalization inside sees the B*T frames of a step as one batch, again as in
    Keras 2); checkpoints of either class load into the same network.
    """

    def call(self, inputs, training=None, mask=None):
        if mask is not None or any(d is None for d in inputs.shape[2:]):
            return super().call(inputs, training=training, mask=mask)
        kwargs = {"training": training} if self.layer._call_has_training_arg else {}
        shape = keras.ops.shape(inputs)
        frames = keras.ops.reshape(inputs, (-1, *inputs.shape[2:]))
        outputs = self.layer.call(frames, **kwargs)
        return keras.ops.reshape(outputs, (shape[0], shape[1], *outputs.shape[1:]))


def locked(**fields) -> ml_collections.ConfigDict:
    """A locked ConfigDict from keyword fields (typos in overrides then fail)."""
    config = ml_collections.ConfigDict(fields)
    config.lock()
    return config


def check_variant(variant: str | None, variants: Sequence[str]) -> str:
    """Returns ``variant`` (None = the first one) or raises ValueError listing ``variants``."""
    if variant is None:
        return variants[0]
    if variant not in variants:
        raise ValueError(f"unknown variant {variant!r}; available: {', '.join(variants)}")
    return variant


def check_input_shape(input_shape: tuple, rank: int, what: str) -> tuple:
    """Returns ``input_shape`` as a tuple if it has ``rank`` dimensions, else ValueError."""
    input_shape = tuple(input_shape)
    if len(input_shape) != rank:
        raise ValueError(f"input_shape must be {what} ({rank} dimensions, no batch), "
                         f"got {input_shape}")
    return input_shape


def check_same_length(config: ml_collections.ConfigDict, a: str, b: str) -> None:
    """ValueError unless ``config[a]`` and ``config[b]`` have the same length."""
    if len(config[a]) != len(config[b]):
        raise ValueError(f"{a} and {b} need one entry per layer, got {tuple(config[a])} "
                         f"and {tuple(config[b])}")


def uint8_input(input_shape: tuple, scale: float, offset: float):
    """A uint8 ``keras.Input`` and its float rescaled tensor ``x * scale + offset``.

    Rescaling casts to the layer's compute dtype first (float16/bfloat16 under a
    mixed policy; 0..255 are exact in both), so the cast happens on the device.
    """
    inputs = keras.Input(shape=input_shape, dtype="uint8", name="inputs")
    return inputs, keras.layers.Rescaling(scale, offset=offset, name="rescale")(inputs)


def recurrent(kind: str, units: int, **kwargs) -> keras.layers.Layer:
    """A ``keras.layers.GRU`` (kind "gru") or ``LSTM`` (kind "lstm")."""
    layers = {"gru": keras.layers.GRU, "lstm": keras.layers.LSTM}
    if kind not in layers:
        raise ValueError(f"rnn must be one of {sorted(layers)}, got {kind!r}")
    return layers[kind](units, **kwargs)


def dense_stack(x, units: Sequence[int], dropouts: Sequence[float], activation: str,
                time_distributed: bool = False, name: str = "dense"):
    """Dense(units[i], activation) each followed by Dropout(dropouts[i]) when it is > 0.

    With ``time_distributed`` each Dense is wrapped in ``FrameWise`` (same
    parameters, applied per frame).
    """
    for i, (n, rate) in enumerate(zip(units, dropouts)):
        if time_distributed:
            x = FrameWise(keras.layers.Dense(n, activation=activation), name=f"{name}_{i}")(x)
        else:
            x = keras.layers.Dense(n, activation=activation, name=f"{name}_{i}")(x)
        if rate:
            x = keras.layers.Dropout(rate, name=f"{name}_{i}_dropout")(x)
    return x


def classifier(x, num_classes: int, activation: str = "softmax", time_distributed: bool = False):
    """The output layer, named "predictions": a Dense computed in float32 (mixed-precision safe)."""
    if time_distributed:
        return FrameWise(
            keras.layers.Dense(num_classes, activation=activation, dtype="float32"),
            dtype="float32", name="predictions")(x)
    return keras.layers.Dense(num_classes, activation=activation, dtype="float32",
                              name="predictions")(x)
