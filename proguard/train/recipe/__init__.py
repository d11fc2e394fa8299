"""Training recipes: dataclass schemas loaded with omegaconf and checked before anything runs.

- ``fields``: ``option`` (a key's default, help and range rule, declared together) and ``check_fields``
- ``guards``: the rules applied to every key (finite numbers, ``${oc.env:...}`` refused unless allowed)
- ``loader``: the one loader for any root schema (layers, every guard, ``explain``, ``to_yaml``)
- ``sections``: the sections every method shares (model, images, peft, logging, checkpoint)
- ``grpo``: the GRPO recipe (``Recipe``, ``load_recipe``) and its ``trl.GRPOConfig`` arguments
- ``sft``: the SFT recipe (``SFTRecipe``, ``load_sft_recipe``) and its ``trl.SFTConfig`` arguments

Nothing here imports torch, transformers or TRL at module level: ``--check`` and ``--dry-run`` stay fast.
"""

from __future__ import annotations

from proguard.train.recipe.fields import RecipeError
from proguard.train.recipe.grpo import (
    LOSS_TYPES,
    ROLLOUT_BACKEND_NAMES,
    SCALE_REWARDS,
    DataConfig,
    GRPOOptions,
    LengthsConfig,
    Recipe,
    RolloutConfig,
    check_recipe,
    gradient_accumulation,
    grpo_config_kwargs,
    load_recipe,
    prompts_per_step,
)
from proguard.train.recipe.loader import explain as _explain
from proguard.train.recipe.loader import to_yaml
from proguard.train.recipe.sections import (
    BUNDLED,
    DTYPES,
    REPORTERS,
    TINY_MODEL,
    TINY_OMNI_MODEL,
    SMOLLM2_MODEL,
    CheckpointConfig,
    ImagesConfig,
    LoggingConfig,
    ModelConfig,
    PeftOptions,
)
from proguard.train.recipe.sft import SFTRecipe, load_sft_recipe, sft_config_kwargs


def explain(key: str = "", schema: type = Recipe) -> str:
    """Help for a key of ``schema`` (the GRPO recipe unless told): ``proguard train|sft --explain KEY``."""
    return _explain(key, schema)


def recipe_to_yaml(r: Recipe | SFTRecipe) -> str:
    """The resolved recipe as YAML; keys read from the environment shown as their ``${oc.env:VAR}`` text."""
    return to_yaml(r)


__all__ = [
    "BUNDLED",
    "DTYPES",
    "LOSS_TYPES",
    "REPORTERS",
    "ROLLOUT_BACKEND_NAMES",
    "SCALE_REWARDS",
    "TINY_MODEL",
    "TINY_OMNI_MODEL",
    "SMOLLM2_MODEL",
    "CheckpointConfig",
    "DataConfig",
    "GRPOOptions",
    "ImagesConfig",
    "LengthsConfig",
    "LoggingConfig",
    "ModelConfig",
    "PeftOptions",
    "Recipe",
    "RecipeError",
    "RolloutConfig",
    "SFTRecipe",
    "check_recipe",
    "explain",
    "gradient_accumulation",
    "grpo_config_kwargs",
    "load_recipe",
    "load_sft_recipe",
    "prompts_per_step",
    "recipe_to_yaml",
    "sft_config_kwargs",
]
