"""Runs ended early, with real processes: divergence, stalls, pruning against the baseline's curve, GPU-hours."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from tests.helpers import PY, cli, ledger_rows, make_repo

TRAIN = """\
import json, random, sys, time
cfg = json.load(open("params.json"))
seed = int(sys.argv[sys.argv.index("--seed") + 1]) if "--seed" in sys.argv else 0
noise = random.Random(seed)
steps = cfg.get("steps", 10)
for step in range(1, steps + 1):
    broken = cfg.get("mode") in ("nan", "nan-score") and step >= 3
    loss = float("nan") if broken and cfg["mode"] == "nan" else 1.0 / step
    print(f"step {step}/{steps} loss {loss}", flush=True)
    if cfg.get("mode") == "silent" and step == 2:
        time.sleep(60)
    score = 0.2 if cfg.get("mode") == "flat" else 0.9 - 0.5 / step + noise.gauss(0, 0.01)
    score = float("nan") if broken and cfg["mode"] == "nan-score" else score
    print(f"val_score: {score:.4f}", flush=True)
    time.sleep(60 if broken else cfg.get("pause", 0.2))
"""


def campaign(tmp_path: Path, *extra: str) -> Path:
    repo = make_repo(
        tmp_path / "repo", {"train.py": TRAIN, "params.json": json.dumps({"mode": "ok", "pause": 0.2}) + "\n"}
    )
    cli(
        repo,
        "init",
        "--command",
        f"{PY} train.py",
        "--metric",
        "val_score",
        "--maximize",
        "--metric-source",
        "line:val_score",
        "--params-file",
        "params.json",
        "--max-experiments",
        "8",
        "--seed-flag",
        "--seed",
        "--no-sequential",
        *extra,
        check=True,
    )
    return repo


def test_a_run_that_goes_nan_at_step_3_ends_within_seconds_as_a_crash(tmp_path):
    repo = campaign(tmp_path, "--baseline-repeats", "1")
    cli(repo, "baseline", check=True)
    started = time.time()
    cli(repo, "try", "nan", "--set", "mode=nan", check=True)
    cli(repo, "try", "nan-score", "--set", "mode=nan-score", check=True)
    assert time.time() - started < 40  # each script would have run 60 s more
    loss, score = ledger_rows(repo)[-2:]
    assert loss["status"] == "crash" and "crash: diverged at step 3/10: loss nan" in loss["description"]
    assert score["status"] == "crash" and "crash: diverged at step 3: val_score nan" in score["description"]
    assert loss["elapsed_min"] < 0.2 and score["elapsed_min"] < 0.2


def test_a_run_that_falls_silent_ends_within_the_stall_limit(tmp_path):
    repo = campaign(tmp_path, "--baseline-repeats", "1", "--stall", "3s")
    cli(repo, "baseline", check=True)
    cli(repo, "try", "silent", "--set", "mode=silent", check=True)
    row = ledger_rows(repo)[-1]
    assert row["status"] == "crash" and "stalled: no progress for" in row["description"]
    assert "after step 2" in row["description"] and row["elapsed_min"] * 60 < 12


def test_a_flat_curve_far_below_the_baseline_is_pruned_and_its_own_curve_never(tmp_path):
    repo = campaign(tmp_path, "--baseline-repeats", "2", "--prune")
    cli(repo, "baseline", check=True)
    assert len(list((repo / "reports" / "auto_research").rglob("curve.json"))) == 2
    cli(repo, "try", "flat", "--set", "mode=flat", check=True)
    cli(repo, "try", "same", "--set", "pause=0.21", check=True)
    flat, same = ledger_rows(repo)[-2:]
    assert flat["status"] == "discard" and re.search(
        r"; pruned at step \d+/10: val_score 0.2 vs the reference.s 0.[5-9]\d+ ± 0.0\d+", flat["description"]
    )
    assert "pruned" not in same["description"] and same["status"] != "crash"
    status = json.loads(cli(repo, "status", "--json", check=True).stdout)
    assert status["pruned"] == 1
    assert status["gpu_hours"] == {"used": 0.0, "budget": None, "gpus_per_run": 0}  # CPU-only runs hold no GPU
    assert "GPU-hours: 0 (CPU-only runs: none); 1 run(s) pruned" in cli(repo, "status", check=True).stdout
    cli(repo, "report", check=True)
    svg = next((repo / "reports").rglob("report.html")).read_text()
    assert "pruned (1, value when stopped)" in svg
    assert "**GPU-hours:** 0" in next((repo / "reports").rglob("report.md")).read_text()


@pytest.mark.parametrize(
    "option, message",
    [(("--stall", "soon"), "bad --stall 'soon'"), (("--gpu-hours", "0"), "bad --gpu-hours 0.0: give a number above 0")],
)
def test_bad_stall_or_gpu_hours_is_refused_with_nothing_created(tmp_path, option, message):
    repo = make_repo(tmp_path / "repo", {"train.py": TRAIN, "params.json": "{}\n"})
    proc = cli(repo, "init", "--command", f"{PY} train.py", "--metric", "val_score", "--maximize", *option)
    assert proc.returncode == 2 and message in proc.stderr
    assert not (repo / "reports" / "auto_research").exists()


def test_a_gpu_hour_budget_too_small_for_one_run_meets_the_stop_rule(tmp_path):
    repo = make_repo(tmp_path / "repo", {"train.py": TRAIN, "params.json": "{}\n"})
    cli(
        repo,
        "init",
        "--command",
        f"{PY} train.py",
        "--metric",
        "val_score",
        "--maximize",
        "--launcher",
        "slurm",
        "-L",
        "gpus_per_node=2",
        "--stop",
        "4 experiments or 1.5 GPU-hours, 1h each",
        check=True,
    )
    status = json.loads(cli(repo, "status", "--json", check=True).stdout)
    assert status["gpu_hours"] == {"used": 0.0, "budget": 1.5, "gpus_per_run": 2}  # the scheduler's allocation
    assert status["stop"]["met"] and "no room for another 2 GPU-hour run" in status["stop"]["sentence"]
