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
    """One preflight item: it passed, failed (blocking problems stop the campaign; the others are warnings), or
    could not be told (unknown: never blocking, never a pass)."""

    ok: bool
    item: str
    detail: str = ""
    blocking: bool = True
    unknown: bool = False

    @property
    def status(self) -> str:
        if self.ok:
            return "pass"
        if self.unknown:
            return "unknown"
        return "fail" if self.blocking else "warning"


def unknown(item: str, detail: str) -> Check:
    """A check that could not tell: `detail` says why (and what would tell)."""
    return Check(False, item, f"unknown: {detail}", blocking=False, unknown=True)


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

    def prepared(self, snapshot: Snapshot, sets: dict[str, str]) -> tuple[dict[str, str] | None, str]:
        """The change as it must be made (with the settings it needs alongside), or (None, why) when it must not be
        proposed: refused, or changing nothing."""
        refused = self.refusal(snapshot, sets)
        return (None, refused) if refused else (dict(sets), "")

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

    def gpu_memory_share(self, root: Path) -> float | None:
        """The share of each GPU's memory a run takes, where the recipe says (None when it does not)."""
        return None

    def checkpoint_gib(self, root: Path) -> tuple[float | None, str] | None:
        """About how many GiB one run's checkpoints take and how that was reckoned; (None, why) when the recipe
        writes checkpoints it cannot size; None when it does not say."""
        return None

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

    def shortened_args(self, worktree: Path, share: float) -> tuple[list[str], int, int] | None:
        """Arguments that run `share` of the training steps, with the steps that run and the full count (None when
        the recipe cannot set its step count), for --screen."""
        return None

    def smoke_scale(self, root: Path, free_gpus: int) -> tuple[int, list[str]]:
        """The GPUs a smoke run takes with `free_gpus` free, and the arguments that shrink it to them; where too
        few are free, the fewest it can run on (and no arguments)."""
        return self.gpus_needed(root), []

    def knobs(self, snapshot: Snapshot) -> list[TunableSetting]:
        """The catalog of settings to explore for this recipe, in priority order."""
        return []

    def preflight(self, root: Path) -> list[Check]:
        return []
