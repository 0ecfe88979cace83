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
                 (pipeline.media.records.make_item_records, with the settings in the
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
windows: the label of the latest window that covers the frame). Windows and overlay
frames are timed as the build times its clips: by the decoder's presentation times
(``pipeline.media.video.VideoReader``).

Exit status: 0 when every input was predicted, 1 when some failed, 2 when all
failed or the command line or workdir is wrong.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
import weakref
from typing import Any, Callable, Iterable

from pipeline import cli

cli.quiet_unless_verbose(__name__)    # before TensorFlow and Beam load (unless --verbose)
cli.stop_while_starting(__name__, "predict")    # one line, not a traceback

import numpy as np
from absl import app, flags

from pipeline.media import records, streams
from pipeline.media.encode import output_size, parse_size, process_frame
from pipeline.media.items import Clip, Item, MediaError
from pipeline.media.sampling import plan_positions
from pipeline.media.video import VideoReader
from pipeline.progress import Progress
from trainers import data, inputs, overlay
from trainers.inputs import KIND_MODALITY, KIND_WORDS, MODALITY_TAKES, InputError

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
                    "and confidence on every frame to this .mp4 (original size and fps; mp4v, "
                    "or H.264 where OpenCV can write it) or .webm (VP8, plays in browsers). "
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
        self.settings = records.settings_from_info(run.info, frame_size=frame_size,
                                                   video_dir=video_dir)
        # The reader pipelines are built once, over one record file that each call rewrites
        # (building a tf.data pipeline costs more than reading a clip through it).
        self._tmp = tempfile.mkdtemp(prefix="actionflow-predict-")
        self.close = weakref.finalize(self, shutil.rmtree, self._tmp, True)  # close(): remove it
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
        kind = inputs.input_kind(path)
        want = self.modality
        if KIND_MODALITY[kind] != want:
            raise InputError(f"{path} is {KIND_WORDS[kind]}; this {self.run.model_name} model "
                             f"takes {MODALITY_TAKES[want]}")
        item = inputs.item_for(path, kind)
        try:
            made, _ = records.make_item_records(item, self.settings)
        except MediaError as e:
            if e.reason == "video_not_found":
                raise InputError(
                    f"{path}: this model was trained on coordinates divided by each video's "
                    f"frame size, and {e.detail}: give --frame_size WxH or --video_dir") from None
            raise InputError(inputs.media_message(path, e)) from None
        except Exception as e:  # noqa: BLE001 - any decoder failure is about this input
            raise InputError(f"{path}: cannot read it: {type(e).__name__}: {e}") from None
        return kind, made[0][-1]

    # ---------------------------------------------------------------- reading
    def _video_dataset(self, shard: str, batch_size: int):
        """The reader's evaluation pipeline over ``shard`` with the run's data settings."""
        from tfrecords import reader
        make = reader.make_image_dataset if self.modality == "image" else reader.make_dataset
        return make([shard], training=False, batch_size=batch_size, with_metadata=True,
                    image_format=self.run.info.get("image_format") or "jpeg",
                    classes=self.classes,
                    **data.reader_kwargs(self.run.config.data, self.modality, training=False))

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
        return self._predict_records(records, batch_size)[0]

    def _predict_records(self, records: list[bytes], batch_size: int = 8,
                         keep_views: bool = False) -> tuple[np.ndarray, list | None]:
        """(probabilities, views): with ``keep_views``, per record the model inputs of its
        views as read, [(uint8 [T, H, W, 3], record frame positions [T])] (images: T = 1)."""
        def consume(ds):
            sums = np.zeros((len(records), len(self.classes)))
            counts = np.zeros(len(records))
            views = [[] for _ in records] if keep_views else None
            for clips, _, meta in ds:
                rows = meta["video_index"].numpy()
                np.add.at(sums, rows, self._model_outputs(clips))
                np.add.at(counts, rows, 1)
                if keep_views:
                    arrays = clips.numpy()
                    positions = meta["frame_indices"].numpy()
                    if arrays.ndim == 4:                            # images: one frame
                        arrays, positions = arrays[:, None], positions.reshape(-1, 1)
                    for j, row in enumerate(rows):
                        views[row].append((arrays[j], positions[j]))
            return sums / counts[:, None], views
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
                [shard], training=False, batch_size=32, num_people=people, num_points=points,
                num_coords=coords, with_metadata=True,
                **data.reader_kwargs(d, "keypoints", training=False))

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
        return self._predict(path, top_k)[0]

    def predict_seen(self, path: str, top_k: int = 5) -> tuple[dict, dict | None]:
        """``predict(path)`` and what the model read (the upload page shows it): for video
        and image inputs a dict with ``views`` (the model's uint8 input of each view, clips
        x crops in the reader's order: [T, H, W, 3] each), ``positions`` (each view's frames
        as positions in the record), ``source_indices`` and ``times`` (seconds) of the
        record's frames, ``fps``, ``source_frames`` and ``duration`` (seconds, None when
        the rate is unknown); None for keypoint inputs."""
        return self._predict(path, top_k, keep_views=True)

    def _predict(self, path: str, top_k: int, keep_views: bool = False):
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
            return out, None
        from tfrecords import schema
        probabilities, views = self._predict_records([record], keep_views=keep_views)
        probs = probabilities[0]
        parsed = schema.parse_clip(record)
        out.update(top_k=_top_k(probs, self.classes, top_k),
                   probabilities=[float(p) for p in probs],
                   source_frames=int(parsed["source_num_frames"]),
                   sampled_frames=[int(i) for i in parsed["source_indices"].numpy()],
                   short_policy=parsed["short_policy"].numpy().decode())
        if not keep_views:
            return out, None
        fps = float(parsed["fps"])
        seen = {"views": [v for v, _ in views[0]],
                "positions": [[int(i) for i in p] for _, p in views[0]],
                "source_indices": out["sampled_frames"],
                "times": [t / 1e6 for t in parsed["timestamps_us"].numpy().tolist()],
                "fps": fps, "source_frames": out["source_frames"],
                "duration": out["source_frames"] / fps if fps > 0 else None}
        return out, seen

    def window_record(self, win: streams.Window, fps: float, name: str = "window") -> bytes:
        """One window's clip record: the build's sampling plan over the window's frames."""
        s = self.settings
        positions, policy = plan_positions(s.sampling, len(win.encoded), fps)
        out_h, out_w = output_size(s.frame, *win.source_hw)
        clip = Clip(frames=[win.encoded[p] for p in positions],
                    timestamps_us=[int(round(win.times[p] * 1e6)) for p in positions],
                    source_indices=[win.indices[p] for p in positions], fps=fps,
                    source_num_frames=len(win.encoded), claimed_num_frames=len(win.encoded),
                    height=out_h, width=out_w, source_height=int(win.source_hw[0]),
                    source_width=int(win.source_hw[1]), short_policy=policy)
        item = Item(path=name, video_id=f"{name}@{win.start:.3f}", split="predict",
                    label=-1, label_text="", kind="video")
        return records.clip_record(item, clip, s.frame)

    def stream(self, frames: Iterable[tuple[int, float, np.ndarray]], fps: float, window: float,
               hop: float = 0.0, top_k: int = 5, name: str = "stream") -> Iterable[dict]:
        """Predictions of sliding windows over a frame stream, one dict per window as it ends.

        ``frames`` yields (index, seconds, BGR frame): ``VideoReader.frames()``,
        ``streams.CameraFrames`` or any iterator. Each dict: start, end (seconds),
        first_frame, last_frame, top_k, probabilities.
        """
        if self.modality != "video":
            raise InputError(f"sliding windows need a video model; this one takes "
                             f"{MODALITY_TAKES[self.modality]}")
        process = lambda bgr: process_frame(bgr, self.settings.frame)  # noqa: E731
        for win in streams.sliding_windows(frames, window, hop or window, process):
            try:
                record = self.window_record(win, fps, name)
            except MediaError as e:
                raise InputError(inputs.media_message(f"{name} [{win.start:.2f}–{win.end:.2f}]",
                                                      e)) from None
            probs = self.predict_records([record])[0]
            yield {"start": round(win.start, 6), "end": round(win.end, 6),
                   "first_frame": win.indices[0], "last_frame": win.indices[-1],
                   "top_k": _top_k(probs, self.classes, top_k),
                   "probabilities": [float(p) for p in probs]}

    def predict_windows(self, path: str, window: float, hop: float = 0.0, top_k: int = 5,
                        on_window: Callable[[dict], None] | None = None) -> dict:
        """Sliding-window predictions over a video file (``on_window`` sees each one as it
        completes); ``top_k``/``probabilities`` are the mean over the windows."""
        kind = inputs.input_kind(path)
        if kind != "video":
            raise InputError(f"{path} is {KIND_WORDS[kind]}; --window needs a video file")
        if self.modality != "video":
            raise InputError(f"{path}: this {self.run.model_name} model takes "
                             f"{MODALITY_TAKES[self.modality]}")
        windows = []
        try:
            with VideoReader(path) as reader:
                fps = reader.rate
                for w in self.stream(reader.frames(), fps, window, hop, top_k,
                                     os.path.basename(path)):
                    windows.append(w)
                    if on_window:
                        on_window(w)
        except MediaError as e:
            raise InputError(inputs.media_message(path, e)) from None
        if not windows:
            raise InputError(f"{path}: no frame could be decoded")
        mean = np.mean([w["probabilities"] for w in windows], axis=0)
        return {"input": path, "kind": "video", "fps": fps, "window": window,
                "hop": hop or window, "windows": windows,
                "aggregate": f"mean of the probabilities of {len(windows)} windows",
                "top_k": _top_k(mean, self.classes, top_k),
                "probabilities": [float(p) for p in mean]}


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


