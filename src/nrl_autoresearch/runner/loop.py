"""The unattended loop and the worker threads: baseline first, then one hypothesis at a time (or `workers` at
once) until a stop rule is met, the proposer has nothing left or the person halts it. The proposer is asked
outside the bookkeeping lock (an agent may think for an hour while the workers record their rows); each group
runs in a worker thread so that Ctrl-C reaches the command's thread and ends it cleanly."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from nrl_autoresearch.core import stoprules
from nrl_autoresearch.core.errors import (
    BaselineCrashed,
    Fault,
    StopConditionMet,
    disk_full,
    fault_of,
)
from nrl_autoresearch.core.history import History
from nrl_autoresearch.core.hypothesis import Hypothesis
from nrl_autoresearch.core.ledger import Row
from nrl_autoresearch.core.trial import Trial
from nrl_autoresearch.runner import checks
from nrl_autoresearch.runner.attempt import Outcome
from nrl_autoresearch.runner.context import Context
from nrl_autoresearch.runner.followups import Followups
from nrl_autoresearch.runner.planner import Planner
from nrl_autoresearch.runner.recorder import Recorder
from nrl_autoresearch.runner.recovery import Recovery
from nrl_autoresearch.runner.screening import Screening
from nrl_autoresearch.runner.trial_runner import TrialRunner

POLL_S = 0.2


class Loop:
    def __init__(
        self,
        context: Context,
        planner: Planner,
        trials: TrialRunner,
        recorder: Recorder,
        followups: Followups,
        recovery: Recovery,
        screening: Screening,
        *,
        on_end: Callable[[], None] = lambda: None,
    ):
        self.context = context
        self.planner = planner
        self.trials = trials
        self.recorder = recorder
        self.followups = followups
        self.recovery = recovery
        self.screening = screening
        self.on_end = on_end  # the integrations, told when the loop ends
        self._active = 0  # worker threads busy with a group and its follow-ups (for --workers)
        self._failure: BaseException | None = None  # what stopped a worker from recording its rows

    def run(
        self, propose: Callable[[History], Hypothesis | None], *, workers: int = 1, max_runs: int | None = None
    ) -> stoprules.StopStatus:
        """The loop (the caller holds the campaign's writer lock)."""
        self.recovery.recover()
        if not self.context.baseline_rows():
            self.planner.check_may_launch()
            checks.check_preflight(self.context)
            self.supervise(self.planner.plan(self.planner.baseline_hypothesis()))
            if not self.planner.valid_baseline():
                self.recorder.checkpoint(
                    "handoff", "the baseline has no valid result: the loop stopped before any experiment"
                )
                raise BaselineCrashed(self.planner.baseline_diagnosis())
        self.rerun_interrupted()
        self.planner.require_valid_baseline()
        threads: list[threading.Event] = []
        try:
            self._propose_and_launch(propose, workers, max_runs, threads)
            self._join(threads)
            self._raise_failure()
        except KeyboardInterrupt:
            self.context.halt("interrupted by the person (Ctrl-C)")
            self._join(threads)
            self.recorder.checkpoint(
                "handoff", "the loop was interrupted (Ctrl-C); the running experiment was recorded as a crash"
            )
            raise
        self.recorder.checkpoint("handoff", "the loop ended; summary printed")
        self.on_end()
        return self.planner.status()

    def _propose_and_launch(
        self,
        propose: Callable[[History], Hypothesis | None],
        workers: int,
        max_runs: int | None,
        threads: list[threading.Event],
    ) -> None:
        launched = 0
        while not self.context.halt_reason and (max_runs is None or launched < max_runs):
            if self._halted_by_person() or self.planner.status().met:
                return
            with self.context.lock:
                ready = self._active < workers and self._may_start()
            if not ready:
                if not self._active and not self._may_start():
                    return
                self._wait_any(threads)
                continue
            hypothesis = propose(self.planner.history())  # outside the lock: the workers keep recording
            if hypothesis is None:
                self.context.say("no hypothesis left to try: the proposer is exhausted")
                return
            try:
                trials = self.planner.plan(hypothesis)
            except StopConditionMet:  # a worker's row used the room up while the proposer thought
                return
            threads.append(self._start_thread(trials))
            launched += 1

    def _may_start(self) -> bool:
        return self.planner.may_launch() and self.context.gpus.available()

    def _halted_by_person(self) -> bool:
        flag = self.context.control.get() or self.context.volume_full()
        if not flag:
            return False
        what = "ending the runs in flight" if flag == "stop" else "no new run starts"
        self.context.say(f"halted by the person ({flag}): {what}")
        if flag == "stop":
            self.context.halt("stopped by the person (autoresearch stop)")
        return True

    def rerun_interrupted(self, *, baseline_only: bool = False) -> list[Row]:
        """Re-run every interrupted run on its own commit, in a new row that says so, before a verdict needs it."""
        rows: list[Row] = []
        for trials in self.recovery.plan_reruns(baseline_only=baseline_only):
            self.context.say(f"re-running {len(trials)} interrupted run(s) of {trials[0].name} on {trials[0].branch}")
            rows += self.supervise(trials)
        return rows

    # -- worker threads ------------------------------------------------------------------------------
    def supervise(self, trials: list[Trial]) -> list[Row]:
        """Run a group in a worker thread so that Ctrl-C reaches this thread and ends it cleanly."""
        rows: list[Row] = []
        done = self._start_thread(trials, rows)
        try:
            self._join([done])
        except KeyboardInterrupt:
            self.context.halt("interrupted by the person (Ctrl-C)")
            self._join([done])
            raise
        self._raise_failure()
        return rows

    def execute(self, trials: list[Trial]) -> list[Row]:
        """Run a group (one configuration, one or more seeds) and record its rows; then its follow-ups.
        Whatever fails along the way, each run still gets its row (a crash with the reason) and the worktree is
        released; only a failure to write even that row (a full disk) is raised."""
        outcomes: list[Outcome] = []
        first = trials[0]
        commit, worktree = first.commit, None
        try:
            try:
                for trial in trials:
                    skip = self.context.halt_reason or _first_baseline_run_crashed(outcomes)
                    if skip:
                        outcomes.append(self.trials.not_run(trial, commit or trial.parent_commit, skip, worktree))
                        continue
                    outcome = self.trials.run(trial, commit, worktree)
                    commit, worktree = outcome.commit, outcome.worktree
                    outcomes.append(outcome)
                outcomes += self.followups.more_looks(outcomes)
                rows = self.recorder.record_group(outcomes)
            finally:
                self.context.settle({t.index for t in trials} | {o.trial.index for o in outcomes})
            self.recorder.diagnose(outcomes)
            rows += self.followups.fix_and_rerun(first, rows, worktree)
            rows += self.followups.confirm(first, rows, worktree)
        except Exception as err:
            if disk_full(err):
                raise
            rows = self.recorder.crash_rows(trials, commit, f"engine error: {type(err).__name__}: {err}")
        finally:
            self.trials.release(first, worktree, refused=commit in (None, first.parent_commit))
        return rows

    def _start_thread(self, trials: list[Trial], rows: list | None = None) -> threading.Event:
        """Run one group in a worker thread; the returned event is set when its rows are written. (Waiting on
        events, not Thread.join: a join interrupted by Ctrl-C can report a live thread as finished.)"""
        done = threading.Event()
        with self.context.lock:
            self._active += 1

        def work():
            try:
                written = (
                    self.screening.execute(trials[0], self.execute)
                    if self.screening.applies(trials)
                    else self.execute(trials)
                )  # --screen: a share of the steps first
                if rows is not None:
                    rows.extend(written)
            except Exception as err:  # rows could not even be written as crashes: stop, say why
                self._failure = err
                self.context.halt(f"stopped: experiment [{trials[0].index}] could not be recorded")
            finally:
                with self.context.lock:
                    self._active -= 1
                self.context.settle({r.index for r in self.context.rows()})
                done.set()

        threading.Thread(target=work, name=f"experiment-{trials[0].index}", daemon=True).start()
        return done

    def _raise_failure(self) -> None:
        """A worker that could not record its rows stops the command with one clear message."""
        err = self._failure
        if err is not None:
            raise fault_of(err) or Fault(
                f"an experiment could not be recorded ({type(err).__name__}: {err}); "
                "fix the cause, then run 'autoresearch resume'"
            ) from err

    @staticmethod
    def _join(workers: list[threading.Event]) -> None:
        for done in workers:
            while not done.wait(POLL_S):
                pass

    @staticmethod
    def _wait_any(workers: list[threading.Event]) -> None:
        pending = [d for d in workers if not d.is_set()]
        if pending:
            pending[0].wait(POLL_S)
        else:
            time.sleep(POLL_S)


def _first_baseline_run_crashed(outcomes: list[Outcome]) -> str | None:
    """The baseline's further repeats are not run after its first run crashed: they would crash alike and cost
    the budget; the diagnosis and a rerun come first."""
    first = outcomes[0] if outcomes else None
    if first is None or not first.trial.is_baseline or not first.crash_reason or first.interrupted:
        return None
    return f"not run: the baseline's first run [{first.trial.index}] crashed"
