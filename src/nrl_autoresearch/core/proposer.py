"""What a proposer is: given the campaign's history, the next hypothesis, or None when it has nothing left.

The engine asks and runs; a proposer only proposes (ask/tell, as Optuna does), so a queue file, a catalog
walk, a model-based search or an external agent are one file each.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from nrl_autoresearch.core.campaign import Campaign
from nrl_autoresearch.core.git import Git
from nrl_autoresearch.core.history import History
from nrl_autoresearch.core.hypothesis import Hypothesis, norm
from nrl_autoresearch.core.names import BASELINE
from nrl_autoresearch.core.recipe import Recipe


class Repository(Protocol):
    """What a proposer may use of the campaign's repository: read its branches, and (an agent) hold the lock
    while it adds a scratch worktree."""

    git: Git

    def branch(self, name: str) -> str: ...

    def commit_of(self, ref: str) -> str | None: ...

    def locked(self) -> AbstractContextManager[None]: ...

    def changed_paths(self, worktree: Path) -> list[str]: ...


@dataclass(frozen=True)
class ProposerContext:
    """What a proposer is given: the campaign, its recipe and repository, and three calls into the engine.
    Never the engine itself, whose bookkeeping a proposer must not touch."""

    current_campaign: Callable[[], Campaign]  # read at each use: options and rules change while a loop runs
    recipe: Recipe
    repository: Repository
    seed: int  # the campaign's seed base, for a proposer that draws at random
    say: Callable[[str], None]  # a line for the person
    check: Callable[[Hypothesis], None]  # raises UsageError on a hypothesis the engine would refuse
    stop_requested: Callable[[], bool]  # the person ran `autoresearch stop`

    @property
    def campaign(self) -> Campaign:
        return self.current_campaign()

    def baseline_commit(self) -> str:
        """The recorded baseline's commit, else the commit the campaign started from."""
        return self.repository.commit_of(self.repository.branch(BASELINE)) or self.campaign.base_commit


class Proposer(ABC):
    name: str = ""

    @abstractmethod
    def propose(self, history: History) -> Hypothesis | None: ...

    def preview(self, history: History, n: int = 3) -> list[str]:
        """The first hypotheses in words, for the plan a person confirms before anything is created."""
        return []


def tried_names(history: History) -> set[str]:
    """Hypothesis names already attempted (as proposed, before any suffix a taken branch name got)."""
    return history.tried_names()


def already_tried(h: Hypothesis, history: History) -> bool:
    """Compare effective configurations: the parent's accumulated changes plus this one, normalised."""
    parent_effective = history.best_effective() if h.parent == "best" else {}
    effective = {k: norm(v) for k, v in {**parent_effective, **h.sets}.items()}
    for t in history.tried:
        if {k: norm(v) for k, v in t.effective.items()} == effective:
            return True
    return all(k in parent_effective and norm(parent_effective[k]) == norm(v) for k, v in h.sets.items())


def as_text(value) -> str:
    """Values back to the text a person would type on the command line (YAML reads them the same way)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, dict)):
        import json

        return json.dumps(value)
    return str(value)


def next_number(history: History) -> int:
    """The index the next attempt will get, for names like `search-7` or `agent-7`."""
    return history.next_number()
