"""What a proposer sees of a campaign: its rows, the best keep, what was tried (with effective changes), the
person's steering and the symptoms read from recent runs. A read-only, typed view built from the journal and the
ledger, so that a proposer never reads either."""

from __future__ import annotations

from dataclasses import dataclass, field

from nrl_autoresearch.core.campaign import Campaign
from nrl_autoresearch.core.journal import Attempt, Journal
from nrl_autoresearch.core.ledger import Row


@dataclass(frozen=True)
class Tried:
    """One attempted configuration: its index, the hypothesis's name and change as proposed, and its effective
    settings (the parent's accumulated changes plus its own)."""

    index: int
    name: str
    sets: dict
    effective: dict
    commit: str | None = None
    done: bool = False

    @classmethod
    def of(cls, attempt: Attempt) -> Tried:
        hypothesis = attempt.data.get("hypothesis") or {}
        return cls(
            attempt.index,
            hypothesis.get("name") or attempt.data.get("name", ""),
            dict(hypothesis.get("sets") or {}),
            dict(attempt.data.get("effective") or {}),
            attempt.data.get("commit"),
            attempt.done,
        )


@dataclass(frozen=True)
class Diagnosis:
    """Symptoms read in one run's logs and scalars, and the areas of the recipe they point to."""

    run: int
    areas: tuple[str, ...]
    symptoms: tuple[str, ...]


@dataclass(frozen=True)
class History:
    campaign: Campaign
    rows: list[Row]
    tried: list[Tried]
    best: Row | None
    steering: list[str] = field(default_factory=list)
    diagnoses: list[Diagnosis] = field(default_factory=list)

    @classmethod
    def read(cls, campaign: Campaign, journal: Journal, rows: list[Row], best: Row | None) -> History:
        tried = [Tried.of(a) for a in sorted(journal.attempts().values(), key=lambda a: a.index)]
        steering = [e["text"] for e in journal.events("steer")]
        diagnoses = [Diagnosis(e["run"], tuple(e["areas"]), tuple(e["symptoms"])) for e in journal.events("diagnosis")]
        return cls(campaign, rows, tried, best, steering, diagnoses)

    def effective_of(self, commit: str | None) -> dict:
        """The effective settings of the configuration at `commit` (empty for the baseline or an unknown one)."""
        return next((t.effective for t in self.tried if commit is not None and t.commit == commit), {})

    def best_effective(self) -> dict:
        """The best keep's effective settings (empty before any keep)."""
        return self.effective_of(self.best.commit) if self.best is not None else {}

    def tried_names(self) -> set[str]:
        """Hypothesis names already attempted (as proposed, before any suffix a taken branch name got)."""
        return {t.name for t in self.tried}

    def next_number(self) -> int:
        """The index the next attempt will get, for names like `search-7` or `agent-7`."""
        return max((t.index for t in self.tried), default=1) + 1
