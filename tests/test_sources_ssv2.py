"""Something-Something v2: its JSON lists and VP9 WebM videos (written by PyAV), built in
process; the template is the label, the filled-in label rides along, the unlabelled test split
is kept, and the left/right motions are each other's mirror for flip augmentation."""
from __future__ import annotations

import json
import pathlib

import pytest

from pipeline import build
from pipeline.sources import ssv2
from pipeline.sources.base import SourceError, SourceOptions
from test_video_segments import write_av_video
from tfrecords import reader, schema

LABELS = {"Pushing something from left to right": "0",
          "Pushing something from right to left": "1",
          "Putting something onto something": "2",
          "Turning the camera left while filming something": "3",
          "Turning the camera right while filming something": "4"}
# The mirror pairs among these classes (the pulling pair is not among them).
PAIRS_HERE = {"Pushing something from left to right": "Pushing something from right to left",
              "Turning the camera left while filming something":
                  "Turning the camera right while filming something"}


def _entry(video_id, template, *placeholders):
    filled = template
    for p in placeholders:
        filled = filled.replace("[something]", p, 1)
    return {"id": video_id, "label": filled.lower(), "template": template,
            "placeholders": list(placeholders)}


@pytest.fixture()
def ssv2_data(tmp_path) -> pathlib.Path:
    data = tmp_path / "ssv2"
    labels = data / "labels"
    labels.mkdir(parents=True)
    (labels / "labels.json").write_text(json.dumps(LABELS))
    (labels / "train.json").write_text(json.dumps([
        _entry("101", "Pushing [something] from left to right", "a pen"),
        _entry("102", "Putting [something] onto [something]", "a cup", "a book"),
        _entry("103", "Pushing [something] from right to left", "a pen"),       # no video
        _entry("104", "Juggling [something]", "balls"),                         # no template
        {"label": "no id"}]))
    (labels / "validation.json").write_text(json.dumps([
        _entry("201", "Turning the camera left while filming [something]", "a lamp")]))
    (labels / "test.json").write_text(json.dumps([{"id": "301"}]))
    videos = data / "20bn-something-something-v2"
    videos.mkdir()
    for video_id in ("101", "102", "104", "201", "301"):
        write_av_video(videos / f"{video_id}.webm", 24, fps=12, codec="libvpx-vp9", gop=12)
    return data


def test_flip_label_swap_maps_each_direction_to_its_mirror():
    classes = list(LABELS)
    table = reader.label_swap_table(classes, ssv2.FLIP_LABEL_SWAP)
    index = {name: i for i, name in enumerate(classes)}

    def mirrored(name):          # left <-> right, word by word
        return " ".join({"left": "right", "right": "left"}.get(w, w) for w in name.split())
    for name in classes:
        expected = mirrored(name) if ("left" in name or "right" in name) else name
        assert classes[table[index[name]]] == expected, name
    for a, b in ssv2.FLIP_LABEL_SWAP.items():
        assert mirrored(a) == b and a != b
    # the build writes only the pairs whose classes it has
    assert ssv2.flip_label_swap(classes[:3]) == {
        "Pushing something from left to right": "Pushing something from right to left"}
    assert ssv2.flip_label_swap(["Putting something onto something"]) is None


def test_ssv2_listing(ssv2_data):
    listing = ssv2.list_items(str(ssv2_data), SourceOptions())
    assert listing.classes == list(LABELS) and listing.splits == ("train", "val", "test")
    assert [(it.video_id, it.split, it.label, it.label_text, it.extra) for it in listing.items] == [
        ("20bn-something-something-v2/101.webm", "train", 0,
         "Pushing something from left to right",
         {"filled_text": "pushing a pen from left to right"}),
        ("20bn-something-something-v2/102.webm", "train", 2, "Putting something onto something",
         {"filled_text": "putting a cup onto a book"}),
        ("20bn-something-something-v2/201.webm", "val", 3,
         "Turning the camera left while filming something",
         {"filled_text": "turning the camera left while filming a lamp"}),
        ("20bn-something-something-v2/301.webm", "test", -1, "", {})]
    assert sorted(p.reason for p in listing.problems) == ["bad_json_row", "missing_file",
                                                          "unknown_label"]
    assert listing.flip_label_swap == PAIRS_HERE


def test_ssv2_missing_labels(tmp_path):
    with pytest.raises(SourceError, match="labels.json") as err:
        ssv2.list_items(str(tmp_path), SourceOptions())
    assert ssv2.LAYOUT in str(err.value)


def test_ssv2_build_keeps_template_filled_label_and_flip_pairs(ssv2_data, tmp_path):
    import tensorflow as tf
    code = build.build_main(["build", "--dataset=ssv2", f"--data_dir={ssv2_data}",
                             f"--output_dir={tmp_path / 'out'}", "--config_name=b",
                             "--noprogress", "--direct_running_mode=in_memory",
                             "--direct_num_workers=1", "--num_shards=1", "--sampling=uniform",
                             "--num_frames=4", "--size=32x24", "--max_failure_ratio=1"])
    assert code == 0
    out = tmp_path / "out" / "ssv2" / "b"
    info = json.loads((out / schema.DATASET_INFO_FILE).read_text())
    assert info["flip_label_swap"] == PAIRS_HERE
    assert {split: (s["listed"], s["num_items"], s["quarantined"], s["unlabelled"])
            for split, s in info["splits"].items()} == {
        "train": (5, 2, 3, 0), "val": (1, 1, 0, 0), "test": (1, 1, 0, 1)}
    errors = [json.loads(x) for x in (out / schema.ERRORS_FILE).read_text().splitlines()]
    assert sorted(e["reason"] for e in errors) == ["bad_json_row", "missing_file",
                                                   "unknown_label"]
    spec = {schema.LABEL_FILLED_TEXT: tf.io.FixedLenFeature([], tf.string, default_value="")}
    found = {}
    for split, s in info["splits"].items():
        for raw in tf.data.TFRecordDataset([str(out / name) for name in s["shards"]]):
            parsed = schema.parse_clip(raw)
            context, _ = tf.io.parse_single_sequence_example(raw, context_features=spec)
            found[parsed["video_id"].numpy().decode().split("/")[-1]] = (
                parsed["label_text"].numpy().decode(),
                context[schema.LABEL_FILLED_TEXT].numpy().decode(), int(parsed["num_frames"]))
    assert found == {
        "101.webm": ("Pushing something from left to right", "pushing a pen from left to right",
                     4),
        "102.webm": ("Putting something onto something", "putting a cup onto a book", 4),
        "201.webm": ("Turning the camera left while filming something",
                     "turning the camera left while filming a lamp", 4),
        "301.webm": ("", "", 4)}
