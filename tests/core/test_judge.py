"""The verdict rule as pure functions: Student-t bars, the two-stage rule's error rates, pairing, curve jitter."""

from __future__ import annotations

import math
import random

import pytest

from nrl_autoresearch.core.judge import (
    CANDIDATE_Z,
    CONTINUE_Z,
    MAX_LOOK_RUNS,
    Z_DEFAULT,
    Reference,
    Spread,
    ahead,
    curve_jitter,
    false_keep_rate,
    judge,
    keep_bar,
    pooled_jitter,
    pooled_spread,
    t_quantile,
)


@pytest.mark.parametrize(
    "p, dof, expected",
    [
        (0.95, 1, 6.3138),
        (0.95, 2, 2.9200),
        (0.95, 3, 2.3534),
        (0.95, 5, 2.0150),
        (0.95, 10, 1.8125),
        (0.8, 3, 0.9785),
        (0.975, 4, 2.7764),
        (0.99, 30, 2.4573),
    ],
)
def test_t_quantiles_match_the_tables(p: float, dof: int, expected: float):
    assert t_quantile(p, dof) == pytest.approx(expected, rel=4e-3)


def test_the_bar_is_student_t_times_the_spread_for_n_against_m_runs():
    spread = Spread(0.01, 6, 5)
    assert keep_bar(spread, 1, 6, 1.645) == pytest.approx(2.015 * 0.01 * math.sqrt(1 + 1 / 6), rel=1e-3)
    assert false_keep_rate(1.645) == pytest.approx(0.05, abs=1e-3) and false_keep_rate(Z_DEFAULT) == pytest.approx(
        0.04, abs=1e-3
    )


def _campaign(rng: random.Random, gain: float, m: int = 6) -> bool:
    """One hypothesis judged as the engine judges it by default: m baseline runs, then looks of one more run."""
    base = [rng.gauss(0, 1) for _ in range(m)]
    reference = Reference("baseline", tuple(base))
    runs = [rng.gauss(gain, 1)]
    while True:
        spread = pooled_spread([base, runs])
        if len(runs) > 1 and ahead(runs, reference, maximize=True, spread=spread, z=Z_DEFAULT):
            return True
        bar = CANDIDATE_Z if len(runs) == 1 else CONTINUE_Z
        if len(runs) == MAX_LOOK_RUNS or not ahead(runs, reference, maximize=True, spread=spread, z=bar):
            return False
        runs.append(rng.gauss(gain, 1))


def test_the_sequential_rule_keeps_few_null_changes_and_most_real_gains():
    rng = random.Random(7)
    false_keeps = sum(_campaign(rng, 0.0) for _ in range(4000)) / 4000
    power = [sum(_campaign(rng, gain) for _ in range(2000)) / 2000 for gain in (2.5, 3.0)]
    assert 0.03 < false_keeps < 0.07
    assert power[0] > 0.85 and power[1] > 0.93


def test_a_look_needs_its_bar_and_a_measured_spread():
    reference = Reference("baseline", (0.5, 0.52, 0.48, 0.5))
    spread = pooled_spread([reference.values])
    bar = keep_bar(spread, 1, 4, CANDIDATE_Z)
    assert ahead([0.5 + bar * 1.01], reference, maximize=True, spread=spread, z=CANDIDATE_Z)
    assert not ahead([0.5 + bar * 0.99], reference, maximize=True, spread=spread, z=CANDIDATE_Z)
    assert ahead([0.5 - bar * 1.01], reference, maximize=False, spread=spread, z=CANDIDATE_Z)
    assert not ahead([0.9], reference, maximize=True, spread=None, z=CANDIDATE_Z)


def test_four_shared_seeds_make_a_paired_test_and_fewer_do_not():
    reference = Reference("baseline", (0.50, 0.60, 0.40, 0.55), ("own", "1001", "1002", "1003"))
    paired = judge([0.52, 0.62, 0.42, 0.57], reference, maximize=True, seeds=("own", "1001", "1002", "1003"))
    assert paired.status == "keep" and "paired over 4 seeds" in paired.note
    unpaired = judge(
        [0.52, 0.62], reference, maximize=True, seeds=("own", "1001"), spread=pooled_spread([reference.values])
    )
    assert unpaired.status == "discard" and "paired" not in unpaired.note and "4% false keeps" in unpaired.note


def test_without_any_noise_estimate_a_verdict_says_so():
    verdict = judge([0.51], Reference("baseline", (0.5,)), maximize=True)
    assert verdict.status == "keep" and "noise unknown" in verdict.note and "not a finding" in verdict.note


def test_curve_jitter_is_the_spread_around_the_trend_scaled_to_what_is_averaged():
    rising = [0.1 * i for i in range(10)]  # a clean trend: no jitter
    assert curve_jitter(rising)[0] == pytest.approx(0.0, abs=1e-12)
    rng = random.Random(3)
    noisy = [0.1 * i + rng.gauss(0, 0.05) for i in range(400)]
    sd, dof = curve_jitter(noisy, last=400)
    assert sd == pytest.approx(0.05, rel=0.15) and dof == 398
    spread = pooled_jitter([(sd, dof)], points=4)
    assert spread.source == "curve jitter" and spread.sd == pytest.approx(sd / 2)
    assert curve_jitter([0.5, 0.6, 0.7]) is None


@pytest.mark.parametrize("values", [[0.50], [0.53], [0.53, 0.54]])
def test_every_verdict_with_a_spread_names_the_spread_and_its_bar(values: list[float]):
    reference = Reference("baseline", (0.50, 0.51, 0.49, 0.50, 0.52, 0.48))
    spread = pooled_spread([reference.values])
    assert spread is not None
    verdict = judge(values, reference, maximize=True, spread=spread)
    bar = keep_bar(spread, len(values), len(reference.values), Z_DEFAULT)
    assert verdict.status == ("keep" if sum(values) / len(values) - reference.value > bar else "discard")
    assert f"spread {spread.sd:.4g} over 6 runs" in verdict.note and f"threshold {bar:.4g}" in verdict.note
    assert "4% false keeps" in verdict.note and ("mean of 2 runs" in verdict.note) == (len(values) == 2)
