"""Tests for the OpenPose source on generated JSON trees and on the real soccer kicks."""
from __future__ import annotations

import csv
import json

import pytest

from pipeline import sources
from pipeline.sources import openpose
from pipeline.media.items import Item, Problem
from pipeline.sources.base import SourceError, SourceOptions, hash_split

EMPTY = json.dumps({"version": 1.3, "people": []})


def _json_name(video: str, frame: int) -> str:
    return f"{video}_{frame:012d}_keypoints.json"


def _tree(root, frames: dict[str, list[int]], extra_files: dict[str, str] | None = None):
    """Writes one empty OpenPose JSON per (video, frame), in the order given."""
    root.mkdir(parents=True, exist_ok=True)
    for video, numbers in frames.items():
        for n in numbers:
            (root / _json_name(video, n)).write_text(EMPTY)
    for name, text in (extra_files or {}).items():
        (root / name).write_text(text)
    return root


def _paths(root, video: str, numbers: list[int]) -> tuple[str, ...]:
    return tuple(str(root / _json_name(video, n)) for n in numbers)


def _extras(listing) -> dict[str, dict]:
    return {item.video_id: item.extra for item in listing.items}


def test_registered():
    assert sources.get_source("openpose") is openpose
    assert openpose.NAME == "openpose"


def test_groups_and_orders_frames(tmp_path):
    data = _tree(tmp_path / "op", {"Kick_1": [10, 2, 0, 1], "Kick_10": [1, 0],
                                   "a_000000000001": [3]},
                 {"README.txt": "not a frame", "notes.json": "{}"})
    listing = openpose.list_items(str(data), SourceOptions())
    assert listing.classes == []
    assert listing.splits == ("train",)
    assert listing.modality == "keypoints"
    assert listing.problems == []
    assert listing.unused == {}
    assert listing.items == [
        Item(str(data), "Kick_1", "train", -1, "", kind="keypoints",
             files=_paths(data, "Kick_1", [0, 1, 2, 10])),
        Item(str(data), "Kick_10", "train", -1, "", kind="keypoints",
             files=_paths(data, "Kick_10", [0, 1])),
        Item(str(data), "a_000000000001", "train", -1, "", kind="keypoints",
             files=_paths(data, "a_000000000001", [3])),
    ]
    assert _extras(listing) == {"Kick_1": {"frame_numbers": [0, 1, 2, 10]},
                                "Kick_10": {"frame_numbers": [0, 1]},
                                "a_000000000001": {"frame_numbers": [3]}}


def test_bad_file_names_are_problems(tmp_path):
    data = _tree(tmp_path, {"v": [0]}, {"v_12_keypoints.json": EMPTY,
                                        "_keypoints.json": EMPTY})
    listing = openpose.list_items(str(data), SourceOptions())
    assert [i.video_id for i in listing.items] == ["v"]
    # bad files, not failed items: stage "file", counted apart from the items of the split
    assert listing.problems == [
        Problem(str(data / name), "file", "bad_file_name",
                "expected <name>_<12-digit frame>_keypoints.json", "train")
        for name in ("_keypoints.json", "v_12_keypoints.json")]


def test_label_csv_with_id_template(tmp_path):
    data = _tree(tmp_path / "op", {"Kick_1": [0, 1], "Kick_2": [0], "Kick_7": [0]})
    (tmp_path / "labels.csv").write_text("kick,foot,type\n1,Right,10\n2,Left,9\n"
                                         "3,Right,2\n")
    options = SourceOptions(label_csv=str(tmp_path / "labels.csv"), id_column="kick",
                            label_column="type", id_template="Kick_{id}")
    listing = openpose.list_items(str(data), options)
    assert listing.classes == ["2", "9", "10"]        # numeric order, not text order
    assert listing.items == [
        Item(str(data), "Kick_1", "train", 2, "10", kind="keypoints",
             files=_paths(data, "Kick_1", [0, 1])),
        Item(str(data), "Kick_2", "train", 1, "9", kind="keypoints",
             files=_paths(data, "Kick_2", [0])),
    ]
    assert listing.problems == [
        Problem(str(data / _json_name("Kick_7", 0)), "list", "unknown_label",
                f"video 'Kick_7' (1 frames) has no row in --label_csv {tmp_path / 'labels.csv'}",
                "train")]
    assert listing.unused == {"label_without_keypoints": 1}       # kick 3


