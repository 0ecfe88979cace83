"""UCF101: 101 action classes, official train/test lists (three splits).

The official lists spell a few names differently from the folders and files on
disk (``HandStandPushups`` vs ``HandstandPushups``), so class names and listed
paths are matched case-insensitively; items carry the real on-disk path.

The dataset's paper (Soomro, Zamir and Shah, "UCF101: A Dataset of 101 Human Actions
Classes From Videos in The Wild", CRCV-TR-12-01, 2012) sorts the classes into five
action types: Human-Object Interaction (20 classes), Body-Motion Only (16),
Human-Human Interaction (5), Playing Musical Instruments (10) and Sports (50).
``ACTION_GROUPS`` holds them, spelt as in ``classInd.txt``; the build writes them into
``dataset_info.json`` (``class_groups``) and the evaluation reports each type's accuracy.

The videos may be in class folders (``UCF-101/<Class>/v_*.avi``, as in ``UCF101.rar``) or
all in one folder (``UCF101/v_*.avi``, the download TensorFlow Datasets uses); the lists
are the same official ones either way.

UCF101 publishes train and test only. ``--val_fraction`` holds out whole groups of the
train split as 'val': the clips ``v_<Class>_g<NN>_c<MM>`` of one group are cut from one
long video, so a validation split of single clips would hold near copies of training
clips. In each class the first ``round(fraction x its train groups)`` groups, ordered by
a stable hash of the group name (``base.held_out_per_class``), become 'val': the same
groups on every machine and run. The test split stays the official one.
"""
from __future__ import annotations

import dataclasses
import re

from pipeline.media.files import exists, join, read_text
from pipeline.media.items import Item, Problem
from pipeline.sources.base import (Listing, SourceError, SourceOptions, check_fractions,
                                   held_out_per_class, list_files)

NAME = "ucf101"
DEFAULT_SUBDIR = "ucf101"
PUBLISHED_AT = ("https://www.crcv.ucf.edu/data/UCF101.php "
                "(UCF101.rar and UCF101TrainTestSplits-RecognitionTask.zip)")
LAYOUT = """\
<data_dir>/
  ucfTrainTestlist/            (or these files directly in <data_dir>)
    classInd.txt               lines "1 ApplyEyeMakeup"
    trainlist01.txt .. 03      lines "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1"
    testlist01.txt .. 03       lines "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"
  UCF-101/                     (or the class folders directly in <data_dir>, or <data_dir>/videos/)
    ApplyEyeMakeup/
      v_ApplyEyeMakeup_g01_c01.avi
      ...
or, as TensorFlow Datasets downloads it (UCF101_videos.zip and the same lists):
  UCF101/v_ApplyEyeMakeup_g01_c01.avi ...   (all videos in one folder)
  ucfTrainTestlist/classInd.txt, trainlist01.txt ...
"""

ACTION_GROUPS: dict[str, tuple[str, ...]] = {
    "Human-Object Interaction": (
        "ApplyEyeMakeup", "ApplyLipstick", "BlowDryHair", "BrushingTeeth", "CuttingInKitchen",
        "Hammering", "HulaHoop", "JugglingBalls", "JumpRope", "Knitting", "Mixing",
        "MoppingFloor", "Nunchucks", "PizzaTossing", "ShavingBeard", "SkateBoarding",
        "SoccerJuggling", "Typing", "WritingOnBoard", "YoYo",
    ),
    "Body-Motion Only": (
        "BabyCrawling", "BlowingCandles", "BodyWeightSquats", "HandstandPushups",
        "HandstandWalking", "JumpingJack", "Lunges", "PullUps", "PushUps", "RockClimbingIndoor",
        "RopeClimbing", "Swing", "TaiChi", "TrampolineJumping", "WalkingWithDog", "WallPushups",
    ),
    "Human-Human Interaction": (
        "BandMarching", "Haircut", "HeadMassage", "MilitaryParade", "SalsaSpin",
    ),
    "Playing Musical Instruments": (
        "Drumming", "PlayingCello", "PlayingDaf", "PlayingDhol", "PlayingFlute", "PlayingGuitar",
        "PlayingPiano", "PlayingSitar", "PlayingTabla", "PlayingViolin",
    ),
    "Sports": (
        "Archery", "BalanceBeam", "BaseballPitch", "Basketball", "BasketballDunk", "BenchPress",
        "Biking", "Billiards", "Bowling", "BoxingPunchingBag", "BoxingSpeedBag", "BreastStroke",
        "CleanAndJerk", "CliffDiving", "CricketBowling", "CricketShot", "Diving", "Fencing",
        "FieldHockeyPenalty", "FloorGymnastics", "FrisbeeCatch", "FrontCrawl", "GolfSwing",
        "HammerThrow", "HighJump", "HorseRace", "HorseRiding", "IceDancing", "JavelinThrow",
        "Kayaking", "LongJump", "ParallelBars", "PoleVault", "PommelHorse", "Punch", "Rafting",
        "Rowing", "Shotput", "Skiing", "Skijet", "SkyDiving", "SoccerPenalty", "StillRings",
        "SumoWrestling", "Surfing", "TableTennisShot", "TennisSwing", "ThrowDiscus",
        "UnevenBars", "VolleyballSpiking",
    ),
}


