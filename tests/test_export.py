"""python -m trainers.export: SavedModel and TFLite (float32, float16, int8) exports and their
parity with the Keras model they come from."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_module
from trainers import export, saved_model, tflite, workdir

# Largest |probability difference| allowed against Keras, per export. SavedModel and TFLite
# float32 run the same float32 arithmetic (kernels and summation order differ: ~1e-7);
# float16 rounds every weight to 11 significant bits (measured ~2e-5); int8 rounds weights
# and every activation to 256 levels and the output to steps of 1/256, and clips
# activations to the ranges seen in calibration (measured 0.002 to 0.045: tiny run, real
# soccer run, the benchmark's demo model).
ATOL = {"saved_model": 1e-5, "none": 1e-5, "float16": 1e-3, "int8": 0.06}
# Least fraction of clips whose top-1 class must be the Keras one.
TOP1 = {"saved_model": 1.0, "none": 1.0, "float16": 0.9, "int8": 0.8}


def assert_parity(reference, probs, kind):
    """Probabilities within ATOL[kind] of Keras's, and the same top-1 class.

    Top-1 must agree on at least TOP1[kind] of the clips, and on every clip whose
    Keras margin (best minus second probability) is more than twice the largest
    difference measured: errors that small cannot reorder such a clip's classes.
    Returns (largest difference, top-1 agreement).
    """
    reference = reference.reshape(-1, reference.shape[-1])
    probs = probs.reshape(-1, probs.shape[-1])
    assert probs.shape == reference.shape
    diff = float(np.abs(probs - reference).max())
    assert diff <= ATOL[kind], f"max |p - p_keras| = {diff:.3g} > {ATOL[kind]}"
    if reference.shape[-1] == 1:                      # one sigmoid unit: p against 1 - p
        reference = np.concatenate([1 - reference, reference], -1)
        probs = np.concatenate([1 - probs, probs], -1)
    ordered = np.sort(reference, axis=-1)
    clear = ordered[:, -1] - ordered[:, -2] > 2 * diff
    same = reference.argmax(-1) == probs.argmax(-1)
    assert same[clear].all(), f"top-1 differs on clear clips {np.flatnonzero(clear & ~same)}"
    assert same.mean() >= TOP1[kind], f"top-1 agreement {same.mean():.2f} < {TOP1[kind]}"
    return diff, float(same.mean())


def _eval_inputs(run):
    """The evaluation split as the trainer reads it: (inputs, labels) as numpy."""
    from trainers import data
    xs, ys = [], []
    for x, y in data.make_input(run.config, run.info, training=False):
        xs.append(x.numpy())
        ys.append(y.numpy())
    return np.concatenate(xs), np.concatenate(ys)


@pytest.fixture(scope="module")
def reference(tiny_video_run):
    """(run, test inputs, labels, Keras probabilities) of ``tiny_video_run``, the tiny cnn_rnn
    (the demo's family). Exports of it are written outside its workdir."""
    run = workdir.open_run(str(tiny_video_run))
    x, y = _eval_inputs(run)
    probs = run.load_model("best").predict(x, verbose=0)
    return run, x, y, probs


@pytest.fixture(scope="module")
def exports(tiny_video_run, tmp_path_factory):
    """The three TFLite exports of ``tiny_video_run``, made in this process: float32 and
    float16 as folders, int8 as a file named model_int8.tflite."""
    out = tmp_path_factory.mktemp("exports")
    names = {"none": "none", "float16": "float16", "int8": "model_int8.tflite"}
    return {q: export.export(str(tiny_video_run), "tflite", quantize=q,
                             output=str(out / names[q]), representative_examples=12)
            for q in ("none", "float16", "int8")}


def _export_json(info) -> str:
    return info.get("export_json") or f"{info['path']}/export.json"


def _umask() -> int:
    import os
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.integration
def test_saved_model_cli_export_matches_keras(tiny_video_run, reference, tmp_path):
    import tensorflow as tf
    run, x, _, probs = reference
    out = tmp_path / "sm"
    r = run_module("trainers.export", f"--workdir={tiny_video_run}", "--format=saved_model",
                   f"--output={out}")
    assert r.returncode == 0, r.stderr
    assert f"[export] wrote {out}" in r.stdout

    loaded = tf.saved_model.load(str(out))
    serve = loaded.signatures["serving_default"]
    spec = serve.structured_input_signature[1]["inputs"]
    assert spec.dtype == tf.uint8 and spec.shape.as_list() == [None, 8, 32, 32, 3]
    assert list(serve.structured_outputs) == ["probabilities"]
    got = serve(inputs=tf.constant(x))["probabilities"].numpy()
    assert_parity(probs, got, "saved_model")
    one = serve(inputs=tf.constant(x[:1]))["probabilities"].numpy()      # any batch size
    np.testing.assert_allclose(one, probs[:1], atol=ATOL["saved_model"])
    np.testing.assert_allclose(saved_model.run_saved_model(str(out), x), got, atol=1e-6)
    assert [p.name for p in tmp_path.iterdir()] == ["sm"]        # no temporary left behind
    import os
    for folder in (out, out / "variables"):                     # usual permissions, not 0700
        assert os.stat(folder).st_mode & 0o777 == 0o777 & ~_umask(), folder

    assert json.loads((out / "classes.json").read_text()) == list(run.classes)
    meta = json.loads((out / "export.json").read_text())
    assert meta["format"] == "saved_model" and meta["quantize"] is None
    assert meta["classes"] == list(run.classes) and meta["modality"] == "video"
    assert meta["input"] == {"name": "inputs", "shape": [None, 8, 32, 32, 3], "dtype": "uint8",
                             "quantization": None}
    assert meta["output"]["name"] == "probabilities" and meta["output"]["shape"] == [None, 5]
    assert meta["build"]["sampling"] == run.info["sampling"]
    assert meta["build"]["build_dir"] == run.config.data.build_dir
    pre = meta["preprocessing"]
    assert (pre["num_frames"], pre["sampling"], pre["crop_size"], pre["crop"]) == \
        (8, "uniform", 32, "center")
    assert meta["checkpoint"] == str((tiny_video_run / "checkpoints" / "best.keras").resolve())

    # --overwrite replaces an earlier export (here: by the last checkpoint's)
    again = export.export(str(tiny_video_run), "saved_model", output=str(out), checkpoint="last",
                          overwrite=True)
    assert again["checkpoint"].endswith("last.keras")
    assert json.loads((out / "export.json").read_text())["checkpoint"].endswith("last.keras")


@pytest.mark.parametrize("quantize", ["none", "float16", "int8"])
def test_tflite_matches_keras_on_the_test_split(exports, reference, quantize):
    run, x, _, probs = reference
    info = exports[quantize]
    got = tflite.run_tflite(info["path"], x)
    assert got.dtype == np.float32 and got.shape == probs.shape
    diff, agree = assert_parity(probs, got, quantize)
    print(f"tiny run, TFLite {quantize}: max |dp| {diff:.3g}, top-1 agreement {agree:.2f}")
    assert "WHILE" not in info["operators"]              # recurrences unrolled
    assert not [op for op in info["operators"] if op.startswith("Flex") or op == "CUSTOM"]
    assert info["input"]["dtype"] == "uint8" and info["input"]["shape"] == [1, 8, 32, 32, 3]
    with open(_export_json(info)) as f:
        meta = json.load(f)
    assert meta["quantize"] == quantize and meta["classes"] == list(run.classes)


def test_int8_is_integer_only_with_pixel_input(exports):
    import tensorflow as tf
    info = exports["int8"]
    assert info["input"]["quantization"] == {"scale": 1.0, "zero_point": 0}
    assert info["output"]["dtype"] == "int8"
    assert info["output"]["quantization"] == {"scale": 1 / 256, "zero_point": -128}
    assert info["calibration"] == {"split": "train", "examples": 12}
    assert not {"CAST", "DEQUANTIZE"} & set(info["operators"])
    interpreter = tf.lite.Interpreter(model_path=info["path"])
    dtypes = {d["dtype"].__name__ for d in interpreter.get_tensor_details()}
    assert dtypes == {"uint8", "int8", "int32"}           # no float tensor anywhere
    uint8 = [d for d in interpreter.get_tensor_details() if d["dtype"] == np.uint8]
    assert [d["name"] for d in uint8] == [info["input"]["tensor"]]


def test_an_output_named_tflite_is_the_file_and_folders_are_not_private(exports, reference):
    import os
    import pathlib
    info = exports["int8"]
    path = pathlib.Path(info["path"])
    assert path.name == "model_int8.tflite" and path.is_file()
    assert path.read_bytes()[4:8] == b"TFL3"                         # the flatbuffer itself
    beside = sorted(p.name for p in path.parent.iterdir() if p.name.startswith("model_int8"))
    assert beside == ["model_int8.classes.json", "model_int8.export.json", "model_int8.tflite"]
    assert (info["export_json"], info["classes_json"]) == (
        str(path.parent / "model_int8.export.json"), str(path.parent / "model_int8.classes.json"))
    meta = json.loads((path.parent / "model_int8.export.json").read_text())
    assert meta["file"] == "model_int8.tflite" and meta["quantize"] == "int8"
    run = reference[0]
    assert json.loads((path.parent / "model_int8.classes.json").read_text()) == list(run.classes)
    assert export.model_bytes(str(path)) == path.stat().st_size
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".export_")]
    # A folder export has the permissions a new folder gets, not a temporary folder's 0700.
    folder = pathlib.Path(exports["none"]["path"])
    assert os.stat(folder).st_mode & 0o777 == 0o777 & ~_umask()
    assert (folder / "model.tflite").is_file() and (folder / "export.json").is_file()


