r"""An upload page and a JSON API over a trained model: ``python -m trainers.serve``.

    python -m trainers.serve --workdir runs/demo
    python -m trainers.serve --workdir runs/demo --checkpoint last --host 0.0.0.0 --port 8080 \
        --max_upload_mb 200

Open http://127.0.0.1:8080/ , pick a video (an image for an image model, a .zip of one
sequence's OpenPose ``<name>_<frame>_keypoints.json`` files for a keypoint model) and
submit: the page shows the model's top predictions, label and probability, as a table with
bars, and what the model saw: the video with the predicted label drawn on every frame
(VP8 WebM, or H.264 MP4 where OpenCV can write it; at most 320 pixels on the long side and
12 frames a second), a strip of the frames the model read (its input after the build's
sampling and the evaluation crop), and, for a video longer than one ``--window``, the label
of every window over time. Keypoint uploads get the label of every frame over time; images
the crop the model read. Everything is rendered by the server; the page loads nothing from
the internet. The upload goes through ``trainers.predict``: decoded and sampled with the
build's settings, as ``python -m trainers.predict`` would.

    GET  /              the upload page
    POST /              an upload from that page (form field ``file``): the page with the
                        predictions and pictures, or an error page
    GET  /api/info      {"classes": [...], "modality": ..., "model": ..., "extensions": [...],
                         "max_upload_mb": ...}
    POST /api/predict   multipart field ``file`` (and optional ``top_k``) -> {"filename": ...,
                        "top_k": [{"label", "index", "probability"}, ...], "probabilities": [...]}
                        with ``media=1`` also "media": {"overlay", "strip", "timeline": URL or
                        null, "expires_in_s": ...}
    GET  /results/TOKEN/NAME   a picture or video of an upload (NAME: overlay.webm,
                        overlay.mp4, strip.png or timeline.png), for --keep_minutes

    curl -F file=@clip.mp4 http://127.0.0.1:8080/api/predict

Accepted types, by extension: .avi .mp4 .mkv .mov .webm (video models), .jpg .jpeg .png
.bmp (image models), .zip (keypoint models). Errors are JSON ``{"error": message}`` on
``/api/*`` and an HTML page otherwise: 400 no file or a bad ``top_k``, 413 a request over
``--max_upload_mb``, 415 a file type the model does not take, 422 a file the model cannot
read (corrupt, empty, too short, a bad archive), 500 anything else (details in the log
only). An upload is saved under a random name in a private temporary folder (mode 0700),
only for the time of its prediction, and deleted afterwards whether the prediction worked
or not; the folder goes when the server stops. The pictures and the overlay video made from
an upload are kept in that folder (``results/<random token>/``, fixed file names) for
``--keep_minutes`` and served only from there.

This is the Werkzeug server, threaded, one prediction at a time: fine for a lab machine or
a demo. Behind a production WSGI server use ``create_app(predictor)`` as the application.
"""
from __future__ import annotations

import atexit
import errno
import logging
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
import uuid

from pipeline import cli

cli.quiet_unless_verbose(__name__)    # before TensorFlow and Beam load (unless --verbose)
cli.stop_while_starting(__name__, "serve")    # one line, not a traceback

from absl import app as absl_app
from absl import flags

from pipeline.media.encode import parse_size
from pipeline.media.formats import (IMAGE_EXTENSIONS, OPENPOSE_FILE, OPENPOSE_PATTERN,
                                    VIDEO_EXTENSIONS)
from trainers import inputs

# Own flag registry: importing this module defines no global flags.
FLAGS = flags.FlagValues()
flags.DEFINE_string("workdir", None, "A training workdir (python -m trainers.train --workdir).",
                    flag_values=FLAGS)
flags.DEFINE_string("checkpoint", "best", "best, last, or a path to a .keras file.",
                    flag_values=FLAGS)
flags.DEFINE_string("host", "127.0.0.1", "Address to listen on; 0.0.0.0 for every interface "
                    "(anyone who can reach it can upload).", flag_values=FLAGS)
