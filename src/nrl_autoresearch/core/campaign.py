"""A campaign: objective, recipe, prefix, stop rules and launcher, persisted with its absolute deadline.

State lives in `reports/auto_research/<campaign>/campaign.json` (untracked); `reports/auto_research/.active`
names the campaign that commands act on when `--campaign` is not given.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from nrl_autoresearch.core.durable import replace_text
from nrl_autoresearch.core.errors import UsageError
from nrl_autoresearch.core.git import Git
from nrl_autoresearch.core.recipe import Objective
from nrl_autoresearch.core.stoprules import StopRules

REPORTS = "reports"
CAMPAIGNS = "reports/auto_research"
LEDGER = "reports/auto_research_results.tsv"
ACTIVE = ".active"
CENSUS = "census"  # per run: the files that existed before it started (what it may not read)
# names an experiment cannot take: they are campaign files and folders
RESERVED = {
    "worktrees",
    "campaign.json",
    "journal.jsonl",
    "notes.md",
    "report",
    "control",
    "smoke",
    "writer.json",
    "finalize",
    CENSUS,
}


@dataclass(frozen=True)
class Campaign:
    name: str
    prefix: str
    repo: Path
    created_at: float
    base_commit: str
    recipe: dict
    objective: Objective
    rules: StopRules
    launcher: dict = field(default_factory=lambda: {"name": "local"})
    ledger: str = LEDGER
    min_delta: float = 0.0
    options: dict = field(default_factory=dict)

    @property
    def dir(self) -> Path:
        return self.repo / CAMPAIGNS / self.name

    @property
    def ledger_path(self) -> Path:
        return self.repo / self.ledger

    @property
    def worktrees(self) -> Path:
        return self.dir / "worktrees"

    def run_dir(self, run: str) -> Path:
        """An experiment's folder: under the campaign folder, or on the Brev volume when the campaign uses one."""
        brev = self.options.get("brev")
        return Path(brev["campaign_root"]) / run if brev else self.dir / run

    def with_rules(self, rules: StopRules) -> Campaign:
        return replace(self, rules=rules)

    def with_options(self, **changes) -> Campaign:
        return replace(self, options={**self.options, **changes})

    def to_dict(self) -> dict:
        data = asdict(self)
        data["repo"] = str(self.repo)
        data["rules"] = self.rules.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Campaign:
        return cls(
            **{
                **data,
                "repo": Path(data["repo"]),
                "objective": Objective(**data["objective"]),
                "rules": StopRules.from_dict(data["rules"]),
            }
        )

    def save(self) -> None:
        """Write atomically, and make this the active campaign."""
        self.dir.mkdir(parents=True, exist_ok=True)
        replace_text(self.dir / "campaign.json", json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        replace_text(self.repo / CAMPAIGNS / ACTIVE, self.name + "\n")


def load(repo: Path, name: str | None = None) -> Campaign:
    """The named campaign, else the active one, else the only one; a clear error otherwise."""
    root = repo / CAMPAIGNS
    if name is None:
        active = root / ACTIVE
        if active.exists():
            name = active.read_text().strip()
        else:
            found = sorted(p.parent.name for p in root.glob("*/campaign.json"))
            if len(found) != 1:
                hint = f" (found: {', '.join(found)}; pass --campaign NAME)" if found else ""
                raise UsageError(f"no campaign in {repo}{hint}: start one with 'autoresearch init'")
            name = found[0]
    path = root / name / "campaign.json"
    if not path.exists():
        raise UsageError(
            f"no campaign named {name!r} in {repo}: see 'ls {CAMPAIGNS}' or start one with 'autoresearch init'"
        )
    return Campaign.from_dict(json.loads(path.read_text()))


def check_untracked(git: Git) -> None:
    """Our ledger and campaign folders are written after every run: tracked, they would dirty the person's tree."""
    tracked = git.run("ls-files", "--", LEDGER, CAMPAIGNS).splitlines()
    if tracked:
        raise UsageError(
            f"{tracked[0]} is tracked by git, but autoresearch keeps its ledger and campaign files "
            f"untracked: 'git rm --cached {tracked[0]}' and commit (the file stays), then init again"
        )


def exists(repo: Path, name: str) -> bool:
    return (repo / CAMPAIGNS / name / "campaign.json").exists()
