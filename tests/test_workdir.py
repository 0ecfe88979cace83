"""Reading a training workdir back: config, classes, build and checkpoints, with clear errors."""
from __future__ import annotations

import shutil

import pytest

from trainers import workdir


def test_open_run_reads_what_training_wrote(tiny_video_run):
    run = workdir.open_run(str(tiny_video_run))
    assert run.modality == "video" and run.model_name == "cnn_rnn"
    assert len(run.classes) == 5 and run.config.data.num_frames == 8
    assert run.info["splits"]["test"]["num_examples"] == 10
    model = run.load_model("best")
    assert model.input_shape == (None, 8, 32, 32, 3) and model.output_shape == (None, 5)
    assert run.checkpoint_path("last").endswith("checkpoints/last.keras")
    assert run.checkpoint_path(run.checkpoint_path("best")) == run.checkpoint_path("best")


def test_bad_workdirs_say_what_is_wrong(tiny_video_run, tmp_path):
    with pytest.raises(workdir.RunError, match="does not exist"):
        workdir.open_run(str(tmp_path / "nowhere"))
    with pytest.raises(workdir.RunError, match="config.json .* is missing"):
        workdir.open_run(str(tmp_path))
    copy = tmp_path / "copy"
    shutil.copytree(tiny_video_run, copy)
    (copy / "classes.json").write_text("[not json")
    with pytest.raises(workdir.RunError, match="not valid JSON"):
        workdir.open_run(str(copy))
    (copy / "classes.json").write_text((tiny_video_run / "classes.json").read_text())
    (copy / "checkpoints" / "best.keras").unlink()
    run = workdir.open_run(str(copy))
    with pytest.raises(workdir.RunError, match="no checkpoint"):
        run.load_model("best")
    (copy / "checkpoints" / "last.keras").write_bytes(b"not a model")
    with pytest.raises(workdir.RunError, match="cannot load"):
        run.load_model("last")
