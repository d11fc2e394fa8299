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

import dataclasses
import importlib.util
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proguard.train.checkpoints import describe_skipped, find_resumable, remove_staging, set_aside, truncate_metrics
from proguard.train.checks import (
    Alignment,
    check_image_token_alignment,
    check_media_token_alignment,
    enforce_prompt_lengths,
    media_prompt_lengths,
    prompt_lengths,
)
from proguard.train.dataset import build_train_dataset, dataset_summary, render_messages, row_names
from proguard.train.errors import TrainError, TrainInputError
from proguard.train.grpo_args import grpo_config_kwargs, prompts_per_step
from proguard.train.policy import is_omni_policy, load_processor, media_inputs, prepare_policy_dir, resolve_model_path
from proguard.train.recipe import Recipe, recipe_to_yaml
from proguard.train.rollout import rollout_backend
from proguard.train.trainer import guard_trainer_class, metrics_callback

FINAL_DIR = "final"
POLICY_INIT_DIR = "policy-init"
METRICS_FILE = "metrics.jsonl"
RECIPE_FILE = "recipe.yaml"
REWARD_NAME = "proguard"
"""TRL logs the composite reward's total as ``rewards/proguard/mean``."""


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def build_grpo_config(r: Recipe):
    """``trl.GRPOConfig`` for the recipe and this launch's number of processes."""
    import torch
    from trl import GRPOConfig

    kwargs = grpo_config_kwargs(r, world_size=_world_size())
    # transformers 5.x renamed gradient_checkpointing to activation_checkpointing and warns on every run
    # given the old name: pass the name this transformers has (the old one where it is all there is).
    if "activation_checkpointing" in {f.name for f in dataclasses.fields(GRPOConfig)}:
        kwargs["activation_checkpointing"] = kwargs.pop("gradient_checkpointing")
    if not torch.cuda.is_available():
        mps = getattr(torch.backends, "mps", None)
        if kwargs.get("bf16") and not (mps is not None and mps.is_available()):
            raise TrainError("grpo.bf16 is true but no CUDA device is present; set grpo.bf16=false to train on CPU")
        kwargs["use_cpu"] = True
    if "wandb" in kwargs["report_to"] and importlib.util.find_spec("wandb") is None:
        raise TrainError("logging.report_to lists wandb but wandb is not installed: pip install wandb")
    if "tensorboard" in kwargs["report_to"] and importlib.util.find_spec("tensorboard") is None:
        raise TrainError("logging.report_to lists tensorboard but tensorboard is not installed: pip install tensorboard")
    if r.logging.wandb_project:
        os.environ.setdefault("WANDB_PROJECT", r.logging.wandb_project)
    try:
        return GRPOConfig(**kwargs)
    except ValueError as exc:
        raise TrainError(f"trl.GRPOConfig rejected the recipe: {exc}") from None


def _peft_config(r: Recipe):
    if not r.peft.enabled:
        return None
    try:
        from peft import LoraConfig
    except ImportError:
        raise TrainError("peft.enabled is true but peft is not installed: pip install 'proguard[peft]'") from None
    targets: Any = r.peft.target_modules
    if targets == ["all-linear"]:
        targets = "all-linear"
    return LoraConfig(
        r=r.peft.r, lora_alpha=r.peft.lora_alpha, lora_dropout=r.peft.lora_dropout, target_modules=targets,
        task_type="CAUSAL_LM",
    )


@dataclass
class Setup:
    """What ``build_trainer`` assembled, for the caller to inspect before training."""

    trainer: Any
    processor: Any
    model_path: str
    alignment: Alignment | None
    dataset: Any


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
    out = Path(r.output_dir)
    state = PartialState()

    ds = train_dataset if train_dataset is not None else build_train_dataset(r)
    model_path = resolve_model_path(r, allow_download=allow_download)
    processor = load_processor(model_path, r)
    from transformers import ProcessorMixin

    if (r.images.max_pixels or r.images.min_pixels) and isinstance(processor, ProcessorMixin):
        with state.local_main_process_first():
            if state.is_local_main_process:
                prepare_policy_dir(model_path, processor, out / POLICY_INIT_DIR)
        model_path = str(out / POLICY_INIT_DIR)
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
    trainer = guard_trainer_class()(
        model=model_path,
        reward_funcs=reward_funcs,
        args=args,
        train_dataset=ds,
        processing_class=processor,
        peft_config=_peft_config(r),
        callbacks=[metrics_callback(out / METRICS_FILE), *callbacks],
    )
    trainer.omni_policy, trainer.omni_inputs, trainer.media_limits = omni, encoder, r.data.media
    if encoder is not None:
        encoder.fps = r.data.media.video_fps
    rollout.attach(trainer)
    trainer.proguard_recipe = r  # the model cards of checkpoints name the recipe and base model
    return Setup(trainer, processor, model_path, alignment, ds)



