"""Every ledger value is the run's own: real runs that write TensorBoard and JSON-lines files, repeats that finish
within a second of each other, stale files committed in the repository, a planted log, values that are no number."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import PY, cli, git, ledger_rows, make_repo

# Writes its score to TensorBoard (tensorboardX, as CleanRL-style scripts do) in its working directory: the
# seed decides the value, so each repeat has its own.
TB_TRAIN = """\
import argparse, json
from tensorboardX import SummaryWriter
p = argparse.ArgumentParser(); p.add_argument("--seed", type=int, default=1)
seed = p.parse_args().seed
cfg = json.load(open("params.json"))
w = SummaryWriter("runs")
w.add_scalar("val/score", cfg["lr"] + seed / 10000, 1)
w.close()
"""

INIT = [
    "init",
    "--command",
    f"{PY} train.py",
    "--metric",
    "val/score",
    "--maximize",
    "--params-file",
    "params.json",
    "--campaign",
    "project",
    "--max-experiments",
    "20",
]


def test_back_to_back_repeats_each_read_their_own_event_file(tmp_path: Path):
    repo = make_repo(tmp_path / "p", {"train.py": TB_TRAIN, "params.json": '{"lr": 0.5}\n'})
    cli(
        repo,
        *INIT,
        "--metric-source",
        "tensorboard:val/score",
        "--seed-flag",
        "--seed",
        "--baseline-repeats",
        "3",
        check=True,
    )
    cli(repo, "baseline", check=True)
    values = [r["metric_value"] for r in ledger_rows(repo)]
    assert values == pytest.approx([0.5001, 0.5 + 1001 / 10000, 0.5 + 1002 / 10000])


def test_files_committed_in_the_repository_are_not_the_run_s_metric(tmp_path: Path):
    """A committed event file and history.jsonl get a fresh time at checkout; a run that prints nothing is a crash."""
    old = tmp_path / "old"
    from tensorboardX import SummaryWriter

    writer = SummaryWriter(str(old))
    writer.add_scalar("val/score", 0.001, 1)
    writer.close()
    event = next(old.iterdir())
    files = {
        "train.py": "print('training, but no metric')\n",
        "params.json": '{"lr": 0.5}\n',
        "history.jsonl": '{"val/score": 0.001}\n',
    }
    repo = make_repo(tmp_path / "p", files)
    (repo / "runs").mkdir()
    (repo / "runs" / event.name).write_bytes(event.read_bytes())
    git(repo, "add", "runs")
    git(repo, "commit", "-qm", "old outputs")
    for source in ("tensorboard:val/score", "jsonl:val/score"):
        cli(repo, *INIT, "--campaign", source.split(":")[0], "--metric-source", source, check=True)
        cli(repo, "baseline", "--campaign", source.split(":")[0])
    rows = _all_rows(repo)
    assert [r["status"] for r in rows] == ["crash", "crash"]
    assert all("no val/score found" in r["description"] for r in rows)


def _all_rows(repo: Path) -> list[dict]:
    lines = (repo / "reports/auto_research_results.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"), strict=False)) for line in lines[1:]]


def test_a_planted_log_is_set_aside_and_the_run_writes_a_fresh_one(tmp_path: Path):
    train = "print('val_score: 0.5')\n"
    repo = make_repo(tmp_path / "p", {"train.py": train, "params.json": '{"lr": 0.5}\n'})
    cli(repo, *INIT, "--metric", "val_score", "--metric-source", "line:val_score", check=True)
    planted = repo / "reports/auto_research/project/baseline/run.log"
    planted.parent.mkdir(parents=True)
    planted.write_text("val_score: 9.99\n")
    cli(repo, "baseline", check=True)
    (row,) = ledger_rows(repo)
    assert row["metric_value"] == pytest.approx(0.5)
    assert planted.read_text() == "val_score: 0.5\n"
    (aside,) = planted.parent.glob("run.log.before-*")
    assert aside.read_text() == "val_score: 9.99\n"


@pytest.mark.parametrize(
    "value, reasons",
    [
        ("true", ["is true at line 1 of run.log"]),
        # an infinite objective is divergence: the live watch may read it before the run's last instant, or the
        # final reading after; either way the row says the value
        ("1e400", ["inf, not a finite number", "diverged at step 1: acc inf"]),
    ],
)
def test_a_value_that_is_no_number_is_a_crash_row_and_the_campaign_goes_on(
    tmp_path: Path, value: str, reasons: list[str]
):
    train = (
        'import json\ncfg = json.load(open("params.json"))\n'
        'print(\'{"acc": %s}\' % (cfg["lr"] if cfg["lr"] != 0.1 else "VALUE"))\n'
    ).replace("VALUE", value)
    repo = make_repo(tmp_path / "p", {"train.py": train, "params.json": '{"lr": 0.5}\n'})
    cli(repo, *INIT, "--metric", "acc", "--metric-source", "jsonl:acc", check=True)
    cli(repo, "baseline", check=True)
    cli(repo, "try", "bad", "--set", "lr=0.1", check=True)
    cli(repo, "try", "good", "--set", "lr=0.7", check=True)
    rows = ledger_rows(repo)
    assert [r["status"] for r in rows] == ["keep", "crash", "keep"]
    assert any(reason in rows[1]["description"] for reason in reasons), rows[1]["description"]


def test_a_crashed_baseline_is_no_reference_until_a_rerun_has_a_result(tmp_path: Path):
    broken = (
        "import json\nprint('training', json.load(open('params.json')))\nraise SystemExit('data/train.csv missing')\n"
    )
    repo = make_repo(tmp_path / "p", {"train.py": broken, "params.json": '{"lr": 0.5}\n'})
    cli(repo, *INIT, "--metric", "val_score", "--metric-source", "line:val_score", check=True)
    run = cli(repo, "run", "--yes", "--proposer", "catalog")
    assert run.returncode == 4, run.stderr
    assert "the baseline has no valid val_score" in run.stderr and "data/train.csv missing" in run.stderr
    assert "autoresearch baseline' reruns it" in run.stderr
    assert [r["status"] for r in ledger_rows(repo)] == ["crash"]  # the loop ran nothing after it
    tried = cli(repo, "try", "lr-up", "--set", "lr=0.7")
    assert tried.returncode == 2 and "the baseline has no valid val_score" in tried.stderr
    # the person fixes the script on their branch; the rerun is a follow-up commit carrying it, in a row of its own
    (repo / "train.py").write_text("print('val_score: 0.5')\n")
    git(repo, "commit", "-qam", "fix the data path")
    cli(repo, "baseline", check=True)
    rows = ledger_rows(repo)
    assert [r["status"] for r in rows] == ["crash", "keep"]
    assert rows[1]["branch"] == rows[0]["branch"] and rows[1]["commit"] != rows[0]["commit"]
    assert "rerun after crash [1]" in rows[1]["description"]
    message = git(repo, "log", "-1", "--format=%s", rows[1]["commit"])
    assert message.startswith("baseline: rerun after crash [1], with ")
    assert git(repo, "show", f"{rows[1]['commit']}:train.py") == "print('val_score: 0.5')\n"
    cli(repo, "try", "lr-up", "--set", "lr=0.7", check=True)
    assert "vs baseline 0.5" in ledger_rows(repo)[2]["description"]
    again = cli(repo, "baseline")
    assert again.returncode == 2 and "already recorded as row 2" in again.stderr


SCORE = "import json\ncfg = json.load(open('params.json'))\nprint(f\"val_score: {1 - abs(cfg['lr'] - 0.1):.4f}\")\n"


@pytest.fixture
def scored(tmp_path: Path) -> Path:
    repo = make_repo(tmp_path / "p", {"train.py": SCORE, "params.json": '{"lr": 0.5, "log_every": 10}\n'})
    cli(
        repo,
        *INIT,
        "--metric",
        "val_score",
        "--metric-source",
        "line:val_score",
        "--seed-flag",
        "--seed",
        "--baseline-repeats",
        "1",
        check=True,
    )
    cli(repo, "baseline", check=True)
    return repo


def test_a_change_that_changes_nothing_is_refused_before_anything_is_created(scored: Path):
    branches = git(scored, "for-each-ref", "refs/heads")
    for args, fragment in [
        ((), "nothing to test in 'idle'"),
        (("--set", "lr=0.5"), "lr=0.5 is already so"),
        (("--set", "lr=5e-1"), "is already so"),
    ]:
        proc = cli(scored, "try", "idle", *args)
        assert proc.returncode == 2 and fragment in proc.stderr, proc.stderr
    assert git(scored, "for-each-ref", "refs/heads") == branches and len(ledger_rows(scored)) == 1


def test_an_exact_repeat_is_refused_naming_its_row_unless_asked_for(scored: Path):
    cli(scored, "try", "lr-down", "--set", "lr=0.2", check=True)
    proc = cli(scored, "try", "lr-down-again", "--set", "lr=2e-1")
    assert proc.returncode == 2 and "repeats row 2" in proc.stderr and "--repeat" in proc.stderr
    cli(scored, "try", "lr-down-again", "--set", "lr=0.2", "--repeat", check=True)
    rows = ledger_rows(scored)
    assert len(rows) == 3 and rows[2]["branch"] == rows[1]["branch"] and rows[2]["commit"] == rows[1]["commit"]
    assert "repeat of [2], seed 1001" in rows[2]["description"] and "mean of 2 runs" in rows[2]["description"]


def test_a_keep_on_unmeasured_noise_is_flagged_in_the_summary(tmp_path: Path):
    from nrl_autoresearch.core import campaign as campaigns
    from nrl_autoresearch.report.text import summary_text
    from nrl_autoresearch.runner.engine import Engine

    repo = make_repo(tmp_path / "p", {"train.py": SCORE, "params.json": '{"lr": 0.5, "log_every": 10}\n'})
    cli(repo, *INIT, "--metric", "val_score", "--metric-source", "line:val_score", check=True)  # no seed: one run
    cli(repo, "baseline", check=True)
    cli(repo, "try", "lr-down", "--set", "lr=0.3", check=True)
    (_, row) = ledger_rows(repo)
    assert row["status"] == "keep" and "noise unknown" in row["description"] and "not a finding" in row["description"]
    engine = Engine(campaigns.load(repo), say=lambda _: None)
    text = summary_text(engine.campaign, engine.rows(), engine.status())
    assert "keep*" in text and "not a finding yet" in text
