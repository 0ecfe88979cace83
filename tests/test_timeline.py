"""Frame probabilities → per-second means → labelled segments, worked out by hand.

Probabilities are multiples of 1/4 or 1/8 so every mean below is exact in floating point.
"""
from __future__ import annotations

import numpy as np
import pytest

from trainers import timeline

# fps 4: three whole seconds and a partial fourth one of 2 frames.
BINARY = np.array([0.0, 0.25, 0.5, 0.25,        # second 0: mean 0.25
                   0.25, 0.75, 0.25, 0.75,      # second 1: mean 0.5 (== threshold 0.5)
                   1.0, 0.5, 0.75, 0.75,        # second 2: mean 0.75
                   0.125, 0.375])               # second 3 (0.5 s): mean 0.25


def test_binary_per_second_means_and_bounds_with_a_partial_last_second():
    np.testing.assert_array_equal(timeline.second_of_frames(14, 4),
                                  [0] * 4 + [1] * 4 + [2] * 4 + [3] * 2)
    np.testing.assert_array_equal(timeline.second_means(BINARY, 4), [0.25, 0.5, 0.75, 0.25])
    starts, ends = timeline.second_bounds(14, 4)
    np.testing.assert_array_equal(starts, [0, 1, 2, 3])
    np.testing.assert_array_equal(ends, [1, 2, 3, 3.5])


def test_binary_segments_merge_seconds_and_a_mean_equal_to_the_threshold_is_positive():
    # labels 0, 1, 1, 0: seconds 1 and 2 merge; score = mean p of the label per second
    assert timeline.timeline(BINARY, 4, threshold=0.5) == [
        {"start_s": 0.0, "end_s": 1.0, "label": 0, "score": 0.75},
        {"start_s": 1.0, "end_s": 3.0, "label": 1, "score": (0.5 + 0.75) / 2},
        {"start_s": 3.0, "end_s": 3.5, "label": 0, "score": 0.75},
    ]
    # threshold 0.75: second 2 (mean 0.75) is still positive, second 1 is not any more
    assert timeline.timeline(BINARY, 4, threshold=0.75) == [
        {"start_s": 0.0, "end_s": 2.0, "label": 0, "score": (0.75 + 0.5) / 2},
        {"start_s": 2.0, "end_s": 3.0, "label": 1, "score": 0.75},
        {"start_s": 3.0, "end_s": 3.5, "label": 0, "score": 0.75},
    ]
    assert timeline.timeline(BINARY, 4, threshold=0.0) == [
        {"start_s": 0.0, "end_s": 3.5, "label": 1, "score": (0.25 + 0.5 + 0.75 + 0.25) / 4}]


def test_multiclass_argmax_ties_take_the_lowest_class_and_equal_seconds_merge():
    probs = np.array([[0.5, 0.25, 0.25], [0.5, 0.5, 0.0],      # second 0: [.5, .375, .125] → 0
                      [0.25, 0.75, 0.0], [0.75, 0.25, 0.0],    # second 1: [.5, .5, 0] tie → 0
                      [0.0, 0.25, 0.75], [0.0, 0.25, 0.75],    # second 2: [0, .25, .75] → 2
                      [0.0, 0.0, 1.0]])                        # second 3 (partial) → 2
    np.testing.assert_array_equal(timeline.second_means(probs, 2),
                                  [[0.5, 0.375, 0.125], [0.5, 0.5, 0.0], [0.0, 0.25, 0.75],
                                   [0.0, 0.0, 1.0]])
    assert timeline.timeline(probs, 2) == [
        {"start_s": 0.0, "end_s": 2.0, "label": 0, "score": 0.5},
        {"start_s": 2.0, "end_s": 3.5, "label": 2, "score": (0.75 + 1.0) / 2},
    ]


def test_uncovered_frames_are_skipped_and_an_uncovered_second_splits_segments():
    nan = np.nan
    probs = np.array([0.75, nan, 0.25, 1.0,   nan, nan, nan, nan,   1.0, 0.5])
    means = timeline.second_means(probs, 4)
    np.testing.assert_array_equal(means[[0, 2]], [2 / 3, 0.75])
    assert np.isnan(means[1])
    np.testing.assert_array_equal(timeline.predict_labels(means, 0.5), [1, -1, 1])
    assert timeline.timeline(probs, 4, threshold=0.5) == [
        {"start_s": 0.0, "end_s": 1.0, "label": 1, "score": 2 / 3},
        {"start_s": 2.0, "end_s": 2.5, "label": 1, "score": 0.75},
    ]
    multi = np.array([[0.25, 0.75], [nan, nan], [0.75, 0.25]])
    np.testing.assert_array_equal(timeline.predict_labels(multi), [1, -1, 0])


