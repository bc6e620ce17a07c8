"""Write a campaign's report: the HTML page, the PNG chart, the Markdown summary and the diffs the page links.

All of it lands in `<campaign dir>/report/` unless told otherwise; every text passes `redact()` on its way out.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from nrl_autoresearch.core.campaign import Campaign
from nrl_autoresearch.core.ledger import Row
from nrl_autoresearch.core.redact import redact
from nrl_autoresearch.report.html import Links, render_html
from nrl_autoresearch.report.markdown import render_markdown, short_name
from nrl_autoresearch.report.plot import plot

if TYPE_CHECKING:
    from nrl_autoresearch.runner.engine import Engine


def build_report(engine: Engine, *, html: Path | None = None, png: Path | None = None,
                 markdown: Path | None = None) -> dict[str, Path]:
    """Write the report and return what was written: keys html, png, markdown and diffs (the diffs folder)."""
    c = engine.c
    folder = c.dir / "report"
    html, png, markdown = html or folder / "report.html", png or folder / "report.png", markdown or folder / "report.md"
    rows, status = engine.rows(), engine.status()
    diffs = folder / "diffs"
    diffs.mkdir(parents=True, exist_ok=True)
    links = {r.index: _links(engine, r, diffs, html.parent) for r in rows}
    svg = plot(rows, c, png)
    _write(html, render_html(c, rows, status=status, svg=svg, links=links))
    _write(markdown, render_markdown(c, rows, status=status, image=_href(png, markdown.parent),
                                          gpu_hours=engine.gpu_hours()))
    return {"html": html, "png": png, "markdown": markdown, "diffs": diffs}


def _links(engine: Engine, row: Row, diffs: Path, base: Path) -> Links:
    """Write the row's diff against its parent; link it and the run log from `base`, the page's folder."""
    text = engine.ws.git.run("diff", row.parent_commit, row.commit, check=False)
    path = diffs / f"{row.index}-{short_name(row)}.diff"
    _write(path, text)
    added, removed = engine.ws.git.line_changes(row.parent_commit, row.commit, check=False)
    log = _log(engine.c, row)
    return Links(log=_href(log, base) if log.is_file() else None, diff=_href(path, base), added=added, removed=removed)


def _log(c: Campaign, row: Row) -> Path:
    """The ledger stores the log relative to the repository when it lies inside it."""
    path = Path(row.log_path)
    return path if path.is_absolute() else c.repo / path


def _href(target: Path, base: Path) -> str:
    return quote(Path(os.path.relpath(target.resolve(), base.resolve())).as_posix())


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(redact(text))
