#!/usr/bin/env python
r"""Throughput and memory benchmark for ``python -m pipeline.build``.

    python benchmarks/build_bench.py [--copies N] [--long_minutes M] [--work_dir D] [--quick]

Measures, in one run, on this machine:

1. decode-only frames/s: a plain OpenCV loop (VideoCapture + read() to the end)
   over N links of the real fixture, in 1 process and in a Pool(2);
2. build frames/s and clips/s: the real build command, as a subprocess, timed
   wall clock (Beam start-up included), for --sampling all and
   --sampling uniform --num_frames 16 (both --resize_shorter 128), with
   --direct_num_workers 1 and 2 (multi_processing);
3. ratios of the above against their targets;
4. the peak RSS (largest single process) of building one long synthetic
   1920x1080 video, via getrusage(RUSAGE_CHILDREN) in a fresh helper process;
5. resuming: the all-frames 2-worker build of 5 x N links stopped with SIGTERM once half
   its items are done, then rerun with the same command, against the same build run
   whole (``--only resume`` runs this part alone);
6. scaling (``--only scaling``): frames/s of the 16-frame and all-frames builds with 1
   and 2 workers, on the local runner and on a Dask cluster (a scheduler and 1 or 2
   single-threaded workers started here), against decoding alone in 1 and 2 processes;
7. start-up (``--only startup``): where the fixed cost of a build goes: the interpreter,
   importing Beam, importing the build, and whole one-video builds (in the driver's
   process as small builds run, with and without Beam's graph type inference, and with 1
   and 2 worker processes), medians of 5;
8. decoding threads (``--only threads``): CPU and wall per frame of decoding every frame
   of three real videos with one FFmpeg thread against OpenCV's default, and of the
   copies in 1 and 2 processes (a worker per core decodes with one thread); and the wall
   per frame of 1 and 2 threads on synthetic clips from 320x240 to 1920x1080 in three
   codecs (where threads start to pay: ``video.MIN_THREADED_PIXELS``);
9. sparse sampling of a long video (``--only seek``): 16 uniform frames of the 3-minute
   1080p video, decoded by seeking across the gaps and by a full pass (the clips are
   compared), against a bare grab() of every frame; and the whole build command of it;
10. the listing at scale (``--only listing``): builds of 20,000 and 200,000 empty files
   (all quarantined, so the figures are the per-item overhead alone): wall time, the
   driver's peak RSS, the size of the job graph, against the graph a ``beam.Create`` of
   the listing would make;
11. per-frame costs (``--only costs``): what grab, colour conversion, resize, JPEG encode
   and the build's own per-item call cost per frame of the UCF-like fixture, one thread;
12. sizing the shards (``--only sizing``): 4 links of the long video, all frames, with the
   shards sized by the driver against ``--num_shards 1``;
13. malloc thresholds (``--only heap``): the build's per-item work (all frames) in a
   plain process and in one started as Dask's nanny starts its workers
   (``MALLOC_TRIM_THRESHOLD_=65536``), each without and with the worker's
   ``heap.keep_frames_on_the_heap()``: wall and page faults per item.

Progress goes to stderr; the report (command line + one markdown table +
notes) goes to stdout. Nothing is written inside the repository: data and
outputs live under --work_dir (default: $TMPDIR/actionflow_build_bench).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.normpath(os.path.join(
    PROJECT_ROOT, "..", "shared", "fixtures", "real", "videos", "ucf_like_320x240_fmp4.avi"))

TARGET_ALL_VS_DECODE = 0.8
TARGET_K16_VS_DECODE = 1.0
TARGET_SCALING = 1.7
TARGET_RSS_MB = 1000.0       # 1 GB, decimal: the stricter reading

# Runs a command, waits for it, and reports its wall time and the peak RSS of
# the largest process in its tree (RUSAGE_CHILDREN covers every descendant
# that was waited for: Beam's SDK worker subprocesses are waited for by the
# driver). Optionally samples the summed RSS of the whole tree from /proc.
HELPER = r"""
import json, os, resource, subprocess, sys, threading, time

sample = sys.argv[1] == "1"
out_path, err_path = sys.argv[2], sys.argv[3]
cmd = sys.argv[4:]

def tree_rss_kib(root):
    children = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(pid))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, ()))
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total

with open(out_path, "wb") as out, open(err_path, "wb") as err:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=out, stderr=err)
    peak_tree = 0
    stop = threading.Event()
    def poll():
        global peak_tree
        while not stop.wait(0.25):
            peak_tree = max(peak_tree, tree_rss_kib(proc.pid))
    thread = threading.Thread(target=poll, daemon=True)
    if sample:
        thread.start()
    rc = proc.wait()
    wall = time.perf_counter() - t0
    stop.set()
    if sample:
        thread.join()
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": rc, "wall_s": wall, "maxrss_kib": usage.ru_maxrss,
                  "tree_peak_kib": peak_tree if sample else None}))
"""


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
    """CPU seconds of this process and every descendant it has waited for."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        u = resource.getrusage(who)
        total += u.ru_utime + u.ru_stime
    return total


def log(msg: str):
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Data.
# --------------------------------------------------------------------------
def make_folder_dataset(root: str, copies: int, classes: int) -> list[str]:
    """root/class_i/vid_jjjj.avi, hard links to the fixture (symlinks if that fails)."""
    if os.path.isdir(root):
        shutil.rmtree(root)
    paths, how = [], "hard link"
    for j in range(copies):
        cls_dir = os.path.join(root, f"class_{j % classes}")
        os.makedirs(cls_dir, exist_ok=True)
        dst = os.path.join(cls_dir, f"vid_{j:05d}.avi")
        try:
            os.link(FIXTURE, dst)
        except OSError:
            os.symlink(FIXTURE, dst)
            how = "symlink"
        paths.append(dst)
    log(f"{copies} {how}s of the fixture in {min(copies, classes)} class folders under {root}")
    return paths


def warm_cache(paths: list[str]) -> int:
    total = 0
    for p in paths:
        with open(p, "rb") as f:
            while chunk := f.read(1 << 20):
                total += len(chunk)
    return total


