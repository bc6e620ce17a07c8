"""Recipe edits: validated against the composed recipe, coupled keys moved together, the file's text kept."""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path

import pytest

from nrl_autoresearch.core.errors import UsageError
from nrl_autoresearch.recipes import nemo_config as nc
from nrl_autoresearch.recipes.yamledit import format_value, parse_value, set_keys
from tests.recipes.nemo_fixtures import EXAMPLES

V3 = "recipes/llm/grpo-llama3.2-1b-instruct-1n8g-fsdp2tp1.v3.yaml"


@pytest.fixture
def configs(tmp_path: Path) -> Path:
    """examples/configs in a private copy of examples/ (recipes inherit from nemo_gym/ and modelopt/ too)."""
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    return tmp_path / "examples" / "configs"


def _edit(path: Path, changes: dict) -> tuple[list[str], list[str], list[str]]:
    before = path.read_text().splitlines()
    lines = set_keys(path, changes)
    return lines, before, path.read_text().splitlines()


def _diff(before: list[str], after: list[str]) -> tuple[list[str], list[str]]:
    """Lines removed and lines added."""
    diff = list(difflib.unified_diff(before, after, lineterm="", n=0))[2:]
    return ([d[1:] for d in diff if d.startswith("-")], [d[1:] for d in diff if d.startswith("+")])


def test_changed_line_only_comments_and_order_kept(configs: Path) -> None:
    lines, before, after = _edit(configs / "grpo_math_1B.yaml", {"loss_fn.ratio_clip_max": "0.28"})
    assert lines == ["loss_fn.ratio_clip_max: 0.2 -> 0.28"]
    assert _diff(before, after) == (["  ratio_clip_max: 0.2"], ["  ratio_clip_max: 0.28"])


def test_quotes_comments_and_capitalised_booleans_survive(configs: Path) -> None:
    path = configs / "sft.yaml"
    _, before, after = _edit(
        path,
        {
            "checkpointing.checkpoint_dir": "results/elsewhere",
            "policy.tokenizer.chat_template_kwargs": "{enable_thinking: true}",
        },
    )
    removed, added = _diff(before, after)
    assert [line.strip() for line in added] == [
        'checkpoint_dir: "results/elsewhere"',
        "chat_template_kwargs: {enable_thinking: true} # can be used to pass kwargs to the chat template, "
        "e.g., enable_thinking=true",
    ]
    assert len(removed) == 2 and any("False" in line for line in after)


def test_key_only_a_parent_has_is_added_at_its_place(configs: Path) -> None:
    lines, before, after = _edit(configs / V3, {"loss_fn.ratio_clip_max": 0.28, "policy.optimizer.kwargs.lr": "1e-6"})
    assert lines == ["loss_fn.ratio_clip_max: 0.2 -> 0.28", "policy.optimizer.kwargs.lr: 5e-06 -> 1e-06"]
    assert _diff(before, after)[0] == []  # nothing removed: additions only
    assert "  optimizer:\n    kwargs:\n      lr: 1e-06" in "\n".join(after)
    resolved = nc.load_resolved(configs / V3)
    assert resolved["loss_fn"]["ratio_clip_max"] == 0.28
    assert resolved["policy"]["optimizer"]["kwargs"] == {
        "lr": 1e-6,
        "weight_decay": 0.01,
        "betas": [0.9, 0.999],
        "eps": 1e-8,
    }


def test_list_only_a_parent_has_is_copied_whole(configs: Path) -> None:
    set_keys(configs / V3, {"policy.scheduler.0.kwargs.total_iters": 20})
    scheduler = nc.load_resolved(configs / V3)["policy"]["scheduler"]
    assert [s.get("name") for s in scheduler] == [
        "torch.optim.lr_scheduler.LinearLR",
        "torch.optim.lr_scheduler.ConstantLR",
        None,
    ]
    assert scheduler[0]["kwargs"]["total_iters"] == 20 and scheduler[2] == {"milestones": [50]}


