"""Tests for pipeline/frames.py on generated frame folders (PNG, so pixel values are exact)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.media import frames
from pipeline.media.encode import FrameSpec
from pipeline.media.items import Item, MediaError
from pipeline.media.sampling import SamplingSpec

RAW = FrameSpec(image_format="raw")


def _write_png(path, level: int, height: int = 6, width: int = 8):
    """A flat gray frame whose level identifies it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((height, width, 3), level, np.uint8))


def _folder(root, names_and_levels, **size):
    for name, level in names_and_levels:
        _write_png(root / name, level, **size)
    return root


def _item(folder, files=(), extra=None) -> Item:
    return Item(str(folder), "v", "train", 0, "c", kind="frames", files=tuple(files),
                extra=extra or {})


def _levels(clip) -> list[int]:
    """The flat level of each raw frame (asserting each frame really is flat)."""
    out = []
    for data in clip.frames:
        pixels = np.frombuffer(data, np.uint8).reshape(clip.height, clip.width, 3)
        assert (pixels == pixels.flat[0]).all()
        out.append(int(pixels.flat[0]))
    return out


def _thirty(tmp_path):
    """A gestures-style folder of 30 frames; frame i (0-based) has level 8 * i."""
    return _folder(tmp_path / "WIN_20180925_17_08_43_Pro_Left_Swipe_new",
                   [(f"WIN_20180925_17_08_43_Pro_{i + 1:05d}.png", 8 * i) for i in range(30)])


@pytest.mark.parametrize("name,number", [
    ("img_00001.jpg", 1),
    ("WIN_20180925_17_08_43_Pro_00014.png", 14),
    ("00001.jpg", 1),
    ("10.jpeg", 10),
    ("a7b.PNG", 7),
    ("gs://bucket/take_12/frame_0003.png", 3),
    ("cover.jpg", None),
    ("2019/cover", None),
])
def test_frame_number(name, number):
    assert frames.frame_number(name) == number


def test_list_frame_files_sorts_by_number_not_name(tmp_path):
    folder = _folder(tmp_path / "v", [("10.png", 0), ("2.png", 0), ("1.png", 0),
                                      ("0003.png", 0), ("img_0011.JPG", 0)])
    (folder / "notes.txt").write_text("not a frame")
    _write_png(folder / "sub" / "4.png", 0)          # not directly in the folder
    assert frames.list_frame_files(str(folder)) == [
        (1, str(folder / "1.png")), (2, str(folder / "2.png")), (3, str(folder / "0003.png")),
        (10, str(folder / "10.png")), (11, str(folder / "img_0011.JPG"))]


def test_list_frame_files_rejects_bad_and_duplicate_names(tmp_path):
    _folder(tmp_path / "a", [("1.png", 0), ("cover.png", 0)])
    with pytest.raises(MediaError) as err:
        frames.list_frame_files(str(tmp_path / "a"))
    assert err.value.reason == "bad_frame_name" and "cover.png" in err.value.detail
    _folder(tmp_path / "b", [("1.png", 0), ("001.png", 0)])
    with pytest.raises(MediaError) as err:
        frames.list_frame_files(str(tmp_path / "b"))
    assert err.value.reason == "duplicate_frame_number"


def test_all_frames_in_number_order(tmp_path):
    # Unpadded names list as 1, 10, 11, 12, 2, ...; the clip must follow the numbers.
    folder = _folder(tmp_path / "v", [(f"{n}.png", 10 * n) for n in range(1, 13)])
    clip = frames.decode_frame_folder(_item(folder), SamplingSpec(), RAW)
    assert _levels(clip) == [10 * n for n in range(1, 13)]
    assert clip.source_indices == list(range(12))
    assert (clip.source_num_frames, clip.claimed_num_frames, clip.num_filled) == (12, 12, 0)
    assert (clip.height, clip.width, clip.source_height, clip.source_width) == (6, 8, 6, 8)
    assert clip.timestamps_us == [0] * 12 and clip.fps == 0.0 and clip.short_policy == "none"


def test_explicit_indices_with_timestamps(tmp_path):
    indices = (3, 6, 9, 11, 13, 15, 17, 19, 21, 24, 27)
    clip = frames.decode_frame_folder(
        _item(_thirty(tmp_path)), SamplingSpec(mode="indices", indices=indices), RAW,
        source_fps=30.0)
    assert clip.source_indices == list(indices)
    assert _levels(clip) == [8 * i for i in indices]
    assert clip.timestamps_us == [100000, 200000, 300000, 366667, 433333, 500000, 566667,
                                  633333, 700000, 800000, 900000]
    assert clip.fps == 30.0 and clip.source_num_frames == 30


