"""What travels through the build and prediction: inputs, problems, clips and failures."""
from __future__ import annotations

import dataclasses

KINDS = ("video", "frames", "image", "keypoints")
SPLITS = ("train", "val", "test")
# errors.jsonl stage of a bad file inside an item that was still written (one OpenPose
# frame): counted apart from the items quarantined whole.
FILE_STAGE = "file"


class MediaError(Exception):
    """An input that cannot become a record; ``reason`` is a short code for errors.jsonl."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclasses.dataclass(frozen=True, slots=True)
class Item:
    """One input to turn into record(s).

    kind:  'video' (path is a video file), 'frames' (path is a folder of frame
           images), 'image' (path is one image: a clip of one frame) or
           'keypoints' (``files`` are one OpenPose JSON per frame).
    files: for 'frames' and 'keypoints', the per-frame files in frame order
           when the source already knows them (else the worker lists ``path``).
    extra: source-specific details for the worker (e.g. frame numbers,
           labelled segments), JSON-compatible values only. A video cut into
           time segments carries ``extra['segments']``: one dict per record to
           write (see ``segment``), decoded together in one pass.
    """
    path: str          # full path (local, gs://, s3://)
    video_id: str      # path relative to the data directory, '/'-separated
    split: str         # one of SPLITS ('predict' for a raw input of trainers.predict)
    label: int         # class index, -1 when unlabelled
    label_text: str
    kind: str = "video"
    files: tuple[str, ...] = ()
    extra: dict = dataclasses.field(default_factory=dict, compare=False)

    def to_json_dict(self) -> dict:
        """The fields as a dict for ``json.dumps`` (which only reads it): shallow, so that
        an item of thousands of files costs no deep copy (``dataclasses.asdict``'s)."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}

    @classmethod
    def from_json_dict(cls, data: dict) -> "Item":
        return cls(**dict(data, files=tuple(data.get("files", ()))))


@dataclasses.dataclass(frozen=True)
class Problem:
    """An input that is quarantined: written to errors.jsonl, counted, never decoded."""
    path: str
    stage: str         # 'list' for source problems, 'decode'/'encode' for media problems
    reason: str        # short machine-readable code, e.g. 'missing_file', 'unknown_class'
    detail: str = ""
    split: str = ""

    def to_json_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Clip:
    """The kept frames of one video (or frame folder, or image), encoded, with where they
    came from."""
    frames: list[bytes]
    timestamps_us: list[int]
    source_indices: list[int]
    fps: float
    source_num_frames: int          # frames really decoded
    claimed_num_frames: int         # what the container said
    height: int
    width: int
    source_height: int
    source_width: int
    short_policy: str               # 'none', or the policy that filled a short video
    num_filled: int = 0             # frame folders: missing frame numbers filled with a neighbour


def seconds_text(seconds: float) -> str:
    """A time for an id: at most 3 decimals, no trailing zeros (``12``, ``12.5``)."""
    text = f"{float(seconds):.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def segment_video_id(video_id: str, start_s: float, end_s: float) -> str:
    """The id of the record of ``[start_s, end_s)`` of video ``video_id``:
    ``<video_id>#<start>-<end>`` (seconds), e.g. ``clips/a.mp4#12.5-17``."""
    return f"{video_id}#{seconds_text(start_s)}-{seconds_text(end_s)}"


def segment(start_s: float, end_s: float, label: int, label_text: str, video_id: str,
            **more) -> dict:
    """One entry of ``Item.extra['segments']``: the time range ``[start_s, end_s)`` of the
    item's video and the label and id its record carries (``more``: further JSON-compatible
    fields, e.g. ``filled_text``)."""
    return {"start_s": float(start_s), "end_s": float(end_s), "label": int(label),
            "label_text": label_text, "video_id": video_id, **more}
