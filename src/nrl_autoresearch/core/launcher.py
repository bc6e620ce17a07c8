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

GRACE_S = 10.0  # between SIGTERM and SIGKILL when a run is stopped, unless the campaign says otherwise


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


LOST_AFTER = 3  # consecutive polls in which the scheduler cannot tell a job's state: the job is lost


class PolledJob(Job):
    """A scheduler's job, known only by polling it: its state, our limit on top of the scheduler's, cancelling.

    A backend says how to read the state (`read_state`, None when the scheduler does not answer or no longer
    knows the job), when the job started running (`started_at`), how to stop it (`halt`) and what to do with its
    log once it ended (`finish_log`). The first end we decide (a TIMEOUT for an overrun, CANCELLED for a reason
    from `should_stop()` or `cancel()`) is the one `_ended` keeps for the result."""

    timeout_s: float | None
    poll_s: float
    overshoot_s: float = 0.0  # how long past its limit the job may run before we end it (the scheduler may be late)
    overrun_note = "stopped"  # what the TIMEOUT reason adds about how we ended it

    def __init__(self) -> None:
        self._last: JobState | None = None
        self._misses = 0
        self._ended: tuple[JobState, str] | None = None

    @abstractmethod
    def read_state(self) -> JobState | None: ...

    @abstractmethod
    def started_at(self) -> float | None:
        """When the job started running (epoch seconds), once it has."""

    @abstractmethod
    def halt(self) -> None: ...

    def finish_log(self) -> None:
        """Make the run's log complete once the job has ended."""

    def state(self) -> JobState:
        if self._last is None or not self._last.finished:
            found = self.read_state()
            self._misses = 0 if found is not None else self._misses + 1
            self._last = found if found is not None else self._last
        if self._misses >= LOST_AFTER:
            return JobState.UNKNOWN
        return self._last or JobState.PENDING

    @property
    def lost(self) -> bool:
        return self._misses >= LOST_AFTER

    def wait(self, poll_s: float | None = None, should_stop=None) -> JobResult:
        """Poll until the job ends; an overrun ends it as a TIMEOUT, a reason from `should_stop()` (Ctrl-C, the
        deadline) as CANCELLED."""

        def reason() -> str | None:
            return _OVERRUN if self._overrun() else (should_stop() if should_stop else None)

        found = wait_loop(self, poll_s or self.poll_s, reason)
        if found == _OVERRUN:
            self.end(
                JobState.TIMEOUT,
                f"timeout: exceeded the {exact_duration(self.timeout_s or 0)} limit; {self.overrun_note}",
            )
        elif found:
            self.end(JobState.CANCELLED, found)
        self.finish_log()
        return self.result()

    @abstractmethod
    def result(self) -> JobResult: ...

    def cancel(self, reason: str) -> None:
        self.end(JobState.CANCELLED, reason)

    def end(self, state: JobState, reason: str) -> None:
        """Stop the job once; the first state and reason given are the ones its result keeps."""
        if self._ended is None:
            self.halt()
            self._ended = (state, reason)

    def _overrun(self) -> bool:
        start = self.started_at()
        return bool(self.timeout_s and start and time.time() - start > self.timeout_s + self.overshoot_s)


_OVERRUN = "overrun"


def wait_loop(job: Job, poll_s: float, should_stop, pause=time.sleep) -> str | None:
    """Poll until the job finishes or `should_stop()` gives a reason (returned). `pause(poll_s)` may return
    early when the job ends (a local child's wait), so short runs are not rounded up to the poll period."""
    while not job.state().finished:
        reason = should_stop() if should_stop else None
        if reason:
            return reason
        pause(poll_s)
    return None
