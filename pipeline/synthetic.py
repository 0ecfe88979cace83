"""Synthetic gesture videos laid out like the UCF101 dataset.

Each clip shows one filled shape (circle, square or triangle) on a noisy
background. The five classes are the smart-TV gestures and differ *only* in
how the shape moves over time: any single frame could belong to any class,
because shape, colours, size and position are drawn from the same
distributions for every class.

Output layout (same as the real UCF101 release)::

        root/UCF-101/<Class>/v_<Class>_g<GG>_c<CC>.avi
        root/ucfTrainTestlist/classInd.txt      "1 SwipeLeft"
        root/ucfTrainTestlist/trainlist01.txt   "SwipeLeft/v_SwipeLeft_g01_c01.avi 1"
        root/ucfTrainTestlist/testlist01.txt    "SwipeLeft/v_SwipeLeft_g05_c01.avi"

Train and test videos use disjoint groups (``gGG``), as in UCF101.

CLI::

        python -m pipeline.synthetic --output_dir /tmp/ucf_synth --train_per_class 16
"""

import math
import os
from typing import Dict, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from absl import app, flags

CLASSES = ("SwipeLeft", "SwipeRight", "MoveUp", "MoveDown", "StayStill")
SHAPES = ("circle", "square", "triangle")
# Vertex radius per shape, relative to the circle radius, so areas are similar.
_SHAPE_EXTENT = {"circle": 1.0, "square": 1.2, "triangle": 1.3}
CLIPS_PER_GROUP = 4  # clips cNN inside one group gGG
DEFAULT_VIDEOS_PER_CLASS = {"train": 16, "test": 6}

_TRAVEL = (0.25, 0.35)  # swipe travel, as a fraction of the frame side
_MAX_TRAVEL = 0.42  # ... and at most this fraction of the free range
_SHAPE_SIZE = (0.15, 0.25)  # shape diameter, as a fraction of the frame side
_JITTER_PX = (1.0, 2.0)  # StayStill jitter amplitude in pixels
_WOBBLE_PX = (0.0, 2.0)  # perpendicular wobble amplitude for moves
_SUBPIXEL_SHIFT = 4  # cv2 drawing fixed-point bits


def _hw(size: Union[int, Sequence[int]]) -> Tuple[int, int]:
    """Returns (height, width) from an int or an (height, width) pair."""
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    height, width = size
    return int(height), int(width)


def _trajectory(label: int, rng: np.random.Generator, num_frames: int,
                height: int, width: int, margin: float) -> np.ndarray:
    """Returns [T, 2] float (x, y) shape centres for the given class.

    The start is uniform over every position that keeps the whole path inside
    the frame and the travel is below half the free range, so the start ranges
    of opposite directions overlap and their path midpoints share one
    distribution.
    """
    t = np.arange(num_frames, dtype=np.float64)
    name = CLASSES[label]
    if name == "StayStill":
        amp = rng.uniform(*_JITTER_PX)
        centre = np.array([rng.uniform(margin + amp, width - margin - amp),
                           rng.uniform(margin + amp, height - margin - amp)])
        return centre + rng.uniform(-amp, amp, size=(num_frames, 2))

    horizontal = name in ("SwipeLeft", "SwipeRight")
    along, across = (width, height) if horizontal else (height, width)
    sign = -1.0 if name in ("SwipeLeft", "MoveUp") else 1.0
    # Capping travel below half the free range makes start ranges overlap.
    travel = min(rng.uniform(*_TRAVEL) * along,
                 _MAX_TRAVEL * (along - 2 * margin))
    lo, hi = margin, along - margin - travel  # range of the smaller endpoint
    start = rng.uniform(lo, hi) + (travel if sign < 0 else 0.0)
    main = start + sign * travel * t / max(num_frames - 1, 1)  # constant speed
    amp = rng.uniform(*_WOBBLE_PX)
    base = rng.uniform(margin + amp, across - margin - amp)
    freq = rng.uniform(0.5, 2.0) / num_frames
    wobble = base + amp * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi))
    xy = (main, wobble) if horizontal else (wobble, main)
    return np.stack(xy, axis=1)


