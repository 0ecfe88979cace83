"""Tests for pipeline.media.keypoints on generated OpenPose JSON and on the real soccer kicks."""
from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest

from pipeline.media import keypoints as kp
from pipeline.sources import openpose
from pipeline.media.items import Item, MediaError
from pipeline.sources.base import SourceOptions
from tfrecords import schema


def _person(points: dict[int, tuple[float, float, float]], num_points: int = 25) -> list:
    """A flat pose_keypoints_2d array; unlisted points are (0, 0, 0)."""
    flat = [0.0] * (3 * num_points)
    for i, xyc in points.items():
        flat[3 * i:3 * i + 3] = xyc
    return flat


def _frame(*people: list) -> str:
    return json.dumps({"version": 1.3,
                       "people": [{"person_id": [-1], "pose_keypoints_2d": p} for p in people]})


def _item(root, frames: dict[int, str], video_id: str = "clip", label: int = 1,
          extra: dict | None = None) -> Item:
    """Writes one file per frame number (text as given) and returns the source's item."""
    root.mkdir(parents=True, exist_ok=True)
    numbers = sorted(frames)
    files = []
    for n in numbers:
        path = root / f"{video_id}_{n:012d}_keypoints.json"
        path.write_text(frames[n])
        files.append(str(path))
    return Item(str(root), video_id, "train", label, f"class{label}", kind="keypoints",
                files=tuple(files), extra={"frame_numbers": numbers, **(extra or {})})


def _parse(record: bytes) -> dict:
    """A record through schema.parse_keypoints (+ the context keys it does not return)."""
    import tensorflow as tf
    parsed = {k: v.numpy() for k, v in schema.parse_keypoints(record).items()}
    t, p, v, c = (int(parsed[k]) for k in ("num_frames", "num_people", "num_points",
                                            "num_coords"))
    parsed["values"] = parsed["values"].reshape(t, p, v, c)
    parsed["mask"] = parsed["mask"].reshape(t, p, v)
    ctx, _ = tf.io.parse_single_sequence_example(record, context_features={
        schema.KEYPOINTS_NAMES: tf.io.VarLenFeature(tf.string),
        schema.KEYPOINTS_NUM_MISSING_FRAMES: tf.io.FixedLenFeature([], tf.int64),
        schema.IMAGE_WIDTH: tf.io.FixedLenFeature([], tf.int64, default_value=-1),
        schema.IMAGE_HEIGHT: tf.io.FixedLenFeature([], tf.int64, default_value=-1)})
    parsed["names"] = [n.decode() for n in tf.sparse.to_dense(ctx[schema.KEYPOINTS_NAMES]).numpy()]
    parsed["num_missing"] = int(ctx[schema.KEYPOINTS_NUM_MISSING_FRAMES])
    parsed["size"] = (int(ctx[schema.IMAGE_WIDTH]), int(ctx[schema.IMAGE_HEIGHT]))
    return parsed


def _points(person: list, num_points: int = 25) -> np.ndarray:
    return np.asarray(person, np.float32).reshape(num_points, 3)


# --- one person, the whole record ------------------------------------------

def test_single_person_record(tmp_path):
    a = _person({0: (10, 20, 0.5), 1: (30, 40, 0.7), 24: (1, 2, 0.1)})
    b = _person({0: (11, 21, 0.6), 2: (5, 6, 0.0)})     # point 2 unseen: zeroed
    item = _item(tmp_path, {0: _frame(a), 1: _frame(b)}, label=3)
    records, problems = kp.make_keypoint_records(item, kp.KeypointSpec(source_fps=10.0))
    assert problems == []
    assert len(records) == 1
    rec = records[0]
    assert rec[:4] == ("clip", 3, "class3", 2)
    p = _parse(rec.record)
    expected = np.stack([_points(a), _points(_person({0: (11, 21, 0.6)}))])[:, None]
    np.testing.assert_array_equal(p["values"], expected)
    mask = np.zeros((2, 1, 25), np.float32)
    mask[0, 0, [0, 1, 24]] = 1
    mask[1, 0, 0] = 1
    np.testing.assert_array_equal(p["mask"], mask)
    assert p["layout"] == b"BODY_25"
    assert p["names"] == list(kp.BODY_25)
    assert (int(p["num_people"]), int(p["num_points"]), int(p["num_coords"])) == (1, 25, 3)
    assert (int(p["label"]), p["label_text"], p["video_id"]) == (3, b"class3", b"clip")
    assert float(p["fps"]) == 10.0
    assert p["timestamps_us"].tolist() == [0, 100000]
    assert p["source_indices"].tolist() == [0, 1]
    assert p["frame_labels"].tolist() == [-1, -1]
    assert p["num_missing"] == 0
    assert p["size"] == (-1, -1)                         # pixels: no frame size written


