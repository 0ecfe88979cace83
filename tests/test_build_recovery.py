"""The build survives the real world: stopped by SIGTERM or Ctrl-C it says so in one line and
keeps its finished records; killed outright, the next build takes its folder over; a rerun
decodes only what is left and writes the same shards; every listed entry is accounted for."""
from __future__ import annotations

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, run_module, running
from pipeline import build, partial, synthetic
from tfrecords import schema

N_ITEMS = 240         # 48 videos x 5 classes


@pytest.fixture(scope="module")
def slow_data(tmp_path_factory) -> pathlib.Path:
    """A UCF101-layout dataset that takes two workers several seconds to build with every
    frame kept: long enough to stop a build after it has finished some parts."""
    root = tmp_path_factory.mktemp("recovery")
    synthetic.write_ucf101_layout(str(root / "data"), {"train": 40, "test": 8}, num_frames=48,
                                  size=(160, 120), seed=4)
    return root / "data"


def _args(data, out, name, *extra) -> list[str]:
    return ["--dataset=ucf101", f"--data_dir={data}", f"--output_dir={out}",
            f"--config_name={name}", "--sampling=all", "--size=320x240", "--num_shards=3",
            *extra]


def _shards(build_dir: pathlib.Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(build_dir.glob("*.tfrecord-*"))}


def _start(args, env=None, new_session=False) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pipeline.build", *args], cwd=ROOT,
                            env=dict(os.environ, **(env or {})), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=new_session)


def _wait_for_a_finished_part(proc, work: pathlib.Path, timeout: float = 180.0):
    """Waits until the build has closed a part (work it will keep); fails if it ends first."""
    deadline = time.monotonic() + timeout
    while not list(work.glob(f"{partial.PARTS_DIR}/*.part.json")):
        if proc.poll() is not None:
            pytest.fail(f"the build ended before it could be stopped:\n{proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("no part was finished in time")
        time.sleep(0.05)


def _workers_of(proc: subprocess.Popen) -> list[int]:
    """Processes still running that the build driver ``proc`` started for its local workers:
    its fork server and the workers forked from it (they keep the driver's command line),
    and fresh workers and worker commands (they carry the driver's id in their environment)."""
    found = []
    command = "".join(f"{arg}\0" for arg in proc.args).encode()
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            environ = pathlib.Path(f"/proc/{entry}/environ").read_bytes()
            cmdline = pathlib.Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if int(entry) != proc.pid and running(int(entry)) and (cmdline == command or
                             f"ACTIONFLOW_DRIVER_PID={proc.pid}\0".encode() in environ):
            found.append(int(entry))
    return found


def _stop_with_frozen_workers(proc: subprocess.Popen, stop) -> str:
    """Stops (SIGSTOP) the build's worker processes where they are, so the build is stopped
    mid-way however fast they are, then calls ``stop()`` (a signal to the driver, whose
    stop ends them); returns the driver's stderr. Whatever happens, no frozen process is
    left behind."""
    workers = _workers_of(proc)
    try:
        assert len(workers) >= 3, workers      # the fork server and the two workers at least
        for pid in workers:
            os.kill(pid, signal.SIGSTOP)
        stop()
        return proc.communicate(timeout=120)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in _workers_of(proc):          # only what is still the build's
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def _stop_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if "stopped by" in line]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr, stderr
    return lines[0]


