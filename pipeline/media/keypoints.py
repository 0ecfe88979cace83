"""Turn one OpenPose item (a video's per-frame JSON files) into keypoint record(s).

    read every JSON ─► detect layout ─► fill frame-number gaps ─► choose people per frame
        ─► subset points / drop confidence ─► normalise by frame size ─► frame labels
        ─► window ─► schema.encode_keypoints

Bad files do not sink a sequence: a file that is unreadable
(``unreadable_file``), not JSON (``malformed_json``, also for non-numeric
values or a person without ``pose_keypoints_2d``), without ``people``
(``people_missing``), with an array whose length is not a known layout or not
the layout of the sequence (``wrong_length``), or with NaN/inf values
(``non_finite``) becomes a missing frame (zeros, mask 0) and one problem dict
for errors.jsonl. Numbers missing between two files (frames 0, 1, 2, 5) are
inserted as missing frames. ``keypoints/num_missing_frames`` counts, per
record, the frames without a usable file (gaps and bad files); frames whose
file lists zero people are observations, not missing frames (their mask is 0).

Layout: 75 values per person is BODY_25, 54 is COCO (x, y, confidence per
point). The sequence's layout is the most common one among its frames with
people (ties: the first seen); frames of another layout count as
``wrong_length``.

People (``max_people`` = P slots per frame, chosen from all points of the
layout; a person whose points all have confidence 0 is ignored):

* ``confidence``: the P people with the highest mean confidence over their
  points with confidence > 0, most confident in slot 0;
* ``largest``: the P people with the largest bounding box of those points;
* ``track``: slots follow people across frames: each slot that has seen
  someone takes the person whose bounding-box centre is nearest to its last
  one (closest pairs first, no distance limit); slots that never saw anyone
  take the remaining people in confidence order. A slot keeps its last centre
  through frames where it is empty.

The mask is 1 where the slot holds a person and the point's confidence is
> 0; everything masked is zero. When the frame size is known (``frame_size``,
or the matching video in ``video_dir``) x is divided by the width and y by
the height and the record also carries ``image/width`` and ``image/height``;
otherwise x, y stay in pixels and those keys are absent.
"""
from __future__ import annotations

import collections
import dataclasses
import functools
import json
import math
import re
from typing import NamedTuple

import cv2
import numpy as np
import orjson

from pipeline.media import files
from pipeline.media.formats import basename, is_video
from pipeline.media.items import FILE_STAGE, Item, MediaError
from pipeline.media.video import local_copy
from tfrecords import schema

BODY_25 = ("Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist",
           "MidHip", "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye",
           "REar", "LEar", "LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel")
COCO = ("Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist",
        "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye", "REar", "LEar")
LAYOUTS = {"BODY_25": BODY_25, "COCO": COCO}
_LAYOUT_BY_LENGTH = {3 * len(names): name for name, names in LAYOUTS.items()}

_HEAD = ("Nose", "REye", "LEye", "REar", "LEar")
_ARMS = ("RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist")
_LEGS = ("RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle")
_FEET = ("LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel")
# Named groups for --keypoints (case-insensitive). Members a layout lacks (MidHip and
# the feet in COCO) are skipped; points always come out in layout order.
GROUPS = {
    "head": _HEAD,                                                 # face points
    "arms": _ARMS,                                                 # shoulders to wrists
    "torso": ("Neck", "RShoulder", "LShoulder", "MidHip", "RHip", "LHip"),
    "legs": _LEGS,                                                 # hips to ankles
    "feet": _FEET,                                                 # BODY_25 only
    "upper_body": _HEAD + ("Neck",) + _ARMS + ("MidHip",),         # everything above the hips
    "lower_body": ("MidHip",) + _LEGS + _FEET,                     # hips down
}

PERSON_POLICIES = ("confidence", "largest", "track")
COORDS = ("xy", "xyc")
MAX_SEQUENCE_FRAMES = 1_000_000   # frame-number gaps are filled up to this length
_KNOWN_POINTS = {n.lower() for names in LAYOUTS.values() for n in names}
_NUMBER_TYPES = {int, float}


