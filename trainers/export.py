r"""Exports a trained model for serving: a TensorFlow SavedModel or a TFLite file.

    python -m trainers.export --workdir runs/demo --format saved_model
    python -m trainers.export --workdir runs/demo --format tflite --quantize int8

Every export is one directory (default ``WORKDIR/export/<format>[_<quantize>]``):

    saved_model/   saved_model.pb, variables/   the SavedModel; signature "serving_default"
    tflite_*/      model.tflite                 the TFLite flatbuffer, signature "serving_default"
    */classes.json                              class names in index order
    */export.json                               input and output tensors, classes, the build's
                                                sampling, the preprocessing a caller must do,
                                                the checkpoint exported

Inputs are what the reader feeds the model in evaluation: a batch of uint8 clips
``[N, T, H, W, 3]`` (video), uint8 images ``[N, H, W, 3]`` or float32 keypoint
windows ``[N, W, F]``; the model rescales pixels itself. The output is named
``probabilities``: class probabilities ``[N, K]`` (per frame ``[N, W, K]`` or
``[N, W, 1]`` for keypoint models).

SavedModel: any batch size; ``tf.saved_model.load(path).signatures["serving_default"]
(inputs=x)["probabilities"]``. TFLite: batch 1, recurrent layers unrolled over the
clip's fixed length, builtin operators only:

    --quantize none      float32 weights and arithmetic
    --quantize float16   weights stored as float16, float32 arithmetic
    --quantize int8      full-integer: int8 weights and activations, integer-only builtin
                         kernels; calibrated on --representative_examples clips of the
                         training split read as in evaluation. Input: uint8 pixels
                         unchanged (scale 1, zero point 0) for video and images, int8
                         (quantised with the input's scale and zero point) for keypoints.
                         Output: int8, dequantise with ``dequantize`` (scale 1/256,
                         zero point -128 for softmax and sigmoid).

``run_tflite(path, inputs)`` (or ``TFLiteModel(path)``) runs any of them on uint8
pixels or float32 keypoints and returns float32 probabilities, quantising and
dequantising as needed; ``run_saved_model(path, inputs)`` does the same for a
SavedModel.

Builtin-only TFLite, int8 included: cnn_rnn (GRU, LSTM), transfer_rnn (MobileNet,
MobileNetV2 backbones), image_classifier (MobileNetV2, EfficientNetB3),
keypoint_rnn "lstm" and "bilstm". Not convertible: conv3d (MaxPool3D has no
builtin TFLite kernel; with --select_tf_ops it converts and needs the Flex
delegate) and the keypoint_rnn "ensemble" (the converter fails on its nested
members: "'tf.Transpose' op x should be of the same rank with y"); their
SavedModel exports work.
"""
from __future__ import annotations

import copy
import datetime
import os
import re
import shutil
import sys
import tempfile
import time

from absl import app, flags, logging

from trainers import workdir as workdir_lib

FORMATS = ("saved_model", "tflite")
QUANTIZE = ("none", "float16", "int8")
SIGNATURE = "serving_default"
INPUT_NAME = "inputs"
OUTPUT_NAME = "probabilities"
TFLITE_FILE = "model.tflite"
EXPORT_JSON = "export.json"
CLASSES_JSON = "classes.json"

# The flags live apart from absl's global ones, so that this module and trainers.train
# (whose make_input the int8 calibration reads through) can be imported together.
FLAGS = flags.FlagValues()
_F = dict(flag_values=FLAGS)
flags.DEFINE_string("workdir", None, "The training workdir to export (written by "
                                     "python -m trainers.train).", **_F)
flags.DEFINE_enum("format", "saved_model", FORMATS,
                  "saved_model: a TensorFlow SavedModel (any batch size); tflite: one "
                  ".tflite file (batch 1, builtin operators only).", **_F)
flags.DEFINE_enum("quantize", "none", QUANTIZE,
                  "TFLite only. none: float32; float16: float16 weights; int8: full-integer "
                  "int8 weights and activations, calibrated on training clips.", **_F)
