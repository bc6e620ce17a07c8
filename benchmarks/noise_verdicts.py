"""How often does a verdict keep noise, and how often does it keep a real improvement? (the A/A test)

Two scripts with different noise profiles, each in campaigns with different seeds, in this process run:
- the demo recipe (validation accuracy, run-to-run spread about 0.012): a real gain of about three spreads is
  `policy.generation.temperature` 1.0 -> 0.8 (+0.035 over 8 seeds);
- a CleanRL-shaped REINFORCE script (benchmarks/recipes/episodic_bandit.py: `charts/episodic_return`, one point
  per finished episode, mean of the last 20; spread about 1.1): a real gain of about three spreads is
  `learning_rate` 0.005 -> 0.007 (+3.1 over 8 seeds).
A null change is another seed plus a setting that does not touch training; the false-keep rate is the share of
them kept. The power is the share of trials in which the real gain is kept. `runs/hypothesis` is what the
verdicts cost. Each setting is measured from scratch:

    python benchmarks/noise_verdicts.py [--campaigns 5] [--nulls 12] [--trials 10] [--scripts demo,bandit]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from nrl_autoresearch.core.hypothesis import Hypothesis
from nrl_autoresearch.core.stoprules import StopRules
from nrl_autoresearch.interface import api
from nrl_autoresearch.runner.engine import Engine

BANDIT = Path(__file__).parent / "recipes" / "episodic_bandit.py"
BANDIT_PARAMS = (
    '{"seed": 1, "learning_rate": 0.005, "num_envs": 4, "total_steps": 4000, "episode_length": 10,\n'
    ' "reward_noise": 1.0, "log_interval": 50}\n'
)
SETTINGS = [  # (label, option changes over the defaults)
    ("defaults", {}),
    ("--baseline-repeats 8", {"baseline_repeats": 8}),
    ("--baseline-repeats 8 --repeats 4", {"baseline_repeats": 8, "repeats": 4}),
]


@dataclass(frozen=True)
class Script:
    create: Callable[[Path], api.Campaign]
    real: dict[str, str]
    null: Callable[[int], dict[str, str]]
    seed_file: str  # where the recipe's own seed is: each campaign starts from its own, so trials are independent
    seed_line: str  # as the file has it
    seed_text: str  # with {} for another seed


def reseed(c: api.Campaign, script: Script, seed: int) -> api.Campaign:
    """Commit another own seed as the campaign's starting point (the first run of every configuration uses it)."""
    path = c.repo / script.seed_file
    path.write_text(path.read_text().replace(script.seed_line, script.seed_text.format(seed), 1))
    git = ["git", "-C", str(c.repo), "-c", "user.name=b", "-c", "user.email=b@localhost"]
    subprocess.run([*git, "commit", "-qam", f"seed {seed}"], check=True, capture_output=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    return replace(c, base_commit=head)


def demo(folder: Path) -> api.Campaign:
    return api.create_demo(folder)


def bandit(folder: Path) -> api.Campaign:
    folder.mkdir(parents=True)
    shutil.copy(BANDIT, folder / "train.py")
    (folder / "params.json").write_text(BANDIT_PARAMS)
    for args in (
        ["init", "-q", "-b", "main"],
        ["add", "train.py", "params.json"],
        ["-c", "user.name=b", "-c", "user.email=b@localhost", "commit", "-qm", "bandit"],
    ):
        subprocess.run(["git", "-C", str(folder), *args], check=True, capture_output=True)
    request = api.CampaignRequest(
        command=f"{sys.executable} train.py",
        metric="charts/episodic_return",
        maximize=True,
        metric_source="tensorboard:charts/episodic_return",
        aggregate="mean-last-20",
        params_file="params.json",
        seed_flag="--seed",
        launcher="local",
    )
    return api.create_campaign(folder, request)


SCRIPTS = {
    "demo": Script(
        demo,
        {"policy.generation.temperature": "0.8"},
        lambda i: {"grpo.seed": str(2000 + i), "logger.num_val_samples_to_print": str(4 + i)},
        "examples/configs/grpo_toy.yaml",
        "seed: 42",
        "seed: {}",
    ),
    "bandit": Script(
        bandit,
        {"learning_rate": "0.007"},
        lambda i: {"seed": str(2000 + i), "log_interval": str(51 + i)},
        "params.json",
        '"seed": 1',
        '"seed": {}',
    ),
}


def engine(script: Script, folder: Path, options: dict, seed_base: int) -> Engine:
    """A campaign with the default options except `options`, room for every run, its baseline recorded."""
    c = reseed(script.create(folder), script, seed_base)
    c = replace(c, rules=StopRules.build(now=time.time(), max_experiments=10_000)).with_options(
        **options, seed_base=seed_base
    )
    c.save()
    eng = Engine(c, say=lambda _: None)
    eng.baseline()
    return eng


def measure(script: Script, options: dict, campaigns: int, nulls: int, trials: int) -> tuple[int, int, int, float]:
    """(null changes kept, null changes tried, trials keeping the real gain, runs per hypothesis)."""
    kept = tried = power = runs = hypotheses = 0
    with tempfile.TemporaryDirectory() as tmp:
        for c in range(campaigns):
            eng = engine(script, Path(tmp) / f"aa{c}", options, 1000 + 100 * c)
            before = len(eng.rows())
            for i in range(nulls):
                row = eng.try_(Hypothesis(f"aa-{i}", "another seed only", sets=script.null(100 * c + i)))
                kept += row.status == "keep"
            tried += nulls
            runs, hypotheses = runs + len(eng.rows()) - before, hypotheses + nulls
        for t in range(trials):
            eng = engine(script, Path(tmp) / f"pw{t}", options, 5000 + 100 * t)
            before = len(eng.rows())
            power += (
                eng.try_(Hypothesis("real", "a real gain of about three spreads", sets=script.real)).status == "keep"
            )
            runs, hypotheses = runs + len(eng.rows()) - before, hypotheses + 1
    return kept, tried, power, runs / hypotheses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--campaigns", type=int, default=5, help="A/A campaigns per setting")
    parser.add_argument("--nulls", type=int, default=12, help="null changes per A/A campaign")
    parser.add_argument("--trials", type=int, default=10, help="power trials per setting")
    parser.add_argument("--scripts", default="demo,bandit")
    args = parser.parse_args()
    print(
        f"{'script':<7} {'setting':<34} {'false keeps':>12} {'rate':>6} {'real gain kept':>15} {'runs/hypothesis':>16}"
    )
    for name in args.scripts.split(","):
        for label, options in SETTINGS:
            kept, tried, power, cost = measure(SCRIPTS[name], options, args.campaigns, args.nulls, args.trials)
            print(
                f"{name:<7} {label:<34} {f'{kept}/{tried}':>12} {kept / tried:>6.1%} "
                f"{f'{power}/{args.trials}':>15} {cost:>16.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
