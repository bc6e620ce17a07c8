"""Where to look for improvements in a NeMo-RL recipe: exploration areas in priority order, each with the exact
dotted keys NeMo-RL reads, how to move them, how risky a move is, and the rules that keep a change runnable.

`moves` are suggestions for a proposer: `x2` and `/2` scale the current value, anything else is a YAML value to
set as is (`0.28`, `true`, `null`, `[0.9, 0.95]`). `requires` lists keys that must hold these values for the knob's
change to run (the proposer sets them in the same change), `excludes` keys that must stay false with it (the knob
is skipped where one is on), `related` keys to revisit with it, and `when` the
recipe settings under which the knob is the live one (for example which backend's learning rate is read).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nrl_autoresearch.recipes.nemo_config import get_dotted, has_dotted
from nrl_autoresearch.recipes.yamledit import (
    DTENSOR_LR,
    MEGATRON_LR,
    MEGATRON_MIN_LR,
    SEQUENCE_FOLLOWERS,
    SEQUENCE_LENGTH,
)

AREAS = (
    "correctness/backend",
    "prompt and rollout format",
    "batch/sequence/precision",
    "optimizer and scheduler",
    "reward shaping/clipping/scaling",
    "dataset mix and validation",
    "synchronous vs asynchronous",
)
KINDS = ("continuous", "log", "int", "choice", "bool")
RISKS = ("low", "medium", "high")

DTENSOR = (("policy.dtensor_cfg.enabled", True),)
MEGATRON = (("policy.megatron_cfg.enabled", True),)
ASYNC = (("grpo.async_grpo.enabled", True),)
# docs/guides/async-grpo.md and run_grpo.py: what asynchronous GRPO needs, and what it refuses to run with.
ASYNC_REQUIRES = (
    ("policy.generation.vllm_cfg.async_engine", True),
    ("loss_fn.use_importance_sampling_correction", True),
    ("policy.generation.colocated.enabled", False),
)
ASYNC_EXCLUDES = (
    "grpo.use_dynamic_sampling",
    "grpo.reward_scaling.enabled",
    "grpo.reward_shaping.enabled",
    "data.use_multiple_dataloader",
)
# ClippedPGLossFn: truncated importance sampling needs the correction on and a positive ratio (2 in NeMo-RL's recipes).
TIS_REQUIRES = (
    ("loss_fn.use_importance_sampling_correction", True),
    ("loss_fn.truncated_importance_sampling_ratio", 2.0),
)
LEARNING_RATES = (DTENSOR_LR, MEGATRON_LR)
GRPO_BATCH = ("grpo.num_prompts_per_step", "grpo.num_generations_per_prompt", "policy.train_global_batch_size")


@dataclass(frozen=True)
class Knob:
    """One key worth moving, as the module docstring describes."""

    key: str
    area: str
    kind: str
    moves: tuple[str, ...]
    risk: str
    requires: tuple[tuple[str, Any], ...] = ()
    excludes: tuple[str, ...] = ()
    related: tuple[str, ...] = ()
    when: tuple[tuple[str, Any], ...] = ()
    note: str = ""

    def companions(self, resolved: Mapping[str, Any]) -> tuple[tuple[str, Any], ...] | None:
        """The `requires` settings the recipe does not hold yet, to set in the same change; None (skip the knob)
        when one of its `excludes` is on or a required key is absent."""
        if any(get_dotted(resolved, key, None) for key in self.excludes):
            return None
        if not all(has_dotted(resolved, key) for key, _ in self.requires):
            return None
        return tuple((key, value) for key, value in self.requires if get_dotted(resolved, key) != value)


def _area(area: str, *knobs: tuple) -> tuple[Knob, ...]:
    return tuple(Knob(key, area, kind, moves, risk, **extra) for key, kind, moves, risk, extra in knobs)


KNOBS: tuple[Knob, ...] = (
    *_area(
        "correctness/backend",
        (
            "loss_fn.use_importance_sampling_correction",
            "bool",
            ("true",),
            "medium",
            dict(note="corrects the trainer/vLLM logprob mismatch; watch train/token_mult_prob_error"),
        ),
        (
            "loss_fn.truncated_importance_sampling_type",
            "choice",
            ("tis",),
            "medium",
            dict(
                requires=TIS_REQUIRES,
                related=("loss_fn.truncated_importance_sampling_ratio",),
                note="NeMo-RL's loss asserts importance-sampling correction and a positive ratio with it",
            ),
        ),
        ("loss_fn.truncated_importance_sampling_ratio", "continuous", ("2", "5"), "medium", {}),
        (
            "policy.generation.vllm_cfg.enforce_eager",
            "bool",
            ("true",),
            "low",
            dict(note="slower rollouts without CUDA graphs; a check for vLLM numerics (NeMo-RL issue 998)"),
        ),
        (
            "policy.megatron_cfg.enabled",
            "bool",
            ("true",),
            "high",
            dict(
                requires=(("policy.dtensor_cfg.enabled", False),),
                related=LEARNING_RATES,
                when=DTENSOR,
                note=f"switches the training backend; MoE models need Megatron; its LR is {MEGATRON_LR}",
            ),
        ),
        ("policy.generation.backend", "choice", ("vllm", "megatron"), "high", {}),
    ),
    *_area(
        "prompt and rollout format",
        (
            "data.default.prompt_file",
            "choice",
            ("examples/prompts/cot.txt", "examples/prompts/math.txt", "null"),
            "medium",
            dict(note="Python .format template with one {} for the problem; repo-relative path"),
        ),
        ("data.default.system_prompt_file", "choice", ("null",), "medium", dict(note="repo-relative text file")),
        (
            "policy.tokenizer.chat_template_kwargs",
            "choice",
            ("null", "{enable_thinking: true}", "{enable_thinking: false}"),
            "medium",
            {},
        ),
        (
            "policy.generation.temperature",
            "continuous",
            ("0.8", "1.2"),
            "medium",
            dict(related=("policy.generation.val_temperature",)),
        ),
        ("policy.generation.top_p", "continuous", ("0.95", "0.9"), "medium", {}),
        ("policy.generation.top_k", "int", ("50", "null"), "medium", {}),
        ("grpo.max_rollout_turns", "int", ("x2",), "medium", dict(note="only multi-turn environments use > 1")),
    ),
    *_area(
        "batch/sequence/precision",
        (
            "grpo.num_prompts_per_step",
            "int",
            ("x2", "/2"),
            "medium",
            dict(related=GRPO_BATCH, note="train_global_batch_size = prompts x generations gives one update per step"),
        ),
        ("grpo.num_generations_per_prompt", "int", ("x2", "/2"), "medium", dict(related=GRPO_BATCH)),
        ("policy.train_global_batch_size", "int", ("x2", "/2"), "medium", dict(related=GRPO_BATCH)),
        ("policy.train_micro_batch_size", "int", ("x2", "/2"), "low", dict(note="memory and speed only")),
        (
            SEQUENCE_LENGTH,
            "int",
            ("x2", "/2"),
            "medium",
            dict(related=SEQUENCE_FOLLOWERS, note="set_keys moves hard-coded lengths that tracked it"),
        ),
        (
            "policy.sequence_packing.enabled",
            "bool",
            ("true", "false"),
            "low",
            dict(excludes=("policy.dynamic_batching.enabled",)),
        ),
        (
            "policy.dynamic_batching.enabled",
            "bool",
            ("true", "false"),
            "low",
            dict(excludes=("policy.sequence_packing.enabled",)),
        ),
        ("policy.precision", "choice", ("bfloat16", "float32"), "high", {}),
        ("policy.generation.vllm_cfg.precision", "choice", ("fp8",), "medium", dict(note="FP8 rollouts")),
        ("policy.generation.vllm_cfg.kv_cache_dtype", "choice", ("auto", "fp8"), "medium", {}),
        ("policy.generation.vllm_cfg.gpu_memory_utilization", "continuous", ("0.5", "0.7"), "low", {}),
    ),
    *_area(
        "optimizer and scheduler",
        (
            DTENSOR_LR,
            "log",
            ("x2", "/2"),
            "medium",
            dict(when=DTENSOR, related=LEARNING_RATES, note="set_keys keeps both LRs equal when Megatron is enabled"),
        ),
        (
            MEGATRON_LR,
            "log",
            ("x2", "/2"),
            "medium",
            dict(
                when=MEGATRON,
                related=(*LEARNING_RATES, MEGATRON_MIN_LR),
                note="set_keys keeps both LRs equal and scales a literal min_lr",
            ),
        ),
        (
            "policy.scheduler.0.kwargs.total_iters",
            "int",
            ("x2", "/2"),
            "low",
            dict(
                when=(*DTENSOR, ("policy.scheduler.0.name", "torch.optim.lr_scheduler.LinearLR")),
                related=("policy.scheduler.2.milestones",),
                note="warm-up length; keep the milestone equal",
            ),
        ),
        ("policy.megatron_cfg.scheduler.lr_warmup_iters", "int", ("x2", "/2"), "low", dict(when=MEGATRON)),
        (
            "policy.megatron_cfg.scheduler.lr_decay_style",
            "choice",
            ("constant", "cosine", "linear"),
            "medium",
            dict(when=MEGATRON, related=("policy.megatron_cfg.scheduler.lr_decay_iters",)),
        ),
        ("policy.optimizer.kwargs.weight_decay", "choice", ("0.0", "0.01", "0.1"), "low", dict(when=DTENSOR)),
        ("policy.megatron_cfg.optimizer.weight_decay", "choice", ("0.0", "0.01", "0.1"), "low", dict(when=MEGATRON)),
        ("policy.optimizer.kwargs.betas", "choice", ("[0.9, 0.999]", "[0.9, 0.95]"), "low", dict(when=DTENSOR)),
        ("policy.megatron_cfg.optimizer.adam_beta2", "choice", ("0.999", "0.95"), "low", dict(when=MEGATRON)),
        (
            "policy.max_grad_norm",
            "log",
            ("x2", "/2"),
            "low",
            dict(note="Megatron's clip_grad follows it by interpolation in the base configs"),
        ),
    ),
    *_area(
        "reward shaping/clipping/scaling",
        ("loss_fn.ratio_clip_max", "continuous", ("0.28",), "medium", dict(note="clip-higher, as in DAPO")),
        ("loss_fn.ratio_clip_min", "continuous", ("0.1", "0.3"), "medium", {}),
        ("loss_fn.ratio_clip_c", "continuous", ("10", "null"), "medium", dict(note="dual clip, as in DAPO")),
        ("loss_fn.reference_policy_kl_penalty", "log", ("x2", "/2", "0"), "medium", {}),
        ("loss_fn.reference_policy_kl_type", "choice", ("k1", "k2", "k3"), "low", {}),
        ("loss_fn.token_level_loss", "bool", ("true", "false"), "medium", {}),
        (
            "loss_fn.sequence_level_importance_ratios",
            "bool",
            ("true",),
            "high",
            dict(
                requires=(("loss_fn.token_level_loss", False),),
                note="GSPO; NeMo-RL's loss refuses it with token-level loss",
            ),
        ),
        ("loss_fn.use_on_policy_kl_approximation", "bool", ("true",), "low", {}),
        ("grpo.normalize_rewards", "bool", ("true", "false"), "medium", {}),
        ("grpo.use_leave_one_out_baseline", "bool", ("true", "false"), "low", {}),
        ("grpo.adv_estimator.name", "choice", ("grpo", "reinforce_plus_plus"), "high", {}),
        (
            "grpo.reward_shaping.enabled",
            "bool",
            ("true",),
            "medium",
            dict(
                related=("grpo.reward_shaping.overlong_buffer_length", "grpo.reward_shaping.max_response_length"),
                note="overlong penalty (DAPO); not with asynchronous GRPO",
            ),
        ),
        (
            "grpo.reward_shaping.overlong_buffer_length",
            "int",
            ("x2", "/2"),
            "low",
            dict(when=(("grpo.reward_shaping.enabled", True),)),
        ),
        (
            "grpo.reward_scaling.enabled",
            "bool",
            ("true",),
            "medium",
            dict(
                related=("grpo.reward_scaling.target_min", "grpo.reward_scaling.target_max"),
                note="not with asynchronous GRPO",
            ),
        ),
        ("grpo.overlong_filtering", "bool", ("true",), "medium", {}),
        (
            "grpo.use_dynamic_sampling",
            "bool",
            ("true",),
            "high",
            dict(
                related=("grpo.batch_multiplier", "grpo.dynamic_sampling_max_gen_batches"),
                note="DAPO dynamic sampling; not with asynchronous GRPO",
            ),
        ),
        ("dpo.reference_policy_kl_penalty", "log", ("x2", "/2"), "medium", {}),
        ("dpo.sft_loss_weight", "choice", ("0", "0.1", "1"), "medium", {}),
        ("dpo.preference_average_log_probs", "bool", ("true",), "low", {}),
        (
            "loss_fn.kl_type",
            "choice",
            ("forward", "reverse", "mixed"),
            "medium",
            dict(related=("loss_fn.mixed_kl_weight",), note="distillation loss"),
        ),
        ("distillation.topk_logits_k", "int", ("x2", "/2"), "low", {}),
    ),
    *_area(
        "dataset mix and validation",
        (
            "data.use_multiple_dataloader",
            "bool",
            ("true",),
            "high",
            dict(
                related=("data.train", "data.num_prompts_per_dataloader"),
                note="needs data.train as a list of datasets; not with asynchronous GRPO",
            ),
        ),
        ("data.train.split_validation_size", "continuous", ("0.02", "0.1"), "low", {}),
        ("grpo.max_val_samples", "int", ("x2",), "low", dict(note="more prompts, less noisy validation metric")),
        ("grpo.val_num_generations_per_prompt", "int", ("4",), "low", dict(note="k > 1 also reports pass_k")),
        ("grpo.val_period", "int", ("x2", "/2"), "low", {}),
        ("sft.val_batches", "int", ("x2",), "low", {}),
        ("dpo.val_batches", "int", ("x2",), "low", {}),
    ),
    *_area(
        "synchronous vs asynchronous",
        (
            "grpo.async_grpo.enabled",
            "bool",
            ("true",),
            "high",
            dict(
                requires=ASYNC_REQUIRES,
                excludes=ASYNC_EXCLUDES,
                related=(
                    "policy.generation.colocated.resources.gpus_per_node",
                    "policy.generation.colocated.resources.num_nodes",
                ),
                note="non-colocated vLLM needs dedicated generation GPUs; Megatron generation can run colocated",
            ),
        ),
        ("grpo.async_grpo.max_trajectory_age_steps", "int", ("2", "4"), "medium", dict(when=ASYNC)),
        ("grpo.async_grpo.in_flight_weight_updates", "bool", ("true",), "medium", dict(when=ASYNC)),
        (
            "policy.generation.colocated.enabled",
            "bool",
            ("false",),
            "high",
            dict(
                related=(
                    "policy.generation.colocated.resources.gpus_per_node",
                    "policy.generation.colocated.resources.num_nodes",
                )
            ),
        ),
    ),
)

_BY_KEY = {knob.key: knob for knob in KNOBS}


def knob(key: str) -> Knob | None:
    return _BY_KEY.get(key)


def completed(resolved: Mapping[str, Any], sets: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    """A change (parsed values) with the companions its catalog knobs require where they are turned on, or why
    it cannot be made: a knob turned on while one of its `excludes` is on, or a companion the change sets otherwise."""
    added: dict[str, Any] = {}
    for key, value in sets.items():
        k = knob(key)
        if k is None or not value:  # requires and excludes apply to turning a knob on (or to a non-null choice)
            continue
        on = [x for x in k.excludes if (sets[x] if x in sets else get_dotted(resolved, x, None))]
        if on:
            return {}, f"{key} cannot be on with {', '.join(on)} on"
        for needed, holds in k.requires:
            if needed in sets and sets[needed] != holds:
                return {}, f"{key} needs {needed}={holds!r}, the change sets {sets[needed]!r}"
            if needed not in sets and get_dotted(resolved, needed, None) != holds:
                added[needed] = holds
    return added, None


def knobs_for(resolved: Mapping[str, Any]) -> list[Knob]:
    """The knobs whose key the resolved recipe has and whose `when` settings hold, in priority order."""
    return [
        k
        for k in KNOBS
        if has_dotted(resolved, k.key) and all(get_dotted(resolved, key) == value for key, value in k.when)
    ]
