"""The A/A test on the demo recipe: changes that only move the seed are not kept, a real improvement of two
spreads is (benchmarks/noise_verdicts.py measures the rates over more campaigns)."""

from __future__ import annotations

import time
from pathlib import Path

from nrl_autoresearch import api
from nrl_autoresearch.engine import Engine
from nrl_autoresearch.hypothesis import Hypothesis
from nrl_autoresearch.stoprules import StopRules


def campaign(folder: Path, baseline_repeats: int, repeats: int, seed_base: int) -> Engine:
    c = api.create_demo(folder)
    c = c.with_rules(StopRules.build(now=time.time(), max_experiments=100)).with_options(
        baseline_repeats=baseline_repeats, repeats=repeats, seed_base=seed_base)
    c.save()
    engine = Engine(c, say=lambda _: None)
    engine.baseline()
    return engine


def test_noise_only_changes_are_not_kept(tmp_path: Path):
    engine = campaign(tmp_path / "aa", baseline_repeats=8, repeats=1, seed_base=1000)
    rows = [engine.try_(Hypothesis(f"aa-{i}", "another seed only", sets={"grpo.seed": str(1500 + i)}))
            for i in range(20)]
    keeps = [r for r in rows if r.status == "keep"]
    assert len(keeps) <= 1, [r.description for r in keeps]
    assert all("spread" in r.description and "threshold" in r.description for r in rows)


def test_a_real_improvement_of_two_spreads_is_kept(tmp_path: Path):
    kept = 0
    for trial in range(5):
        engine = campaign(tmp_path / f"t{trial}", baseline_repeats=4, repeats=4, seed_base=5000 + 100 * trial)
        row = engine.try_(Hypothesis("temperature", "+2 spreads", sets={"policy.generation.temperature": "0.87"}))
        kept += row.status == "keep" and "paired over 4 seeds" in row.description
    assert kept >= 4
