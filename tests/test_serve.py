"""python -m trainers.serve: the upload page and JSON API.

Three layers: the app with a small fake predictor through Flask's test client (every error
path, file handling, escaping); the app with the real predictor of the tiny trained run on a
real fixture video; and the real server in a subprocess, driven by Debian's headless
Chromium through chromedriver and Selenium (marked ``integration``).
"""
from __future__ import annotations

import io
import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
import zipfile

import pytest

from conftest import ROOT, run_module

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
REAL_VIDEO = "videos/ucf_like_320x240_fmp4.avi"
RANDOM_NAME = re.compile(r"[0-9a-f]{32}\.(avi|mp4|mkv|mov|webm)")


def _predict_module():
    from trainers import predict
    return predict


class FakePredictor:
    """The predictor interface with fixed probabilities; records what it was given."""

    def __init__(self, classes=("walk", "run", "jump", "sit"), modality="video", error=None):
        self.classes = tuple(classes)
        self.modality = modality
        self.error = error
        self.model_name = "fake_family"
        self.calls = []
        n = len(self.classes)
        self.probabilities = [(i + 1) / (n * (n + 1) / 2) for i in range(n)]  # rising, sum 1

    def predict(self, path, top_k=5):
        if os.path.isdir(path):  # keypoint uploads arrive as a folder of JSON files
            data = {n: pathlib.Path(path, n).read_bytes() for n in sorted(os.listdir(path))}
        else:
            data = pathlib.Path(path).read_bytes()
        self.calls.append({"path": path, "data": data, "top_k": top_k})
        if self.error is not None:
            raise self.error
        order = sorted(range(len(self.classes)), key=lambda i: -self.probabilities[i])[:top_k]
        return {"input": path, "probabilities": list(self.probabilities),
                "top_k": [{"label": self.classes[i], "index": i,
                           "probability": self.probabilities[i]} for i in order]}


class SeeingPredictor(FakePredictor):
    """A FakePredictor that also says what it read (``predict_seen``) and predicts sliding
    windows, as trainers.predict.Predictor does; the upload must be a real video."""

    def __init__(self, windows_error=None, **kwargs):
        super().__init__(**kwargs)
        self.windows_error = windows_error
        self.window_calls = []

    def predict_seen(self, path, top_k=5):
        import numpy as np
        out = dict(self.predict(path, top_k), kind="video")
        views = [np.full((4, 16, 16, 3), 60 * v, np.uint8) for v in range(2)]
        seen = {"views": views, "positions": [[0, 1, 2, 3]] * 2,
                "source_indices": [0, 3, 6, 9], "times": [0.0, 0.3, 0.6, 0.9], "fps": 10.0,
                "source_frames": 30, "duration": 3.0}
        return out, seen

    def predict_windows(self, path, window, hop=0.0, top_k=5):
        self.window_calls.append((window, hop))
        if self.windows_error is not None:
            raise self.windows_error
        starts = [0.0, 1.0]
        return {"windows": [{"start": s, "end": s + window,
                             "top_k": [{"label": self.classes[i], "index": i,
                                        "probability": 0.6}]}
                            for i, s in enumerate(starts)]}


def _video(path, frames=30, size=(48, 36), fps=10.0) -> pathlib.Path:
    """A small MJPG AVI: frame t a grey level of 8 t."""
    import cv2
    import numpy as np
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    for t in range(frames):
        writer.write(np.full((size[1], size[0], 3), 8 * t % 256, np.uint8))
    writer.release()
    return pathlib.Path(path)


MEDIA_URL = re.compile(r"/results/([0-9a-f]{32})/(overlay\.webm|overlay\.mp4|strip\.png|"
                       r"timeline\.png)")


def _client(predictor, upload_dir, **kwargs):
    from trainers import serve
    web = serve.create_app(predictor, upload_dir=str(upload_dir), **kwargs)
    web.config["TESTING"] = True
    return web.test_client()


def _upload(client, url, name, data, **fields):
    return client.post(url, data={"file": (io.BytesIO(data), name), **fields},
                       content_type="multipart/form-data")


def _files_under(path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in pathlib.Path(path).rglob("*"))


# --------------------------------------------------------------------------
# The app with a fake predictor.
# --------------------------------------------------------------------------
def test_api_info(tmp_path):
    client = _client(FakePredictor(), tmp_path / "up", max_upload_mb=3)
    r = client.get("/api/info")
    assert r.status_code == 200
    assert r.get_json() == {"classes": ["walk", "run", "jump", "sit"], "modality": "video",
                            "model": "fake_family",
                            "extensions": [".avi", ".mp4", ".mkv", ".mov", ".webm"],
                            "max_upload_mb": 3}


