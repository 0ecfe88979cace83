"""Command-line helpers shared by every entry point of both packages (build, verify, demo,
train, evaluate, beam_evaluate, compare, predict, serve, export).

``quiet_unless_verbose`` keeps the libraries' own chatter (TensorFlow's start-up notices,
absl's and Beam's logs, known-harmless warnings) out of their output unless ``--verbose``
(``-v``) asks for it. ``parse`` gives them one behaviour: ``--help`` prints the module's docstring and its
flags and exits 0 (absl's own --help exits 1: asking for help is not an error); a bad
flag is one line on stderr and exit 2, with no traceback. ``StopSignals`` and ``Stopped``
give them one way to stop on SIGINT and SIGTERM: one line saying what was kept and how
to resume, exit status 130 or 143; ``run_temp_folder`` gives a run a temporary folder of
its own, removed however the run ends (by the next run, for one killed outright). Entry
points that may be imported together (the trainers' commands, the Beam workers) keep
their flags in a ``flags.FlagValues`` of their own; the build, verify and the demo use
absl's global flags. Nothing here imports Beam or TensorFlow.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import sys
import tempfile
import threading
import warnings

from absl import flags

HELP_ARGS = ("-h", "--help", "--helpshort")
VERBOSE_ARGS = ("-v", "--verbose")
VERBOSE_HELP = ("Also print the libraries' own messages: TensorFlow's start-up notices and "
                "C++ logs, absl's and Beam's INFO logs and known-harmless Python warnings "
                "(-v for short). Without it a command prints its own lines and real problems.")
# Python warnings that say nothing a user can act on (the libraries' own deprecations).
HARMLESS_WARNINGS = (
    r".*np\.find_common_type is deprecated.*",
    r".*pkg_resources is deprecated.*",
    r".*distutils Version classes are deprecated.*",
)


def wants_verbose(argv: list[str]) -> bool:
    """Whether the command line (``argv[0]`` the program) asks for ``--verbose``."""
    for arg in argv[1:]:
        if arg == "--":
            break
        if arg in VERBOSE_ARGS or arg.lower() in ("--verbose=true", "--verbose=1"):
            return True
    return False


QUIET = False      # set by quiet_unless_verbose when a command runs without --verbose


def quiet_unless_verbose(module_name: str, argv: list[str] | None = None) -> bool:
    """Called by an entry point at the top of its module, before TensorFlow or Beam load:
    when it runs as the program (``module_name`` is ``"__main__"``) and ``argv`` (default
    ``sys.argv``) has no ``--verbose``, sets TensorFlow's C++ log level, gRPC's and the
    Python loggers of TensorFlow, absl and Beam and OpenCV's log to errors, and ignores ``HARMLESS_WARNINGS``.
    The environment variables reach the subprocesses it starts (Beam workers, the demo's
    steps). Imported as a library it changes nothing. Returns whether output stays loud."""
    if module_name != "__main__":
        return True
    if wants_verbose(sys.argv if argv is None else argv):
        return True
    global QUIET
    QUIET = True
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    for name in ("tensorflow", "absl", "apache_beam", "h5py"):
        logging.getLogger(name).setLevel(logging.ERROR)
    for pattern in HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    return False


@contextlib.contextmanager
def native_stderr_quiet():
    """While the block runs and the command is quiet (``QUIET``), what native code writes
    to file descriptor 2 goes to a temporary file and is dropped: the TFLite converter's
    C++ logs and ``printf`` lines ignore every Python and environment log setting.
    Yields the stream for the command's own lines (the real stderr in both cases)."""
    if not QUIET:
        yield sys.stderr
        return
    sys.stderr.flush()
    saved = os.dup(2)
    own = os.fdopen(os.dup(saved), "w", buffering=1)
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield own
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
    finally:
        own.close()
        os.close(saved)


def print_help(fv: flags.FlagValues, module_name: str, epilog: str = "") -> None:
    """The module's docstring, then its flags (for absl's global flags: only the module's)."""
    module = sys.modules[module_name]
    print((module.__doc__ or "").rstrip() + "\n")
    if fv is flags.FLAGS:
        print(fv.module_help(module))
    else:
        print("flags:\n" + fv.get_help(prefix="  ", include_special_flags=False))
    if epilog:
        print("\n" + epilog)


