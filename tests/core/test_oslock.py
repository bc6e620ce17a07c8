"""The OS file lock that guards the ledger, the journal and the campaign: it excludes other processes and other
threads, is reentrant for its holder, and is released by the kernel when a holder dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from nrl_autoresearch.core.oslock import FileLock, LockBusy

HOLD = """
import sys, time
from nrl_autoresearch.core.oslock import FileLock
lock = FileLock(sys.argv[1])
lock.acquire()
print("held", flush=True)
time.sleep(60)
"""


def holder(path: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_another_process_excludes_and_its_death_releases(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    proc = holder(path)
    try:
        with pytest.raises(LockBusy):
            FileLock(path, blocking=False).acquire()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    with FileLock(path, blocking=False) as lock:  # no stale lock is left behind by a killed holder
        assert lock.count == 1
    assert path.exists()


def test_reentrant_for_its_holder(tmp_path: Path) -> None:
    lock = FileLock(tmp_path / "x.lock", blocking=False)
    with lock, lock:
        assert lock.count == 2
        with pytest.raises(LockBusy):  # a second lock object on the same file is someone else
            FileLock(tmp_path / "x.lock", blocking=False).acquire()
    assert lock.count == 0
    FileLock(tmp_path / "x.lock", blocking=False).acquire()


def test_threads_exclude_each_other_unless_the_hold_is_shared(tmp_path: Path) -> None:
    per_thread = FileLock(tmp_path / "a.lock")
    order: list[str] = []

    def wait_for_it() -> None:
        with per_thread:
            order.append("waiter")

    with per_thread:
        waiter = threading.Thread(target=wait_for_it)
        waiter.start()
        time.sleep(0.3)
        order.append("holder")
    waiter.join(5)
    assert order == ["holder", "waiter"]

    shared = FileLock(tmp_path / "b.lock", blocking=False, per_thread=False)
    seen: list[int] = []

    def join_it() -> None:
        with shared:
            seen.append(shared.count)

    with shared:
        joined = threading.Thread(target=join_it)
        joined.start()
        joined.join(5)
    assert seen == [2] and shared.count == 0
