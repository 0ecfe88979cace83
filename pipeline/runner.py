"""Running a Beam pipeline of this project: runner, options, local progress.

Used by the build (``pipeline.build``) and the Beam evaluation
(``trainers.beam_evaluate``); importing it defines no flags.

- ``pipeline_options(args, log_level)``: Beam's ``PipelineOptions`` from the command-line
  flags an entry point does not own; local multi-process on all cores by default.
- ``make_runner(options, worker_command)``: the runner the options name, or the local
  batch engine.
- ``forks_workers(options)``: whether the options ask for local worker processes;
  ``start_forks(options, program)``: the fork server that starts them.
- ``is_local(options, runner)``: whether the workers run on this machine.
- ``threads_per_worker(options, runner)``: the threads each local worker process may use.
- ``ProgressDoFn`` and ``FolderWatch``: local workers mark each finished element with
  one byte in a file of their own; the driver counts the bytes for its progress line.

Importing this module also sends the remote paths of ``pipeline.media`` (gs://, s3://)
through Beam's ``FileSystems``, in the driver and in every worker that unpickles a DoFn
of the build.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import sys
import threading
import uuid

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from pipeline import cli, partial
from pipeline.media import files
from pipeline.worker import DRIVER_PID, sample_states_often

LOCAL_RUNNERS = ("DirectRunner", "FnApiRunner", "SwitchingDirectRunner", "BundleBasedDirectRunner")
LOG_LEVELS = ("debug", "info", "warning", "error")


class OptionsError(ValueError):
    """A flag that is neither the entry point's nor a Beam pipeline option."""


class _BeamFiles:
    """``pipeline.media.files``' remote backend through Beam's FileSystems."""

    def open(self, path):
        return FileSystems.open(path)

    def create(self, path):
        return FileSystems.create(path)

    def exists(self, path):
        return FileSystems.exists(path)

    def match(self, pattern):
        return [m.path for m in FileSystems.match([pattern])[0].metadata_list]

    def delete(self, paths):
        FileSystems.delete(list(paths))

    def delete_tree(self, path):
        found = self.match(FileSystems.join(path, "**"))
        if found:
            FileSystems.delete(found)

    def rename(self, sources, destinations):
        FileSystems.rename(list(sources), list(destinations))


files.use_remote(_BeamFiles())


class _BeamOnRoot(logging.Filter):
    """Drops what Beam logs on the root logger (the portable runner relays its job
    service's messages there) below a level."""

    def __init__(self, level: int):
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == "root" and record.levelno < self.level
                    and f"{os.sep}apache_beam{os.sep}" in record.pathname)


def quiet_beam(log_level: str = "error") -> None:
    """Sets the level of the log messages of Beam (and of Dask, for its runner) in this
    process."""
    level = logging.getLevelName(log_level.upper())
    for name in ("apache_beam", "distributed", "dask"):
        logging.getLogger(name).setLevel(level)
    root = logging.getLogger()
    for f in [f for f in root.filters if isinstance(f, _BeamOnRoot)]:
        root.removeFilter(f)
    root.addFilter(_BeamOnRoot(level))


DASK_RUNNER = "pipeline.dask_runner.DaskRunner"


def _runner_path(arg: str) -> str:
    """``--runner DaskRunner`` (or Beam's own DaskRunner) names this project's fixed Dask
    runner (``pipeline.dask_runner``); any other argument is kept."""
    if arg in ("DaskRunner", "apache_beam.runners.dask.dask_runner.DaskRunner"):
        return DASK_RUNNER
    name, sep, value = arg.partition("=")
    if name == "--runner" and sep and value in ("DaskRunner",
                                                "apache_beam.runners.dask.dask_runner.DaskRunner"):
        return f"--runner={DASK_RUNNER}"
    return arg


