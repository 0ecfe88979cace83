"""Tests of pipeline/media/{sampling,encode,video}.py: sampling plans, per-frame processing,
decoding real and generated videos.

Generated videos are MJPG in AVI whose frame i is a flat gray of level 4*i, so the
decoded pixel level of every stored frame tells which source frame it came from.
"""
from __future__ import annotations

import math
import os

import cv2
import numpy as np
import pytest

from pipeline.media.encode import FrameSpec, output_size, parse_size, process_frame
from pipeline.media.items import Clip, MediaError
from pipeline.media.sampling import SamplingSpec, plan_indices
from pipeline.media import video
from pipeline.media.video import decode_video

LEVEL_STEP = 4          # frame i is filled with gray 4*i (up to 64 frames)
W, H = 64, 48           # generated landscape size
FPS = 25.0


# --------------------------------------------------------------------------
# Helpers.
# --------------------------------------------------------------------------
def write_video(path, n, width=W, height=H, fps=FPS):
    """An MJPG .avi of n flat frames, frame i at gray level 4*i; returns path as str."""
    assert n * LEVEL_STEP <= 256
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    assert vw.isOpened()
    vw.set(cv2.VIDEOWRITER_PROP_QUALITY, 100)
    for i in range(n):
        vw.write(np.full((height, width, 3), LEVEL_STEP * i, np.uint8))
    vw.release()
    return str(path)


def decode_stored(clip: Clip, image_format: str) -> list[np.ndarray]:
    """The stored frames of a clip as arrays (BGR for jpeg/png, RGB for raw)."""
    out = []
    for b in clip.frames:
        if image_format == "raw":
            assert len(b) == clip.height * clip.width * 3
            img = np.frombuffer(b, np.uint8).reshape(clip.height, clip.width, 3)
        else:
            img = cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR)
            assert img is not None
        assert img.shape == (clip.height, clip.width, 3)
        out.append(img)
    return out


def assert_levels_match(clip: Clip, image_format: str = "jpeg"):
    """Each stored frame's gray level identifies exactly the source index recorded for it."""
    imgs = decode_stored(clip, image_format)
    assert len(imgs) == len(clip.source_indices)
    for idx, img in zip(clip.source_indices, imgs):
        level = float(img.mean())
        assert abs(level - LEVEL_STEP * idx) <= 1.5, (idx, level)
        assert int(img.max()) - int(img.min()) <= 3, idx      # still flat
        assert int(round(level / LEVEL_STEP)) == idx