def test_api_predict_saves_privately_under_a_random_name_and_deletes(tmp_path):
    fake = FakePredictor()
    up = tmp_path / "up"
    client = _client(fake, up)
    assert oct(up.stat().st_mode & 0o777) == "0o700"
    payload = b"\x00\x01 some video bytes"
    r = _upload(client, "/api/predict", "My Clip.MP4", payload)
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.get_json() == {
        "filename": "My_Clip.MP4",
        "top_k": [{"label": "sit", "index": 3, "probability": 0.4},
                  {"label": "jump", "index": 2, "probability": 0.3},
                  {"label": "run", "index": 1, "probability": 0.2},
                  {"label": "walk", "index": 0, "probability": 0.1}],
        "probabilities": [0.1, 0.2, 0.3, 0.4]}
    (call,) = fake.calls
    assert call["data"] == payload and call["top_k"] == 4  # 5 by default, capped by 4 classes
    assert os.path.dirname(call["path"]) == os.path.realpath(up)
    assert RANDOM_NAME.fullmatch(os.path.basename(call["path"])), call["path"]
    assert _files_under(up) == []


def test_api_predict_top_k(tmp_path):
    client = _client(FakePredictor(), tmp_path / "up")
    r = _upload(client, "/api/predict", "a.avi", b"x", top_k="2")
    assert [p["label"] for p in r.get_json()["top_k"]] == ["sit", "jump"]
    for bad in ("0", "5", "two"):
        r = _upload(client, "/api/predict", "a.avi", b"x", top_k=bad)
        assert r.status_code == 400
        assert r.get_json() == {"error": f"top_k must be a whole number from 1 to 4, got {bad!r}"}


def test_api_no_file(tmp_path):
    fake = FakePredictor()
    client = _client(fake, tmp_path / "up")
    message = "no file uploaded: send a video in the form field 'file'"
    r = client.post("/api/predict", data={}, content_type="multipart/form-data")
    assert (r.status_code, r.get_json()) == (400, {"error": message})
    r = _upload(client, "/api/predict", "", b"data")  # a form submitted with no file picked
    assert (r.status_code, r.get_json()) == (400, {"error": message})
    assert fake.calls == []


def test_api_wrong_type_is_415(tmp_path):
    fake = FakePredictor()
    client = _client(fake, tmp_path / "up")
    for name in ("notes.txt", "frame.jpg", "video.mp4.exe", "noextension"):
        r = _upload(client, "/api/predict", name, b"data")
        assert r.status_code == 415, name
        assert r.get_json()["error"].startswith(f"{name!r} is not a file type this video model "
                                                "takes: use one of .avi, .mp4, .mkv")
    assert fake.calls == [] and _files_under(tmp_path / "up") == []
    image = _client(FakePredictor(modality="image"), tmp_path / "up2")
    assert _upload(image, "/api/predict", "clip.mp4", b"x").status_code == 415
    assert _upload(image, "/api/predict", "photo.JPEG", b"x").status_code == 200


def test_oversize_upload_is_413(tmp_path):
    fake = FakePredictor()
    client = _client(fake, tmp_path / "up", max_upload_mb=0.01)  # 10,485 bytes
    message = "the upload is larger than the 0.01 MiB limit (--max_upload_mb)"
    r = _upload(client, "/api/predict", "big.mp4", b"\0" * 20_000)
    assert (r.status_code, r.get_json()) == (413, {"error": message})
    page = _upload(client, "/", "big.mp4", b"\0" * 20_000)
    assert page.status_code == 413 and message in page.get_data(as_text=True)
    assert _upload(client, "/api/predict", "small.mp4", b"\0" * 9_000).status_code == 200
    assert len(fake.calls) == 1 and _files_under(tmp_path / "up") == []


def test_unreadable_file_is_422_and_deleted(tmp_path):
    fake = FakePredictor(error=_predict_module().InputError("no video stream"))
    client = _client(fake, tmp_path / "up")
    r = _upload(client, "/api/predict", "broken.webm", b"not a video")
    assert r.status_code == 422
    assert r.get_json() == {"error": "cannot read 'broken.webm': no video stream"}
    assert len(fake.calls) == 1 and os.path.exists(fake.calls[0]["path"]) is False
    assert _files_under(tmp_path / "up") == []


def test_server_failure_is_500_and_deleted(tmp_path):
    fake = FakePredictor(error=RuntimeError("out of memory /secret/path"))
    client = _client(fake, tmp_path / "up")
    r = _upload(client, "/api/predict", "clip.mp4", b"x")
    assert r.status_code == 500
    assert r.get_json() == {"error": "the server failed to predict this file; its log has the "
                                     "details"}
    page = _upload(client, "/", "clip.mp4", b"x")
    assert page.status_code == 500 and "/secret/path" not in page.get_data(as_text=True)
    assert len(fake.calls) == 2 and _files_under(tmp_path / "up") == []


@pytest.mark.parametrize("name,shown", [("../../escaped.mp4", "escaped.mp4"),
                                        ("../../etc/passwd.mp4", "passwd.mp4"),
                                        ("..\\..\\escaped.avi", "escaped.avi"),
                                        ("/tmp/../abs.mp4", "abs.mp4"),
                                        ("../\u0432\u0438\u0434\u0435\u043e.MOV",
                                         "upload.MOV"),
                                        ("dir/Cl\u00edp 1.webm", "Clip_1.webm"),
                                        ("$$$.mkv", "upload.mkv")])
