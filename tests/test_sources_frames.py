"""Tests for the frame-folder and image sources (gestures, jester, images) on tiny trees."""
from __future__ import annotations

import collections
import hashlib

import cv2
import numpy as np
import pytest

from pipeline import sources
from pipeline.media import frames
from pipeline.sources import gestures, images, jester
from pipeline.media.encode import FrameSpec
from pipeline.media.items import Item
from pipeline.media.sampling import SamplingSpec
from pipeline.sources.base import SourceError, SourceOptions


def _write(root, files: dict[str, str | bytes]):
    """Creates the given files (relative path -> contents) under root."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)


def _png(level: int, height: int, width: int) -> bytes:
    return cv2.imencode(".png", np.full((height, width, 3), level, np.uint8))[1].tobytes()


def _problems(listing):
    return [(p.path, p.stage, p.reason, p.split) for p in listing.problems]


def test_registered():
    for module in (gestures, images, jester):
        assert sources.get_source(module.NAME) is module


# --- gestures --------------------------------------------------------------

LEFT = "WIN_20180925_17_08_43_Pro_Left_Swipe_new"
RIGHT_SPACED = "WIN_20180907_15_35_09_Pro_Right Swipe_new"
RIGHT = "WIN_20180925_17_20_14_Pro_Right_Swipe_new"
STOP = "WIN_20180926_17_05_38_Pro_Stop_new"
GESTURE_CSVS = {
    "train.csv": (f"{LEFT};Left_Swipe_new;0\r\n"
                  f"{RIGHT_SPACED};Right Swipe_new;1\r\n"
                  f"{RIGHT};Right_Swipe_new;1\r\n"
                  "\r\n"
                  f"{STOP};Stop_new;2\r\n"
                  "WIN_20180926_17_06_00_Pro_Stop_new;Stop_new;0\r\n"      # Stop_new is 2
                  "WIN_20180926_17_07_00_Pro_Left_Swipe_new;Left_Swipe_new;0\r\n"  # no folder
                  "WIN_20180926_17_08_00_Pro_Stop_new;Stop_new\r\n"
                  "WIN_20180926_17_09_00_Pro_Stop_new;Stop_new;two\r\n"
                  # spelt differently, but the name of class 1:
                  "WIN_20180926_17_10_00_Pro_Right_Swipe_new;right_swipe_NEW;0\r\n"),
    "val.csv": (f"{STOP};Stop_new;2\n"
                f"{RIGHT};Right_Swipe_new;1\n"),
}


def _gesture_tree(tmp_path):
    files = dict(GESTURE_CSVS)
    for split, folder, size in (("train", LEFT, (360, 360)), ("train", RIGHT_SPACED, (120, 160)),
                                ("train", RIGHT, (360, 360)), ("train", STOP, (120, 160)),
                                ("val", STOP, (360, 360)), ("val", RIGHT, (120, 160)),
                                ("train", "WIN_unlisted_Pro_Stop_new", (120, 160))):
        for i in range(1, 4):
            files[f"{split}/{folder}/WIN_20180925_17_08_43_Pro_{i:05d}.png"] = _png(40 * i, *size)
    files["train/WIN_20180926_17_06_00_Pro_Stop_new/WIN_00001.png"] = _png(0, 120, 160)
    _write(tmp_path, files)


def test_gestures_listing(tmp_path):
    _gesture_tree(tmp_path)
    listing = gestures.list_items(str(tmp_path), SourceOptions())
    assert listing.classes == ["Left_Swipe_new", "Right_Swipe_new", "Stop_new"]
    assert listing.splits == ("train", "val")
    assert listing.modality == "video"

    def item(split, folder, label):
        return Item(str(tmp_path / split / folder), f"{split}/{folder}", split, label,
                    listing.classes[label], kind="frames")
    assert listing.items == [item("train", LEFT, 0), item("train", RIGHT_SPACED, 1),
                             item("train", RIGHT, 1), item("train", STOP, 2),
                             item("val", STOP, 2), item("val", RIGHT, 1)]
    assert all(i.files == () for i in listing.items)
    train_csv = str(tmp_path / "train.csv")
    assert _problems(listing) == [
        (train_csv, "list", "bad_csv_row", "train"),
        (train_csv, "list", "bad_csv_row", "train"),
        (str(tmp_path / "train/WIN_20180926_17_06_00_Pro_Stop_new"), "list", "unknown_label",
         "train"),
        (str(tmp_path / "train/WIN_20180926_17_07_00_Pro_Left_Swipe_new"), "list",
         "missing_folder", "train"),
        (str(tmp_path / "train/WIN_20180926_17_10_00_Pro_Right_Swipe_new"), "list",
         "unknown_label", "train"),
    ]
    assert gestures.list_items(str(tmp_path), SourceOptions()) == listing


def test_gestures_mixed_folder_sizes_become_uniform(tmp_path):
    _gesture_tree(tmp_path)
    listing = gestures.list_items(str(tmp_path), SourceOptions())
    spec = FrameSpec(crop="center_square", size=(64, 64), image_format="raw")
    shapes = []
    for item in listing.items:
        clip = frames.decode_frame_folder(item, SamplingSpec(mode="uniform", num_frames=2), spec)
        assert clip.source_indices == [0, 2]
        assert [clip.frames[0][0], clip.frames[1][0]] == [40, 120]
        shapes.append((clip.height, clip.width, clip.source_height, clip.source_width))
    assert shapes == [(64, 64, 360, 360), (64, 64, 120, 160), (64, 64, 360, 360),
                      (64, 64, 120, 160), (64, 64, 360, 360), (64, 64, 120, 160)]


def test_gestures_missing_csv_and_index_gap(tmp_path):
    _write(tmp_path, {"train.csv": GESTURE_CSVS["train.csv"], f"train/{LEFT}/1.png": b"x"})
    with pytest.raises(SourceError, match="val.csv") as err:
        gestures.list_items(str(tmp_path), SourceOptions())
    assert gestures.LAYOUT in str(err.value)
    _write(tmp_path, {"train.csv": f"{LEFT};Left_Swipe_new;0\n{STOP};Stop_new;2\n",
                      "val.csv": ""})
    with pytest.raises(SourceError, match=r"0..N-1 without gaps; found \[0, 2\]"):
        gestures.list_items(str(tmp_path), SourceOptions())


# --- jester ----------------------------------------------------------------

JESTER_CSVS = {
    "jester-v1-labels.csv": "Swiping Left\nSwiping Right\nThumb Up\n",
    "jester-v1-train.csv": "1;Swiping Left\n2;Thumb Up\n3;Jumping\n4;Swiping Right\n;Thumb Up\n",
    "jester-v1-validation.csv": "5;Swiping Right\n\n",
}


def _jester_tree(tmp_path, frames_dir="20bn-jester-v1/", test=True):
    files = dict(JESTER_CSVS)
    if test:
        files["jester-v1-test.csv"] = "6\n7\n"
    for video in ("1", "2", "3", "5", "6"):
        for n in (1, 2):
            files[f"{frames_dir}{video}/{n:05d}.jpg"] = b"x"
    _write(tmp_path, files)


def test_jester_listing(tmp_path):
    _jester_tree(tmp_path)
    listing = jester.list_items(str(tmp_path), SourceOptions())
    assert listing.classes == ["Swiping Left", "Swiping Right", "Thumb Up"]
    assert listing.splits == ("train", "val", "test")
    root = tmp_path / "20bn-jester-v1"

    def item(video, split, label, text):
        return Item(str(root / video), f"20bn-jester-v1/{video}", split, label, text,
                    kind="frames")
    assert listing.items == [item("1", "train", 0, "Swiping Left"),
                             item("2", "train", 2, "Thumb Up"),
                             item("5", "val", 1, "Swiping Right"),
                             item("6", "test", -1, "")]
    assert _problems(listing) == [
        (str(root / "3"), "list", "unknown_label", "train"),
        (str(root / "4"), "list", "missing_folder", "train"),
        (str(tmp_path / "jester-v1-train.csv"), "list", "bad_csv_row", "train"),
        (str(root / "7"), "list", "missing_folder", "test"),
    ]


def test_jester_frames_in_data_dir_without_test_csv(tmp_path):
    _jester_tree(tmp_path, frames_dir="", test=False)
    listing = jester.list_items(str(tmp_path), SourceOptions())
    assert listing.splits == ("train", "val")
    assert [(i.path, i.video_id, i.split, i.label) for i in listing.items] == [
        (str(tmp_path / "1"), "1", "train", 0), (str(tmp_path / "2"), "2", "train", 2),
        (str(tmp_path / "5"), "5", "val", 1)]


def test_jester_missing_files(tmp_path):
    _write(tmp_path, {k: v for k, v in JESTER_CSVS.items() if "labels" not in k})
    with pytest.raises(SourceError, match="jester-v1-labels.csv") as err:
        jester.list_items(str(tmp_path), SourceOptions())
    assert jester.LAYOUT in str(err.value)
    (tmp_path / "jester-v1-validation.csv").unlink()
    _write(tmp_path, {"jester-v1-labels.csv": JESTER_CSVS["jester-v1-labels.csv"]})
    with pytest.raises(SourceError, match="jester-v1-validation.csv"):
        jester.list_items(str(tmp_path), SourceOptions())


# --- images ----------------------------------------------------------------

# 10 sitting, 7 running, 2 dancing, in an interleaved CSV order.
IMAGE_LABELS = {f"Image_{i}.jpg": ("sitting" if i % 3 == 0 else "running" if i % 3 == 1
                                   else "dancing") for i in range(1, 20)}
IMAGE_LABELS.update({"Image_20.jpg": "sitting", "Image_23.jpg": "sitting",
                     "Image_26.jpg": "sitting", "Image_29.jpg": "sitting"})
IMAGE_LABELS = {k: v for k, v in IMAGE_LABELS.items()
                if v != "dancing" or k in ("Image_2.jpg", "Image_5.jpg")}


def _image_tree(tmp_path, testing="filename\nImage_1.jpg\nImage_2.jpg\nImage_gone.jpg\n"):
    rows = "".join(f"{name},{label}\n" for name, label in IMAGE_LABELS.items())
    files = {"Training_set.csv": "filename,label\n" + rows + "Image_99.jpg,sitting\n"
                                 ",sitting\nImage_98.jpg,\n\"Image_97.jpg\",running,extra\n",
             "Testing_set.csv": testing,
             "test/Image_1.jpg": b"x", "test/Image_2.jpg": b"x", "test/Image_3.jpg": b"x",
             "train/Image_98.jpg": b"x", "train/Image_97.jpg": b"x"}
    files.update({f"train/{name}": b"x" for name in IMAGE_LABELS})
    _write(tmp_path, files)


def _rank(video_id: str) -> float:
    """The documented order: sha256 of the video id, first 8 bytes as u in [0, 1)."""
    return int.from_bytes(hashlib.sha256(video_id.encode()).digest()[:8], "big") / 2.0 ** 64


def _by_class_and_split(listing):
    return dict(collections.Counter((i.label_text, i.split) for i in listing.items))


def test_images_csv_listing(tmp_path):
    _image_tree(tmp_path)
    listing = images.list_items(str(tmp_path), SourceOptions())
    assert listing.classes == ["dancing", "running", "sitting"]
    assert (listing.modality, listing.splits, listing.unused) == ("image", ("train", "test"), {})
    labels = {"dancing": 0, "running": 1, "sitting": 2}
    assert listing.items == (
        [Item(str(tmp_path / "train" / name), f"train/{name}", "train", labels[label], label,
              kind="image") for name, label in IMAGE_LABELS.items()]
        + [Item(str(tmp_path / "test" / name), f"test/{name}", "test", -1, "", kind="image")
           for name in ("Image_1.jpg", "Image_2.jpg")])
    train_csv = str(tmp_path / "Training_set.csv")
    assert _problems(listing) == [
        (str(tmp_path / "train/Image_99.jpg"), "list", "missing_file", "train"),
        (train_csv, "list", "bad_csv_row", "train"),
        (train_csv, "list", "bad_csv_row", "train"),
        (train_csv, "list", "bad_csv_row", "train"),
        (str(tmp_path / "test/Image_gone.jpg"), "list", "missing_file", "test"),
    ]


def test_images_testing_set_with_labels(tmp_path):
    _image_tree(tmp_path, testing="filename,label\nImage_1.jpg,\nImage_2.jpg,sitting\n"
                                  "Image_3.jpg,flying\n")
    listing = images.list_items(str(tmp_path), SourceOptions())
    assert [(i.video_id, i.label, i.label_text) for i in listing.items if i.split == "test"] == [
        ("test/Image_1.jpg", -1, ""), ("test/Image_2.jpg", 2, "sitting")]
    assert _problems(listing)[-1] == (str(tmp_path / "test/Image_3.jpg"), "list",
                                      "unknown_label", "test")


def test_images_stratified_split(tmp_path):
    _image_tree(tmp_path)
    options = SourceOptions(val_fraction=0.2, test_fraction=0.3)
    listing = images.list_items(str(tmp_path), options)
    assert listing.splits == ("train", "val", "test")
    # sitting 10 -> 3 test, 2 val, 5 train; running 7 -> 2 (2.1), 1 (1.4), 4;
    # dancing 2 -> 1 (0.6), 0 (0.4), 1. The unlabelled Testing_set rows are left out.
    assert _by_class_and_split(listing) == {
        ("sitting", "test"): 3, ("sitting", "val"): 2, ("sitting", "train"): 5,
        ("running", "test"): 2, ("running", "val"): 1, ("running", "train"): 4,
        ("dancing", "test"): 1, ("dancing", "train"): 1}
    assert listing.unused == {"unlabelled_test": 2}
    for name in listing.classes:
        ordered = sorted((i for i in listing.items if i.label_text == name),
                         key=lambda i: _rank(i.video_id))
        n_test = {"sitting": 3, "running": 2, "dancing": 1}[name]
        n_val = {"sitting": 2, "running": 1, "dancing": 0}[name]
        assert [i.split for i in ordered] == (["test"] * n_test + ["val"] * n_val
                                              + ["train"] * (len(ordered) - n_test - n_val))
    assert images.list_items(str(tmp_path), options) == listing
    # Pinned: a change here would reshuffle everyone's splits.
    assert sorted(i.video_id for i in listing.items
                  if i.split == "test" and i.label_text == "sitting") == [
        "train/Image_23.jpg", "train/Image_6.jpg", "train/Image_9.jpg"]


def test_images_val_only_keeps_the_unlabelled_test_split(tmp_path):
    _image_tree(tmp_path)
    listing = images.list_items(str(tmp_path), SourceOptions(val_fraction=0.5))
    assert listing.splits == ("train", "val", "test")
    assert _by_class_and_split(listing) == {
        ("sitting", "val"): 5, ("sitting", "train"): 5, ("running", "val"): 4,
        ("running", "train"): 3, ("dancing", "val"): 1, ("dancing", "train"): 1,
        ("", "test"): 2}


def test_images_min_and_max_per_class(tmp_path):
    _image_tree(tmp_path)
    listing = images.list_items(str(tmp_path), SourceOptions(min_per_class=3))
    assert listing.classes == ["running", "sitting"]
    assert listing.unused == {"class_below_min_per_class": 2}
    assert {(i.label_text, i.label) for i in listing.items} == {
        ("running", 0), ("sitting", 1), ("", -1)}

    listing = images.list_items(str(tmp_path), SourceOptions(max_per_class=4, min_per_class=2))
    assert listing.classes == ["dancing", "running", "sitting"]
    assert listing.unused == {"over_max_per_class": 9}
    assert _by_class_and_split(listing) == {
        ("sitting", "train"): 4, ("running", "train"): 4, ("dancing", "train"): 2,
        ("", "test"): 2}
    kept = {i.video_id for i in listing.items}
    for name in ("sitting", "running"):
        ids = sorted((f"train/{n}" for n, label in IMAGE_LABELS.items() if label == name),
                     key=_rank)
        assert [v for v in ids if v in kept] == ids[:4]
    assert images.list_items(str(tmp_path),
                             SourceOptions(max_per_class=4, min_per_class=2)) == listing


def test_images_class_folders(tmp_path):
    _write(tmp_path, {"cats/a.jpg": b"x", "cats/b.PNG": b"x", "cats/notes.txt": b"x",
                      "dogs/c.jpeg": b"x", "dogs/d.bmp": b"x", "dogs/e.gif": b"x",
                      "loose.jpg": b"x"})
    listing = images.list_items(str(tmp_path), SourceOptions())
    assert (listing.classes, listing.splits, listing.modality) == (
        ["cats", "dogs"], ("train",), "image")
    assert listing.items == [
        Item(str(tmp_path / rel), rel, "train", label, rel.split("/")[0], kind="image")
        for rel, label in (("cats/a.jpg", 0), ("cats/b.PNG", 0), ("dogs/c.jpeg", 1),
                           ("dogs/d.bmp", 1))]
    listing = images.list_items(str(tmp_path), SourceOptions(test_fraction=0.5))
    assert listing.splits == ("train", "test")
    assert _by_class_and_split(listing) == {("cats", "test"): 1, ("cats", "train"): 1,
                                            ("dogs", "test"): 1, ("dogs", "train"): 1}


def test_images_errors(tmp_path):
    with pytest.raises(SourceError, match="empty dataset") as err:
        images.list_items(str(tmp_path), SourceOptions())
    assert images.LAYOUT in str(err.value)
    with pytest.raises(SourceError, match="fraction"):
        images.list_items(str(tmp_path), SourceOptions(val_fraction=0.6, test_fraction=0.4))
    _write(tmp_path, {"Training_set.csv": "filename\nImage_1.jpg\n", "train/Image_1.jpg": b"x"})
    with pytest.raises(SourceError, match="'filename' and 'label'"):
        images.list_items(str(tmp_path), SourceOptions())


def test_images_split_counts_round_half_up(tmp_path):
    _write(tmp_path, {f"cats/{n}.jpg": b"x" for n in range(5)})
    listing = images.list_items(str(tmp_path), SourceOptions(test_fraction=0.5))
    assert _by_class_and_split(listing) == {("cats", "test"): 3, ("cats", "train"): 2}
