"""What a metric source is: something that reads a finished run's outputs and returns the metric's points."""

from __future__ import annotations

import math
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError

_SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", ".mypy_cache", ".pytest_cache", "3rdparty"}


@dataclass(frozen=True)
class Point:
    step: float
    value: float


@dataclass(frozen=True)
class RunOutputs:
    """Where a run left its outputs. Files older than `started_at` belong to other runs and are ignored."""

    log_path: Path
    run_dir: Path
    workdir: Path
    started_at: float

    def files(self, match: re.Pattern[str]) -> list[Path]:
        """Files under the experiment folder and the working directory written by this run, oldest first."""
        seen: dict[Path, float] = {}
        for root in dict.fromkeys((self.run_dir, self.workdir)):
            for path in _walk(root):
                if match.search(path.name):
                    mtime = path.stat().st_mtime
                    if mtime >= self.started_at - 1.0:
                        seen[path.resolve()] = mtime
        return sorted(seen, key=lambda p: (seen[p], str(p)))

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
    """The metric's points in order, and a sentence naming where they came from."""

    points: list[Point]
    source: str


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
        tail = values[-int(how.rsplit("-", 1)[1]):]
        return sum(tail) / len(tail)
    if any(math.isnan(v) for v in values):
        return math.nan
    if how == "best":
        how = "max" if maximize else "min"
    return max(values) if how == "max" else min(values)
