"""NeMo-RL-style checkpoints: `<checkpoint_dir>/step_N/` with training_info.json and config.yaml.

Like NeMo-RL, a run silently resumes from the newest `step_N` already in its checkpoint dir.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from typing import Any

import numpy as np
import yaml
from toy_policy import AdamW

_STEP_DIR = re.compile(r"^step_(\d+)$")


def latest_checkpoint(checkpoint_dir: str) -> str | None:
    """Path of the highest-numbered finished `step_N` directory, if any."""
    steps = _steps(checkpoint_dir)
    return os.path.join(checkpoint_dir, f"step_{max(steps)}") if steps else None


def save_checkpoint(
    ckpt_cfg: dict[str, Any],
    step: int,
    weights: np.ndarray,
    optimizer: AdamW,
    config: dict[str, Any],
    val_accuracy: float | None,
) -> str:
    """Write `step_N` atomically (temp dir, then rename), then prune to `keep_top_k`."""
    final = os.path.join(ckpt_cfg["checkpoint_dir"], f"step_{step}")
    tmp = os.path.join(ckpt_cfg["checkpoint_dir"], f"tmp_step_{step}")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    info = {"step": step, "val:accuracy": val_accuracy, "val_reward": val_accuracy}
    with open(os.path.join(tmp, "training_info.json"), "w", encoding="utf-8") as handle:
        json.dump(info, handle, indent=2)
    with open(os.path.join(tmp, "config.yaml"), "w", encoding="utf-8") as handle:
        yaml.safe_dump(config, handle, sort_keys=False)
    np.savez(os.path.join(tmp, "policy.npz"), weights=weights)
    assert optimizer.exp_avg is not None and optimizer.exp_avg_sq is not None, "a checkpoint follows a step"
    np.savez(
        os.path.join(tmp, "optimizer.npz"),
        exp_avg=optimizer.exp_avg,
        exp_avg_sq=optimizer.exp_avg_sq,
        step_count=optimizer.step_count,
    )
    shutil.rmtree(final, ignore_errors=True)
    os.rename(tmp, final)
    _prune(ckpt_cfg)
    return final


def load_checkpoint(path: str, optimizer: AdamW) -> tuple[int, np.ndarray, float | None]:
    """Restore weights and optimizer moments; returns (step, weights, last val accuracy)."""
    with open(os.path.join(path, "training_info.json"), encoding="utf-8") as handle:
        info = json.load(handle)
    weights = np.load(os.path.join(path, "policy.npz"))["weights"]
    state = np.load(os.path.join(path, "optimizer.npz"))
    optimizer.exp_avg, optimizer.exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
    optimizer.step_count = int(state["step_count"])
    return int(info["step"]), weights, info.get("val:accuracy")


def _steps(checkpoint_dir: str) -> list[int]:
    if not os.path.isdir(checkpoint_dir):
        return []
    return [int(m.group(1)) for name in os.listdir(checkpoint_dir) if (m := _STEP_DIR.match(name))]


def _prune(ckpt_cfg: dict[str, Any]) -> None:
    """Keep the `keep_top_k` best checkpoints by `metric_name`; the newest always survives."""
    keep = ckpt_cfg.get("keep_top_k")
    steps = _steps(ckpt_cfg["checkpoint_dir"])
    if keep is None or len(steps) <= keep:
        return
    sign = 1.0 if ckpt_cfg["higher_is_better"] else -1.0
    ranked = sorted(steps, key=lambda s: (_metric(ckpt_cfg, s, sign), s), reverse=True)
    for step in ranked[keep:]:
        if step != max(steps):
            shutil.rmtree(os.path.join(ckpt_cfg["checkpoint_dir"], f"step_{step}"))


def _metric(ckpt_cfg: dict[str, Any], step: int, sign: float) -> float:
    """Signed metric of one checkpoint; missing or NaN ranks last."""
    path = os.path.join(ckpt_cfg["checkpoint_dir"], f"step_{step}", "training_info.json")
    with open(path, encoding="utf-8") as handle:
        value = json.load(handle).get(ckpt_cfg["metric_name"])
    return -np.inf if value is None or np.isnan(value) else sign * value
