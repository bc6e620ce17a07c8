"""What a proposer is: given the campaign's history, the next hypothesis, or None when it has nothing left.

The engine asks and runs; a proposer only proposes (ask/tell, as Optuna does), so a queue file, a catalog
walk, a model-based search or an external agent are one file each.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from ..engine import History
from ..hypothesis import Hypothesis


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