def cv2_count(path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while True:
        ok, _ = cap.read()
        if not ok:
            break
        n += 1
    cap.release()
    return n


def read_all(path):
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    return frames


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("videos")
    return {
        "v30": write_video(d / "v30.avi", 30),
        "v5": write_video(d / "v5.avi", 5),
        "v60": write_video(d / "v60.avi", 60),
        "portrait": write_video(d / "portrait.avi", 12, width=48, height=80),
        "dir": d,
    }


# --------------------------------------------------------------------------
# plan_indices.
# --------------------------------------------------------------------------
def test_plan_all():
    assert plan_indices(SamplingSpec(), 7) == ([0, 1, 2, 3, 4, 5, 6], "none")
    assert plan_indices(SamplingSpec(), 1) == ([0], "none")


def test_plan_uniform():
    u = lambda k: SamplingSpec("uniform", num_frames=k)     # noqa: E731
    assert plan_indices(u(4), 10) == ([0, 3, 6, 9], "none")
    assert plan_indices(u(1), 10) == ([4], "none")
    assert plan_indices(u(1), 11) == ([5], "none")
    assert plan_indices(u(1), 1) == ([0], "none")
    assert plan_indices(u(10), 10) == (list(range(10)), "none")
    assert plan_indices(u(2), 10) == ([0, 9], "none")
    assert plan_indices(u(3), 10) == ([0, 5, 9], "none")     # 4.5 rounds half up
    assert plan_indices(u(16), 164) == (
        [0, 11, 22, 33, 43, 54, 65, 76, 87, 98, 109, 120, 130, 141, 152, 163], "none")
    assert plan_indices(u(16), 300) == (
        [0, 20, 40, 60, 80, 100, 120, 140, 159, 179, 199, 219, 239, 259, 279, 299], "none")


def test_plan_segments():
    s = lambda k: SamplingSpec("segments", num_frames=k)    # noqa: E731
    assert plan_indices(s(4), 10) == ([1, 3, 6, 8], "none")
    assert plan_indices(s(1), 10) == ([5], "none")
    assert plan_indices(s(3), 30) == ([5, 15, 25], "none")
    assert plan_indices(s(4), 30) == ([3, 11, 18, 26], "none")
    assert plan_indices(s(5), 5) == ([0, 1, 2, 3, 4], "none")


def test_plan_stride():
    assert plan_indices(SamplingSpec("stride", stride=3), 10) == ([0, 3, 6, 9], "none")
    assert plan_indices(SamplingSpec("stride", stride=4), 10) == ([0, 4, 8], "none")
    assert plan_indices(SamplingSpec("stride", stride=1), 3) == ([0, 1, 2], "none")
    # centred window: need = (5-1)*2+1 = 9, start = (20-9)//2 = 5
    assert plan_indices(SamplingSpec("stride", stride=2, num_frames=5), 20) == (
        [5, 7, 9, 11, 13], "none")
    # exactly enough frames: the window is the whole video
    assert plan_indices(SamplingSpec("stride", stride=2, num_frames=5), 9) == (
        [0, 2, 4, 6, 8], "none")
    assert plan_indices(SamplingSpec("stride", stride=3, num_frames=5), 30) == (
        [8, 11, 14, 17, 20], "none")


def test_plan_indices_mode():
    seed = (3, 6, 9, 11, 13, 15, 17, 19, 21, 24, 27)
    assert plan_indices(SamplingSpec("indices", indices=seed), 30) == (list(seed), "none")
    assert plan_indices(SamplingSpec("indices", indices=seed), 28) == (list(seed), "none")
    assert plan_indices(SamplingSpec("indices", indices=(2, 0, 2)), 3) == ([2, 0, 2], "none")


def test_plan_short_loop_and_repeat_last():
    for mode in ("uniform", "segments"):
        assert plan_indices(SamplingSpec(mode, num_frames=8, short="loop"), 5) == (
            [0, 1, 2, 3, 4, 0, 1, 2], "loop")
        assert plan_indices(SamplingSpec(mode, num_frames=8, short="repeat_last"), 5) == (
            [0, 1, 2, 3, 4, 4, 4, 4], "repeat_last")
    # stride with K on a short video: the every-S-th frames, filled
    st = dict(mode="stride", stride=2, num_frames=4)             # needs 7 frames
    assert plan_indices(SamplingSpec(**st, short="loop"), 5) == ([0, 2, 4, 0], "loop")
    assert plan_indices(SamplingSpec(**st, short="repeat_last"), 5) == ([0, 2, 4, 4], "repeat_last")
    assert plan_indices(SamplingSpec(**st, short="loop"), 1) == ([0, 0, 0, 0], "loop")
    # indices beyond the end
    idx = (3, 6, 9, 11, 13)
    assert plan_indices(SamplingSpec("indices", indices=idx, short="loop"), 10) == (
        [3, 6, 9, 1, 3], "loop")
    assert plan_indices(SamplingSpec("indices", indices=idx, short="repeat_last"), 10) == (
        [3, 6, 9, 9, 9], "repeat_last")
    # one frame only
    assert plan_indices(SamplingSpec("uniform", num_frames=3, short="repeat_last"), 1) == (
        [0, 0, 0], "repeat_last")


@pytest.mark.parametrize("spec", [
    SamplingSpec("uniform", num_frames=8, short="skip"),
    SamplingSpec("segments", num_frames=8, short="skip"),
    SamplingSpec("stride", stride=2, num_frames=4, short="skip"),
    SamplingSpec("indices", indices=(1, 5), short="skip"),
])
def test_plan_short_skip(spec):
    with pytest.raises(MediaError) as e:
        plan_indices(spec, 5)
    assert e.value.reason == "too_short"


def test_plan_not_short_with_skip():
    # exactly the needed count is not short
    assert plan_indices(SamplingSpec("uniform", num_frames=5, short="skip"), 5) == (
        [0, 1, 2, 3, 4], "none")
    assert plan_indices(SamplingSpec("indices", indices=(1, 4), short="skip"), 5) == ([1, 4], "none")
    assert plan_indices(SamplingSpec(short="skip"), 1) == ([0], "none")


@pytest.mark.parametrize("spec", [
    SamplingSpec(), SamplingSpec("uniform", num_frames=4), SamplingSpec("segments", num_frames=2),
    SamplingSpec("stride", stride=2), SamplingSpec("indices", indices=(0,)),
])
def test_plan_no_frames(spec):
    for n in (0, -1):
        with pytest.raises(MediaError) as e:
            plan_indices(spec, n)
        assert e.value.reason == "no_frames"


@pytest.mark.parametrize("kwargs", [
    dict(mode="random"),
    dict(mode="uniform"),
    dict(mode="uniform", num_frames=0),
    dict(mode="segments"),
    dict(mode="segments", num_frames=-2),
    dict(mode="indices"),
    dict(mode="indices", indices=(1, -1)),
    dict(mode="stride", stride=0),
    dict(mode="stride", stride=2, num_frames=0),
    dict(mode="stride", stride=2, num_frames=-3),     # used to plan an empty clip
    dict(mode="stride", stride=-1),
    dict(fps=0),
    dict(fps=-5.0),
    dict(short="drop"),
])
def test_sampling_spec_validation(kwargs):
    with pytest.raises(ValueError):
        SamplingSpec(**kwargs)


@pytest.mark.parametrize("kwargs", [
    dict(resize_shorter=128, size=(64, 64)),
    dict(crop="random"),
    dict(jpeg_quality=0),
    dict(jpeg_quality=101),
    dict(image_format="webp"),
])
def test_frame_spec_validation(kwargs):
    with pytest.raises(ValueError):
        FrameSpec(**kwargs)


def test_needs_count():
    assert not SamplingSpec().needs_count
    assert not SamplingSpec(fps=10).needs_count
    assert not SamplingSpec("stride", stride=2).needs_count
    assert SamplingSpec("stride", stride=2, num_frames=3).needs_count
    assert SamplingSpec("uniform", num_frames=3).needs_count
    assert SamplingSpec("segments", num_frames=3).needs_count
    assert SamplingSpec("indices", indices=(1,)).needs_count


# --------------------------------------------------------------------------
# output_size / process_frame.
# --------------------------------------------------------------------------
def test_output_size():
    # (height, width) in, (height, width) out
    assert output_size(FrameSpec(), 240, 320) == (240, 320)
    assert output_size(FrameSpec(crop="center_square"), 240, 320) == (240, 240)
    assert output_size(FrameSpec(crop="center_square"), 320, 240) == (240, 240)
    # landscape: the shorter side is the height
    assert output_size(FrameSpec(resize_shorter=128), 240, 320) == (128, 171)
    assert output_size(FrameSpec(resize_shorter=120), 240, 320) == (120, 160)
    # portrait: the shorter side is the width
    assert output_size(FrameSpec(resize_shorter=128), 320, 240) == (171, 128)
    assert output_size(FrameSpec(resize_shorter=24), 80, 48) == (40, 24)
    # crop then resize
    assert output_size(FrameSpec(crop="center_square", resize_shorter=112), 240, 320) == (112, 112)
    assert output_size(FrameSpec(crop="center_square", resize_shorter=112), 1920, 1080) == (112, 112)
    # size is (width, height)
    assert output_size(FrameSpec(size=(64, 48)), 240, 320) == (48, 64)
    assert output_size(FrameSpec(size=(64, 48)), 320, 240) == (48, 64)
    assert output_size(FrameSpec(crop="center_square", size=(32, 16)), 240, 320) == (16, 32)


def _decode_png(b):
    img = cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_UNCHANGED)
    assert img is not None
    return img