def test_path_traversal_names_stay_in_the_upload_dir(tmp_path, name, shown):
    fake = FakePredictor()
    up = tmp_path / "a" / "b" / "up"
    client = _client(fake, up)
    payload = b"traversal " + uuid.uuid4().bytes
    r = _upload(client, "/api/predict", name, payload)
    assert r.status_code == 200 and r.get_json()["filename"] == shown
    (call,) = fake.calls
    assert os.path.dirname(call["path"]) == os.path.realpath(up)
    assert RANDOM_NAME.fullmatch(os.path.basename(call["path"])), call["path"]
    # Nothing was written anywhere else in the tree above the upload folder.
    assert _files_under(tmp_path) == ["a", "a/b", "a/b/up"]


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def test_keypoint_zip_is_unpacked_flat_into_a_private_folder(tmp_path):
    fake = FakePredictor(classes=("other", "kick"), modality="keypoints")
    up = tmp_path / "a" / "up"
    client = _client(fake, up)
    frame = b'{"version": 1.3, "people": []}'
    archive = _zip({"Kick_3/Kick_3_000000000000_keypoints.json": frame + b"0",
                    "../../Kick_3_000000000001_keypoints.json": frame + b"1",   # zip-slip
                    "/abs/Kick_3_000000000002_keypoints.json": frame + b"2",
                    "__MACOSX/Kick_3/._Kick_3_000000000000_keypoints.json": b"junk",
                    "Kick_3/notes.txt": b"ignored", "Kick_3/": b""})
    r = _upload(client, "/api/predict", "kick.zip", archive)
    assert r.status_code == 200, r.get_data(as_text=True)
    assert [p["label"] for p in r.get_json()["top_k"]] == ["kick", "other"]
    (call,) = fake.calls
    assert os.path.dirname(call["path"]) == os.path.realpath(up)
    assert re.fullmatch(r"[0-9a-f]{32}", os.path.basename(call["path"])), call["path"]
    assert call["data"] == {f"Kick_3_00000000000{i}_keypoints.json": frame + str(i).encode()
                            for i in range(3)}
    assert _files_under(tmp_path) == ["a", "a/up"]
    assert client.get("/api/info").get_json()["extensions"] == [".zip"]


@pytest.mark.parametrize("members,message", [
    (None, "not a readable zip archive (File is not a zip file)"),
    ({"a.json": b"{}", "notes.txt": b"x"},
     "the archive holds no OpenPose files (<name>_<12-digit frame>_keypoints.json)"),
    ({"A_000000000000_keypoints.json": b"{}", "B_000000000000_keypoints.json": b"{}"},
     "the archive holds 2 OpenPose sequences (A, B): upload one at a time"),
    ({"x/A_000000000000_keypoints.json": b"{}", "y/A_000000000000_keypoints.json": b"{}"},
     "the archive holds two files named 'A_000000000000_keypoints.json'"),
    ({"A_000000000000_keypoints.json": b" " * 300_000},      # > 20 x the 0.01 MiB limit
     "the archive unpacks to more than 0.2 MiB"),
])
def test_bad_keypoint_zips_are_422(tmp_path, members, message):
    fake = FakePredictor(classes=("other", "kick"), modality="keypoints")
    client = _client(fake, tmp_path / "up", max_upload_mb=0.01)
    data = b"plain text" if members is None else _zip(members)
    r = _upload(client, "/api/predict", "seq.zip", data)
    assert (r.status_code, r.get_json()) == (422, {"error": f"cannot read 'seq.zip': {message}"})
    assert fake.calls == [] and _files_under(tmp_path / "up") == []


def test_page_has_the_form_and_loads_nothing_external(tmp_path):
    client = _client(FakePredictor(), tmp_path / "up", max_upload_mb=7)
    r = client.get("/")
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and r.mimetype == "text/html"
    assert '<form method="post" action="/" enctype="multipart/form-data">' in html
    assert '<input type="file" id="file" name="file" accept=".avi,.mp4,.mkv,.mov,.webm" ' \
           'required>' in html
    assert "up to\n    7 MiB" in html
    assert "fake_family" in html and 'id="predictions"' not in html
    # No external resource of any kind: no absolute or scheme-relative URL, no src, and the
    # only href an empty inline icon (so a browser does not ask for /favicon.ico).
    assert "http" not in html and "//" not in html.replace("<!doctype", "")
    assert " src=" not in html and re.findall(r" href=\"[^\"]*\"", html) == [' href="data:,"']


