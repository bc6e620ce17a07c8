"""Shared by the launcher tests: golden files (regenerated with UPDATE_GOLDEN=1) and waiting for a job to run."""

from __future__ import annotations

import os
import time
from pathlib import Path

from nrl_autoresearch.core.launcher import Job, JobState

GOLDEN = Path(__file__).resolve().parent / "golden"


def normalised(text: str, tmp: Path) -> str:
    """Temporary folders change from run to run: they read <TMP> in golden files."""
    return text.replace(str(tmp), "<TMP>")


def assert_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"no golden file {path}: run with UPDATE_GOLDEN=1 to create it"
    assert text == path.read_text(), f"{name} differs from its golden file (UPDATE_GOLDEN=1 regenerates it)"


def until_running(job: Job, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while job.state() != JobState.RUNNING:
        assert time.monotonic() < deadline, f"job {job.job_id} still {job.state()}"
        time.sleep(0.2)
