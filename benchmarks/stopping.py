"""How a benchmark ends: ``run(main)`` at the bottom of every script here.

A stop (Ctrl-C, SIGTERM) ends it with one line and exit status 130 or 143, never a
traceback through whatever it was timing. The table of a stopped run is not printed:
half a run's figures, or ratios against a baseline not yet measured, would mislead. The
data a benchmark made stays in its work folder, where the next run finds it; the
commands it was running get the signal too (Ctrl-C reaches the whole terminal group) or
are ended by ``subprocess.run`` on the way out.
"""
from __future__ import annotations

import os
import signal
import sys


def run(main) -> None:
    """Runs ``main()`` and exits with the status it returns (0 for anything but an int)."""
    got = [signal.SIGINT]

    def on_stop(signum, frame):
        got[0] = signum
        raise KeyboardInterrupt

    # both, as the project's commands do: a process started with SIGINT ignored (by a
    # test runner's worker, a background job) still stops on Ctrl-C sent to it
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_stop)
    try:
        code = main()
    except KeyboardInterrupt:
        for signum in (signal.SIGINT, signal.SIGTERM):   # the clean-up is short: no second stop
            signal.signal(signum, signal.SIG_IGN)
        name = os.path.splitext(os.path.basename(sys.argv[0]))[0]
        print(f"[{name}] stopped by {signal.Signals(got[0]).name}: no table (the run was not "
              "whole); what it made so far stays in its work folder for the next run.",
              file=sys.stderr, flush=True)
        sys.exit(128 + got[0])
    sys.exit(code if isinstance(code, int) else 0)
