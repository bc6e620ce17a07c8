"""Every process a run started ends with it, even one that escaped its process group and session.

Each run carries `AUTORESEARCH_RUN=<campaign folder>#<index>` in its environment, which every descendant
inherits (a double fork with setsid() included). At the end of a run the processes whose environment holds
that exact value are found through /proc and ended: SIGTERM, then SIGKILL after a grace period.
"""

from __future__ import annotations

import os
import signal
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # psutil is imported where a run is watched or ended: reading a campaign's state skips it
    import psutil


RUN_MARKER = "AUTORESEARCH_RUN"
GRACE_S = 10.0


def marked(value: str | None) -> list[psutil.Process]:
    """Processes whose environment carries this run's marker value (never this process or its ancestors)."""
    import psutil

    if not value:
        return []
    found = []
    for pid in _pids_with_entry(f"{RUN_MARKER}={value}".encode()):
        try:
            found.append(psutil.Process(pid))
        except psutil.Error:  # ended meanwhile
            continue
    if found:
        ours = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
        found = [p for p in found if p.pid not in ours]
    return found


def _pids_with_entry(entry: bytes) -> list[int]:
    """Process ids whose environment holds `entry` exactly, from the raw /proc files: only bytes are compared,
    so a scan of every process costs well under a millisecond (psutil would parse each environment)."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as handle:
                data = handle.read()
        except OSError:  # ended meanwhile, or not ours to read
            continue
        if entry in data and entry in data.split(b"\0"):
            pids.append(int(name))
    return pids


def end(procs: list[psutil.Process], grace_s: float = GRACE_S) -> None:
    """SIGTERM, then SIGKILL for whatever is still alive after `grace_s`."""
    import psutil

    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        alive = _alive(procs)
        for proc in alive:
            try:
                proc.send_signal(sig)
            except psutil.Error:
                pass
        deadline = time.time() + wait_s
        while alive and time.time() < deadline:
            time.sleep(0.05)
            alive = _alive(alive)


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    """Still running (a killed process left a zombie until its new parent reaps it: that counts as ended)."""
    import psutil

    found = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            continue
    return found