@dataclasses.dataclass(frozen=True)
class KeypointSpec:
    """How an OpenPose sequence becomes records (see the module docstring)."""
    person_policy: str = "confidence"          # confidence | largest | track
    max_people: int = 1                        # P person slots per frame
    keypoints: tuple[str, ...] = ()            # point or group names; () = every point
    coords: str = "xyc"                        # xy | xyc (xyc keeps the confidence)
    frame_size: tuple[int, int] | None = None  # (width, height) to normalise x, y by
    video_dir: str | None = None               # videos matching the ids: size and fps
    source_fps: float = 0.0                    # fps when no video gives it; 0 = unknown
    window: int | None = None                  # frames per record; None = whole sequence
    window_stride: int | None = None           # frames between window starts; default window

    def __post_init__(self):
        if self.person_policy not in PERSON_POLICIES:
            raise ValueError(f"person_policy must be one of {PERSON_POLICIES}, "
                             f"got {self.person_policy!r}")
        if isinstance(self.max_people, bool) or not isinstance(self.max_people, int) \
                or self.max_people < 1:
            raise ValueError(f"max_people must be an integer >= 1, got {self.max_people!r}")
        names = self.keypoints
        if isinstance(names, str):
            names = tuple(n.strip() for n in names.split(",") if n.strip())
        object.__setattr__(self, "keypoints", tuple(names))
        unknown = [n for n in self.keypoints
                   if not isinstance(n, str) or n.lower() not in _KNOWN_POINTS | set(GROUPS)]
        if unknown:
            raise ValueError(f"unknown keypoints {unknown}: use point names of BODY_25/COCO "
                             f"({', '.join(BODY_25)}) or groups ({', '.join(GROUPS)})")
        if self.coords not in COORDS:
            raise ValueError(f"coords must be one of {COORDS}, got {self.coords!r}")
        if self.frame_size is not None:
            size = tuple(self.frame_size)
            if len(size) != 2 or not all(isinstance(s, int) and not isinstance(s, bool)
                                         and s > 0 for s in size):
                raise ValueError(f"frame_size must be (width, height) positive integers, "
                                 f"got {self.frame_size!r}")
            object.__setattr__(self, "frame_size", size)
        if self.video_dir is not None and not self.video_dir:
            raise ValueError("video_dir must be a directory or None, got ''")
        if not (isinstance(self.source_fps, (int, float)) and math.isfinite(self.source_fps)
                and self.source_fps >= 0):
            raise ValueError(f"source_fps must be finite and >= 0 (0 = unknown), "
                             f"got {self.source_fps!r}")
        for name in ("window", "window_stride"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 1):
                raise ValueError(f"{name} must be an integer >= 1 or None, got {value!r}")
        if self.window_stride is not None and self.window is None:
            raise ValueError("window_stride needs window")


class KeypointRecord(NamedTuple):
    """One serialised keypoint record."""
    video_id: str
    label: int
    label_text: str
    num_frames: int
    record: bytes


class KeypointSequence(NamedTuple):
    """A whole video's keypoints after people selection, subsetting and normalisation."""
    layout: str
    point_names: tuple[str, ...]
    values: np.ndarray             # float32 [T, P, V, C]
    mask: np.ndarray               # float32 [T, P, V]
    frame_numbers: list[int]       # [T], consecutive
    missing: np.ndarray            # bool [T]: no usable file for the frame
    fps: float                     # 0 when unknown
    frame_size: tuple[int, int] | None
    frame_labels: list[int] | None


