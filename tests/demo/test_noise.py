"""The A/A test on the demo recipe with the default settings: changes that only move the seed (and a setting that
does not touch training) are not kept, a real improvement of about three spreads is, and every verdict names its
noise source and bar (benchmarks/noise_verdicts.py measures the rates over more campaigns and a second script)."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from nrl_autoresearch.core.hypothesis import Hypothesis
from nrl_autoresearch.core.stoprules import StopRules
from nrl_autoresearch.interface import api
from nrl_autoresearch.runner.engine import Engine
from tests.helpers import git


def campaign(folder: Path, seed_base: int) -> Engine:
    """The demo with its default noise handling (six baseline runs, single runs judged in looks), starting from
    its own recipe seed so that trials are independent (the first run of every configuration uses that seed)."""
    c = api.create_demo(folder)
    assert c.options["baseline_repeats"] == 6 and c.options["sequential"]
    config = folder / "examples/configs/grpo_toy.yaml"
    config.write_text(config.read_text().replace("seed: 42", f"seed: {seed_base}", 1))
    git(folder, "-c", "user.name=r", "-c", "user.email=r@localhost", "commit", "-qam", "own seed")
    c = replace(c, base_commit=git(folder, "rev-parse", "HEAD").strip())
    c = c.with_rules(StopRules.build(now=time.time(), max_experiments=100)).with_options(seed_base=seed_base)
    c.save()
    engine = Engine(c, say=lambda _: None)
    engine.baseline()
    return engine


def test_null_changes_are_not_kept_by_default(tmp_path: Path):
    engine = campaign(tmp_path / "aa", seed_base=1000)
    rows = [engine.try_(Hypothesis(f"aa-{i}", "another seed only",
                                   sets={"grpo.seed": str(1500 + i), "logger.num_val_samples_to_print": str(4 + i)}))
            for i in range(16)]
    keeps = [r for r in rows if r.status == "keep"]
    assert len(keeps) <= 1, [r.description for r in keeps]
    assert all("spread" in r.description and "threshold" in r.description and "false keeps" in r.description
               for r in rows)


def test_a_real_improvement_of_about_three_spreads_is_kept_by_default(tmp_path: Path):
    kept = 0
    for trial in range(5):
        engine = campaign(tmp_path / f"t{trial}", seed_base=5000 + 100 * trial)
        row = engine.try_(Hypothesis("temperature", "+3 spreads", sets={"policy.generation.temperature": "0.8"}))
        kept += row.status == "keep" and "mean of" in row.description  # after a second or third run
    assert kept >= 4
