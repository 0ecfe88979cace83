"""keras.applications backbones for the transfer families (a helper module, not a family).

Each backbone is listed with the affine map its ``preprocess_input`` applies to
0..255 pixels, so the families do it with one Rescaling layer on the device:
MobileNet, MobileNetV2 and ResNet*V2 use "tf" mode (x / 127.5 - 1);
EfficientNet rescales and normalises inside the keras model, so it takes raw
0..255 floats.
"""
from __future__ import annotations

import keras

# name -> (scale, offset) applied to 0..255 input before the backbone.
PREPROCESS = {
    "MobileNet": (1.0 / 127.5, -1.0),
    "MobileNetV2": (1.0 / 127.5, -1.0),
    "ResNet152V2": (1.0 / 127.5, -1.0),
    "EfficientNetB3": (1.0, 0.0),
}
WIDTH_MULTIPLIER = ("MobileNet", "MobileNetV2")  # the backbones that take ``alpha``


def make(name: str, *, input_shape: tuple, weights: str | None, alpha: float | None = None,
         pooling: str | None = None) -> keras.Model:
    """``keras.applications.<name>(include_top=False, ...)``.

    ``weights`` is "imagenet" (downloaded by Keras on a connected machine), a
    local weights file of the same backbone (``.weights.h5`` as written by
    ``save_weights``, a Keras 2 / keras.applications ``.h5``, or ``.keras``),
    or None (random initialisation). ``alpha`` is the width multiplier of the
    MobileNets (None: the backbone's default 1.0).
    """
    if name not in PREPROCESS:
        raise ValueError(f"unknown backbone {name!r}; available: {', '.join(PREPROCESS)}")
    kwargs = {}
    if alpha is not None:
        if name not in WIDTH_MULTIPLIER:
            raise ValueError(f"alpha is only for {', '.join(WIDTH_MULTIPLIER)}, not {name}")
        kwargs["alpha"] = alpha
    return getattr(keras.applications, name)(include_top=False, weights=weights,
                                             input_shape=tuple(input_shape), pooling=pooling,
                                             **kwargs)


def set_trainable_last_n(backbone: keras.Model, n: int | None) -> None:
    """Freezes all but the last ``n`` entries of ``backbone.layers`` (None: all trainable).

    Layers count as Keras lists them (InputLayer, activations and paddings
    included), as in ``for layer in base.layers[:-n]: layer.trainable = False``.
    Frozen BatchNormalization layers run in inference mode (Keras 3).
    """
    if n is None:
        return
    if n < 0:
        raise ValueError(f"trainable_last_n must be >= 0 or None, got {n}")
    first_trainable = max(len(backbone.layers) - n, 0)
    for i, layer in enumerate(backbone.layers):
        layer.trainable = i >= first_trainable
