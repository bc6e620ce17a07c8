"""What NeMo-RL itself refuses, checked on a resolved recipe before a run is proposed or launched.

Each rule restates an assertion or a raise in NeMo-RL's setup code (`nemo_rl/algorithms/loss/loss_functions.py`
`ClippedPGLossFn`, `grpo.py` `setup()` and `async_grpo_train()`, `models/policy/lm_policy.py` `Policy`), with its
message, so a hypothesis that would die in setup is never spent on a GPU. `inert` names changes that would run
but change nothing, because the setting that reads them is off.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from nrl_autoresearch.recipes.nemo_config import get_dotted

Config = Mapping[str, Any]
TIS_TYPES = ("tis", "icepop", "seq-mask-tis")


def problems(cfg: Config) -> list[str]:
    """Every reason NeMo-RL would refuse this configuration at setup, in NeMo-RL's words."""
    return [reason for rule in RULES for reason in rule(cfg)]


def _get(cfg: Config, key: str) -> Any:
    return get_dotted(cfg, key, None)


def _loss(cfg: Config) -> Iterator[str]:
    """ClippedPGLossFn's assertions (GRPO-family recipes only: they are the ones with loss_fn.ratio_clip_min)."""
    if _get(cfg, "loss_fn.ratio_clip_min") is None:
        return
    token_level = bool(_get(cfg, "loss_fn.token_level_loss"))
    seq_ratios = bool(_get(cfg, "loss_fn.sequence_level_importance_ratios"))
    if seq_ratios and token_level:
        yield (
            "sequence-level importance sampling (e.g. GSPO) is mutually exclusive with token-level loss "
            "(loss_fn.sequence_level_importance_ratios with loss_fn.token_level_loss)"
        )
    if _get(cfg, "loss_fn.use_cispo"):
        yield from _cispo(cfg, token_level, seq_ratios)
    yield from _truncated_is(cfg, seq_ratios)


def _cispo(cfg: Config, token_level: bool, seq_ratios: bool) -> Iterator[str]:
    refused = (
        (bool(_get(cfg, "loss_fn.disable_ppo_ratio")), "use_cispo is incompatible with disable_ppo_ratio"),
        (bool(_get(cfg, "loss_fn.force_on_policy_ratio")), "use_cispo is incompatible with force_on_policy_ratio"),
        (seq_ratios, "use_cispo is incompatible with sequence_level_importance_ratios"),
        (_get(cfg, "loss_fn.ratio_clip_c") is not None, "use_cispo is incompatible with dual clipping (ratio_clip_c)"),
        (not token_level, "use_cispo requires token_level_loss=True"),
    )
    yield from (reason for broken, reason in refused if broken)


def _truncated_is(cfg: Config, seq_ratios: bool) -> Iterator[str]:
    kind = _get(cfg, "loss_fn.truncated_importance_sampling_type")
    if kind is None:
        return
    ratio = _get(cfg, "loss_fn.truncated_importance_sampling_ratio")
    low = _get(cfg, "loss_fn.truncated_importance_sampling_ratio_min")
    if not _get(cfg, "loss_fn.use_importance_sampling_correction"):
        yield (
            "truncated importance sampling is only supported when use_importance_sampling_correction is True "
            "(loss_fn.truncated_importance_sampling_type with loss_fn.use_importance_sampling_correction)"
        )
    if kind not in TIS_TYPES:
        yield f"truncated_importance_sampling_type must be 'tis', 'icepop', or 'seq-mask-tis', got {kind}"
    if not isinstance(ratio, (int, float)) or ratio <= 0:
        yield "truncated_importance_sampling_ratio should be positive (loss_fn.truncated_importance_sampling_ratio)"
    elif isinstance(low, (int, float)) and low > ratio:
        yield "truncated_importance_sampling_ratio_min must be <= truncated_importance_sampling_ratio"
    if kind in ("icepop", "seq-mask-tis") and low is None:
        yield (
            "truncated_importance_sampling_ratio_min should be set when truncated_importance_sampling_type "
            "is 'icepop' or 'seq-mask-tis'"
        )
    if kind == "seq-mask-tis" and seq_ratios:
        yield "seq-mask-tis is incompatible with sequence_level_importance_ratios=True"


