"""Checks around a campaign: preflight before anything runs, and the ledger's agreement with git afterwards."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from nrl_autoresearch.core.errors import UsageError
from nrl_autoresearch.core.names import BASELINE
from nrl_autoresearch.core.recipe import Check, unknown
from nrl_autoresearch.launchers import gpus
from nrl_autoresearch.runner import brev

MIN_FREE_GIB = 1.0  # below this, not even a run's logs fit

if TYPE_CHECKING:
    from nrl_autoresearch.core.ledger import Row
    from nrl_autoresearch.runner.context import Context


def preflight(context: Context, gpus_needed: int | None = None) -> list[Check]:
    """The recipe's and the launcher's own checks, free disk, and the person's unrelated changes; `gpus_needed`
    for a run smaller than the recipe's (a smoke run)."""
    checks = list(context.recipe.preflight(context.campaign.repo))
    checks += [Check(ok, "launcher: " + item, blocking=True) for ok, item in context.launcher.preflight()]
    checks.append(_disk(context))
    checks += _local_gpus(context, gpus_needed)
    if context.gpus.per_experiment:
        visible = gpus.visible_gpus()
        checks.append(
            Check(
                len(visible) >= context.gpus.per_experiment,
                "GPUs per experiment",
                f"{context.gpus.per_experiment} requested, {len(visible)} visible",
            )
        )
    checks += _brev(context)
    checks += _baseline_branch(context)
    refused = context.workspace.probe_commit()
    checks.append(
        Check(
            refused is None,
            "git accepts the experiment commits",
            refused or "a probe commit passed",
            blocking=refused is not None,
        )
    )
    dirty = context.workspace.user_state().dirty
    checks.append(
        Check(not dirty, "unrelated uncommitted changes (left alone)", ", ".join(dirty) or "none", blocking=False)
    )
    return checks


def _disk(context: Context) -> Check:
    """Room where every run writes its logs and checkpoints, against what one run's checkpoints take where the
    recipe can size them."""
    where = context.campaign.run_dir("run").parent
    while not where.exists():
        where = where.parent
    free = shutil.disk_usage(where).free / 2**30
    item, figure = "free disk for checkpoints and logs", f"{free:.1f} GiB free at {where}"
    if free < MIN_FREE_GIB:
        return Check(False, item, f"{figure}: free some space there (runs need {MIN_FREE_GIB:.0f} GiB at least)")
    sized = context.recipe.checkpoint_gib(context.campaign.repo)
    if sized is None:
        return Check(True, item, figure)
    need, how = sized
    if need is None:
        return unknown(item, f"{figure}; {how}")
    if free < need:
        return Check(
            False,
            item,
            f"{figure}, one run's checkpoints take about {need:.1f} GiB ({how}): free space "
            "there, lower checkpointing.keep_top_k or set checkpointing.save_optimizer=false",
        )
    return Check(True, item, f"{figure}, one run's checkpoints take about {need:.1f} GiB ({how})")


def _local_gpus(context: Context, needed: int | None) -> list[Check]:
    """A local run needs the recipe's GPUs here and free, with the memory it takes on each (NVML; a machine
    without it has none)."""
    needed = context.recipe.gpus_needed(context.campaign.repo) if needed is None else needed
    if context.launcher.name != "local" or not needed:
        return []
    share = context.recipe.gpu_memory_share(context.campaign.repo) or gpus.DEFAULT_FREE_SHARE
    ok, detail = gpus.local_fit(needed, share, gpus.states())
    return [Check(ok, "GPUs for a local run", detail)]


def _baseline_branch(context: Context) -> list[Check]:
    """A `<prefix>/baseline` made by hand is not the unmodified recipe: it must never be run as the reference."""
    branch = context.workspace.branch(BASELINE)
    workspace = context.workspace
    if workspace.commit_of(branch) is None or workspace.is_baseline_record(branch, context.campaign.base_commit):
        return []
    return [
        Check(
            False,
            "baseline branch",
            f"{branch} exists but is not the record of the starting point "
            f"{context.campaign.base_commit[:10]}: rename it (git branch -m {branch} NEW-NAME), then run again",
        )
    ]


