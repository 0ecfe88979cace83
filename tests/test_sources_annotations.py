"""Annotation-list datasets: Kinetics-style CSVs with time segments (over the real fixture
videos) and the generic list (CSV and mmaction2's format), listed and built in process,
every listed row accounted for and every frame timed inside its segment."""
from __future__ import annotations

import json
import math
import pathlib
import re

import pytest

from pipeline import build
from pipeline.media.items import FILE_STAGE
from pipeline.sources import base, kinetics
from pipeline.sources import list as list_source
from pipeline.sources.base import SourceError, SourceOptions
from test_video_segments import write_av_video
from tfrecords import schema

KINETICS_HEADER = "label,youtube_id,time_start,time_end,split\n"


def _build(dataset, data_dir, out, *extra) -> pathlib.Path:
    code = build.build_main(["build", f"--dataset={dataset}", f"--data_dir={data_dir}",
                             f"--output_dir={out}", "--config_name=b", "--noprogress",
                             "--direct_running_mode=in_memory", "--direct_num_workers=1",
                             "--num_shards=1", *extra])
    assert code == 0
    return pathlib.Path(out) / dataset / "b"


def _info(build_dir) -> dict:
    return json.loads((build_dir / schema.DATASET_INFO_FILE).read_text())


def _errors(build_dir) -> list[dict]:
    return [json.loads(x) for x in (build_dir / schema.ERRORS_FILE).read_text().splitlines()]


def _records(build_dir) -> dict[str, tuple[str, dict]]:
    """video_id -> (split, parsed record)."""
    import tensorflow as tf
    out = {}
    for split, s in _info(build_dir)["splits"].items():
        for shard in s["shards"]:
            for raw in tf.data.TFRecordDataset(str(build_dir / shard)):
                parsed = {k: v.numpy() for k, v in schema.parse_clip(raw).items()}
                out[parsed["video_id"].decode()] = (split, parsed)
    return out


def _accounted(info, errors):
    """listed = written + quarantined in every split, and the errors.jsonl rows are those
    counts."""
    for split, s in info["splits"].items():
        assert s["listed"] == s["num_items"] + s["quarantined"], (split, s)
        assert s["quarantined"] == sum(e["split"] == split and e["stage"] != FILE_STAGE
                                       for e in errors), split
        assert s["quarantined_files"] == sum(e["split"] == split and e["stage"] == FILE_STAGE
                                             for e in errors), split
    assert all(e["path"] and e["reason"] for e in errors)


def _link(path: pathlib.Path, target: pathlib.Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)


# --------------------------------------------------------------------------
# Kinetics
# --------------------------------------------------------------------------
@pytest.fixture()
def kinetics_data(real_dir, tmp_path) -> pathlib.Path:
    """The real fixture videos under Kinetics' download names (links, never copies):
    ``kinlike`` (10 s, 30 fps) and ``ucflong`` (6.56 s, 25 fps) as full videos, in a
    split/class folder and at the top; ``ucflike_000001_000004`` as a trimmed clip."""
    videos = real_dir / "videos"
    data = tmp_path / "data"
    _link(data / "train" / "abseiling" / "kinlike.mp4", videos / "kinetics_like_340x256_h264.mp4")
    _link(data / "ucflong.avi", videos / "ucf_like_320x240_fmp4.avi")
    _link(data / "val" / "ucflike_000001_000004.avi", videos / "ucf_like_320x240_fmp4.avi")
    (tmp_path / "train.csv").write_text(
        KINETICS_HEADER
        + '"juggling, balls",kinlike,2,5,train\n'
        '"juggling, balls",kinlike,3,6,train\n'       # overlaps the row before: one pass
        "abseiling,kinlike,8,12,train\n"              # ends after the video (10 s)
        "abseiling,kinlike,11,13,train\n"             # after the video's last frame
        "abseiling,ucflong,1,4,train\n"
        "abseiling,ghost,0,10,train\n"                # no such video
        '"juggling, balls",kinlike,2,5,train\n'       # listed twice
        "abseiling,kinlike,x,5,train\n")              # no time
    (tmp_path / "validate.csv").write_text(KINETICS_HEADER + "abseiling,ucflike,1,4,val\n")
    (tmp_path / "test.csv").write_text("youtube_id,time_start,time_end,split\n"
                                       "ucflong,3,5,test\n"
                                       "kinlike,30,35,test\n")   # wholly after the video
    return data


