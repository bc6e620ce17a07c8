"""keep / discard / crash by rule, honest about noise, with a description that says what was compared with what.

RL metrics move between runs of the same configuration. The run-to-run spread is estimated from every
configuration the campaign ran more than once (baseline repeats, hypothesis repeats, confirmations), pooled.
A change is kept when its mean gain over the reference clears a one-sided Student-t bar,

    max(min_delta, t(1 - rate, dof) x spread x sqrt(1/n + 1/m))

for n runs of the change, m of the reference, `dof` degrees of freedom behind the spread and `rate` the share
of null changes the rule lets through at one look (4% by default: z = 1.751). With four or more seeds shared with the
reference, the test is paired on them, which removes the part of the noise the seed itself causes.

A single run is only a look: when it clears the looser candidate bar (20% of null changes do), a second run
with another seed is made; two runs short of the keep bar but past the continue bar (30%) get a third. At each
look the runs are judged together against the keep bar (4%). Simulated on normal noise with six baseline runs,
this keeps about 5% of null changes, 89% of real gains of 2.5 spreads and 96% of 3 spreads, for about 1.3
runs a hypothesis; benchmarks/noise_verdicts.py measures it on real scripts.

Without a spread, the noise floor is the runs' own evaluation jitter (the spread of the last points of each
curve around their trend); without either, the rule is min_delta alone and the verdict says the noise is unknown.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import TypeGuard

Z_DEFAULT = 1.751  # the keep bar at each look: one-sided 4%, about 5% of null changes over the looks below
CANDIDATE_Z = 0.8416  # one-sided 20%: a single run this far ahead gets a second run before its verdict
CONTINUE_Z = 0.5244  # one-sided 30%: two runs short of the keep bar but this far ahead get a third
MAX_LOOK_RUNS = 3  # runs of a hypothesis the looks may add up to
MIN_PAIRS = 4  # fewer shared seeds leave too few degrees of freedom for a paired test to have power
SEED_BASE = 1000  # run k >= 2 of a configuration uses seed base + k - 1: every configuration shares its seeds
_NORMAL = statistics.NormalDist()


def t_quantile(p: float, dof: int) -> float:
    """Student's t quantile: exact for 1 and 2 degrees of freedom, Cornish-Fisher beyond (within 0.4%)."""
    if dof == 1:
        return math.tan(math.pi * (p - 0.5))
    if dof == 2:
        return (2 * p - 1) / math.sqrt(2 * p * (1 - p))
    z = _NORMAL.inv_cdf(p)
    v = float(dof)
    return (
        z
        + (z**3 + z) / (4 * v)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * v**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * v**3)
        + (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / (92160 * v**4)
    )


def false_keep_rate(z: float) -> float:
    """The share of null changes a bar at normal quantile `z` keeps (one-sided)."""
    return 1 - _NORMAL.cdf(z)


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
    """A run-to-run standard deviation, the number of runs and degrees of freedom it rests on, and its source."""

    sd: float
    runs: int
    dof: int
    source: str = "repeats"  # "repeats": runs of one configuration; "curve jitter": points of each run's curve

    def describe(self) -> str:
        where = "runs" if self.source == "repeats" else f"curves' last points (the runs' own {self.source})"
        return f"spread {self.sd:.4g} over {self.runs} {where}"


@dataclass(frozen=True)
class Verdict:
    status: str
    note: str


def valid(value: float | None) -> TypeGuard[float]:
    return value is not None and math.isfinite(value)


def pooled_spread(groups: Iterable[Sequence[float]]) -> Spread | None:
    """Pooled standard deviation over groups of runs of one configuration each (groups of one carry none)."""
    repeated = [g for g in groups if len(g) >= 2]
    dof = sum(len(g) - 1 for g in repeated)
    if not dof:
        return None
    variance = sum(statistics.variance(g) * (len(g) - 1) for g in repeated) / dof
    return Spread(math.sqrt(variance), sum(len(g) for g in repeated), dof)