def test_coco_layout_detected(tmp_path):
    item = _item(tmp_path, {0: _frame(_person({13: (7, 8, 0.9)}, 18))})
    seq, _ = kp.read_sequence(item, kp.KeypointSpec())
    assert (seq.layout, seq.point_names, seq.values.shape) == ("COCO", kp.COCO, (1, 1, 18, 3))
    assert seq.values[0, 0, 13].tolist() == [7, 8, pytest.approx(0.9)]
    assert seq.fps == 0.0


def test_timestamps_zero_without_fps(tmp_path):
    item = _item(tmp_path, {4: _frame(_person({0: (1, 1, 1)})), 5: _frame()})
    p = _parse(kp.make_keypoint_records(item, kp.KeypointSpec())[0][0].record)
    assert p["timestamps_us"].tolist() == [0, 0]
    assert p["source_indices"].tolist() == [4, 5]


# --- people policies --------------------------------------------------------

A = _person({0: (95, 95, 0.8), 1: (105, 105, 0.8), 2: (50, 50, 0.0)})  # confident, small
B = _person({0: (400, 400, 0.6), 1: (600, 600, 0.6)})                  # big
GHOST = _person({0: (0, 0, 0.0), 1: (5000, 5000, 0.0)})                # nothing seen
X = _person({0: (105, 95, 0.3), 1: (115, 105, 0.3)})                   # next to A, unsure
Y = _person({0: (895, 95, 0.9), 1: (905, 105, 0.9)})                   # most confident
Z = _person({0: (400, 420, 0.4), 1: (600, 620, 0.4)})                  # biggest


@pytest.mark.parametrize("policy, chosen", [
    ("confidence", [A, Y]), ("largest", [B, Z]), ("track", [A, X])])
def test_person_policies(tmp_path, policy, chosen):
    item = _item(tmp_path, {0: _frame(GHOST, B, A), 1: _frame(Y, Z, X)})
    seq, _ = kp.read_sequence(item, kp.KeypointSpec(person_policy=policy))
    expected = np.stack([_points(p) for p in chosen])
    expected[:, 2] = 0                                  # A's unseen point is zeroed
    np.testing.assert_array_equal(seq.values[:, 0], expected)
    np.testing.assert_array_equal(seq.mask[:, 0, :3], [[1, 1, 0], [1, 1, 0]])
    assert seq.mask[:, 0, 3:].sum() == 0


