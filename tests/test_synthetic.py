"""Tests for pipeline.synthetic: UCF101 layout, decodability, determinism and
that motion (not appearance or position) is what separates the classes."""
import os
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest

from pipeline import synthetic

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N_TRAIN, N_TEST, T = 5, 3, 16
SIZE = (72, 96)  # (height, width): non-square catches transposed axes
NAME_RE = re.compile(r"v_(\w+)_g(\d\d)_c(\d\d)\.avi$")


def decode(path):
    """Decodes every frame of a video into a [T, H, W, 3] uint8 array."""
    cap = cv2.VideoCapture(path)
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return np.stack(frames) if frames else np.zeros((0,), np.uint8)


def centroids(frames):
    """Per-frame (x, y) centroid of the pixels far from the background colour.

    The background colour is the per-frame median colour: the shape covers
    well under half of every frame.
    """
    out = []
    for frame in frames.astype(np.float32):
        bg = np.median(frame.reshape(-1, 3), axis=0)
        ys, xs = np.nonzero(np.linalg.norm(frame - bg, axis=-1) > 50)
        assert len(xs) > 20, "shape not found"
        out.append((xs.mean(), ys.mean()))
    return np.array(out)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("synth"))
    summary = synthetic.write_ucf101_layout(
        root, {"train": N_TRAIN, "test": N_TEST}, num_frames=T, size=SIZE,
        seed=3)
    return root, summary


def read_lines(root, name):
    with open(os.path.join(root, "ucfTrainTestlist", name)) as f:
        return f.read().splitlines()


def test_summary(dataset):
    root, summary = dataset
    assert summary == {"classes": list(synthetic.CLASSES),
                       "train": N_TRAIN * 5, "test": N_TEST * 5, "root": root}


def test_layout(dataset):
    root, _ = dataset
    assert sorted(os.listdir(root)) == ["UCF-101", "ucfTrainTestlist"]
    assert sorted(os.listdir(os.path.join(root, "ucfTrainTestlist"))) == [
        "classInd.txt", "testlist01.txt", "trainlist01.txt"]
    assert read_lines(root, "classInd.txt") == [
        "1 SwipeLeft", "2 SwipeRight", "3 MoveUp", "4 MoveDown", "5 StayStill"]
    assert sorted(os.listdir(os.path.join(root, "UCF-101"))) == sorted(
        synthetic.CLASSES)

    train = [line.split(" ") for line in read_lines(root, "trainlist01.txt")]
    test = read_lines(root, "testlist01.txt")
    assert len(train) == 5 * N_TRAIN and len(test) == 5 * N_TEST
    assert all(len(parts) == 2 for parts in train)
    assert all(" " not in line for line in test)

    listed = {}
    for label, name in enumerate(synthetic.CLASSES, start=1):
        tr = [p for p, lab in train if p.startswith(name + "/")]
        te = [p for p in test if p.startswith(name + "/")]
        assert {int(lab) for p, lab in train if p in tr} == {label}
        # 4 clips per group: train g01 c01-c04, g02 c01; test g03 c01-c03.
        expect_tr = [f"{name}/v_{name}_g01_c0{c}.avi" for c in (1, 2, 3, 4)]
        expect_tr.append(f"{name}/v_{name}_g02_c01.avi")
        expect_te = [f"{name}/v_{name}_g03_c0{c}.avi" for c in (1, 2, 3)]
        assert tr == expect_tr and te == expect_te
        groups_tr = {NAME_RE.search(p).group(2) for p in tr}
        groups_te = {NAME_RE.search(p).group(2) for p in te}
        assert not groups_tr & groups_te
        for p in tr + te:
            assert NAME_RE.search(p).group(1) == name
        listed[name] = sorted(os.path.basename(p) for p in tr + te)
        on_disk = sorted(os.listdir(os.path.join(root, "UCF-101", name)))
        assert on_disk == listed[name]


def test_videos_decode(dataset):
    root, _ = dataset
    for name in synthetic.CLASSES:
        folder = os.path.join(root, "UCF-101", name)
        for fname in os.listdir(folder):
            frames = decode(os.path.join(folder, fname))
            assert frames.shape == (T, SIZE[0], SIZE[1], 3), fname


def test_make_clip_shape_and_dtype():
    clip = synthetic.make_clip(0, np.random.default_rng(0), 8, (40, 56))
    assert clip.shape == (8, 40, 56, 3) and clip.dtype == np.uint8
    with pytest.raises(ValueError):
        synthetic.make_clip(5, np.random.default_rng(0))


def test_deterministic(tmp_path):
    def one(seed, sub):
        root = str(tmp_path / sub)
        synthetic.write_ucf101_layout(root, {"train": 1, "test": 1},
                                      num_frames=8, size=64, seed=seed)
        return decode(os.path.join(root, "UCF-101", "MoveUp",
                                   "v_MoveUp_g02_c01.avi"))

    a, b, c = one(7, "a"), one(7, "b"), one(8, "c")
    assert a.shape == (8, 64, 64, 3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    raw = [synthetic.make_clip(2, np.random.default_rng([7, 2, 0]), 8, 64)
           for _ in range(2)]
    np.testing.assert_array_equal(raw[0], raw[1])


def test_motion_separates_classes(dataset):
    root, _ = dataset
    height, width = SIZE
    for name in synthetic.CLASSES:
        folder = os.path.join(root, "UCF-101", name)
        for fname in sorted(os.listdir(folder)):
            c = centroids(decode(os.path.join(folder, fname)))
            dx, dy = c[-1] - c[0]
            msg = f"{fname}: dx={dx:.1f} dy={dy:.1f}"
            if name == "SwipeLeft":
                assert dx < -0.2 * width and abs(dy) < 0.1 * height, msg
            elif name == "SwipeRight":
                assert dx > 0.2 * width and abs(dy) < 0.1 * height, msg
            elif name == "MoveUp":
                assert dy < -0.2 * height and abs(dx) < 0.1 * width, msg
            elif name == "MoveDown":
                assert dy > 0.2 * height and abs(dx) < 0.1 * width, msg
            else:
                spread = np.abs(c - c.mean(axis=0)).max(axis=0)
                assert abs(dx) < 0.05 * width and abs(dy) < 0.05 * height, msg
                assert spread[0] < 0.05 * width and spread[1] < 0.05 * height


def test_start_position_does_not_reveal_class():
    starts = {}
    for label in (0, 1):  # SwipeLeft, SwipeRight
        clips = [synthetic.make_clip(label, np.random.default_rng([1, label, i]),
                                     2, 96) for i in range(60)]
        starts[label] = np.array([centroids(c[:1])[0, 0] for c in clips])
    left, right = starts[0], starts[1]
    assert left.min() < right.max()  # ranges overlap
    # A real share of left swipes starts where right swipes start too.
    assert (left <= right.max()).mean() > 0.1
    assert (right >= left.min()).mean() > 0.1
    # Left starts mirror right starts (no bias towards either side).
    assert abs(np.median(left) - 96 + np.median(right)) < 0.1 * 96


def test_cli(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "pipeline.synthetic",
         f"--output_dir={tmp_path}", "--train_per_class=1",
         "--test_per_class=1", "--num_frames=4", "--size=32", "--seed=1"],
        cwd=REPO, capture_output=True, text=True, check=True)
    assert "'train': 5" in out.stdout and "'test': 5" in out.stdout
    assert len(read_lines(str(tmp_path), "trainlist01.txt")) == 5
