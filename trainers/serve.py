r"""An upload page and a JSON API over a trained model: ``python -m trainers.serve``.

    python -m trainers.serve --workdir runs/demo
    python -m trainers.serve --workdir runs/demo --checkpoint last --host 0.0.0.0 --port 8080 \
        --max_upload_mb 200

Open http://127.0.0.1:8080/ , pick a video (an image for an image model, a .zip of one
sequence's OpenPose ``<name>_<frame>_keypoints.json`` files for a keypoint model) and
submit: the page shows the model's top predictions, label and probability, as a table with
bars. Everything is rendered by the server; the page loads nothing from the internet. The
upload goes through ``trainers.predict``: decoded and sampled with the build's settings,
as ``python -m trainers.predict`` would.

    GET  /              the upload page
    POST /              an upload from that page (form field ``file``): the page with the
                        predictions, or an error page
    GET  /api/info      {"classes": [...], "modality": ..., "model": ..., "extensions": [...],
                         "max_upload_mb": ...}
    POST /api/predict   multipart field ``file`` (and optional ``top_k``) -> {"filename": ...,
                        "top_k": [{"label", "index", "probability"}, ...], "probabilities": [...]}

    curl -F file=@clip.mp4 http://127.0.0.1:8080/api/predict

Accepted types, by extension: .avi .mp4 .mkv .mov .webm (video models), .jpg .jpeg .png
.bmp (image models), .zip (keypoint models). Errors are JSON ``{"error": message}`` on
``/api/*`` and an HTML page otherwise: 400 no file or a bad ``top_k``, 413 a request over
``--max_upload_mb``, 415 a file type the model does not take, 422 a file the model cannot
read (corrupt, empty, too short, a bad archive), 500 anything else (details in the log
only). An upload is saved under a random name in a private temporary folder (mode 0700),
only for the time of its prediction, and deleted afterwards whether the prediction worked
or not; the folder goes when the server stops.

This is the Werkzeug server, threaded, one prediction at a time: fine for a lab machine or
a demo. Behind a production WSGI server use ``create_app(predictor)`` as the application.
"""
from __future__ import annotations

import atexit
import errno
import os
import shutil
import socket
import sys
import tempfile
import threading
import uuid

from absl import app as absl_app
from absl import flags

from pipeline import cli
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

# File types each modality takes, by extension (lower case, with the dot).
EXTENSIONS = {
    "video": VIDEO_EXTENSIONS,
    "image": IMAGE_EXTENSIONS,
    "keypoints": (".zip",),   # one sequence's OpenPose frame files
}
UNZIPPED_FACTOR = 20       # a keypoint archive may unpack to this many times the upload limit
DEFAULT_TOP_K = 5
MIB = 1024 * 1024


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
  body { font-family: sans-serif; max-width: 44rem; margin: 2rem auto; padding: 0 1rem;
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
               model_name: str | None = None):
    """The Flask app serving ``predictor`` (``classes``, ``modality``, ``predict(path, top_k)``).

    Uploads are saved in ``upload_dir`` (created private if missing; by default a new
    temporary folder, removed at exit; ``app.config["UPLOAD_DIR"]`` says which) under random
    names and deleted after their prediction. ``trainers.inputs.InputError`` becomes a 422.
    """
    import flask
    from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
    from werkzeug.utils import secure_filename

    if not max_upload_mb > 0:
        raise ValueError(f"max_upload_mb must be positive, got {max_upload_mb}")
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
    lock = threading.Lock()  # one prediction at a time: the model is shared

    web = flask.Flask(__name__)
    web.config["MAX_CONTENT_LENGTH"] = int(max_upload_mb * MIB)
    web.config["UPLOAD_DIR"] = upload_dir
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

    def run_upload(top_k: int | None = None) -> dict:
        """Saves the request's file privately, predicts, deletes it; the result for the user."""
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
            with lock:
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
        return {"filename": filename,
                "top_k": [{"label": str(p["label"]), "index": int(p["index"]),
                           "probability": float(p["probability"])} for p in out["top_k"]],
                "probabilities": [float(p) for p in out["probabilities"]]}

    def wants_json() -> bool:
        return flask.request.path.startswith("/api/")

    def too_large_message() -> str:
        return f"the upload is larger than the {limit_text} MiB limit (--max_upload_mb)"

    @web.get("/")
    def page():
        return render()

    @web.post("/")
    def upload_page():  # errors: upload_error below renders the page with the message
        return render(result=run_upload(top_k=min(DEFAULT_TOP_K, len(classes))))

    @web.get("/api/info")
    def api_info():
        return flask.jsonify(classes=classes, modality=modality, model=name,
                             extensions=list(extensions), max_upload_mb=max_upload_mb)

    @web.post("/api/predict")
    def api_predict():
        return flask.jsonify(run_upload())

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
          max_upload_mb: float = 50.0, frame_size: tuple[int, int] | None = None) -> int:
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
                             model_name=run.model_name)
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
    try:
        frame_size = parse_frame_size(FLAGS.frame_size)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        return serve(FLAGS.workdir, checkpoint=FLAGS.checkpoint, host=FLAGS.host,
                     port=FLAGS.port, max_upload_mb=FLAGS.max_upload_mb, frame_size=frame_size)
    except RunError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def parse_flags(argv: list[str]) -> list[str]:
    """absl flags_parser (``pipeline.cli.parse``)."""
    return cli.parse(FLAGS, argv, __name__)


if __name__ == "__main__":
    absl_app.run(lambda argv: sys.exit(main(argv)), flags_parser=parse_flags)