@pytest.mark.integration
def test_sigterm_keeps_finished_records_and_the_rerun_writes_the_same_shards(slow_data,
                                                                            tmp_path):
    out, tmp = tmp_path / "out", tmp_path / "tmp"
    tmp.mkdir()
    work = out / "ucf101" / ".s.partial"
    proc = _start(_args(slow_data, out, "s", "--direct_num_workers=2"), env={"TMPDIR": str(tmp)})
    _wait_for_a_finished_part(proc, work)
    stderr = _stop_with_frozen_workers(proc, lambda: proc.send_signal(signal.SIGTERM))
    assert proc.returncode == 143, stderr
    line = _stop_line(stderr)
    match = re.fullmatch(r"\[build\] stopped by SIGTERM: (\d+) of 240 items finished and kept in "
                         r"(\S+)\. Resume with: python -m pipeline\.build (.+)", line)
    assert match and match.group(2) == str(work), line
    kept = int(match.group(1))
    assert 0 < kept < N_ITEMS
    assert match.group(3).split() == _args(slow_data, out, "s", "--direct_num_workers=2")
    assert _workers_of(proc) == []
    assert not (work / partial.LOCK).exists() and (work / partial.MANIFEST).exists()
    assert not (out / "ucf101" / "s").exists()
    assert list(tmp.iterdir()) == []                  # no progress folder left behind

    again = run_module("pipeline.build", *_args(slow_data, out, "s", "--direct_num_workers=2"),
                       env={"TMPDIR": str(tmp)})
    assert again.returncode == 0, again.stderr
    assert (f"[build] resuming: {kept} of 240 items were finished by a stopped build in {work}; "
            f"decoding the other {N_ITEMS - kept}") in again.stderr
    assert f"items_written={N_ITEMS - kept}," in again.stderr     # only the rest was decoded
    assert not work.exists() and list(tmp.iterdir()) == []

    # The same records, byte for byte, as a build that was never stopped.
    whole = run_module("pipeline.build", *_args(slow_data, out, "whole", "--noprogress",
                                                "--direct_num_workers=2"))
    assert whole.returncode == 0, whole.stderr
    resumed, whole = _shards(out / "ucf101" / "s"), _shards(out / "ucf101" / "whole")
    assert len(resumed) == 6 and resumed == whole           # 3 shards of train and of test
    info = json.loads((out / "ucf101" / "s" / schema.DATASET_INFO_FILE).read_text())
    assert info["splits"]["train"]["per_class"] == {c: 40 for c in synthetic.CLASSES}
    assert sum(s["num_frames"] for s in info["splits"].values()) == N_ITEMS * 48


@pytest.mark.integration
def test_ctrl_c_in_a_terminal_stops_the_build_and_its_workers(slow_data, tmp_path):
    """Ctrl-C reaches the whole process group; with --noresume nothing is kept."""
    out = tmp_path / "out"
    work = out / "ucf101" / ".c.partial"
    proc = _start(_args(slow_data, out, "c", "--direct_num_workers=2", "--noresume"),
                  new_session=True)
    _wait_for_a_finished_part(proc, work)
    stderr = _stop_with_frozen_workers(proc, lambda: os.killpg(proc.pid, signal.SIGINT))
    assert proc.returncode == 130, stderr
    assert _stop_line(stderr).startswith(
        "[build] stopped by SIGINT: nothing kept (--noresume). Resume with: python -m "
        "pipeline.build ")
    assert _workers_of(proc) == []
    assert not work.exists() and not (out / "ucf101" / "c").exists()
    assert not out.exists()         # the folders the build made, empty, are gone too


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, timeout=60)
    return int(done.stdout)


def _tiny(tmp_path) -> pathlib.Path:
    data = tmp_path / "data"
    synthetic.write_ucf101_layout(str(data), {"train": 2, "test": 1}, num_frames=8,
                                  size=(32, 24), seed=5)
    return data


def _build(data, out, name, *extra) -> int:
    return build.build_main(["build", "--dataset=ucf101", f"--data_dir={data}",
                             f"--output_dir={out}", f"--config_name={name}", "--noprogress",
                             "--direct_running_mode=in_memory", "--direct_num_workers=1",
                             "--sampling=uniform", "--num_frames=4", *extra])


