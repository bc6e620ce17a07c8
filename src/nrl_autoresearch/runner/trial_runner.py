"""The path of one run: worktree on its branch, the change applied and committed, launched with its limit,
watched (Ctrl-C, 'autoresearch stop', live progress, divergence, stall, pruning), and measured. Each step is
journaled before its effect can be lost. A failure anywhere is an outcome, never an exception: the run consumed
its index and must still become a row."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from nrl_autoresearch.core import stoprules
from nrl_autoresearch.core.errors import disk_full
from nrl_autoresearch.core.judge import curve_jitter
from nrl_autoresearch.core.launcher import Job, JobResult, JobState, RunSpec
from nrl_autoresearch.core.metric import Census, RunOutputs, aggregate
from nrl_autoresearch.core.progress import run_line
from nrl_autoresearch.core.redact import redact
from nrl_autoresearch.core.trial import Trial
from nrl_autoresearch.launchers.reaper import RUN_MARKER
from nrl_autoresearch.runner import brev, screening
from nrl_autoresearch.runner.attempt import Outcome
from nrl_autoresearch.runner.context import Context
from nrl_autoresearch.runner.curves import full_run_curves
from nrl_autoresearch.runner.planner import Planner
from nrl_autoresearch.runner.recorder import Recorder
from nrl_autoresearch.runner.watch import (
    PruneRule,
    RunWatch,
    save_curve,
)


class TrialRunner:
    def __init__(self, context: Context, planner: Planner, recorder: Recorder):
        self.context = context
        self.planner = planner
        self.recorder = recorder

    def run(self, trial: Trial, commit: str | None, worktree: Path | None) -> Outcome:
        """Branch and commit (first run of a group), launch, wait, measure. Never raises: a failure is an outcome."""
        context, journal = self.context, self.context.journal
        job = None
        try:
            if commit is None:
                workspace = context.workspace
                start = workspace.ensure_baseline(trial.parent_commit) if trial.is_baseline else trial.parent_commit
                worktree = workspace.create(trial.name, start)
                journal.record("branch", trial.index, worktree=str(worktree))
                change = trial.hypothesis.summary() or "unmodified recipe"
                self.recorder.checkpoint(
                    "before edit", f"[{trial.index}] {trial.name} from {trial.parent}: {change}", passing=True
                )
                commit = self._commit(trial, worktree)
                self.recorder.checkpoint("after edit", f"[{trial.index}] {trial.branch} at {commit[:10]}", passing=True)
            else:
                worktree = worktree or context.workspace.create(trial.name, commit)
                journal.record("branch", trial.index, worktree=str(worktree))
            journal.record("committed", trial.index, commit=commit)
            if trial.hypothesis.failure:
                result = JobResult(JobState.FAILED, None, trial.hypothesis.failure, 0.0)
            else:
                self.recorder.say_sentence()
                job = self._launch(trial, worktree)
                result = job.wait(should_stop=self.watch(trial, job, worktree))
                if context.progress is not None:
                    context.progress.done(trial.run)
        except Exception as err:  # the run consumed its index: it must still become a row
            reason = f"engine error: {type(err).__name__}: {err}"
            if job is not None:
                job.cancel(reason)
            result = JobResult(JobState.FAILED, None, reason, 0.0)
        finally:
            context.gpus.give_back(trial.index)
        journal.record("finished", trial.index, result=result_record(result))
        return self._measured(trial, commit or trial.parent_commit, job, result, worktree)

    def not_run(self, trial: Trial, commit: str, reason: str, worktree: Path | None) -> Outcome:
        """A trial that never ran: its row says why."""
        return Outcome(
            trial,
            commit,
            JobResult(JobState.CANCELLED, None, reason, 0.0),
            worktree=worktree,
            log_path=self.context.log_of(trial),
        )

    def release(self, trial: Trial, worktree: Path | None, *, refused: bool) -> None:
        """Release the worktree; when its commit never happened, what is in it is the engine's own change (unless
        the person edited it after `autoresearch new`), reproducible from the journal, and goes with it."""
        if worktree is None:
            return
        discard = refused and not self.planner.hand_edited(trial.name)
        if not self.context.workspace.release(worktree, discard=discard):
            self.context.say(f"[{trial.index}] kept worktree {self.context.rel(worktree)}: the run left files in it")

    def _commit(self, trial: Trial, worktree: Path) -> str:
        workspace = self.context.workspace
        if trial.is_baseline:
            return workspace.ensure_baseline(trial.parent_commit)
        h = trial.hypothesis
        if h.failure:
            return workspace.commit(
                worktree, [], redact(f"{h.name}: failed before running ({h.failure})\n"), allow_empty=True
            )
        paths = workspace.hand_edits(worktree)
        paths += self.context.recipe.apply(worktree, h.sets)
        if h.patch:
            paths += workspace.apply_patch(worktree, Path(h.patch))
        if h.edit is not None:
            h.edit(worktree)
            paths += workspace.changed_paths(worktree)
        paths = list(dict.fromkeys(paths))
        title = h.description or h.summary() or h.name
        body = "\n".join(f"- {k} = {v}" for k, v in h.sets.items())
        message = (
            f"{h.name}: {title}\n\n{body}\n\nautoresearch: campaign {self.context.campaign.name}, "
            f"experiment {trial.index}\n"
        )
        if not paths:
            message = f"{h.name}: {title} (no change produced)\n"
        return workspace.commit(worktree, paths, redact(message), allow_empty=not paths)

    def _launch(self, trial: Trial, worktree: Path) -> Job:
        context, campaign = self.context, self.context.campaign
        run_dir = campaign.run_dir(trial.run)
        run_dir.mkdir(parents=True, exist_ok=True)
        _set_aside(run_dir / "run.log")
        Census.take(run_dir, worktree).save(context.census_path(trial))
        limit = stoprules.run_limit(campaign.rules, now=time.time())
        launch = context.recipe.launch(worktree, run_dir, limit)
        argv = launch.argv + (context.recipe.seed_args(worktree, trial.seed) if trial.seed is not None else [])
        argv += screening.launch_args(context.recipe, worktree, trial)
        marker = f"{campaign.dir}#{trial.index}"
        volume = brev.prepare(campaign.options["brev"], run_dir) if campaign.options.get("brev") else {}
        env = {**launch.env, **volume}
        spec = RunSpec(
            name=context.job_name(trial.index),
            argv=argv,
            cwd=launch.cwd,
            log_path=run_dir / "run.log",
            run_dir=run_dir,
            env={**env, RUN_MARKER: marker},
            timeout_s=limit,
            gpus=context.gpus.take(trial.index),
        )
        context.journal.record("launching", trial.index, marker=marker, job_name=spec.name, run_dir=str(run_dir))
        self.recorder.checkpoint(
            "before launch", f"[{trial.index}] {redact(' '.join(argv))} on {context.launcher.name}", passing=True
        )
        job = context.launcher.submit(spec)
        context.journal.record(
            "launched",
            trial.index,
            job=job.handle(),
            job_id=job.job_id,
            command=job.command,
            log_path=str(job.log_path),
        )
        log = context.rel(job.log_path)
        self.recorder.checkpoint("after launch", f"[{trial.index}] job {job.job_id}, log {log}")
        context.say(f"[{trial.index}] launched {trial.name} on {context.launcher.name} (job {job.job_id}), log {log}")
        return job

    def watch(self, trial: Trial, job: Job, worktree: Path | None) -> Callable[[], str | None]:
        """Polled while a run is in flight: Ctrl-C, `autoresearch stop`, live progress, the 30-minute checkpoint."""
        context = self.context
        started = time.time()
        outputs = context.outputs(trial, job.log_path, worktree)
        watch = RunWatch(
            context.source,
            outputs,
            context.campaign.objective.metric_name,
            context.campaign.options.get("stall", "auto"),
            self._prune_rule(trial),
        )

        def check() -> str | None:
            if context.halt_reason:
                return context.halt_reason
            if context.control.get() == "stop":
                return "stopped by the person (autoresearch stop)"
            if context.progress is not None and context.progress.due(trial.run):
                context.progress.show(trial.run, self._progress_line(trial, outputs, started))
            if context.memory.due():
                self.recorder.checkpoint(
                    "periodic",
                    f"[{trial.index}] {trial.name} running for {stoprules.format_duration(time.time() - started)}",
                )
            return watch.check(running=lambda: job.state() == JobState.RUNNING)

        return check

    def _prune_rule(self, trial: Trial) -> PruneRule | None:
        """--prune: the curves of the reference's valid, unpruned runs (first runs of a hypothesis only: looks,
        repeats, confirmations and reruns always run in full)."""
        campaign = self.context.campaign
        if not campaign.options.get("prune") or trial.is_baseline or trial.role:
            return None
        curves = full_run_curves(self.context, trial.parent_commit)
        spread = self.planner.spread()
        return PruneRule(curves, spread.sd if spread else None, campaign.objective.maximize) if curves else None

    def _progress_line(self, trial: Trial, outputs: RunOutputs, started: float) -> str:
        context, objective = self.context, self.context.campaign.objective
        reading = context.source.read(outputs)
        metric = f"{objective.metric_name} {reading.points[-1].value:.4g}" if reading and reading.points else None
        top = context.best_row()
        best = f"best {top.metric_value:.6g}" if top else "no keep yet"
        run = run_line(
            f"[{trial.index}] {trial.name}",
            time.time() - started,
            context.source.progress(outputs),
            metric,
            stoprules.run_limit(context.campaign.rules, now=started),
        )
        return f"{run} | {best}; {self.planner.status().sentence}"

    def _measured(
        self, trial: Trial, commit: str, job: Job | None, result: JobResult, worktree: Path | None
    ) -> Outcome:
        """The run measured; a reader that fails on its outputs (a metric too large for a float) makes it a crash
        that still knows its commit and worktree."""
        try:
            return self.measure(trial, commit, job, result, worktree)
        except Exception as err:
            if disk_full(err):
                raise
            failed = JobResult(
                JobState.FAILED,
                result.exit_code,
                f"engine error reading the run's outputs: {type(err).__name__}: {err}",
                result.run_s,
            )
            return Outcome(
                trial,
                commit,
                failed,
                job.job_id if job else "none",
                job.command if job else "",
                job.log_path if job else self.context.log_of(trial),
                worktree=worktree,
            )

    def measure(self, trial: Trial, commit: str, job: Job | None, result: JobResult, worktree: Path | None) -> Outcome:
        """The run's objective, memory, failure and ending, read from its outputs."""
        context, objective = self.context, self.context.campaign.objective
        log_path = job.log_path if job else context.log_of(trial)
        outputs = context.outputs(trial, log_path, worktree)
        source = context.source
        reading = source.read(outputs)
        if reading:
            save_curve(context.campaign.run_dir(trial.run), reading.points)
        value = aggregate(reading.points, objective.aggregate, maximize=objective.maximize) if reading else None
        return Outcome(
            trial,
            commit,
            result,
            job.job_id if job else "none",
            job.command if job else "",
            log_path,
            value,
            source.memory_gb(outputs) or result.peak_memory_gb,
            reading.source if reading else f"nothing found by {source}",
            (reading.problem if reading else None) or source.failure(outputs),
            source.ending(outputs),
            worktree,
            curve_jitter([p.value for p in reading.points]) if reading else None,
        )


def result_record(result: JobResult) -> dict:
    """A job's result as the journal's `finished` step holds it."""
    data = asdict(result)
    data["state"] = result.state.value
    return data


def result_from_record(data: dict) -> JobResult:
    return JobResult(**{**data, "state": JobState(data["state"])})


def _set_aside(log: Path) -> None:
    """Every run starts a fresh log; one already there (planted, or left by an earlier campaign) is kept aside."""
    if log.exists():
        log.rename(log.with_name(f"{log.name}.before-{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 10**6}"))
