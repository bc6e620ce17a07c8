"""Recovery on a real campaign in a real git repository: what a killed engine left behind becomes rows, once."""

from __future__ import annotations

from pathlib import Path

from nrl_autoresearch.core import campaign as campaigns
from nrl_autoresearch.core.hypothesis import Hypothesis
from nrl_autoresearch.runner.engine import Engine
from tests.helpers import PY, cli, git, score_repo

INIT = [
    "init",
    "--command",
    f"{PY} train.py",
    "--metric",
    "val_score",
    "--maximize",
    "--params-file",
    "params.json",
    "--campaign",
    "r",
    "--max-experiments",
    "6",
]


def campaign(tmp_path: Path) -> Path:
    repo = score_repo(tmp_path / "repo")
    cli(repo, *INIT, check=True)
    cli(repo, "baseline", check=True)
    return repo


def engine(repo: Path) -> Engine:
    return Engine(campaigns.load(repo), say=lambda _: None)


def test_a_trial_killed_after_its_intent_is_an_interrupted_row_and_a_rerun_is_owed(tmp_path: Path):
    repo = campaign(tmp_path)
    with engine(repo) as killed:
        (trial,) = killed.planner.plan(Hypothesis("lr", sets={"lr": "0.1"}))
    with engine(repo) as resumed:
        found = resumed.recovery.recover()
        assert found == [
            f"run {trial.index} (lr): interrupted: the engine stopped during step 'intent'",
            f"released the leftover worktree of {trial.branch}",
        ]  # the marker commit's worktree
        row = resumed.rows()[-1]
        assert (row.index, row.status, row.branch) == (trial.index, "crash", trial.branch)
        assert git(repo, "log", "-1", "--format=%s", trial.branch).strip() == (
            "lr: interrupted before its change was committed"
        )
        assert [a.index for a in resumed.recovery.owed_reruns()] == [trial.index]
        (rerun,) = resumed.recovery.plan_reruns()
        assert [(t.rerun_of, t.commit, t.run) for t in rerun] == [(trial.index, None, "lr-r2")]
        assert resumed.recovery.recover() == []  # the rerun is reserved here, not left behind


def test_a_row_written_before_the_kill_gets_its_journal_step_and_no_second_row(tmp_path: Path):
    repo = campaign(tmp_path)
    with engine(repo) as first:
        row = first.try_(Hypothesis("lr", sets={"lr": "0.1"}))
    journal = repo / "reports/auto_research/r/journal.jsonl"
    lines = journal.read_text().splitlines()
    journal.write_text("\n".join(lines[:-1]) + "\n")  # killed between the ledger row and its journal step
    with engine(repo) as resumed:
        assert resumed.recovery.recover() == [f"run {row.index} (lr): rows already written"]
        assert [r.index for r in resumed.rows()] == [1, row.index] and resumed.journal.attempts()[row.index].done
    assert cli(repo, "ledger", "check").returncode == 0