def pipeline_options(beam_args: list[str], log_level: str = "error", *,
                     own_flags: str = "a flag of this command"):
    """Beam options from the flags an entry point does not own; local multi-process on all
    cores by default, workers logging at ``log_level``. OptionsError for a flag Beam does
    not know either (``own_flags`` names the entry point's flags in that message)."""
    from apache_beam.options.pipeline_options import PipelineOptions
    args = [_runner_path(a) for a in beam_args]
    if any(a.endswith(DASK_RUNNER) for a in args):
        from pipeline import dask_runner  # noqa: F401  (registers the --dask_* options)
    joined = " ".join(args)
    if "--direct_running_mode" not in joined:
        args.append("--direct_running_mode=multi_processing")
    if "--direct_num_workers" not in joined:
        args.append("--direct_num_workers=0")
    if "pipeline_type_check" not in joined:
        # Beam infers each step's output type from its bytecode while the graph is built
        # (about 5 % of a one-video build: benchmarks/build_bench.py --only startup); none
        # of our steps declares a type for it to check.
        args.append("--no_pipeline_type_check")
    if "--default_sdk_harness_log_level" not in joined:
        args.append(f"--default_sdk_harness_log_level={log_level.upper()}")
    options = PipelineOptions(args)
    unknown = sorted(set(options.get_all_options(retain_unknown_options=True))
                     - set(options.get_all_options()))
    if unknown:
        raise OptionsError("unknown flag(s) " + ", ".join("--" + u for u in unknown) +
                           f": neither {own_flags} (see --help) nor a Beam pipeline option")
    return options


def runner_name(options) -> str:
    """The runner ``options`` select, by name (DirectRunner when none is given)."""
    from apache_beam.options.pipeline_options import StandardOptions
    runner = options.view_as(StandardOptions).runner or "DirectRunner"
    return runner if isinstance(runner, str) else type(runner).__name__


def forks_workers(options) -> bool:
    """Whether the options ask for the local engine with worker processes (which a build
    starts as forks: ``pipeline.worker.WorkerForks``)."""
    from apache_beam.options.pipeline_options import DirectOptions, StandardOptions
    return (not options.view_as(StandardOptions).runner and
            options.view_as(DirectOptions).direct_running_mode == "multi_processing")


def local_worker_processes(options) -> int:
    """How many worker processes the local engine starts for these options: the
    ``--direct_num_workers`` (0: a worker per core) in multi-process mode, else 1 (the
    driver's own process, or a runner elsewhere)."""
    from apache_beam.options.pipeline_options import DirectOptions
    if not forks_workers(options):
        return 1
    return options.view_as(DirectOptions).direct_num_workers or os.cpu_count() or 1


def start_forks(options, program: str, preload: tuple[str, ...] = ()):
    """The fork server of a command's local workers (``pipeline.worker.WorkerForks``,
    importing ``preload``), forked now: call it before the command starts a thread or runs
    OpenCV or TensorFlow. None where the options ask for no local worker processes, off
    Linux, or when it cannot start (the run then starts fresh workers; ``program`` names
    the command in the line that says so)."""
    if not (sys.platform.startswith("linux") and forks_workers(options)):
        return None
    from pipeline.worker import WorkerForks
    try:
        return WorkerForks(preload=preload)
    except OSError as e:
        print(f"[{program}] starting fresh worker processes: no fork server ({e})",
              file=sys.stderr)
        return None


def make_runner(options, worker_command: str | None = None):
    """The runner named in the options (None: Beam makes it); without one, the local
    batch engine, whose worker processes run ``worker_command`` (default: a fresh
    ``python -m pipeline.worker``).

    Beam's DirectRunner first tries to download the Prism runner binary; a
    build must work offline, so without ``--runner`` we start the engine the
    DirectRunner would fall back to (FnApiRunner) ourselves, handing its
    workers the pipeline options (log level, worker count) as the
    DirectRunner does. Its worker processes run ``pipeline.worker``, which leaves
    Ctrl-C to the driver.
    """
    from apache_beam.options.pipeline_options import StandardOptions
    if options.view_as(StandardOptions).runner:
        return None
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle

    class LocalRunner(fn_runner.FnApiRunner):
        """FnApiRunner whose multi-process workers are ``pipeline.worker`` processes."""

        def run_pipeline(self, pipeline, options):
            from apache_beam.options.pipeline_options import DirectOptions
            from apache_beam.transforms import environments
            direct = options.view_as(DirectOptions)
            sample_states_often()        # for bundles run in this process; workers do too
            if direct.direct_running_mode == "multi_processing":
                os.environ[DRIVER_PID] = str(os.getpid())      # see pipeline.worker
                # FnApiRunner picks its own worker command for this mode; with the mode
                # named otherwise it keeps the environment given here.
                direct.direct_running_mode = "multi_processing (pipeline.worker)"
                self._default_environment = (
                    environments.SubprocessSDKEnvironment.from_command_string(
                        command_string=worker_command or
                        f"{shlex.quote(sys.executable)} -m pipeline.worker"))
                try:
                    return super().run_pipeline(pipeline, options)
                finally:
                    direct.direct_running_mode = "multi_processing"
            return super().run_pipeline(pipeline, options)

    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    return LocalRunner(provision_info=fn_runner.ExtendedProvisionInfo(
        beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded)))