def parse(fv: flags.FlagValues, argv: list[str], module_name: str, *, known_only: bool = False,
          epilog: str = "", errors: tuple = (flags.Error, ValueError)) -> list[str]:
    """Parses ``argv`` into ``fv`` from the flags' defaults; returns argv[0] and what is left
    (with ``known_only``, the flags ``fv`` does not define, e.g. for Beam). An exception in
    ``errors`` while parsing is a user mistake: one line, exit 2."""
    if "verbose" not in fv:
        # Listed by --help as the command's own flag (absl names __main__ by argv[0]).
        owner = argv[0] if module_name == "__main__" else module_name
        flags.DEFINE_boolean("verbose", False, VERBOSE_HELP, flag_values=fv,
                             module_name=owner)
    argv = [argv[0]] + ["--verbose" if a == "-v" else a for a in argv[1:]]
    if any(a in HELP_ARGS for a in argv[1:]):
        print_help(fv, module_name, epilog)
        sys.exit(0)
    fv.unparse_flags()
    try:
        rest = fv(argv, known_only=known_only)
    except errors as e:
        print(f"error: {e}\nRun with --help to see every flag.", file=sys.stderr)
        sys.exit(2)
    if not flags.FLAGS.is_parsed():            # absl.app and logging read the global flags
        flags.FLAGS.mark_as_parsed()
    return rest


def format_seconds(s: float) -> str:
    """A duration for people: ``42s``, ``3m05s``, ``1h02m03s``."""
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m{sec:02d}s" if h else (f"{m}m{sec:02d}s" if m else f"{sec}s")


# --------------------------------------------------------------------------
# Stopping cleanly on SIGINT (Ctrl-C) and SIGTERM (schedulers, preemption, systemctl).
# --------------------------------------------------------------------------
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(BaseException):
    """Raised in the main thread when a stop signal arrives (a BaseException, so that the
    ``except Exception`` of a library does not swallow it). ``exit_code`` is what
    schedulers expect: 130 for SIGINT, 143 for SIGTERM."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.note = ""          # what was done on the way out (a remote job cancelled)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class StopSignals:
    """Catches SIGINT and SIGTERM while the ``with`` block runs (main thread only).

    With ``raise_stop=True`` the first signal raises ``Stopped`` where the main thread
    is, for work that may stop anywhere and cleans up in ``finally`` (a build's driver,
    an evaluation). With ``raise_stop=False`` it is only recorded in ``signum``, for work
    that stops at a boundary of its own (a training step) and calls ``check()`` there.
    Every later signal is ignored, so a second Ctrl-C cannot interrupt the clean-up or
    the save that the first one started. ``on_stop(signum)``, when given, runs first
    (in the signal handler: keep it short, e.g. ending worker processes). The previous
    handlers come back on exit.
    """

    def __init__(self, raise_stop: bool = True, on_stop=None):
        self.raise_stop = raise_stop
        self.on_stop = on_stop
        self.signum: int | None = None
        self._previous: dict = {}

    def _handle(self, signum, frame):
        if self.signum is not None:
            return
        self.signum = signum
        if self.on_stop is not None:
            self.on_stop(signum)
        if self.raise_stop:
            raise Stopped(signum)

    def reinstall(self) -> None:
        """Puts the handlers back after a library replaced them (TensorFlow's multi-worker
        strategy installs its own for SIGTERM when it is created)."""
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                signal.signal(signum, self._handle)

    def check(self) -> None:
        """Raises ``Stopped`` if a stop signal has arrived."""
        if self.signum is not None:
            raise Stopped(self.signum)

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}
        return False


@contextlib.contextmanager
def stops_held():
    """Holds the stop signals back from this thread for the block; those that come
    meanwhile arrive at its end. For forking: a child starts with them held and lets them
    come (``stop_with_the_parent``) once it has set its own handlers, so that a stop sent
    to a child that is still starting is neither lost while the interpreter forks nor taken
    by the handler the child inherited from its parent."""
    held = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def stop_with_the_parent() -> None:
    """In a child forked in ``stops_held`` by a command that ends it: SIGINT is ignored (a
    Ctrl-C reaches the whole terminal group, and the command stops its work and then its
    children), SIGTERM ends the child at once, and the stops held since the fork come."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


_STARTING: dict = {}      # signal -> handler before stop_while_starting


def stop_while_starting(module_name: str, program: str) -> None:
    """Called by an entry point at the top of its module, before TensorFlow or Beam load,
    when it runs as the program (``module_name`` is ``"__main__"``): until ``started()``
    (the first line of its ``main``), SIGINT or SIGTERM ends the command at once with one
    line, instead of a traceback through the imports (Ctrl-C) or no word at all (SIGTERM).
    Nothing has been done by then, so nothing is left to clean up. A signal the shell
    ignores (a background job's SIGINT) stays ignored. Imported as a library it changes
    nothing."""
    if module_name != "__main__" or threading.current_thread() is not threading.main_thread():
        return

    def handle(signum, frame):
        stop = Stopped(signum)
        print(f"[{program}] stopped by {stop.name} while starting: nothing was done.",
              file=sys.stderr, flush=True)
        # At once: an exception could land in an import's callback, which ignores it.
        os._exit(stop.exit_code)

    for signum in STOP_SIGNALS:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            _STARTING[signum] = signal.signal(signum, handle)


