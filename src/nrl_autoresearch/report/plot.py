"""The progress chart: each experiment's metric by ledger index, the running best keep, the baseline and its spread.

matplotlib is imported inside `plot` only, so that commands which never draw start fast.
"""

from __future__ import annotations

import io
import math
import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nrl_autoresearch.core.campaign import Campaign
from nrl_autoresearch.core.ledger import Row, is_pruned, running_best
from nrl_autoresearch.core.names import BASELINE
from nrl_autoresearch.report.markdown import counts, short_name, truncate

if TYPE_CHECKING:
    from matplotlib.axes import Axes

COLORS = {
    "keep": "#1a7f37",
    "discard": "#8c959f",
    "crash": "#cf222e",
    "best": "#0969da",
    "baseline": "#9a6700",
    "target": "#8250df",
}
MARKS: dict[str, dict[str, Any]] = {  # crashes have no value: a red x on the bottom edge instead
    "keep": {"s": 46, "color": COLORS["keep"], "edgecolor": "white", "linewidth": 0.8, "zorder": 4},
    "discard": {"s": 40, "facecolor": "white", "edgecolor": COLORS["discard"], "linewidth": 1.4, "zorder": 3},
}
PRUNED_MARK: dict[str, Any] = {
    "s": 44,
    "marker": "v",
    "facecolor": "white",
    "edgecolor": COLORS["discard"],
    "linewidth": 1.4,
    "zorder": 3,
}  # a partial value: the run was stopped early
LABEL_CHARS = 20
MAX_LABELS = 12  # beyond this many keeps only the new bests are labelled, so the chart stays legible


def plot(rows: list[Row], campaign: Campaign, path_png: Path | None = None) -> str:
    """The chart as an SVG string to embed inline; also written as a PNG at `path_png` when given."""
    from matplotlib import rc_context
    from matplotlib.figure import Figure

    rows = sorted(rows, key=lambda r: r.index)  # parallel runs may finish, and be appended, out of order
    style: dict[Any, Any] = {
        "svg.fonttype": "none",
        "svg.hashsalt": "autoresearch",
        "font.size": 10,
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
    with rc_context(style):
        fig = Figure(figsize=(11, 5), layout="constrained")
        _draw(fig.add_subplot(), rows, campaign)
        if path_png is not None:
            path_png.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(path_png, format="png", dpi=150)
        svg = io.StringIO()
        fig.savefig(svg, format="svg", metadata={"Date": None})
    text = svg.getvalue()
    return text[text.index("<svg") :]


def baseline_spread(rows: list[Row], campaign: Campaign) -> tuple[float, float | None, int] | None:
    """Mean and standard deviation (None under two runs) of the baseline's values, and how many there are."""
    values = _values(r for r in rows if r.branch == f"{campaign.prefix}/{BASELINE}" and _valued(r))
    if not values:
        return None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None, len(values)


def _valued(row: Row) -> bool:
    return row.metric_value is not None and math.isfinite(row.metric_value)


def _values(rows: Iterable[Row]) -> list[float]:
    """The metric values of rows that have one."""
    return [r.metric_value for r in rows if r.metric_value is not None]


def _draw(ax: Axes, rows: list[Row], campaign: Campaign) -> None:
    _baseline(ax, rows, campaign)
    _target(ax, campaign)
    new_bests = _running_best(ax, rows, campaign.objective.maximize)
    _points(ax, rows)
    _labels(ax, rows, new_bests)
    _frame(ax, rows, campaign)


def _frame(ax: Axes, rows: list[Row], campaign: Campaign) -> None:
    """Titles, scales and legend; a campaign without values shows no invented scale."""
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel("experiment (ledger index)")
    better = "higher" if campaign.objective.maximize else "lower"
    ax.set_ylabel(f"{campaign.objective.metric_name} ({better} is better)")
    ax.set_title(f"{campaign.name} · {counts(rows)}", loc="left", fontsize=11)
    ax.margins(x=0.02, y=0.2)
    ax.grid(True, color="#eaeef2", linewidth=0.8)
    ax.set_axisbelow(True)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    if not any(_valued(r) for r in rows):
        ax.set_yticks([])
    if rows:
        ax.set_xlim(min(r.index for r in rows) - 0.6, max(r.index for r in rows) + 0.6)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False, fontsize=9)
    else:
        ax.set_xticks([])
        ax.text(0.5, 0.5, "no experiment yet", transform=ax.transAxes, ha="center", va="center", color="#57606a")