def group_of(class_name: str) -> str | None:
    """The action type of a UCF101 class name (any case), or None for a name UCF101 lacks."""
    return _GROUP_BY_NAME.get(class_name.lower())


_GROUP_BY_NAME = {name.lower(): group for group, names in ACTION_GROUPS.items()
                  for name in names}


def class_groups(classes) -> dict[str, list[str]] | None:
    """``{action type: [class names in class order]}`` when every class is a UCF101 class,
    else None (a build of other classes in the UCF101 layout has no action types)."""
    groups = {name: group_of(name) for name in classes}
    if not groups or not all(groups.values()):
        return None
    out: dict[str, list[str]] = {group: [] for group in ACTION_GROUPS}
    for name, group in groups.items():
        out[group].append(name)
    return {group: names for group, names in out.items() if names}


_LIST_DIRS = ("ucfTrainTestlist", "")
_VIDEO_DIRS = ("UCF-101", "", "videos")
# Where the videos may be, in the order looked at: (folder, 2 = in class folders, 1 = all
# in that folder). UCF101/ before the class folders directly in <data_dir>, which it
# would look like.
_VIDEO_ROOTS = (("UCF-101", 2), ("UCF101", 1), ("", 2), ("videos", 2), ("", 1), ("videos", 1))
_SPLIT_FILES = (("train", "trainlist0{}.txt"), ("test", "testlist0{}.txt"))
_GROUP = re.compile(r"^v_(.+)_g(\d+)_c\d+$", re.IGNORECASE)


def _error(message: str) -> SourceError:
    """Builds a SourceError that shows the expected layout."""
    return SourceError(f"{message}\n\nExpected UCF101 layout:\n{LAYOUT}")


def _sub(data_dir: str, name: str) -> str:
    """Returns data_dir/name, or data_dir itself for an empty name."""
    return join(data_dir, name) if name else data_dir


def _find_list_dir(data_dir: str) -> str:
    """Returns the folder holding classInd.txt, preferring ucfTrainTestlist/."""
    for name in _LIST_DIRS:
        if exists(join(_sub(data_dir, name), "classInd.txt")):
            return _sub(data_dir, name)
    raise _error(f"missing {join(data_dir, 'ucfTrainTestlist', 'classInd.txt')}")


def _find_video_root(data_dir: str) -> tuple[str, list[str], bool]:
    """Returns the first candidate video root that has videos, its files, and whether they
    lie in one folder (no class folders)."""
    for name, depth in _VIDEO_ROOTS:
        root = _sub(data_dir, name)
        files = list_files(root, depth=depth)
        if depth == 1:
            files = [rel for rel in files if rel.lower().startswith("v_")]
        if files:
            return root, files, depth == 1
    return join(data_dir, _VIDEO_DIRS[0]), [], False