def test_uniform_decodes_only_the_chosen_files(tmp_path):
    folder = _thirty(tmp_path)
    # Frame index 1 is never chosen by uniform 11 over 30: corrupt it to prove it is not read.
    (folder / "WIN_20180925_17_08_43_Pro_00002.png").write_bytes(b"not a png")
    clip = frames.decode_frame_folder(_item(folder), SamplingSpec(mode="uniform", num_frames=11),
                                      RAW)
    assert clip.source_indices == [0, 3, 6, 9, 12, 15, 17, 20, 23, 26, 29]
    assert _levels(clip) == [0, 24, 48, 72, 96, 120, 136, 160, 184, 208, 232]
    with pytest.raises(MediaError) as err:
        frames.decode_frame_folder(_item(folder), SamplingSpec(), RAW)
    assert err.value.reason == "bad_image"
    assert "WIN_20180925_17_08_43_Pro_00002.png" in err.value.detail


def test_gaps_filled_with_the_previous_frame(tmp_path):
    folder = _folder(tmp_path / "v", [(f"img_{n:05d}.png", n) for n in (5, 6, 7, 9, 10, 13)])
    clip = frames.decode_frame_folder(_item(folder), SamplingSpec(), RAW, source_fps=10.0)
    assert _levels(clip) == [5, 6, 7, 7, 9, 10, 10, 10, 13]
    assert clip.source_indices == list(range(9))
    assert clip.timestamps_us == [i * 100000 for i in range(9)]
    assert (clip.source_num_frames, clip.claimed_num_frames, clip.num_filled) == (9, 6, 3)


def test_short_folders_follow_the_policy(tmp_path):
    folder = _folder(tmp_path / "v", [(f"{n}.png", n) for n in (1, 2, 3)])
    clip = frames.decode_frame_folder(
        _item(folder), SamplingSpec(mode="uniform", num_frames=5, short="loop"), RAW)
    assert (_levels(clip), clip.short_policy) == ([1, 2, 3, 1, 2], "loop")
    clip = frames.decode_frame_folder(
        _item(folder), SamplingSpec(mode="uniform", num_frames=5, short="repeat_last"), RAW)
    assert (_levels(clip), clip.short_policy) == ([1, 2, 3, 3, 3], "repeat_last")
    with pytest.raises(MediaError) as err:
        frames.decode_frame_folder(
            _item(folder), SamplingSpec(mode="uniform", num_frames=5, short="skip"), RAW)
    assert err.value.reason == "too_short"


def test_each_chosen_file_is_read_once(tmp_path, monkeypatch):
    folder = _folder(tmp_path / "v", [(f"{n}.png", n) for n in (1, 2, 4)])
    reads = []
    read = frames._read_bytes
    monkeypatch.setattr(frames, "_read_bytes", lambda path: reads.append(path) or read(path))
    clip = frames.decode_frame_folder(
        _item(folder), SamplingSpec(mode="indices", indices=(3, 2, 1, 3, 3)), RAW)
    assert _levels(clip) == [4, 2, 2, 4, 4]
    assert reads == [str(folder / "4.png"), str(folder / "2.png")]


def test_fps_resampling_needs_the_source_rate(tmp_path):
    spec = SamplingSpec(fps=10.0)
    clip = frames.decode_frame_folder(_item(_thirty(tmp_path)), spec, RAW, source_fps=30.0)
    assert clip.source_indices == [0, 3, 6, 9, 12, 15, 18, 21, 24, 27]
    assert _levels(clip) == [0, 24, 48, 72, 96, 120, 144, 168, 192, 216]
    with pytest.raises(MediaError) as err:
        frames.decode_frame_folder(_item(_thirty(tmp_path)), spec, RAW)
    assert err.value.reason == "unknown_fps"


def test_files_from_the_item_sorted_by_their_numbers(tmp_path):
    folder = _folder(tmp_path / "v", [("a.png", 1), ("b.png", 2), ("c_3.png", 3)])
    paths = [str(folder / n) for n in ("c_3.png", "a.png", "b.png")]
    item = _item(tmp_path / "elsewhere", paths, {"frame_numbers": [7, 4, 5]})
    clip = frames.decode_frame_folder(item, SamplingSpec(), RAW)
    assert _levels(clip) == [1, 2, 2, 3]    # numbers 4, 5, (6 filled), 7
    assert clip.num_filled == 1
    with pytest.raises(MediaError) as err:    # "a.png" has no number of its own
        frames.decode_frame_folder(_item(tmp_path, paths), SamplingSpec(), RAW)
    assert err.value.reason == "bad_frame_name"
    with pytest.raises(ValueError, match="frame_numbers"):
        frames.decode_frame_folder(_item(tmp_path, paths, {"frame_numbers": [1]}),
                                   SamplingSpec(), RAW)


