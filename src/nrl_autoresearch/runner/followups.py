"""The runs a result earns after it: more looks for a single run that is ahead (sequential testing), a fix and a
rerun of a crash that looks like the change's own small mistake, and a confirmation of a new best keep. Each is
its own trial, reserved through the planner within the stop rules."""

from __future__ import annotations

from pathlib import Path

from nrl_autoresearch.core.judge import Z_DEFAULT
from nrl_autoresearch.core.ledger import Row
from nrl_autoresearch.core.redact import redact
from nrl_autoresearch.core.trial import Trial
from nrl_autoresearch.core.verdict import another_look
from nrl_autoresearch.runner import triage
from nrl_autoresearch.runner.attempt import Outcome
from nrl_autoresearch.runner.context import Context, tail
from nrl_autoresearch.runner.planner import Planner
from nrl_autoresearch.runner.recorder import Recorder
from nrl_autoresearch.runner.trial_runner import TrialRunner

MAX_FIXES = 2  # fixes of a trivial crash before it stays a crash
NTH = ("second", "third", "fourth")


class Followups:
    def __init__(self, context: Context, planner: Planner, trials: TrialRunner, recorder: Recorder):
        self.context = context
        self.planner = planner
        self.trials = trials
        self.recorder = recorder

    def more_looks(self, outcomes: list[Outcome]) -> list[Outcome]:
        """--sequential: a single run that is ahead by the look's bar and short of the keep bar gets one more run
        with another seed, and so on (core/verdict.py's `another_look`); then all are judged together."""
        first = outcomes[0]
        options = self.context.campaign.options
        if (
            len(outcomes) != 1
            or first.crash_reason
            or first.trial.is_baseline
            or first.trial.role
            or not options.get("sequential")
            or not self.context.recipe.seeded()
        ):
            return []
        objective = self.context.campaign.objective
        added: list[Outcome] = []
        while not self.context.halt_reason and not any(o.crash_reason for o in added):
            values = [o.value for o in (first, *added) if o.value is not None]
            spread = self.planner.spread(first.commit, values if added else None)
            if not another_look(
                values,
                first.trial.reference,
                spread,
                added=len(added),
                maximize=objective.maximize,
                min_delta=self.context.campaign.min_delta,
                z=options.get("z", Z_DEFAULT),
            ):
                break
            if not self.planner.may_launch():
                self.context.say(
                    f"[{first.trial.index}] no room for another run of {first.trial.name}: judged on {len(values)}"
                )
                break
            nth = NTH[len(added)]
            again = self.planner.plan_again(
                first.trial, first.commit, f"{nth} run of [{first.trial.index}]", seeded=True
            )
            self.context.say(
                f"[{first.trial.index}] {first.trial.name} is ahead of the look's bar: a {nth} run, seed "
                f"{again.seed}, before its verdict"
            )
            added.append(self.trials.run(again, first.commit, first.worktree))
        return added

    def confirm(self, trial: Trial, rows: list[Row], worktree: Path | None) -> list[Row]:
        """--confirm: a new best keep is run once more with another seed before anything builds on it; if it does
        not hold up, its confirmation row says so (a discard) and it stops counting as the best."""
        options = self.context.campaign.options
        if not options.get("confirm") or trial.is_baseline or trial.role.startswith("confirmation"):
            return []
        top = self.context.best_row()
        if not rows or rows[-1].status != "keep" or top is None or top.commit != rows[-1].commit:
            return []
        if not self.planner.may_launch():
            self.context.say(f"[{trial.index}] no room left to confirm {trial.name}: it stays an unconfirmed keep")
            return []
        again = self.planner.plan_again(trial, rows[-1].commit, f"confirmation of [{rows[0].index}]", seeded=True)
        return self.recorder.record_group([self.trials.run(again, rows[-1].commit, worktree)])

    def fix_and_rerun(self, trial: Trial, rows: list[Row], worktree: Path | None) -> list[Row]:
        """Crash triage: a crash that looks like the change's own small mistake (syntax error, missing import, bad
        key) is fixed by the hypothesis's fixer with a follow-up commit on the same branch and rerun, a few times
        at most; each rerun is its own row. A crash that keeps coming back stays a crash."""
        fix = trial.hypothesis.fix
        attempts = 0
        written: list[Row] = []
        workspace = self.context.workspace
        while (
            fix
            and worktree is not None
            and (written or rows)[-1].status == "crash"
            and attempts < self.context.campaign.options.get("max_fixes", MAX_FIXES)
            and self.planner.may_launch()
        ):
            last = (written or rows)[-1]
            log_tail = tail(self.context.campaign.repo / last.log_path)
            if not triage.trivial_crash(log_tail) or not fix(worktree, log_tail):
                break
            attempts += 1
            commit = workspace.commit(
                worktree, workspace.changed_paths(worktree), redact(f"{trial.name}: fix after crash [{last.index}]\n")
            )
            again = self.planner.plan_again(
                trial, commit, f"rerun of [{last.index}] after fix {attempts}", seeded=False
            )
            written += self.recorder.record_group([self.trials.run(again, commit, worktree)])
        return written