def test_process_frame_png_lossless_and_center_crop():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(31, 50, 3), dtype=np.uint8)      # landscape
    assert np.array_equal(_decode_png(process_frame(img, FrameSpec(image_format="png"))), img)
    out = _decode_png(process_frame(img, FrameSpec(crop="center_square", image_format="png")))
    assert out.shape == (31, 31, 3)
    assert np.array_equal(out, img[:, 9:40])                           # left = (50-31)//2
    portrait = rng.integers(0, 256, size=(50, 30, 3), dtype=np.uint8)
    out = _decode_png(process_frame(portrait, FrameSpec(crop="center_square", image_format="png")))
    assert out.shape == (30, 30, 3)
    assert np.array_equal(out, portrait[10:40, :])                     # top = (50-30)//2


def test_process_frame_resize_sizes_and_flat_colour():
    colour = (10, 200, 90)                                             # BGR
    land = np.empty((240, 320, 3), np.uint8)
    land[:] = colour
    port = np.ascontiguousarray(land.transpose(1, 0, 2))               # 320 high, 240 wide
    cases = [
        (land, FrameSpec(resize_shorter=128, image_format="png"), (128, 171)),
        (port, FrameSpec(resize_shorter=128, image_format="png"), (171, 128)),
        (land, FrameSpec(resize_shorter=180, image_format="png"), (180, 240)),   # < 2x shrink
        (land, FrameSpec(resize_shorter=480, image_format="png"), (480, 640)),   # enlarge
        (land, FrameSpec(crop="center_square", resize_shorter=112, image_format="png"), (112, 112)),
        (port, FrameSpec(crop="center_square", resize_shorter=112, image_format="png"), (112, 112)),
        (land, FrameSpec(size=(64, 48), image_format="png"), (48, 64)),
        (port, FrameSpec(size=(64, 48), image_format="png"), (48, 64)),
        (port, FrameSpec(crop="center_square", size=(50, 20), image_format="png"), (20, 50)),
    ]
    for img, spec, hw in cases:
        out = _decode_png(process_frame(img, spec))
        assert out.shape == (*hw, 3), (spec, out.shape)
        assert output_size(spec, *img.shape[:2]) == hw
        assert (out == np.array(colour, np.uint8)).all(), spec


