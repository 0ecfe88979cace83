"""python -m trainers.beam_evaluate: the Beam (RunInference) evaluation equals the plain one."""
from __future__ import annotations

import csv
import json
import re
import shutil

import numpy as np
import pytest

from conftest import run_module
from trainers import beam_evaluate, evaluate, workdir


@pytest.fixture(scope="module")
def three_view_run(tiny_video_run, tmp_path_factory):
    """A copy of the tiny run reading 3 crops per clip: windows of 21 of the 32 pixels
    (crop 32 at shorter side 48) at x = 0, 5, 11, each resized to 32x32, so views differ."""
    work = tmp_path_factory.mktemp("beam") / "run"
    shutil.copytree(tiny_video_run, work)
    config = json.loads((work / "config.json").read_text())
    config["data"].update(resize_shorter=48, num_test_crops=3)
    (work / "config.json").write_text(json.dumps(config))
    return work


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
@pytest.mark.integration
def test_beam_evaluation_equals_the_single_process_one(three_view_run, tmp_path, capsys):
    run = workdir.open_run(str(three_view_run))
    single = evaluate.evaluate(run, split="test", out_dir=str(tmp_path / "single"),
                               progress=False)
    beam = beam_evaluate.evaluate_with_beam(run, ["--direct_num_workers=2"], split="test",
                                            out_dir=str(tmp_path / "beam"))
    assert "[evaluate] 10/10 videos (100.0%)" in capsys.readouterr().err
    assert beam.pop("runner") == "beam"
    assert single["views_per_video"] == 3 and single["counts"]["views"] == 30
    assert beam.keys() == single.keys()
    for key, value in single.items():
        if isinstance(value, float):
            assert beam[key] == pytest.approx(value, abs=1e-6), key
        else:
            assert beam[key] == value, key
    a, b = read_rows(tmp_path / "single" / "predictions.csv"), read_rows(
        tmp_path / "beam" / "predictions.csv")
    assert len(a) == len(b) == 10
    for ra, rb in zip(a, b):
        for column in ra:
            if "probability" in column and ra[column]:
                assert float(rb[column]) == pytest.approx(float(ra[column]), abs=1e-5), column
            else:
                assert rb[column] == ra[column], column
    for name in ("confusion_matrix.csv", "per_class.csv", "classification_report.txt"):
        assert (tmp_path / "beam" / name).read_text() == (tmp_path / "single" / name).read_text()
    # the three views of a video do differ, so the averaging above was exercised
    plan = evaluate.plan_evaluation(run, split="test")
    views = evaluate.predict_views(run.load_model(plan.checkpoint), plan, progress=False)
    first = views.outputs[views.video_index == 0]
    assert first.shape == (3, 5) and np.abs(first - first.mean(axis=0)).max() > 1e-4


def test_preprocess_is_the_readers_per_record_function(three_view_run):
    import tensorflow as tf
    run = workdir.open_run(str(three_view_run))
    plan = evaluate.plan_evaluation(run, split="test", batch_size=4)
    shard = f"{plan.build_dir}/{plan.info['splits']['test']['shards'][0]}"
    records = [r.numpy() for r in tf.data.TFRecordDataset(shard)]
    fn = beam_evaluate.Preprocess(beam_evaluate.spec_args(plan), image=False)
    fn.setup()
    ours = [list(fn.process(((0, i), rec))) for i, rec in enumerate(records)]
    video, label, meta = next(iter(evaluate.make_eval_dataset(plan)))
    assert video.shape == (12, 8, 32, 32, 3)             # 4 videos x 3 views
    for v in range(4):
        keys = [key for key, _ in ours[v]]
        assert keys == [(0, v, view, meta["video_id"][3 * v].numpy().decode(),
                         int(label[3 * v])) for view in range(3)]
        for view, (_, array) in enumerate(ours[v]):
            np.testing.assert_array_equal(array, video[3 * v + view].numpy())