def test_sequence_length_moves_hard_coded_lengths(configs: Path) -> None:
    lines, before, after = _edit(configs / V3, {"policy.max_total_sequence_length": "1024"})
    follows = "(hard-coded; tracked policy.max_total_sequence_length)"
    assert lines == [
        "policy.max_total_sequence_length: 512 -> 1024",
        f"policy.generation.max_new_tokens: 512 -> 1024 {follows}",
        f"policy.generation.vllm_cfg.max_model_len: 512 -> 1024 {follows}",
        f"data.max_input_seq_length: 512 -> 1024 {follows}",
    ]
    removed, _ = _diff(before, after)
    assert sorted(line.strip() for line in removed) == [
        "max_input_seq_length: 512",
        "max_model_len: 512",
        "max_new_tokens: 512",
    ]
    resolved = nc.load_resolved(configs / V3)
    assert (
        resolved["policy"]["generation"]["max_new_tokens"],
        resolved["policy"]["generation"]["vllm_cfg"]["max_model_len"],
        resolved["data"]["max_input_seq_length"],
    ) == (1024, 1024, 1024)


def test_independent_length_budgets_are_kept_or_capped(configs: Path) -> None:
    path = configs / "recipes/llm/dapo-qwen2.5-7b.v2.yaml"
    lines = set_keys(path, {"policy.max_total_sequence_length": 8192})
    assert lines == [
        "policy.max_total_sequence_length: 16384 -> 8192",
        "policy.generation.max_new_tokens: 16384 -> 8192 (hard-coded; tracked policy.max_total_sequence_length)",
        "grpo.reward_shaping.max_response_length: 14336 -> 8192 (hard-coded; capped at "
        "policy.max_total_sequence_length)",
    ]
    resolved = nc.load_resolved(path)
    assert resolved["policy"]["generation"]["vllm_cfg"]["max_model_len"] == 8192  # inherited interpolation
    assert resolved["data"]["max_input_seq_length"] == 2048  # a prompt budget, not the total
    assert resolved["grpo"]["reward_shaping"]["max_response_length"] == 8192  # capped at the new total


def test_interpolated_lengths_are_left_to_interpolation(configs: Path) -> None:
    lines = set_keys(configs / "grpo_math_1B.yaml", {"policy.max_total_sequence_length": 1024})
    assert lines == ["policy.max_total_sequence_length: 512 -> 1024"]
    assert nc.load_resolved(configs / "grpo_math_1B.yaml")["policy"]["generation"]["max_new_tokens"] == 1024


def test_megatron_learning_rates_move_together(configs: Path) -> None:
    path = configs / "recipes/llm/grpo-nanov3-30BA3B-2n8g-megatron-pack-cp.yaml"
    lines = set_keys(path, {"policy.optimizer.kwargs.lr": "1e-5"})
    assert lines == [
        "policy.optimizer.kwargs.lr: 5e-06 -> 1e-05",
        "policy.megatron_cfg.optimizer.lr: 5e-06 -> 1e-05 "
        "(kept equal to policy.optimizer.kwargs.lr; Megatron is enabled)",
        "policy.megatron_cfg.optimizer.min_lr: 5e-07 -> 1e-06 (scaled with policy.megatron_cfg.optimizer.lr)",
    ]
    optimizer = nc.load_resolved(path)["policy"]["megatron_cfg"]["optimizer"]
    assert (optimizer["lr"], optimizer["min_lr"]) == (1e-5, 1e-6)


def test_megatron_learning_rate_without_dtensor_optimizer(configs: Path) -> None:
    path = configs / "recipes/llm/grpo-llama3.2-1b-instruct-1n8g-megatron.yaml"
    assert set_keys(path, {"policy.megatron_cfg.optimizer.lr": 2.5e-6}) == [
        "policy.megatron_cfg.optimizer.lr: 5e-06 -> 2.5e-06",
        "policy.megatron_cfg.optimizer.min_lr: 5e-07 -> 2.5e-07 (scaled with policy.megatron_cfg.optimizer.lr)",
    ]


