"""The Ray launcher against the private lab head: jobs through the Jobs API, their logs in run.log, stop on
cancel and on timeout, reattach, and the working_dir upload limit."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from nrl_autoresearch.core.errors import UsageError
from nrl_autoresearch.core.launcher import JobState, RunSpec
from nrl_autoresearch.launchers.ray import RayLauncher

from .support import until_running

pytestmark = pytest.mark.ray
SECRET = "lab-secret-value-5678"


def _spec(tmp_path: Path, name: str, code: str, timeout_s: float | None = 60, **env: str) -> RunSpec:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    run_dir = tmp_path / name
    return RunSpec(
        name=f"ar-test-{name}",
        argv=[sys.executable, "-c", code, "${LAB_TOKEN}"],
        cwd=work,
        log_path=run_dir / "run.log",
        run_dir=run_dir,
        env=env,
        timeout_s=timeout_s,
    )


def _launcher(cluster, **options) -> RayLauncher:
    return RayLauncher(cluster.address, poll_s=0.3, **options)


def _ray_status(cluster, job_id: str) -> str:
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(cluster.address).get_job_status(job_id).value


def test_job_succeeds_with_its_log_in_run_log(ray_cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_TOKEN", SECRET)
    code = "import os, sys; print('hello', os.environ['GREETING'], sys.argv[1], os.getcwd())"
    job = _launcher(ray_cluster).submit(_spec(tmp_path, "ok", code, GREETING="from ray"))
    assert job.job_id.startswith("ar-test-ok-") and SECRET not in job.command and "${LAB_TOKEN" in job.command
    result = job.wait()
    assert (result.state, result.exit_code, result.reason) == (JobState.COMPLETED, 0, "ray SUCCEEDED"), result
    assert f"hello from ray {SECRET}" in job.log_path.read_text()


def test_failing_job_reads_failed_with_its_exit_code(ray_cluster, tmp_path):
    result = _launcher(ray_cluster).submit(_spec(tmp_path, "bad", "raise SystemExit(3)")).wait()
    assert (result.state, result.exit_code) == (JobState.FAILED, 3) and result.reason.startswith("ray FAILED exit 3")


def test_cancel_stops_the_job(ray_cluster, tmp_path):
    job = _launcher(ray_cluster).submit(_spec(tmp_path, "cancel", "import time; time.sleep(300)"))
    until_running(job)
    result = job.wait(should_stop=lambda: "stopped by the person (autoresearch stop)")
    assert (result.state, result.reason) == (JobState.CANCELLED, "stopped by the person (autoresearch stop)")
    assert _ray_status(ray_cluster, job.job_id) == "STOPPED"


def test_timeout_stops_the_job(ray_cluster, tmp_path):
    job = _launcher(ray_cluster).submit(_spec(tmp_path, "slow", "import time; time.sleep(300)", timeout_s=1))
    result = job.wait()
    assert result.state == JobState.TIMEOUT and result.reason.startswith("timeout: exceeded the 1s limit"), result
    assert _ray_status(ray_cluster, job.job_id) == "STOPPED"


def test_reattach_by_submission_id(ray_cluster, tmp_path):
    job = _launcher(ray_cluster).submit(_spec(tmp_path, "again", "import time; time.sleep(2); print('done')"))
    handle, job_id = job.handle(), job.job_id
    del job
    again = _launcher(ray_cluster).reattach(handle)
    assert again is not None and again.job_id == job_id
    assert again.wait().succeeded
    assert "done" in (tmp_path / "again" / "run.log").read_text()
    assert _launcher(ray_cluster).reattach({**handle, "submission_id": "no-such-job"}) is None


def test_folder_over_the_upload_limit_is_refused(ray_cluster, tmp_path):
    spec = _spec(tmp_path, "big", "print('never')")
    (spec.cwd / "data").mkdir()
    (spec.cwd / "data" / "blob.bin").write_bytes(os.urandom(3 * 2**20))
    with pytest.raises(UsageError, match=r"holds 3\.0 MiB to upload, over the 1 MiB limit.*excludes"):
        _launcher(ray_cluster, upload_limit_mb=1).submit(spec)
    _launcher(ray_cluster, upload_limit_mb=1, runtime_env={"excludes": ["data/"]}).check_upload(spec.cwd)


def test_preflight(ray_cluster):
    assert all(ok for ok, _ in _launcher(ray_cluster).preflight())
    [(ok, message)] = RayLauncher("http://127.0.0.1:9").preflight()
    assert not ok and "does not answer" in message