def group_of_video(name: str) -> str:
    """The group a UCF101 clip was cut from, ``v_<Class>_g<NN>`` lower-cased (the clips of a
    group come from one long video), from its file name; the name itself when it is not
    spelt that way."""
    stem = name.replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    match = _GROUP.match(stem)
    return (f"v_{match.group(1)}_g{int(match.group(2)):02d}" if match else stem).lower()


def hold_out_groups(items: list[Item], fraction: float) -> list[Item]:
    """The items with whole groups of the train split moved to 'val'
    (``base.held_out_per_class``)."""
    by_class: dict[str, set[str]] = {}
    for item in items:
        if item.split == "train":
            by_class.setdefault(item.label_text.lower(), set()).add(group_of_video(item.path))
    held = held_out_per_class(by_class, fraction)
    return [dataclasses.replace(item, split="val")
            if item.split == "train" and group_of_video(item.path) in held else item
            for item in items]


def _read_classes(path: str) -> list[str]:
    """Parses classInd.txt ("1 ApplyEyeMakeup", 1-based) into names ordered by index."""
    by_index = {}
    for line in read_text(path).splitlines():
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not parts[0].isdigit():
            raise _error(f"malformed line in {path}: {line!r}")
        by_index[int(parts[0])] = parts[1]
    if sorted(by_index) != list(range(1, len(by_index) + 1)):
        raise _error(f"{path} must number its classes 1..N without gaps")
    return [by_index[i] for i in sorted(by_index)]


def list_items(data_dir: str, options: SourceOptions) -> Listing:
    """Lists the train and test videos of split ``options.split_id`` (1..3)."""
    if options.split_id not in (1, 2, 3):
        raise SourceError(f"UCF101 has splits 1, 2 and 3; got --split_id={options.split_id}")
    if options.test_fraction:
        raise SourceError("UCF101 has an official test split: --test_fraction does not apply "
                          "(--val_fraction holds out whole groups of the train split)")
    check_fractions(options.val_fraction)
    list_dir = _find_list_dir(data_dir)
    classes = _read_classes(join(list_dir, "classInd.txt"))
    label_of = {name.lower(): i for i, name in enumerate(classes)}

    split_texts = []
    for split, pattern in _SPLIT_FILES:
        path = join(list_dir, pattern.format(options.split_id))
        if not exists(path):
            raise _error(f"missing {path}")
        split_texts.append((split, path, read_text(path)))

    video_root, files, flat = _find_video_root(data_dir)
    on_disk = {rel.lower(): rel for rel in files}
    items, problems = [], []
    for split, list_path, text in split_texts:
        for line in text.splitlines():
            parts = line.split()
            if not parts:
                continue
            listed = parts[0].replace("\\", "/")
            name = listed.rsplit("/", 1)[-1] if flat else listed
            real = on_disk.get(name.lower())
            path = join(video_root, real or name)
            if "/" not in listed:
                problems.append(Problem(path, "list", "bad_split_line",
                                        f"{list_path}: {line.strip()!r}", split))
            elif listed.split("/")[0].lower() not in label_of:
                problems.append(Problem(path, "list", "unknown_class",
                                        f"class {listed.split('/')[0]!r} is not in classInd.txt",
                                        split))
            elif real is None:
                problems.append(Problem(path, "list", "missing_file",
                                        f"listed in {list_path} but not under {video_root}",
                                        split))
            else:
                label = label_of[listed.split("/")[0].lower()]
                items.append(Item(path, real, split, label, classes[label]))
    if not items:
        raise _error(f"empty dataset: no video listed in split {options.split_id} was found "
                     f"under {video_root} ({len(problems)} listed entries had problems)")
    splits = ("train", "test")
    if options.val_fraction > 0:
        items = hold_out_groups(items, options.val_fraction)
        held = {group_of_video(it.path) for it in items if it.split == "val"}
        problems = [dataclasses.replace(p, split="val")
                    if p.split == "train" and group_of_video(p.path) in held else p
                    for p in problems]
        splits = ("train", "val", "test")
    return Listing(classes=classes, items=items, problems=problems, splits=splits,
                   class_groups=class_groups(classes))
