"""Reading a finished run for symptoms: a real log and real TensorBoard event files in a run folder, each symptom
naming the exploration area the catalog tries first; crash causes in words with what to do."""

from __future__ import annotations

from pathlib import Path

import pytest
from tensorboardX import SummaryWriter

from nrl_autoresearch.core.metric import Census, RunOutputs
from nrl_autoresearch.runner.triage import diagnose, error_line, likely_cause, loss_explodes, trivial_crash


def run_folder(tmp_path: Path, log: str = "", scalars: dict[str, list[float]] | None = None) -> RunOutputs:
    """A run's folder as a run leaves it: its run.log and, when given, one event file of scalars per step."""
    run_dir = tmp_path / "run"
    run_dir.mkdir(parents=True)
    (run_dir / "run.log").write_text(log)
    if scalars:
        writer = SummaryWriter(str(run_dir / "tensorboard"))
        for tag, values in scalars.items():
            for step, value in enumerate(values):
                writer.add_scalar(tag, value, step)
        writer.close()
    return RunOutputs(run_dir / "run.log", run_dir, run_dir)


def names(run: RunOutputs, **kwargs) -> list[str]:
    return [s.name for s in diagnose(run, **kwargs)]


def test_a_healthy_run_shows_no_symptom(tmp_path: Path):
    run = run_folder(
        tmp_path,
        "• Loss: 0.41\n• Mean Generation Length: 120.0\n",
        {"train/loss": [0.9, 0.7, 0.6, 0.5], "train/reward": [0.2, 0.4, 0.5], "validation/accuracy": [0.3, 0.45]},
    )
    assert diagnose(run, max_new_tokens=512) == []


def test_nan_loss_in_the_log_and_out_of_memory_point_to_batch_sequence_precision(tmp_path: Path):
    run = run_folder(tmp_path, "step 3\n• Loss: nan\ntorch.OutOfMemoryError: CUDA out of memory. Tried to allocate\n")
    found = diagnose(run)
    assert [s.name for s in found] == ["stability", "memory"]
    assert {s.area for s in found} == {"batch/sequence/precision"} and "learning rate" in found[0].detail


def test_a_loss_grown_a_hundredfold_in_tensorboard_is_exploding(tmp_path: Path):
    run = run_folder(tmp_path, scalars={"train/loss": [1.0, 1.1, 0.9, 1.0, 250.0]})
    assert loss_explodes(run) and names(run) == ["stability"]
    steady = run_folder(tmp_path / "steady", scalars={"train/loss": [1.0, 1.1, 0.9, 1.0, 50.0]})
    assert not loss_explodes(steady)


def test_idle_gpus_weak_validation_flat_rewards_and_truncation_are_each_named(tmp_path: Path):
    log = "".join(f"• Mean Generation Length: {n}\n" for n in (500.0, 510.0, 505.0))
    run = run_folder(
        tmp_path,
        log,
        {"ray/node.0.gpu.0.util": [10, 20, 15], "train/reward": [0.8, 0.8, 0.8], "validation/accuracy": [0.4]},
    )
    found = {s.name: s for s in diagnose(run, max_new_tokens=512)}
    assert list(found) == ["throughput", "generalisation", "reward", "truncation"]
    assert "GPU utilisation 15%" in found["throughput"].detail
    assert "train reward 0.800 but validation 0.400" in found["generalisation"].detail
    assert names(run, max_new_tokens=2048) == ["throughput", "generalisation", "reward"]  # far from the limit


def test_only_what_this_run_wrote_is_read(tmp_path: Path):
    """An event file left by an earlier run in the same folder is in the census: its NaN loss is not this run's."""
    earlier = run_folder(tmp_path, scalars={"train/loss": [float("nan")] * 4})
    later = RunOutputs(earlier.log_path, earlier.run_dir, earlier.workdir, Census.take(earlier.run_dir))
    assert names(earlier) == ["stability"] and names(later) == []


@pytest.mark.parametrize(
    "tail, trivial",
    [
        ("  File \"train.py\", line 3\n    x = (\nSyntaxError: '(' was never closed", True),
        ("ModuleNotFoundError: No module named 'trl'", True),
        ("Could not override 'policy.lr'. Key 'lr' is not in struct", True),
        ("torch.OutOfMemoryError: CUDA out of memory", False),
        ("loss diverged at step 40", False),
    ],
)
def test_a_small_mistake_in_the_change_is_a_trivial_crash_and_a_poor_idea_is_not(tail: str, trivial: bool):
    assert trivial_crash(tail) is trivial


def test_the_last_error_line_of_a_log_is_quoted_shortened():
    tail = ["Traceback (most recent call last):", "ValueError: first", "  during handling", "KeyError: 'lr'", "bye"]
    assert error_line(tail) == "KeyError: 'lr'"
    assert error_line(["ok", "fine"]) is None
    assert len(error_line(["RuntimeError: " + "x" * 500])) == 200


@pytest.mark.parametrize(
    "reason, tail, cause, action",
    [
        ("crash: timeout: exceeded the 3s limit", [], "wall-clock limit", "--per-experiment"),
        ("crash: exit code 1", ["torch.OutOfMemoryError: CUDA out of memory"], "out of memory", "batch size"),
        ("crash: the metric is not a finite number", [], "not a finite number", "NaN means it diverged"),
        (
            "crash: exit code 1",
            ["ValueError: could not convert 'abc'"],
            "the command failed: ValueError",
            "fix the command",
        ),
        ("crash: killed by SIGTERM", ["bye"], "ended with killed by SIGTERM", "by hand"),
        ("crash: no val_score found", [], "printed nothing that text reads", "--metric-source (text)"),
    ],
)
def test_a_crash_gets_a_probable_cause_and_what_to_do(reason: str, tail: list[str], cause: str, action: str):
    said, todo = likely_cause(reason, tail, "text")
    assert cause in said and action in todo