flags.DEFINE_integer("port", 8080, "Port to listen on; 0 picks a free one (printed).",
                     flag_values=FLAGS)
flags.DEFINE_string("frame_size", None, "Keypoint models trained on coordinates divided by the "
                    "frame size: WxH of the frames the uploaded OpenPose JSON came from.",
                    flag_values=FLAGS)
flags.DEFINE_float("max_upload_mb", 50.0, "Largest upload accepted, in MiB: the whole request "
                   "(larger: 413).", flag_values=FLAGS)
flags.DEFINE_float("window", 2.0, "Seconds per window of the timeline drawn for a video "
                   "longer than one window.", flag_values=FLAGS)
flags.DEFINE_float("hop", 1.0, "Seconds between the timeline's window starts.",
                   flag_values=FLAGS)
flags.DEFINE_float("keep_minutes", 10.0, "How long the pictures and overlay video of an "
                   "upload stay available.", flag_values=FLAGS)

# File types each modality takes, by extension (lower case, with the dot).
EXTENSIONS = {
    "video": VIDEO_EXTENSIONS,
    "image": IMAGE_EXTENSIONS,
    "keypoints": (".zip",),   # one sequence's OpenPose frame files
}
UNZIPPED_FACTOR = 20       # a keypoint archive may unpack to this many times the upload limit
DEFAULT_TOP_K = 5
MIB = 1024 * 1024
RESULTS = "results"        # UPLOAD_DIR/results/<token>/: what an upload's page shows
MEDIA_NAMES = {"overlay.webm": "video/webm", "overlay.mp4": "video/mp4",
               "strip.png": "image/png", "timeline.png": "image/png"}
TOKEN = re.compile(r"[0-9a-f]{32}")
MAX_KEPT_RESULTS = 50      # at most this many uploads' pictures are kept, newest first
OVERLAY_MAX_SIDE = 320     # the page's overlay video: pixels on its long side ...
OVERLAY_MAX_FPS = 12.0     # ... and frames a second, to keep it small
STRIP_VIEWS = 3            # views of a clip shown on the strip, at most


class UploadError(Exception):
    """A request the server refuses: ``status`` and a message for the user."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


# --------------------------------------------------------------------------
# Page (one template; Flask's render_template_string escapes every value).
# --------------------------------------------------------------------------
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{ title }}</title>
<link rel="icon" href="data:,">
<style>
  body { font-family: sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem;
         color: #222; }
  h1 { font-size: 1.4rem; }
  .meta { color: #555; font-size: 0.9rem; }
  form { margin: 1.5rem 0; padding: 1rem; border: 1px solid #ccc; border-radius: 4px; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: 0.3rem 0.5rem; border-bottom: 1px solid #eee; }
  td.probability { font-variant-numeric: tabular-nums; width: 5rem; }
  td.barcell { width: 45%; }
  div.bar { background: #4a7fc1; height: 0.9rem; min-width: 1px; }
  .error { color: #a00; background: #fee; border: 1px solid #e99; padding: 0.7rem;
           border-radius: 4px; }
  figure { margin: 1rem 0; }
  figcaption { color: #555; font-size: 0.9rem; margin-top: 0.3rem; }
  video, img.wide { max-width: 100%; height: auto; }
  div.scroll { overflow-x: auto; }
</style>
</head>
<body>
<h1>{{ title }}</h1>
<p class="meta" id="model">Model: {{ model }} &middot; {{ modality }} &middot;
  {{ classes|length }} classes</p>
<form method="post" action="{{ url_for('page') }}" enctype="multipart/form-data">
  <label for="file">{{ what[:1]|upper }}{{ what[1:] }} ({{ extensions|join(', ') }}; up to
    {{ max_upload_mb }} MiB):</label><br>
  <input type="file" id="file" name="file" accept="{{ extensions|join(',') }}" required>
  <button type="submit" id="submit">Predict</button>
</form>
{% if error %}
<p class="error" id="error"><strong>{{ status }}</strong>: {{ error }}</p>
{% endif %}
{% if result %}
<h2 id="result-title">Top {{ result.top_k|length }} for {{ result.filename }}</h2>
<table id="predictions">
  <thead><tr><th>#</th><th>label</th><th>probability</th><th></th></tr></thead>
  <tbody>
  {% for p in result.top_k %}
  <tr class="prediction">
    <td>{{ loop.index }}</td>
    <td class="label">{{ p.label }}</td>
    <td class="probability">{{ "%.4f"|format(p.probability) }}</td>
    <td class="barcell"><div class="bar" style="width: {{ "%.1f"|format(
        [[p.probability, 0.0]|max, 1.0]|min * 100) }}%"></div></td>
  </tr>
  {% endfor %}
  </tbody>
</table>
{% if result.media %}
<section id="seen">
<h2>What the model saw</h2>
{% if result.media.overlay %}
<figure>
<video id="overlay" src="{{ result.media.overlay }}" controls autoplay muted loop playsinline
       preload="auto"></video>
<figcaption>The upload with the predicted label and its probability on every frame{% if
  result.media.timeline %} (the label of the latest window that starts at or before the
  frame){% endif %}; at most {{ result.media.max_side }} pixels and {{ result.media.max_fps }}
  frames a second.</figcaption>
</figure>
{% endif %}
{% if result.media.strip %}
<figure>
<div class="scroll"><img id="strip" src="{{ result.media.strip }}"
  alt="The frames the model read"></div>
<figcaption>{{ result.media.strip_caption }}</figcaption>
</figure>
{% endif %}
{% if result.media.timeline %}
<figure>
<img id="timeline" class="wide" src="{{ result.media.timeline }}"
  alt="The predicted label over time">
<figcaption>{{ result.media.timeline_caption }}</figcaption>
</figure>
{% endif %}
<p class="meta">These pictures are kept for {{ result.media.keep_minutes }} minutes.</p>
</section>
{% endif %}
{% endif %}
</body>
</html>
"""


