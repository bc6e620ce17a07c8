"""An OS file lock (`flock`): exclusive across processes, reentrant within its holder, released by the kernel
when the holder dies, so there is never a stale lock to clear by hand.

The holder is the calling thread (two threads of one process exclude each other, as two processes do) or, with
`per_thread=False`, the lock object itself (a command that holds its campaign across its worker threads)."""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path


class LockBusy(Exception):
    """A non-blocking acquire found the lock held by someone else."""


class _Hold:
    """How often the holder has acquired the lock, and the open file that carries it; `guard` orders the
    threads that share one hold."""

    def __init__(self) -> None:
        self.count = 0
        self.fd = -1
        self.guard = threading.Lock()


class FileLock:
    def __init__(self, path: str | Path, *, blocking: bool = True, per_thread: bool = True):
        self.path = str(path)
        self.blocking = blocking
        self._local: threading.local | None = threading.local() if per_thread else None
        self._shared = _Hold()

    def _hold(self) -> _Hold:
        if self._local is None:
            return self._shared
        if not hasattr(self._local, "hold"):
            self._local.hold = _Hold()
        return self._local.hold

    @property
    def count(self) -> int:
        """How many acquires of the current holder are not released yet (0: not held here)."""
        return self._hold().count

    def acquire(self) -> None:
        hold = self._hold()
        with hold.guard:
            if not hold.count:
                hold.fd = self._lock_file()
            hold.count += 1

    def release(self) -> None:
        hold = self._hold()
        with hold.guard:
            hold.count -= 1
            if not hold.count:
                fcntl.flock(hold.fd, fcntl.LOCK_UN)
                os.close(hold.fd)
                hold.fd = -1

    def _lock_file(self) -> int:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if self.blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            raise LockBusy(self.path) from None
        except BaseException:
            os.close(fd)
            raise
        return fd

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
