"""What a proposer is: given the campaign's history, the next hypothesis, or None when it has nothing left.

The engine asks and runs; a proposer only proposes (ask/tell, as Optuna does), so a queue file, a catalog
walk, a model-based search or an external agent are one file each.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from nrl_autoresearch.core.hypothesis import Hypothesis, norm
from nrl_autoresearch.runner.engine import History


class Proposer(ABC):
    name: str = ""

    @abstractmethod
    def propose(self, history: History) -> Hypothesis | None: ...

    def preview(self, history: History, n: int = 3) -> list[str]:
        """The first hypotheses in words, for the plan a person confirms before anything is created."""
        return []


def tried_names(history: History) -> set[str]:
    """Hypothesis names already attempted (as proposed, before any suffix a taken branch name got)."""
    return {t["hypothesis"]["name"] for t in history.tried if t.get("hypothesis")}


def already_tried(h: Hypothesis, history: History) -> bool:
    """Compare effective configurations: the parent's accumulated changes plus this one, normalised."""
    parent_effective: dict = {}
    if h.parent == "best" and history.best is not None:
        parent_effective = next((t.get("effective") or {} for t in history.tried if t.get("commit") == history.best.commit), {})
    effective = {k: norm(v) for k, v in {**parent_effective, **h.sets}.items()}
    for t in history.tried:
        if {k: norm(v) for k, v in (t.get("effective") or {}).items()} == effective:
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
    return max((t["index"] for t in history.tried), default=1) + 1