def make_long_video(path: str, minutes: float, fps: int = 30, size=(1920, 1080)) -> int:
    """A synthetic 1080p mp4v video: moving shapes over a gradient plus noise. Cached."""
    n = max(1, int(round(minutes * 60 * fps)))
    if os.path.exists(path):
        cap = cv2.VideoCapture(path)
        claimed = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        cap.release()
        if claimed == n:
            log(f"long video cached: {path} ({n} frames)")
            return n
    os.makedirs(os.path.dirname(path), exist_ok=True)
    w, h = size
    tmp = path + ".part.mp4"
    writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError("cv2.VideoWriter could not open an mp4v writer")
    rng = np.random.default_rng(0)
    xs = np.linspace(0, 255, w, dtype=np.float32)
    ys = np.linspace(0, 255, h, dtype=np.float32)
    base = np.stack([np.add.outer(ys * 0.5, xs * 0.5), np.add.outer(ys, xs * 0) * 0.8,
                     np.add.outer(ys * 0, xs) * 0.8], axis=-1).clip(0, 255).astype(np.uint8)
    noises = [rng.integers(0, 10, size=(h, w, 3), dtype=np.uint8) for _ in range(8)]
    t0 = time.perf_counter()
    for i in range(n):
        frame = cv2.add(base, noises[i % len(noises)])
        for k in range(6):
            cx = int((w / 2) + (w / 2.5) * np.sin(0.013 * i * (k + 1) + k))
            cy = int((h / 2) + (h / 2.5) * np.cos(0.017 * i * (k + 2) + 2 * k))
            color = (40 * k % 256, 255 - 30 * k, (90 + 50 * k) % 256)
            if k % 2:
                cv2.circle(frame, (cx, cy), 60 + 15 * k, color, -1)
            else:
                cv2.rectangle(frame, (cx - 80, cy - 50), (cx + 80 + 10 * k, cy + 50), color, -1)
        cv2.putText(frame, f"frame {i}", (40, 80), cv2.FONT_HERSHEY_SIMPLEX, 2, (255, 255, 255), 3)
        writer.write(frame)
        if (i + 1) % 300 == 0 or i + 1 == n:
            el = time.perf_counter() - t0
            log(f"generating long video: {i + 1}/{n} frames, {el:.0f}s, "
                f"ETA {el / (i + 1) * (n - i - 1):.0f}s")
    writer.release()
    os.replace(tmp, path)
    return n


# --------------------------------------------------------------------------
# Decode-only baseline.
# --------------------------------------------------------------------------
def decode_file(path: str, threads: int = 0, convert: bool = True) -> int:
    """Every frame of ``path`` grabbed (demuxed and decoded) and, with ``convert``,
    retrieved (converted to BGR: together what ``read()`` does), with ``threads`` FFmpeg
    threads (0: OpenCV's default, a thread per core); returns the number of frames."""
    cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, threads] if threads
                           else [])
    n = 0
    while cap.grab():
        if convert:
            cap.retrieve()
        n += 1
    cap.release()
    return n


def median_wall(fn, repeats: int) -> float:
    """The median wall seconds of ``repeats`` calls of ``fn()``."""
    walls = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - start)
    return float(np.median(walls))


def _one_thread():
    cv2.setNumThreads(1)


def decode_only(paths: list[str], processes: int, threads: int = 0) -> tuple[int, float]:
    """(frames, seconds) of ``decode_file`` over ``paths`` in ``processes`` processes, each
    decoding with ``threads`` threads (0: OpenCV's default)."""
    import functools
    t0 = time.perf_counter()
    if processes == 1:
        frames = sum(decode_file(p, threads) for p in paths)
    else:
        with multiprocessing.get_context("fork").Pool(
                processes, initializer=_one_thread if threads == 1 else None) as pool:
            frames = sum(pool.imap_unordered(functools.partial(decode_file, threads=threads),
                                             paths, chunksize=1))
    return frames, time.perf_counter() - t0


# --------------------------------------------------------------------------
# Builds.
# --------------------------------------------------------------------------
def build_cmd(data_dir: str, out_dir: str, workers: int, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "pipeline.build", "--dataset", "folder",
            "--data_dir", data_dir, "--output_dir", out_dir, "--overwrite", "--progress=false",
            "--direct_running_mode=multi_processing", f"--direct_num_workers={workers}", *extra]


def run_build(work_dir: str, name: str, data_dir: str, workers: int, extra: list[str],
              sample_tree: bool = False) -> dict:
    out_dir = os.path.join(work_dir, "out", name)
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    cmd = build_cmd(data_dir, out_dir, workers, extra)
    log(f"build {name}: {' '.join(shlex.quote(c) for c in cmd[1:])}")
    logs = os.path.join(work_dir, "logs")
    os.makedirs(logs, exist_ok=True)
    so, se = os.path.join(logs, f"{name}.out"), os.path.join(logs, f"{name}.err")
    helper = subprocess.run([sys.executable, "-c", HELPER, "1" if sample_tree else "0", so, se,
                             *cmd], cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True,
                            check=True)
    res = json.loads(helper.stdout.strip().splitlines()[-1])
    res["name"] = name
    res["clips"] = res["frames_written"] = None
    with open(se) as f:
        err = f.read()
    if res["rc"] != 0:
        log(f"build {name} FAILED (rc {res['rc']}); stderr tail:\n{err[-3000:]}")
    else:
        with open(so) as f:
            final_dir = f.read().strip().splitlines()[-1]
        with open(os.path.join(final_dir, "dataset_info.json")) as f:
            info = json.load(f)
        res["clips"] = sum(s["num_examples"] for s in info["splits"].values())
        res["frames_written"] = sum(s["num_frames"] for s in info["splits"].values())
        res["quarantined"] = sum(s.get("quarantined", 0) for s in info["splits"].values())
    shutil.rmtree(out_dir, ignore_errors=True)
    log(f"build {name}: rc {res['rc']}, {res['wall_s']:.2f}s, clips {res['clips']}, "
        f"peak RSS {res['maxrss_kib'] / 1024:.0f} MiB")
    return res


def run_resume(work_dir: str, data_dir: str, extra: list[str], total: int,
               at: float = 0.5) -> dict:
    """Whole build; then the same build stopped (SIGTERM) once ``at`` of its items are done
    and rerun. Returns the wall times, what the stop kept and what the rerun decoded."""
    import re
    import signal
    out_dir = os.path.join(work_dir, "out", "resume")
    shutil.rmtree(out_dir, ignore_errors=True)
    whole = build_cmd(data_dir, os.path.join(out_dir, "whole"), 2, extra)
    t = time.perf_counter()
    subprocess.run(whole, cwd=PROJECT_ROOT, check=True, capture_output=True)
    whole_s = time.perf_counter() - t
    cmd = [c if c != "--progress=false" else "--progress" for c in
           build_cmd(data_dir, os.path.join(out_dir, "stopped"), 2, extra)]
    marks = os.path.join(out_dir, "stopped", "folder", ".folder.partial", "_progress")
    log(f"resume: build stopped at {at:.0%}: {' '.join(shlex.quote(c) for c in cmd[1:])}")
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    while proc.poll() is None:
        done = sum(os.path.getsize(os.path.join(marks, n)) for n in
                   (os.listdir(marks) if os.path.isdir(marks) else ()))
        if done >= at * total:
            proc.send_signal(signal.SIGTERM)
            break
        time.sleep(0.05)
    _, err = proc.communicate()
    stop_s = time.perf_counter() - t
    kept = re.search(r"stopped by SIGTERM: (\d+) of", err) or re.search(
        r"stopped by SIGTERM: no item had (finished)", err)
    t = time.perf_counter()
    rerun = subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True)
    rerun_s = time.perf_counter() - t
    decoded = re.search(r"items_written=(\d+)", rerun.stderr)
    same = rerun.returncode == 0 and all(
        open(os.path.join(out_dir, "whole", "folder", "folder", n), "rb").read() ==
        open(os.path.join(out_dir, "stopped", "folder", "folder", n), "rb").read()
        for n in os.listdir(os.path.join(out_dir, "whole", "folder", "folder"))
        if ".tfrecord-" in n)
    shutil.rmtree(out_dir, ignore_errors=True)
    return {"whole_s": whole_s, "stop_s": stop_s, "rc": proc.returncode,
            "kept": (int(kept.group(1)) if kept.group(1).isdigit() else 0) if kept else None,
            "rerun_s": rerun_s,
            "rerun_rc": rerun.returncode, "decoded": int(decoded.group(1)) if decoded else None,
            "same": same}


