"""Recipe loading, overrides and the facts read off NeMo-RL recipes, against the copy of NeMo-RL's configs."""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf._utils import get_yaml_loader

from nrl_autoresearch.core.errors import UsageError
from nrl_autoresearch.recipes import nemo_config as nc
from nrl_autoresearch.recipes import params
from tests.recipes.nemo_fixtures import (
    CONFIGS,
    EXAMPLES,
    NEMO_GYM,
    NEMO_RL,
    RECIPES,
    base_configs,
    eval_configs,
    gym_configs,
    recipe,
    recipes,
)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HOME", "/cache/hf")
    monkeypatch.setenv("PERSISTENT_CACHE", "/cache/persistent")


@pytest.fixture(scope="module")
def scan() -> dict[Path, dict]:
    """Every recipe, base, eval and NeMo-Gym config resolved once, timed."""
    groups = {"recipes": recipes(), "base": base_configs(), "evals": eval_configs(), "nemo_gym": gym_configs()}
    assert {name: len(files) for name, files in groups.items()} == {
        "recipes": 250,
        "base": 36,
        "evals": 9,
        "nemo_gym": 27,
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HOME", "/cache/hf")
        patch.setenv("PERSISTENT_CACHE", "/cache/persistent")
        wall, cpu = time.perf_counter(), time.process_time()
        resolved = {path: nc.load_resolved(path) for files in groups.values() for path in files}
    print(
        f"\nresolved {len(resolved)} configs in {time.perf_counter() - wall:.2f}s "
        f"({time.process_time() - cpu:.2f}s CPU)"
    )
    return resolved


def test_every_config_resolves(scan: dict[Path, dict]) -> None:
    assert len(scan) == 322 and all(isinstance(value, dict) for value in scan.values())


def _reference_load(path: Path) -> DictConfig:
    """NeMo-RL's documented algorithm done the slow, obvious way on DictConfigs, to check the fast loader against."""
    cfg = OmegaConf.load(path)
    assert isinstance(cfg, DictConfig), f"{path} is not a mapping"
    if "defaults" not in cfg:
        return cfg
    named = cfg.pop("defaults")
    base = OmegaConf.create({})
    for parent in [named] if isinstance(named, str) else list(named):
        base = _reference_merge(base, _reference_load(path.parent / parent))
    return _reference_merge(base, cfg)


def _reference_merge(base: DictConfig, child: DictConfig) -> DictConfig:
    for key in list(child.keys()):
        node = child._get_node(key)
        if isinstance(node, DictConfig) and node.get("_override_", False):
            node.pop("_override_")
            base.pop(key, None)
    merged = OmegaConf.merge(base, child)
    assert isinstance(merged, DictConfig)
    return merged


@pytest.mark.parametrize(
    "path",
    [
        CONFIGS / "grpo_multiple_datasets.yaml",
        CONFIGS / "gdpo_math_1B.yaml",
        CONFIGS / "sft_avlm.yaml",
        recipe("gdpo-qwen2.5-1.5b-1n8g-gym-multireward.yaml"),
        recipe("grpo-qwen3-235b-32n8g-async-1off.yaml"),
        recipe("grpo-llama3.2-1b-instruct-1n8g-fsdp2tp1.v3.yaml"),
        recipe("distillation-xtoken-off-policy-qwen3-4b-to-llama3.2-1b-1n8g-dtensor-tp4cp2.yaml"),
        recipe("vlm_grpo-nemotron-omni-30ba3b-2n8g-megatron-tp4ep4-gym-video.v1.yaml"),
        NEMO_GYM / "grpo_qwen3_30ba3b_thinking_swe1.yaml",
        NEMO_GYM / "nemotron-3-super/small_scale/stage2_swe1_convergence_20node_h100.yaml",
    ],
    ids=lambda p: p.name,
)
def test_loader_matches_reference(path: Path) -> None:
    expected = OmegaConf.to_container(_reference_load(path), resolve=False)
    assert OmegaConf.to_container(nc.load_recipe(path), resolve=False) == expected


def test_the_plain_composition_and_one_keys_value_are_omegaconfs(tmp_path: Path) -> None:
    """`composed` is the DictConfig's container and `resolved_value` what `OmegaConf.select` gives, for plain,
    interpolated, missing and absent keys."""
    for path in sorted(RECIPES.rglob("*.yaml"))[::10]:
        cfg = nc.load_recipe(path)
        tree = nc.composed(path)
        assert tree == OmegaConf.to_container(cfg, resolve=False), path
        for key in (
            "policy.max_total_sequence_length",
            "policy.megatron_cfg.enabled",
            "policy.megatron_cfg.optimizer.lr",
        ):
            expected = OmegaConf.select(cfg, key, default=None, throw_on_resolution_failure=False)
            assert nc.resolved_value(tree, key) == expected, (path, key)
    (tmp_path / "r.yaml").write_text("a: {b: 3, c: '${a.b}', d: '???', e: '${mul:${a.b},2}', f: 'x'}\n")
    tree = nc.composed(tmp_path / "r.yaml")
    assert [nc.resolved_value(tree, f"a.{k}") for k in "bcdefg"] == [3, 3, None, 6, "x", None]
    nc.composed(tmp_path / "r.yaml")["a"]["b"] = 4  # a copy: the cached composition is untouched
    assert nc.composed(tmp_path / "r.yaml")["a"]["b"] == 3


def test_yaml_reads_as_omegaconf_reads_it() -> None:
    loader = get_yaml_loader()
    for path in sorted(EXAMPLES.rglob("*.yaml")):
        text = path.read_text()
        assert _typed(nc.read_yaml(text)) == _typed(yaml.load(text, Loader=loader)), path


def _typed(node: object) -> object:
    """The tree with every scalar paired with its type, so that 1 == 1.0 == True do not pass for each other."""
    if isinstance(node, dict):
        return {key: _typed(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_typed(value) for value in node]
    return (type(node), node)


def test_resolution_matches_omegaconf(scan: dict[Path, dict]) -> None:
    """Resolving only the interpolated part gives what resolving the whole recipe gives."""
    sample = [*list(scan)[::8], CONFIGS / "grpo_multiple_datasets.yaml", NEMO_GYM / "nemotron-3-ultra/mopd.yaml"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HOME", "/cache/hf")
        patch.setenv("PERSISTENT_CACHE", "/cache/persistent")
        for path in sample:
            assert scan[path] == OmegaConf.to_container(nc.load_recipe(path), resolve=True), path


def test_override_section_replaces_the_inherited_one() -> None:
    container = OmegaConf.to_container(nc.load_recipe(CONFIGS / "grpo_multiple_datasets.yaml"), resolve=False)
    assert isinstance(container, dict)
    data = container["data"]
    assert "_override_" not in data
    assert [d["dataset_name"] for d in data["train"]] == ["OpenMathInstruct-2", "DeepScaler"]
    assert "custom_dataloader" in data and next(iter(data)) == "max_input_seq_length"


def test_override_marker_below_top_level_is_kept_as_nemo_rl_does() -> None:
    megatron = nc.load_resolved(recipe("gdpo-qwen2.5-1.5b-1n8g-gym-multireward.yaml"))["policy"]["megatron_cfg"]
    assert megatron["_override_"] is True and megatron["enabled"] is False
    assert "optimizer" in megatron  # merged with the parent's section, not replaced


def test_inheritance_rules(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "grand.yaml").write_text("a: {x: 1, y: 1}\nkeep: 0\nlst: [1, 2]\n")
    (tmp_path / "sub" / "parent.yaml").write_text("defaults: ../grand.yaml\na: {y: 2}\nmust: ???\n")
    (tmp_path / "other.yaml").write_text("a: {z: 3}\nlst: [9]\n")
    (tmp_path / "child.yaml").write_text(
        "defaults: [sub/parent.yaml, other.yaml]\nkeep: ???\nmust: 5\nrepl: {_override_: true}\n"
    )
    assert nc.load_resolved(tmp_path / "child.yaml") == {
        "a": {"x": 1, "y": 2, "z": 3},
        "keep": 0,
        "lst": [9],
        "must": 5,
        "repl": {},
    }
    assert nc.inheritance_chain(tmp_path / "child.yaml") == [
        tmp_path / "child.yaml",
        tmp_path / "sub/parent.yaml",
        tmp_path / "grand.yaml",
        tmp_path / "other.yaml",
    ]


def test_parent_changes_are_seen(tmp_path: Path) -> None:
    (tmp_path / "parent.yaml").write_text("a: 1\n")
    (tmp_path / "child.yaml").write_text("defaults: parent.yaml\nb: 2\n")
    assert nc.load_resolved(tmp_path / "child.yaml")["a"] == 1
    (tmp_path / "parent.yaml").write_text("a: 10\n")
    assert nc.load_resolved(tmp_path / "child.yaml")["a"] == 10


def test_results_are_independent_copies() -> None:
    first = nc.load_recipe(CONFIGS / "grpo_math_1B.yaml")
    first.grpo.max_num_steps = 7
    assert nc.load_recipe(CONFIGS / "grpo_math_1B.yaml").grpo.max_num_steps == 1000000


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"child.yaml": "defaults: missing.yaml\n"}, "missing.yaml"),
        ({"child.yaml": "defaults: other.yaml\n", "other.yaml": "defaults: child.yaml\n"}, "loops"),
        ({"child.yaml": "- a\n- b\n"}, "mapping"),
        ({"child.yaml": "a: [1\n"}, "not valid YAML"),
    ],
)
def test_broken_inheritance_is_a_usage_error(tmp_path: Path, files: dict[str, str], message: str) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(UsageError, match=message):
        nc.load_recipe(tmp_path / "child.yaml")


