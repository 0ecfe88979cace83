"""The readers on s3:// paths, against a local S3-compatible server (moto) on 127.0.0.1.

Needs ``moto[server]`` and ``boto3`` (test requirements). The read runs in a
fresh interpreter that imports tensorflow_io (which registers s3://) and
ends with ``os._exit``: tensorflow-io's S3 client may abort at interpreter
exit once used.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from conftest import ROOT
from test_reader import clip, write_build

pytestmark = pytest.mark.integration

BUCKET = "records"

READ_CODE = r"""
import json, os, sys
import numpy as np
import tensorflow as tf
import tensorflow_io  # registers s3://
from tfrecords import reader
out = {}
ds = reader.make_dataset(sys.argv[1], "test", training=False, batch_size=2, num_frames=3,
                         stride=2, num_test_crops=3, crop_size=8, with_metadata=True)
rows = [(v.numpy(), l.numpy(), m) for v, l, m in ds]
out["frames"] = [r[0][:, :, 0, 0, 0].tolist() for r in rows]
out["origins"] = [r[0][:, 0, 0, 0, 1:].tolist() for r in rows]
out["labels"] = [r[1].tolist() for r in rows]
out["ids"] = [r[2]["video_id"].numpy().astype(str).tolist() for r in rows]
ds = reader.make_dataset(sys.argv[1], "train", training=True, batch_size=4, seed=1,
                         num_frames=2, crop_size=8)
video, label = next(iter(ds))
out["train"] = [video.shape.as_list(), sorted(set(label.numpy().tolist()))]
try:
    reader.make_dataset(sys.argv[2], "test", training=False, batch_size=1)
except Exception as e:
    out["missing"] = type(e).__name__
print(json.dumps(out))
sys.stdout.flush()
os._exit(0)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_server():
    """moto's S3 server on a free local port; yields its endpoint URL."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                             "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                assert proc.poll() is None, "moto.server exited (is moto[server] installed?)"
                assert time.monotonic() < deadline, "moto.server did not start in 30 s"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _env(endpoint: str) -> dict:
    return {
        "S3_ENDPOINT": endpoint, "S3_USE_HTTPS": "0", "S3_VERIFY_SSL": "0",
        "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_EC2_METADATA_DISABLED": "true",
        # Without these the SDK's default strategy retries with backoff for ~50 s.
        "AWS_RETRY_MODE": "standard", "AWS_MAX_ATTEMPTS": "2",
        "S3_CONNECT_TIMEOUT_MSEC": "5000", "S3_REQUEST_TIMEOUT_MSEC": "5000",
        "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }


def test_make_dataset_reads_a_build_on_s3(s3_server, tmp_path):
    import boto3
    build = write_build(tmp_path / "build", {
        "test": [[clip(10, 16, 20, label=1, video_id="a")], [clip(4, 16, 20, label=2,
                                                                 video_id="b")]],
        "train": [[clip(6, label=0), clip(6, label=2)]],
    })
    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    s3.create_bucket(Bucket=BUCKET)
    for name in sorted(os.listdir(build)):
        s3.upload_file(os.path.join(build, name), BUCKET, f"ucf/demo/{name}")

    env = dict(os.environ, **_env(s3_server))
    proc = subprocess.run([sys.executable, "-c", READ_CODE, f"s3://{BUCKET}/ucf/demo",
                           f"s3://{BUCKET}/nothing/here"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, proc.stdout + proc.stderr[-4000:]
    out = json.loads(lines[-1])
    # Shard order, then record order; 3 crops along x of the 16x20 frames (y = 4).
    assert out["ids"] == [["a"] * 3 + ["b"] * 3]
    assert out["labels"] == [[1, 1, 1, 2, 2, 2]]
    assert out["frames"] == [[[2, 4, 6]] * 3 + [[0, 2, 0]] * 3]   # centred; 4 frames loop
    assert out["origins"] == [[[4, 0], [4, 6], [4, 12]] * 2]
    assert out["train"] == [[4, 2, 8, 8, 3], [0, 2]]
    assert out["missing"] == "FileNotFoundError"
