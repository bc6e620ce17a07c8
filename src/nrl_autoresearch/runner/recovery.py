"""Recovery: replay the journal of a campaign whose engine was killed, and finish what it left behind.

A run still in flight is reattached (its job id or process), a run that finished unwatched is read from its
outputs, a run that never started is recorded as a crash with reason `interrupted`; rows already written only
get their note or journal entry. Nothing is run twice and no row is written twice.
"""

from __future__ import annotations

import time
from pathlib import Path

from nrl_autoresearch.core.errors import disk_full
from nrl_autoresearch.core.journal import Attempt
from nrl_autoresearch.core.launcher import Job, JobResult, JobState
from nrl_autoresearch.core.names import BASELINE
from nrl_autoresearch.core.trial import Trial
from nrl_autoresearch.launchers import reaper
from nrl_autoresearch.runner.attempt import Outcome
from nrl_autoresearch.runner.context import Context
from nrl_autoresearch.runner.planner import Planner
from nrl_autoresearch.runner.recorder import Recorder
from nrl_autoresearch.runner.trial_runner import TrialRunner, result_from_record


class Recovery:
    def __init__(self, context: Context, planner: Planner, trials: TrialRunner, recorder: Recorder):
        self.context = context
        self.planner = planner
        self.trials = trials
        self.recorder = recorder

    def recover(self) -> list[str]:
        """Replay the journal: finish or record every run a killed engine left behind, group by group; then
        release the clean worktrees it left. A torn last ledger line is repaired first."""
        context = self.context
        found = [m for m in [context.ledger.repair(context.notes)] if m]
        in_flight = context.in_flight
        pending = [
            a
            for a in sorted(context.journal.attempts().values(), key=lambda a: a.index)
            if not a.done and a.index not in in_flight
        ]
        groups: dict[tuple[int, ...], list[Attempt]] = {}
        for attempt in pending:
            groups.setdefault(tuple(attempt.data.get("group") or [attempt.index]), []).append(attempt)
        found += [self._guarded(members) for members in groups.values()]
        found += self._release_leftovers()
        for message in found:
            context.say(f"recovered: {message}")
        return found

    def owed_reruns(self, *, baseline_only: bool = False) -> list[Attempt]:
        """Interrupted runs not re-run yet, the baseline's first (the spread rests on them)."""
        attempts = self.context.journal.attempts()
        settled = {a.data.get("rerun_of") for a in attempts.values()}
        owed = [
            a
            for a in attempts.values()
            if a.done
            and a.data.get("interrupted")
            and a.index not in settled
            and a.data.get("commit")
            and (not baseline_only or a.data.get("name") == BASELINE)
        ]
        return sorted(owed, key=lambda a: (a.data.get("name") != BASELINE, a.index))

    def plan_reruns(self, *, baseline_only: bool = False) -> list[list[Trial]]:
        """A rerun trial for every interrupted run, on its own commit, grouped as the interrupted runs were (they
        are judged together again), while the stop rules leave room."""
        groups: dict[tuple, list[Trial]] = {}
        for attempt in self.owed_reruns(baseline_only=baseline_only):
            if not self.planner.may_launch():
                self.context.say(
                    f"no room left to re-run the interrupted run [{attempt.index}]: {self.planner.status().sentence}"
                )
                break
            original = attempt.trial
            if not original.is_baseline and original.reference is not None:
                fresh = (
                    self.planner.reference(original.reference.label, original.parent_commit)
                    or self.planner.baseline_reference()
                )
                original = original.with_reference(fresh)
            commit = None if attempt.data.get("uncommitted") else attempt.data["commit"]  # None: apply the change anew
            trial = self.planner.plan_again(
                original, commit, f"rerun of [{attempt.index}] (interrupted)", seeded=False, rerun_of=attempt.index
            )
            groups.setdefault(original.group, []).append(trial)
        return list(groups.values())

    def _guarded(self, members: list[Attempt]) -> str:
        """Recover a group; a failure that would strike again on every replay (a name the file system refuses, a
        branch that clashes) makes the group's crash rows instead, so no later command meets it again."""
        try:
            return self._group(members)
        except Exception as err:
            if disk_full(err):
                raise
            reason = f"recovery failed: {type(err).__name__}: {err}"
            self.recorder.crash_rows([a.trial for a in members], members[0].data.get("commit"), reason)
            return f"run {', '.join(str(a.index) for a in members)}: {reason}"

    def _release_leftovers(self) -> list[str]:
        """Worktrees of finished attempts that a kill left behind; kept when anything uncommitted is in them,
        and a branch prepared by `autoresearch new` keeps its worktree for the person's edits."""
        context, workspace = self.context, self.context.workspace
        attempts = context.journal.attempts().values()
        busy = {a.data.get("branch") for a in attempts if not a.done}
        used = {a.data.get("name") for a in attempts}
        busy |= {workspace.branch(e["name"]) for e in context.journal.events("prepared") if e["name"] not in used}
        released = []
        for branch, path in workspace.worktrees_under(context.campaign.worktrees).items():
            if branch not in busy and workspace.release(path):
                released.append(f"released the leftover worktree of {branch}")
        return released

    def _group(self, members: list[Attempt]) -> str:
        trials = [a.trial for a in members]
        written = {r.index: r for r in self.context.rows()}
        outcomes: list[Outcome] = []
        commit: str | None = None
        worktree: Path | None = None
        for attempt, trial in zip(members, trials, strict=True):
            if trial.index in written:  # the row was written; only its note or journal entry may be missing
                self.recorder.complete(written[trial.index])
                continue
            commit = commit or self._commit(trial, attempt.data)
            worktree = worktree or (Path(attempt.data["worktree"]) if attempt.data.get("worktree") else None)
            outcomes.append(self._run(attempt, trial, commit, worktree))
        if outcomes:
            self.recorder.record_group(outcomes)
        names = ", ".join(f"{t.index} ({t.name})" for t in trials)
        how = "; ".join(sorted({o.result.reason for o in outcomes})) or "rows already written"
        return f"run {names}: {how}"

    def _run(self, attempt: Attempt, trial: Trial, commit: str, worktree: Path | None) -> Outcome:
        """Reattach to a run still in flight, read one that finished unwatched, or record an interruption."""
        if attempt.step in ("launched", "launching", "finished"):
            job = self._job(attempt)
            if job is not None:
                self.context.reserve(trial.index)
                try:
                    result = (
                        result_from_record(attempt.data["result"])
                        if attempt.step == "finished"
                        else job.wait(should_stop=self.trials.watch(trial, job, worktree))
                    )
                finally:
                    self.context.settle([trial.index])
                    self._end_marked(attempt.data.get("marker"))
                return self.trials.measure(trial, commit, job, result, worktree)
        return self.trials.not_run(
            trial, commit, f"interrupted: the engine stopped during step '{attempt.step}'", worktree
        )

    def _commit(self, trial: Trial, d: dict) -> str:
        """The attempt's own commit: recorded, or the branch head if it moved, or an empty marker commit."""
        if d.get("commit"):
            return d["commit"]
        workspace = self.context.workspace
        if trial.is_baseline:
            return workspace.ensure_baseline(trial.parent_commit)
        head = workspace.commit_of(trial.branch)
        if head and head != trial.parent_commit:
            return head
        worktree = workspace.create(trial.name, trial.parent_commit)
        marker = workspace.commit(
            worktree, [], f"{trial.name}: interrupted before its change was committed\n", allow_empty=True
        )
        # uncommitted: a rerun applies the change anew
        self.context.journal.record("committed", trial.index, commit=marker, uncommitted=True)
        return marker

    def _job(self, attempt: Attempt) -> Job | None:
        d = attempt.data
        if attempt.step == "finished" or "job" in d:
            job = self.context.launcher.reattach(d["job"]) if "job" in d else None
            if job is not None:
                return job
            if attempt.step == "finished" or d.get("log_path"):
                return _FinishedJob(d)
        self._end_marked(d.get("marker"))
        return None

    def _end_marked(self, marker: str | None) -> None:
        """Processes of the run that outlived it (escaped its group, or orphaned by the killed engine)."""
        reaper.end(reaper.marked(marker), self.context.campaign.launcher.get("grace_s", reaper.GRACE_S))


class _FinishedJob(Job):
    """A run that ended while no engine watched it: its outputs are all that is left to read."""

    def __init__(self, d: dict):
        self.job_id = d.get("job_id", "none")
        self.log_path = Path(d.get("log_path") or Path(d["run_dir"]) / "run.log")
        self.command = d.get("command", "")
        self._started = (d.get("job") or {}).get("started_at", time.time())

    def state(self) -> JobState:
        return JobState.COMPLETED

    def wait(self, poll_s: float = 0.5, should_stop=None) -> JobResult:
        end = self.log_path.stat().st_mtime if self.log_path.exists() else time.time()
        return JobResult(
            JobState.COMPLETED,
            None,
            "finished while the engine was down (exit code unknown)",
            max(0.0, end - self._started),
        )

    def cancel(self, reason: str) -> None:
        return None

    def handle(self) -> dict:
        return {}
