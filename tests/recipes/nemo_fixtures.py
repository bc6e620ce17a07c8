"""Where the copy of NeMo-RL's example configs lives, and how the tests list them."""

from __future__ import annotations

from pathlib import Path

NEMO_RL = Path(__file__).resolve().parents[1] / "fixtures" / "nemo-rl"
EXAMPLES = NEMO_RL / "examples"
CONFIGS = EXAMPLES / "configs"
RECIPES = CONFIGS / "recipes"
NEMO_GYM = EXAMPLES / "nemo_gym"


def recipe(name: str) -> Path:
    """A test-suite recipe by file name, wherever it sits under recipes/."""
    matches = list(RECIPES.rglob(name))
    assert len(matches) == 1, name
    return matches[0]


def recipes() -> list[Path]:
    return sorted(RECIPES.rglob("*.yaml"))


def base_configs() -> list[Path]:
    return sorted(CONFIGS.glob("*.yaml"))


def eval_configs() -> list[Path]:
    return sorted((CONFIGS / "evals").glob("*.yaml"))


def gym_configs() -> list[Path]:
    return sorted(NEMO_GYM.rglob("*.yaml"))
