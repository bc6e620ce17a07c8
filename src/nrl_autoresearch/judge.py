"""keep / discard / crash by rule, honest about noise, with a description that says what was compared with what.

RL metrics move between runs of the same configuration. The run-to-run spread is estimated from every
configuration the campaign ran more than once (baseline repeats, hypothesis repeats, confirmations), pooled.
A change is kept only when its mean gain over the reference exceeds max(min_delta, z x spread x sqrt(1/n + 1/m))
for n runs of the change and m of the reference: for one run against a well-measured baseline that is z x spread,
and repeats shrink it as a two-sample test does. When the change and the reference ran with the same seeds (two
or more), the test is paired on those seeds, which removes the part of the noise the seed itself causes. z is
scaled by Student's t for the degrees of freedom behind the spread, so that a spread measured from few runs
does not make noise look like a gain. Without a spread estimate the rule is min_delta alone, and the
description says so.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass

Z_DEFAULT = 2.0


# two-sided 95% Student t quantiles by degrees of freedom (above 30: the normal 1.96)
_T975 = {1: 12.71, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
         12: 2.179, 15: 2.131, 20: 2.086, 25: 2.060, 30: 2.042}


def t_scale(dof: int) -> float:
    """How much wider than the normal quantile a threshold must be when the spread rests on `dof` degrees."""
    known = [d for d in _T975 if d <= dof]
    return _T975[max(known)] / 1.96 if known and dof <= 30 else 1.0


@dataclass(frozen=True)
class Reference:
    """What a result is compared with: a label ('baseline', 'best keep lr-up'), the values of its runs and the
    seeds they ran with ('own' for the recipe's own seed)."""

    label: str
    values: tuple[float, ...]
    seeds: tuple[str, ...] = ()

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
          spread: Spread | None = None, z: float = Z_DEFAULT, simplifies: Callable[[], bool] = lambda: False,
          seeds: tuple[str, ...] = ()) -> Verdict:
    """The verdict for the valid values of one configuration (one run, or several with different seeds)."""
    if not values:
        return Verdict("crash", "no valid metric")
    if reference is None:
        return Verdict("keep", "first valid result: it becomes the reference")
    sign = 1 if maximize else -1
    pairs = _pairs(values, seeds, reference)
    if len(pairs) >= 2:
        diffs = [sign * (h - r) for h, r in pairs]
        gain, sd = statistics.fmean(diffs), statistics.stdev(diffs)
        threshold = max(min_delta, z * t_scale(len(diffs) - 1) * sd / math.sqrt(len(diffs)))
        note = (f"{sign * gain:+.4g} vs {reference.label}, paired over {len(diffs)} seeds "
                f"(spread of the differences {sd:.4g}, threshold {threshold:.4g})")
    else:
        gain = sign * (statistics.fmean(values) - reference.value)
        threshold, noise = _unpaired_threshold(len(values), len(reference.values), min_delta, spread, z)
        runs = f"mean of {len(values)} runs " if len(values) > 1 else ""
        ref_runs = f" (mean of {len(reference.values)})" if len(reference.values) > 1 else ""
        note = f"{runs}{sign * gain:+.4g} vs {reference.label} {reference.value:.6g}{ref_runs} ({noise})"
    if gain > threshold:
        return Verdict("keep", note)
    if abs(gain) <= threshold and simplifies():
        return Verdict("keep", f"{note}; flat metric with a smaller diff: simplification")
    return Verdict("discard", note)


def _pairs(values: list[float], seeds: tuple[str, ...], reference: Reference) -> list[tuple[float, float]]:
    """(change, reference) values of runs that used the same seed."""
    if len(seeds) != len(values) or len(reference.seeds) != len(reference.values):
        return []
    ref = dict(zip(reference.seeds, reference.values))
    return [(v, ref[s]) for v, s in zip(values, seeds) if s in ref]


def _unpaired_threshold(n: int, m: int, min_delta: float, spread: Spread | None, z: float) -> tuple[float, str]:
    if spread is None or spread.sd <= 0:
        return min_delta, "no spread estimate yet" + (f", threshold {min_delta:.4g}" if min_delta else "")
    threshold = max(min_delta, z * t_scale(spread.dof) * spread.sd * math.sqrt(1 / n + 1 / m))
    return threshold, f"spread {spread.sd:.4g} over {spread.runs} runs, threshold {threshold:.4g}"
