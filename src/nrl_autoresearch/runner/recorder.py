"""What a finished run leaves behind: its verdict (core/verdict.py's rule), the ledger row, its git note, the
journal's row step, the notes and session memory, the console lines, and the integrations told of the row.

Ledger row, then note, then journal: a replay finds whichever step a kill interrupted and completes it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from nrl_autoresearch.core.judge import Z_DEFAULT, Verdict
from nrl_autoresearch.core.ledger import STOPPED_EARLY, Row
from nrl_autoresearch.core.names import BASELINE
from nrl_autoresearch.core.redact import redact
from nrl_autoresearch.core.session import Moment
from nrl_autoresearch.core.trial import Trial
from nrl_autoresearch.core.verdict import group_verdict, row_status, seed_key
from nrl_autoresearch.runner import triage
from nrl_autoresearch.runner.attempt import Outcome
from nrl_autoresearch.runner.context import Context, tail
from nrl_autoresearch.runner.planner import Planner

TAIL_LINES = 20


class Recorder:
    def __init__(
        self, context: Context, planner: Planner, *, on_row: Callable[[Row, dict], None] = lambda row, extra: None
    ):
        self.context = context
        self.planner = planner
        self.on_row = on_row  # the integrations, told of every new row (not of one a replay completes)
        self._said: str | None = None  # the last stop sentence said

    # -- console and session memory ------------------------------------------------------------------
    def checkpoint(self, kind: str, text: str, *, passing: bool = False) -> None:
        journal = self.context.journal
        in_flight = [
            a.data.get("name", str(a.index)) for i in sorted(self.context.in_flight) if (a := journal.attempt(i))
        ]
        steering = [e["text"] for e in journal.events("steer")]
        moment = Moment(
            self.context.rows(),
            self.planner.status(),
            in_flight,
            steering,
            self.context.workspace.user_branch() or "(detached)",
        )
        self.context.memory.checkpoint(kind, text, moment, passing=passing)

    def say_sentence(self) -> None:
        """The stop sentence, before and after every run; not again when the last one said is the same."""
        sentence = self.planner.status().sentence
        if sentence != self._said:
            self.context.say(sentence)
        self._said = sentence

    def steer(self, text: str, *, replace_objective: bool = False) -> None:
        """Record follow-up steering: additive, unless the person explicitly replaces the objective."""
        if replace_objective:
            self.context.campaign = self.context.campaign.with_options(goal=redact(text))
            self.context.campaign.save()
        self.context.journal.record("steer", text=text, replace=replace_objective)
        self.checkpoint(
            "direction change", ("objective replaced: " if replace_objective else "steering (additive): ") + text
        )

    # -- rows ----------------------------------------------------------------------------------------
    def record_group(self, outcomes: list[Outcome]) -> list[Row]:
        """One verdict for the group's valid runs (with the configuration's earlier runs, as a confirmation
        has), one row per run in index order; runs without a valid metric are crash rows."""
        rows = []
        verdict = self._verdict(outcomes)
        held = self.planner.gpus_held()
        for o in outcomes:
            pruned = o.result.reason if o.result.reason.startswith(STOPPED_EARLY) else None
            status, note, measured = row_status(
                verdict, crash_reason=o.crash_reason, pruned_reason=pruned, crash_note=partial(self._crash_note, o)
            )
            row = self._row(o, status, note, measured)
            self.record(
                row,
                extra={
                    "queue_s": o.result.queue_s,
                    "metric_source": o.source,
                    "end": o.result.reason,
                    "run": o.trial.run,
                    "ending": o.ending,
                    "seed": o.trial.seed,
                    "interrupted": o.interrupted,
                    "jitter": o.jitter,
                    "gpus": held,
                    "gpu_hours": o.result.run_s / 3600 * held,
                    "pruned": pruned is not None,
                },
            )
            if status == "crash":
                self._note_crash(o.trial, o.log_path, note)
            self._remember(o.trial, row)
            rows.append(row)
        return rows

    def _row(self, o: Outcome, status: str, note: str, measured: bool) -> Row:
        role = o.trial.role + (f", seed {o.trial.seed}" if o.trial.seed is not None else "") if o.trial.role else ""
        return Row(
            index=o.trial.index,
            branch=o.trial.branch,
            parent_commit=o.trial.parent_commit,
            commit=o.commit,
            recipe=self.context.recipe.label,
            metric_name=self.context.campaign.objective.metric_name,
            metric_value=o.value if measured else None,
            memory_gb=o.memory if measured else None,
            elapsed_min=o.result.run_s / 60,
            launcher=self.context.launcher.name,
            job_id=o.job_id,
            command=o.command,
            log_path=self.context.rel(o.log_path or self.context.log_of(o.trial)),
            status=status,
            description=f"{o.trial.what}{f' ({role})' if role else ''}; {note}",
        )

    def _verdict(self, outcomes: list[Outcome]) -> Verdict:
        trial, commit = outcomes[0].trial, outcomes[0].commit
        new = [(seed_key(o.trial.seed), o.value) for o in outcomes if not o.crash_reason and o.value is not None]
        objective = self.context.campaign.objective
        return group_verdict(
            trial,
            self.planner.runs_of(commit),
            new,
            maximize=objective.maximize,
            min_delta=self.context.campaign.min_delta,
            spread=self.planner.spread(commit, [v for _, v in new]),
            z=self.context.campaign.options.get("z", Z_DEFAULT),
            simplifies=lambda: self._simplifies(trial, commit),
        )

    def record(self, row: Row, extra: dict) -> None:
        """Ledger row, then its note, then the journal: replay finds whichever step a kill interrupted."""
        written = next((r for r in self.context.rows() if r.index == row.index), None)
        line = written.to_line() if written is not None else self.context.ledger.append(row)
        with self.context.workspace.locked():
            self.context.notes.add(
                row.commit, line, campaign=self.context.campaign.name, extra=extra, new=written is None
            )
        self.context.journal.record(
            "row",
            row.index,
            status=row.status,
            commit=row.commit,
            interrupted=bool(extra.get("interrupted")),
            jitter=extra.get("jitter"),
            gpu_hours=extra.get("gpu_hours", 0.0),
            pruned=bool(extra.get("pruned")),
        )
        if written is None:
            self.on_row(row, extra)

    def crash_rows(self, trials: list[Trial], commit: str | None, reason: str) -> list[Row]:
        """Crash rows built from the trials alone, for runs whose measuring or recording failed; rows already
        written stay as they are. Nothing else is read, so the same failure cannot strike twice."""
        written = {r.index: r for r in self.context.rows()}
        rows = []
        for trial in trials:
            if trial.index in written:
                rows.append(written[trial.index])
                continue
            row = Row(
                index=trial.index,
                branch=trial.branch,
                parent_commit=trial.parent_commit,
                commit=commit or trial.parent_commit,
                recipe=self.context.recipe.label,
                metric_name=self.context.campaign.objective.metric_name,
                metric_value=None,
                memory_gb=None,
                elapsed_min=0.0,
                launcher=self.context.launcher.name,
                job_id="none",
                command="",
                log_path="none",
                status="crash",
                description=f"{trial.what}; crash: {reason}",
            )
            self.record(row, extra={"end": reason, "run": trial.run})
            self.context.say(progress_text(row))
            rows.append(row)
        return rows

    def complete(self, row: Row) -> None:
        """A row a kill left written: only its note or journal entry may be missing."""
        self.record(row, extra={"recovered": True})

    # -- notes ---------------------------------------------------------------------------------------
    def diagnose(self, outcomes: list[Outcome]) -> None:
        """Symptoms of each run go to the notes, the session and the journal (the catalog reads their areas)."""
        for o in outcomes:
            if o.log_path is None or not o.log_path.exists():
                continue
            outputs = self.context.outputs(o.trial, o.log_path, o.worktree)
            found = triage.diagnose(
                outputs, max_new_tokens=self.context.recipe.max_new_tokens(o.worktree or self.context.campaign.repo)
            )
            if not found:
                continue
            self.context.journal.record(
                "diagnosis",
                index=None,
                run=o.trial.index,
                areas=[f.area for f in found],
                symptoms=[f.detail for f in found],
            )
            text = f"[{o.trial.index}] {o.trial.name}: " + "; ".join(f.detail for f in found)
            self._append_notes(f"\n## symptoms of {text}\n")
            self.checkpoint("diagnosis", text)

    def _remember(self, trial: Trial, row: Row) -> None:
        """Session memory after a result: the files it generated and changed, a checkpoint, the progress lines."""
        changed = trial.hypothesis.sets or trial.hypothesis.patch
        self.context.memory.file(
            "Generated",
            row.log_path,
            f"run log of [{row.index}] {trial.name} ({row.status})",
            *([("Changed", trial.branch, f"[{row.index}] {trial.hypothesis.summary()}")] if changed else []),
        )
        self.checkpoint("result", progress_text(row))
        self.context.say(progress_text(row))
        self.say_sentence()

    def _crash_note(self, o: Outcome) -> str:
        """A crash in the row and on the console: what ended it, its log's error line, where to read more."""
        log = o.log_path or self.context.log_of(o.trial)
        why = o.crash_reason
        if o.value is None and o.result.succeeded and not o.failure:
            why = f"no {self.context.campaign.objective.metric_name} found ({self.context.source})"
        error = None if o.result.succeeded else triage.error_line(tail(log).splitlines())
        notes = self.context.rel(self.context.campaign.dir / "notes.md")
        return f"crash: {why}" + (f": {error}" if error else "") + f"; log {self.context.rel(log)}, its tail in {notes}"

    def _note_crash(self, trial: Trial, log_path: Path | None, why: str) -> None:
        log = log_path or self.context.log_of(trial)
        lines = log.read_text(errors="replace").splitlines()[-TAIL_LINES:] if log.exists() else ["(no log)"]
        self._append_notes(
            f"\n## {trial.index} {trial.name}: crash\n\n{why}\n\nLast lines of {self.context.rel(log)}:"
            "\n\n```\n" + "\n".join(lines) + "\n```\n"
        )

    def _append_notes(self, text: str) -> None:
        with (self.context.campaign.dir / "notes.md").open("a") as fh:
            fh.write(redact(text))

    def _simplifies(self, trial: Trial, commit: str) -> bool:
        """Smaller diff than the parent (against the baseline), or a change that removes more than it adds."""
        workspace = self.context.workspace
        base = workspace.commit_of(workspace.branch(BASELINE))
        if base is None or commit == trial.parent_commit:
            return False
        smaller = workspace.diff_size(base, commit) < workspace.diff_size(base, trial.parent_commit)
        return smaller or workspace.net_lines(trial.parent_commit, commit) < 0


def progress_text(row: Row) -> str:
    """A recorded row as the console shows it."""
    value = "—" if row.status == "crash" else f"{row.metric_value:.6g}"
    return (
        f"[{row.index}] {row.status:<7} {row.branch.rsplit('/', 1)[1]}  {row.metric_name}={value}  "
        f"{row.elapsed_min:.1f} min  {row.description}"
    )
