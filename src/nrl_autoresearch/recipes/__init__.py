"""Recipe adapters, by kind. A new adapter is one file and one line here.

The registry names each adapter's module and class instead of importing it: the NeMo-RL adapter loads Hydra and
OmegaConf, which commands that only read a command campaign's ledger never need."""

from __future__ import annotations

from importlib import import_module

from nrl_autoresearch.core.recipe import Recipe

RECIPES: dict[str, str] = {
    "command": "nrl_autoresearch.recipes.command:CommandRecipe",
    "nemo-rl": "nrl_autoresearch.recipes.nemo_rl:NemoRLRecipe",
}


def recipe_class(kind: str) -> type[Recipe]:
    """The adapter class of `kind`, imported now."""
    module, _, name = RECIPES[kind].partition(":")
    return getattr(import_module(module), name)


def recipe_from_dict(data: dict) -> Recipe:
    args = {k: v for k, v in data.items() if k != "kind"}
    return recipe_class(data["kind"])(**args)