def test_dtensor_learning_rate_leaves_megatron_alone(configs: Path) -> None:
    assert set_keys(configs / V3, {"policy.optimizer.kwargs.lr": 1e-5}) == [
        "policy.optimizer.kwargs.lr: 5e-06 -> 1e-05"
    ]


def test_unknown_key_names_close_keys_and_writes_nothing(configs: Path) -> None:
    before = (configs / V3).read_text()
    with pytest.raises(UsageError) as caught:
        set_keys(configs / V3, {"grpo.max_num_steps": 10, "policy.optimizer.kwargs.lrr": "1e-6"})
    assert "closest existing keys: policy.optimizer.kwargs.lr" in str(caught.value)
    assert (configs / V3).read_text() == before


def test_bad_value_is_refused(configs: Path) -> None:
    with pytest.raises(UsageError, match="is a number"):
        set_keys(configs / V3, {"policy.optimizer.kwargs.lr": "fast"})
    with pytest.raises(UsageError, match="integer"):
        set_keys(configs / V3, {"policy.max_total_sequence_length": 1.5})


def test_no_op_writes_nothing(configs: Path) -> None:
    before = (configs / V3).read_text()
    assert set_keys(configs / V3, {"grpo.max_num_steps": 500, "loss_fn.ratio_clip_max": 0.2}) == []
    assert (configs / V3).read_text() == before


def _first_int_key(tree: dict, prefix: str = "") -> str | None:
    """The first integer setting a file itself writes, as a dotted key."""
    for key, value in tree.items():
        if isinstance(value, dict):
            found = _first_int_key(value, f"{prefix}{key}.")
            if found:
                return found
        elif key != "defaults" and isinstance(value, int) and not isinstance(value, bool):
            return f"{prefix}{key}"
    return None


TRICKY = [
    "dapo-qwen2.5-7b.v2.yaml",  # a value folded over two lines
    "grpo-deepseek-v3-64n8g-fp8-async-1off.yaml",  # a flow list written over four lines
    "distillation-xtoken-off-policy-multiteacher-qwen3-4b-llama3.2-3b-to-llama3.2-1b-1n8g-dtensor-tp4cp2.yaml",
]


def test_recipes_keep_every_other_line(configs: Path) -> None:
    """A one-value edit is a one-line diff, whatever ruamel would re-format elsewhere in the file."""
    paths = sorted((configs / "recipes").rglob("*.yaml"))
    sample = paths[::10] + [p for p in paths if p.name in TRICKY] + [configs / "grpo_math_1B.yaml"]
    for path in sample:
        before = path.read_text().splitlines()
        key = _first_int_key(nc.read_yaml(path.read_text()))
        if key is None:  # a wrapper that only switches a flag
            continue
        set_keys(path, {key: nc.get_dotted(nc.read_yaml(path.read_text()), key) + 1})
        removed, added = _diff(before, path.read_text().splitlines())
        assert len(removed) == len(added) == 1 and key.rsplit(".", 1)[-1] in removed[0], (path.name, key)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1e-6", 1e-6),
        ("5e-6", 5e-6),
        ("0.28", 0.28),
        ("1024", 1024),
        ("true", True),
        ("False", False),
        ("null", None),
        ("[0.9,0.95]", [0.9, 0.95]),
        ("{a: 1}", {"a": 1}),
        ("cot.txt", "cot.txt"),
        ("a: b", "a: b"),
        ("${policy.model_name}", "${policy.model_name}"),
        ("", ""),
        ("[1", "[1"),
    ],
)
def test_parse_value(text: str, value: object) -> None:
    assert parse_value(text) == value and type(parse_value(text)) is type(value)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1e-6, "1e-06"),
        (None, "null"),
        (True, "true"),
        ([0.9, 0.95], "[0.9, 0.95]"),
        ("cot.txt", "cot.txt"),
        ("yes", '"yes"'),
        ("", '""'),
    ],
)
def test_format_value(value: object, text: str) -> None:
    assert format_value(value) == text
