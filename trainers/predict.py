r"""Predictions of a trained model on raw inputs: videos, frame folders, images, OpenPose JSON.

    python -m trainers.predict --workdir runs/demo clip.avi other.mp4 frames_folder/
    python -m trainers.predict --workdir runs/demo --json --top_k 3 clip.avi
    python -m trainers.predict --workdir runs/demo --overlay clip_labelled.mp4 clip.avi
    python -m trainers.predict --workdir runs/demo --window 2 --hop 1 long.mp4
    python -m trainers.predict --workdir runs/demo --window 2 --hop 0.5 --camera 0
    python -m trainers.predict --workdir runs/kick openpose/Kick_3

A raw input goes the way the model's training data went, through the same
code:

    raw input ─► the build's decode, sampling, resize and encode
                 (pipeline.transforms.make_item_records, with the settings in the
                 run's dataset_info.json)
              ─► record bytes
              ─► the reader's evaluation path (tfrecords.reader: parse ─► sample ─►
                 decode ─► centre crop(s), with the run's config.data settings)
              ─► the model ─► views (clips x crops) averaged

so the probabilities on a raw file equal those on its record in the build.
Inputs must match the model's modality: a video model takes video files and
frame folders, an image model takes images, a keypoint model takes a folder
of OpenPose ``<name>_<12-digit frame>_keypoints.json`` files (``FOLDER/NAME``
picks one sequence of a folder holding several). Keypoint models predict per
frame: the output lists each frame's probabilities and ranks classes by their
mean over the frames.

``--window S --hop H`` predicts every S-second window of a video, H seconds
apart (each window's frames sampled as the build samples a whole video), and
prints ``[t0–t1] label p`` lines as windows complete; ``--camera N`` does the
same on a live camera until interrupted. ``--overlay OUT.mp4`` writes the
video with the predicted label and confidence drawn on every frame (with
windows: the label of the latest window that covers the frame).

Exit status: 0 when every input was predicted, 1 when some failed, 2 when all
failed or the command line or workdir is wrong.
"""
from __future__ import annotations

import bisect
import collections
import dataclasses
import json
import math
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import weakref
from typing import Any, Callable, Iterable, Iterator

import numpy as np
from absl import app, flags

# Own flag registry: importing this module (trainers.serve does) defines no global flags.
FLAGS = flags.FlagValues()
flags.DEFINE_string("workdir", None, "The training workdir (see trainers/train.py).",
                    flag_values=FLAGS)
flags.DEFINE_string("checkpoint", "best", "best | last | a path to a .keras file.",
                    flag_values=FLAGS)
flags.DEFINE_integer("top_k", 5, "How many classes to list per input (or window).",
                     flag_values=FLAGS)
flags.DEFINE_boolean("json", False, "Print one JSON object per input (with --window: holding "
                     "its windows; with --camera: one per window) instead of text.",
                     flag_values=FLAGS)
flags.DEFINE_string("overlay", None, "Video inputs: write the video with the predicted label "
                    "and confidence on every frame to this .mp4 (original size and fps, mp4v). "
                    "With several inputs it is a folder: one <input name>.mp4 each.",
                    flag_values=FLAGS)
flags.DEFINE_float("window", 0.0, "Seconds per sliding window over a video or camera (0: one "
                   "prediction for the whole input).", flag_values=FLAGS)
flags.DEFINE_float("hop", 0.0, "Seconds between window starts (0: --window, windows do not "
                   "overlap).", flag_values=FLAGS)
flags.DEFINE_integer("camera", None, "Read from camera N (OpenCV device index) instead of "
                     "files; needs --window. Stops on Ctrl-C.", flag_values=FLAGS)
flags.DEFINE_string("frame_size", None, "Keypoint models trained on coordinates divided by "
                    "the frame size: WxH of the frames the OpenPose JSON came from.",
                    flag_values=FLAGS)
flags.DEFINE_string("video_dir", None, "Keypoint models trained on coordinates divided by the "
                    "frame size: a folder holding the video each JSON sequence came from "
                    "(matched by name), whose size is used.", flag_values=FLAGS)

KIND_MODALITY = {"video": "video", "frames": "video", "image": "image", "keypoints": "keypoints"}
KIND_WORDS = {"video": "a video file", "frames": "a frame folder", "image": "an image",
              "keypoints": "OpenPose keypoints"}
MODALITY_TAKES = {"video": "video files or frame folders", "image": "image files",
                  "keypoints": "OpenPose JSON folders (<name>_<frame>_keypoints.json)"}
OPENPOSE_FILE = re.compile(r"^(.*)_(\d{12})_keypoints\.json$")
BOUNDARY_S = 1e-6          # slack when comparing frame times with window edges
DEFAULT_FPS = 25.0         # for videos whose container gives no frame rate