def test_process_frame_raw_is_rgb():
    blue = np.zeros((6, 10, 3), np.uint8)
    blue[..., 0] = 255                                                  # pure blue in BGR
    raw = process_frame(blue, FrameSpec(image_format="raw"))
    assert isinstance(raw, bytes)
    assert len(raw) == 6 * 10 * 3
    assert raw[:3] == bytes([0, 0, 255])
    assert raw == bytes([0, 0, 255]) * 60
    # with crop and resize the byte count follows the output size
    raw = process_frame(blue, FrameSpec(image_format="raw", crop="center_square", size=(4, 3)))
    assert raw == bytes([0, 0, 255]) * 12
    img = np.zeros((2, 2, 3), np.uint8)
    img[0, 0] = (1, 2, 3)                                               # B, G, R
    raw = process_frame(img, FrameSpec(image_format="raw"))
    assert raw[:3] == bytes([3, 2, 1])


def test_process_frame_jpeg():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, size=(80, 48, 3), dtype=np.uint8)
    b = process_frame(img, FrameSpec(resize_shorter=24, jpeg_quality=75))
    assert b[:2] == b"\xff\xd8"
    dec = cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR)
    assert dec.shape == (40, 24, 3)
    flat = np.full((48, 64, 3), 120, np.uint8)
    dec = cv2.imdecode(np.frombuffer(process_frame(flat, FrameSpec(size=(32, 16))), np.uint8),
                       cv2.IMREAD_COLOR)
    assert dec.shape == (16, 32, 3)
    assert np.abs(dec.astype(int) - 120).max() <= 1
    low = process_frame(img, FrameSpec(jpeg_quality=5))
    high = process_frame(img, FrameSpec(jpeg_quality=100))
    assert len(low) < len(high)


# --------------------------------------------------------------------------
# decode_video on generated videos.
# --------------------------------------------------------------------------
def test_generated_video_sanity(videos):
    assert cv2_count(videos["v30"]) == 30
    levels = [f.mean() for f in read_all(videos["v30"])]
    assert np.allclose(levels, [4 * i for i in range(30)], atol=1.5)


@pytest.mark.parametrize("image_format", ["jpeg", "png", "raw"])
def test_decode_all(videos, image_format):
    clip = decode_video(videos["v30"], SamplingSpec(), FrameSpec(image_format=image_format))
    assert clip.source_indices == list(range(30))
    assert len(clip.frames) == 30
    assert clip.source_num_frames == 30
    assert clip.claimed_num_frames == 30
    assert clip.fps == 25.0
    assert (clip.height, clip.width) == (H, W)
    assert (clip.source_height, clip.source_width) == (H, W)
    assert clip.short_policy == "none"
    assert_levels_match(clip, image_format)
    ts = clip.timestamps_us
    assert ts[0] == 0
    assert all(b > a for a, b in zip(ts, ts[1:]))
    assert all(abs((b - a) - 1e6 / FPS) <= 2 for a, b in zip(ts, ts[1:]))
    assert all(abs(t - i * 40000) <= 2 for i, t in enumerate(ts))


EXPECTED_30 = [
    (SamplingSpec("uniform", num_frames=4), [0, 10, 19, 29]),
    (SamplingSpec("uniform", num_frames=1), [14]),
    (SamplingSpec("uniform", num_frames=30), list(range(30))),
    (SamplingSpec("segments", num_frames=4), [3, 11, 18, 26]),
    (SamplingSpec("stride", stride=4), [0, 4, 8, 12, 16, 20, 24, 28]),
    (SamplingSpec("stride", stride=3, num_frames=5), [8, 11, 14, 17, 20]),
    (SamplingSpec("indices", indices=(3, 6, 9, 11, 13, 15, 17, 19, 21, 24, 27)),
     [3, 6, 9, 11, 13, 15, 17, 19, 21, 24, 27]),
    (SamplingSpec("indices", indices=(29, 0, 7, 7)), [29, 0, 7, 7]),
    (SamplingSpec(fps=10), [0, 3, 5, 8, 10, 13, 15, 18, 20, 23, 25, 28]),
    (SamplingSpec(fps=5), [0, 5, 10, 15, 20, 25]),
    (SamplingSpec(fps=50), list(range(30))),
]


@pytest.mark.parametrize("spec,expected", EXPECTED_30,
                         ids=[f"{s.mode}-{s.num_frames}-{s.stride}-{s.fps}" for s, _ in EXPECTED_30])
def test_decode_sampling_modes(videos, spec, expected):
    clip = decode_video(videos["v30"], spec, FrameSpec())
    assert clip.source_indices == expected
    assert len(clip.frames) == len(expected)
    assert clip.source_num_frames == 30
    assert clip.claimed_num_frames == 30
    assert clip.short_policy == "none"
    assert_levels_match(clip, "jpeg")
    # timestamps are the source frames' presentation times
    assert [round(t / 40000) for t in clip.timestamps_us] == expected
    assert all(abs(t - i * 40000) <= 2 for i, t in zip(expected, clip.timestamps_us))


