"""How often does a verdict keep noise, and how often does it keep a real improvement? (the A/A test)

On the demo recipe, where re-running with another seed moves validation accuracy by about 0.012 (one spread):
- A/A: campaigns of 20 experiments whose only change is `grpo.seed` (noise, nothing else) — the false-keep rate;
- power: trials whose change is a real improvement of about two spreads (`policy.generation.temperature`
  1.0 -> 0.87, +0.023 measured over 12 seeds) — how often it is kept.
Each setting is measured over several campaigns with different seeds, in this process run:

    python benchmarks/noise_verdicts.py [--campaigns 3] [--trials 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from nrl_autoresearch import api
from nrl_autoresearch.engine import Engine
from nrl_autoresearch.hypothesis import Hypothesis
from nrl_autoresearch.stoprules import StopRules

REAL = {"policy.generation.temperature": "0.87"}
SETTINGS = [  # (label, baseline repeats, repeats of each hypothesis)
    ("defaults: 1 baseline run, single runs", 1, 1),
    ("--baseline-repeats 8, single runs", 8, 1),
    ("--baseline-repeats 8 --repeats 4", 8, 4),
]


def engine(folder: Path, baseline_repeats: int, repeats: int, seed_base: int) -> Engine:
    """A demo campaign with the given noise settings, its baseline recorded."""
    c = api.create_demo(folder)
    c = c.with_rules(StopRules.build(now=time.time(), max_experiments=500)).with_options(
        baseline_repeats=baseline_repeats, repeats=repeats, seed_base=seed_base)
    c.save()
    eng = Engine(c, say=lambda _: None)
    eng.baseline()
    return eng


def false_keeps(folder: Path, baseline_repeats: int, repeats: int, seed_base: int, n: int = 20) -> int:
    eng = engine(folder, baseline_repeats, repeats, seed_base)
    rows = [eng.try_(Hypothesis(f"aa-{i}", "A/A: another seed only", sets={"grpo.seed": str(seed_base + 500 + i)}))
            for i in range(n)]
    return sum(r.status == "keep" for r in rows)


def kept(folder: Path, baseline_repeats: int, repeats: int, seed_base: int) -> bool:
    eng = engine(folder, baseline_repeats, repeats, seed_base)
    return eng.try_(Hypothesis("temperature", "a real improvement of about two spreads", sets=REAL)).status == "keep"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--campaigns", type=int, default=3, help="A/A campaigns per setting")
    parser.add_argument("--trials", type=int, default=5, help="power trials per setting")
    args = parser.parse_args()
    print(f"{'setting':<40} {'false keeps (of 20 per campaign)':<34} {'real +2 spreads kept'}")
    for label, base, reps in SETTINGS:
        with tempfile.TemporaryDirectory() as tmp:
            fk = [false_keeps(Path(tmp) / f"aa{c}", base, reps, 1000 + 100 * c) for c in range(args.campaigns)]
            pw = [kept(Path(tmp) / f"pw{t}", base, reps, 5000 + 100 * t) for t in range(args.trials)]
        rate = sum(fk) / (20 * len(fk))
        print(f"{label:<40} {' '.join(map(str, fk)):<16} rate {rate:5.1%}      {sum(pw)}/{len(pw)}")


if __name__ == "__main__":
    main()