class InputError(ValueError):
    """An unreadable, unsupported or wrong-modality input (message for the user)."""


# --------------------------------------------------------------------------
# The build's settings, read back from dataset_info.json.
# --------------------------------------------------------------------------
def build_settings(info: dict, *, frame_size: tuple[int, int] | None = None,
                   video_dir: str | None = None):
    """The ``BuildSettings`` the build used (``pipeline.transforms``), from its dataset_info.

    Keypoint builds are read back whole (no windows: the reader cuts windows as
    in evaluation); ``frame_size`` / ``video_dir`` replace the build's way of
    normalising coordinates by the frame size (raises ValueError if it did not).
    """
    from pipeline import transforms, video
    sampling = dict(info.get("sampling") or {})
    sampling["indices"] = tuple(sampling.get("indices") or ())
    frame = dict(info.get("frame") or {})
    if frame.get("size"):
        frame["size"] = tuple(frame["size"])
    keypoint_spec = None
    if info.get("keypoints"):
        from pipeline import keypoints
        k = dict(info["keypoints"])
        k["keypoints"] = tuple(k.get("keypoints") or ())
        k["frame_size"] = tuple(k["frame_size"]) if k.get("frame_size") else None
        k["window"] = k["window_stride"] = None
        if frame_size or video_dir:
            if not (k["frame_size"] or k["video_dir"]):
                raise ValueError("this model was trained on pixel coordinates (its build "
                                 "normalised by no frame size): --frame_size and --video_dir "
                                 "do not apply")
            k["frame_size"], k["video_dir"] = (tuple(frame_size) if frame_size else None,
                                               video_dir)
        keypoint_spec = keypoints.KeypointSpec(**k)
    tolerance = (info.get("flags") or {}).get("truncation_tolerance", 0.05)
    return transforms.BuildSettings(video.SamplingSpec(**sampling), video.FrameSpec(**frame),
                                    tolerance, float(info.get("source_fps") or 0.0),
                                    keypoint_spec)


# --------------------------------------------------------------------------
# What an input is.
# --------------------------------------------------------------------------
def input_kind(path: str) -> str:
    """'video', 'frames', 'image' or 'keypoints' from the path alone; InputError if none."""
    from pipeline import frames
    if os.path.isdir(path):
        names = os.listdir(path)
        if any(n.lower().endswith(frames.IMAGE_EXTENSIONS) for n in names):
            return "frames"
        if any(OPENPOSE_FILE.match(n) for n in names):
            return "keypoints"
        raise InputError(f"{path}: a folder with no frames ({', '.join(frames.IMAGE_EXTENSIONS)}) "
                         "and no OpenPose <name>_<12-digit frame>_keypoints.json files")
    if os.path.isfile(path):
        name = os.path.basename(path).lower()
        if name.endswith(frames.IMAGE_EXTENSIONS):
            return "image"
        if OPENPOSE_FILE.match(os.path.basename(path)):
            return "keypoints"
        if name.endswith(".json"):
            raise InputError(f"{path}: a JSON file not named like OpenPose output "
                             "(<name>_<12-digit frame>_keypoints.json)")
        if os.path.getsize(path) == 0:
            raise InputError(f"{path}: the file is empty (0 bytes)")
        return "video"   # .avi, .mp4, ... or any other name: OpenCV says if it is no video
    folder, name = os.path.split(path.rstrip("/"))
    if os.path.isdir(folder or ".") and name:
        stem = OPENPOSE_FILE.match(name)
        name = stem.group(1) if stem else name
        sequences = sorted({m.group(1) for n in os.listdir(folder or ".")
                            if (m := OPENPOSE_FILE.match(n))})
        if name in sequences:
            return "keypoints"
        if sequences:
            raise InputError(f"{path}: no such file or folder, and no OpenPose sequence named "
                             f"{name!r} in {folder or '.'} (it has {', '.join(sequences[:3])}"
                             f"{', ...' if len(sequences) > 3 else ''})")
    raise InputError(f"{path}: no such file or folder")


def _keypoint_item(path: str):
    """The OpenPose item of ``path``: a folder of one sequence, FOLDER/NAME, or one of its files."""
    from pipeline.sources import base, openpose
    if os.path.isdir(path):
        folder, name = path, None
    else:
        folder, name = os.path.split(path.rstrip("/"))
        match = OPENPOSE_FILE.match(name)
        if match:
            name = match.group(1)
    try:
        listing = openpose.list_items(folder or ".", base.SourceOptions())
    except base.SourceError as e:
        raise InputError(f"{path}: {str(e).splitlines()[0]}") from None
    items = {item.video_id: item for item in listing.items}
    if name is not None:
        if name not in items:
            raise InputError(f"{path}: no OpenPose sequence named {name!r} in {folder}")
        return items[name]
    if len(items) > 1:
        names = sorted(items)
        raise InputError(f"{path} holds {len(items)} OpenPose sequences "
                         f"({', '.join(names[:3])}{', ...' if len(names) > 3 else ''}): give "
                         f"one as FOLDER/NAME, e.g. {os.path.join(path, names[0])}")
    return next(iter(items.values()))


