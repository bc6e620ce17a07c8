"""Smoke tests of the real services the other tests rely on (Slurm, Ray, Chromium)."""

from __future__ import annotations

import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.lab import RayCluster, SlurmCluster, chromium_screenshot


@pytest.mark.slurm
def test_sbatch_final_state_in_scontrol_and_sacct(slurm_cluster: SlurmCluster, tmp_path: Path):
    def sbatch(*args: str) -> str:
        res = slurm_cluster.run("sbatch", "--parsable", f"--chdir={tmp_path}", "--output=out-%j.txt", *args)
        assert res.returncode == 0, res.stderr
        return res.stdout.strip()

    ok = sbatch("--job-name=ok", "--wrap", "echo hello $SLURM_JOB_ID")
    bad = sbatch("--job-name=bad", "--partition=batch", "--wrap", "exit 3")

    info = slurm_cluster.wait_job(ok)
    assert (info["JobState"], info["ExitCode"]) == ("COMPLETED", "0:0"), info
    assert Path(info["StdOut"]).read_text() == f"hello {ok}\n"
    info = slurm_cluster.wait_job(bad)
    assert (info["JobState"], info["ExitCode"], info["Partition"]) == ("FAILED", "3:0", "batch")

    # Without slurmdbd, `sacct -c` reads the jobcomp file: kept after scontrol forgets.
    res = slurm_cluster.run("sacct", "-c", "-n", "-P", "-j", f"{ok},{bad}", "-o", "jobid,jobname,state,exitcode")
    assert res.returncode == 0, res.stderr
    assert sorted(res.stdout.split()) == sorted([f"{ok}|ok|COMPLETED|0:0", f"{bad}|bad|FAILED|3:0"])


@pytest.mark.slurm
def test_srun_propagates_exit_code(slurm_cluster: SlurmCluster):
    res = slurm_cluster.run("srun", "-n1", "bash", "-c", 'echo "conf=$SLURM_CONF"; exit 7')
    assert res.returncode == 7, res.stderr
    assert res.stdout == f"conf={slurm_cluster.conf}\n"
    res = slurm_cluster.run("salloc", "-n1", "srun", "echo", "allocated")
    assert (res.returncode, res.stdout) == (0, "allocated\n"), res.stderr


@pytest.mark.ray
def test_ray_jobs_api_round_trip(ray_cluster: RayCluster):
    from ray.job_submission import JobStatus, JobSubmissionClient

    client = JobSubmissionClient(ray_cluster.address)
    py = sys.executable  # PATH inside the job need not have a `python`
    ok = client.submit_job(
        entrypoint=f"{py} -c \"print('hello from ray')\"", metadata={"test": "ok"}, entrypoint_num_cpus=1
    )
    bad = client.submit_job(entrypoint=f'{py} -c "import sys; sys.exit(3)"')

    def wait(job_id: str, timeout: float = 60) -> JobStatus:
        deadline = time.monotonic() + timeout
        while not (status := client.get_job_status(job_id)).is_terminal():
            assert time.monotonic() < deadline, f"ray job {job_id} still {status}"
            time.sleep(0.3)
        return status

    assert wait(ok) == JobStatus.SUCCEEDED
    assert "hello from ray" in client.get_job_logs(ok)
    assert client.get_job_info(ok).metadata == {"test": "ok"}
    assert wait(bad) == JobStatus.FAILED
    assert client.get_job_info(bad).driver_exit_code == 3
    assert {ok, bad} <= {job.submission_id for job in client.list_jobs()}


@pytest.mark.chromium
def test_chromium_headless_screenshot(chromium: str, tmp_path: Path):
    page = tmp_path / "page.html"
    page.write_text("<html><body style='background:#c00'><h1>lab</h1></body></html>")
    png = tmp_path / "x.png"
    res = chromium_screenshot(page.as_uri(), png, tmp_path / "profile", size="640,480")
    assert res.returncode == 0, res.stdout
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", res.stdout
    assert struct.unpack(">II", data[16:24]) == (640, 480)  # IHDR width, height


def test_the_missing_system_packages_are_named_with_the_tests_that_need_them(tmp_path: Path):
    (tmp_path / "sbatch").write_text("#!/bin/sh\n")
    (tmp_path / "sbatch").chmod(0o755)
    script = Path(__file__).resolve().parents[1] / "scripts" / "lab" / "packages.sh"
    proc = subprocess.run(
        ["/bin/bash", str(script)], env={"PATH": str(tmp_path)}, capture_output=True, text=True, check=True
    )
    assert proc.stdout.splitlines() == ["slurm slurmctld", "slurm slurmd", "slurm munge", "chromium chromium"]


def test_every_test_using_a_service_is_marked_with_it():
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-m",
            "not slurm and not ray and not chromium",
            "tests/launchers",
            "tests/report",
            "tests/test_lab_services.py",
            "tests/engine/test_parallel.py",
        ],
        cwd=root,
        capture_output=True,
        text=True,
    )
    kept = proc.stdout
    assert "test_no_gpu_mask_without_gpus_and_a_clear_error_when_gpus_are_asked_for" in kept
    assert "test_every_test_using_a_service_is_marked_with_it" in kept
    for needs_a_service in (
        "test_chromium_renders_and_sorts_the_page",
        "test_sbatch_final_state_in_scontrol_and_sacct",
        "test_ray_jobs_api_round_trip",
        "test_slurm",
        "test_ray.py",
    ):
        assert needs_a_service not in kept, needs_a_service
