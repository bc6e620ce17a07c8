"""Writes that are whole or absent: one line of the ledger or the journal is never left half-written, and a
rewritten file is the old one or the new one, never a mix.

A full disk can cut an append short; the file is then cut back to where it was and the error raised, so the
next reader never meets a partial line. A partial last line left by an older writer is dropped before the
next append, so it cannot glue onto the new one.
"""

from __future__ import annotations

import os
from pathlib import Path


def file_version(path: Path) -> tuple[int, int, int] | None:
    """What changes whenever the file is appended to or replaced (size, mtime, inode): a key for a cache of its
    parsed content; None when there is no file."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_size, stat.st_mtime_ns, stat.st_ino


def replace_text(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename it over `path` (keeping its permissions):
    a reader, or a crash, sees the old file or the new one. The temporary name is unique to each writer."""
    tmp = path.with_name(f".{path.name}.{os.urandom(6).hex()}.tmp")
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = None
    try:
        with open(tmp, "x", encoding="utf-8") as handle:
            handle.write(text)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def append_whole(path: Path, data: bytes) -> None:
    """Append `data` entirely and flush it to the disk (its data and size), or leave the file as it was and raise."""
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = _complete_size(fd)
        if size != os.fstat(fd).st_size:  # a torn last line: cut it (a truncation is a metadata write: only then)
            os.ftruncate(fd, size)
        try:
            _write_all(fd, data)
            _flush(fd)
        except OSError:
            os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)


_flush = getattr(os, "fdatasync", os.fsync)  # the data and the size; fsync where the system has no fdatasync


def torn_tail(path: Path) -> bytes:
    """The bytes after the last newline: a line whose write was cut short (empty when the file is whole)."""
    if not path.exists():
        return b""
    fd = os.open(path, os.O_RDONLY)
    try:
        whole = _complete_size(fd)
        return os.pread(fd, os.fstat(fd).st_size - whole, whole)
    finally:
        os.close(fd)


def _complete_size(fd: int) -> int:
    """The length of the file up to and including its last newline."""
    size = os.fstat(fd).st_size
    pos, chunk = size, 4096
    while pos > 0:
        start = max(0, pos - chunk)
        block = os.pread(fd, pos - start, start)
        cut = block.rfind(b"\n")
        if cut >= 0:
            return start + cut + 1
        pos = start
    return 0


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
