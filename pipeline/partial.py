"""A build's work folder while it runs, and what a stopped build leaves for the next one.

Every build of ``OUTPUT_DIR/DATASET/CONFIG_NAME`` works in one folder beside it,
``.CONFIG_NAME.partial/``:

    lock.json          the driver holding the folder: host, process id, process start
    manifest.json      what the build is: its fingerprint (listing, settings) and shard counts
    _parts/            records written by the workers, one part file per (bundle, shard);
                       ``<part>.json`` beside a part says it is whole and what it holds
    _failed/           one JSON line per item that could not become a record
    _progress/         local workers' progress marks
    _listing/          what this run decodes (items-*.jsonl) and reuses from a stopped run
                       (parts, records, problems .jsonl): the workers read it from here,
                       so the job graph does not grow with the dataset
    (side files of the finishing steps; see ``pipeline.finalise``)

A lock whose process is gone (a build killed with SIGKILL, a machine that rebooted) is
stale: the next build of the same config takes the folder over. When its manifest
matches, the finished work is kept: every part with its ``.json`` and every failed
item is reused, and only the remaining items are decoded. Anything else in the folder
(a part a killed worker was still writing, side files of a finishing step) is removed
first. A live lock refuses the second build with one line.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import socket
import uuid

from pipeline.media import files

SUFFIX = ".partial"
LOCK, MANIFEST = "lock.json", "manifest.json"
PARTS_DIR, FAILED_DIR, PROGRESS_DIR = "_parts", "_failed", "_progress"
LISTING_DIR = "_listing"
ITEMS_PER_FILE = 256
LEGACY_PREFIX = ".tmp-"       # older builds' temporary folders: .CONFIG_NAME.tmp-XXXXXXXX


class BuildLocked(Exception):
    """Another build of the same config holds the work folder (message for the user)."""


def work_dir_for(dataset_dir: str, config_name: str) -> str:
    return files.join(dataset_dir, f".{config_name}{SUFFIX}")


# --------------------------------------------------------------------------
# The lock: who holds the folder.
# --------------------------------------------------------------------------
def _start_ticks(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot), to tell it from a later
    process given the same id; None where /proc is not there."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def this_process() -> dict:
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "start_ticks": _start_ticks(pid),
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds")}


def holder_alive(lock: dict) -> bool:
    """Whether the process of a lock still runs. A lock of another host counts as alive:
    this machine cannot tell."""
    if lock.get("host") != socket.gethostname():
        return True
    pid = lock.get("pid")
    if not isinstance(pid, int) or not pid_alive(pid):
        return False
    ticks = lock.get("start_ticks")
    return ticks is None or _start_ticks(pid) in (None, ticks)


def read_lock(work_dir: str) -> dict | None:
    path = files.join(work_dir, LOCK)
    try:
        return json.loads(files.read_text(path))
    except (OSError, ValueError):
        return {} if files.exists(path) else None


def acquire(work_dir: str) -> bool:
    """Takes the work folder for this process; returns whether it held a stopped build's
    work (a stale lock or no lock at all). BuildLocked when a live build holds it."""
    lock_path = files.join(work_dir, LOCK)
    existing = files.exists(work_dir)
    held = read_lock(work_dir)
    if held is not None and held and holder_alive(held):
        raise BuildLocked(
            f"another build of this config is running (process {held.get('pid')} on "
            f"{held.get('host')}, started {held.get('started')}) and holds {work_dir}; "
            "wait for it to finish or stop it" + (
                "" if held.get("host") == socket.gethostname() else
                f" (if it is no longer running, delete {lock_path})"))
    mine = json.dumps(this_process())
    if files.is_remote(work_dir):
        files.write_text(lock_path, mine)
        return existing
    os.makedirs(work_dir, exist_ok=True)
    if held is not None:
        try:
            os.remove(lock_path)
        except FileNotFoundError:
            pass
    try:
        fd = os.open(lock_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:            # another build took it this instant
        raise BuildLocked(f"another build of this config started at the same moment and "
                          f"holds {work_dir}") from None
    with os.fdopen(fd, "w") as f:
        f.write(mine)
    return existing


def release(work_dir: str) -> None:
    try:
        files.delete([files.join(work_dir, LOCK)])
    except OSError:
        pass


def remove_legacy(dataset_dir: str, config_name: str) -> list[str]:
    """Removes the temporary folders older builds of this config left (named
    ``.CONFIG_NAME.tmp-XXXXXXXX``, from runs that were killed); returns them."""
    if files.is_remote(dataset_dir) or not os.path.isdir(dataset_dir):
        return []
    prefix = f".{config_name}{LEGACY_PREFIX}"
    gone = []
    for name in sorted(os.listdir(dataset_dir)):
        if name.startswith(prefix):
            files.remove_tree(os.path.join(dataset_dir, name))
            gone.append(os.path.join(dataset_dir, name))
    return gone


# --------------------------------------------------------------------------
# The manifest: is the stopped build the same build?
# --------------------------------------------------------------------------
def fingerprint(*, dataset: str, data_dir: str, selected, settings_dict: dict) -> str:
    """A checksum of what a build makes: the dataset, where it is read from, every
    selected item (slot, split, id, label, files) and the settings."""
    h = hashlib.sha256()
    h.update(json.dumps({"dataset": dataset, "data_dir": data_dir,
                         "settings": settings_dict}, sort_keys=True, default=str).encode())
    for slot, item in selected:
        h.update(json.dumps([slot, item.split, item.video_id, item.label, item.path,
                             list(item.files)]).encode())
    return h.hexdigest()


def write_manifest(work_dir: str, print_: str, shard_counts: dict[str, int]) -> None:
    files.write_text(files.join(work_dir, MANIFEST), json.dumps(
        {"fingerprint": print_, "shard_counts": shard_counts}, sort_keys=True))


def read_manifest(work_dir: str) -> dict | None:
    try:
        return json.loads(files.read_text(files.join(work_dir, MANIFEST)))
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------
# What a stopped build finished.
# --------------------------------------------------------------------------
class Finished:
    """The work a stopped build finished: whole parts (their rows, for the shards) and the
    items done, written or failed (their counts and errors are read from the parts' .json
    and the failed items' logs at the end, as a build's own are)."""

    def __init__(self):
        self.parts: list[tuple[tuple[str, int], dict]] = []     # ((split, shard), row)
        self.slots: set[tuple[str, int]] = set()

    @property
    def num_items(self) -> int:
        return len(self.slots)


def part_info_path(part_path: str) -> str:
    return part_path + ".json"


def scan(work_dir: str, selected=None) -> Finished:
    """What the stopped build in ``work_dir`` finished (of ``selected``'s slots, when given);
    a part whose items overlap one already taken (a retried bundle's copy) is dropped."""
    wanted = None if selected is None else {(item.split, slot) for slot, item in selected}
    done = Finished()
    for info_path in files.match(files.join(work_dir, PARTS_DIR, "*.part.json")):
        try:
            info = json.loads(files.read_text(info_path))
        except (OSError, ValueError):
            continue
        slots = {(info["split"], r["slot"]) for r in info["records"]}
        if (wanted is not None and not slots <= wanted) or slots & done.slots:
            continue
        done.slots |= slots
        done.parts.append(((info["split"], info["shard"]), info["row"]))
    for path in files.match(files.join(work_dir, FAILED_DIR, "*.jsonl")):
        for line in files.read_text(path).splitlines():
            try:
                row = json.loads(line)
            except ValueError:         # a line cut short by a kill
                continue
            key = (row.get("split"), row.get("slot"))
            if (wanted is None or key in wanted) and key not in done.slots:
                done.slots.add(key)
    return done


def clear_for_resume(work_dir: str, keep_finished: bool) -> None:
    """Removes everything but the lock, the manifest and (with ``keep_finished``) the whole
    parts and failed-item lines: parts without their ``.json``, side files, progress."""
    if not files.is_remote(work_dir):
        for name in os.listdir(work_dir):
            path = os.path.join(work_dir, name)
            if name in (LOCK, MANIFEST) or (keep_finished and name in (PARTS_DIR, FAILED_DIR)):
                continue
            files.remove_tree(path) if os.path.isdir(path) else os.remove(path)
        parts = os.path.join(work_dir, PARTS_DIR)
        if keep_finished and os.path.isdir(parts):
            for name in os.listdir(parts):
                path = os.path.join(parts, name)
                if name.endswith(".part") and not os.path.exists(part_info_path(path)):
                    os.remove(path)
                elif name.endswith(".tmp"):
                    os.remove(path)
        return
    keep = {files.join(work_dir, LOCK), files.join(work_dir, MANIFEST)}
    found = files.match(files.join(work_dir, "**"))
    infos = {p for p in found if p.endswith(".part.json")}
    for path in found:
        whole_part = path.endswith(".part") and part_info_path(path) in infos
        finished = keep_finished and (path in infos or whole_part or
                                      f"/{FAILED_DIR}/" in path)
        if path not in keep and not finished:
            files.delete([path])


def write_listing(work_dir: str, todo, finished: "Finished") -> str:
    """Writes what the workers read into ``work_dir/_listing/``: the items to decode, a few
    hundred a file (fewer for a small build, so that its items spread over the workers),
    and the finished parts of a stopped build. Returns that folder."""
    folder = files.join(work_dir, LISTING_DIR)
    files.remove_tree(folder)
    if not files.is_remote(folder):
        os.makedirs(folder)
    per_file = max(1, min(ITEMS_PER_FILE, len(todo) // 64))
    for number, start in enumerate(range(0, len(todo), per_file)):
        files.write_text(files.join(folder, f"items-{number:06d}.jsonl"),
                         "".join(json.dumps({"slot": slot, "item": item.to_json_dict()}) + "\n"
                                 for slot, item in todo[start:start + per_file]))
    files.write_text(files.join(folder, "parts.jsonl"),
                     "".join(json.dumps([key[0], key[1], row]) + "\n"
                             for key, row in finished.parts))
    return folder


def has_finished_work(work_dir: str) -> bool:
    """Whether the folder holds a whole part or a failed item's line: work worth keeping."""
    return bool(files.match(files.join(work_dir, PARTS_DIR, "*.part.json")) or any(
        files.read_text(path).strip()
        for path in files.match(files.join(work_dir, FAILED_DIR, "*.jsonl"))))


def new_failed_log(work_dir: str) -> str:
    return files.join(work_dir, FAILED_DIR, f"{uuid.uuid4().hex}.jsonl")
