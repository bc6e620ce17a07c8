"""NeMo-RL recipes end to end: the authoritative metric read from NeMo-RL's own formats, isolation overrides,
and a campaign on a NeMo-RL-shaped repository launched with `uv run`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from tensorboardX import SummaryWriter

from nrl_autoresearch.core.metric import Census, RunOutputs
from nrl_autoresearch.demo import RECIPE, TEMPLATE
from nrl_autoresearch.metrics import parse_source
from nrl_autoresearch.recipes.nemo_rl import NemoRLRecipe
from tests.helpers import PY, cli, git, ledger_rows, values_read

VENV_BIN = str(Path(PY).parent)


def run_outputs(tmp_path: Path, log: str) -> RunOutputs:
    run_dir = tmp_path / "exp"
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "run.log").write_text(log)
    return RunOutputs(run_dir / "run.log", run_dir, tmp_path / "worktree", Census())  # nothing there before


def grpo_log(
    log_dir: Path,
    accuracies: list[float],
    *,
    tail: str = "Max number of steps has been reached, stopping training early",
) -> str:
    blocks = [f"📊 Using log directory: {log_dir}"]
    for i, acc in enumerate(accuracies, 1):
        blocks.append(f"\n========================= Step {i}/{len(accuracies)} =========================")
        blocks.append("📊 Training Results:\n  • Loss: 0.1234\n  • Avg Reward: 0.5000")
        blocks.append(
            f"▶ Starting validation at step {i}...\n📊 Validation Results:\n    • Accuracy: {acc:.4f}\n"
            "    • Average response length: 12.0 tokens"
        )
    return "\n".join([*blocks, tail, ""])


def test_tensorboard_is_read_from_the_announced_log_dir_with_gpu_memory(tmp_path: Path):
    log_dir = tmp_path / "worktree" / "logs" / "exp_003"
    writer = SummaryWriter(str(log_dir / "tensorboard"))
    for step, acc in enumerate([0.41, 0.47, 0.52], start=1):
        writer.add_scalar("validation/accuracy", acc, step)
    for t, mem in enumerate([10.5, 31.25, 22.0]):
        writer.add_scalar("ray/node.0.gpu.0.mem_gb", mem, t)
        writer.add_scalar("ray/node.0.gpu.1.mem_gb", mem / 2, t)
    writer.close()
    run = run_outputs(tmp_path, grpo_log(Path("logs/exp_003"), [0.41, 0.47, 0.52]))
    source = parse_source("nemo-rl:val:accuracy")
    reading = source.read(run)
    assert reading is not None
    assert [round(p.value, 4) for p in reading.points] == [0.41, 0.47, 0.52]
    assert reading.source.startswith("tensorboard tag validation/accuracy")
    assert source.memory_gb(run) == pytest.approx(31.25)
    assert source.ending(run) == "reached max_num_steps" and source.failure(run) is None


def test_fallbacks_say_which_source_they_used(tmp_path: Path):
    log_dir = tmp_path / "worktree" / "logs" / "exp_001"
    log_dir.mkdir(parents=True)
    for step, rewards in ((5, [1, 0, 0, 1]), (10, [1, 1, 1, 0])):
        (log_dir / f"val_data_step{step}.jsonl").write_text(
            "".join(json.dumps({"content": "x", "rewards": [r], "idx": i}) + "\n" for i, r in enumerate(rewards))
        )
    run = run_outputs(tmp_path, grpo_log(Path("logs/exp_001"), [0.5, 0.75]))
    reading = parse_source("nemo-rl:val:accuracy").read(run)
    assert reading is not None
    assert [p.value for p in reading.points] == [0.5, 0.75] and "val_data_step" in reading.source
    for path in log_dir.iterdir():
        path.unlink()
    reading = parse_source("nemo-rl:val:accuracy").read(run)
    assert reading is not None
    assert [p.value for p in reading.points] == [0.5, 0.75] and "console validation blocks" in reading.source


def test_sft_dpo_console_blocks_and_training_info(tmp_path: Path):
    sft = "📊 Validation Results:\n    • Validation loss: 1.2500\n  ⏱️  Validation Timing:\n"
    assert values_read("nemo-rl:val:val_loss", run_outputs(tmp_path / "a", sft))[0] == 1.25
    dpo = (
        "📊 Validation Results for `default` set:\n    • Validation loss: 0.6500\n    • Validation accuracy: 0.7\n"
        "📊 Validation Results for `other` set:\n    • Validation loss: 0.9\n"
    )
    assert values_read("nemo-rl:val:validation-default_loss", run_outputs(tmp_path / "b", dpo)) == [0.65]
    run = run_outputs(tmp_path / "c", "training without validation output\n")
    step = run.run_dir / "checkpoints" / "step_20"
    step.mkdir(parents=True)
    (step / "training_info.json").write_text(json.dumps({"step": 20, "val:accuracy": 0.61}))
    reading = parse_source("nemo-rl:val:accuracy").read(run)
    assert reading is not None
    assert reading.points[0].value == 0.61 and "training_info.json" in reading.source


@pytest.mark.parametrize(
    "tail, failure, ending",
    [
        ("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB", "CUDA out of memory", None),
        ("📊 Training Results:\n  • Loss: nan\n", "NaN loss (diverged)", None),
        ("Timeout has been reached, stopping training early", None, "stopped by checkpoint_must_save_by (timeout)"),
    ],
)
def test_endings_and_failures_are_recognised(tmp_path: Path, tail, failure, ending):
    run = run_outputs(tmp_path, grpo_log(Path("logs/exp_001"), [0.5], tail=tail))
    source = parse_source("nemo-rl:val:accuracy")
    assert source.failure(run) == failure and source.ending(run) == ending


def test_isolation_overrides_and_the_tighter_time_limit(tmp_path: Path):
    recipe = NemoRLRecipe(RECIPE)
    resolved = {"grpo": {"seed": 1}, "checkpointing": {"checkpoint_must_save_by": "00:00:30:00"}, "logger": {}}
    out = recipe.isolation(resolved, tmp_path / "exp", limit_s=3600)
    assert f"++logger.log_dir={tmp_path / 'exp' / 'logs'}" in out
    assert f"++checkpointing.checkpoint_dir={tmp_path / 'exp' / 'checkpoints'}" in out
    assert {"++logger.tensorboard_enabled=true", "++logger.monitor_gpus=true", "++grpo.val_at_end=true"} <= set(out)
    assert not any("checkpoint_must_save_by" in o for o in out)  # the recipe's own 30 min is tighter: it stays
    out = recipe.isolation(resolved, tmp_path / "exp", limit_s=600)
    assert "++checkpointing.checkpoint_must_save_by=00:00:07:30" in out  # 10 min minus a quarter for setup
    os.environ.pop("WANDB_API_KEY", None)
    assert "++logger.wandb_enabled=false" in out


@pytest.fixture(scope="module")
def nemo_repo(tmp_path_factory) -> Path:
    """The demo project as a NeMo-RL-shaped checkout with a uv project and its environment synced."""
    repo = tmp_path_factory.mktemp("nemo") / "RL"
    shutil.copytree(TEMPLATE, repo)
    (repo / "pyproject.toml").write_text(
        '[project]\nname = "toy-rl"\nversion = "0.1.0"\nrequires-python = ">=3.10"\n'
        'dependencies = ["numpy", "pyyaml"]\n\n[tool.uv]\npackage = false\n'
    )
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}"}
    subprocess.run(["uv", "sync", "--quiet"], cwd=repo, env=env, check=True, timeout=600)
    git(repo.parent, "init", "-q", "-b", "main", str(repo))
    git(repo, "config", "user.email", "r@example.org")
    git(repo, "config", "user.name", "R")
    (repo / ".gitignore").write_text((repo / ".gitignore").read_text() + ".venv/\n")
    files = sorted(str(p.relative_to(repo)) for p in repo.rglob("*") if p.is_file() and ".venv" not in p.parts)
    git(repo, "add", "--", *files)
    git(repo, "commit", "-qm", "NeMo-RL-shaped toy")
    return repo


def test_campaign_with_uv_run_baseline_and_two_experiments(nemo_repo: Path):
    env = {"PATH": f"{VENV_BIN}:{os.environ['PATH']}"}
    init = cli(
        nemo_repo,
        "init",
        "--recipe",
        RECIPE,
        "--max-experiments",
        "3",
        "--campaign",
        "uvrun",
        "--json",
        env=env,
        check=True,
    )
    objective = json.loads(init.stdout)["campaign"]["objective"]
    assert objective == {
        "metric_name": "val:accuracy",
        "source": "nemo-rl:val:accuracy",
        "maximize": True,
        "aggregate": "last",
    }
    cli(nemo_repo, "baseline", env=env, check=True)
    cli(
        nemo_repo,
        "try",
        "lr-up",
        "--set",
        "policy.optimizer.kwargs.lr=1.0e-2",
        "--desc",
        "5x learning rate",
        env=env,
        check=True,
    )
    unknown = cli(nemo_repo, "try", "typo", "--set", "policy.optimizer.kwargs.lrr=1", env=env)
    assert unknown.returncode == 2 and "policy.optimizer.kwargs.lr" in unknown.stderr
    cli(nemo_repo, "try", "kl-up", "--set", "loss_fn.reference_policy_kl_penalty=1.0", env=env, check=True)
    rows = ledger_rows(nemo_repo)
    assert [r["status"] for r in rows] == ["keep", "keep", "discard"]
    assert rows[1]["metric_value"] > rows[0]["metric_value"] + 0.2
    for row in rows:
        assert row["command"].startswith(f"uv run examples/run_grpo.py --config {RECIPE} ++logger.log_dir=")
        assert "++checkpointing.checkpoint_dir=" in row["command"] and "++grpo.val_at_end=true" in row["command"]
        run_dir = nemo_repo / Path(row["log_path"]).parent
        assert list((run_dir / "logs").glob("exp_001/tensorboard/events.out.tfevents.*"))
        assert (run_dir / "checkpoints").is_dir()
    # the recipe edit is the hypothesis: only the recipe changes, the key nested under it, comments kept
    assert git(nemo_repo, "diff", "--name-only", rows[0]["commit"], rows[1]["commit"]).split() == [RECIPE]
    before = git(nemo_repo, "show", f"{rows[0]['commit']}:{RECIPE}")
    after = git(nemo_repo, "show", f"{rows[1]['commit']}:{RECIPE}")
    assert after.startswith(before) and after[len(before) :] == "policy:\n  optimizer:\n    kwargs:\n      lr: 0.01\n"
    assert not list((nemo_repo / "reports").rglob(".venv"))  # worktrees reuse the main checkout's environment


def test_preflight_lists_blocking_problems(nemo_repo: Path, tmp_path: Path):
    env = {"PATH": f"{VENV_BIN}:{os.environ['PATH']}"}
    cli(nemo_repo, "init", "--recipe", RECIPE, "--campaign", "pre", env=env, check=True)
    ok = json.loads(cli(nemo_repo, "preflight", "--campaign", "pre", "--json", env=env).stdout)
    assert ok["ok"] and {c["item"] for c in ok["checks"]} >= {"recipe resolves", "entrypoint exists", "uv is installed"}
    synced = next(c for c in ok["checks"] if c["item"] == "uv environment synced with this checkout")
    assert synced["status"] == "pass"  # uv itself says the environment matches uv.lock
    bad = cli(
        nemo_repo, "init", "--recipe", RECIPE, "--campaign", "pre2", "--entrypoint", "examples/missing.py", env=env
    )
    assert bad.returncode == 2 and "entrypoint exists: examples/missing.py" in bad.stderr


def test_only_the_announced_log_directory_counts(tmp_path: Path):
    for exp, value in (("exp_001", 0.99), ("exp_002", 0.42)):
        writer = SummaryWriter(str(tmp_path / "worktree" / "logs" / exp / "tensorboard"))
        writer.add_scalar("validation/accuracy", value, 1)
        writer.close()
    run = run_outputs(tmp_path, grpo_log(Path("logs/exp_002"), [0.42]))
    reading = parse_source("nemo-rl:val:accuracy").read(run)
    assert reading is not None
    assert [round(p.value, 2) for p in reading.points] == [0.42] and "exp_002" in reading.source