def test_page_upload_shows_the_table(tmp_path):
    client = _client(FakePredictor(), tmp_path / "up")
    r = _upload(client, "/", "clip.avi", b"x")
    html = r.get_data(as_text=True)
    assert r.status_code == 200
    rows = re.findall(r'<td class="label">(.*?)</td>\s*<td class="probability">(.*?)</td>\s*'
                      r'<td class="barcell"><div class="bar" style="width: (.*?)%"></div>', html)
    assert rows == [("sit", "0.4000", "40.0"), ("jump", "0.3000", "30.0"),
                    ("run", "0.2000", "20.0"), ("walk", "0.1000", "10.0")]
    assert "Top 4 for clip.avi" in html
    assert _files_under(tmp_path / "up") == []


def test_page_escapes_user_controlled_text(tmp_path):
    evil = '<script>alert("x")</script>'
    fake = FakePredictor(classes=("ok", "<b>bold</b>"),
                         error=_predict_module().InputError(f"bad header {evil}"))
    client = _client(fake, tmp_path / "up")
    r = _upload(client, "/", "clip<img src=x onerror=alert(1)>.mp4", b"x")
    html = r.get_data(as_text=True)
    assert r.status_code == 422
    assert "<script>" not in html and "<img" not in html and "<b>bold" not in html
    assert "bad header &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert '<p class="error" id="error"><strong>422</strong>: cannot read ' in html
    fake.error = None
    html = _upload(client, "/", "clip.mp4", b"x").get_data(as_text=True)
    assert '<td class="label">&lt;b&gt;bold&lt;/b&gt;</td>' in html


def test_page_errors_are_html(tmp_path):
    client = _client(FakePredictor(), tmp_path / "up")
    r = _upload(client, "/", "notes.txt", b"x")
    assert r.status_code == 415 and r.mimetype == "text/html"
    assert "<strong>415</strong>: &#39;notes.txt&#39; is not a file type" in \
        r.get_data(as_text=True)
    r = client.get("/nothing-here")
    assert r.status_code == 404 and r.mimetype == "text/html"
    r = client.get("/api/nothing-here")
    assert r.status_code == 404 and r.mimetype == "application/json"


def test_default_upload_dir_is_a_private_temporary_folder():
    from trainers import serve
    fake = FakePredictor()
    web = serve.create_app(fake)
    up = pathlib.Path(web.config["UPLOAD_DIR"])
    assert up.name.startswith("actionflow-serve-") and up.is_dir()
    assert oct(up.stat().st_mode & 0o777) == "0o700"
    r = _upload(web.test_client(), "/api/predict", "clip.mov", b"x")
    assert r.status_code == 200 and os.path.dirname(fake.calls[0]["path"]) == str(up)
    assert list(up.iterdir()) == []
    up.rmdir()  # (the server removes it at exit)


def test_create_app_refuses_bad_arguments(tmp_path):
    from trainers import serve
    with pytest.raises(ValueError, match="max_upload_mb must be positive, got 0"):
        serve.create_app(FakePredictor(), max_upload_mb=0, upload_dir=str(tmp_path))
    with pytest.raises(ValueError, match="no upload types known for modality 'audio'"):
        serve.create_app(FakePredictor(modality="audio"), upload_dir=str(tmp_path))


