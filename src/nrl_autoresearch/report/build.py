"""Write a campaign's report: the HTML page, the PNG chart, the Markdown summary and the diffs the page links.

All of it lands in `<campaign dir>/report/` unless told otherwise; every text passes `redact()` on its way out.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from nrl_autoresearch.core.git import Git
from nrl_autoresearch.core.ledger import Row
from nrl_autoresearch.core.redact import redact, redactor
from nrl_autoresearch.report.html import Links, render_html
from nrl_autoresearch.report.markdown import render_markdown, short_name
from nrl_autoresearch.report.plot import plot

if TYPE_CHECKING:
    from nrl_autoresearch.runner.engine import Engine


def build_report(
    engine: Engine, *, html: Path | None = None, png: Path | None = None, markdown: Path | None = None
) -> dict[str, Path]:
    """Write the report and return what was written: keys html, png, markdown and diffs (the diffs folder)."""
    c = engine.campaign
    folder = c.dir / "report"
    html, png, markdown = html or folder / "report.html", png or folder / "report.png", markdown or folder / "report.md"
    rows, status = engine.rows(), engine.status()
    diffs = folder / "diffs"
    diffs.mkdir(parents=True, exist_ok=True)
    texts = _diffs(engine.workspace.git, [(r.parent_commit, r.commit) for r in rows])
    page, mask, repo = html.parent.resolve(), redactor(), c.repo.resolve()
    links = {r.index: _links(repo, r, mask(texts[r.parent_commit, r.commit]), diffs.resolve(), page) for r in rows}
    svg = plot(rows, c, png)
    _write(html, render_html(c, rows, status=status, svg=svg, links=links))
    _write(
        markdown,
        render_markdown(
            c, rows, status=status, image=_href(png.resolve(), markdown.parent.resolve()), gpu_hours=engine.gpu_hours()
        ),
    )
    return {"html": html, "png": png, "markdown": markdown, "diffs": diffs}


def _links(repo: Path, row: Row, text: str, diffs: Path, base: Path) -> Links:
    """Write the row's diff against its parent (redacted already); link it and the run log from `base`, the
    page's folder (the repository and both folders resolved already: once per report, not per row)."""
    path = diffs / f"{row.index}-{short_name(row)}.diff"
    path.write_text(text)
    added, removed = _line_changes(text)
    log = _log(repo, row)
    return Links(log=_href(log, base) if log.is_file() else None, diff=_href(path, base), added=added, removed=removed)


def _line_changes(diff: str) -> tuple[int, int]:
    """Lines added and removed in a unified diff, counted inside its hunks only (an added line `++x` reads `+++x`,
    like a file header outside a hunk)."""
    added = removed = 0
    in_hunk = False
    for line in diff.splitlines():
        if line.startswith("diff "):
            in_hunk = False
        elif line.startswith("@@"):
            in_hunk = True
        elif in_hunk and line.startswith("+"):
            added += 1
        elif in_hunk and line.startswith("-"):
            removed += 1
    return added, removed


def _diffs(git: Git, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """`git diff PARENT COMMIT` of every pair (empty where either is not a commit), in one `git diff-tree --stdin`
    (with rename detection, as `git diff` does by default): each diff follows a line holding its commit alone."""
    ids = _commit_ids(git, {name for pair in pairs for name in pair})
    wanted = {pair: (ids[pair[0]], ids[pair[1]]) for pair in pairs if pair[0] in ids and pair[1] in ids}
    unique = list(dict.fromkeys(wanted.values()))
    found: dict[tuple[str, str], str] = {}
    if unique:
        out = git.run(
            "diff-tree",
            "-p",
            "-M",
            "--always",
            "--stdin",
            input="".join(f"{commit} {parent}\n" for parent, commit in unique),
        )
        pos = 0
        for k, (parent, commit) in enumerate(unique):
            start = pos + len(commit) + 1
            end = out.find(f"\n{unique[k + 1][1]}\n", start - 1) + 1 if k + 1 < len(unique) else len(out)
            found[parent, commit] = out[start:end]
            pos = end
    return {pair: found.get(wanted[pair], "") if pair in wanted else "" for pair in pairs}


def _commit_ids(git: Git, names: set[str]) -> dict[str, str]:
    """The full id of each of `names` that names a commit, in one `git cat-file --batch-check`."""
    asked = sorted(name for name in names if name.strip() == name and name and not name.startswith("-"))
    out = git.run("cat-file", "--batch-check", input="".join(f"{name}^{{commit}}\n" for name in asked), check=False)
    return {
        name: line.split()[0]
        for name, line in zip(asked, out.splitlines(), strict=True)
        if line.split()[1:2] == ["commit"]
    }


def _log(repo: Path, row: Row) -> Path:
    """The ledger stores the log relative to the repository when it lies inside it."""
    path = Path(row.log_path)
    return path.resolve() if path.is_absolute() else repo / path


def _href(target: Path, base: Path) -> str:
    """A link from the folder `base` to `target`, both resolved (so that links survive symlinked folders)."""
    return quote(Path(os.path.relpath(target, base)).as_posix())


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(redact(text))