def _kinetics_options(tmp_path) -> SourceOptions:
    return SourceOptions(annotations=tuple(str(tmp_path / f) for f in
                                           ("train.csv", "validate.csv", "test.csv")))


def test_kinetics_listing_finds_trimmed_and_full_videos(kinetics_data, tmp_path):
    listing = kinetics.list_items(str(kinetics_data), _kinetics_options(tmp_path))
    assert listing.classes == ["abseiling", "juggling, balls"]
    assert listing.splits == ("train", "val", "test")
    by_id = {it.video_id: it for it in listing.items}
    trimmed = by_id["val/ucflike_000001_000004.avi"]
    assert (trimmed.split, trimmed.label, trimmed.extra) == ("val", 0, {})
    cluster = next(it for it in listing.items if it.video_id.startswith(
        "train/abseiling/kinlike.mp4#2-13 (4 segments"))
    assert [(g["start_s"], g["end_s"], g["label_text"], g["video_id"])
            for g in cluster.extra["segments"]] == [
        (2.0, 5.0, "juggling, balls", "train/abseiling/kinlike.mp4#2-5"),
        (3.0, 6.0, "juggling, balls", "train/abseiling/kinlike.mp4#3-6"),
        (8.0, 12.0, "abseiling", "train/abseiling/kinlike.mp4#8-12"),
        (11.0, 13.0, "abseiling", "train/abseiling/kinlike.mp4#11-13")]
    assert cluster.label == -1          # mixed labels: each segment carries its own
    single = by_id["ucflong.avi#1-4"]
    assert (single.label, single.extra["segments"][0]["label"]) == (0, 0)
    assert by_id["ucflong.avi#3-5"].label == -1 and by_id["ucflong.avi#3-5"].split == "test"
    assert sorted((p.reason, p.split) for p in listing.problems) == [
        ("bad_csv_row", "train"), ("duplicate_row", "train"), ("missing_file", "train")]
    missing = next(p for p in listing.problems if p.reason == "missing_file")
    assert missing.path == str(kinetics_data / "ghost_000000_000010.mp4")


def test_kinetics_csv_without_a_split_column_needs_one(kinetics_data, tmp_path):
    (tmp_path / "nosplit.csv").write_text("label,youtube_id,time_start,time_end\n"
                                          "abseiling,kinlike,2,5\n")
    with pytest.raises(SourceError, match="no 'split' column"):
        kinetics.list_items(str(kinetics_data),
                            SourceOptions(annotations=(str(tmp_path / "nosplit.csv"),)))
    listing = kinetics.list_items(str(kinetics_data), SourceOptions(
        annotations=(f"val={tmp_path / 'nosplit.csv'}",)))
    assert [(it.video_id, it.split) for it in listing.items] == [
        ("train/abseiling/kinlike.mp4#2-5", "val")]
    with pytest.raises(SourceError, match="needs --annotations"):
        kinetics.list_items(str(kinetics_data), SourceOptions())