def _two_sizes(folder):
    """Frames 1-2 are 360x360; frames 3-4 are 160x120 with a white 20-pixel border left and
    right, which a centre square crop removes."""
    _folder(folder, [("1.png", 10), ("2.png", 20)], height=360, width=360)
    for n, level in ((3, 30), (4, 40)):
        frame = np.full((120, 160, 3), level, np.uint8)
        frame[:, :20] = frame[:, -20:] = 255
        assert cv2.imwrite(str(folder / f"{n}.png"), frame)
    return folder


def test_mixed_sizes_need_a_uniform_output_size(tmp_path):
    item = _item(_two_sizes(tmp_path / "v"))
    with pytest.raises(MediaError) as err:
        frames.decode_frame_folder(item, SamplingSpec(), RAW)
    assert err.value.reason == "mixed_frame_sizes" and "160x120" in err.value.detail
    clip = frames.decode_frame_folder(
        item, SamplingSpec(), FrameSpec(crop="center_square", size=(32, 32), image_format="raw"))
    assert (clip.height, clip.width, clip.source_height, clip.source_width) == (32, 32, 360, 360)
    assert _levels(clip) == [10, 20, 30, 40]
    clip = frames.decode_frame_folder(item, SamplingSpec(mode="indices", indices=(2, 3)),
                                      RAW)             # only the 160x120 frames: uniform
    assert (clip.height, clip.width, clip.source_height, clip.source_width) == (120, 160, 120,
                                                                                  160)


def test_empty_and_broken_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("")
    with pytest.raises(MediaError) as err:
        frames.decode_frame_folder(_item(tmp_path / "empty"), SamplingSpec(), RAW)
    assert err.value.reason == "no_frames"
    folder = _folder(tmp_path / "v", [("1.png", 1)])
    (folder / "2.png").write_bytes(b"")
    with pytest.raises(MediaError) as err:
        frames.decode_frame_folder(_item(folder), SamplingSpec(), RAW)
    assert err.value.reason == "empty_file"
    item = _item(tmp_path, [str(folder / "1.png"), str(folder / "3.png")])
    with pytest.raises(MediaError) as err:
        frames.decode_frame_folder(item, SamplingSpec(), RAW)
    assert err.value.reason == "missing_file"


def test_decode_image(tmp_path):
    frame = np.zeros((6, 10, 3), np.uint8)
    frame[:, :, 2] = 200                             # red in BGR
    assert cv2.imwrite(str(tmp_path / "red.png"), frame)
    clip = frames.decode_image(str(tmp_path / "red.png"), RAW)
    assert (clip.height, clip.width, clip.source_height, clip.source_width) == (6, 10, 6, 10)
    assert clip.frames == [bytes([200, 0, 0]) * 60]  # stored as RGB
    assert (clip.source_indices, clip.timestamps_us, clip.source_num_frames) == ([0], [0], 1)
    clip = frames.decode_image(str(tmp_path / "red.png"),
                               FrameSpec(crop="center_square", size=(4, 4), image_format="png"))
    assert (clip.height, clip.width) == (4, 4)
    assert cv2.imdecode(np.frombuffer(clip.frames[0], np.uint8), cv2.IMREAD_COLOR).shape == (
        4, 4, 3)

    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 truncated")
    (tmp_path / "empty.jpg").write_bytes(b"")
    for name, reason in (("bad.jpg", "bad_image"), ("empty.jpg", "empty_file"),
                         ("gone.jpg", "missing_file")):
        with pytest.raises(MediaError) as err:
            frames.decode_image(str(tmp_path / name), RAW)
        assert err.value.reason == reason


def test_list_subfolders(tmp_path):
    _folder(tmp_path / "a", [("1.png", 0)])
    _folder(tmp_path / "b c" / "deeper", [("1.png", 0)])
    (tmp_path / "empty").mkdir()
    (tmp_path / "top.csv").write_text("")
    assert frames.list_subfolders(str(tmp_path)) == {"a"}
    assert frames.list_subfolders(str(tmp_path / "missing")) == set()


