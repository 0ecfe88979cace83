"""The build and the Beam evaluation on real cluster engines: a Dask scheduler with two
worker processes, and Beam's job service with an external SDK worker pool (the way Flink,
Spark and Dataflow run Python), all started here on 127.0.0.1 as separate processes. Each
engine must give the records, the errors and the predictions of the local runner."""
from __future__ import annotations

import csv
import hashlib
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import ROOT, run_module
from tfrecords import schema

pytestmark = pytest.mark.integration
BIN = pathlib.Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, log: pathlib.Path, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{proc.args} exited with {proc.returncode}:\n{log.read_text()}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    pytest.fail(f"nothing listens on {port} after {timeout:.0f}s:\n{log.read_text()}")


class Services:
    """Processes started for the tests, each stopped by its process id."""

    def __init__(self, folder: pathlib.Path):
        self.folder, self.procs = folder, []
        # The worker pool starts SDK workers with "python": this environment's.
        self.env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")

    def start(self, name: str, *cmd: str) -> tuple[subprocess.Popen, pathlib.Path]:
        log = self.folder / f"{name}.log"
        with open(log, "w") as out:
            proc = subprocess.Popen(list(cmd), cwd=ROOT, env=self.env, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc, log

    def stop(self):
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    """Beam options of each engine: local, Dask (scheduler + 2 workers) and the portable
    runner (job service + external worker pool)."""
    services = Services(tmp_path_factory.mktemp("engines"))
    try:
        scheduler_port, job_port, pool_port = _free_port(), _free_port(), _free_port()
        proc, log = services.start("dask-scheduler", str(BIN / "dask"), "scheduler", "--host",
                                   "127.0.0.1", "--port", str(scheduler_port), "--no-dashboard")
        _wait_for_port(scheduler_port, proc, log)
        for i in range(2):
            services.start(f"dask-worker-{i}", str(BIN / "dask"), "worker",
                           f"tcp://127.0.0.1:{scheduler_port}", "--nworkers", "1",
                           "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1")
        proc, log = services.start("job-service", sys.executable, "-m",
                                   "apache_beam.runners.portability.local_job_service_main",
                                   f"--port={job_port}")
        _wait_for_port(job_port, proc, log)
        proc, log = services.start("worker-pool", sys.executable, "-m",
                                   "apache_beam.runners.worker.worker_pool_main",
                                   f"--service_port={pool_port}")
        _wait_for_port(pool_port, proc, log)
        _wait_for_dask_workers(scheduler_port, 2)
        yield {
            "local": ["--direct_num_workers=2"],
            "dask": ["--runner=DaskRunner", f"--dask_client_address=127.0.0.1:{scheduler_port}"],
            "portable": ["--runner=PortableRunner", f"--job_endpoint=localhost:{job_port}",
                         "--environment_type=EXTERNAL",
                         f"--environment_config=localhost:{pool_port}"],
        }
    finally:
        services.stop()
    assert all(p.poll() is not None for p in services.procs)


def _wait_for_dask_workers(port: int, count: int, timeout: float = 120.0):
    from distributed import Client
    with Client(f"127.0.0.1:{port}", timeout=timeout) as client:
        client.wait_for_workers(count, timeout=timeout)


@pytest.fixture(scope="module")
def corpus(real_dir, tmp_path_factory) -> pathlib.Path:
    """Real videos of three kinds in two classes, and two bad files."""
    root = tmp_path_factory.mktemp("corpus")
    videos = {"kick/Kick 1.mp4": real_dir / "soccer" / "videos" / "Kick 1.mp4",
              "kick/Kick 2.mp4": real_dir / "soccer" / "videos" / "Kick 2.mp4",
              "other/ucf.avi": real_dir / "videos" / "ucf_like_320x240_fmp4.avi",
              "other/kinetics.mp4": real_dir / "videos" / "kinetics_like_340x256_h264.mp4"}
    for rel, real in videos.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).symlink_to(real)
    (root / "kick" / "broken.avi").write_text("not a video")
    (root / "other" / "empty.mp4").write_bytes(b"")
    return root


