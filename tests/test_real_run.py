"""A model trained on real records, used every way: evaluated, predicted on its raw videos,
served, exported. Its raw test videos must predict exactly as the evaluation of their records."""
from __future__ import annotations

import csv
import io
import json
import pathlib

import numpy as np
import pytest

from trainers import evaluate, workdir

pytestmark = [pytest.mark.real, pytest.mark.integration]


@pytest.fixture(scope="module")
def evaluated(real_video_run, tmp_path_factory):
    """The real run evaluated on its test split: (run, out_dir, rows of predictions.csv)."""
    run = workdir.open_run(str(real_video_run))
    out = tmp_path_factory.mktemp("real_eval")
    metrics = evaluate.evaluate(run, split="test", out_dir=str(out), progress=False)
    with open(out / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert metrics["counts"]["videos"] == len(rows) == run.info["splits"]["test"]["num_examples"]
    return run, out, rows


def _raw_video(run_dir: pathlib.Path, row: dict) -> pathlib.Path:
    """The raw file of a predictions.csv row: <root>/data/<true class>/<video id's file name>."""
    data = run_dir.parent / "data"
    matches = [p for p in data.rglob("*.mp4") if p.name == pathlib.Path(row["video_id"]).name]
    assert len(matches) == 1, (row["video_id"], matches)
    return matches[0]


def test_raw_test_videos_predict_as_the_evaluation_of_their_records(real_video_run, evaluated):
    from trainers import predict
    run, _, rows = evaluated
    predictor = predict.Predictor.from_workdir(str(real_video_run))
    seen = set()
    for row in rows:
        path = _raw_video(real_video_run, row)
        assert path.parent.name == row["true_label"]
        result = predictor.predict(str(path), top_k=2)
        top = result["top_k"][0]
        assert top["label"] == row["predicted_label"], (path, result, row)
        assert abs(top["probability"] - float(row["probability"])) < 1e-5, (path, result, row)
        assert abs(result["probabilities"][run.classes.index(row["true_label"])]
                   - float(row["true_label_probability"])) < 1e-5
        seen.add(round(top["probability"], 5))
    assert len(seen) > 1          # the videos give different outputs: the equality means something


def test_upload_page_api_on_a_raw_test_video(real_video_run, evaluated):
    from trainers import predict, serve
    _, _, rows = evaluated
    app = serve.create_app(predict.Predictor.from_workdir(str(real_video_run)))
    client = app.test_client()
    path = _raw_video(real_video_run, rows[0])
    r = client.post("/api/predict", data={"file": (io.BytesIO(path.read_bytes()), path.name)},
                    content_type="multipart/form-data")
    assert r.status_code == 200, r.get_data(as_text=True)
    body = json.loads(r.get_data(as_text=True))
    assert body["top_k"][0]["label"] == rows[0]["predicted_label"]
    assert abs(body["top_k"][0]["probability"] - float(rows[0]["probability"])) < 1e-5


def test_tflite_float16_export_agrees_with_the_evaluation(real_video_run, evaluated, tmp_path):
    from trainers import export, tflite
    run, _, rows = evaluated
    export.export(str(real_video_run), "tflite", quantize="float16",
                  output=str(tmp_path / "fp16"))
    model = tflite.TFLiteModel(str(tmp_path / "fp16"))
    from tfrecords import reader
    d = run.config.data
    ds = reader.make_dataset(d.build_dir, "test", training=False, batch_size=1,
                             num_frames=d.num_frames, sampling=d.sampling, crop_size=d.crop_size,
                             crop="center", with_metadata=True)
    by_id = {row["video_id"]: row for row in rows}
    for video, _, meta in ds:
        probs = model(video.numpy())
        row = by_id[meta["video_id"].numpy()[0].decode()]
        assert run.classes[int(np.argmax(probs[0]))] == row["predicted_label"]
        assert abs(float(np.max(probs[0])) - float(row["probability"])) < 1e-3
