"""Reading a training workdir back: config, classes, build and checkpoints, with clear errors."""
from __future__ import annotations

import csv
import json
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


# --------------------------------------------------------------------------
# One experiment per workdir; a run that reads its build from anywhere.
# --------------------------------------------------------------------------
def test_a_workdir_holds_one_experiment_unless_told_to_start_afresh(
        tiny_video_run, tiny_video_build, tmp_path, monkeypatch, capsys):
    """Another model family in a finished run's workdir is refused in one line, touching
    nothing; train.overwrite deletes the old outputs (not the user's files) and trains
    afresh. The build, named relative to the current folder, is recorded absolute."""
    import keras
    from configs import common
    from trainers import data, train
    work = tmp_path / "run"
    shutil.copytree(tiny_video_run, work)
    assert json.loads((work / "fingerprint.json").read_text()) == {
        "model_name": "cnn_rnn", "input_shape": [8, 32, 32, 3],
        "classes": json.loads((work / "classes.json").read_text()),
        "build_dir": str(tiny_video_build)}
    (work / "eval" / "val").mkdir(parents=True)
    (work / "eval" / "val" / "metrics.json").write_text("{}")
    (work / "notes.txt").write_text("mine")
    monkeypatch.chdir(tiny_video_build.parent)

    def conv3d(**settings):
        return common.experiment(
            model_name="conv3d", model=dict(filters=(4, 8), dense_units=(16,)),
            data=dict(build_dir="t", num_frames=8, crop_size=32, crop="center",
                      sampling="uniform"),
            train=dict(epochs=1, steps_per_epoch=1, batch_size=4, **settings))

    with pytest.raises(data.ConfigError) as refused:
        train.train(conv3d(), str(work))
    assert str(refused.value) == (
        f"{work} holds another experiment: model_name cnn_rnn there, conv3d now. Use another "
        "--workdir, or pass --config.train.overwrite=True to delete its outputs and start "
        "afresh")
    assert (work / "eval" / "val" / "metrics.json").is_file()
    try:
        train.train(conv3d(overwrite=True), str(work))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    out = capsys.readouterr().out
    assert (f"[train] train.overwrite: removed the earlier run's outputs from {work} "
            "(checkpoints, classes.json, config.json, curves.png, dataset_info.json, eval, "
            "fingerprint.json, history.csv, result.json, tensorboard); starting afresh") in out
    assert "[train] conv3d on t (video, 5 classes)" in out
    assert not (work / "eval").exists() and (work / "notes.txt").read_text() == "mine"
    with open(work / "history.csv") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["0"]
    config = json.loads((work / "config.json").read_text())
    assert (config["model_name"], config["data"]["build_dir"]) == ("conv3d",
                                                                   str(tiny_video_build))
    assert json.loads((work / "fingerprint.json").read_text())["model_name"] == "conv3d"


def test_runs_without_a_fingerprint_are_compared_by_their_config(tiny_video_run, tmp_path):
    work = tmp_path / "run"
    shutil.copytree(tiny_video_run, work)
    same = json.loads((work / "fingerprint.json").read_text())
    (work / "fingerprint.json").unlink()
    workdir.check_experiment(str(work), same)
    with pytest.raises(workdir.RunError, match=r"build_dir \S+ there, /elsewhere now.*"
                                               r"python -m trainers.workdir relocate"):
        workdir.check_experiment(str(work), {**same, "build_dir": "/elsewhere"})
    with pytest.raises(workdir.RunError, match="classes 5 classes .* there, 2 classes"):
        workdir.check_experiment(str(work), {**same, "classes": ["a", "b"]})
    for name in ("config.json", "classes.json"):
        (work / name).unlink()
    with pytest.raises(workdir.RunError, match="outputs of an earlier run .* but no record"):
        workdir.check_experiment(str(work), same)
    workdir.check_experiment(str(tmp_path / "new"), same)


def test_the_resume_command_does_not_start_afresh_again():
    from trainers import train
    assert train.without_overwrite(["--config=c.py", "--config.train.overwrite=True",
                                    "--workdir", "w"]) == ["--config=c.py", "--workdir", "w"]
    assert train.without_overwrite(["--config.train.overwrite", "True", "--workdir=w"]) == [
        "--workdir=w"]


def test_a_moved_build_is_recorded_with_relocate(tiny_video_run, tiny_video_build, tmp_path,
                                                  capsys, monkeypatch):
    from trainers import evaluate
    work = tmp_path / "run"
    shutil.copytree(tiny_video_run, work)
    config = json.loads((work / "config.json").read_text())
    config["data"]["build_dir"] = str(tmp_path / "gone")
    (work / "config.json").write_text(json.dumps(config))
    with pytest.raises(workdir.RunError, match="no build at .*gone .*python -m trainers.workdir "
                                               f"relocate {work} NEW_BUILD_DIR"):
        evaluate.plan_evaluation(workdir.open_run(str(work)))

    moved = tmp_path / "moved" / "t"
    shutil.copytree(tiny_video_build, moved)
    monkeypatch.chdir(tmp_path)       # python -m trainers.workdir relocate WORKDIR moved/t
    assert workdir.main(["trainers.workdir", "relocate", str(work), "moved/t"]) == 0
    assert capsys.readouterr().out == f"[workdir] {work} now reads its build at {moved}\n"
    run = workdir.open_run(str(work))
    assert run.config.data.build_dir == str(moved)
    assert json.loads((work / "fingerprint.json").read_text())["build_dir"] == str(moved)
    plan = evaluate.plan_evaluation(run)
    assert (plan.build_dir, plan.split) == (str(moved), "test")

    info = json.loads((moved / "dataset_info.json").read_text())
    info["classes"] = info["classes"][::-1]
    (moved / "dataset_info.json").write_text(json.dumps(info))
    with pytest.raises(workdir.RunError, match="does not have the run's classes"):
        workdir.relocate(str(work), str(moved))
    assert workdir.main(["trainers.workdir", "relocate", str(work)]) == 2
    assert capsys.readouterr().err.startswith("error: expected: relocate WORKDIR BUILD_DIR")