class FrameError(Exception):
    """One unusable JSON file; ``reason`` is its errors.jsonl code."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def read_frame(path: str) -> np.ndarray:
    """The ``pose_keypoints_2d`` arrays of one OpenPose JSON file, one row per person
    (float64 ``[people, values]``); raises FrameError, whatever goes wrong with the file:
    one bad file is one missing frame, never a lost sequence."""
    try:
        return _read_frame(path)
    except FrameError:
        raise
    except Exception as e:  # noqa: BLE001 - a file nobody foresaw is still one bad frame
        raise FrameError("unexpected_error", f"{type(e).__name__}: {e}") from None


def _parse_json(raw: bytes) -> tuple[object, bool]:
    """The JSON value of ``raw``, and whether every number in it is finite for sure.
    orjson (several times faster) reads every well-formed UTF-8 file, and refuses any
    number that is not finite as a double (NaN, Infinity, 1e400); whatever it refuses (a
    byte-order mark, those numbers, or a real error) is read again by the standard
    library, which accepts the first two and names the error of the last."""
    try:
        return orjson.loads(raw), True
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(raw.decode("utf-8-sig")), False
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FrameError("malformed_json", str(e)) from None
    except RecursionError:
        raise FrameError("malformed_json", "nested too deeply to read") from None
    except ValueError as e:        # e.g. an integer longer than Python converts
        raise FrameError("malformed_json", str(e)[:200]) from None


def _read_frame(path: str) -> np.ndarray:
    try:
        raw = files.read_bytes(path)
    except Exception as e:  # noqa: BLE001 - any I/O failure makes the frame missing
        raise FrameError("unreadable_file", f"{type(e).__name__}: {e}") from None
    data, finite = _parse_json(raw)
    if not isinstance(data, dict):
        raise FrameError("malformed_json", f"top level is a {type(data).__name__}, not an object")
    if not isinstance(data.get("people"), list):
        raise FrameError("people_missing", "no 'people' list")
    rows = []
    for i, person in enumerate(data["people"]):
        points = person.get("pose_keypoints_2d") if isinstance(person, dict) else None
        if not isinstance(points, list):
            raise FrameError("malformed_json", f"person {i} has no pose_keypoints_2d list")
        if len(points) not in _LAYOUT_BY_LENGTH:
            raise FrameError("wrong_length", f"person {i} has {len(points)} values; expected "
                              f"{' or '.join(map(str, _LAYOUT_BY_LENGTH))}")
        if not set(map(type, points)) <= _NUMBER_TYPES:      # no str, bool, list, None
            raise FrameError("malformed_json", f"person {i} has non-numeric values")
        rows.append(points)
    if len({len(points) for points in rows}) > 1:
        raise FrameError("wrong_length", "people of different layouts in one frame")
    if not rows:
        return np.zeros((0, 0))
    try:
        values = np.array(rows, dtype=np.float64)
    except OverflowError:
        i = next(i for i, points in enumerate(rows) if not _fits_float(points))
        raise FrameError("non_finite", f"person {i} has a number too large for a "
                                       "float") from None
    if not finite:
        finite_rows = np.isfinite(values).all(axis=1)
        if not finite_rows.all():
            raise FrameError("non_finite", f"person {int(np.argmin(finite_rows))} has NaN or "
                                           "infinite values")
    return values


def _fits_float(points: list) -> bool:
    try:
        np.array(points, dtype=np.float64)
    except OverflowError:
        return False
    return True


def resolve_points(keypoints: tuple[str, ...], layout: str) -> tuple[int, ...]:
    """Indices (layout order) of the named points/groups; () = all. Raises MediaError."""
    names = LAYOUTS[layout]
    index = {n.lower(): i for i, n in enumerate(names)}
    if not keypoints:
        return tuple(range(len(names)))
    chosen = set()
    for entry in keypoints:
        key = entry.lower()
        if key in GROUPS:
            chosen.update(index[n.lower()] for n in GROUPS[key] if n.lower() in index)
        elif key in index:
            chosen.add(index[key])
        else:
            raise MediaError("keypoint_not_in_layout",
                                   f"{entry!r} is not a point of {layout}")
    if not chosen:
        raise MediaError("keypoint_not_in_layout",
                               f"{', '.join(keypoints)} select no point of {layout}")
    return tuple(sorted(chosen))


class _People(NamedTuple):
    """The people of a whole sequence in one array: ``points`` ``[N, V, 3]`` (unseen points
    zeroed, each person with a seen point), ``frame`` the frame position of each (ascending),
    ``index`` its position among its frame's people, ``start``/``count`` per frame."""
    points: np.ndarray
    frame: np.ndarray
    index: np.ndarray
    start: np.ndarray
    count: np.ndarray


