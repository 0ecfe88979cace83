"""The pictures of an evaluation (per_class_accuracy.png, confused_pairs.png) and of a video
(overlay formats, frame strips, timelines), from hand-made inputs: no model is trained."""
from __future__ import annotations

import json
import os
import pathlib

import cv2
import numpy as np
import pytest

from tfrecords import schema
from trainers import overlay, report

CLASSES = ("Alpha", "Bravo", "Charlie")
# One colour per video (RGB), so a picture can be searched for a video's frames.
COLOURS = {"a0": (250, 0, 250), "a1": (0, 250, 250), "a2": (250, 250, 0), "b0": (0, 0, 250),
           "b1": (250, 120, 0), "c0": (0, 250, 0), "c1": (120, 0, 250)}
# (video, true class, predicted class): Alpha -> Bravo twice, Charlie -> Alpha once.
VIDEOS = [("a0", 0, 1), ("a1", 0, 1), ("a2", 0, 0), ("b0", 1, 1), ("b1", 1, 1), ("c0", 2, 0),
          ("c1", 2, 2)]


def _build(folder: pathlib.Path) -> pathlib.Path:
    """A one-shard test split of PNG clips, 4 frames of 12x16 each painted its colour."""
    folder.mkdir(parents=True)
    shard = schema.shard_name("test", 0, 1)
    with open(folder / shard, "wb") as f:
        for video_id, label, _ in VIDEOS:
            frames = [np.full((12, 16, 3), COLOURS[video_id], np.uint8) for _ in range(4)]
            f.write(schema.frame_record(schema.encode_clip(
                frames, label=label, label_text=CLASSES[label], video_id=video_id,
                image_format="png", fps=10.0, source_indices=[0, 3, 6, 9])))
    schema.write_dataset_info(str(folder), {
        "classes": list(CLASSES), "modality": "video", "image_format": "png",
        "splits": {"test": {"shards": [shard], "num_examples": len(VIDEOS)}}})
    return folder


def _videos(predicted=None) -> report.Videos:
    probs = []
    for _, _, p in VIDEOS if predicted is None else [(v, t, t) for v, t, _ in VIDEOS]:
        row = np.full(len(CLASSES), 0.1)
        row[p] = 0.8
        probs.append(row)
    return report.Videos(video_index=np.arange(len(VIDEOS)),
                         video_id=[v for v, _, _ in VIDEOS],
                         label=np.array([t for _, t, _ in VIDEOS]), probs=np.array(probs),
                         num_views=1, outputs="probabilities")


def _pixels(path) -> np.ndarray:
    import matplotlib.image
    return (matplotlib.image.imread(str(path))[..., :3] * 255).round().astype(int)


