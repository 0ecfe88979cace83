"""A checkpoint as a TensorFlow SavedModel: one serving signature, float32 arithmetic.

``write_saved_model`` writes the signature ``serving_default`` mapping ``inputs`` to
``probabilities``; ``run_saved_model`` runs one. ``rebuilt`` gives the same network and
weights computing in float32 (a run trained under a mixed-precision policy), with its
recurrent layers unrolled when asked (every TFLite file, ``trainers.tflite``).
``trainers.export`` writes both formats through these.
"""
from __future__ import annotations

import copy

SIGNATURE = "serving_default"
INPUT_NAME = "inputs"
OUTPUT_NAME = "probabilities"


def spec_of(model) -> tuple[tuple, str]:
    """(shape without batch, dtype name) of the model's single input."""
    shape = tuple(int(s) for s in model.inputs[0].shape[1:])
    return shape, str(model.inputs[0].dtype).replace("tf.", "")


# --------------------------------------------------------------------------
# SavedModel.
# --------------------------------------------------------------------------
def write_saved_model(model, path: str, input_shape: tuple, dtype: str, batch=None,
                      network=None):
    """A SavedModel of ``model`` whose serving signature maps ``inputs`` to ``probabilities``.

    ``network`` (default: the model in inference mode) is the function served; it
    may only use ``model``'s variables.
    """
    import keras
    import tensorflow as tf
    spec = tf.TensorSpec((batch,) + tuple(input_shape), dtype, name=INPUT_NAME)
    network = network or (lambda x: model(x, training=False))

    @tf.function(input_signature=[spec])
    def serve(inputs):
        return {OUTPUT_NAME: network(inputs)}

    # Not archive.track(model): the endpoint's variables are tracked anyway, and
    # tracking the model as well would store every weight a second time.
    archive = keras.export.ExportArchive()
    archive.add_endpoint(SIGNATURE, serve)
    archive.write_out(path, verbose=False)


def run_saved_model(path: str, inputs):
    """The ``probabilities`` of a SavedModel export for a batch of inputs (numpy)."""
    import tensorflow as tf
    serve = tf.saved_model.load(path).signatures[SIGNATURE]
    return serve(**{INPUT_NAME: tf.constant(inputs)})[OUTPUT_NAME].numpy()


# --------------------------------------------------------------------------
# The float32 network (a SavedModel of a mixed-precision run, every TFLite file).
# --------------------------------------------------------------------------
def rebuilt(model, *, unroll: bool = False, float_input: bool = False):
    """The same network and weights, computing in float32, rebuilt from its config.

    Layers a run trained under ``mixed_float16``/``mixed_bfloat16`` keep that policy
    in the checkpoint; here they compute in float32, which CPUs and TFLite run best.
    ``unroll`` unrolls recurrent layers over the clip's fixed length: a
    ``tf.while_loop`` recurrence converts to a TFLite WHILE, which full-integer
    quantisation does not handle (the converter crashes); unrolled, a GRU/LSTM is
    FULLY_CONNECTED, LOGISTIC, TANH, MUL and ADD, all builtin in int8.
    ``float_input`` makes the input float32 (for int8, where the converter
    quantises the input itself).
    """
    config = copy.deepcopy(model.get_config())

    def walk(node):
        if isinstance(node, dict):
            layer = node.get("config") if isinstance(node.get("config"), dict) else None
            if layer is not None and isinstance(layer.get("dtype"), dict) and \
                    str(layer["dtype"].get("config", {}).get("name", "")).startswith("mixed_"):
                layer["dtype"] = "float32"
            if unroll and layer is not None and node.get("class_name") in ("GRU", "LSTM",
                                                                            "SimpleRNN"):
                # Dropout is off in inference anyway; without it the layer keeps no
                # random-seed state, which would become TFLite resource variables.
                layer.update(unroll=True, dropout=0.0, recurrent_dropout=0.0)
            if float_input and layer is not None and node.get("class_name") == "InputLayer":
                layer["dtype"] = "float32"
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    twin = model.__class__.from_config(config)
    twin.set_weights(model.get_weights())
    return twin


def mixed(model) -> bool:
    """Whether any layer (nested ones included) computes under a mixed-precision policy."""
    return any(getattr(layer, "dtype_policy", None) is not None and
               layer.dtype_policy.name.startswith("mixed_") for layer in _layers(model))


def _layers(layer):
    yield layer
    for sub in getattr(layer, "layers", None) or []:
        yield from _layers(sub)
    inner = getattr(layer, "layer", None)          # TimeDistributed, Bidirectional
    if inner is not None:
        yield from _layers(inner)