# --------------------------------------------------------------------------
# Report.
# --------------------------------------------------------------------------
def mb(kib: int) -> str:
    return f"{kib * 1024 / 1e6:.0f} MB ({kib / 1024:.0f} MiB)"


def verdict(ok: bool | None) -> str:
    return "n/a (build failed)" if ok is None else ("**met**" if ok else "**NOT met**")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--copies", type=int, default=200, help="links of the fixture (default 200)")
    ap.add_argument("--long_minutes", type=float, default=3.0,
                    help="length of the synthetic 1080p30 video (default 3)")
    ap.add_argument("--work_dir", default=os.path.join(tempfile.gettempdir(),
                                                       "actionflow_build_bench"))
    ap.add_argument("--classes", type=int, default=5, help="class folders (default 5)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 10 copies, a 0.1-minute long video")
    ap.add_argument("--only", choices=["resume", "listing", "scaling", "startup", "seek",
                                       "threads", "costs", "sizing", "heap"],
                    default=None,
                    help="run one part alone: resume (stop at half-way and rerun), listing "
                         "(20,000 and 200,000 items), scaling (1 and 2 workers, local and "
                         "Dask), startup (where a one-video build's time goes), seek (16 "
                         "frames of the long video, seeking against a full pass), threads "
                         "(decoding with one thread against OpenCV's default), costs "
                         "(what each step of an all-frames build costs per frame), sizing "
                         "(4 long videos, shards sized by the driver against --num_shards) "
                         "or heap (per-item work under Dask's malloc settings)")
    ap.add_argument("--listing_sizes", default="20000,200000",
                    help="--only listing: the numbers of items (default 20000,200000)")
    args = ap.parse_args()
    command = " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv])
    if args.quick:
        args.copies, args.long_minutes = 10, 0.1
    if not os.path.exists(FIXTURE):
        sys.exit(f"fixture not found: {FIXTURE}")
    work = os.path.abspath(args.work_dir)
    os.makedirs(work, exist_ok=True)
    t_start = time.perf_counter()
    load_start, busy_start, own_start = os.getloadavg(), cpu_busy_s(), own_cpu_s()

    # 1. Data + warm cache.
    paths = make_folder_dataset(os.path.join(work, "data", "folder"), args.copies, args.classes)
    one_dir = os.path.join(work, "data", "one")
    make_folder_dataset(one_dir, 1, 1)
    warm_bytes = warm_cache(paths)
    log(f"warm-up read: {warm_bytes / 1e6:.1f} MB")
    decode_file(paths[0])  # untimed: loads codec libraries

    if args.only == "resume":
        return report_resume(command, work, args.copies, args.classes)
    if args.only == "listing":
        return report_listing(command, work, [int(n) for n in args.listing_sizes.split(",")])
    if args.only == "scaling":
        return report_scaling(command, work, paths, args.copies)
    if args.only == "startup":
        return report_startup(command, work, one_dir)
    if args.only == "seek":
        return report_seek(command, work, args.long_minutes)
    if args.only == "threads":
        return report_threads(command, paths, work)
    if args.only == "costs":
        return report_costs(command)
    if args.only == "sizing":
        return report_sizing(command, work, args.long_minutes)
    if args.only == "heap":
        return report_heap(command, paths)

    # 2. Decode-only baseline.
    dec1_frames, dec1_s = decode_only(paths, 1)
    log(f"decode-only 1 process: {dec1_frames} frames in {dec1_s:.2f}s")
    dec2_frames, dec2_s = decode_only(paths, 2)
    log(f"decode-only Pool(2): {dec2_frames} frames in {dec2_s:.2f}s")
    dec2t_frames, dec2t_s = decode_only(paths, 2, threads=1)
    log(f"decode-only Pool(2), 1 thread each: {dec2t_frames} frames in {dec2t_s:.2f}s")
    src_frames = dec1_frames
    per_copy = src_frames // max(1, args.copies)

    # 3. Builds. One untimed warm-up build (imports, bytecode, page cache), then a
    # timed one-video build as an estimate of the fixed start-up/teardown cost.
    data_dir = os.path.join(work, "data", "folder")
    all_flags = ["--sampling", "all", "--resize_shorter", "128"]
    k16_flags = ["--sampling", "uniform", "--num_frames", "16", "--resize_shorter", "128"]
    run_build(work, "warmup", one_dir, 1, all_flags)
    one = {w: run_build(work, f"one_video_w{w}", one_dir, w, all_flags) for w in (1, 2)}
    builds = {}
    for mode, flags_ in (("all", all_flags), ("k16", k16_flags)):
        for w in (1, 2):
            builds[mode, w] = run_build(work, f"{mode}_w{w}", data_dir, w, flags_)

    # 5. Long 1080p video.
    long_root = os.path.join(work, "long", f"{args.long_minutes:g}min")
    long_path = os.path.join(long_root, "class_0", "long_1080p30.mp4")
    t_gen = time.perf_counter()
    long_frames_claimed = make_long_video(long_path, args.long_minutes)
    gen_s = time.perf_counter() - t_gen
    long_mb = os.path.getsize(long_path) / 1e6
    warm_cache([long_path])
    long_res = run_build(work, "long_1080p", long_root, 1, all_flags, sample_tree=True)

    # Report.
    run_s = time.perf_counter() - t_start
    load_end = os.getloadavg()
    other_s = (cpu_busy_s() - busy_start) - (own_cpu_s() - own_start)
    def fps(frames, s):
        return frames / s if s else float("nan")

    rows = []
    add = lambda *cells: rows.append(cells)   # noqa: E731
    add("Machine", f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
        f"Python {platform.python_version()}, OpenCV {cv2.__version__}, "
        f"cv2.getNumThreads()={cv2.getNumThreads()}", "", "", "")
    add("Data", f"{args.copies} links of `ucf_like_320x240_fmp4.avi` ({per_copy} frames each, "
        f"{src_frames} source frames) in {min(args.copies, args.classes)} class folders; "
        f"warm page cache", "", "", "")
    add("Decode-only, 1 process", f"{fps(src_frames, dec1_s):,.0f} frames/s · "
        f"{args.copies / dec1_s:,.1f} clips/s", f"{dec1_s:.2f} s", "", "baseline")
    add("Decode-only, Pool(2)", f"{fps(dec2_frames, dec2_s):,.0f} frames/s · "
        f"{args.copies / dec2_s:,.1f} clips/s", f"{dec2_s:.2f} s", "", "same-parallelism baseline")
    add("Decode-only, Pool(2), 1 FFmpeg thread per process", f"{fps(dec2t_frames, dec2t_s):,.0f} "
        f"frames/s · {args.copies / dec2t_s:,.1f} clips/s", f"{dec2t_s:.2f} s", "",
        "the same decoding as the build's workers")
    for w in (1, 2):
        r = one[w]
        add(f"Build, 1 video, all frames, {w} worker(s)",
            "failed" if r["rc"] else f"{r['clips']} clip, {r['frames_written']} frames",
            f"{r['wall_s']:.2f} s", "", "≈ fixed start-up + teardown cost of one build")
    labels = {"all": "all frames, short128", "k16": "uniform K=16, short128"}
    for (mode, w), r in builds.items():
        if r["rc"]:
            add(f"Build {labels[mode]}, {w} worker(s)", f"FAILED rc={r['rc']}",
                f"{r['wall_s']:.2f} s", "", "see logs")
            continue
        add(f"Build {labels[mode]}, {w} worker(s)",
            f"{fps(src_frames, r['wall_s']):,.0f} source frames/s · "
            f"{r['clips'] / r['wall_s']:,.1f} clips/s",
            f"{r['wall_s']:.2f} s",
            "", f"{r['clips']} clips, {r['frames_written']} frames written, "
                f"{r.get('quarantined', 0)} quarantined; peak RSS {mb(r['maxrss_kib'])}")

    def ratio(num, den):
        return None if num is None or den is None else num / den

    b_fps = {k: (None if r["rc"] else fps(src_frames, r["wall_s"])) for k, r in builds.items()}
    d1, d2 = fps(src_frames, dec1_s), fps(dec2_frames, dec2_s)
    d2t = fps(dec2t_frames, dec2t_s)
    ratio_rows = [
        ("all-frames build (2 workers) / decode-only (1 process)", ratio(b_fps["all", 2], d1),
         TARGET_ALL_VS_DECODE, "≥"),
        ("all-frames build (2 workers) / decode-only (Pool(2))", ratio(b_fps["all", 2], d2),
         TARGET_ALL_VS_DECODE, "≥"),
        ("all-frames build (1 worker) / decode-only (1 process)", ratio(b_fps["all", 1], d1),
         TARGET_ALL_VS_DECODE, "≥"),
        ("K=16 build (2 workers) / decode-only (1 process)", ratio(b_fps["k16", 2], d1),
         TARGET_K16_VS_DECODE, ">"),
        ("K=16 build (2 workers) / decode-only (Pool(2))", ratio(b_fps["k16", 2], d2),
         TARGET_K16_VS_DECODE, ">"),
        ("K=16 build (1 worker) / decode-only (1 process)", ratio(b_fps["k16", 1], d1),
         TARGET_K16_VS_DECODE, ">"),
        ("all-frames build (2 workers) / decode-only (Pool(2), 1 thread each)",
         ratio(b_fps["all", 2], d2t), TARGET_ALL_VS_DECODE, "≥"),
        ("K=16 build (2 workers) / decode-only (Pool(2), 1 thread each)",
         ratio(b_fps["k16", 2], d2t), TARGET_K16_VS_DECODE, ">"),
        ("all-frames build: 2 workers / 1 worker", ratio(b_fps["all", 2], b_fps["all", 1]),
         TARGET_SCALING, "≥"),
        ("K=16 build: 2 workers / 1 worker", ratio(b_fps["k16", 2], b_fps["k16", 1]),
         TARGET_SCALING, "≥"),
    ]
    for label, value, target, op in ratio_rows:
        ok = None if value is None else (value >= target if op == "≥" else value > target)
        add(f"Ratio: {label}", "n/a" if value is None else f"{value:.2f}×",
            "", f"{op} {target:g}×", verdict(ok))
    add("Ratio: decode-only Pool(2) / 1 process", f"{d2 / d1:.2f}×", "", "",
        "no target: this machine's 2-process ceiling")

    add("Long video", f"synthetic 1920x1080 mp4v, {args.long_minutes:g} min at 30 fps, "
        f"{long_frames_claimed} frames, {long_mb:.0f} MB", f"{gen_s:.1f} s to generate/check",
        "", "cached in the work dir")
    if long_res["rc"]:
        add("Long video build (all, short128, 1 worker)", f"FAILED rc={long_res['rc']}",
            f"{long_res['wall_s']:.2f} s", "", "see logs")
    else:
        add("Long video build (all, short128, 1 worker)",
            f"{long_res['frames_written']} frames written, "
            f"{fps(long_res['frames_written'], long_res['wall_s']):,.0f} frames/s",
            f"{long_res['wall_s']:.2f} s", "", f"{long_res['clips']} clip")
    all_runs = [*one.values(), *builds.values(), long_res]
    worst = max(all_runs, key=lambda r: r["maxrss_kib"])
    add("Peak RSS, largest of all builds in this run (largest process)", mb(worst["maxrss_kib"]),
        "", f"< {TARGET_RSS_MB:g} MB", verdict(worst["maxrss_kib"] * 1024 / 1e6 < TARGET_RSS_MB)
        + f" ({worst['name']})")
    rss_kib = long_res["maxrss_kib"]
    add("Peak RSS, long video build (largest process)", mb(rss_kib), "",
        f"< {TARGET_RSS_MB:g} MB", verdict(None if long_res["rc"] else
                                           rss_kib * 1024 / 1e6 < TARGET_RSS_MB))
    if long_res.get("tree_peak_kib"):
        add("Peak summed RSS of the whole build process tree (sampled every 0.25 s)",
            mb(long_res["tree_peak_kib"]), "", "", "informational (shared pages counted twice)")
    add("Benchmark wall time", "", f"{run_s:.0f} s", "", "")
    add("Other load on the machine",
        f"loadavg(1 min) {load_start[0]:.2f} at start, {load_end[0]:.2f} at end; "
        f"other processes used {other_s:.0f} CPU-s = "
        f"{100 * other_s / (run_s * (os.cpu_count() or 1)):.0f}% of the machine during the run",
        "", "≈ 0%", "timings are only clean when this is near 0")

    print(f"$ {command}\n")
    print("| Measurement | Value | Wall | Target | Met? / note |")
    print("|---|---|---|---|---|")
    for cells in rows:
        print("| " + " | ".join(str(c) for c in cells) + " |")
    print()
    print("Notes:")
    print("- Build times are the wall clock of the whole `python -m pipeline.build` subprocess: "
          "interpreter and Beam start-up, listing, graph, shard writing, commit and teardown "
          "included (the one-video rows estimate that fixed cost).")
    print("- Build frames/s = source frames decoded (copies × frames per copy = "
          f"{src_frames}) / wall seconds, for both sampling modes, so it compares with "
          "decode-only frames/s; clips/s = clips written / wall seconds.")
    print("- Decode-only runs in this benchmark's process (1) or a fork Pool(2) over files; "
          "it decodes with OpenCV's default threads (a thread per core), and once more with "
          "one FFmpeg thread per process, as the build's workers do when there is a worker "
          "per core (--decode_threads 0 gives each worker cores / workers threads).")
    print("- Peak RSS = getrusage(RUSAGE_CHILDREN).ru_maxrss in a fresh helper process that "
          "runs the build and waits: the largest single process of the build's tree (driver "
          "or Beam SDK worker), not a sum. MB = 10^6 bytes.")
    print(f"- Build variants ran with {build_cmd('DATA', 'OUT', 'W', [])[3:]!r} plus the "
          "sampling flags; logs are in " + os.path.join(work, "logs") + ".")