def _shows(image: np.ndarray, rgb) -> bool:
    """Whether ``image`` holds a 10x10 patch of ``rgb`` (a stored frame, enlarged)."""
    hit = (np.abs(image - np.array(rgb)).max(axis=-1) <= 6).astype(np.int32)
    # a summed-area table: any 10x10 window full of the colour
    s = np.pad(hit.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    return bool(((s[10:, 10:] - s[:-10, 10:] - s[10:, :-10] + s[:-10, :-10]) == 100).any())


def test_report_draws_per_class_accuracy_and_the_confused_pairs(tmp_path):
    build = _build(tmp_path / "build")
    out = tmp_path / "eval"
    header = {"run": "runs/demo", "split": "test", "build_dir": str(build)}
    result = report.write_report(str(out), _videos(), CLASSES, header)
    assert result["top1"] == pytest.approx(4 / 7)
    for name in report.REPORT_FILES + ("confused_pairs.png",):
        assert (out / name).stat().st_size > 0, name
    assert not (out / "action_groups.png").exists()

    pairs = report.confused_pairs(np.array([[1, 2, 0], [0, 2, 0], [1, 0, 1]]), _videos(),
                                  np.array([p for _, _, p in VIDEOS]), CLASSES)
    assert [(p["true"], p["predicted"], p["count"]) for p in pairs] == [(0, 1, 2), (2, 0, 1)]
    assert [v[1] for v in pairs[0]["videos"]] == ["a0", "a1"]
    assert pairs[0]["videos"][0][2:] == pytest.approx((0.8, 0.1))

    image = _pixels(out / "confused_pairs.png")
    for video_id in ("a0", "a1", "c0"):                  # the confused videos' frames ...
        assert _shows(image, COLOURS[video_id]), video_id
    for video_id in ("a2", "b0", "b1", "c1"):            # ... and no other video's
        assert not _shows(image, COLOURS[video_id]), video_id
    assert image.shape[1] >= 900 and image.shape[0] > 60 + 2 * (34 + 98)

    bars = _pixels(out / "per_class_accuracy.png")
    assert bars.shape[1] >= 900
    blue = np.abs(bars - np.array([0, 114, 178])).max(axis=-1) <= 3      # Okabe-Ito blue
    rows = np.flatnonzero(blue.any(axis=1))
    assert rows.size > 0
    # Worst first: Alpha (1/3) and Charlie (1/2) bars are shorter than Bravo's (2/2), last.
    lengths = [blue[r].sum() for r in (rows[0], rows[-1])]
    assert lengths[0] < lengths[1]

    # A rerun without confusions leaves no stale confused_pairs.png.
    report.write_report(str(out), _videos(predicted="right"), CLASSES, header)
    assert not (out / "confused_pairs.png").exists()
    assert (out / "per_class_accuracy.png").exists()


def test_confused_pairs_without_the_build_still_draws(tmp_path, caplog):
    header = {"run": "r", "split": "test", "build_dir": str(tmp_path / "moved")}
    report.write_report(str(tmp_path / "eval"), _videos(), CLASSES, header)
    assert (tmp_path / "eval" / "confused_pairs.png").stat().st_size > 0
    assert "cannot read frames" in caplog.text


def test_confused_pairs_are_bounded(tmp_path):
    k = 12
    rng = np.random.default_rng(0)
    cm = rng.integers(0, 5, (k, k))
    n = int(cm.sum())
    label = np.repeat(np.arange(k), cm.sum(axis=1))
    predicted = np.concatenate([np.repeat(np.arange(k), row) for row in cm])
    probs = np.full((n, k), 0.01)
    probs[np.arange(n), predicted] = 0.9
    videos = report.Videos(np.arange(n), [f"v{i}" for i in range(n)], label, probs, 1, "p")
    pairs = report.confused_pairs(cm, videos, predicted, [f"C{i}" for i in range(k)])
    assert len(pairs) == report.MAX_PAIRS == 6
    assert all(len(p["videos"]) <= report.CLIPS_PER_PAIR for p in pairs)
    counts = [p["count"] for p in pairs]
    assert counts == sorted(counts, reverse=True)
    assert counts[0] == max(cm[i, j] for i in range(k) for j in range(k) if i != j)


def test_per_class_accuracy_scales_to_101_classes(tmp_path):
    k = 101
    cm = np.diag(np.arange(k) % 7 + 1) + 1
    cm[5] = 0                                        # a class without videos
    path = tmp_path / "acc.png"
    report.plot_per_class_accuracy(cm, [f"Class{i:03d}" for i in range(k)], str(path), "t",
                                   0.5, 0.6)
    image = _pixels(path)
    assert image.shape[0] >= 0.26 * 100 * 100                 # a quarter inch a class
    assert image.shape[1] < 1400


# --------------------------------------------------------------------------
# Overlay videos, strips and timelines.
# --------------------------------------------------------------------------
def _video(path, frames=25, size=(50, 30), fps=25.0):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    for t in range(frames):
        writer.write(np.full((size[1], size[0], 3), 5 * t, np.uint8))
    writer.release()
    return str(path)


def _read(path):
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    fourcc = int(capture.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little")
    return frames, capture.get(cv2.CAP_PROP_FPS), fourcc


def test_overlay_formats_follow_the_extension(tmp_path, capfd):
    source = _video(tmp_path / "in.avi")
    assert overlay.writer_format("x.webm") == ("VP80", "VP8 in WebM")
    assert overlay.writer_format("x.avi")[0] == "mp4v"
    # The opencv-python wheel's FFmpeg has no H.264 encoder: there .mp4 is mp4v, and what
    # a browser plays is WebM.
    h264 = overlay.h264_writable()
    assert overlay.writer_format("x.mp4")[0] == ("avc1" if h264 else "mp4v")
    assert overlay.browser_extension() == (".mp4" if h264 else ".webm")
    n = overlay.write_overlay(source, str(tmp_path / "o.webm"), lambda t: f"label {t:.1f}")
    frames, fps, fourcc = _read(tmp_path / "o.webm")
    assert n == len(frames) == 25 and fourcc == b"VP80" and fps == pytest.approx(25)
    assert frames[0].shape == (30, 50, 3)
    assert "FFMPEG: tag" not in capfd.readouterr().err       # OpenCV's muxer line is kept out
    # A small preview: at most 24 pixels on the long side (even sizes) and 10 frames a second.
    n = overlay.write_overlay(source, str(tmp_path / "p.webm"), lambda t: "x", max_side=24,
                              max_fps=10)
    frames, fps, _ = _read(tmp_path / "p.webm")
    assert n == len(frames) == 10 and fps == pytest.approx(10)
    assert frames[0].shape == (14, 24, 3)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_frame_strip_and_timeline_pictures(tmp_path):
    frames = [np.full((8, 8, 3), (200, 30 * i, 0), np.uint8) for i in range(5)]
    size = overlay.frame_strip([("view 1", frames, [f"#{i}" for i in range(5)]),
                                ("view 2", frames[:2], ["#0", "#1"])],
                               str(tmp_path / "s.png"), "What the model read", note="note")
    image = _pixels(tmp_path / "s.png")
    assert image.shape[:2] == size[::-1] and size[0] >= 5 * 96
    assert _shows(image, (200, 120, 0))                  # frame 4, enlarged 12 x
    windows = [{"start": s, "end": s + 2.0, "top_k": [{"label": lab, "probability": p}]}
               for s, lab, p in ((0.0, "Alpha", 0.9), (1.0, "Bravo", 0.6), (2.0, "Alpha", 0.7))]
    segments = overlay.window_segments(windows)
    assert segments == [(0.0, 1.0, "Alpha", 0.9), (1.0, 2.0, "Bravo", 0.6),
                        (2.0, 4.0, "Alpha", 0.7)]
    overlay.plot_timeline(segments, str(tmp_path / "t.png"), "title", CLASSES)
    image = _pixels(tmp_path / "t.png")
    # One row per label that occurs, in class order, in Okabe-Ito colours.
    orange = np.abs(image - np.array([230, 159, 0])).max(axis=-1) <= 3     # Alpha
    sky = np.abs(image - np.array([86, 180, 233])).max(axis=-1) <= 3       # Bravo
    assert orange.any() and sky.any()
    assert np.flatnonzero(orange.any(axis=1)).mean() < np.flatnonzero(sky.any(axis=1)).mean()
    assert os.path.getsize(tmp_path / "t.png") > 10_000
    assert json.dumps(segments)                           # plain numbers, for the JSON API
