"""Throughput of the OpenPose and frame-folder builds against plain reading loops.

    python benchmarks/sources_bench.py [--copies 40] [--folders 2000] [--work_dir /tmp/af_sources_bench]

Data, from the real fixtures in ../shared/fixtures/real, under --work_dir (never in the
repository):
  * OpenPose: the 1,785 soccer JSON files, copied --copies times under new video names
    (regular files, as OpenPose writes them; ``--link_openpose`` links them instead, and
    every listed link then costs a ``stat`` of its own).
  * Frame folders: --folders gesture-layout folders, each linking the 10 JPEGs of
    rawframes/img.

Prints one markdown table; every ratio is between figures measured in this run, each
the median of 3 runs.
Build figures are the whole `python -m pipeline.build` command (Beam start-up
included), with a warm page cache.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import time

import cv2
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "fixtures" / "real"


REPEATS = 3        # every time is the median of this many runs


def _timed(fn, *args):
    """(median seconds of ``REPEATS`` runs of ``fn(*args)``, its last result)."""
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        out = fn(*args)
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def _json_loop(paths):
    people = 0
    for p in paths:
        with open(p) as f:
            people += len(json.load(f).get("people", []))
    return people


def _decode_loop(paths):
    n = 0
    for p in paths:
        with open(p, "rb") as f:
            data = f.read()
        n += cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) is not None
    return n


def _parallel(fn, paths, workers):
    """Seconds for ``workers`` warm processes to run ``fn`` over their share of ``paths``."""
    chunks = [paths[i::workers] for i in range(workers)]
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        pool.map(fn, [paths[:1]] * workers)          # start-up and imports, not timed
        return _timed(lambda: sum(pool.map(fn, chunks)))[0]


def _folder_items(paths):
    """The frame folders of ``paths`` as build items (number order, as the source lists them)."""
    from pipeline.media.items import Item
    folders: dict[str, list[str]] = {}
    for p in paths:
        folders.setdefault(os.path.dirname(p), []).append(p)
    return [Item(path=d, video_id=os.path.basename(d), split="train", label=0, label_text="a",
                 kind="frames", files=tuple(sorted(f))) for d, f in folders.items()]


def _folder_work(items, keep_bytes: bool):
    """The build's per-item work on frame folders (all frames, JPEG): with the files' own
    bytes kept where nothing changes them, or (keep_bytes False) decoded and re-encoded
    as every frame was before."""
    from pipeline.media import frames
    from pipeline.media.encode import FrameSpec
    from pipeline.media.sampling import SamplingSpec
    spec, sampling = FrameSpec(), SamplingSpec(mode="all")
    original = frames.keeps_jpeg
    if not keep_bytes:
        frames.keeps_jpeg = lambda data, spec: None
    try:
        return sum(len(frames.decode_frame_folder(item, sampling, spec).frames) for item in items)
    finally:
        frames.keeps_jpeg = original


def _check_loop(paths):
    """What keeping a JPEG's bytes costs: the read and ``keeps_jpeg``'s marker checks."""
    from pipeline.media.encode import FrameSpec, keeps_jpeg
    spec = FrameSpec()
    n = 0
    for p in paths:
        with open(p, "rb") as f:
            n += keeps_jpeg(f.read(), spec) is not None
    return n


def _keypoint_worker_loop(data_dir):
    """The build's per-item work (listing + make_keypoint_records) in this process."""
    from pipeline.media import keypoints
    from pipeline.sources import openpose
    from pipeline.sources.base import SourceOptions
    listing = openpose.list_items(str(data_dir), SourceOptions())
    spec = keypoints.KeypointSpec()
    return sum(len(keypoints.make_keypoint_records(item, spec)[0]) for item in listing.items)


def _build(args, out):
    cmd = [sys.executable, "-m", "pipeline.build", f"--output_dir={out}", "--overwrite",
           "--progress=false", "--config_name=bench", *args]
    def once():
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"build failed:\n{' '.join(cmd)}\n{r.stderr[-3000:]}")
    return _timed(once)[0]


