"""The unattended loop: plan and confirmation, queue and catalog proposers, Ctrl-C, the default rule."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from nrl_autoresearch.core.errors import UsageError
from nrl_autoresearch.proposers.queue import load_queue
from tests.helpers import PY, cli, git, ledger_rows, score_repo, tree_digest

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
    "loop",
]


def write_queue(path: Path, entries: list[dict]) -> Path:
    path.write_text(json.dumps(entries))
    return path


def test_run_refuses_without_confirmation_and_creates_nothing(tmp_path: Path):
    repo = score_repo(tmp_path / "r")
    cli(repo, *INIT, check=True)
    proc = cli(repo, "run")
    assert proc.returncode == 2 and "pass --yes" in proc.stderr
    assert "plan for campaign loop" in proc.stdout and "first hypotheses:" in proc.stdout
    assert not git(repo, "branch", "--list", "autoresearch/*").strip()


def test_queue_run_records_exactly_the_count_including_a_crash(tmp_path: Path):
    repo = score_repo(tmp_path / "r")
    queue = write_queue(
        tmp_path / "q.json",
        [
            {"name": "broken", "description": "a hypothesis that crashes", "set": {"lr": "not-a-number"}},
            {"name": "good", "description": "the right learning rate", "set": {"lr": 0.1}},
            {"name": "never", "description": "over the count", "set": {"lr": 0.2}},
        ],
    )
    cli(repo, *INIT, "--max-experiments", "3", check=True)
    proc = cli(repo, "run", "--proposer", f"queue:{queue}", "--yes", check=True)
    rows = ledger_rows(repo)
    assert [(r["index"], r["status"]) for r in rows] == [(1, "keep"), (2, "crash"), (3, "keep")]
    assert "stop condition met: 3/3 attempted" in proc.stdout
    assert "best keep: autoresearch/" in proc.stdout and rows[2]["branch"].endswith("/good")


def test_bad_queue_entries_are_named_before_anything_starts(tmp_path: Path):
    repo = score_repo(tmp_path / "r")
    cli(repo, *INIT, "--max-experiments", "3", check=True)
    queue = write_queue(tmp_path / "q.json", [{"name": "ok", "set": {"lr": 0.1}}, {"name": "typo", "set": {"lrr": 1}}])
    proc = cli(repo, "run", "--proposer", f"queue:{queue}", "--yes")
    assert proc.returncode == 2 and "closest existing keys: lr" in proc.stderr
    assert not git(repo, "branch", "--list", "autoresearch/*").strip()


@pytest.mark.parametrize(
    "entries, fragment",
    [
        ([{"description": "no name", "set": {"a": 1}}], "has no name"),
        ([{"name": "bad name", "set": {"a": 1}}], "bad experiment name"),
        ([{"name": "a", "set": {"a": 1}}, {"name": "a", "set": {"a": 2}}], "used twice"),
        ([{"name": "a"}], "changes nothing"),
        ([{"name": "a", "set": {"a": 1}, "parent": "later"}], "earlier entry"),
        ([{"name": "a", "patch": "missing.diff"}], "does not exist"),
        ([{"name": "a", "sett": {"a": 1}}], "unknown fields"),
        ({"name": "a"}, "non-empty list"),
    ],
)
def test_queue_validation(tmp_path: Path, entries, fragment):
    with pytest.raises(UsageError, match=fragment):
        load_queue(write_queue(tmp_path / "q.json", entries))


def test_catalog_tries_the_other_direction_once_and_never_repeats(tmp_path: Path):
    repo = score_repo(tmp_path / "r", lr=0.2)  # lr too high: x2 hurts, /2 helps
    cli(repo, *INIT, "--max-experiments", "6", check=True)
    cli(repo, "run", "--yes", check=True)
    rows = ledger_rows(repo)
    names = [r["branch"].rsplit("/", 1)[1] for r in rows]
    assert names[:3] == ["baseline", "lr-up-0.4", "lr-down-0.1"]
    assert [r["status"] for r in rows[:3]] == ["keep", "discard", "keep"]
    assert len(set(names)) == len(names)
    # after the A/B sweep the kept change is built upon from the best keep, never the same config twice
    cli(repo, "run", "--yes", "--continue", "4", check=True)
    commits = [git(repo, "show", f"{r['commit']}:params.json") for r in ledger_rows(repo)]
    assert len(set(commits)) == len(commits)


def test_default_rule_stops_after_baseline_plus_three_and_asks(tmp_path: Path):
    repo = score_repo(tmp_path / "r", wd=0.5, layers=4, bias=True)
    cli(repo, *INIT, check=True)
    out = cli(repo, "run", "--yes", check=True).stdout
    assert len(ledger_rows(repo)) == 4
    assert "continue with 'autoresearch run --continue N'" in out
    assert cli(repo, "run", "--yes").returncode == 3
    cli(repo, "run", "--yes", "--continue", "1", check=True)
    assert len(ledger_rows(repo)) == 5


def test_ctrl_c_ends_the_run_records_a_crash_and_leaves_no_process(tmp_path: Path):
    repo = score_repo(tmp_path / "r", sleep=60)
    (repo / "keep-me.txt").write_text("uncommitted\n")
    before = tree_digest(repo)
    cli(repo, *INIT, "--max-experiments", "5", check=True)
    engine = subprocess.Popen(
        [PY, "-m", "nrl_autoresearch", "run", "--yes"],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    log = repo / "reports/auto_research/loop/baseline/run.log"
    deadline = time.time() + 60
    while not log.exists() and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)
    trainers = [p for p in psutil.Process(engine.pid).children(recursive=True)]
    engine.send_signal(signal.SIGINT)
    out, _ = engine.communicate(timeout=60)
    assert engine.returncode != 0
    rows = ledger_rows(repo)
    assert len(rows) == 1 and rows[0]["status"] == "crash" and "interrupted" in rows[0]["description"], out
    for proc in trainers:
        assert not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    assert tree_digest(repo) == before
    journal = [
        json.loads(line) for line in (repo / "reports/auto_research/loop/journal.jsonl").read_text().splitlines()
    ]
    assert journal[-1]["step"] == "row"


def test_catalog_descriptions_state_the_change_against_the_commit_they_branch_from(tmp_path: Path):
    repo = score_repo(tmp_path / "r", lr=0.2)
    cli(repo, *INIT, "--max-experiments", "4", check=True)
    cli(repo, "run", "--yes", check=True)
    rows = ledger_rows(repo)
    assert [r["branch"].rsplit("/", 1)[1] for r in rows] == [
        "baseline",
        "lr-up-0.4",
        "lr-down-0.1",
        "lr-down-0.05-on-best",
    ]
    assert "lr 0.2 -> 0.1 on baseline" in rows[2]["description"]
    assert "lr 0.1 -> 0.05 on best" in rows[3]["description"]  # the best keep has 0.1, not the baseline's 0.2