def report_resume(command: str, work: str, copies: int, classes: int):
    """Stop-and-rerun against a whole build, on 5 x ``copies`` links: a build of a few
    seconds stops before its workers close a part (every 2 s at the least), keeping
    nothing, which says nothing about resuming."""
    flags_ = ["--sampling", "all", "--resize_shorter", "128", "--config_name", "folder"]
    copies *= 5
    data_dir = os.path.join(work, "data", "resume")
    make_folder_dataset(data_dir, copies, classes)
    runs = [run_resume(work, data_dir, flags_, copies) for _ in range(3)]
    med = lambda key: float(np.median([r[key] for r in runs]))   # noqa: E731
    print(f"$ {command}\n")
    print("| Measurement (median of 3) | Value | Note |")
    print("|---|---|---|")
    print(f"| Whole build, all frames, short128, 2 workers | {med('whole_s'):.2f} s | "
          f"{copies} links of the UCF-like fixture |")
    print(f"| Build stopped with SIGTERM at half its items | {med('stop_s'):.2f} s to the stop | "
          f"kept {[r['kept'] for r in runs]} of {copies} items; exit {[r['rc'] for r in runs]} |")
    print(f"| Rerun of the same command | {med('rerun_s'):.2f} s | decoded "
          f"{[r['decoded'] for r in runs]} items; shards identical to the whole build: "
          f"{all(r['same'] for r in runs)} |")
    print(f"| Ratio: rerun / whole build | {med('rerun_s') / med('whole_s'):.2f}× | "
          "start-up and the finishing steps are paid again; the decoding is not |")


