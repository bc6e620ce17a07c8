"""How many experiments do random choice, the catalog and the search proposer need to reach a target?

On the demo recipe (baseline validation accuracy about 0.53), each proposer runs campaigns with a target
`val:accuracy>=TARGET` and a cap of experiments; a campaign's seed is the recipe's `grpo.seed` (and the seed
of the random and search proposers). Reported: experiments after the baseline until the target was reached,
per campaign, and the median (a campaign that hit the cap counts as the cap).

    python benchmarks/proposers_to_target.py [--target 0.9] [--seeds 5] [--cap 20]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nrl_autoresearch.core.stoprules import StopRules
from nrl_autoresearch.demo import RECIPE, create_repo
from nrl_autoresearch.interface import api
from nrl_autoresearch.proposers import make_proposer
from nrl_autoresearch.recipes import yamledit
from nrl_autoresearch.recipes.nemo_rl import NemoRLRecipe
from nrl_autoresearch.runner.engine import Engine

SPACE = """\
policy.optimizer.kwargs.lr: {low: 5.0e-4, high: 2.0e-2, log: true}
policy.generation.temperature: {low: 0.5, high: 1.5}
grpo.num_generations_per_prompt: {low: 4, high: 32, int: true}
loss_fn.reference_policy_kl_penalty: {low: 0.0, high: 0.5}
"""


def campaign(folder: Path, seed: int, target: float, cap: int) -> Engine:
    repo = create_repo(folder)
    yamledit.set_keys(repo / RECIPE, {"grpo.seed": str(seed)})
    subprocess.run(
        [
            "git",
            "-C",
            str(repo),
            "-c",
            "user.name=b",
            "-c",
            "user.email=b@x",
            "commit",
            "-qam",
            f"campaign seed {seed}",
        ],
        check=True,
    )
    recipe = NemoRLRecipe(RECIPE, runner=[sys.executable])
    objective = api.objective_for(repo, recipe, None, None, None, "last")
    rules = StopRules.build(now=time.time(), max_experiments=cap + 1, target=f"val:accuracy>={target}")
    c = api.new_campaign(
        repo, recipe, objective, rules, prefix=None, name=None, slug="bench", options={"seed_base": seed}
    )
    return Engine(c, say=lambda _: None)


def experiments_to_target(folder: Path, proposer: str, seed: int, target: float, cap: int) -> int:
    eng = campaign(folder, seed, target, cap)
    spec = proposer
    if proposer == "search":
        space = folder.parent / f"{folder.name}-space.yaml"
        space.write_text(SPACE)
        spec = f"search:{space}"
    eng.run(make_proposer(spec, eng.proposer_context()).propose)
    rows = eng.rows()
    hit = next(
        (
            r.index
            for r in rows
            if r.status == "keep" and r.metric_value is not None and r.metric_value >= target and r.index > 1
        ),
        None,
    )
    return (hit - 1) if hit else cap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=float, default=0.9)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--cap", type=int, default=20)
    args = parser.parse_args()
    print(f"experiments after the baseline to reach val:accuracy >= {args.target} (cap {args.cap})")
    for proposer in ("random", "catalog", "search"):
        with tempfile.TemporaryDirectory() as tmp:
            counts = [
                experiments_to_target(Path(tmp) / f"c{s}", proposer, 100 + s, args.target, args.cap)
                for s in range(args.seeds)
            ]
        print(f"{proposer:<8} median {statistics.median(counts):>4}   per campaign: {' '.join(map(str, counts))}")


if __name__ == "__main__":
    main()
