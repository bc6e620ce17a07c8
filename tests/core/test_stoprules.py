"""Stop rules exactly as the skill states them: parsing, the sentence, and when a run may start."""

from __future__ import annotations

import pytest

from nrl_autoresearch.core.errors import UsageError
from nrl_autoresearch.core.stoprules import (
    StopRules,
    exact_duration,
    format_duration,
    may_launch,
    parse_duration,
    parse_stop_sentence,
    run_limit,
    status,
)

NOW = 1_000_000.0


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("45m", 2700),
        ("1h30m", 5400),
        ("10h", 36000),
        ("1.5h", 5400),
        ("2d", 172800),
        ("90 min", 5400),
        ("10 hours", 36000),
        ("01:30:00", 5400),
        ("30s", 30),
        ("1h 5m", 3900),
    ],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10", "ten hours", "5 parsecs", "-1h", "0m", "1h garbage"])
def test_bad_durations_are_usage_errors(text):
    with pytest.raises(UsageError, match="bad duration"):
        parse_duration(text)


def test_format_duration_matches_the_skill():
    assert format_duration(6 * 3600 + 12 * 60 + 5) == "6h12m"
    assert format_duration(45 * 60) == "45m"
    assert format_duration(30) == "30s"
    assert format_duration(2 * 86400 + 3 * 3600) == "2d3h"


def test_configured_durations_are_shown_exactly():
    assert exact_duration(90) == "1m30s"
    assert exact_duration(3600) == "1h"
    assert exact_duration(86400 + 5) == "1d5s"
    rules = StopRules.build(now=NOW, per_experiment="90s", budget="1h30m")
    assert "per_experiment_timeout = 1m30s" in rules.monitors()
    assert any(m.endswith("(1h30m budget)") for m in rules.monitors())


def test_stop_sentence_is_parsed_into_monitors():
    assert parse_stop_sentence("50 experiments or 10h total, 1h each") == {
        "max_experiments": "50",
        "budget": "10h",
        "per_experiment": "1h",
    }
    rules = StopRules.build(now=NOW, stop="50 experiments or 10h total, 1h each")
    assert rules.max_experiments == 50 and rules.deadline == NOW + 36000 and rules.per_experiment_s == 3600
    assert rules.monitors()[0] == "target_experiment_count = 50"
    assert rules.monitors()[2] == "per_experiment_timeout = 1h"
    target = StopRules.build(now=NOW, stop="until val:accuracy>=0.8; 20 runs")
    assert str(target.target) == "val:accuracy>=0.8" and target.max_experiments == 20


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("50 experiments or whenever", "could not read 'whenever'"),
        ("3 experiments or 4 experiments", "twice"),
        ("", "empty"),
    ],
)
def test_bad_stop_sentences(text, fragment):
    with pytest.raises(UsageError, match=fragment):
        StopRules.build(now=NOW, stop=text)


def test_contradicting_options_are_refused():
    with pytest.raises(UsageError, match="contradicts"):
        StopRules.build(now=NOW, max_experiments=3, stop="5 experiments")


def test_count_rule_counts_attempted_rows():
    rules = StopRules.build(now=NOW, max_experiments=24)
    assert status(rules, attempted=17, now=NOW).sentence == "stop condition not yet met: 17/24 attempted"
    met = status(rules, attempted=24, now=NOW)
    assert met.met and met.trigger == "count" and met.sentence == "stop condition met: 24/24 attempted"


