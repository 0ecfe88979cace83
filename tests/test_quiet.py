"""Quiet by default, loud on request: the commands print their own lines and real
problems, not the libraries' start-up notices and per-epoch warnings."""
import re

import pytest

from conftest import noise_lines as _noise, run_module


@pytest.fixture(scope="module")
def tiny_layout(tmp_path_factory):
    from pipeline import synthetic
    root = tmp_path_factory.mktemp("quiet")
    synthetic.write_ucf101_layout(str(root / "data"), {"train": 6, "test": 2}, num_frames=12,
                                  size=(40, 40), seed=3)
    return root


@pytest.mark.slow
@pytest.mark.integration
def test_the_demo_steps_print_no_library_noise(tiny_layout):
    root = tiny_layout
    build = run_module("pipeline.build", "--dataset=ucf101", f"--data_dir={root / 'data'}",
                       f"--output_dir={root / 'records'}", "--config_name=q",
                       "--sampling=uniform", "--num_frames=8", "--size=32x32",
                       "--val_fraction=0.2", timeout=300)
    assert build.returncode == 0, build.stderr[-3000:]
    out = build.stdout + build.stderr
    assert not _noise(out), _noise(out)
    finals = [line for line in out.splitlines()
              if re.match(r"\[build\] (\d+)/\1 items \(100\.0%\)", line)]
    assert len(finals) == 1, out                 # the last progress line once, not twice
    assert "[build] wrote" in out

    # The trainer's own lines, quiet, are checked on the demo's output (tests/test_demo.py),
    # which trains with ``python -m trainers.train``.
    records = root / "records" / "ucf101" / "q"
    # --verbose (-v) brings the libraries' messages back: TensorFlow logs its start-up.
    loud = run_module("pipeline.verify", "-v", str(records), timeout=300)
    assert loud.returncode == 0, loud.stderr[-3000:]
    assert _noise(loud.stderr), loud.stderr[-3000:]
    quiet = run_module("pipeline.verify", str(records), timeout=300)
    assert quiet.returncode == 0 and not _noise(quiet.stdout + quiet.stderr), quiet.stderr


def test_the_demo_and_the_trainer_list_verbose_in_their_help():
    for module in ("pipeline.demo", "trainers.train"):
        h = run_module(module, "--help", timeout=300)
        assert h.returncode == 0, h.stderr
        assert "--[no]verbose:" in h.stdout, module


def test_quiet_is_only_for_the_program_and_not_with_verbose(monkeypatch):
    from pipeline import cli
    monkeypatch.setattr(cli, "QUIET", False)
    assert cli.quiet_unless_verbose("pipeline.build", ["build"]) is True     # a library
    assert cli.quiet_unless_verbose("__main__", ["build", "--verbose"]) is True
    assert cli.quiet_unless_verbose("__main__", ["build", "-v"]) is True
    assert cli.QUIET is False
    assert cli.wants_verbose(["x", "--verbose=true"]) and not cli.wants_verbose(["x", "--", "-v"])


def test_native_stderr_is_dropped_only_when_quiet(monkeypatch, capfd):
    import os
    from pipeline import cli
    monkeypatch.setattr(cli, "QUIET", True)
    with cli.native_stderr_quiet() as own:
        os.write(2, b"native chatter\n")
        own.write("[export] our line\n")
    os.write(2, b"after\n")
    err = capfd.readouterr().err
    assert "native chatter" not in err and "[export] our line" in err and "after" in err
    monkeypatch.setattr(cli, "QUIET", False)
    with cli.native_stderr_quiet():
        os.write(2, b"loud chatter\n")
    assert "loud chatter" in capfd.readouterr().err
