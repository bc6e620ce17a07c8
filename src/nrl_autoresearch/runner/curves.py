"""The objective's curve of one run, read again from what the journal says the run left (live or finished)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from nrl_autoresearch.core.campaign import CENSUS
from nrl_autoresearch.core.ledger import is_pruned
from nrl_autoresearch.core.metric import Census, RunOutputs
from nrl_autoresearch.runner.watch import load_curve

if TYPE_CHECKING:
    from nrl_autoresearch.runner.context import Context


def curve_of(context: Context, data: dict) -> list[tuple[float, float]]:
    """(step, value) points of the run an attempt's journal data describes; [] before it wrote any."""
    if not data.get("log_path") or not data.get("run_dir"):
        return []
    run_dir = Path(data["run_dir"])
    census = Census.load(context.campaign.dir / CENSUS / f"{data.get('run')}.json")
    outputs = RunOutputs(Path(data["log_path"]), run_dir, Path(data.get("worktree") or run_dir), census)
    reading = context.source.read(outputs)
    return [(p.step, p.value) for p in reading.points] if reading else []


def full_run_curves(context: Context, commit: str) -> list[list[tuple[float, float]]]:
    """The objective curves of a configuration's valid runs that ran in full (each run saves its curve): what a
    prune or a screen compares a new run with."""
    runs = {a.index: a.data["run"] for a in context.journal.attempts().values() if a.data.get("run")}
    curves = [
        load_curve(context.campaign.run_dir(runs[r.index]))
        for r in context.rows()
        if r.commit == commit and r.status != "crash" and not is_pruned(r.description) and r.index in runs
    ]
    return [c for c in curves if c]
