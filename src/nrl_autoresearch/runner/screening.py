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
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from nrl_autoresearch.core.ledger import Row
from nrl_autoresearch.runner.attempt import Outcome, Plan
from nrl_autoresearch.runner.watch import SCREENED, is_pruned, load_curve

if TYPE_CHECKING:
    from nrl_autoresearch.core.recipe import Recipe
    from nrl_autoresearch.runner.engine import Engine

SCREEN_Z = 2.5  # promoted unless this many standard deviations of a difference behind the best (about 1% of equals)


def launch_args(recipe: Recipe, worktree: Path, plan: Plan) -> list[str]:
    """What makes a screen run its share of the steps (nothing for other runs)."""
    shortened = recipe.shortened_args(worktree, plan.screen) if plan.screen else None
    return shortened[0] if shortened else []


def execute(engine: Engine, plans: list[Plan]) -> list[Row]:
    """Run a group; a single open-ended run is screened first when --screen is on."""
    share = engine.c.options.get("screen")
    first = plans[0]
    if (not share or len(plans) > 1 or first.is_baseline or first.role or first.commit
            or first.hypothesis.failure):
        return engine._execute(plans)
    outcome, rows = None, []
    try:
        outcome = engine._run(replace(first, screen=share), None, None)
        outcome, promoted = _judged(engine, outcome, share)
        rows = engine.record_group([outcome])
    except Exception as err:  # the screen consumed its index: it must still become a row
        return engine.crash_rows([first], outcome.commit if outcome else None,
                                 f"engine error: {type(err).__name__}: {err}")
    finally:
        if outcome is not None:
            engine._release(first, outcome.worktree, refused=outcome.commit == first.parent_commit)
    if not promoted:
        return rows
    if not engine._may_launch():
        engine.say(f"[{first.index}] no room left for the full run of {first.name}: {engine.status().sentence}")
        return rows
    return rows + engine._execute([engine._plan_again(first, outcome.commit, "", seeded=False)])


def _judged(engine: Engine, outcome: Outcome, share: float) -> tuple[Outcome, bool]:
    """The screen's outcome, labelled and with the reason that makes it a screen row; whether it is promoted."""
    shortened = engine.recipe.shortened_args(outcome.worktree, share) if outcome.worktree else None
    label = f"screen {shortened[1]}/{shortened[2]} steps" if shortened else "screen"
    plan = replace(outcome.plan, role=label)
    curve = load_curve(engine.c.run_dir(plan.run))
    if outcome.crashed or not curve:
        return replace(outcome, plan=plan), False
    step, value = curve[-1]
    found = _bar(engine, plan, step)
    total = f"/{shortened[2]}" if shortened else ""
    metric = engine.c.objective.metric_name
    if found is None:
        promoted, compared = True, "nothing measured to compare it with at that step"
    else:
        best, band = found
        promoted = passes(value, found, engine.c.objective.maximize)
        compared = f"the best's {best:.4g} ± {band:.2g} at the same step"
    verdict = "ahead or within noise: promoted to a full run" if promoted else "behind by more than the noise: not promoted"
    reason = f"{SCREENED}step {step:g}{total}: {metric} {value:.4g} vs {compared}, {verdict}"
    return replace(outcome, plan=plan, result=replace(outcome.result, reason=reason)), promoted


def _bar(engine: Engine, plan: Plan, step: float) -> tuple[float, float] | None:
    """The best configuration's mean at `step` (of the reference and the best keep) and the noise band a single
    screen must stay within: SCREEN_Z standard deviations of the difference of one run and that mean."""
    top = engine.best_row()
    commits = {plan.parent_commit} | ({top.commit} if top else set())
    spread = engine.spread()
    return bar([reference_curves(engine, commit) for commit in commits], step, spread.sd if spread else None,
               engine.c.objective.maximize)


def bar(configurations: list[list[list[tuple[float, float]]]], step: float, spread_sd: float | None,
        maximize: bool) -> tuple[float, float] | None:
    """Of configurations (the curves of each), the best mean at `step` and the band around it, or None."""
    sign = 1 if maximize else -1
    measured = [values for values in ([v for v in (_value_at(c, step) for c in curves) if v is not None]
                                      for curves in configurations) if values]
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


def reference_curves(engine: Engine, commit: str) -> list[list[tuple[float, float]]]:
    """The objective curves of a configuration's valid runs that ran in full (each run keeps its curve)."""
    runs = {a.index: a.data.get("run") for a in engine.journal.attempts().values()}
    curves = [load_curve(engine.c.run_dir(run)) for r in engine.rows()
              if r.commit == commit and r.status != "crash" and not is_pruned(r.description)
              and (run := runs.get(r.index))]
    return [c for c in curves if c]