def _item(path: str, kind: str):
    """The build's ``Item`` for a raw input (unlabelled, split 'predict')."""
    from pipeline.sources import base
    if kind == "keypoints":
        return _keypoint_item(path)
    name = os.path.basename(path.rstrip("/")) or path
    return base.Item(path=path, video_id=name, split="predict", label=-1, label_text="",
                     kind=kind)


def _media_message(path: str, error) -> str:
    """A MediaError as one line for the user."""
    detail = error.detail
    if error.reason == "too_short":
        detail += "; the build this model was trained on skips clips that short"
    return f"{path}: {detail} ({error.reason})"


# --------------------------------------------------------------------------
# Frames from a video file or a camera, and sliding windows over them.
# --------------------------------------------------------------------------
class VideoFrames:
    """(index, seconds, BGR frame) of a video file, timed index / fps; a context manager."""

    def __init__(self, path: str):
        import cv2
        if not os.path.isfile(path):
            raise InputError(f"{path}: no such file")
        self.path = path
        self.cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
        if not self.cap.isOpened():
            raise InputError(f"{path}: OpenCV/FFmpeg cannot open it as a video")
        fps = self.cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if math.isfinite(fps) and 0 < fps < 1000 else DEFAULT_FPS
        count = self.cap.get(cv2.CAP_PROP_FRAME_COUNT)
        self.claimed = int(count) if math.isfinite(count) and count > 0 else 0

    def __iter__(self) -> Iterator[tuple[int, float, np.ndarray]]:
        i = 0
        while True:
            ok, frame = self.cap.read()
            if not ok or frame is None:
                return
            yield i, i / self.fps, frame
            i += 1

    def close(self):
        self.cap.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class CameraFrames(VideoFrames):
    """(index, seconds since the first frame, BGR frame) from camera ``index`` until stopped."""

    def __init__(self, index: int):
        import cv2
        self.path = f"camera {index}"
        level = cv2.getLogLevel()
        cv2.setLogLevel(0)                  # silent: probing a missing device warns
        try:
            self.cap = cv2.VideoCapture(index)
            opened = self.cap.isOpened()
        finally:
            cv2.setLogLevel(level)
        if not opened:
            self.cap.release()
            raise InputError(f"cannot open camera {index} (no such device, no permission, or "
                             "in use by another program)")
        fps = self.cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if math.isfinite(fps) and 0 < fps < 1000 else DEFAULT_FPS
        self.claimed = 0

    def __iter__(self):
        start = None
        i = 0
        while True:
            ok, frame = self.cap.read()
            if not ok or frame is None:
                return
            now = time.monotonic()
            start = now if start is None else start
            yield i, now - start, frame
            i += 1


@dataclasses.dataclass
class Window:
    """The frames of one window, processed as the build processes kept frames."""
    start: float                 # seconds
    end: float
    indices: list[int]           # frame numbers in the stream
    times: list[float]
    encoded: list[bytes]
    source_hw: tuple[int, int]


def sliding_windows(frames: Iterable[tuple[int, float, np.ndarray]], window: float, hop: float,
                    process: Callable[[np.ndarray], bytes]) -> Iterator[Window]:
    """Windows [k * hop, k * hop + window) of a frame stream, each as soon as it is complete.

    Every frame is processed once (``process``: the build's crop/resize/encode)
    and kept only while a later window can still use it. When the stream ends,
    a stream shorter than one window gives one window of all its frames, and a
    tail after the last whole window gives one last window ending with the
    stream, so every frame is covered.
    """
    if window <= 0 or hop <= 0:
        raise ValueError("window and hop must be > 0 seconds")
    kept: collections.deque = collections.deque()     # (index, t, encoded)
    k, emitted, last_end, hw = 0, 0, 0.0, (0, 0)
    period = None
    prev_t = None

    def make(start: float, end: float) -> Window:
        inside = [f for f in kept if start - BOUNDARY_S <= f[1] < end - BOUNDARY_S]
        return Window(start, end, [f[0] for f in inside], [f[1] for f in inside],
                      [f[2] for f in inside], hw)

    for index, t, bgr in frames:
        if prev_t is not None and t > prev_t:
            period = t - prev_t
        prev_t = t
        while t >= k * hop + window - BOUNDARY_S:
            if any(f[1] >= k * hop - BOUNDARY_S for f in kept):
                yield make(k * hop, k * hop + window)
                emitted += 1
                last_end = k * hop + window
            k += 1
        while kept and kept[0][1] < min(k * hop, t - window) - BOUNDARY_S:
            kept.popleft()
        hw = bgr.shape[:2]
        kept.append((index, t, process(bgr)))
    if not kept:
        return
    end = kept[-1][1] + (period or 1.0 / DEFAULT_FPS)
    while k * hop + window <= end + BOUNDARY_S:          # whole windows ending with the stream
        yield make(k * hop, k * hop + window)
        emitted += 1
        last_end = k * hop + window
        k += 1
    if not emitted:
        yield make(kept[0][1], end)
    elif last_end < end - BOUNDARY_S:
        yield make(max(0.0, end - window), end)


