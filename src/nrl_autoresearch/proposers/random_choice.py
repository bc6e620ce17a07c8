"""`random`: a knob and a value of the recipe's catalog drawn at random, from the baseline or the best keep.

A yardstick for the other proposers (how much does order and search buy over chance?), seeded by the
campaign's seed base so that a campaign is reproducible. A draw brings the settings its knob needs with it; one
the recipe would refuse, or that would change nothing where it applies, is drawn again.
"""

from __future__ import annotations

import random

from nrl_autoresearch.core.git import Git, Snapshot
from nrl_autoresearch.core.history import History
from nrl_autoresearch.core.hypothesis import Hypothesis
from nrl_autoresearch.core.proposer import Proposer, already_tried, next_number
from nrl_autoresearch.core.recipe import Recipe

DRAWS = 200  # draws per proposal before giving up on finding an untried configuration


class RandomProposer(Proposer):
    name = "random"

    def __init__(self, recipe: Recipe, git: Git, base_commit: str, seed: int):
        self.recipe = recipe
        self._baseline = Snapshot(git, base_commit)
        self.knobs = recipe.knobs(self._baseline)
        self.seed = seed

    def propose(self, history: History) -> Hypothesis | None:
        rng = random.Random(self.seed + next_number(history))
        choices = [(k, v) for k in self.knobs for d in k.directions for v in d]
        for _ in range(DRAWS if choices else 0):
            knob, value = rng.choice(choices)
            best = history.best if history.best is not None and rng.random() < 0.5 else None
            parent = "best" if best else "baseline"
            sets, _ = self.recipe.prepared(
                Snapshot(self._baseline.git, best.commit) if best else self._baseline, {knob.key: value}
            )
            if sets is None:
                continue
            along = "".join(f", {k} -> {v}" for k, v in sets.items() if k != knob.key)
            h = Hypothesis(
                f"random-{next_number(history)}",
                f"random: {knob.key} {knob.current} -> {value}{along} from {parent}",
                parent=parent,
                sets=sets,
            )
            if not already_tried(h, history):
                return h
        return None
