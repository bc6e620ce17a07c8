"""What a person reads: the plan before a campaign starts, and the summary when it stops."""

from __future__ import annotations

import shlex

from ..campaign import Campaign
from ..ledger import Row, best
from ..stoprules import StopStatus


def plan_text(c: Campaign, *, proposer: str, first: list[str], has_baseline: bool, workers: int = 1,
              reruns: int = 0) -> str:
    lines = [
        f"plan for campaign {c.name}",
        f"  branch prefix: {c.prefix}/",
        f"  recipe: {c.recipe.get('path') or shlex.join(c.recipe.get('command', []))}",
        f"  objective: {c.objective.direction} {c.objective.metric_name} (from {c.objective.source}, {c.objective.aggregate})",
        "  stop monitors:", *(f"    {m}" for m in c.rules.monitors()),
        f"  launcher: {c.launcher['name']}" + (f", {workers} experiments at once" if workers > 1 else ""),
        f"  proposer: {proposer}",
        "  baseline: " + ("recorded" if has_baseline else f"runs first, on {c.prefix}/baseline"),
        "  noise: " + _noise(c),
    ]
    if reruns:
        lines.append(f"  interrupted runs: {reruns} re-run first, on their own commits (a row each)")
    if first:
        lines += ["  first hypotheses:", *(f"    {i}. {h}" for i, h in enumerate(first, 1))]
    return "\n".join(lines)


def _noise(c: Campaign) -> str:
    o = c.options
    base, reps = o.get("baseline_repeats", 1), o.get("repeats", 1)
    if base < 2 and reps < 2:
        return ("one run per configuration and no spread estimate: a keep may be noise "
                "(--baseline-repeats and --repeats measure the spread)")
    return (f"baseline x{base}, hypotheses x{reps}, keep when the gain exceeds z={o.get('z', 2.0):g} spreads"
            + (", new best keeps confirmed" if o.get("confirm") else ""))


def summary_text(c: Campaign, rows: list[Row], status: StopStatus) -> str:
    counts = {s: sum(r.status == s for r in rows) for s in ("keep", "discard", "crash")}
    lines = [f"summary of {c.name}: {len(rows)} attempted ({counts['keep']} keep, {counts['discard']} discard, {counts['crash']} crash)",
             f"  {'#':>3}  {'status':<7}  {c.objective.metric_name:>14}  experiment"]
    for r in rows:
        value = "crash" if r.status == "crash" else f"{r.metric_value:.6g}"
        lines.append(f"  {r.index:>3}  {r.status:<7}  {value:>14}  {r.branch.rsplit('/', 1)[1]}: {r.description[:90]}")
    top = best(rows, maximize=c.objective.maximize)
    if top:
        lines.append(f"best keep: {top.branch} ({c.objective.metric_name} = {top.metric_value:.6g})")
        lines.append(f"  reproduce: git checkout {top.branch} && {top.command}")
    lines += [f"ledger: {c.ledger}", f"logs: {c.dir.relative_to(c.repo)}/<experiment>/run.log", status.sentence]
    if status.met and status.trigger == "count" and c.rules.implicit:
        lines.append("the default rule (baseline plus three) is met: continue with 'autoresearch run --continue N'")
    return "\n".join(lines)
