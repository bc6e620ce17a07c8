"""keep / discard / crash by rule, honest about noise, with a description that says what was compared with what.

RL metrics move between runs of the same configuration. The run-to-run spread is estimated from every
configuration the campaign ran more than once (baseline repeats, hypothesis repeats, confirmations), pooled.
A change is kept only when its mean gain over the reference exceeds max(min_delta, z x spread x sqrt(1/n + 1/m))
for n runs of the change and m of the reference: for one run against a well-measured baseline that is z x spread,
and repeats shrink it as a two-sample test does. Without a spread estimate the rule is min_delta alone, and the
description says so.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass

Z_DEFAULT = 2.0


@dataclass(frozen=True)
class Reference:
    """What a result is compared with: a label ('baseline', 'best keep lr-up') and the values of its runs."""

    label: str
    values: tuple[float, ...]

    @property
    def value(self) -> float:
        return statistics.fmean(self.values)


@dataclass(frozen=True)
class Spread:
    """Pooled run-to-run standard deviation and the number of runs it rests on."""

    sd: float
    runs: int
    dof: int


@dataclass(frozen=True)
class Verdict:
    status: str
    note: str


def valid(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def pooled_spread(groups: Iterable[list[float]]) -> Spread | None:
    """Pooled standard deviation over groups of runs of one configuration each (groups of one carry none)."""
    repeated = [g for g in groups if len(g) >= 2]
    dof = sum(len(g) - 1 for g in repeated)
    if not dof:
        return None
    variance = sum(statistics.variance(g) * (len(g) - 1) for g in repeated) / dof
    return Spread(math.sqrt(variance), sum(len(g) for g in repeated), dof)


def judge(values: list[float], reference: Reference | None, *, maximize: bool, min_delta: float = 0.0,
          spread: Spread | None = None, z: float = Z_DEFAULT, simplifies: Callable[[], bool] = lambda: False) -> Verdict:
    """The verdict for the valid values of one configuration (one run, or several with different seeds)."""
    if not values:
        return Verdict("crash", "no valid metric")
    if reference is None:
        return Verdict("keep", "first valid result: it becomes the reference")
    mean = statistics.fmean(values)
    delta = mean - reference.value
    gain = delta if maximize else -delta
    threshold = min_delta
    if spread is not None and spread.sd > 0:
        threshold = max(min_delta, z * spread.sd * math.sqrt(1 / len(values) + 1 / len(reference.values)))
        noise = f"spread {spread.sd:.4g} over {spread.runs} runs, threshold {threshold:.4g}"
    else:
        noise = "no spread estimate yet" + (f", threshold {min_delta:.4g}" if min_delta else "")
    runs = f"mean of {len(values)} runs " if len(values) > 1 else ""
    ref_runs = f" (mean of {len(reference.values)})" if len(reference.values) > 1 else ""
    note = f"{runs}{delta:+.4g} vs {reference.label} {reference.value:.6g}{ref_runs} ({noise})"
    if gain > threshold:
        return Verdict("keep", note)
    if abs(gain) <= threshold and simplifies():
        return Verdict("keep", f"{note}; flat metric with a smaller diff: simplification")
    return Verdict("discard", note)