def test_rows_are_numbered_in_record_order(tmp_path):
    rows = [dict(shard=1, position=0, view=0, video_id="c", label=2, outputs=[0.1, 0.9]),
            dict(shard=0, position=1, view=0, video_id="b", label=1, outputs=[0.3, 0.7]),
            dict(shard=0, position=0, view=0, video_id="a", label=0, outputs=[0.5, 0.5])]
    (tmp_path / "views-00000-of-00002.jsonl").write_text(
        "\n".join(json.dumps(r) for r in rows[:2]) + "\n")
    (tmp_path / "views-00001-of-00002.jsonl").write_text(json.dumps(rows[2]) + "\n")
    views = beam_evaluate.read_views(str(tmp_path / "views"))
    order = np.argsort(views.video_index)
    assert [views.video_id[i] for i in order] == ["a", "b", "c"]
    assert views.video_index[order].tolist() == [0, 1, 2]
    assert views.outputs[order] == pytest.approx(np.array([[0.5, 0.5], [0.3, 0.7], [0.1, 0.9]]))


@pytest.mark.parametrize("extra,message", [
    (["--bogus_option=1"], r"unknown flag\(s\) --bogus_option: neither an evaluation flag"),
    (["--runner=DataflowRunner"], "a remote runner needs --temp_location"),
    (["--split=val"], "split 'val' is not in"),
])
def test_mistakes_exit_2(three_view_run, capsys, extra, message):
    argv = ["trainers.beam_evaluate", f"--workdir={three_view_run}", *extra]
    assert beam_evaluate.beam_evaluate_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.search(message, err[0]), err


@pytest.mark.integration
def test_help():
    r = run_module("trainers.beam_evaluate", "--help")
    assert r.returncode == 0
    for text in ("RunInference", "--num_test_clips", "--beam_log_level", "PipelineOptions",
                 "--[no]verbose:"):
        assert text in r.stdout, text
    assert "apitools" not in r.stderr + r.stdout


def test_preprocess_of_images_matches_the_image_reader(tmp_path):
    from test_evaluate import CLASSES6, code_model, red_frames, write_build, write_run
    images = [("i0", 1, red_frames([2], 8, 16, [6])), ("i1", 4, red_frames([10], 8, 16, [6]))]
    build = write_build(tmp_path / "build", CLASSES6, {"test": images}, modality="image")
    run = write_run(tmp_path / "run", build, code_model(6, (8, 8, 3)),
                    model_name="image_classifier", crop_size=8, num_test_crops=3)
    plan = evaluate.plan_evaluation(workdir.open_run(str(run)), split="test", batch_size=2)
    fn = beam_evaluate.Preprocess(beam_evaluate.spec_args(plan), image=True)
    fn.setup()
    import tensorflow as tf
    records = [r.numpy() for r in tf.data.TFRecordDataset(f"{build}/test.tfrecord-00000-of-00001")]
    ours = [array for i, rec in enumerate(records) for _, array in fn.process(((0, i), rec))]
    video, _, _ = next(iter(evaluate.make_eval_dataset(plan)))
    assert video.shape == (6, 8, 8, 3)
    np.testing.assert_array_equal(np.stack(ours), video.numpy())
    # left crop red 2, middle 4 (half 2, half 6), right 6
    assert [int(a[..., 0].mean()) for a in ours[:3]] == [2, 4, 6]


@pytest.mark.slow
@pytest.mark.integration
def test_a_run_leaves_nothing_in_the_temporary_folder(tiny_video_run, tmp_path):
    """Worker processes end at once, without the tear-down that would remove the code
    TensorFlow generates for traced functions: they write it into the run's own temporary
    folder, which the driver removes."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    r = run_module("trainers.beam_evaluate", f"--workdir={tiny_video_run}",
                   f"--out_dir={tmp_path / 'eval'}", "--direct_num_workers=2", "--noprogress",
                   env={"TMPDIR": str(temp)})
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "eval" / "predictions.csv").exists()
    assert list(temp.iterdir()) == []
