"""End-to-end checks of the demo template: the real entrypoint, run in a copy of the template."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import nrl_autoresearch.demo

TEMPLATE = Path(nrl_autoresearch.demo.__file__).parent / "template"
RECIPE = "examples/configs/recipes/llm/grpo-toy-digitsum-1n0g.yaml"
LOG_DIR = "logs/grpo-toy-digitsum-1n0g"
CKPT_DIR = "results/grpo-toy-digitsum-1n0g"
NO_CKPT = "checkpointing.enabled=false"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A fresh copy of the template, as the tool would scaffold it."""
    dest = tmp_path / "repo"
    shutil.copytree(TEMPLATE, dest, ignore=shutil.ignore_patterns("__pycache__", "logs", "results"))
    return dest


def run(repo: Path, *overrides: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "examples/run_grpo.py", "--config", RECIPE, *overrides],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (proc.returncode == 0) == ok, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc


def accuracies(stdout: str) -> list[float]:
    return [float(x) for x in re.findall(r"• Accuracy: (\S+)", stdout)]


def losses(stdout: str) -> list[str]:
    return re.findall(r"• Loss: (\S+)", stdout)


def load_module(repo: Path, name: str) -> ModuleType:
    """Import one of the copied template's example modules in-process (for fast unit checks)."""
    spec = importlib.util.spec_from_file_location(f"toy_{name}", repo / "examples" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_console_logs_and_checkpoints(repo: Path) -> None:
    out = run(repo, "grpo.max_num_steps=10", "checkpointing.save_period=5").stdout
    assert f"📊 Using log directory: {LOG_DIR}/exp_001" in out
    assert "\n========================= Step 1/10 =========================\n" in out
    assert "\n========================= Step 10/10 =========================\n" in out
    assert re.search(
        r"▶ Starting validation at step 5\.\.\.\n(?:  • .*\n)*📊 Validation Results:\n    • Accuracy: \d\.\d{4}\n"
        r"    • Average response length: \d+\.\d tokens\n    • Samples processed: 1024\n"
        r"  ⏱️  Validation Timing:\n    • Total validation time: \d+\.\d\ds\n",
        out,
    )
    assert re.search(
        r"📊 Training Results:\n  • Loss: -?\d+\.\d{4}\n  • Generation KL Error: -?\d+\.\d{4}\n  • Avg Reward: \d\.\d{4}\n"
        r"  • Mean Generation Length: \d\.\d{4}\n⏱️  Timing:\n  • Total step time: \d+\.\d\ds\n",
        out,
    )
    assert out.rstrip().endswith("Max number of steps has been reached, stopping training early")

    exp = repo / LOG_DIR / "exp_001"
    rows = [json.loads(line) for line in (exp / "val_data_step10.jsonl").read_text().splitlines()]
    assert len(rows) == 1024 and set(rows[0]) == {"content", "rewards", "idx"}
    assert (exp / "val_data_step5.jsonl").exists()
    info = json.loads((repo / CKPT_DIR / "step_10" / "training_info.json").read_text())
    assert info["step"] == 10 and round(info["val:accuracy"], 4) == accuracies(out)[-1] == round(info["val_reward"], 4)
    assert {p.name for p in (repo / CKPT_DIR / "step_10").iterdir()} >= {
        "training_info.json",
        "config.yaml",
        "policy.npz",
    }

    second = run(repo, "grpo.max_num_steps=2", NO_CKPT).stdout
    assert f"📊 Using log directory: {LOG_DIR}/exp_002" in second


def test_tensorboard_matches_console(repo: Path) -> None:
    from tensorboard.backend.event_processing import event_accumulator

    out = run(repo, "grpo.max_num_steps=10", "grpo.val_at_start=true", NO_CKPT).stdout
    (event_file,) = (repo / LOG_DIR / "exp_001" / "tensorboard").glob("events.out.tfevents.*")
    acc = event_accumulator.EventAccumulator(str(event_file), size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert tags >= {"train/loss", "train/reward", "train/grad_norm", "train/lr", "validation/accuracy"}
    assert tags >= {"validation/avg_length", "timing/train/total_step_time"}
    val = acc.Scalars("validation/accuracy")
    assert [e.step for e in val] == [0, 5, 10]
    assert [round(e.value, 4) for e in val] == accuracies(out)
    assert [e.step for e in acc.Scalars("train/loss")] == list(range(1, 11))  # every record passed its CRC


def test_same_seed_same_metrics(repo: Path) -> None:
    first = run(repo, "grpo.max_num_steps=10", NO_CKPT).stdout
    again = run(repo, "grpo.max_num_steps=10", NO_CKPT).stdout
    other = run(repo, "grpo.max_num_steps=10", "grpo.seed=7", NO_CKPT).stdout
    assert accuracies(first) == accuracies(again) and losses(first) == losses(again)
    assert losses(first) != losses(other)
    assert abs(accuracies(first)[-1] - accuracies(other)[-1]) < 0.1


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("grpo.not_a_key=1", "Could not override 'grpo.not_a_key'.\nTo append to your config use +grpo.not_a_key=1"),
        ("policy.generation.temperature=0", "temperature must be > 0"),
    ],
)
def test_bad_overrides_fail(repo: Path, override: str, message: str) -> None:
    proc = run(repo, override, ok=False)
    assert message in proc.stderr
    assert not (repo / LOG_DIR).exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("+grpo.seed=1", "Could not append to config. An item is already at 'grpo.seed'."),
        ("~grpo.nope", "Could not delete from config. 'grpo.nope' does not exist."),
        ("grpo.seed", "Error parsing override 'grpo.seed'"),
        ("grpo.seed.x=1", "Could not override 'grpo.seed.x'."),
    ],
)
def test_override_grammar_errors(repo: Path, override: str, message: str) -> None:
    config = load_module(repo, "toy_config")
    with pytest.raises(config.ConfigError, match=re.escape(message)):
        config.apply_overrides({"grpo": {"seed": 42}}, [override])