def test_two_people_with_one_missing(tmp_path):
    p1 = _person({0: (10, 10, 0.9), 1: (20, 20, 0.9)})
    p2 = _person({0: (100, 100, 0.5), 3: (110, 110, 0.5)})
    p2_moved = _person({0: (102, 100, 0.4), 3: (112, 110, 0.4)})
    item = _item(tmp_path, {0: _frame(p2, p1), 1: _frame(p2_moved), 2: _frame(), 3: _frame(p1)})
    by_conf, _ = kp.read_sequence(item, kp.KeypointSpec(max_people=2))
    assert by_conf.values.shape == (4, 2, 25, 3)
    mask = np.zeros((4, 2, 25), np.float32)
    mask[0, 0, [0, 1]] = mask[0, 1, [0, 3]] = 1        # p1 (more confident) first
    mask[1, 0, [0, 3]] = 1                             # the only person goes to slot 0
    mask[3, 0, [0, 1]] = 1
    np.testing.assert_array_equal(by_conf.mask, mask)
    np.testing.assert_array_equal(by_conf.values[1, 0], _points(p2_moved))
    assert not by_conf.values[1, 1].any() and not by_conf.values[2].any()

    tracked, _ = kp.read_sequence(item, kp.KeypointSpec(max_people=2, person_policy="track"))
    mask = np.zeros((4, 2, 25), np.float32)
    mask[0, 0, [0, 1]] = mask[0, 1, [0, 3]] = 1
    mask[1, 1, [0, 3]] = 1                             # p2 stays in its slot 1
    mask[3, 0, [0, 1]] = 1                             # p1 comes back to slot 0
    np.testing.assert_array_equal(tracked.mask, mask)
    np.testing.assert_array_equal(tracked.values[1, 1], _points(p2_moved))
    p = _parse(kp.make_keypoint_records(item, kp.KeypointSpec(max_people=2))[0][0].record)
    assert int(p["num_people"]) == 2
    np.testing.assert_array_equal(p["mask"], by_conf.mask)


def test_select_people_track_fills_fresh_slots_by_confidence():
    def person(x, c):
        return np.array([[x, 0, c], [x + 2, 2, c]], np.float64)
    frames = [np.stack([person(0, 0.2)]), None,
              np.stack([person(50, 0.9), person(100, 0.3), person(1, 0.1)])]
    assert kp.select_people(frames, "track", 2) == [[0, None], [None, None], [2, 0]]
    assert kp.select_people(frames, "confidence", 2) == [[0, None], [None, None], [0, 1]]
    assert kp.select_people(frames, "largest", 1) == [[0], [None], [0]]


# --- subsets, coords, normalisation ----------------------------------------

def test_keypoint_subset_and_xy(tmp_path):
    person = _person({i: (i, 100 + i, 0.5) for i in range(25)})
    item = _item(tmp_path, {0: _frame(person)})
    seq, _ = kp.read_sequence(item, kp.KeypointSpec(keypoints=("RWrist", "nose"), coords="xy"))
    assert seq.point_names == ("Nose", "RWrist")
    assert seq.values.tolist() == [[[[0, 100], [4, 104]]]]
    upper, _ = kp.read_sequence(item, kp.KeypointSpec(keypoints="upper_body,LEar"))
    assert upper.point_names == ("Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder",
                                 "LElbow", "LWrist", "MidHip", "REye", "LEye", "REar", "LEar")
    assert upper.values[0, 0, :, 0].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 15, 16, 17, 18]
    p = _parse(kp.make_keypoint_records(item, kp.KeypointSpec(keypoints=("feet",),
                                                               coords="xy"))[0][0].record)
    assert p["names"] == ["LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel"]
    assert int(p["num_coords"]) == 2
    assert p["values"][0, 0, :, 0].tolist() == [19, 20, 21, 22, 23, 24]


def test_groups_on_coco(tmp_path):
    item = _item(tmp_path, {0: _frame(_person({i: (i, i, 1) for i in range(18)}, 18))})
    seq, _ = kp.read_sequence(item, kp.KeypointSpec(keypoints=("upper_body",)))
    assert seq.point_names == kp.COCO[:8] + kp.COCO[14:]          # no MidHip in COCO
    for names, message in [(("MidHip",), "'MidHip' is not a point of COCO"),
                           (("feet",), "feet select no point of COCO")]:
        with pytest.raises(MediaError, match=message) as err:
            kp.read_sequence(item, kp.KeypointSpec(keypoints=names))
        assert err.value.reason == "keypoint_not_in_layout"


def test_normalise_by_frame_size(tmp_path):
    item = _item(tmp_path, {0: _frame(_person({0: (50, 25, 0.5), 1: (200, 100, 1.0)}))})
    records, _ = kp.make_keypoint_records(item, kp.KeypointSpec(frame_size=(200, 100)))
    p = _parse(records[0].record)
    assert p["values"][0, 0, :3].tolist() == [[0.25, 0.25, 0.5], [1.0, 1.0, 1.0], [0, 0, 0]]
    assert p["size"] == (200, 100)


