"""Stacked (Bi)LSTM over keypoint windows with one prediction per frame, and ensembles of them.

    float keypoints [T, F] (already normalised to [0, 1] by the reader)
    → [LSTM(180, return_sequences, recurrent_dropout 0.2) → Dropout → BatchNorm] × 3 (dropouts 0.2, 0.2, 0.5)
    → TimeDistributed Dense 180 relu → TimeDistributed Dense 45 relu
    → TimeDistributed Dense output (float32): [B, T, 1] sigmoid when num_classes <= 2,
      else [B, T, num_classes] softmax (``output``).

``bidirectional`` wraps every LSTM in Bidirectional (concatenated directions).

An ensemble is the same family: a non-empty ``ensemble`` tuple of member
ConfigDicts, each with a ``weight`` and any knobs of this config it changes
(e.g. ``bidirectional=True``); the members share the input and the model's
output is their weighted mean ``sum(w_i * out_i) / sum(w_i)``, one Keras
model. Member i is the nested model layer "member_i". Variant "ensemble" is
0.8 × LSTM + 0.2 × BiLSTM.
"""
from __future__ import annotations

import copy

import keras
import ml_collections

from trainers.models import _layers

VARIANTS = ("lstm", "bilstm", "ensemble")

MODALITY = "keypoints"   # the records it trains on: float32 keypoint windows [W, F]


def default_config(variant: str | None = None) -> ml_collections.ConfigDict:
    """The knobs; ``variant`` is one of VARIANTS (None: "lstm")."""
    variant = _layers.check_variant(variant, VARIANTS)
    config = _layers.locked(
        units=(180, 180, 180),        # one LSTM (return_sequences) per entry
        recurrent_dropout=0.2,        # inside every LSTM (disables the cuDNN kernel on GPU)
        dropouts=(0.2, 0.2, 0.5),     # Dropout after each LSTM (0.0: none), same length as units
        batch_norm=True,              # BatchNormalization after each LSTM's dropout
        bidirectional=False,          # wrap each LSTM in Bidirectional (concat)
        dense_units=(180, 45),        # TimeDistributed Dense relu layers before the output
        output="auto",                # "auto": sigmoid if num_classes <= 2 else softmax;
                                      # "sigmoid" | "softmax" force it
        binary_single_unit=True,      # sigmoid with num_classes <= 2 → 1 unit (else num_classes)
        ensemble=(),                  # member ConfigDicts: weight + changed knobs; () = one model
    )
    if variant == "bilstm":
        config.bidirectional = True
    elif variant == "ensemble":
        config.ensemble = (ml_collections.ConfigDict(dict(weight=0.8)),
                           ml_collections.ConfigDict(dict(weight=0.2, bidirectional=True)))
    return config


def _output_layer(config, num_classes: int):
    """(units, activation) of the frame-wise output."""
    activation = config.output
    if activation == "auto":
        activation = "sigmoid" if num_classes <= 2 else "softmax"
    if activation not in ("sigmoid", "softmax"):
        raise ValueError(f"output must be 'auto', 'sigmoid' or 'softmax', got {config.output!r}")
    single = activation == "sigmoid" and num_classes <= 2 and config.binary_single_unit
    return (1 if single else num_classes), activation


def _single(config, input_shape: tuple, num_classes: int, name: str) -> keras.Model:
    """One stacked (Bi)LSTM model."""
    _layers.check_same_length(config, "units", "dropouts")
    inputs = keras.Input(shape=input_shape, dtype="float32", name="inputs")
    x = inputs
    for i, (units, rate) in enumerate(zip(config.units, config.dropouts)):
        lstm = keras.layers.LSTM(units, return_sequences=True,
                                 recurrent_dropout=config.recurrent_dropout, name=f"lstm_{i}")
        if config.bidirectional:
            lstm = keras.layers.Bidirectional(lstm, name=f"bilstm_{i}")
        x = lstm(x)
        if rate:
            x = keras.layers.Dropout(rate, name=f"lstm_{i}_dropout")(x)
        if config.batch_norm:
            x = keras.layers.BatchNormalization(name=f"lstm_{i}_bn")(x)
    x = _layers.dense_stack(x, config.dense_units, [0.0] * len(config.dense_units), "relu",
                            time_distributed=True, name="frame_dense")
    units, activation = _output_layer(config, num_classes)
    outputs = _layers.classifier(x, units, activation, time_distributed=True)
    return keras.Model(inputs, outputs, name=name)


def _member_config(config, member) -> ml_collections.ConfigDict:
    """The parent config with the member's knobs applied (its ``weight`` removed)."""
    changes = dict(member)
    changes.pop("weight")
    if "ensemble" in changes:
        raise ValueError("ensemble members cannot be ensembles")
    member_config = copy.deepcopy(config)
    member_config.ensemble = ()
    member_config.update(changes)  # KeyError on a knob this family does not have
    return member_config


def build(config: ml_collections.ConfigDict, *, input_shape: tuple,
          num_classes: int) -> keras.Model:
    """Builds the model for float keypoint windows of ``input_shape`` = (T, F)."""
    input_shape = _layers.check_input_shape(input_shape, 2, "(frames, features)")
    if not config.ensemble:
        return _single(config, input_shape, num_classes, "keypoint_rnn")
    if any("weight" not in member for member in config.ensemble):
        raise ValueError("every ensemble member needs a weight")
    weights = [float(member["weight"]) for member in config.ensemble]
    if min(weights) < 0 or sum(weights) <= 0:
        raise ValueError(f"ensemble weights must be >= 0 with a positive sum, got {weights}")
    inputs = keras.Input(shape=input_shape, dtype="float32", name="inputs")
    weighted = []
    for i, (member, weight) in enumerate(zip(config.ensemble, weights)):
        model = _single(_member_config(config, member), input_shape, num_classes, f"member_{i}")
        weighted.append(keras.layers.Rescaling(weight / sum(weights), dtype="float32",
                                               name=f"member_{i}_weight")(model(inputs)))
    outputs = (keras.layers.Add(dtype="float32", name="predictions")(weighted)
               if len(weighted) > 1 else weighted[0])
    return keras.Model(inputs, outputs, name="keypoint_ensemble")