def describe_runner(options, runner) -> str:
    """The name of the runner a pipeline made by ``make_runner`` runs on."""
    return "FnApiRunner" if runner is not None else runner_name(options)


def threads_per_worker(options, runner) -> int:
    """Threads each worker process of a local multi-process run may give its libraries
    (decoding, resizing) so that together they fill the cores once: cores divided by
    worker processes, at least 1; 1 on the local Dask cluster the Dask runner starts
    without an address (a single-threaded worker per core). 0 (the libraries' defaults, a
    thread per core) for a run in the driver's process alone and on other runners, whose
    sharing of the cores this process cannot see."""
    from apache_beam.options.pipeline_options import DirectOptions
    if runner_name(options) == DASK_RUNNER:
        from pipeline.dask_runner import starts_own_cluster
        return 1 if starts_own_cluster(options) else 0
    direct = options.view_as(DirectOptions)
    if not is_local(options, runner) or direct.direct_running_mode != "multi_processing":
        return 0
    cores = os.cpu_count() or 1
    return max(1, cores // (direct.direct_num_workers or cores))


def is_local(options, runner) -> bool:
    """Whether the pipeline's workers run on this machine (so a progress folder works)."""
    return describe_runner(options, runner) in LOCAL_RUNNERS


# --------------------------------------------------------------------------
# A sink that runs the same on every runner.
# --------------------------------------------------------------------------
class _WriteLines(beam.DoFn):
    """(key, JSON lines) -> one file ``PREFIX-all.jsonl`` holding them sorted."""

    def __init__(self, prefix: str):
        self.prefix = prefix

    def process(self, element):
        _, lines = element
        with FileSystems.create(f"{self.prefix}-all.jsonl") as f:
            f.write("".join(line + "\n" for line in sorted(lines)).encode("utf-8"))
        yield self.prefix


class WriteJsonLines(beam.PTransform):
    """Every element as one JSON line of one file (``PREFIX-all.jsonl``; none when there is
    no element), written by one worker: for side files that fit one worker's memory (the
    build's shard list, counts and errors; the Beam evaluation's rows). A Map, a
    GroupByKey and a ParDo, so that it runs alike on every runner (Beam's WriteToText
    needs side inputs, which the Dask runner does not carry)."""

    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def expand(self, pcoll):
        return (pcoll
                | "ToJson" >> beam.Map(lambda x: (None, json.dumps(x, sort_keys=True)))
                | "Gather" >> beam.GroupByKey()
                | "Write" >> beam.ParDo(_WriteLines(self.prefix)))


# --------------------------------------------------------------------------
# Stopping a local run.
# --------------------------------------------------------------------------
def _children() -> dict[int, list[int]]:
    """Parent process id -> child process ids, from /proc (empty where there is none)."""
    out: dict[int, list[int]] = {}
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return out
    for entry in entries:
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        out.setdefault(ppid, []).append(int(entry))
    return out


def stop_local_workers(signum: int | None = None) -> None:
    """Ends every process this one started (local Beam workers and their shells) at once,
    and silences what Beam's threads would print about them going away. For a driver that
    stops on a signal: a worker stopped mid-item holds nothing worth keeping, and its
    finished work is already on disk."""
    import signal as signals
    threading.excepthook = lambda args: None
    logging.disable(logging.CRITICAL)
    children, todo, seen = _children(), [os.getpid()], []
    while todo:
        for child in children.get(todo.pop(), []):
            seen.append(child)
            todo.append(child)
    for pid in seen:
        try:
            os.kill(pid, signals.SIGKILL)
        except OSError:
            pass


# --------------------------------------------------------------------------
# Progress of a local run.
# --------------------------------------------------------------------------
class ProgressDoFn(beam.DoFn):
    """A DoFn that marks each finished element with one byte in a file of its own under
    ``progress_dir`` (when given), for a local run's progress line to count (see
    ``FolderWatch``). Workers on one machine never share a file."""

    def __init__(self, progress_dir: str | None = None):
        self.progress_dir = progress_dir
        self._progress = None

    def setup(self):
        if self.progress_dir:
            self._progress = open(os.path.join(self.progress_dir, uuid.uuid4().hex), "ab",
                                  buffering=0)

    def teardown(self):
        if self._progress:
            self._progress.close()

    def mark_done(self):
        if self._progress:
            self._progress.write(b".")


class FolderWatch:
    """Calls ``report(done)`` every ``interval`` seconds while workers append one byte per
    ``per_item`` to files in ``folder`` (a local run's progress), and once more at the end."""

    def __init__(self, folder: str, report, interval: float = 2.0, per_item: int = 1):
        self.folder, self.report, self.interval, self.per_item = folder, report, interval, per_item
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._last = -1

    def done(self) -> int:
        total = 0
        for name in os.listdir(self.folder):
            try:
                total += os.path.getsize(os.path.join(self.folder, name))
            except OSError:
                pass
        return total // self.per_item

    def _run(self):
        while not self._stop.wait(self.interval):
            done = self.done()
            if done != self._last:
                self.report(done)
                self._last = done

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, exc_type, *exc):
        self._stop.set()
        self._thread.join()
        done = self.done()
        if exc_type is None and done != self._last:   # a stopped run says so in its own line
            self.report(done)
        return False


