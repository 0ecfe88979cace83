"""Tests for the dataset sources on tiny trees in the real layouts."""
from __future__ import annotations

import hashlib

import pytest

from pipeline import sources
from pipeline.sources import base, folder, hmdb51, ucf101
from pipeline.media.items import Item
from pipeline.sources.base import SourceError, SourceOptions


def _write(root, files: dict[str, str | bytes]):
    """Creates the given files (relative path -> contents) under root."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_bytes(content.encode())
        else:
            path.write_bytes(content)


# --- UCF101 ----------------------------------------------------------------

UCF_LISTS = {
    "ucfTrainTestlist/classInd.txt":
        "1 ApplyEyeMakeup\r\n2 Basketball\r\n3 HandstandPushups\r\n",
    "ucfTrainTestlist/trainlist01.txt":
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\r\n"
        "\r\n"
        "Basketball/v_Basketball_g08_c01.avi 2\r\n",
    "ucfTrainTestlist/testlist01.txt":
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\r\n",
    "ucfTrainTestlist/trainlist02.txt":
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi 1\n",
    "ucfTrainTestlist/testlist02.txt":
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi\n"
        "Basketball/v_Basketball_g08_c01.avi\n",
}
UCF_VIDEOS = {
    "UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi": b"x",
    "UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi": b"x",
    "UCF-101/Basketball/v_Basketball_g08_c01.avi": b"",
}


def _ucf_item(tmp_path, rel, split, label, text):
    return Item(str(tmp_path / "UCF-101" / rel), rel, split, label, text)


def test_ucf101_split1(tmp_path):
    _write(tmp_path, {**UCF_LISTS, **UCF_VIDEOS})
    listing = ucf101.list_items(str(tmp_path), SourceOptions(split_id=1))
    assert listing.classes == ["ApplyEyeMakeup", "Basketball", "HandstandPushups"]
    assert listing.splits == ("train", "test")
    assert listing.problems == []
    assert listing.items == [
        _ucf_item(tmp_path, "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", "train", 0,
                  "ApplyEyeMakeup"),
        _ucf_item(tmp_path, "Basketball/v_Basketball_g08_c01.avi", "train", 1, "Basketball"),
        _ucf_item(tmp_path, "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", "test", 0,
                  "ApplyEyeMakeup"),
    ]


def test_ucf101_listing_carries_the_action_types_of_its_classes(tmp_path):
    _write(tmp_path, {**UCF_LISTS, **UCF_VIDEOS})
    listing = ucf101.list_items(str(tmp_path), SourceOptions(split_id=1))
    assert listing.class_groups == {"Human-Object Interaction": ["ApplyEyeMakeup"],
                                    "Body-Motion Only": ["HandstandPushups"],
                                    "Sports": ["Basketball"]}
    assert ucf101.class_groups(["ApplyEyeMakeup", "SwipeLeft"]) is None   # not UCF101's
    assert sum(len(v) for v in ucf101.ACTION_GROUPS.values()) == 101


def test_ucf101_split2(tmp_path):
    _write(tmp_path, {**UCF_LISTS, **UCF_VIDEOS})
    listing = ucf101.list_items(str(tmp_path), SourceOptions(split_id=2))
    assert listing.items == [
        _ucf_item(tmp_path, "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", "train", 0,
                  "ApplyEyeMakeup"),
        _ucf_item(tmp_path, "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", "test", 0,
                  "ApplyEyeMakeup"),
        _ucf_item(tmp_path, "Basketball/v_Basketball_g08_c01.avi", "test", 1, "Basketball"),
    ]


def test_ucf101_matches_names_case_insensitively(tmp_path):
    # The official lists say HandStandPushups; the folder is HandstandPushups.
    _write(tmp_path, {
        "ucfTrainTestlist/classInd.txt": "1 HandstandPushups\n",
        "ucfTrainTestlist/trainlist01.txt":
            "HandStandPushups/v_HandStandPushups_g08_c01.avi 1\n",
        "ucfTrainTestlist/testlist01.txt": "HandStandPushups/v_HandStandPushups_g01_c01.avi\n",
        "UCF-101/HandstandPushups/v_HandstandPushups_g08_c01.avi": b"x",
        "UCF-101/HandstandPushups/v_HandStandPushups_g01_c01.avi": b"x",
    })
    listing = ucf101.list_items(str(tmp_path), SourceOptions(split_id=1))
    assert listing.problems == []
    assert listing.items == [
        _ucf_item(tmp_path, "HandstandPushups/v_HandstandPushups_g08_c01.avi", "train", 0,
                  "HandstandPushups"),
        _ucf_item(tmp_path, "HandstandPushups/v_HandStandPushups_g01_c01.avi", "test", 0,
                  "HandstandPushups"),
    ]


def test_ucf101_missing_file_and_unknown_class(tmp_path):
    _write(tmp_path, {
        **UCF_VIDEOS,
        "classInd.txt": "1 ApplyEyeMakeup\n",  # lists directly in data_dir
        "trainlist01.txt": "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\n"
                           "ApplyEyeMakeup/v_ApplyEyeMakeup_g99_c01.avi 1\n",
        "testlist01.txt": "Basketball/v_Basketball_g08_c01.avi\n",
    })
    listing = ucf101.list_items(str(tmp_path), SourceOptions(split_id=1))
    assert listing.items == [
        _ucf_item(tmp_path, "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", "train", 0,
                  "ApplyEyeMakeup"),
    ]
    assert [(p.path, p.stage, p.reason, p.split) for p in listing.problems] == [
        (str(tmp_path / "UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g99_c01.avi"), "list",
         "missing_file", "train"),
        (str(tmp_path / "UCF-101/Basketball/v_Basketball_g08_c01.avi"), "list",
         "unknown_class", "test"),
    ]


def test_ucf101_videos_directly_in_data_dir(tmp_path):
    _write(tmp_path, {
        **UCF_LISTS,
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi": b"x",
        "Basketball/v_Basketball_g08_c01.avi": b"x",
    })
    listing = ucf101.list_items(str(tmp_path), SourceOptions(split_id=1))
    assert [(i.path, i.video_id) for i in listing.items] == [
        (str(tmp_path / "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi"),
         "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi"),
        (str(tmp_path / "Basketball/v_Basketball_g08_c01.avi"),
         "Basketball/v_Basketball_g08_c01.avi"),
    ]
    assert [p.reason for p in listing.problems] == ["missing_file"]


def test_ucf101_missing_classind(tmp_path):
    lists = {k: v for k, v in UCF_LISTS.items() if not k.endswith("classInd.txt")}
    _write(tmp_path, {**lists, **UCF_VIDEOS})
    with pytest.raises(SourceError, match="classInd.txt") as err:
        ucf101.list_items(str(tmp_path), SourceOptions(split_id=1))
    assert ucf101.LAYOUT in str(err.value)


def test_ucf101_missing_split_file(tmp_path):
    _write(tmp_path, {**UCF_LISTS, **UCF_VIDEOS,
                      "ucfTrainTestlist/trainlist03.txt": "Basketball/v_Basketball_g08_c01.avi\n"})
    with pytest.raises(SourceError, match="testlist03.txt"):
        ucf101.list_items(str(tmp_path), SourceOptions(split_id=3))


@pytest.mark.parametrize("split_id", [0, 4])
def test_ucf101_bad_split_id(tmp_path, split_id):
    _write(tmp_path, {**UCF_LISTS, **UCF_VIDEOS})
    with pytest.raises(SourceError, match="split"):
        ucf101.list_items(str(tmp_path), SourceOptions(split_id=split_id))


def test_ucf101_empty_dataset(tmp_path):
    _write(tmp_path, UCF_LISTS)
    with pytest.raises(SourceError, match="empty dataset"):
        ucf101.list_items(str(tmp_path), SourceOptions(split_id=1))


def test_ucf101_tfds_layout_gives_the_same_official_splits(tmp_path):
    """TensorFlow Datasets' download: every video in UCF101/, the lists in ucfTrainTestlist/
    (with the class folders the videos no longer have)."""
    _write(tmp_path, {**UCF_LISTS,
                      "UCF101/v_ApplyEyeMakeup_g08_c01.avi": b"x",
                      "UCF101/v_ApplyEyeMakeup_g01_c01.avi": b"x",
                      "UCF101/v_Basketball_g08_c01.avi": b"x"})
    flat = ucf101.list_items(str(tmp_path), SourceOptions(split_id=1))
    other = tmp_path / "folders"
    _write(other, {**UCF_LISTS, **UCF_VIDEOS})
    folders = ucf101.list_items(str(other), SourceOptions(split_id=1))
    assert [(i.split, i.label, i.label_text) for i in flat.items] == [
        (i.split, i.label, i.label_text) for i in folders.items]
    assert [(i.path, i.video_id) for i in flat.items] == [
        (str(tmp_path / "UCF101" / name), name) for name in (
            "v_ApplyEyeMakeup_g08_c01.avi", "v_Basketball_g08_c01.avi",
            "v_ApplyEyeMakeup_g01_c01.avi")]
    assert flat.problems == [] and flat.splits == ("train", "test")
    # a listed video missing from the flat folder is accounted for, with its flat path
    (tmp_path / "UCF101" / "v_Basketball_g08_c01.avi").unlink()
    listing = ucf101.list_items(str(tmp_path), SourceOptions(split_id=1))
    assert [(p.path, p.reason) for p in listing.problems] == [
        (str(tmp_path / "UCF101" / "v_Basketball_g08_c01.avi"), "missing_file")]


def _ucf_groups(tmp_path, classes=("ApplyEyeMakeup", "Basketball"), train_groups=range(8, 26),
                clips=3):
    """A UCF101 tree: train groups g08..g25 and test groups g01..g07, ``clips`` clips each."""
    files, train, test = {}, [], []
    for c, name in enumerate(classes, 1):
        for g in range(1, 26):
            for k in range(1, clips + 1):
                rel = f"{name}/v_{name}_g{g:02d}_c{k:02d}.avi"
                files[f"UCF-101/{rel}"] = b"x"
                (train if g in train_groups else test).append(
                    f"{rel} {c}" if g in train_groups else rel)
    files["ucfTrainTestlist/classInd.txt"] = "".join(
        f"{c} {name}\n" for c, name in enumerate(classes, 1))
    files["ucfTrainTestlist/trainlist01.txt"] = "\n".join(train) + "\n"
    files["ucfTrainTestlist/testlist01.txt"] = "\n".join(test) + "\n"
    _write(tmp_path, files)


def test_ucf101_val_holds_out_whole_groups_of_each_class(tmp_path):
    _ucf_groups(tmp_path)
    listing = ucf101.list_items(str(tmp_path), SourceOptions(split_id=1, val_fraction=0.1))
    assert listing.splits == ("train", "val", "test")
    group = {}
    for item in listing.items:
        group.setdefault(ucf101.group_of_video(item.path), set()).add(item.split)
    assert all(len(splits) == 1 for splits in group.values()), "a group split across splits"
    for name in ("applyeyemakeup", "basketball"):
        held = sorted(g for g, splits in group.items() if g.startswith(f"v_{name}_")
                      and splits == {"val"})
        assert len(held) == 2                      # round(0.1 x 18 train groups)
        assert all(8 <= int(g[-2:]) <= 25 for g in held)
    # the official test split is untouched; the same groups every run
    assert sum(i.split == "test" for i in listing.items) == 2 * 7 * 3
    again = ucf101.list_items(str(tmp_path), SourceOptions(split_id=1, val_fraction=0.1))
    assert [(i.video_id, i.split) for i in again.items] == [
        (i.video_id, i.split) for i in listing.items]
    expected = sorted(sorted(range(8, 26), key=lambda g: (
        base.stable_fraction(f"v_applyeyemakeup_g{g:02d}"), f"v_applyeyemakeup_g{g:02d}"))[:2])
    assert sorted(int(g[-2:]) for g, splits in group.items()
                  if g.startswith("v_applyeyemakeup_") and splits == {"val"}) == expected


def test_ucf101_refuses_a_test_fraction(tmp_path):
    _write(tmp_path, {**UCF_LISTS, **UCF_VIDEOS})
    with pytest.raises(SourceError, match="official test split"):
        ucf101.list_items(str(tmp_path), SourceOptions(split_id=1, test_fraction=0.2))
    with pytest.raises(SourceError, match="val_fraction"):
        ucf101.list_items(str(tmp_path), SourceOptions(split_id=1, val_fraction=1.5))


# --- HMDB51 ----------------------------------------------------------------

HMDB_SPLITS = "testTrainMulti_7030_splits/"


def test_hmdb51_split_codes_and_underscored_classes(tmp_path):
    _write(tmp_path, {
        HMDB_SPLITS + "brush_hair_test_split1.txt":
            "April_09_brush_hair_u_nm_np1_ba_goo_0.avi 1 \n"
            "April_09_brush_hair_u_nm_np1_ba_goo_1.avi 2\n"
            "April_09_brush_hair_u_nm_np1_ba_goo_2.avi 0\n",
        HMDB_SPLITS + "fall_floor_test_split1.txt":
            "\n"
            "fall_1.avi 2\r\n"
            "fall_2.avi 0\r\n"
            "fall_gone.avi 1\r\n"
            "fall_3.avi 7\r\n",
        HMDB_SPLITS + "brush_hair_test_split2.txt":
            "April_09_brush_hair_u_nm_np1_ba_goo_0.avi 2\n",
        HMDB_SPLITS + "fall_floor_test_split2.txt": "fall_1.avi 1\n",
        "brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi": b"x",
        "brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_1.avi": b"x",
        "fall_floor/fall_1.avi": b"x",
        "fall_floor/fall_3.avi": b"x",
    })
    listing = hmdb51.list_items(str(tmp_path), SourceOptions(split_id=1))
    assert listing.classes == ["brush_hair", "fall_floor"]
    assert listing.splits == ("train", "test")
    assert listing.unused == {"unused_in_split": 2}
    assert listing.items == [
        Item(str(tmp_path / "brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi"),
             "brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi", "train", 0, "brush_hair"),
        Item(str(tmp_path / "brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_1.avi"),
             "brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_1.avi", "test", 0, "brush_hair"),
        Item(str(tmp_path / "fall_floor/fall_1.avi"), "fall_floor/fall_1.avi", "test", 1,
             "fall_floor"),
    ]
    assert [(p.path, p.reason, p.split) for p in listing.problems] == [
        (str(tmp_path / "fall_floor/fall_gone.avi"), "missing_file", "train"),
        (str(tmp_path / "fall_floor/fall_3.avi"), "bad_split_line", ""),
    ]

    listing2 = hmdb51.list_items(str(tmp_path), SourceOptions(split_id=2))
    assert [(i.video_id, i.split, i.label) for i in listing2.items] == [
        ("brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi", "test", 0),
        ("fall_floor/fall_1.avi", "train", 1),
    ]
    assert listing2.unused == {"unused_in_split": 0}


def test_hmdb51_videos_under_hmdb51_org(tmp_path):
    _write(tmp_path, {
        HMDB_SPLITS + "ride_bike_test_split1.txt": "bike_a.avi 1\n",
        "hmdb51_org/ride_bike/bike_a.avi": b"x",
    })
    listing = hmdb51.list_items(str(tmp_path), SourceOptions(split_id=1))
    assert listing.items == [Item(str(tmp_path / "hmdb51_org/ride_bike/bike_a.avi"),
                                  "ride_bike/bike_a.avi", "train", 0, "ride_bike")]


def test_hmdb51_missing_splits(tmp_path):
    _write(tmp_path, {"ride_bike/bike_a.avi": b"x"})
    with pytest.raises(SourceError, match="testTrainMulti_7030_splits") as err:
        hmdb51.list_items(str(tmp_path), SourceOptions(split_id=1))
    assert hmdb51.LAYOUT in str(err.value)

    _write(tmp_path, {HMDB_SPLITS + "ride_bike_test_split1.txt": "bike_a.avi 1\n"})
    with pytest.raises(SourceError, match="_test_split3.txt"):
        hmdb51.list_items(str(tmp_path), SourceOptions(split_id=3))


def test_hmdb51_val_holds_out_whole_source_videos(tmp_path):
    """Clips of one source video (its title before the class and meta tags), in any class,
    stay together; names not spelt that way are their own source."""
    titles = [f"Movie_{i:02d}" for i in range(30)]
    files = {}
    for name in ("brush_hair", "fall_floor"):
        lines = []
        for title in titles:
            for k in range(2):
                clip = f"{title}_{name}_u_nm_np1_ba_goo_{k}.avi"
                files[f"{name}/{clip}"] = b"x"
                lines.append(f"{clip} {1 if int(title[-2:]) < 24 else 2}")
        files[f"{HMDB_SPLITS}{name}_test_split1.txt"] = "\n".join(lines) + "\n"
    _write(tmp_path, files)
    listing = hmdb51.list_items(str(tmp_path), SourceOptions(split_id=1, val_fraction=0.25))
    assert listing.splits == ("train", "val", "test")
    by_source = {}
    for item in listing.items:
        by_source.setdefault(hmdb51.source_of(item.path, item.label_text), set()).add(item.split)
    assert all(len(splits) == 1 for splits in by_source.values())
    held = sorted(s for s, splits in by_source.items() if splits == {"val"})
    assert held == sorted(t.lower() for t in titles[:24]
                          if base.hash_split(t.lower(), 0.25, 0.0) == "val") and held
    assert sum(i.split == "val" for i in listing.items) == 2 * 2 * len(held)
    assert sum(i.split == "test" for i in listing.items) == 2 * 2 * 6
    assert hmdb51.source_of("x/fall_3.avi", "fall_floor") == "fall_3"


# --- folder ----------------------------------------------------------------

def _expected_split(key: str, val: float, test: float) -> str:
    """The documented formula: sha256 of the relative path, first 8 bytes as u in [0, 1)."""
    u = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2.0 ** 64
    return "test" if u < test else "val" if u < test + val else "train"


FOLDER_FILES = {
    "cats/clip0.mp4": b"x",
    "cats/clip1.mp4": b"x",
    "cats/clip5.mp4": b"x",
    "dogs/clip1.mp4": b"x",
    "dogs/CLIP9.AVI": b"x",
    "dogs/notes.txt": b"not a video",
    "empty/readme.md": b"",
}


def test_folder_listing_and_hash_splits(tmp_path):
    _write(tmp_path, FOLDER_FILES)
    options = SourceOptions(val_fraction=0.2, test_fraction=0.3)
    listing = folder.list_items(str(tmp_path), options)
    assert listing.classes == ["cats", "dogs"]
    assert listing.splits == ("train", "val", "test")
    assert listing.problems == []
    rels = ["cats/clip0.mp4", "cats/clip1.mp4", "cats/clip5.mp4", "dogs/CLIP9.AVI",
            "dogs/clip1.mp4"]
    assert listing.items == [
        Item(str(tmp_path / rel), rel, _expected_split(rel, 0.2, 0.3),
             0 if rel.startswith("cats") else 1, rel.split("/")[0])
        for rel in rels
    ]
    # Pinned assignments: a change here would reshuffle everyone's splits.
    assert {i.video_id: i.split for i in listing.items if i.video_id != "dogs/CLIP9.AVI"} == {
        "cats/clip0.mp4": "test", "cats/clip1.mp4": "train", "cats/clip5.mp4": "val",
        "dogs/clip1.mp4": "train"}
    assert folder.list_items(str(tmp_path), options) == listing


def test_folder_splits_without_fractions(tmp_path):
    _write(tmp_path, FOLDER_FILES)
    listing = folder.list_items(str(tmp_path), SourceOptions())
    assert listing.splits == ("train",)
    assert {i.split for i in listing.items} == {"train"}
    listing = folder.list_items(str(tmp_path), SourceOptions(test_fraction=0.3))
    assert listing.splits == ("train", "test")
    assert [i.split for i in listing.items] == [
        _expected_split(i.video_id, 0.0, 0.3) for i in listing.items]


@pytest.mark.parametrize("val,test", [(-0.1, 0.0), (0.0, -0.1), (0.5, 0.5), (0.7, 0.4)])
def test_folder_rejects_bad_fractions(tmp_path, val, test):
    _write(tmp_path, FOLDER_FILES)
    with pytest.raises(SourceError, match="fraction"):
        folder.list_items(str(tmp_path), SourceOptions(val_fraction=val, test_fraction=test))


def test_folder_empty(tmp_path):
    _write(tmp_path, {"cats/notes.txt": b""})
    with pytest.raises(SourceError, match="empty dataset") as err:
        folder.list_items(str(tmp_path), SourceOptions())
    assert folder.LAYOUT in str(err.value)


# --- registry --------------------------------------------------------------

def test_registry():
    assert sources.get_source("ucf101") is ucf101
    assert {"folder", "hmdb51", "kinetics", "list", "ssv2", "ucf101"} <= set(
        sources.available())
    assert "base" not in sources.available()
    for name in sources.available():
        module = sources.get_source(name)
        assert module.NAME == name
        for attr in ("LAYOUT", "PUBLISHED_AT", "DEFAULT_SUBDIR"):
            assert isinstance(getattr(module, attr), str)


@pytest.mark.parametrize("name", ["kinetics9000", "base", "os"])
def test_registry_unknown_name(name):
    with pytest.raises(SourceError, match="unknown dataset") as err:
        sources.get_source(name)
    assert "ucf101" in str(err.value) and "hmdb51" in str(err.value)


# --- listing and reading local files ----------------------------------------

def _glob_listing(root, extensions, depth):
    """What list_entries gave when it listed with glob and a stat per path (its reference)."""
    import glob
    import os
    found, odd = [], []
    for path in sorted(glob.glob(os.path.join(glob.escape(str(root)), *["*"] * depth))):
        rel = path[len(str(root)):].lstrip("/")
        if not (rel.lower().endswith(extensions) and rel.count("/") == depth - 1):
            continue
        if os.path.isfile(path):
            found.append(rel)
        elif os.path.islink(path) and not os.path.exists(path):
            odd.append((rel, "broken_link"))
        else:
            odd.append((rel, "not_a_file"))
    return sorted(found), odd


@pytest.mark.parametrize("root_name", ["data", "data [v2] *"])
def test_listing_finds_what_a_glob_of_the_folder_finds(tmp_path, root_name):
    root = tmp_path / root_name
    _write(root, {"a/x.avi": b"1", "a/Y.MP4": b"2", "a/.hidden.avi": b"3", "a/notes.txt": b"4",
                  ".cache/z.avi": b"5", "b/c/deep.avi": b"6", "top.avi": b"7",
                  "elsewhere/w.avi": b"8"})
    (root / "a" / "folder.avi").mkdir()
    (root / "a" / "gone.avi").symlink_to(root / "missing.avi")
    (root / "a" / "link.avi").symlink_to(root / "a" / "x.avi")
    (root / "linked").symlink_to(root / "elsewhere")            # a linked class folder
    (root / "loop").symlink_to(root / "loop")                     # a link to itself
    (root / "a" / "loop.avi").symlink_to(root / "a" / "loop.avi")
    extensions = (".avi", ".mp4")
    for depth in (1, 2):
        found, odd = base.list_entries(str(root), extensions, depth)
        assert (found, [(rel, reason) for rel, reason, _ in odd]) == \
            _glob_listing(root, extensions, depth)
    found, odd = base.list_entries(str(root), extensions, 2)
    assert found == ["a/Y.MP4", "a/link.avi", "a/x.avi", "elsewhere/w.avi", "linked/w.avi"]
    assert [(rel, reason) for rel, reason, _ in odd] == [("a/folder.avi", "not_a_file"),
                                                         ("a/gone.avi", "broken_link"),
                                                         ("a/loop.avi", "broken_link")]
    assert base.list_entries(str(tmp_path / "absent"), extensions, 2) == ([], [])


def test_local_files_are_read_whole_whatever_their_size(tmp_path):
    from pipeline.media import files
    for size in (0, 1, 4096, 65536, 65537, 3 * 1024 * 1024 + 7):
        path = tmp_path / f"f{size}"
        data = hashlib.sha256(str(size).encode()).digest() * (size // 32 + 1)
        path.write_bytes(data[:size])
        assert files.read_bytes(str(path)) == data[:size]
    status = files.read_bytes("/proc/self/status")        # stat gives no size for these
    assert b"Name:" in status and status.endswith(b"\n")
    with pytest.raises(FileNotFoundError):
        files.read_bytes(str(tmp_path / "missing"))
    with pytest.raises(IsADirectoryError):
        files.read_bytes(str(tmp_path))


def test_an_item_goes_through_the_listing_file_unchanged():
    import json
    item = Item(path="/d/Kick_1_000000000003_keypoints.json", video_id="Kick_1", split="val",
                label=1, label_text="laces", kind="keypoints",
                files=("/d/a.json", "/d/b.json"),
                extra={"frame_numbers": [3, 4], "segments": [[0.0, 1.5, 1]]})
    back = Item.from_json_dict(json.loads(json.dumps(item.to_json_dict())))
    assert back == item and back.extra == item.extra and isinstance(back.files, tuple)