def test_a_live_build_of_the_same_config_is_refused(tmp_path, capsys):
    data, out = _tiny(tmp_path), tmp_path / "out"
    work = out / "ucf101" / ".t.partial"
    work.mkdir(parents=True)
    (work / partial.LOCK).write_text(json.dumps(partial.this_process()))   # this process: alive
    assert _build(data, out, "t") == 2
    err = capsys.readouterr().err
    assert re.search(rf"error: another build of this config is running \(process {os.getpid()} "
                     rf"on \S+, started \S+\) and holds {re.escape(str(work))}; wait for it", err)
    assert (work / partial.LOCK).exists() and not (out / "ucf101" / "t").exists()


def test_a_dead_build_is_taken_over_and_old_temporary_folders_go(tmp_path, capsys):
    data, out = _tiny(tmp_path), tmp_path / "out"
    work = out / "ucf101" / ".t.partial"
    (work / partial.PARTS_DIR).mkdir(parents=True)
    dead = dict(partial.this_process(), pid=_dead_pid())
    (work / partial.LOCK).write_text(json.dumps(dead))
    (work / partial.PARTS_DIR / "train-00000-abc.part").write_bytes(b"half a record")
    legacy = out / "ucf101" / ".t.tmp-0123abcd"                 # an older build's leftovers
    legacy.mkdir()
    (legacy / "train.tfrecord-00000-of-00001").write_bytes(b"x" * 1000)
    assert _build(data, out, "t") == 0
    err = capsys.readouterr().err
    assert f"[build] removed {legacy}, left by a build that was killed" in err
    assert sorted(p.name for p in (out / "ucf101").iterdir()) == ["t"]
    assert sorted(p.name for p in (out / "ucf101" / "t").iterdir()) == [
        "dataset_info.json", "errors.jsonl", "test.tfrecord-00000-of-00001",
        "train.tfrecord-00000-of-00001"]


def test_a_stopped_build_of_other_settings_is_not_reused(tmp_path, capsys):
    data, out = _tiny(tmp_path), tmp_path / "out"
    work = out / "ucf101" / ".t.partial"
    work.mkdir(parents=True)
    partial.write_manifest(str(work), "another fingerprint", {"train": 1, "test": 1})
    assert _build(data, out, "t") == 0
    assert (f"[build] not reusing the stopped build in {work} (it had other settings or "
            "another listing): starting over") in capsys.readouterr().err


# --------------------------------------------------------------------------
# Accounting: every listed entry is written or quarantined, with its path and reason.
# --------------------------------------------------------------------------
def _info_and_errors(build_dir: pathlib.Path):
    info = json.loads((build_dir / schema.DATASET_INFO_FILE).read_text())
    errors = [json.loads(line) for line in (build_dir / schema.ERRORS_FILE).read_text()
              .splitlines()]
    return info, errors


@pytest.mark.real
def test_folders_named_like_videos_and_broken_links_are_accounted_for(real_dir, tmp_path):
    data = tmp_path / "data"
    for cls, names in {"kick": ("Kick 1.mp4", "Kick 2.mp4", "Kick 3.mp4"),
                       "walk": ("a.avi", "b.avi")}.items():
        (data / cls).mkdir(parents=True)
        for name in names:
            real = (real_dir / "soccer" / "videos" / name if cls == "kick"
                    else real_dir / "videos" / "ucf_like_320x240_fmp4.avi")
            (data / cls / name).symlink_to(real)
    odd = {data / "kick" / "folder.mp4": "not_a_file", data / "walk" / "loop.avi": "broken_link",
           data / "walk" / "gone.mkv": "broken_link"}
    (data / "kick" / "folder.mp4").mkdir()
    (data / "walk" / "loop.avi").symlink_to("loop.avi")
    (data / "walk" / "gone.mkv").symlink_to(tmp_path / "nowhere.mkv")
    out = tmp_path / "out"
    assert build.build_main(["build", "--dataset=folder", f"--data_dir={data}",
                             f"--output_dir={out}", "--config_name=f", "--noprogress",
                             "--direct_running_mode=in_memory", "--direct_num_workers=1",
                             "--sampling=uniform", "--num_frames=4", "--size=32x24",
                             "--max_failure_ratio=0.5"]) == 0
    info, errors = _info_and_errors(out / "folder" / "f")
    split = info["splits"]["train"]
    assert (split["listed"], split["num_items"], split["quarantined"]) == (8, 5, 3)
    assert {e["path"]: e["reason"] for e in errors} == {str(p): r for p, r in odd.items()}
    assert all(e["split"] == "train" and e["stage"] == "list" for e in errors)