# --------------------------------------------------------------------------
# Keypoint uploads: a zip archive of one OpenPose sequence.
# --------------------------------------------------------------------------
def extract_openpose_zip(archive: str, folder: str, max_bytes: int) -> int:
    """Copies the OpenPose JSON files of ``archive`` into ``folder``, flat; returns their count.

    Only file names matter: every member's folders are dropped, so no member can land
    outside ``folder``; members not named ``<name>_<12-digit frame>_keypoints.json`` are
    ignored. Raises UploadError (422) for a bad archive, no or several sequences, a
    repeated name, or more than ``max_bytes`` unpacked.
    """
    import zipfile

    try:
        with zipfile.ZipFile(archive) as zf:
            members = {}
            for info in zf.infolist():
                base = info.filename.replace("\\", "/").rsplit("/", 1)[-1]
                if info.is_dir() or base.startswith(".") or not OPENPOSE_FILE.match(base):
                    continue
                if base in members:
                    raise UploadError(422, f"the archive holds two files named {base!r}")
                members[base] = info
            if not members:
                raise UploadError(422, "the archive holds no OpenPose files "
                                       f"({OPENPOSE_PATTERN})")
            names = sorted({OPENPOSE_FILE.match(b).group(1) for b in members})
            if len(names) > 1:
                listed = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
                raise UploadError(422, f"the archive holds {len(names)} OpenPose sequences "
                                       f"({listed}): upload one at a time")
            if sum(info.file_size for info in members.values()) > max_bytes:
                raise UploadError(422, f"the archive unpacks to more than "
                                       f"{round(max_bytes / MIB, 1):g} MiB")
            os.makedirs(folder, mode=0o700)
            for base, info in members.items():
                # zipfile stops at each member's declared size and checks its CRC.
                with zf.open(info) as src, open(os.path.join(folder, base), "wb") as dst:
                    shutil.copyfileobj(src, dst)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as e:
        raise UploadError(422, f"not a readable zip archive ({e})") from None
    return len(members)


