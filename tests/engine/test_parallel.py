"""Experiments in parallel: exact stop rules under concurrency, and graceful GPU handling without GPUs."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import PY, cli, ledger_rows, score_repo

QUEUE = [{"name": f"e{i}", "set": {"lr": round(0.01 * (i + 2), 2)}} for i in range(8)]


def test_workers_never_overshoot_the_count_rule(tmp_path: Path):
    repo = score_repo(tmp_path / "r", sleep=1.0)
    (tmp_path / "q.json").write_text(json.dumps(QUEUE))
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
        "--max-experiments",
        "5",
        "--campaign",
        "par",
        check=True,
    )
    out = cli(repo, "run", "--yes", "--workers", "3", "--proposer", f"queue:{tmp_path / 'q.json'}", check=True).stdout
    rows = ledger_rows(repo)
    assert sorted(r["index"] for r in rows) == [1, 2, 3, 4, 5]
    assert "stop condition met: 5/5 attempted" in out
    launched = [line for line in out.splitlines() if "] launched " in line]
    assert len(launched) == 5


def test_no_gpu_mask_without_gpus_and_a_clear_error_when_gpus_are_asked_for(tmp_path: Path):
    repo = score_repo(tmp_path / "r")
    (repo / "train.py").write_text(
        (repo / "train.py").read_text() + 'import os; print("mask", os.environ.get("CUDA_VISIBLE_DEVICES"))\n'
    )
    from tests.helpers import git

    git(repo, "commit", "-qam", "print the mask")
    cli(
        repo,
        "init",
        "--command",
        f"{PY} train.py",
        "--metric",
        "val_score",
        "--maximize",
        "--campaign",
        "g",
        "--max-experiments",
        "2",
        check=True,
    )
    cli(repo, "baseline", check=True)
    assert "mask None" in (repo / "reports/auto_research/g/baseline/run.log").read_text()
    no_gpu = {"CUDA_VISIBLE_DEVICES": ""}  # the same on a machine with GPUs; local: no Slurm needed either
    cli(
        repo,
        "init",
        "--command",
        f"{PY} train.py",
        "--metric",
        "val_score",
        "--maximize",
        "--campaign",
        "g2",
        "--gpus-per-experiment",
        "1",
        "--launcher",
        "local",
        env=no_gpu,
        check=True,
    )
    proc = cli(repo, "run", "--yes", "--campaign", "g2", env=no_gpu)
    assert proc.returncode == 2 and "GPUs" in proc.stderr