flags.DEFINE_string("checkpoint", "best", "best | last (in WORKDIR/checkpoints) or a path to a "
                                          ".keras file.", **_F)
flags.DEFINE_string("output", None, "The export directory (default: "
                                    "WORKDIR/export/<format>[_<quantize>]).", **_F)
flags.DEFINE_bool("overwrite", False, "Replace --output if it holds an earlier export.", **_F)
flags.DEFINE_integer("representative_examples", 100,
                     "int8 only: how many training-split examples (read as in evaluation, "
                     "every view of each) calibrate the activation ranges.", lower_bound=1, **_F)
flags.DEFINE_bool("select_tf_ops", False,
                  "TFLite only: allow TensorFlow (Flex) operators where a layer has no builtin "
                  "TFLite kernel. The file then needs the Flex delegate; off by default, since "
                  "a device runtime has builtin operators only.", **_F)


class ExportError(ValueError):
    """A user mistake or an unexportable model (message for the user, no traceback)."""


def _log(message: str):
    print(f"[export] {message}", flush=True)


# --------------------------------------------------------------------------
# What the exported model takes and returns.
# --------------------------------------------------------------------------
def default_output(workdir: str, fmt: str, quantize: str) -> str:
    name = fmt if fmt == "saved_model" else \
        f"tflite_{'float32' if quantize == 'none' else quantize}"
    return os.path.join(workdir, "export", name)


def check_options(fmt: str, quantize: str, representative_examples: int = 1):
    if fmt not in FORMATS:
        raise ExportError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if quantize not in QUANTIZE:
        raise ExportError(f"--quantize must be one of {', '.join(QUANTIZE)}, got {quantize!r}")
    if fmt == "saved_model" and quantize != "none":
        raise ExportError(f"--quantize {quantize} applies to --format tflite only (a SavedModel "
                          "keeps the float32 weights of the checkpoint)")
    if representative_examples < 1:
        raise ExportError("--representative_examples must be >= 1")


def preprocessing(run: workdir_lib.Run) -> dict:
    """What a caller does to raw media before the model, from the build and the run's config."""
    d = run.config.data
    sampling = run.info.get("sampling") or {}
    frame = run.info.get("frame") or {}
    if run.modality == "keypoints":
        keypoints = run.info.get("keypoints") or {}
        return {
            "window": d.window, "window_shift": d.get("window_shift") or d.window,
            "keypoints": keypoints,
            "text": (f"keypoints extracted, selected and normalised as the build did "
                     f"({keypoints.get('layout', 'its layout')}, coords "
                     f"{keypoints.get('coords', '?')}), people padded or truncated to the "
                     f"model's feature size, then windows of {d.window} frames; float32"),
        }
    size = f"{d.crop_size}x{d.crop_size}"
    resize = (f"frames resized so the shorter side is {d.resize_shorter}, then "
              if d.get("resize_shorter") else "")
    if run.modality == "image":
        return {"crop_size": d.crop_size, "crop": "center",
                "resize_shorter": d.get("resize_shorter") or None, "build_frame": frame,
                "text": f"the image as the build stored it{_frame_text(frame)}, {resize}a centre "
                        f"{size} crop (on a smaller frame the largest centred window, resized "
                        "to it); uint8 RGB, not rescaled"}
    built = sampling.get("num_frames")
    clips = d.num_test_clips * d.num_test_crops
    return {
        "num_frames": d.num_frames, "sampling": d.sampling, "stride": d.stride,
        "short": d.short, "crop_size": d.crop_size, "crop": "center",
        "resize_shorter": d.get("resize_shorter") or None,
        "num_test_clips": d.num_test_clips, "num_test_crops": d.num_test_crops,
        "build_sampling": sampling, "build_frame": frame,
        "text": (f"frames taken from the video as the build did ({sampling.get('mode', '?')} "
                 "sampling" + (f" of {built} frames" if built else "") + _frame_text(frame)
                 + "), then "
                 f"{d.num_frames} frames chosen by {d.sampling!r} sampling (stride "
                 f"{d.stride}, short clips {d.short}), {resize}a centre {size} crop; uint8 RGB, "
                 "not rescaled" + (f"; average the probabilities of the {clips} views "
                                   "(clips x crops) as evaluation does" if clips > 1 else "")),
    }