def _build(corpus, out, name, engine_args):
    temp = out.parent / f"{out.name}_tmp"         # the driver's temporary folder
    temp.mkdir()
    r = run_module("pipeline.build", "--dataset=folder", f"--data_dir={corpus}",
                   f"--output_dir={out}", f"--config_name={name}", "--sampling=uniform",
                   "--num_frames=4", "--size=48x32", "--test_fraction=0.4",
                   "--max_failure_ratio=0.5", "--num_shards=2", *engine_args,
                   env={"TMPDIR": str(temp)})
    assert r.returncode == 0, r.stderr[-4000:]
    assert "Traceback" not in r.stderr
    assert list(temp.iterdir()) == []          # nothing left behind, Beam's own files included
    return out / "folder" / name


def _digests(build_dir: pathlib.Path) -> dict[str, list[str]]:
    """Per split: the SHA-256 of every record, in shard order."""
    import tensorflow as tf
    info = schema.read_dataset_info(str(build_dir))
    return {split: [hashlib.sha256(r.numpy()).hexdigest()
                    for shard in s["shards"]
                    for r in tf.data.TFRecordDataset(str(build_dir / shard))]
            for split, s in sorted(info["splits"].items())}


def _reasons(build_dir: pathlib.Path) -> list[tuple[str, str]]:
    rows = [json.loads(line) for line in (build_dir / schema.ERRORS_FILE).read_text()
            .splitlines()]
    return sorted((pathlib.Path(r["path"]).name, r["reason"]) for r in rows)


@pytest.mark.slow
def test_every_engine_builds_the_same_records(engines, corpus, tmp_path):
    builds = {name: _build(corpus, tmp_path / name, "c", args) for name, args in engines.items()}
    local = builds.pop("local")
    want = _digests(local)
    assert sum(len(v) for v in want.values()) == 4
    assert _reasons(local) == [("broken.avi", "cannot_open"), ("empty.mp4", "empty_file")]
    for name, build_dir in builds.items():
        assert _digests(build_dir) == want, name
        assert _reasons(build_dir) == _reasons(local), name
        shards = sorted(p.name for p in build_dir.glob("*.tfrecord-*"))
        assert shards == sorted(p.name for p in local.glob("*.tfrecord-*")), name
        for shard in shards:
            assert (build_dir / shard).read_bytes() == (local / shard).read_bytes(), name


def test_dask_runner_by_its_short_name_starts_a_local_cluster(corpus, tmp_path):
    """No address: a local Dask cluster for the run, closed after it; quiet output."""
    build_dir = _build(corpus, tmp_path / "d", "c", ["--runner=DaskRunner"])
    assert sum(len(v) for v in _digests(build_dir).values()) == 4


def _predictions(out_dir: pathlib.Path) -> list[dict]:
    with open(out_dir / "predictions.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_every_engine_evaluates_alike(engines, real_video_run, tmp_path):
    """The Beam evaluation of a run trained on the real soccer videos, on each engine."""
    got = {}
    for name, args in engines.items():
        out, shared = tmp_path / name, tmp_path / f"{name}_temp"   # what workers share
        temp = tmp_path / f"{name}_tmp"                  # the driver's temporary folder
        shared.mkdir()
        temp.mkdir()
        extra = [] if name == "local" else [f"--temp_location={shared}"]
        r = run_module("trainers.beam_evaluate", f"--workdir={real_video_run}", "--split=test",
                       f"--out_dir={out}", "--noprogress", *args, *extra,
                       env={"TMPDIR": str(temp)})
        assert r.returncode == 0, f"{name}: {r.stderr[-4000:]}"
        assert "Traceback" not in r.stderr, name
        got[name] = _predictions(out)
        assert list(shared.iterdir()) == [], name          # its temporary files are gone
        assert list(temp.iterdir()) == [], name            # Beam's and TensorFlow's too
    local = got.pop("local")
    assert len(local) == json.loads((real_video_run / "dataset_info.json").read_text())[
        "splits"]["test"]["num_examples"]
    for name, rows in got.items():
        assert [r["video_id"] for r in rows] == [r["video_id"] for r in local], name
        assert [r["predicted_label"] for r in rows] == [r["predicted_label"] for r in local]
        for a, b in zip(rows, local):
            assert abs(float(a["probability"]) - float(b["probability"])) < 1e-5, name


def _jobs(endpoint: str) -> dict[str, int]:
    """job id -> state (beam_job_api_pb2.JobState) of every job the job service knows."""
    import grpc
    from apache_beam.portability.api import beam_job_api_pb2, beam_job_api_pb2_grpc
    with grpc.insecure_channel(endpoint) as channel:
        stub = beam_job_api_pb2_grpc.JobServiceStub(channel)
        reply = stub.GetJobs(beam_job_api_pb2.GetJobsRequest(), timeout=10)
    return {job.job_id: job.state for job in reply.job_info}


def _scheduler_tasks(address: str) -> int:
    """How many tasks the Dask scheduler at ``address`` holds."""
    from distributed import Client
    with Client(address, timeout=30) as client:
        return client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))


