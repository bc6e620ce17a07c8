"""One attempt as the engine plans and measures it: shared by the experiment path and its recovery."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from nrl_autoresearch.core.hypothesis import Hypothesis
from nrl_autoresearch.core.judge import Reference
from nrl_autoresearch.core.launcher import JobResult, JobState
from nrl_autoresearch.runner.workspace import BASELINE

# how the reasons of runs that something outside them ended begin
INTERRUPTIONS = ("interrupted", "stopped by the person")


@dataclass(frozen=True)
class Plan:
    """An attempt with its index reserved: where it branches from and what it is compared with."""

    index: int
    name: str
    run: str
    branch: str
    parent: str
    parent_commit: str
    reference: Reference | None
    hypothesis: Hypothesis
    effective: dict
    seed: int | None = None  # None: the recipe's own seed
    group: tuple[int, ...] = ()  # the indexes of the runs judged together (repeats of one configuration)
    role: str = ""  # "repeat 2/3", "confirmation of [5]"
    commit: str | None = None  # a further run of a configuration already committed runs this commit
    screen: float = 0.0  # --screen: the share of the training steps this run makes (0: all of them)

    @property
    def is_baseline(self) -> bool:
        return self.name == BASELINE


@dataclass
class Outcome:
    """One finished run of a plan, measured: what the ledger row and the verdict need."""

    plan: Plan
    commit: str
    result: JobResult
    job_id: str = "none"
    command: str = ""
    log_path: Path | None = None
    value: float | None = None
    memory: float | None = None
    source: str = ""
    failure: str | None = None
    ending: str | None = None
    worktree: Path | None = None
    jitter: tuple[float, int] | None = None  # the spread of the curve's last points and its degrees of freedom

    @property
    def interrupted(self) -> bool:
        """Ended by the person (Ctrl-C, `autoresearch stop`) or by the engine's death, not by its own doing: it
        owes a rerun, so that an interruption costs neither the spread nor the idea."""
        return self.result.state == JobState.CANCELLED and self.result.reason.startswith(INTERRUPTIONS)

    @property
    def crashed(self) -> str | None:
        """Why this run has no valid metric, or None."""
        if not self.result.succeeded:
            return self.result.reason + (f"; {self.failure}" if self.failure else "")
        if self.failure:
            return self.failure
        if self.value is None:
            return "no metric found"
        if not math.isfinite(self.value):
            return f"metric is {self.value}, not a finite number (diverged or overflowed)"
        return None