def test_decode_fps_resampling_rule(videos):
    """'all' at 10 fps keeps, for each k, the first frame whose timestamp is >= k*100 ms."""
    clip = decode_video(videos["v30"], SamplingSpec(fps=10), FrameSpec(image_format="raw"))
    times_ms = [40 * i for i in range(30)]
    expected = sorted({next(i for i, t in enumerate(times_ms) if t >= 100 * k) for k in range(12)})
    assert clip.source_indices == expected == [0, 3, 5, 8, 10, 13, 15, 18, 20, 23, 25, 28]
    assert clip.timestamps_us == [40000 * i for i in expected]
    assert_levels_match(clip, "raw")


def test_decode_resize_and_crop(videos):
    clip = decode_video(videos["v30"], SamplingSpec("uniform", num_frames=3),
                        FrameSpec(crop="center_square", resize_shorter=24, image_format="png"))
    assert (clip.height, clip.width) == (24, 24)
    assert (clip.source_height, clip.source_width) == (H, W)
    assert clip.source_indices == [0, 15, 29]
    assert_levels_match(clip, "png")
    clip = decode_video(videos["v30"], SamplingSpec("uniform", num_frames=2),
                        FrameSpec(size=(20, 10), image_format="raw"))
    assert (clip.height, clip.width) == (10, 20)
    assert all(len(f) == 10 * 20 * 3 for f in clip.frames)
    assert_levels_match(clip, "raw")


def test_decode_portrait(videos):
    path = videos["portrait"]                                   # 48 wide x 80 high
    clip = decode_video(path, SamplingSpec(), FrameSpec(resize_shorter=24, image_format="png"))
    assert (clip.source_height, clip.source_width) == (80, 48)
    assert (clip.height, clip.width) == (40, 24)                # orientation kept
    assert clip.source_indices == list(range(12))
    assert_levels_match(clip, "png")
    clip = decode_video(path, SamplingSpec("segments", num_frames=3),
                        FrameSpec(image_format="raw"))
    assert (clip.height, clip.width) == (80, 48)
    assert clip.source_indices == [2, 6, 10]
    assert_levels_match(clip, "raw")


@pytest.mark.parametrize("short,expected", [
    ("loop", [0, 1, 2, 3, 4, 0, 1, 2]),
    ("repeat_last", [0, 1, 2, 3, 4, 4, 4, 4]),
])
def test_decode_short_video(videos, short, expected):
    clip = decode_video(videos["v5"], SamplingSpec("uniform", num_frames=8, short=short),
                        FrameSpec(image_format="png"))
    assert clip.source_indices == expected
    assert clip.short_policy == short
    assert clip.source_num_frames == 5
    assert clip.claimed_num_frames == 5
    assert len(clip.frames) == 8
    assert_levels_match(clip, "png")
    assert [round(t / 40000) for t in clip.timestamps_us] == expected


def test_decode_short_video_other_modes(videos):
    clip = decode_video(videos["v5"], SamplingSpec("stride", stride=2, num_frames=4,
                                                   short="repeat_last"), FrameSpec())
    assert clip.source_indices == [0, 2, 4, 4]
    assert clip.short_policy == "repeat_last"
    assert_levels_match(clip)
    clip = decode_video(videos["v5"], SamplingSpec("indices", indices=(1, 4, 6, 8), short="loop"),
                        FrameSpec())
    assert clip.source_indices == [1, 4, 1, 3]
    assert clip.short_policy == "loop"
    assert_levels_match(clip)


@pytest.mark.parametrize("spec", [
    SamplingSpec("uniform", num_frames=8, short="skip"),
    SamplingSpec("segments", num_frames=6, short="skip"),
    SamplingSpec("stride", stride=2, num_frames=4, short="skip"),
    SamplingSpec("indices", indices=(0, 5), short="skip"),
])
def test_decode_short_video_skip(videos, spec):
    with pytest.raises(MediaError) as e:
        decode_video(videos["v5"], spec, FrameSpec())
    assert e.value.reason == "too_short"


# --------------------------------------------------------------------------
# Bad inputs.
# --------------------------------------------------------------------------
def test_empty_file(tmp_path):
    p = tmp_path / "empty.avi"
    p.write_bytes(b"")
    with pytest.raises(MediaError) as e:
        decode_video(str(p), SamplingSpec(), FrameSpec())
    assert e.value.reason == "empty_file"


@pytest.mark.parametrize("spec", [SamplingSpec(), SamplingSpec("uniform", num_frames=4)])
def test_text_file_cannot_open(tmp_path, spec):
    p = tmp_path / "notes.avi"
    p.write_text("this is not a video\n" * 20)
    with pytest.raises(MediaError) as e:
        decode_video(str(p), spec, FrameSpec())
    assert e.value.reason == "cannot_open"


def test_missing_file(tmp_path):
    with pytest.raises(MediaError) as e:
        decode_video(str(tmp_path / "nope.avi"), SamplingSpec(), FrameSpec())
    assert e.value.reason == "missing_file"


