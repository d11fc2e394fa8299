"""GRPO training of a guard: recipe -> task dataset, composite reward, ``GuardGRPOTrainer``, ``final/``.

``train(recipe)`` builds the training prompts (``proguard.train.dataset``), the reward from the
recipe's ``rewards`` (``proguard.scoring.compose.build_reward``, from the specs parsed at load) and a
``GuardGRPOTrainer`` for the policy, runs the start-up checks (``proguard.train.checks``) before any
weights load, prepares and attaches the rollout backend (``proguard.train.rollout``), trains
(resuming from the latest checkpoint with ``resume=True``) and saves ``<output_dir>/final`` so
transformers and ``vllm serve`` load it.

Besides TRL's own metrics (``reward``, ``rewards/<fn>/mean``, ``kl``, ``entropy``,
``completions/mean_length``...), every logging step records the reward's components
(``reward/<name>/mean``), ``format/valid_rate`` and ``data/ood_share`` (all logged by the composite
reward from its one parse of the batch); all of them go to the recipe's reporters and to
``<output_dir>/metrics.jsonl``.

Run it with ``proguard train RECIPE.yaml`` (or ``accelerate launch -m proguard.cli train ...``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from proguard.train.checks import (
    Alignment,
    check_image_token_alignment,
    check_media_token_alignment,
    enforce_prompt_lengths,
    media_prompt_lengths,
    prompt_lengths,
)
from proguard.train.dataset import (
    build_train_dataset,
    check_dataset,
    check_holdout,
    dataset_summary,
    render_messages,
    row_names,
)
from proguard.train.errors import TrainError, TrainInputError
from proguard.models.smolvlm import skip_padding_only_images
from proguard.train.policy import (
    check_policy_modalities,
    is_omni_policy,
    load_processor,
    media_inputs,
    prepare_policy_dir,
    resolve_model_path,
)
from proguard.train.recipe import Recipe, grpo_config_kwargs, prompts_per_step, recipe_to_yaml
from proguard.train.rollout import rollout_backend
from proguard.train.runner import (
    Setup,
    latest_checkpoint,
    make_trainer,
    policy_with_budget,
    run,
    save_final,
    trl_config,
)

REWARD_NAME = "proguard"
"""TRL logs the composite reward's total as ``rewards/proguard/mean``."""


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def build_grpo_config(r: Recipe):
    """``trl.GRPOConfig`` for the recipe and this launch's number of processes."""
    from trl import GRPOConfig

    return trl_config(GRPOConfig, grpo_config_kwargs(r, world_size=_world_size()), section="grpo",
                      wandb_project=r.logging.wandb_project)


def build_trainer(
    r: Recipe,
    *,
    train_dataset=None,
    reward_funcs: Callable | Sequence[Callable] | None = None,
    callbacks: Sequence[Any] = (),
    allow_download: bool = False,
) -> Setup:
    """Dataset, reward, processor, checks and the ``GRPOTrainer`` (``train_dataset``/``reward_funcs`` override the recipe)."""
    from accelerate import PartialState
    from transformers import AutoConfig

    rollout = rollout_backend(r)
    rollout.check()
    args = build_grpo_config(r)
    state = PartialState()

    ds = train_dataset if train_dataset is not None else build_train_dataset(r)
    model_path = resolve_model_path(r, allow_download=allow_download)
    processor = load_processor(model_path, r)
    check_policy_modalities(model_path, processor, set(ds["modality"]), r)
    model_path = policy_with_budget(r, model_path, processor, state)
    model_config = AutoConfig.from_pretrained(model_path, trust_remote_code=r.model.trust_remote_code)
    modalities = set(ds["modality"])
    rollout.check_media(modalities, model_config)
    omni = is_omni_policy(model_config)
    audio = sorted(m for m in modalities if m.endswith("audio"))
    if audio and not omni:
        raise TrainError(
            f"the training data has {', '.join(audio)} samples but the policy ({type(model_config).__name__}) has no "
            "audio encoder: train an omni policy (model.name_or_path: tiny-omni, or a Qwen2.5-Omni checkpoint) "
            "or leave audio out with data.modalities"
        )
    needs_media = omni or any(m.endswith(("video", "audio")) for m in modalities)
    encoder = media_inputs(model_path, processor, model_config) if needs_media else None
    alignment = None if omni else check_image_token_alignment(processor, model_config, ds)
    if encoder is not None:
        check_media_token_alignment(encoder, model_config, ds)
    rollout.prepare(args, model_config)
    lengths = media_prompt_lengths(encoder, ds) if omni else prompt_lengths(processor, ds)
    ds = enforce_prompt_lengths(ds, lengths, r)

    if reward_funcs is None:
        from proguard.scoring.compose import build_reward

        reward_funcs = build_reward(r.reward_specs(), name=REWARD_NAME)
    from proguard.train.grpo_trainer import GuardGRPOTrainer

    trainer = make_trainer(GuardGRPOTrainer, r, model_path=model_path, args=args, dataset=ds, processor=processor,
                           callbacks=callbacks, reward_funcs=reward_funcs)
    trainer.omni_policy, trainer.omni_inputs, trainer.media_limits = omni, encoder, r.data.media
    for policy in (trainer.model, getattr(trainer, "ref_model", None)):  # Idefics3: text-only micro-batches
        skip_padding_only_images(policy)
    if encoder is not None:
        encoder.fps = r.data.media.video_fps
    rollout.attach(trainer)
    return Setup(trainer, processor, model_path, ds, alignment, started=lambda: _report_alignment(alignment))


