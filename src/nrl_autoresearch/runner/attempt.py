"""One run of a trial, measured: what its ledger row and the verdict need. Shared by the experiment path and its
recovery."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from nrl_autoresearch.core.launcher import JobResult, JobState
from nrl_autoresearch.core.trial import Trial

# how the reasons of runs that something outside them ended begin
INTERRUPTIONS = ("interrupted", "stopped by the person")


@dataclass
class Outcome:
    """One finished run of a trial, measured."""

    trial: Trial
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
    def crash_reason(self) -> str | None:
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
