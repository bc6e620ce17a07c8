"""One planned run of a configuration, as the journal's intent records it: the experiment's typed record.

A trial is planned (its index reserved) before anything is created; `to_record` is what its intent event holds
and `from_record` reads it back, the one place the journal's intent is written and parsed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from nrl_autoresearch.core.hypothesis import Hypothesis
from nrl_autoresearch.core.judge import Reference
from nrl_autoresearch.core.names import BASELINE


@dataclass(frozen=True)
class Trial:
    """A run with its index reserved: where it branches from, what it changes and what it is compared with."""

    index: int
    name: str  # the experiment name, its branch `<prefix>/<name>`
    run: str  # the run's folder name: the name, or `<name>-r<k>` for its k-th run
    branch: str
    parent: str  # as the hypothesis named it: 'baseline', 'best', an experiment or a branch
    parent_commit: str
    hypothesis: Hypothesis
    reference: Reference | None = None
    effective: dict = field(default_factory=dict)  # the parent's accumulated settings plus this change
    seed: int | None = None  # None: the recipe's own seed
    group: tuple[int, ...] = ()  # the indexes of the runs judged together (repeats of one configuration)
    role: str = ""  # "repeat 2/3", "confirmation of [5]"
    commit: str | None = None  # a further run of a configuration already committed runs this commit
    rerun_of: int | None = None  # the interrupted run this one re-runs
    screen: float = 0.0  # --screen: the share of the training steps this run makes (0: all of them)

    @property
    def is_baseline(self) -> bool:
        return self.name == BASELINE

    @property
    def what(self) -> str:
        """The change in words, for rows and commit titles."""
        return self.hypothesis.description or self.hypothesis.summary() or self.name

    def again(
        self,
        *,
        index: int,
        run_number: int,
        seed: int | None,
        role: str,
        commit: str | None,
        rerun_of: int | None = None,
    ) -> Trial:
        """One more run of this configuration on its branch, judged on its own (no repeats, no fixer)."""
        return replace(
            self,
            index=index,
            run=f"{self.name}-r{run_number}",
            seed=seed,
            group=(index,),
            role=role,
            hypothesis=replace(self.hypothesis, repeats=1, fix=None),
            commit=commit,
            rerun_of=rerun_of,
        )

    def with_reference(self, reference: Reference | None) -> Trial:
        return replace(self, reference=reference)

    def to_record(self) -> dict:
        """The journal's intent for this trial (its index is the event's)."""
        return {
            "name": self.name,
            "run": self.run,
            "branch": self.branch,
            "parent": self.parent,
            "parent_commit": self.parent_commit,
            "hypothesis": self.hypothesis.to_dict(),
            "effective": self.effective,
            "reference": asdict(self.reference) if self.reference else None,
            "seed": self.seed,
            "group": list(self.group),
            "role": self.role,
            "commit": self.commit,
            "rerun_of": self.rerun_of,
            "screen": self.screen,
        }

    @classmethod
    def from_record(cls, index: int, data: dict) -> Trial:
        """A trial as its intent recorded it (later steps of the attempt may be merged into `data`; an older intent
        may lack the newer fields). The commit is the intent's own: a commit made later is not the trial's plan."""
        ref = data.get("reference")
        return cls(
            index=index,
            name=data["name"],
            run=data["run"],
            branch=data["branch"],
            parent=data["parent"],
            parent_commit=data["parent_commit"],
            hypothesis=Hypothesis(**data["hypothesis"]),
            reference=Reference(ref["label"], tuple(ref["values"]), tuple(ref["seeds"])) if ref else None,
            effective=dict(data.get("effective") or {}),
            seed=data.get("seed"),
            group=tuple(data.get("group") or [index]),
            role=data.get("role", ""),
            rerun_of=data.get("rerun_of"),
            screen=data.get("screen") or 0.0,
        )
