r"""Shows what went into a build's records: a contact sheet PNG and, with --gif, a GIF per clip.

    python -m pipeline.show OUTPUT_DIR/DATASET/CONFIG_NAME --split train --output show/
    python -m pipeline.show records/ucf101/demo --split test --per_class 2 --gif
    python -m pipeline.show records/openpose/k --classes curl,laces --max_frames 12

Reads the split's records with the reader's own parser (``tfrecords.schema``; no Beam)
in shard order and keeps the first ``--per_class`` records of each class (unlabelled
records form one more group), then draws them into ``OUTPUT/<split>_contact_sheet.png``:

  video builds     one row per clip: its class, video id and sizes, then its stored frames
                   in order, each captioned with its frame number in the source and its time
  keypoint builds  one row per sequence: the skeleton (BODY_25 or COCO limbs; left side
                   blue, right side vermillion, centre grey) at up to --max_frames evenly
                   spaced frames; missing points and the limbs they end are left out, so
                   they show as gaps, and a frame without anyone says so
  image builds     one row per class: its images, each captioned with its id

With ``--gif``, ``OUTPUT/<split>_gifs/`` gets one animated GIF per clip (video and
keypoint builds), every stored frame, timed by the record's frame timestamps.

Errors (no build at BUILD_DIR, a split the build lacks, an unknown class, a damaged shard)
are one line on stderr and exit status 2.
"""
from __future__ import annotations

import dataclasses
import os
import re
import sys
from typing import Sequence

from pipeline import cli
from pipeline.media.drawing import fit, font, text_width

cli.quiet_unless_verbose(__name__)    # before TensorFlow and Beam load (unless --verbose)
cli.stop_while_starting(__name__, "show")    # one line, not a traceback

import numpy as np
from absl import app, flags

from tfrecords import schema

# Own flag registry: importing this module (the demo does) defines no global flags.
FLAGS = flags.FlagValues()
flags.DEFINE_string("split", "train", "The split of the build to show.", flag_values=FLAGS)
flags.DEFINE_string("output", "show", "The folder for the contact sheet (and the GIFs); "
                    "created if missing.", flag_values=FLAGS)
flags.DEFINE_integer("per_class", 3, "Clips shown per class (the first ones in shard order).",
                     lower_bound=1, flag_values=FLAGS)
flags.DEFINE_list("classes", [], "Only these classes (comma list of class names); default: "
                  "every class, in class-index order.", flag_values=FLAGS)
flags.DEFINE_integer("max_rows", 60, "At most this many rows on the contact sheet (the rest "
                     "are left out, and the sheet says so).", lower_bound=1, flag_values=FLAGS)
flags.DEFINE_integer("max_frames", 16, "At most this many frames per row: a clip with more "
                     "shows this many, evenly spaced from the first to the last.",
                     lower_bound=1, flag_values=FLAGS)
flags.DEFINE_integer("thumb_height", 96, "Height in pixels of every frame on the sheet (small "
                     "frames are enlarged without smoothing; skeleton panels are 1.5 times "
                     "as high).", lower_bound=16,
                     flag_values=FLAGS)
flags.DEFINE_boolean("gif", False, "Also write one animated GIF per clip (video and keypoint "
                     "builds) into OUTPUT/<split>_gifs/.", flag_values=FLAGS)

# Okabe & Ito's colour-blind-safe palette.
OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7",
             "#000000")
LEFT, RIGHT, CENTRE = "#0072B2", "#D55E00", "#555555"     # skeleton sides: blue, vermillion
UNLABELLED_NAME = "(unlabelled)"
LABEL_WIDTH = 270          # pixels of the text column on the left of every row
MAX_GIF_FRAMES = 400
GIF_MIN_HEIGHT = 160