def test_resolvers_register_once() -> None:
    nc.register_resolvers()
    nc.register_resolvers()
    cfg = OmegaConf.create(
        {"a": 3, "b": "${mul:${a}, 2}", "c": "${add:1, ${a}}", "d": "${div:${a}, 2}", "e": "${max:${a}, 5}"}
    )
    assert nc.resolve(cfg) == {"a": 3, "b": 6, "c": 4, "d": 1.5, "e": 5}


# --- overrides --------------------------------------------------------------------------------------------------

V3 = recipe("grpo-llama3.2-1b-instruct-1n8g-fsdp2tp1.v3.yaml")


@pytest.mark.parametrize(
    ("override", "key", "expected"),
    [
        ("grpo.max_num_steps=5", "grpo.max_num_steps", 5),
        ("policy.optimizer.kwargs.lr=1e-6", "policy.optimizer.kwargs.lr", 1e-6),
        ("+foo.bar=1", "foo.bar", 1),
        ("++logger.wandb.name=x", "logger.wandb.name", "x"),
        ("++brand.new=[1,2]", "brand.new", [1, 2]),
        ("policy.scheduler.0.kwargs.total_iters=20", "policy.scheduler.0.kwargs.total_iters", 20),
        ("policy.optimizer.kwargs.betas=[0.9,0.95]", "policy.optimizer.kwargs.betas", [0.9, 0.95]),
        ("data.default.prompt_file=null", "data.default.prompt_file", None),
        ("checkpointing.checkpoint_must_save_by=00:03:30:00", "checkpointing.checkpoint_must_save_by", "00:03:30:00"),
    ],
)
def test_override_grammar(override: str, key: str, expected: object) -> None:
    assert nc.get_dotted(nc.load_resolved(V3, [override]), key) == expected


