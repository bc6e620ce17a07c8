"""The Slurm launcher against the private lab cluster: batch jobs and their final states, cancel, reattach,
and an interactive allocation shared by several runs."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest

from nrl_autoresearch.core.launcher import JobState, RunSpec
from nrl_autoresearch.launchers.slurm import SlurmError, SlurmLauncher

from .support import until_running

pytestmark = pytest.mark.slurm
SECRET = "lab-secret-value-1234"


def _spec(tmp_path: Path, name: str, code: str, timeout_s: float | None = 60, **env: str) -> RunSpec:
    run_dir = tmp_path / name
    return RunSpec(
        name=f"ar-test-{name}",
        argv=[sys.executable, "-c", code],
        cwd=tmp_path,
        log_path=run_dir / "run.log",
        run_dir=run_dir,
        env=env,
        timeout_s=timeout_s,
    )


def _launcher(cluster, **options) -> SlurmLauncher:
    return SlurmLauncher(env=cluster.env, poll_s=0.3, **options)


def _queued(cluster, job_id: str) -> str:
    return cluster.run("squeue", "-h", "-j", job_id, "-o", "%T").stdout.strip()


def test_batch_job_completes_with_its_times_and_secret_kept_out_of_the_script(slurm_cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_TOKEN", SECRET)
    code = "import os, sys, time; time.sleep(1); print('hello', os.environ['GREETING'], sys.argv[1])"
    spec = _spec(tmp_path, "ok", code, GREETING="from slurm")
    spec = replace(spec, argv=[*spec.argv, "${LAB_TOKEN}"])
    job = _launcher(slurm_cluster).submit(spec)
    assert job.job_id.isdigit() and job.command == str(spec.run_dir / "submit.sbatch")
    result = job.wait()
    assert (result.state, result.exit_code, result.reason) == (JobState.COMPLETED, 0, "slurm COMPLETED"), result
    assert result.succeeded and result.run_s >= 1 and result.queue_s >= 0
    assert spec.log_path.read_text() == f"hello from slurm {SECRET}\n"
    assert SECRET not in Path(job.command).read_text() and "${LAB_TOKEN" in Path(job.command).read_text()


def test_failing_job_reads_failed_with_its_exit_code(slurm_cluster, tmp_path):
    result = _launcher(slurm_cluster).submit(_spec(tmp_path, "bad", "raise SystemExit(3)")).wait()
    assert (result.state, result.exit_code, result.reason) == (JobState.FAILED, 3, "slurm FAILED exit 3")


def test_job_over_its_limit_reads_timeout(slurm_cluster, tmp_path):
    job = _launcher(slurm_cluster).submit(_spec(tmp_path, "slow", "import time; time.sleep(300)", timeout_s=45))
    until_running(job)
    # Slurm checks limits about every 30 s: a zero limit ends the job at the next check.
    assert slurm_cluster.run("scontrol", "update", f"jobid={job.job_id}", "TimeLimit=0").returncode == 0
    result = job.wait()
    assert (result.state, result.reason) == (JobState.TIMEOUT, "slurm TIMEOUT (time limit 1 min)"), result
    assert _queued(slurm_cluster, job.job_id) == ""


def test_job_that_slurm_lets_overrun_is_cancelled(slurm_cluster, tmp_path):
    launcher = _launcher(slurm_cluster, overshoot_s=1)
    job = launcher.submit(_spec(tmp_path, "overrun", "import time; time.sleep(300)", timeout_s=1))
    result = job.wait()
    assert result.state == JobState.TIMEOUT and result.reason.startswith("timeout: exceeded the 1s limit"), result
    assert _queued(slurm_cluster, job.job_id) == ""
    assert slurm_cluster.job_info(job.job_id)["JobState"] == "CANCELLED"


def test_cancel_leaves_no_job_behind(slurm_cluster, tmp_path):
    job = _launcher(slurm_cluster).submit(_spec(tmp_path, "cancel", "import time; time.sleep(300)"))
    until_running(job)
    result = job.wait(should_stop=lambda: "stopped by the person (autoresearch stop)")
    assert (result.state, result.reason) == (JobState.CANCELLED, "stopped by the person (autoresearch stop)")
    assert _queued(slurm_cluster, job.job_id) == ""


def test_reattach_by_job_id_while_running_and_after_the_end(slurm_cluster, tmp_path):
    job = _launcher(slurm_cluster).submit(_spec(tmp_path, "again", "import time; time.sleep(2); print('done')"))
    handle, job_id = job.handle(), job.job_id
    del job
    again = _launcher(slurm_cluster).reattach(handle)
    assert again is not None and again.job_id == job_id and again.state() in (JobState.PENDING, JobState.RUNNING)
    assert again.wait().state == JobState.COMPLETED
    finished = _launcher(slurm_cluster).reattach(handle)
    assert finished.state() == JobState.COMPLETED and finished.wait().succeeded
    assert (tmp_path / "again" / "run.log").read_text() == "done\n"
    assert _launcher(slurm_cluster).reattach({**handle, "job_id": "987654"}) is None


def test_interactive_runs_share_one_allocation_released_on_close(slurm_cluster, tmp_path):
    launcher = _launcher(slurm_cluster, mode="interactive", time_limit="3")
    first = launcher.submit(_spec(tmp_path, "i1", "print('first')", timeout_s=30))
    assert first.wait().succeeded
    second = launcher.submit(_spec(tmp_path, "i2", "raise SystemExit(3)", timeout_s=30))
    result = second.wait()
    allocation = launcher.allocation
    assert (first.job_id, second.job_id) == (f"{allocation}.0", f"{allocation}.1")
    assert (result.state, result.exit_code) == (JobState.FAILED, 3)
    assert (tmp_path / "i1" / "run.log").read_text() == "first\n"
    assert first.command.startswith(f"srun --jobid={allocation} ")
    with pytest.raises(SlurmError, match="cannot finish"):
        launcher.submit(_spec(tmp_path, "i3", "print('too long')", timeout_s=3600))
    slow = launcher.submit(_spec(tmp_path, "i4", "import time; time.sleep(300)", timeout_s=1))
    assert slow.wait().state == JobState.TIMEOUT and slow.job_id == f"{allocation}.2"
    assert slurm_cluster.run("squeue", "-h", "-s", "-j", allocation, "-o", "%i").stdout.split() == []
    assert _queued(slurm_cluster, allocation) == "RUNNING"
    launcher.close()
    assert _queued(slurm_cluster, allocation) == "" and launcher.allocation is None


def test_preflight(slurm_cluster):
    assert all(ok for ok, _ in _launcher(slurm_cluster, partition="batch").preflight())
    checks = _launcher(slurm_cluster, partition="nope").preflight()
    assert (False, "slurm: partition nope not found by sinfo") in checks