def _draw(frame: np.ndarray, shape: str, centre: np.ndarray, radius: float,
          angle: float, colour: Tuple[int, int, int]) -> None:
    """Draws a filled, anti-aliased shape whose vertices lie at `radius`."""
    scale = 1 << _SUBPIXEL_SHIFT
    if shape == "circle":
        cv2.circle(frame, tuple(int(round(v * scale)) for v in centre),
                   int(round(radius * scale)), colour, -1, cv2.LINE_AA,
                   _SUBPIXEL_SHIFT)
        return
    n = 4 if shape == "square" else 3
    angles = angle + 2 * np.pi * np.arange(n) / n
    pts = centre + radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    cv2.fillPoly(frame, [np.round(pts * scale).astype(np.int32)], colour,
                 cv2.LINE_AA, _SUBPIXEL_SHIFT)


def make_clip(label: int, rng: np.random.Generator, num_frames: int = 24,
              size: Union[int, Sequence[int]] = (96, 96)) -> np.ndarray:
    """Generates one synthetic gesture clip.

    Args:
        label: 0-based index into CLASSES.
        rng: source of all randomness (the clip is a pure function of its state).
        num_frames: number of frames T.
        size: (height, width) or a single int.

    Returns:
        uint8 array [T, H, W, 3] in BGR order.
    """
    if not 0 <= label < len(CLASSES):
        raise ValueError(f"label must be in [0, {len(CLASSES)}), got {label}")
    height, width = _hw(size)
    side = min(height, width)

    # Appearance: identical distributions for every class.
    base = rng.integers(30, 226, size=3)
    for _ in range(100):  # shape colour far enough from the background
        colour = rng.integers(0, 256, size=3)
        if np.linalg.norm(colour - base) >= 110:
            break
    colour = tuple(int(c) for c in colour)
    shape = SHAPES[rng.integers(len(SHAPES))]
    radius = rng.uniform(*_SHAPE_SIZE) * side / 2
    angle = rng.uniform(0, 2 * np.pi)
    texture = np.clip(rng.normal(0, 5, size=(height, width, 3)), -12, 12)
    background = np.clip(base + texture, 0, 255).astype(np.uint8)

    radius *= _SHAPE_EXTENT[shape]

    # Motion: the only thing that depends on the class.
    centres = _trajectory(label, rng, num_frames, height, width, radius + 1)

    frames = np.empty((num_frames, height, width, 3), np.uint8)
    for t in range(num_frames):
        frames[t] = background
        _draw(frames[t], shape, centres[t], radius, angle, colour)

    # Sensor noise and a light global brightness flicker.
    flicker_amp = rng.uniform(0, 6)
    phase = rng.uniform(0.5, 3.0) * np.arange(num_frames) / num_frames
    flicker = flicker_amp * np.sin(2 * np.pi * phase + rng.uniform(0, 2 * np.pi))
    noise = rng.integers(-4, 5, size=(num_frames, height, width, 1),
                         dtype=np.int16)
    noise += np.round(flicker).astype(np.int16)[:, None, None, None]
    out = frames.astype(np.int16)
    out += noise
    np.clip(out, 0, 255, out=out)
    return out.astype(np.uint8)


def _pick_fourcc(directory: str, fps: float, height: int, width: int) -> int:
    """Returns XVID if a probe clip round-trips through OpenCV, else MJPG."""
    probe = os.path.join(directory, ".fourcc_probe.avi")
    frame = np.zeros((height, width, 3), np.uint8)
    try:
        for code in ("XVID", "MJPG"):
            fourcc = cv2.VideoWriter_fourcc(*code)
            writer = cv2.VideoWriter(probe, fourcc, fps, (width, height))
            if not writer.isOpened():
                continue
            for _ in range(2):
                writer.write(frame)
            writer.release()
            cap = cv2.VideoCapture(probe)
            ok = cap.isOpened() and cap.read()[0]
            cap.release()
            if ok:
                return fourcc
    finally:
        if os.path.exists(probe):
            os.remove(probe)
    raise RuntimeError("OpenCV cannot write AVI files with XVID or MJPG")


def _write_avi(path: str, frames: np.ndarray, fourcc: int, fps: float) -> None:
    """Writes [T, H, W, 3] BGR uint8 frames to an AVI file."""
    height, width = frames.shape[1:3]
    writer = cv2.VideoWriter(path, fourcc, fps, (width, height))
    if not writer.isOpened():
        raise IOError(f"cannot open video writer for {path}")
    for frame in frames:
        writer.write(frame)
    writer.release()


