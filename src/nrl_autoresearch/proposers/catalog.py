"""`catalog`, open-ended and low risk first: walk the recipe's knobs in the skill's priority order.

One knob at a time: a clean A/B test of its first direction from the baseline; while that keeps paying, a step
further from the best keep (building on a proven gain); after a discard or a crash, the other direction once;
then the next knob. Finally every kept change is combined on the best keep. A change whose effective
configuration was already tried is never proposed.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator

from nrl_autoresearch.core.git import Git, Snapshot
from nrl_autoresearch.core.history import History
from nrl_autoresearch.core.hypothesis import Hypothesis
from nrl_autoresearch.core.names import slugify
from nrl_autoresearch.core.proposer import Proposer, already_tried, as_text, norm
from nrl_autoresearch.core.recipe import Recipe, TunableSetting
from nrl_autoresearch.recipes.params import parse_value


class CatalogProposer(Proposer):
    name = "catalog"

    def __init__(self, recipe: Recipe, git: Git, base_commit: str):
        self.recipe = recipe
        self._snapshot = Snapshot(git, base_commit)
        self._knobs: list[TunableSetting] | None = None

    def knobs(self, history: History) -> list[TunableSetting]:
        """The recipe's knobs in priority order, the areas the latest symptoms and the steering point to first."""
        if self._knobs is None:
            self._knobs = self.recipe.knobs(self._snapshot)
        areas = preferred_areas(history, {k.area for k in self._knobs})
        return sorted(self._knobs, key=lambda k: areas.index(k.area) if k.area in areas else len(areas))

    def propose(self, history: History) -> Hypothesis | None:
        for candidate in self.candidates(history):
            if not already_tried(candidate, history):
                return candidate
        return None

    def preview(self, history: History, n: int = 3) -> list[str]:
        fresh = (h for h in self.candidates(history) if not already_tried(h, history))
        return [f"{h.name}: {h.description}" for h in itertools.islice(fresh, n)]

    def candidates(self, history: History) -> Iterator[Hypothesis]:
        """Every candidate the recipe would run from the commit it branches from, in the order proposed (tried
        ones included: `propose` skips those)."""
        snapshots = {"baseline": self._snapshot}
        if history.best is not None:
            snapshots["best"] = Snapshot(self._snapshot.git, history.best.commit)
        for h in self.unchecked_candidates(history):
            if self.recipe.refusal(snapshots[h.parent], h.sets) is None:
                yield h

    def unchecked_candidates(self, history: History) -> Iterator[Hypothesis]:
        """`candidates` before the recipe's check (which costs a config resolution each)."""
        outcome = _outcomes(history)
        knobs = self.knobs(history)
        on_best = _best_effective(history)
        for knob in knobs:
            first, *others = knob.directions
            yield from self._direction(knob, first, outcome, on_best)
            if outcome.get((knob.key, norm(first[0])), "keep") != "keep" and others:
                yield from self._direction(knob, others[0], outcome, on_best)  # the other direction, once
        if history.best is None:
            return
        for knob in knobs:  # then combine every proven gain on top of the best keep
            for direction in knob.directions:
                for value in direction:
                    if outcome.get((knob.key, norm(value))) == "keep":
                        yield _hypothesis(knob, value, "best", on_best.get(knob.key, knob.current))

    @staticmethod
    def _direction(knob: TunableSetting, direction: tuple[str, ...], outcome: dict, on_best: dict):
        """A clean A/B step from the baseline; while it keeps paying, the next step further from the best keep."""
        yield _hypothesis(knob, direction[0], "baseline", knob.current)
        for step, further in itertools.pairwise(direction):
            if outcome.get((knob.key, norm(step))) != "keep":
                return
            yield _hypothesis(knob, further, "best", on_best.get(knob.key, knob.current))


def preferred_areas(history: History, areas: set[str]) -> list[str]:
    """Areas to try first: those the latest run's symptoms point to, then those the steering notes name."""
    found = list(history.diagnoses[-1].areas) if history.diagnoses else []
    steering = " ".join(history.steering).lower()
    for area in sorted(areas):
        words = [w for w in re.split(r"[/ ]+", area) if len(w) > 3]
        if any(w in steering for w in words):
            found.append(area)
    return list(dict.fromkeys(found))


def _hypothesis(knob: TunableSetting, value: str, parent: str, current: object) -> Hypothesis:
    """The change stated against the commit it branches from: `current` is the knob's value there."""
    arrow = _direction(current, value)
    name = slugify(f"{knob.key.rsplit('.', 1)[-1]}-{arrow}-{value}" + ("-on-best" if parent == "best" else ""))
    why = f" ({knob.why})" if knob.why else ""
    along = "".join(f", {key} -> {v}" for key, v in knob.companions)
    return Hypothesis(
        name=name,
        description=f"{knob.area}: {knob.key} {as_text(current)} -> {value}{along} on {parent}{why}",
        parent=parent,
        sets={knob.key: value, **dict(knob.companions)},
    )


def _best_effective(history: History) -> dict:
    """The best keep's settings (its effective changes from the baseline), parsed."""
    return {k: parse_value(v) for k, v in history.best_effective().items()}


def _direction(current, value: str) -> str:
    if isinstance(current, bool):
        return "on" if parse_value(value) is True else "off"
    try:
        return "up" if float(parse_value(value)) > float(current) else "down"
    except (TypeError, ValueError):
        return "set"


def _outcomes(history: History) -> dict[tuple[str, str], str]:
    """(key, value) of single-knob hypotheses -> status of their row."""
    status = {r.index: r.status for r in history.rows}
    found = {}
    for t in history.tried:
        if len(t.sets) == 1 and t.index in status:
            ((key, value),) = t.sets.items()
            found[(key, norm(value))] = status[t.index]
    return found
