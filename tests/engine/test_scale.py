"""A 2,000-row campaign: `try`, `ledger check`, `resume --report-only` and `report` work on it (their cost against
the ledger's size is measured by benchmarks/campaign_scale.py, not here).

The rows are real: 2,000 experiment commits and branches, their git notes, their TSV lines and journal events,
written in one `git fast-import` (running 2,000 experiments would take an hour and test nothing more).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from nrl_autoresearch.core import campaign as campaigns
from nrl_autoresearch.core.hypothesis import Hypothesis
from nrl_autoresearch.core.ledger import Row
from tests.helpers import PY, cli, git, ledger_rows, score_repo

ROWS = 2000
LIMIT_S = 300  # a command that hangs fails the test instead of the suite


def fast_import(repo: Path, stream: str) -> dict[str, str]:
    """Feed a fast-import stream; returns mark -> commit."""
    marks = repo / ".git" / "marks"
    subprocess.run(["git", "-C", str(repo), "fast-import", "--quiet", f"--export-marks={marks}"], input=stream,
                   text=True, check=True)
    return dict(line.split() for line in marks.read_text().splitlines())


def grow(repo: Path, count: int) -> None:
    """Append `count` discarded experiments to the campaign after its baseline (row 1)."""
    c = campaigns.load(repo)
    base = ledger_rows(repo)[0]
    stamp = int(time.time())
    commits = fast_import(repo, "".join(
        f"commit refs/heads/{c.prefix}/s{i}\nmark :{i}\ncommitter R <r@e> {stamp} +0000\ndata {len(f's{i}')}\ns{i}\n"
        f"from {base['commit']}\n\n" for i in range(2, count + 2)))
    lines, notes, events = [], [], []
    for i in range(2, count + 2):
        commit = commits[f":{i}"]
        line = Row(i, f"{c.prefix}/s{i}", base["commit"], commit, base["recipe"], "val_score", 0.5, 0.1, 0.1, "local",
                   "", base["command"], base["log_path"], "discard", f"s{i}; -0.4 vs baseline").to_line()
        lines.append(line)
        entry = json.dumps({"campaign": c.name, "appended_ns": time.time_ns(), "row": line}, sort_keys=True) + "\n"
        notes.append(f"N inline {commit}\ndata {len(entry.encode())}\n{entry}\n")
        intent = {"name": f"s{i}", "run": f"s{i}", "branch": f"{c.prefix}/s{i}", "parent": "baseline",
                  "parent_commit": base["commit"], "hypothesis": Hypothesis(f"s{i}").to_dict(), "effective": {},
                  "reference": None, "seed": None, "group": [i], "role": ""}
        events += [{"t": stamp, "step": "intent", "index": i, **intent},
                   {"t": stamp, "step": "committed", "index": i, "commit": commit},
                   {"t": stamp, "step": "row", "index": i, "status": "discard", "commit": commit}]
    notes_head = git(repo, "rev-parse", "refs/notes/autoresearch").strip()
    fast_import(repo, f"commit refs/notes/autoresearch\ncommitter R <r@e> {stamp} +0000\ndata 4\nrows\n"
                      f"from {notes_head}\n" + "".join(notes))
    with c.ledger_path.open("a") as fh:
        fh.write("".join(lines))
    with (c.dir / "journal.jsonl").open("a") as fh:
        fh.write("".join(json.dumps(e, sort_keys=True) + "\n" for e in events))


def succeeds(repo: Path, *args: str) -> str:
    proc = cli(repo, *args, timeout=LIMIT_S)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, f"{args}: {proc.stdout[-2000:]}\n{proc.stderr}"
    return proc.stdout


def test_a_two_thousand_row_campaign_takes_a_try_checks_resumes_and_reports(tmp_path: Path):
    repo = score_repo(tmp_path / "r")
    cli(repo, "init", "--command", f"{PY} train.py", "--metric", "val_score", "--maximize", "--params-file",
        "params.json", "--campaign", "big", "--max-experiments", str(ROWS + 10), check=True)
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