def _write_video(path, size=(64, 48), fps=12.5):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for _ in range(2):
        writer.write(np.zeros((size[1], size[0], 3), np.uint8))
    writer.release()


def test_normalise_and_fps_from_video_dir(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    _write_video(videos / "Kick - 7.mp4")
    _write_video(videos / "Kick 8.mp4", size=(32, 32))
    (videos / "kick_7.txt").write_text("not a video")
    item = _item(tmp_path / "op", {0: _frame(_person({0: (32, 12, 1)})),
                                   2: _frame(_person({0: (64, 48, 1)}))}, video_id="kick_7")
    records, _ = kp.make_keypoint_records(item, kp.KeypointSpec(video_dir=str(videos),
                                                                source_fps=99.0))
    p = _parse(records[0].record)
    assert p["values"][:, 0, 0].tolist() == [[0.5, 0.25, 1], [0, 0, 0], [1, 1, 1]]
    assert float(p["fps"]) == 12.5
    assert p["timestamps_us"].tolist() == [0, 80000, 160000]
    assert p["size"] == (64, 48)
    # frame_size wins for normalisation; the video still gives the fps
    seq, _ = kp.read_sequence(item, kp.KeypointSpec(video_dir=str(videos), frame_size=(128, 96)))
    assert (seq.frame_size, seq.fps, seq.values[0, 0, 0, 0]) == ((128, 96), 12.5, 0.25)


def test_video_dir_no_match_or_ambiguous(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    _write_video(videos / "a b.mp4")
    _write_video(videos / "A_B.avi")
    for video_id, reason in (("c", "video_not_found"), ("a-b", "ambiguous_video")):
        item = _item(tmp_path / video_id, {0: _frame(_person({0: (1, 1, 1)}))}, video_id=video_id)
        with pytest.raises(MediaError) as err:
            kp.read_sequence(item, kp.KeypointSpec(video_dir=str(videos)))
        assert err.value.reason == reason


def test_normalised_name():
    assert kp.normalised_name("Kick 10") == kp.normalised_name("Kick_10") == "kick_10"
    assert kp.normalised_name("My -_ Clip--2") == "my_clip_2"


# --- gaps and bad files ----------------------------------------------------

def test_gaps_are_filled_and_counted(tmp_path):
    person = _person({0: (1, 2, 0.5)})
    item = _item(tmp_path, {n: _frame(person) for n in (3, 4, 5, 8)})
    records, problems = kp.make_keypoint_records(item, kp.KeypointSpec(source_fps=4.0))
    assert problems == []
    assert records[0].num_frames == 6
    p = _parse(records[0].record)
    assert p["source_indices"].tolist() == [3, 4, 5, 6, 7, 8]
    assert p["timestamps_us"].tolist() == [750000, 1000000, 1250000, 1500000, 1750000, 2000000]
    assert p["mask"][:, 0, 0].tolist() == [1, 1, 1, 0, 0, 1]
    assert not p["values"][3:5].any()
    assert p["num_missing"] == 2


def test_bad_files_become_missing_frames(tmp_path):
    good = _frame(_person({0: (1, 2, 0.5)}))
    frames = {
        0: good,
        1: "{not json",
        2: json.dumps({"version": 1.3}),
        3: _frame([1.0] * 72),
        4: _frame(_person({0: (1, 2, 0.5)}, 18)),      # COCO in a BODY_25 sequence
        5: '{"people": [{"pose_keypoints_2d": [NaN' + ", 0" * 74 + "]}]}",
        6: _frame(["1"] + [0] * 74),
        7: json.dumps({"people": [{"face_keypoints_2d": []}]}),
        8: json.dumps([1, 2]),
        9: good,
        10: _frame(_person({0: (1, 2, 0.5)}), _person({0: (1, 2, 0.5)}, 18)),
    }
    item = _item(tmp_path, frames)
    records, problems = kp.make_keypoint_records(item, kp.KeypointSpec())
    path = {n: f for n, f in zip(item.extra["frame_numbers"], item.files)}
    assert [(p["path"], p["reason"]) for p in problems] == [
        (path[1], "malformed_json"), (path[2], "people_missing"), (path[3], "wrong_length"),
        (path[5], "non_finite"), (path[6], "malformed_json"), (path[7], "malformed_json"),
        (path[8], "malformed_json"), (path[10], "wrong_length"), (path[4], "wrong_length")]
    assert {(p["video_id"], p["split"], p["stage"]) for p in problems} == {
        ("clip", "train", "file")}
    assert problems[2]["detail"] == "person 0 has 72 values; expected 75 or 54"
    assert problems[-1]["detail"] == "54 values per person in a BODY_25 sequence (75)"
    p = _parse(records[0].record)
    assert p["mask"][:, 0, 0].tolist() == [1] + [0] * 8 + [1, 0]
    assert p["num_missing"] == 9


def test_layout_is_the_majority(tmp_path):
    coco = _frame(_person({0: (1, 2, 0.5)}, 18))
    item = _item(tmp_path, {0: _frame(_person({0: (1, 2, 0.5)})), 1: coco, 2: coco, 3: _frame()})
    seq, problems = kp.read_sequence(item, kp.KeypointSpec())
    assert seq.layout == "COCO"
    assert [(p["path"], p["reason"]) for p in problems] == [(item.files[0], "wrong_length")]
    assert seq.missing.tolist() == [True, False, False, False]


def test_no_valid_frames_and_no_people(tmp_path):
    item = _item(tmp_path / "a", {0: "{", 1: "[]"})
    with pytest.raises(MediaError, match="none of the 2 files is usable: 2 malformed_json") as err:
        kp.make_keypoint_records(item, kp.KeypointSpec())
    assert err.value.reason == "no_valid_frames"
    item = _item(tmp_path / "b", {0: _frame(), 1: _frame(GHOST)})
    with pytest.raises(MediaError) as err:
        kp.make_keypoint_records(item, kp.KeypointSpec())
    assert err.value.reason == "no_people"


def test_missing_file_is_a_problem(tmp_path):
    item = _item(tmp_path, {0: _frame(_person({0: (1, 2, 0.5)})), 1: _frame()})
    (tmp_path / "clip_000000000001_keypoints.json").unlink()
    seq, problems = kp.read_sequence(item, kp.KeypointSpec())
    assert [(p["path"], p["reason"]) for p in problems] == [(item.files[1], "unreadable_file")]
    assert seq.missing.tolist() == [False, True]


# --- frame labels -----------------------------------------------------------

def test_frame_labels_from_segments(tmp_path):
    person = _frame(_person({0: (1, 2, 0.5)}))
    item = _item(tmp_path, {n: person for n in range(7)},
                 extra={"segments": [[0.0, 0.2, 1], [0.3, 0.5, 2], [0.4, 0.6, 1]]})
    p = _parse(kp.make_keypoint_records(item, kp.KeypointSpec(source_fps=10.0))[0][0].record)
    assert p["frame_labels"].tolist() == [1, 1, 0, 2, 2, 1, 0]
    with pytest.raises(MediaError) as err:
        kp.make_keypoint_records(item, kp.KeypointSpec())
    assert err.value.reason == "fps_unknown"


def test_segments_from_source_to_frame_labels(tmp_path):
    _item(tmp_path / "op", {n: _frame(_person({0: (1, 2, 0.5)})) for n in range(4)},
          video_id="v")
    (tmp_path / "seg.csv").write_text("video,start_s,end_s,label\nv,0.5,1.0,kick\n")
    listing = openpose.list_items(str(tmp_path / "op"),
                                  SourceOptions(segments_csv=str(tmp_path / "seg.csv")))
    records, _ = kp.make_keypoint_records(listing.items[0], kp.KeypointSpec(source_fps=2.0))
    p = _parse(records[0].record)
    assert p["frame_labels"].tolist() == [0, 1, 0, 0]
    assert (int(p["label"]), p["label_text"]) == (1, b"kick")


# --- windows ----------------------------------------------------------------

def test_window_starts():
    assert kp.window_starts(10, 4, 3) == [0, 3, 6]
    assert kp.window_starts(10, 4, None) == [0, 4]
    assert kp.window_starts(10, 5, 5) == [0, 5]
    assert kp.window_starts(3, 4, 1) == [0]
    assert kp.window_starts(4, 4, 1) == [0]
    assert kp.window_starts(10, None, None) == [0]


def test_windowed_records(tmp_path):
    frames = {n: _frame(_person({0: (n, 0, 1)})) for n in range(10) if n != 4}
    item = _item(tmp_path / "a", frames, extra={"segments": [[0.0, 0.5, 1]]})
    records, _ = kp.make_keypoint_records(item, kp.KeypointSpec(window=4, window_stride=3,
                                                                source_fps=10.0))
    assert [r[:4] for r in records] == [("clip#0", 1, "class1", 4), ("clip#3", 1, "class1", 4),
                                        ("clip#6", 1, "class1", 4)]
    parsed = [_parse(r.record) for r in records]
    assert [p["video_id"] for p in parsed] == [b"clip#0", b"clip#3", b"clip#6"]
    assert [p["source_indices"].tolist() for p in parsed] == [[0, 1, 2, 3], [3, 4, 5, 6],
                                                              [6, 7, 8, 9]]
    assert [p["values"][:, 0, 0, 0].tolist() for p in parsed] == [[0, 1, 2, 3], [3, 0, 5, 6],
                                                                   [6, 7, 8, 9]]
    assert [p["num_missing"] for p in parsed] == [0, 1, 0]
    assert [p["frame_labels"].tolist() for p in parsed] == [[1, 1, 1, 1], [1, 1, 0, 0],
                                                            [0, 0, 0, 0]]
    assert parsed[1]["timestamps_us"].tolist() == [300000, 400000, 500000, 600000]
    short = _item(tmp_path / "b", {0: frames[0], 1: frames[1]})
    records, _ = kp.make_keypoint_records(short, kp.KeypointSpec(window=4))
    assert [r[:4] for r in records] == [("clip#0", 1, "class1", 2)]


# --- spec validation --------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    ({"person_policy": "biggest"}, "person_policy must be one of"),
    ({"max_people": 0}, "max_people must be an integer >= 1, got 0"),
    ({"max_people": 1.5}, "max_people must be an integer >= 1"),
    ({"keypoints": ("Nose", "Tail")}, r"unknown keypoints \['Tail'\]"),
    ({"coords": "xyz"}, "coords must be one of"),
    ({"frame_size": (0, 10)}, r"frame_size must be \(width, height\) positive integers"),
    ({"frame_size": (10,)}, "frame_size must be"),
    ({"video_dir": ""}, "video_dir must be a directory or None"),
    ({"source_fps": -1.0}, "source_fps must be finite and >= 0"),
    ({"source_fps": float("nan")}, "source_fps must be finite"),
    ({"window": 0}, "window must be an integer >= 1 or None, got 0"),
    ({"window": 4, "window_stride": 0}, "window_stride must be an integer >= 1"),
    ({"window_stride": 2}, "window_stride needs window"),
])
def test_spec_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        kp.KeypointSpec(**kwargs)


