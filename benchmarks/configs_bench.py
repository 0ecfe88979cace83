"""Every config's ``:runlocal`` commands, run as documented on tiny stand-in datasets, timed.

    python benchmarks/configs_bench.py [--only gesture_conv3d,gesture_cnn_gru] [--work_dir DIR]

For each config in configs/*.py whose docstring has a ``:runlocal`` section, this script

1. writes a tiny stand-in dataset in that dataset's published layout under --work_dir
   (once per dataset; nothing is downloaded): gestures (train.csv/val.csv + PNG frame
   folders, 5 classes), hmdb51 (51 classes' split files + AVIs), ucf101 (101 classes'
   classInd/trainlist/testlist + AVIs), images (Training_set.csv/Testing_set.csv + JPEGs, 15
   classes); openpose reads the real OpenPose JSON and videos of the soccer kicks in
   ../shared/fixtures/real/soccer where they lie, with a segments CSV written here;
   the frames are ``pipeline.synthetic.make_clip`` motion clips or noise images, so
   what a 2-epoch x 2-step run reaches is a smoke-run number near chance, not a quality claim;
2. reads the ``python -m pipeline.build``, ``python -m trainers.train`` and (if given)
   ``python -m trainers.evaluate`` commands of the docstring's ``:runlocal`` section, as
   tests/test_configs.py does, and replaces only paths: ``~/data/...`` inputs by the
   stand-in, ``--output_dir`` and ``--workdir`` by folders under --work_dir, the
   ``--config`` file by its absolute path (the commands run in a folder under --work_dir,
   so the config's relative ``records/...`` build resolves there and nothing is written
   into the repository). Without a documented evaluate command it runs
   ``python -m trainers.evaluate --workdir W``;
3. runs each command as a subprocess, as a user would, and times it (wall seconds);
4. reads the accuracy of the best epoch on the config's evaluation split from
   W/result.json, and the evaluation's headline metric from W/eval/<split>/metrics.json
   (``top1`` for clips and images, frame-wise ``accuracy`` for keypoints).

It prints one markdown table with the command on top. Logs of every command are kept in
--work_dir/<config>/{build,train,evaluate}.log. Timings on a shared machine are noisy: the
table's notes say how much CPU other processes used during the run.
"""
from __future__ import annotations

import argparse
import ast
import csv
import datetime
import glob
import json
import os
import pathlib
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "fixtures" / "real"
CONFIG_DIR = ROOT / "configs"
NOT_CONFIGS = ("__init__.py", "common.py")
RUNLOCAL = "``:runlocal``"
MARKER = ".configs_bench"          # marks a folder this script made (and may empty again)


# --------------------------------------------------------------------------
# The docstrings.
# --------------------------------------------------------------------------
def docstring(path: pathlib.Path) -> str:
    """The module docstring of a config file, read without importing it."""
    return ast.get_docstring(ast.parse(path.read_text()), clean=False) or ""


def runlocal_commands(doc: str) -> list[list[str]]:
    """argv (``python -m PROGRAM ...``) of every command in the ``:runlocal`` section."""
    if RUNLOCAL not in doc:
        return []
    text = doc.split(RUNLOCAL, 1)[1].replace("\\\n", " ")
    return [shlex.split(line.strip(), comments=True) for line in text.splitlines()
            if line.strip().startswith("python -m ")]


def find_configs() -> dict[str, dict[str, list[str]]]:
    """config name -> {program: argv after ``python -m PROGRAM``} for each config with a
    ``:runlocal`` section (the first command of each program)."""
    out = {}
    for path in sorted(CONFIG_DIR.glob("*.py")):
        if path.name in NOT_CONFIGS:
            continue
        programs: dict[str, list[str]] = {}
        for argv in runlocal_commands(docstring(path)):
            programs.setdefault(argv[2], argv[3:])
        if programs:
            out[path.stem] = programs
    return out