@pytest.fixture(scope="module")
def truncated(videos):
    data = open(videos["v60"], "rb").read()
    p = videos["dir"] / "truncated.avi"
    p.write_bytes(data[:len(data) // 2])
    return str(p)


@pytest.mark.parametrize("spec", [SamplingSpec(), SamplingSpec("uniform", num_frames=4),
                                  SamplingSpec("stride", stride=2)])
def test_truncated_rejected(truncated, spec):
    with pytest.raises(MediaError) as e:
        decode_video(truncated, spec, FrameSpec())
    assert e.value.reason == "truncated"


def test_truncated_tolerated(truncated):
    real = cv2_count(truncated)
    assert 4 <= real < 60 * 0.95
    clip = decode_video(truncated, SamplingSpec("uniform", num_frames=4),
                        FrameSpec(image_format="raw"), truncation_tolerance=1.0)
    assert clip.claimed_num_frames == 60
    assert clip.source_num_frames == real
    assert clip.claimed_num_frames > clip.source_num_frames
    expected = [int(math.floor(i * (real - 1) / 3 + 0.5)) for i in range(4)]
    assert expected[-1] == real - 1
    assert clip.source_indices == expected
    assert clip.short_policy == "none"
    assert_levels_match(clip, "raw")
    clip = decode_video(truncated, SamplingSpec(), FrameSpec(), truncation_tolerance=1.0)
    assert clip.source_indices == list(range(real))
    assert clip.source_num_frames == real
    assert clip.claimed_num_frames == 60
    assert_levels_match(clip)


# --------------------------------------------------------------------------
# Real fixtures.
# --------------------------------------------------------------------------
REAL_VIDEOS = [
    ("ucf_like_320x240_fmp4.avi", 164, 25.0, 240, 320,
     [0, 11, 22, 33, 43, 54, 65, 76, 87, 98, 109, 120, 130, 141, 152, 163]),
    ("kinetics_like_340x256_h264.mp4", 300, 30.0, 256, 340,
     [0, 20, 40, 60, 80, 100, 120, 140, 159, 179, 199, 219, 239, 259, 279, 299]),
]


@pytest.mark.real
@pytest.mark.parametrize("name,n,fps,h,w,uniform16", REAL_VIDEOS, ids=[v[0] for v in REAL_VIDEOS])
def test_real_video_all(real_dir, name, n, fps, h, w, uniform16):
    path = real_dir / "videos" / name
    frames = read_all(path)
    assert len(frames) == n
    assert frames[0].shape == (h, w, 3)
    clip = decode_video(str(path), SamplingSpec(), FrameSpec(image_format="raw"))
    assert len(clip.frames) == len(frames)
    assert clip.source_indices == list(range(n))
    assert clip.source_num_frames == n
    assert clip.claimed_num_frames == n
    assert clip.fps == pytest.approx(fps)
    assert (clip.height, clip.width) == (h, w)
    assert (clip.source_height, clip.source_width) == (h, w)
    ts = clip.timestamps_us
    assert ts[0] == 0
    assert all(b > a for a, b in zip(ts, ts[1:]))
    assert all(abs((b - a) - 1e6 / fps) <= 2 for a, b in zip(ts, ts[1:]))
    # raw frames are exactly the decoder's frames, in RGB
    for i in (0, n // 2, n - 1):
        rgb = np.frombuffer(clip.frames[i], np.uint8).reshape(h, w, 3)
        assert np.array_equal(rgb, cv2.cvtColor(frames[i], cv2.COLOR_BGR2RGB))


@pytest.mark.real
@pytest.mark.parametrize("name,n,fps,h,w,uniform16", REAL_VIDEOS, ids=[v[0] for v in REAL_VIDEOS])
def test_real_video_uniform16(real_dir, name, n, fps, h, w, uniform16):
    path = str(real_dir / "videos" / name)
    clip = decode_video(path, SamplingSpec("uniform", num_frames=16),
                        FrameSpec(resize_shorter=128))
    assert clip.source_indices == uniform16
    assert clip.source_indices == [int(math.floor(x + 0.5)) for x in np.linspace(0, n - 1, 16)]
    assert len(clip.frames) == 16
    assert clip.source_num_frames == n
    assert clip.short_policy == "none"
    out_h, out_w = 128, int(round(w * 128 / h))
    assert (clip.height, clip.width) == (out_h, out_w)
    for b in clip.frames:
        assert cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR).shape == (out_h, out_w, 3)
    assert all(abs(t - i * 1e6 / fps) <= 2 for i, t in zip(uniform16, clip.timestamps_us))


# --------------------------------------------------------------------------
# Variable frame rate: a Matroska file whose frames are unevenly spaced. Its
# container reports a nominal 1000 fps and a frame count of duration x rate
# (1501), neither of which is true.
# --------------------------------------------------------------------------
VFR_PTS_MS = [0, 40, 80, 120, 400, 410, 420, 430, 1000, 1500]


@pytest.fixture()
def vfr_video(tmp_path):
    import fractions

    import av
    path = tmp_path / "vfr.mkv"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=1000)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.time_base = fractions.Fraction(1, 1000)
        for i, pts in enumerate(VFR_PTS_MS):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 20 * i, np.uint8),
                                               format="rgb24")
            frame.pts, frame.time_base = pts, fractions.Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return str(path)


