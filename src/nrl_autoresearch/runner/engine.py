"""The path of one experiment, and the loop. Nothing else knows the whole path:

hypothesis -> worktree on <prefix>/<name> from its parent -> recipe applies the change -> commit
-> stop rules checked -> launcher runs it with its limit -> metric source reads the metric -> judge
-> ledger row (TSV + git note) -> progress line with the stop sentence.

Every step is journaled first, so an engine killed at any moment resumes without a lost or duplicated row.
"""

from __future__ import annotations

import hashlib
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from nrl_autoresearch import integrations
from nrl_autoresearch.core import stoprules
from nrl_autoresearch.core.campaign import CENSUS, RESERVED, Campaign
from nrl_autoresearch.core.errors import BaselineCrashed, Fault, StopConditionMet, UsageError, disk_full, fault_of
from nrl_autoresearch.core.git import Snapshot
from nrl_autoresearch.core.hypothesis import Hypothesis, norm, same_settings
from nrl_autoresearch.core.journal import Journal
from nrl_autoresearch.core.judge import (
    CANDIDATE_Z,
    CONTINUE_Z,
    MAX_LOOK_RUNS,
    Z_DEFAULT,
    Reference,
    Spread,
    Verdict,
    ahead,
    curve_jitter,
    judge,
    pooled_jitter,
    pooled_spread,
    valid,
)
from nrl_autoresearch.core.launcher import Job, JobResult, JobState, RunSpec
from nrl_autoresearch.core.ledger import Ledger, Notes, Row, best
from nrl_autoresearch.core.metric import Census, RunOutputs, aggregate
from nrl_autoresearch.core.progress import Progress, run_line
from nrl_autoresearch.core.recipe import Check
from nrl_autoresearch.core.redact import redact
from nrl_autoresearch.core.session import Moment, Session
from nrl_autoresearch.core.writer import CampaignLock
from nrl_autoresearch.launchers import make_launcher
from nrl_autoresearch.recipes import recipe_from_dict
from nrl_autoresearch.runner import brev, checks, recovery, smoke, triage
from nrl_autoresearch.runner.attempt import Outcome, Plan
from nrl_autoresearch.runner.gpus import GpuPool
from nrl_autoresearch.runner.reaper import RUN_MARKER
from nrl_autoresearch.runner.watch import PRUNED, PruneRule, RunWatch, is_pruned, load_curve, save_curve
from nrl_autoresearch.runner.workspace import BASELINE, Workspace, validate_name

MAX_FIXES = 2  # fixes of a trivial crash before it stays a crash
SEED_BASE = 1000  # run k >= 2 of a configuration uses seed base + k - 1, the same for every configuration
TAIL_LINES = 20


@dataclass(frozen=True)
class History:
    """What a proposer sees: the campaign, its rows, what was tried (with effective changes), the steering notes."""

    campaign: Campaign
    rows: list[Row]
    tried: list[dict]
    best: Row | None
    steering: list[str]
    diagnoses: list[dict] = field(default_factory=list)


