"""Damaged records: the framing and CRC check (tfrecords/integrity.py) and what training and
evaluation do with a damaged shard (refuse in one line naming it, or leave it out)."""
from __future__ import annotations

import gzip
import json
import pathlib
import shutil
import subprocess
import sys

import pytest
import tensorflow as tf

from conftest import ROOT
from tfrecords import integrity, reader, schema

RECORDS = [b"first record", b"", b"third \x00\xff record" * 50, b"fourth"]


def _shard(path: pathlib.Path, records=RECORDS) -> pathlib.Path:
    path.write_bytes(b"".join(schema.frame_record(r) for r in records))
    return path


def _offset(records, index: int) -> int:
    """Where record ``index`` starts in a shard of ``records``."""
    return sum(len(schema.frame_record(r)) for r in records[:index])


# --------------------------------------------------------------------------
# The check itself.
# --------------------------------------------------------------------------
def test_a_whole_shard_passes_and_reads_as_tf_data_reads_it(tmp_path):
    path = _shard(tmp_path / "good.tfrecord")
    scan = integrity.check_shard(str(path))
    assert scan.damage is None and scan.records == 4 and scan.bytes == path.stat().st_size
    assert list(integrity.iter_records(str(path))) == RECORDS
    assert [r.numpy() for r in tf.data.TFRecordDataset(str(path))] == RECORDS
    zipped = tmp_path / "good.tfrecord.gz"
    zipped.write_bytes(gzip.compress(path.read_bytes()))
    assert integrity.check_shard(str(zipped)).damage is None
    assert integrity.check_shard(str(zipped)).records == 4


@pytest.mark.parametrize("where, problem", [
    ("data", "data CRC mismatch"), ("data CRC", "data CRC mismatch"),
    ("length", "length CRC mismatch"), ("length CRC", "length CRC mismatch")])
def test_a_flipped_byte_is_found_at_its_record(tmp_path, where, problem):
    data = bytearray(_shard(tmp_path / "x").read_bytes())
    start = _offset(RECORDS, 2)
    at = {"length": 3, "length CRC": 9, "data": 12 + 40,
          "data CRC": 12 + len(RECORDS[2]) + 1}[where]
    data[start + at] ^= 0x10
    path = tmp_path / "bad.tfrecord"
    path.write_bytes(bytes(data))
    damage = integrity.check_shard(str(path), split="train").damage
    assert (damage.offset, damage.record, damage.split) == (start, 2, "train")
    assert damage.problem.startswith(problem)
    assert damage.describe() == f"{path} at byte {start} (record 2): {damage.problem}"
    assert damage.name == "bad.tfrecord"
    with pytest.raises(tf.errors.DataLossError):          # tf.data agrees it is damaged
        list(tf.data.TFRecordDataset(str(path)))


def test_truncated_and_missing_shards(tmp_path):
    data = _shard(tmp_path / "x").read_bytes()
    cut_data = tmp_path / "cut_data"
    cut_data.write_bytes(data[:_offset(RECORDS, 3) + 14])
    damage = integrity.check_shard(str(cut_data)).damage
    assert (damage.offset, damage.record) == (_offset(RECORDS, 3), 3)
    assert damage.problem.startswith("truncated data")
    cut_header = tmp_path / "cut_header"
    cut_header.write_bytes(data[:_offset(RECORDS, 1) + 5])
    damage = integrity.check_shard(str(cut_header)).damage
    assert damage.record == 1 and damage.problem.startswith("truncated header (5 of 12")
    missing = integrity.check_shard(str(tmp_path / "nope")).damage
    assert missing.problem == integrity.MISSING
    assert integrity.check_files([str(cut_data), str(tmp_path / "x"), str(cut_header)]) == [
        integrity.check_shard(str(cut_data)).damage,
        integrity.check_shard(str(cut_header)).damage]


def test_a_clean_build_passes(tiny_video_build):
    info = schema.read_dataset_info(str(tiny_video_build))
    assert integrity.check_splits(str(tiny_video_build), sorted(info["splits"])) == []
    files = integrity.split_files(str(tiny_video_build), "train")
    assert sum(integrity.check_shard(f).records for f in files) == \
        info["splits"]["train"]["num_examples"]


# --------------------------------------------------------------------------
# A damaged copy of the tiny build: train and test in two shards each, one record of
# train shard 1 and one of test shard 0 damaged.
# --------------------------------------------------------------------------
def _reshard(build: pathlib.Path, split: str, info: dict, count: int) -> None:
    records = [r for name in info["splits"][split]["shards"]
               for r in integrity.iter_records(str(build / name))]
    for name in info["splits"][split]["shards"]:
        (build / name).unlink()
    names = [schema.shard_name(split, i, count) for i in range(count)]
    for i, name in enumerate(names):
        _shard(build / name, records[i::count])
    info["splits"][split]["shards"] = names


