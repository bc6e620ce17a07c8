"""One writer per campaign: commands that branch, run or record hold the campaign's lock for their whole life.

A second writing command refuses at once, saying which command holds the campaign, since when and its PID;
reading commands (status, ledger, report) never take it. The lock is an OS file lock, so a killed holder
releases it with its last breath: there is no stale lock to clear by hand.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nrl_autoresearch.core.durable import replace_text
from nrl_autoresearch.core.errors import Fault
from nrl_autoresearch.core.oslock import FileLock, LockBusy
from nrl_autoresearch.core.redact import redact


class CampaignLock:
    """Reentrant within one process (nested writing calls of one command), exclusive across processes."""

    def __init__(self, folder: Path, name: str):
        self.folder = Path(folder)
        self.name = name
        self._lock = FileLock(self.folder / "writer.lock", blocking=False, per_thread=False)
        self._holder = self.folder / "writer.json"

    @contextmanager
    def held(self) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire()
        except LockBusy:
            raise Fault(self._busy()) from None
        try:
            if self._lock.count == 1:
                self._record()
            yield
        finally:
            if self._lock.count == 1:
                self._holder.unlink(missing_ok=True)  # the lock file stays: it is the lock, held or not
            self._lock.release()

    def _record(self) -> None:
        command = redact(" ".join(["autoresearch", *sys.argv[1:]]) if sys.argv[1:] else "autoresearch")
        data = {"pid": os.getpid(), "since": time.time(), "command": command}
        replace_text(self._holder, json.dumps(data) + "\n")

    def _busy(self) -> str:
        try:
            data = json.loads(self._holder.read_text())
        except (OSError, ValueError):
            data = {}
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(data["since"])) if "since" in data else "a moment ago"
        return (
            f"campaign {self.name} is busy: '{data.get('command', 'another command')}' (PID {data.get('pid', '?')}) "
            f"has been writing to it since {since}; wait for it to end, or halt it with 'autoresearch stop' "
            "('status', 'ledger' and 'report' work meanwhile)"
        )
