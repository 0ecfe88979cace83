"""TFLite: converting a trained model to a .tflite file, and running one.

``python -m trainers.export --format tflite`` converts through ``convert_tflite``: the
checkpoint's network rebuilt in float32 with its recurrent layers unrolled over the
clip's fixed length (``trainers.saved_model.rebuilt``), written as a batch-1 SavedModel
(``trainers.saved_model.write_saved_model``) and handed to the TFLite converter, builtin
operators only unless asked otherwise::

    --quantize none      float32 weights and arithmetic
    --quantize float16   weights stored as float16, float32 arithmetic
    --quantize int8      full-integer: int8 weights and activations, integer-only builtin
                         kernels, calibrated on representative inputs. Input: uint8 pixels
                         unchanged (scale 1, zero point 0) for video and images, int8
                         (quantised with the input's scale and zero point) for keypoints.
                         Output: int8, dequantise with ``dequantize``.

``run_tflite(path, inputs)`` (or ``TFLiteModel(path)``, loaded once) runs any of them on
uint8 pixels or float32 keypoints and returns float32 probabilities, quantising the
input and dequantising the output with the tensors' own scale and zero point
(``quantize_input``, ``dequantize``); ``tflite_details`` describes a file's tensors.
"""
from __future__ import annotations

import os
import re
import tempfile

from pipeline import cli
from pipeline.progress import Progress
from trainers import saved_model

TFLITE_FILE = "model.tflite"


class ConversionError(ValueError):
    """The TFLite converter cannot convert a model (its reason in one line)."""


def first_line(error: Exception) -> str:
    """The reason of a TensorFlow or converter error in one line: the operators the
    converter has no kernel for, or the last error it names, or the first line."""
    text = str(error).strip()
    missing = re.findall(r"'tf\.(\w+)' op is neither a custom op nor a flex op", text)
    if missing:
        return ("no builtin TFLite kernel for TensorFlow operator(s) "
                + ", ".join(sorted(set(missing))))
    errors = re.findall(r"error: ([^\n]+)", text)
    line = errors[-1] if errors else (text.splitlines()[0] if text else type(error).__name__)
    if line.startswith("loc(") and "): " in line:      # drop the source location
        line = line[line.rindex("): ") + 3:]
    return line.strip()[:300]


# --------------------------------------------------------------------------
# Conversion.
# --------------------------------------------------------------------------
def _converter(saved_model_dir: str, quantize: str, *, modality: str, representative=None,
               select_tf_ops: bool = False, stream=None):
    import numpy as np
    import tensorflow as tf
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir, [saved_model.SIGNATURE])
    builtins = tf.lite.OpsSet.TFLITE_BUILTINS_INT8 if quantize == "int8" else \
        tf.lite.OpsSet.TFLITE_BUILTINS
    converter.target_spec.supported_ops = [builtins] + (
        [tf.lite.OpsSet.SELECT_TF_OPS] if select_tf_ops else [])
    if quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        def calibration():
            with Progress(len(representative), "calibrate", unit="clips",
                          stream=stream) as bar:
                for i, x in enumerate(representative, 1):
                    yield [np.asarray(x, np.float32)[None]]
                    bar.update(i)
        converter.representative_dataset = calibration
        converter.inference_input_type = tf.int8 if modality == "keypoints" else tf.uint8
        converter.inference_output_type = tf.int8
    return converter


def convert_tflite(model, path: str, quantize: str, *, modality: str, representative=None,
                  select_tf_ops: bool = False) -> dict:
    """Converts ``model`` to ``path`` (a .tflite file); returns its tensors' details."""
    import tensorflow as tf
    int8 = quantize == "int8"
    twin = saved_model.rebuilt(model, unroll=True, float_input=int8)
    shape, dtype = saved_model.spec_of(twin)
    pixels = int8 and modality != "keypoints"
    # For int8 pixels, pin the input range to the pixel range: the uint8 input then is
    # the pixel value itself (scale 1, zero point 0) whatever the calibration clips hold.
    network = (lambda x: twin(tf.quantization.fake_quant_with_min_max_args(
        x, min=0.0, max=255.0, num_bits=8), training=False)) if pixels else None
    with tempfile.TemporaryDirectory(prefix="actionflow_export_") as tmp:
        saved_model.write_saved_model(twin, tmp, shape, dtype, batch=1, network=network)
        try:
            with cli.native_stderr_quiet() as stream:
                converter = _converter(tmp, quantize, modality=modality,
                                       representative=representative,
                                       select_tf_ops=select_tf_ops, stream=stream)
                flatbuffer = converter.convert()
        except Exception as e:   # ConverterError and friends: report the converter's reason
            ops = f"builtin {'int8 ' if int8 else ''}operators" + (
                " and TensorFlow operators" if select_tf_ops else "")
            hint = "" if select_tf_ops else " (--select_tf_ops allows TensorFlow operators)"
            raise ConversionError(f"the TFLite converter cannot convert this model to "
                                  f"{ops}: {first_line(e)}{hint}") from None
    with open(path, "wb") as f:
        f.write(flatbuffer)
    return tflite_details(path)


