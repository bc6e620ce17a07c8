"""Watching a run in flight, so that GPU-hours go to runs that can still pay.

Three reasons end a run early, read from the same live outputs the measurement reads (the objective's source,
the log, TensorBoard scalars), so they work on every launcher that knows the run's log:
- divergence (on by default): a NaN or infinite loss or objective, or a loss exploding by the triage's rule;
- a stall (on by default): no new log output, step or metric point for the stall limit;
- pruning (opt-in): the objective's curve clearly worse than the reference's at the same steps.
A pruned run is a discard that says where it was cut; it is never evidence against its idea.
"""

from __future__ import annotations

import json
import math
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nrl_autoresearch.core.metric import MetricSource, Point, RunOutputs
from nrl_autoresearch.core.stoprules import format_duration, parse_duration
from nrl_autoresearch.runner import triage

STALL_FLOOR_S = 1800.0  # the adaptive stall limit is never below 30 minutes
STALL_FACTOR = 5.0  # ... nor below five times the longest gap between steps seen so far
PRUNE_SHARE = 0.3  # no run is pruned before 30% of its training
PRUNE_POINTS = 3  # consecutive evaluation points beyond the band
PRUNE_Z = 3.0  # the band: this many run-to-run standard deviations
CHECK_EVERY_S = 1.0
CURVE = "curve.json"
_STEP = re.compile(r"\bstep\s*[=:]?\s*(\d+(?:\s*/\s*\d+)?)", re.I)


def parse_stall(text: str) -> float | str | None:
    """--stall: 'off' (None), 'auto' (adaptive) or a duration in seconds."""
    low = text.strip().lower()
    if low in ("off", "auto"):
        return None if low == "off" else "auto"
    return parse_duration(text, what="--stall")


def save_curve(run_dir: Path, points: list[Point]) -> None:
    """Each run's objective curve, kept in its folder so that later runs can be compared with it."""
    (run_dir / CURVE).write_text(json.dumps([[p.step, p.value] for p in points]))


def load_curve(run_dir: Path) -> list[tuple[float, float]]:
    try:
        return [(float(s), float(v)) for s, v in json.loads((run_dir / CURVE).read_text())]
    except (OSError, ValueError, TypeError):
        return []


@dataclass(frozen=True)
class PruneRule:
    """The reference's curves, the band's width where the reference has one curve only, the direction."""

    curves: list[list[tuple[float, float]]]
    spread_sd: float | None
    maximize: bool
    share: float = PRUNE_SHARE
    points: int = PRUNE_POINTS
    z: float = PRUNE_Z