# ---------------------------------------------------------------------------------------------
# Validation and preview (no model)
# ---------------------------------------------------------------------------------------------
def validate(r: Recipe) -> list:
    """Check what the schema cannot: the taxonomy loads, every reward resolves and takes its options.

    Returns the reward specs (parsed once, at load). Reward modules are resolved and checked against
    the reward contract, not built, so nothing heavy loads; the build runs the same check.
    """
    from proguard.scoring.registry import RewardRegistryError, check_options, default_registry
    from taxonomy import TaxonomyError, load_taxonomy

    if not r.data.prepared:
        try:
            load_taxonomy(r.data.taxonomy)
        except TaxonomyError as exc:
            raise TrainInputError(f"data.taxonomy: {exc}") from None
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
def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest *complete* ``checkpoint-N`` in ``output_dir`` (``None`` if there is none).

    Incomplete ones (a save cut short: no trainer_state.json, truncated weights or optimizer) are
    passed over; ``find_resumable`` says which and why.
    """
    return find_resumable(output_dir)[0]


def _prepare_output_dir(out: Path, resume: bool) -> Path | None:
    """The checkpoint to resume from (``None``: a fresh run), after setting incomplete ones aside."""
    if out.exists() and not out.is_dir():
        raise TrainInputError(f"output_dir {out}: exists and is a file, not a directory")
    remove_staging(out)  # a save killed before its rename: the project's own scratch
    checkpoint, skipped = find_resumable(out)
    if resume and checkpoint is None:
        why = f" (incomplete: {describe_skipped(skipped)})" if skipped else ""
        raise TrainInputError(f"--resume: no complete checkpoint-N directory in {out} to resume from{why}")
    if not resume and checkpoint is not None:
        raise TrainInputError(
            f"output_dir {out} already holds {checkpoint.name}; pass --resume to continue that run, "
            "or choose another output_dir"
        )
    for path, why in skipped:  # kept for inspection, but out of the way of the saves to come
        moved = set_aside(path)
        print(f"[proguard] skipping {path.name}: {why}; moved it to {moved.name}", flush=True)
    if checkpoint is not None:
        print(f"[proguard] resuming from {checkpoint.name}", flush=True)
    return checkpoint


def train(
    r: Recipe, *, resume: bool = False, callbacks: Sequence[Any] = (), allow_download: bool = False, **overrides: Any
) -> Path:
    """Train per the recipe and save ``<output_dir>/final``; ``resume`` continues the newest complete checkpoint.

    A fresh run is refused only by a complete checkpoint (``--resume`` continues it); incomplete ones
    are renamed ``incomplete-checkpoint-N`` with a message, in both modes.
    """
    out = Path(r.output_dir)
    checkpoint = _prepare_output_dir(out, resume)
    setup = build_trainer(r, callbacks=callbacks, allow_download=allow_download, **overrides)
    trainer = setup.trainer
    if trainer.is_world_process_zero():
        out.mkdir(parents=True, exist_ok=True)
        if checkpoint is not None:  # the steps after the checkpoint are trained (and logged) again
            step = int(json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))["global_step"])
            truncate_metrics(out / METRICS_FILE, step)
        (out / RECIPE_FILE).write_text(recipe_to_yaml(r), encoding="utf-8")
        if setup.alignment is not None:
            a = setup.alignment
            print(
                f"[proguard] image tokens aligned on row {a.row + 1}: {a.prompt_tokens} prompt tokens = "
                f"{a.vision_features} vision features",
                flush=True,
            )
    trainer.train(resume_from_checkpoint=str(checkpoint) if resume else None)
    return save_final(trainer, setup.processor, out / FINAL_DIR, merge_lora=r.peft.enabled, recipe=r)


def save_final(trainer, processor, final_dir: Path, *, merge_lora: bool = False, recipe: Recipe | None = None) -> Path:
    """Model (LoRA merged), processor, tokenizer, generation config and model card, loadable by transformers and vLLM."""
    if merge_lora:
        model = trainer.accelerator.unwrap_model(trainer.model)
        if trainer.is_deepspeed_enabled and trainer.accelerator.state.deepspeed_plugin.zero_stage == 3:
            raise TrainError("merging LoRA adapters under ZeRO-3 is not supported; train LoRA with ZeRO-2")
        if trainer.is_world_process_zero():
            merged = model.merge_and_unload()
            merged.save_pretrained(final_dir)
    else:
        trainer.save_model(str(final_dir))  # gathers ZeRO-3 shards; every process must call it
    if trainer.is_world_process_zero():
        processor.save_pretrained(final_dir)
        getattr(processor, "tokenizer", processor).save_pretrained(final_dir)
        if getattr(trainer, "omni_policy", False):  # its image processor and audio features reload with it
            from proguard.models.tiny_omni import save_omni_inputs

            save_omni_inputs(trainer.omni_inputs, final_dir)
        model = trainer.accelerator.unwrap_model(trainer.model)
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.save_pretrained(final_dir)
        if recipe is not None:
            from proguard.train.model_card import write_model_card

            write_model_card(final_dir, recipe)
    trainer.accelerator.wait_for_everyone()
    return final_dir


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
    "enforce_prompt_lengths",
    "latest_checkpoint",
    "load_processor",
    "prepare_policy_dir",
    "prompt_lengths",
    "render_messages",
    "dry_run",
    "validate",
    "resolve_model_path",
    "save_final",
    "train",
]