# --------------------------------------------------------------------------
# The predictor.
# --------------------------------------------------------------------------
def _top_k(probabilities: np.ndarray, classes, k: int) -> list[dict]:
    order = np.argsort(-probabilities, kind="stable")[:max(1, k)]
    return [{"label": classes[i], "index": int(i), "probability": float(probabilities[i])}
            for i in order]


class Predictor:
    """A trained model with its build's input path: ``predict(path)`` on raw inputs."""

    def __init__(self, run, model, checkpoint: str, *, frame_size=None, video_dir=None):
        self.run = run
        self.model = model
        self.checkpoint = checkpoint
        self.classes: tuple[str, ...] = tuple(run.classes)
        self.modality: str = run.modality
        self.settings = build_settings(run.info, frame_size=frame_size, video_dir=video_dir)
        # The reader pipelines are built once, over one record file that each call rewrites
        # (building a tf.data pipeline costs more than reading a clip through it).
        self._tmp = tempfile.mkdtemp(prefix="actionflow-predict-")
        weakref.finalize(self, shutil.rmtree, self._tmp, True)
        self._shard = os.path.join(self._tmp, "predict.tfrecord")
        self._datasets: dict[tuple, Any] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_workdir(cls, workdir: str, checkpoint: str = "best", *,
                     frame_size: tuple[int, int] | None = None,
                     video_dir: str | None = None) -> "Predictor":
        """Loads the run's model; raises ``workdir.RunError`` for an unusable workdir."""
        from trainers import workdir as workdirs
        run = workdirs.open_run(workdir)
        path = run.checkpoint_path(checkpoint)
        model = run.load_model(checkpoint)
        try:
            return cls(run, model, path, frame_size=frame_size, video_dir=video_dir)
        except (TypeError, ValueError) as e:
            raise workdirs.RunError(f"{workdir}: {e}") from None

    # ---------------------------------------------------------------- records
    def record_of(self, path: str) -> tuple[str, bytes]:
        """(kind, record bytes) of a raw input, made by the build's own code."""
        from pipeline import transforms, video
        kind = input_kind(path)
        want = self.modality
        if KIND_MODALITY[kind] != want:
            raise InputError(f"{path} is {KIND_WORDS[kind]}; this {self.run.model_name} model "
                             f"takes {MODALITY_TAKES[want]}")
        item = _item(path, kind)
        try:
            made, _ = transforms.make_item_records(item, self.settings)
        except video.MediaError as e:
            if e.reason == "video_not_found":
                raise InputError(
                    f"{path}: this model was trained on coordinates divided by each video's "
                    f"frame size, and {e.detail}: give --frame_size WxH or --video_dir") from None
            raise InputError(_media_message(path, e)) from None
        except Exception as e:  # noqa: BLE001 - any decoder failure is about this input
            raise InputError(f"{path}: cannot read it: {type(e).__name__}: {e}") from None
        return kind, made[0][-1]

    # ---------------------------------------------------------------- reading
    def _video_dataset(self, shard: str, batch_size: int):
        """The reader's evaluation pipeline over ``shard`` with the run's data settings."""
        from tfrecords import reader
        d = self.run.config.data
        common = dict(training=False, batch_size=batch_size, with_metadata=True,
                      image_format=self.run.info.get("image_format") or "jpeg",
                      classes=self.classes)
        if self.modality == "image":
            return reader.make_image_dataset([shard], crop_size=d.crop_size, crop="center",
                                             **common)
        return reader.make_dataset(
            [shard], num_frames=d.num_frames, sampling=d.sampling, stride=d.stride,
            short=d.short if d.short != "error" else "loop", crop_size=d.crop_size,
            crop="center", resize_shorter=d.resize_shorter or None,
            num_test_clips=d.num_test_clips, num_test_crops=d.num_test_crops, **common)

    def _probabilities(self, outputs: np.ndarray) -> np.ndarray:
        """Model outputs as class probabilities (one sigmoid unit -> [1 - p, p])."""
        outputs = np.asarray(outputs, np.float64)
        if outputs.shape[-1] == 1 and len(self.classes) == 2:
            outputs = np.concatenate([1.0 - outputs, outputs], axis=-1)
        return outputs

    def _read(self, records: list[bytes], key: tuple, make: Callable[[str], Any],
              consume: Callable[[Any], Any]):
        """Writes ``records`` to this predictor's record file and runs ``consume`` over the
        reader pipeline ``make(shard)`` (built once per ``key``), one call at a time."""
        from tfrecords import schema
        with self._lock:
            with open(self._shard, "wb") as f:
                for record in records:
                    f.write(schema.frame_record(record))
            if key not in self._datasets:
                self._datasets[key] = make(self._shard)
            return consume(self._datasets[key])

    def _model_outputs(self, inputs) -> np.ndarray:
        return self._probabilities(self.model.predict_on_batch(inputs))

    def predict_records(self, records: list[bytes], batch_size: int = 8) -> np.ndarray:
        """Class probabilities [records, classes] of clip records, views averaged."""
        def consume(ds):
            sums = np.zeros((len(records), len(self.classes)))
            counts = np.zeros(len(records))
            for clips, _, meta in ds:
                rows = meta["video_index"].numpy()
                np.add.at(sums, rows, self._model_outputs(clips))
                np.add.at(counts, rows, 1)
            return sums / counts[:, None]
        return self._read(records, ("clips", batch_size),
                          lambda shard: self._video_dataset(shard, batch_size), consume)

    def _keypoint_prediction(self, path: str, record: bytes) -> dict:
        """Per-frame probabilities of one keypoint sequence (windows as in evaluation)."""
        from tfrecords import reader, schema
        d = self.run.config.data
        parsed = schema.parse_keypoints(record)
        people, points, coords = (int(parsed["num_people"]), int(parsed["num_points"]),
                                  int(parsed["num_coords"]))
        features = int(self.model.input_shape[-1])
        if people * points * coords != features:
            raise InputError(f"{path}: {people} x {points} points x {coords} values per frame "
                             f"({parsed['layout'].numpy().decode()}), the model takes "
                             f"{features}")
        n = int(parsed["num_frames"])

        def make(shard):
            return reader.make_keypoint_dataset(
                [shard], training=False, batch_size=32, window=d.window,
                window_shift=d.window_shift or None, num_people=people, num_points=points,
                num_coords=coords, target=d.target, with_metadata=True)

        def consume(ds):
            sums, counts = np.zeros((n, len(self.classes))), np.zeros(n)
            for feats, _, meta in ds:
                out = self._model_outputs(feats["keypoints"])
                frames = meta["frame_indices"].numpy()               # [B, W], -1 = padding
                if out.ndim == 2:                                    # one output per window
                    out = np.repeat(out[:, None, :], frames.shape[1], axis=1)
                valid = frames >= 0
                np.add.at(sums, frames[valid], out[valid])
                np.add.at(counts, frames[valid], 1)
            return sums, counts

        sums, counts = self._read([record], ("keypoints", people, points, coords), make,
                                  consume)
        per_frame = sums / np.maximum(counts, 1)[:, None]
        sequence = per_frame[counts > 0].mean(axis=0)
        numbers = parsed["source_indices"].numpy().tolist()
        return {"probabilities": sequence, "frame_probabilities": per_frame,
                "frame_numbers": numbers, "fps": float(parsed["fps"]),
                "layout": parsed["layout"].numpy().decode()}

    # ---------------------------------------------------------------- predict
    def predict(self, path: str, top_k: int = 5) -> dict:
        """Top-k and class probabilities of one raw input; InputError for a bad input.

        Keypoint inputs add ``frame_probabilities`` (per frame, [frames][classes]),
        ``frame_labels`` and ``frame_numbers``; their ``probabilities`` are the
        mean of the frames' (``aggregate`` says so).
        """
        kind, record = self.record_of(path)
        out: dict[str, Any] = {"input": path, "kind": kind}
        if kind == "keypoints":
            k = self._keypoint_prediction(path, record)
            probs = k["probabilities"]
            frame_probs = k["frame_probabilities"]
            out.update(top_k=_top_k(probs, self.classes, top_k),
                       probabilities=[float(p) for p in probs],
                       aggregate=f"mean of the per-frame probabilities over "
                                 f"{len(frame_probs)} frames",
                       num_frames=len(frame_probs), fps=k["fps"], layout=k["layout"],
                       frame_numbers=k["frame_numbers"],
                       frame_labels=[self.classes[i] for i in frame_probs.argmax(axis=1)],
                       frame_probabilities=[[float(p) for p in row] for row in frame_probs])
            return out
        from tfrecords import schema
        probs = self.predict_records([record])[0]
        parsed = schema.parse_clip(record)
        out.update(top_k=_top_k(probs, self.classes, top_k),
                   probabilities=[float(p) for p in probs],
                   source_frames=int(parsed["source_num_frames"]),
                   sampled_frames=[int(i) for i in parsed["source_indices"].numpy()],
                   short_policy=parsed["short_policy"].numpy().decode())
        return out

    def window_record(self, win: Window, fps: float, name: str = "window") -> bytes:
        """One window's clip record: the build's sampling plan over the window's frames."""
        from pipeline import frames, transforms, video
        from pipeline.sources import base
        s = self.settings
        positions, policy = frames.plan_positions(s.sampling, len(win.encoded), fps)
        out_h, out_w = video.output_size(s.frame, *win.source_hw)
        clip = video.Clip(frames=[win.encoded[p] for p in positions],
                          timestamps_us=[int(round(win.times[p] * 1e6)) for p in positions],
                          source_indices=[win.indices[p] for p in positions], fps=fps,
                          source_num_frames=len(win.encoded),
                          claimed_num_frames=len(win.encoded), height=out_h, width=out_w,
                          source_height=int(win.source_hw[0]),
                          source_width=int(win.source_hw[1]), short_policy=policy)
        item = base.Item(path=name, video_id=f"{name}@{win.start:.3f}", split="predict",
                         label=-1, label_text="", kind="video")
        return transforms.clip_record(item, clip, s.frame)

    def stream(self, frames: Iterable[tuple[int, float, np.ndarray]], fps: float, window: float,
               hop: float = 0.0, top_k: int = 5, name: str = "stream") -> Iterator[dict]:
        """Predictions of sliding windows over a frame stream, one dict per window as it ends.

        ``frames`` yields (index, seconds, BGR frame): ``VideoFrames``, ``CameraFrames``
        or any iterator. Each dict: start, end (seconds), first_frame, last_frame,
        top_k, probabilities.
        """
        from pipeline import video
        if self.modality != "video":
            raise InputError(f"sliding windows need a video model; this one takes "
                             f"{MODALITY_TAKES[self.modality]}")
        process = lambda bgr: video.process_frame(bgr, self.settings.frame)  # noqa: E731
        for win in sliding_windows(frames, window, hop or window, process):
            try:
                record = self.window_record(win, fps, name)
            except video.MediaError as e:
                raise InputError(_media_message(f"{name} [{win.start:.2f}–{win.end:.2f}]", e)
                                 ) from None
            probs = self.predict_records([record])[0]
            yield {"start": round(win.start, 6), "end": round(win.end, 6),
                   "first_frame": win.indices[0], "last_frame": win.indices[-1],
                   "top_k": _top_k(probs, self.classes, top_k),
                   "probabilities": [float(p) for p in probs]}

    def predict_windows(self, path: str, window: float, hop: float = 0.0, top_k: int = 5,
                        on_window: Callable[[dict], None] | None = None) -> dict:
        """Sliding-window predictions over a video file (``on_window`` sees each one as it
        completes); ``top_k``/``probabilities`` are the mean over the windows."""
        kind = input_kind(path)
        if kind != "video":
            raise InputError(f"{path} is {KIND_WORDS[kind]}; --window needs a video file")
        if self.modality != "video":
            raise InputError(f"{path}: this {self.run.model_name} model takes "
                             f"{MODALITY_TAKES[self.modality]}")
        windows = []
        with VideoFrames(path) as frames:
            for w in self.stream(frames, frames.fps, window, hop, top_k,
                                 os.path.basename(path)):
                windows.append(w)
                if on_window:
                    on_window(w)
            fps = frames.fps
        if not windows:
            raise InputError(f"{path}: no frame could be decoded")
        mean = np.mean([w["probabilities"] for w in windows], axis=0)
        return {"input": path, "kind": "video", "fps": fps, "window": window,
                "hop": hop or window, "windows": windows,
                "aggregate": f"mean of the probabilities of {len(windows)} windows",
                "top_k": _top_k(mean, self.classes, top_k),
                "probabilities": [float(p) for p in mean]}