def _start_long_build(engine_args, real_dir, tmp_path) -> tuple[subprocess.Popen, pathlib.Path]:
    """A build of 60 links of a 1080p video, every frame: long enough to be running when
    stopped."""
    data = tmp_path / "many"
    for name in ("a", "b"):
        (data / name).mkdir(parents=True)
        for i in range(30):
            (data / name / f"kick{i}.mp4").symlink_to(real_dir / "soccer" / "videos" /
                                                     "Kick 1.mp4")
    log = tmp_path / "build.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline.build", "--dataset=folder", f"--data_dir={data}",
             f"--output_dir={tmp_path / 'out'}", "--sampling=all", "--size=64x36",
             *engine_args], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    return proc, log


def _wait_until(what, proc: subprocess.Popen, log: pathlib.Path, timeout: float = 120.0):
    """``what()``'s first true value, polled while the build runs; fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        found = what()
        if found:
            return found
        time.sleep(0.2)
    pytest.fail(f"not seen while the build ran:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen, log: pathlib.Path) -> str:
    """SIGTERM to the build; its output, once it has ended with 143 and its one line."""
    try:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 143, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    text = log.read_text()
    assert "[build] stopped by SIGTERM" in text and "Traceback" not in text, text[-3000:]
    assert "its job on the runner was cancelled" in text, text[-3000:]
    return text


@pytest.mark.slow
def test_a_stopped_build_cancels_its_dask_tasks(engines, real_dir, tmp_path):
    """SIGTERM to a build on a Dask cluster: exit 143 with its one line, and the
    scheduler lets go of every task of the run (none starts after the stop)."""
    address = next(a.split("=", 1)[1] for a in engines["dask"]
                   if a.startswith("--dask_client_address="))
    proc, log = _start_long_build(engines["dask"], real_dir, tmp_path)
    _wait_until(lambda: _scheduler_tasks(address) > 0, proc, log)
    _stop(proc, log)
    deadline = time.monotonic() + 60
    while _scheduler_tasks(address) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _scheduler_tasks(address) == 0


@pytest.mark.slow
def test_a_stopped_build_cancels_its_job(engines, real_dir, tmp_path):
    """SIGTERM to a build running on a job service: exit 143 with its one line, and its
    job is cancelled there instead of left running for nobody (Beam's local job service
    only marks it cancelled; Flink's, Spark's and Dataflow's stop it). Last in this file:
    the local service's workers may still finish the job."""
    from apache_beam.portability.api import beam_job_api_pb2
    State = beam_job_api_pb2.JobState
    endpoint = next(a.split("=", 1)[1] for a in engines["portable"]
                    if a.startswith("--job_endpoint="))
    before = set(_jobs(endpoint))
    proc, log = _start_long_build(engines["portable"], real_dir, tmp_path)
    job = _wait_until(lambda: next((j for j, s in _jobs(endpoint).items()
                                    if j not in before and s == State.RUNNING), None),
                      proc, log)
    _stop(proc, log)
    assert _jobs(endpoint)[job] == State.CANCELLED
