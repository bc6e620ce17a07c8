"""Recovery: replay the journal of a campaign whose engine was killed, and finish what it left behind.

A run still in flight is reattached (its job id or process), a run that finished unwatched is read from its
outputs, a run that never started is recorded as a crash with reason `interrupted`; rows already written only
get their note or journal entry. Nothing is run twice and no row is written twice.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from nrl_autoresearch.core.errors import disk_full
from nrl_autoresearch.core.hypothesis import Hypothesis
from nrl_autoresearch.core.journal import Attempt
from nrl_autoresearch.core.judge import Reference
from nrl_autoresearch.core.launcher import Job, JobResult, JobState
from nrl_autoresearch.runner import reaper
from nrl_autoresearch.runner.attempt import Outcome, Plan

if TYPE_CHECKING:
    from nrl_autoresearch.runner.engine import Engine

def recover(engine: Engine) -> list[str]:
    """Replay the journal: finish or record every run a killed engine left behind, group by group; then
    release the clean worktrees it left. A torn last ledger line is repaired first."""
    found = [m for m in [engine.ledger.repair(engine.notes)] if m]
    pending = [a for a in sorted(engine.journal.attempts().values(), key=lambda a: a.index)
               if not a.done and a.index not in engine.in_flight]
    groups: dict[tuple[int, ...], list[Attempt]] = {}
    for attempt in pending:
        groups.setdefault(tuple(attempt.data.get("group") or [attempt.index]), []).append(attempt)
    found += [_guarded(engine, members) for members in groups.values()]
    found += _release_leftovers(engine)
    for message in found:
        engine.say(f"recovered: {message}")
    return found


def _guarded(engine: Engine, members: list[Attempt]) -> str:
    """Recover a group; a failure that would strike again on every replay (a name the file system refuses, a
    branch that clashes) makes the group's crash rows instead, so no later command meets it again."""
    try:
        return _group(engine, members)
    except Exception as err:
        if disk_full(err):
            raise
        reason = f"recovery failed: {type(err).__name__}: {err}"
        engine.crash_rows([plan_from(a) for a in members], members[0].data.get("commit"), reason)
        return f"run {', '.join(str(a.index) for a in members)}: {reason}"


def _release_leftovers(engine: Engine) -> list[str]:
    """Worktrees of finished attempts that a kill left behind; kept when anything uncommitted is in them,
    and a branch prepared by `autoresearch new` keeps its worktree for the person's edits."""
    attempts = engine.journal.attempts().values()
    busy = {a.data.get("branch") for a in attempts if not a.done}
    used = {a.data.get("name") for a in attempts}
    busy |= {engine.ws.branch(e["name"]) for e in engine.journal.events() if e["step"] == "prepared" and e["name"] not in used}
    released = []
    for branch, path in engine.ws.worktrees_under(engine.c.worktrees).items():
        if branch not in busy and engine.ws.release(path):
            released.append(f"released the leftover worktree of {branch}")
    return released


def _group(engine: Engine, members: list[Attempt]) -> str:
    plans = [plan_from(a) for a in members]
    written = {r.index: r for r in engine.rows()}
    outcomes, commit, worktree = [], None, None
    for attempt, plan in zip(members, plans):
        if plan.index in written:  # the row was written; only its note or journal entry may be missing
            engine.record(written[plan.index], extra={"recovered": True})
            continue
        commit = commit or _commit(engine, plan, attempt.data)
        worktree = worktree or (Path(attempt.data["worktree"]) if attempt.data.get("worktree") else None)
        outcomes.append(_run(engine, attempt, plan, commit, worktree))
    if outcomes:
        engine.record_group(outcomes)
    names = ", ".join(f"{p.index} ({p.name})" for p in plans)
    how = "; ".join(sorted({o.result.reason for o in outcomes})) or "rows already written"
    return f"run {names}: {how}"


def _run(engine: Engine, attempt: Attempt, plan: Plan, commit: str, worktree: Path | None) -> Outcome:
    """Reattach to a run still in flight, read one that finished unwatched, or record an interruption."""
    if attempt.step in ("launched", "launching", "finished"):
        job = _job(engine, attempt)
        if job is not None:
            engine.in_flight.add(plan.index)
            try:
                result = (_result_from(attempt.data["result"]) if attempt.step == "finished"
                          else job.wait(should_stop=engine.watch(plan, job, worktree)))
            finally:
                engine.in_flight.discard(plan.index)
                _end_marked(engine, attempt.data.get("marker"))
            return engine.measure(plan, commit, job, result, worktree)
    return engine.not_run(plan, commit, f"interrupted: the engine stopped during step '{attempt.step}'", worktree)


def _commit(engine: Engine, plan: Plan, d: dict) -> str:
    """The attempt's own commit: recorded, or the branch head if it moved, or an empty marker commit."""
    if d.get("commit"):
        return d["commit"]
    if plan.is_baseline:
        return engine.ws.ensure_baseline(plan.parent_commit)
    head = engine.ws.commit_of(plan.branch)
    if head and head != plan.parent_commit:
        return head
    worktree = engine.ws.create(plan.name, plan.parent_commit)
    marker = engine.ws.commit(worktree, [], f"{plan.name}: interrupted before its change was committed\n",
                              allow_empty=True)
    engine.journal.record("committed", plan.index, commit=marker, uncommitted=True)  # a rerun applies it anew
    return marker


def _job(engine: Engine, attempt: Attempt) -> Job | None:
    d = attempt.data
    if attempt.step == "finished" or "job" in d:
        job = engine.launcher.reattach(d["job"]) if "job" in d else None
        if job is not None:
            return job
        if attempt.step == "finished" or d.get("log_path"):
            return _FinishedJob(d)
    _end_marked(engine, d.get("marker"))
    return None


def _end_marked(engine: Engine, marker: str | None) -> None:
    """Processes of the run that outlived it (escaped its group, or orphaned by the killed engine)."""
    reaper.end(reaper.marked(marker), engine.c.launcher.get("grace_s", reaper.GRACE_S))


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
        return JobResult(JobState.COMPLETED, None, "finished while the engine was down (exit code unknown)",
                         max(0.0, end - self._started))

    def cancel(self, reason: str) -> None:
        return None

    def handle(self) -> dict:
        return {}


def plan_from(attempt: Attempt) -> Plan:
    """A plan as its journal intent recorded it."""
    d = attempt.data
    ref = d.get("reference")
    return Plan(attempt.index, d["name"], d["run"], d["branch"], d["parent"], d["parent_commit"],
                Reference(ref["label"], tuple(ref["values"]), tuple(ref["seeds"])) if ref else None,
                Hypothesis(**d["hypothesis"]),
                d.get("effective") or {}, d.get("seed"), tuple(d.get("group") or [attempt.index]), d.get("role", ""))


def _result_from(data: dict) -> JobResult:
    return JobResult(**{**data, "state": JobState(data["state"])})
