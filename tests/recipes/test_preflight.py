"""Preflight lines that say pass, fail or unknown about the machine a campaign will use: GPUs and their memory,
the uv environment the runs reuse, the model and datasets in the Hugging Face cache, the disk for checkpoints."""

from __future__ import annotations

import base64
import hashlib
import http.server
import shutil
import socket
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest

from nrl_autoresearch.launchers import gpus
from nrl_autoresearch.launchers.gpus import GpuState
from nrl_autoresearch.recipes import hub, prerequisites
from nrl_autoresearch.recipes import nemo_config as nc
from nrl_autoresearch.recipes.nemo_rl import NemoRLRecipe
from tests.recipes.nemo_fixtures import recipe


def _gpu(index: int, free_gib: float, processes: int = 0, total_gib: float = 80.0) -> GpuState:
    return GpuState(index, total_gib, free_gib, processes)


def test_a_gpu_less_machine_has_no_gpu_to_offer(monkeypatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU here either way; NVML is absent on this machine
    assert gpus.states() == [] and gpus.free_gpus() == []
    ok, detail = gpus.local_fit(8, 0.6, gpus.states())
    assert not ok and detail == (
        "8 needed with 60% of each one's memory free, 0 visible, 0 free: "
        "run where the GPUs are, or choose --launcher slurm, k8s or ray"
    )


@pytest.mark.parametrize(
    ("found", "ok", "says"),
    [
        ([_gpu(0, 79.0), _gpu(1, 70.0)], True, "2 visible, 2 free"),
        ([_gpu(0, 79.0), _gpu(1, 40.0)], False, "GPU 1: 0 processes, 40.0 of 80.0 GiB free): wait for the busy GPUs"),
        ([_gpu(0, 79.0), _gpu(1, 79.0, processes=1)], False, "GPU 1: 1 processes"),
        ([_gpu(0, 79.0)], False, "has too few GPUs; choose another --launcher"),
    ],
    ids=["free", "memory-taken", "process-running", "too-few"],
)
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
    files = {
        "tinydep/__init__.py": b"VALUE = 1\n",
        "tinydep-0.1.dist-info/METADATA": b"Metadata-Version: 2.1\nName: tinydep\nVersion: 0.1\n",
        "tinydep-0.1.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: t\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    digest = {
        name: base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        for name, data in files.items()
    }
    record = [f"{name},sha256={digest[name]},{len(data)}" for name, data in files.items()]
    record.append("tinydep-0.1.dist-info/RECORD,,")
    path = folder / "tinydep-0.1-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)
        wheel.writestr("tinydep-0.1.dist-info/RECORD", "\n".join(record) + "\n")
    return path


PYPROJECT = (
    '[project]\nname = "tiny"\nversion = "0.1"\nrequires-python = ">=3.8"\ndependencies = [{deps}]\n'
    '[tool.uv.sources]\ntinydep = {{ path = "tinydep-0.1-py3-none-any.whl" }}\n[tool.uv]\npackage = false\n'
)


@pytest.fixture()
def uv_project(tmp_path: Path, monkeypatch) -> tuple[str, Path]:
    """A tiny uv project, synced offline into its .venv; uv's cache in tmp_path."""
    uv = str(Path(sys.executable).with_name("uv"))
    for name, value in {
        "UV_OFFLINE": "1",
        "UV_NO_CONFIG": "1",
        "UV_CACHE_DIR": str(tmp_path / "uv-cache"),
        "UV_PYTHON": sys._base_executable,  # type: ignore[attr-defined]  # a real CPython attribute typeshed lacks
    }.items():
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
    assert not (
        venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages" / "tinydep"
    ).exists()  # checking synced nothing
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


# -- the model and datasets on the Hugging Face Hub -----------------------------------------------------------
GATED = "meta-llama/Llama-3.2-1B"


@pytest.fixture()
def hf(tmp_path: Path, monkeypatch) -> Path:
    """An empty Hugging Face home, no token, and the Hub not asked (offline) unless a test says otherwise."""
    for name in (
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "HF_TOKEN_PATH",
        "HF_HUB_CACHE",
        "HUGGINGFACE_HUB_CACHE",
        "HF_ENDPOINT",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "hf" / "hub").mkdir(parents=True)
    return tmp_path / "hf"


def _snapshot(hf_home: Path, kind: str, repo_id: str, *files: str) -> Path:
    """The hub cache layout huggingface_hub writes: blobs, and a snapshot folder per revision."""
    repo = hf_home / "hub" / f"{kind}s--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / "0123456789abcdef0123456789abcdef01234567"
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(snapshot.name)
    for name in files:
        (snapshot / name).write_text("{}")
    return snapshot


def _model(name: str) -> dict:
    return {"policy": {"model_name": name}}


def test_a_cached_model_passes_offline_and_a_half_written_one_does_not(hf: Path) -> None:
    snapshot = _snapshot(hf, "model", GATED, "config.json")
    (found,) = hub.model_checks(_model(GATED))
    assert found.status == "pass" and found.detail == f"in the Hugging Face cache ({snapshot})"
    _snapshot(hf, "model", "Qwen/Qwen2.5-1.5B")  # a snapshot folder without files: a download cut short
    (partial,) = hub.model_checks(_model("Qwen/Qwen2.5-1.5B"))
    assert partial.status == "fail" and "HF_HUB_OFFLINE is set" in partial.detail
    assert "huggingface-cli download Qwen/Qwen2.5-1.5B" in partial.detail


def test_a_gated_model_without_a_token_is_the_failure_named(hf: Path, monkeypatch) -> None:
    (found,) = hub.model_checks(_model(GATED))
    assert found.status == "fail" and found.blocking and "gated, with no token" in found.detail
    assert found.item == f"model {GATED} reachable"
    (hf / "token").write_text("hf_not_a_real_token\n")
    (with_token,) = hub.model_checks(_model(GATED))
    assert "with no token" not in with_token.detail and "HF_HUB_OFFLINE is set" in with_token.detail


def test_without_an_answer_from_the_hub_it_is_unknown_never_a_pass(hf: Path, monkeypatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")  # the Hub unreachable, nothing asked
    (found,) = hub.model_checks(_model("Qwen/Qwen2.5-1.5B"))
    assert found.status == "unknown" and not found.blocking and "the Hub did not answer" in found.detail


@pytest.mark.parametrize(
    ("status", "code", "says"),
    [
        (200, "", "pass"),
        (403, "GatedRepo", "fail"),
        (401, "RepoNotFound", "fail"),
        (500, "", "unknown"),
    ],
    ids=["granted", "licence-not-accepted", "missing", "hub-error"],
)
def test_the_hubs_auth_check_answer_is_read(hf: Path, monkeypatch, status: int, code: str, says: str) -> None:
    """The Hub's auth-check endpoint, served on this machine with the answers the Hub gives."""
    asked: list[tuple[str, str | None]] = []

    class Hub(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append((self.path, self.headers.get("Authorization")))
            self.send_response(status)
            if code:
                self.send_header("X-Error-Code", code)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Hub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.delenv("HF_HUB_OFFLINE")
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
        monkeypatch.setenv("HF_TOKEN", "hf_token_for_the_test")
        (found,) = hub.model_checks(_model(GATED))
    finally:
        server.shutdown()
        server.server_close()
    assert asked == [(f"/api/models/{GATED}/auth-check", "Bearer hf_token_for_the_test")]
    assert found.status == says
    assert ("not accepted its licence" in found.detail) is (code == "GatedRepo")


def test_datasets_the_recipe_names_by_hub_id_are_checked_in_the_cache(hf: Path, tmp_path: Path) -> None:
    cfg = nc.load_resolved(recipe("grpo-llama3.2-1b-instruct-1n8g-fsdp2tp1.v3.yaml"))
    cfg["data"]["train"]["data_path"] = "nvidia/OpenMathInstruct-2"
    local = tmp_path / "data" / "val.jsonl"
    local.parent.mkdir()
    local.write_text("{}\n")
    cfg["data"]["validation"] = {"data_path": str(local)}
    checks = {c.item: c for c in hub.dataset_checks(cfg, tmp_path)}
    assert checks["dataset nvidia/OpenMathInstruct-2 reachable"].status == "fail"  # offline and not cached
    assert "--repo-type dataset" in checks["dataset nvidia/OpenMathInstruct-2 reachable"].detail
    assert not any(str(local) in item for item in checks)  # a local file is the data-files line's business
    registry = checks["datasets named by NeMo-RL's registry"]
    assert registry.status == "unknown" and cfg["data"]["train"]["dataset_name"] in registry.detail
    _snapshot(hf, "dataset", "nvidia/OpenMathInstruct-2", "README.md")
    assert {c.item: c for c in hub.dataset_checks(cfg, tmp_path)}[
        "dataset nvidia/OpenMathInstruct-2 reachable"
    ].status == "pass"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again once the socket is


# -- the disk checkpoints go to ---------------------------------------------------------------------------------
def test_checkpoints_are_sized_from_the_cached_weights(hf: Path) -> None:
    cfg = nc.load_resolved(recipe("grpo-llama3.2-1b-instruct-1n8g-fsdp2tp1.v3.yaml"))
    name = cfg["policy"]["model_name"]
    need, why = hub.checkpoint_gib(cfg)
    assert need is None and f"until {name} is in the Hugging Face cache" in why
    snapshot = _snapshot(hf, "model", name, "config.json")
    with open(snapshot / "model.safetensors", "wb") as weights:
        weights.truncate(2 * 2**30)  # 2 GiB of weights, sparse
    keep = cfg["checkpointing"]["keep_top_k"]
    need, why = hub.checkpoint_gib(cfg)
    assert need == pytest.approx(2 * 5 * (keep + 1)) and "2.0 GiB of weights and the optimizer state" in why
    cfg["checkpointing"]["save_optimizer"] = False
    assert hub.checkpoint_gib(cfg)[0] == pytest.approx(2 * (keep + 1))
    cfg["checkpointing"]["enabled"] = False
    assert hub.checkpoint_gib(cfg) == (0.0, "checkpointing is off")


# -- a smoke run's size -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "free", "used", "shrunk"),
    [
        ("grpo-llama3.2-1b-instruct-1n8g-fsdp2tp1.v3.yaml", 8, 8, False),
        ("grpo-llama3.2-1b-instruct-1n8g-fsdp2tp1.v3.yaml", 3, 2, True),
        ("grpo-llama3.2-1b-instruct-1n8g-fsdp2tp1.v3.yaml", 0, 1, False),  # too few: the fewest it runs on
        ("grpo-llama3.2-1b-instruct-1n8g-fsdp2tp2-temp0.8-topp0.9-topk50.yaml", 5, 4, True),
        ("grpo-llama3.2-1b-instruct-1n8g-fsdp2tp2-temp0.8-topp0.9-topk50.yaml", 1, 2, False),  # tensor parallel 2
    ],
)
def test_a_smoke_run_shrinks_to_the_free_gpus_nemo_rl_accepts(name: str, free: int, used: int, shrunk: bool) -> None:
    path = recipe(name)
    rel = str(path.relative_to(path.parents[4]))
    gpus_used, args = NemoRLRecipe(rel).smoke_scale(path.parents[4], free)
    assert gpus_used == used
    assert args == (["++cluster.num_nodes=1", f"++cluster.gpus_per_node={used}"] if shrunk else [])