def get_flag(argv: list[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == f"--{name}" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
    return None


def set_flag(argv: list[str], name: str, value: str) -> list[str]:
    """argv with --name's value replaced (same spelling: ``--name V`` or ``--name=V``)."""
    out, i, found = [], 0, False
    while i < len(argv):
        arg = argv[i]
        if arg == f"--{name}" and i + 1 < len(argv):
            out += [arg, value]
            i += 2
            found = True
            continue
        if arg.startswith(f"--{name}="):
            arg, found = f"--{name}={value}", True
        out.append(arg)
        i += 1
    if not found:
        raise ValueError(f"--{name} is not in {argv}")
    return out


# --------------------------------------------------------------------------
# Stand-in datasets, in the published layouts (pipeline/sources/*.py LAYOUT).
# --------------------------------------------------------------------------
GESTURE_CLASSES = ("Left_Swipe_new", "Right_Swipe_new", "Stop_new", "Thumbs_Down_new",
                   "Thumbs_Up_new")
HMDB51_CLASSES = (
    "brush_hair", "cartwheel", "catch", "chew", "clap", "climb", "climb_stairs", "dive",
    "draw_sword", "dribble", "drink", "eat", "fall_floor", "fencing", "flic_flac", "golf",
    "handstand", "hit", "hug", "jump", "kick", "kick_ball", "kiss", "laugh", "pick", "pour",
    "pullup", "punch", "push", "pushup", "ride_bike", "ride_horse", "run", "shake_hands",
    "shoot_ball", "shoot_bow", "shoot_gun", "sit", "situp", "smile", "smoke", "somersault",
    "stand", "swing_baseball", "sword", "sword_exercise", "talk", "throw", "turn", "walk",
    "wave")
HAR_CLASSES = ("calling", "clapping", "cycling", "dancing", "drinking", "eating", "fighting",
               "hugging", "laughing", "listening_to_music", "running", "sitting", "sleeping",
               "texting", "using_laptop")


def _clip(label: int, seed: tuple, frames: int, size: tuple[int, int]) -> np.ndarray:
    """A synthetic motion clip [T, H, W, 3] BGR (pipeline.synthetic's five motions)."""
    from pipeline import synthetic
    rng = np.random.default_rng(list(seed))
    return synthetic.make_clip(label % len(synthetic.CLASSES), rng, frames, size)


def _avi_writer_fourcc(folder: pathlib.Path) -> int:
    """XVID (as UCF101/HMDB51 ship) when OpenCV writes and reads it back, else MJPG."""
    folder.mkdir(parents=True, exist_ok=True)
    probe = folder / ".probe.avi"
    try:
        for code in ("XVID", "MJPG"):
            fourcc = cv2.VideoWriter_fourcc(*code)
            writer = cv2.VideoWriter(str(probe), fourcc, 25, (64, 48))
            if not writer.isOpened():
                continue
            for _ in range(3):
                writer.write(np.zeros((48, 64, 3), np.uint8))
            writer.release()
            cap = cv2.VideoCapture(str(probe))
            ok = cap.isOpened() and cap.read()[0]
            cap.release()
            if ok:
                return fourcc
    finally:
        probe.unlink(missing_ok=True)
    raise RuntimeError("OpenCV can write neither XVID nor MJPG AVI files here")


def _write_avi(path: pathlib.Path, frames: np.ndarray, fourcc: int, fps: float = 25) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), fourcc, fps, (frames.shape[2], frames.shape[1]))
    if not writer.isOpened():
        raise OSError(f"cannot write {path}")
    for frame in frames:
        writer.write(frame)
    writer.release()


def write_gestures(root: pathlib.Path) -> dict:
    """Project_data: train.csv/val.csv (folder;gesture;index) and 30-frame PNG folders,
    160x120 like the real webcam folders; 4 folders per class and split (20 + 20)."""
    for split, per_class in (("train", 4), ("val", 4)):
        rows = []
        for c, name in enumerate(GESTURE_CLASSES):
            for k in range(per_class):
                folder = f"WIN_20180925_17_{c:02d}_{k:02d}_Pro_{name}"
                frames = _clip(c, (1, c, k, split == "val"), 30, (120, 160))
                (root / split / folder).mkdir(parents=True, exist_ok=True)
                for i, frame in enumerate(frames):
                    cv2.imwrite(str(root / split / folder / f"{folder[:25]}_{i + 1:05d}.png"),
                                frame)
                rows.append(f"{folder};{name};{c}")
        (root / f"{split}.csv").write_text("\n".join(rows) + "\n")
    return {"data_dir": str(root), "what": "5 classes x 4 folders per split, 30 PNG frames "
                                           "160x120"}