def _write_json(path: pathlib.Path, text: str):
    path.write_text(text)


@pytest.mark.real
def test_bad_openpose_files_are_masked_frames_or_named_strays(real_dir, tmp_path):
    """A 400-digit number, 100,000 nested brackets, a name without a frame number and a
    stray frame number far from the rest: each is one named bad file, and the sequence is
    written with every other frame."""
    data = tmp_path / "openpose"
    data.mkdir()
    real = sorted((real_dir / "soccer" / "openpose").glob("Kick_1_*_keypoints.json"))
    for path in real:
        (data / path.name).symlink_to(path)
    n = len(real)
    huge, deep = real[3].name, real[4].name
    for name in (huge, deep):
        (data / name).unlink()
    person = {"pose_keypoints_2d": [int("9" * 400)] + [0.5] * 74}
    _write_json(data / huge, json.dumps({"version": 1.3, "people": [person]}))
    _write_json(data / deep, "[" * 100_000 + "]" * 100_000)
    _write_json(data / "Kick_1_keypoints.json", '{"people": []}')          # no frame number
    _write_json(data / "Kick_1_999999999999_keypoints.json", '{"people": []}')  # a stray
    out = tmp_path / "out"
    assert build.build_main(["build", "--dataset=openpose", f"--data_dir={data}",
                             f"--output_dir={out}", "--config_name=k", "--noprogress",
                             "--direct_running_mode=in_memory",
                             "--direct_num_workers=1"]) == 0
    info, errors = _info_and_errors(out / "openpose" / "k")
    split = info["splits"]["train"]
    assert (split["listed"], split["num_items"], split["quarantined"]) == (1, 1, 0)
    assert split["quarantined_files"] == 4
    assert {(pathlib.Path(e["path"]).name, e["reason"]) for e in errors} == {
        (huge, "non_finite"), (deep, "malformed_json"), ("Kick_1_keypoints.json", "bad_file_name"),
        ("Kick_1_999999999999_keypoints.json", "stray_frame_number")}
    assert all(e["stage"] == "file" and e["split"] == "train" for e in errors)
    import tensorflow as tf
    shard = out / "openpose" / "k" / info["splits"]["train"]["shards"][0]
    (record,) = [r.numpy() for r in tf.data.TFRecordDataset(str(shard))]
    parsed = schema.parse_keypoints(record)
    first = int(real[0].name.split("_")[2])
    assert parsed["source_indices"].numpy().tolist() == list(range(first, first + n))
    context = tf.train.SequenceExample.FromString(record).context.feature
    assert context[schema.KEYPOINTS_NUM_MISSING_FRAMES].int64_list.value[0] == 2   # masked


def test_a_build_that_keeps_nothing_leaves_no_empty_output_folders(tmp_path, capsys):
    (tmp_path / "data").mkdir()                     # no class folder: an empty dataset
    out = tmp_path / "new" / "out"
    assert build.build_main(["build", "--dataset=folder", f"--data_dir={tmp_path / 'data'}",
                             f"--output_dir={out}", "--noprogress"]) == 2
    assert "empty" in capsys.readouterr().err
    # OUTPUT_DIR and OUTPUT_DIR/DATASET are removed; folders above OUTPUT_DIR are left
    assert not out.exists() and (tmp_path / "new").exists()
    (out / "folder").mkdir(parents=True)                          # already there: kept
    assert build.build_main(["build", "--dataset=folder", f"--data_dir={tmp_path / 'data'}",
                             f"--output_dir={out}", "--noprogress"]) == 2
    assert (out / "folder").is_dir() and list((out / "folder").iterdir()) == []
