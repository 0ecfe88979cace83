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
    stops = (signal.SIGINT, signal.SIGTERM)

    def on_stop(signum, frame):
        got[0] = signum
        raise KeyboardInterrupt

    # A forked child (a process pool's worker) must not inherit on_stop: a child that
    # raises instead of ending keeps running when its pool terminates it, and a signal
    # that reaches it before the interpreter has finished forking is dropped, so its
    # pool waits for it for good. The stops are held back while forking and come to the
    # child once it has the default handlers again.
    os.register_at_fork(before=lambda: signal.pthread_sigmask(signal.SIG_BLOCK, stops),
                        after_in_parent=lambda: signal.pthread_sigmask(signal.SIG_UNBLOCK, stops),
                        after_in_child=lambda: _default_stops(stops))
    # both, as the project's commands do: a process started with SIGINT ignored (by a
    # test runner's worker, a background job) still stops on Ctrl-C sent to it
    for signum in stops:
        signal.signal(signum, on_stop)
    try:
        code = main()
    except KeyboardInterrupt:
        for signum in stops:   # the clean-up is short: no second stop
            signal.signal(signum, signal.SIG_IGN)
        name = os.path.splitext(os.path.basename(sys.argv[0]))[0]
        print(f"[{name}] stopped by {signal.Signals(got[0]).name}: no table (the run was not "
              "whole); what it made so far stays in its work folder for the next run.",
              file=sys.stderr, flush=True)
        sys.exit(128 + got[0])
    sys.exit(code if isinstance(code, int) else 0)


def _default_stops(stops) -> None:
    for signum in stops:
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, stops)
