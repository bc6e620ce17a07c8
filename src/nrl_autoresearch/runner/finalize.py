"""Finalize: the chosen keeps' changes replayed as clean commits on a new branch from the person's branch.

Everything is built with git plumbing on a throwaway index (read-tree, apply --cached --3way, write-tree,
commit-tree, update-ref), so the person's working tree, index and branch are never read or written. A change
that does not apply is reported with its files and nothing is created: conflicts are never resolved by guessing.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from nrl_autoresearch.core.errors import UsageError
from nrl_autoresearch.core.git import Git
from nrl_autoresearch.core.judge import valid
from nrl_autoresearch.core.ledger import Row
from nrl_autoresearch.core.names import BASELINE
from nrl_autoresearch.core.redact import redact
from nrl_autoresearch.runner.engine import Engine

# Paths that only autoresearch reads (flags recorded for `--set-style flags`): never part of the person's change.
BOOKKEEPING = (".autoresearch",)
_TRAILER = "autoresearch: campaign "


@dataclass
class Finalized:
    """What finalize made: the branch and its commits, or the conflict that stopped it (then nothing exists)."""

    branch: str
    start: str
    commits: list[tuple[Row, str | None]] = field(default_factory=list)  # (keep, its clean commit or None if empty)
    conflict: str | None = None
    pr_path: Path | None = None

    def to_dict(self) -> dict:
        return {
            "branch": None if self.conflict else self.branch,
            "start": self.start,
            "conflict": self.conflict,
            "pr": str(self.pr_path) if self.pr_path else None,
            "commits": [
                {"index": r.index, "experiment": r.branch.rsplit("/", 1)[1], "measured": r.commit, "commit": clean}
                for r, clean in self.commits
            ],
        }


def finalize(engine: Engine, sources: tuple[str, ...], branch: str | None) -> Finalized:
    """Refuse bad input before anything exists, then build the branch and write PR.md next to the campaign."""
    git = engine.workspace.git
    start = git.rev("HEAD")
    if start is None:
        raise UsageError("your repository has no commit to start the finalized branch from")
    chosen = choose(engine, sources or ("best",))
    name = branch or f"{engine.campaign.prefix}-final"
    _check_branch(engine, name)
    done = Finalized(name, start)
    tip = _replay(git, chosen, start, done)
    if done.conflict:
        return done
    git.run("update-ref", f"refs/heads/{name}", tip, "")
    done.pr_path = _write_pr(engine, done)
    return done


def choose(engine: Engine, sources: tuple[str, ...]) -> list[Row]:
    """The keeps named (or the best one) with the keeps they were built on, oldest first: the branch carries
    exactly what was measured."""
    keeps = _keeps(engine)
    if not keeps:
        raise UsageError(
            f"campaign {engine.campaign.name} has no kept experiment beyond the baseline: nothing to finalize"
        )
    by_commit = {r.commit: r for r in keeps.values()}
    picked: dict[str, Row] = {}
    for source in sources:
        for row in _lineage(_named(engine, keeps, source), by_commit):
            picked[row.commit] = row
    return sorted(picked.values(), key=lambda r: r.index)


def _keeps(engine: Engine) -> dict[str, Row]:
    """The last keep row of every experiment branch (a repeated configuration has several rows)."""
    baseline = engine.workspace.branch(BASELINE)
    return {r.branch: r for r in engine.rows() if r.status == "keep" and r.branch != baseline}


def _named(engine: Engine, keeps: dict[str, Row], source: str) -> Row:
    if source == "best":
        top = engine.best_row()
        if top is None or top.branch not in keeps:
            raise UsageError("the best keep is the baseline itself: nothing to finalize (name a branch with --from)")
        return top
    full = source if source.startswith(engine.campaign.prefix + "/") else engine.workspace.branch(source)
    if full not in keeps:
        shown = ", ".join(b.rsplit("/", 1)[1] for b in keeps)
        raise UsageError(
            f"--from {source!r} is not a kept experiment of campaign {engine.campaign.name} (keeps: {shown})"
        )
    return keeps[full]


def _lineage(row: Row, by_commit: dict[str, Row]) -> list[Row]:
    chain = [row]
    while chain[-1].parent_commit in by_commit and by_commit[chain[-1].parent_commit] not in chain:
        chain.append(by_commit[chain[-1].parent_commit])
    return chain


def _check_branch(engine: Engine, name: str) -> None:
    git = engine.workspace.git
    if not git.ok("check-ref-format", "--branch", name):
        raise UsageError(f"--branch {name!r} is not a valid branch name")
    if name.startswith(engine.campaign.prefix + "/"):
        raise UsageError(
            f"--branch {name!r} lies under the campaign's prefix {engine.campaign.prefix}/, where the "
            "experiments live: choose a name outside it"
        )
    if git.rev(f"refs/heads/{name}"):
        raise UsageError(f"branch {name!r} already exists: pass --branch NAME for a new one")


def _replay(git: Git, chosen: list[Row], start: str, done: Finalized) -> str:
    """Apply each keep's own diff (parent to measured commit, bookkeeping left out) three-way on a throwaway
    index holding the tip, and commit the result on top; stop at the first conflict."""
    tip = start
    with tempfile.TemporaryDirectory(prefix="autoresearch-finalize-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        git.run("read-tree", start, env=env)
        for row in chosen:
            patch = git.run(
                "diff",
                "--binary",
                "--full-index",
                row.parent_commit,
                row.commit,
                "--",
                ".",
                *(f":(exclude){p}" for p in BOOKKEEPING),
            )
            if not patch.strip():
                done.commits.append((row, None))
                continue
            (Path(tmp) / "patch").write_text(patch)
            failure = _apply(git, Path(tmp) / "patch", env)
            if failure:
                done.conflict = _conflict_text(row, failure)
                return tip
            tree = git.run("write-tree", env=env).strip()
            tip = git.run(
                *git.identity_args(), "commit-tree", tree, "-p", tip, "-F", "-", input=_message(git, row)
            ).strip()
            done.commits.append((row, tip))
    return tip


def _apply(git: Git, patch: Path, env: dict) -> list[str]:
    """Apply three-way on the throwaway index; the conflicted files, or git's complaint, or [] when clean."""
    proc = subprocess.run(
        ["git", "-C", str(git.path), "apply", "--cached", "--3way", str(patch)],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )
    unmerged = sorted({line.split("\t", 1)[1] for line in git.run("ls-files", "-u", env=env).splitlines()})
    if unmerged:
        return unmerged
    return [proc.stderr.strip() or "git apply failed"] if proc.returncode else []


