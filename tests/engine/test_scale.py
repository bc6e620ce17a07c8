"""A 2,000-row campaign: `try`, `ledger check`, `resume --report-only` and `report` work on it (their cost against
the ledger's size is measured by benchmarks/campaign_scale.py, not here).

The rows are real: 2,000 experiment commits and branches, their git notes, their TSV lines and journal events,
written in one `git fast-import` (running 2,000 experiments would take an hour and test nothing more).
"""

from __future__ import annotations

from pathlib import Path

from tests.helpers import PY, cli, ledger_rows, score_repo
from tests.synthetic import grow

ROWS = 2000
LIMIT_S = 300  # a command that hangs fails the test instead of the suite


def succeeds(repo: Path, *args: str) -> str:
    proc = cli(repo, *args, timeout=LIMIT_S)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, f"{args}: {proc.stdout[-2000:]}\n{proc.stderr}"
    return proc.stdout


def test_a_two_thousand_row_campaign_takes_a_try_checks_resumes_and_reports(tmp_path: Path):
    repo = score_repo(tmp_path / "r")
    cli(
        repo,
        "init",
        "--command",
        f"{PY} train.py",
        "--metric",
        "val_score",
        "--maximize",
        "--params-file",
        "params.json",
        "--campaign",
        "big",
        "--max-experiments",
        str(ROWS + 10),
        check=True,
    )
    cli(repo, "baseline", check=True)
    grow(repo, ROWS - 1)
    succeeds(repo, "try", "next", "--set", "lr=0.2")
    rows = ledger_rows(repo)
    assert len(rows) == ROWS + 1 and rows[-1]["branch"].endswith("/next")
    succeeds(repo, "ledger", "check")
    succeeds(repo, "resume", "--report-only")
    succeeds(repo, "report")
    page = next((repo / "reports").rglob("report.html")).read_text()
    assert page.count("/next") >= 1
