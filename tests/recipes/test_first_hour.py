"""A NeMo-RL researcher's first hour on NeMo-RL's own configs: `plan` shows exactly what will run and creates
nothing, preflight says what will fail (GPUs, the uv environment, the model, Slurm), before init too.
A stand-in `uv` on PATH and an empty Hugging Face cache stand for the researcher's machine."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from nrl_autoresearch.core.errors import UsageError
from nrl_autoresearch.launchers import choose, gpus
from tests.helpers import cli, git, tree_digest
from tests.recipes.nemo_fixtures import EXAMPLES

GRPO = "examples/configs/recipes/llm/grpo-llama3.2-1b-instruct-1n8g-fsdp2tp1.v3.yaml"
STAND_IN = "#!/bin/sh\nexit {code}\n"


def _tool(folder: Path, name: str, code: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(STAND_IN.format(code=code))
    (folder / name).chmod(0o755)


@pytest.fixture()
def machine(tmp_path: Path, monkeypatch) -> dict:
    """No GPU, no Hugging Face token, an empty cache, the Hub unreachable, and a stand-in uv first on PATH."""
    bin_dir = tmp_path / "bin"
    _tool(bin_dir, "uv")
    for name in (
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "HF_TOKEN_PATH",
        "HF_HUB_CACHE",
        "HUGGINGFACE_HUB_CACHE",
        "HF_HUB_OFFLINE",
    ):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "hf").mkdir()
    return {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "HF_HOME": str(tmp_path / "hf"),
        "CUDA_VISIBLE_DEVICES": "",
        "HF_ENDPOINT": "http://127.0.0.1:9",
    }  # the discard port: nothing listens, nothing leaves the machine


@pytest.fixture()
def nemo_checkout(tmp_path: Path) -> Path:
    """NeMo-RL's example configs with their GRPO entrypoint, committed, and the main checkout's environment."""
    repo = tmp_path / "RL"
    shutil.copytree(EXAMPLES, repo / "examples")
    (repo / "examples" / "run_grpo.py").write_text("print('GRPO')\n")
    (repo / ".gitignore").write_text(".venv/\n")
    git(tmp_path, "init", "-q", "-b", "main", str(repo))
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=R", "-c", "user.email=r@example.org", "commit", "-qm", "NeMo-RL configs")
    (repo / ".venv").mkdir()
    return repo


def _checks(data: dict) -> dict[str, dict]:
    return {c["item"]: c for c in data["checks"]}


def test_plan_before_init_creates_nothing_and_shows_the_baseline_exactly(nemo_checkout: Path, machine: dict) -> None:
    before = tree_digest(nemo_checkout)
    branches = git(nemo_checkout, "branch", "--list")
    proc = cli(
        nemo_checkout,
        "plan",
        "--recipe",
        GRPO,
        "--launcher",
        "local",
        "--max-experiments",
        "3",
        "--json",
        env=machine,
        check=True,
    )
    data = json.loads(proc.stdout)
    assert tree_digest(nemo_checkout) == before and git(nemo_checkout, "branch", "--list") == branches
    assert not (nemo_checkout / "reports").exists()
    assert len(data["first_hypotheses"]) == data["hypotheses_room"] == 2  # the baseline takes the third row
    base = data["baseline"]
    assert base["env"] == {"UV_PROJECT_ENVIRONMENT": str(nemo_checkout / ".venv")}
    assert base["cwd"].endswith("/worktrees/baseline")
    assert base["command"].startswith(f"uv run examples/run_grpo.py --config {GRPO} ++logger.log_dir=")
    assert data["objective"]["metric"] == "val:accuracy" and data["launcher"]["name"] == "local"
    text = cli(nemo_checkout, "plan", "--recipe", GRPO, "--launcher", "local", env=machine, check=True).stdout
    assert f"export UV_PROJECT_ENVIRONMENT={nemo_checkout / '.venv'}" in text and "preflight: blocked" in text


def test_preflight_refuses_a_local_8_gpu_run_on_a_gpu_less_machine(nemo_checkout: Path, machine: dict) -> None:
    proc = cli(nemo_checkout, "preflight", "--recipe", GRPO, "--launcher", "local", "--json", env=machine)
    data = json.loads(proc.stdout)
    checks = _checks(data)
    assert proc.returncode == 1 and not data["ok"]
    assert checks["GPUs for a local run"] == {
        "ok": False,
        "item": "GPUs for a local run",
        "blocking": True,
        "status": "fail",
        "detail": "8 needed with 60% of each one's memory free, 0 visible, "
        "0 free: "
        "run where the GPUs are, or "
        "choose --launcher slurm, k8s or ray",
    }
    model = checks["model meta-llama/Llama-3.2-1B-Instruct reachable"]
    assert not model["ok"] and model["blocking"] and "gated, with no token" in model["detail"]
    assert checks["uv is installed"]["ok"] and checks["uv is installed"]["detail"].endswith("/uv")  # no fix shown
    assert checks["uv environment of the main checkout"]["detail"] == str(nemo_checkout / ".venv")
    disk = checks["free disk for checkpoints and logs"]
    assert disk["status"] == "unknown" and "GiB free at" in disk["detail"]  # the weights are not here to size them
    assert not (nemo_checkout / "reports").exists()


def test_a_missing_environment_and_a_token_are_told_honestly(
    nemo_checkout: Path, machine: dict, tmp_path: Path
) -> None:
    shutil.rmtree(nemo_checkout / ".venv")
    (tmp_path / "hf" / "token").write_text("not read")
    data = json.loads(
        cli(nemo_checkout, "preflight", "--recipe", GRPO, "--launcher", "local", "--json", env=machine).stdout
    )
    checks = _checks(data)
    venv = checks["uv environment of the main checkout"]
    assert not venv["ok"] and f"uv sync --project {nemo_checkout}" in venv["detail"]
    model = checks["model meta-llama/Llama-3.2-1B-Instruct reachable"]
    assert not model["ok"] and not model["blocking"] and model["detail"].startswith("unknown:")
    refused = cli(nemo_checkout, "init", "--recipe", GRPO, "--launcher", "local", "--json", env=machine)
    assert refused.returncode == 2 and json.loads(refused.stdout)["created"] is False
    assert "uv sync --project" in json.loads(refused.stdout)["error"]


def test_checkpoints_larger_than_the_disk_fail_with_the_figures(nemo_checkout: Path, machine: dict) -> None:
    model = Path(machine["HF_HOME"]) / "hub" / "models--meta-llama--Llama-3.2-1B-Instruct" / "snapshots" / "abc"
    model.mkdir(parents=True)
    with open(model / "model.safetensors", "wb") as weights:
        weights.truncate(shutil.disk_usage(model).free // 10)  # sparse; its checkpoints take 20 times as much
    checks = _checks(
        json.loads(
            cli(nemo_checkout, "preflight", "--recipe", GRPO, "--launcher", "local", "--json", env=machine).stdout
        )
    )
    assert checks["model meta-llama/Llama-3.2-1B-Instruct reachable"]["status"] == "pass"
    disk = checks["free disk for checkpoints and logs"]
    assert disk["status"] == "fail" and f"GiB free at {nemo_checkout}" in disk["detail"]
    assert "one run's checkpoints take about" in disk["detail"] and "lower checkpointing.keep_top_k" in disk["detail"]


def test_auto_does_not_pick_slurm_when_sinfo_does_not_answer(tmp_path: Path, monkeypatch) -> None:
    _tool(tmp_path / "bin", "sbatch")
    _tool(tmp_path / "bin", "sinfo", code=1)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(UsageError, match="sinfo does not reach the Slurm controller"):
        choose(8, {})
    _tool(tmp_path / "bin", "sinfo")
    assert choose(8, {}) == (
        "slurm",
        "this machine has 0 free GPUs, each run needs 8; sbatch is available and sinfo answers",
    )


def test_a_mistyped_metric_is_refused_with_the_closest_logged_names(nemo_checkout: Path, machine: dict) -> None:
    (Path(machine["HF_HOME"]) / "token").write_text("not read")  # the gated model is reachable
    before = tree_digest(nemo_checkout)
    proc = cli(
        nemo_checkout,
        "init",
        "--recipe",
        GRPO,
        "--launcher",
        "local",
        "--metric",
        "val:acuracy",
        "--maximize",
        env=machine,
    )
    assert proc.returncode == 2 and "did you mean val:accuracy?" in proc.stderr
    assert tree_digest(nemo_checkout) == before and not (nemo_checkout / "reports").exists()


def test_the_runner_is_the_one_nemo_rls_test_script_uses(nemo_checkout: Path, machine: dict, monkeypatch) -> None:
    monkeypatch.delenv("NRL_PYTHON", raising=False)
    fused = "examples/configs/recipes/llm/grpo-qwen3-30ba3b-2n8g-megatron_fused_linear_logprobs.yaml"
    data = json.loads(
        cli(
            nemo_checkout,
            "plan",
            "--recipe",
            fused,
            "--launcher",
            "local",
            "--count",
            "0",
            "--json",
            env=machine,
            check=True,
        ).stdout
    )
    assert data["baseline"]["command"].startswith(f"python examples/run_grpo.py --config {fused} ")
    assert data["baseline"]["env"] == {} and data["first_hypotheses"] == []
    assert "uv is installed" not in _checks(data["preflight"])
    given = json.loads(
        cli(
            nemo_checkout,
            "plan",
            "--recipe",
            fused,
            "--runner",
            "uv run",
            "--launcher",
            "local",
            "--json",
            env=machine,
            check=True,
        ).stdout
    )
    assert given["baseline"]["command"].startswith("uv run examples/run_grpo.py")


def test_the_launcher_column_names_nrl_k8s(tmp_path: Path, monkeypatch) -> None:
    from nrl_autoresearch.launchers.kubernetes import KubernetesLauncher

    _tool(tmp_path / "bin", "nrl-k8s")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    (tmp_path / "infra.yaml").write_text("namespace: rl\n")
    assert KubernetesLauncher(infra=str(tmp_path / "infra.yaml")).name == "nrl-k8s"
    assert KubernetesLauncher(image="nvcr.io/nvidia/nemo-rl:latest").name == "k8s"


def test_smoke_goes_through_preflight_first(nemo_checkout: Path, machine: dict) -> None:
    (Path(machine["HF_HOME"]) / "token").write_text("not read")
    cli(nemo_checkout, "init", "--recipe", GRPO, "--launcher", "local", "--campaign", "first", env=machine, check=True)
    proc = cli(nemo_checkout, "smoke", "--campaign", "first", env=machine)
    assert proc.returncode == 2  # the smoke run would take one GPU (tensor parallel 1), and none is here
    assert (
        "preflight failed: GPUs for a local run: 1 needed with 60% of each one's memory free, 0 visible" in proc.stderr
    )
    assert not list(nemo_checkout.rglob("smoke"))  # nothing was launched


@pytest.mark.skipif(not gpus.free_gpus(0.6), reason="needs a free GPU (NVML)")
def test_smoke_shrinks_to_the_free_gpus_and_says_so(nemo_checkout: Path, machine: dict) -> None:
    free = len(gpus.free_gpus(0.6))
    used = max(n for n in (1, 2, 4, 8) if n <= free)
    (Path(machine["HF_HOME"]) / "token").write_text("not read")
    env = {k: v for k, v in machine.items() if k != "CUDA_VISIBLE_DEVICES"}  # this machine's GPUs, as they are
    cli(nemo_checkout, "init", "--recipe", GRPO, "--launcher", "local", "--campaign", "first", env=env, check=True)
    found = json.loads(cli(nemo_checkout, "smoke", "--campaign", "first", "--json", env=env).stdout)
    assert found["gpus"]["used"] == used and found["gpus"]["recipe"] == 8
    if used < 8:
        assert found["gpus"]["overrides"] == ["++cluster.num_nodes=1", f"++cluster.gpus_per_node={used}"]
        assert found["command"].endswith(f"++cluster.num_nodes=1 ++cluster.gpus_per_node={used}")
        assert f"on {used} GPUs (not the recipe's 8" in found["proved"][0]