# --------------------------------------------------------------------------
# What the model saw: the overlay video, the strip and the timeline.
# --------------------------------------------------------------------------
def test_page_shows_the_overlay_strip_and_timeline(tmp_path):
    fake = SeeingPredictor()
    up = tmp_path / "up"
    client = _client(fake, up, window=2.0, hop=1.0)
    video = _video(tmp_path / "clip.avi")
    r = _upload(client, "/", "clip.avi", video.read_bytes())
    html = r.get_data(as_text=True)
    assert r.status_code == 200, html
    assert fake.window_calls == [(2.0, 1.0)]                  # 3 s video, 2 s windows
    urls = {m.group(2): m.group(0) for m in MEDIA_URL.finditer(html)}
    assert sorted(urls) == ["overlay.webm", "strip.png", "timeline.png"]
    (token,) = {m.group(1) for m in MEDIA_URL.finditer(html)}
    assert f'<video id="overlay" src="{urls["overlay.webm"]}"' in html
    assert f'<img id="strip" src="{urls["strip.png"]}"' in html
    assert f'<img id="timeline" class="wide" src="{urls["timeline.png"]}"' in html
    # Only the results stay, in the private upload folder: the upload itself is gone.
    assert _files_under(up) == ["results", f"results/{token}", f"results/{token}/overlay.webm",
                                f"results/{token}/strip.png", f"results/{token}/timeline.png"]
    assert oct((up / "results" / token).stat().st_mode & 0o777) == "0o700"
    import cv2
    for name, mimetype in (("overlay.webm", "video/webm"), ("strip.png", "image/png"),
                           ("timeline.png", "image/png")):
        reply = client.get(urls[name])
        assert reply.status_code == 200 and reply.mimetype == mimetype, name
        assert reply.headers["X-Content-Type-Options"] == "nosniff"
        assert reply.data == (up / "results" / token / name).read_bytes()
    # The overlay: VP8, at most 12 frames a second (the video has 10), the label drawn.
    capture = cv2.VideoCapture(str(up / "results" / token / "overlay.webm"))
    assert int(capture.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little") == b"VP80"
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    assert len(frames) == 30 and frames[0].shape == (36, 48, 3)
    assert frames[5][:4].mean() < 30 < frames[5][20:].mean()       # black band, grey video
    # Range requests (what a browser's video element sends) are answered in part.
    part = client.get(urls["overlay.webm"], headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and len(part.data) == 100
    # The strip: two views of four 16x16 frames, enlarged.
    import matplotlib.image
    strip = matplotlib.image.imread(str(up / "results" / token / "strip.png"))
    assert strip.shape[1] >= 4 * 96 and strip.shape[0] > 2 * (96 + 16)
    assert "2 views (clips x crops)" in html


def test_results_are_served_only_by_token_and_fixed_name(tmp_path):
    up = tmp_path / "up"
    client = _client(SeeingPredictor(), up)
    video = _video(tmp_path / "clip.avi")
    html = _upload(client, "/", "clip.avi", video.read_bytes()).get_data(as_text=True)
    token = MEDIA_URL.search(html).group(1)
    (tmp_path / "secret.png").write_bytes(b"secret")
    (up / "results" / token / "notes.png").write_bytes(b"not served")
    for url in (f"/results/{token}/notes.png", f"/results/{token}/../../secret.png",
                f"/results/{token}/%2e%2e%2f%2e%2e%2fsecret.png", f"/results/{token.upper()}/"
                "strip.png", f"/results/{token[:-1]}/strip.png", "/results/../secret.png",
                f"/results/{'0' * 32}/strip.png", f"/results/{token}/strip.png/"):
        r = client.get(url)
        assert r.status_code == 404, url
        assert b"secret" not in r.data and b"not served" not in r.data
    assert client.get(f"/results/{token}/strip.png").status_code == 200


def test_results_expire_and_are_bounded(tmp_path, monkeypatch):
    from trainers import serve
    up = tmp_path / "up"
    client = _client(SeeingPredictor(), up, keep_minutes=0.005)        # 0.3 s
    video = _video(tmp_path / "clip.avi").read_bytes()
    url = MEDIA_URL.search(_upload(client, "/", "clip.avi", video).get_data(as_text=True))
    assert client.get(url.group(0)).status_code == 200
    time.sleep(0.5)
    r = client.get(url.group(0))
    assert r.status_code == 404 and "it may have expired" in r.get_data(as_text=True)
    assert list((up / "results").iterdir()) == []
    monkeypatch.setattr(serve, "MAX_KEPT_RESULTS", 2)
    client = _client(SeeingPredictor(), tmp_path / "up2")
    tokens = [MEDIA_URL.search(_upload(client, "/", "clip.avi", video).get_data(
        as_text=True)).group(1) for _ in range(3)]
    time.sleep(0.05)
    client.get("/results/" + tokens[-1] + "/strip.png")               # sweeps
    assert sorted(p.name for p in (tmp_path / "up2" / "results").iterdir()) == sorted(
        tokens[1:])


def test_api_returns_the_urls_with_media_1(tmp_path):
    client = _client(SeeingPredictor(), tmp_path / "up")
    video = _video(tmp_path / "clip.avi").read_bytes()
    plain = _upload(client, "/api/predict", "clip.avi", video).get_json()
    assert "media" not in plain and _files_under(tmp_path / "up") == []
    out = _upload(client, "/api/predict", "clip.avi", video, media="1").get_json()
    media = out["media"]
    assert set(media) == {"overlay", "strip", "timeline", "windows", "expires_in_s"}
    assert media["expires_in_s"] == 600
    assert MEDIA_URL.fullmatch(media["overlay"]) and MEDIA_URL.fullmatch(media["timeline"])
    assert [(w["start"], w["label"]) for w in media["windows"]] == [(0.0, "walk"), (1.0, "run")]
    assert client.get(media["strip"]).status_code == 200


def test_a_failure_making_pictures_keeps_the_prediction(tmp_path, caplog):
    client = _client(SeeingPredictor(windows_error=RuntimeError("no windows")), tmp_path / "up")
    video = _video(tmp_path / "clip.avi").read_bytes()
    r = _upload(client, "/", "clip.avi", video)
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and 'id="predictions"' in html and 'id="seen"' not in html
    assert "making the pictures of clip.avi failed" in caplog.text
    assert _files_under(tmp_path / "up") == ["results"]


def test_short_video_has_no_timeline_and_create_app_checks_windows(tmp_path):
    from trainers import serve
    fake = SeeingPredictor()
    client = _client(fake, tmp_path / "up", window=5.0)                # the video is 3 s
    html = _upload(client, "/", "clip.avi",
                   _video(tmp_path / "clip.avi").read_bytes()).get_data(as_text=True)
    assert fake.window_calls == [] and 'id="timeline"' not in html and 'id="overlay"' in html
    for kwargs in (dict(window=0), dict(hop=-1), dict(keep_minutes=0)):
        with pytest.raises(ValueError, match="must be positive"):
            serve.create_app(fake, upload_dir=str(tmp_path / "x"), **kwargs)


def test_keypoint_uploads_get_a_frame_timeline(tmp_path):
    from trainers import serve
    frames = ["kick"] * 5 + ["other"] * 3 + ["kick"] * 2
    probabilities = [[0.2, 0.8] if f == "kick" else [0.7, 0.3] for f in frames]
    result = {"top_k": [{"label": "kick", "probability": 0.6}], "fps": 10.0,
              "frame_labels": frames, "frame_numbers": list(range(10)),
              "frame_probabilities": probabilities}
    made = serve.make_media(FakePredictor(classes=("other", "kick"), modality="keypoints"),
                            str(tmp_path / "seq"), "keypoints", result, None, str(tmp_path),
                            window=2.0, hop=1.0, filename="seq.zip", top_k=2)
    assert (made["overlay"], made["strip"], made["timeline"]) == (None, None, "timeline.png")
    from trainers import overlay
    assert overlay.frame_segments(frames, probabilities, [i / 10 for i in range(10)], 0.1) == [
        (0.0, pytest.approx(0.5), "kick", pytest.approx(0.8)),
        (0.5, pytest.approx(0.8), "other", pytest.approx(0.7)),
        (0.8, pytest.approx(1.0), "kick", pytest.approx(0.8))]
    import matplotlib.image
    image = matplotlib.image.imread(str(tmp_path / "timeline.png"))
    assert image.shape[0] > 250 and image.shape[1] == 1050


# --------------------------------------------------------------------------
# The entry point's flags (no model loads).
# --------------------------------------------------------------------------
def test_cli_help_and_user_mistakes(tmp_path):
    r = run_module("trainers.serve", "--help")
    assert r.returncode == 0, r.stderr
    for flag in ("--workdir", "--checkpoint", "--host", "--port", "--max_upload_mb",
                 "--frame_size", "--window", "--hop", "--keep_minutes", "--[no]verbose:"):
        assert flag in r.stdout, flag
    cases = [((), "error: --workdir is required (python -m trainers.serve --workdir runs/demo)"),
             ((f"--workdir={tmp_path / 'none'}",), f"error: workdir {tmp_path / 'none'} does "
                                                    "not exist"),
             (("--workdir=w", "--max_upload_mb=0"), "error: --max_upload_mb must be positive, "
                                                    "got 0"),
             (("--workdir=w", "--port=70000"), "error: --port must be from 0 to 65535, got "
                                               "70000"),
             (("--workdir=w", "--frame_size=1920"), "error: --frame_size must look like "
                                                    "1920x1080 (WIDTHxHEIGHT), got '1920'"),
             (("--workdir=w", "--window=0"), "error: --window must be positive, got 0"),
             (("--workdir=w", "--keep_minutes=-1"), "error: --keep_minutes must be positive, "
                                                    "got -1"),
             (("--workdir=w", "--nosuchflag"), "error: Unknown command line flag 'nosuchflag'\n"
                                               "Run with --help to see every flag.")]
    for args, line in cases:
        r = run_module("trainers.serve", *args)
        assert (r.returncode, r.stderr.strip()) == (2, line), (args, r.stderr)


def test_cli_port_in_use_and_frame_size_for_a_video_model(tiny_video_run):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = run_module("trainers.serve", f"--workdir={tiny_video_run}", f"--port={port}")
        assert r.returncode == 2
        assert r.stderr.strip() == f"error: cannot listen on 127.0.0.1:{port}: the port is in use"
        r = run_module("trainers.serve", f"--workdir={tiny_video_run}", f"--port={port}",
                       "--frame_size=640x480")
    assert r.returncode == 2
    assert r.stderr.strip() == (f"error: --frame_size is for keypoint models; {tiny_video_run} "
                                "holds a video model")


# --------------------------------------------------------------------------
# The app with the real predictor of the tiny run, on real media.
# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_predictor(tiny_video_run):
    return _predict_module().Predictor.from_workdir(str(tiny_video_run), checkpoint="best")


@pytest.mark.real
def test_api_predicts_a_real_video(real_predictor, tiny_video_run, real_dir, tmp_path):
    video = real_dir / REAL_VIDEO
    classes = json.loads((tiny_video_run / "classes.json").read_text())
    client = _client(real_predictor, tmp_path / "up")
    info = client.get("/api/info").get_json()
    assert (info["classes"], info["modality"]) == (classes, "video")
    r = _upload(client, "/api/predict", video.name, video.read_bytes(), top_k="3")
    assert r.status_code == 200, r.get_data(as_text=True)
    out = r.get_json()
    direct = real_predictor.predict(str(video), top_k=3)
    assert out["filename"] == "ucf_like_320x240_fmp4.avi"
    assert out["top_k"] == [{"label": p["label"], "index": p["index"],
                             "probability": pytest.approx(float(p["probability"]), abs=1e-6)}
                            for p in direct["top_k"]]
    assert len(out["probabilities"]) == len(classes)
    assert sum(out["probabilities"]) == pytest.approx(1.0, abs=1e-4)
    assert [classes[p["index"]] for p in out["top_k"]] == [p["label"] for p in out["top_k"]]
    assert _files_under(tmp_path / "up") == []


@pytest.mark.real
def test_predict_seen_is_predict_and_the_model_input(real_predictor, real_dir):
    import numpy as np
    video = str(real_dir / REAL_VIDEO)
    result, seen = real_predictor.predict_seen(video, top_k=3)
    assert result == real_predictor.predict(video, top_k=3)
    (view,) = seen["views"]                       # the tiny run: one clip, one crop
    assert view.dtype == np.uint8 and view.shape == (8, 32, 32, 3)
    assert seen["positions"] == [list(range(8))]
    assert seen["source_indices"] == result["sampled_frames"]
    assert seen["source_frames"] == 164 and seen["fps"] == pytest.approx(25)
    assert seen["duration"] == pytest.approx(164 / 25)
    assert seen["times"][1] == pytest.approx(seen["source_indices"][1] / 25, abs=1e-3)


def test_api_corrupt_video_with_the_real_predictor(real_predictor, tmp_path):
    client = _client(real_predictor, tmp_path / "up")
    r = _upload(client, "/api/predict", "holiday.mp4", b"this is a text file, not a video\n" * 50)
    assert r.status_code == 422, r.get_data(as_text=True)
    assert r.get_json()["error"].startswith("cannot read 'holiday.mp4': ")
    assert _files_under(tmp_path / "up") == []


# --------------------------------------------------------------------------
# End to end: the real server and a real headless Chromium.
# --------------------------------------------------------------------------
def browser_paths(chromium=CHROMIUM, chromedriver=CHROMEDRIVER):
    """Debian's Chromium and its chromedriver; fails (never skips) when either is missing."""
    missing = [p for p in (chromium, chromedriver) if not os.access(p, os.X_OK)]
    if missing:
        pytest.fail(f"{' and '.join(missing)} missing: the upload page's browser tests need "
                    "Debian's chromium and chromedriver (apt-get install -y chromium "
                    "chromium-driver; .ci/run installs them)", pytrace=False)
    return chromium, chromedriver


def test_missing_browser_fails_loudly(tmp_path):
    with pytest.raises(pytest.fail.Exception, match=f"{tmp_path}/chromium missing: .*apt-get "
                                                    "install -y chromium chromium-driver"):
        browser_paths(chromium=str(tmp_path / "chromium"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post_file(url: str, path: pathlib.Path, data: bytes | None = None) -> tuple[int, dict]:
    """POSTs ``path`` (or ``data`` under its name) as the form field ``file``; (status, JSON)."""
    boundary = uuid.uuid4().hex
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{path.name}"\r\nContent-Type: application/octet-stream\r\n\r\n')
    data = path.read_bytes() if data is None else data
    body = head.encode() + data + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(url, data=body, headers={
        "Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(request, timeout=120) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


class Server:
    def __init__(self, url, proc, log, tmpdir):
        self.url, self.proc, self.log, self.tmpdir = url, proc, log, tmpdir

    def upload_dirs(self) -> list[pathlib.Path]:
        return sorted(self.tmpdir.glob("actionflow-serve-*"))


@pytest.fixture(scope="module")
def server(tiny_video_run, tmp_path_factory):
    """``python -m trainers.serve`` on a free local port; its TMPDIR is a test folder."""
    base = tmp_path_factory.mktemp("serve")
    tmpdir = base / "tmp"
    tmpdir.mkdir()
    port = _free_port()
    log = base / "server.log"
    env = dict(os.environ, TMPDIR=str(tmpdir), PYTHONUNBUFFERED="1")
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "trainers.serve",
                                 f"--workdir={tiny_video_run}", f"--port={port}",
                                 "--max_upload_mb=5"],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):  # until it answers (the model loads first)
        if proc.poll() is not None:
            pytest.fail(f"the server exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url + "/api/info", timeout=5):
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail(f"the server never answered:\n{log.read_text()}")
    yield Server(url, proc, log, tmpdir)
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium, chromedriver = browser_paths()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    yield driver
    driver.quit()


def _submit(browser, server, path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    browser.get(server.url + "/")
    assert browser.find_elements(By.ID, "predictions") == []
    browser.find_element(By.ID, "file").send_keys(str(path))
    browser.find_element(By.ID, "submit").click()
    WebDriverWait(browser, 120).until(
        lambda d: d.find_elements(By.ID, "predictions") or d.find_elements(By.ID, "error"))


@pytest.mark.integration
@pytest.mark.real
def test_browser_upload_shows_the_api_top_k(server, browser, real_dir):
    from selenium.webdriver.common.by import By
    video = real_dir / REAL_VIDEO
    status, api = _post_file(server.url + "/api/predict", video)
    assert status == 200, api
    _submit(browser, server, video)
    assert browser.title == "actionflow: cnn_rnn"
    assert browser.find_elements(By.ID, "error") == []
    assert browser.find_element(By.ID, "result-title").text == \
        "Top 5 for ucf_like_320x240_fmp4.avi"
    rows = browser.find_elements(By.CSS_SELECTOR, "#predictions tr.prediction")
    shown = [(row.find_element(By.CSS_SELECTOR, "td.label").text,
              row.find_element(By.CSS_SELECTOR, "td.probability").text,
              float(re.fullmatch(r"width: ([0-9.]+)%;", row.find_element(
                  By.CSS_SELECTOR, "div.bar").get_attribute("style")).group(1)))
             for row in rows]
    assert shown == [(p["label"], f"{p['probability']:.4f}",
                      float(f"{p['probability'] * 100:.1f}")) for p in api["top_k"]]
    assert len(shown) == 5
    # What the model saw: the overlay video plays, the strip and the timeline load.
    from selenium.webdriver.support.ui import WebDriverWait
    video = browser.find_element(By.ID, "overlay")
    WebDriverWait(browser, 60).until(lambda d: d.execute_script(
        "const v = document.getElementById('overlay'); return v.error || v.readyState >= 3"))
    state = browser.execute_script(
        "const v = document.getElementById('overlay'); return {error: v.error && v.error.code,"
        " ready: v.readyState, duration: v.duration, width: v.videoWidth,"
        " height: v.videoHeight, type: v.currentSrc}")
    assert state["error"] is None, state
    assert state["ready"] >= 3 and (state["width"], state["height"]) == (320, 240), state
    assert state["duration"] == pytest.approx(164 / 25, abs=0.5), state    # the whole video
    browser.execute_script("const v = document.getElementById('overlay'); v.currentTime = 0;"
                           " v.play();")
    WebDriverWait(browser, 30).until(lambda d: d.execute_script(
        "const v = document.getElementById('overlay'); return !v.paused && v.currentTime > 0.3"))
    for image in ("strip", "timeline"):
        WebDriverWait(browser, 30).until(lambda d: d.execute_script(
            f"return document.getElementById('{image}').complete"))
        size = browser.execute_script(
            f"const i = document.getElementById('{image}'); return [i.naturalWidth, "
            f"i.naturalHeight]")
        assert size[0] > 300 and size[1] > 100, (image, size)
    assert video.get_attribute("src").startswith(server.url + "/results/")
    # The page fetched nothing but the upload's own results from this server (no CSS,
    # script, image or font from anywhere else).
    resources = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    assert resources and all(MEDIA_URL.fullmatch(r[len(server.url):]) for r in resources), \
        resources
    # Of the upload, only its results are left, in the private upload folder.
    (upload_dir,) = server.upload_dirs()
    assert [p.name for p in upload_dir.iterdir()] == ["results"]
    (token,) = (upload_dir / "results").iterdir()
    assert sorted(p.name for p in token.iterdir()) == ["overlay.webm", "strip.png",
                                                       "timeline.png"]
    assert (token / "overlay.webm").stat().st_size < 2_000_000


@pytest.mark.integration
def test_browser_upload_of_a_bad_file_shows_the_error_page(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    bad = tmp_path / "not_a_video.mp4"
    bad.write_text("plain text, not a video\n" * 100)
    _submit(browser, server, bad)
    assert browser.find_elements(By.ID, "predictions") == []
    assert browser.find_element(By.ID, "error").text.startswith(
        "422: cannot read 'not_a_video.mp4': ")
    status, api = _post_file(server.url + "/api/predict", bad)
    assert status == 422 and api["error"] == browser.find_element(By.ID, "error").text[5:]
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * (5 * 1024 * 1024 + 1))  # the server runs with --max_upload_mb=5
    too_large = "the upload is larger than the 5 MiB limit (--max_upload_mb)"
    assert _post_file(server.url + "/api/predict", big) == (413, {"error": too_large})
    _submit(browser, server, big)
    assert browser.find_elements(By.ID, "predictions") == []
    assert browser.find_element(By.ID, "error").text == f"413: {too_large}"
    (upload_dir,) = server.upload_dirs()
    assert [p.name for p in upload_dir.iterdir()] in ([], ["results"])   # no upload kept


@pytest.mark.integration
def test_server_stops_on_sigterm_and_removes_its_temporary_folders(server):
    """SIGTERM (systemctl stop, a scheduler) as Ctrl-C: one line, exit 143, no upload or
    predictor folder left in the temporary folder."""
    assert len(server.upload_dirs()) == 1
    assert len(list(server.tmpdir.glob("actionflow-predict-*"))) == 1
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=60) == 143, server.log.read_text()
    log = server.log.read_text()
    assert f"at {server.url}/  (Ctrl-C stops)" in log
    assert log.count("[serve] stopped by SIGTERM: no upload is kept") == 1
    assert "Traceback" not in log
    assert server.upload_dirs() == []
    assert list(server.tmpdir.glob("actionflow-*")) == []
