"""Time ranges of a video (pipeline/media/video.py): seeking to a segment gives the very frames,
times and frame numbers of a whole decode, several segments share one pass, and VP9 WebM
(Something-Something v2's codec) decodes and seeks."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from pipeline.media.encode import FrameSpec
from pipeline.media.items import MediaError
from pipeline.media.sampling import SamplingSpec, plan_indices
from pipeline.media.video import VideoReader, decode_segments, decode_video
from test_video import VFR_PTS_MS, vfr_video  # noqa: F401  (vfr_video is a fixture)

SMALL = FrameSpec(size=(32, 24), image_format="png")


def write_av_video(path, n: int, fps: int = 25, codec: str = "libx264", size=(64, 48),
                   gop: int = 50, level=lambda i: (i * 5) % 250) -> str:
    """A video written by PyAV: frame i a flat grey of ``level(i)``; returns the path."""
    import av
    width, height = size
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = gop
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), level(i), np.uint8),
                                               format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return str(path)


def _in_range(clip, start_s, end_s):
    return all(start_s * 1e6 <= t < end_s * 1e6 for t in clip.timestamps_us)


def _same_as_whole(clip, whole):
    """Each frame of ``clip`` is the whole decode's frame of the same number: same time, same
    bytes."""
    for i, t, frame in zip(clip.source_indices, clip.timestamps_us, clip.frames, strict=True):
        assert whole.timestamps_us[i] == t
        assert whole.frames[i] == frame


@pytest.mark.real
@pytest.mark.parametrize("name,segments", [
    ("kinetics_like_340x256_h264.mp4", [(2.5, 4.0), (5.0, 7.25), (8.0, 12.0)]),
    ("ucf_like_320x240_fmp4.avi", [(2.2, 3.0), (4.04, 6.6)]),
])
def test_a_seeked_segment_holds_the_frames_of_the_whole_decode(real_dir, name, segments):
    path = str(real_dir / "videos" / name)
    whole = decode_video(path, SamplingSpec("all"), SMALL)
    for start_s, end_s in segments:
        clip = decode_video(path, SamplingSpec("all"), SMALL, start_s=start_s, end_s=end_s)
        expected = [i for i, t in enumerate(whole.timestamps_us)
                    if start_s * 1e6 <= t < end_s * 1e6]
        assert clip.source_indices == expected and _in_range(clip, start_s, end_s)
        _same_as_whole(clip, whole)
        assert clip.source_num_frames == len(expected) and clip.fps == pytest.approx(whole.fps)
        # sampled within the segment as if it were the whole video
        uniform = decode_video(path, SamplingSpec("uniform", num_frames=8), SMALL,
                               start_s=start_s, end_s=end_s)
        assert uniform.source_indices == [expected[j] for j in
                                          plan_indices(SamplingSpec("uniform", num_frames=8),
                                                       len(expected))[0]]
        _same_as_whole(uniform, whole)


@pytest.mark.real
def test_the_reader_seeks_instead_of_reading_from_the_start(real_dir):
    """A range starting at 5 s lands by seeking on a frame shortly before it (checked by the
    decoder's time), not by grabbing the 150 frames before it."""
    path = str(real_dir / "videos" / "kinetics_like_340x256_h264.mp4")
    with VideoReader(path) as reader:
        first, index, raw = reader._seek_before(5000.0)
    assert 4000.0 <= raw - first < 5000.0 and index == round((raw - first) * 30 / 1000)
    grabs = []
    with VideoReader(path) as reader:
        real_grab = reader.cap.grab

        class Counting:
            def __getattr__(self, name):
                return getattr(reader_cap, name)

            def grab(self):
                grabs.append(1)
                return real_grab()
        reader_cap = reader.cap
        reader.cap = Counting()
        times = [t for _, t in reader.grabs(5000.0, 6000.0)]
    assert len(times) == 30 and times[0] == pytest.approx(5000.0)
    assert len(grabs) < 40, f"{len(grabs)} frames grabbed for 30: the reader did not seek"


def test_segments_of_one_video_share_one_pass(tmp_path, monkeypatch):
    path = write_av_video(tmp_path / "long.mp4", 300)         # 12 s at 25 fps
    opened = []
    real_init = VideoReader.__init__

    def counting_init(self, p):
        opened.append(p)
        real_init(self, p)
    monkeypatch.setattr(VideoReader, "__init__", counting_init)
    segments = [(3.0, 4.0), (3.5, 5.0), (4.5, 6.0), (20.0, 21.0), (6.0, 6.0)]
    results = decode_segments(path, segments, SamplingSpec("all"), SMALL)
    assert len(opened) == 2          # a probe of the container, then one pass for all
    for (start_s, end_s), clip in zip(segments[:3], results[:3]):
        assert clip.source_indices == list(range(math.ceil(start_s * 25),
                                                  math.ceil(end_s * 25)))
        assert _in_range(clip, start_s, end_s)
    # frames held by two segments are decoded and encoded once, stored in both
    assert results[0].frames[-12:] == results[1].frames[:12]   # [3.52, 4.0) s
    assert isinstance(results[3], MediaError) and results[3].reason == "empty_segment"
    assert isinstance(results[4], MediaError) and results[4].reason == "bad_segment"


def test_vp9_webm_decodes_and_seeks(tmp_path):
    """Something-Something v2 ships VP9 in WebM: OpenCV's FFmpeg decodes it here, and a range
    is found by seeking."""
    path = write_av_video(tmp_path / "v.webm", 150, fps=25, codec="libvpx-vp9", gop=40)
    with VideoReader(path) as reader:
        assert reader.claimed == 150 and reader.fps == pytest.approx(25.0)
    whole = decode_video(path, SamplingSpec("all"), SMALL)
    assert whole.source_num_frames == 150
    clip = decode_video(path, SamplingSpec("all"), SMALL, start_s=3.0, end_s=4.0)
    assert clip.source_indices == list(range(75, 100)) and _in_range(clip, 3.0, 4.0)
    _same_as_whole(clip, whole)
    levels = [cv2.imdecode(np.frombuffer(f, np.uint8), cv2.IMREAD_GRAYSCALE).mean()
              for f in clip.frames]
    assert all(abs(level - (i * 5) % 250) <= 3 for i, level in zip(clip.source_indices, levels))


def test_a_variable_rate_range_keeps_the_decoder_times(vfr_video):
    clip = decode_video(vfr_video, SamplingSpec("all"), SMALL, start_s=0.1, end_s=1.0)
    assert clip.timestamps_us == [t * 1000 for t in VFR_PTS_MS if 100 <= t < 1000]
    assert clip.source_indices == [i for i, t in enumerate(VFR_PTS_MS) if 100 <= t < 1000]


def test_a_range_of_a_file_that_ends_early_is_truncated(tmp_path):
    """The container declares 10 s; the frames stop early: a segment reaching past the last
    frame but inside the declared time is quarantined as truncated, one inside the frames is
    not, one past the declared end is empty."""
    full = write_av_video(tmp_path / "full.avi", 250, codec="mpeg4")
    data = open(full, "rb").read()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: int(len(data) * 0.4)])
    with VideoReader(str(cut)) as reader:
        last_s = [t for _, t in reader.grabs()][-1] / 1000
        assert reader.claimed == 250 and 1.5 < last_s < 8.0
    ok, past_frames, no_frames, past_end = decode_segments(
        str(cut), [(0.5, 1.5), (last_s - 0.2, 9.0), (last_s + 1.0, 9.0), (10.5, 11.0)],
        SamplingSpec("all"), SMALL)
    assert ok.source_indices == list(range(13, 38))
    assert past_frames.reason == "truncated" and no_frames.reason == "truncated"
    assert past_end.reason == "empty_segment"