def video_name(class_name: str, group: int, clip: int) -> str:
    """UCF101 file name, e.g. v_SwipeLeft_g01_c01.avi."""
    return f"v_{class_name}_g{group:02d}_c{clip:02d}.avi"


def write_ucf101_layout(
    root: str,
    videos_per_class: Optional[Union[Dict[str, int], int]] = None,
    num_frames: int = 24,
    size: Union[int, Sequence[int]] = (96, 96),
    fps: float = 12,
    seed: int = 0,
) -> Dict[str, object]:
    """Writes a synthetic dataset in the UCF101 layout under a local `root`.

    Args:
        root: local output directory (created if needed).
        videos_per_class: {"train": n, "test": m} (default 16/6), or an int used
            for both splits.
        num_frames: frames per video.
        size: (height, width) or a single int.
        fps: frame rate stored in the AVI header.
        seed: base seed; each video uses rng(seed, class, index), so output is
            deterministic and independent of the order of generation.

    Returns:
        {"classes": [...], "train": n_train, "test": n_test, "root": root}.
    """
    if videos_per_class is None:
        videos_per_class = DEFAULT_VIDEOS_PER_CLASS
    if isinstance(videos_per_class, (int, np.integer)):
        videos_per_class = {"train": int(videos_per_class),
                            "test": int(videos_per_class)}
    n_train = int(videos_per_class.get("train", 0))
    n_test = int(videos_per_class.get("test", 0))
    height, width = _hw(size)

    video_root = os.path.join(root, "UCF-101")
    list_root = os.path.join(root, "ucfTrainTestlist")
    os.makedirs(list_root, exist_ok=True)
    for name in CLASSES:
        os.makedirs(os.path.join(video_root, name), exist_ok=True)
    fourcc = _pick_fourcc(video_root, fps, height, width)

    train_groups = math.ceil(n_train / CLIPS_PER_GROUP)
    train_lines, test_lines = [], []
    for label, name in enumerate(CLASSES):
        for index in range(n_train + n_test):
            is_train = index < n_train
            local = index if is_train else index - n_train
            first_group = 1 if is_train else train_groups + 1
            group = first_group + local // CLIPS_PER_GROUP
            clip = local % CLIPS_PER_GROUP + 1
            rel = f"{name}/{video_name(name, group, clip)}"
            rng = np.random.default_rng([seed, label, index])
            frames = make_clip(label, rng, num_frames, (height, width))
            _write_avi(os.path.join(video_root, rel), frames, fourcc, fps)
            if is_train:
                train_lines.append(f"{rel} {label + 1}")
            else:
                test_lines.append(rel)

    def write_lines(fname, lines):
        with open(os.path.join(list_root, fname), "w") as f:
            f.write("".join(line + "\n" for line in lines))

    write_lines("classInd.txt", [f"{i + 1} {n}" for i, n in enumerate(CLASSES)])
    write_lines("trainlist01.txt", train_lines)
    write_lines("testlist01.txt", test_lines)
    return {"classes": list(CLASSES), "train": len(train_lines),
            "test": len(test_lines), "root": root}


def _define_flags() -> None:
    """Defines the CLI flags (only when run as a script, to avoid clashes)."""
    flags.DEFINE_string("output_dir", None, "Local output directory.")
    flags.DEFINE_integer("train_per_class", 16, "Train videos per class.")
    flags.DEFINE_integer("test_per_class", 6, "Test videos per class.")
    flags.DEFINE_integer("num_frames", 24, "Frames per video.")
    flags.DEFINE_integer("size", 96, "Frame height and width in pixels.")
    flags.DEFINE_integer("fps", 12, "Frame rate of the AVI files.")
    flags.DEFINE_integer("seed", 0, "Random seed.")
    flags.mark_flag_as_required("output_dir")


def main(argv) -> None:
    """CLI entry point: writes the dataset and prints the summary."""
    del argv
    f = flags.FLAGS
    summary = write_ucf101_layout(
        f.output_dir,
        {"train": f.train_per_class, "test": f.test_per_class},
        num_frames=f.num_frames, size=f.size, fps=f.fps, seed=f.seed)
    print(summary)


if __name__ == "__main__":
    _define_flags()
    app.run(main)
