"""--screen SHARE: an open-ended hypothesis first runs for that share of the training steps; only one within noise
of the best configuration at the same step is promoted to a full run.

Both runs are ledger rows. The screen is a discard that says where it stood (`screened at step 10/40: ...`): like a
pruned run, its partial value is never a reference, a spread or evidence; the verdict is the full run's alone. The
noise is the best configuration's own run-to-run spread at that step, never narrower than the campaign's; with no
measured noise, or nothing to compare with at that step, every screen is promoted.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from nrl_autoresearch.core.errors import disk_full
from nrl_autoresearch.core.ledger import SCREENED, Row
from nrl_autoresearch.core.trial import Trial
from nrl_autoresearch.runner.attempt import Outcome
from nrl_autoresearch.runner.curves import full_run_curves
from nrl_autoresearch.runner.watch import load_curve

if TYPE_CHECKING:
    from nrl_autoresearch.core.recipe import Recipe
    from nrl_autoresearch.runner.context import Context
    from nrl_autoresearch.runner.planner import Planner
    from nrl_autoresearch.runner.recorder import Recorder
    from nrl_autoresearch.runner.trial_runner import TrialRunner

SCREEN_Z = 2.5  # promoted unless this many standard deviations of a difference behind the best (about 1% of equals)


def launch_args(recipe: Recipe, worktree: Path, trial: Trial) -> list[str]:
    """What makes a screen run its share of the steps (nothing for other runs)."""
    shortened = recipe.shortened_args(worktree, trial.screen) if trial.screen else None
    return shortened[0] if shortened else []


class Screening:
    """The screen of a single open-ended run, and its promotion to a full run."""

    def __init__(self, context: Context, planner: Planner, trials: TrialRunner, recorder: Recorder):
        self.context = context
        self.planner = planner
        self.trials = trials
        self.recorder = recorder

    def applies(self, group: list[Trial]) -> bool:
        """--screen is on and the group is one new hypothesis's first run (no repeats, follow-ups or fixes)."""
        first = group[0]
        return (
            bool(self.context.campaign.options.get("screen"))
            and len(group) == 1
            and not (first.is_baseline or first.role or first.commit or first.hypothesis.failure)
        )

    def execute(self, first: Trial, full_run: Callable[[list[Trial]], list[Row]]) -> list[Row]:
        """The screen's row; then, when it is promoted and the stop rules leave room, the full run's rows."""
        share = float(self.context.campaign.options["screen"])
        outcome, rows, promoted = None, [], False
        try:
            try:
                outcome = self.trials.run(replace(first, screen=share), None, None)
                outcome, promoted = self._judged(outcome, share)
                rows = self.recorder.record_group([outcome])
            finally:
                self.context.settle({first.index})
        except Exception as err:  # the screen consumed its index: it must still become a row
            if disk_full(err):
                raise
            return self.recorder.crash_rows(
                [first], outcome.commit if outcome else None, f"engine error: {type(err).__name__}: {err}"
            )
        finally:
            if outcome is not None:
                self.trials.release(first, outcome.worktree, refused=outcome.commit == first.parent_commit)
        if not promoted or outcome is None:
            return rows
        if not self.planner.may_launch():
            self.context.say(
                f"[{first.index}] no room left for the full run of {first.name}: {self.planner.status().sentence}"
            )
            return rows
        return rows + full_run([self.planner.plan_again(first, outcome.commit, "", seeded=False)])

    def _judged(self, outcome: Outcome, share: float) -> tuple[Outcome, bool]:
        """The screen's outcome, labelled and with the reason that makes it a screen row; whether it is promoted."""
        campaign = self.context.campaign
        shortened = self.context.recipe.shortened_args(outcome.worktree, share) if outcome.worktree else None
        label = f"screen {shortened[1]}/{shortened[2]} steps" if shortened else "screen"
        trial = replace(outcome.trial, role=label)
        curve = load_curve(campaign.run_dir(trial.run))
        if outcome.crash_reason or not curve:
            return replace(outcome, trial=trial), False
        step, value = curve[-1]
        found = self._bar(trial, step)
        total = f"/{shortened[2]}" if shortened else ""
        if found is None:
            promoted, compared = True, "nothing measured to compare it with at that step"
        else:
            best, band = found
            promoted = passes(value, found, campaign.objective.maximize)
            compared = f"the best's {best:.4g} ± {band:.2g} at the same step"
        verdict = (
            "ahead or within noise: promoted to a full run"
            if promoted
            else "behind by more than the noise: not promoted"
        )
        reason = (
            f"{SCREENED}step {step:g}{total}: {campaign.objective.metric_name} {value:.4g} vs {compared}, {verdict}"
        )
        return replace(outcome, trial=trial, result=replace(outcome.result, reason=reason)), promoted

    def _bar(self, trial: Trial, step: float) -> tuple[float, float] | None:
        """The best configuration's mean at `step` (of the reference and the best keep) and the noise band a single
        screen must stay within: SCREEN_Z standard deviations of the difference of one run and that mean."""
        top = self.context.best_row()
        commits = {trial.parent_commit} | ({top.commit} if top else set())
        spread = self.planner.spread()
        return bar(
            [full_run_curves(self.context, commit) for commit in commits],
            step,
            spread.sd if spread else None,
            self.context.campaign.objective.maximize,
        )


def bar(
    configurations: list[list[list[tuple[float, float]]]], step: float, spread_sd: float | None, maximize: bool
) -> tuple[float, float] | None:
    """Of configurations (the curves of each), the best mean at `step` and the band around it, or None."""
    sign = 1 if maximize else -1
    measured = [
        values
        for values in ([v for v in (_value_at(c, step) for c in curves) if v is not None] for curves in configurations)
        if values
    ]
    if not measured:
        return None
    best = max(measured, key=lambda values: sign * statistics.fmean(values))
    sds = ([statistics.stdev(best)] if len(best) > 1 else []) + ([spread_sd] if spread_sd else [])
    if not sds or not max(sds):
        return None
    return statistics.fmean(best), SCREEN_Z * max(sds) * math.sqrt(1 + 1 / len(best))


def passes(value: float, found: tuple[float, float] | None, maximize: bool) -> bool:
    """Ahead of the best, or behind it by no more than the band (always, with nothing to compare with)."""
    return found is None or (found[0] - value) * (1 if maximize else -1) <= found[1]


def _value_at(curve: list[tuple[float, float]], step: float) -> float | None:
    """The curve's value at `step`, else at its last evaluation before it."""
    before = [v for s, v in curve if s <= step]
    return dict(curve).get(step, before[-1] if before else None)
