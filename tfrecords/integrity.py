"""Fast integrity check of TFRecord shards: the framing and both CRCs of every record.

A TFRecord file is a run of records, each framed as::

    uint64 length | uint32 masked CRC32C of the length | data | uint32 masked CRC32C of data

``check_shard`` walks one file record by record and checks exactly that: that each
header is whole, that the length's CRC matches, that the data is all there and that
its CRC matches. Nothing is parsed or decoded, so a shard is checked at the speed of
reading it (CRC32C runs in C, ``google_crc32c``). It is what training and evaluation
run over their splits before they start (``trainers.data.check_build``) and what they
re-run to name the shard when tf.data reports a damaged record mid-run (its own error
names no file). ``python -m pipeline.verify`` is the full check of a build: it also
parses every record and compares the counts with ``dataset_info.json``.

    damage = integrity.check_split("records/ucf101/t", "train")
    for d in damage:
        print(d.describe())      # records/ucf101/t/train.tfrecord-00001-of-00004 at byte
                                 # 1048617 (record 4): data CRC mismatch

Local paths are read with ``open``, others (gs://, s3://) through ``tf.io.gfile``;
gzip shards (``.gz``) are checked in their uncompressed stream.
"""
from __future__ import annotations

import dataclasses
import gzip
import struct
from typing import Callable, Iterable, Mapping, Sequence

from tfrecords import schema

HEADER_BYTES = 12          # uint64 length + uint32 masked CRC of the length
FOOTER_BYTES = 4           # uint32 masked CRC of the data


@dataclasses.dataclass(frozen=True)
class Damage:
    """The first damaged record of a shard: where it starts and what is wrong with it."""
    path: str              # the shard file
    offset: int            # byte offset of the damaged record's header (0 for a missing file)
    record: int            # the record's number in the shard (records before it are whole)
    problem: str           # e.g. "data CRC mismatch", "truncated data", "file is missing"
    split: str = ""        # the split whose shard it is, when checked as part of a split

    @property
    def name(self) -> str:
        """The shard's file name (without its folder)."""
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    def describe(self) -> str:
        """``PATH at byte N (record R): PROBLEM``."""
        if self.problem == MISSING:
            return f"{self.path}: {self.problem}"
        return f"{self.path} at byte {self.offset} (record {self.record}): {self.problem}"

    def to_json(self) -> dict:
        return {"shard": self.name, "path": self.path, "split": self.split,
                "offset": self.offset, "record": self.record, "problem": self.problem}


@dataclasses.dataclass(frozen=True)
class ShardScan:
    """What ``check_shard`` found: whole records and bytes before the damage (if any)."""
    path: str
    records: int
    bytes: int
    damage: Damage | None = None


MISSING = "file is missing"


def _open(path: str):
    if "://" in path:
        import tensorflow as tf
        f = tf.io.gfile.GFile(path, "rb")
    else:
        f = open(path, "rb")
    if path.endswith(".gz"):
        return gzip.GzipFile(fileobj=f, mode="rb")
    return f


def _masked_crc(data: bytes) -> int:
    return schema._masked_crc(data)


def _exists(path: str) -> bool:
    if "://" in path:
        import tensorflow as tf
        return tf.io.gfile.exists(path)
    import os
    return os.path.exists(path)


def check_shard(path: str, split: str = "") -> ShardScan:
    """Checks the framing and CRCs of every record of one TFRecord file; stops at the
    first damaged record (after it the framing cannot be trusted)."""
    if not _exists(path):
        return ShardScan(path, 0, 0, Damage(path, 0, 0, MISSING, split))
    records = offset = 0

    def damage(problem: str) -> ShardScan:
        return ShardScan(path, records, offset, Damage(path, offset, records, problem, split))

    try:
        with _open(path) as f:
            while True:
                header = f.read(HEADER_BYTES)
                if not header:
                    return ShardScan(path, records, offset)
                if len(header) < HEADER_BYTES:
                    return damage(f"truncated header ({len(header)} of {HEADER_BYTES} bytes "
                                  "before the end of the file)")
                length_bytes = header[:8]
                if _masked_crc(length_bytes) != struct.unpack("<I", header[8:])[0]:
                    return damage("length CRC mismatch (the record's header is damaged)")
                length = struct.unpack("<Q", length_bytes)[0]
                body = f.read(length + FOOTER_BYTES)
                if len(body) < length + FOOTER_BYTES:
                    return damage(f"truncated data ({len(body)} of {length + FOOTER_BYTES} "
                                  "bytes before the end of the file)")
                if _masked_crc(body[:length]) != struct.unpack("<I", body[length:])[0]:
                    return damage("data CRC mismatch (the record's bytes are damaged)")
                records += 1
                offset += HEADER_BYTES + length + FOOTER_BYTES
    except (OSError, EOFError, gzip.BadGzipFile) as e:      # unreadable, or a bad gzip stream
        return damage(f"unreadable ({type(e).__name__}: {e})")


def check_files(paths: Iterable[str], split: str = "",
                on_shard: Callable[[ShardScan], None] | None = None) -> list[Damage]:
    """Checks every file; returns the damage found, one entry per damaged file, in order.
    ``on_shard`` is called with each file's scan (e.g. for progress)."""
    found = []
    for path in paths:
        scan = check_shard(path, split)
        if on_shard is not None:
            on_shard(scan)
        if scan.damage is not None:
            found.append(scan.damage)
    return found


def split_files(build_dir: str, split: str, info: Mapping | None = None) -> list[str]:
    """The shard paths ``dataset_info.json`` lists for ``split`` of a build."""
    info = info if info is not None else schema.read_dataset_info(build_dir)
    build = build_dir.rstrip("/")
    return [f"{build}/{name}" for name in info["splits"][split].get("shards", [])]


def check_split(build_dir: str, split: str, info: Mapping | None = None) -> list[Damage]:
    """Checks every shard of ``split`` of a build (``info``: its dataset_info, read when
    not given); returns the damaged shards' first damaged records."""
    return check_files(split_files(build_dir, split, info), split)


def check_splits(build_dir: str, splits: Sequence[str],
                 info: Mapping | None = None) -> list[Damage]:
    """``check_split`` over several splits (each shard once, in the order given)."""
    info = info if info is not None else schema.read_dataset_info(build_dir)
    found, seen = [], set()
    for split in splits:
        paths = [p for p in split_files(build_dir, split, info) if p not in seen]
        seen.update(paths)
        found.extend(check_files(paths, split))
    return found


def iter_records(path: str):
    """The records of a whole TFRecord file, without TensorFlow (ValueError at damage)."""
    with _open(path) as f:
        offset = 0
        while True:
            header = f.read(HEADER_BYTES)
            if not header:
                return
            if len(header) < HEADER_BYTES or \
                    _masked_crc(header[:8]) != struct.unpack("<I", header[8:])[0]:
                raise ValueError(f"{path}: damaged record header at byte {offset}")
            length = struct.unpack("<Q", header[:8])[0]
            body = f.read(length + FOOTER_BYTES)
            if len(body) < length + FOOTER_BYTES or \
                    _masked_crc(body[:length]) != struct.unpack("<I", body[length:])[0]:
                raise ValueError(f"{path}: damaged record at byte {offset}")
            yield body[:length]
            offset += HEADER_BYTES + length + FOOTER_BYTES