class DaskCluster:
    """A Dask scheduler and ``workers`` single-threaded worker processes on 127.0.0.1."""

    def __init__(self, workers: int):
        import socket
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        dask = os.path.join(os.path.dirname(sys.executable), "dask")
        quiet = dict(os.environ, DASK_LOGGING__DISTRIBUTED="error")
        self.procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port",
                                        str(self.port), "--no-dashboard"], env=quiet,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
        self.procs += [subprocess.Popen([dask, "worker", f"tcp://127.0.0.1:{self.port}",
                                         "--nworkers", "1", "--nthreads", "1",
                                         "--no-dashboard"], env=quiet,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                       for _ in range(workers)]
        from distributed import Client
        with Client(f"127.0.0.1:{self.port}", timeout=120) as client:
            client.wait_for_workers(workers, timeout=120)

    def close(self):
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(timeout=60)


def report_scaling(command: str, work: str, paths: list[str], copies: int):
    data_dir = os.path.dirname(os.path.dirname(paths[0]))
    warm_cache(paths)
    decode_file(paths[0])
    dec = {n: decode_only(paths, n) for n in (1, 2)}
    dec1t = {n: decode_only(paths, n, threads=1) for n in (1, 2)}
    frames = dec[1][0]
    modes = {"uniform 16": ["--sampling", "uniform", "--num_frames", "16",
                            "--resize_shorter", "128"],
             "all frames": ["--sampling", "all", "--resize_shorter", "128"]}
    run_build(work, "warmup", data_dir, 1, modes["uniform 16"])
    walls = {}
    for mode, flags_ in modes.items():
        for w in (1, 2):
            walls["local", mode, w] = [run_build(work, f"local_{w}", data_dir, w,
                                                 flags_)["wall_s"] for _ in range(3)]
    for w in (1, 2):
        cluster = DaskCluster(w)
        try:
            for mode, flags_ in modes.items():
                # as BUILD.md advises: threads per worker = cores / worker processes
                extra = [*flags_, "--runner", "DaskRunner",
                         f"--dask_client_address=127.0.0.1:{cluster.port}",
                         f"--decode_threads={max(1, (os.cpu_count() or 1) // w)}"]
                walls["dask", mode, w] = [run_build(work, f"dask_{w}", data_dir, w,
                                                    extra)["wall_s"] for _ in range(3)]
        finally:
            cluster.close()
    med = {k: float(np.median(v)) for k, v in walls.items()}
    print(f"$ {command}\n")
    print(f"{copies} links of the UCF-like fixture, {frames} source frames; medians of 3 "
          "builds (wall clock of the whole command, start-up included).\n")
    print("| Runner | Sampling | 1 worker | 2 workers | 2 / 1 |")
    print("|---|---|---|---|---|")
    d1, d2 = dec[1][0] / dec[1][1], dec[2][0] / dec[2][1]
    print(f"| decode only (OpenCV loop) | every frame | {d1:,.0f} frames/s | {d2:,.0f} frames/s "
          f"| {d2 / d1:.2f}× |")
    t1, t2 = (dec1t[n][0] / dec1t[n][1] for n in (1, 2))
    print(f"| decode only, 1 thread per process | every frame | {t1:,.0f} frames/s | "
          f"{t2:,.0f} frames/s | {t2 / t1:.2f}× |")
    for runner in ("local", "dask"):
        for mode in modes:
            f1, f2 = frames / med[runner, mode, 1], frames / med[runner, mode, 2]
            print(f"| {runner} | {mode} | {f1:,.0f} frames/s ({med[runner, mode, 1]:.1f} s) | "
                  f"{f2:,.0f} frames/s ({med[runner, mode, 2]:.1f} s) | {f2 / f1:.2f}× |")


def _cpu_and_wall(fn) -> tuple[float, float]:
    """(CPU seconds of this process and its waited children, wall seconds) of ``fn()``."""
    def cpu():
        own, kids = os.times(), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.user + own.system + kids.ru_utime + kids.ru_stime
    c0, t0 = cpu(), time.perf_counter()
    fn()
    return cpu() - c0, time.perf_counter() - t0


def make_size_video(path: str, size: tuple[int, int], codec: str, frames: int = 90) -> str:
    """A synthetic clip of ``frames`` moving noise at ``size`` in ``codec`` ("mp4v" through
    OpenCV; "h264" and "mpeg2" through PyAV, when installed). Cached."""
    if os.path.exists(path):
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    w, h = size
    rng = np.random.default_rng(0)
    base = cv2.resize(rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8), (w, h))
    pictures = (np.roll(base, 3 * i, axis=1) for i in range(frames))
    tmp = path + ".part" + os.path.splitext(path)[1]
    if codec == "mp4v":
        writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"mp4v"), 25, (w, h))
        for picture in pictures:
            writer.write(picture)
        writer.release()
    else:
        import av
        with av.open(tmp, "w") as out:
            stream = out.add_stream({"h264": "libx264", "mpeg2": "mpeg2video"}[codec], rate=25)
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            for picture in pictures:
                for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="bgr24")):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
    os.replace(tmp, path)
    return path