def test_overrides_apply(repo: Path) -> None:
    out = run(
        repo, "grpo.max_num_steps=3", "grpo.val_period=0", "++grpo.val_at_end=true", "+data.note=hi", NO_CKPT
    ).stdout
    assert "Step 3/3" in out and "Step 4/" not in out
    assert out.count("▶ Starting validation") == 1 and "validation at step 3" in out


def test_override_values_parse_like_hydra(repo: Path) -> None:
    config = load_module(repo, "toy_config")
    assert config.parse_value("1e-3") == 0.001
    assert config.parse_value("[0.9,0.95]") == [0.9, 0.95]
    assert config.parse_value("null") is None and config.parse_value("True") is True
    assert config.parse_value("00:00:00:01") == "00:00:00:01"
    assert config.parse_value("'42'") == "42"
    base = {"a": {"b": 1, "c": 2}}
    assert config.apply_overrides(base, ["a.b=x", "++a.d=3", "+e.f=4", "~a.c"]) == {
        "a": {"b": "x", "d": 3},
        "e": {"f": 4},
    }


def test_event_file_checksum_is_crc32c(repo: Path) -> None:
    assert load_module(repo, "toy_tensorboard").crc32c(b"123456789") == 0xE3069283


def test_good_lr_beats_tiny_lr(repo: Path) -> None:
    common = ("grpo.max_num_steps=20", "grpo.val_period=20", NO_CKPT)
    good = accuracies(run(repo, "policy.optimizer.kwargs.lr=1e-2", *common).stdout)[-1]
    tiny = accuracies(run(repo, "policy.optimizer.kwargs.lr=1e-4", *common).stdout)[-1]
    assert good > tiny + 0.15


def test_huge_lr_diverges_to_nan(repo: Path) -> None:
    out = run(repo, "policy.optimizer.kwargs.lr=1.0", "grpo.max_num_steps=3", NO_CKPT).stdout
    assert "• Loss: nan" in out


def test_timeout_saves_and_stops(repo: Path) -> None:
    out = run(
        repo,
        "checkpointing.checkpoint_must_save_by=00:00:00:01",
        "grpo.max_num_steps=100000",
        "grpo.max_num_epochs=100000",
        "checkpointing.save_period=100000",
    ).stdout
    assert out.rstrip().endswith("Timeout has been reached, stopping training early")
    (saved,) = (repo / CKPT_DIR).iterdir()
    assert saved.name == f"step_{len(losses(out))}"


def test_resume_continues_from_latest_checkpoint(repo: Path) -> None:
    run(repo, "grpo.max_num_steps=4", "checkpointing.save_period=2", "grpo.val_period=2")
    resumed = run(repo, "grpo.max_num_steps=6", "checkpointing.save_period=2", "grpo.val_period=2").stdout
    assert f"Loading checkpoint from {CKPT_DIR}/step_4" in resumed
    assert "Step 5/6" in resumed and "Step 4/6" not in resumed
    straight = run(
        repo, "grpo.max_num_steps=6", "grpo.val_period=2", "checkpointing.checkpoint_dir=results/other"
    ).stdout
    assert losses(straight)[4:] == losses(resumed) and accuracies(straight)[-1] == accuracies(resumed)[-1]