# --------------------------------------------------------------------------
# Running a .tflite file.
# --------------------------------------------------------------------------
def _interpreter(path: str, num_threads: int | None = None):
    import tensorflow as tf
    if os.path.isdir(path):
        path = os.path.join(path, TFLITE_FILE)
    return tf.lite.Interpreter(model_path=path, num_threads=num_threads)


def tflite_details(path: str) -> dict:
    """The input and output tensors of a .tflite file (shape, dtype, scale, zero point)."""
    interpreter = _interpreter(path)

    def describe(d, name):
        scale, zero = d["quantization"]
        return {"name": name, "tensor": d["name"], "shape": [int(s) for s in d["shape"]],
                "dtype": d["dtype"].__name__,
                "quantization": {"scale": float(scale), "zero_point": int(zero)} if scale else None}
    ops = sorted({op["op_name"] for op in interpreter._get_ops_details()} - {"DELEGATE"})
    return {"input": describe(interpreter.get_input_details()[0], saved_model.INPUT_NAME),
            "output": describe(interpreter.get_output_details()[0], saved_model.OUTPUT_NAME),
            "operators": ops}


def dequantize(values, quantization):
    """float32 values of a quantised tensor: (q - zero_point) * scale.

    ``quantization`` is a (scale, zero_point) pair, the interpreter's tensor
    details, or export.json's ``{"scale", "zero_point"}``; scale 0 means not quantised.
    """
    import numpy as np
    scale, zero = _scale_zero(quantization)
    values = np.asarray(values)
    if not scale:
        return values.astype(np.float32)
    return ((values.astype(np.float32) - zero) * scale).astype(np.float32)


def quantize_input(values, quantization, dtype):
    """Float inputs to the quantised input type: round(x / scale) + zero_point, clipped."""
    import numpy as np
    scale, zero = _scale_zero(quantization)
    values = np.asarray(values)
    if not scale:
        return values.astype(dtype)
    if np.issubdtype(values.dtype, np.integer) and scale == 1.0 and zero == 0:
        return values.astype(dtype)
    info = np.iinfo(dtype)
    q = np.round(values.astype(np.float32) / scale) + zero
    return np.clip(q, info.min, info.max).astype(dtype)


def _scale_zero(quantization):
    if quantization is None:
        return 0.0, 0
    if isinstance(quantization, dict):
        if "quantization" in quantization:
            return _scale_zero(quantization["quantization"])
        return float(quantization["scale"]), int(quantization["zero_point"])
    scale, zero = quantization
    return float(scale), int(zero)


class TFLiteModel:
    """A .tflite file (or an export directory) loaded once: ``model(inputs)`` -> probabilities.

    ``inputs`` is ``[N, ...]`` in the model's input shape without batch: uint8
    pixels or float32 keypoints. The file takes one example at a time; they are
    run in turn. Quantised inputs are quantised and quantised outputs dequantised
    with the tensors' own scale and zero point, so every export answers in float32.
    """

    def __init__(self, path: str, num_threads: int | None = None):
        self.interpreter = _interpreter(path, num_threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]

    def __call__(self, inputs):
        import numpy as np
        inp, out, interpreter = self.input, self.output, self.interpreter
        results = []
        for x in np.asarray(inputs):
            interpreter.set_tensor(inp["index"], quantize_input(x[None], inp["quantization"],
                                                                inp["dtype"]))
            interpreter.invoke()
            results.append(dequantize(interpreter.get_tensor(out["index"]),
                                      out["quantization"])[0])
        return np.stack(results) if results else np.zeros((0,) + tuple(out["shape"][1:]),
                                                          np.float32)


def run_tflite(path: str, inputs, num_threads: int | None = None):
    """Runs a .tflite file (or an export directory) on a batch: float32 probabilities
    ``[N, ...]`` (see ``TFLiteModel``)."""
    return TFLiteModel(path, num_threads)(inputs)
