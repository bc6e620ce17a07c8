"""The launcher interface: submit a run, get a job; a job has an id, a state, a log, and can be waited on or cancelled.

Every backend fills the ledger's `launcher`, `job_id`, `command` and `log_path` truthfully, measures queue time
and run time apart, and ends what it started (a timeout kills the whole process tree, or cancels the job).
"""

from __future__ import annotations

import enum
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from nrl_autoresearch.core.stoprules import exact_duration


class JobState(str, enum.Enum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    TIMEOUT = "TIMEOUT"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    CANCELLED = "CANCELLED"
    NODE_FAIL = "NODE_FAIL"
    PREEMPTED = "PREEMPTED"
    UNKNOWN = "UNKNOWN"

    @property
    def finished(self) -> bool:
        return self not in (JobState.PENDING, JobState.RUNNING)


@dataclass(frozen=True)
class RunSpec:
    """One run to launch: an argument list, where to run it, what to add to its environment, its limit.
    `argv` may hold `${NAME}` references to secret environment variables: launchers expand them only in the
    process they start, so what is written (ledger, scripts) never holds the value."""

    name: str
    argv: list[str]
    cwd: Path
    log_path: Path
    run_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    timeout_s: float | None = None
    gpus: tuple[int, ...] | None = None


@dataclass(frozen=True)
class JobResult:
    """How a job ended. `run_s` excludes time spent queued; `reason` says why a non-success ended."""

    state: JobState
    exit_code: int | None
    reason: str
    run_s: float
    queue_s: float = 0.0
    peak_memory_gb: float | None = None

    @property
    def succeeded(self) -> bool:
        return self.state == JobState.COMPLETED and self.exit_code in (0, None)


class Job(ABC):
    """A submitted run."""

    job_id: str
    log_path: Path
    command: str  # what the ledger's `command` column shows: the exact command, or the submitted script

    @abstractmethod
    def state(self) -> JobState: ...

    @abstractmethod
    def wait(self, poll_s: float = 0.5, should_stop=None) -> JobResult:
        """Block until the job ends; `should_stop()` returning a reason cancels it (Ctrl-C, deadline)."""

    @abstractmethod
    def cancel(self, reason: str) -> None: ...

    @abstractmethod
    def handle(self) -> dict:
        """What must be persisted (before the job can be lost) to reattach to it after a restart."""


class Launcher(ABC):
    """Where runs happen. `name` is what the ledger's `launcher` column shows."""

    name: str = ""

    @abstractmethod
    def submit(self, spec: RunSpec) -> Job: ...

    @abstractmethod
    def reattach(self, handle: dict) -> Job | None:
        """The job a handle describes, if it still exists (running or finished with a known outcome)."""

    def rendered(self, spec: RunSpec) -> str | None:
        """What this launcher submits for `spec` beyond the command itself (a batch script), when it writes one."""
        return None

    def preflight(self) -> list[tuple[bool, str]]:
        """(ok, message) checks of this launcher's own requirements."""
        return []

    def missing_tools(self) -> list[str]:
        """The commands this launcher runs that are not on PATH (checked when a campaign is created)."""
        return []

    def gpus_held(self) -> float:
        """GPUs the scheduler allocates to each run (0 when the launcher asks for none), for GPU-hours."""
        return 0

    def close(self) -> None:  # noqa: B027 (optional: most launchers hold nothing)
        """Release what the launcher holds (an allocation, a connection)."""


OVERRUN = "overrun"


def wait_with_limit(job: Job, poll_s: float, should_stop, overrun, end, note: str) -> None:
    """Poll a scheduler's job until it ends. Our own limit stands on top of the scheduler's: an `overrun()` ends
    the job as a TIMEOUT, a reason from `should_stop()` (Ctrl-C, the deadline) as CANCELLED, through `end`."""
    def reason() -> str | None:
        return OVERRUN if overrun() else (should_stop() if should_stop else None)

    found = wait_loop(job, poll_s, reason)
    if found == OVERRUN:
        end(JobState.TIMEOUT, f"timeout: exceeded the {exact_duration(job.timeout_s)} limit; {note}")
    elif found:
        end(JobState.CANCELLED, found)


def wait_loop(job: Job, poll_s: float, should_stop, pause=time.sleep) -> str | None:
    """Poll until the job finishes or `should_stop()` gives a reason (returned). `pause(poll_s)` may return
    early when the job ends (a local child's wait), so short runs are not rounded up to the poll period."""
    while not job.state().finished:
        reason = should_stop() if should_stop else None
        if reason:
            return reason
        pause(poll_s)
    return None