# --------------------------------------------------------------------------
# What the model saw: an upload's overlay video, frame strip and timeline.
# --------------------------------------------------------------------------
def _strip_rows(predictor, seen: dict) -> list:
    """(row label, frames, captions) of the first STRIP_VIEWS views the model read."""
    views = seen["views"]
    crops = 1
    try:
        crops = max(1, int(predictor.run.config.data.num_test_crops))
    except (AttributeError, TypeError, ValueError):
        pass
    rows = []
    for v, (frames, positions) in enumerate(zip(views, seen["positions"])):
        if v >= STRIP_VIEWS:
            break
        captions = []
        for p in positions:
            number = seen["source_indices"][p] if p < len(seen["source_indices"]) else p
            when = f" {seen['times'][p]:.2f}s" if p < len(seen["times"]) and \
                seen.get("fps") else ""
            captions.append(f"#{number}{when}")
        if len(views) == 1:
            label = f"{len(frames)} frame(s) of {frames.shape[2]}x{frames.shape[1]}"
        else:
            label = (f"view {v + 1} of {len(views)} (clip {v // crops + 1}, crop "
                     f"{v % crops + 1}): {len(frames)} frame(s) of "
                     f"{frames.shape[2]}x{frames.shape[1]}")
        rows.append((label, list(frames), captions))
    return rows


def make_media(predictor, path: str, kind: str, result: dict, seen: dict | None, folder: str,
               *, window: float, hop: float, filename: str, top_k: int) -> dict:
    """Writes what an upload's page shows into ``folder``: ``strip.png`` (the frames the
    model read), ``timeline.png`` (the label over time: windows of a video longer than one
    window, frames of a keypoint sequence) and the overlay video (videos). Returns
    {"overlay", "strip", "timeline": file name or None, captions, "windows": [...]}."""
    from trainers import overlay
    out: dict = {"overlay": None, "strip": None, "timeline": None, "windows": None}
    classes = [str(c) for c in predictor.classes]
    if seen is not None:
        rows = _strip_rows(predictor, seen)
        more = len(seen["views"]) - len(rows)
        note = ("The model's input after the build's sampling and the evaluation crop; "
                "caption: frame number in the upload and its time"
                + (f"; {more} more view(s) not shown" if more > 0 else ""))
        overlay.frame_strip(rows, os.path.join(folder, "strip.png"),
                            f"What the model read from {filename}", note=note)
        out["strip"] = "strip.png"
        out["strip_caption"] = (f"The frames the model read: {rows[0][0]}" if len(rows) == 1
                                else f"The frames the model read in {len(seen['views'])} "
                                     f"views (clips x crops), averaged for the prediction.")
    windows = None
    if kind == "video":
        duration = (seen or {}).get("duration")
        if duration is None or duration > window + 1e-6:
            windows = predictor.predict_windows(path, window, hop, top_k)["windows"]
            out["windows"] = [{"start": w["start"], "end": w["end"],
                               "label": w["top_k"][0]["label"],
                               "probability": w["top_k"][0]["probability"]} for w in windows]
            overlay.plot_timeline(overlay.window_segments(windows),
                                  os.path.join(folder, "timeline.png"),
                                  f"{filename}: the top label of every {window:g} s window, "
                                  f"one every {hop:g} s", classes)
            out["timeline"] = "timeline.png"
            out["timeline_caption"] = (f"Label per {window:g}-second window (one every "
                                       f"{hop:g} s, each shown until the next starts), and "
                                       f"its probability.")
        if windows:
            label_at = overlay.window_label_at(windows)
        else:
            best = result["top_k"][0]
            text = f"{best['label']} {best['probability']:.2f}"
            label_at = lambda t: text  # noqa: E731
        name = "overlay" + overlay.browser_extension()
        overlay.write_overlay(path, os.path.join(folder, name), label_at,
                              max_side=OVERLAY_MAX_SIDE, max_fps=OVERLAY_MAX_FPS)
        out["overlay"] = name
    elif kind == "keypoints" and result.get("frame_labels"):
        fps = float(result.get("fps") or 0.0)
        numbers = result["frame_numbers"] or list(range(len(result["frame_labels"])))
        times = [n / fps for n in numbers] if fps > 0 else list(numbers)
        segments = overlay.frame_segments(result["frame_labels"],
                                          result["frame_probabilities"], times,
                                          1.0 / fps if fps > 0 else 1.0)
        overlay.plot_timeline(segments, os.path.join(folder, "timeline.png"),
                              f"{filename}: the top label of every frame", classes,
                              xlabel="seconds" if fps > 0 else "frame")
        out["timeline"] = "timeline.png"
        out["timeline_caption"] = "Label per frame (runs of frames with one label), and its " \
                                  "mean probability over the run."
    return out


