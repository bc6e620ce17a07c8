"""One hypothesis: a named, described, smallest change, and the parent it is tested against."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from nrl_autoresearch.core.errors import UsageError
from nrl_autoresearch.core.names import validate_name


@dataclass(frozen=True)
class Hypothesis:
    """`sets` are dotted-key changes the recipe applies; `patch` a diff; `edit` a callable that edits the worktree.
    `parent` is 'baseline', 'best', an experiment name or any branch."""

    name: str
    description: str = ""
    parent: str = "baseline"
    sets: dict[str, str] = field(default_factory=dict)
    patch: str | None = None
    seed: int | None = None
    repeats: int | None = None  # runs with different seeds, judged on their mean (default: the campaign's)
    edit: Callable[[Path], None] | None = field(default=None, compare=False)
    # crash triage: given the worktree and the crash's log tail, try a small fix there; True if files changed
    fix: Callable[[Path, str], bool] | None = field(default=None, compare=False)
    # the attempt already failed before anything could run (an agent that timed out, edited protected files)
    failure: str | None = None

    def summary(self) -> str:
        """The change in a few words, for descriptions and commit messages."""
        parts = [f"{k}={v}" for k, v in self.sets.items()]
        if self.patch:
            parts.append(f"patch {Path(self.patch).name}")
        return ", ".join(parts)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "parent": self.parent,
            "sets": dict(self.sets),
            "patch": self.patch,
            "seed": self.seed,
            "repeats": self.repeats,
            "failure": self.failure,
        }


def norm(value) -> str:
    """A value as it compares: '1e-3', '0.001' and 0.001 are the same setting."""
    return _norm_text(value) if isinstance(value, str) else repr(value)


@functools.lru_cache(maxsize=65536)
def _norm_text(text: str) -> str:
    """Parsed once per distinct text: a campaign compares each new configuration with every one it has tried."""
    from nrl_autoresearch.recipes.params import parse_value

    return repr(parse_value(text))


def same_settings(a: dict, b: dict) -> bool:
    """Two effective configurations (dotted key -> value) that are the same setting for setting."""
    return {k: norm(v) for k, v in a.items()} == {k: norm(v) for k, v in b.items()}


def parse_sets(items: list[str] | tuple[str, ...]) -> dict[str, str]:
    """['lr=0.1', 'a.b=[1,2]'] -> {'lr': '0.1', 'a.b': '[1,2]'}; keys are validated by the recipe later."""
    sets: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"bad --set {item!r}: write KEY=VALUE, for example --set policy.optimizer.kwargs.lr=1e-6")
        if not value.strip():
            raise UsageError(
                f"bad --set {item!r}: the value is empty; write KEY=VALUE (KEY='\"\"' for an empty string)"
            )
        sets[key] = value.strip()
    return sets


def validated(h: Hypothesis) -> Hypothesis:
    validate_name(h.name)
    if h.repeats is not None and h.repeats < 1:
        raise UsageError(f"bad repeats {h.repeats} for {h.name!r}: run a hypothesis at least once")
    if h.patch and not Path(h.patch).is_file():
        raise UsageError(f"patch file {h.patch!r} of hypothesis {h.name!r} does not exist")
    return h
