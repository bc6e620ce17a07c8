"""Checks around a campaign: preflight before anything runs, and the ledger's agreement with git afterwards."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from nrl_autoresearch.core.errors import UsageError
from nrl_autoresearch.core.recipe import Check, unknown
from nrl_autoresearch.runner import brev, gpus
from nrl_autoresearch.runner.workspace import BASELINE

MIN_FREE_GIB = 1.0  # below this, not even a run's logs fit

if TYPE_CHECKING:
    from nrl_autoresearch.core.ledger import Row
    from nrl_autoresearch.runner.engine import Engine


def preflight(engine: Engine, gpus_needed: int | None = None) -> list[Check]:
    """The recipe's and the launcher's own checks, free disk, and the person's unrelated changes; `gpus_needed`
    for a run smaller than the recipe's (a smoke run)."""
    checks = list(engine.recipe.preflight(engine.c.repo))
    checks += [Check(ok, "launcher: " + item, blocking=True) for ok, item in engine.launcher.preflight()]
    checks.append(_disk(engine))
    checks += _local_gpus(engine, gpus_needed)
    if engine.gpus.per_experiment:
        visible = gpus.visible_gpus()
        checks.append(Check(len(visible) >= engine.gpus.per_experiment, "GPUs per experiment",
                            f"{engine.gpus.per_experiment} requested, {len(visible)} visible"))
    checks += _brev(engine)
    checks += _baseline_branch(engine)
    refused = engine.ws.probe_commit()
    checks.append(Check(refused is None, "git accepts the experiment commits", refused or "a probe commit passed",
                        blocking=refused is not None))
    dirty = engine.ws.user_state().dirty
    checks.append(Check(not dirty, "unrelated uncommitted changes (left alone)", ", ".join(dirty) or "none",
                        blocking=False))
    return checks


def _disk(engine: Engine) -> Check:
    """Room where every run writes its logs and checkpoints, against what one run's checkpoints take where the
    recipe can size them."""
    where = engine.c.run_dir("run").parent
    while not where.exists():
        where = where.parent
    free = shutil.disk_usage(where).free / 2**30
    item, figure = "free disk for checkpoints and logs", f"{free:.1f} GiB free at {where}"
    if free < MIN_FREE_GIB:
        return Check(False, item, f"{figure}: free some space there (runs need {MIN_FREE_GIB:.0f} GiB at least)")
    sized = engine.recipe.checkpoint_gib(engine.c.repo)
    if sized is None:
        return Check(True, item, figure)
    need, how = sized
    if need is None:
        return unknown(item, f"{figure}; {how}")
    if free < need:
        return Check(False, item, f"{figure}, one run's checkpoints take about {need:.1f} GiB ({how}): free space "
                     "there, lower checkpointing.keep_top_k or set checkpointing.save_optimizer=false")
    return Check(True, item, f"{figure}, one run's checkpoints take about {need:.1f} GiB ({how})")


def _local_gpus(engine: Engine, needed: int | None) -> list[Check]:
    """A local run needs the recipe's GPUs here and free, with the memory it takes on each (NVML; a machine
    without it has none)."""
    needed = engine.recipe.gpus_needed(engine.c.repo) if needed is None else needed
    if engine.launcher.name != "local" or not needed:
        return []
    share = engine.recipe.gpu_memory_share(engine.c.repo) or gpus.DEFAULT_FREE_SHARE
    ok, detail = gpus.local_fit(needed, share, gpus.states())
    return [Check(ok, "GPUs for a local run", detail)]


def _baseline_branch(engine: Engine) -> list[Check]:
    """A `<prefix>/baseline` made by hand is not the unmodified recipe: it must never be run as the reference."""
    branch = engine.ws.branch(BASELINE)
    if engine.ws.commit_of(branch) is None or engine.ws.is_baseline_record(branch, engine.c.base_commit):
        return []
    return [Check(False, "baseline branch", f"{branch} exists but is not the record of the starting point "
                  f"{engine.c.base_commit[:10]}: rename it (git branch -m {branch} NEW-NAME), then run again")]


