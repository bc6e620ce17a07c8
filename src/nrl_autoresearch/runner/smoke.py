"""Smoke runs: the recipe with tiny settings in a scratch checkout, to check the plumbing before a campaign.

They never become ledger rows and decide nothing: an underpowered run proves the wiring, not the idea.
"""

from __future__ import annotations

import shlex
import time
from typing import TYPE_CHECKING

from nrl_autoresearch.core.git import Snapshot
from nrl_autoresearch.core.launcher import JobResult, RunSpec
from nrl_autoresearch.core.metric import Census, RunOutputs, aggregate
from nrl_autoresearch.core.names import BASELINE
from nrl_autoresearch.core.redact import redact
from nrl_autoresearch.launchers import gpus
from nrl_autoresearch.runner.checks import check_preflight

if TYPE_CHECKING:
    from nrl_autoresearch.runner.context import Context


def smoke(context: Context, sets: dict[str, str], limit_s: float = 600.0) -> dict:
    """Run the recipe with tiny settings in a scratch checkout, through the campaign's launcher once preflight
    passes, to check the plumbing the campaign will use. It never becomes a ledger row and decides nothing."""
    used, shrink = _scale(context)
    check_preflight(context, gpus_needed=used)
    commit = context.workspace.commit_of(context.workspace.branch(BASELINE)) or context.campaign.base_commit
    context.recipe.check_change(Snapshot(context.workspace.git, commit), sets)
    run_dir = context.campaign.dir / "smoke" / time.strftime("%Y%m%d-%H%M%S")
    worktree = run_dir / "checkout"
    run_dir.mkdir(parents=True)
    context.workspace.git.run("worktree", "add", "--detach", "--quiet", str(worktree), commit)
    try:
        context.recipe.apply(worktree, sets)
        launch = context.recipe.launch(worktree, run_dir, limit_s)
        argv = launch.argv + context.recipe.smoke_args(worktree) + shrink
        spec = RunSpec(
            name=f"{context.job_name(0)}-smoke",
            argv=argv,
            cwd=launch.cwd,
            log_path=run_dir / "run.log",
            run_dir=run_dir,
            env=launch.env,
            timeout_s=limit_s,
        )
        before = Census.take(run_dir, worktree)
        job = context.launcher.submit(spec)
        result = job.wait(should_stop=lambda: context.halt_reason)
        found = _smoke_findings(context, spec, result, RunOutputs(spec.log_path, run_dir, worktree, before), used)
        return {
            **found,
            "gpus": {"used": used, "recipe": context.recipe.gpus_needed(context.campaign.repo), "overrides": shrink},
        }
    finally:
        # our own scratch checkout
        context.workspace.git.run("worktree", "remove", "--force", str(worktree), check=False)


def _scale(context: Context) -> tuple[int, list[str]]:
    """A local smoke run takes the GPUs that are free, on one node, where the recipe allows it; other launchers
    give the recipe what it asks for."""
    if context.launcher.name != "local":
        return context.recipe.gpus_needed(context.campaign.repo), []
    share = context.recipe.gpu_memory_share(context.campaign.repo) or gpus.DEFAULT_FREE_SHARE
    return context.recipe.smoke_scale(context.campaign.repo, len(gpus.free_gpus(share)))


def _smoke_findings(context: Context, spec: RunSpec, result: JobResult, outputs: RunOutputs, used: int) -> dict:
    reading = context.source.read(outputs)
    step = context.source.progress(outputs)
    value = (
        aggregate(reading.points, context.campaign.objective.aggregate, maximize=context.campaign.objective.maximize)
        if reading
        else None
    )
    return {
        "launcher": context.launcher.name,
        "proved": _proved(context, result, reading is not None, step, used),
        "command": redact(shlex.join(spec.argv)),
        "log_path": context.rel(spec.log_path),
        "log_written": spec.log_path.exists() and spec.log_path.stat().st_size > 0,
        "ended": result.reason,
        "succeeded": result.succeeded,
        "seconds": round(result.run_s, 2),
        "metric": {
            "name": context.campaign.objective.metric_name,
            "value": value,
            "source": reading.source if reading else f"nothing found by {context.source}",
        },
        "steps": step[0] if step else None,
        "seconds_per_step": round(result.run_s / step[0], 2) if step and step[0] else None,
        "failure": context.source.failure(outputs),
        "ending": context.source.ending(outputs),
    }


def _proved(context: Context, result: JobResult, read: bool, step, used: int) -> list[str]:
    """What the smoke run established, strongest last; nothing about the objective's value, nor about a layout
    larger than the one it ran on."""
    full = context.recipe.gpus_needed(context.campaign.repo)
    on = f" on {used} GPUs" + (f" (not the recipe's {full}: only its plumbing, not its layout)" if used < full else "")
    found = [f"the command starts through the {context.launcher.name} launcher" + (on if used else "")]
    if result.succeeded:
        found.append("it runs to a clean exit with the tiny settings")
    if step:
        found.append(f"training steps are counted from its output ({step[0]} seen)")
    if read:
        found.append(f"the objective {context.campaign.objective.metric_name} is read from its outputs")
    return found
