"""The campaign's append-only journal: intent -> branch -> committed -> launching -> launched -> finished -> row.

Each step is one fsynced JSON line, written whole or not at all, written before the step's effect can be lost, so an engine killed at any
moment is replayed on start: numbering continues, nothing runs twice, no row is lost or duplicated.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from nrl_autoresearch.core.durable import append_whole
from nrl_autoresearch.core.oslock import FileLock
from nrl_autoresearch.core.redact import redactor
from nrl_autoresearch.core.trial import Trial

STEPS = ("intent", "branch", "committed", "launching", "launched", "finished", "row")


@dataclass
class Attempt:
    """What the journal knows of one attempted experiment (by ledger index)."""

    index: int
    step: str
    data: dict = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.step == "row"

    @property
    def trial(self) -> Trial:
        """The trial its intent planned."""
        return Trial.from_record(self.index, self.data)


class Journal:
    """The journal file and a replay cursor over it: each read parses only the lines appended since the last one,
    so the many reads of one command cost a stat and a short read (the file is re-read whole only when it was
    replaced or cut back)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.lock = FileLock(str(self.path) + ".lock")
        self._guard = threading.Lock()
        self._events: list[dict] = []
        self._by_step: dict[str, list[dict]] = {}
        self._attempts: dict[int, Attempt] = {}
        self._offset = 0  # bytes of complete lines consumed
        self._inode: int | None = None

    def record(self, step: str, index: int | None = None, **data) -> None:
        """Append one event durably."""
        if step not in STEPS and index is not None:
            raise ValueError(f"unknown journal step {step!r}")
        entry = {
            "t": time.time(),
            "step": step,
            **({"index": index} if index is not None else {}),
            **_redacted(data, redactor()),
        }
        line = (json.dumps(entry, sort_keys=True, default=str) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.lock:
            append_whole(self.path, line)

    def events(self, step: str | None = None) -> list[dict]:
        """Every event so far, in order; or only those of one step ('steer', 'prepared', ...), kept apart as they
        are replayed, so asking costs nothing however long the journal grows."""
        with self._guard:
            self._catch_up()
            return list(self._events if step is None else self._by_step.get(step, ()))

    def attempt(self, index: int) -> Attempt | None:
        """One attempt as the replay has it so far (a copy), or None."""
        with self._guard:
            self._catch_up()
            found = self._attempts.get(index)
            return Attempt(found.index, found.step, dict(found.data)) if found is not None else None

    def attempts(self) -> dict[int, Attempt]:
        """Replay: every index with its last step and everything recorded along the way (copies: the caller's)."""
        with self._guard:
            self._catch_up()
            return {i: Attempt(a.index, a.step, dict(a.data)) for i, a in self._attempts.items()}

    def last_index(self) -> int:
        with self._guard:
            self._catch_up()
            return max(self._attempts, default=0)

    def _catch_up(self) -> None:
        """Read the complete lines appended since the last read; start over when the file is another one."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            self._reset(None)
            return
        try:
            stat = os.fstat(fd)
            if stat.st_ino != self._inode or stat.st_size < self._offset:
                self._reset(stat.st_ino)
            fresh = os.pread(fd, stat.st_size - self._offset, self._offset) if stat.st_size > self._offset else b""
        finally:
            os.close(fd)
        whole = fresh[: fresh.rfind(b"\n") + 1]  # a line still being written (or torn) waits for its newline
        self._offset += len(whole)
        for event in _parse(whole.decode(errors="replace")):
            self._replay(event)

    def _reset(self, inode: int | None) -> None:
        self._events, self._by_step, self._attempts, self._offset, self._inode = [], {}, {}, 0, inode

    def _replay(self, event: dict) -> None:
        self._events.append(event)
        self._by_step.setdefault(str(event.get("step")), []).append(event)
        index = event.get("index")
        if index is None or event.get("step") not in STEPS:
            return
        attempt = self._attempts.setdefault(index, Attempt(index, event["step"]))
        attempt.step = event["step"]
        attempt.data.update({k: v for k, v in event.items() if k not in ("t", "step", "index")})


def _parse(text: str) -> list[dict]:
    events = []
    for line in text.splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line torn by an older writer carries nothing durable
    return events


def _redacted(value, mask: Callable[[str], str]):
    """Every text of an event (descriptions, steering, commands) redacted as the ledger's are, with one lookup
    of the environment's secrets for the whole event."""
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {k: _redacted(v, mask) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redacted(v, mask) for v in value]
    return value
