"""The keep/discard/crash rule as one module: groups judged together, pruned runs, crashes, more looks."""

from __future__ import annotations

from collections.abc import Sequence

from nrl_autoresearch.core.hypothesis import Hypothesis
from nrl_autoresearch.core.judge import Reference, Spread, Verdict
from nrl_autoresearch.core.trial import Trial
from nrl_autoresearch.core.verdict import (
    another_look,
    campaign_spread,
    group_verdict,
    row_status,
    seed_key,
)

REFERENCE = Reference("baseline", (0.50, 0.52, 0.48), ("own", "1001", "1002"))
SPREAD = Spread(0.02, 3, 2)


def trial(name: str = "lr-up") -> Trial:
    return Trial(
        index=2,
        name=name,
        run=name,
        branch=f"ar/x/{name}",
        parent="baseline",
        parent_commit="a" * 40,
        hypothesis=Hypothesis(name, parent="baseline"),
        reference=REFERENCE,
    )


def verdict(new: list[tuple[str, float]], earlier: Sequence[tuple[str, float]] = (), name: str = "lr-up") -> Verdict:
    return group_verdict(
        trial(name), list(earlier), new, maximize=True, min_delta=0.0, spread=SPREAD, z=1.751, simplifies=lambda: False
    )


def test_a_clear_gain_is_kept_a_small_one_discarded_and_no_valid_run_is_a_crash():
    assert verdict([("own", 0.70)]).status == "keep"
    assert verdict([("own", 0.505)]).status == "discard"
    assert verdict([]) == Verdict("crash", "no valid metric")


def test_earlier_runs_of_the_configuration_are_judged_with_the_new_ones():
    alone = verdict([("1003", 0.56)])
    together = verdict([("1003", 0.56)], earlier=[("own", 0.57), ("1001", 0.58)])
    assert alone.status == "discard" and together.status == "keep" and "mean of 3 runs" in together.note


def test_the_baseline_is_the_reference_whatever_its_value():
    found = verdict([("own", 0.1), ("1001", 0.12)], name="baseline")
    assert found.status == "keep" and found.note.startswith("the reference (mean 0.11 of 2 runs")


def test_a_pruned_run_is_a_discard_with_its_metric_and_a_crash_has_its_note():
    keep = Verdict("keep", "better")
    assert row_status(keep, crash_reason=None, pruned_reason="pruned: behind", crash_note=lambda: "x") == (
        "discard",
        "pruned: behind (stopped early: no evidence against the idea)",
        True,
    )
    assert row_status(keep, crash_reason="exit 1", pruned_reason=None, crash_note=lambda: "crash: exit 1") == (
        "crash",
        "crash: exit 1",
        False,
    )
    assert row_status(keep, crash_reason=None, pruned_reason=None, crash_note=lambda: "x") == ("keep", "better", True)


def test_a_single_run_ahead_of_the_candidate_bar_gets_another_look_until_it_clears_the_keep_bar():
    look = {"maximize": True, "min_delta": 0.0, "z": 1.751}
    assert another_look([0.53], REFERENCE, SPREAD, added=0, **look)  # ahead, not yet a keep
    assert not another_look([0.49], REFERENCE, SPREAD, added=0, **look)  # behind: judged now
    assert not another_look([0.60, 0.61], REFERENCE, SPREAD, added=1, **look)  # past the keep bar: judged now
    assert not another_look([0.53, 0.53, 0.53], REFERENCE, SPREAD, added=2, **look)  # the looks are used up
    assert not another_look([0.53], REFERENCE, Spread(0.02, 6, 5, "curve jitter"), added=0, **look)


def test_the_spread_pools_repeats_and_falls_back_on_curve_jitter():
    assert campaign_spread([[1.0, 1.2], [2.0]], [(5.0, 9)], "last").source == "repeats"
    jitter = campaign_spread([[1.0]], [(0.4, 9)], "mean-last-4")
    assert jitter.source == "curve jitter" and abs(jitter.sd - 0.2) < 1e-12
    assert seed_key(None) == "own" and seed_key(1001) == "1001"