def test_spec_normalises_inputs():
    spec = kp.KeypointSpec(keypoints="upper_body, RWrist", frame_size=[640, 480])
    assert spec.keypoints == ("upper_body", "RWrist")
    assert spec.frame_size == (640, 480)
    assert kp.KeypointSpec().keypoints == ()


def test_layout_tables():
    assert len(kp.BODY_25) == 25 and len(kp.COCO) == 18
    assert kp.BODY_25.index("MidHip") == 8 and kp.BODY_25.index("RHeel") == 24
    assert kp.COCO.index("RHip") == 8 and kp.COCO.index("LEar") == 17
    for members in kp.GROUPS.values():
        assert set(members) <= set(kp.BODY_25)


# --- the real soccer kicks ------------------------------------------------------

@pytest.mark.real
def test_real_soccer_records(real_dir):
    soccer = real_dir / "soccer"
    with open(soccer / "labels.csv", newline="") as f:
        expected_labels = {f"Kick_{row['kick']}": row["type"] for row in csv.DictReader(f)}
    listing = openpose.list_items(str(soccer / "openpose"), SourceOptions(
        label_csv=str(soccer / "labels.csv"), label_column="type", id_column="kick",
        id_template="Kick_{id}"))
    spec = kp.KeypointSpec(video_dir=str(soccer / "videos"))
    two_people = kp.KeypointSpec(max_people=2, coords="xy", frame_size=(1920, 1080))
    seen_empty = seen_crowded = 0
    for item in listing.items:
        records, problems = kp.make_keypoint_records(item, spec)
        assert problems == []
        assert len(records) == 1
        numbers = item.extra["frame_numbers"]
        expected_frames = numbers[-1] - numbers[0] + 1
        assert 88 <= records[0].num_frames == expected_frames <= 90
        p = _parse(records[0].record)
        two, _ = kp.read_sequence(item, two_people)
        assert (p["video_id"].decode(), p["label_text"].decode()) == (
            item.video_id, expected_labels[item.video_id])
        assert int(p["label"]) == int(expected_labels[item.video_id])
        assert (p["layout"], p["names"], p["size"]) == (b"BODY_25", list(kp.BODY_25),
                                                        (1920, 1080))
        assert p["fps"] == pytest.approx(29.97, abs=0.01)
        assert p["num_missing"] == 0
        # Compare with a direct reading of every JSON file.
        for t, path in enumerate(item.files):
            with open(path) as f:
                people = [np.asarray(person["pose_keypoints_2d"]).reshape(25, 3)
                          for person in json.load(f)["people"]]
            people = [q for q in people if (q[:, 2] > 0).any()]
            if not people:
                seen_empty += 1
                assert not p["mask"][t].any() and not p["values"][t].any()
                continue
            seen_crowded += len(people) >= 2
            people.sort(key=lambda q: -q[q[:, 2] > 0, 2].mean())
            best = people[0]
            if len(people) == 1:
                assert not two.mask[t, 1].any() and not two.values[t, 1].any()
            else:
                runner_up = people[1][:, 2] > 0
                np.testing.assert_array_equal(two.mask[t, 1], runner_up.astype(np.float32))
                np.testing.assert_allclose(two.values[t, 1, runner_up],
                                           people[1][runner_up, :2] / [1920, 1080], rtol=1e-6)
            seen = best[:, 2] > 0
            np.testing.assert_array_equal(p["mask"][t, 0], seen.astype(np.float32))
            np.testing.assert_allclose(p["values"][t, 0, seen, :2],
                                       best[seen, :2] / [1920, 1080], rtol=1e-6)
            assert (p["values"][t, 0, seen, :2] >= 0).all()
            assert (p["values"][t, 0, :, :2] <= 1).all()
    assert len(listing.items) == 20
    assert seen_empty == 409          # frames with nobody in them (direct count above)
    assert seen_crowded == 129        # frames with 2 or 3 people: the policy picked one


