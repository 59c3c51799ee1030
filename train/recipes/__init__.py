"""Training recipes: `handstream train NAME ...` runs the recipe registered under NAME.

A recipe is a workflow (make the data, train, evaluate, export) with a `main(argv) -> int`, registered by the
`@register` decorator of its module (timm-style), so adding one is adding a module to RECIPE_MODULES. Its
defaults live in `configs/NAME.yaml` (see train/recipes/options.py for the `key=value` / `--flag`
overrides). Recipe modules import torch inside their functions: listing the recipes stays cheap.
"""

from __future__ import annotations

import difflib
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass

from stream.errors import InputError

# every module that registers recipes, imported on the first lookup
RECIPE_MODULES = (
    "train.recipes.pose",
    "train.recipes.detector",
    "train.recipes.search",
    "train.recipes.diagnose",
    "train.gesture.recipe",
    "train.gesture.dynamic_recipe",
    "train.size.recipe",
)


@dataclass(frozen=True)
class Recipe:
    name: str
    main: Callable[[list[str]], int]
    help: str


RECIPES: dict[str, Recipe] = {}


def register(name: str, help: str) -> Callable:
    """Decorator: make `main(argv) -> int` the recipe `handstream train NAME`."""

    def deco(fn: Callable[[list[str]], int]) -> Callable[[list[str]], int]:
        if name in RECIPES and RECIPES[name].main is not fn:
            raise ValueError(f"two recipes named {name!r}")
        RECIPES[name] = Recipe(name, fn, help)
        return fn

    return deco


def load_all() -> dict[str, Recipe]:
    for module in RECIPE_MODULES:
        importlib.import_module(module)
    return RECIPES


def get_recipe(name: str) -> Recipe:
    """The recipe called `name`, or a one-line InputError naming the closest one."""
    recipes = load_all()
    if name in recipes:
        return recipes[name]
    close = difflib.get_close_matches(name, list(recipes), n=1, cutoff=0.5)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise InputError(f"unknown recipe {name!r}; {hint}recipes: {', '.join(sorted(recipes))}")


def usage() -> str:
    recipes = load_all()
    width = max(len(n) for n in recipes)
    lines = [
        "usage: handstream train RECIPE [options] [key=value ...]   (handstream train RECIPE --help)",
        "",
        "recipes:",
    ]
    lines += [f"  {r.name:<{width}}  {r.help}" for r in recipes.values()]
    lines += ["", "A recipe's defaults are in configs/RECIPE.yaml; key=value and --flags override them."]
    return "\n".join(lines)


def single_process(recipe: str, why: str) -> None:
    """A one-line InputError when a recipe that does not split its work between processes is started
    under torchrun: every rank would run the whole recipe and write the same files."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise InputError(
            f"`handstream train {recipe}` runs in one process ({why}); start it without torchrun"
        )
