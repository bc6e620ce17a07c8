"""The campaign report as ONE self-contained HTML file: it opens from disk, offline, and can be attached as is.

Everything dynamic is escaped; the chart is inline SVG; styles and the table sorting are inline too.
Stable ids for tools and tests: #status, #plot, #best, #campaign, #lineage, #ledger (rows #row-<index>).
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass
from html import escape
from string import Template

from nrl_autoresearch.core.campaign import Campaign
from nrl_autoresearch.core.ledger import Row, best
from nrl_autoresearch.core.stoprules import StopStatus
from nrl_autoresearch.report.markdown import reproduce, short_name, shown

COLUMNS = (  # (data-key, header, class); a key makes the column sortable, also on load with ?sort=[-]<key>
    ("index", "#", "num"),
    ("branch", "experiment", "name"),
    ("status", "status", ""),
    ("metric_value", "metric", "num"),
    ("memory_gb", "GB", "num"),
    ("elapsed_min", "min", "num"),
    ("parent", "built on", ""),
    ("commit", "commit", "mono"),
    ("", "files", "files"),
    ("description", "description", "desc"),
)


@dataclass(frozen=True)
class Links:
    """An experiment's files, as hrefs relative to the page: its run log (None when it never ran) and its diff."""

    log: str | None
    diff: str
    added: int
    removed: int


def parents(rows: list[Row]) -> dict[int, int | None]:
    """The row each experiment was built on: the first row whose commit is its parent commit, else (a rerun,
    such as a repeated baseline) the first earlier row with its own commit; None for a root."""
    first: dict[str, int] = {}
    for r in sorted(rows, key=lambda r: r.index):
        first.setdefault(r.commit, r.index)
    found = {}
    for r in rows:
        parent = first.get(r.parent_commit, first.get(r.commit))
        found[r.index] = parent if parent is not None and parent < r.index else None
    return found


def render_html(campaign: Campaign, rows: list[Row], *, status: StopStatus, svg: str, links: dict[int, Links]) -> str:
    """The whole page: objective, stop rules and status, chart, best keep, lineage and the sortable ledger."""
    top = best(rows, maximize=campaign.objective.maximize)
    tree = parents(rows)
    return PAGE.substitute(
        title=escape(campaign.name),
        objective=_objective(campaign),
        status_class="met" if status.met else "open",
        status=escape(status.sentence),
        cards=_cards(rows, campaign, top),
        svg=svg,
        best=_best(top, links, campaign),
        campaign=_campaign(campaign),
        lineage=_lineage(rows, tree, top),
        ledger=_ledger(rows, tree, campaign, links, top),
        generated=escape(time.strftime("%Y-%m-%d %H:%M:%S %Z")),
        style=STYLE,
        script=SCRIPT,
    )


def _objective(c: Campaign) -> str:
    o = c.objective
    recipe = c.recipe.get("path") or shlex.join(c.recipe.get("command", []))
    return (
        f"{escape(o.direction)} <code>{escape(o.metric_name)}</code> from <code>{escape(o.source)}</code> "
        f"({escape(o.aggregate)}) · recipe <code>{escape(recipe)}</code> · launcher {escape(c.launcher['name'])}"
    )


def _cards(rows: list[Row], c: Campaign, top: Row | None) -> str:
    attempted = f"{len(rows)}" + (f" / {c.rules.max_experiments}" if c.rules.max_experiments is not None else "")
    tally = [(s, str(sum(r.status == s for r in rows)), s) for s in ("keep", "discard", "crash")]
    items = [
        ("attempted", attempted, ""),
        *tally,
        (f"best {c.objective.metric_name}", shown(top) if top else "—", "best"),
    ]
    return "".join(
        f'<div class="card {cls}"><span>{escape(label)}</span><b>{escape(value)}</b></div>'
        for label, value, cls in items
    )


def _campaign(c: Campaign) -> str:
    """Where the campaign lives and the monitors that end it."""
    facts = [
        ("branches", f"{c.prefix}/"),
        ("base commit", c.base_commit[:10]),
        ("ledger", c.ledger),
        ("started", time.strftime("%Y-%m-%d %H:%M", time.localtime(c.created_at))),
    ]
    if c.min_delta:
        facts.append(("min delta", f"{c.min_delta:g}"))
    monitors = c.rules.monitors() or ["no stop rule"]
    dl = "".join(f"<dt>{escape(k)}</dt><dd><code>{escape(v)}</code></dd>" for k, v in facts)
    ul = "".join(f"<li><code>{escape(m)}</code></li>" for m in monitors)
    return f'<dl>{dl}</dl><h3>Stop monitors</h3><ul class="monitors">{ul}</ul>'