@pytest.mark.parametrize("text, expected", [
    ("\ufeff" + '{"people": [{"pose_keypoints_2d": [2.5' + ", 0" * 74 + "]}]}", 2.5),
    ('{"people": [{"pose_keypoints_2d": [' + str(2**70) + ", 0" * 74 + "]}]}", float(2**70)),
    ('{"people": [{"pose_keypoints_2d": [1e400' + ", 0" * 74 + "]}]}", None),
    ('{"people": [{"pose_keypoints_2d": [Infinity' + ", 0" * 74 + "]}]}", None),
    ('{"people": [{"pose_keypoints_2d": [' + "9" * 400 + ", 0" * 74 + "]}]}", None),
    ('{"people": [{"pose_keypoints_2d": [NaN' + ", 0" * 74 + "]}]}", None),
    ("\ufeff" + '{"people": [{"pose_keypoints_2d": [-1e400' + ", 0" * 74 + "]}]}", None),
    ('{"people": [{"pose_keypoints_2d": [1.7976931348623157e308' + ", 0" * 74 + "]}]}",
     1.7976931348623157e308),
])
def test_files_the_fast_parser_refuses_read_as_the_standard_one_reads_them(tmp_path, text,
                                                                          expected):
    """A byte-order mark, numbers that are not finite as doubles: the standard library
    decides (an integer past 64 bits reads as the same double either way)."""
    path = tmp_path / "a_000000000000_keypoints.json"
    path.write_text(text, encoding="utf-8")
    if expected is None:
        with pytest.raises(kp.FrameError) as e:
            kp.read_frame(str(path))
        assert e.value.reason == "non_finite"
        return
    values = kp.read_frame(str(path))
    assert values.shape == (1, 75) and values[0, 0] == expected and not values[0, 1:].any()