@pytest.mark.real
def test_real_rawframes_folder(real_dir):
    folder = real_dir / "rawframes" / "img"
    item = _item(folder)
    clip = frames.decode_frame_folder(item, SamplingSpec(), RAW)
    expected = [cv2.imread(str(folder / f"img_{n:05d}.jpg")) for n in range(1, 11)]
    height, width = expected[0].shape[:2]
    assert (clip.height, clip.width, clip.source_height, clip.source_width) == (
        height, width, height, width)
    assert clip.source_indices == list(range(10)) and clip.num_filled == 0
    assert clip.frames == [cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).tobytes() for bgr in expected]
    clip = frames.decode_frame_folder(item, SamplingSpec(mode="uniform", num_frames=4), RAW)
    assert clip.source_indices == [0, 3, 6, 9]
    assert clip.frames[1] == cv2.cvtColor(expected[3], cv2.COLOR_BGR2RGB).tobytes()


# --------------------------------------------------------------------------
# JPEG frames that need no pixel change are stored as their own bytes.
# --------------------------------------------------------------------------
@pytest.mark.real
def test_real_jpeg_frames_are_kept_byte_for_byte_unless_pixels_change(real_dir):
    folder = real_dir / "rawframes" / "img"
    item = _item(folder)
    sampling = SamplingSpec("uniform", num_frames=4)
    clip = frames.decode_frame_folder(item, sampling, FrameSpec())
    names = sorted(folder.glob("img_*.jpg"))
    assert clip.frames == [names[i].read_bytes() for i in clip.source_indices]
    first = cv2.imread(str(names[0]))
    assert (clip.height, clip.width) == first.shape[:2]
    # asked for its own size: still kept; asked to resize, or for PNG: re-encoded
    same = FrameSpec(size=(first.shape[1], first.shape[0]))
    assert frames.decode_frame_folder(item, sampling, same).frames == clip.frames
    for spec in (FrameSpec(resize_shorter=64), FrameSpec(image_format="png"),
                 FrameSpec(crop="center_square")):
        other = frames.decode_frame_folder(item, sampling, spec)
        assert all(a != b for a, b in zip(other.frames, clip.frames)), spec
    image = frames.decode_image(str(names[0]), FrameSpec())
    assert image.frames == [names[0].read_bytes()] and image.height == first.shape[0]


def _jpeg(path, pixels, params=()):
    ok, buf = cv2.imencode(".jpg", pixels, list(params))
    assert ok
    path.write_bytes(buf.tobytes())
    return buf.tobytes()


def test_jpegs_that_must_be_decoded_are_decoded(tmp_path):
    rng = np.random.default_rng(0)
    colour = rng.integers(0, 255, (24, 32, 3), np.uint8)
    data = _jpeg(tmp_path / "c.jpg", colour)
    assert frames.decode_image(str(tmp_path / "c.jpg"), FrameSpec()).frames == [data]
    # grayscale (one component): decoded and stored as a colour JPEG
    gray = _jpeg(tmp_path / "g.jpg", colour[:, :, 0])
    clip = frames.decode_image(str(tmp_path / "g.jpg"), FrameSpec())
    assert clip.frames != [gray] and cv2.imdecode(np.frombuffer(clip.frames[0], np.uint8),
                                                  cv2.IMREAD_UNCHANGED).ndim == 3
    # an EXIF segment (its orientation is the decoder's business): decoded
    exif = data[:2] + b"\xff\xe1\x00\x10Exif\x00\x00" + b"\x00" * 8 + data[2:]
    (tmp_path / "e.jpg").write_bytes(exif)
    assert frames.decode_image(str(tmp_path / "e.jpg"), FrameSpec()).frames != [exif]
    # a good header on broken data: refused, as before
    (tmp_path / "b.jpg").write_bytes(data[:200] + b"\x00" * 50)
    with pytest.raises(MediaError) as err:
        frames.decode_image(str(tmp_path / "b.jpg"), FrameSpec())
    assert err.value.reason == "bad_image"


def test_only_whole_jpegs_are_kept_as_they_are(tmp_path):
    """Kept: a header, a scan and the end-of-image marker last. A file cut short, or with
    bytes after its end, is decoded instead (and refused when it cannot be)."""
    from pipeline.media.encode import keeps_jpeg
    rng = np.random.default_rng(1)
    data = _jpeg(tmp_path / "c.jpg", rng.integers(0, 255, (24, 32, 3), np.uint8))
    assert keeps_jpeg(data, FrameSpec()) == (24, 32)
    assert keeps_jpeg(data[:-40], FrameSpec()) is None
    assert keeps_jpeg(data + b"\x00\x00", FrameSpec()) is None
    no_scan = data.replace(b"\xff\xda", b"\xff\xfe")
    assert keeps_jpeg(no_scan, FrameSpec()) is None
    (tmp_path / "cut.jpg").write_bytes(data[:-40])
    clip = frames.decode_image(str(tmp_path / "cut.jpg"), FrameSpec())
    assert clip.frames != [data[:-40]] and (clip.height, clip.width) == (24, 32)