def started() -> None:
    """Ends ``stop_while_starting``: the handlers from before come back (the command's own
    ``StopSignals`` takes over where it has work to stop cleanly)."""
    for signum, previous in _STARTING.items():
        signal.signal(signum, previous)
    _STARTING.clear()


_run_temp: list[str] = []     # the folders of the run_temp_folder blocks this process is in
RUN_TEMP_PREFIX = "actionflow-run-"
RUN_TEMP_LOCK = ".in-use"    # in a run folder: locked (flock) while its run's processes live


def _lock_run_folder(folder: str) -> int:
    """Locks ``folder`` as in use for as long as this process (or a fork of it) lives; the
    lock file appears under its name already locked, so a sweep never takes a new folder
    for an abandoned one."""
    import fcntl
    staging = os.path.join(folder, RUN_TEMP_LOCK + ".new")
    fd = os.open(staging, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.rename(staging, os.path.join(folder, RUN_TEMP_LOCK))
    return fd


def remove_abandoned_run_folders(parent: str) -> list[str]:
    """Removes the run folders in ``parent`` whose processes have all ended without
    removing them (a run killed with SIGKILL, or by the kernel for memory): their lock is
    free. A folder in use, another user's, or one without a lock is left. Returns the
    folders removed."""
    import fcntl
    import shutil
    removed = []
    try:
        names = [n for n in os.listdir(parent) if n.startswith(RUN_TEMP_PREFIX)]
    except OSError:
        return removed
    for name in names:
        folder = os.path.join(parent, name)
        try:
            fd = os.open(os.path.join(folder, RUN_TEMP_LOCK), os.O_RDONLY | os.O_CLOEXEC)
        except OSError:             # not ours to judge: another user's, or no lock
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:             # its run is alive
            os.close(fd)
            continue
        try:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
        finally:
            os.close(fd)
    return removed


@contextlib.contextmanager
def run_temp_folder():
    """Inside the block, this process's temporary folder, and that of every process it
    starts (TMPDIR), is a folder of its own, removed when the block ends however it ends
    (and by ``remove_run_temp_folders`` before an exit at once). What libraries leave in
    the temporary folder of a run goes there: Beam's folder per pipeline object and a
    portable job's list of staged dependencies, a local Dask cluster's scratch space, the
    code TensorFlow generates for traced functions, which only a normal exit removes. None
    of it is needed once the run is over. A run that could not remove its folder (killed
    with SIGKILL) leaves it locked by nothing: the next run removes it."""
    import shutil
    parent = tempfile.gettempdir()
    remove_abandoned_run_folders(parent)
    folder = tempfile.mkdtemp(prefix=RUN_TEMP_PREFIX, dir=parent)
    lock = _lock_run_folder(folder)
    before_dir, before_env = tempfile.tempdir, os.environ.get("TMPDIR")
    tempfile.tempdir = os.environ["TMPDIR"] = folder
    _run_temp.append(folder)
    try:
        yield folder
    finally:
        _run_temp.remove(folder)
        tempfile.tempdir = before_dir
        if before_env is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = before_env
        shutil.rmtree(folder, ignore_errors=True)
        os.close(lock)


def remove_run_temp_folders() -> None:
    """Removes the folders of the ``run_temp_folder`` blocks this process is in: for a
    process about to end at once, whose blocks will not end."""
    import shutil
    for folder in _run_temp:
        shutil.rmtree(folder, ignore_errors=True)


def exit_at_once(code: int):
    """Ends the process with ``code`` after flushing the logs and the standard streams,
    without the interpreter's tear-down of Beam's modules and threads (half a second or
    more): for a process whose every file is written, committed or removed."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def command_line(module: str, args) -> str:
    """``python -m module args``, quoted for a POSIX shell: the command that reruns it."""
    return " ".join(shlex.quote(part) for part in ["python", "-m", module, *args])


def stopped_line(program: str, stop: Stopped, kept: str, resume: str | None) -> str:
    """The one line a stopped command prints: what stopped it, what was kept, and the
    exact command that resumes (``resume``), or that nothing was."""
    note = getattr(stop, "note", "")
    line = f"[{program}] stopped by {stop.name}: {kept}{'; ' + note if note else ''}."
    return line + (f" Resume with: {resume}" if resume else "")
