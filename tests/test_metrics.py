"""trainers.metrics against values worked out by hand; the confusion plot; action groups."""
from __future__ import annotations

import re

import numpy as np
import pytest

from pipeline.sources import ucf101
from trainers import metrics, report

# 6 examples, 3 classes. Rows true, columns predicted:
#   [[1, 1, 0],      class 0: 2 examples, 1 right
#    [0, 1, 0],      class 1: 1 example, right
#    [1, 0, 2]]      class 2: 3 examples, 2 right
Y_TRUE = [0, 0, 1, 2, 2, 2]
Y_PRED = [0, 1, 1, 2, 0, 2]
CM = [[1, 1, 0], [0, 1, 0], [1, 0, 2]]


def test_confusion_matrix():
    cm = metrics.confusion_matrix(Y_TRUE, Y_PRED, 3)
    assert cm.tolist() == CM and cm.dtype == np.int64
    assert metrics.confusion_matrix([], [], 2).tolist() == [[0, 0], [0, 0]]
    with pytest.raises(ValueError, match=r"true labels must be in \[0, 3\)"):
        metrics.confusion_matrix([3], [0], 3)
    with pytest.raises(ValueError, match="2 true labels but 1 predictions"):
        metrics.confusion_matrix([0, 1], [0], 3)


def test_per_class_precision_recall_f1():
    s = metrics.per_class(CM)
    # precision: diagonal / column sums (2, 2, 2); recall: diagonal / row sums (2, 1, 3)
    assert s["precision"].tolist() == pytest.approx([1 / 2, 1 / 2, 2 / 2])
    assert s["recall"].tolist() == pytest.approx([1 / 2, 1 / 1, 2 / 3])
    # F1 = 2PR / (P + R): 0.5; 2*.5*1/1.5 = 2/3; 2*1*(2/3)/(5/3) = 0.8
    assert s["f1"].tolist() == pytest.approx([0.5, 2 / 3, 0.8])
    assert s["support"].tolist() == [2, 1, 3]
    assert metrics.accuracy(CM) == pytest.approx(4 / 6)
    assert metrics.mean_class_accuracy(CM) == pytest.approx((0.5 + 1 + 2 / 3) / 3)


def test_zero_denominators_are_zero_and_absent_classes_leave_the_macro_average():
    # class 1 is never predicted (precision 0/0); class 2 has no examples (recall 0/0)
    cm = [[2, 0, 1], [1, 0, 0], [0, 0, 0]]
    s = metrics.per_class(cm)
    assert s["precision"].tolist() == pytest.approx([2 / 3, 0.0, 0.0])
    assert s["recall"].tolist() == pytest.approx([2 / 3, 0.0, 0.0])
    assert s["f1"].tolist() == pytest.approx([2 / 3, 0.0, 0.0])
    # mean class accuracy and macro averages: over classes 0 and 1 (support > 0) only
    assert metrics.mean_class_accuracy(cm) == pytest.approx((2 / 3 + 0) / 2)
    avg = metrics.averages(cm)
    assert avg["macro"] == pytest.approx({"precision": 1 / 3, "recall": 1 / 3, "f1": 1 / 3,
                                          "support": 4})
    # weighted by support (3, 1, 0)
    assert avg["weighted"]["recall"] == pytest.approx((3 * 2 / 3 + 0) / 4)


def test_ranking_and_top_k_break_ties_by_class_index():
    probs = np.array([[0.1, 0.4, 0.4, 0.1],      # 1 and 2 tie: 1 first
                      [0.25, 0.25, 0.25, 0.25],  # all tie: 0, 1, 2, 3
                      [0.7, 0.1, 0.0, 0.2]])
    assert metrics.ranking(probs).tolist() == [[1, 2, 0, 3], [0, 1, 2, 3], [0, 3, 1, 2]]
    y = [2, 3, 3]
    assert metrics.top_k_accuracy(probs, y, 1) == pytest.approx(0.0)
    assert metrics.top_k_accuracy(probs, y, 2) == pytest.approx(2 / 3)   # rows 0 and 2
    assert metrics.top_k_accuracy(probs, y, 4) == pytest.approx(1.0)
    assert np.isnan(metrics.top_k_accuracy(probs[:0], [], 1))


def test_cross_entropy_clips_like_keras():
    probs = np.array([[0.5, 0.5], [0.9, 0.1], [1.0, 0.0]])
    # -(log .5 + log .1 + log 1e-7) / 3
    expected = -(np.log(0.5) + np.log(0.1) + np.log(1e-7)) / 3
    assert metrics.cross_entropy(probs, [0, 1, 1]) == pytest.approx(expected)