def _grpo(cfg: Config) -> Iterator[str]:
    """grpo.py setup(): batch multiplier, early stop, force_on_policy_ratio, and one update per step at least."""
    prompts, generations = _get(cfg, "grpo.num_prompts_per_step"), _get(cfg, "grpo.num_generations_per_prompt")
    if not isinstance(prompts, int) or not isinstance(generations, int):
        return
    if not _get(cfg, "grpo.use_dynamic_sampling") and _get(cfg, "grpo.batch_multiplier") not in (None, 1):
        yield "batch_multiplier>1 can only be used if use_dynamic_sampling=True"
    if (
        _get(cfg, "grpo.stop_at_validation_metric") is not None
        and _get(cfg, "grpo.stop_at_validation_threshold") is None
    ):
        yield "grpo.stop_at_validation_threshold must be set when grpo.stop_at_validation_metric is set"
    gbs = _get(cfg, "policy.train_global_batch_size")
    if _get(cfg, "loss_fn.force_on_policy_ratio") and gbs != prompts * generations:
        yield (
            "force_on_policy_ratio requires train_global_batch_size == num_prompts_per_step * "
            "num_generations_per_prompt"
        )
    if isinstance(gbs, int) and prompts * generations < gbs:
        yield (
            f"grpo.num_prompts_per_step x grpo.num_generations_per_prompt = {prompts * generations} samples is "
            f"less than policy.train_global_batch_size {gbs}: no global batch fills, so no update runs"
        )


def _parallelism(cfg: Config) -> Iterator[str]:
    """lm_policy.Policy: one backend, one of packing and dynamic batching, a whole data-parallel size."""
    megatron, dtensor = bool(_get(cfg, "policy.megatron_cfg.enabled")), bool(_get(cfg, "policy.dtensor_cfg.enabled"))
    if _get(cfg, "policy.model_name") is None:
        return
    if megatron and dtensor:
        yield (
            "Configure either Megatron (policy.megatron_cfg.enabled=true) or DTensor "
            "(policy.dtensor_cfg.enabled=true), not both."
        )
    if _get(cfg, "policy.dynamic_batching.enabled") and _get(cfg, "policy.sequence_packing.enabled"):
        yield "Dynamic Batching is exclusive of Sequence Packing (policy.dynamic_batching.enabled, policy.sequence_packing.enabled)"
    dp = data_parallel_size(cfg)
    gbs = _get(cfg, "policy.train_global_batch_size")
    if dp is None or not isinstance(gbs, int):
        return
    if dp == 0:
        yield "World size must be divisible by PP * CP * TP: the data parallel size must be a positive integer"
    elif gbs < dp:
        yield (
            f"policy.train_global_batch_size {gbs} is smaller than the data parallel size {dp}: "
            "a rank's share of a global batch is empty"
        )


def data_parallel_size(cfg: Config) -> int | None:
    """Training GPUs / (TP x CP x PP), 0 when it is not whole; None when the recipe leaves it open."""
    nodes, per_node = _get(cfg, "cluster.num_nodes"), _get(cfg, "cluster.gpus_per_node")
    if not isinstance(nodes, int) or not isinstance(per_node, int) or nodes * per_node <= 0:
        return None  # no GPU declared (a CPU recipe): nothing to divide
    if _get(cfg, "policy.generation.colocated.enabled") is False:
        return None  # generation GPUs are carved out of the cluster: the split is grpo.py's, not restated here
    if _get(cfg, "policy.megatron_cfg.enabled"):
        sizes = ("tensor_model_parallel_size", "context_parallel_size", "pipeline_model_parallel_size")
        parts = [_get(cfg, f"policy.megatron_cfg.{s}") or 1 for s in sizes]
    else:
        parts = [_get(cfg, f"policy.dtensor_cfg.{s}") or 1 for s in ("tensor_parallel_size", "context_parallel_size")]
    model = 1
    for p in parts:
        model *= int(p)
    world = nodes * per_node
    return world // model if world % model == 0 else 0


def _sequence(cfg: Config) -> Iterator[str]:
    """The sequence-length group: generation never runs past the total length the policy trains on."""
    total = _get(cfg, "policy.max_total_sequence_length")
    new = _get(cfg, "policy.generation.max_new_tokens")
    if isinstance(total, int) and isinstance(new, int) and new > total:
        yield f"policy.generation.max_new_tokens {new} exceeds policy.max_total_sequence_length {total}"