def test_a_frame_without_people_reads_as_an_empty_array(tmp_path):
    path = tmp_path / "a_000000000000_keypoints.json"
    path.write_text(json.dumps({"version": 1.3, "people": []}))
    assert kp.read_frame(str(path)).size == 0


def _select_frame_by_frame(frames, policy, max_people):
    """The person choice written plainly, one frame at a time (the reference for the
    whole-sequence arrays select_people works on)."""
    chosen, last = [], [None] * max_people
    for people in frames:
        slots = [None] * max_people
        n = 0 if people is None else len(people)
        if n:
            conf = [float(row[row > 0].mean()) for row in people[:, :, 2]]
            seen = people[:, :, 2] > 0
            lo = np.where(seen[..., None], people[:, :, :2], np.inf).min(axis=1)
            hi = np.where(seen[..., None], people[:, :, :2], -np.inf).max(axis=1)
            area, centres = (hi - lo).prod(axis=1), (lo + hi) / 2
            by_conf = sorted(range(n), key=lambda i: -conf[i])
            if policy != "track":
                order = by_conf if policy == "confidence" else sorted(range(n),
                                                                       key=lambda i: -area[i])
                for slot, i in enumerate(order[:max_people]):
                    slots[slot] = i
            else:
                pairs = sorted((float(np.linalg.norm(last[s] - centres[i])), s, i)
                               for s in range(max_people) if last[s] is not None
                               for i in range(n))
                used = set()
                for _, s, i in pairs:
                    if slots[s] is None and i not in used:
                        slots[s], _ = i, used.add(i)
                fresh = [s for s in range(max_people) if last[s] is None]
                for i in [i for i in by_conf if i not in used][:len(fresh)]:
                    slots[fresh.pop(0)] = i
                for s, i in enumerate(slots):
                    if i is not None:
                        last[s] = centres[i]
        chosen.append(slots)
    return chosen


@pytest.mark.parametrize("seed", range(6))
def test_select_people_matches_the_frame_by_frame_choice(seed):
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(60):
        n = int(rng.choice([0, 1, 2, 3, 5]))
        if rng.random() < 0.1:
            frames.append(None)
            continue
        # confidences on a coarse grid, so that ties (broken by order) are common
        conf = rng.choice([0.0, 0.25, 0.5, 0.75, 1.0], size=(n, 25))
        conf[:, 0] = np.maximum(conf[:, 0], 0.25)                 # each person has a seen point
        xy = rng.uniform(0, 640, size=(n, 25, 2)).round(1) * (conf[..., None] > 0)
        frames.append(np.concatenate([xy, conf[..., None]], axis=2))
    for policy in ("confidence", "largest", "track"):
        for max_people in (1, 2, 4):
            assert kp.select_people(frames, policy, max_people) == \
                _select_frame_by_frame(frames, policy, max_people), (policy, max_people)
