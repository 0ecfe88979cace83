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

except a TFLite ``--output`` whose name ends in ``.tflite``: that is the model file itself,
with ``NAME.export.json`` and ``NAME.classes.json`` beside it (``--output
out/model_int8.tflite`` writes ``out/model_int8.tflite``, ``out/model_int8.export.json``
and ``out/model_int8.classes.json``). Folders are written with the usual permissions
(as the umask allows), not the private ones of a temporary folder.

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

The conversion and the TFLite runtime are ``trainers.tflite``:
``tflite.run_tflite(path, inputs)`` (or ``tflite.TFLiteModel(path)``) runs any of them on
uint8 pixels or float32 keypoints and returns float32 probabilities, quantising and
dequantising as needed; ``run_saved_model(path, inputs)`` here does the same for a
SavedModel.

Builtin-only TFLite, int8 included: cnn_rnn (GRU, LSTM), transfer_rnn (MobileNet,
MobileNetV2 backbones), image_classifier (MobileNetV2, EfficientNetB3),
keypoint_rnn "lstm" and "bilstm". Not convertible: conv3d (MaxPool3D has no
builtin TFLite kernel; with --select_tf_ops it converts and needs the Flex
delegate) and the keypoint_rnn "ensemble" (the converter fails on its nested
members: "'tf.Transpose' op x should be of the same rank with y"); their
SavedModel exports work.

