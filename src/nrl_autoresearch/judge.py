"""keep / discard / crash by rule, and a description that says what was compared with what, by how much."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Reference:
    """What a result is compared with: a label ('baseline', 'best keep lr-up') and its value."""

    label: str
    value: float


@dataclass(frozen=True)
class Verdict:
    status: str
    note: str


def valid(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def judge(value: float | None, reference: Reference | None, *, maximize: bool, min_delta: float = 0.0,
          spread: float | None = None, z: float = 2.0, simplifies: Callable[[], bool] = lambda: False) -> Verdict:
    """A result is kept when it beats the reference by more than max(min_delta, z x spread); a flat result
    that makes the code simpler (asked only then: it costs git diffs) is kept too; no valid metric is a crash."""
    if not valid(value):
        return Verdict("crash", "no valid metric" if value is None else f"metric is {value} (diverged)")
    if reference is None:
        return Verdict("keep", "first valid result: it becomes the reference")
    delta = value - reference.value
    gain = delta if maximize else -delta
    threshold = max(min_delta, z * spread) if spread else min_delta
    noise = f"spread {spread:.4g}, threshold {threshold:.4g}" if spread else "no spread estimate yet"
    note = f"{delta:+.4g} vs {reference.label} {reference.value:.6g} ({noise})"
    if gain > threshold:
        return Verdict("keep", note)
    if abs(gain) <= threshold and simplifies():
        return Verdict("keep", f"{note}; flat metric with a smaller diff: simplification")
    return Verdict("discard", note)