def _placement(cfg: Config) -> Iterator[str]:
    """grpo.py setup(): non-colocated generation needs its own GPUs, leaving some for training."""
    if _get(cfg, "grpo") is None or _get(cfg, "policy.generation.colocated.enabled") is not False:
        return
    nodes, per_node = _get(cfg, "cluster.num_nodes"), _get(cfg, "cluster.gpus_per_node")
    gen_gpus = _get(cfg, "policy.generation.colocated.resources.gpus_per_node")
    gen_nodes = _get(cfg, "policy.generation.colocated.resources.num_nodes")
    if nodes == 1:
        if not isinstance(gen_gpus, int) or gen_gpus <= 0:
            yield (
                "policy.generation.colocated.resources.gpus_per_node must be explicitly set to a value > 0 "
                f"when policy_nodes = 1 and inference is non-colocated, but got {gen_gpus}."
            )
        elif isinstance(per_node, int) and per_node - gen_gpus <= 0:
            yield (
                f"No enough GPUs for training: cluster.gpus_per_node {per_node} - "
                f"policy.generation.colocated.resources.gpus_per_node {gen_gpus}"
            )
    elif isinstance(nodes, int) and (not isinstance(gen_nodes, int) or not 0 < gen_nodes < nodes):
        yield (
            "Non-colocated mode requires train_nodes > 0 and inference_nodes > 0 "
            f"(cluster.num_nodes {nodes}, policy.generation.colocated.resources.num_nodes {gen_nodes})"
        )


def _async(cfg: Config) -> Iterator[str]:
    """async_grpo_train() and run_grpo.py: what asynchronous GRPO requires and refuses."""
    if not _get(cfg, "grpo.async_grpo.enabled"):
        return
    backend = _get(cfg, "policy.generation.backend")
    if backend == "vllm" and not _get(cfg, "policy.generation.vllm_cfg.async_engine"):
        yield "Async GRPO requires an async vLLM engine: policy.generation.vllm_cfg.async_engine=true"
    if not _get(cfg, "loss_fn.use_importance_sampling_correction"):
        yield "Importance sampling correction must be enabled for async GRPO (loss_fn.use_importance_sampling_correction)"
    if _get(cfg, "policy.generation.colocated.enabled") and backend != "megatron":
        yield "Colocated async GRPO is only supported for the Megatron generation backend."
    for key in (
        "grpo.use_dynamic_sampling",
        "grpo.reward_scaling.enabled",
        "grpo.reward_shaping.enabled",
        "data.use_multiple_dataloader",
    ):
        if _get(cfg, key):
            yield f"async GRPO does not support {key} (run_grpo.py raises NotImplementedError)"


RULES: tuple[Callable[[Config], Iterator[str]], ...] = (_loss, _grpo, _parallelism, _sequence, _placement, _async)

# key prefix -> (the switch that must be on for NeMo-RL to read it, what the switch's value must be)
_READ_ONLY_WHEN = (
    ("loss_fn.truncated_importance_sampling_ratio", "loss_fn.truncated_importance_sampling_type", "not null"),
    ("grpo.reward_shaping.", "grpo.reward_shaping.enabled", True),
    ("grpo.reward_scaling.", "grpo.reward_scaling.enabled", True),
    ("grpo.async_grpo.", "grpo.async_grpo.enabled", True),
    ("grpo.batch_multiplier", "grpo.use_dynamic_sampling", True),
    ("grpo.dynamic_sampling_max_gen_batches", "grpo.use_dynamic_sampling", True),
    ("policy.sequence_packing.", "policy.sequence_packing.enabled", True),
    ("policy.dynamic_batching.", "policy.dynamic_batching.enabled", True),
    ("policy.megatron_cfg.", "policy.megatron_cfg.enabled", True),
    ("policy.dtensor_cfg.", "policy.dtensor_cfg.enabled", True),
)


def inert(cfg: Config, key: str) -> str | None:
    """Why changing `key` alone would change nothing under `cfg` (None when NeMo-RL reads it)."""
    for prefix, switch, needed in _READ_ONLY_WHEN:
        if not key.startswith(prefix) or key == switch:
            continue
        value = _get(cfg, switch)
        off = value is None if needed == "not null" else value is not needed
        if off:
            return f"{key} has no effect while {switch} is {value!r}"
    return None