def test_override_moves_interpolated_keys_only() -> None:
    base = nc.load_resolved(CONFIGS / "grpo_math_1B.yaml", ["policy.max_total_sequence_length=1024"])
    assert base["policy"]["generation"]["max_new_tokens"] == 1024
    hard_coded = nc.load_resolved(V3, ["policy.max_total_sequence_length=1024"])
    assert hard_coded["policy"]["generation"]["max_new_tokens"] == 512


def test_delete_override() -> None:
    assert "keep_top_k" not in nc.load_resolved(V3, ["~checkpointing.keep_top_k"])["checkpointing"]


@pytest.mark.parametrize(
    ("override", "fragments"),
    [
        (
            "grpo.max_num_step=5",
            [
                "Could not override 'grpo.max_num_step'",
                "closest existing keys: grpo.max_num_steps",
                "check its spelling",
            ],
        ),
        ("lr=1e-6", ["policy.optimizer.kwargs.lr", "policy.megatron_cfg.optimizer.lr"]),
        ("+grpo.max_num_steps=5", ["An item is already at 'grpo.max_num_steps'", "++grpo.max_num_steps=5"]),
        ("~checkpointing.checkpoint_must_save_by", ["does not exist", "checkpointing.checkpoint_must_save_by=null"]),
        ("~nope.key", ["No key 'nope.key'"]),
        ("grpo.max_num_steps=[1", ["cannot parse override", "+key=value"]),
        ("policy.scheduler.7.kwargs.total_iters=2", ["policy.scheduler.0.kwargs.total_iters"]),
    ],
)
def test_override_errors_explain(override: str, fragments: list[str]) -> None:
    with pytest.raises(UsageError) as caught:
        nc.load_resolved(V3, [override])
    for fragment in fragments:
        assert fragment in str(caught.value)
    assert "+grpo.max_num_step=" not in str(caught.value)  # never a hint that adds a dead key