def _brev(engine: Engine) -> list[Check]:
    """On Brev: the volume is there with room, and the repository's .env exists (names only, never values)."""
    options = engine.c.options.get("brev")
    if not options:
        return []
    if not Path(options["volume"]).is_dir():
        return [Check(False, "Brev volume", f"{options['volume']} is missing")]
    free = brev.free_gb(options)
    env = brev.load_env_file(engine.c.repo)
    return [
        Check(free >= brev.STOP_BELOW_GB, "free space on the Brev volume", f"{free:.0f} GiB free on {options['volume']}",
              blocking=free < brev.STOP_BELOW_GB),
        Check(env is not None, "secrets in the repository's .env",
              f"loaded {', '.join(env)}" if env else "no .env: add WANDB_API_KEY or HF_TOKEN there before authenticated runs",
              blocking=False),
    ]


def check_preflight(engine: Engine, gpus_needed: int | None = None) -> None:
    failed = [c for c in preflight(engine, gpus_needed) if c.blocking and not c.ok]
    if failed:
        raise UsageError("preflight failed: " + "; ".join(f"{c.item}: {c.detail}" for c in failed)
                         + " (see 'autoresearch preflight')")


def verify(engine: Engine) -> list[str]:
    """Disagreements between the TSV, the git notes, the branches and the journal, one sentence each."""
    problems = _torn(engine)
    lines = engine.ledger.lines(engine.c.prefix)
    rows = [r for r, _ in lines]
    branches = engine.ws.branches()
    noted: dict[str, set[str]] = {}  # row line -> the commits whose note holds it
    for commit, entry in engine.notes.all_entries():
        if entry.get("campaign") == engine.c.name:
            noted.setdefault(entry["row"], set()).add(commit)
    for r, line in lines:
        problems += _row_problems(engine, r, branches, noted.get(line, set()))
    in_tsv = {line for _, line in lines}
    for line in sorted(set(noted) - in_tsv):
        problems.append(f"a git note holds row {line.split(chr(9), 1)[0]} that the TSV lacks (run 'autoresearch ledger rebuild')")
    with_rows = {r.branch for r in rows}
    attempts = engine.journal.attempts()
    pending = {a.data.get("branch") for a in attempts.values() if not a.done}
    prepared = {engine.ws.branch(e["name"]) for e in engine.journal.events() if e["step"] == "prepared"}
    for branch in sorted(set(branches) - with_rows - pending - prepared):
        problems.append(f"branch {branch} has no row")
    for a in sorted(attempts.values(), key=lambda a: a.index):
        if not a.done and a.index not in engine.in_flight:
            problems.append(f"run {a.index} ({a.data.get('name')}) was left in flight at step '{a.step}'")
    return problems


def _torn(engine: Engine) -> list[str]:
    fragment = engine.ledger.torn()
    if not fragment:
        return []
    return [f"the last line of {engine.c.ledger} is torn (a write cut short: {fragment[:40]!r}): the next 'autoresearch "
            "resume' completes it from the git notes, or run 'autoresearch ledger rebuild'"]


def _row_problems(engine: Engine, r: Row, branches: dict[str, str], notes_on: set[str]) -> list[str]:
    """A row's branch holds its commit, and its note sits on that commit."""
    problems = []
    if r.branch not in branches:
        if r.status != "crash" or r.commit != r.parent_commit:  # a crash before its branch could be created has none
            problems.append(f"row {r.index}: branch {r.branch} does not exist")
    elif branches[r.branch] != r.commit and not engine.ws.git.ok("merge-base", "--is-ancestor", r.commit, r.branch):
        problems.append(f"row {r.index}: commit {r.commit[:10]} is not on {r.branch}")
    if not notes_on:
        problems.append(f"row {r.index}: no git note on {r.commit[:10]} holds this row")
    elif r.commit not in notes_on:
        wrong = ", ".join(sorted(c[:10] for c in notes_on))
        problems.append(f"row {r.index}: its git note sits on {wrong}, not on its commit {r.commit[:10]} "
                        "('autoresearch ledger rebuild' still restores the TSV from it)")
    return problems
