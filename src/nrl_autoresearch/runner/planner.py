"""What runs next: the stop rules' room, the trials of a hypothesis (indexes, branch name, seeds, parent and
reference) reserved durably before anything is created, and the references and spread a verdict needs."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from nrl_autoresearch.core import stoprules
from nrl_autoresearch.core.campaign import RESERVED, Campaign
from nrl_autoresearch.core.errors import StopConditionMet, UsageError
from nrl_autoresearch.core.git import Snapshot
from nrl_autoresearch.core.hypothesis import Hypothesis, norm, same_settings
from nrl_autoresearch.core.journal import Attempt
from nrl_autoresearch.core.judge import SEED_BASE, Reference, Spread, valid
from nrl_autoresearch.core.ledger import Row, is_pruned
from nrl_autoresearch.core.names import BASELINE, validate_name
from nrl_autoresearch.core.trial import Trial
from nrl_autoresearch.core.verdict import campaign_spread, seed_key
from nrl_autoresearch.runner.context import Context, tail

if TYPE_CHECKING:
    from nrl_autoresearch.core.history import History


class Planner:
    def __init__(self, context: Context):
        self.context = context
        self._held: float | None = None

    @property
    def campaign(self) -> Campaign:
        return self.context.campaign

    # -- the stop rules ------------------------------------------------------------------------------
    def status(self) -> stoprules.StopStatus:
        top = self.context.best_row()
        return stoprules.status(
            self.campaign.rules,
            attempted=len(self.context.rows()),
            now=time.time(),
            best=top.metric_value if top else None,
            **self._compute(),
        )

    def room(self, wanted: int = 1) -> int:
        """How many of `wanted` runs the stop rules let start now; reserved runs in flight count."""
        rows = self.context.rows()
        top = self.context.best_row()
        return stoprules.room(
            self.campaign.rules,
            attempted=len(rows),
            in_flight=self._pending(rows),
            now=time.time(),
            best=top.metric_value if top else None,
            wanted=wanted,
            **self._compute(),
        )

    def hypotheses_room(self, reruns_owed: int) -> int | None:
        """How many hypotheses the count rule leaves after the baseline runs still owed and `reruns_owed`
        re-runs of interrupted runs, which go first (None: no count rule)."""
        limit = self.campaign.rules.max_experiments
        if limit is None:
            return None
        baseline_owed = max(0, self.campaign.options.get("baseline_repeats", 1) - len(self.context.baseline_rows()))
        return max(0, limit - len(self.context.rows()) - baseline_owed - reruns_owed)

    def may_launch(self) -> bool:
        return self.room() > 0

    def check_may_launch(self) -> None:
        if not self.may_launch():
            raise StopConditionMet(self.status().sentence)

    def _pending(self, rows: list[Row]) -> int:
        """Runs reserved or in flight whose rows are not written yet (a written row already counts as attempted)."""
        return len(self.context.in_flight - {r.index for r in rows})

    def _compute(self) -> dict:
        per = self.campaign.rules.per_experiment_s
        return {
            "gpu_hours_used": self.gpu_hours(),
            "run_gpu_hours": per / 3600 * self.gpus_held() if per is not None else None,
        }

    def gpus_held(self) -> float:
        """GPUs one run holds: the scheduler's allocation, else the campaign's GPUs per experiment, else the
        recipe's own count (0: a CPU-only run)."""
        if self._held is None:
            try:
                needed = self.context.recipe.gpus_needed(self.campaign.repo)
            except Exception:  # an unreadable recipe fails its run, not the accounting
                needed = 0
            self._held = self.context.launcher.gpus_held() or self.campaign.options.get("gpus_per_experiment") or needed
        return self._held

    def gpu_hours(self) -> float:
        """GPU-hours the campaign's recorded runs used (elapsed time on the GPUs held, queue time apart)."""
        return sum(a.data.get("gpu_hours") or 0.0 for a in self.context.journal.attempts().values())

    # -- trials --------------------------------------------------------------------------------------
    def next_index(self) -> int:
        rows = self.context.rows()
        return max(self.context.journal.last_index(), max((r.index for r in rows), default=0)) + 1

    def baseline_hypothesis(self) -> Hypothesis:
        return Hypothesis(
            BASELINE, "unmodified recipe", parent=BASELINE, repeats=self.campaign.options.get("baseline_repeats", 1)
        )

    def plan_baseline(self) -> list[Trial]:
        """The baseline's runs; after a crashed baseline, a justified rerun on a follow-up commit."""
        crashed = self.context.baseline_rows()
        if not crashed:
            return self.plan(self.baseline_hypothesis())
        why = f"after crash [{crashed[-1].index}]"
        self.context.workspace.follow_up_baseline(self.campaign.base_commit, why)
        return self.plan(self.baseline_hypothesis(), role=f"rerun {why}")

    def plan(self, hypothesis: Hypothesis, *, role: str = "") -> list[Trial]:
        """Reserve the next indexes (one per repeat) and a free branch name, durably, before anything is created.
        Repeats beyond what the stop rules allow are not reserved."""
        with self.context.lock:
            self.check_may_launch()
            if hypothesis.name == BASELINE:
                parent_commit, reference, name, effective = self.follow_head(), self.baseline_reference(), BASELINE, {}
            else:
                parent_commit, reference = self.parent(hypothesis.parent)
                self.check_change(parent_commit, hypothesis)
                prepared = self.prepared(hypothesis.name)
                effective = {**self.effective_of(parent_commit), **hypothesis.sets}
                self._refuse_no_op(hypothesis, parent_commit, effective, prepared)
                name = (
                    prepared["name"]
                    if prepared
                    else self.context.workspace.reserve_name(hypothesis.name, self.taken_names())
                )
            branch = self.context.workspace.branch(name)
            first = self.next_index()
            done = self.runs_of_branch(branch) if name == BASELINE or role else 0
            seeded = 0 if name == BASELINE else done  # a baseline rerun uses the crashed runs' seeds again
            count = max(1, self.room(hypothesis.repeats or self.campaign.options.get("repeats", 1)))
            if count > 1 or seeded:
                self.require_seeds()
            group = tuple(range(first, first + count))
            trials = []
            for k, index in enumerate(group):
                run_number = done + k + 1
                trial = Trial(
                    index=index,
                    name=name,
                    run=name if run_number == 1 else f"{name}-r{run_number}",
                    branch=branch,
                    parent=hypothesis.parent,
                    parent_commit=parent_commit,
                    hypothesis=hypothesis,
                    reference=reference,
                    effective=effective,
                    seed=hypothesis.seed if seeded + k == 0 else self.seed_base() + seeded + k,
                    group=group,
                    role=role or (f"repeat {k + 1}/{count}" if count > 1 else ""),
                )
                trials.append(self._reserve(trial))
            return trials

    def plan_again(
        self, original: Trial, commit: str | None, role: str, *, seeded: bool, rerun_of: int | None = None
    ) -> Trial:
        """One more run of a configuration already on its branch (a confirmation, a rerun after a fix or an
        interruption)."""
        with self.context.lock:
            self.check_may_launch()
            run_number = self.runs_of_branch(original.branch) + 1
            if seeded:
                self.require_seeds()
            seed = self.seed_base() + run_number - 1 if seeded else original.seed
            return self._reserve(
                original.again(
                    index=self.next_index(),
                    run_number=run_number,
                    seed=seed,
                    role=role,
                    commit=commit,
                    rerun_of=rerun_of,
                )
            )

    def plan_repeat(self, hypothesis: Hypothesis) -> Trial:
        """--repeat: one more run of a configuration already recorded, judged together with its earlier runs."""
        parent_commit, _ = self.parent(hypothesis.parent)
        effective = {**self.effective_of(parent_commit), **hypothesis.sets}
        tried = self._same_configuration(effective) if hypothesis.sets and not hypothesis.patch else None
        if tried is None:
            raise UsageError(
                f"nothing to repeat: no row has the configuration of {hypothesis.name!r} "
                f"({hypothesis.summary() or 'no change'}); run it without --repeat"
            )
        row = next(r for r in self.context.rows() if r.index == tried.index)
        return self.plan_again(tried.trial, row.commit, f"repeat of [{row.index}]", seeded=self.context.recipe.seeded())

    def _reserve(self, trial: Trial) -> Trial:
        self.context.journal.record("intent", trial.index, **trial.to_record())
        self.context.reserve(trial.index)
        return trial

    def seed_base(self) -> int:
        """Run k >= 2 of a configuration uses seed base + k - 1; proposers that draw at random are seeded by it too."""
        return self.campaign.options.get("seed_base", SEED_BASE)

    def require_seeds(self) -> None:
        if not self.context.recipe.seeded():
            raise UsageError(
                "repeats need a way to vary the seed: init the campaign with --seed-flag (e.g. "
                "--seed-flag --seed) or use a recipe with a seed key"
            )

    def runs_of_branch(self, branch: str) -> int:
        """Runs already attempted on a branch (rows and reserved runs), to number repeats and choose seeds."""
        return sum(1 for a in self.context.journal.attempts().values() if a.data.get("branch") == branch)

    # -- parents, references, spread -----------------------------------------------------------------
    def parent(self, parent: str) -> tuple[str, Reference | None]:
        """The parent commit and the reference: the parent's results, or the best keep for 'best'."""
        if parent == "best":
            top = self.context.best_row()
            if top is None:
                return self.parent(BASELINE)
            return top.commit, self.reference(f"best keep {top.branch.rsplit('/', 1)[1]}", top.commit)
        commit = self.context.workspace.resolve_parent(parent)
        return commit, self.reference(parent, commit) or self.baseline_reference()

    def valid_baseline(self) -> list[Row]:
        """The baseline's runs with a result: the reference every comparison needs (a crash is no reference)."""
        return [r for r in self.context.baseline_rows() if r.status != "crash" and valid(r.metric_value)]

    def require_valid_baseline(self) -> None:
        """Refuse (exit 2) what needs a reference while there is none."""
        if self.valid_baseline():
            return
        if not self.context.baseline_rows():
            raise UsageError("no baseline yet: run 'autoresearch baseline' first (every comparison needs it)")
        raise UsageError(self.baseline_diagnosis())

    def baseline_diagnosis(self) -> str:
        """Why the baseline has no result, what probably caused it, and what to do."""
        from nrl_autoresearch.runner import triage  # log triage: only for a baseline that failed

        context = self.context
        last = context.baseline_rows()[-1]
        lines = tail(context.campaign.repo / last.log_path, 12).splitlines()
        cause, fix = triage.likely_cause(last.description, lines, str(context.source))
        return "\n".join(
            [
                (
                    f"the baseline has no valid {context.campaign.objective.metric_name}, so nothing can be compared and no "
                    "experiment runs"
                ),
                f"  row {last.index}: {last.description}",
                f"  likely cause: {cause}",
                f"  last lines of {last.log_path}:",
                *(f"    {line}" for line in lines or ["(empty)"]),
                (
                    f"  what to do: {fix}; then 'autoresearch baseline' reruns it as a follow-up commit on "
                    f"{context.workspace.branch(BASELINE)}, in a row of its own"
                ),
            ]
        )

    def baseline_reference(self) -> Reference | None:
        rows = self.valid_baseline()
        return self.reference(BASELINE, rows[-1].commit) if rows else None

    def reference(self, label: str, commit: str) -> Reference | None:
        runs = self.runs_of(commit)
        return Reference(label, tuple(v for _, v in runs), tuple(s for s, _ in runs)) if runs else None

    def runs_of(self, commit: str) -> list[tuple[str, float]]:
        """(seed, value) of every valid run of a configuration; 'own' is the recipe's own seed."""
        seeds = {a.index: a.data.get("seed") for a in self.context.journal.attempts().values()}
        return [
            (seed_key(seeds.get(r.index)), r.metric_value)
            for r in self.context.rows()
            if r.commit == commit and _counts(r) and r.metric_value is not None
        ]

    def spread(self, commit: str | None = None, pending: list[float] | None = None) -> Spread | None:
        """The campaign's run-to-run spread, pooled over every configuration run more than once (with the
        `pending` values of `commit`, a group being judged); without any, the runs' own curve jitter."""
        groups: dict[str, list[float]] = {}
        for r in self.context.rows():
            if _counts(r) and r.metric_value is not None:
                groups.setdefault(r.commit, []).append(r.metric_value)
        if commit is not None:
            groups.setdefault(commit, []).extend(pending or [])
        jitters = [
            (float(a.data["jitter"][0]), int(a.data["jitter"][1]))
            for a in self.context.journal.attempts().values()
            if a.done and a.data.get("jitter") and a.data.get("status") != "crash" and not a.data.get("pruned")
        ]
        return campaign_spread(groups.values(), jitters, self.campaign.objective.aggregate)

    def effective_of(self, commit: str) -> dict:
        for attempt in self.context.journal.attempts().values():
            if attempt.data.get("commit") == commit:
                return dict(attempt.data.get("effective") or {})
        return {}

    # -- names and validation ------------------------------------------------------------------------
    def taken_names(self) -> set[str]:
        names = {a.data.get("name") for a in self.context.journal.attempts().values()}
        return RESERVED | {n for n in names if n}

    def prepared(self, name: str) -> dict | None:
        """The `new` event of a name whose worktree still waits to be committed and run."""
        used = {a.data.get("name") for a in self.context.journal.attempts().values()}
        events = [e for e in self.context.journal.events("prepared") if e["name"] == name]
        return events[-1] if events and name not in used else None

    def hand_edited(self, name: str) -> bool:
        """Whether the person prepared this branch with 'autoresearch new' (its worktree holds their edits)."""
        return any(e["name"] == name for e in self.context.journal.events("prepared"))

    def prepare(self, name: str, description: str, parent: str) -> Path:
        """Create an experiment branch and worktree for hand edits; `try NAME` later commits and runs them."""
        workspace = self.context.workspace
        parent_commit, _ = self.parent(parent)
        if workspace.commit_of(workspace.branch(name)) is None:
            name = workspace.reserve_name(name, self.taken_names())
        path = workspace.create(name, parent_commit, for_hand_edits=True)
        self.context.journal.record(
            "prepared", name=name, description=description, parent=parent, parent_commit=parent_commit
        )
        return path

    def check(self, hypothesis: Hypothesis) -> None:
        """Validate a hypothesis before anything is created: its name, and its change against its parent's files
        (the baseline's when the parent does not exist yet, as for a queue entry building on an earlier one; a
        patch only against the very commit it will apply to, 'best' being known only when it runs)."""
        validate_name(hypothesis.name)
        workspace = self.context.workspace
        parent = workspace.branch(hypothesis.parent) if hypothesis.parent not in ("baseline", "best") else None
        exact = workspace.commit_of(parent) if parent else None
        commit = exact or workspace.commit_of(workspace.branch(BASELINE)) or self.campaign.base_commit
        self.check_change(commit, hypothesis, patch=bool(exact) or hypothesis.parent == BASELINE)

    def check_change(self, commit: str, hypothesis: Hypothesis, *, patch: bool = True) -> None:
        """The hypothesis's settings (and its patch, unless told otherwise) must apply to `commit`."""
        self.context.recipe.check_change(Snapshot(self.context.workspace.git, commit), hypothesis.sets)
        if patch and hypothesis.patch:
            self.context.workspace.check_patch(commit, Path(hypothesis.patch))

    def follow_head(self) -> str:
        """Until the baseline is recorded, the campaign starts from the person's current commit (a knob committed
        after init is known to it), and says so when that moved; afterwards its base stays fixed."""
        head = self.context.workspace.git.rev("HEAD")
        base = self.campaign.base_commit
        if self.context.baseline_rows() or head in (None, base):
            return base
        self.context.say(
            f"your branch moved since init: the campaign now starts from your current commit "
            f"{head[:10]} (it was {base[:10]})"
        )
        self.context.campaign = replace(self.campaign, base_commit=head)
        self.context.campaign.save()
        return head

    def _refuse_no_op(self, hypothesis: Hypothesis, parent_commit: str, effective: dict, prepared: dict | None) -> None:
        """A hypothesis must change something, and something not tried yet (exit 2 before anything is created)."""
        if hypothesis.patch or hypothesis.edit or hypothesis.failure:
            return
        name = hypothesis.name
        if not hypothesis.sets:
            if prepared and self._has_hand_edits(name, parent_commit):
                return
            raise UsageError(
                f"nothing to test in {name!r}: give --set KEY=VALUE or --patch FILE, or edit the worktree "
                f"of 'autoresearch new {name}' before 'autoresearch try {name}'"
            )
        current = self.context.recipe.values(Snapshot(self.context.workspace.git, parent_commit), list(hypothesis.sets))
        if all(k in current and norm(current[k]) == norm(v) for k, v in hypothesis.sets.items()):
            raise UsageError(
                f"nothing to test in {name!r}: {hypothesis.summary()} is already so on its parent "
                f"({hypothesis.parent}); change a value"
            )
        tried = self._same_configuration(effective)
        if tried is not None:
            branch = tried.data.get("branch", "")
            raise UsageError(
                f"{name!r} repeats row {tried.index} ({branch}): the same configuration "
                f"({', '.join(f'{k}={v}' for k, v in effective.items())}); pass --repeat to run it once "
                "more and judge it together with that row's runs"
            )

    def _has_hand_edits(self, name: str, parent_commit: str) -> bool:
        workspace = self.context.workspace
        worktree = workspace.worktrees / name
        head = workspace.commit_of(workspace.branch(name))
        moved = head is not None and head != parent_commit
        return moved or (worktree.exists() and bool(workspace.changed_paths(worktree)))

    def _same_configuration(self, effective: dict) -> Attempt | None:
        """The first recorded attempt whose effective configuration is `effective` (set changes only)."""
        written = {r.index for r in self.context.rows()}
        for attempt in sorted(self.context.journal.attempts().values(), key=lambda a: a.index):
            h = attempt.data.get("hypothesis") or {}
            if (
                attempt.index in written
                and not h.get("patch")
                and not h.get("failure")
                and h.get("name") != BASELINE
                and same_settings(attempt.data.get("effective") or {}, effective)
            ):
                return attempt
        return None

    def history(self) -> History:
        """What a proposer sees (imported here: reading a campaign's state does not build one)."""
        from nrl_autoresearch.core.history import History

        return History.read(self.campaign, self.context.journal, self.context.rows(), self.context.best_row())


def _counts(row: Row) -> bool:
    """Whether a row's value is a full run of its configuration (crashes and pruned runs are not)."""
    return row.status != "crash" and valid(row.metric_value) and not is_pruned(row.description)
