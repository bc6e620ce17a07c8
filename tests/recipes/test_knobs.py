"""The knob table: well-formed, grounded in NeMo-RL's configs, and filtered per recipe in priority order."""

from __future__ import annotations

import pytest

from nrl_autoresearch.recipes import nemo_config as nc
from nrl_autoresearch.recipes.knobs import AREAS, ASYNC_EXCLUDES, ASYNC_REQUIRES, KINDS, KNOBS, RISKS, knob, knobs_for
from tests.recipes.nemo_fixtures import CONFIGS, recipe


def test_table_is_well_formed_and_in_priority_order() -> None:
    assert len({k.key for k in KNOBS}) == len(KNOBS)
    assert all(k.area in AREAS and k.kind in KINDS and k.risk in RISKS and k.moves for k in KNOBS)
    order = [AREAS.index(k.area) for k in KNOBS]
    assert order == sorted(order) and set(order) == set(range(len(AREAS)))


def test_every_key_exists_in_a_base_config() -> None:
    names = ("grpo_math_1B.yaml", "grpo_multiple_datasets.yaml", "sft.yaml", "dpo.yaml", "distillation_math.yaml")
    bases = [nc.load_resolved(CONFIGS / name) for name in names]
    for k in KNOBS:
        for key in (k.key, *k.related, *k.excludes, *(key for key, _ in (*k.requires, *k.when))):
            assert any(nc.has_dotted(base, key) for base in bases), (k.key, key)


def test_async_grpo_constraints() -> None:
    async_knob = knob("grpo.async_grpo.enabled")
    assert async_knob is not None
    assert (
        async_knob.requires
        == ASYNC_REQUIRES
        == (
            ("policy.generation.vllm_cfg.async_engine", True),
            ("loss_fn.use_importance_sampling_correction", True),
            ("policy.generation.colocated.enabled", False),
        )
    )
    assert (
        async_knob.excludes
        == ASYNC_EXCLUDES
        == (
            "grpo.use_dynamic_sampling",
            "grpo.reward_scaling.enabled",
            "grpo.reward_shaping.enabled",
            "data.use_multiple_dataloader",
        )
    )


@pytest.mark.parametrize(
    ("path", "live", "dead"),
    [
        (
            recipe("grpo-llama3.2-1b-instruct-1n8g-fsdp2tp1.v3.yaml"),
            "policy.optimizer.kwargs.lr",
            "policy.megatron_cfg.optimizer.lr",
        ),
        (
            recipe("grpo-nanov3-30BA3B-2n8g-megatron-pack-cp.yaml"),
            "policy.megatron_cfg.optimizer.lr",
            "policy.optimizer.kwargs.lr",
        ),
    ],
    ids=["dtensor", "megatron"],
)
def test_knobs_for_picks_the_live_learning_rate(path, live: str, dead: str) -> None:
    keys = [k.key for k in knobs_for(nc.load_resolved(path))]
    assert live in keys and dead not in keys
    assert keys == [k.key for k in KNOBS if k.key in keys]  # priority order kept


def test_knobs_for_keeps_to_the_recipe_algorithm() -> None:
    keys = {k.key for k in knobs_for(nc.load_resolved(CONFIGS / "dpo.yaml"))}
    assert "dpo.reference_policy_kl_penalty" in keys
    assert not any(key.startswith(("grpo.", "loss_fn.")) for key in keys)
    assert knob("no.such.key") is None