def _overlay_path(target: str, path: str, several: bool) -> str:
    if not several:
        return target
    stem = os.path.splitext(os.path.basename(path.rstrip("/")))[0]
    return os.path.join(target, f"{stem}.mp4")


def _error(message: str):
    print(f"error: {message}", file=sys.stderr, flush=True)


def _print_result(result: dict):
    if FLAGS.json:
        print(json.dumps(result), flush=True)
    else:
        print(_format(result), flush=True)


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
        label_at = overlay.window_label_at(result["windows"])
        if FLAGS.json:
            print(json.dumps(result), flush=True)
        else:
            best = result["top_k"][0]
            print(f"  overall ({result['aggregate']}): {best['label']} "
                  f"{best['probability']:.3f}", flush=True)
    else:
        if FLAGS.overlay and inputs.input_kind(path) != "video":
            raise InputError(f"{path}: --overlay needs a video file")
        result = predictor.predict(path, FLAGS.top_k)
        best = result["top_k"][0]
        text = f"{best['label']} {best['probability']:.2f}"
        label_at = lambda t: text  # noqa: E731
        _print_result(result)
    if FLAGS.overlay:
        out = _overlay_path(FLAGS.overlay, path, several)
        try:
            with Progress(None, "overlay", unit="frames") as bar:
                n = overlay.write_overlay(path, out, label_at, bar.update)
        except MediaError as e:
            raise InputError(inputs.media_message(path, e)) from None
        except OSError as e:
            raise InputError(str(e)) from None
        print(f"[predict] overlay: {out} ({n} frames)", file=sys.stderr, flush=True)


