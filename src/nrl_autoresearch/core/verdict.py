"""The keep/discard/crash rule, whole: which runs of a group count, how they are judged together against their
reference (core/judge.py's statistics), when a single run earns another look, and what each row's status is.

The rule reads values, seeds and spreads only; where they come from (the ledger, the journal) is the runner's.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Sequence

from nrl_autoresearch.core.judge import (
    CANDIDATE_Z,
    CONTINUE_Z,
    MAX_LOOK_RUNS,
    Reference,
    Spread,
    Verdict,
    ahead,
    judge,
    pooled_jitter,
    pooled_spread,
)
from nrl_autoresearch.core.trial import Trial

PRUNED_NOTE = "stopped early: no evidence against the idea"


def seed_key(seed: int | None) -> str:
    """How a run's seed is compared: 'own' for the recipe's own seed."""
    return "own" if seed is None else str(seed)


def group_verdict(
    trial: Trial,
    earlier: list[tuple[str, float]],
    new: list[tuple[str, float]],
    *,
    maximize: bool,
    min_delta: float,
    spread: Spread | None,
    z: float,
    simplifies: Callable[[], bool],
) -> Verdict:
    """One verdict for a group's valid runs (`new`, as (seed key, value)) together with the configuration's
    `earlier` valid runs: the baseline is the reference, anything else is judged against the trial's reference."""
    if not new:
        return Verdict("crash", "no valid metric")
    runs = earlier + new
    values, seeds = [v for _, v in runs], tuple(s for s, _ in runs)
    if trial.is_baseline:
        spread_of = pooled_spread([values])
        return Verdict(
            "keep",
            "the reference"
            + (
                f" (mean {statistics.fmean(values):.6g} of {len(values)} runs, spread {spread_of.sd:.4g})"
                if spread_of
                else ""
            ),
        )
    return judge(
        values,
        trial.reference,
        maximize=maximize,
        min_delta=min_delta,
        spread=spread,
        z=z,
        seeds=seeds,
        simplifies=simplifies,
    )


def row_status(
    verdict: Verdict, *, crash_reason: str | None, pruned_reason: str | None, crash_note: Callable[[], str]
) -> tuple[str, str, bool]:
    """A run's status, its note, and whether its metric is recorded: a pruned run is a discard with its metric
    (stopped early, not wrong), a run without a valid metric a crash, any other the group's verdict."""
    if pruned_reason is not None:
        return "discard", f"{pruned_reason} ({PRUNED_NOTE})", True
    if crash_reason is not None:
        return "crash", crash_note(), False
    return verdict.status, verdict.note, True


def another_look(
    values: Sequence[float],
    reference: Reference | None,
    spread: Spread | None,
    *,
    added: int,
    maximize: bool,
    min_delta: float,
    z: float,
) -> bool:
    """A single run is a look, not a finding: while the runs so far are ahead by the look's bar (the candidate bar
    after one, the continue bar after two) and short of the keep bar, one more run with another seed is due, up to
    MAX_LOOK_RUNS. Only a spread measured on repeats can justify it."""
    if added + 1 >= MAX_LOOK_RUNS or spread is None or spread.source != "repeats":
        return False
    if added and ahead(values, reference, maximize=maximize, spread=spread, z=z, min_delta=min_delta):
        return False
    return ahead(
        values,
        reference,
        maximize=maximize,
        spread=spread,
        z=CANDIDATE_Z if not added else CONTINUE_Z,
        min_delta=min_delta,
    )


def campaign_spread(
    groups: Iterable[Sequence[float]], jitters: Iterable[tuple[float, int]], aggregate: str
) -> Spread | None:
    """The run-to-run spread pooled over every configuration run more than once; without any, the runs' own curve
    jitter scaled to the objective's aggregate (a floor that misses what the seed changes in training)."""
    points = int(aggregate.rsplit("-", 1)[1]) if aggregate.startswith("mean-last-") else 1
    return pooled_spread(groups) or pooled_jitter(jitters, points)