def test_label_csv_text_labels_and_default_columns(tmp_path):
    data = _tree(tmp_path / "op", {"a": [0], "b": [0], "c": [0]})
    (tmp_path / "l.csv").write_text("\ufeffvideo,label\r\na,walk\r\n\r\nb,run\r\nc,walk\r\n")
    listing = openpose.list_items(str(data), SourceOptions(label_csv=str(tmp_path / "l.csv")))
    assert listing.classes == ["run", "walk"]
    assert [(i.video_id, i.label, i.label_text) for i in listing.items] == [
        ("a", 1, "walk"), ("b", 0, "run"), ("c", 1, "walk")]
    assert listing.unused == {"label_without_keypoints": 0}


@pytest.mark.parametrize("text, options, message", [
    ("video,label\na,x\n", {"label_column": "type"},
     "--label_column 'type' is not a column of .*; columns: video, label"),
    ("video,label\na,x\n", {"id_column": "kick"}, "--id_column 'kick' is not a column"),
    ("video,label\na,x\na,y\n", {}, "gives video 'a' two labels: 'x' and 'y'"),
    ("video,label\na,\n", {}, "row 2: expected 2 cells with a non-empty 'video' and 'label'"),
    ("video,label\n", {}, "has a header but no rows"),
    ("video,label\nA,x\n", {}, r"no video has a row in --label_csv .*videos are named like "
                               r"a; the CSV names like A \(check --id_column and --id_template\)"),
    ("video,label\na,x\n", {"id_template": "{kick}"}, "--id_template '{kick}' must use only"),
])
def test_label_csv_errors(tmp_path, text, options, message):
    data = _tree(tmp_path / "op", {"a": [0]})
    (tmp_path / "l.csv").write_text(text)
    with pytest.raises(SourceError, match=message):
        openpose.list_items(str(data), SourceOptions(label_csv=str(tmp_path / "l.csv"),
                                                     **options))


def test_label_csv_missing(tmp_path):
    data = _tree(tmp_path / "op", {"a": [0]})
    with pytest.raises(SourceError, match="--label_csv .*nope.csv does not exist"):
        openpose.list_items(str(data), SourceOptions(label_csv=str(tmp_path / "nope.csv")))


def test_segments(tmp_path):
    data = _tree(tmp_path / "op", {"a": [0, 1], "b": [0], "c": [0]})
    (tmp_path / "seg.csv").write_text(
        "video,start_s,end_s,label\n"
        "a,3.0,3.4,pass\n"          # the longest single segment is a pass (0.4 s) ...
        "a,0,0.25,kick\n"
        "a,1.0,1.25,kick\n"         # ... but kicks add up to 0.5 s
        "b,0,2,none\n"              # b: annotated, background only
        "z,0,1,header\n")           # no keypoints for z
    listing = openpose.list_items(str(data), SourceOptions(segments_csv=str(tmp_path / "seg.csv")))
    assert listing.classes == ["none", "header", "kick", "pass"]
    assert [(i.video_id, i.label, i.label_text) for i in listing.items] == [
        ("a", 2, "kick"), ("b", 0, "none")]
    assert _extras(listing) == {
        "a": {"frame_numbers": [0, 1],
              "segments": [[0.0, 0.25, 2], [1.0, 1.25, 2], [3.0, 3.4, 3]]},
        "b": {"frame_numbers": [0], "segments": [[0.0, 2.0, 0]]}}
    assert [(p.reason, p.path) for p in listing.problems] == [
        ("unknown_label", str(data / _json_name("c", 0)))]
    assert listing.unused == {"label_without_keypoints": 1}