def test_missing_environment_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    path = recipe("mopd-qwen3-1.7b-3n8g-megatron-pack.yaml")
    monkeypatch.delenv("HF_HOME", raising=False)
    with pytest.raises(UsageError) as caught:
        nc.load_resolved(path)
    message = str(caught.value)
    assert "HF_HOME" in message and path.name in message and re.search(r"data\.(train|validation)\.data_path", message)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (recipe("mopd-qwen3-1.7b-3n8g-megatron-pack.yaml"), {"HF_HOME"}),
        (NEMO_GYM / "nemotron-3-super/stage1_rlvr.yaml", {"PERSISTENT_CACHE"}),
        (NEMO_GYM / "nemotron-3-super/small_scale/stage1_rlvr_convergence_27node_h100.yaml", {"PERSISTENT_CACHE"}),
        (CONFIGS / "grpo_math_1B.yaml", set()),
    ],
    ids=lambda v: getattr(v, "name", None),
)
def test_env_vars_referenced(path: Path, expected: set[str]) -> None:
    assert nc.env_vars_referenced(path) == expected


# --- facts read off recipes -------------------------------------------------------------------------------------


def _resolved(path: Path) -> dict:
    return nc.load_resolved(path)


def test_entrypoints_reproduce_the_test_suite(scan: dict[Path, dict]) -> None:
    counts = Counter((p.name.split("-")[0], nc.entrypoint_for(p, scan[p]).removeprefix("examples/")) for p in recipes())
    assert counts == {
        ("dapo", "run_grpo.py"): 8,
        ("distillation", "run_distillation.py"): 10,
        ("distillation", "run_xtoken_off_policy_distillation.py"): 2,
        ("distillation", "nemo_gym/run_distillation_nemo_gym.py"): 1,
        ("dpo", "run_dpo.py"): 11,
        ("gdpo", "nemo_gym/run_grpo_nemo_gym.py"): 1,
        ("grpo", "run_grpo.py"): 147,
        ("grpo", "run_grpo_single_controller.py"): 6,
        ("grpo", "nemo_gym/run_grpo_nemo_gym.py"): 6,
        ("mopd", "nemo_gym/run_grpo_nemo_gym.py"): 3,
        ("ppo", "run_ppo.py"): 8,
        ("prorlv2", "run_grpo.py"): 2,
        ("sft", "run_sft.py"): 24,
        ("vlm_grpo", "run_vlm_grpo.py"): 15,
        ("vlm_grpo", "nemo_gym/run_grpo_nemo_gym.py"): 6,
    }


@pytest.mark.parametrize(
    ("path", "entrypoint"),
    [
        (CONFIGS / "grpo_math_1B.yaml", "run_grpo.py"),
        (CONFIGS / "prorlv2.v2.yaml", "run_grpo.py"),
        (CONFIGS / "sft.yaml", "run_sft.py"),
        (CONFIGS / "sft_openmathinstruct2_megatron.yaml", "run_sft.py"),
        (CONFIGS / "sft_vlm_3B.yaml", "run_vlm_sft.py"),
        (CONFIGS / "sft_avlm.yaml", "run_vlm_sft.py"),
        (CONFIGS / "dpo.yaml", "run_dpo.py"),
        (CONFIGS / "rm.yaml", "run_rm.py"),
        (CONFIGS / "ppo_math_1B.yaml", "run_ppo.py"),
        (CONFIGS / "distillation_math_megatron.yaml", "run_distillation.py"),
        (CONFIGS / "xtoken_off_policy_distillation.yaml", "run_xtoken_off_policy_distillation.py"),
        (CONFIGS / "vlm_grpo_3B.yaml", "run_vlm_grpo.py"),
        (CONFIGS / "audio_grpo_3B_megatron.yaml", "run_vlm_grpo.py"),
        (CONFIGS / "grpo_sliding_puzzle.yaml", "run_grpo_sliding_puzzle.py"),
        (CONFIGS / "grpo_math_1B_megatron_single_controller.yaml", "run_grpo_single_controller.py"),
        (CONFIGS / "evals/mmlu.yaml", "run_eval.py"),
        (NEMO_GYM / "grpo_nanov3.yaml", "nemo_gym/run_grpo_nemo_gym.py"),
        (NEMO_GYM / "nemotron-3-ultra/mopd.yaml", "nemo_gym/run_grpo_nemo_gym.py"),
        (NEMO_GYM / "distillation_qwen3_0_6b.yaml", "nemo_gym/run_distillation_nemo_gym.py"),
    ],
    ids=lambda v: getattr(v, "name", v),
)
def test_entrypoints_of_other_configs(env: None, path: Path, entrypoint: str) -> None:
    assert nc.entrypoint_for(path, _resolved(path)) == f"examples/{entrypoint}"


