"""GRPO training loop for the digit-sum task, with NeMo-RL's console, log and checkpoint layout."""

from __future__ import annotations

import glob
import json
import os
import re
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from toy_checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from toy_config import ConfigError
from toy_policy import (
    DTYPES,
    AdamW,
    Batch,
    NumberLinePolicy,
    clip_grad_norm,
    clipped_pg_loss,
    features,
    pretrained_weights,
    sample,
)
from toy_task import make_datasets, num_answers, prompt_text, response_lengths, rewards
from toy_tensorboard import EventWriter

Config = dict[str, Any]


@dataclass
class Run:
    """Everything a training run reads or mutates."""

    config: Config
    train: np.ndarray
    val: np.ndarray
    policy: NumberLinePolicy
    weights: np.ndarray
    ref_weights: np.ndarray
    optimizer: AdamW
    log_dir: str
    writer: EventWriter | None
    step: int = 0
    val_accuracy: float | None = None


def next_experiment_dir(base: str) -> str:
    """`<base>/exp_NNN` with NNN one above the largest existing, created now."""
    names = (os.path.basename(path) for path in glob.glob(os.path.join(base, "exp_*")))
    ids = [int(m.group(1)) for name in names if (m := re.fullmatch(r"exp_(\d+)", name))]
    path = os.path.join(base, f"exp_{max(ids, default=0) + 1:03d}")
    os.makedirs(path, exist_ok=True)
    return path


def parse_deadline(value: str | None) -> float | None:
    """Seconds in a "DD:HH:MM:SS" string (None means no wall-clock limit)."""
    if value is None:
        return None
    parts = str(value).split(":")
    if len(parts) != 4 or not all(part.isdigit() for part in parts):
        raise ConfigError(f"checkpointing.checkpoint_must_save_by must look like DD:HH:MM:SS, got {value!r}")
    days, hours, minutes, seconds = map(int, parts)
    return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)


def check_config(config: Config) -> None:
    """Fail before any work on values the trainer cannot honour."""
    grpo, policy, gen = config["grpo"], config["policy"], config["policy"]["generation"]
    rules = [
        (policy["precision"] in DTYPES, f"policy.precision must be one of {sorted(DTYPES)}"),
        (policy["optimizer"]["name"] == "torch.optim.AdamW", "policy.optimizer.name must be torch.optim.AdamW"),
        (gen["temperature"] > 0, "policy.generation.temperature must be > 0"),
        (0 < gen["top_p"] <= 1, "policy.generation.top_p must be in (0, 1]"),
        (grpo["num_prompts_per_step"] >= 1, "grpo.num_prompts_per_step must be >= 1"),
        (grpo["num_generations_per_prompt"] >= 1, "grpo.num_generations_per_prompt must be >= 1"),
        (policy["train_global_batch_size"] >= 1, "policy.train_global_batch_size must be >= 1"),
        (config["data"]["num_terms"] >= 1, "data.num_terms must be >= 1"),
        (
            not grpo["use_leave_one_out_baseline"] or grpo["num_generations_per_prompt"] >= 2,
            "grpo.use_leave_one_out_baseline needs num_generations_per_prompt >= 2",
        ),
        (
            config["data"]["train_size"] >= grpo["num_prompts_per_step"],
            "data.train_size must be >= grpo.num_prompts_per_step",
        ),
        (config["data"]["dataset_name"] == "toy_digitsum", "data.dataset_name must be toy_digitsum"),
    ]
    for ok, message in rules:
        if not ok:
            raise ConfigError(message)
    parse_deadline(config["checkpointing"]["checkpoint_must_save_by"])


def setup(config: Config) -> Run:
    """Build data, policy, optimizer and logger; resume from the newest checkpoint if one exists."""
    check_config(config)
    _warn_unsupported(config)
    log_dir = next_experiment_dir(config["logger"]["log_dir"])
    print(f"📊 Using log directory: {log_dir}")
    train, val = make_datasets(config["data"])
    dtype = DTYPES[config["policy"]["precision"]]
    weights = pretrained_weights(config["policy"]["model_name"], config["data"]["num_terms"], dtype)
    kwargs = config["policy"]["optimizer"]["kwargs"]
    optimizer = AdamW(float(kwargs["lr"]), float(kwargs["weight_decay"]), tuple(kwargs["betas"]), float(kwargs["eps"]))
    writer = EventWriter(os.path.join(log_dir, "tensorboard")) if config["logger"]["tensorboard_enabled"] else None
    policy = NumberLinePolicy(num_answers(config["data"]["num_terms"]))
    run = Run(config, train, val, policy, weights, weights.copy(), optimizer, log_dir, writer)
    ckpt = config["checkpointing"]
    checkpoint = latest_checkpoint(ckpt["checkpoint_dir"]) if ckpt["enabled"] else None
    if checkpoint is not None:
        print(f"Loading checkpoint from {checkpoint}")
        run.step, loaded, run.val_accuracy = load_checkpoint(checkpoint, optimizer)
        run.weights = loaded.astype(dtype)
    return run