def report_threads(command: str, paths: list[str], work: str, repeats: int = 3):
    """Decoding with one FFmpeg thread against OpenCV's default, per frame in one process
    (CPU and wall) for three real videos, and for the copies in a Pool(2); and the wall
    per frame of 1 and 2 threads by frame size and codec (``video.MIN_THREADED_PIXELS``)."""
    real = os.path.dirname(os.path.dirname(FIXTURE))
    videos = [("UCF-like 320x240 MPEG-4", FIXTURE),
              ("Kinetics-like 340x256 H.264",
               os.path.join(real, "videos", "kinetics_like_340x256_h264.mp4")),
              ("soccer 1920x1080 H.264", os.path.join(real, "soccer", "videos", "Kick 1.mp4"))]
    print(f"$ {command}\n")
    print(f"{os.cpu_count()} CPUs, OpenCV {cv2.__version__}; medians of {repeats}.\n")
    print("| Decoding every frame | Threads | CPU per frame | Wall per frame | "
          "CPU: 1 thread / default |")
    print("|---|---|---|---|---|")
    for label, path in videos:
        n = decode_file(path)
        med = {}
        for threads in (0, 1):
            runs = [_cpu_and_wall(lambda: decode_file(path, threads)) for _ in range(repeats)]
            med[threads] = [float(np.median([r[i] for r in runs])) * 1000 / n for i in (0, 1)]
        for threads in (0, 1):
            ratio = f"{med[1][0] / med[0][0]:.2f}×" if threads else ""
            print(f"| {label}, {n} frames | {threads or 'default'} | {med[threads][0]:.3f} ms | "
                  f"{med[threads][1]:.3f} ms | {ratio} |")
    print()
    print("| Decoding every frame of the copies | 1 process | Pool(2) | Pool(2) / 1 |")
    print("|---|---|---|---|")
    for threads in (0, 1):
        fps = {}
        for processes in (1, 2):
            runs = [decode_only(paths, processes, threads) for _ in range(repeats)]
            fps[processes] = runs[0][0] / float(np.median([r[1] for r in runs]))
        print(f"| {len(paths)} copies, {'1 thread' if threads else 'default threads'} per "
              f"process | {fps[1]:,.0f} frames/s | {fps[2]:,.0f} frames/s | "
              f"{fps[2] / fps[1]:.2f}× |")
    print()
    import importlib.util
    # H.264 and MPEG-2 clips are written with PyAV (a test extra); mp4v with OpenCV
    codecs = ["mp4v", "mpeg2", "h264"] if importlib.util.find_spec("av") else ["mp4v"]
    sizes = [(320, 240), (480, 360), (640, 480), (960, 540), (1920, 1080)]
    print("Synthetic 90-frame clips, every frame grabbed (decoded, not converted); wall per "
          "frame with 1 and 2 FFmpeg threads, and 1 thread / 2 threads (above 1: threads "
          "win). The build gives a worker's threads to videos of at least "
          "`video.MIN_THREADED_PIXELS` (640x480), one to smaller ones.\n")
    print("| Size | " + " | ".join(f"{c}: 1 / 2 threads" for c in codecs) + " |")
    print("|---|" + "---|" * len(codecs))
    for w, h in sizes:
        cells = []
        for codec in codecs:
            clip = make_size_video(os.path.join(work, "sizes", f"{codec}_{w}x{h}.mkv"
                                                if codec != "mp4v" else
                                                f"{codec}_{w}x{h}.mp4"), (w, h), codec)
            n = decode_file(clip, 1, convert=False)
            walls = {threads: median_wall(lambda: decode_file(clip, threads, convert=False),
                                          repeats) * 1000 / n for threads in (1, 2)}
            cells.append(f"{walls[1]:.3f} / {walls[2]:.3f} ms: {walls[1] / walls[2]:.2f}×")
        print(f"| {w}x{h} | " + " | ".join(cells) + " |")


def report_costs(command: str, repeats: int = 7):
    """Wall per frame of each step an all-frames build at a 128-pixel shorter side takes
    for the UCF-like fixture, in this process with one thread (as a worker per core runs):
    grab (decode), retrieve (colour conversion), resize, JPEG encode, and the build's own
    ``decode_video`` and ``make_item_records`` of the file."""
    sys.path.insert(0, PROJECT_ROOT)
    from pipeline.media import video
    from pipeline.media.encode import FrameSpec, output_size, process_frame
    from pipeline.media.items import Item
    from pipeline.media.records import BuildSettings, make_item_records
    from pipeline.media.sampling import SamplingSpec
    video.set_threads(1)
    spec = FrameSpec(resize_shorter=128)
    with video.VideoReader(FIXTURE) as reader:
        frames = [frame for _, _, frame in reader.frames()]
    n = len(frames)
    h, w = output_size(spec, *frames[0].shape[:2])
    small = [cv2.resize(f, (w, h), interpolation=cv2.INTER_LINEAR) for f in frames]

    def per_frame(fn) -> float:
        return median_wall(fn, repeats) * 1e6 / n

    item = Item(FIXTURE, "c/v.avi", "train", 0, "c")
    settings = BuildSettings(SamplingSpec("all"), spec)
    grab = per_frame(lambda: decode_file(FIXTURE, 1, convert=False))
    read = per_frame(lambda: decode_file(FIXTURE, 1))
    rows = [
        ("grab(): demux and decode", grab),
        ("retrieve(): colour conversion to BGR (read() less grab())", read - grab),
        (f"resize to {w}x{h} (INTER_LINEAR)", per_frame(
            lambda: [cv2.resize(f, (w, h), interpolation=cv2.INTER_LINEAR) for f in frames])),
        ("JPEG encode at quality 90", per_frame(
            lambda: [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 90]) for f in small])),
        ("process_frame (resize + encode)", per_frame(
            lambda: [process_frame(f, spec) for f in frames])),
        ("decode_video (the build's decode of the file)", per_frame(
            lambda: video.decode_video(FIXTURE, settings.sampling, spec))),
        ("make_item_records (decode_video + the SequenceExample)", per_frame(
            lambda: make_item_records(item, settings))),
    ]
    print(f"$ {command}\n")
    print(f"Every frame of `{os.path.basename(FIXTURE)}` ({n} frames), one thread, in one "
          f"process; medians of {repeats}. The bare decode baseline of the other tables "
          "is grab() + retrieve().\n")
    print("| Step | Wall per frame | Share of make_item_records |")
    print("|---|---:|---:|")
    whole = rows[-1][1]
    for what, us in rows:
        print(f"| {what} | {us:.1f} µs | {us / whole:.2f} |")