def _best(top: Row | None, links: dict[int, Links], campaign: Campaign) -> str:
    if top is None:
        return '<p class="muted">No keep yet: the best result appears here once an experiment is kept.</p>'
    return (
        f'<p><a href="#row-{top.index}">#{top.index} {escape(short_name(top))}</a> '
        f'<span class="value">{escape(top.metric_name)} = {escape(shown(top))}</span> {_files(links.get(top.index))}</p>'
        f'<p class="muted">{escape(top.description)}</p>'
        f'<p>Reproduce it exactly:</p><pre><code id="reproduce">{escape(reproduce(top, campaign))}</code></pre>'
    )


def _lineage(rows: list[Row], tree: dict[int, int | None], top: Row | None) -> str:
    if not rows:
        return '<p class="muted">No experiment yet.</p>'
    children: dict[int | None, list[Row]] = {}
    for r in sorted(rows, key=lambda r: r.index):
        children.setdefault(tree[r.index], []).append(r)
    return _branches(children, None, top)


def _branches(children: dict[int | None, list[Row]], parent: int | None, top: Row | None) -> str:
    items = "".join(
        f'<li class="node" data-index="{r.index}" data-branch="{escape(r.branch)}">'
        f'<a href="#row-{r.index}">#{r.index} {escape(short_name(r))}</a> {_badge(r.status)} '
        f'<span class="value">{"" if r.metric_value is None else escape(shown(r))}</span>'
        f"{' <span class=star title=best>★ best</span>' if top is not None and r.index == top.index else ''}"
        f"{_branches(children, r.index, top)}</li>"
        for r in children.get(parent, [])
    )
    return f'<ul class="tree">{items}</ul>' if items else ""


def _ledger(rows: list[Row], tree: dict[int, int | None], c: Campaign, links: dict[int, Links], top: Row | None) -> str:
    heads = "".join(
        _head(key, c.objective.metric_name if key == "metric_value" else label, cls) for key, label, cls in COLUMNS
    )
    names: dict[int | None, str] = {r.index: short_name(r) for r in rows}
    body = "".join(_row(r, names.get(tree[r.index]) or "", links.get(r.index), top) for r in rows)
    empty = f'<tr><td colspan="{len(COLUMNS)}" class="muted">no row yet</td></tr>'
    return f"<thead><tr>{heads}</tr></thead><tbody>{body or empty}</tbody>"


def _head(key: str, label: str, cls: str) -> str:
    sortable = f' data-key="{key}" title="sort by {escape(label)}"' if key else ""
    return f'<th class="{cls}"{sortable}>{escape(label)}</th>'


def _row(r: Row, parent: str, links: Links | None, top: Row | None) -> str:
    """One ledger row; each cell carries its raw value in data-value for sorting (empty: no value, sorted last)."""
    memory = None if r.metric_value is None else r.memory_gb
    cells = (
        (r.index, str(r.index)),
        (r.branch, escape(short_name(r))),
        (r.status, _badge(r.status)),
        (r.metric_value, escape(shown(r)) if r.metric_value is not None else "—"),
        (memory, "—" if memory is None else f"{memory:.1f}"),
        (r.elapsed_min, f"{r.elapsed_min:.1f}"),
        (parent, escape(parent or "—")),
        (r.commit, f'<span title="{escape(r.commit)}">{escape(r.commit[:10])}</span>'),
        (None, _files(links)),
        (r.description, escape(r.description)),
    )
    tds = "".join(
        f'<td class="{cls}" data-value="{"" if value is None else escape(str(value))}">{inner}</td>'
        for (value, inner), (_, _, cls) in zip(cells, COLUMNS, strict=True)
    )
    best_class = " best" if top is not None and r.index == top.index else ""
    return f'<tr id="row-{r.index}" class="{r.status}{best_class}" data-index="{r.index}">{tds}</tr>'


def _files(links: Links | None) -> str:
    if links is None:
        return ""
    log = f'<a href="{escape(links.log)}">run.log</a>' if links.log else '<span class="muted">no log</span>'
    change = f"+{links.added} −{links.removed}" if links.added or links.removed else "no change"
    return f'<span class="files">{log} · <a href="{escape(links.diff)}">diff</a> <small>{change}</small></span>'


def _badge(status: str) -> str:
    return f'<span class="badge {escape(status)}">{escape(status)}</span>'


PAGE = Template("""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>autoresearch · $title</title>
<style>$style</style>
</head>
<body>
<header>
<h1><span class="muted">autoresearch ·</span> $title</h1>
<p class="objective">$objective</p>
</header>
<p id="status" class="status $status_class">$status</p>
<div class="cards">$cards</div>
<section id="plot"><h2>Progress</h2>$svg</section>
<div class="grid">
<section id="best"><h2>Best keep</h2>$best</section>
<section id="campaign"><h2>Campaign</h2>$campaign</section>
</div>
<section id="lineage"><h2>Lineage</h2>
<p class="muted">Which experiment was built on which, from the baseline.</p>$lineage</section>
<section><h2>Ledger</h2><p class="muted">Click a column to sort it.</p>
<div class="scroll"><table id="ledger">$ledger</table></div></section>
<footer class="muted">report generated $generated</footer>
<script>$script</script>
</body>
</html>
""")

