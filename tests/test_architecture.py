"""The rooms of ARCHITECTURE.md hold: who may import what, checked on the code's own imports
(every ``import`` statement, inside functions too), and on what a real prediction and a
real upload load."""
from __future__ import annotations

import ast
import pathlib
import sys

import pytest

from conftest import ROOT, run_module

PACKAGES = ("pipeline", "trainers", "tfrecords", "configs")
# The Beam-free part of pipeline/: what prediction and the upload page share with the build.
BEAM_FREE = ("pipeline/media/", "pipeline/sources/", "pipeline/cli.py", "pipeline/__init__.py")


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: pathlib.Path) -> set[str]:
    """Every module ``path`` imports, at any depth of the file (function bodies included):
    ``from a.b import c`` counts as a.b and a.b.c (c may be a module)."""
    tree = ast.parse(path.read_text(), str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    """Project module -> the modules it imports."""
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            out[_module_name(path)] = _imports(path)
    return out


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module ``start`` may load, following project modules (and their packages)."""
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        parents = [".".join(parts[:i]) for i in range(1, len(parts))]
        for module in [name, *parents]:
            todo.extend(m for m in graph.get(module, ()) if m not in seen)
            if module not in seen:
                todo.append(module)
    return seen


def _loads_beam(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m == "apache_beam" or m.startswith("apache_beam."))


def test_the_graph_sees_every_module_and_beam(graph):
    """The checks below would pass vacuously if the import graph missed modules."""
    assert {"pipeline.build", "pipeline.media.video", "trainers.predict", "trainers.serve",
            "tfrecords.reader"} <= set(graph)
    assert _loads_beam(_reachable(graph, "pipeline.build"))
    assert _loads_beam(_reachable(graph, "trainers.beam_evaluate"))


@pytest.mark.parametrize("module", ["trainers.predict", "trainers.serve", "trainers.inputs",
                                    "trainers.overlay", "trainers.evaluate", "trainers.train",
                                    "trainers.export", "trainers.compare"])
def test_prediction_serving_training_never_reach_beam(graph, module):
    path = _reachable(graph, module)
    assert _loads_beam(path) == [], f"{module} can load Beam through {sorted(path)}"


def test_media_and_sources_never_import_beam(graph):
    for name, imported in graph.items():
        path = name.replace(".", "/")
        if any((path + "/").startswith(p) or path + ".py" == p or path + "/__init__.py" == p
               for p in BEAM_FREE):
            assert _loads_beam(_reachable(graph, name)) == [], name


def test_rooms_import_downward_only(graph):
    for name, imported in graph.items():
        room = name.split(".")[0]
        if room == "trainers":
            assert not any(m == "pipeline.build" or m.startswith("pipeline.build.")
                           for m in imported), f"{name} imports pipeline.build"
        if room == "pipeline":
            assert not any(m.split(".")[0] == "trainers" for m in imported), name
        if room == "tfrecords":
            assert not any(m.split(".")[0] in ("pipeline", "trainers") for m in imported), name
        if room == "configs":
            assert not any(m.split(".")[0] in ("pipeline", "trainers", "tfrecords")
                           for m in imported), name


def _imported_modules(importtime_stderr: str) -> set[str]:
    """Module names of ``python -X importtime``'s report."""
    names = set()
    for line in importtime_stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[-1].strip())
    return names


@pytest.mark.integration
def test_predicting_a_raw_video_never_loads_beam(tiny_video_run, tiny_video_build):
    clip = next((tiny_video_build.parents[2] / "data" / "UCF-101").rglob("*.avi"))
    r = run_module("trainers.predict", f"--workdir={tiny_video_run}", str(clip),
                   env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    loaded = _imported_modules(r.stderr)
    assert "tensorflow" in loaded and "pipeline.media.video" in loaded   # the report is real
    assert _loads_beam(loaded) == []


SERVE_SCRIPT = """
import io, sys
from trainers import predict, serve
app = serve.create_app(predict.Predictor.from_workdir(sys.argv[1]))
with open(sys.argv[2], "rb") as f:
    reply = app.test_client().post("/api/predict", data={"file": (io.BytesIO(f.read()),
                                                                  "clip.avi")})
assert reply.status_code == 200, reply.get_data(as_text=True)
print(reply.get_json()["top_k"][0]["label"])
"""


@pytest.mark.integration
def test_the_upload_page_never_loads_beam(tiny_video_run, tiny_video_build):
    import subprocess
    clip = next((tiny_video_build.parents[2] / "data" / "UCF-101").rglob("*.avi"))
    r = subprocess.run([sys.executable, "-X", "importtime", "-c", SERVE_SCRIPT,
                        str(tiny_video_run), str(clip)], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip()                                 # a label came back
    loaded = _imported_modules(r.stderr)
    assert "flask" in loaded and "pipeline.media.records" in loaded
    assert _loads_beam(loaded) == []