def _camera(predictor: Predictor) -> int:
    if not FLAGS.window:
        raise InputError("--camera needs --window SECONDS (and optionally --hop)")
    try:
        camera = streams.CameraFrames(FLAGS.camera)
    except MediaError as e:
        raise InputError(e.detail) from None
    windows = 0
    with camera as frames, cli.StopSignals():
        print(f"[predict] camera {FLAGS.camera}: windows of {FLAGS.window:g}s every "
              f"{FLAGS.hop or FLAGS.window:g}s; Ctrl-C stops", file=sys.stderr, flush=True)
        try:
            for w in predictor.stream(frames, frames.fps, FLAGS.window, FLAGS.hop, FLAGS.top_k,
                                      f"camera{FLAGS.camera}"):
                print(json.dumps(w) if FLAGS.json else _window_line(w), flush=True)
                windows += 1
        except cli.Stopped as stop:
            print(cli.stopped_line("predict", stop, f"camera {FLAGS.camera} gave {windows} "
                                   "window(s), all printed", None), file=sys.stderr, flush=True)
            return stop.exit_code
    return 0


def _flag_mistake(paths: list[str]) -> str | None:
    """What is wrong with the command line, in one line, or None."""
    if not FLAGS.workdir:
        return ("--workdir is required, e.g. python -m trainers.predict --workdir runs/demo "
                "clip.avi")
    if FLAGS.camera is None and not paths:
        return ("give at least one input (a video, frame folder, image or OpenPose JSON "
                "folder), or --camera N")
    if FLAGS.camera is not None and paths:
        return "--camera reads from a camera: give no input files with it"
    if FLAGS.top_k < 1:
        return "--top_k must be >= 1"
    if FLAGS.window < 0 or FLAGS.hop < 0 or (FLAGS.hop and not FLAGS.window):
        return "--window and --hop are seconds > 0, and --hop needs --window"
    if FLAGS.overlay and FLAGS.camera is not None:
        return "--overlay writes a copy of a video file; it does not apply to --camera"
    return None


