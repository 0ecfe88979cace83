"""python -m pipeline.show (contact sheets and GIFs of a build's records) and
python -m pipeline.verify --stats."""
from __future__ import annotations

import collections
import json
import pathlib

import numpy as np
import pytest

from conftest import run_module
from pipeline import show
from pipeline.media.keypoints import BODY_25
from tfrecords import schema


def _rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])


def _has_colour(image: np.ndarray, hex_colour: str, tolerance: int = 40) -> bool:
    return bool((np.abs(image[..., :3].astype(int) - _rgb(hex_colour)).max(axis=-1)
                 <= tolerance).any())


def _write_build(folder: pathlib.Path, modality: str, classes, splits: dict, **extra):
    """A build written directly: ``splits`` maps split -> [(label, record bytes)]."""
    folder.mkdir(parents=True)
    info = {"classes": list(classes), "modality": modality, "image_format": "png",
            "splits": {}, **extra}
    for split, records in splits.items():
        shard = schema.shard_name(split, 0, 1)
        with open(folder / shard, "wb") as f:
            for _, record in records:
                f.write(schema.frame_record(record))
        per_class = collections.Counter(classes[label] for label, _ in records if label >= 0)
        info["splits"][split] = {"shards": [shard], "num_examples": len(records),
                                 "per_class": dict(per_class),
                                 "unlabelled": sum(1 for label, _ in records if label < 0)}
    schema.write_dataset_info(str(folder), info)
    return folder


def _person(t: int, seen_points=None) -> tuple[np.ndarray, np.ndarray]:
    """One BODY_25 person standing, moving right by 0.02 a frame; (values, mask) [1, 25, *]."""
    base = {"Nose": (0.5, 0.1), "Neck": (0.5, 0.2), "RShoulder": (0.42, 0.2),
            "RElbow": (0.38, 0.32), "RWrist": (0.36, 0.44), "LShoulder": (0.58, 0.2),
            "LElbow": (0.62, 0.32), "LWrist": (0.64, 0.44), "MidHip": (0.5, 0.5),
            "RHip": (0.45, 0.5), "RKnee": (0.44, 0.7), "RAnkle": (0.44, 0.9),
            "LHip": (0.55, 0.5), "LKnee": (0.56, 0.7), "LAnkle": (0.56, 0.9)}
    values = np.zeros((1, 25, 3), np.float32)
    mask = np.zeros((1, 25), np.float32)
    for v, name in enumerate(BODY_25):
        if name in base and (seen_points is None or name in seen_points):
            values[0, v] = (base[name][0] + 0.02 * t, base[name][1], 0.9)
            mask[0, v] = 1
    return values, mask


def keypoint_record(label, name, frames):
    """``frames``: per frame None (everyone seen), a set of point names, or () (no one)."""
    vals, masks = zip(*(_person(t, seen) for t, seen in enumerate(frames)))
    return schema.encode_keypoints(np.stack(vals), np.stack(masks), label=label,
                                   label_text=["kick", "walk"][label], video_id=name,
                                   layout="BODY_25", point_names=BODY_25, fps=10.0,
                                   extra_context={schema.IMAGE_WIDTH: 640,
                                                  schema.IMAGE_HEIGHT: 480})


LEFT_ONLY = {"Nose", "Neck", "LShoulder", "LElbow", "LWrist", "MidHip", "LHip", "LKnee",
             "LAnkle"}


@pytest.fixture(scope="module")
def keypoint_build(tmp_path_factory):
    root = tmp_path_factory.mktemp("kp")
    train = [(0, keypoint_record(0, "Kick_1", [None, LEFT_ONLY, (), None, None, None])),
             (1, keypoint_record(1, "Walk_1", [None] * 4)),
             (0, keypoint_record(0, "Kick_2", [None] * 5)),
             (0, keypoint_record(0, "Kick_3", [None] * 3))]
    return _write_build(root / "kp", "keypoints", ["kick", "walk"], {"train": train})


# --------------------------------------------------------------------------
# Video builds.
# --------------------------------------------------------------------------
def _records(build_dir, split):
    import tensorflow as tf
    info = json.loads((build_dir / schema.DATASET_INFO_FILE).read_text())
    out = []
    for shard in info["splits"][split]["shards"]:
        for raw in tf.data.TFRecordDataset(str(build_dir / shard)):
            out.append({k: v.numpy() for k, v in schema.parse_clip(raw).items()})
    return info, out