def test_variable_frame_rate_keeps_real_timestamps(vfr_video):
    clip = decode_video(vfr_video, SamplingSpec("all"), FrameSpec(image_format="png"))
    assert clip.claimed_num_frames == 1501 and clip.source_num_frames == 10
    assert clip.timestamps_us == [t * 1000 for t in VFR_PTS_MS]
    assert clip.fps == pytest.approx(9 / 1.5)          # measured from the timestamps
    levels = [int(cv2.imdecode(np.frombuffer(f, np.uint8), cv2.IMREAD_GRAYSCALE).mean())
              for f in clip.frames]
    assert [round(v / 20) for v in levels] == list(range(10))


def test_variable_frame_rate_resamples_by_time_and_plans_on_real_count(vfr_video):
    clip = decode_video(vfr_video, SamplingSpec("all", fps=2), FrameSpec())
    # targets every 500 ms: 0 -> frame 0; 500 -> first frame at/after it is 1000 ms
    # (frame 8), which also covers the 1000 target; 1500 -> frame 9.
    assert clip.source_indices == [0, 8, 9]
    assert clip.timestamps_us == [0, 1_000_000, 1_500_000]
    clip = decode_video(vfr_video, SamplingSpec("uniform", num_frames=4), FrameSpec())
    assert clip.source_indices == [0, 3, 6, 9]
    assert clip.timestamps_us == [0, 120_000, 420_000, 1_500_000]


@pytest.mark.parametrize("text,want", [(None, None), ("", None), ("112x112", (112, 112)),
                                       ("1920X1080", (1920, 1080)), (" 64x48 ", (64, 48))])
def test_parse_size_reads_width_by_height(text, want):
    assert parse_size(text, "--size") == want


@pytest.mark.parametrize("text,message", [
    ("112", "--size must look like 112x112 (WIDTHxHEIGHT), got '112'"),
    ("a x b", "--size must look like 112x112 (WIDTHxHEIGHT), got 'a x b'"),
    ("-4x4", "--size must look like"),
    ("1.5x2", "--size must look like"),
    ("0x10", "--size needs a positive width and height, got '0x10'"),
])
def test_parse_size_names_the_flag_in_its_error(text, message):
    with pytest.raises(ValueError) as err:
        parse_size(text, "--size")
    assert str(err.value).startswith(message)