def test_segments_without_header_and_with_template_and_ties(tmp_path):
    data = _tree(tmp_path / "op", {"Clip_1": [0]})
    (tmp_path / "seg.csv").write_text("1,0,1,b\n1,2,3,a\n")
    listing = openpose.list_items(str(data), SourceOptions(
        segments_csv=str(tmp_path / "seg.csv"), id_template="Clip_{id}", background_label="bg"))
    assert listing.classes == ["bg", "a", "b"]
    assert (listing.items[0].label, listing.items[0].label_text) == (1, "a")   # tie: lower index
    assert listing.items[0].extra["segments"] == [[0.0, 1.0, 2], [2.0, 3.0, 1]]


@pytest.mark.parametrize("row, message", [
    ("a,1,1,kick", "row 2: end_s 1 must be after start_s 1"),
    ("a,x,1,kick", "row 2: 'x' is not a number"),
    ("a,-1,1,kick", "row 2: times must be finite and >= 0"),
    ("a,0,1", "row 2: expected video,start_s,end_s,label"),
])
def test_segments_errors(tmp_path, row, message):
    data = _tree(tmp_path / "op", {"a": [0]})
    (tmp_path / "seg.csv").write_text(f"video,start_s,end_s,label\n{row}\n")
    with pytest.raises(SourceError, match=message):
        openpose.list_items(str(data), SourceOptions(segments_csv=str(tmp_path / "seg.csv")))


def test_label_csv_and_segments_exclusive(tmp_path):
    data = _tree(tmp_path / "op", {"a": [0]})
    with pytest.raises(SourceError, match="cannot be combined"):
        openpose.list_items(str(data), SourceOptions(label_csv="x.csv", segments_csv="y.csv"))


def test_hash_splits(tmp_path):
    videos = [f"v{i}" for i in range(12)]
    data = _tree(tmp_path, {v: [0] for v in videos})
    listing = openpose.list_items(str(data), SourceOptions(val_fraction=0.3, test_fraction=0.3))
    assert listing.splits == ("train", "val", "test")
    expected = {v: hash_split(v, 0.3, 0.3) for v in videos}
    assert {i.video_id: i.split for i in listing.items} == expected
    assert set(expected.values()) == {"train", "val", "test"}


def test_bad_fractions(tmp_path):
    with pytest.raises(SourceError, match="sum to < 1"):
        openpose.list_items(str(tmp_path), SourceOptions(val_fraction=0.5, test_fraction=0.5))


def test_empty_and_missing_dir(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="empty dataset: no .* files in .*empty") as err:
        openpose.list_items(str(tmp_path / "empty"), SourceOptions())
    assert openpose.LAYOUT in str(err.value)
    with pytest.raises(SourceError, match=r"\(the directory does not exist\)") as err:
        openpose.list_items(str(tmp_path / "missing"), SourceOptions())
    assert openpose.LAYOUT in str(err.value)


@pytest.mark.real
def test_real_soccer_listing(real_dir):
    soccer = real_dir / "soccer"
    with open(soccer / "labels.csv", newline="") as f:
        expected = {f"Kick_{row['kick']}": row["type"] for row in csv.DictReader(f)}
    counts: dict[str, int] = {}
    for path in (soccer / "openpose").glob("*_keypoints.json"):
        video = path.name.rsplit("_", 2)[0]
        counts[video] = counts.get(video, 0) + 1
    listing = openpose.list_items(str(soccer / "openpose"), SourceOptions(
        label_csv=str(soccer / "labels.csv"), label_column="type", id_column="kick",
        id_template="Kick_{id}"))
    assert listing.classes == ["0", "1"]
    assert listing.problems == []
    assert listing.unused == {"label_without_keypoints": 0}
    assert len(listing.items) == 20
    assert {i.video_id: i.label_text for i in listing.items} == expected
    assert all(i.label == int(i.label_text) for i in listing.items)
    assert {i.video_id: len(i.files) for i in listing.items} == counts
    assert {i.split for i in listing.items} == {"train"}
    for item in listing.items:
        assert item.extra["frame_numbers"] == list(range(len(item.files)))
