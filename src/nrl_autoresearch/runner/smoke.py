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
from nrl_autoresearch.core.redact import redact
from nrl_autoresearch.runner import gpus
from nrl_autoresearch.runner.workspace import BASELINE

if TYPE_CHECKING:
    from nrl_autoresearch.runner.engine import Engine


def smoke(engine: Engine, sets: dict[str, str], limit_s: float = 600.0) -> dict:
    """Run the recipe with tiny settings in a scratch checkout, through the campaign's launcher once preflight
    passes, to check the plumbing the campaign will use. It never becomes a ledger row and decides nothing."""
    from nrl_autoresearch.runner.checks import check_preflight

    gpus, shrink = _scale(engine)
    check_preflight(engine, gpus_needed=gpus)
    commit = engine.ws.commit_of(engine.ws.branch(BASELINE)) or engine.c.base_commit
    engine.recipe.check_change(Snapshot(engine.ws.git, commit), sets)
    run_dir = engine.c.dir / "smoke" / time.strftime("%Y%m%d-%H%M%S")
    worktree = run_dir / "checkout"
    run_dir.mkdir(parents=True)
    engine.ws.git.run("worktree", "add", "--detach", "--quiet", str(worktree), commit)
    try:
        engine.recipe.apply(worktree, sets)
        launch = engine.recipe.launch(worktree, run_dir, limit_s)
        argv = launch.argv + engine.recipe.smoke_args(worktree) + shrink
        spec = RunSpec(name=f"{engine.job_name(0)}-smoke", argv=argv,
                       cwd=launch.cwd, log_path=run_dir / "run.log", run_dir=run_dir, env=launch.env,
                       timeout_s=limit_s)
        before = Census.take(run_dir, worktree)
        job = engine.launcher.submit(spec)
        result = job.wait(should_stop=lambda: engine.halt_reason)
        found = _smoke_findings(engine, spec, result, RunOutputs(spec.log_path, run_dir, worktree, before), gpus)
        return {**found, "gpus": {"used": gpus, "recipe": engine.recipe.gpus_needed(engine.c.repo),
                                  "overrides": shrink}}
    finally:
        engine.ws.git.run("worktree", "remove", "--force", str(worktree), check=False)  # our own scratch checkout


def _scale(engine: Engine) -> tuple[int, list[str]]:
    """A local smoke run takes the GPUs that are free, on one node, where the recipe allows it; other launchers
    give the recipe what it asks for."""
    if engine.launcher.name != "local":
        return engine.recipe.gpus_needed(engine.c.repo), []
    share = engine.recipe.gpu_memory_share(engine.c.repo) or gpus.DEFAULT_FREE_SHARE
    return engine.recipe.smoke_scale(engine.c.repo, len(gpus.free_gpus(share)))


def _smoke_findings(engine: Engine, spec: RunSpec, result: JobResult, outputs: RunOutputs, used: int) -> dict:
    reading = engine.source.read(outputs)
    step = engine.source.progress(outputs)
    value = aggregate(reading.points, engine.c.objective.aggregate, maximize=engine.c.objective.maximize) if reading else None
    return {
        "launcher": engine.launcher.name, "proved": _proved(engine, result, reading is not None, step, used),
        "command": redact(shlex.join(spec.argv)), "log_path": engine.rel(spec.log_path),
        "log_written": spec.log_path.exists() and spec.log_path.stat().st_size > 0,
        "ended": result.reason, "succeeded": result.succeeded, "seconds": round(result.run_s, 2),
        "metric": {"name": engine.c.objective.metric_name, "value": value,
                   "source": reading.source if reading else f"nothing found by {engine.source}"},
        "steps": step[0] if step else None,
        "seconds_per_step": round(result.run_s / step[0], 2) if step and step[0] else None,
        "failure": engine.source.failure(outputs), "ending": engine.source.ending(outputs),
    }


def _proved(engine: Engine, result: JobResult, read: bool, step, used: int) -> list[str]:
    """What the smoke run established, strongest last; nothing about the objective's value, nor about a layout
    larger than the one it ran on."""
    full = engine.recipe.gpus_needed(engine.c.repo)
    on = f" on {used} GPUs" + (f" (not the recipe's {full}: only its plumbing, not its layout)" if used < full else "")
    found = [f"the command starts through the {engine.launcher.name} launcher" + (on if used else "")]
    if result.succeeded:
        found.append("it runs to a clean exit with the tiny settings")
    if step:
        found.append(f"training steps are counted from its output ({step[0]} seen)")
    if read:
        found.append(f"the objective {engine.c.objective.metric_name} is read from its outputs")
    return found
