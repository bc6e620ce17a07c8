"""One room for the stop rules: the status sentence, may-launch and the planner's repeat count always agree."""

from __future__ import annotations

import itertools

from nrl_autoresearch.core.stoprules import StopRules, room, status

NOW = 1_000_000.0


def test_repeats_are_cut_to_the_count_rule_with_runs_in_flight_counted():
    rules = StopRules.build(now=NOW, max_experiments=10)
    assert room(rules, attempted=4, in_flight=0, now=NOW, wanted=3) == 3
    assert room(rules, attempted=4, in_flight=4, now=NOW, wanted=3) == 2
    assert room(rules, attempted=4, in_flight=6, now=NOW, wanted=3) == 0
    assert room(StopRules.build(now=NOW, budget="1h"), attempted=400, now=NOW, wanted=5) == 5


def test_no_room_once_the_deadline_target_or_gpu_hours_leave_none():
    deadline = StopRules.build(now=NOW, budget="1h", per_experiment="20m")
    assert room(deadline, attempted=1, now=NOW + 40 * 60) == 1
    assert room(deadline, attempted=1, now=NOW + 41 * 60) == 0
    target = StopRules.build(now=NOW, target="acc>=0.8")
    assert room(target, attempted=1, now=NOW, best=0.79) == 1 and room(target, attempted=1, now=NOW, best=0.8) == 0
    gpus = StopRules.build(now=NOW, gpu_hours=10)
    assert room(gpus, attempted=1, now=NOW, gpu_hours_used=8, run_gpu_hours=2) == 1
    assert room(gpus, attempted=1, now=NOW, gpu_hours_used=8.5, run_gpu_hours=2) == 0


def test_the_status_is_met_exactly_when_nothing_may_start_with_nothing_in_flight():
    rules = StopRules.build(
        now=NOW, max_experiments=5, budget="2h", per_experiment="30m", target="acc>=0.9", gpu_hours=4
    )
    for attempted, minutes, best, used in itertools.product(range(4, 7), (0, 95, 125), (None, 0.5, 0.95), (0, 2.5, 4)):
        state = {
            "attempted": attempted,
            "now": NOW + minutes * 60,
            "best": best,
            "gpu_hours_used": used,
            "run_gpu_hours": 1.0,
        }
        assert status(rules, **state).met == (room(rules, **state) == 0), state
