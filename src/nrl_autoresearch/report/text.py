"""What a person reads: the plan before a campaign starts, and the summary when it stops."""

from __future__ import annotations

import shlex

from nrl_autoresearch.core.campaign import Campaign
from nrl_autoresearch.core.judge import CANDIDATE_Z, CONTINUE_Z, MIN_PAIRS, Z_DEFAULT, false_keep_rate, t_quantile
from nrl_autoresearch.core.ledger import Row, best, is_pruned
from nrl_autoresearch.core.stoprules import StopStatus, format_duration
from nrl_autoresearch.recipes import recipe_from_dict
from nrl_autoresearch.report.markdown import reproduce


def plan_text(
    c: Campaign,
    *,
    proposer: str,
    first: list[str],
    has_baseline: bool,
    workers: int = 1,
    reruns: int = 0,
    tally: str | None = None,
) -> str:
    lines = [
        f"plan for campaign {c.name}",
        f"  branch prefix: {c.prefix}/",
        *recipe_lines(c),
        f"  objective: {c.objective.direction} {c.objective.metric_name} (from {c.objective.source}, {c.objective.aggregate})",
        "  stop monitors:",
        *(f"    {m}" for m in c.rules.monitors()),
        f"  launcher: {c.launcher['name']}" + (f", {workers} experiments at once" if workers > 1 else ""),
        f"  proposer: {proposer}",
        "  baseline: " + ("recorded" if has_baseline else f"runs first, on {c.prefix}/baseline"),
        *([f"  rows so far: {tally}"] if tally else []),
        "  noise: " + noise_text(c),
        "  early stops: " + _early(c),
    ]
    if reruns:
        lines.append(f"  interrupted runs: {reruns} re-run first, on their own commits (a row each)")
    if first:
        lines += ["  first hypotheses:", *(f"    {i}. {h}" for i, h in enumerate(first, 1))]
    return "\n".join(lines)


def recipe_lines(c: Campaign) -> list[str]:
    """The recipe as the ledger's recipe column names it, and the command when that column names a file."""
    label = recipe_from_dict(c.recipe).label
    command = shlex.join(c.recipe.get("command", []))
    return [f"  recipe: {label}"] + ([f"  command: {command}"] if command and command != label else [])


def _early(c: Campaign) -> str:
    """Which watches end a run early: divergence always, the stall limit, pruning when asked for."""
    stall = c.options.get("stall", "auto")
    shown = (
        "off"
        if stall is None
        else "the larger of 30m and 5x the longest gap between steps"
        if stall == "auto"
        else format_duration(stall)
    )
    prune = "pruned when clearly behind the reference after 30% of training" if c.options.get("prune") else "no pruning"
    return f"divergence (NaN or exploding loss); stall: {shown}; {prune}"


def noise_text(c: Campaign) -> str:
    """How noise is handled and the real keep bar, in spreads, for this campaign's settings."""
    o = c.options
    base, reps, z = o.get("baseline_repeats", 1), o.get("repeats", 1), o.get("z", Z_DEFAULT)
    rate = f"{false_keep_rate(z):.0%} of null changes kept"
    if base < 2 and reps < 2:
        return (
            "no repeats: the noise floor is each run's own curve jitter (it misses what the seed changes), "
            "else unknown and the verdicts say so (--baseline-repeats measures the spread)"
        )
    if reps >= MIN_PAIRS:
        bar = t_quantile(1 - false_keep_rate(z), reps - 1) / reps**0.5
        return (
            f"baseline x{base}, hypotheses x{reps} on the baseline's seeds: paired, kept when the mean difference "
            f"exceeds {bar:.2g} spreads of the differences ({rate})" + _confirms(o)
        )
    if reps == 1 and o.get("sequential"):
        look = [
            t_quantile(1 - false_keep_rate(CANDIDATE_Z), base - 1) * (1 + 1 / base) ** 0.5,
            t_quantile(1 - false_keep_rate(z), base) * (1 / 2 + 1 / base) ** 0.5,
            t_quantile(1 - false_keep_rate(CONTINUE_Z), base) * (1 / 2 + 1 / base) ** 0.5,
            t_quantile(1 - false_keep_rate(z), base + 1) * (1 / 3 + 1 / base) ** 0.5,
        ]
        return (
            f"baseline x{base}; a single run ahead by {look[0]:.2g} spreads gets a second run; two are kept when "
            f"their mean is ahead by {look[1]:.2g} spreads, or get a third when ahead by {look[2]:.2g}; three are "
            f"kept when ahead by {look[3]:.2g} ({false_keep_rate(z):.0%} at each look; the bars shrink as the "
            "spread is measured on more runs)" + _confirms(o)
        )
    dof = base - 1 + reps - 1
    bar = t_quantile(1 - false_keep_rate(z), dof) * (1 / reps + 1 / base) ** 0.5
    return (
        f"baseline x{base}, hypotheses x{reps}: kept when the mean is ahead by {bar:.2g} spreads ({rate}; "
        "the bar shrinks as the spread is measured on more runs)" + _confirms(o)
    )


def _confirms(options: dict) -> str:
    return ", new best keeps confirmed" if options.get("confirm") else ""


def unmeasured(row: Row) -> bool:
    """A keep whose verdict rests on no measured run-to-run spread (none at all, or only the curves' jitter)."""
    return row.status == "keep" and ("noise unknown" in row.description or "curve jitter" in row.description)


def summary_text(c: Campaign, rows: list[Row], status: StopStatus) -> str:
    counts = {s: sum(r.status == s for r in rows) for s in ("keep", "discard", "crash")}
    lines = [
        f"summary of {c.name}: {len(rows)} attempted ({counts['keep']} keep, {counts['discard']} discard, {counts['crash']} crash)",
        f"  {'#':>3}  {'status':<7}  {c.objective.metric_name:>14}  experiment",
    ]
    for r in rows:
        value = "crash" if r.status == "crash" else f"{r.metric_value:.6g}"
        label = "keep*" if unmeasured(r) else "pruned†" if is_pruned(r.description) else r.status
        lines.append(f"  {r.index:>3}  {label:<7}  {value:>14}  {r.branch.rsplit('/', 1)[1]}: {r.description[:90]}")
    if any(unmeasured(r) for r in rows):
        lines.append("  * kept on a gain within noise that no repeat measured: not a finding yet")
    if any(is_pruned(r.description) for r in rows):
        lines.append(
            "  † stopped early by --prune, clearly behind the reference: no evidence against the idea "
            "(try it again in full with 'autoresearch try NAME --repeat')"
        )
    top = best(rows, maximize=c.objective.maximize)
    if top:
        lines.append(f"best keep: {top.branch} ({c.objective.metric_name} = {top.metric_value:.6g})")
        if unmeasured(top):
            lines.append(
                "  not a finding yet: its gain is within a noise that was never measured by repeats "
                "(run it again with 'autoresearch try NAME --repeat', or init with --baseline-repeats)"
            )
        lines.append(f"  reproduce: {reproduce(top, c)}")
    lines += [f"ledger: {c.ledger}", f"logs: {c.dir.relative_to(c.repo)}/<experiment>/run.log", status.sentence]
    if status.met and status.trigger == "count" and c.rules.implicit:
        lines.append("the default rule (baseline plus three) is met: continue with 'autoresearch run --continue N'")
    return "\n".join(lines)
