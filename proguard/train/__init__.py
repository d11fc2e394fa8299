"""GRPO training of a guard on TRL's ``GRPOTrainer``: recipe -> tasks -> rewards -> trainer -> ``final/``.

- ``recipe``: the recipe schema (dataclasses with help text), loading and checks (light: no torch)
- ``grpo_args``: the recipe as ``trl.GRPOConfig`` keyword arguments
- ``dataset``: the training prompts (prepared tasks or the task generator)
- ``policy``: the policy checkpoint and processor
- ``checks``: start-up checks (image-token alignment, prompt lengths)
- ``trainer``: ``GuardGRPOTrainer``, the smallest subclass of ``GRPOTrainer`` proguard needs
- ``rollout``: the rollout seam (transformers ``generate`` or vLLM) and vLLM server mode
- ``run``: ``train``, ``validate``, ``dry_run``, checkpoints and ``final/``

The names below are importable from ``proguard.train`` directly; each loads its module on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TrainError": "errors",
    "Recipe": "recipe", "RecipeError": "recipe", "load_recipe": "recipe",
    "build_train_dataset": "dataset", "check_dataset": "dataset", "dataset_summary": "dataset",
    "render_messages": "dataset",
    "load_processor": "policy", "prepare_policy_dir": "policy", "resolve_model_path": "policy",
    "Alignment": "checks", "check_image_token_alignment": "checks", "enforce_prompt_lengths": "checks",
    "prompt_lengths": "checks",
    "Setup": "run", "build_grpo_config": "run", "build_trainer": "run", "dry_run": "run",
    "latest_checkpoint": "run", "save_final": "run", "train": "run", "validate": "run",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'proguard.train' has no attribute {name!r}")
    return getattr(importlib.import_module(f"proguard.train.{_EXPORTS[name]}"), name)
