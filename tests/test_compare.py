"""python -m trainers.compare: the table, the chart and the errors, from metrics.json files."""
from __future__ import annotations

import json

import pytest

from conftest import run_module
from trainers import compare


def evaluated(root, name, family, split="test", **numbers):
    """A workdir with config.json and the metrics.json trainers.evaluate writes."""
    work = root / name
    (work / "eval" / split).mkdir(parents=True)
    (work / "config.json").write_text(json.dumps({"model_name": family}))
    result = {"split": split, "counts": {"videos": numbers.pop("videos", 200)}, **numbers}
    (work / "eval" / split / "metrics.json").write_text(json.dumps(result))
    return work


@pytest.fixture
def runs(tmp_path):
    a = evaluated(tmp_path, "gesture_cnn_gru", "cnn_rnn", top1=0.9, top5=1.0,
                  mean_class_accuracy=0.88, loss=0.31234)
    b = evaluated(tmp_path, "conv3d", "conv3d", top1=0.725, top5=0.95,
                  mean_class_accuracy=0.7, loss=1.2, videos=120)
    return a, b


def test_table_and_chart(runs, tmp_path, capsys):
    out = tmp_path / "charts" / "c.png"
    assert compare.compare_main(["trainers.compare", *map(str, runs), f"--out={out}",
                                 "--metric=top1,loss", "--metric", "top5"]) == 0
    text = capsys.readouterr().out
    assert text.splitlines() == [
        "run              family    top-1   top-5  mean class acc    loss  videos",
        "---------------  -------  ------  ------  --------------  ------  ------",
        "gesture_cnn_gru  cnn_rnn  0.9000  1.0000          0.8800  0.3123     200",
        "conv3d           conv3d   0.7250  0.9500          0.7000  1.2000     120",
        f"[compare] chart: {out}"]
    import matplotlib.image
    image = matplotlib.image.imread(str(out))
    # two panels: top-1 and top-5 on 0..1 (2 metrics), the loss alone; the legend below
    assert image.shape[0] == 515 and image.shape[1] > 600
    assert image[..., :3].std() > 0.05
    colours = {tuple(int(round(v * 255)) for v in px) for px in image[..., :3].reshape(-1, 3)}
    assert {(0, 114, 178), (230, 159, 0)} <= colours          # Okabe-Ito blue and orange
    assert (31, 119, 180) not in colours                      # not matplotlib's tab10


def test_chart_grows_with_runs_and_keeps_long_names_readable(tmp_path):
    names = [f"run_{i}" for i in range(9)] + ["ucf101_resnet152v2_lstm_finetune_all_layers_"
                                                "lr0.0001_batch32_seed7"]
    runs = [evaluated(tmp_path, n, "cnn_rnn", top1=0.5 + i / 40, top5=0.9, loss=1.0 + i / 10)
            for i, n in enumerate(names)]
    import matplotlib.image
    sizes = {}
    for n in (2, 5, 10):
        out = tmp_path / f"c{n}.png"
        compare.compare([str(r) for r in runs[:n]], metrics=["top1", "top5", "loss"],
                        out=str(out))
        sizes[n] = matplotlib.image.imread(str(out)).shape[:2]
    assert sizes[2][1] < sizes[5][1] < sizes[10][1]           # wider with more runs
    assert sizes[10][1] <= 2600
    assert compare.short_name(names[-1]) == "ucf101_resnet152v2_lstm…s_lr0.0001_batch32_seed7"
    assert len(compare.short_name(names[-1])) == compare.MAX_LEGEND_CHARS
    # Past eight runs the colours come back hatched: every run is told apart.
    styles = [(s["color"], s["hatch"]) for s in map(compare.run_style, range(10))]
    assert len(set(styles)) == 10 and styles[8] == (compare.COLOURS[0], "//")


def test_runs_without_accuracy_and_same_names(tmp_path):
    one = evaluated(tmp_path / "x", "run", "keypoint_rnn", frame_accuracy=0.8, videos=8)
    two = evaluated(tmp_path / "y", "run", "cnn_rnn", top1=0.5)
    rows, text = compare.compare([str(one), str(two)], metrics=["top1"],
                                 out=str(tmp_path / "c.png"))
    assert [r["run"] for r in rows] == [str(one), str(two)]          # names would clash
    assert text.splitlines()[2].split() == [str(one), "keypoint_rnn", "-", "-", "-", "-", "8"]
    rows, _ = compare.compare([str(one)], metrics=["frame_accuracy"], out=str(tmp_path / "k.png"))
    assert rows[0]["frame_accuracy"] == 0.8


@pytest.mark.parametrize("args,message", [
    (["{a}", "{missing}"], r"run {missing} has no evaluation of split 'test' yet \(.*metrics.json "
                           r"is missing\): run python -m trainers.evaluate --workdir {missing} "
                           r"--split test"),
    (["{a}", "--split=val"], r"run {a} has no evaluation of split 'val'"),
    (["{a}", "{tmp}/nowhere"], r"{tmp}/nowhere does not exist"),
    (["{a}", "--metric=accuracy"], r"no run has a metric 'accuracy' in its metrics.json; they "
                                   r"have loss, mean_class_accuracy, top1, top5"),
    ([], r"give the workdirs to compare"),
])
def test_mistakes_exit_2(runs, tmp_path, capsys, args, message):
    missing = tmp_path / "trained_only"
    missing.mkdir()
    names = dict(a=runs[0], missing=missing, tmp=tmp_path)
    argv = [a.format(**names) for a in args]
    assert compare.compare_main(["trainers.compare", *argv,
                                 f"--out={tmp_path / 'c.png'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    import re
    assert re.search(message.format(**names), err[0]), err[0]
    assert not (tmp_path / "c.png").exists()


@pytest.mark.integration
def test_command_line(runs, tmp_path):
    r = run_module("trainers.compare", *map(str, runs), f"--out={tmp_path / 'c.png'}")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[2].startswith("gesture_cnn_gru  cnn_rnn  0.9000")
    assert (tmp_path / "c.png").stat().st_size > 10000
    h = run_module("trainers.compare", "--help")
    assert h.returncode == 0 and "--metric" in h.stdout and "grouped bar chart" in h.stdout
    assert "--[no]verbose:" in h.stdout
    bad = run_module("trainers.compare", str(runs[0]), "--nope")
    assert bad.returncode == 2 and bad.stderr.startswith("error: Unknown command line flag")