def _load_predictor() -> Predictor:
    """The predictor of --workdir; RunError or InputError for a bad workdir or flag."""
    try:
        frame_size = parse_size(FLAGS.frame_size, "--frame_size", example="1920x1080")
    except ValueError as e:
        raise InputError(str(e)) from None
    return Predictor.from_workdir(FLAGS.workdir, FLAGS.checkpoint, frame_size=frame_size,
                                  video_dir=FLAGS.video_dir)


def _predict_all(predictor: Predictor, paths: list[str]) -> int:
    """Predicts every input in turn (a folder of videos: each of its videos); the exit
    status (1: some failed, 2: all failed; 130/143: stopped by a signal)."""
    paths = inputs.expand(paths)
    failed = 0
    several = len(paths) > 1
    with cli.StopSignals() as signals, \
            Progress(len(paths), "predict", unit="inputs", enabled=several) as bar:
        for i, path in enumerate(paths, 1):
            try:
                _predict_one(predictor, path, several)
            except InputError as e:
                failed += 1
                _error(str(e))
                if FLAGS.json:
                    print(json.dumps({"input": path, "error": str(e)}), flush=True)
            except cli.Stopped as stop:
                return _stopped(stop, i - 1, paths[i - 1:])
            bar.update(i)
        signals.raise_stop = False
    if failed == len(paths):
        return 2
    return 1 if failed else 0


def _stopped(stop: cli.Stopped, done: int, left: list[str]) -> int:
    """One line for a stop between (or during) inputs; the exit status."""
    rest = [FLAGS[name].serialize() for name in FLAGS if FLAGS[name].present] + left
    print(cli.stopped_line("predict", stop, f"{done} input(s) were predicted and printed",
                           cli.command_line("trainers.predict", rest)), file=sys.stderr,
          flush=True)
    return stop.exit_code


def main(argv: list[str]) -> int:
    """Predicts every input named in ``argv[1:]``; returns the exit status."""
    cli.started()
    paths = argv[1:]
    mistake = _flag_mistake(paths)
    if mistake:
        _error(mistake)
        return 2
    from trainers import workdir as workdirs
    try:
        predictor = _load_predictor()
        return _camera(predictor) if FLAGS.camera is not None else _predict_all(predictor,
                                                                                  paths)
    except (workdirs.RunError, InputError) as e:
        _error(str(e))
        return 2


def parse_flags(argv: list[str]) -> list[str]:
    """absl flags_parser (``pipeline.cli.parse``); returns argv[0] plus the inputs."""
    return cli.parse(FLAGS, argv, __name__)


def run_cli(argv: list[str]) -> int:
    """Parses ``argv`` (argv[0] is the program name) and predicts: for scripts and tests."""
    try:
        return main(parse_flags(argv))
    except SystemExit as e:
        return int(e.code or 0)


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=parse_flags)