# OpenPose BODY_25 limbs, by point name (pipeline.media.keypoints.BODY_25 has the names).
# COCO has no MidHip: there the hips hang from the neck (COCO_LIMBS).
BODY_25_LIMBS = (
    ("Neck", "MidHip"), ("Neck", "RShoulder"), ("Neck", "LShoulder"),
    ("RShoulder", "RElbow"), ("RElbow", "RWrist"), ("LShoulder", "LElbow"), ("LElbow", "LWrist"),
    ("MidHip", "RHip"), ("RHip", "RKnee"), ("RKnee", "RAnkle"),
    ("MidHip", "LHip"), ("LHip", "LKnee"), ("LKnee", "LAnkle"),
    ("Neck", "Nose"), ("Nose", "REye"), ("REye", "REar"), ("Nose", "LEye"), ("LEye", "LEar"),
    ("LAnkle", "LBigToe"), ("LBigToe", "LSmallToe"), ("LAnkle", "LHeel"),
    ("RAnkle", "RBigToe"), ("RBigToe", "RSmallToe"), ("RAnkle", "RHeel"))
COCO_LIMBS = (("Neck", "RHip"), ("Neck", "LHip"))


class ShowError(ValueError):
    """A mistake in what to show (message for the user)."""


@dataclasses.dataclass
class Example:
    """One record to draw. ``frames``: uint8 [n, H, W, 3] of the positions in ``shown``
    (video and image builds); ``values``/``mask``: [T, P, V, C] / [T, P, V] (keypoints)."""
    label: int
    label_text: str
    video_id: str
    num_frames: int
    shown: list[int]
    source_indices: list[int]
    timestamps_us: list[int]
    fps: float
    frames: np.ndarray | None = None
    height: int = 0
    width: int = 0
    values: np.ndarray | None = None
    mask: np.ndarray | None = None
    names: tuple[str, ...] = ()
    layout: str = ""
    frame_size: tuple[int, int] = (0, 0)     # (width, height) the coordinates were divided by
    record: bytes = b""


