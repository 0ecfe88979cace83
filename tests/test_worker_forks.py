"""The build's fork server (pipeline.worker.WorkerForks) and its worker command
(pipeline/fork_worker.py), each run in a driver process of its own, as the build runs them."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from conftest import ROOT, running

# A driver: starts the server with a worker target that reports where it runs, runs the
# worker command as Beam does (a shell, an environment of its own), reports what it saw.
DRIVER = r"""
import json, os, subprocess, sys, time
from pipeline import worker

report = sys.argv[1]

def blocked(pid="self"):
    with open(f"/proc/{pid}/status") as f:
        return int(next(l for l in f if l.startswith("SigBlk")).split()[1], 16)

def target():
    with open(report + f".{os.getpid()}", "w") as f:
        json.dump({"pid": os.getpid(), "ppid": os.getppid(), "env": os.environ.get("PROBE"),
                   "driver_only": os.environ.get("DRIVER_ONLY"),
                   "preloaded": "colorsys" in sys.modules, "blocked": blocked()}, f)
    if os.environ.get("PROBE") == "fail":
        raise RuntimeError("the harness failed")
    sys.exit(int(os.environ["PROBE"]))

os.environ["DRIVER_ONLY"] = "set before the fork"
forks = worker.WorkerForks(target, preload=("colorsys",))
del os.environ["DRIVER_ONLY"]
codes = {}
for probe in ("0", "3", "fail"):
    codes[probe] = subprocess.run(forks.command(), shell=True, env=dict(os.environ, PROBE=probe),
                                  timeout=60).returncode
print(json.dumps({"server": forks.pid, "codes": codes,
                  "driver_loaded": "colorsys" in sys.modules,
                  "blocked": [blocked(), blocked(forks.pid)]}), flush=True)
if sys.argv[2] == "wait":
    time.sleep(600)
forks.close()
print(json.dumps({"server_gone": not os.path.exists(f"/proc/{forks.pid}")}), flush=True)
"""


def _driver(tmp_path, mode: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", DRIVER, str(tmp_path / "seen"), mode],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _gone(pid: int, timeout: float = 20.0) -> bool:
    """Whether process ``pid`` ends (or is a zombie) within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not running(pid):
            return True
        time.sleep(0.05)
    return False


def test_each_worker_is_a_fork_of_the_server_with_the_commands_environment(tmp_path):
    proc = _driver(tmp_path, "close")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    first, last = (json.loads(line) for line in out.splitlines())
    # exit statuses come back through the command: 0, a SystemExit code, 1 for a crash
    assert first["codes"] == {"0": 0, "3": 3, "fail": 1}
    assert "RuntimeError: the harness failed" in err
    seen = [json.loads(p.read_text()) for p in tmp_path.glob("seen.*")]
    assert sorted(s["env"] for s in seen) == ["0", "3", "fail"]
    # forks of the server, each a process of its own, in the command's environment only
    assert {s["ppid"] for s in seen} == {first["server"]}
    assert len({s["pid"] for s in seen}) == 3
    assert {s["driver_only"] for s in seen} == {None}
    # what the server imported before serving, its workers have; the driver does not
    assert {s["preloaded"] for s in seen} == {True} and first["driver_loaded"] is False
    assert last == {"server_gone": True}        # close() waited for the server to end
    # the stops held back while the server was forked come through to the driver, the
    # server and its workers alike
    assert first["blocked"] == [0, 0] and {s["blocked"] for s in seen} == {0}


def test_the_server_ends_when_its_driver_is_killed(tmp_path):
    proc = _driver(tmp_path, "wait")
    try:
        first = json.loads(proc.stdout.readline())
        assert first["codes"] == {"0": 0, "3": 3, "fail": 1}
        assert not _gone(first["server"], timeout=0.5)
    finally:
        proc.kill()
        proc.communicate(timeout=60)
    assert _gone(first["server"])


def test_without_a_server_the_command_becomes_a_fresh_worker(tmp_path):
    """Nothing listens at the address: the command starts Beam's harness itself, which
    here, with no runner to connect to, fails on its missing control address."""
    from pipeline import worker
    r = subprocess.run([sys.executable, "-I", "-S", worker.CLIENT, "@actionflow-nobody"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120,
                       env={k: v for k, v in os.environ.items()
                            if not k.endswith("SERVICE_DESCRIPTOR")})
    assert r.returncode != 0
    assert "CONTROL_API_SERVICE_DESCRIPTOR" in r.stderr


def test_a_request_from_another_program_that_is_not_json_is_refused(tmp_path):
    """A malformed request gets no worker; the server keeps serving."""
    script = DRIVER.replace('for probe in ("0", "3", "fail"):', """import socket
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect("\\0" + forks.address[1:])
s.sendall((5).to_bytes(8, "big") + b"[1,2]")
assert s.recv(4) == b""          # closed: no worker
for probe in ("0", "3", "fail"):""")
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "seen"), "close"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[0])["codes"] == {"0": 0, "3": 3, "fail": 1}
    assert len(list(tmp_path.glob("seen.*"))) == 3


def test_closing_without_waiting_ends_a_server_still_preloading(tmp_path):
    """A command that ends early (a mistake in its flags) does not wait for what its server
    preloads: close(wait=False) ends the server at once."""
    (tmp_path / "slow_to_import.py").write_text("import time\ntime.sleep(60)\n")
    script = r"""
import json, os, sys, time
from pipeline import worker
forks = worker.WorkerForks(preload=("slow_to_import",))
start = time.monotonic()
forks.close(wait=False)
print(json.dumps({"seconds": time.monotonic() - start,
                  "gone": not os.path.exists(f"/proc/{forks.pid}")}))
"""
    from pipeline import worker
    r = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                       text=True, timeout=120,
                       env=dict(os.environ, PYTHONPATH=str(tmp_path)))
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    # not the 2 x WORKERS_END_S a waiting close() gives a server before it kills it
    assert result["gone"] and result["seconds"] < worker.WORKERS_END_S
