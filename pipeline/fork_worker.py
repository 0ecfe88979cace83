"""One local worker of the build, as a fork of the driver's fork server (``pipeline.worker``).

    python -I -S pipeline/fork_worker.py @ADDRESS

Beam's FnApiRunner runs this as its worker command, with the environment the worker
needs. It sends that environment to the server at ADDRESS (an abstract local socket),
which forks a worker that has everything imported already, and exits with the worker's
exit status once the worker ends. Standard library only, so the interpreter starts in a
few milliseconds. When the server cannot be reached, it becomes a fresh worker itself.
"""
import json
import os
import signal
import socket
import sys

signal.signal(signal.SIGINT, signal.SIG_IGN)      # the driver stops the build, and us


def _fresh_worker():
    os.execv(sys.executable, [sys.executable, "-m", "pipeline.worker"])


def main(address: str) -> int:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect("\0" + address[1:] if address.startswith("@") else address)
    except OSError:
        _fresh_worker()
    payload = json.dumps(dict(os.environ)).encode()
    sock.sendall(len(payload).to_bytes(8, "big") + payload)
    status = b""
    while len(status) < 4:
        chunk = sock.recv(4 - len(status))
        if not chunk:          # the worker ended without a word: it crashed or was killed
            return 1
        status += chunk
    return int.from_bytes(status, "big", signed=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
