"""What a metric source is: something that reads a finished run's outputs and returns the metric's points."""

from __future__ import annotations

import json
import math
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from nrl_autoresearch.core.durable import replace_text
from nrl_autoresearch.core.errors import UsageError

_SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", ".mypy_cache", ".pytest_cache", "3rdparty"}


class NotANumber(ValueError):
    """A metric value that is no number (a JSON `true`, a string, an integer too large for a float)."""


@dataclass(frozen=True)
class Point:
    step: float
    value: float
    wall_time: float | None = field(default=None, compare=False)  # when the writer logged it, where it says


Stamp = tuple[int, int, str]  # size in bytes, modification time in ns, digest of the last block
_BLOCK = 4096


@dataclass(frozen=True)
class Census:
    """The files under a run's folders before it started: size, modification time and a digest of their end.

    A run reads only what it wrote: a file is its own when it is not in the census or has changed since; of a
    file it appended to, only the bytes past the old end are its own (a rewritten file is its own whole).
    Timestamps alone cannot say this: a checkout gives committed files a fresh time, back-to-back runs finish
    within a second of each other, and writers name their files after the current second.
    """

    stamps: Mapping[str, Stamp] = field(default_factory=dict)

    @classmethod
    def take(cls, *roots: Path) -> Census:
        stamps: dict[str, Stamp] = {}
        for root in dict.fromkeys(roots):
            for path in _walk(root):
                try:
                    st = path.stat()
                    stamps[str(path.resolve())] = (st.st_size, st.st_mtime_ns, _end_digest(path, st.st_size))
                except OSError:
                    continue
        return cls(stamps)

    def changed(self, path: Path, st: os.stat_result) -> bool:
        before = self.stamps.get(str(path))
        return before is None or before[:2] != (st.st_size, st.st_mtime_ns)

    def old_size(self, path: Path, data: bytes) -> int:
        """Bytes at the start of `data` that `path` already held before the run (0: all of it is new)."""
        before = self.stamps.get(str(path))
        if (
            before is None
            or before[0] > len(data)
            or _digest(data[max(0, before[0] - _BLOCK) : before[0]]) != before[2]
        ):
            return 0
        return before[0]

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_text(path, json.dumps(self.stamps))

    @classmethod
    def load(cls, path: Path) -> Census:
        """The census saved at launch; an empty one (everything found counts) when it was never written."""
        try:
            return cls({k: (int(v[0]), int(v[1]), str(v[2])) for k, v in json.loads(path.read_text()).items()})
        except (OSError, ValueError, TypeError, IndexError):
            return cls()


def _digest(data: bytes) -> str:
    import hashlib  # OpenSSL's load is paid by a census, not by every command

    return hashlib.blake2b(data, digest_size=8).hexdigest()


def _end_digest(path: Path, size: int) -> str:
    with path.open("rb") as fh:
        fh.seek(max(0, size - _BLOCK))
        return _digest(fh.read(min(size, _BLOCK)))


@dataclass(frozen=True)
class RunOutputs:
    """Where a run left its outputs, and the census of what was there before it started."""

    log_path: Path
    run_dir: Path
    workdir: Path
    before: Census = field(default_factory=Census)

    def files(self, match: re.Pattern[str]) -> list[Path]:
        """Files under the experiment folder and the working directory that this run wrote, oldest first."""
        seen: dict[Path, float] = {}
        for root in dict.fromkeys((self.run_dir, self.workdir)):
            for path in _walk(root):
                if match.search(path.name):
                    resolved = path.resolve()
                    try:
                        st = resolved.stat()
                    except OSError:
                        continue
                    if self.before.changed(resolved, st):
                        seen[resolved] = st.st_mtime
        return sorted(seen, key=lambda p: (seen[p], str(p)))

    def new_bytes(self, path: Path) -> bytes:
        """What this run wrote to a file: all of a new one, the appended part of one that existed before."""
        data = Path(path).read_bytes()
        return data[self.before.old_size(Path(path).resolve(), data) :]

    def new_text(self, path: Path) -> str:
        return self.new_bytes(path).decode(errors="replace")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, size: int = 65536) -> str:
        """The end of the log, cheap to read while a long run is still writing it."""
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as fh:
            fh.seek(max(0, self.log_path.stat().st_size - size))
            return fh.read().decode(errors="replace")


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS]
        for name in filenames:
            yield Path(dirpath) / name


@dataclass(frozen=True)
class Reading:
    """The metric's points in order, and a sentence naming where they came from. `problem` says why the run
    cannot have a result although the metric was found (a value that is not a number)."""

    points: list[Point]
    source: str
    problem: str | None = None


class MetricSource(ABC):
    """Reads one metric from a run. Subclasses are built from the text after 'kind:' in --metric-source."""

    kind: str = ""

    def __init__(self, arg: str):
        self.arg = arg

    @abstractmethod
    def read(self, run: RunOutputs) -> Reading | None:
        """The points found, or None when this source found nothing."""

    def memory_gb(self, run: RunOutputs) -> float | None:
        """Peak accelerator memory the run itself reported, when the source knows where to look."""
        return None

    def failure(self, run: RunOutputs) -> str | None:
        """A reason that makes the run a crash even though a metric was printed (out of memory, NaN loss)."""
        return None

    def progress(self, run: RunOutputs) -> tuple[int, int] | None:
        """Training step i of N, when the run's log says it (for live progress)."""
        return None

    def ending(self, run: RunOutputs) -> str | None:
        """How the run ended, in words, when its log says so (max steps reached, recipe timeout)."""
        return None

    def __str__(self) -> str:
        return f"{self.kind}:{self.arg}"


AGGREGATES = ("last", "max", "min", "best", "mean-last-K")


def validate_aggregate(how: str) -> str:
    if how in ("last", "max", "min", "best") or re.fullmatch(r"mean-last-[1-9]\d*", how):
        return how
    raise UsageError(f"bad --aggregate {how!r}: use last, max, min, best or mean-last-K (for example mean-last-5)")


def aggregate(points: list[Point], how: str, *, maximize: bool) -> float | None:
    """One number from the points; NaN anywhere in what is aggregated stays NaN (a diverged run is a crash)."""
    if not points:
        return None
    values = [p.value for p in points]
    if how == "last":
        return values[-1]
    if how.startswith("mean-last-"):
        tail = values[-int(how.rsplit("-", 1)[1]) :]
        return sum(tail) / len(tail)
    if any(math.isnan(v) for v in values):
        return math.nan
    if how == "best":
        how = "max" if maximize else "min"
    return max(values) if how == "max" else min(values)