def test_deadline_rule_and_the_room_for_one_more_run():
    rules = StopRules.build(now=NOW, max_experiments=24, budget="10h", per_experiment="1h")
    later = NOW + 3 * 3600 + 48 * 60
    assert (
        status(rules, attempted=17, now=later).sentence
        == "stop condition not yet met: 17/24 attempted, 6h12m remaining"
    )
    tight = status(rules, attempted=5, now=NOW + 36000 - 1800)
    assert tight.met and tight.trigger == "deadline" and "no room for another 1h run" in tight.sentence
    assert not may_launch(rules, attempted=5, in_flight=0, now=NOW + 36000 - 1800)
    over = status(rules, attempted=5, now=NOW + 36001)
    assert over.met and over.sentence.startswith("stop condition met: deadline reached")
    assert run_limit(rules, now=NOW) == 3600
    assert run_limit(StopRules.build(now=NOW, budget="10m"), now=NOW + 300) == 300  # never past the deadline


def test_target_rule_honours_the_direction():
    up = StopRules.build(now=NOW, target="val:accuracy>=0.8")
    assert not status(up, attempted=3, now=NOW, best=0.7).met
    assert (
        status(up, attempted=3, now=NOW, best=0.81).sentence
        == "stop condition met: target val:accuracy>=0.8 reached (0.81)"
    )
    down = StopRules.build(now=NOW, target="loss<=0.5")
    assert status(down, attempted=2, now=NOW, best=0.4).met and not status(down, attempted=2, now=NOW, best=0.6).met
    assert not up.target.reached(float("nan"))


def test_combined_rules_stop_on_the_first_trigger():
    rules = StopRules.build(now=NOW, stop="5 experiments or 1h total, 10m each", target="acc>=0.9")
    assert status(rules, attempted=5, now=NOW, best=0.5).trigger == "count"
    assert status(rules, attempted=2, now=NOW, best=0.95).trigger == "target"
    assert status(rules, attempted=2, now=NOW + 3100, best=0.5).trigger == "deadline"
    sentence = status(rules, attempted=2, now=NOW + 60, best=0.5).sentence
    assert sentence == "stop condition not yet met: 2/5 attempted, 59m remaining, best 0.5, target acc>=0.9"


def test_default_rule_is_baseline_plus_three_then_ask():
    rules = StopRules.build(now=NOW)
    assert rules.implicit and rules.max_experiments == 4
    met = status(rules, attempted=4, now=NOW)
    assert met.met and "confirm to continue" in met.sentence
    more = rules.extended(attempted=4, more=3)
    assert not status(more, attempted=4, now=NOW).met and more.max_experiments == 7


def test_in_flight_runs_count_against_the_count_rule():
    rules = StopRules.build(now=NOW, max_experiments=5)
    assert may_launch(rules, attempted=2, in_flight=2, now=NOW)
    assert not may_launch(rules, attempted=2, in_flight=3, now=NOW)


def test_rules_survive_persistence():
    rules = StopRules.build(now=NOW, stop="5 experiments or 1h total, 10m each", target="acc>=0.9")
    assert StopRules.from_dict(rules.to_dict()) == rules


def test_a_gpu_hour_budget_is_read_from_stop_and_checked_like_the_deadline():
    from nrl_autoresearch.core.stoprules import StopRules, may_launch, status

    rules = StopRules.build(now=0.0, stop="10 experiments or 100 GPU-hours, 2h each")
    assert rules.gpu_hours == 100 and "gpu_hour_budget = 100" in rules.monitors()
    assert StopRules.from_dict(rules.to_dict()) == rules
    assert may_launch(rules, attempted=1, in_flight=0, now=0.0, gpu_hours_used=80.0, run_gpu_hours=16.0)
    assert not may_launch(rules, attempted=1, in_flight=0, now=0.0, gpu_hours_used=90.0, run_gpu_hours=16.0)
    met = status(rules, attempted=1, now=0.0, gpu_hours_used=90.0, run_gpu_hours=16.0)
    assert met.met and met.trigger == "gpu-hours" and "no room for another 16 GPU-hour run" in met.sentence
    cpu = status(rules, attempted=1, now=0.0, gpu_hours_used=0.0, run_gpu_hours=0.0)
    assert not cpu.met and "100 of 100 GPU-hours left" in cpu.sentence  # CPU-only runs never spend it