@pytest.mark.parametrize(
    ("path", "algorithm", "section"),
    [
        (recipe("dapo-qwen2.5-7b.v2.yaml"), "dapo", "grpo"),
        (recipe("vlm_grpo-qwen2.5-vl-3b-instruct-clevr-1n4g-dtensor2tp1.v1.yaml"), "vlm_grpo", "grpo"),
        (recipe("mopd-nemotron-super-omni-120ba12b-4n8g-smoke.v1.yaml"), "mopd", "grpo"),
        (recipe("gdpo-qwen2.5-1.5b-1n8g-gym-multireward.yaml"), "gdpo", "grpo"),
        (recipe("prorlv2-qwen2.5-math-1.5b-instruct-1n8g-fsdp2tp1.v2.yaml"), "prorlv2", "grpo"),
        (recipe("ppo-qwen2.5-1.5b-gsm8k-1n8g-automodel-valuetp2sp.yaml"), "ppo", "ppo"),
        (CONFIGS / "rm.yaml", "rm", "rm"),
        (CONFIGS / "xtoken_off_policy_distillation.yaml", "distillation", "distillation"),
        (CONFIGS / "evals/gpqa_eval.yaml", "eval", "eval"),
        (NEMO_GYM / "nemotron-3-ultra/mopd.yaml", "mopd", "grpo"),
        (NEMO_GYM / "nemotron-3-super/stage1_rlvr.yaml", "grpo", "grpo"),
    ],
    ids=lambda v: getattr(v, "name", v),
)
def test_algorithm_and_section(env: None, path: Path, algorithm: str, section: str) -> None:
    resolved = _resolved(path)
    assert (nc.algorithm_of(path, resolved), nc.algo_section(resolved)) == (algorithm, section)


def test_algo_section_refuses_non_training_configs(env: None) -> None:
    with pytest.raises(UsageError, match="algorithm sections"):
        nc.algo_section(_resolved(NEMO_GYM / "prefetch_omni_envs.yaml"))


@pytest.mark.parametrize(
    ("path", "objective"),
    [
        (V3, nc.RecipeMetric("val:accuracy", "validation/accuracy", True)),
        (
            recipe("sft-llama3.2-1b-1n8g-fsdp2tp1.v3.yaml"),
            nc.RecipeMetric("val:val_loss", "validation/val_loss", False),
        ),
        (
            recipe("dpo-llama3.2-1b-instruct-1n8g-fsdp2tp1.v2.yaml"),
            nc.RecipeMetric("val:validation-default_loss", "validation-default/loss", False),
        ),
        (
            recipe("distillation-qwen3-32b-to-1.7b-base-1n8g-fsdp2tp1.v1.yaml"),
            nc.RecipeMetric("val:accuracy", "validation/accuracy", True),
        ),
        (
            recipe("distillation-xtoken-off-policy-qwen3-4b-to-llama3.2-1b-1n8g-dtensor-tp4cp2.yaml"),
            nc.RecipeMetric("train:loss", "train/loss", False),
        ),
        (NEMO_GYM / "grpo_nanov3.yaml", nc.RecipeMetric("val:total_reward/mean", "validation/total_reward/mean", True)),
        (
            NEMO_GYM / "grpo_qwen3_30ba3b_thinking_swe1.yaml",
            nc.RecipeMetric("train:total_reward/mean", "train/total_reward/mean", True),
        ),
        (recipe("dpo-llama3.1-8b-tulu3-1n8g-fsdp2tp1.yaml"), None),
    ],
    ids=lambda v: getattr(v, "name", None),
)
def test_authoritative_metric(env: None, path: Path, objective: nc.RecipeMetric | None) -> None:
    assert nc.authoritative_metric(_resolved(path)) == objective


