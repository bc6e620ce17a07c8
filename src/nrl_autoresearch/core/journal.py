"""The campaign's append-only journal: intent -> branch -> committed -> launching -> launched -> finished -> row.

Each step is one fsynced JSON line, written whole or not at all, written before the step's effect can be lost, so an engine killed at any
moment is replayed on start: numbering continues, nothing runs twice, no row is lost or duplicated.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock

from nrl_autoresearch.core.durable import append_whole, file_version
from nrl_autoresearch.core.redact import redact

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


class Journal:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.lock = FileLock(str(self.path) + ".lock")
        self._cache: tuple[tuple, list[dict]] | None = None

    def record(self, step: str, index: int | None = None, **data) -> None:
        """Append one event durably."""
        if step not in STEPS and index is not None:
            raise ValueError(f"unknown journal step {step!r}")
        entry = {"t": time.time(), "step": step, **({"index": index} if index is not None else {}), **_redacted(data)}
        line = (json.dumps(entry, sort_keys=True, default=str) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.lock:
            append_whole(self.path, line)

    def events(self) -> list[dict]:
        """Every event, parsed once per version of the file (a command asks many times)."""
        key = file_version(self.path)
        if key is None:
            return []
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, _parse(self.path.read_text()))
        return list(self._cache[1])

    def attempts(self) -> dict[int, Attempt]:
        """Replay: every index with its last step and everything recorded along the way."""
        found: dict[int, Attempt] = {}
        for event in self.events():
            index = event.get("index")
            if index is None or event["step"] not in STEPS:
                continue
            attempt = found.setdefault(index, Attempt(index, event["step"]))
            attempt.step = event["step"]
            attempt.data.update({k: v for k, v in event.items() if k not in ("t", "step", "index")})
        return found

    def last_index(self) -> int:
        return max(self.attempts(), default=0)


def _parse(text: str) -> list[dict]:
    events = []
    for line in text.splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line torn by an older writer carries nothing durable
    return events


def _redacted(value):
    """Every text of an event (descriptions, steering, commands) redacted as the ledger's are."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redacted(v) for v in value]
    return value