def _conflict_text(row: Row, failure: list[str]) -> str:
    name = row.branch.rsplit("/", 1)[1]
    return "\n".join(
        [
            f"[{row.index}] {name} does not apply cleanly on your branch: nothing was created",
            *(f"  conflict: {f}" for f in failure),
            "  resolve it yourself (autoresearch does not guess), e.g. in a fresh branch:",
            f"    git diff {row.parent_commit[:12]} {row.commit[:12]} -- . "
            + " ".join(f"':(exclude){p}'" for p in BOOKKEEPING)
            + " | git apply -3",
            "  or finalize other keeps with --from BRANCH",
        ]
    )


def _message(git: Git, row: Row) -> str:
    """The experiment's own message without autoresearch's trailer, plus the measured result."""
    lines = [
        line for line in git.run("log", "-1", "--format=%B", row.commit).splitlines() if not line.startswith(_TRAILER)
    ]
    result = f"Measured: {row.metric_name} = {row.metric_value:.6g} (ledger row {row.index}, commit {row.commit[:12]})"
    body = "\n".join(lines).rstrip()
    subject, _, rest = body.partition("\n")
    return "\n".join([subject, "", result, rest.strip()]).rstrip() + "\n"


def _write_pr(engine: Engine, done: Finalized) -> Path:
    """PR.md beside the campaign (untracked, so the branch holds only the change): ready for
    `gh pr create --body-file`."""
    path = engine.campaign.dir / "finalize" / done.branch.replace("/", "-") / "PR.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(redact(pr_text(engine, done)))
    return path


def pr_text(engine: Engine, done: Finalized) -> str:
    c, rows = engine.campaign, [r for r, _ in done.commits]
    by_commit = {r.commit: r for r in engine.rows() if r.status != "crash" and valid(r.metric_value)}
    base = engine.valid_baseline()
    base_value = base[-1].metric_value if base else None
    last = rows[-1]
    spread = engine.spread()
    noise = spread.describe() if spread else "unknown: no configuration was run twice and no curve was read"
    lines = [
        f"# {c.name}: {c.objective.metric_name} {_num(base_value)} -> {_num(last.metric_value)}",
        "",
        f"Objective: {c.objective.direction} {c.objective.metric_name} ({c.objective.source}, {c.objective.aggregate}). "
        f"Branch `{done.branch}` starts from `{done.start[:12]}` and carries {sum(1 for _, s in done.commits if s)} "
        f"commit(s), one per kept experiment; autoresearch's own files are left out.",
        "",
        "| row | experiment | clean commit | measured commit | value | vs parent | vs baseline | change |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row, clean in done.commits:
        parent = by_commit.get(row.parent_commit)
        lines.append(
            f"| {row.index} | {row.branch.rsplit('/', 1)[1]} | {clean[:12] if clean else '(no file change)'} "
            f"| {row.commit[:12]} | {_num(row.metric_value)} | {_delta(row, parent.metric_value if parent else None)} "
            f"| {_delta(row, base_value)} | {row.description} |"
        )
    lines += [
        "",
        f"Run-to-run noise: {noise}. A delta within about twice the spread is not a finding.",
        "",
        "## Ledger rows",
        "",
        "```tsv",
        *(r.to_line().rstrip("\n") for r in base + rows),
        "```",
        "",
        "## Reproduce",
        "",
        "```sh",
        f"git worktree add ../{done.branch.replace('/', '-')} {done.branch}",
        f"cd ../{done.branch.replace('/', '-')} && {last.command}",
        "# or rerun the measured configuration through the campaign, judged with its earlier runs:",
        f"autoresearch try {last.branch.rsplit('/', 1)[1]} --repeat --campaign {c.name}",
        "```",
        "",
    ]
    return "\n".join(lines)


def _num(value: float | None) -> str:
    return f"{value:.6g}" if valid(value) else "—"


def _delta(row: Row, reference: float | None) -> str:
    return f"{row.metric_value - reference:+.4g}" if valid(reference) and valid(row.metric_value) else "—"