@pytest.mark.parametrize(
    ("name", "tag"),
    [
        ("val:validation-default_sft_loss", "validation-default/sft_loss"),
        ("val:validation-help_steer_rewards_chosen_mean", "validation-help_steer/rewards_chosen_mean"),
        ("val:pass_k", "validation/pass_k"),
    ],
)
def test_metric_tags(name: str, tag: str) -> None:
    assert nc.metric_tag(name) == tag


def test_metric_direction_defaults_and_errors() -> None:
    loss = nc.authoritative_metric({"checkpointing": {"metric_name": "val:loss"}})
    reward = nc.authoritative_metric({"checkpointing": {"metric_name": "val:reward"}})
    assert loss is not None and loss.maximize is False
    assert reward is not None and reward.maximize is True
    with pytest.raises(UsageError, match="'val:<metric>'"):
        nc.metric_tag("accuracy")


def test_gpus_required(env: None) -> None:
    assert nc.gpus_required(_resolved(recipe("grpo-dapomath17k-dsv3-32n4g-megatron.yaml"))) == 128
    assert nc.gpus_required(_resolved(V3)) == 8
    with pytest.raises(UsageError, match=r"cluster\.gpus_per_node"):
        nc.gpus_required({"cluster": {"num_nodes": 1}})


def test_data_files(env: None) -> None:
    assert nc.data_files(_resolved(CONFIGS / "grpo_math_1B.yaml")) == ["examples/prompts/cot.txt"]
    assert nc.data_files(_resolved(recipe("mopd-qwen3-1.7b-3n8g-megatron-pack.yaml"))) == [
        "/cache/hf/nanov3_data/train-split.jsonl",
        "/cache/hf/nanov3_data/val-split.jsonl",
    ]
    assert nc.data_files(_resolved(recipe("distillation-qwen3-1.7b-1n8g-megatron-qa-nvfp4.yaml"))) == [
        "examples/prompts/cot.txt"
    ]  # quant_cfg: NVFP4_DEFAULT_CFG is a preset, not a file


def test_every_repo_file_a_recipe_names_exists(scan: dict[Path, dict]) -> None:
    """Paths into examples/ must exist in the checkout (the Gym submodule and absolute paths are not shipped)."""
    named = {f for p in recipes() for f in nc.data_files(scan[p]) if f.startswith("examples/")}
    assert named and all((NEMO_RL / f).is_file() for f in named), sorted(
        f for f in named if not (NEMO_RL / f).is_file()
    )


def test_closest_keys() -> None:
    paths = ["policy.optimizer.kwargs.lr", "policy.megatron_cfg.optimizer.lr", "grpo.max_num_steps"]
    assert params.closest_keys("grpo.max_num_step", paths)[0] == "grpo.max_num_steps"
    assert set(params.closest_keys("lr", paths)) == set(paths[:2])


def test_a_top_level_interpolation_into_a_parent_key_fails_as_in_nemo_rl(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("grpo:\n  max_num_steps: 5\n")
    (tmp_path / "child.yaml").write_text("defaults: base.yaml\nsteps: ${grpo.max_num_steps}\n")
    (tmp_path / "nested.yaml").write_text("defaults: base.yaml\ngrpo:\n  val_period: ${grpo.max_num_steps}\n")
    with pytest.raises(UsageError, match="InterpolationKeyError: Interpolation key 'grpo.max_num_steps' not found"):
        nc.load_resolved(tmp_path / "child.yaml")
    assert nc.load_resolved(tmp_path / "nested.yaml")["grpo"] == {"max_num_steps": 5, "val_period": 5}


def test_a_level_with_mixed_key_types_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "mixed.yaml").write_text("grpo:\n  max_num_steps: 5\nmode:\n  off: 1\n  fast: 2\n")
    with pytest.raises(UsageError, match=r"mode mixes key types \(bool, str\): False - a bare off/on/yes/no key"):
        nc.load_resolved(tmp_path / "mixed.yaml")
