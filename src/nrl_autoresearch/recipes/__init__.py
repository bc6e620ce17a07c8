"""Recipe adapters, by kind. A new adapter is one file and one line here."""

from __future__ import annotations

from nrl_autoresearch.core.recipe import Recipe
from nrl_autoresearch.recipes.command import CommandRecipe
from nrl_autoresearch.recipes.nemo_rl import NemoRLRecipe

RECIPES: dict[str, type[Recipe]] = {
    "command": CommandRecipe,
    "nemo-rl": NemoRLRecipe,
}


def recipe_from_dict(data: dict) -> Recipe:
    args = {k: v for k, v in data.items() if k != "kind"}
    return RECIPES[data["kind"]](**args)