@dataclass
class RunWatch:
    """Polled while a run is in flight; `check()` gives the reason to end it, or None."""

    source: MetricSource
    outputs: RunOutputs
    metric: str
    stall: float | str | None = "auto"
    prune: PruneRule | None = None
    _seen: tuple = ()
    _changed: float = 0.0
    _step: str | None = None  # "212/500" where the total is known
    _step_at: float = 0.0
    _gap: float = 0.0
    _next: float = 0.0
    _behind: int = 0
    _compared: int = 0

    def __post_init__(self) -> None:
        self._changed = self._step_at = time.time()

    def check(self, running: Callable[[], bool] = lambda: True) -> str | None:
        """`running()` says whether the job has left the queue: time spent queued is no stall."""
        now = time.time()
        if now < self._next:
            return None
        self._next = now + CHECK_EVERY_S
        if not running():
            self._changed = self._step_at = now
            return None
        reading = self.source.read(self.outputs)
        points = reading.points if reading else []
        progress = self.source.progress(self.outputs)
        tail = self.outputs.log_tail()
        self._track(now, points, progress, tail)
        return self._diverged(points, progress, tail) or self._stalled(now) or self.prune_check(points, progress)

    def stall_limit(self) -> float | None:
        if self.stall == "auto":
            return max(STALL_FLOOR_S, STALL_FACTOR * self._gap)
        return None if isinstance(self.stall, str) else self.stall

    def _track(self, now: float, points: list[Point], progress, tail: str) -> None:
        printed = _STEP.findall(tail)
        step = (
            f"{progress[0]}/{progress[1]}"
            if progress
            else printed[-1].replace(" ", "")
            if printed
            else (f"{points[-1].step:g}" if points else None)
        )
        seen = (self.outputs.log_path.stat().st_size if self.outputs.log_path.exists() else 0, step, len(points))
        if seen != self._seen:
            self._seen, self._changed = seen, now
        if step is not None and step != self._step:
            if self._step is not None:
                self._gap = max(self._gap, now - self._step_at)
            self._step, self._step_at = step, now

    def _where(self, progress, step: str | None = None) -> str:
        step = step if step is not None else self._step
        if step is None:
            return "the start"
        return f"step {step}" + (f"/{progress[1]}" if progress and "/" not in step else "")

    def _diverged(self, points: list[Point], progress, tail: str) -> str | None:
        bad = next((p for p in points if not math.isfinite(p.value)), None)
        if bad is not None:
            return f"diverged at {self._where(progress, f'{bad.step:g}')}: {self.metric} {bad.value}"
        line = next((ln for ln in tail.splitlines() if triage.nan_loss(ln)), None)
        if line is not None:
            found = _STEP.search(line)
            value = "inf" if "inf" in line.lower().split("loss", 1)[-1] else "nan"
            where = self._where(progress, found.group(1).replace(" ", "") if found else None)
            return f"diverged at {where}: loss {value}"
        if triage.loss_explodes(self.outputs):
            return f"diverged at {self._where(progress)}: loss exploding (100x its early median)"
        return None

    def _stalled(self, now: float) -> str | None:
        limit = self.stall_limit()
        if limit is None or now - self._changed < limit:
            return None
        after = f" after step {self._step.split('/')[0]}" if self._step is not None else " since the start"
        return f"stalled: no progress for {format_duration(now - self._changed)}{after}"

    def prune_check(self, points: list[Point], progress) -> str | None:
        """The reason to prune, once the run has been beyond the band at `rule.points` consecutive new points."""
        rule = self.prune
        if rule is None or not points or not rule.curves:
            return None
        compared = None
        for i in range(self._compared, len(points)):  # every new evaluation point, in order
            compared = _reference_at(rule, points[i].step, i)
            worse = None if compared is None else (compared[0] - points[i].value) * (1 if rule.maximize else -1)
            self._behind = (
                self._behind + 1 if compared and compared[1] > 0 and worse is not None and worse > compared[1] else 0
            )
        self._compared = len(points)
        share = progress[0] / progress[1] if progress and progress[1] else len(points) / max(map(len, rule.curves))
        if compared is None or self._behind < rule.points or share < rule.share:
            return None
        mean, band = compared
        return (
            f"pruned at {self._where(progress)}: {self.metric} {points[-1].value:.4g} vs the "
            f"reference's {mean:.4g} ± {band:.2g} at the same point, worse at {self._behind} consecutive points"
        )


def _reference_at(rule: PruneRule, step: float, index: int) -> tuple[float, float] | None:
    """The reference's mean and band at a step (the same step where every curve has it, else the same point)."""
    by_step = [dict(c).get(step) for c in rule.curves]
    known = [v for v in by_step if v is not None]
    values = known if len(known) == len(by_step) else [c[index][1] for c in rule.curves if index < len(c)]
    if not values:
        return None
    sd = statistics.stdev(values) if len(values) > 1 else None
    sd = max(x for x in (sd, _pooled_sd(rule.curves), rule.spread_sd, 0.0) if x is not None)
    return statistics.fmean(values), rule.z * sd


def _pooled_sd(curves: list[list[tuple[float, float]]]) -> float | None:
    """The reference's run-to-run spread pooled over all its points: a few runs give each point one or two degrees
    of freedom, and a spread that happens to be small at one point must not narrow the band there."""
    length = min(map(len, curves))
    if len(curves) < 2 or not length:
        return None
    return math.sqrt(statistics.fmean(statistics.variance([c[i][1] for c in curves]) for i in range(length)))