# --------------------------------------------------------------------------
# Reading.
# --------------------------------------------------------------------------
def evenly(n: int, k: int) -> list[int]:
    """``k`` evenly spaced positions of ``n`` (first and last included), or all of them."""
    if n <= k:
        return list(range(n))
    if k == 1:
        return [n // 2]
    return sorted({int(round(i * (n - 1) / (k - 1))) for i in range(k)})


def _keypoint_names(raw) -> tuple[str, ...]:
    import tensorflow as tf
    ctx, _ = tf.io.parse_single_sequence_example(
        raw, context_features={schema.KEYPOINTS_NAMES: tf.io.VarLenFeature(tf.string)})
    return tuple(v.decode() for v in ctx[schema.KEYPOINTS_NAMES].values.numpy())


def _shrink(frames: np.ndarray, max_height: int) -> np.ndarray:
    """Frames at most ``max_height`` rows high (area averaging), so that a sheet of large
    frames does not hold them whole in memory."""
    if frames.shape[1] <= max_height:
        return frames
    from PIL import Image
    width = max(1, int(round(frames.shape[2] * max_height / frames.shape[1])))
    return np.stack([np.asarray(Image.fromarray(f).resize((width, max_height), Image.BOX))
                     for f in frames])


def example_from_record(raw, modality: str, max_frames: int | None = None, *,
                        max_height: int = 256, keep_record: bool = False) -> Example:
    """An ``Example`` of one serialised record: frames decoded at up to ``max_frames``
    evenly spaced positions (all with None), at most ``max_height`` rows high, or the
    whole keypoint sequence; with ``keep_record`` it keeps the record's bytes too (for
    GIFs, which show every frame)."""
    if modality == "keypoints":
        p = schema.parse_keypoints(raw)
        t, people, points, coords = (int(p[k]) for k in ("num_frames", "num_people",
                                                         "num_points", "num_coords"))
        names = _keypoint_names(raw)
        layout = p["layout"].numpy().decode()
        if len(names) != points:
            from pipeline.media.keypoints import LAYOUTS
            names = LAYOUTS.get(layout, ())[:points] if len(LAYOUTS.get(layout, ())) >= points \
                else tuple(str(i) for i in range(points))
        return Example(
            label=int(p["label"]), label_text=p["label_text"].numpy().decode(),
            video_id=p["video_id"].numpy().decode(), num_frames=t,
            shown=evenly(t, max_frames or t),
            source_indices=p["source_indices"].numpy().tolist(),
            timestamps_us=p["timestamps_us"].numpy().tolist(), fps=float(p["fps"]),
            values=p["values"].numpy().reshape(t, people, points, coords),
            mask=p["mask"].numpy().reshape(t, people, points), names=names, layout=layout,
            frame_size=(int(p["frame_width"]), int(p["frame_height"])),
            record=bytes(raw.numpy()) if keep_record else b"")
    p = schema.parse_clip(raw)
    n = int(p["num_frames"])
    shown = evenly(n, max_frames or n)
    fmt = p["image_format"].numpy().decode()
    height, width = int(p["height"]), int(p["width"])
    import tensorflow as tf
    frames = _shrink(schema.decode_frames(tf.gather(p["frames"], shown), fmt, height,
                                          width).numpy(), max_height)
    return Example(
        label=int(p["label"]), label_text=p["label_text"].numpy().decode(),
        video_id=p["video_id"].numpy().decode(), num_frames=n, shown=shown,
        source_indices=p["source_indices"].numpy().tolist(),
        timestamps_us=p["timestamps_us"].numpy().tolist(), fps=float(p["fps"]),
        frames=frames, height=height, width=width,
        record=bytes(raw.numpy()) if keep_record else b"")


def _label_of(raw) -> int:
    import tensorflow as tf
    ctx, _ = tf.io.parse_single_sequence_example(raw, context_features={
        schema.LABEL_INDEX: tf.io.FixedLenFeature([], tf.int64,
                                                  default_value=schema.UNLABELLED)})
    return int(ctx[schema.LABEL_INDEX])


def class_name(info: dict, label: int, text: str = "") -> str:
    classes = info.get("classes") or []
    if label == schema.UNLABELLED:
        return UNLABELLED_NAME
    if 0 <= label < len(classes):
        return str(classes[label])
    return text or str(label)


def read_examples(build_dir: str, split: str, per_class: int = 3,
                  classes: Sequence[str] = (), max_frames: int | None = 16, *,
                  max_height: int = 256, keep_records: bool = False) -> tuple[dict, list]:
    """(dataset_info, examples): the first ``per_class`` records of each class of ``split``
    (only ``classes`` when given), in class-index order (unlabelled last), each in shard
    order (see ``example_from_record``). ShowError for a missing build, split or class, or
    an unreadable shard."""
    import tensorflow as tf
    try:
        info = schema.read_dataset_info(build_dir)
    except (FileNotFoundError, ValueError) as e:
        raise ShowError(str(e)) from None
    splits = info.get("splits") or {}
    if split not in splits:
        raise ShowError(f"the build has no split {split!r} (it has "
                        f"{', '.join(sorted(splits)) or 'none'})")
    if per_class < 1:
        raise ShowError("--per_class must be at least 1")
    names = [str(c) for c in info.get("classes") or []]
    if classes:
        unknown = [c for c in classes if c not in names]
        if unknown:
            raise ShowError(f"unknown class(es) {', '.join(map(repr, unknown))}; the build has "
                            f"{', '.join(names[:20])}{', ...' if len(names) > 20 else ''}")
        wanted = [names.index(c) for c in classes]
    else:
        wanted = list(range(len(names)))
    s = splits[split]
    counts = s.get("per_class") or {}
    target = {i: min(per_class, int(counts.get(names[i], per_class))) for i in wanted}
    if not classes and s.get("unlabelled", 0):
        target[schema.UNLABELLED] = min(per_class, int(s["unlabelled"]))
    target = {i: n for i, n in target.items() if n > 0}
    modality = info.get("modality") or "video"
    found: dict[int, list] = {i: [] for i in target}
    build_dir = build_dir.rstrip("/")
    for shard in s.get("shards") or []:
        if all(len(found[i]) >= target[i] for i in target):
            break
        path = f"{build_dir}/{shard}"
        i = -1
        try:
            for i, raw in enumerate(tf.data.TFRecordDataset(path)):
                label = _label_of(raw)
                if label in found and len(found[label]) < target[label]:
                    found[label].append(example_from_record(
                        raw, modality, max_frames, max_height=max_height,
                        keep_record=keep_records))
                    if all(len(found[c]) >= target[c] for c in target):
                        break
        except tf.errors.OpError as e:
            raise ShowError(f"cannot read {path} after {i + 1} records ({type(e).__name__}: "
                            f"{e.message.splitlines()[0]}): run python -m pipeline.verify "
                            f"{build_dir}") from None
    order = sorted(found, key=lambda c: (c == schema.UNLABELLED, c))
    return info, [ex for c in order for ex in found[c]]


# --------------------------------------------------------------------------
# Drawing (Pillow, which matplotlib brings; the fonts are matplotlib's DejaVu Sans).
# --------------------------------------------------------------------------


def wrap(text: str, f, width: int, max_lines: int) -> list[str]:
    """``text`` broken into lines of at most ``width`` px (at /, _, -, space or anywhere),
    at most ``max_lines`` of them (the last shortened with an ellipsis)."""
    lines, rest = [], text
    while rest and len(lines) < max_lines:
        if text_width(rest, f) <= width or len(lines) == max_lines - 1:
            lines.append(fit(rest, f, width))
            break
        cut = len(rest)
        while cut > 1 and text_width(rest[:cut], f) > width:
            cut -= 1
        breaks = [m.end() for m in re.finditer(r"[/_\- ]", rest[:cut])]
        if breaks and breaks[-1] > cut // 2:
            cut = breaks[-1]
        lines.append(rest[:cut])
        rest = rest[cut:]
    return lines


def thumbnail(frame: np.ndarray, height: int, max_aspect: float = 3.0):
    """``frame`` (uint8 RGB) as a PIL image ``height`` px high; enlarged without smoothing
    (pixels stay visible), reduced with area averaging."""
    from PIL import Image
    h, w = frame.shape[:2]
    width = max(1, min(int(round(w * height / h)), int(height * max_aspect)))
    image = Image.fromarray(np.ascontiguousarray(frame[..., :3]))
    resample = Image.NEAREST if height >= h else Image.BOX
    return image.resize((width, height), resample)


def _side(name: str) -> str:
    if name[:1] == "R" and name[1:2].isupper():
        return RIGHT
    if name[:1] == "L" and name[1:2].isupper():
        return LEFT
    return CENTRE


def limbs_of(names: Sequence[str]) -> list[tuple[int, int, str]]:
    """(point a, point b, colour) of every BODY_25/COCO limb whose two points are in
    ``names``."""
    index = {n: i for i, n in enumerate(names)}
    pairs = BODY_25_LIMBS + (COCO_LIMBS if "MidHip" not in index else ())
    out = []
    for a, b in pairs:
        if a in index and b in index:
            colour = _side(b) if _side(b) != CENTRE else _side(a)
            out.append((index[a], index[b], colour))
    return out


class SkeletonFrame:
    """Maps one keypoint sequence's coordinates into panels of one size: the box around
    every point seen in the sequence, kept in proportion, so that motion shows."""

    def __init__(self, ex: Example, height: int):
        xy = ex.values[..., :2].astype(np.float64)
        if ex.frame_size[0] > 0 and ex.frame_size[1] > 0:      # x / width, y / height
            xy = xy * np.array(ex.frame_size, np.float64)
        self.xy = xy
        seen = ex.mask > 0
        if seen.any():
            pts = xy[seen]
            x0, y0 = pts.min(axis=0)
            x1, y1 = pts.max(axis=0)
            pad = 0.08 * max(x1 - x0, y1 - y0, 1e-6)
            x0, y0, x1, y1 = x0 - pad, y0 - pad, x1 + pad, y1 + pad
        else:
            x0, y0, x1, y1 = 0.0, 0.0, 1.0, 1.0
        aspect = (x1 - x0) / max(y1 - y0, 1e-6)
        self.aspect = float(np.clip(aspect, 0.6, 2.5))
        self.height = height
        self.width = int(round(height * self.aspect))
        # Fit the box into the panel, keeping its proportions, centred.
        scale = min(self.width / max(x1 - x0, 1e-6), height / max(y1 - y0, 1e-6))
        self.scale = scale
        self.offset = (x0 - (self.width / scale - (x1 - x0)) / 2,
                       y0 - (height / scale - (y1 - y0)) / 2)
        self.ex = ex
        self.limbs = limbs_of(ex.names)

    def draw(self, t: int):
        """The panel of frame ``t``: a PIL image."""
        from PIL import Image, ImageDraw
        ex = self.ex
        image = Image.new("RGB", (self.width, self.height), "white")
        d = ImageDraw.Draw(image)
        d.rectangle([0, 0, self.width - 1, self.height - 1], outline="#BBBBBB")
        line = max(1, self.height // 40)
        radius = max(1.5, self.height / 60)
        xy = (self.xy[t] - np.array(self.offset)) * self.scale
        seen = ex.mask[t] > 0
        if not seen.any():
            text = "no one seen"
            size = max(8, self.height // 9)
            while size > 8 and text_width(text, font(size)) > self.width - 8:
                size -= 1
            f = font(size)
            d.text(((self.width - text_width(text, f)) / 2, self.height / 2 - f.size / 2), text,
                   fill="#777777", font=f)
            return image
        for person in range(xy.shape[0]):
            width = line if person == 0 else max(1, line - 1)
            for a, b, colour in self.limbs:
                if seen[person, a] and seen[person, b]:
                    d.line([tuple(xy[person, a]), tuple(xy[person, b])], fill=colour,
                           width=width)
            for v in np.flatnonzero(seen[person]):
                x, y = xy[person, v]
                colour = _side(ex.names[v]) if v < len(ex.names) else CENTRE
                d.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colour)
            if person > 0:                         # further people: their slot number
                x, y = xy[person][seen[person]].min(axis=0)
                d.text((x, max(0, y - 12)), f"P{person + 1}", fill="#000000", font=font(10))
        return image


def _frame_caption(ex: Example, pos: int) -> str:
    number = ex.source_indices[pos] if pos < len(ex.source_indices) else pos
    if pos < len(ex.timestamps_us) and (ex.fps > 0 or any(ex.timestamps_us)):
        return f"#{number} {ex.timestamps_us[pos] / 1e6:.2f}s"
    return f"#{number}"


def _row_meta(ex: Example) -> str:
    shown = f" ({len(ex.shown)} shown)" if len(ex.shown) < ex.num_frames else ""
    fps = f" · {ex.fps:g} fps" if ex.fps > 0 else ""
    if ex.values is not None:
        people = ex.values.shape[1]
        missing = 1.0 - float(ex.mask.mean()) if ex.mask.size else 0.0
        return (f"{ex.num_frames} frames{shown}{fps} · {ex.layout or 'keypoints'}, "
                f"{people} {'person' if people == 1 else 'people'} · "
                f"{missing:.0%} points missing")
    return f"{ex.num_frames} frames{shown} · {ex.width}x{ex.height}{fps}"


def _header(title: str, lines: Sequence[str], width: int):
    """A white band with a bold title and grey explanation lines."""
    from PIL import Image, ImageDraw
    big, small = font(18, True), font(13)
    title_lines = wrap(title, big, width - 24, 3)
    height = 14 + 24 * len(title_lines) + 18 * len(lines) + 10
    image = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(image)
    y = 12
    for t in title_lines:
        d.text((12, y), t, fill="black", font=big)
        y += 24
    for line in lines:
        d.text((12, y), fit(line, small, width - 24), fill="#333333", font=small)
        y += 18
    return image


def _class_chip(d, x: int, y: int, label: int):
    colour = "#999999" if label < 0 else OKABE_ITO[label % len(OKABE_ITO)]
    d.rectangle([x, y + 3, x + 10, y + 13], fill=colour, outline="black")


def contact_sheet(info: dict, examples: list[Example], path: str, *, title: str,
                  thumb_height: int = 96, left_out: int = 0) -> tuple[int, int]:
    """Draws the contact sheet of ``examples`` to ``path`` (PNG); returns its (width, height)."""
    from PIL import Image, ImageDraw
    modality = info.get("modality") or "video"
    if modality == "keypoints":             # people are tall and narrow: larger panels
        thumb_height = int(thumb_height * 1.5)
    cap = font(11)
    rows = _image_rows(info, examples, thumb_height) if modality == "image" else \
        [(ex, _row_images(ex, thumb_height)) for ex in examples]
    gap, caption_h, pad = 4, 16, 8
    row_w = [LABEL_WIDTH + sum(im.width + gap for im, _ in cells) + pad for _, cells in rows]
    width = max([900, *row_w])
    if modality == "keypoints":
        explain = ["Each row: one record's skeleton at evenly spaced frames (caption: frame "
                   "number in the source, time).",
                   "Limbs: blue = left side, vermillion = right side, grey = centre. Missing "
                   "points and their limbs are not drawn (gaps)."]
    elif modality == "image":
        explain = ["Each row: one class; each image as stored in the records, captioned with "
                   "its id."]
    else:
        explain = ["Each row: one record's stored frames in order (caption: frame number in "
                   "the source, time in seconds)."]
    if left_out:
        explain.append(f"{left_out} more row(s) left out (--max_rows).")
    head = _header(title, explain, width)
    row_h = thumb_height + caption_h + 2 * pad
    row_h = max(row_h, pad * 2 + 22 + 16 * 3 + 14 * 2)      # class, 3 id lines, 2 meta lines
    sheet = Image.new("RGB", (width, head.height + row_h * max(1, len(rows))), "white")
    sheet.paste(head, (0, 0))
    d = ImageDraw.Draw(sheet)
    bold, plain, small = font(15, True), font(12), font(11)
    for r, (ex, cells) in enumerate(rows):
        y0 = head.height + r * row_h
        if r % 2:
            d.rectangle([0, y0, width, y0 + row_h - 1], fill="#F2F2F2")
        d.line([0, y0, width, y0], fill="#CCCCCC")
        name = class_name(info, ex.label, ex.label_text)
        _class_chip(d, 8, y0 + pad, ex.label)
        d.text((24, y0 + pad), fit(name, bold, LABEL_WIDTH - 32), fill="black", font=bold)
        y = y0 + pad + 22
        if modality == "image":
            lines = [f"{len(cells)} image(s) shown", f"label index {ex.label}"]
        else:
            lines = wrap(ex.video_id, plain, LABEL_WIDTH - 24, 3)
        for line in lines:
            d.text((12, y), line, fill="#222222", font=plain)
            y += 16
        if modality != "image":
            for line in wrap(_row_meta(ex), small, LABEL_WIDTH - 16, 2):
                d.text((12, y + 2), line, fill="#555555", font=small)
                y += 14
        x = LABEL_WIDTH
        for image, caption in cells:
            sheet.paste(image, (x, y0 + pad))
            d.text((x, y0 + pad + thumb_height + 2), fit(caption, cap, image.width),
                   fill="#333333", font=cap)
            x += image.width + gap
    if not rows:
        d.text((12, head.height + 10), "no records to show", fill="black", font=bold)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    sheet.save(path, optimize=True)
    return sheet.size


def _row_images(ex: Example, height: int) -> list:
    if ex.values is not None:
        panel = SkeletonFrame(ex, height)
        return [(panel.draw(t), _frame_caption(ex, t)) for t in ex.shown]
    return [(thumbnail(frame, height), _frame_caption(ex, pos))
            for frame, pos in zip(ex.frames, ex.shown)]


def _image_rows(info: dict, examples: list[Example], height: int) -> list:
    """Image builds: one row per class, its images captioned with their ids."""
    rows: dict[int, list] = {}
    first: dict[int, Example] = {}
    for ex in examples:
        first.setdefault(ex.label, ex)
        name = ex.video_id.rstrip("/").rsplit("/", 1)[-1] or ex.video_id
        rows.setdefault(ex.label, []).append((thumbnail(ex.frames[0], height), name))
    return [(first[label], cells) for label, cells in rows.items()]


# --------------------------------------------------------------------------
# GIFs.
# --------------------------------------------------------------------------
def _durations_ms(ex: Example, n: int) -> list[int]:
    """Per-frame display times from the record's timestamps (else its fps, else 10 fps)."""
    ts = ex.timestamps_us
    default = 1000.0 / ex.fps if ex.fps > 0 else 100.0
    out = []
    for i in range(n):
        if i + 1 < len(ts) and ts[i + 1] > ts[i]:
            out.append((ts[i + 1] - ts[i]) / 1000.0)
        else:
            out.append(default)
    # GIF delays are in hundredths of a second; browsers slow anything under 20 ms.
    return [int(max(20, round(d / 10) * 10)) for d in out]


def write_gif(info: dict, ex: Example, path: str) -> int:
    """One animated GIF of every frame of ``ex`` (up to MAX_GIF_FRAMES) with its class and
    video id in a band on top; returns the number of frames."""
    from PIL import Image, ImageDraw
    modality = info.get("modality") or "video"
    if modality == "keypoints":
        panel = SkeletonFrame(ex, GIF_MIN_HEIGHT)
        positions = evenly(ex.num_frames, MAX_GIF_FRAMES)
        images = [panel.draw(t) for t in positions]
    else:
        full = example_from_record_all(ex, MAX_GIF_FRAMES)
        positions, frames = full
        height = min(max(frames.shape[1], GIF_MIN_HEIGHT), 360)
        images = [thumbnail(f, height) for f in frames]
    width = max(240, max(im.width for im in images))
    band = 52
    f, small = font(13, True), font(11)
    name = class_name(info, ex.label, ex.label_text)
    out = []
    for pos, im in zip(positions, images):
        canvas = Image.new("RGB", (width, im.height + band), "white")
        canvas.paste(im, ((canvas.width - im.width) // 2, band))
        d = ImageDraw.Draw(canvas)
        d.text((4, 2), fit(name, f, canvas.width - 8), fill="black", font=f)
        d.text((4, 19), fit(ex.video_id, small, canvas.width - 8), fill="#333333", font=small)
        d.text((4, 34), _frame_caption(ex, pos), fill="#333333", font=small)
        out.append(canvas.convert("P", palette=Image.ADAPTIVE, colors=255))
    durations = _durations_ms(ex, ex.num_frames)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    out[0].save(path, save_all=True, append_images=out[1:], loop=0,
                duration=[durations[p] for p in positions], disposal=1)
    return len(out)


def example_from_record_all(ex: Example, limit: int,
                            max_height: int = 360) -> tuple[list[int], np.ndarray]:
    """(positions, frames) of up to ``limit`` evenly spaced frames of a clip record kept by
    ``read_examples(keep_records=True)``, decoded 16 at a time and each at most
    ``max_height`` rows high."""
    import tensorflow as tf
    if not ex.record:
        raise ValueError(f"{ex.video_id}: its record was not kept (keep_records=True)")
    p = schema.parse_clip(tf.constant(ex.record))
    positions = evenly(int(p["num_frames"]), limit)
    fmt = p["image_format"].numpy().decode()
    chunks = [_shrink(schema.decode_frames(tf.gather(p["frames"], positions[i:i + 16]), fmt,
                                           int(p["height"]), int(p["width"])).numpy(),
                      max_height)
              for i in range(0, len(positions), 16)]
    return positions, np.concatenate(chunks)


def safe_name(text: str) -> str:
    """A file name part made of ``text``: letters, digits, ``-``, ``_``, ``.``."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")
    return name[:80] or "clip"


# --------------------------------------------------------------------------
# The command.
# --------------------------------------------------------------------------
def show(build_dir: str, split: str = "train", output: str = "show", *, per_class: int = 3,
         classes: Sequence[str] = (), max_rows: int = 60, max_frames: int = 16,
         thumb_height: int = 96, gif: bool = False) -> dict:
    """Writes ``output/<split>_contact_sheet.png`` (and with ``gif`` the GIFs); returns
    {"contact_sheet": path, "rows": n, "gifs": [paths], "size": (w, h)}."""
    info, examples = read_examples(build_dir, split, per_class, classes, max_frames,
                                   max_height=max(thumb_height, 64) * 2, keep_records=gif)
    modality = info.get("modality") or "video"
    kept, left_out = examples, 0
    if modality == "image":                  # a row per class
        labels = list(dict.fromkeys(ex.label for ex in examples))
        if len(labels) > max_rows:
            kept = [ex for ex in examples if ex.label in labels[:max_rows]]
            left_out = len(labels) - max_rows
    elif len(examples) > max_rows:
        kept, left_out = examples[:max_rows], len(examples) - max_rows
    n_classes = len({ex.label for ex in kept})
    rows = n_classes if modality == "image" else len(kept)
    title = (f"{build_dir.rstrip('/')} · split {split!r} · {modality} · {len(kept)} "
             f"record(s) of {n_classes} class(es), up to {per_class} per class")
    sheet = os.path.join(output, f"{safe_name(split)}_contact_sheet.png")
    size = contact_sheet(info, kept, sheet, title=title, thumb_height=thumb_height,
                         left_out=left_out)
    gifs = []
    if gif and modality != "image":
        folder = os.path.join(output, f"{safe_name(split)}_gifs")
        for i, ex in enumerate(kept):
            name = class_name(info, ex.label, ex.label_text)
            stem = os.path.splitext(ex.video_id.rstrip("/").rsplit("/", 1)[-1])[0]
            path = os.path.join(folder, f"{i:03d}_{safe_name(name)}_{safe_name(stem)}.gif")
            write_gif(info, ex, path)
            gifs.append(path)
    return {"contact_sheet": sheet, "rows": rows, "records": len(kept), "left_out": left_out,
            "gifs": gifs, "size": size, "modality": modality}


def main(argv: list[str]) -> int:
    cli.started()
    if len(argv) != 2:
        print("error: give one build directory (the folder holding "
              f"{schema.DATASET_INFO_FILE}), e.g. python -m pipeline.show records/ucf101/demo",
              file=sys.stderr)
        return 2
    try:
        out = show(argv[1], FLAGS.split, FLAGS.output, per_class=FLAGS.per_class,
                   classes=[c.strip() for c in FLAGS.classes if c.strip()],
                   max_rows=FLAGS.max_rows, max_frames=FLAGS.max_frames,
                   thumb_height=FLAGS.thumb_height, gif=FLAGS.gif)
    except ShowError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    more = f", {out['left_out']} left out (--max_rows)" if out["left_out"] else ""
    print(f"[show] contact sheet: {out['contact_sheet']} ({out['records']} records in "
          f"{out['rows']} rows{more}, {out['size'][0]}x{out['size'][1]} px)")
    if FLAGS.gif:
        if out["gifs"]:
            print(f"[show] GIFs: {os.path.dirname(out['gifs'][0])} ({len(out['gifs'])} files)")
        elif out["modality"] == "image":
            print("[show] no GIFs: an image build has one frame per record")
    return 0


def parse_flags(argv: list[str]) -> list[str]:
    """absl flags_parser (``pipeline.cli.parse``)."""
    return cli.parse(FLAGS, argv, __name__)


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=parse_flags)