def write_hmdb51(root: pathlib.Path) -> dict:
    """HMDB51: testTrainMulti_7030_splits/<class>_test_split{1,2,3}.txt and <class>/*.avi;
    per class one train (1), one test (2) and one unused (0) clip, 24 frames of 160x120."""
    fourcc = _avi_writer_fourcc(root)
    splits = root / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True, exist_ok=True)
    for c, name in enumerate(HMDB51_CLASSES):
        lines = []
        for k, code in enumerate(("1", "2", "0")):
            video = f"Title{k}_of_{name}_{name}_f_cm_np1_fr_med_{k}.avi"
            if code != "0":
                _write_avi(root / name / video, _clip(c, (2, c, k), 24, (120, 160)), fourcc)
            lines.append(f"{video} {code} ")
        for split_id in (1, 2, 3):
            (splits / f"{name}_test_split{split_id}.txt").write_text("\n".join(lines) + "\n")
    return {"data_dir": str(root), "what": "51 classes x (1 train + 1 test) AVIs, 24 frames "
                                           "160x120"}


def write_ucf101(root: pathlib.Path) -> dict:
    """UCF101: ucfTrainTestlist/{classInd,trainlist01..03,testlist01..03}.txt and
    UCF-101/<Class>/v_<Class>_gNN_cMM.avi (the layout of pipeline.synthetic.write_ucf101_layout,
    with UCF101's 101 class names, which the configs check); per class two train groups (so
    --val_fraction can hold one out) and one test group, one clip each, 24 frames of 160x120."""
    from pipeline.sources import ucf101
    classes = sorted(n for names in ucf101.ACTION_GROUPS.values() for n in names)
    fourcc = _avi_writer_fourcc(root)
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True, exist_ok=True)
    train, test = [], []
    for c, name in enumerate(classes):
        for group in (1, 8, 9):
            rel = f"{name}/v_{name}_g{group:02d}_c01.avi"
            _write_avi(root / "UCF-101" / rel, _clip(c, (3, c, group), 24, (120, 160)), fourcc)
            if group == 1:
                test.append(rel)
            else:
                train.append(f"{rel} {c + 1}")
    (lists / "classInd.txt").write_text("".join(f"{i + 1} {n}\n" for i, n in enumerate(classes)))
    for split_id in (1, 2, 3):
        (lists / f"trainlist0{split_id}.txt").write_text("".join(f"{x}\n" for x in train))
        (lists / f"testlist0{split_id}.txt").write_text("".join(f"{x}\n" for x in test))
    return {"data_dir": str(root), "what": "101 classes x (2 train groups + 1 test group) "
                                           "AVIs, 24 frames 160x120"}


def write_images(root: pathlib.Path) -> dict:
    """HAR images: Training_set.csv (filename,label) + train/, Testing_set.csv (filename) +
    test/; 6 noise JPEGs of 120x80 per class (so a 10% stratified val holds one) and 16
    unlabelled test images."""
    rng = np.random.default_rng(4)
    (root / "train").mkdir(parents=True, exist_ok=True)
    (root / "test").mkdir(parents=True, exist_ok=True)
    rows, n = [], 0
    for name in HAR_CLASSES:
        for _ in range(6):
            n += 1
            cv2.imwrite(str(root / "train" / f"Image_{n}.jpg"),
                        rng.integers(0, 256, (80, 120, 3), dtype=np.uint8))
            rows.append(f"Image_{n}.jpg,{name}\n")
    (root / "Training_set.csv").write_text("filename,label\n" + "".join(rows))
    for i in range(1, 17):
        cv2.imwrite(str(root / "test" / f"Image_{i}.jpg"),
                    rng.integers(0, 256, (80, 120, 3), dtype=np.uint8))
    (root / "Testing_set.csv").write_text(
        "filename\n" + "".join(f"Image_{i}.jpg\n" for i in range(1, 17)))
    return {"data_dir": str(root), "what": "15 classes x 6 noise JPEGs 120x80, 16 unlabelled "
                                           "test images"}


