"""File access for local and remote paths, without Beam.

Local paths go to the operating system directly. Remote ones (``gs://``, ``s3://``,
anything with a scheme) go through a backend: ``tf.io.gfile`` unless another is
installed with ``use_remote``. The Beam build installs Beam's ``FileSystems``
(``pipeline.runner``), so its workers read remote data the way the rest of the
job does, with the job's credentials and options.
"""
from __future__ import annotations

import glob
import os
import shutil
import tempfile
from typing import IO, Iterable, Protocol


class RemoteFiles(Protocol):
    """What a remote backend provides (every method takes full remote paths)."""

    def open(self, path: str) -> IO[bytes]: ...
    def create(self, path: str) -> IO[bytes]: ...
    def exists(self, path: str) -> bool: ...
    def match(self, pattern: str) -> list[str]: ...
    def delete(self, paths: list[str]) -> None: ...
    def delete_tree(self, path: str) -> None: ...
    def rename(self, sources: list[str], destinations: list[str]) -> None: ...


class _GFile:
    """Remote files through ``tf.io.gfile`` (gs:// built in, s3:// with tensorflow-io)."""

    @staticmethod
    def _gfile():
        import tensorflow as tf
        return tf.io.gfile

    def open(self, path):
        return self._gfile().GFile(path, "rb")

    def create(self, path):
        return self._gfile().GFile(path, "wb")

    def exists(self, path):
        return self._gfile().exists(path)

    def match(self, pattern):
        return self._gfile().glob(pattern)

    def delete(self, paths):
        gfile = self._gfile()
        for path in paths:
            gfile.rmtree(path) if gfile.isdir(path) else gfile.remove(path)

    def delete_tree(self, path):
        if self._gfile().exists(path):
            self._gfile().rmtree(path)

    def rename(self, sources, destinations):
        for src, dst in zip(sources, destinations):
            self._gfile().rename(src, dst, overwrite=True)


_remote: RemoteFiles = _GFile()


def use_remote(backend: RemoteFiles) -> None:
    """Sends every remote path through ``backend`` from now on (in this process)."""
    global _remote
    _remote = backend


def is_remote(path: str) -> bool:
    return "://" in path


def join(base: str, *parts: str) -> str:
    """Joins path parts: ``os.path.join`` for local paths, '/' for remote ones."""
    if not is_remote(base):
        return os.path.join(base, *parts)
    out = base
    for part in parts:
        out = out.rstrip("/") + "/" + part.lstrip("/")
    return out


def exists(path: str) -> bool:
    return _remote.exists(path) if is_remote(path) else os.path.exists(path)


def open_read(path: str) -> IO[bytes]:
    """A binary file object to read ``path``; raises the backend's error when it is missing."""
    return _remote.open(path) if is_remote(path) else open(path, "rb")


def read_bytes(path: str) -> bytes:
    """The whole file; a local one in one read of its size (half the time of ``open()``'s
    buffered reader on the small files of frame folders and OpenPose output)."""
    if is_remote(path):
        with open_read(path) as f:
            return f.read()
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        size = os.fstat(fd).st_size
        data = os.read(fd, size + 1) if size else b""
        if size and len(data) == size:
            return data
        chunks = [data]          # a file that changed size, or one stat gives no size for
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_text(path: str) -> str:
    """A small text file (split lists, CSVs) as text; a UTF-8 byte-order mark is dropped."""
    return read_bytes(path).decode("utf-8-sig")


def read_lines(path: str):
    """The lines of a text file, without their ends; a local file one line at a time."""
    if is_remote(path):
        yield from read_text(path).splitlines()
        return
    with open(path, encoding="utf-8-sig") as f:
        for line in f:
            yield line.rstrip("\r\n")


