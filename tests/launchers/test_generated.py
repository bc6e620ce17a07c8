"""What the launchers generate without running anything: sbatch scripts, ray.sub command lines, Kubernetes
manifests and nrl-k8s command lines (golden files), and the shell text that keeps secrets out of them."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nrl_autoresearch.core.errors import UsageError
from nrl_autoresearch.core.launcher import JobState, RunSpec
from nrl_autoresearch.core.redact import shell_command
from nrl_autoresearch.launchers.kubernetes import KubernetesLauncher, job_status, rayjob_status
from nrl_autoresearch.launchers.slurm import SlurmLauncher, command_line

from .support import assert_golden, normalised

NEMO_RL_ARGV = [
    "uv",
    "run",
    "examples/run_grpo.py",
    "--config",
    "examples/configs/recipes/llm/grpo-1n8g.yaml",
    "grpo.max_num_steps=20",
    "policy.optimizer.kwargs.lr=3e-06",
    "logger.wandb.name=exp-${RUN_ID}",
    "checkpointing.checkpoint_dir=${policy.model_name}/ckpt",
    "--hf-token",
    "${HF_TOKEN}",
]


def _spec(tmp_path: Path, argv: list[str] = NEMO_RL_ARGV, timeout_s: float | None = 90) -> RunSpec:
    run_dir = tmp_path / "runs" / "003-lr-3e-6"
    return RunSpec(
        name="ar-grpo-003",
        argv=argv,
        cwd=tmp_path / "worktrees" / "lr-3e-6",
        log_path=run_dir / "run.log",
        run_dir=run_dir,
        env={"AUTORESEARCH_RUN": "campaign#3", "NOTE": "it's done"},
        timeout_s=timeout_s,
    )


def test_batch_script(tmp_path: Path):
    launcher = SlurmLauncher(
        account="rl", partition="batch", gpus_per_node=8, cpus_per_task=16, extra_sbatch=("--mem=0", "--exclusive")
    )
    script = launcher.batch_script(_spec(tmp_path))
    assert "--time=2" in script  # 90 s rounded up to whole minutes
    assert_golden("slurm_batch.sbatch", normalised(script, tmp_path))


def test_ray_sub_command_and_env(tmp_path: Path):
    launcher = SlurmLauncher(
        mode="ray.sub",
        account="rl",
        partition="batch",
        nodes=2,
        gpus_per_node=8,
        container="nvcr.io/nvidia/nemo-rl:v0.4.0",
        mounts="/lustre:/lustre",
    )
    env, argv = launcher.ray_sub_command(_spec(tmp_path))
    assert argv[-1] == "ray.sub" and env["BASE_LOG_DIR"] == str(tmp_path / "runs" / "003-lr-3e-6")
    text = json.dumps({"env": env, "argv": argv, "command": command_line(env, argv)}, indent=2) + "\n"
    assert_golden("slurm_ray_sub.json", normalised(text, tmp_path))


def test_kubernetes_job_manifest_is_valid(tmp_path: Path):
    launcher = KubernetesLauncher(
        image="nvcr.io/nvidia/nemo-rl:v0.4.0",
        namespace="rl",
        gpus=8,
        cpu="32",
        memory="512Gi",
        volumes=("rl-workspace:/mnt/rl-workspace", "/data:/data:ro"),
        secret="rl-secrets",
    )
    manifest = launcher.job_manifest(_spec(tmp_path), "ar-grpo-003-1a2b3c")
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    assert_golden("k8s_job.yaml", normalised(path.read_text(), tmp_path))
    validate = Path(sys.executable).parent / "kubernetes-validate"
    proc = subprocess.run([str(validate), "--strict", "--quiet", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_kubernetes_job_needs_a_secret_for_references(tmp_path: Path):
    launcher = KubernetesLauncher(image="busybox:1.36")
    with pytest.raises(UsageError, match=r"\$\{HF_TOKEN\}.*secret="):
        launcher.job_manifest(_spec(tmp_path), "x")


def test_nrl_k8s_command_line(tmp_path: Path):
    infra = tmp_path / "grpo.gb300.infra.yaml"
    infra.write_text("namespace: rl-team\nimage: nvcr.io/nvidia/nemo-rl:v0.4.0\n")
    launcher = KubernetesLauncher(infra=str(infra))
    argv = launcher.nrl_k8s_run(_spec(tmp_path), "ar-grpo-003-1a2b3c")
    lines = [
        shlex.join(argv),
        shlex.join(launcher.nrl_k8s_job("logs", "ar-grpo-003-1a2b3c-xyz", argv[2])),
        shlex.join(launcher.nrl_k8s_job("stop", "ar-grpo-003-1a2b3c-xyz", argv[2])),
        shlex.join(launcher.kubectl_argv("get", "rayjob", "ar-grpo-003-1a2b3c", "-o", "json")),
    ]
    assert_golden("nrl_k8s.txt", normalised("\n".join(lines) + "\n", tmp_path))


@pytest.mark.parametrize("secret", ["s3cr3t-value 'with' \"quotes\"", None])
def test_shell_command_expands_references_only_at_run_time(secret: str | None):
    argv = [
        "printf",
        "[%s]\\n",
        "plain $HOME",
        "it's",
        "",
        "--token=${MY_TOKEN}",
        "${MY_TOKEN}${MY_TOKEN}",
        "${a.b}",
        "$(date)",
    ]
    env = {"PATH": "/usr/bin:/bin", **({"MY_TOKEN": secret} if secret is not None else {})}
    text = shell_command(argv)
    out = subprocess.run(["sh", "-c", text], capture_output=True, text=True, env=env, check=True).stdout
    token = secret if secret is not None else "${MY_TOKEN}"  # unset: left literal, as expand_secrets leaves it
    assert out.splitlines() == [
        f"[{a}]" for a in ["plain $HOME", "it's", "", f"--token={token}", token * 2, "${a.b}", "$(date)"]
    ]
    assert secret is None or secret not in text


def test_kubernetes_status_of_a_job_and_its_pod():
    job = {
        "kind": "Job",
        "metadata": {"creationTimestamp": "2026-01-01T10:00:00Z"},
        "status": {
            "conditions": [
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "BackoffLimitExceeded",
                    "lastTransitionTime": "2026-01-01T10:01:00Z",
                }
            ]
        },
    }
    pod = {
        "kind": "Pod",
        "status": {
            "containerStatuses": [
                {
                    "state": {
                        "terminated": {
                            "exitCode": 137,
                            "reason": "OOMKilled",
                            "startedAt": "2026-01-01T10:00:20Z",
                            "finishedAt": "2026-01-01T10:00:50Z",
                        }
                    }
                }
            ]
        },
    }
    status = job_status([job, pod])
    assert (status.state, status.exit_code, status.reason) == (
        JobState.OUT_OF_MEMORY,
        137,
        "kubernetes BackoffLimitExceeded exit 137 (OOMKilled)",
    )
    assert (status.start - status.created, status.end - status.start) == (20, 30)
    job["status"]["conditions"][0]["reason"] = "DeadlineExceeded"
    assert job_status([job, pod]).state == JobState.TIMEOUT
    running = {
        "kind": "Pod",
        "status": {"containerStatuses": [{"state": {"running": {"startedAt": "2026-01-01T10:00:20Z"}}}]},
    }
    assert job_status([{**job, "status": {}}, running]).state == JobState.RUNNING
    assert job_status([{**job, "status": {}}]).state == JobState.PENDING
    assert job_status([]) is None


def test_kubernetes_status_of_a_rayjob():
    rayjob = {
        "metadata": {"creationTimestamp": "2026-01-01T10:00:00Z"},
        "status": {
            "jobStatus": "FAILED",
            "jobDeploymentStatus": "Complete",
            "message": "exit 3\nmore",
            "startTime": "2026-01-01T10:02:00Z",
            "endTime": "2026-01-01T10:05:00Z",
        },
    }
    status = rayjob_status(rayjob)
    assert (status.state, status.reason, status.end - status.start) == (JobState.FAILED, "rayjob FAILED: exit 3", 180)
    assert rayjob_status({"metadata": {}, "status": {"jobDeploymentStatus": "Initializing"}}).state == JobState.PENDING
    failed = {"metadata": {}, "status": {"jobDeploymentStatus": "Failed"}}
    assert rayjob_status(failed).state == JobState.FAILED


def test_every_launcher_shows_what_it_submits_without_submitting(tmp_path: Path, monkeypatch):
    from nrl_autoresearch.launchers.local import LocalLauncher
    from nrl_autoresearch.launchers.ray import RayLauncher

    spec = _spec(tmp_path)
    assert LocalLauncher().rendered(spec) is None
    assert SlurmLauncher().rendered(spec) == SlurmLauncher().batch_script(spec)
    manifest = yaml.safe_load(KubernetesLauncher(image="busybox:1.36", secret="tokens").rendered(spec))
    assert manifest["kind"] == "Job" and not spec.run_dir.exists()
    monkeypatch.setenv("WANDB_API_KEY", "s3cret-value")
    secret = _spec(tmp_path, [*NEMO_RL_ARGV, "++logger.wandb.key=${WANDB_API_KEY}"])
    shown = json.loads(RayLauncher(address="http://head:8265").rendered(secret))
    assert shown["runtime_env"]["working_dir"] == str(secret.cwd) and "s3cret-value" not in json.dumps(shown)