def _brev(context: Context) -> list[Check]:
    """On Brev: the volume is there with room, and the repository's .env exists (names only, never values)."""
    options = context.campaign.options.get("brev")
    if not options:
        return []
    if not Path(options["volume"]).is_dir():
        return [Check(False, "Brev volume", f"{options['volume']} is missing")]
    free = brev.free_gb(options)
    env = brev.load_env_file(context.campaign.repo)
    return [
        Check(
            free >= brev.STOP_BELOW_GB,
            "free space on the Brev volume",
            f"{free:.0f} GiB free on {options['volume']}",
            blocking=free < brev.STOP_BELOW_GB,
        ),
        Check(
            env is not None,
            "secrets in the repository's .env",
            f"loaded {', '.join(env)}"
            if env
            else "no .env: add WANDB_API_KEY or HF_TOKEN there before authenticated runs",
            blocking=False,
        ),
    ]


def check_preflight(context: Context, gpus_needed: int | None = None) -> None:
    failed = [c for c in preflight(context, gpus_needed) if c.blocking and not c.ok]
    if failed:
        raise UsageError(
            "preflight failed: "
            + "; ".join(f"{c.item}: {c.detail}" for c in failed)
            + " (see 'autoresearch preflight')"
        )


def verify(context: Context) -> list[str]:
    """Disagreements between the TSV, the git notes, the branches and the journal, one sentence each."""
    problems = _torn(context)
    lines = context.ledger.lines(context.campaign.prefix)
    rows = [r for r, _ in lines]
    branches = context.workspace.branches()
    noted: dict[str, set[str]] = {}  # row line -> the commits whose note holds it
    for commit, entry in context.notes.all_entries():
        if entry.get("campaign") == context.campaign.name:
            noted.setdefault(entry["row"], set()).add(commit)
    for r, line in lines:
        problems += _row_problems(context, r, branches, noted.get(line, set()))
    in_tsv = {line for _, line in lines}
    for line in sorted(set(noted) - in_tsv):
        problems.append(
            f"a git note holds row {line.split(chr(9), 1)[0]} that the TSV lacks (run 'autoresearch ledger rebuild')"
        )
    with_rows = {r.branch for r in rows}
    attempts = context.journal.attempts()
    pending = {a.data.get("branch") for a in attempts.values() if not a.done}
    prepared = {context.workspace.branch(e["name"]) for e in context.journal.events("prepared")}
    for branch in sorted(set(branches) - with_rows - pending - prepared):
        problems.append(f"branch {branch} has no row")
    for a in sorted(attempts.values(), key=lambda a: a.index):
        if not a.done and a.index not in context.in_flight:
            problems.append(f"run {a.index} ({a.data.get('name')}) was left in flight at step '{a.step}'")
    return problems


def _torn(context: Context) -> list[str]:
    fragment = context.ledger.torn()
    if not fragment:
        return []
    return [
        (
            f"the last line of {context.campaign.ledger} is torn (a write cut short: {fragment[:40]!r}): the next "
            "'autoresearch resume' completes it from the git notes, or run 'autoresearch ledger rebuild'"
        )
    ]


def _row_problems(context: Context, r: Row, branches: dict[str, str], notes_on: set[str]) -> list[str]:
    """A row's branch holds its commit, and its note sits on that commit."""
    problems = []
    if r.branch not in branches:
        if r.status != "crash" or r.commit != r.parent_commit:  # a crash before its branch could be created has none
            problems.append(f"row {r.index}: branch {r.branch} does not exist")
    elif branches[r.branch] != r.commit and not context.workspace.git.ok(
        "merge-base", "--is-ancestor", r.commit, r.branch
    ):
        problems.append(f"row {r.index}: commit {r.commit[:10]} is not on {r.branch}")
    if not notes_on:
        problems.append(f"row {r.index}: no git note on {r.commit[:10]} holds this row")
    elif r.commit not in notes_on:
        wrong = ", ".join(sorted(c[:10] for c in notes_on))
        problems.append(
            f"row {r.index}: its git note sits on {wrong}, not on its commit {r.commit[:10]} "
            "('autoresearch ledger rebuild' still restores the TSV from it)"
        )
    return problems