@pytest.mark.real
def test_kinetics_build_cuts_segments_inside_their_bounds(kinetics_data, tmp_path):
    out = _build("kinetics", kinetics_data, tmp_path / "out", "--sampling=all",
                 "--size=32x24", "--max_failure_ratio=1",
                 f"--annotations={tmp_path / 'train.csv'},{tmp_path / 'validate.csv'},"
                 f"{tmp_path / 'test.csv'}")
    info, errors, records = _info(out), _errors(out), _records(out)
    _accounted(info, errors)
    train, val, test = (info["splits"][s] for s in ("train", "val", "test"))
    # train: the kinlike item (3 of its 4 segments written) and ucflong, 3 listing problems
    assert (train["listed"], train["num_items"], train["num_examples"]) == (5, 2, 4)
    assert (train["quarantined"], train["quarantined_files"]) == (3, 1)
    assert (val["num_items"], val["num_examples"]) == (1, 1)
    assert (test["listed"], test["num_items"], test["quarantined"], test["unlabelled"]) == (
        2, 1, 1, 1)
    assert sorted((e["split"], e["reason"], e["stage"]) for e in errors) == [
        ("test", "empty_segment", "decode"), ("train", "bad_csv_row", "list"),
        ("train", "duplicate_row", "list"), ("train", "empty_segment", FILE_STAGE),
        ("train", "missing_file", "list")]
    assert next(e for e in errors if e["stage"] == FILE_STAGE)["video_id"] == (
        "train/abseiling/kinlike.mp4#11-13")
    # every frame of a cut segment lies in [time_start, time_end), and none is missing
    rates = {"kinlike": 30, "ucflong": 25}
    cut = {vid: r for vid, r in records.items() if "#" in vid}
    assert sorted(cut) == ["train/abseiling/kinlike.mp4#2-5", "train/abseiling/kinlike.mp4#3-6",
                           "train/abseiling/kinlike.mp4#8-12", "ucflong.avi#1-4",
                           "ucflong.avi#3-5"]
    for vid, (split, r) in cut.items():
        start, end = (float(x) for x in vid.split("#")[1].split("-"))
        times = r["timestamps_us"]
        assert all(start * 1e6 <= t < end * 1e6 for t in times), vid
        fps = rates[vid.split("/")[-1].split(".")[0]]
        last = min(end, 10.0 if fps == 30 else 164 / 25)
        assert len(times) == math.ceil(last * fps - 1e-6) - math.ceil(start * fps - 1e-6), vid
        assert r["start_us"] == times[0] and r["end_us"] == times[-1]
        assert list(r["source_indices"]) == [round(t * fps / 1e6) for t in times], vid
    assert records["train/abseiling/kinlike.mp4#2-5"][1]["label_text"] == b"juggling, balls"
    assert records["ucflong.avi#3-5"][1]["label"] == schema.UNLABELLED
    whole = records["val/ucflike_000001_000004.avi"][1]
    assert whole["timestamps_us"][0] == 0 and len(whole["frames"]) == 164


# --------------------------------------------------------------------------
# The generic list
# --------------------------------------------------------------------------
@pytest.fixture()
def list_data(tmp_path) -> pathlib.Path:
    data = tmp_path / "data"
    (data / "vids").mkdir(parents=True)
    write_av_video(data / "vids" / "long.mp4", 300)             # 12 s at 25 fps
    write_av_video(data / "vids" / "short.mp4", 20)
    return data


def test_list_csv_groups_close_segments_and_hashes_splits_by_video(list_data, tmp_path):
    (tmp_path / "clips.csv").write_text(
        "path,start_s,end_s,label\n"
        "vids/long.mp4,2.5,4,dribble\n"
        "vids/long.mp4,3,5,shot\n"
        "vids/long.mp4,10.5,11.5,shot\n"       # more than SEGMENT_GAP_S after: its own item
        "vids/short.mp4,,,dribble\n")
    listing = list_source.list_items(str(list_data), SourceOptions(
        annotations=(str(tmp_path / "clips.csv"),), val_fraction=0.5))
    assert listing.classes == ["dribble", "shot"]
    ids = sorted(it.video_id for it in listing.items)
    assert ids[0] == "vids/long.mp4#10.5-11.5" and ids[2] == "vids/short.mp4"
    assert re.fullmatch(r"vids/long\.mp4#2\.5-5 \(2 segments, [0-9a-f]{8}\)", ids[1])
    assert len({it.split for it in listing.items if it.path.endswith("long.mp4")}) == 1
    assert listing.splits == ("train", "val")


