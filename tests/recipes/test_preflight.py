"""Preflight lines that say pass, fail or unknown about the machine a campaign will use: GPUs and their memory,
the uv environment the runs reuse, the model and datasets in the Hugging Face cache, the disk for checkpoints."""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from nrl_autoresearch.recipes import prerequisites
from nrl_autoresearch.runner import gpus
from nrl_autoresearch.runner.gpus import GpuState


def _gpu(index: int, free_gib: float, processes: int = 0, total_gib: float = 80.0) -> GpuState:
    return GpuState(index, total_gib, free_gib, processes)


def test_a_gpu_less_machine_has_no_gpu_to_offer(monkeypatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU here either way; NVML is absent on this machine
    assert gpus.states() == [] and gpus.free_gpus() == []
    ok, detail = gpus.local_fit(8, 0.6, gpus.states())
    assert not ok and detail == ("8 needed with 60% of each one's memory free, 0 visible, 0 free: "
                                 "run where the GPUs are, or choose --launcher slurm, k8s or ray")


@pytest.mark.parametrize(("found", "ok", "says"), [
    ([_gpu(0, 79.0), _gpu(1, 70.0)], True, "2 visible, 2 free"),
    ([_gpu(0, 79.0), _gpu(1, 40.0)], False, "GPU 1: 0 processes, 40.0 of 80.0 GiB free): wait for the busy GPUs"),
    ([_gpu(0, 79.0), _gpu(1, 79.0, processes=1)], False, "GPU 1: 1 processes"),
    ([_gpu(0, 79.0)], False, "has too few GPUs; choose another --launcher"),
], ids=["free", "memory-taken", "process-running", "too-few"])
def test_needed_against_free_counts_and_memory(found, ok: bool, says: str) -> None:
    fits, detail = gpus.local_fit(2, 0.6, found)
    assert fits is ok and says in detail
    assert ("wait" in detail or "launcher" in detail) is not ok  # a way out only where it failed


def test_the_share_a_gpu_needs_free_is_the_recipes() -> None:
    half_taken = [_gpu(0, 40.0)]
    assert gpus.free_gpus(0.5, half_taken) == [0] and gpus.free_gpus(0.6, half_taken) == []


# -- the uv environment the runs reuse -------------------------------------------------------------------------
def _wheel(folder: Path) -> Path:
    """A one-module wheel, so that uv installs a dependency without an index."""
    files = {"tinydep/__init__.py": b"VALUE = 1\n",
             "tinydep-0.1.dist-info/METADATA": b"Metadata-Version: 2.1\nName: tinydep\nVersion: 0.1\n",
             "tinydep-0.1.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: t\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = [f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}"
              for name, data in files.items()] + ["tinydep-0.1.dist-info/RECORD,,"]
    path = folder / "tinydep-0.1-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)
        wheel.writestr("tinydep-0.1.dist-info/RECORD", "\n".join(record) + "\n")
    return path


PYPROJECT = '[project]\nname = "tiny"\nversion = "0.1"\nrequires-python = ">=3.8"\ndependencies = [{deps}]\n' \
            '[tool.uv.sources]\ntinydep = {{ path = "tinydep-0.1-py3-none-any.whl" }}\n[tool.uv]\npackage = false\n'


@pytest.fixture()
def uv_project(tmp_path: Path, monkeypatch) -> tuple[str, Path]:
    """A tiny uv project, synced offline into its .venv; uv's cache in tmp_path."""
    uv = str(Path(sys.executable).with_name("uv"))
    for name, value in {"UV_OFFLINE": "1", "UV_NO_CONFIG": "1", "UV_CACHE_DIR": str(tmp_path / "uv-cache"),
                        "UV_PYTHON": sys._base_executable}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("UV_PROJECT_ENVIRONMENT", raising=False)
    project = tmp_path / "project"
    project.mkdir()
    _wheel(project)
    (project / "pyproject.toml").write_text(PYPROJECT.format(deps=""))
    subprocess.run([uv, "sync", "--quiet"], cwd=project, check=True)
    return uv, project


def test_a_synced_environment_passes_and_a_stale_one_names_the_exact_sync(uv_project) -> None:
    uv, project = uv_project
    venv = project / ".venv"
    synced = prerequisites.uv_synced(uv, project, venv, project)
    assert synced.status == "pass" and synced.detail == f"{venv} matches {project / 'uv.lock'}"
    (project / "pyproject.toml").write_text(PYPROJECT.format(deps='"tinydep"'))  # a dependency the venv lacks
    stale = prerequisites.uv_synced(uv, project, venv, project)
    assert stale.status == "fail" and "+ tinydep==0.1" in stale.detail
    assert f"run 'uv sync --project {project}' once" in stale.detail
    assert not (venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages" /
                "tinydep").exists()  # checking synced nothing
    given = stale.detail.split("'")[1].split()
    subprocess.run([uv, *given[1:]], cwd=project, check=True, capture_output=True)  # the fix given, as written
    assert prerequisites.uv_synced(uv, project, venv, project).status == "pass"


def test_a_checkout_other_than_the_main_one_is_synced_into_the_main_environment(uv_project, tmp_path: Path) -> None:
    uv, main = uv_project
    other = tmp_path / "other"
    shutil.copytree(main, other, ignore=shutil.ignore_patterns(".venv"))
    (other / "pyproject.toml").write_text(PYPROJECT.format(deps='"tinydep"'))
    stale = prerequisites.uv_synced(uv, other, main / ".venv", main)
    assert stale.status == "fail"
    assert f"'UV_PROJECT_ENVIRONMENT={main / '.venv'} uv sync --project {other}'" in stale.detail
    assert not (other / ".venv").exists()


def test_a_project_uv_cannot_read_is_unknown_not_a_pass(uv_project) -> None:
    uv, project = uv_project
    (project / "pyproject.toml").write_text("[project\n")
    found = prerequisites.uv_synced(uv, project, project / ".venv", project)
    assert found.status == "unknown" and not found.blocking and found.detail.startswith("unknown: ")