def create(path: str) -> IO[bytes]:
    """A binary file object writing ``path`` (local parent folders are created)."""
    if is_remote(path):
        return _remote.create(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    return open(path, "wb")


def write_text(path: str, text: str) -> None:
    with create(path) as f:
        f.write(text.encode("utf-8"))


def match(pattern: str) -> list[str]:
    """Files matching a glob pattern, sorted. Local patterns go through ``glob``, which
    follows symlinked folders and does not walk below the pattern's depth."""
    if not is_remote(pattern):
        return sorted(p for p in glob.glob(pattern) if os.path.isfile(p))
    return sorted(_remote.match(pattern))


def files_below(root: str, depth: int = 1) -> list[str]:
    """The files ``depth`` levels below ``root``, sorted: what ``match`` gives for ``root/*``
    (``root/*/*`` for depth 2); a local folder without a ``stat`` per plain file."""
    return [path for path, is_file in entries_below(root, depth) if is_file]


def entries_below(root: str, depth: int) -> list[tuple[str, bool]]:
    """(path, is a file) of what lies ``depth`` levels below ``root``, in path order: a
    remote root's files by ``match`` (object stores list files only), a local one's
    entries by ``_local_entries``."""
    if is_remote(root):
        return [(path, True) for path in match(join(root, *["*"] * depth))]
    return _local_entries(root, depth)


def _local_entries(root: str, depth: int) -> list[tuple[str, bool]]:
    """(path, is a regular file or a link to one) of what lies ``depth`` levels below a local
    ``root``, in path order: the entries ``glob`` gives for ``root/*/*`` (hidden names
    skipped, linked folders followed, unreadable folders skipped), read with one
    ``scandir`` per folder, so that a plain file costs no ``stat`` of its own and a name
    with glob characters (``[``, ``*``) in ``root`` is taken as it is."""
    folders = [root or "/"]
    for level in range(depth):
        last = level == depth - 1
        found: list = []
        for folder in folders:
            try:
                with os.scandir(folder) as it:
                    for entry in it:
                        if entry.name.startswith("."):
                            continue
                        if last:
                            found.append((entry.path, _is_file(entry)))
                        elif _is_dir(entry):
                            found.append(entry.path)
            except OSError:
                continue
        folders = found
    return sorted(folders)


def _is_file(entry: os.DirEntry) -> bool:
    try:
        return entry.is_file()
    except OSError:             # a loop of links, a folder it may not look into
        return False


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def delete(paths: Iterable[str]) -> None:
    """Deletes files (local or remote)."""
    paths = list(paths)
    remote = [p for p in paths if is_remote(p)]
    for path in paths:
        if not is_remote(path):
            os.remove(path)
    if remote:
        _remote.delete(remote)


def remove_tree(path: str) -> None:
    """Removes a folder and everything below it; a missing folder is fine."""
    if not is_remote(path):
        shutil.rmtree(path, ignore_errors=True)
        return
    _remote.delete_tree(path)


def rename_tree(src: str, dst: str) -> None:
    """Moves folder ``src`` to ``dst``: one rename locally, file by file on object stores."""
    if not is_remote(src):
        os.rename(src, dst)
        return
    found = match(join(src, "*"))
    _remote.rename(found, [join(dst, f[len(src):].lstrip("/")) for f in found])


class local_copy:
    """Context manager giving a local path for ``path``; remote files are copied to a
    temporary file, removed on exit. Raises ``missing`` (an exception instance) when a
    local path does not exist."""

    def __init__(self, path: str, missing: Exception | None = None):
        self.path = path
        self.missing = missing
        self.tmp = None

    def __enter__(self) -> str:
        if not is_remote(self.path):
            if not os.path.exists(self.path):
                raise self.missing or FileNotFoundError(self.path)
            return self.path
        suffix = os.path.splitext(self.path)[1]
        fd, self.tmp = tempfile.mkstemp(suffix=suffix, prefix="actionflow-")
        with os.fdopen(fd, "wb") as out, open_read(self.path) as src:
            shutil.copyfileobj(src, out, 1 << 20)
        return self.tmp

    def __exit__(self, *exc):
        if self.tmp:
            os.unlink(self.tmp)
        return False