def _frame_text(frame: dict) -> str:
    """How the build shaped its frames, in words (', cropped ..., resized ...')."""
    out = ""
    if frame.get("crop") not in (None, "none"):
        out += f", cropped {frame['crop']}"
    if frame.get("size"):
        out += f", resized to {frame['size'][0]}x{frame['size'][1]}"
    elif frame.get("resize_shorter"):
        out += f", shorter side resized to {frame['resize_shorter']}"
    return out


def _spec_of(model) -> tuple[tuple, str]:
    """(shape without batch, dtype name) of the model's single input."""
    shape = tuple(int(s) for s in model.inputs[0].shape[1:])
    return shape, str(model.inputs[0].dtype).replace("tf.", "")


# --------------------------------------------------------------------------
# SavedModel.
# --------------------------------------------------------------------------
def _write_saved_model(model, path: str, input_shape: tuple, dtype: str, batch=None,
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


# --------------------------------------------------------------------------
# TFLite.
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


def _mixed(model) -> bool:
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


def representative_inputs(run: workdir_lib.Run, count: int):
    """Up to ``count`` model inputs of the training split, read as in evaluation (all views).

    Uses ``trainers.train.make_input`` with the run's config, its evaluation split
    pointed at the training split, so sampling, cropping and views are the ones
    the model is evaluated with.
    """
    import numpy as np
    from trainers import train
    config = copy.deepcopy(run.config)
    config.data.eval_split = config.data.train_split
    if config.data.cache:                      # read once: no cache files
        config.data.cache = False if isinstance(config.data.cache, bool) else ""
    config.train.batch_size = 1
    ds = train.make_input(config, run.info, training=False)
    out = []
    for batch in ds:
        for x in np.asarray(batch[0]):
            out.append(x)
            if len(out) >= count:
                return out
    return out


def _converter(saved_model_dir: str, quantize: str, *, modality: str, representative=None,
               select_tf_ops: bool = False):
    import numpy as np
    import tensorflow as tf
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir, [SIGNATURE])
    builtins = tf.lite.OpsSet.TFLITE_BUILTINS_INT8 if quantize == "int8" else \
        tf.lite.OpsSet.TFLITE_BUILTINS
    converter.target_spec.supported_ops = [builtins] + (
        [tf.lite.OpsSet.SELECT_TF_OPS] if select_tf_ops else [])
    if quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: (
            [np.asarray(x, np.float32)[None]] for x in representative)
        converter.inference_input_type = tf.int8 if modality == "keypoints" else tf.uint8
        converter.inference_output_type = tf.int8
    return converter


def convert_tflite(model, path: str, quantize: str, *, modality: str, representative=None,
                  select_tf_ops: bool = False) -> dict:
    """Converts ``model`` to ``path`` (a .tflite file); returns its tensors' details."""
    import tensorflow as tf
    int8 = quantize == "int8"
    twin = rebuilt(model, unroll=True, float_input=int8)
    shape, dtype = _spec_of(twin)
    pixels = int8 and modality != "keypoints"
    # For int8 pixels, pin the input range to the pixel range: the uint8 input then is
    # the pixel value itself (scale 1, zero point 0) whatever the calibration clips hold.
    network = (lambda x: twin(tf.quantization.fake_quant_with_min_max_args(
        x, min=0.0, max=255.0, num_bits=8), training=False)) if pixels else None
    with tempfile.TemporaryDirectory(prefix="actionflow_export_") as tmp:
        _write_saved_model(twin, tmp, shape, dtype, batch=1, network=network)
        converter = _converter(tmp, quantize, modality=modality, representative=representative,
                               select_tf_ops=select_tf_ops)
        try:
            flatbuffer = converter.convert()
        except Exception as e:   # ConverterError and friends: report the converter's reason
            ops = f"builtin {'int8 ' if int8 else ''}operators" + (
                " and TensorFlow operators" if select_tf_ops else "")
            raise ExportError(f"the TFLite converter cannot convert this model to {ops}: "
                              f"{_first_line(e)}" + ("" if select_tf_ops else
                                                     " (--select_tf_ops allows TensorFlow "
                                                     "operators)")) from None
    with open(path, "wb") as f:
        f.write(flatbuffer)
    return tflite_details(path)