An export is written into a temporary folder beside ``--output`` and renamed into place when
complete (a ``.tflite`` file: its two JSON files first, the model last); SIGINT / SIGTERM
stop it with one line (exit status 130 / 143) after removing that folder.
"""
from __future__ import annotations

import copy
import datetime
import os
import shutil
import sys
import tempfile
import time

from pipeline import cli

cli.quiet_unless_verbose(__name__)    # before TensorFlow and Beam load (unless --verbose)
cli.stop_while_starting(__name__, "export")    # one line, not a traceback

from absl import app, flags, logging

from trainers import tflite
from trainers import workdir as workdir_lib
from trainers.saved_model import (INPUT_NAME, OUTPUT_NAME, SIGNATURE, mixed, rebuilt,
                                  spec_of, write_saved_model)
from trainers.tflite import TFLITE_FILE, first_line

FORMATS = ("saved_model", "tflite")
QUANTIZE = ("none", "float16", "int8")
EXPORT_JSON = "export.json"
CLASSES_JSON = "classes.json"

# The flags live apart from absl's global ones, so that this module and trainers.train
# (whose write_json writes export.json) can be imported together.
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
                                    "WORKDIR/export/<format>[_<quantize>]); for --format "
                                    "tflite a name ending in .tflite is the model file, with "
                                    "NAME.export.json and NAME.classes.json beside it.", **_F)
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


# --------------------------------------------------------------------------
# int8 calibration and errors.
# --------------------------------------------------------------------------
def representative_inputs(run: workdir_lib.Run, count: int):
    """Up to ``count`` model inputs of the training split, read as in evaluation (all views).

    Uses ``trainers.data.make_input`` with the run's config, its evaluation split
    pointed at the training split, so sampling, cropping and views
    (``trainers.data.reader_kwargs``) are the ones the model is evaluated with.
    """
    import numpy as np
    from trainers import data
    config = copy.deepcopy(run.config)
    config.data.eval_split = config.data.train_split
    if config.data.cache:                      # read once: no cache files
        config.data.cache = False if isinstance(config.data.cache, bool) else ""
    config.train.batch_size = 1
    ds = data.make_input(config, run.info, training=False)
    out = []
    for batch in ds:
        for x in np.asarray(batch[0]):
            out.append(x)
            if len(out) >= count:
                return out
    return out


# --------------------------------------------------------------------------
# The export.
# --------------------------------------------------------------------------
def is_file_output(output: str) -> bool:
    """Whether ``--output`` names the .tflite file itself (rather than an export folder)."""
    return output.lower().endswith(".tflite")


def sidecars(output: str) -> tuple[str, str]:
    """(export.json, classes.json) paths of a .tflite file output: NAME.export.json and
    NAME.classes.json beside NAME.tflite."""
    stem = output[:-len(".tflite")]
    return f"{stem}.export.json", f"{stem}.classes.json"


def _prepare_output(output: str, overwrite: bool, fmt: str = "saved_model"):
    if is_file_output(output):
        if fmt != "tflite":
            raise ExportError(f"{output} names a .tflite file: give --format tflite, or a "
                              "folder name for a SavedModel")
        meta, _ = sidecars(output)
        for path in (output, *sidecars(output)):
            if not os.path.lexists(path):
                continue
            if not overwrite:
                raise ExportError(f"{path} already exists (pass --overwrite to replace it)")
            if os.path.isdir(path) or not os.path.isfile(meta):
                raise ExportError(f"{path} exists and is not part of an earlier export (no "
                                  f"{os.path.basename(meta)} beside it); not replacing it")
    elif os.path.lexists(output):
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


def _usual_permissions(folder: str) -> None:
    """Gives ``folder`` and the folders under it the permissions a new folder gets (0777
    less the umask): a temporary folder is private (0700), an export is not."""
    umask = os.umask(0)
    os.umask(umask)
    for path, _, _ in os.walk(folder):
        os.chmod(path, 0o777 & ~umask)


def export(workdir: str, fmt: str = "saved_model", *, quantize: str = "none",
           checkpoint: str = "best", output: str | None = None, overwrite: bool = False,
           representative_examples: int = 100, select_tf_ops: bool = False,
           before_commit=None) -> dict:
    """Exports the run's ``checkpoint``; returns what export.json says (plus ``path``).

    ``before_commit``, when given, is called just before the export is moved into place;
    raising there leaves nothing behind (the command passes its stop check: the TFLite
    converter's calibration loop swallows an exception raised by a signal handler)."""
    check_options(fmt, quantize, representative_examples)
    try:
        run = workdir_lib.open_run(workdir)
        ckpt_path = run.checkpoint_path(checkpoint)
    except workdir_lib.RunError as e:
        raise ExportError(str(e)) from None
    output = output or default_output(workdir, fmt, quantize)
    _prepare_output(output, overwrite, fmt)
    import keras
    import tensorflow as tf
    started = time.monotonic()
    _log(f"loading {ckpt_path}")
    model = run.load_model(checkpoint)
    if mixed(model):
        _log("computing in float32 (the run trained under a mixed-precision policy)")
        model = rebuilt(model)
    parent = os.path.dirname(os.path.abspath(output))
    tmp = tempfile.mkdtemp(prefix=".export_", dir=parent)
    try:
        if fmt == "saved_model":
            io, calibration = _export_saved_model(model, tmp), None
        else:
            io, calibration = _export_tflite(run, model, tmp, quantize, representative_examples,
                                             select_tf_ops)
        info = {
            "format": fmt,
            "quantize": quantize if fmt == "tflite" else None,
            "file": (os.path.basename(output) if is_file_output(output) else
                     TFLITE_FILE if fmt == "tflite" else "saved_model.pb"),
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
        if before_commit is not None:
            before_commit()
        if is_file_output(output):
            meta, classes = sidecars(output)
            os.replace(os.path.join(tmp, CLASSES_JSON), classes)
            os.replace(os.path.join(tmp, EXPORT_JSON), meta)
            os.replace(os.path.join(tmp, TFLITE_FILE), output)   # the model last
            shutil.rmtree(tmp)
        else:
            _usual_permissions(tmp)
            if os.path.lexists(output):
                shutil.rmtree(output)
            os.rename(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    size = _size(output)
    beside = (" and, beside it, " + " and ".join(sidecars(output))) \
        if is_file_output(output) else ""
    _log(f"wrote {output} ({size / 1e6:.2f} MB, {time.monotonic() - started:.1f}s){beside}: "
         f"input {info['input']['dtype']} {info['input']['shape']}, output {OUTPUT_NAME} "
         f"{info['output']['dtype']} {info['output']['shape']}, {len(run.classes)} classes")
    extra = dict(zip(("export_json", "classes_json"), sidecars(output))) \
        if is_file_output(output) else {}
    return {**info, "path": output, "bytes": size, **extra}


def _export_saved_model(model, folder: str) -> dict:
    """Writes the SavedModel into ``folder``; returns its input and output tensors."""
    shape, dtype = spec_of(model)
    _log(f"writing a SavedModel: {INPUT_NAME} {dtype} {[None, *shape]} -> {OUTPUT_NAME}")
    write_saved_model(model, folder, shape, dtype)
    return {"input": {"name": INPUT_NAME, "shape": [None, *shape], "dtype": dtype,
                      "quantization": None},
            "output": {"name": OUTPUT_NAME, "shape": list(model.output_shape),
                       "dtype": "float32", "quantization": None}}


def _export_tflite(run: workdir_lib.Run, model, folder: str, quantize: str,
                   representative_examples: int, select_tf_ops: bool) -> tuple[dict, dict | None]:
    """Writes model.tflite into ``folder``; returns its tensors' details and the int8
    calibration (split and example count; None unless int8)."""
    import tensorflow as tf
    representative = None
    calibration = None
    if quantize == "int8":
        d = run.config.data
        _log(f"reading {representative_examples} representative examples of split "
             f"{d.train_split!r} from {d.build_dir}")
        try:
            representative = representative_inputs(run, representative_examples)
        except (OSError, ValueError, tf.errors.OpError) as e:
            raise ExportError(f"cannot read the build the run trained on "
                              f"({d.build_dir}): {first_line(e)}") from None
        if not representative:
            raise ExportError(f"split {d.train_split!r} of {d.build_dir} has no examples to "
                              "calibrate int8 with")
        calibration = {"split": d.train_split, "examples": len(representative)}
    _log(f"converting to TFLite ({'float32' if quantize == 'none' else quantize}, batch "
         f"1, recurrent layers unrolled)")
    try:
        details = tflite.convert_tflite(model, os.path.join(folder, TFLITE_FILE), quantize,
                                        modality=run.modality, representative=representative,
                                        select_tf_ops=select_tf_ops)
    except tflite.ConversionError as e:
        raise ExportError(str(e)) from None
    return details, calibration


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
    """Bytes of the model itself in an export: the .tflite file, model.tflite, or the
    SavedModel without classes.json and export.json."""
    if os.path.isfile(path):
        return os.path.getsize(path)
    if os.path.isfile(os.path.join(path, TFLITE_FILE)):
        return os.path.getsize(os.path.join(path, TFLITE_FILE))
    extra = sum(os.path.getsize(os.path.join(path, f)) for f in (CLASSES_JSON, EXPORT_JSON)
                if os.path.isfile(os.path.join(path, f)))
    return _size(path) - extra


def _write_json(path: str, data):
    from trainers import train
    train.write_json(path, data)


def main(argv):
    """Exports from parsed flags; returns the exit code (2 for user mistakes, 130 / 143
    when SIGINT / SIGTERM stopped it: the temporary export folder is removed)."""
    cli.started()
    with cli.StopSignals() as stops:
        try:
            try:
                settings = _settings(argv)
                if not FLAGS.verbose:
                    # The converter and the SavedModel writer log every step at INFO;
                    # [export] lines say what happens.
                    logging.set_verbosity(logging.ERROR)
                export(FLAGS.workdir, FLAGS.format, before_commit=stops.check, **settings)
            except (ExportError, workdir_lib.RunError):
                stops.check()   # a stop the converter turned into its own error is a stop
                raise
        except (ExportError, workdir_lib.RunError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        except cli.Stopped as stop:
            print(cli.stopped_line("export", stop, "nothing is kept (the export is written "
                                   "beside its output and renamed into place only when "
                                   "complete)", cli.command_line("trainers.export",
                                                                 sys.argv[1:])),
                  file=sys.stderr, flush=True)
            return stop.exit_code
    return 0


def _settings(argv) -> dict:
    """The export's keyword arguments from the flags; ExportError for a usage mistake."""
    if len(argv) > 1:
        raise ExportError(f"unexpected arguments {argv[1:]}")
    if not FLAGS.workdir:
        raise ExportError("--workdir is required, e.g.\n  python -m trainers.export --workdir "
                          "runs/demo --format tflite --quantize int8")
    return dict(quantize=FLAGS.quantize, checkpoint=FLAGS.checkpoint, output=FLAGS.output,
                overwrite=FLAGS.overwrite, representative_examples=FLAGS.representative_examples,
                select_tf_ops=FLAGS.select_tf_ops)


def _parse(argv):
    """absl flags_parser (``pipeline.cli.parse``)."""
    return cli.parse(FLAGS, argv, __name__)


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=_parse)