def test_non_integer_fps_puts_frames_in_the_second_of_their_time():
    fps = 30000 / 1001                       # 29.97: frame 29 is at 0.968 s, frame 30 at 1.001 s
    seconds = timeline.second_of_frames(90, fps)
    assert seconds[29] == 0 and seconds[30] == 1 and seconds[59] == 1 and seconds[60] == 2
    np.testing.assert_array_equal(np.bincount(seconds), [30, 30, 30])
    starts, ends = timeline.second_bounds(88, fps)
    np.testing.assert_allclose(ends, [1.0, 2.0, 88 / fps])


def test_label_probs_of_binary_and_multiclass_labels():
    np.testing.assert_array_equal(timeline.label_probs([0.25, 0.75, 0.5], [0, 1, -1])[:2],
                                  [0.75, 0.75])
    assert np.isnan(timeline.label_probs([0.25, 0.75, 0.5], [0, 1, -1])[2])
    np.testing.assert_array_equal(
        timeline.label_probs([[0.5, 0.25, 0.25], [0.125, 0.125, 0.75]], [1, 2]), [0.25, 0.75])


def test_true_segments_and_majority_labels_from_frame_labels():
    labels = [0, 0, 1, 1, -1, 1, 1, -1, -1, -1, 2]   # fps 4
    assert timeline.frame_segments(labels, 4) == [(0.0, 0.5, 0), (0.5, 1.0, 1),
                                                 (1.25, 1.75, 1), (2.5, 2.75, 2)]
    # second 0: two 0s, two 1s → tie → 0; second 1: 1, 1 (unlabelled frames ignored);
    # second 2: only label 2
    np.testing.assert_array_equal(timeline.majority_labels(labels, 4), [0, 1, 2])
    # a second with no labelled frame has no truth
    np.testing.assert_array_equal(timeline.majority_labels([1, 1, -1, -1, -1], 2), [1, -1, -1])


def test_binary_scores_of_the_positive_class():
    # truth/pred pairs kept: (1,1) (1,0) (0,0) (0,1) (1,1): tp 2, fn 1, tn 1, fp 1
    s = timeline.scores([1, 1, 0, 0, 1, -1, 0], [1, 0, 0, 1, 1, 1, -1], num_classes=2,
                        binary=True)
    assert s == {"count": 5, "confusion": [[1, 1], [1, 2]], "accuracy": 3 / 5,
                 "precision": 2 / 3, "recall": 2 / 3, "f1": pytest.approx(2 / 3)}
    # nothing predicted positive: precision 0 (not NaN), F1 0
    s = timeline.scores([1, 0], [0, 0], num_classes=2, binary=True)
    assert (s["accuracy"], s["precision"], s["recall"], s["f1"]) == (0.5, 0.0, 0.0, 0.0)


def test_macro_scores_average_the_classes_present_in_truth_or_predictions():
    # class 0: tp 1 fp 1 fn 1 → p .5 r .5 f .5; class 1: tp 1 fp 1 fn 0 → p .5 r 1 f 2/3;
    # class 2: tp 1 fp 0 fn 1 → p 1 r .5 f 2/3; class 3 never occurs and is left out
    s = timeline.scores([0, 0, 1, 2, 2], [0, 1, 1, 2, 0], num_classes=4, binary=False)
    assert s["accuracy"] == 3 / 5
    assert s["precision"] == pytest.approx(2 / 3)
    assert s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(11 / 18)
    assert s["confusion"] == [[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]


def test_nothing_to_score_gives_none_and_bad_inputs_raise():
    assert timeline.scores([-1, -1], [0, 1], num_classes=2, binary=True) == {
        "count": 0, "confusion": [[0, 0], [0, 0]], "accuracy": None, "precision": None,
        "recall": None, "f1": None}
    with pytest.raises(ValueError, match="fps must be a positive number"):
        timeline.second_means([0.5], 0)
    with pytest.raises(ValueError, match="need a threshold"):
        timeline.predict_labels([0.5])
    assert timeline.timeline(np.zeros(0), 4, threshold=0.5) == []
