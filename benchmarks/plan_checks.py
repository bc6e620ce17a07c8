"""How long does checking a NeMo-RL plan take: every candidate of a recipe's catalog validated against the commit it
branches from (edited copy of the recipe, resolved, NeMo-RL's own refusals)?

Both sides check the same candidates of the same recipe in a fresh repository holding the test fixture's copy of
NeMo-RL's configs, in the same process run, and count CPU time (ours and git's), so the ratio holds on a busy
machine. The baseline extracts every config of the commit for each check; the recipe extracts them once, then
only the files the recipe composes from.

    python benchmarks/plan_checks.py [--recipe grpo-llama3.2-1b-instruct-1n8g-fsdp2tp1.v3.yaml] [--limit 20]
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from nrl_autoresearch.core.errors import UsageError
from nrl_autoresearch.core.git import Git, Snapshot
from nrl_autoresearch.core.history import History
from nrl_autoresearch.core.hypothesis import Hypothesis
from nrl_autoresearch.proposers.catalog import CatalogProposer
from nrl_autoresearch.recipes import validity, yamledit
from nrl_autoresearch.recipes.nemo_rl import CONFIG_DIRS, NemoRLRecipe

EXAMPLES = Path(__file__).resolve().parents[1] / "tests/fixtures/nemo-rl/examples"


def cpu_s() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def every_config_refusal(recipe: NemoRLRecipe, snapshot: Snapshot, sets: dict[str, str]) -> str | None:
    """The check as it ran when each one extracted every config of the commit."""
    with snapshot.export(*CONFIG_DIRS) as tmp:
        try:
            yamledit.set_keys(tmp / recipe.path, sets)
            refused = validity.problems(recipe.resolved(tmp))
        except UsageError as err:
            return str(err)
    return "; ".join(refused) or None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="grpo-llama3.2-1b-instruct-1n8g-fsdp2tp1.v3.yaml")
    parser.add_argument("--limit", type=int, default=20, help="candidates to check")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "nemo-rl"
        shutil.copytree(EXAMPLES, repo / "examples")
        for step in (
            ["init", "-q"],
            ["add", "-A"],
            ["-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "c"],
        ):
            subprocess.run(["git", "-C", str(repo), *step], check=True, capture_output=True)
        path = next(repo.rglob(args.recipe)).relative_to(repo).as_posix()
        recipe, git = NemoRLRecipe(path), Git(repo)
        head = git.run("rev-parse", "HEAD").strip()
        proposer = CatalogProposer(recipe, git, head)
        history = History(None, [], [], None, [])  # type: ignore[arg-type]  # the catalog reads rows and tried only
        candidates: list[Hypothesis] = list(itertools.islice(proposer.unchecked_candidates(history), args.limit))
        snapshot = Snapshot(git, head)
        started = cpu_s()
        baseline = [every_config_refusal(recipe, snapshot, h.sets) for h in candidates]
        baseline_s, started = cpu_s() - started, cpu_s()
        ours = [recipe.refusal(snapshot, h.sets) for h in candidates]
        ours_s = cpu_s() - started
    assert [r is None for r in ours] == [r is None for r in baseline], "the two checks disagree"
    print(
        f"{len(candidates)} candidates of {args.recipe}: every config per check {baseline_s:.2f} s CPU, "
        f"the recipe's chain {ours_s:.2f} s CPU ({baseline_s / ours_s:.1f}x less)"
    )


if __name__ == "__main__":
    main()
