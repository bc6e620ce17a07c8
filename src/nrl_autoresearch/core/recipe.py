"""What a recipe adapter does: turn a hypothesis into file edits, and an experiment into the command to run."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nrl_autoresearch.core.git import Snapshot
from nrl_autoresearch.core.metric import MetricSource


@dataclass(frozen=True)
class Objective:
    """The metric the campaign optimises, where it is read from, and which way is better."""

    metric_name: str
    source: str
    maximize: bool
    aggregate: str = "last"

    @property
    def direction(self) -> str:
        return "maximize" if self.maximize else "minimize"


@dataclass(frozen=True)
class Launch:
    """The exact command of one run, its working directory and additions to its environment."""

    argv: list[str]
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TunableSetting:
    """A setting worth trying. `directions` are value sequences moving away from `current`, the preferred
    direction first (for a learning rate: (x2, x4, x8) then (/2, /4, /8)). `area` follows the skill's
    priority order; `risk` is low, medium or high."""

    key: str
    area: str
    current: object
    directions: tuple[tuple[str, ...], ...]
    risk: str = "low"
    why: str = ""
    companions: tuple[tuple[str, str], ...] = ()  # settings the change needs with it, set in the same commit


RESOLVES = "recipe resolves"  # the preflight item without which nothing about a recipe can be said


@dataclass(frozen=True)
class Check:
    """One preflight item: blocking problems stop the campaign, warnings are shown."""

    ok: bool
    item: str
    detail: str = ""
    blocking: bool = True


class Recipe(ABC):
    """A way to run the campaign's training and to express hypotheses as changes to it."""

    kind: str = ""

    @property
    @abstractmethod
    def label(self) -> str:
        """What the ledger's `recipe` column shows."""

    @abstractmethod
    def check_change(self, snapshot: Snapshot, sets: dict[str, str]) -> None:
        """Refuse (UsageError) a change that cannot apply to the parent commit, before any branch is created."""

    @abstractmethod
    def apply(self, worktree: Path, sets: dict[str, str]) -> list[str]:
        """Edit files in the worktree; return the repository-relative paths changed."""

    def refusal(self, snapshot: Snapshot, sets: dict[str, str]) -> str | None:
        """Why the change cannot apply to the commit or would not run there (None when it would)."""
        from nrl_autoresearch.core.errors import UsageError

        try:
            self.check_change(snapshot, sets)
        except UsageError as err:
            return str(err)
        return None

    def values(self, snapshot: Snapshot, keys: list[str]) -> dict[str, Any]:
        """The current values of `keys` in the commit (those the recipe can read), to recognise a change that
        changes nothing."""
        return {}

    @abstractmethod
    def launch(self, worktree: Path, run_dir: Path, limit_s: float | None) -> Launch: ...

    @abstractmethod
    def to_dict(self) -> dict: ...

    def default_objective(self, root: Path) -> Objective | None:
        """The objective the recipe itself declares, when it declares one."""
        return None

    def logged_metrics(self, root: Path) -> tuple[str, ...]:
        """The metric names the recipe's runs log, to catch a mistyped --metric (empty when unknown)."""
        return ()

    def metric_source(self, objective: Objective) -> MetricSource:
        from nrl_autoresearch.metrics import parse_source

        return parse_source(objective.source)

    def gpus_needed(self, root: Path) -> int:
        """GPUs one run occupies, as the recipe declares them (0 when it does not say)."""
        return 0

    def max_new_tokens(self, worktree: Path) -> int | None:
        """The generation length limit, to recognise truncated completions (None when unknown)."""
        return None

    def seeded(self) -> bool:
        """Whether a run can be repeated with another seed (repeats, baseline spread, confirmations)."""
        return False

    def seed_args(self, worktree: Path, seed: int) -> list[str]:
        """Arguments that run the recipe with `seed` instead of its own."""
        raise NotImplementedError(f"{self.kind} recipes cannot vary the seed")

    def smoke_args(self, worktree: Path) -> list[str]:
        """Arguments that make a run tiny (a few steps), to check the plumbing (none when the recipe cannot say)."""
        return []

    def knobs(self, snapshot: Snapshot) -> list[TunableSetting]:
        """The catalog of settings to explore for this recipe, in priority order."""
        return []

    def preflight(self, root: Path) -> list[Check]:
        return []
