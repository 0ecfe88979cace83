"""A local worker process of the build (and of the Beam evaluation): Beam's SDK worker,
with Ctrl-C left to the driver.

Ctrl-C in a terminal reaches every process of the foreground group; the driver stops
the build cleanly (``pipeline.build``) and ends its workers itself, so a worker ignores
SIGINT instead of printing a KeyboardInterrupt traceback of its own. A driver killed
outright (SIGKILL) cannot end them: the first thing a worker would then print, the
errors of its lost connection, makes it exit quietly instead.

Workers as forks (``WorkerForks``): a fresh worker is a new interpreter that imports
Beam, OpenCV and the project again, about 2 s of CPU before it takes its first item. The
build instead forks, before it starts any thread or decodes anything, one process that
has all of that imported already and waits; Beam's worker command
(``pipeline/fork_worker.py``, standard library only) asks it over a local socket for a
worker, and it forks one, which runs Beam's harness with the environment Beam gave the
command. The server exits when the driver closes its end of a pipe or dies.
"""
from __future__ import annotations

import importlib
import json
import logging
import os
import selectors
import shlex
import signal
import socket
import struct
import sys
import tempfile
import time
import traceback
import uuid

from pipeline import cli
from pipeline.partial import pid_alive

DRIVER_PID = "ACTIONFLOW_DRIVER_PID"      # set by pipeline.runner for the workers it starts
CLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fork_worker.py")
REQUEST_TIMEOUT_S = 10.0
STATE_SAMPLING_MS = 10      # Beam samples every 200 ms: see sample_states_often
WORKERS_END_S = 5.0         # how long the server waits for its workers once the driver goes