STYLE = """
:root { --keep: #1a7f37; --discard: #6e7781; --crash: #cf222e; --best: #0969da; --line: #d0d7de; --muted: #57606a; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1320px; padding: 24px 32px 48px; background: #f6f8fa; color: #1f2328;
  font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 0 0 10px; }
code, pre, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
a { color: var(--best); text-decoration: none; } a:hover { text-decoration: underline; }
.muted { color: var(--muted); }
.objective { margin: 0 0 14px; color: var(--muted); }
.status { padding: 10px 14px; border-radius: 8px; border: 1px solid var(--line); background: #fff; font-weight: 600; }
.status.met { border-color: #54aeff; background: #ddf4ff; }
.cards { display: flex; gap: 12px; margin: 14px 0; flex-wrap: wrap; }
.card { flex: 1 1 150px; background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; }
.card span { display: block; color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card b { font-size: 22px; }
.card.keep b { color: var(--keep); } .card.discard b { color: var(--discard); } .card.crash b { color: var(--crash); }
.card.best b { color: var(--best); }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 16px 18px; margin: 14px 0; }
#plot svg { width: 100%; height: auto; display: block; }
.grid { display: grid; grid-template-columns: 3fr 2fr; gap: 14px; } .grid section { margin: 0; }
pre { background: #0d1117; color: #e6edf3; padding: 12px 14px; border-radius: 6px; margin: 0;
  white-space: pre-wrap; word-break: break-all; }
#campaign ul { margin: 0; padding-left: 18px; } h3 { font-size: 13px; margin: 12px 0 6px; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 14px; margin: 0; }
dt { color: var(--muted); } dd { margin: 0; word-break: break-all; }
.badge { display: inline-block; padding: 0 8px; border-radius: 10px; font-size: 12px; font-weight: 600; color: #fff; }
.badge.keep { background: var(--keep); } .badge.discard { background: var(--discard); }
.badge.crash { background: var(--crash); }
.star { color: #bf8700; font-weight: 600; font-size: 12px; }
.value { font-variant-numeric: tabular-nums; color: var(--muted); }
ul.tree { list-style: none; margin: 0; padding-left: 22px; }
#lineage > ul.tree { padding-left: 0; }
ul.tree ul.tree { border-left: 1px dashed var(--line); margin-left: 6px; }
li.node { margin: 3px 0; }
ul.tree ul.tree > li.node::before { content: "└ "; color: var(--line); margin-left: -8px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { padding: 6px 8px; border-bottom: 1px solid #eaeef2; text-align: left; vertical-align: top; }
th { position: sticky; top: 0; background: #f6f8fa; cursor: pointer; user-select: none; white-space: nowrap; }
th[aria-sort="ascending"]::after { content: " ▲"; } th[aria-sort="descending"]::after { content: " ▼"; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.name { font-weight: 600; white-space: nowrap; } td.desc { color: var(--muted); min-width: 240px; }
tr.best td { background: #fff8c5; }
.files { white-space: nowrap; } .files small { color: var(--muted); }
footer { margin-top: 18px; font-size: 12px; }
@media (max-width: 900px) { .grid { grid-template-columns: 1fr; } }
"""

SCRIPT = """
(function () {
  var table = document.getElementById('ledger');
  var heads = Array.prototype.slice.call(table.tHead.rows[0].cells).filter(function (th) { return th.dataset.key; });
  function value(row, column, numeric) {
    var raw = row.cells[column].dataset.value;
    return numeric ? (raw === '' ? null : parseFloat(raw)) : (raw || null);
  }
  function sortBy(key, descending) {
    var th = heads.filter(function (h) { return h.dataset.key === key; })[0];
    if (!th) { return; }
    var column = th.cellIndex, numeric = th.classList.contains('num'), body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows).filter(function (r) { return r.dataset.index; });
    rows.sort(function (a, b) {  /* rows without a value always last, ties in ledger order */
      var x = value(a, column, numeric), y = value(b, column, numeric);
      var order = (x === null) - (y === null);
      if (!order && x !== null) { order = (numeric ? x - y : String(x).localeCompare(String(y))) * (descending ? -1 : 1); }
      return order || a.dataset.index - b.dataset.index;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    heads.forEach(function (h) { h.removeAttribute('aria-sort'); });
    th.setAttribute('aria-sort', descending ? 'descending' : 'ascending');
    table.dataset.sort = (descending ? '-' : '') + key;
  }
  heads.forEach(function (th) {
    th.addEventListener('click', function () { sortBy(th.dataset.key, th.getAttribute('aria-sort') === 'ascending'); });
  });
  var wanted = new URLSearchParams(window.location.search).get('sort');
  if (wanted) { sortBy(wanted.replace(/^-/, ''), wanted.charAt(0) === '-'); }
})();
"""
