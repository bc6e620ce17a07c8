"""How much does the engine add per experiment, over the bare git commands it has to run?

Both sides run the same trivial training command (`echo x: 1`, a metric the engine reads), in fresh repositories
on this machine, in the same process run, so the ratio is robust to a noisy shared machine. The engine's side is
the whole path of an experiment (reserve, branch, worktree, edit, commit, launch, wait, extract, judge, ledger row, note, journal);
the bare side is the git commands a careful person types for the same thing.

    python benchmarks/engine_overhead.py [--experiments 10]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from nrl_autoresearch.core import campaign as campaigns
from nrl_autoresearch.core.campaign import Campaign
from nrl_autoresearch.core.hypothesis import Hypothesis
from nrl_autoresearch.core.ledger import Ledger
from nrl_autoresearch.core.recipe import Objective
from nrl_autoresearch.core.stoprules import StopRules
from nrl_autoresearch.recipes.command import CommandRecipe
from nrl_autoresearch.runner.engine import Engine

TRAIN = ["echo", "x: 1"]


def git(repo: Path, *args: str, input: str | None = None) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, input=input
    ).stdout


def fresh_repo(root: Path) -> Path:
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "b@example.org")
    git(root, "config", "user.name", "Bench")
    (root / "params.json").write_text('{"lr": 0.1}\n')
    git(root, "add", "params.json")
    git(root, "commit", "-qm", "start")
    return root


def bare_experiment(repo: Path, base: str, i: int) -> None:
    """branch, worktree, edit, add, commit, run, note, worktree remove: by hand."""
    wt = repo.parent / f"wt-{i}"
    git(repo, "branch", f"exp/{i}", base)
    git(repo, "worktree", "add", "--quiet", str(wt), f"exp/{i}")
    (wt / "params.json").write_text(f'{{"lr": {i}}}\n')
    git(wt, "add", "--", "params.json")
    git(wt, "commit", "-qm", f"exp {i}")
    commit = git(wt, "rev-parse", "HEAD").strip()
    subprocess.run(TRAIN, check=True, stdout=subprocess.DEVNULL)
    git(repo, "notes", "--ref", "bench", "add", "-f", "-m", f"row {i}", commit)
    with open(repo / "ledger.tsv", "a") as fh:
        fh.write(f"{i}\tok\n")
    git(repo, "worktree", "remove", str(wt))


def engine_with_baseline(repo: Path, n: int) -> Engine:
    recipe = CommandRecipe(TRAIN, "params.json", "file")
    c = Campaign(
        name="bench",
        prefix="autoresearch/bench",
        repo=repo,
        created_at=time.time(),
        base_commit=git(repo, "rev-parse", "HEAD").strip(),
        recipe=recipe.to_dict(),
        objective=Objective("x", "line:x", True),
        rules=StopRules.build(now=time.time(), max_experiments=n + 1),
    )
    Ledger(c.ledger_path).ensure()
    c.save()
    eng = Engine(campaigns.load(repo, "bench"), say=lambda _: None)
    eng.baseline()
    return eng


def timed(step, *args) -> float:
    start = time.perf_counter()
    step(*args)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=10)
    args = parser.parse_args()
    bare_times, engine_times = [], []
    with tempfile.TemporaryDirectory() as tmp:
        bare_repo = fresh_repo(Path(tmp) / "bare")
        base = git(bare_repo, "rev-parse", "HEAD").strip()
        eng = engine_with_baseline(fresh_repo(Path(tmp) / "engine"), args.experiments)
        for i in range(args.experiments):  # interleaved: both sides see the same moments of a noisy machine
            bare_times.append(timed(bare_experiment, bare_repo, base, i))
            engine_times.append(timed(eng.try_, Hypothesis(f"e{i}", parent="baseline", sets={"lr": str(i)})))
    b, e = statistics.median(bare_times), statistics.median(engine_times)
    print(f"experiments: {args.experiments} (trivial command `{' '.join(TRAIN)}`)")
    print(f"bare git commands per experiment: median {b * 1000:.0f} ms")
    print(f"engine per experiment:            median {e * 1000:.0f} ms")
    print(f"engine overhead beyond bare git:  {(e - b) * 1000:.0f} ms  (ratio engine/bare {e / b:.2f}x)")


if __name__ == "__main__":
    main()
