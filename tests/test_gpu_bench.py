"""benchmarks/gpu_bench.py in its small CPU mode, over a video and the keypoint family: every
path it takes on a GPU (builds from the real fixtures, float32 and mixed precision with and
without XLA, fed from memory and by the real reader, the reader alone) runs here too, so the
benchmark is ready when a GPU is."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from conftest import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.real]


def test_the_small_mode_prints_a_full_table(real_dir, tmp_path):
    r = subprocess.run([sys.executable, "benchmarks/gpu_bench.py", "--small", "--steps=1",
                        "--families=conv3d,keypoint_rnn", f"--work_dir={tmp_path}"],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "device: CPU" in r.stdout
    rows = [line for line in r.stdout.splitlines() if line.startswith("| conv3d |")
            or line.startswith("| keypoint_rnn lstm |")]
    settings = {tuple(cell.strip() for cell in row.split("|")[3:5]) for row in rows[:-2]}
    # conv3d: float32 and bfloat16 (a CPU runs it), each without and with XLA
    assert settings == {("float32", "no"), ("float32", "yes"), ("mixed_bfloat16", "no"),
                        ("mixed_bfloat16", "yes")}
    for row in rows:
        cells = [cell.strip() for cell in row.split("|")[1:-1]]
        if len(cells) == 8:                     # a step-time row
            assert float(cells[4].replace(",", "")) > 0
            if cells[2:4] == ["float32", "no"]:     # fed by the reader too, and compared
                assert float(cells[5].replace(",", "")) > 0
                assert re.fullmatch(r"\d+\.\d\d", cells[6]) and cells[7] == "1.00"
        else:                                   # the reader alone
            assert float(cells[1].replace(",", "")) > 0 and cells[2] == "n/a (no GPU)"
    assert len(rows) == 4 + 1 + 2               # conv3d settings, keypoints, reader rows
    assert "/records/" not in r.stdout          # the builds' own output stays off the table