# --------------------------------------------------------------------------
# Overlay.
# --------------------------------------------------------------------------
def draw_label(bgr: np.ndarray, text: str) -> np.ndarray:
    """Draws ``text`` in white on a black band across the top of the frame (in place)."""
    import cv2
    h, w = bgr.shape[:2]
    band = max(12, int(round(h * 0.08)))
    cv2.rectangle(bgr, (0, 0), (w - 1, band - 1), (0, 0, 0), thickness=-1)
    scale = band / 32.0
    thickness = max(1, int(round(band / 24)))
    cv2.putText(bgr, text, (max(2, band // 4), int(band * 0.75)), cv2.FONT_HERSHEY_SIMPLEX,
                scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return bgr


def overlay_band_height(height: int) -> int:
    """Rows of the band ``draw_label`` covers in a frame ``height`` rows high."""
    return max(12, int(round(height * 0.08)))


def write_overlay(path: str, out: str, label_at: Callable[[float], str],
                  progress: Callable[[int, int], None] | None = None) -> int:
    """Writes ``path`` to ``out`` (mp4v, same size and fps) with ``label_at(seconds)`` drawn on
    every frame; returns the number of frames written."""
    import cv2
    with VideoFrames(path) as frames:
        writer = None
        n = 0
        try:
            for _, t, bgr in frames:
                if writer is None:
                    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
                    writer = cv2.VideoWriter(out, cv2.VideoWriter_fourcc(*"mp4v"), frames.fps,
                                             (bgr.shape[1], bgr.shape[0]))
                    if not writer.isOpened():
                        raise InputError(f"cannot write the overlay video {out}")
                writer.write(draw_label(bgr, label_at(t)))
                n += 1
                if progress:
                    progress(n, frames.claimed)
        finally:
            if writer is not None:
                writer.release()
    return n


def window_label_at(windows: list[dict]) -> Callable[[float], str]:
    """label_at(t) for an overlay: the latest window starting at or before t."""
    starts = [w["start"] for w in windows]

    def label_at(t: float) -> str:
        i = max(0, bisect.bisect_right(starts, t + BOUNDARY_S) - 1)
        best = windows[i]["top_k"][0]
        return f"{best['label']} {best['probability']:.2f}"
    return label_at


# --------------------------------------------------------------------------
# Command line.
# --------------------------------------------------------------------------
def _format(result: dict) -> str:
    """Human-readable lines of one input's prediction."""
    lines = []
    if result.get("kind") == "keypoints":
        lines.append(f"{result['input']}  (keypoints, {result['num_frames']} frames; "
                     f"{result['aggregate']})")
    else:
        sampled = result.get("sampled_frames")
        extra = (f", {result['source_frames']} frames, sampled {len(sampled)}"
                 + (f", {result['short_policy']} (short)"
                    if result.get("short_policy") not in (None, "none") else "")
                 if sampled is not None else "")
        lines.append(f"{result['input']}  ({result.get('kind', 'video')}{extra})")
    width = max(len(t["label"]) for t in result["top_k"])
    for rank, t in enumerate(result["top_k"], 1):
        lines.append(f"  {rank}. {t['label']:<{width}}  {t['probability']:.3f}")
    if result.get("kind") == "keypoints":
        lines.append("  frames: " + _segments(result))
    return "\n".join(lines)


def _segments(result: dict) -> str:
    """Runs of frames with the same most likely class: 'first–last label mean p | ...'."""
    labels, probs = result["frame_labels"], result["frame_probabilities"]
    numbers = result["frame_numbers"]
    parts, start = [], 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or labels[i] != labels[start]:
            c = int(np.argmax(probs[start]))
            mean = float(np.mean([probs[j][c] for j in range(start, i)]))
            parts.append(f"{numbers[start]}–{numbers[i - 1]} {labels[start]} {mean:.2f}")
            start = i
    return " | ".join(parts)


def _window_line(w: dict) -> str:
    best = w["top_k"][0]
    return f"[{w['start']:.2f}–{w['end']:.2f}] {best['label']} {best['probability']:.3f}"


def _parse_size(text: str | None) -> tuple[int, int] | None:
    from pipeline import video
    try:
        return video.parse_size(text, "--frame_size", example="1920x1080")
    except ValueError as e:
        raise InputError(str(e)) from None


def _overlay_path(overlay: str, path: str, several: bool) -> str:
    if not several:
        return overlay
    stem = os.path.splitext(os.path.basename(path.rstrip("/")))[0]
    return os.path.join(overlay, f"{stem}.mp4")


def _error(message: str):
    print(f"error: {message}", file=sys.stderr, flush=True)


def _print_result(result: dict):
    if FLAGS.json:
        print(json.dumps(result), flush=True)
    else:
        print(_format(result), flush=True)


def _stderr_progress(label: str) -> Callable[[int, int], None]:
    state = {"last": time.monotonic()}

    def show(done: int, total: int):
        now = time.monotonic()
        if now - state["last"] >= 2.0:
            state["last"] = now
            of = f"/{total}" if total else ""
            print(f"[predict] {label}: {done}{of} frames", file=sys.stderr, flush=True)
    return show


def _predict_one(predictor: Predictor, path: str, several: bool):
    """Predicts one input as the flags ask; prints its result."""
    if FLAGS.window:
        def on_window(w):
            if FLAGS.json:               # the windows come in the input's object; progress here
                print(f"[predict] {path} {_window_line(w)}", file=sys.stderr, flush=True)
                return
            if w is result_windows[0]:
                print(f"{path}: windows of {FLAGS.window:g}s every "
                      f"{FLAGS.hop or FLAGS.window:g}s", flush=True)
            print(_window_line(w), flush=True)

        result_windows: list[dict] = []
        result = predictor.predict_windows(
            path, FLAGS.window, FLAGS.hop, FLAGS.top_k,
            lambda w: (result_windows.append(w), on_window(w)))
        label_at = window_label_at(result["windows"])
        if FLAGS.json:
            print(json.dumps(result), flush=True)
        else:
            best = result["top_k"][0]
            print(f"  overall ({result['aggregate']}): {best['label']} "
                  f"{best['probability']:.3f}", flush=True)
    else:
        if FLAGS.overlay and input_kind(path) != "video":
            raise InputError(f"{path}: --overlay needs a video file")
        result = predictor.predict(path, FLAGS.top_k)
        best = result["top_k"][0]
        text = f"{best['label']} {best['probability']:.2f}"
        label_at = lambda t: text  # noqa: E731
        _print_result(result)
    if FLAGS.overlay:
        out = _overlay_path(FLAGS.overlay, path, several)
        n = write_overlay(path, out, label_at, _stderr_progress(f"overlay {out}"))
        print(f"[predict] overlay: {out} ({n} frames)", file=sys.stderr, flush=True)


def _camera(predictor: Predictor) -> int:
    if not FLAGS.window:
        raise InputError("--camera needs --window SECONDS (and optionally --hop)")
    with CameraFrames(FLAGS.camera) as frames:
        print(f"[predict] camera {FLAGS.camera}: windows of {FLAGS.window:g}s every "
              f"{FLAGS.hop or FLAGS.window:g}s; Ctrl-C stops", file=sys.stderr, flush=True)
        try:
            for w in predictor.stream(frames, frames.fps, FLAGS.window, FLAGS.hop, FLAGS.top_k,
                                      f"camera{FLAGS.camera}"):
                print(json.dumps(w) if FLAGS.json else _window_line(w), flush=True)
        except KeyboardInterrupt:
            pass
    return 0


def _quiet_libraries():
    """Keeps TensorFlow's, Beam's and OpenCV's start-up chatter out of the output."""
    import cv2
    from absl import logging
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.set_verbosity(logging.ERROR)
    cv2.setLogLevel(2)                  # errors only: our messages say what failed


def main(argv: list[str]) -> int:
    """Predicts every input named in ``argv[1:]``; returns the exit status."""
    inputs = argv[1:]
    if not FLAGS.workdir:
        _error("--workdir is required, e.g. python -m trainers.predict --workdir runs/demo "
               "clip.avi")
        return 2
    if FLAGS.camera is None and not inputs:
        _error("give at least one input (a video, frame folder, image or OpenPose JSON "
               "folder), or --camera N")
        return 2
    if FLAGS.camera is not None and inputs:
        _error("--camera reads from a camera: give no input files with it")
        return 2
    if FLAGS.top_k < 1:
        _error("--top_k must be >= 1")
        return 2
    if FLAGS.window < 0 or FLAGS.hop < 0 or (FLAGS.hop and not FLAGS.window):
        _error("--window and --hop are seconds > 0, and --hop needs --window")
        return 2
    if FLAGS.overlay and FLAGS.camera is not None:
        _error("--overlay writes a copy of a video file; it does not apply to --camera")
        return 2
    _quiet_libraries()
    from trainers import workdir as workdirs
    try:
        frame_size = _parse_size(FLAGS.frame_size)
        predictor = Predictor.from_workdir(FLAGS.workdir, FLAGS.checkpoint,
                                           frame_size=frame_size, video_dir=FLAGS.video_dir)
    except (workdirs.RunError, InputError) as e:
        _error(str(e))
        return 2
    if FLAGS.camera is not None:
        try:
            return _camera(predictor)
        except InputError as e:
            _error(str(e))
            return 2
    failed = 0
    several = len(inputs) > 1
    for i, path in enumerate(inputs, 1):
        if several:
            print(f"[predict] {i}/{len(inputs)} {path}", file=sys.stderr, flush=True)
        try:
            _predict_one(predictor, path, several)
        except InputError as e:
            failed += 1
            _error(str(e))
            if FLAGS.json:
                print(json.dumps({"input": path, "error": str(e)}), flush=True)
    if failed == len(inputs):
        return 2
    return 1 if failed else 0


def parse_flags(argv: list[str]) -> list[str]:
    """absl flags_parser (``trainers.cli.parse``); returns argv[0] plus the inputs."""
    from trainers import cli
    return cli.parse(FLAGS, argv, __name__)


def run_cli(argv: list[str]) -> int:
    """Parses ``argv`` (argv[0] is the program name) and predicts: for scripts and tests."""
    try:
        return main(parse_flags(argv))
    except SystemExit as e:
        return int(e.code or 0)


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=parse_flags)