def _people(points: np.ndarray, frame: np.ndarray, num_frames: int) -> _People:
    count = np.bincount(frame, minlength=num_frames)
    start = np.cumsum(count) - count
    return _People(points, frame, np.arange(len(frame)) - start[frame], start, count)


def _scores(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per person of ``[N, V, 3]`` (unseen points zeroed, each with a seen point): the mean
    confidence of the seen points, the area of their bounding box and its centre."""
    seen = points[:, :, 2] > 0
    confidence = np.where(seen, points[:, :, 2], 0.0).sum(axis=1) / seen.sum(axis=1)
    xy = points[:, :, :2]
    lo = np.where(seen[..., None], xy, np.inf).min(axis=1)
    hi = np.where(seen[..., None], xy, -np.inf).max(axis=1)
    return confidence, (hi - lo).prod(axis=1), (lo + hi) / 2


def _select(people: _People, policy: str,
            max_people: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frame, slot, person) of every filled slot: person indexes ``people.points``."""
    confidence, area, centres = _scores(people.points)
    if policy != "track":
        score = confidence if policy == "confidence" else area
        # by frame, then the score (highest first), then the person's order in its frame
        order = np.lexsort((people.index, -score, people.frame))
        rank = np.arange(len(order)) - people.start[people.frame[order]]
        keep = rank < max_people
        return people.frame[order][keep], rank[keep], order[keep]
    filled: list[tuple[int, int, int]] = []
    last: list[np.ndarray | None] = [None] * max_people
    for t in np.flatnonzero(people.count):
        first, n = int(people.start[t]), int(people.count[t])
        conf, centre = confidence[first:first + n], centres[first:first + n]
        slots: list[int | None] = [None] * max_people
        pairs = sorted((float(np.linalg.norm(last[s] - centre[i])), s, i)
                       for s in range(max_people) if last[s] is not None for i in range(n))
        used = set()
        for _, s, i in pairs:
            if slots[s] is None and i not in used:
                slots[s] = i
                used.add(i)
        fresh = [s for s in range(max_people) if last[s] is None]
        for i in sorted(range(n), key=lambda i: -conf[i]):
            if not fresh:
                break
            if i not in used:
                slots[fresh.pop(0)] = i
        for s, i in enumerate(slots):
            if i is not None:
                last[s] = centre[i]
                filled.append((int(t), s, first + i))
    frame, slot, person = np.array(filled, np.int64).reshape(-1, 3).T
    return frame, slot, person


def select_people(frames: list[np.ndarray | None], policy: str,
                  max_people: int) -> list[list[int | None]]:
    """Per frame, the person index in each of ``max_people`` slots (None = empty).

    ``frames[t]`` is ``[N, V, 3]`` with unseen points zeroed and people without any
    seen point removed, or None for a missing frame.
    """
    present = [(t, p) for t, p in enumerate(frames) if p is not None and len(p)]
    chosen: list[list[int | None]] = [[None] * max_people for _ in frames]
    if not present:
        return chosen
    people = _people(np.concatenate([p for _, p in present]),
                     np.repeat([t for t, _ in present], [len(p) for _, p in present]),
                     len(frames))
    for t, s, i in zip(*_select(people, policy, max_people)):
        chosen[t][s] = int(people.index[i])
    return chosen


def normalised_name(name: str) -> str:
    """Lowercase, runs of spaces/underscores/hyphens -> '_' ("Kick 10" -> "kick_10")."""
    return re.sub(r"[\s_\-]+", "_", name.strip().lower())


@functools.lru_cache(maxsize=8)
def _videos_in(video_dir: str) -> dict[str, tuple[str, ...]]:
    """normalised stem -> video paths directly in video_dir (listed once per worker)."""
    found: dict[str, list[str]] = {}
    for path in files.match(files.join(video_dir, "*")):
        name = basename(path)
        if is_video(name):
            found.setdefault(normalised_name(name.rpartition(".")[0]), []).append(path)
    return {k: tuple(sorted(v)) for k, v in found.items()}


def find_video(video_dir: str, video_id: str) -> str:
    """The one video in ``video_dir`` whose normalised stem equals the normalised id."""
    matches = _videos_in(video_dir).get(normalised_name(video_id), ())
    if not matches:
        raise MediaError("video_not_found",
                               f"no video named like {video_id!r} in {video_dir}")
    if len(matches) > 1:
        raise MediaError("ambiguous_video",
                               f"several videos match {video_id!r}: {', '.join(matches)}")
    return matches[0]


def video_facts(path: str) -> tuple[int, int, float]:
    """(width, height, fps) of a video read with OpenCV (remote files copied first)."""
    with local_copy(path) as local:
        cap = cv2.VideoCapture(local)
        try:
            width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
            height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
            fps = float(cap.get(cv2.CAP_PROP_FPS))
        finally:
            cap.release()
    if width <= 0 or height <= 0:
        raise MediaError("cannot_open", f"OpenCV could not read the size of {path}")
    return width, height, fps if math.isfinite(fps) and fps > 0 else 0.0


def frame_labels_for(frame_numbers: list[int], segments: list[list], fps: float) -> list[int]:
    """Class of each frame: the first segment with start_s <= f/fps < end_s, else 0."""
    labels = []
    for f in frame_numbers:
        t = f / fps
        labels.append(next((int(lab) for start, end, lab in segments if start <= t < end), 0))
    return labels


def _problem(item: Item, path: str, reason: str, detail: str) -> dict:
    return {"path": path, "video_id": item.video_id, "split": item.split,
            "stage": FILE_STAGE, "reason": reason, "detail": detail}


def read_sequence(item: Item,
                  spec: KeypointSpec) -> tuple[KeypointSequence, list[dict]]:
    """Reads, selects and normalises one item's keypoints; returns it and per-file problems.

    Raises MediaError: ``no_valid_frames`` (no usable file), ``no_people`` (nobody in
    any frame, so no layout), ``keypoint_not_in_layout``, ``video_not_found``,
    ``ambiguous_video``, ``cannot_open``, ``fps_unknown`` (segments without fps),
    ``bad_frame_numbers``, ``too_many_frames``.
    """
    files = list(item.files)
    numbers = list(item.extra.get("frame_numbers") or range(len(files)))
    if not files or len(numbers) != len(files) or any(
            b <= a for a, b in zip(numbers, numbers[1:])) or numbers[0] < 0:
        raise MediaError("bad_frame_numbers", f"{len(files)} files with frame numbers "
                               "that are not increasing and >= 0, one per file")
    first, total = numbers[0], numbers[-1] - numbers[0] + 1
    if total > MAX_SEQUENCE_FRAMES:
        raise MediaError("too_many_frames", f"frames {first}..{numbers[-1]} exceed "
                               f"{MAX_SEQUENCE_FRAMES}")

    problems, raw = [], {}
    for number, path in zip(numbers, files):
        try:
            raw[number] = (path, read_frame(path))
        except FrameError as e:
            problems.append(_problem(item, path, e.reason, e.detail))
    if not raw:
        reasons = collections.Counter(p["reason"] for p in problems)
        raise MediaError("no_valid_frames", f"none of the {len(files)} files is usable: "
                               + ", ".join(f"{n} {r}" for r, n in sorted(reasons.items())))
    lengths = collections.Counter(a.shape[1] for _, a in raw.values() if len(a))
    if not lengths:
        raise MediaError("no_people", f"no person in any of the {len(raw)} usable files, "
                               "so the keypoint layout is unknown")
    length = lengths.most_common(1)[0][0]
    layout = _LAYOUT_BY_LENGTH[length]
    num_points = length // 3

    present = np.zeros(total, bool)
    rows, positions = [], []
    for number, (path, arrays) in raw.items():
        if len(arrays) and arrays.shape[1] != length:
            problems.append(_problem(item, path, "wrong_length",
                                     f"{arrays.shape[1]} values per person in a {layout} "
                                     f"sequence ({length})"))
            continue
        present[number - first] = True
        if len(arrays):
            rows.append(arrays)
            positions.append(number - first)
    points = np.concatenate(rows).reshape(-1, num_points, 3)      # rows: the layout's length
    frame_of = np.repeat(positions, [len(a) for a in rows])
    unseen = points[:, :, 2] <= 0
    points[unseen] = 0.0
    anyone = ~unseen.all(axis=1)
    if not anyone.any():
        raise MediaError("no_people", f"no point with confidence > 0 in any of the "
                               f"{len(raw)} usable files")
    people = _people(points[anyone], frame_of[anyone], total)

    chosen = resolve_points(spec.keypoints, layout)
    frame, slot, person = _select(people, spec.person_policy, spec.max_people)
    values = np.zeros((total, spec.max_people, num_points, 3), np.float64)
    values[frame, slot] = people.points[person]
    values = values[:, :, chosen, :]
    mask = (values[..., 2] > 0).astype(np.float32)

    size, fps = spec.frame_size, spec.source_fps
    if spec.video_dir:
        width, height, video_fps = video_facts(find_video(spec.video_dir, item.video_id))
        size = size or (width, height)
        fps = video_fps or fps
    if size:
        values[..., 0] /= size[0]
        values[..., 1] /= size[1]
    if spec.coords == "xy":
        values = values[..., :2]

    frame_numbers = list(range(first, first + total))
    frame_labels = None
    if "segments" in item.extra:
        if fps <= 0:
            raise MediaError("fps_unknown", "per-frame labels need the fps: give "
                                   "source_fps or a video_dir with the videos")
        frame_labels = frame_labels_for(frame_numbers, item.extra["segments"], fps)
    missing = ~present
    return KeypointSequence(layout, tuple(LAYOUTS[layout][p] for p in chosen),
                            values.astype(np.float32), mask, frame_numbers, missing,
                            float(fps), size, frame_labels), problems


def window_starts(num_frames: int, window: int | None, stride: int | None) -> list[int]:
    """Window starts 0, S, 2S, ... with start + W <= T; [0] without a window or when T < W."""
    if window is None or num_frames <= window:
        return [0]
    return list(range(0, num_frames - window + 1, stride or window))


def make_keypoint_records(item: Item,
                          spec: KeypointSpec) -> tuple[list[KeypointRecord], list[dict]]:
    """One record per video (or per window); returns them and the per-file problems.

    Window records are named ``<video_id>#<start>`` (start = 0-based frame position
    in the gap-filled sequence; a sequence shorter than the window gives one record
    ``<video_id>#0`` of all its frames) and carry the video's label; frames after the
    last full window are not written. Raises ``MediaError`` (see read_sequence).
    """
    seq, problems = read_sequence(item, spec)
    total = len(seq.frame_numbers)
    context = {}
    if seq.frame_size:
        context = {schema.IMAGE_WIDTH: seq.frame_size[0], schema.IMAGE_HEIGHT: seq.frame_size[1]}
    records = []
    for start in window_starts(total, spec.window, spec.window_stride):
        end = total if spec.window is None else min(total, start + spec.window)
        numbers = seq.frame_numbers[start:end]
        record = schema.encode_keypoints(
            seq.values[start:end], seq.mask[start:end], label=item.label,
            label_text=item.label_text,
            video_id=item.video_id if spec.window is None else f"{item.video_id}#{start}",
            layout=seq.layout, point_names=seq.point_names, fps=seq.fps,
            timestamps_us=[round(f / seq.fps * 1e6) if seq.fps > 0 else 0 for f in numbers],
            source_indices=numbers,
            frame_labels=None if seq.frame_labels is None else seq.frame_labels[start:end],
            extra_context={**context, schema.KEYPOINTS_NUM_MISSING_FRAMES:
                           int(seq.missing[start:end].sum())})
        records.append(KeypointRecord(item.video_id if spec.window is None
                                      else f"{item.video_id}#{start}", item.label,
                                      item.label_text, end - start, record))
    return records, problems