def grpo_train(run: Run) -> None:
    """Train until max steps, epochs or the wall-clock deadline; always close the event file."""
    try:
        _loop(run)
    finally:
        if run.writer is not None:
            run.writer.close()


def _loop(run: Run) -> None:
    """NeMo-RL's loop order: train, validate, checkpoint, report, then the stop checks."""
    grpo, ckpt = run.config["grpo"], run.config["checkpointing"]
    total = min(grpo["max_num_steps"], grpo["max_num_epochs"] * _steps_per_epoch(run))
    deadline = parse_deadline(ckpt["checkpoint_must_save_by"])
    if run.step == 0 and grpo["val_at_start"]:
        validate(run, 0)
    started, step_times = time.perf_counter(), []
    while run.step < total:
        step_start = time.perf_counter()
        print(f"\n{'=' * 25} Step {run.step + 1}/{total} {'=' * 25}")
        metrics = train_step(run)
        run.step += 1
        is_last = run.step >= total
        if (grpo["val_period"] and run.step % grpo["val_period"] == 0) or (is_last and grpo["val_at_end"]):
            validate(run, run.step)
        step_times.append(time.perf_counter() - step_start)
        timed_out = deadline is not None and time.perf_counter() - started + float(np.mean(step_times)) >= deadline
        if ckpt["enabled"] and (is_last or timed_out or run.step % ckpt["save_period"] == 0):
            save_checkpoint(ckpt, run.step, run.weights, run.optimizer, run.config, run.val_accuracy)
        metrics["total_step_time"] = time.perf_counter() - step_start
        _report_train(run, metrics)
        if timed_out:
            print("Timeout has been reached, stopping training early")
            return
        if run.step >= grpo["max_num_steps"]:
            print("Max number of steps has been reached, stopping training early")
            return


