"""One input's records, made the same way by a build worker and by ``trainers.predict``.

``make_item_records(item, settings)`` decodes an item (a video, time segments of a video,
a frame folder, an image or an OpenPose sequence) with the build's settings and
serialises it with
``tfrecords.schema``. ``settings_from_info`` reads those settings back from a build's
``dataset_info.json``, so a raw file at prediction time goes exactly the way its
training data went.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from pipeline.media import frames, keypoints, video
from pipeline.media.encode import FrameSpec
from pipeline.media.items import FILE_STAGE, Clip, Item, MediaError
from pipeline.media.sampling import SamplingSpec
from tfrecords import schema


@dataclasses.dataclass(frozen=True)
class BuildSettings:
    """Everything a worker needs to turn an item into records."""
    sampling: SamplingSpec
    frame: FrameSpec
    truncation_tolerance: float = 0.05
    source_fps: float = 0.0           # frame folders: their frame rate (0 = unknown)
    keypoints: Any = None             # keypoints.KeypointSpec for keypoint items


def make_item_records(item: Item, s: BuildSettings):
    """One item's records as the build writes them: ``([(video_id, label, label_text,
    num_frames, record)], [file problem dicts])``; raises ``MediaError`` for an unusable
    item."""
    if item.kind == "keypoints":
        records, problems = keypoints.make_keypoint_records(item, s.keypoints)
        return [(r.video_id, r.label, r.label_text, r.num_frames, r.record)
                for r in records], problems
    if item.kind == "video" and item.extra.get("segments"):
        return segment_records(item, s)
    if item.kind == "video":
        clip = video.decode_video(item.path, s.sampling, s.frame, s.truncation_tolerance)
    elif item.kind == "frames":
        clip = frames.decode_frame_folder(item, s.sampling, s.frame, s.source_fps)
    elif item.kind == "image":
        clip = frames.decode_image(item.path, s.frame)
    else:
        raise ValueError(f"unknown item kind {item.kind!r}")
    record = clip_record(item, clip, s.frame)
    return [(item.video_id, item.label, item.label_text, len(clip.frames), record)], []


def segment_records(item: Item, s: BuildSettings):
    """The records of a video's time segments (``item.extra['segments']``), cut in one
    decode pass: one record per segment, each with its own label and id. A segment that
    gives no record (outside the video, too short with ``--short skip``, truncated) is a
    problem of stage ``file`` beside the records of the others; when none gives a record
    the item fails as a whole."""
    segments = item.extra["segments"]
    results = video.decode_segments(item.path, [(g["start_s"], g["end_s"]) for g in segments],
                                    s.sampling, s.frame, s.truncation_tolerance)
    made, problems = [], []
    for g, result in zip(segments, results):
        if isinstance(result, MediaError):
            problems.append({"path": item.path, "video_id": g["video_id"], "split": item.split,
                             "stage": FILE_STAGE, "reason": result.reason,
                             "detail": result.detail})
            continue
        record = clip_record(item, result, s.frame, label=g["label"],
                             label_text=g["label_text"], video_id=g["video_id"],
                             filled_text=g.get("filled_text"))
        made.append((g["video_id"], g["label"], g["label_text"], len(result.frames), record))
    if not made:
        if len(problems) == 1:
            raise MediaError(problems[0]["reason"], problems[0]["detail"])
        raise MediaError(problems[0]["reason"], f"none of the {len(problems)} segments gave a "
                         "record: " + "; ".join(f"{p['video_id']}: {p['reason']}"
                                                for p in problems))
    return made, problems


def clip_record(item: Item, clip: Clip, frame: FrameSpec, *, label: int | None = None,
                label_text: str | None = None, video_id: str | None = None,
                filled_text: str | None = None) -> bytes:
    """The serialised record of one decoded clip of ``item``; ``label``, ``label_text`` and
    ``video_id`` replace the item's (a segment's record), and ``filled_text`` (default
    ``item.extra['filled_text']``) is stored as ``clip/label/filled_text`` when given."""
    extra = {schema.CLIP_NUM_FILLED: clip.num_filled} if clip.num_filled else {}
    filled = item.extra.get("filled_text") if filled_text is None else filled_text
    if filled:
        extra[schema.LABEL_FILLED_TEXT] = filled
    return schema.encode_clip(
        clip.frames, label=item.label if label is None else label,
        label_text=item.label_text if label_text is None else label_text,
        video_id=item.video_id if video_id is None else video_id,
        image_format=frame.image_format,
        height=clip.height, width=clip.width, fps=clip.fps,
        timestamps_us=clip.timestamps_us, source_indices=clip.source_indices,
        source_num_frames=clip.source_num_frames, short_policy=clip.short_policy,
        extra_context=extra or None)


def problem_dict(item: Item, stage: str, reason: str, detail: str) -> dict:
    """An errors.jsonl row for ``item``."""
    return {"path": item.path, "video_id": item.video_id, "split": item.split,
            "stage": stage, "reason": reason, "detail": detail}


def settings_from_info(info: dict, *, frame_size: tuple[int, int] | None = None,
                       video_dir: str | None = None) -> BuildSettings:
    """The ``BuildSettings`` a build used, from its dataset_info.

    Keypoint builds are read back whole (no windows: the reader cuts windows as
    in evaluation); ``frame_size`` / ``video_dir`` replace the build's way of
    normalising coordinates by the frame size (raises ValueError if it did not).
    """
    sampling = dict(info.get("sampling") or {})
    sampling["indices"] = tuple(sampling.get("indices") or ())
    frame = dict(info.get("frame") or {})
    if frame.get("size"):
        frame["size"] = tuple(frame["size"])
    keypoint_spec = None
    if info.get("keypoints"):
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
    return BuildSettings(SamplingSpec(**sampling), FrameSpec(**frame), tolerance,
                         float(info.get("source_fps") or 0.0), keypoint_spec)