def test_tflite_file_outputs_refuse_what_they_should(tiny_video_run, exports, tmp_path):
    import pathlib
    with pytest.raises(export.ExportError, match=r"names a \.tflite file: give --format tflite"):
        export.export(str(tiny_video_run), "saved_model", output=str(tmp_path / "m.tflite"))
    existing = pathlib.Path(exports["int8"]["path"])
    with pytest.raises(export.ExportError, match="already exists .*--overwrite"):
        export.export(str(tiny_video_run), "tflite", output=str(existing))
    mine = tmp_path / "mine.tflite"
    mine.write_bytes(b"not an export")
    with pytest.raises(export.ExportError, match="is not part of an earlier export"):
        export.export(str(tiny_video_run), "tflite", output=str(mine), overwrite=True)
    assert mine.read_bytes() == b"not an export"


def test_float_tflite_sizes(exports):
    sizes = {q: export.model_bytes(exports[q]["path"]) for q in exports}
    assert sizes["float16"] < sizes["none"]
    assert exports["none"]["output"]["dtype"] == exports["float16"]["output"]["dtype"] == \
        "float32"


def test_dequantize_and_quantize_input():
    q = np.array([-128, -64, 0, 127], np.int8)
    np.testing.assert_array_equal(tflite.dequantize(q, (1 / 256, -128)),
                                  np.array([0, 64, 128, 255], np.float32) / 256)
    np.testing.assert_array_equal(tflite.dequantize(q, {"scale": 0.5, "zero_point": 0}),
                                  np.array([-64, -32, 0, 63.5], np.float32))
    np.testing.assert_array_equal(tflite.dequantize(q, None), q.astype(np.float32))
    pixels = np.array([0, 17, 255], np.uint8)
    assert tflite.quantize_input(pixels, (1.0, 0), np.uint8).tolist() == [0, 17, 255]
    floats = np.array([-1.0, 0.0, 0.26, 5.0], np.float32)
    assert tflite.quantize_input(floats, (0.01, -28), np.int8).tolist() == [-128, -28, -2, 127]