def _first_line(error: Exception) -> str:
    """The converter's reason in one line: the operators it has no kernel for, or its error."""
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
    return {"input": describe(interpreter.get_input_details()[0], INPUT_NAME),
            "output": describe(interpreter.get_output_details()[0], OUTPUT_NAME),
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


def run_saved_model(path: str, inputs):
    """The ``probabilities`` of a SavedModel export for a batch of inputs (numpy)."""
    import tensorflow as tf
    serve = tf.saved_model.load(path).signatures[SIGNATURE]
    return serve(**{INPUT_NAME: tf.constant(inputs)})[OUTPUT_NAME].numpy()


# --------------------------------------------------------------------------
# The export.
# --------------------------------------------------------------------------
def _prepare_output(output: str, overwrite: bool):
    if os.path.lexists(output):
        if not overwrite:
            raise ExportError(f"{output} already exists (pass --overwrite to replace it)")
        if os.path.isdir(output) and not os.path.islink(output):
            if os.listdir(output) and not os.path.isfile(os.path.join(output, EXPORT_JSON)):
                raise ExportError(f"{output} exists and is not an export (no {EXPORT_JSON}); "
                                  "not replacing it")
        else:
            raise ExportError(f"{output} exists and is not a directory; not replacing it")
    parent = os.path.dirname(os.path.abspath(output))
    os.makedirs(parent, exist_ok=True)


def export(workdir: str, fmt: str = "saved_model", *, quantize: str = "none",
           checkpoint: str = "best", output: str | None = None, overwrite: bool = False,
           representative_examples: int = 100, select_tf_ops: bool = False) -> dict:
    """Exports the run's ``checkpoint``; returns what export.json says (plus ``path``)."""
    check_options(fmt, quantize, representative_examples)
    try:
        run = workdir_lib.open_run(workdir)
        ckpt_path = run.checkpoint_path(checkpoint)
    except workdir_lib.RunError as e:
        raise ExportError(str(e)) from None
    output = output or default_output(workdir, fmt, quantize)
    _prepare_output(output, overwrite)
    import keras
    import tensorflow as tf
    started = time.monotonic()
    _log(f"loading {ckpt_path}")
    model = run.load_model(checkpoint)
    if _mixed(model):
        _log("computing in float32 (the run trained under a mixed-precision policy)")
        model = rebuilt(model)
    shape, dtype = _spec_of(model)
    parent = os.path.dirname(os.path.abspath(output))
    tmp = tempfile.mkdtemp(prefix=".export_", dir=parent)
    try:
        if fmt == "saved_model":
            _log(f"writing a SavedModel: {INPUT_NAME} {dtype} {[None, *shape]} -> {OUTPUT_NAME}")
            _write_saved_model(model, tmp, shape, dtype)
            io = {"input": {"name": INPUT_NAME, "shape": [None, *shape], "dtype": dtype,
                            "quantization": None},
                  "output": {"name": OUTPUT_NAME, "shape": list(model.output_shape),
                             "dtype": "float32", "quantization": None}}
            calibration = None
        else:
            representative = None
            calibration = None
            if quantize == "int8":
                _log(f"reading {representative_examples} representative examples of split "
                     f"{run.config.data.train_split!r} from {run.config.data.build_dir}")
                try:
                    representative = representative_inputs(run, representative_examples)
                except (OSError, ValueError, tf.errors.OpError) as e:
                    raise ExportError(f"cannot read the build the run trained on "
                                      f"({run.config.data.build_dir}): {_first_line(e)}") from None
                if not representative:
                    raise ExportError(f"split {run.config.data.train_split!r} of "
                                      f"{run.config.data.build_dir} has no examples to "
                                      "calibrate int8 with")
                calibration = {"split": run.config.data.train_split,
                               "examples": len(representative)}
            _log(f"converting to TFLite ({'float32' if quantize == 'none' else quantize}, batch "
                 f"1, recurrent layers unrolled)")
            details = convert_tflite(model, os.path.join(tmp, TFLITE_FILE), quantize,
                                    modality=run.modality, representative=representative,
                                    select_tf_ops=select_tf_ops)
            io = details
        info = {
            "format": fmt,
            "quantize": quantize if fmt == "tflite" else None,
            "file": TFLITE_FILE if fmt == "tflite" else "saved_model.pb",
            "signature": SIGNATURE,
            "model_name": run.model_name,
            "modality": run.modality,
            "classes": list(run.classes),
            "output_kind": _output_kind(run),
            "input": io["input"],
            "output": io["output"],
            "operators": io.get("operators"),
            "calibration": calibration,
            "preprocessing": preprocessing(run),
            "build": {"build_dir": run.config.data.build_dir,
                      "dataset": run.info.get("dataset"),
                      "config_name": run.info.get("config_name"),
                      "sampling": run.info.get("sampling"), "frame": run.info.get("frame"),
                      "image_format": run.info.get("image_format")},
            "checkpoint": os.path.abspath(ckpt_path),
            "workdir": os.path.abspath(workdir),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
        }
        _write_json(os.path.join(tmp, CLASSES_JSON), list(run.classes))
        _write_json(os.path.join(tmp, EXPORT_JSON), info)
        if os.path.lexists(output):
            shutil.rmtree(output)
        os.rename(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    size = _size(output)
    _log(f"wrote {output} ({size / 1e6:.2f} MB, {time.monotonic() - started:.1f}s): input "
         f"{info['input']['dtype']} {info['input']['shape']}, output {OUTPUT_NAME} "
         f"{info['output']['dtype']} {info['output']['shape']}, {len(run.classes)} classes")
    return {**info, "path": output, "bytes": size}


def _output_kind(run: workdir_lib.Run) -> str:
    if run.modality != "keypoints":
        return "softmax over classes, one row per input"
    if run.frame_binary():
        return f"sigmoid per frame: probability of {run.classes[-1]!r}"
    return "softmax over classes per frame"


def _size(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path)
               for f in files)


def model_bytes(path: str) -> int:
    """Bytes of the model itself in an export: model.tflite, or the SavedModel without
    classes.json and export.json."""
    if os.path.isfile(os.path.join(path, TFLITE_FILE)):
        return os.path.getsize(os.path.join(path, TFLITE_FILE))
    extra = sum(os.path.getsize(os.path.join(path, f)) for f in (CLASSES_JSON, EXPORT_JSON)
                if os.path.isfile(os.path.join(path, f)))
    return _size(path) - extra


def _write_json(path: str, data):
    from trainers import train
    train.write_json(path, data)


def main(argv):
    if len(argv) > 1:
        print(f"error: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 2
    if not FLAGS.workdir:
        print("error: --workdir is required, e.g.\n  python -m trainers.export --workdir "
              "runs/demo --format tflite --quantize int8", file=sys.stderr)
        return 2
    # The converter and the SavedModel writer log every step at INFO; [export] lines
    # say what happens.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    logging.set_verbosity(logging.WARNING)
    try:
        export(FLAGS.workdir, FLAGS.format, quantize=FLAGS.quantize, checkpoint=FLAGS.checkpoint,
               output=FLAGS.output, overwrite=FLAGS.overwrite,
               representative_examples=FLAGS.representative_examples,
               select_tf_ops=FLAGS.select_tf_ops)
    except (ExportError, workdir_lib.RunError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def _parse(argv):
    """absl flags_parser (``trainers.cli.parse``)."""
    from trainers import cli
    return cli.parse(FLAGS, argv, __name__)


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=_parse)