def report_sizing(command: str, work: str, minutes: float):
    """All frames of 4 links of the long 1080p video, 2 workers: shards sized by the driver
    (it encodes the first items, up to 3 or for about a second, two at a time in forked
    processes, and keeps them) against --num_shards=1, which sizes nothing: what sizing
    costs on items this long."""
    long_path = os.path.join(work, "long", f"{minutes:g}min", "class_0", "long_1080p30.mp4")
    frames = make_long_video(long_path, minutes)
    data = os.path.join(work, "data", "long4")
    os.makedirs(os.path.join(data, "class_0"), exist_ok=True)
    for name in "abcd":
        link = os.path.join(data, "class_0", f"{name}.mp4")
        if not os.path.exists(link):
            os.link(long_path, link)
    warm_cache([long_path])
    flags_ = ["--sampling", "all", "--resize_shorter", "128"]
    sized = run_build(work, "sizing_default", data, 2, flags_)
    told = run_build(work, "sizing_told", data, 2, flags_ + ["--num_shards", "1"])
    print(f"$ {command}\n")
    print(f"4 links of the synthetic {minutes:g}-minute 1920x1080 video ({frames} frames each), "
          "all frames at a 128-pixel shorter side, 2 workers; one run each.\n")
    print("| Build | Wall | Ratio |")
    print("|---|---:|---:|")
    print(f"| shards sized by the driver (the default) | {sized['wall_s']:.1f} s | "
          f"{sized['wall_s'] / told['wall_s']:.2f} |")
    print(f"| --num_shards 1 (nothing to size) | {told['wall_s']:.1f} s | 1.00 |")


def report_seek(command: str, work: str, minutes: float, repeats: int = 3):
    sys.path.insert(0, PROJECT_ROOT)
    from pipeline.media import video
    from pipeline.media.encode import FrameSpec
    from pipeline.media.sampling import SamplingSpec
    long_root = os.path.join(work, "long", f"{minutes:g}min")
    path = os.path.join(long_root, "class_0", "long_1080p30.mp4")
    frames = make_long_video(path, minutes)
    warm_cache([path])
    sampling, spec = SamplingSpec("uniform", num_frames=16), FrameSpec(resize_shorter=128)

    def timed(fn) -> tuple[float, object]:
        walls, out = [], None
        for _ in range(repeats):
            start = time.perf_counter()
            out = fn()
            walls.append(time.perf_counter() - start)
        return float(np.median(walls)), out

    def full_pass():
        wide = video._wide_gaps
        video._wide_gaps = lambda wanted, fps: False
        try:
            return video.decode_video(path, sampling, spec)
        finally:
            video._wide_gaps = wide

    def grab_all():
        cap = cv2.VideoCapture(path)
        n = 0
        while cap.grab():
            n += 1
        cap.release()
        return n

    t_seek, seeked = timed(lambda: video.decode_video(path, sampling, spec))
    t_full, whole = timed(full_pass)
    t_grab, grabbed = timed(grab_all)
    if seeked != whole:
        sys.exit("the clip read by seeking differs from the full pass's")
    build = run_build(work, "long_k16", long_root, 1, ["--sampling", "uniform", "--num_frames",
                                                      "16", "--resize_shorter", "128"])
    print(f"$ {command}\n")
    print(f"16 uniform frames (resized to a 128-pixel shorter side) of a synthetic {minutes:g}-"
          f"minute 1920x1080 mp4v video, {frames} frames; medians of {repeats}. The two "
          "clips are identical (frames, times, indices).\n")
    print("| What | Wall | Ratio |")
    print("|---|---:|---:|")
    print(f"| grab() of every frame, no conversion (OpenCV loop) | {t_grab:.2f} s | "
          f"{t_grab / t_seek:.1f}× the seeking read |")
    print(f"| decode_video, full pass (every frame grabbed) | {t_full:.2f} s | "
          f"{t_full / t_seek:.1f}× the seeking read |")
    print(f"| decode_video, seeking across the gaps | {t_seek:.2f} s | 1.0 |")
    print(f"| build command of the video, 1 worker, start-up included | {build['wall_s']:.2f} s "
          f"| |")
    assert grabbed == frames


# The build's per-item work (all frames) over the given videos in this process, best of 3
# passes: ms and minor page faults per item, as JSON. argv: "keep" or "plain", paths...
HEAP_PROBE = r"""
import json, resource, sys, time
from pipeline.media import heap
from pipeline.media.encode import FrameSpec
from pipeline.media.items import Item
from pipeline.media.records import BuildSettings, make_item_records
from pipeline.media.sampling import SamplingSpec
from pipeline.media import video
video.set_threads(1)
if sys.argv[1] == "keep":
    heap.keep_frames_on_the_heap()
settings = BuildSettings(SamplingSpec("all"), FrameSpec(resize_shorter=128))
items = [Item(path=p, label=0, label_text="c", split="train", video_id=str(i), kind="video")
         for i, p in enumerate(sys.argv[2:])]
best = None
for _ in range(3):
    faults, start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
    for item in items:
        make_item_records(item, settings)
    wall = time.perf_counter() - start
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    if best is None or wall < best[0]:
        best = (wall, faults)
print(json.dumps({"ms": best[0] / len(items) * 1000, "faults": best[1] / len(items)}))
"""