class Engine:
    def __init__(self, campaign: Campaign, *, say: Callable[[str], None] = print, progress: Progress | None = None):
        self.c = campaign
        self.say = say
        self.progress = progress
        self.recipe = recipe_from_dict(campaign.recipe)
        self.launcher = make_launcher(campaign.launcher)
        self.ws = Workspace(campaign.repo, campaign.prefix, campaign.worktrees)
        self.ledger = Ledger(campaign.ledger_path)
        self.notes = Notes(self.ws.git)
        self.journal = Journal(campaign.dir / "journal.jsonl")
        self.source = self.recipe.metric_source(campaign.objective)
        self._lock = threading.RLock()
        self.in_flight: set[int] = set()  # indexes reserved and not yet recorded (for the stop rules)
        self._active = 0  # worker threads busy with a group and its follow-ups (for --workers)
        self.halt_reason: str | None = None
        self._said: str | None = None  # the last stop sentence said
        self._memory: Session | None = None
        self.gpus = GpuPool(campaign.options.get("gpus_per_experiment", 0))
        self._held: float | None = None
        self._failure: BaseException | None = None  # what stopped a worker from recording its rows
        self.writer = CampaignLock(campaign.dir, campaign.name)
        if campaign.options.get("brev"):
            brev.load_env_file(campaign.repo)  # never printed; its secrets are redacted like any other

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Release what the launcher holds (an interactive Slurm allocation)."""
        self.launcher.close()

    # -- reading state -------------------------------------------------------------------------------
    def rows(self) -> list[Row]:
        return self.ledger.rows(self.c.prefix)

    def best_row(self) -> Row | None:
        return best(self.rows(), maximize=self.c.objective.maximize)

    def baseline_rows(self) -> list[Row]:
        return [r for r in self.rows() if r.branch == self.ws.branch(BASELINE)]

    def valid_baseline(self) -> list[Row]:
        """The baseline's runs with a result: the reference every comparison needs (a crash is no reference)."""
        return [r for r in self.baseline_rows() if r.status != "crash" and valid(r.metric_value)]

    def require_valid_baseline(self) -> None:
        """Refuse (exit 2) what needs a reference while there is none."""
        if self.valid_baseline():
            return
        if not self.baseline_rows():
            raise UsageError("no baseline yet: run 'autoresearch baseline' first (every comparison needs it)")
        raise UsageError(self.baseline_diagnosis())

    def baseline_diagnosis(self) -> str:
        """Why the baseline has no result, what probably caused it, and what to do."""
        last = self.baseline_rows()[-1]
        tail = _tail(self.c.repo / last.log_path, 12).splitlines()
        cause, fix = triage.likely_cause(last.description, tail, str(self.source))
        return "\n".join([
            f"the baseline has no valid {self.c.objective.metric_name}, so nothing can be compared and no experiment runs",
            f"  row {last.index}: {last.description}",
            f"  likely cause: {cause}",
            f"  last lines of {last.log_path}:", *(f"    {line}" for line in tail or ["(empty)"]),
            f"  what to do: {fix}; then 'autoresearch baseline' reruns it as a follow-up commit on "
            f"{self.ws.branch(BASELINE)}, in a row of its own",
        ])

    def status(self) -> stoprules.StopStatus:
        top = self.best_row()
        return stoprules.status(self.c.rules, attempted=len(self.rows()), now=time.time(),
                                best=top.metric_value if top else None, **self._compute())

    def gpus_held(self) -> float:
        """GPUs one run holds: the scheduler's allocation, else the campaign's GPUs per experiment, else the
        recipe's own count (0: a CPU-only run)."""
        if self._held is None:
            try:
                needed = self.recipe.gpus_needed(self.c.repo)
            except Exception:  # an unreadable recipe fails its run, not the accounting
                needed = 0
            self._held = self.launcher.gpus_held() or self.c.options.get("gpus_per_experiment") or needed
        return self._held

    def gpu_hours(self) -> float:
        """GPU-hours the campaign's recorded runs used (elapsed time on the GPUs held, queue time apart)."""
        return sum(a.data.get("gpu_hours") or 0.0 for a in self.journal.attempts().values())

    def _compute(self) -> dict:
        per = self.c.rules.per_experiment_s
        return {"gpu_hours_used": self.gpu_hours(),
                "run_gpu_hours": per / 3600 * self.gpus_held() if per is not None else None}

    def history(self) -> History:
        tried = [dict(a.data, index=a.index, step=a.step) for a in sorted(self.journal.attempts().values(), key=lambda a: a.index)]
        events = self.journal.events()
        steering = [e["text"] for e in events if e["step"] == "steer"]
        diagnoses = [e for e in events if e["step"] == "diagnosis"]
        return History(self.c, self.rows(), tried, self.best_row(), steering, diagnoses)

    # -- session memory and control ------------------------------------------------------------------
    @property
    def memory(self) -> Session:
        """The session files, created at the first checkpoint (reading commands never create them)."""
        if self._memory is None:
            self._memory = Session(self.c)
        return self._memory

    def checkpoint(self, kind: str, text: str) -> None:
        attempts = self.journal.attempts()
        in_flight = [attempts[i].data.get("name", str(i)) for i in sorted(self.in_flight) if i in attempts]
        steering = [e["text"] for e in self.journal.events() if e["step"] == "steer"]
        moment = Moment(self.rows(), self.status(), in_flight, steering, self.ws.user_branch() or "(detached)")
        self.memory.checkpoint(kind, text, moment)

    def steer(self, text: str, *, replace_objective: bool = False) -> None:
        """Record follow-up steering: additive, unless the person explicitly replaces the objective."""
        if not text.strip():
            raise UsageError("the steering text is empty: say what the campaign should do next, e.g. "
                             "autoresearch steer 'try smaller learning rates'")
        if replace_objective:
            self.c = self.c.with_options(goal=redact(text))
            self.c.save()
        self.journal.record("steer", text=text, replace=replace_objective)
        self.checkpoint("direction change", ("objective replaced: " if replace_objective else "steering (additive): ") + text)

    def control(self) -> str | None:
        """'stop' or 'pause' when the person asked the loop to halt between experiments."""
        for flag in ("stop", "pause"):
            if (self.c.dir / "control" / flag).exists():
                return flag
        return None

    def _volume_full(self) -> str | None:
        """On Brev, stop gracefully (no new run) when the volume is nearly full."""
        options = self.c.options.get("brev")
        if options and brev.free_gb(options) < brev.STOP_BELOW_GB:
            self.say(f"{options['volume']} has less than {brev.STOP_BELOW_GB:g} GiB free: no new run starts")
            return "pause"
        return None

    def request(self, flag: str | None) -> None:
        """Set ('stop' or 'pause') or clear (None) the flag the loop polls."""
        folder = self.c.dir / "control"
        for name in ("stop", "pause"):
            (folder / name).unlink(missing_ok=True)
        if flag:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / flag).write_text(time.strftime("%Y-%m-%dT%H:%M:%S") + "\n")

    def watch(self, plan: Plan, job: Job, worktree: Path | None):
        """Polled while a run is in flight: Ctrl-C, `autoresearch stop`, live progress, the 30-minute checkpoint."""
        started = time.time()
        outputs = self.outputs(plan, job.log_path, worktree)
        watch = RunWatch(self.source, outputs, self.c.objective.metric_name, self.c.options.get("stall", "auto"),
                         self._prune_rule(plan))

        def check() -> str | None:
            if self.halt_reason:
                return self.halt_reason
            if self.control() == "stop":
                return "stopped by the person (autoresearch stop)"
            if self.progress is not None and self.progress.due(plan.run):
                self.progress.show(plan.run, self._progress_line(plan, outputs, started))
            if self.memory.due():
                self.checkpoint("periodic", f"[{plan.index}] {plan.name} running for {stoprules.format_duration(time.time() - started)}")
            return watch.check(running=lambda: job.state() == JobState.RUNNING)
        return check

    def _prune_rule(self, plan: Plan) -> PruneRule | None:
        """--prune: the curves of the reference's valid, unpruned runs (first runs of a hypothesis only: looks,
        repeats, confirmations and reruns always run in full)."""
        if not self.c.options.get("prune") or plan.is_baseline or plan.role:
            return None
        runs = {a.index: a.data.get("run") for a in self.journal.attempts().values()}
        curves = [load_curve(self.c.run_dir(runs[r.index])) for r in self.rows()
                  if r.commit == plan.parent_commit and r.status != "crash" and not is_pruned(r.description)
                  and runs.get(r.index)]
        spread = self.spread()
        curves = [c for c in curves if c]
        return PruneRule(curves, spread.sd if spread else None, self.c.objective.maximize) if curves else None

    def _progress_line(self, plan: Plan, outputs: RunOutputs, started: float) -> str:
        reading = self.source.read(outputs)
        metric = f"{self.c.objective.metric_name} {reading.points[-1].value:.4g}" if reading and reading.points else None
        top = self.best_row()
        best = f"best {top.metric_value:.6g}" if top else "no keep yet"
        run = run_line(f"[{plan.index}] {plan.name}", time.time() - started, self.source.progress(outputs), metric,
                       stoprules.run_limit(self.c.rules, now=started))
        return f"{run} | {best}; {self.status().sentence}"

    # -- commands ------------------------------------------------------------------------------------
    def baseline(self) -> Row:
        """Record the unmodified recipe as the reference, on <prefix>/baseline (interrupted runs of it first)."""
        with self.writer.held():
            return self._baseline()

    def _baseline(self) -> Row:
        self.recover()
        rerun = self.rerun_interrupted(baseline_only=True)
        if rerun:
            return rerun[0]
        existing = self.valid_baseline()
        if existing:
            raise UsageError(f"the baseline is already recorded as row {existing[0].index} of {self.c.ledger}: "
                             "run experiments with 'autoresearch try' or 'autoresearch run'")
        self._check_preflight()
        rows = self._supervise(self._baseline_plans())
        if not self.valid_baseline():
            raise BaselineCrashed(self.baseline_diagnosis())
        return rows[0]

    def _baseline_plans(self) -> list[Plan]:
        """The baseline's runs; after a crashed baseline, a justified rerun on a follow-up commit."""
        crashed = self.baseline_rows()
        if not crashed:
            return self._plan(self._baseline_hypothesis())
        why = f"after crash [{crashed[-1].index}]"
        self.ws.follow_up_baseline(self.c.base_commit, why)
        return self._plan(self._baseline_hypothesis(), role=f"rerun {why}")

    def try_(self, hypothesis: Hypothesis, *, repeat: bool = False) -> Row:
        """One experiment: branch, change, commit, run, record. With `repeat`, a configuration already tried
        runs once more on its own branch and is judged together with its earlier runs."""
        with self.writer.held():
            return self._try(hypothesis, repeat)

    def _try(self, hypothesis: Hypothesis, repeat: bool) -> Row:
        self.recover()
        self.rerun_interrupted(baseline_only=True)
        self.require_valid_baseline()
        prepared = self._prepared(hypothesis.name)
        if prepared:
            hypothesis = replace(hypothesis, parent=prepared["parent"],
                                 description=hypothesis.description or prepared["description"])
        if repeat:
            return self._supervise([self._repeat_plan(hypothesis)])[-1]
        return self._supervise(self._plan(hypothesis))[-1]

    def _repeat_plan(self, hypothesis: Hypothesis) -> Plan:
        parent_commit, _ = self._parent(hypothesis.parent)
        effective = {**self._effective_of(parent_commit), **hypothesis.sets}
        tried = self._same_configuration(effective) if hypothesis.sets and not hypothesis.patch else None
        if tried is None:
            raise UsageError(f"nothing to repeat: no row has the configuration of {hypothesis.name!r} "
                             f"({hypothesis.summary() or 'no change'}); run it without --repeat")
        row = next(r for r in self.rows() if r.index == tried.index)
        original = recovery.plan_from(tried)
        return self._plan_again(original, row.commit, f"repeat of [{row.index}]", seeded=self.recipe.seeded())

    def _refuse_no_op(self, hypothesis: Hypothesis, parent_commit: str, effective: dict, prepared: dict | None) -> None:
        """A hypothesis must change something, and something not tried yet (exit 2 before anything is created)."""
        if hypothesis.patch or hypothesis.edit or hypothesis.failure:
            return
        name = hypothesis.name
        if not hypothesis.sets:
            if prepared and self._has_hand_edits(name, parent_commit):
                return
            raise UsageError(f"nothing to test in {name!r}: give --set KEY=VALUE or --patch FILE, or edit the worktree "
                             f"of 'autoresearch new {name}' before 'autoresearch try {name}'")
        current = self.recipe.values(Snapshot(self.ws.git, parent_commit), list(hypothesis.sets))
        if all(k in current and norm(current[k]) == norm(v) for k, v in hypothesis.sets.items()):
            raise UsageError(f"nothing to test in {name!r}: {hypothesis.summary()} is already so on its parent "
                             f"({hypothesis.parent}); change a value")
        tried = self._same_configuration(effective)
        if tried is not None:
            branch = tried.data.get("branch", "")
            raise UsageError(f"{name!r} repeats row {tried.index} ({branch}): the same configuration "
                             f"({', '.join(f'{k}={v}' for k, v in effective.items())}); pass --repeat to run it once "
                             "more and judge it together with that row's runs")

    def _has_hand_edits(self, name: str, parent_commit: str) -> bool:
        worktree = self.ws.worktrees / name
        head = self.ws.commit_of(self.ws.branch(name))
        return (head is not None and head != parent_commit) or (worktree.exists() and bool(self.ws.changed_paths(worktree)))

    def _same_configuration(self, effective: dict):
        """The first recorded attempt whose effective configuration is `effective` (set changes only)."""
        written = {r.index for r in self.rows()}
        for attempt in sorted(self.journal.attempts().values(), key=lambda a: a.index):
            h = attempt.data.get("hypothesis") or {}
            if (attempt.index in written and not h.get("patch") and not h.get("failure") and h.get("name") != BASELINE
                    and same_settings(attempt.data.get("effective") or {}, effective)):
                return attempt
        return None

    def prepare(self, name: str, description: str, parent: str) -> Path:
        """Create an experiment branch and worktree for hand edits; `try NAME` later commits and runs them."""
        with self.writer.held():
            return self._prepare(name, description, parent)

    def _prepare(self, name: str, description: str, parent: str) -> Path:
        self.require_valid_baseline()
        parent_commit, _ = self._parent(parent)
        if self.ws.commit_of(self.ws.branch(name)) is None:
            name = self.ws.reserve_name(name, self._taken_names())
        path = self.ws.create(name, parent_commit)
        self.journal.record("prepared", name=name, description=description, parent=parent, parent_commit=parent_commit)
        return path

    def run(self, propose: Callable[[History], Hypothesis | None], *, workers: int = 1,
            max_runs: int | None = None) -> stoprules.StopStatus:
        """The unattended loop: baseline first, then one hypothesis at a time (or `workers` at once) until a
        stop rule is clearly met, the proposer has nothing left, or the person halts it."""
        with self.writer.held():
            return self._run_loop(propose, workers, max_runs)

    def _run_loop(self, propose: Callable[[History], Hypothesis | None], workers: int,
                  max_runs: int | None) -> stoprules.StopStatus:
        self.recover()
        if not self.baseline_rows():
            self._check_may_launch()
            self._check_preflight()
            self._supervise(self._plan(self._baseline_hypothesis()))
            if not self.valid_baseline():
                self.checkpoint("handoff", "the baseline has no valid result: the loop stopped before any experiment")
                raise BaselineCrashed(self.baseline_diagnosis())
        self.rerun_interrupted()
        self.require_valid_baseline()
        launched = 0
        threads: list[threading.Event] = []
        try:
            while not self.halt_reason and (max_runs is None or launched < max_runs):
                flag = self.control() or self._volume_full()
                if flag:
                    self.say(f"halted by the person ({flag}): {'ending the runs in flight' if flag == 'stop' else 'no new run starts'}")
                    if flag == "stop":
                        self.halt("stopped by the person (autoresearch stop)")
                    break
                with self._lock:
                    if self.status().met:
                        break
                    ready = self._active < workers and self._may_launch() and self.gpus.available()
                    plans = None
                    if ready:
                        hypothesis = propose(self.history())
                        if hypothesis is None:
                            self.say("no hypothesis left to try: the proposer is exhausted")
                            break
                        plans = self._plan(hypothesis)
                if plans is None:
                    if not self._active and not (self._may_launch() and self.gpus.available()):
                        break
                    self._wait_any(threads)
                    continue
                threads.append(self._start_thread(plans))
                launched += 1
            self._join(threads)
            self._raise_failure()
        except KeyboardInterrupt:
            self.halt("interrupted by the person (Ctrl-C)")
            self._join(threads)
            self.checkpoint("handoff", "the loop was interrupted (Ctrl-C); the running experiment was recorded as a crash")
            raise
        self.checkpoint("handoff", "the loop ended; summary printed")
        integrations.loop_ended(self)
        return self.status()

    def check(self, hypothesis: Hypothesis) -> None:
        """Validate a hypothesis before anything is created: its name, and its change against its parent's files
        (the baseline's when the parent does not exist yet, as for a queue entry building on an earlier one; a
        patch only against the very commit it will apply to, 'best' being known only when it runs)."""
        validate_name(hypothesis.name)
        parent = self.ws.branch(hypothesis.parent) if hypothesis.parent not in ("baseline", "best") else None
        exact = self.ws.commit_of(parent) if parent else None
        commit = exact or self.ws.commit_of(self.ws.branch(BASELINE)) or self.c.base_commit
        self._check_change(commit, hypothesis, patch=bool(exact) or hypothesis.parent == BASELINE)

    def _check_change(self, commit: str, hypothesis: Hypothesis, *, patch: bool = True) -> None:
        """The hypothesis's settings (and its patch, unless told otherwise) must apply to `commit`."""
        self.recipe.check_change(Snapshot(self.ws.git, commit), hypothesis.sets)
        if patch and hypothesis.patch:
            self.ws.check_patch(commit, Path(hypothesis.patch))

    def follow_head(self) -> str:
        """Until the baseline is recorded, the campaign starts from the person's current commit (a knob committed
        after init is known to it), and says so when that moved; afterwards its base stays fixed."""
        head = self.ws.git.rev("HEAD")
        if self.baseline_rows() or head in (None, self.c.base_commit):
            return self.c.base_commit
        self.say(f"your branch moved since init: the campaign now starts from your current commit {head[:10]} "
                 f"(it was {self.c.base_commit[:10]})")
        self.c = replace(self.c, base_commit=head)
        self.c.save()
        return head

    def halt(self, reason: str) -> None:
        """End the running experiments (recorded as crashes with this reason) and start no new one."""
        self.halt_reason = reason

    # -- planning ------------------------------------------------------------------------------------
    def _check_may_launch(self) -> None:
        if not self._may_launch():
            raise StopConditionMet(self.status().sentence)

    def _may_launch(self) -> bool:
        top = self.best_row()
        return stoprules.may_launch(self.c.rules, attempted=len(self.rows()), in_flight=self._pending(),
                                    now=time.time(), best=top.metric_value if top else None, **self._compute())

    def _pending(self) -> int:
        """Runs reserved or in flight whose rows are not written yet (a written row already counts as attempted)."""
        return len(self.in_flight - {r.index for r in self.rows()})

    def next_index(self) -> int:
        return max(self.journal.last_index(), max((r.index for r in self.rows()), default=0)) + 1

    def _baseline_hypothesis(self) -> Hypothesis:
        return Hypothesis(BASELINE, "unmodified recipe", parent=BASELINE,
                          repeats=self.c.options.get("baseline_repeats", 1))

    def _plan(self, hypothesis: Hypothesis, *, role: str = "") -> list[Plan]:
        """Reserve the next indexes (one per repeat) and a free branch name, durably, before anything is created.
        Repeats beyond what the stop rules allow are not reserved."""
        with self._lock:
            self._check_may_launch()
            if hypothesis.name == BASELINE:
                parent_commit, reference, name, effective = self.follow_head(), self._baseline_reference(), BASELINE, {}
            else:
                parent_commit, reference = self._parent(hypothesis.parent)
                self._check_change(parent_commit, hypothesis)
                prepared = self._prepared(hypothesis.name)
                effective = {**self._effective_of(parent_commit), **hypothesis.sets}
                self._refuse_no_op(hypothesis, parent_commit, effective, prepared)
                name = prepared["name"] if prepared else self.ws.reserve_name(hypothesis.name, self._taken_names())
            repeats = hypothesis.repeats or self.c.options.get("repeats", 1)
            first = self.next_index()
            done = self._runs_of_branch(self.ws.branch(name)) if name == BASELINE or role else 0
            seeded = 0 if name == BASELINE else done  # a baseline rerun uses the crashed runs' seeds again
            count = self._room(repeats)
            if count > 1 or seeded:
                self._require_seeds()
            group = tuple(range(first, first + count))
            plans = []
            for k, index in enumerate(group):
                run_number = done + k + 1
                run = name if run_number == 1 else f"{name}-r{run_number}"
                seed = hypothesis.seed if seeded + k == 0 else self.seed_base() + seeded + k
                label = role or (f"repeat {k + 1}/{count}" if count > 1 else "")
                plan = Plan(index, name, run, self.ws.branch(name), hypothesis.parent, parent_commit, reference,
                            hypothesis, effective, seed, group, label)
                self.journal.record("intent", index, name=name, run=run, branch=plan.branch, parent=hypothesis.parent,
                                    parent_commit=parent_commit, hypothesis=hypothesis.to_dict(), effective=effective,
                                    reference=asdict(reference) if reference else None, seed=seed, group=list(group),
                                    role=label)
                self.in_flight.add(index)
                plans.append(plan)
            return plans

    def _room(self, wanted: int) -> int:
        """How many runs the stop rules let start now (at least one: the caller checked)."""
        rules = self.c.rules
        if rules.max_experiments is None:
            return wanted
        return max(1, min(wanted, rules.max_experiments - len(self.rows()) - self._pending()))

    def seed_base(self) -> int:
        """Run k >= 2 of a configuration uses seed base + k - 1; proposers that draw at random are seeded by it too."""
        return self.c.options.get("seed_base", SEED_BASE)

    def _require_seeds(self) -> None:
        if not self.recipe.seeded():
            raise UsageError("repeats need a way to vary the seed: init the campaign with --seed-flag (e.g. --seed-flag "
                             "--seed) or use a recipe with a seed key")

    def _runs_of_branch(self, branch: str) -> int:
        """Runs already attempted on a branch (rows and reserved runs), to number repeats and choose seeds."""
        return sum(1 for a in self.journal.attempts().values() if a.data.get("branch") == branch)

    def _parent(self, parent: str) -> tuple[str, Reference | None]:
        """The parent commit and the reference: the parent's results, or the best keep for 'best'."""
        if parent == "best":
            top = self.best_row()
            if top is None:
                return self._parent(BASELINE)
            return top.commit, self._reference(f"best keep {top.branch.rsplit('/', 1)[1]}", top.commit)
        commit = self.ws.resolve_parent(parent)
        return commit, self._reference(parent, commit) or self._baseline_reference()

    def _baseline_reference(self) -> Reference | None:
        rows = self.valid_baseline()
        return self._reference(BASELINE, rows[-1].commit) if rows else None

    def _reference(self, label: str, commit: str) -> Reference | None:
        runs = self._runs_of(commit)
        return Reference(label, tuple(v for _, v in runs), tuple(s for s, _ in runs)) if runs else None

    def _runs_of(self, commit: str) -> list[tuple[str, float]]:
        """(seed, value) of every valid run of a configuration; 'own' is the recipe's own seed."""
        seeds = {a.index: a.data.get("seed") for a in self.journal.attempts().values()}
        return [(_seed_key(seeds.get(r.index)), r.metric_value) for r in self.rows()
                if r.commit == commit and r.status != "crash" and valid(r.metric_value) and not is_pruned(r.description)]

    def spread(self, commit: str | None = None, pending: list[float] | None = None) -> Spread | None:
        """The campaign's run-to-run spread, pooled over every configuration run more than once (with the
        `pending` values of `commit`, a group being judged); without any, the runs' own curve jitter, a floor
        that misses what the seed changes in training."""
        groups: dict[str, list[float]] = {}
        for r in self.rows():
            if r.status != "crash" and valid(r.metric_value) and not is_pruned(r.description):
                groups.setdefault(r.commit, []).append(r.metric_value)
        if commit is not None:
            groups.setdefault(commit, []).extend(pending or [])
        return pooled_spread(groups.values()) or self._jitter_spread()

    def _jitter_spread(self) -> Spread | None:
        jitters = [(float(a.data["jitter"][0]), int(a.data["jitter"][1])) for a in self.journal.attempts().values()
                   if a.done and a.data.get("jitter") and a.data.get("status") != "crash" and not a.data.get("pruned")]
        how = self.c.objective.aggregate
        return pooled_jitter(jitters, int(how.rsplit("-", 1)[1]) if how.startswith("mean-last-") else 1)

    def _effective_of(self, commit: str) -> dict:
        for attempt in self.journal.attempts().values():
            if attempt.data.get("commit") == commit:
                return dict(attempt.data.get("effective") or {})
        return {}

    def _taken_names(self) -> set[str]:
        names = {a.data.get("name") for a in self.journal.attempts().values()}
        return RESERVED | {n for n in names if n}

    def _prepared(self, name: str) -> dict | None:
        """The `new` event of a name whose worktree still waits to be committed and run."""
        used = {a.data.get("name") for a in self.journal.attempts().values()}
        events = [e for e in self.journal.events() if e["step"] == "prepared" and e["name"] == name]
        return events[-1] if events and name not in used else None

    # -- the path of one experiment ------------------------------------------------------------------
    def _supervise(self, plans: list[Plan]) -> list[Row]:
        """Run a group in a worker thread so that Ctrl-C reaches this thread and ends it cleanly."""
        rows: list[Row] = []
        done = self._start_thread(plans, rows)
        try:
            self._join([done])
        except KeyboardInterrupt:
            self.halt("interrupted by the person (Ctrl-C)")
            self._join([done])
            raise
        self._raise_failure()
        return rows

    def _raise_failure(self) -> None:
        """A worker that could not record its rows stops the command with one clear message."""
        err = self._failure
        if err is not None:
            raise fault_of(err) or Fault(f"an experiment could not be recorded ({type(err).__name__}: {err}); "
                                         "fix the cause, then run 'autoresearch resume'") from err

    def _start_thread(self, plans: list[Plan], rows: list | None = None) -> threading.Event:
        """Run one group in a worker thread; the returned event is set when its rows are written. (Waiting on
        events, not Thread.join: a join interrupted by Ctrl-C can report a live thread as finished.)"""
        done = threading.Event()
        with self._lock:
            self._active += 1

        def work():
            try:
                written = self._execute(plans)
                if rows is not None:
                    rows.extend(written)
            except Exception as err:  # rows could not even be written as crashes: stop, say why
                self._failure = err
                self.halt(f"stopped: experiment [{plans[0].index}] could not be recorded")
            finally:
                with self._lock:
                    self._active -= 1
                    self.in_flight -= {r.index for r in self.rows()}
                done.set()

        threading.Thread(target=work, name=f"experiment-{plans[0].index}", daemon=True).start()
        return done

    def _join(self, workers: list[threading.Event]) -> None:
        for done in workers:
            while not done.wait(0.2):
                pass

    def _wait_any(self, workers: list[threading.Event]) -> None:
        pending = [d for d in workers if not d.is_set()]
        if pending:
            pending[0].wait(0.2)
        else:
            time.sleep(0.2)

    def _execute(self, plans: list[Plan]) -> list[Row]:
        """Run a group (one configuration, one or more seeds) and record its rows; then confirm a new best keep.
        Whatever fails along the way, each run still gets its row (a crash with the reason) and the worktree is
        released; only a failure to write even that row (a full disk) is raised."""
        outcomes: list[Outcome] = []
        commit, worktree = plans[0].commit, None
        try:
            try:
                for plan in plans:
                    skip = self.halt_reason or _first_baseline_run_crashed(outcomes)
                    if skip:
                        outcomes.append(self.not_run(plan, commit or plan.parent_commit, skip, worktree))
                        continue
                    outcome = self._run(plan, commit, worktree)
                    commit, worktree = outcome.commit, outcome.worktree
                    outcomes.append(outcome)
                outcomes += self._more_runs(outcomes)
                rows = self.record_group(outcomes)
            finally:
                with self._lock:
                    self.in_flight -= {plan.index for plan in plans} | {o.plan.index for o in outcomes}
            self._diagnose(outcomes)
            rows += self._fix_and_rerun(plans[0], rows, worktree)
            rows += self._confirm(plans[0], rows, worktree)
        except Exception as err:
            if disk_full(err):
                raise
            rows = self.crash_rows(plans, commit, f"engine error: {type(err).__name__}: {err}")
        finally:
            self._release(plans[0], worktree, refused=commit in (None, plans[0].parent_commit))
        return rows

    def crash_rows(self, plans: list[Plan], commit: str | None, reason: str) -> list[Row]:
        """Crash rows built from the plans alone, for runs whose measuring or recording failed; rows already
        written stay as they are. Nothing else is read, so the same failure cannot strike twice."""
        written = {r.index: r for r in self.rows()}
        rows = []
        for plan in plans:
            if plan.index in written:
                rows.append(written[plan.index])
                continue
            what = plan.hypothesis.description or plan.hypothesis.summary() or plan.name
            row = Row(index=plan.index, branch=plan.branch, parent_commit=plan.parent_commit,
                      commit=commit or plan.parent_commit, recipe=self.recipe.label,
                      metric_name=self.c.objective.metric_name, metric_value=None, memory_gb=None, elapsed_min=0.0,
                      launcher=self.launcher.name, job_id="none", command="", log_path="none", status="crash",
                      description=f"{what}; crash: {reason}")
            self.record(row, extra={"end": reason, "run": plan.run})
            self.say(self._progress(row))
            rows.append(row)
        return rows

    def _release(self, plan: Plan, worktree: Path | None, *, refused: bool) -> None:
        """Release the worktree; when its commit never happened, what is in it is the engine's own change (unless
        the person edited it after `autoresearch new`), reproducible from the journal, and goes with it."""
        hand_edited = any(e["step"] == "prepared" and e["name"] == plan.name for e in self.journal.events())
        if worktree is not None and not self.ws.release(worktree, discard=refused and not hand_edited):
            self.say(f"[{plan.index}] kept worktree {self.rel(worktree)}: the run left files in it")

    def _run(self, plan: Plan, commit: str | None, worktree: Path | None) -> Outcome:
        """Branch and commit (first run of a group), launch, wait, measure. Never raises: a failure is an outcome."""
        job = None
        try:
            if commit is None:
                start = self.ws.ensure_baseline(plan.parent_commit) if plan.is_baseline else plan.parent_commit
                worktree = self.ws.create(plan.name, start)
                self.journal.record("branch", plan.index, worktree=str(worktree))
                change = plan.hypothesis.summary() or "unmodified recipe"
                self.checkpoint("before edit", f"[{plan.index}] {plan.name} from {plan.parent}: {change}")
                commit = self._commit(plan, worktree)
                self.checkpoint("after edit", f"[{plan.index}] {plan.branch} at {commit[:10]}")
            else:
                worktree = worktree or self.ws.create(plan.name, commit)
                self.journal.record("branch", plan.index, worktree=str(worktree))
            self.journal.record("committed", plan.index, commit=commit)
            if plan.hypothesis.failure:
                result = JobResult(JobState.FAILED, None, plan.hypothesis.failure, 0.0)
            else:
                self._say_sentence()
                job = self._launch(plan, worktree)
                result = job.wait(should_stop=self.watch(plan, job, worktree))
                if self.progress is not None:
                    self.progress.done(plan.run)
        except Exception as err:  # the run consumed its index: it must still become a row
            reason = f"engine error: {type(err).__name__}: {err}"
            if job is not None:
                job.cancel(reason)
            result = JobResult(JobState.FAILED, None, reason, 0.0)
        finally:
            self.gpus.give_back(plan.index)
        self.journal.record("finished", plan.index, result=_result_dict(result))
        return self._measured(plan, commit or plan.parent_commit, job, result, worktree)

    def _measured(self, plan: Plan, commit: str, job: Job | None, result: JobResult, worktree: Path | None) -> Outcome:
        """The run measured; a reader that fails on its outputs (a metric too large for a float) makes it a crash
        that still knows its commit and worktree."""
        try:
            return self.measure(plan, commit, job, result, worktree)
        except Exception as err:
            if disk_full(err):
                raise
            failed = JobResult(JobState.FAILED, result.exit_code,
                               f"engine error reading the run's outputs: {type(err).__name__}: {err}", result.run_s)
            return Outcome(plan, commit, failed, job.job_id if job else "none", job.command if job else "",
                           job.log_path if job else self.c.run_dir(plan.run) / "run.log", worktree=worktree)

    def job_name(self, index: int) -> str:
        """Unique across campaigns and repositories (cluster schedulers key singletons and lookups on it)."""
        tag = hashlib.sha1(str(self.c.dir.resolve()).encode()).hexdigest()[:6]
        return f"ar-{self.c.name}-{tag}-{index:03d}"

    def not_run(self, plan: Plan, commit: str, reason: str, worktree: Path | None) -> Outcome:
        return Outcome(plan, commit, JobResult(JobState.CANCELLED, None, reason, 0.0), worktree=worktree,
                       log_path=self.c.run_dir(plan.run) / "run.log")

    def _commit(self, plan: Plan, worktree: Path) -> str:
        if plan.is_baseline:
            return self.ws.ensure_baseline(plan.parent_commit)
        h = plan.hypothesis
        if h.failure:
            return self.ws.commit(worktree, [], redact(f"{h.name}: failed before running ({h.failure})\n"), allow_empty=True)
        paths = list(self.ws.changed_paths(worktree))  # hand edits made after `autoresearch new`
        paths += self.recipe.apply(worktree, h.sets)
        if h.patch:
            paths += self.ws.apply_patch(worktree, Path(h.patch))
        if h.edit is not None:
            h.edit(worktree)
            paths += self.ws.changed_paths(worktree)
        paths = list(dict.fromkeys(paths))
        title = h.description or h.summary() or h.name
        body = "\n".join(f"- {k} = {v}" for k, v in h.sets.items())
        message = f"{h.name}: {title}\n\n{body}\n\nautoresearch: campaign {self.c.name}, experiment {plan.index}\n"
        if not paths:
            message = f"{h.name}: {title} (no change produced)\n"
        return self.ws.commit(worktree, paths, redact(message), allow_empty=not paths)

    def _launch(self, plan: Plan, worktree: Path) -> Job:
        run_dir = self.c.run_dir(plan.run)
        run_dir.mkdir(parents=True, exist_ok=True)
        _set_aside(run_dir / "run.log")
        Census.take(run_dir, worktree).save(self._census_path(plan))
        limit = stoprules.run_limit(self.c.rules, now=time.time())
        launch = self.recipe.launch(worktree, run_dir, limit)
        argv = launch.argv + (self.recipe.seed_args(worktree, plan.seed) if plan.seed is not None else [])
        marker = f"{self.c.dir}#{plan.index}"
        env = {**launch.env, **(brev.prepare(self.c.options["brev"], run_dir) if self.c.options.get("brev") else {})}
        spec = RunSpec(name=self.job_name(plan.index), argv=argv, cwd=launch.cwd,
                       log_path=run_dir / "run.log", run_dir=run_dir, env={**env, RUN_MARKER: marker},
                       timeout_s=limit, gpus=self.gpus.take(plan.index))
        self.journal.record("launching", plan.index, marker=marker, job_name=spec.name, run_dir=str(run_dir))
        self.checkpoint("before launch", f"[{plan.index}] {redact(' '.join(argv))} on {self.launcher.name}")
        job = self.launcher.submit(spec)
        self.journal.record("launched", plan.index, job=job.handle(), job_id=job.job_id, command=job.command,
                            log_path=str(job.log_path))
        self.checkpoint("after launch", f"[{plan.index}] job {job.job_id}, log {self.rel(job.log_path)}")
        self.say(f"[{plan.index}] launched {plan.name} on {self.launcher.name} (job {job.job_id}), log {self.rel(job.log_path)}")
        return job

    def measure(self, plan: Plan, commit: str, job: Job | None, result: JobResult, worktree: Path | None) -> Outcome:
        log_path = job.log_path if job else self.c.run_dir(plan.run) / "run.log"
        outputs = self.outputs(plan, log_path, worktree)
        reading = self.source.read(outputs)
        if reading:
            save_curve(self.c.run_dir(plan.run), reading.points)
        value = aggregate(reading.points, self.c.objective.aggregate, maximize=self.c.objective.maximize) if reading else None
        return Outcome(plan, commit, result, job.job_id if job else "none", job.command if job else "", log_path,
                       value, self.source.memory_gb(outputs) or result.peak_memory_gb,
                       reading.source if reading else f"nothing found by {self.source}",
                       (reading.problem if reading else None) or self.source.failure(outputs),
                       self.source.ending(outputs), worktree,
                       curve_jitter([p.value for p in reading.points]) if reading else None)

    def outputs(self, plan: Plan, log_path: Path, worktree: Path | None) -> RunOutputs:
        """What a run may read: its log, and the files under its folders that the census at launch did not hold."""
        run_dir = self.c.run_dir(plan.run)
        return RunOutputs(log_path, run_dir, worktree or run_dir, Census.load(self._census_path(plan)))

    def _census_path(self, plan: Plan) -> Path:
        return self.c.dir / CENSUS / f"{plan.run}.json"

    def record_group(self, outcomes: list[Outcome]) -> list[Row]:
        """One verdict for the group's valid runs (with the configuration's earlier runs, as a confirmation
        has), one row per run in index order; crashed runs are crash rows."""
        rows = []
        verdict = self._group_verdict(outcomes)
        for o in outcomes:
            why, pruned = o.crashed, o.result.reason.startswith(PRUNED)
            status, note = ("crash", self._crash_note(o, why)) if why else (verdict.status, verdict.note)
            if pruned:
                status, note, why = "discard", f"{o.result.reason} (stopped early: no evidence against the idea)", None
            what = o.plan.hypothesis.description or o.plan.hypothesis.summary() or o.plan.name
            role = f"{o.plan.role}" + (f", seed {o.plan.seed}" if o.plan.seed is not None else "") if o.plan.role else ""
            row = Row(
                index=o.plan.index, branch=o.plan.branch, parent_commit=o.plan.parent_commit, commit=o.commit,
                recipe=self.recipe.label, metric_name=self.c.objective.metric_name,
                metric_value=None if why else o.value, memory_gb=None if why else o.memory,
                elapsed_min=o.result.run_s / 60, launcher=self.launcher.name, job_id=o.job_id, command=o.command,
                log_path=self.rel(o.log_path), status=status,
                description=f"{what}{f' ({role})' if role else ''}; {note}",
            )
            gpus = self.gpus_held()
            self.record(row, extra={"queue_s": o.result.queue_s, "metric_source": o.source, "end": o.result.reason,
                                     "run": o.plan.run, "ending": o.ending, "seed": o.plan.seed,
                                     "interrupted": o.interrupted, "jitter": o.jitter, "gpus": gpus,
                                     "gpu_hours": o.result.run_s / 3600 * gpus, "pruned": pruned})
            if why:
                self._note_crash(o.plan, o.log_path, note)
            self._remember(o.plan, row)
            rows.append(row)
        return rows

    def _crash_note(self, o: Outcome, why: str) -> str:
        """A crash in the row and on the console: what ended it, its log's error line, where to read more."""
        log = o.log_path or self.c.run_dir(o.plan.run) / "run.log"
        if o.value is None and o.result.succeeded and not o.failure:
            why = f"no {self.c.objective.metric_name} found ({self.source})"
        error = None if o.result.succeeded else triage.error_line(_tail(log).splitlines())
        return (f"crash: {why}" + (f": {error}" if error else "")
                + f"; log {self.rel(log)}, its tail in {self.rel(self.c.dir / 'notes.md')}")

    def _group_verdict(self, outcomes: list[Outcome]) -> Verdict:
        plan = outcomes[0].plan
        earlier = self._runs_of(outcomes[0].commit)
        runs = earlier + [(_seed_key(o.plan.seed), o.value) for o in outcomes if not o.crashed]
        if len(runs) == len(earlier):
            return Verdict("crash", "no valid metric")
        values, seeds = [v for _, v in runs], tuple(s for s, _ in runs)
        if plan.is_baseline:
            spread = pooled_spread([values])
            return Verdict("keep", "the reference" + (f" (mean {statistics.fmean(values):.6g} of {len(values)} runs, "
                                                      f"spread {spread.sd:.4g})" if spread else ""))
        new = [o.value for o in outcomes if not o.crashed and o.value is not None]
        return judge(values, plan.reference, maximize=self.c.objective.maximize, min_delta=self.c.min_delta,
                     spread=self.spread(outcomes[0].commit, new), z=self.c.options.get("z", Z_DEFAULT), seeds=seeds,
                     simplifies=lambda: self._simplifies(plan, outcomes[0].commit))

    def _more_runs(self, outcomes: list[Outcome]) -> list[Outcome]:
        """A single run is a look, not a finding: while the runs so far are ahead by the look's bar (the candidate
        bar after one, the continue bar after two) and short of the keep bar, one more run with another seed is
        made, up to MAX_LOOK_RUNS; then all are judged together (one verdict, a row each)."""
        first = outcomes[0]
        if (len(outcomes) != 1 or first.crashed or first.plan.is_baseline or first.plan.role
                or not self.c.options.get("sequential") or not self.recipe.seeded()):
            return []
        added: list[Outcome] = []
        while not self.halt_reason and len(added) + 1 < MAX_LOOK_RUNS and not any(o.crashed for o in added):
            values = [o.value for o in (first, *added) if o.value is not None]
            spread = self.spread(first.commit, values if added else None)
            look = dict(maximize=self.c.objective.maximize, spread=spread, min_delta=self.c.min_delta)
            if spread is None or spread.source != "repeats":
                break
            if added and ahead(values, first.plan.reference, z=self.c.options.get("z", Z_DEFAULT), **look):
                break
            if not ahead(values, first.plan.reference, z=CANDIDATE_Z if not added else CONTINUE_Z, **look):
                break
            if not self._may_launch():
                self.say(f"[{first.plan.index}] no room for another run of {first.plan.name}: judged on {len(values)}")
                break
            nth = ("second", "third", "fourth")[len(added)]
            again = self._plan_again(first.plan, first.commit, f"{nth} run of [{first.plan.index}]", seeded=True)
            self.say(f"[{first.plan.index}] {first.plan.name} is ahead of the look's bar: a {nth} run, seed "
                     f"{again.seed}, before its verdict")
            added.append(self._run(again, first.commit, first.worktree))
        return added

    def _confirm(self, plan: Plan, rows: list[Row], worktree: Path | None) -> list[Row]:
        """--confirm: a new best keep is run once more with another seed before anything builds on it; if it does
        not hold up, its confirmation row says so (a discard) and it stops counting as the best."""
        if not self.c.options.get("confirm") or plan.is_baseline or plan.role.startswith("confirmation"):
            return []
        top = self.best_row()
        if not rows or rows[-1].status != "keep" or top is None or top.commit != rows[-1].commit:
            return []
        if not self._may_launch():
            self.say(f"[{plan.index}] no room left to confirm {plan.name}: it stays an unconfirmed keep")
            return []
        again = self._plan_again(plan, rows[-1].commit, f"confirmation of [{rows[0].index}]", seeded=True)
        return self.record_group([self._run(again, rows[-1].commit, worktree)])

    def _fix_and_rerun(self, plan: Plan, rows: list[Row], worktree: Path | None) -> list[Row]:
        """Crash triage: a crash that looks like the change's own small mistake (syntax error, missing import, bad
        key) is fixed by the hypothesis's fixer with a follow-up commit on the same branch and rerun, a few times
        at most; each rerun is its own row. A crash that keeps coming back stays a crash."""
        fix = plan.hypothesis.fix
        attempts = 0
        written: list[Row] = []
        while (fix and worktree is not None and (written or rows)[-1].status == "crash"
               and attempts < self.c.options.get("max_fixes", MAX_FIXES) and self._may_launch()):
            last = (written or rows)[-1]
            tail = _tail(self.c.repo / last.log_path)
            if not triage.trivial_crash(tail) or not fix(worktree, tail):
                break
            attempts += 1
            paths = self.ws.changed_paths(worktree)
            commit = self.ws.commit(worktree, paths, redact(f"{plan.name}: fix after crash [{last.index}]\n"))
            again = self._plan_again(plan, commit, f"rerun of [{last.index}] after fix {attempts}", seeded=False)
            written += self.record_group([self._run(again, commit, worktree)])
        return written

    def _plan_again(self, original: Plan, commit: str | None, role: str, *, seeded: bool,
                    rerun_of: int | None = None) -> Plan:
        """One more run of a configuration already on its branch (a confirmation, a rerun after a fix or an
        interruption)."""
        with self._lock:
            self._check_may_launch()
            index = self.next_index()
            run_number = self._runs_of_branch(original.branch) + 1
            if seeded:
                self._require_seeds()
            seed = self.seed_base() + run_number - 1 if seeded else original.seed
            hypothesis = replace(original.hypothesis, repeats=1, fix=None)
            plan = replace(original, index=index, run=f"{original.name}-r{run_number}", seed=seed, group=(index,),
                           role=role, hypothesis=hypothesis, commit=commit)
            self.journal.record("intent", index, name=plan.name, run=plan.run, branch=plan.branch, parent=plan.parent,
                                parent_commit=plan.parent_commit, hypothesis=hypothesis.to_dict(),
                                effective=plan.effective, reference=asdict(plan.reference) if plan.reference else None,
                                seed=seed, group=[index], role=role, commit=commit, rerun_of=rerun_of)
            self.in_flight.add(index)
        return plan

    # -- interruptions -------------------------------------------------------------------------------
    def owed_reruns(self, *, baseline_only: bool = False) -> list:
        """Interrupted runs not re-run yet, the baseline's first (the spread rests on them)."""
        attempts = self.journal.attempts()
        settled = {a.data.get("rerun_of") for a in attempts.values()}
        owed = [a for a in attempts.values() if a.done and a.data.get("interrupted") and a.index not in settled
                and a.data.get("commit") and (not baseline_only or a.data.get("name") == BASELINE)]
        return sorted(owed, key=lambda a: (a.data.get("name") != BASELINE, a.index))

    def rerun_interrupted(self, *, baseline_only: bool = False) -> list[Row]:
        """Re-run every interrupted run on its own commit, in a new row that says so, before a verdict needs it.
        Runs of one interrupted group are judged together again."""
        groups: dict[tuple, list[Plan]] = {}
        for attempt in self.owed_reruns(baseline_only=baseline_only):
            if not self._may_launch():
                self.say(f"no room left to re-run the interrupted run [{attempt.index}]: {self.status().sentence}")
                break
            original = recovery.plan_from(attempt)
            if not original.is_baseline and original.reference is not None:
                fresh = self._reference(original.reference.label, original.parent_commit) or self._baseline_reference()
                original = replace(original, reference=fresh)
            commit = None if attempt.data.get("uncommitted") else attempt.data["commit"]  # None: apply the change anew
            plan = self._plan_again(original, commit, f"rerun of [{attempt.index}] (interrupted)",
                                    seeded=False, rerun_of=attempt.index)
            groups.setdefault(original.group, []).append(plan)
        rows: list[Row] = []
        for plans in groups.values():
            self.say(f"re-running {len(plans)} interrupted run(s) of {plans[0].name} on {plans[0].branch}")
            rows += self._supervise(plans)
        return rows

    def _diagnose(self, outcomes: list[Outcome]) -> None:
        """Symptoms of each run go to the notes, the session and the journal (the catalog reads their areas)."""
        for o in outcomes:
            if o.log_path is None or not o.log_path.exists():
                continue
            outputs = self.outputs(o.plan, o.log_path, o.worktree)
            found = triage.diagnose(outputs, max_new_tokens=self.recipe.max_new_tokens(o.worktree or self.c.repo))
            if not found:
                continue
            self.journal.record("diagnosis", index=None, run=o.plan.index, areas=[f.area for f in found],
                                symptoms=[f.detail for f in found])
            text = f"[{o.plan.index}] {o.plan.name}: " + "; ".join(f.detail for f in found)
            with (self.c.dir / "notes.md").open("a") as fh:
                fh.write(redact(f"\n## symptoms of {text}\n"))
            self.checkpoint("diagnosis", text)

    def _remember(self, plan: Plan, row: Row) -> None:
        """Session memory after a result: the files it generated and changed, a checkpoint, the progress lines."""
        self.memory.file("Generated", row.log_path, f"run log of [{row.index}] {plan.name} ({row.status})")
        if plan.hypothesis.sets or plan.hypothesis.patch:
            self.memory.file("Changed", f"{plan.branch}", f"[{row.index}] {plan.hypothesis.summary()}")
        self.checkpoint("result", self._progress(row))
        self.say(self._progress(row))
        self._say_sentence()

    def _say_sentence(self) -> None:
        """The stop sentence, before and after every run; not again when the last one said is the same."""
        sentence = self.status().sentence
        if sentence != self._said:
            self.say(sentence)
        self._said = sentence

    def _simplifies(self, plan: Plan, commit: str) -> bool:
        """Smaller diff than the parent (against the baseline), or a change that removes more than it adds."""
        base = self.ws.commit_of(self.ws.branch(BASELINE))
        if base is None or commit == plan.parent_commit:
            return False
        smaller = self.ws.diff_size(base, commit) < self.ws.diff_size(base, plan.parent_commit)
        return smaller or self.ws.net_lines(plan.parent_commit, commit) < 0

    def record(self, row: Row, extra: dict) -> None:
        """Ledger row, then its note, then the journal: replay finds whichever step a kill interrupted."""
        replayed = any(r.index == row.index for r in self.rows())
        if replayed:
            line = next(r for r in self.rows() if r.index == row.index).to_line()
        else:
            line = self.ledger.append(row)
        with self.ws.locked():
            self.notes.add(row.commit, line, campaign=self.c.name, extra=extra)
        self.journal.record("row", row.index, status=row.status, commit=row.commit,
                            interrupted=bool(extra.get("interrupted")), jitter=extra.get("jitter"),
                            gpu_hours=extra.get("gpu_hours", 0.0), pruned=bool(extra.get("pruned")))
        if not replayed:
            integrations.row_recorded(self, row, extra)

    def _note_crash(self, plan: Plan, log_path: Path, why: str) -> None:
        tail = log_path.read_text(errors="replace").splitlines()[-TAIL_LINES:] if log_path.exists() else ["(no log)"]
        text = f"\n## {plan.index} {plan.name}: crash\n\n{why}\n\nLast lines of {self.rel(log_path)}:\n\n```\n" + "\n".join(tail) + "\n```\n"
        with (self.c.dir / "notes.md").open("a") as fh:
            fh.write(redact(text))

    def _progress(self, row: Row) -> str:
        value = "—" if row.status == "crash" else f"{row.metric_value:.6g}"
        return (f"[{row.index}] {row.status:<7} {row.branch.rsplit('/', 1)[1]}  {row.metric_name}={value}  "
                f"{row.elapsed_min:.1f} min  {row.description}")

    def rel(self, path: Path) -> str:
        try:
            return str(Path(path).resolve().relative_to(self.c.repo.resolve()))
        except ValueError:
            return str(path)

    # -- delegated: checks, smoke runs, recovery ------------------------------------------------------
    def preflight(self) -> list[Check]:
        return checks.preflight(self)

    def _check_preflight(self) -> None:
        checks.check_preflight(self)

    def verify(self) -> list[str]:
        return checks.verify(self)

    def smoke(self, sets: dict[str, str], limit_s: float = 600.0) -> dict:
        return smoke.smoke(self, sets, limit_s)

    def recover(self) -> list[str]:
        with self.writer.held():
            return recovery.recover(self)


def _first_baseline_run_crashed(outcomes: list[Outcome]) -> str | None:
    """The baseline's further repeats are not run after its first run crashed: they would crash alike and cost
    the budget; the diagnosis and a rerun come first."""
    first = outcomes[0] if outcomes else None
    if first is None or not first.plan.is_baseline or not first.crashed or first.interrupted:
        return None
    return f"not run: the baseline's first run [{first.plan.index}] crashed"


def _set_aside(log: Path) -> None:
    """Every run starts a fresh log; one already there (planted, or left by an earlier campaign) is kept aside."""
    if log.exists():
        log.rename(log.with_name(f"{log.name}.before-{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 10**6}"))


def _seed_key(seed: int | None) -> str:
    return "own" if seed is None else str(seed)


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def _result_dict(result: JobResult) -> dict:
    data = asdict(result)
    data["state"] = result.state.value
    return data


