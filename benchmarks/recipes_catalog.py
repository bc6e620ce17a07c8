"""How long does `autoresearch recipes` take over NeMo-RL's recipes, against starting a bare interpreter?

The catalog resolves every recipe under examples/configs/recipes (about 250, each with its `defaults:` chain) as
NeMo-RL's loader would. It runs in a git copy of the NeMo-RL configs the tests use (tests/fixtures/nemo-rl, or
--nemo-rl DIR), as a person types it; the baselines are the same interpreter doing nothing, and importing the
command line. Each figure is the median of --runs, wall-clock and, in brackets, CPU seconds (process_cost.py).

    python benchmarks/recipes_catalog.py [--runs 3] [--nemo-rl DIR]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from process_cost import Cost, cost, installed_env

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "nemo-rl"


def median(argv: list[str], cwd: Path, env: dict[str, str], runs: int) -> Cost:
    found = [cost(argv, cwd, env) for _ in range(runs)]
    return Cost(statistics.median(c.wall for c in found), statistics.median(c.cpu for c in found))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--nemo-rl", type=Path, default=FIXTURE, help="A NeMo-RL checkout (its examples/ folder).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        checkout = Path(tmp) / "nemo-rl"
        shutil.copytree(args.nemo_rl / "examples", checkout / "examples")
        subprocess.run(["git", "init", "-q", str(checkout)], check=True)
        count = len(list((checkout / "examples" / "configs" / "recipes").rglob("*.yaml")))
        env = installed_env(Path(tmp) / "bytecode")
        cost([sys.executable, "-c", "import nrl_autoresearch.interface.cli"], checkout, env)  # writes the bytecode
        bare = median([sys.executable, "-c", "pass"], checkout, env, args.runs)
        start = median([sys.executable, "-c", "import nrl_autoresearch.interface.cli"], checkout, env, args.runs)
        catalog = median([sys.executable, "-m", "nrl_autoresearch", "recipes"], checkout, env, args.runs)
    print(f"recipes: {count}, runs: {args.runs} (median; wall s [CPU s])")
    print(f"bare interpreter:        {bare.wall:6.2f} s [{bare.cpu:5.2f}]")
    print(f"importing the CLI:       {start.wall:6.2f} s [{start.cpu:5.2f}]")
    print(
        f"autoresearch recipes:    {catalog.wall:6.2f} s [{catalog.cpu:5.2f}]  (ratio recipes/bare "
        f"{catalog.cpu / bare.cpu:.0f}x CPU, recipes/CLI start {catalog.cpu / start.cpu:.1f}x CPU)"
    )


if __name__ == "__main__":
    main()
