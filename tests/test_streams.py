"""Tests of pipeline/media/streams.py and of the one timing rule of pipeline/media/video.py:
a frame carries the same time in a built clip, in a sliding window and in an overlay."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.media import streams
from pipeline.media.encode import FrameSpec
from pipeline.media.sampling import SamplingSpec
from pipeline.media.video import VideoReader, decode_video
from test_video import VFR_PTS_MS, vfr_video  # noqa: F401  (vfr_video is a fixture)


def test_sliding_windows_cover_the_stream():
    def stream(n):
        return ((i, i / 10, np.zeros((4, 6, 3), np.uint8)) for i in range(n))

    def spans(n, window, hop):
        return [(w.indices[0], w.indices[-1], round(w.start, 6), round(w.end, 6))
                for w in streams.sliding_windows(stream(n), window, hop, lambda bgr: b"x")]

    assert spans(12, 0.6, 0.3) == [(0, 5, 0.0, 0.6), (3, 8, 0.3, 0.9), (6, 11, 0.6, 1.2)]
    # a tail after the last whole window gets a window ending with the stream
    assert spans(12, 0.5, 0.4) == [(0, 4, 0.0, 0.5), (4, 8, 0.4, 0.9), (7, 11, 0.7, 1.2)]
    # shorter than one window: one window of everything
    assert spans(3, 1.0, 0.5) == [(0, 2, 0.0, 0.3)]
    assert spans(0, 1.0, 0.5) == []


def _window_spans(path, window, hop):
    with VideoReader(path) as reader:
        return [(w.indices, [round(t * 1e6) for t in w.times])
                for w in streams.sliding_windows(reader.frames(), window, hop, lambda bgr: b"")]


def test_windows_of_a_variable_rate_video_keep_the_decoder_times(vfr_video):
    """The container claims 1000 fps; the frames sit at 0, 40, 80, 120, 400 ... 1500 ms.
    Timing frames by index / rate would put frame 4 at 160 ms (or 4 ms); the windows
    hold each frame at its real time, as the build's clip does."""
    built = decode_video(vfr_video, SamplingSpec("all"), FrameSpec(image_format="png"))
    with VideoReader(vfr_video) as reader:
        times = [round(t * 1e6) for _, t, _ in reader.frames()]
    assert times == built.timestamps_us == [t * 1000 for t in VFR_PTS_MS]
    us = [t * 1000 for t in VFR_PTS_MS]
    # windows [0, 0.5), [1.0, 1.5) and [1.5, 2.0): [0.5, 1.0) holds no frame
    assert _window_spans(vfr_video, 0.5, 0.5) == [(list(range(8)), us[:8]), ([8], [us[8]]),
                                                  ([9], [us[9]])]


@pytest.mark.real
def test_a_real_video_is_timed_alike_by_the_build_and_the_windows(real_dir):
    path = str(real_dir / "videos" / "kinetics_like_340x256_h264.mp4")
    built = decode_video(path, SamplingSpec("all"), FrameSpec(size=(34, 26)))
    with VideoReader(path) as reader:
        assert reader.fps == pytest.approx(30.0)
        times = [round(t * 1e6) for _, t, _ in reader.frames()]
    assert len(times) == 300 and times == built.timestamps_us
    spans = _window_spans(path, 2.0, 1.0)
    assert [s[1] for s in spans][0] == times[:60]        # [0, 2 s): 60 frames at 30 fps
    assert all(t in times for _, window_times in spans for t in window_times)
    assert sorted({i for indices, _ in spans for i in indices}) == list(range(300))