class _QuietWithoutDriver:
    """A text stream that ends the process, quietly, when written to after the driver died."""

    def __init__(self, stream, pid: int):
        self._stream, self._pid = stream, pid

    def write(self, text):
        if not pid_alive(self._pid):
            os._exit(0)
        return self._stream.write(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def sample_states_often(period_ms: int = STATE_SAMPLING_MS) -> bool:
    """Makes the bundles that this process runs end as soon as their work is done.

    Beam's worker samples which step a bundle is in from a thread that sleeps up to 200 ms
    between samples, and a bundle ends only once that thread has woken up: every long
    bundle (the build's item bundles are) ended 0-200 ms after its last element, about
    60 ms per worker on average, and the driver waits for the later of its workers.
    Sampling every ``period_ms`` (a lock taken and released per wake) ends them within
    that. Returns False, changing nothing, where Beam's sampler takes no such argument."""
    import inspect
    from apache_beam.runners.worker import statesampler
    init = statesampler.StateSampler.__init__
    names = list(inspect.signature(init).parameters)
    if not init.__defaults__ or names[-1] != "sampling_period_ms":
        return False
    init.__defaults__ = init.__defaults__[:-1] + (period_ms,)
    return True


def run_harness() -> None:
    """Beam's SDK harness for the control service named in the environment, until the
    driver closes the connection."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sample_states_often()
    # Beam's harness announces itself at INFO, before its log level applies: not news.
    logging.getLogger("apache_beam.runners.worker.sdk_worker_main").addFilter(
        lambda record: record.getMessage() != "Logging handler created.")
    if os.environ.get(DRIVER_PID, "").isdigit():
        sys.stderr = _QuietWithoutDriver(sys.stderr, int(os.environ[DRIVER_PID]))
    from apache_beam.runners.worker import sdk_worker_main
    sdk_worker_main.main(sys.argv)


# --------------------------------------------------------------------------
# Workers as forks of a process that has imported everything.
# --------------------------------------------------------------------------
class WorkerForks:
    """The fork server of one build driver (see the module's docstring). Start it before
    the driver starts a thread or uses OpenCV; ``command()`` is the worker command Beam
    runs; ``close()`` ends the server (workers already forked finish on their own)."""

    def __init__(self, target=run_harness, preload: tuple[str, ...] = ()):
        """``preload``: modules the server imports before it serves, on its own core while
        the driver goes on (a worker's DoFns import them at once, e.g. Keras)."""
        sys.stdout.flush()
        sys.stderr.flush()
        # An abstract socket (no file to leave behind); only this user may connect.
        self.address = f"@actionflow-workers-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._driver_end = None
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            listener.bind("\0" + self.address[1:])
            listener.listen(64)
            ours, theirs = os.pipe()
            try:
                with cli.stops_held():      # the server lets them come once it has its own
                    self.pid = os.fork()
                    if self.pid == 0:
                        os.close(ours)
                        _serve(listener, theirs, target, preload)    # never returns
            except OSError:
                os.close(ours)
                os.close(theirs)
                raise
        os.close(theirs)
        self._driver_end = ours

    def command(self) -> str:
        """The shell command that starts one worker through this server."""
        return shlex.join([sys.executable, "-I", "-S", CLIENT, self.address])

    def close(self, wait: bool = True) -> None:
        """Ends the server once its workers have ended (they do as a run ends), so that
        their resource use counts as this process's children's; kills it after
        ``2 * WORKERS_END_S``, or at once without ``wait`` (a command ending early, whose
        server may still be importing what it preloads)."""
        if self._driver_end is None:
            return
        os.close(self._driver_end)
        self._driver_end = None
        deadline = time.monotonic() + (2 * WORKERS_END_S if wait else 0.0)
        try:
            while os.waitpid(self.pid, os.WNOHANG) == (0, 0):
                if time.monotonic() > deadline:
                    os.kill(self.pid, signal.SIGKILL)
                    os.waitpid(self.pid, 0)
                    return
                time.sleep(0.005)
        except (ChildProcessError, ProcessLookupError):
            pass


def _serve(listener: socket.socket, driver_end: int, target, preload=()) -> None:
    """The fork server's loop: one forked worker per request, until the driver goes."""
    try:
        cli.stop_with_the_parent()                      # the driver stops the build
        for module in preload:                          # a request waits for these
            importlib.import_module(module)
        selector = selectors.DefaultSelector()
        selector.register(listener, selectors.EVENT_READ)
        selector.register(driver_end, selectors.EVENT_READ)
        workers: set[int] = set()
        while True:
            for key, _ in selector.select(timeout=1.0):
                if key.fileobj == driver_end:           # closed by the driver, or it died
                    _wait_for(workers, WORKERS_END_S)
                    os._exit(0)
                conn, _ = listener.accept()
                env = _read_request(conn)
                if env is None:
                    conn.close()
                    continue
                pid = os.fork()
                if pid == 0:
                    selector.close()
                    listener.close()
                    os.close(driver_end)
                    _become_worker(conn, env, target)   # never returns
                conn.close()
                workers.add(pid)
            _wait_for(workers, 0.0)
    except BaseException:
        traceback.print_exc()
    os._exit(1)


def _wait_for(workers: set[int], timeout: float) -> None:
    """Reaps the ended ``workers`` (waiting up to ``timeout`` for all to end)."""
    deadline = time.monotonic() + timeout
    while workers:
        for pid in list(workers):
            try:
                if os.waitpid(pid, os.WNOHANG) != (0, 0):
                    workers.discard(pid)
            except ChildProcessError:
                workers.discard(pid)
        if not workers or time.monotonic() >= deadline:
            return
        time.sleep(0.005)


def _read_request(conn: socket.socket) -> dict | None:
    """The environment a worker command sent (a length and JSON); None for a request that
    is not one, or comes from another user."""
    try:
        conn.settimeout(REQUEST_TIMEOUT_S)
        _, uid, _ = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                        struct.calcsize("3i")))
        if uid != os.getuid():
            return None
        size = int.from_bytes(_read_exactly(conn, 8), "big")
        env = json.loads(_read_exactly(conn, size))
        conn.settimeout(None)
    except (OSError, ValueError):
        return None
    return env if isinstance(env, dict) else None


def _read_exactly(conn: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = conn.recv(min(size - len(data), 1 << 20))
        if not chunk:
            raise ValueError("the request ended early")
        data += chunk
    return bytes(data)


def _become_worker(conn: socket.socket, env: dict, target) -> None:
    """In a fresh fork: the environment of the worker command, a logging set-up like a
    new interpreter's, ``target()``; its exit status goes back to the command."""
    os.environ.clear()
    os.environ.update(env)
    tempfile.tempdir = None          # read TMPDIR again, as a new interpreter would
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for filter_ in list(root.filters):
        root.removeFilter(filter_)
    root.setLevel(logging.WARNING)
    code = 0
    try:
        target()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        traceback.print_exc()
        code = 1
    try:
        conn.sendall(code.to_bytes(4, "big", signed=True))
    except OSError:
        pass
    cli.exit_at_once(code)


if __name__ == "__main__":
    run_harness()
    # main returns once the driver has closed the connection: all work is handed back, and
    # the driver waits for this process to end (about half a second of tear-down saved).
    cli.exit_at_once(0)
