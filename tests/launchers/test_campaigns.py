"""Whole campaigns through the cluster launchers: the demo on batch Slurm, interactive Slurm and Ray; a Slurm
TIMEOUT and a cancel through the engine; and an engine killed while a Slurm job runs, then resumed."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import PY, cli, ledger_rows, score_repo

JOURNAL = "reports/auto_research/c/journal.jsonl"


def _demo(tmp_path: Path, env: dict, *launcher: str) -> list[dict]:
    dest = tmp_path / "demo"
    cli(
        tmp_path,
        "demo",
        "--dir",
        str(dest),
        "--experiments",
        "1",
        "--baseline-repeats",
        "1",
        *launcher,
        env=env,
        check=True,
        timeout=600,
    )
    return ledger_rows(dest)


@pytest.mark.slurm
@pytest.mark.parametrize("mode", ["batch", "interactive"])
def test_demo_on_slurm_records_real_job_ids(slurm_cluster, tmp_path: Path, mode: str):
    rows = _demo(tmp_path, slurm_cluster.env, "--launcher", "slurm", "-L", f"mode={mode}", "-L", "poll_s=0.5")
    assert len(rows) == 2 and all(r["status"] != "crash" and r["launcher"] == "slurm" for r in rows)
    ids = [r["job_id"] for r in rows]
    if mode == "batch":
        assert all(i.isdigit() for i in ids) and ids[0] != ids[1]
        assert rows[0]["command"].endswith("baseline/submit.sbatch")
    else:  # one allocation, one step per run
        assert len({i.split(".")[0] for i in ids}) == 1 and ids[0] != ids[1]
        assert not slurm_cluster.run("squeue", "-h", "-o", "%A").stdout.strip()  # the allocation was released


@pytest.mark.ray
def test_demo_on_ray_records_submission_ids(ray_cluster, tmp_path: Path):
    rows = _demo(tmp_path, {}, "--launcher", "ray", "-L", f"address={ray_cluster.address}", "-L", "poll_s=0.5")
    assert len(rows) == 2 and all(r["status"] != "crash" and r["launcher"] == "ray" for r in rows)
    assert rows[0]["job_id"] != rows[1]["job_id"] and rows[0]["job_id"] != "none"


def _slurm_campaign(tmp_path: Path, env: dict, **params) -> Path:
    repo = score_repo(tmp_path / "r", **params)
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
        "c",
        "--max-experiments",
        "4",
        "--per-experiment",
        "5m",
        "--launcher",
        "slurm",
        "-L",
        "poll_s=0.5",
        env=env,
        check=True,
    )
    return repo


def _launched_job(repo: Path, index: int, timeout: float = 120) -> str:
    end = time.time() + timeout
    while time.time() < end:
        journal = repo / JOURNAL
        if journal.exists():
            for line in journal.read_text().splitlines():
                event = json.loads(line)
                if event.get("step") == "launched" and event.get("index") == index:
                    return event["job_id"]
        time.sleep(0.1)
    raise AssertionError(f"run {index} was not launched")


def _start(repo: Path, env: dict, *args: str) -> subprocess.Popen:
    import os

    return subprocess.Popen(
        [PY, "-m", "nrl_autoresearch", *args],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **env},
    )


@pytest.mark.slurm
def test_slurm_timeout_is_a_crash_with_its_reason(slurm_cluster, tmp_path: Path):
    repo = _slurm_campaign(tmp_path, slurm_cluster.env, sleep=120)
    engine = _start(repo, slurm_cluster.env, "baseline")
    job_id = _launched_job(repo, 1)
    slurm_cluster.run("scontrol", "update", f"jobid={job_id}", "TimeLimit=0", check=True)
    out, _ = engine.communicate(timeout=180)
    row = ledger_rows(repo)[0]
    assert row["status"] == "crash" and "TIMEOUT" in row["description"], out
    assert row["job_id"] == job_id


@pytest.mark.slurm
def test_stopping_the_campaign_cancels_its_job_and_only_its_job(slurm_cluster, tmp_path: Path):
    other = slurm_cluster.run(
        "sbatch", "--parsable", f"--output={tmp_path / 'other.out'}", "--wrap", "sleep 300", check=True
    ).stdout.strip()
    repo = _slurm_campaign(tmp_path, slurm_cluster.env, sleep=300)
    engine = _start(repo, slurm_cluster.env, "baseline")
    job_id = _launched_job(repo, 1)
    engine.send_signal(signal.SIGINT)
    engine.communicate(timeout=120)
    queued = slurm_cluster.run("squeue", "-h", "-o", "%A").stdout.split()
    assert job_id not in queued and other in queued
    slurm_cluster.run("scancel", other, check=True)
    row = ledger_rows(repo)[0]
    assert row["status"] == "crash" and "interrupted" in row["description"]


@pytest.mark.slurm
def test_engine_killed_while_a_slurm_job_runs_reattaches_on_resume(slurm_cluster, tmp_path: Path):
    repo = _slurm_campaign(tmp_path, slurm_cluster.env, sleep=6)
    engine = _start(repo, slurm_cluster.env, "run", "--yes")
    job_id = _launched_job(repo, 1)
    engine.send_signal(signal.SIGKILL)
    engine.wait(30)
    assert job_id in slurm_cluster.run("squeue", "-h", "-o", "%A").stdout.split()  # the job outlives the engine
    proc = cli(repo, "resume", "--yes", env=slurm_cluster.env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = ledger_rows(repo)
    assert [r["index"] for r in rows] == [1, 2, 3, 4]
    assert rows[0]["job_id"] == job_id and rows[0]["status"] == "keep"
    ids = [r["job_id"] for r in rows]
    assert len(set(ids)) == 4  # no duplicate job for the reattached run
    events = [json.loads(line) for line in (repo / JOURNAL).read_text().splitlines()]
    first = next(e for e in events if e["step"] == "launching" and e["index"] == 1)
    names = slurm_cluster.run("sacct", "-c", "-n", "-P", "-o", "jobname").stdout.split()
    assert names.count(first["job_name"]) == 1


@pytest.mark.slurm
def test_a_silent_slurm_job_is_cancelled_as_stalled(slurm_cluster, tmp_path: Path):
    repo = score_repo(tmp_path / "r", sleep=300)
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
        "c",
        "--max-experiments",
        "4",
        "--per-experiment",
        "5m",
        "--launcher",
        "slurm",
        "-L",
        "poll_s=0.5",
        "--stall",
        "3s",
        env=slurm_cluster.env,
        check=True,
    )
    started = time.time()
    cli(repo, "baseline", env=slurm_cluster.env, timeout=240)
    row = ledger_rows(repo)[0]
    assert row["status"] == "crash" and "stalled: no progress for 3s since the start" in row["description"]
    assert time.time() - started < 120 and row["elapsed_min"] * 60 < 30
    assert row["job_id"] not in slurm_cluster.run("squeue", "-h", "-o", "%A").stdout.split()
