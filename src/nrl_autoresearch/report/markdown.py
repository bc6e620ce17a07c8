"""The campaign in a few lines of Markdown, fit for a pull request or a chat message.

The short forms of an experiment (its name, its shown value, the command that reproduces it) live here too:
the HTML page and the chart use the same words, so the three renderings never disagree.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from nrl_autoresearch.core.campaign import Campaign
from nrl_autoresearch.core.ledger import Row, best, is_pruned
from nrl_autoresearch.core.stoprules import StopStatus

DESCRIPTION_CHARS = 80


def short_name(row: Row) -> str:
    """The experiment's name: the last part of its branch."""
    return row.branch.rsplit("/", 1)[-1]


def shown(row: Row) -> str:
    """The metric as people read it; a crash has no value."""
    return "crash" if row.metric_value is None else f"{row.metric_value:.6g}"


def reproduce(row: Row, campaign: Campaign) -> str:
    """The command that re-runs an experiment from its commit in a fresh worktree, writing into a new folder:
    the person's own checkout and the original run's outputs are left as they are. Run from the repository."""
    name = short_name(row)
    run_dir = (
        Path(row.log_path).parent if Path(row.log_path).is_absolute() else campaign.repo / Path(row.log_path).parent
    )
    out = run_dir.with_name(f"{run_dir.name}-reproduced-{row.index}")
    worktree = (campaign.dir / "reproduce" / name).relative_to(campaign.repo).as_posix()
    command = row.command.replace(str(run_dir), str(out))
    return (
        f"git worktree add --detach {shlex.quote(worktree)} {row.commit} && mkdir -p {shlex.quote(str(out))} && "
        f"cd {shlex.quote(worktree)} && {command} 2>&1 | tee {shlex.quote(str(out / 'run.log'))}"
    )


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def counts(rows: list[Row], gpu_hours: float | None = None) -> str:
    tally = {s: sum(r.status == s for r in rows) for s in ("keep", "discard", "crash")}
    pruned = sum(is_pruned(r.description) for r in rows)
    hours = f", {gpu_hours:.3g} GPU-hours" if gpu_hours else ""
    return (
        f"{len(rows)} attempted: {tally['keep']} keep, {tally['discard']} discard"
        f"{f' ({pruned} pruned)' if pruned else ''}, {tally['crash']} crash{hours}"
    )


def render_markdown(
    campaign: Campaign, rows: list[Row], *, status: StopStatus, image: str | None = None, gpu_hours: float | None = None
) -> str:
    """Objective, stop status, one table line per row, and the best keep with its reproduce command."""
    objective = campaign.objective
    lines = [
        f"## autoresearch: {campaign.name}",
        "",
        f"**Objective:** {objective.direction} `{objective.metric_name}` ({objective.source}, {objective.aggregate})  ",
        f"**Stop:** {status.sentence}  ",
        f"**Rows:** {counts(rows)}" + ("  " if gpu_hours is not None else ""),
        *([f"**GPU-hours:** {gpu_hours:.3g}"] if gpu_hours is not None else []),
        "",
        *([f"![progress of {campaign.name}]({image})", ""] if image and rows else []),
        *_table(rows, objective.metric_name),
        "",
        *_best(rows, campaign),
    ]
    return "\n".join(lines).rstrip() + "\n"


def _table(rows: list[Row], metric: str) -> list[str]:
    if not rows:
        return ["No experiment has been attempted yet."]
    head = [f"| # | experiment | status | {_cell(metric)} | description |", "|---:|---|---|---:|---|"]
    return head + [
        f"| {r.index} | {_cell(short_name(r))} | {r.status} | {shown(r)} | "
        f"{_cell(truncate(r.description, DESCRIPTION_CHARS))} |"
        for r in rows
    ]


def _best(rows: list[Row], campaign: Campaign) -> list[str]:
    top = best(rows, maximize=campaign.objective.maximize)
    if top is None:
        return ["**Best keep:** none yet."]
    return [
        f"**Best keep:** `{top.branch}` ({top.metric_name} = {shown(top)}), row {top.index}",
        "",
        "```sh",
        reproduce(top, campaign),
        "```",
    ]


def _cell(text: str) -> str:
    """Table cells must not open a new column."""
    return text.replace("|", "\\|")