# --------------------------------------------------------------------------
# Sparse sampling of a long video seeks across the gaps; the clip is the one a full pass
# gives, and a file whose count cannot be trusted gets the full pass.
# --------------------------------------------------------------------------
def _long_video(path, pts, fps=10, size=(64, 48)):
    """An MPEG-4 video whose frame k (shown at ``pts[k]`` periods) carries k in its pixels."""
    import fractions

    import av
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.time_base = fractions.Fraction(1, fps)
        stream.codec_context.gop_size = 12
        for k, p in enumerate(pts):
            pixels = np.zeros((size[1], size[0], 3), np.uint8)
            pixels[:, :, 0] = (k * 5) % 256
            pixels[: size[1] // 2, : (k % size[0]) + 1, 1] = 255
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = p
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return str(path)


def _full_pass_clip(monkeypatch, path, sampling, spec):
    from pipeline.media import video
    with monkeypatch.context() as m:
        m.setattr(video, "_wide_gaps", lambda wanted, fps: False)
        return decode_video(path, sampling, spec)


@pytest.mark.parametrize("sampling", [SamplingSpec("uniform", num_frames=3),
                                      SamplingSpec("segments", num_frames=4),
                                      SamplingSpec("uniform", num_frames=40)])
def test_sparse_frames_of_a_long_video_are_reached_by_seeking(tmp_path, monkeypatch, sampling):
    from pipeline.media import video
    path = _long_video(tmp_path / "long.mp4", range(300))          # 30 s at 10 fps
    seeks = []
    real = video._seek_pass
    monkeypatch.setattr(video, "_seek_pass",
                        lambda *a: seeks.append(real(*a)) or seeks[-1])
    spec = FrameSpec(resize_shorter=32)
    clip = decode_video(path, sampling, spec)
    if sampling.num_frames < 40:
        assert seeks and seeks[-1] is not None     # it seeked
    else:
        assert not seeks                           # kept frames 0.75 s apart: a full pass
    assert clip == _full_pass_clip(monkeypatch, path, sampling, spec)
    assert clip.source_num_frames == 300


def test_a_long_video_with_a_dropped_frame_gets_the_full_pass(tmp_path, monkeypatch):
    from pipeline.media import video
    path = _long_video(tmp_path / "dropped.mp4", [p for p in range(300) if p != 150])
    seeks = []
    real = video._seek_pass
    monkeypatch.setattr(video, "_seek_pass",
                        lambda *a: seeks.append(real(*a)) or seeks[-1])
    sampling, spec = SamplingSpec("uniform", num_frames=3), FrameSpec()
    clip = decode_video(path, sampling, spec)
    assert seeks == [None]                         # the count and the last frame disagree
    assert clip == _full_pass_clip(monkeypatch, path, sampling, spec)
    assert clip.source_num_frames == 299


def test_containers_without_a_frame_count_are_not_seeked(tmp_path):
    from pipeline.media import video
    path = _long_video(tmp_path / "long.mkv", range(300))
    assert video._seek_pass(path, [0, 299], FrameSpec(), 300, 10.0) is None


@pytest.mark.real
@pytest.mark.parametrize("name", [v[0] for v in REAL_VIDEOS])
def test_one_decoding_thread_gives_the_same_clip(real_dir, name):
    """video.set_threads(1) (a worker process per core) changes the CPU spent, not a byte:
    every frame decoded, resized and encoded alike, the capture opened with one thread."""
    path = str(real_dir / "videos" / name)
    spec = FrameSpec(resize_shorter=100)
    clips = {}
    try:
        for threads in (0, 1, 3):
            video.set_threads(threads)
            with video.VideoReader(path) as reader:
                if threads:
                    assert cv2.getNumThreads() == threads
                # both real fixtures are smaller than MIN_THREADED_PIXELS: one thread
                assert reader.cap.get(cv2.CAP_PROP_N_THREADS) == 1
            clips[threads] = decode_video(path, SamplingSpec(), spec)
    finally:
        video.set_threads(0)
    assert clips[1].frames == clips[0].frames == clips[3].frames
    assert clips[1].source_indices == clips[0].source_indices
    assert clips[1].timestamps_us == clips[0].timestamps_us


def test_threads_go_to_videos_large_enough_for_them(tmp_path, monkeypatch):
    """A process given 3 threads decodes a video of MIN_THREADED_PIXELS or more with 3, a
    smaller one with 1, whichever it opened before (each opened for the last one's size,
    again where its own differs); the clips are the same bytes as with one thread."""
    small = _long_video(tmp_path / "small.mp4", range(30), size=(64, 48))
    large = _long_video(tmp_path / "large.mp4", range(30), size=(96, 64))
    monkeypatch.setattr(video, "MIN_THREADED_PIXELS", 96 * 64)
    monkeypatch.setattr(video, "_last_large", False)
    spec = FrameSpec(resize_shorter=32)
    opened, clips = [], {}
    real_capture = video._capture
    monkeypatch.setattr(video, "_capture", lambda path, threads: (
        opened.append((os.path.basename(path), threads)) or real_capture(path, threads)))
    try:
        for threads in (3, 1):
            video.set_threads(threads)
            phase = len(opened) if threads == 1 else 0
            for path in (small, large, large, small):
                with video.VideoReader(path) as reader:
                    want = threads if path == large else 1
                    assert reader.cap.get(cv2.CAP_PROP_N_THREADS) == want, (path, threads)
                clips[threads, path] = decode_video(path, SamplingSpec("uniform", num_frames=8),
                                                    spec)
    finally:
        video.set_threads(0)
    three, one = opened[:phase], opened[phase:]
    # with 3 threads: a file of the other size than the last one opened again, once
    assert three.count(("large.mp4", 1)) == 1 and three.count(("small.mp4", 3)) == 1
    assert three.index(("large.mp4", 1)) + 1 == three.index(("large.mp4", 3))
    assert three[three.index(("small.mp4", 3)) + 1] == ("small.mp4", 1)
    assert all(t == 1 for _, t in one)
    for path in (small, large):
        assert clips[3, path].frames == clips[1, path].frames
        assert clips[3, path].source_indices == clips[1, path].source_indices


def test_a_sampled_decode_opens_the_file_once(videos, monkeypatch):
    """Uniform sampling needs the frame count first: the reader that read it makes the
    pass too (before, a second open), and the clip is the one a fresh reader makes."""
    path = videos["v30"]
    sampling, spec = SamplingSpec("uniform", num_frames=8), FrameSpec(resize_shorter=32)
    fresh = video._decode_pass(path, lambda i, t: i in set(plan_indices(sampling, 30)[0]),
                               spec)
    opened = []
    real_capture = video._capture
    monkeypatch.setattr(video, "_capture", lambda p, threads: (
        opened.append(p) or real_capture(p, threads)))
    clip = decode_video(path, sampling, spec)
    assert opened == [path]
    order = plan_indices(sampling, 30)[0]
    assert clip.frames == [fresh.kept[i][0] for i in order]
    assert clip.source_indices == list(order)