def test_contact_sheet_of_a_video_build(tiny_video_build, tmp_path):
    info, records = _records(tiny_video_build, "train")
    out = show.show(str(tiny_video_build), "train", str(tmp_path / "out"), per_class=2,
                    max_frames=5, gif=True)
    # The first two records of each class in shard order, classes in index order.
    expected = []
    for label in range(len(info["classes"])):
        expected += [r["video_id"].decode() for r in records if r["label"] == label][:2]
    _, examples = show.read_examples(str(tiny_video_build), "train", 2, max_frames=5)
    assert [ex.video_id for ex in examples] == expected
    assert [ex.label for ex in examples] == [i // 2 for i in range(10)]
    first = examples[0]
    assert first.num_frames == 8 and first.shown == [0, 2, 4, 5, 7]     # evenly, ends included
    record = next(r for r in records if r["video_id"].decode() == first.video_id)
    assert first.source_indices == record["source_indices"].tolist()
    assert first.frames.shape == (5, 32, 32, 3)

    assert out["rows"] == out["records"] == 10 and out["left_out"] == 0
    sheet = tmp_path / "out" / "train_contact_sheet.png"
    assert out["contact_sheet"] == str(sheet)
    import matplotlib.image
    pixels = (matplotlib.image.imread(str(sheet))[..., :3] * 255).round().astype(np.uint8)
    assert pixels.shape[:2] == out["size"][::-1]
    # The first frame of the first row, enlarged 3x (96 px) without smoothing, at the left
    # of the frames: find the top of the first row from the sheet's grey row separator.
    separator = int(np.flatnonzero((pixels[:, 5] == 204).all(axis=-1))[0])
    thumb = pixels[separator + 8:separator + 8 + 96, show.LABEL_WIDTH:show.LABEL_WIDTH + 96]
    np.testing.assert_array_equal(thumb[::3, ::3], first.frames[0])

    gifs = [pathlib.Path(p) for p in out["gifs"]]
    assert [p.name for p in gifs[:2]] == [
        f"{i:03d}_SwipeLeft_{pathlib.Path(examples[i].video_id).stem}.gif" for i in range(2)]
    from PIL import Image
    with Image.open(gifs[0]) as gif:
        assert gif.n_frames == 8                        # every stored frame
        assert gif.size[1] == 160 + 52                  # 32 px frames enlarged to 160, band
        durations = []
        for i in range(gif.n_frames):
            gif.seek(i)
            durations.append(gif.info["duration"])
    ts = record["timestamps_us"]
    gaps = [round((b - a) / 1e4) * 10 for a, b in zip(ts, ts[1:])]
    assert durations[:-1] == gaps                       # timed by the record's timestamps


def test_per_class_classes_max_rows_and_errors(tiny_video_build, tmp_path):
    _, examples = show.read_examples(str(tiny_video_build), "test", 5,
                                     classes=["MoveUp", "SwipeLeft"])
    assert [ex.label_text for ex in examples] == ["SwipeLeft"] * 2 + ["MoveUp"] * 2
    out = show.show(str(tiny_video_build), "test", str(tmp_path), per_class=1, max_rows=3)
    assert (out["records"], out["left_out"]) == (3, 2)
    for kwargs, message in [(dict(split="val"), "the build has no split 'val' (it has test, "
                                                "train)"),
                            (dict(classes=["Jump"]), "unknown class(es) 'Jump'; the build has "
                                                     "SwipeLeft, SwipeRight")]:
        with pytest.raises(show.ShowError, match=message.replace("(", r"\(").replace(")",
                                                                                    r"\)")):
            show.show(str(tiny_video_build), output=str(tmp_path), **kwargs)
    with pytest.raises(show.ShowError, match="no dataset_info.json at"):
        show.show(str(tmp_path / "nothing"), output=str(tmp_path))


def test_command_line_errors_are_one_line_exit_2(tiny_video_build, tmp_path, capsys):
    def run(*args):
        try:
            return show.main(show.parse_flags(["pipeline.show", *args]))
        except SystemExit as e:
            return e.code
    cases = [((str(tiny_video_build), "--split=val"), "error: the build has no split 'val'"),
             ((str(tmp_path),), f"error: no dataset_info.json at {tmp_path}"),
             ((), "error: give one build directory"),
             ((str(tiny_video_build), "--per_class=0"), "error: flag --per_class=0: "),
             ((str(tiny_video_build), "--nosuch"), "error: Unknown command line flag 'nosuch'")]
    for args, start in cases:
        assert run(*args, f"--output={tmp_path / 'o'}") == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert err[0].startswith(start), (args, err)
        assert len(err) <= 2 and "Traceback" not in "\n".join(err)
    assert not (tmp_path / "o").exists()


@pytest.mark.integration
def test_command_line(tiny_video_build, tmp_path):
    r = run_module("pipeline.show", str(tiny_video_build), "--split=test", "--per_class=1",
                   f"--output={tmp_path}", "--gif", env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    loaded = {line.rsplit("|", 1)[-1].strip() for line in r.stderr.splitlines()
              if line.startswith("import time:")}
    assert "tensorflow" in loaded                     # the import report is real
    assert not [m for m in loaded if m.split(".")[0] == "apache_beam"]     # no Beam
    assert r.stdout.splitlines() == [
        f"[show] contact sheet: {tmp_path}/test_contact_sheet.png (5 records in 5 rows, "
        + r.stdout.split(" rows, ")[1].splitlines()[0],
        f"[show] GIFs: {tmp_path}/test_gifs (5 files)"]
    h = run_module("pipeline.show", "--help")
    assert h.returncode == 0
    for flag in ("--split", "--output", "--per_class", "--classes", "--max_rows",
                 "--max_frames", "--thumb_height", "--[no]gif", "--[no]verbose:"):
        assert flag in h.stdout, flag
    assert "contact sheet" in h.stdout and "BODY_25" in h.stdout


# --------------------------------------------------------------------------
# Keypoint and image builds.
# --------------------------------------------------------------------------
def test_keypoint_sheet_draws_skeletons_with_gaps(keypoint_build, tmp_path):
    info, examples = show.read_examples(str(keypoint_build), "train", 2)
    assert [ex.video_id for ex in examples] == ["Kick_1", "Kick_2", "Walk_1"]
    kick = examples[0]
    assert kick.names == BODY_25 and kick.frame_size == (640, 480)
    panel = show.SkeletonFrame(kick, 150)
    whole, left_only, nobody = (np.asarray(panel.draw(t)) for t in (0, 1, 2))
    assert _has_colour(whole, show.LEFT) and _has_colour(whole, show.RIGHT)
    assert _has_colour(whole, show.CENTRE, 10)                       # neck to hip
    assert _has_colour(left_only, show.LEFT) and not _has_colour(left_only, show.RIGHT)
    assert not _has_colour(nobody, show.LEFT) and not _has_colour(nobody, show.RIGHT)
    # The person moves right: its blue pixels move right from frame 0 to frame 5.
    blue = [np.flatnonzero((np.abs(np.asarray(panel.draw(t)).astype(int)
                                   - _rgb(show.LEFT)).max(-1) < 40).any(axis=0)).mean()
            for t in (0, 5)]
    assert blue[1] > blue[0] + 10
    limbs = {(BODY_25[a], BODY_25[b]) for a, b, _ in show.limbs_of(BODY_25)}
    assert len(limbs) == 24 and ("RKnee", "RAnkle") in limbs and ("Neck", "MidHip") in limbs

    out = show.show(str(keypoint_build), "train", str(tmp_path), per_class=2, gif=True)
    assert out["records"] == 3 and out["modality"] == "keypoints"
    import matplotlib.image
    sheet = matplotlib.image.imread(out["contact_sheet"])
    assert sheet.shape[0] > 3 * 144                  # three rows of 1.5 x 96 px panels
    from PIL import Image
    with Image.open(out["gifs"][0]) as gif:
        assert gif.n_frames == 6 and gif.info["duration"] == 100     # 10 fps


def test_coco_skeletons_hang_the_hips_from_the_neck():
    from pipeline.media.keypoints import COCO
    limbs = {(COCO[a], COCO[b]) for a, b, _ in show.limbs_of(COCO)}
    assert {("Neck", "RHip"), ("Neck", "LHip"), ("RHip", "RKnee")} <= limbs
    assert not any("MidHip" in pair or "Heel" in pair[1] for pair in limbs)


def test_image_build_is_a_grid_of_classes(tmp_path):
    rng = np.random.default_rng(0)
    records = []
    for i in range(5):
        label = i % 2
        image = np.full((20, 30, 3), (200, 40, 40) if label else (40, 40, 200), np.uint8)
        image[5:15, 5:25] = rng.integers(0, 255, 3)
        records.append((label, schema.encode_clip([image], label=label,
                                                  label_text=["cat", "dog"][label],
                                                  video_id=f"train/Image_{i}.jpg",
                                                  image_format="png")))
    unlabelled = [(-1, schema.encode_clip([np.zeros((20, 30, 3), np.uint8)], label=-1,
                                          video_id="test/Image_1.jpg", image_format="png"))]
    build = _write_build(tmp_path / "img", "image", ["cat", "dog"],
                         {"train": records, "test": unlabelled})
    out = show.show(str(build), "train", str(tmp_path / "o"), per_class=2, gif=True)
    assert (out["rows"], out["records"], out["gifs"]) == (2, 4, [])
    out = show.show(str(build), "test", str(tmp_path / "o"), per_class=2)
    assert out["rows"] == 1
    _, [ex] = show.read_examples(str(build), "test", 2)
    assert (ex.label, show.class_name({"classes": ["cat", "dog"]}, ex.label)) == \
        (-1, "(unlabelled)")


def test_text_fitting():
    f = show.font(12)
    assert show.fit("short", f, 200) == "short"
    long = "UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi"
    short = show.fit(long, f, 120)
    assert "…" in short and show.text_width(short, f) <= 120
    assert short.startswith("UCF") and short.endswith("avi")
    lines = show.wrap(long, f, 150, 3)
    assert 2 <= len(lines) <= 3 and all(show.text_width(x, f) <= 150 for x in lines)
    assert "".join(lines).replace("…", "") in long or lines[-1].endswith("avi")
    assert show.evenly(90, 4) == [0, 30, 59, 89] and show.evenly(3, 16) == [0, 1, 2]
    assert show.evenly(9, 1) == [4]


# --------------------------------------------------------------------------
# python -m pipeline.verify --stats
# --------------------------------------------------------------------------
@pytest.mark.integration
def test_verify_stats_picture(tiny_video_build, tmp_path):
    out = tmp_path / "stats" / "s.png"
    r = run_module("pipeline.verify", str(tiny_video_build), f"--stats={out}")
    assert r.returncode == 0, r.stderr
    assert f"[verify] stats: {out}" in r.stdout.splitlines()
    import matplotlib.image
    image = matplotlib.image.imread(str(out))
    assert image.shape[0] >= 1000 and image.shape[1] >= 1500
    assert _has_colour((image * 255).astype(int), "#0072B2", 2)      # train bars
    assert _has_colour((image * 255).astype(int), "#E69F00", 2)      # test bars
    h = run_module("pipeline.verify", "--help")
    assert h.returncode == 0 and "--stats" in h.stdout and "--[no]verbose:" in h.stdout


def test_stats_count_quarantine_reasons_and_records(keypoint_build, tmp_path):
    from pipeline import verify
    build = tmp_path / "b"
    import shutil
    shutil.copytree(keypoint_build, build)
    rows = [{"split": "train", "reason": "malformed_json"},
            {"split": "train", "reason": "malformed_json"},
            {"split": "test", "reason": "missing_file"}, {"reason": "unknown_class"}]
    (build / schema.ERRORS_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows)
                                            + "not json\n")
    info = schema.read_dataset_info(str(build))
    reasons = verify.quarantine_counts(str(build), info)
    assert reasons == {"malformed_json": {"train": 2}, "missing_file": {"test": 1},
                       "unknown_class": {"": 1}}
    (build / schema.ERRORS_FILE).unlink()
    info["errors_by_reason"] = {"truncated": 3}
    assert verify.quarantine_counts(str(build), info) == {"truncated": {"": 3}}
    stats: dict = {}
    import io
    assert verify.verify(str(build), out=io.StringIO(), stats=stats) != []   # no num_frames
    assert stats["train"]["lengths"] == [6, 4, 5, 3]
    assert stats["train"]["sizes"] == {"640x480": 4}
    verify.plot_stats(str(build), info, stats, reasons, str(tmp_path / "k.png"))
    assert (tmp_path / "k.png").stat().st_size > 20_000