def _report_alignment(a: Alignment | None) -> None:
    if a is not None:
        print(f"[proguard] image tokens aligned on row {a.row + 1}: {a.prompt_tokens} prompt tokens = "
              f"{a.vision_features} vision features", flush=True)



# ---------------------------------------------------------------------------------------------
# Validation and preview (no model)
# ---------------------------------------------------------------------------------------------
def validate(r: Recipe) -> list:
    """Check what the schema cannot, without a model: the taxonomy loads and holds every held-out ID, every
    reward resolves and takes its options (modalities and backends are checked by the schema).

    Returns the reward specs (parsed once, at load). Reward modules are resolved and checked against
    the reward contract, not built, so nothing heavy loads; the build runs the same check.
    """
    from proguard.scoring.registry import RewardRegistryError, check_options, default_registry

    if not r.data.prepared:
        check_holdout(r.data.taxonomy, r.data.tasks, "data.tasks")
    specs = r.reward_specs()
    registry = default_registry()
    for i, spec in enumerate(specs):
        try:
            check_options(spec.name, registry.resolve(spec.name), spec.options)
        except RewardRegistryError as exc:
            raise TrainInputError(f"rewards[{i}]: {exc}") from None
    return specs


def dry_run(r: Recipe) -> str:
    """The resolved recipe, a rendered sample prompt per modality, dataset counts and the reward list."""
    specs = validate(r)
    ds = build_train_dataset(r)
    lines = ["# resolved recipe", recipe_to_yaml(r).rstrip(), ""]
    summary = dataset_summary(ds)
    lines += ["# training data", json.dumps(summary, indent=2), ""]
    lines.append(
        f"# batch: {prompts_per_step(r, 1):g} prompts x {r.grpo.num_generations} rollouts per optimizer step "
        "on 1 process (scales with the number of processes unless grpo.prompts_per_step is set)"
    )
    lines += [f"# {note}" for note in rollout_backend(r).notes()]
    lines.append("")
    lines.append("# rewards (total = product of gates x weighted sum of the rest)")
    for spec in specs:
        role = "gate" if spec.gate else f"weight {spec.weight:g}"
        options = f" options {json.dumps(dict(spec.options))}" if spec.options else ""
        lines.append(f"- {spec.name}: {role}{options}")
    lines.append("")
    shown: set[str] = set()
    names = row_names(ds)
    for i, modality in enumerate(ds["modality"]):
        if modality in shown:
            continue
        shown.add(modality)
        lines += [f"# sample prompt ({modality}, {names[i]})", render_messages(ds[i]["prompt"]), ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Run
# ---------------------------------------------------------------------------------------------
def train(
    r: Recipe, *, resume: bool = False, callbacks: Sequence[Any] = (), allow_download: bool = False,
    progress: Any = None, **overrides: Any
) -> Path:
    """GRPO-train per the recipe and save ``<output_dir>/final`` (``proguard.train.runner.run``: output dir,
    resume, ``final/``, model card); ``resume`` continues the newest complete checkpoint. ``progress``: a
    callback that replaces transformers' progress bar and log printer (``proguard.train.trainer.replace_progress``)."""
    return run(r, lambda: build_trainer(r, callbacks=callbacks, allow_download=allow_download, **overrides),
               resume=resume, method="GRPO", progress=progress)


__all__ = [
    "Alignment",
    "Setup",
    "TrainError",
    "build_grpo_config",
    "build_train_dataset",
    "build_trainer",
    "check_dataset",
    "check_image_token_alignment",
    "dataset_summary",
    "dry_run",
    "enforce_prompt_lengths",
    "latest_checkpoint",
    "load_processor",
    "prepare_policy_dir",
    "prompt_lengths",
    "render_messages",
    "resolve_model_path",
    "save_final",
    "train",
    "validate",
]