def _damage(path: pathlib.Path, record: int) -> int:
    """Flips bytes inside record ``record``'s data; returns where the record starts."""
    records = list(integrity.iter_records(str(path)))
    start = _offset(records, record)
    data = bytearray(path.read_bytes())
    for k in range(4):
        data[start + 12 + len(records[record]) // 2 + k] ^= 0xFF
    path.write_bytes(bytes(data))
    return start


@pytest.fixture(scope="module")
def damaged(tiny_video_build, tmp_path_factory) -> dict:
    build = tmp_path_factory.mktemp("damaged") / "build"
    shutil.copytree(tiny_video_build, build)
    info = json.loads((build / schema.DATASET_INFO_FILE).read_text())
    for split in ("train", "test"):
        _reshard(build, split, info, 2)
    (build / schema.DATASET_INFO_FILE).write_text(json.dumps(info))
    clean = build.parent / "clean"
    shutil.copytree(build, clean)
    train_shard = build / info["splits"]["train"]["shards"][1]
    test_shard = build / info["splits"]["test"]["shards"][0]
    return {"build": build, "clean": clean, "info": info,
            "train": (train_shard, _damage(train_shard, 1)),
            "test": (test_shard, _damage(test_shard, 2))}


def _config(build, **data):
    from configs import common
    return common.experiment(
        model_name="conv3d", model=dict(filters=(2,), batch_norm=False, pooling="avg",
                                        dense_units=(8,)),
        data=dict(build_dir=str(build), num_frames=8, crop_size=32, crop="center",
                  sampling="uniform", **data),
        train=dict(epochs=1, steps_per_epoch=2, batch_size=2))


def _train(config, workdir):
    import keras
    from trainers import train
    try:
        return train.train(config, str(workdir))
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_the_check_finds_both_damaged_shards(damaged):
    found = integrity.check_splits(str(damaged["build"]), ["train", "test"], damaged["info"])
    assert [(pathlib.Path(d.path), d.offset, d.split) for d in found] == [
        (*damaged["train"], "train"), (*damaged["test"], "test")]
    assert integrity.check_splits(str(damaged["clean"]), ["train", "test"]) == []
    # the reader leaves out what it is told to, by file name
    source = reader.open_source(str(damaged["build"]), "train",
                                skip_shards=[damaged["train"][0].name])
    assert [pathlib.Path(f).name for f in source.files] == [damaged["info"]["splits"]["train"]
                                                            ["shards"][0]]


@pytest.mark.integration
def test_train_refuses_a_damaged_shard_in_one_line(damaged, tmp_path):
    config = tmp_path / "exp.py"
    config.write_text(
        "from configs import common\n\n\ndef get_config(arg=None):\n"
        "    return common.experiment(model_name='conv3d', model={'filters': (2,)},\n"
        f"        data=dict(build_dir={str(damaged['build'])!r}, num_frames=8, crop_size=32),\n"
        "        train=dict(epochs=1, steps_per_epoch=2, batch_size=2))\n")
    r = subprocess.run([sys.executable, "-m", "trainers.train", f"--config={config}",
                        f"--workdir={tmp_path / 'run'}"], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 2, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    lines = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    shard, offset = damaged["train"]
    assert lines == [
        f"error: damaged shard {shard} at byte {offset} (record 1): data CRC mismatch (the "
        "record's bytes are damaged) (and 1 more damaged shard(s)); training did not start "
        "(set --config.data.on_corrupt=skip to train without damaged shards). Check the "
        f"whole build with: python -m pipeline.verify {damaged['build']}"]
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.integration
def test_on_corrupt_skip_trains_on_the_other_shards_and_says_so(damaged, tmp_path, capsys):
    result = _train(_config(damaged["build"], on_corrupt="skip"), tmp_path)
    err = capsys.readouterr().err
    for split in ("train", "test"):
        shard, offset = damaged[split]
        assert f"[train] warning: skipping damaged shard {shard} at byte {offset}" in err
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["skipped_shards"] == result["skipped_shards"]
    assert [(s["shard"], s["split"], s["offset"]) for s in saved["skipped_shards"]] == [
        (damaged["train"][0].name, "train", damaged["train"][1]),
        (damaged["test"][0].name, "test", damaged["test"][1])]
    assert (tmp_path / "checkpoints" / "best.keras").is_file()


@pytest.mark.integration
def test_a_record_damaged_after_the_check_is_named_in_one_line(damaged, tmp_path,
                                                                monkeypatch):
    from trainers import data
    monkeypatch.setattr(data, "check_build", lambda *a, **k: [])     # damaged after the check
    with pytest.raises(data.CorruptData) as error:
        _train(_config(damaged["build"]), tmp_path)
    shard, offset = damaged["train"]
    assert str(error.value).startswith(f"damaged shard {shard} at byte {offset} (record 1)")
    assert "training stopped" in str(error.value) and "\n" not in str(error.value)


def test_evaluate_refuses_a_damaged_shard(damaged, tiny_video_run, tmp_path, capsys,
                                          monkeypatch):
    from trainers import data, evaluate
    argv = ["evaluate", f"--workdir={tiny_video_run}", f"--build_dir={damaged['build']}",
            f"--out_dir={tmp_path}", "--noprogress"]
    assert evaluate.evaluate_main(argv) == 2
    shard, offset = damaged["test"]
    assert capsys.readouterr().err == (
        f"error: damaged shard {shard} at byte {offset} (record 2): data CRC mismatch (the "
        "record's bytes are damaged); the evaluation did not start. Check the whole build "
        f"with: python -m pipeline.verify {damaged['build']}\n")
    # damaged after the check: named when tf.data meets it
    monkeypatch.setattr(data, "check_build", lambda *a, **k: [])
    assert evaluate.evaluate_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: damaged shard {shard} at byte {offset} (record 2)")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "metrics.json").exists()


def test_beam_evaluate_refuses_a_damaged_shard_before_the_pipeline(damaged, tiny_video_run,
                                                                  tmp_path, capsys):
    from trainers import beam_evaluate
    argv = ["beam_evaluate", f"--workdir={tiny_video_run}", f"--build_dir={damaged['build']}",
            f"--out_dir={tmp_path}", "--noprogress"]
    assert beam_evaluate.beam_evaluate_main(argv) == 2
    shard, offset = damaged["test"]
    err = capsys.readouterr().err
    assert err.startswith(f"error: damaged shard {shard} at byte {offset} (record 2)")
    assert err.count("\n") == 1 and not any(tmp_path.iterdir())