def test_export_refuses_what_it_should(tiny_video_run, tmp_path):
    with pytest.raises(export.ExportError, match="applies to --format tflite only"):
        export.export(str(tiny_video_run), "saved_model", quantize="float16",
                      output=str(tmp_path / "x"))
    with pytest.raises(export.ExportError, match="not a training workdir"):
        export.export(str(tmp_path), "saved_model")
    with pytest.raises(export.ExportError, match="no checkpoint"):
        export.export(str(tiny_video_run), "saved_model", checkpoint=str(tmp_path / "no.keras"),
                      output=str(tmp_path / "y"))
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(export.ExportError, match="already exists .*--overwrite"):
        export.export(str(tiny_video_run), "saved_model", output=str(other))
    with pytest.raises(export.ExportError, match="not an export"):
        export.export(str(tiny_video_run), "saved_model", output=str(other), overwrite=True)
    assert (other / "keep.txt").read_text() == "mine"
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


@pytest.mark.parametrize("args, message", [
    (["--format=saved_model", "--quantize=int8"], "applies to --format tflite only"),
    (["--format=onnx"], "--format"),
    (["--quantize=int4", "--format=tflite"], "--quantize"),
    (["--representative_examples=0", "--format=tflite", "--quantize=int8"],
     "representative_examples"),
    ([], "not a training workdir"),
])
def test_cli_mistakes_exit_2_with_one_line(tmp_path, args, message):
    r = run_module("trainers.export", f"--workdir={tmp_path}", *args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.startswith("error: ") and message in r.stderr.splitlines()[0]
    assert "Traceback" not in r.stderr


def test_cli_output_exists_and_missing_workdir(tiny_video_run, tmp_path):
    out = tmp_path / "existing"
    out.mkdir()
    r = run_module("trainers.export", f"--workdir={tiny_video_run}", f"--output={out}")
    assert r.returncode == 2 and "--overwrite" in r.stderr and "Traceback" not in r.stderr
    r = run_module("trainers.export", "--format=tflite")
    assert r.returncode == 2 and r.stderr.startswith("error: --workdir is required")


def test_cli_help_lists_every_flag():
    r = run_module("trainers.export", "--help")
    assert r.returncode == 0
    for flag in ("--workdir:", "--format:", "--quantize:", "--checkpoint:", "--output:",
                 "--[no]overwrite:", "--representative_examples:", "--[no]select_tf_ops:",
                 "--[no]verbose:"):
        assert flag in r.stdout, flag


# --------------------------------------------------------------------------
# A model trained on real records: the soccer kicks (curl vs laces).
# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def soccer_run(real_video_run):
    return real_video_run


@pytest.mark.real
@pytest.mark.integration
def test_int8_export_of_a_model_trained_on_real_videos(soccer_run, tmp_path):
    run = workdir.open_run(str(soccer_run))
    assert run.classes == ("curl", "laces")
    x, _ = _eval_inputs(run)
    probs = run.load_model("best").predict(x, verbose=0)
    info = export.export(str(soccer_run), "tflite", quantize="int8", output=str(tmp_path / "q"),
                         representative_examples=14)
    assert info["input"]["shape"] == [1, 6, 32, 32, 3]
    assert info["input"]["quantization"] == {"scale": 1.0, "zero_point": 0}
    assert info["calibration"]["examples"] == 14
    got = tflite.run_tflite(info["path"], x)
    diff, agree = assert_parity(probs, got, "int8")
    print(f"soccer run, TFLite int8: max |dp| {diff:.3g}, top-1 agreement {agree:.2f} on "
          f"{len(x)} clips")


# --------------------------------------------------------------------------
# Other families, converted directly (random weights: conversion and arithmetic only).
# --------------------------------------------------------------------------
def test_keypoint_lstm_converts_to_int8_with_an_int8_input(tmp_path):
    from trainers import models
    model = models.build_model("keypoint_rnn", dict(units=(8,), dropouts=(0.2,),
                                                    dense_units=(8,)),
                               input_shape=(12, 6), num_classes=3)
    rng = np.random.default_rng(0)
    windows = rng.random((10, 12, 6), dtype=np.float32)
    info = tflite.convert_tflite(model, str(tmp_path / "k.tflite"), "int8", modality="keypoints",
                                 representative=list(windows[:8]))
    assert info["input"]["dtype"] == "int8" and info["input"]["quantization"]["scale"] > 0
    assert info["output"]["dtype"] == "int8" and info["output"]["shape"] == [1, 12, 3]
    assert not {"WHILE", "READ_VARIABLE", "CAST", "DEQUANTIZE"} & set(info["operators"])
    reference = model.predict(windows, verbose=0)
    got = tflite.run_tflite(str(tmp_path / "k.tflite"), windows)
    assert got.shape == reference.shape
    assert np.abs(got - reference).max() <= ATOL["int8"]


def test_a_model_without_builtin_kernels_is_refused_with_the_reason(tmp_path):
    from trainers import models
    model = models.build_model("conv3d", dict(filters=(4,), dense_units=(8,)),
                               input_shape=(4, 16, 16, 3), num_classes=2)
    # the conversion's own error (trainers.export turns it into ExportError: one line, exit 2)
    with pytest.raises(tflite.ConversionError, match="no builtin TFLite kernel for TensorFlow "
                                                     "operator.*MaxPool3D.*--select_tf_ops"):
        tflite.convert_tflite(model, str(tmp_path / "c.tflite"), "none", modality="video")
    assert not (tmp_path / "c.tflite").exists()
    # allowed TensorFlow operators, it converts and runs (with the Flex delegate)
    info = tflite.convert_tflite(model, str(tmp_path / "c.tflite"), "none", modality="video",
                                 select_tf_ops=True)
    assert "FlexMaxPool3D" in info["operators"] and "CONV_3D" in info["operators"]
    clips = np.random.default_rng(1).integers(0, 256, (3, 4, 16, 16, 3), dtype=np.uint8)
    np.testing.assert_allclose(tflite.run_tflite(str(tmp_path / "c.tflite"), clips),
                               model.predict(clips, verbose=0), atol=ATOL["none"])


def test_mixed_precision_models_are_exported_in_float32(tmp_path):
    import keras
    from trainers import models
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = models.build_model("cnn_rnn", dict(filters=(4,), dense_units=(8,), rnn_units=4),
                                   input_shape=(4, 16, 16, 3), num_classes=3)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert saved_model.mixed(model)
    twin = saved_model.rebuilt(model, unroll=True)
    assert not saved_model.mixed(twin)
    assert twin.get_layer("rnn").unroll and not model.get_layer("rnn").unroll
    clips = np.random.default_rng(2).integers(0, 256, (3, 4, 16, 16, 3), dtype=np.uint8)
    reference = model.predict(clips, verbose=0)
    tflite.convert_tflite(model, str(tmp_path / "m.tflite"), "none", modality="video")
    got = tflite.run_tflite(str(tmp_path / "m.tflite"), clips)
    # float16 arithmetic in Keras against float32 in TFLite: 11-bit mantissas
    np.testing.assert_allclose(got, reference, atol=5e-3)
    np.testing.assert_allclose(got, twin.predict(clips, verbose=0), atol=ATOL["none"])