def test_classification_report_text():
    text = metrics.classification_report(CM, ["walk", "run", "jump"])
    assert text == (
        "             precision    recall  f1-score   support\n"
        "\n"
        "        walk    0.5000    0.5000    0.5000         2\n"
        "         run    0.5000    1.0000    0.6667         1\n"
        "        jump    1.0000    0.6667    0.8000         3\n"
        "\n"
        "    accuracy                        0.6667         6\n"
        "   macro avg    0.6667    0.7222    0.6556         6\n"
        "weighted avg    0.7500    0.6667    0.6778         6\n")
    lines = text.splitlines()
    assert lines[0].split() == ["precision", "recall", "f1-score", "support"]
    assert lines[1] == ""
    assert [ln.split() for ln in lines[2:5]] == [
        ["walk", "0.5000", "0.5000", "0.5000", "2"],
        ["run", "0.5000", "1.0000", "0.6667", "1"],
        ["jump", "1.0000", "0.6667", "0.8000", "3"]]
    assert lines[5] == ""
    assert lines[6].split() == ["accuracy", "0.6667", "6"]
    # macro: (0.5 + 0.5 + 1) / 3, (0.5 + 1 + 2/3) / 3, (0.5 + 2/3 + 0.8) / 3
    assert lines[7].split() == ["macro", "avg", "0.6667", "0.7222", "0.6556", "6"]
    # weighted by (2, 1, 3): (1 + .5 + 3) / 6, (1 + 1 + 2) / 6, (1 + 2/3 + 2.4) / 6
    assert lines[8].split() == ["weighted", "avg", "0.7500", "0.6667", "0.6778", "6"]
    # columns line up: every number ends where its header ends
    ends = [m.end() for m in re.finditer(r"\S+", lines[0])]
    assert [m.end() for m in re.finditer(r"\S+", lines[2])][1:] == ends
    assert len(lines) == 9


def test_group_accuracy():
    groups = {0: "A", 1: "B", 2: "A"}                  # class 3 belongs to no group
    got = metrics.group_accuracy([0, 2, 2, 1, 3], [0, 2, 0, 0, 3], groups)
    assert got == {"A": {"accuracy": 2 / 3, "correct": 2, "videos": 3},
                   "B": {"accuracy": 0.0, "correct": 0, "videos": 1}}
    assert metrics.group_accuracy([0], [0], {0: "A", 1: "B"}) == {
        "A": {"accuracy": 1.0, "correct": 1, "videos": 1}}


def check_confusion_png(path, num_classes):
    """A heatmap sized for its class count (0.2 inch a class), with real content."""
    import matplotlib.image
    image = matplotlib.image.imread(str(path))
    h, w = image.shape[:2]
    side = max(5.0, 0.2 * num_classes + 3)
    assert (h, w) == (round(100 * side), round(100 * (side + 1.2)))
    colours = np.unique((image[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 50                       # a heatmap, labels, not a blank canvas
    # a cell of the darkest blue (a class always right) is present
    assert ((image[..., 0] < 0.1) & (image[..., 2] > 0.25)).any()


def test_confusion_matrix_png_for_5_classes(tmp_path):
    """(101 classes: tests/test_evaluate.py::test_ucf101_action_groups.)"""
    num_classes = 5
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(num_classes), 3)
    pred = np.where(rng.random(y.size) < 0.7, y, rng.integers(0, num_classes, y.size))
    cm = metrics.confusion_matrix(y, pred, num_classes)
    names = [f"Class{i:03d}" for i in range(num_classes)]
    path = tmp_path / "cm.png"
    report.plot_confusion_matrix(cm, names, str(path), "title")
    check_confusion_png(path, num_classes)


def test_ucf101_groups_map_every_class_once_with_the_papers_sizes():
    groups = ucf101.ACTION_GROUPS
    assert {g: len(c) for g, c in groups.items()} == {
        "Human-Object Interaction": 20, "Body-Motion Only": 16, "Human-Human Interaction": 5,
        "Playing Musical Instruments": 10, "Sports": 50}
    names = [c for members in groups.values() for c in members]
    assert len(names) == 101 and len(set(names)) == 101
    assert len({n.lower() for n in names}) == 101
    assert all(re.fullmatch(r"(?:[A-Z][a-z]*)+", n) for n in names), \
        [n for n in names if not re.fullmatch(r"(?:[A-Z][a-z]*)+", n)]
    # spelt as in classInd.txt (first, last and the oddly cased ones)
    for name in ("ApplyEyeMakeup", "YoYo", "HandstandPushups", "WalkingWithDog", "SalsaSpin",
                 "Skijet", "Billiards", "Mixing", "Basketball", "TaiChi", "Nunchucks"):
        assert name in names
    assert ucf101.group_of("HandStandPushups") == "Body-Motion Only"
    assert ucf101.group_of("playingdaf") == "Playing Musical Instruments"
    assert ucf101.group_of("SwipeLeft") is None
    assert ucf101.class_groups(["SwipeLeft", "Archery"]) is None
    assert ucf101.class_groups(["archery", "Haircut"]) == {"Human-Human Interaction": ["Haircut"],
                                                          "Sports": ["archery"]}


def test_action_groups_come_from_the_build():
    classes = ["archery", "Haircut", "Other"]
    groups = {"Sports": ["archery"], "Human-Human Interaction": ["Haircut"]}
    # the build's class_groups, whatever its dataset; classes it does not list have no group
    assert report.action_groups({"dataset": "folder", "classes": classes,
                                 "class_groups": groups}) == {
        0: "Sports", 1: "Human-Human Interaction"}
    assert report.action_groups({"dataset": "ucf101", "classes": classes,
                                 "class_groups": None}) is None
    assert report.action_groups({"dataset": "hmdb51", "classes": classes}) is None
    # a UCF101 build made before builds recorded them: UCF101's own groups, all classes or none
    assert report.action_groups({"dataset": "ucf101", "classes": ["SwipeLeft", "Archery"]}) \
        is None
    assert report.action_groups({"dataset": "ucf101", "classes": ["archery", "Haircut"]}) == {
        0: "Sports", 1: "Human-Human Interaction"}