def _baseline(ax: Axes, rows: list[Row], campaign: Campaign) -> None:
    spread = baseline_spread(rows, campaign)
    if spread is None:
        return
    mean, sd, n = spread
    ax.axhline(mean, color=COLORS["baseline"], linestyle="--", linewidth=1.2, label=f"baseline {mean:.6g}")
    if sd is not None:
        ax.axhspan(
            mean - sd,
            mean + sd,
            color=COLORS["baseline"],
            alpha=0.12,
            linewidth=0,
            label=f"baseline ± 1 sd ({sd:.3g}, {n} runs)",
        )


def _target(ax: Axes, campaign: Campaign) -> None:
    target = campaign.rules.target
    if target is not None and target.metric == campaign.objective.metric_name:
        ax.axhline(target.value, color=COLORS["target"], linestyle=":", linewidth=1.2, label=f"target {target}")


def _running_best(ax: Axes, rows: list[Row], maximize: bool) -> set[int]:
    """Draw the best keep so far (the ledger's own `best`) as a step line; return the keeps that set a new best."""
    tops = running_best(rows, maximize=maximize)
    new_bests = {top.index for top in tops if top is not None}
    if new_bests:
        path = [math.nan if top is None or top.metric_value is None else top.metric_value for top in tops]
        ax.step(
            [r.index for r in rows],
            path,
            where="post",
            color=COLORS["best"],
            linewidth=1.8,
            alpha=0.85,
            label="running best keep",
            zorder=2,
        )
    return new_bests


def _points(ax: Axes, rows: list[Row]) -> None:
    for status, style in MARKS.items():
        found = [r for r in rows if r.status == status and _valued(r) and not is_pruned(r.description)]
        if found:
            ax.scatter([r.index for r in found], _values(found), label=f"{status} ({len(found)})", **style)
    pruned = [r for r in rows if is_pruned(r.description) and _valued(r)]
    if pruned:
        ax.scatter(
            [r.index for r in pruned],
            _values(pruned),
            label=f"pruned ({len(pruned)}, value when stopped)",
            **PRUNED_MARK,
        )
    crashes = [r for r in rows if not _valued(r)]
    if crashes:
        ax.scatter(
            [r.index for r in crashes],
            [0.03] * len(crashes),
            transform=ax.get_xaxis_transform(),
            marker="x",
            s=44,
            color=COLORS["crash"],
            linewidth=1.8,
            zorder=4,
            clip_on=False,
            label=f"crash ({len(crashes)}, no value)",
        )


def _labels(ax: Axes, rows: list[Row], new_bests: set[int]) -> None:
    """Name the keeps once each (a repeated baseline is named once; with many keeps, only the new bests);
    near the right edge a label leans left so that it stays inside the axes."""
    keeps = list({short_name(r): r for r in reversed(rows) if r.status == "keep" and _valued(r)}.values())[::-1]
    if len(keeps) > MAX_LABELS:
        keeps = [r for r in keeps if r.index in new_bests]
    turn = rows[0].index + 0.8 * (rows[-1].index - rows[0].index) if rows else 0
    for r in keeps:
        left = r.index > turn and r.index > rows[0].index
        ax.annotate(
            truncate(short_name(r), LABEL_CHARS),
            (r.index, r.metric_value),
            xytext=(-5 if left else 5, 6),
            textcoords="offset points",
            rotation=-20 if left else 20,
            ha="right" if left else "left",
            fontsize=7.5,
            color=COLORS["keep"],
            zorder=5,
        )
