"""The readers on records written by the real build, and under tf.distribute."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT, run_module
from pipeline import synthetic
from test_reader import elements
from tfrecords import reader, schema

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def video_build(tmp_path_factory) -> str:
    """A real build of a synthetic UCF101 tree: 5 classes x (2 train + 1 test), 24 frames, PNG."""
    root = tmp_path_factory.mktemp("ucf")
    synthetic.write_ucf101_layout(str(root / "data"), {"train": 2, "test": 1}, num_frames=24,
                                  size=(48, 64), seed=1)
    r = run_module("pipeline.build", "--dataset=ucf101", f"--data_dir={root / 'data'}",
                   f"--output_dir={root / 'out'}", "--config_name=all", "--sampling=all",
                   "--size=32x24", "--image_format=png", "--num_shards=2",
                   "--direct_num_workers=1", "--progress=false")
    assert r.returncode == 0, r.stderr[-4000:]
    return str(root / "out" / "ucf101" / "all")


def test_eval_reads_every_build_record_with_exact_frames(video_build):
    info = schema.read_dataset_info(video_build)
    ds = reader.make_dataset(video_build, "test", training=False, batch_size=2, num_frames=8,
                             stride=2, crop_size=None, with_metadata=True)
    got = elements(ds)
    videos = np.concatenate([g[0] for g in got])
    labels = np.concatenate([g[1] for g in got])
    ids = [i.decode() for g in got for i in g[2]["video_id"]]
    assert len(ids) == info["splits"]["test"]["num_examples"] == 5
    assert [info["classes"][l] for l in labels] == [i.split("/")[0] for i in ids]
    by_id = {}
    for shard in info["splits"]["test"]["shards"]:
        for raw in tf.data.TFRecordDataset(os.path.join(video_build, shard)):
            p = schema.parse_clip(raw)
            by_id[p["video_id"].numpy().decode()] = schema.decode_frames(p["frames"], "png")
    for video, video_id in zip(videos, ids):    # 24 frames, span 15: centred offset 4
        np.testing.assert_array_equal(video, by_id[video_id].numpy()[4:20:2])
    assert video.shape == (8, 24, 32, 3)


def test_training_batches_from_the_build(video_build):
    ds = reader.make_dataset(video_build, "train", training=True, batch_size=4, num_frames=8,
                             crop_size=16, scale_jitter=(16, 24), flip=True,
                             flip_label_swap={"SwipeLeft": "SwipeRight"})
    video, label = elements(ds, 1)[0]
    assert video.shape == (4, 8, 16, 16, 3) and video.dtype == np.uint8
    assert set(label.tolist()) <= set(range(5))


DISTRIBUTE_CODE = r"""
import json, os, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from tfrecords import reader
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
contexts = []
def dataset_fn(ctx):
    contexts.append([ctx.num_input_pipelines, ctx.input_pipeline_id,
                     ctx.get_per_replica_batch_size(6)])
    return reader.make_dataset(sys.argv[1], "train", training=True, batch_size=6, seed=0,
                               num_frames=4, crop_size=16, input_context=ctx)
dist = strategy.distribute_datasets_from_function(dataset_fn)
video, label = next(iter(dist))
shapes = [v.shape.as_list() for v in strategy.experimental_local_results(video)]
print(json.dumps({"contexts": contexts, "shapes": shapes,
                  "replicas": strategy.num_replicas_in_sync}))
sys.stdout.flush()
os._exit(0)
"""


def test_distribute_datasets_from_function_gives_per_replica_batches(video_build):
    proc = subprocess.run([sys.executable, "-c", DISTRIBUTE_CODE, video_build], cwd=ROOT,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])
    assert out["replicas"] == 2
    assert out["contexts"] == [[1, 0, 3]]              # one input pipeline, 6 // 2 per replica
    assert out["shapes"] == [[3, 4, 16, 16, 3]] * 2


@pytest.mark.real
def test_keypoint_reader_on_real_openpose_build(real_dir, tmp_path):
    soccer = real_dir / "soccer"
    r = run_module("pipeline.build", "--dataset=openpose", f"--data_dir={soccer / 'openpose'}",
                   f"--label_csv={soccer / 'labels.csv'}", "--id_column=kick",
                   "--label_column=direction", "--id_template=Kick_{id}",
                   f"--output_dir={tmp_path}", "--config_name=kicks",
                   "--direct_num_workers=1", "--progress=false")
    assert r.returncode == 0, r.stderr[-4000:]
    build = str(tmp_path / "openpose" / "kicks")
    parsed = {}
    for raw in tf.data.TFRecordDataset(reader.open_source(build, "train").files):
        p = schema.parse_keypoints(raw)
        parsed[p["video_id"].numpy().decode()] = p
    ds = reader.make_keypoint_dataset(build, "train", training=False, batch_size=64, window=32,
                                      num_points=25, with_metadata=True)
    assert ds.element_spec[0]["keypoints"].shape.as_list() == [None, 32, 25 * 3]
    got = elements(ds)
    starts = np.concatenate([g[2]["window_start"] for g in got])
    ids = [i.decode() for g in got for i in g[2]["video_id"]]
    keypoints = np.concatenate([g[0]["keypoints"] for g in got])
    labels = np.concatenate([g[1] for g in got])
    expected_windows = sum(len(range(0, int(p["num_frames"]) - 32 + 1, 32)) +
                           ((int(p["num_frames"]) - 32) % 32 != 0) for p in parsed.values())
    assert len(ids) == expected_windows and set(ids) == set(parsed) and len(parsed) == 20
    for row in (0, len(ids) - 1):
        p = parsed[ids[row]]
        s = int(starts[row])
        np.testing.assert_array_equal(keypoints[row], p["values"].numpy()[s:s + 32])
        assert labels[row] == int(p["label"])