def train_step(run: Run) -> dict[str, float]:
    """One GRPO step: sample a group per prompt, score it, then minibatch clipped-PG updates."""
    cfg, grpo = run.config, run.config["grpo"]
    gen, dtype = cfg["policy"]["generation"], DTYPES[cfg["policy"]["precision"]]
    rng = np.random.default_rng([grpo["seed"], 1, run.step])
    digits = np.repeat(run.train[_batch_rows(run)], grpo["num_generations_per_prompt"], axis=0)
    feats = features(digits, dtype)
    answers, gen_logprobs = _generate(run, digits, rng, len(digits))
    lengths, reward = _score(run, digits, answers)
    advantages = _advantages(reward.reshape(grpo["num_prompts_per_step"], -1), grpo).ravel().astype(dtype)
    prev = run.policy.logprobs(run.weights, feats, answers, gen["temperature"])
    ref = run.policy.logprobs(run.ref_weights, feats, answers, gen["temperature"])
    num_updates = max(1, -(-len(answers) // cfg["policy"]["train_global_batch_size"]))
    losses, norms = [], []
    for chunk in np.array_split(np.arange(len(answers)), num_updates):
        share = lengths[chunk] if cfg["loss_fn"]["token_level_loss"] else np.ones(len(chunk))
        batch = Batch(
            feats[chunk],
            answers[chunk],
            advantages[chunk],
            prev[chunk],
            ref[chunk],
            (share / share.sum()).astype(dtype),
        )
        loss, grad = clipped_pg_loss(run.policy, run.weights, batch, cfg["loss_fn"], gen["temperature"])
        grad, norm = clip_grad_norm(grad, cfg["policy"]["max_grad_norm"])
        run.weights = run.optimizer.step(run.weights, grad)
        losses.append(loss)
        norms.append(norm)
    return {
        "loss": float(np.mean(losses)),
        "gen_kl_error": float(np.mean(gen_logprobs - prev)),
        "reward": float(reward.mean()),
        "mean_gen_length": float(lengths.mean()),
        "grad_norm": float(np.mean(norms)),
        "lr": run.optimizer.lr,
    }


def validate(run: Run, step: int) -> None:
    """Sample one answer per held-out prompt at the generation settings; accuracy = exact sums."""
    start = time.perf_counter()
    print(f"▶ Starting validation at step {step}...")
    grpo = run.config["grpo"]
    digits = run.val[: grpo["max_val_samples"]]
    rng = np.random.default_rng([grpo["seed"], 2, step])
    answers, _ = _generate(run, digits, rng, grpo["val_batch_size"])
    lengths, reward = _score(run, digits, answers)
    run.val_accuracy = float(np.mean((answers == digits.sum(axis=1)) & (reward > 0)))
    _write_val_samples(
        run, step, [f"{prompt_text(row)} {answer}" for row, answer in zip(digits, answers, strict=True)], reward
    )
    elapsed = time.perf_counter() - start
    print("📊 Validation Results:")
    print(f"    • Accuracy: {run.val_accuracy:.4f}")
    print(f"    • Average response length: {lengths.mean():.1f} tokens")
    print(f"    • Samples processed: {len(digits)}")
    print("  ⏱️  Validation Timing:")
    print(f"    • Total validation time: {elapsed:.2f}s")
    _log(run, {"validation/accuracy": run.val_accuracy, "validation/avg_length": float(lengths.mean())}, step)
    _log(run, {"timing/validation/total_validation_time": elapsed}, step)


def _warn_unsupported(config: Config) -> None:
    """The toy runs on one CPU and logs to TensorBoard only; say so instead of failing."""
    logger, cluster = config["logger"], config["cluster"]
    unsupported = {
        f"logger.{name}": logger[name]
        for name in ("wandb_enabled", "mlflow_enabled", "swanlab_enabled", "monitor_gpus")
    }
    unsupported |= {
        "cluster.gpus_per_node": cluster["gpus_per_node"] > 0,
        "cluster.num_nodes": cluster["num_nodes"] > 1,
    }
    for key, requested in unsupported.items():
        if requested:
            print(
                f"WARNING: {key} is ignored: the toy project runs on one CPU and logs to TensorBoard only",
                file=sys.stderr,
            )


def _generate(run: Run, digits: np.ndarray, rng: np.random.Generator, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Sample one answer per prompt row in batches; returns answers and generation log-probs."""
    gen = run.config["policy"]["generation"]
    parts = [
        sample(
            run.policy.logits(run.weights, features(chunk, run.weights.dtype)), gen["temperature"], gen["top_p"], rng
        )
        for chunk in np.array_split(digits, max(1, -(-len(digits) // batch_size)))
    ]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _score(run: Run, digits: np.ndarray, answers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Response lengths (cut at the token budget) and rewards (truncated answers score 0)."""
    budget = min(
        run.config["policy"]["generation"]["max_new_tokens"],
        run.config["policy"]["max_total_sequence_length"] - 2 * digits.shape[1],  # prompt: digits, "+"s and "="
    )
    lengths = response_lengths(answers)
    reward = rewards(answers, digits.sum(axis=1), run.config["env"]["toy"]["near_miss_reward"])
    return np.minimum(lengths, max(budget, 0)), np.where(lengths <= budget, reward, 0.0)


def _advantages(reward: np.ndarray, grpo: Config) -> np.ndarray:
    """Group-relative advantages: reward minus group (or leave-one-out) mean, optionally / std."""
    group = reward.shape[1]
    if grpo["use_leave_one_out_baseline"]:
        baseline = (reward.sum(axis=1, keepdims=True) - reward) / (group - 1)
    else:
        baseline = reward.mean(axis=1, keepdims=True)
    advantages = reward - baseline
    if grpo["normalize_rewards"] and group > 1:
        std = reward.std(axis=1, ddof=1, keepdims=True)
        advantages = np.where(std > 0, advantages / np.where(std > 0, std, 1.0), advantages)
    return advantages


def _steps_per_epoch(run: Run) -> int:
    return len(run.train) // run.config["grpo"]["num_prompts_per_step"]


def _batch_rows(run: Run) -> np.ndarray:
    """Prompt rows for the current step: a seeded shuffle per epoch, dropping the remainder."""
    grpo = run.config["grpo"]
    epoch, offset = divmod(run.step, _steps_per_epoch(run))
    order = np.arange(len(run.train))
    if run.config["data"]["shuffle"]:
        order = np.random.default_rng([grpo["seed"], 0, epoch]).permutation(order)
    size = grpo["num_prompts_per_step"]
    return order[offset * size : (offset + 1) * size]


def _write_val_samples(run: Run, step: int, contents: list[str], reward: np.ndarray) -> None:
    with open(os.path.join(run.log_dir, f"val_data_step{step}.jsonl"), "w", encoding="utf-8") as handle:
        for idx, (content, value) in enumerate(zip(contents, reward, strict=True)):
            handle.write(json.dumps({"content": content, "rewards": [float(value)], "idx": idx}) + "\n")
    for content, value in list(zip(contents, reward, strict=True))[: run.config["logger"]["num_val_samples_to_print"]]:
        print(f"  • {content}  (reward {value:.1f})")


def _report_train(run: Run, metrics: dict[str, float]) -> None:
    print("📊 Training Results:")
    print(f"  • Loss: {metrics['loss']:.4f}")
    print(f"  • Generation KL Error: {metrics['gen_kl_error']:.4f}")
    print(f"  • Avg Reward: {metrics['reward']:.4f}")
    print(f"  • Mean Generation Length: {metrics['mean_gen_length']:.4f}")
    print("⏱️  Timing:")
    print(f"  • Total step time: {metrics['total_step_time']:.2f}s")
    timing = {"timing/train/total_step_time": metrics.pop("total_step_time")}
    _log(run, {f"train/{key}": value for key, value in metrics.items()} | timing, run.step)


def _log(run: Run, scalars: dict[str, float], step: int) -> None:
    if run.writer is not None:
        for tag, value in scalars.items():
            run.writer.add_scalar(tag, value, step)