# --------------------------------------------------------------------------
# The application.
# --------------------------------------------------------------------------
def _model_name(predictor, model_name):
    if model_name:
        return model_name
    for obj in (predictor, getattr(predictor, "run", None)):
        name = getattr(obj, "model_name", None)
        if isinstance(name, str):
            return name
    return "unknown"


def create_app(predictor, *, max_upload_mb: float = 50.0, upload_dir: str | None = None,
               model_name: str | None = None, window: float = 2.0, hop: float = 1.0,
               keep_minutes: float = 10.0):
    """The Flask app serving ``predictor`` (``classes``, ``modality``, ``predict(path, top_k)``;
    with ``predict_seen`` and ``predict_windows``, as ``trainers.predict.Predictor`` has,
    the page also shows what the model saw).

    Uploads are saved in ``upload_dir`` (created private if missing; by default a new
    temporary folder, removed at exit; ``app.config["UPLOAD_DIR"]`` says which) under random
    names and deleted after their prediction. The pictures made of an upload go to
    ``upload_dir/results/<token>/`` and are removed after ``keep_minutes`` (and beyond the
    newest MAX_KEPT_RESULTS). ``trainers.inputs.InputError`` becomes a 422.
    """
    import flask
    from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
    from werkzeug.utils import secure_filename

    if not max_upload_mb > 0:
        raise ValueError(f"max_upload_mb must be positive, got {max_upload_mb}")
    if not (window > 0 and hop > 0):
        raise ValueError(f"window and hop must be positive seconds, got {window} and {hop}")
    if not keep_minutes > 0:
        raise ValueError(f"keep_minutes must be positive, got {keep_minutes}")
    modality = predictor.modality
    if modality not in EXTENSIONS:
        raise ValueError(f"no upload types known for modality {modality!r}")
    extensions = EXTENSIONS[modality]
    classes = [str(c) for c in predictor.classes]
    name = _model_name(predictor, model_name)
    if upload_dir is None:
        upload_dir = tempfile.mkdtemp(prefix="actionflow-serve-")
        atexit.register(shutil.rmtree, upload_dir, ignore_errors=True)
    else:
        os.makedirs(upload_dir, mode=0o700, exist_ok=True)
    upload_dir = os.path.realpath(upload_dir)
    results_dir = os.path.join(upload_dir, RESULTS)
    keep_s = keep_minutes * 60.0
    shows_media = callable(getattr(predictor, "predict_seen", None))
    lock = threading.Lock()  # one prediction at a time: the model is shared
    log = logging.getLogger(__name__)

    web = flask.Flask(__name__)
    web.config["MAX_CONTENT_LENGTH"] = int(max_upload_mb * MIB)
    web.config["UPLOAD_DIR"] = upload_dir
    web.config["RESULTS_DIR"] = results_dir
    limit_text = f"{max_upload_mb:g}"
    what = {"video": "a video", "image": "an image",
            "keypoints": "a zip of OpenPose JSON files"}[modality]

    def render(status=200, **values):
        html = flask.render_template_string(
            PAGE, title=f"actionflow: {name}", model=name, modality=modality, classes=classes,
            extensions=extensions, max_upload_mb=limit_text, what=what, status=status,
            error=values.get("error"), result=values.get("result"))
        return html, status

    def parse_top_k() -> int:
        text = flask.request.values.get("top_k", "")
        if not text:
            return min(DEFAULT_TOP_K, len(classes))
        try:
            k = int(text)
        except ValueError:
            k = 0
        if not 1 <= k <= len(classes):
            raise UploadError(400, f"top_k must be a whole number from 1 to {len(classes)}, "
                                   f"got {text!r}")
        return k

    def sweep() -> None:
        """Removes the results older than ``keep_minutes``, and all but the newest
        MAX_KEPT_RESULTS."""
        try:
            entries = [e for e in os.scandir(results_dir) if TOKEN.fullmatch(e.name)]
        except FileNotFoundError:
            return
        entries.sort(key=lambda e: e.stat().st_mtime, reverse=True)
        now = time.time()
        for i, entry in enumerate(entries):
            if i >= MAX_KEPT_RESULTS or now - entry.stat().st_mtime > keep_s:
                shutil.rmtree(entry.path, ignore_errors=True)

    def media_for(target: str, kind: str, result: dict, seen, filename: str,
                  top_k: int) -> dict | None:
        """Makes an upload's pictures in a new results folder; their URLs, or None when
        making them failed (logged; the prediction stands)."""
        token = uuid.uuid4().hex
        folder = os.path.join(results_dir, token)
        os.makedirs(results_dir, mode=0o700, exist_ok=True)
        os.makedirs(folder, mode=0o700)
        try:
            made = make_media(predictor, target, kind, result, seen, folder, window=window,
                              hop=hop, filename=filename, top_k=top_k)
        except inputs.InputError as e:
            log.warning("no pictures for %s: %s", filename, e)
            shutil.rmtree(folder, ignore_errors=True)
            return None
        except Exception:  # noqa: BLE001 - pictures are extra: the prediction stands
            log.exception("making the pictures of %s failed", filename)
            shutil.rmtree(folder, ignore_errors=True)
            return None
        url = lambda name: (flask.url_for("result_file", token=token, name=name)  # noqa: E731
                            if name else None)
        return {"overlay": url(made["overlay"]), "strip": url(made["strip"]),
                "timeline": url(made["timeline"]), "windows": made["windows"],
                "strip_caption": made.get("strip_caption", ""),
                "timeline_caption": made.get("timeline_caption", ""),
                "expires_in_s": int(keep_s), "keep_minutes": f"{keep_minutes:g}",
                "max_side": OVERLAY_MAX_SIDE, "max_fps": f"{OVERLAY_MAX_FPS:g}"}

    def run_upload(top_k: int | None = None, media: bool = False) -> dict:
        """Saves the request's file privately, predicts, deletes it; the result for the user
        (with ``media``: also the URLs of what the model saw)."""
        upload = flask.request.files.get("file")
        if upload is None or not upload.filename:
            raise UploadError(400, f"no file uploaded: send {what} in the form field 'file'")
        # The name as shown back: its last part, made safe; the extension decides the type.
        stem, suffix = os.path.splitext(upload.filename.replace("\\", "/").rsplit("/", 1)[-1])
        ext = suffix.lower()
        if ext not in extensions:
            shown = secure_filename(stem + suffix) or "upload"
            raise UploadError(415, f"{shown!r} is not a file type this {modality} model "
                                   f"takes: use one of {', '.join(extensions)}")
        filename = (secure_filename(stem) or "upload") + suffix
        k = parse_top_k() if top_k is None else top_k
        # The original name never reaches the file system: a random name, our extension.
        path = os.path.join(upload_dir, uuid.uuid4().hex + ext)
        target = path
        try:
            upload.save(path)
            if modality == "keypoints":
                target = os.path.join(upload_dir, uuid.uuid4().hex)
                try:
                    extract_openpose_zip(path, target, web.config["MAX_CONTENT_LENGTH"]
                                         * UNZIPPED_FACTOR)
                except UploadError as e:
                    raise UploadError(e.status, f"cannot read {filename!r}: {e.message}"
                                      ) from None
            pictures = None
            with lock:
                if media and shows_media:
                    out, seen = predictor.predict_seen(target, top_k=k)
                    sweep()
                    pictures = media_for(target, out.get("kind") or modality, out, seen,
                                         filename, k)
                else:
                    out = predictor.predict(target, top_k=k)
        except inputs.InputError as e:
            # The predictor names the saved file; the user knows the file by its own name.
            message = str(e).replace(target + ": ", "").replace(target, filename)
            raise UploadError(422, f"cannot read {filename!r}: {message}") from None
        finally:
            if target != path:
                shutil.rmtree(target, ignore_errors=True)
            try:
                os.remove(path)
            except FileNotFoundError:
                pass
        result = {"filename": filename,
                  "top_k": [{"label": str(p["label"]), "index": int(p["index"]),
                             "probability": float(p["probability"])} for p in out["top_k"]],
                  "probabilities": [float(p) for p in out["probabilities"]]}
        if pictures is not None:
            result["media"] = pictures
        return result

    def wants_json() -> bool:
        return flask.request.path.startswith("/api/")

    def too_large_message() -> str:
        return f"the upload is larger than the {limit_text} MiB limit (--max_upload_mb)"

    @web.get("/")
    def page():
        return render()

    @web.post("/")
    def upload_page():  # errors: upload_error below renders the page with the message
        return render(result=run_upload(top_k=min(DEFAULT_TOP_K, len(classes)), media=True))

    @web.get("/results/<token>/<name>")
    def result_file(token: str, name: str):
        """A file of an upload's results: the token and the name are checked against
        fixed patterns and the path is built from them alone."""
        if not TOKEN.fullmatch(token) or name not in MEDIA_NAMES:
            flask.abort(404)
        sweep()
        path = os.path.join(results_dir, token, name)
        if not os.path.isfile(path):
            flask.abort(404, description="no such file: it may have expired "
                                         f"(results are kept {keep_minutes:g} minutes)")
        reply = flask.send_file(path, mimetype=MEDIA_NAMES[name], conditional=True,
                                max_age=int(keep_s))
        reply.headers["X-Content-Type-Options"] = "nosniff"
        reply.headers["Cache-Control"] = f"private, max-age={int(keep_s)}"
        return reply

    @web.get("/api/info")
    def api_info():
        return flask.jsonify(classes=classes, modality=modality, model=name,
                             extensions=list(extensions), max_upload_mb=max_upload_mb)

    @web.post("/api/predict")
    def api_predict():
        media = flask.request.values.get("media", "") in ("1", "true", "yes")
        result = run_upload(media=media)
        if "media" in result:
            result["media"] = {k: result["media"][k] for k in ("overlay", "strip", "timeline",
                                                               "windows", "expires_in_s")}
        return flask.jsonify(result)

    @web.errorhandler(UploadError)
    def upload_error(e: UploadError):
        if wants_json():
            return flask.jsonify(error=e.message), e.status
        return render(status=e.status, error=e.message)

    @web.errorhandler(RequestEntityTooLarge)
    def too_large(e):
        if wants_json():
            return flask.jsonify(error=too_large_message()), 413
        return render(status=413, error=too_large_message())

    @web.errorhandler(HTTPException)
    def http_error(e: HTTPException):
        if wants_json():
            return flask.jsonify(error=e.description), e.code
        return render(status=e.code, error=f"{e.name}: {e.description}")

    @web.errorhandler(Exception)
    def unexpected(e: Exception):
        web.logger.exception("prediction failed")
        message = "the server failed to predict this file; its log has the details"
        if wants_json():
            return flask.jsonify(error=message), 500
        return render(status=500, error=message)

    return web


