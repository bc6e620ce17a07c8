"""The A/A test on the demo recipe with the default settings, end to end: a change that only moves the seed (and a
setting that does not touch training) is not kept, a real improvement of about three spreads is, after a second
run, and every verdict names its noise source and bar. The rates behind these verdicts are the judge's pure
functions, simulated in tests/core/test_judge.py; benchmarks/noise_verdicts.py measures them over more campaigns
and a second script."""

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
    its own recipe seed (the first run of every configuration uses that seed)."""
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


def test_a_null_change_is_not_kept_and_a_real_improvement_is_after_a_second_run(tmp_path: Path):
    engine = campaign(tmp_path / "aa", seed_base=5000)
    null = engine.try_(
        Hypothesis("aa", "another seed only", sets={"grpo.seed": "1500", "logger.num_val_samples_to_print": "4"})
    )
    real = engine.try_(Hypothesis("temperature", "+3 spreads", sets={"policy.generation.temperature": "0.8"}))
    assert null.status == "discard", null.description
    assert real.status == "keep" and "mean of" in real.description, real.description
    assert all(
        "spread" in r.description and "threshold" in r.description and "false keeps" in r.description
        for r in (null, real)
    )