def test_list_build_writes_one_record_per_segment(list_data, tmp_path):
    (tmp_path / "clips.csv").write_text(
        "path,start_s,end_s,label,split\n"
        "vids/long.mp4,2.5,4,dribble,train\n"
        "vids/long.mp4,3,5,shot,train\n"
        "vids/long.mp4,10.5,11.5,shot,train\n"
        "vids/short.mp4,,,dribble,val\n"
        "vids/none.mp4,1,2,shot,train\n"
        "vids/long.mp4,5,4,shot,train\n")
    out = _build("list", list_data, tmp_path / "out", "--sampling=uniform", "--num_frames=4",
                 "--size=32x24", "--max_failure_ratio=1",
                 f"--annotations={tmp_path / 'clips.csv'}")
    info, errors, records = _info(out), _errors(out), _records(out)
    _accounted(info, errors)
    assert (info["splits"]["train"]["num_items"], info["splits"]["train"]["num_examples"]) == (
        2, 3)
    assert sorted(e["reason"] for e in errors) == ["bad_csv_row", "missing_file"]
    for vid, (start, end) in {"vids/long.mp4#2.5-4": (2.5, 4), "vids/long.mp4#3-5": (3, 5),
                              "vids/long.mp4#10.5-11.5": (10.5, 11.5)}.items():
        r = records[vid][1]
        first, last = math.ceil(start * 25), math.ceil(end * 25) - 1
        assert list(r["source_indices"]) == [round(first + j * (last - first) / 3)
                                             for j in range(4)], vid
        assert all(start * 1e6 <= t < end * 1e6 for t in r["timestamps_us"]), vid
    assert records["vids/long.mp4#3-5"][1]["label_text"] == b"shot"
    assert records["vids/short.mp4"][0] == "val"


def test_list_mmaction_format_with_a_file_per_split(list_data, tmp_path):
    (tmp_path / "train.txt").write_text("vids/long.mp4 1\nvids/none.mp4 0\nnolabel\n")
    (tmp_path / "val.txt").write_text("vids/short.mp4 0\n")
    listing = list_source.list_items(str(list_data), SourceOptions(
        annotations=(f"train={tmp_path / 'train.txt'}", f"val={tmp_path / 'val.txt'}"),
        annotations_format="mmaction"))
    assert listing.classes == ["0", "1"]
    assert [(it.video_id, it.split, it.label) for it in listing.items] == [
        ("vids/long.mp4", "train", 1), ("vids/short.mp4", "val", 0)]
    assert sorted((p.reason, p.split) for p in listing.problems) == [
        ("bad_split_line", "train"), ("missing_file", "train")]


def test_list_refuses_a_csv_without_path_or_label(list_data, tmp_path):
    (tmp_path / "bad.csv").write_text("video_file,start_s,end_s\nvids/long.mp4,1,2\n")
    with pytest.raises(SourceError, match="'path' and a 'label' column"):
        list_source.list_items(str(list_data),
                               SourceOptions(annotations=(str(tmp_path / "bad.csv"),)))
    with pytest.raises(SourceError, match="does not exist"):
        list_source.list_items(str(list_data), SourceOptions(annotations=("nowhere.csv",)))


def test_segments_group_while_they_overlap_or_sit_close():
    rows = [base.SegmentRow("/v.mp4", "v.mp4", "train", a, b, 0, "x")
            for a, b in [(0, 2), (1, 3), (7.5, 8), (14, 15), (13.5, 20)]]
    items = base.segment_items(rows, gap_s=5.0)
    assert [[(g["start_s"], g["end_s"]) for g in it.extra["segments"]] for it in items] == [
        [(0, 2), (1, 3), (7.5, 8)], [(13.5, 20), (14, 15)]]
    capped = base.segment_items(rows, gap_s=5.0, max_segments=2)
    assert [len(it.extra["segments"]) for it in capped] == [2, 1, 2]