# --------------------------------------------------------------------------
# Entry point.
# --------------------------------------------------------------------------
def check_listen(host: str, port: int):
    """Raises RunError when ``host:port`` cannot be listened on (before the model loads)."""
    from trainers.workdir import RunError
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            # As the server will: an address in TIME_WAIT is free to take.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as e:
        reason = "the port is in use" if e.errno == errno.EADDRINUSE else (
            e.strerror or str(e))
        raise RunError(f"cannot listen on {host}:{port}: {reason}") from None


def parse_frame_size(text: str | None) -> tuple[int, int] | None:
    """``1920x1080`` -> (1920, 1080); None for none; ValueError otherwise."""
    return parse_size(text, "--frame_size", example="1920x1080")


def serve(workdir: str, *, checkpoint: str = "best", host: str = "127.0.0.1", port: int = 8080,
          max_upload_mb: float = 50.0, frame_size: tuple[int, int] | None = None,
          window: float = 2.0, hop: float = 1.0, keep_minutes: float = 10.0) -> int:
    """Loads the model of ``workdir`` and serves it until SIGINT (Ctrl-C) or SIGTERM; returns
    the exit status (130 or 143), its uploads and temporary files removed."""
    from werkzeug.serving import make_server

    from trainers import workdir as workdir_lib

    run = workdir_lib.open_run(workdir)  # a wrong workdir or port fails before TensorFlow loads
    if frame_size and run.modality != "keypoints":
        raise workdir_lib.RunError(f"--frame_size is for keypoint models; {workdir} holds a "
                                   f"{run.modality} model")
    run.checkpoint_path(checkpoint)
    check_listen(host, port)
    print(f"[serve] loading the {checkpoint} checkpoint of {workdir} ...", file=sys.stderr,
          flush=True)
    from trainers import predict
    predictor = web = server = None
    with cli.StopSignals():
        try:
            predictor = predict.Predictor.from_workdir(workdir, checkpoint=checkpoint,
                                                       frame_size=frame_size)
            web = create_app(predictor, max_upload_mb=max_upload_mb,
                             model_name=run.model_name, window=window, hop=hop,
                             keep_minutes=keep_minutes)
            try:
                server = make_server(host, port, web, threaded=True)
            except SystemExit:  # Werkzeug's own exit when the port was taken meanwhile
                raise workdir_lib.RunError(f"cannot listen on {host}:{port}") from None
            shown = f"[{host}]" if ":" in host else host
            print(f"[serve] {run.model_name} ({predictor.modality}, "
                  f"{len(predictor.classes)} classes) at http://{shown}:{server.server_port}/"
                  "  (Ctrl-C stops)", flush=True)
            server.serve_forever()
        except cli.Stopped as stop:
            print(cli.stopped_line("serve", stop, "no upload is kept (each lives only for its "
                                   "prediction)", None), file=sys.stderr, flush=True)
            return stop.exit_code
        finally:
            if server is not None:
                server.server_close()
            if web is not None:
                shutil.rmtree(web.config["UPLOAD_DIR"], ignore_errors=True)
            if predictor is not None:
                predictor.close()
    return 0