def progress_dir(work_dir: str) -> str:
    """A fresh folder for local workers' progress marks: inside a local work folder (it goes
    with it), else a temporary folder named after this process; those of processes that no
    longer run are removed here."""
    if not files.is_remote(work_dir):
        path = os.path.join(work_dir, partial.PROGRESS_DIR)
        files.remove_tree(path)
        os.makedirs(path)
        return path
    import tempfile
    root = tempfile.gettempdir()
    for name in os.listdir(root):
        parts = name.split("-")
        if name.startswith("actionflow-progress-") and len(parts) == 4 and parts[2].isdigit() \
                and not partial.holder_alive({"host": partial.socket.gethostname(),
                                              "pid": int(parts[2])}):
            files.remove_tree(os.path.join(root, name))
    return tempfile.mkdtemp(prefix=f"actionflow-progress-{os.getpid()}-")


def watch(progress_dir: str, total: int, label: str, *, unit: str = "items",
          already: int = 0, per_item: int = 1):
    """The progress line (``pipeline.progress``) of a local run whose workers mark their
    elements in ``progress_dir`` (``per_item`` marks make one of ``unit``); a context
    manager around the run."""
    import contextlib
    from pipeline import progress
    stack = contextlib.ExitStack()
    bar = stack.enter_context(progress.Progress(total, label, unit=unit, already=already))
    stack.enter_context(FolderWatch(progress_dir, lambda n: bar.update(already + n),
                                    interval=1.0, per_item=per_item))
    return stack


def run_and_wait(pipeline, progress=None):
    """Runs ``pipeline`` to the end (inside ``progress``, a context manager such as
    ``watch``'s, when given); returns its result. Stopped while a runner runs the job
    elsewhere (a job service, a cluster), it asks the runner to cancel the job
    (``cancel_job``) before the stop goes on."""
    with progress if progress is not None else contextlib.nullcontext():
        result = pipeline.run()
        try:
            result.wait_until_finish()
        except cli.Stopped as stop:
            stop.note = cancel_job(result)
            raise
    return result


def cancel_job(result) -> str:
    """Asks the runner of a job still running to cancel it; returns what happened, for the
    stop line ("" where there was nothing to cancel: a local run ends with its driver)."""
    from apache_beam.runners.runner import PipelineState
    try:
        state = result.state
        if state == PipelineState.CANCELLED:       # the runner did on its way out (Dask)
            return "its job on the runner was cancelled"
        if PipelineState.is_terminal(state):
            return ""
        result.cancel()
    except NotImplementedError:
        return "this runner cannot cancel its job: it may still be running there"
    except Exception as e:  # the runner is unreachable or refused: say so, stop anyway
        return f"cancelling its job failed ({type(e).__name__}: {e}): it may still be running"
    return "its job on the runner was cancelled"
