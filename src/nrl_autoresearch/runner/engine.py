"""The engine: one open campaign and the commands run on it. A facade over the runner's parts, each on its own:

- context.py: the campaign, its adapters and records, the control flags, the runs in flight
- planner.py: the stop rules' room, the trials of a hypothesis (indexes, names, seeds), references and spread
- trial_runner.py: the path of one run: branch, commit, launch, watch, measure
- recorder.py: verdict, ledger row, git note, journal, notes, session memory, integrations
- followups.py: sequential looks, fix and rerun of a trivial crash, confirmation of a new best
- recovery.py: replay of the journal after a kill, reruns owed to interruptions
- loop.py: the unattended loop and its worker threads

hypothesis -> worktree on <prefix>/<name> from its parent -> recipe applies the change -> commit
-> stop rules checked -> launcher runs it with its limit -> metric source reads the metric -> judge
-> ledger row (TSV + git note) -> progress line with the stop sentence.

Every step is journaled first, so an engine killed at any moment resumes without a lost or duplicated row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from nrl_autoresearch import integrations
from nrl_autoresearch.core import stoprules
from nrl_autoresearch.core.campaign import Campaign
from nrl_autoresearch.core.errors import BaselineCrashed, UsageError
from nrl_autoresearch.core.history import History
from nrl_autoresearch.core.hypothesis import Hypothesis
from nrl_autoresearch.core.journal import Attempt
from nrl_autoresearch.core.judge import Spread
from nrl_autoresearch.core.ledger import Row
from nrl_autoresearch.core.progress import Progress
from nrl_autoresearch.core.proposer import ProposerContext
from nrl_autoresearch.core.recipe import Check
from nrl_autoresearch.core.session import Session
from nrl_autoresearch.runner import checks, smoke
from nrl_autoresearch.runner.context import Context
from nrl_autoresearch.runner.followups import Followups
from nrl_autoresearch.runner.loop import Loop
from nrl_autoresearch.runner.planner import Planner
from nrl_autoresearch.runner.recorder import Recorder
from nrl_autoresearch.runner.recovery import Recovery
from nrl_autoresearch.runner.screening import Screening
from nrl_autoresearch.runner.trial_runner import TrialRunner


class Engine:
    def __init__(self, campaign: Campaign, *, say: Callable[[str], None] = print, progress: Progress | None = None):
        self.context = Context(campaign, say=say, progress=progress)
        self.planner = Planner(self.context)
        self.recorder = Recorder(
            self.context, self.planner, on_row=lambda row, extra: integrations.row_recorded(self.planner, row, extra)
        )
        self.trials = TrialRunner(self.context, self.planner, self.recorder)
        self.followups = Followups(self.context, self.planner, self.trials, self.recorder)
        self.recovery = Recovery(self.context, self.planner, self.trials, self.recorder)
        self.screening = Screening(self.context, self.planner, self.trials, self.recorder)
        self.loop = Loop(
            self.context,
            self.planner,
            self.trials,
            self.recorder,
            self.followups,
            self.recovery,
            self.screening,
            on_end=lambda: integrations.loop_ended(self.planner),
        )
        context = self.context
        self.recipe, self.launcher, self.source = context.recipe, context.launcher, context.source
        self.workspace, self.ledger, self.notes, self.journal = (
            context.workspace,
            context.ledger,
            context.notes,
            context.journal,
        )
        self.gpus, self.writer = context.gpus, context.writer

    def attach(self, *, say: Callable[[str], None] | None = None, progress: Progress | None = None) -> None:
        """Send messages (and live progress lines) somewhere else, as a server does per request."""
        if say is not None:
            self.context.say = say
        if progress is not None:
            self.context.progress = progress

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Release what the launcher holds (an interactive Slurm allocation)."""
        self.launcher.close()

    # -- the campaign --------------------------------------------------------------------------------
    @property
    def campaign(self) -> Campaign:
        return self.context.campaign

    def set_options(self, **changes) -> None:
        """Options of this command (the proposer, the workers), saved with the campaign."""
        self.context.campaign = self.campaign.with_options(**changes)

    def extend_rules(self, more: int) -> None:
        """After the person confirms: `more` attempts beyond those already made."""
        self.context.campaign = self.campaign.with_rules(self.campaign.rules.extended(len(self.rows()), more))

    def say(self, text: str) -> None:
        self.context.say(text)

    @property
    def memory(self) -> Session:
        return self.context.memory

    @property
    def halt_reason(self) -> str | None:
        return self.context.halt_reason

    def halt(self, reason: str) -> None:
        """End the running experiments (recorded as crashes with this reason) and start no new one."""
        self.context.halt(reason)

    # -- reading state -------------------------------------------------------------------------------
    def rows(self) -> list[Row]:
        return self.context.rows()

    def best_row(self) -> Row | None:
        return self.context.best_row()

    def baseline_rows(self) -> list[Row]:
        return self.context.baseline_rows()

    def valid_baseline(self) -> list[Row]:
        return self.planner.valid_baseline()

    def require_valid_baseline(self) -> None:
        self.planner.require_valid_baseline()

    def baseline_diagnosis(self) -> str:
        return self.planner.baseline_diagnosis()

    def status(self) -> stoprules.StopStatus:
        return self.planner.status()

    def gpus_held(self) -> float:
        return self.planner.gpus_held()

    def gpu_hours(self) -> float:
        return self.planner.gpu_hours()

    def history(self) -> History:
        return self.planner.history()

    def spread(self) -> Spread | None:
        return self.planner.spread()

    def seed_base(self) -> int:
        return self.planner.seed_base()

    def next_index(self) -> int:
        return self.planner.next_index()

    def job_name(self, index: int) -> str:
        return self.context.job_name(index)

    def rel(self, path: Path) -> str:
        return self.context.rel(path)

    # -- session memory and control ------------------------------------------------------------------
    def checkpoint(self, kind: str, text: str) -> None:
        self.recorder.checkpoint(kind, text)

    def steer(self, text: str, *, replace_objective: bool = False) -> None:
        """Record follow-up steering: additive, unless the person explicitly replaces the objective."""
        if not text.strip():
            raise UsageError(
                "the steering text is empty: say what the campaign should do next, e.g. "
                "autoresearch steer 'try smaller learning rates'"
            )
        self.recorder.steer(text, replace_objective=replace_objective)

    def control(self) -> str | None:
        """'stop' or 'pause' when the person asked the loop to halt between experiments."""
        return self.context.control.get()

    def set_control(self, flag: str | None) -> None:
        """Set ('stop' or 'pause') or clear (None) the flag the loop polls."""
        self.context.control.set(flag)

    def proposer_context(self) -> ProposerContext:
        """What a proposer is built with: the campaign as it stands, the recipe, the repository, and the
        engine's say, check and stop flag."""
        context = self.context
        return ProposerContext(
            current_campaign=lambda: context.campaign,
            recipe=context.recipe,
            repository=context.workspace,
            seed=self.planner.seed_base(),
            say=lambda text: context.say(text),  # where `attach` sends messages now
            check=self.planner.check,
            stop_requested=lambda: context.control.get() == "stop",
        )

    # -- commands ------------------------------------------------------------------------------------
    def baseline(self) -> Row:
        """Record the unmodified recipe as the reference, on <prefix>/baseline (interrupted runs of it first)."""
        with self.writer.held():
            self.recovery.recover()
            rerun = self.loop.rerun_interrupted(baseline_only=True)
            if rerun:
                return rerun[0]
            existing = self.valid_baseline()
            if existing:
                raise UsageError(
                    f"the baseline is already recorded as row {existing[0].index} of "
                    f"{self.campaign.ledger}: run experiments with 'autoresearch try' or "
                    "'autoresearch run'"
                )
            checks.check_preflight(self.context)
            rows = self.loop.supervise(self.planner.plan_baseline())
            if not self.valid_baseline():
                raise BaselineCrashed(self.baseline_diagnosis())
            return rows[0]

    def try_(self, hypothesis: Hypothesis, *, repeat: bool = False) -> Row:
        """One experiment: branch, change, commit, run, record. With `repeat`, a configuration already tried
        runs once more on its own branch and is judged together with its earlier runs."""
        with self.writer.held():
            self.recovery.recover()
            self.loop.rerun_interrupted(baseline_only=True)
            self.require_valid_baseline()
            prepared = self.planner.prepared(hypothesis.name)
            if prepared:
                hypothesis = replace(
                    hypothesis, parent=prepared["parent"], description=hypothesis.description or prepared["description"]
                )
            trials = [self.planner.plan_repeat(hypothesis)] if repeat else self.planner.plan(hypothesis)
            return self.loop.supervise(trials)[-1]

    def prepare(self, name: str, description: str, parent: str) -> Path:
        """Create an experiment branch and worktree for hand edits; `try NAME` later commits and runs them."""
        with self.writer.held():
            self.require_valid_baseline()
            return self.planner.prepare(name, description, parent)

    def run(
        self, propose: Callable[[History], Hypothesis | None], *, workers: int = 1, max_runs: int | None = None
    ) -> stoprules.StopStatus:
        """The unattended loop: baseline first, then one hypothesis at a time (or `workers` at once) until a
        stop rule is clearly met, the proposer has nothing left, or the person halts it."""
        with self.writer.held():
            return self.loop.run(propose, workers=workers, max_runs=max_runs)

    def check(self, hypothesis: Hypothesis) -> None:
        """Validate a hypothesis before anything is created (exit 2 on a bad name or change)."""
        self.planner.check(hypothesis)

    def follow_head(self) -> str:
        return self.planner.follow_head()

    def owed_reruns(self, *, baseline_only: bool = False) -> list[Attempt]:
        return self.recovery.owed_reruns(baseline_only=baseline_only)

    def rerun_interrupted(self, *, baseline_only: bool = False) -> list[Row]:
        return self.loop.rerun_interrupted(baseline_only=baseline_only)

    def recover(self) -> list[str]:
        with self.writer.held():
            return self.recovery.recover()

    # -- checks and smoke runs -----------------------------------------------------------------------
    def preflight(self) -> list[Check]:
        return checks.preflight(self.context)

    def verify(self) -> list[str]:
        return checks.verify(self.context)

    def smoke(self, sets: dict[str, str], limit_s: float = 600.0) -> dict:
        return smoke.smoke(self.context, sets, limit_s)
