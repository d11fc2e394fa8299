"""Training a guard, GRPO (TRL's ``GRPOTrainer``) and SFT (``SFTTrainer``), through one harness.

- ``recipe``: the recipe schemas (GRPO, SFT), their shared sections and the one loader (light: no torch)
- ``runner``: the one run (output dir, resume, recipe.yaml, ``final/``, model card) and TRL config building
- ``trainer_mixins``: what both trainers share (staged checkpoints, seeded sampler, the card at the end)
- ``grpo_trainer`` / ``sft_trainer``: ``GuardGRPOTrainer`` / ``GuardSFTTrainer`` (import TRL; loaded lazily)
- ``trainer``: the ``metrics.jsonl`` callback and a row's media (no TRL import)
- ``dataset`` / ``sft_data``: the training prompts / the SFT conversations
- ``policy``: the policy checkpoint and processor
- ``checks``: start-up checks (image-token alignment, prompt lengths)
- ``checkpoints``: checkpoint completeness, set-aside and ``metrics.jsonl`` truncation
- ``rollout``: the rollout seam (transformers ``generate`` or vLLM) and vLLM server mode
- ``run`` / ``sft``: GRPO's / SFT's ``build``, ``validate``, ``dry_run`` and ``train``

The names below are importable from ``proguard.train`` directly; each loads its module on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TrainError": "errors",
    "Recipe": "recipe", "RecipeError": "recipe", "load_recipe": "recipe",
    "SFTRecipe": "recipe", "load_sft_recipe": "recipe",
    "GuardGRPOTrainer": "grpo_trainer", "GuardSFTTrainer": "sft_trainer", "train_sft": "sft",
    "build_train_dataset": "dataset", "check_dataset": "dataset", "dataset_summary": "dataset",
    "render_messages": "dataset",
    "load_processor": "policy", "prepare_policy_dir": "policy", "resolve_model_path": "policy",
    "Alignment": "checks", "check_image_token_alignment": "checks", "enforce_prompt_lengths": "checks",
    "prompt_lengths": "checks",
    "Setup": "runner", "latest_checkpoint": "runner", "save_final": "runner",
    "build_grpo_config": "run", "build_trainer": "run", "dry_run": "run", "train": "run", "validate": "run",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'proguard.train' has no attribute {name!r}")
    return getattr(importlib.import_module(f"proguard.train.{_EXPORTS[name]}"), name)