def write_openpose(root: pathlib.Path) -> dict:
    """The real OpenPose BODY_25 JSON and videos of the 20 soccer kicks (read where they
    lie) and a segments CSV marking 1.0-2.0 s of every kick as 'tremor'."""
    soccer = REAL / "soccer"
    if not (soccer / "openpose").is_dir() or not (soccer / "videos").is_dir():
        raise FileNotFoundError(f"the real fixtures are not at {soccer}")
    root.mkdir(parents=True, exist_ok=True)
    kicks = sorted({p.name.split("_0")[0] for p in (soccer / "openpose").glob("*_keypoints.json")})
    with open(root / "segments.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["video", "start_s", "end_s", "label"])
        for kick in kicks:
            w.writerow([kick, "1.0", "2.0", "tremor"])
    return {"data_dir": str(soccer / "openpose"), "video_dir": str(soccer / "videos"),
            "segments_csv": str(root / "segments.csv"),
            "what": f"real OpenPose JSON of {len(kicks)} soccer kicks (~90 frames each, "
                    "1080p videos), 1.0-2.0 s of each marked 'tremor'"}


STAND_INS = {"gestures": write_gestures, "hmdb51": write_hmdb51, "ucf101": write_ucf101,
             "images": write_images, "openpose": write_openpose}


# --------------------------------------------------------------------------
# Running the commands.
# --------------------------------------------------------------------------
def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def cpu_busy_s() -> float:
    """Busy CPU seconds of the whole machine so far (all processes), from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except OSError:
        return float("nan")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        u = resource.getrusage(who)
        total += u.ru_utime + u.ru_stime
    return total


def run_step(argv: list[str], cwd: pathlib.Path, log_path: pathlib.Path,
             timeout: float) -> tuple[float, int, str]:
    """Runs ``python -m ...`` (this interpreter) in cwd; (wall s, exit status, last line)."""
    cmd = [sys.executable, *argv[1:]] if argv[0] == "python" else argv
    start = time.perf_counter()
    with open(log_path, "w") as out:
        out.write("$ " + shlex.join(argv) + f"\n# in {cwd}\n")
        out.flush()
        try:
            rc = subprocess.run(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            rc = 124
    wall = time.perf_counter() - start
    lines = [x for x in log_path.read_text(errors="replace").splitlines() if x.strip()]
    return wall, rc, (lines[-1] if lines else "")


def fresh_dir(path: pathlib.Path) -> pathlib.Path:
    """An empty folder at path; an earlier one is only emptied when this script made it."""
    import shutil
    if path.exists():
        if not (path / MARKER).exists():
            raise SystemExit(f"{path} exists and was not made by this script; pick another "
                             "--work_dir")
        shutil.rmtree(path)
    path.mkdir(parents=True)
    (path / MARKER).write_text("made by benchmarks/configs_bench.py\n")
    return path


def bench_config(name: str, programs: dict, stand_in: dict, base: pathlib.Path,
                 timeout: float) -> dict:
    """Builds, trains and evaluates one config as its docstring says; the row's figures."""
    row: dict = {"config": name, "steps": {}, "commands": []}
    here = fresh_dir(base / name)
    build = programs.get("pipeline.build")
    train = programs.get("trainers.train")
    if build is None or train is None:
        row["error"] = "no pipeline.build / trainers.train command in the :runlocal section"
        return row
    # build: inputs -> stand-in, output_dir -> here/<its documented name>
    for flag, value in stand_in.items():
        if flag != "what" and get_flag(build, flag) is not None:
            build = set_flag(build, flag, value)
    left = [a for a in build if "~" in a]
    if left:
        row["error"] = f"no stand-in for {left}"
        return row
    output_dir = get_flag(build, "output_dir") or "records"
    if os.path.isabs(output_dir):
        build = set_flag(build, "output_dir", str(here / output_dir.strip("/")))
    # train: the config file by its absolute path, the workdir under here/
    config = get_flag(train, "config")
    path, _, arg = config.partition(":")
    train = set_flag(train, "config", str(ROOT / path) + (f":{arg}" if arg else ""))
    documented_workdir = get_flag(train, "workdir")
    workdir = here / pathlib.Path(documented_workdir).name
    train = set_flag(train, "workdir", str(workdir))
    row["documented_workdir"] = documented_workdir
    evaluate = programs.get("trainers.evaluate", ["--workdir", documented_workdir])
    if get_flag(evaluate, "workdir") != documented_workdir:
        row["warning"] = (f"the evaluate command reads --workdir {get_flag(evaluate, 'workdir')}"
                          f", train writes {documented_workdir}")
    evaluate = set_flag(evaluate, "workdir", str(workdir))
    for step, prog, argv in (("build", "pipeline.build", build),
                             ("train", "trainers.train", train),
                             ("evaluate", "trainers.evaluate", evaluate)):
        full = ["python", "-m", prog, *argv]
        row["commands"].append(shlex.join(full))
        log(f"{name}: {step}: {shlex.join(full)}")
        wall, rc, last = run_step(full, here, here / f"{step}.log", timeout)
        row["steps"][step] = wall
        log(f"{name}: {step} {'ok' if rc == 0 else f'FAILED (exit {rc})'} in {wall:.1f} s")
        if rc != 0:
            row["error"] = f"{step} exit {rc}: {last[:200]}"
            return row
    result = json.loads((workdir / "result.json").read_text())
    row["result"] = result
    metrics = sorted(glob.glob(str(workdir / "eval" / "*" / "metrics.json")),
                     key=os.path.getmtime)
    if metrics:
        row["eval"] = json.loads(pathlib.Path(metrics[-1]).read_text())
    return row


# --------------------------------------------------------------------------
# The table.
# --------------------------------------------------------------------------
def _num(x, fmt="{:.2f}") -> str:
    return "n/a" if x is None else fmt.format(x)


def val_metric(row: dict) -> str:
    r = row.get("result")
    if not r:
        return ""
    return (f"{r.get('split', '?')} accuracy {_num(r.get('accuracy'))} "
            f"(best epoch {r.get('best_epoch', '?')})")


def eval_metric(row: dict) -> str:
    m = row.get("eval")
    if not m:
        return ""
    if m.get("modality") == "keypoints":
        return f"{m.get('split', '?')} frame accuracy {_num(m.get('accuracy'))}"
    counts = m.get("counts", {})
    if "top1" not in m:
        return f"{m.get('split', '?')}: no labels ({counts.get('videos', '?')} predictions)"
    return (f"{m.get('split', '?')} top-1 {_num(m.get('top1'))} "
            f"({counts.get('labelled', '?')} examples, {m.get('num_classes', '?')} classes)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default="", help="comma-separated config names (default: all "
                    "with a :runlocal section)")
    ap.add_argument("--work_dir", default=None, help="where stand-ins, builds and workdirs go "
                    "(default: a new folder in $TMPDIR)")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per command")
    args = ap.parse_args()
    command = " ".join(["python benchmarks/configs_bench.py", shlex.join(sys.argv[1:])]).strip()

    configs = find_configs()
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(configs)
    unknown = [n for n in names if n not in configs]
    if unknown:
        ap.error(f"no config with a :runlocal section: {', '.join(unknown)} "
                 f"(there are: {', '.join(configs)})")
    base = pathlib.Path(args.work_dir or tempfile.mkdtemp(prefix="configs_bench_")).resolve()
    if base == ROOT or ROOT in base.parents:
        ap.error("--work_dir must be outside the repository")
    base.mkdir(parents=True, exist_ok=True)
    log(f"work dir {base}")

    # the documented workdirs: each config should name its own
    seen: dict[str, list[str]] = {}
    for n, programs in configs.items():
        w = get_flag(programs.get("trainers.train", []), "workdir")
        seen.setdefault(w, []).append(n)
    shared = {w: ns for w, ns in seen.items() if len(ns) > 1}

    start_wall, start_busy, start_own = time.perf_counter(), cpu_busy_s(), own_cpu_s()
    load_start = os.getloadavg()
    data_root = fresh_dir(base / "data")
    stand_ins: dict[str, dict] = {}
    data_s: dict[str, float] = {}
    rows = []
    for name in names:
        dataset = get_flag(configs[name].get("pipeline.build", []), "dataset")
        if dataset not in stand_ins:
            if dataset not in STAND_INS:
                rows.append({"config": name, "steps": {},
                             "error": f"no stand-in writer for dataset {dataset!r}"})
                continue
            t = time.perf_counter()
            stand_ins[dataset] = STAND_INS[dataset](data_root / dataset)
            data_s[dataset] = time.perf_counter() - t
            log(f"stand-in {dataset}: {stand_ins[dataset]['what']} ({data_s[dataset]:.1f} s)")
        t, busy, own = time.perf_counter(), cpu_busy_s(), own_cpu_s()
        row = bench_config(name, configs[name], stand_ins[dataset], base, args.timeout)
        other = (cpu_busy_s() - busy) - (own_cpu_s() - own)
        row["other_pct"] = 100 * other / ((time.perf_counter() - t) * (os.cpu_count() or 1))
        rows.append(row)
    run_s = time.perf_counter() - start_wall
    other_s = (cpu_busy_s() - start_busy) - (own_cpu_s() - start_own)
    load_end = os.getloadavg()

    print(f"$ {command}\n")
    print(f"{datetime.date.today().isoformat()}, {platform.node() or 'this machine'}: "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}; work dir {base}\n")
    print("| config | build s | train s | evaluate s | total s | val metric (result.json) "
          "| eval metric (eval/<split>/metrics.json) | other load |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        s = row["steps"]
        cells = [f"`{row['config']}`"] + [_num(s.get(k), "{:.0f}")
                                          for k in ("build", "train", "evaluate")]
        cells.append(_num(sum(s.values()), "{:.0f}") if s else "n/a")
        if "error" in row:
            cells += [f"FAILED: {row['error']}", ""]
        else:
            cells += [val_metric(row), eval_metric(row)]
        cells.append(_num(row.get("other_pct"), "{:.0f}%"))
        print("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    print()
    print("Notes:")
    print("- Other load: the share of the machine's CPU that other processes used while "
          "that config ran (from /proc/stat less this script's own processes); a row is "
          "only a clean timing when it is near 0%.")
    print("- Seconds are the wall clock of each whole `python -m ...` subprocess (imports, "
          "Beam / TensorFlow start-up and the final evaluation of the best checkpoint "
          "included); train s includes result.json's own evaluation.")
    print("- Commands: each config docstring's `:runlocal` build / train / evaluate commands, "
          "with only paths replaced (data -> stand-in, --output_dir / --workdir -> "
          f"{base}/<config>/, --config -> absolute path); logs with the exact commands: "
          f"{base}/<config>/<step>.log.")
    for dataset, info in stand_ins.items():
        print(f"- Stand-in `{dataset}` ({data_s[dataset]:.0f} s to write, not in the table): "
              f"{info['what']}.")
    print("- The metrics are smoke-run numbers (2 epochs x 2 steps of batch 2 on random or "
          "synthetic stand-in data, near chance): they show the commands run end to end, "
          "not what a model learns.")
    for w, ns in sorted(shared.items()):
        print(f"- WARNING: {', '.join(ns)} document the same --workdir {w}")
    for row in rows:
        if row.get("warning"):
            print(f"- WARNING {row['config']}: {row['warning']}")
    print(f"- Other load: loadavg(1 min) {load_start[0]:.2f} at start, {load_end[0]:.2f} at "
          f"end; other processes used {other_s:.0f} CPU-s = "
          f"{100 * other_s / (run_s * (os.cpu_count() or 1)):.0f}% of the machine during the "
          f"{run_s:.0f} s run.")
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    from stopping import run
    run(main)
