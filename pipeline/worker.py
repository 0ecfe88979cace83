"""A local worker process of the build: Beam's SDK worker, with Ctrl-C left to the driver.

Ctrl-C in a terminal reaches every process of the foreground group; the driver stops
the build cleanly (``pipeline.build``) and ends its workers itself, so a worker ignores
SIGINT instead of printing a KeyboardInterrupt traceback of its own. A driver killed
outright (SIGKILL) cannot end them: the first thing a worker would then print, the
errors of its lost connection, makes it exit quietly instead.
"""
import logging
import os
import signal
import sys

from pipeline import cli
from pipeline.partial import pid_alive

DRIVER_PID = "ACTIONFLOW_DRIVER_PID"      # set by pipeline.runner for the workers it starts


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


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Beam's harness announces itself at INFO, before its log level applies: not news.
    logging.getLogger("apache_beam.runners.worker.sdk_worker_main").addFilter(
        lambda record: record.getMessage() != "Logging handler created.")
    if os.environ.get(DRIVER_PID, "").isdigit():
        sys.stderr = _QuietWithoutDriver(sys.stderr, int(os.environ[DRIVER_PID]))
    from apache_beam.runners.worker import sdk_worker_main
    sdk_worker_main.main(sys.argv)
    # main returns once the driver has closed the connection: all work is handed back, and
    # the driver waits for this process to end (about half a second of tear-down saved).
    cli.exit_at_once(0)
