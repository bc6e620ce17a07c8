"""Campaigns grown synthetically but validly, for what needs thousands of rows (running that many experiments
would measure the training, not the campaign): experiment commits and branches, their git notes, their ledger
lines (`Row.to_line`) and journal events (`Trial.to_record`), written in one `git fast-import` each."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from nrl_autoresearch.core import campaign as campaigns
from nrl_autoresearch.core.hypothesis import Hypothesis
from nrl_autoresearch.core.ledger import Ledger, Row
from nrl_autoresearch.core.trial import Trial


def fast_import(repo: Path, stream: str) -> dict[str, str]:
    """Feed a fast-import stream; returns mark -> commit."""
    marks = repo / ".git" / "synthetic-marks"
    subprocess.run(
        ["git", "-C", str(repo), "fast-import", "--quiet", f"--export-marks={marks}"],
        input=stream,
        text=True,
        check=True,
    )
    return dict(line.split() for line in marks.read_text().splitlines()) if marks.exists() else {}


def grow(repo: Path, count: int) -> None:
    """Append `count` discarded experiments to the campaign after its baseline (row 1)."""
    if count <= 0:
        return
    c = campaigns.load(repo)
    base = Ledger(c.ledger_path).rows(c.prefix)[0]
    stamp = int(time.time())
    numbers = range(2, count + 2)
    commits = fast_import(
        repo,
        "".join(
            f"commit refs/heads/{c.prefix}/s{i}\nmark :{i}\ncommitter R <r@e> {stamp} +0000\ndata {len(f's{i}')}\ns{i}\n"
            f"from {base.commit}\n\n"
            for i in numbers
        ),
    )
    lines, notes, events = [], [], []
    for i in numbers:
        commit = commits[f":{i}"]
        row = Row(
            i,
            f"{c.prefix}/s{i}",
            base.commit,
            commit,
            base.recipe,
            base.metric_name,
            0.5,
            0.1,
            0.1,
            base.launcher,
            "",
            base.command,
            base.log_path,
            "discard",
            f"s{i}; below the baseline",
        )
        line = row.to_line()
        lines.append(line)
        entry = json.dumps({"campaign": c.name, "appended_ns": time.time_ns(), "row": line}, sort_keys=True) + "\n"
        notes.append(f"N inline {commit}\ndata {len(entry.encode())}\n{entry}\n")
        trial = Trial(
            index=i,
            name=f"s{i}",
            run=f"s{i}",
            branch=row.branch,
            parent="baseline",
            parent_commit=base.commit,
            hypothesis=Hypothesis(f"s{i}"),
            group=(i,),
        )
        events += [
            {"t": stamp, "step": "intent", "index": i, **trial.to_record()},
            {"t": stamp, "step": "committed", "index": i, "commit": commit},
            {"t": stamp, "step": "row", "index": i, "status": "discard", "commit": commit},
        ]
    notes_head = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "refs/notes/autoresearch"], check=True, capture_output=True, text=True
    ).stdout.strip()
    fast_import(
        repo,
        f"commit refs/notes/autoresearch\ncommitter R <r@e> {stamp} +0000\ndata 4\nrows\n"
        f"from {notes_head}\n" + "".join(notes),
    )
    with c.ledger_path.open("a") as fh:
        fh.write("".join(lines))
    with (c.dir / "journal.jsonl").open("a") as fh:
        fh.write("".join(json.dumps(e, sort_keys=True) + "\n" for e in events))