def main(argv):
    cli.started()
    from trainers.workdir import RunError
    if len(argv) > 1:
        print(f"error: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 2
    if not FLAGS.workdir:
        print("error: --workdir is required (python -m trainers.serve --workdir runs/demo)",
              file=sys.stderr)
        return 2
    if not FLAGS.max_upload_mb > 0:
        print(f"error: --max_upload_mb must be positive, got {FLAGS.max_upload_mb:g}",
              file=sys.stderr)
        return 2
    if not 0 <= FLAGS.port <= 65535:
        print(f"error: --port must be from 0 to 65535, got {FLAGS.port}", file=sys.stderr)
        return 2
    for name in ("window", "hop", "keep_minutes"):
        if not FLAGS[name].value > 0:
            print(f"error: --{name} must be positive, got {FLAGS[name].value:g}",
                  file=sys.stderr)
            return 2
    try:
        frame_size = parse_frame_size(FLAGS.frame_size)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        return serve(FLAGS.workdir, checkpoint=FLAGS.checkpoint, host=FLAGS.host,
                     port=FLAGS.port, max_upload_mb=FLAGS.max_upload_mb, frame_size=frame_size,
                     window=FLAGS.window, hop=FLAGS.hop, keep_minutes=FLAGS.keep_minutes)
    except RunError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def parse_flags(argv: list[str]) -> list[str]:
    """absl flags_parser (``pipeline.cli.parse``)."""
    return cli.parse(FLAGS, argv, __name__)


if __name__ == "__main__":
    absl_app.run(lambda argv: sys.exit(main(argv)), flags_parser=parse_flags)