def curve_jitter(values: Sequence[float], last: int = 8) -> tuple[float, int] | None:
    """The spread of a curve's last points around their local trend (successive differences over sqrt 2), and its
    degrees of freedom: a floor for the noise of one evaluation when no run was repeated."""
    tail = [v for v in values[-last:] if math.isfinite(v)]
    if len(tail) < 4:
        return None
    steps = [b - a for a, b in pairwise(tail)]
    return statistics.stdev(steps) / math.sqrt(2), len(steps) - 1


def pooled_jitter(jitters: Iterable[tuple[float, int]], points: int) -> Spread | None:
    """Pooled curve jitter, scaled to the noise of a value that averages `points` curve points."""
    found = [(sd, dof) for sd, dof in jitters if dof > 0]
    dof = sum(d for _, d in found)
    if not dof:
        return None
    sd = math.sqrt(sum(s * s * d for s, d in found) / dof) / math.sqrt(max(1, points))
    return Spread(sd, len(found), dof, "curve jitter")


def keep_bar(spread: Spread, n: int, m: int, z: float) -> float:
    """The gain a mean of n runs needs over a mean of m reference runs."""
    return t_quantile(1 - false_keep_rate(z), spread.dof) * spread.sd * math.sqrt(1 / n + 1 / m)


def ahead(
    values: Sequence[float],
    reference: Reference | None,
    *,
    maximize: bool,
    spread: Spread | None,
    z: float,
    min_delta: float = 0.0,
) -> bool:
    """Whether the mean of `values` is ahead of the reference by the bar at `z` (a look of the sequential rule)."""
    if not values or reference is None or spread is None or spread.sd <= 0:
        return False
    gain = (1 if maximize else -1) * (statistics.fmean(values) - reference.value)
    return gain > max(min_delta, keep_bar(spread, len(values), len(reference.values), z))


def judge(
    values: list[float],
    reference: Reference | None,
    *,
    maximize: bool,
    min_delta: float = 0.0,
    spread: Spread | None = None,
    z: float = Z_DEFAULT,
    simplifies: Callable[[], bool] = lambda: False,
    seeds: tuple[str, ...] = (),
) -> Verdict:
    """The verdict for the valid values of one configuration (one run, or several with different seeds)."""
    if not values:
        return Verdict("crash", "no valid metric")
    if reference is None:
        return Verdict("keep", "first valid result: it becomes the reference")
    sign = 1 if maximize else -1
    pairs = _pairs(values, seeds, reference)
    rate = f"{false_keep_rate(z):.0%} false keeps"
    if len(pairs) >= MIN_PAIRS:
        diffs = [sign * (h - r) for h, r in pairs]
        gain, sd = statistics.fmean(diffs), statistics.stdev(diffs)
        threshold = max(min_delta, t_quantile(1 - false_keep_rate(z), len(diffs) - 1) * sd / math.sqrt(len(diffs)))
        note = (
            f"{sign * gain:+.4g} vs {reference.label}, paired over {len(diffs)} seeds "
            f"(spread of the differences {sd:.4g}, threshold {threshold:.4g} at {rate})"
        )
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
    ref = dict(zip(reference.seeds, reference.values, strict=True))
    return [(v, ref[s]) for v, s in zip(values, seeds, strict=True) if s in ref]


def _unpaired_threshold(n: int, m: int, min_delta: float, spread: Spread | None, z: float) -> tuple[float, str]:
    if spread is None or spread.sd <= 0:
        unknown = "noise unknown: no run repeated and no curve to read it from"
        return min_delta, unknown + (f", threshold {min_delta:.4g}" if min_delta else ", not a finding")
    threshold = max(min_delta, keep_bar(spread, n, m, z))
    return threshold, (
        f"{spread.describe()}, threshold {threshold:.4g} "
        f"= {threshold / spread.sd:.2g} spreads at {false_keep_rate(z):.0%} false keeps"
    )