def make_openpose(work: pathlib.Path, copies: int, link: bool = False) -> list[str]:
    src = sorted((REAL / "soccer" / "openpose").glob("*_keypoints.json"))
    root = work / "openpose"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    paths = []
    for c in range(copies):
        for f in src:
            video, frame = f.name[:-len("_keypoints.json")].rsplit("_", 1)
            path = root / f"{video}c{c}_{frame}_keypoints.json"
            if link:
                path.symlink_to(f)
            else:
                shutil.copyfile(f, path)
            paths.append(str(path))
    return paths


def make_frame_folders(work: pathlib.Path, folders: int) -> list[str]:
    src = sorted((REAL / "rawframes" / "img").glob("*.jpg"))
    root = work / "gestures"
    if root.exists():
        shutil.rmtree(root)
    (root / "train").mkdir(parents=True)
    (root / "val").mkdir()
    rows, paths = [], []
    for i in range(folders):
        folder = root / "train" / f"clip_{i:05d}"
        folder.mkdir()
        for f in src:
            (folder / f.name).symlink_to(f)
            paths.append(str(folder / f.name))
        rows.append(f"clip_{i:05d};{['Clap', 'Wave'][i % 2]};{i % 2}")
    (root / "train.csv").write_text("\n".join(rows) + "\n")
    (root / "val.csv").write_text("")
    return paths


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=40)
    ap.add_argument("--folders", type=int, default=2000)
    ap.add_argument("--work_dir", default="/tmp/af_sources_bench")
    ap.add_argument("--link_openpose", action="store_true",
                    help="link the OpenPose files instead of copying them")
    ap.add_argument("--only", choices=["openpose", "frames"], default=None,
                    help="measure one of the two sources alone")
    a = ap.parse_args()
    work = pathlib.Path(a.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    out = work / "out"
    rows = []

    n = clips = 0
    if a.only in (None, "openpose"):
        json_paths = make_openpose(work, a.copies, a.link_openpose)
        _json_loop(json_paths)                                   # warm the page cache
        t_json, _ = _timed(_json_loop, json_paths)
        t_json2 = _parallel(_json_loop, json_paths, 2)
        op_args = ["--dataset=openpose", f"--data_dir={work / 'openpose'}",
                   f"--label_csv={REAL / 'soccer' / 'labels.csv'}", "--id_column=kick",
                   "--label_column=type", "--id_template=Kick_{id}"]
        # every copy is its own video; labels exist for the originals only, so label copies too
        labels = work / "labels.csv"
        with open(REAL / "soccer" / "labels.csv") as f:
            lines = f.read().splitlines()
        header, body = lines[0], lines[1:]
        labels.write_text("\n".join([header] + [
            f"{row.split(',', 1)[0]}c{c},{row.split(',', 1)[1]}"
            for c in range(a.copies) for row in body]) + "\n")
        op_args[2] = f"--label_csv={labels}"
        t_op = {w: _build(op_args + [f"--direct_num_workers={w}"], out) for w in (1, 2)}
        t_start = _build(op_args + ["--direct_num_workers=2", "--max_examples_per_split=1"], out)
        _keypoint_worker_loop(work / "openpose")
        t_work, _ = _timed(_keypoint_worker_loop, work / "openpose")
        n = len(json_paths)
        rows += [
            ("OpenPose: json.load loop, 1 process", n / t_json, "files/s", ""),
            ("OpenPose: json.load loop, 2 processes", n / t_json2, "files/s", ""),
            ("OpenPose: the build's per-item work (list + make_keypoint_records), 1 process",
             n / t_work, "files/s", f"{t_json / t_work:.2f}x the json.load loop"),
            ("OpenPose: build command, 1 worker", n / t_op[1], "files/s",
             f"{t_json / t_op[1]:.2f}x the 1-process loop"),
            ("OpenPose: build command, 2 workers", n / t_op[2], "files/s",
             f"{t_json2 / t_op[2]:.2f}x the 2-process loop, {t_op[1] / t_op[2]:.2f}x 1 worker"),
            ("OpenPose: build command over 1 video (fixed start-up)", t_start, "s", ""),
            ("OpenPose: build, 2 workers, less the fixed start-up",
             n / max(t_op[2] - t_start, 1e-9), "files/s",
             f"{t_json2 / max(t_op[2] - t_start, 1e-9):.2f}x the 2-process loop"),
        ]

    if a.only in (None, "frames"):
        frame_paths = make_frame_folders(work, a.folders)
        _decode_loop(frame_paths)
        t_dec, _ = _timed(_decode_loop, frame_paths)
        t_dec2 = _parallel(_decode_loop, frame_paths, 2)
        fb = ["--dataset=gestures", f"--data_dir={work / 'gestures'}"]
        items = _folder_items(frame_paths)
        t_keep, kept = _timed(_folder_work, items, True)
        t_reencode, _ = _timed(_folder_work, items, False)
        t_check, checked = _timed(_check_loop, frame_paths)
        if kept != len(frame_paths) or checked != len(frame_paths):
            raise SystemExit(f"expected every one of the {len(frame_paths)} JPEGs kept as they are")
        variants = {
            "all frames, the JPEG files' own bytes": ["--sampling=all"],
            "uniform 8, centre square 100x100": ["--sampling=uniform", "--num_frames=8",
                                                 "--crop=center_square", "--size=100x100"],
        }
        clips = a.folders
        rows += [("frame folders: decode-only (read + imdecode), 1 process", clips / t_dec,
                  "clips/s", f"{len(frame_paths) / t_dec:.0f} frames/s"),
                 ("frame folders: decode-only, 2 processes", clips / t_dec2, "clips/s",
                  f"{len(frame_paths) / t_dec2:.0f} frames/s"),
                 ("frame folders: read + the check before keeping a JPEG (header, scan and "
                  "end markers), 1 process", len(frame_paths) / t_check, "frames/s",
                  f"{t_dec / t_check:.2f}x the speed of read + full decode"),
                 ("frame folders: the build's per-item work, all frames, bytes re-encoded, "
                  "1 process", clips / t_reencode, "clips/s", ""),
                 ("frame folders: the build's per-item work, all frames, bytes kept, 1 process",
                  clips / t_keep, "clips/s", f"{t_reencode / t_keep:.2f}x re-encoding, "
                  f"{t_dec / t_keep:.2f}x decode-only 1 process")]
        t_start = _build(fb + ["--sampling=all", "--direct_num_workers=2",
                               "--max_examples_per_split=1"], out)
        rows.append(("frame folders: build command over 1 folder (fixed start-up)", t_start,
                     "s", ""))
        for name, extra in variants.items():
            t = _build(fb + extra + ["--direct_num_workers=2"], out)
            rows.append((f"frame folders build command, 2 workers: {name}", clips / t, "clips/s",
                         f"{t_dec2 / t:.2f}x decode-only 2 processes; less start-up "
                         f"{clips / max(t - t_start, 1e-9):,.0f} clips/s = "
                         f"{t_dec2 / max(t - t_start, 1e-9):.2f}x"))

    print("command: python benchmarks/sources_bench.py " + " ".join(sys.argv[1:]))
    data = []
    if n:
        data.append(f"{n} OpenPose files ({a.copies} x 1,785 real soccer files, "
                    f"{'linked' if a.link_openpose else 'copied'})")
    if clips:
        data.append(f"{clips} frame folders x 10 real JPEGs ({REAL / 'rawframes' / 'img'})")
    print(f"data: {'; '.join(data)}; {os.cpu_count()} cores\n")
    print("| what | rate | unit | ratio / note |")
    print("| --- | ---: | --- | --- |")
    for what, rate, unit, note in rows:
        print(f"| {what} | {rate:,.1f} | {unit} | {note} |" if unit == "s" else
              f"| {what} | {rate:,.0f} | {unit} | {note} |")


if __name__ == "__main__":
    from stopping import run
    run(main)