def report_heap(command: str, paths: list[str], items: int = 40):
    """Per-item work under glibc's default malloc and under Dask's worker setting, without
    and with ``heap.keep_frames_on_the_heap`` (each in a fresh process, one thread)."""
    chosen = paths[:items]
    rows = {}
    for env_name, extra in (("default", {}), ("MALLOC_TRIM_THRESHOLD_=65536 (Dask's workers)",
                                              {"MALLOC_TRIM_THRESHOLD_": "65536"})):
        for mode in ("plain", "keep"):
            env = {k: v for k, v in os.environ.items() if k != "MALLOC_TRIM_THRESHOLD_"}
            env.update(extra)
            out = subprocess.run([sys.executable, "-c", HEAP_PROBE, mode, *chosen],
                                 cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
            if out.returncode:
                sys.exit(f"heap probe failed: {out.stderr[-2000:]}")
            rows[env_name, mode] = json.loads(out.stdout)
            log(f"heap {env_name} {mode}: {rows[env_name, mode]}")
    base = rows["default", "plain"]["ms"]
    print(f"$ {command}\n")
    print(f"The build's per-item work (all frames, resize to 128) over {len(chosen)} links of "
          "the UCF-like fixture in a fresh process, one thread; best of 3 passes.\n")
    print("| Process started with | keep_frames_on_the_heap | Wall per item | Page faults per "
          "item | Wall / default |")
    print("|---|---|---:|---:|---:|")
    for (env_name, mode), r in rows.items():
        print(f"| {env_name} | {'yes' if mode == 'keep' else 'no'} | {r['ms']:.1f} ms | "
              f"{r['faults']:,.0f} | {r['ms'] / base:.2f}× |")


def report_startup(command: str, work: str, one_dir: str, repeats: int = 5):
    def wall(cmd: list[str]) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            r = subprocess.run(cmd, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
            times.append(time.perf_counter() - start)
            if r.returncode:
                sys.exit(f"failed: {' '.join(cmd)}\n{r.stderr[-2000:]}")
        return float(np.median(times))

    out = os.path.join(work, "out", "startup")
    build = [sys.executable, "-m", "pipeline.build", "--dataset", "folder", "--data_dir",
             one_dir, "--output_dir", out, "--overwrite", "--progress=false"]
    rows = [
        ("python -c pass", wall([sys.executable, "-c", "pass"])),
        ("python -c 'import apache_beam'", wall([sys.executable, "-c", "import apache_beam"])),
        ("python -c 'import pipeline.build' (every import of the command)",
         wall([sys.executable, "-c", "import pipeline.build"])),
        ("build of 1 video, as run by default (in the driver's process)", wall(build)),
        ("the same with Beam's graph type inference (--pipeline_type_check)",
         wall(build + ["--pipeline_type_check"])),
        ("build of 1 video, 1 worker process", wall(build + [
            "--direct_running_mode=multi_processing", "--direct_num_workers=1"])),
        ("build of 1 video, 2 worker processes", wall(build + [
            "--direct_running_mode=multi_processing", "--direct_num_workers=2"])),
        ("the same with fresh workers (--nofork_workers)", wall(build + [
            "--direct_running_mode=multi_processing", "--direct_num_workers=2",
            "--nofork_workers"])),
    ]
    default = rows[3][1]
    print(f"$ {command}\n")
    print(f"One video ({FIXTURE}), all frames; medians of {repeats} runs of each command.\n")
    print("| Command | Wall | Share of the default 1-video build |")
    print("|---|---:|---:|")
    for what, seconds in rows:
        print(f"| {what} | {seconds:.2f} s | {seconds / default:.2f} |")


# The driver's own peak RSS: VmHWM of the driver process, read until it exits.
DRIVER_HELPER = r"""
import json, subprocess, sys, threading, time
cmd = sys.argv[1:]
t0 = time.perf_counter()
proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
peak = 0
def poll():
    global peak
    while proc.poll() is None:
        try:
            with open(f"/proc/{proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
        except OSError:
            pass
        time.sleep(0.1)
thread = threading.Thread(target=poll, daemon=True)
thread.start()
_, err = proc.communicate()
wall = time.perf_counter() - t0
thread.join()
print(json.dumps({"rc": proc.returncode, "wall_s": wall, "driver_hwm_kib": peak,
                  "err_tail": err[-2000:]}))
"""


def graph_bytes(n: int, listing_dir: str) -> tuple[int, int]:
    """(job graph bytes of the build's graph, of the same graph fed by a beam.Create of
    ``n`` listed items), both serialised as the runner receives them."""
    import apache_beam as beam
    from pipeline import transforms
    from pipeline.media.encode import FrameSpec
    from pipeline.media.items import Item
    from pipeline.media.records import BuildSettings
    from pipeline.media.sampling import SamplingSpec
    settings = BuildSettings(SamplingSpec("uniform", num_frames=16), FrameSpec())
    p = beam.Pipeline()
    transforms.build_graph(p, listing_dir, settings, listing_dir, {"train": 1}, None)
    ours = len(p.to_runner_api().SerializeToString())
    items = [(i, Item(f"/data/class_{i % 5}/v{i:07d}.avi", f"class_{i % 5}/v{i:07d}.avi",
                      "train", i % 5, f"class_{i % 5}")) for i in range(n)]
    q = beam.Pipeline()
    _ = q | beam.Create(items, reshuffle=False) | beam.Map(lambda x: x)
    theirs = len(q.to_runner_api().SerializeToString())
    for pipeline in (p, q):       # a pipeline's own temporary folder goes only when it runs
        shutil.rmtree(pipeline.local_tempdir, ignore_errors=True)
    return ours, theirs


def report_listing(command: str, work: str, sizes: list[int]):
    rows = []
    for n in sizes:
        data = os.path.join(work, "data", f"empty_{n}")
        if not os.path.isdir(data):
            for c in range(5):
                os.makedirs(os.path.join(data, f"class_{c}"), exist_ok=True)
            for i in range(n):
                open(os.path.join(data, f"class_{i % 5}", f"v{i:07d}.avi"), "wb").close()
        out = os.path.join(work, "out", f"listing_{n}")
        shutil.rmtree(out, ignore_errors=True)
        cmd = build_cmd(data, out, 2, ["--sampling", "uniform", "--num_frames", "16",
                                       "--max_failure_ratio", "1", "--config_name", "x"])
        log(f"listing: {n} empty files: {' '.join(shlex.quote(c) for c in cmd[1:])}")
        res = json.loads(subprocess.run([sys.executable, "-c", DRIVER_HELPER, *cmd],
                                        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True,
                                        check=True).stdout.strip().splitlines()[-1])
        if res["rc"]:
            log(f"listing build of {n} failed:\n{res['err_tail']}")
        ours, create = graph_bytes(n, os.path.join(out, "folder", ".x.partial", "_listing"))
        rows.append((n, res, ours, create))
        shutil.rmtree(out, ignore_errors=True)
    print(f"$ {command}\n")
    print("| Items (empty files) | Build wall | Driver peak RSS | Job graph | Graph of a beam.Create "
          "of the listing |")
    print("|---|---|---|---|---|")
    for n, res, ours, create in rows:
        print(f"| {n:,} | {res['wall_s']:.1f} s (exit {res['rc']}) | "
              f"{res['driver_hwm_kib'] / 1024:.0f} MiB | {ours / 1024:.1f} KiB | "
              f"{create / 2 ** 20:.1f} MiB |")
    if len(rows) >= 2:
        (n0, r0, *_), (n1, r1, *_) = rows[0], rows[-1]
        per_item = (r1["wall_s"] - r0["wall_s"]) / (n1 - n0) * 1e3
        print(f"\nOverhead per item (difference of the two builds): {per_item:.2f} ms")


if __name__ == "__main__":
    from stopping import run
    run(main)
