"""Supervised fine-tuning of a guard on distilled critiques: TRL's ``SFTTrainer``, loss on the assistant turn only.

``train_sft(recipe)`` builds the conversations (``proguard.train.sft_data``: a ``proguard distill``
dataset, or the template teacher inline), loads the policy's processor (with the recipe's pixel
budget), checks every row fits ``lengths.max_length`` and trains with ``assistant_only_loss=True``:
TRL's vision-language collator renders each conversation with a training variant of the chat
template whose ``{% generation %}`` markers cover the assistant turn (TRL ships one for the
Qwen2.5-VL template the tiny model and the hub checkpoints use), so the prompt, the policy text and
the image tokens carry no loss. ``final/`` holds the model, processor and generation config: a
valid ``model.name_or_path`` for ``proguard train`` (GRPO from the warm start).

Checkpoints, ``--resume``, ``metrics.jsonl`` and the reporters work as in ``proguard train``.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proguard.train.errors import TrainError
from proguard.train.sft_recipe import SFTRecipe, sft_recipe_to_yaml

FINAL_DIR = "final"
POLICY_INIT_DIR = "policy-init"
METRICS_FILE = "metrics.jsonl"
RECIPE_FILE = "recipe.yaml"


def sft_config_kwargs(r: SFTRecipe) -> dict[str, Any]:
    """Keyword arguments for ``trl.SFTConfig`` (no TRL import)."""
    s = r.sft
    init_kwargs: dict[str, Any] = {"dtype": r.model.dtype}
    if r.model.attn_implementation:
        init_kwargs["attn_implementation"] = r.model.attn_implementation
    kwargs: dict[str, Any] = {
        "output_dir": r.output_dir,
        "per_device_train_batch_size": s.per_device_train_batch_size,
        "gradient_accumulation_steps": s.gradient_accumulation_steps,
        "learning_rate": s.learning_rate,
        "lr_scheduler_type": s.lr_scheduler_type,
        "warmup_steps": s.warmup_steps,
        "weight_decay": s.weight_decay,
        "max_grad_norm": s.max_grad_norm,
        "num_train_epochs": s.num_train_epochs,
        "max_steps": s.max_steps,
        "bf16": s.bf16,
        "gradient_checkpointing": s.gradient_checkpointing,
        "seed": s.seed,
        "max_length": r.lengths.max_length,
        "assistant_only_loss": True,
        "packing": False,
        "model_init_kwargs": init_kwargs,
        "report_to": [] if r.logging.report_to == ["none"] else list(r.logging.report_to),
        "logging_steps": r.logging.logging_steps,
        "run_name": r.logging.run_name,
        "save_strategy": "steps",
        "save_steps": r.checkpoint.save_steps,
        "save_total_limit": r.checkpoint.save_total_limit,
        "save_only_model": False,  # resume restores the optimizer, scheduler and RNG states
        "disable_tqdm": False,
    }
    kwargs.update(s.extra)
    return kwargs


def build_sft_config(r: SFTRecipe):
    """``trl.SFTConfig`` for the recipe (CPU when no CUDA device is present)."""
    import torch
    from trl import SFTConfig

    kwargs = sft_config_kwargs(r)
    if not torch.cuda.is_available():
        if kwargs.get("bf16"):
            raise TrainError("sft.bf16 is true but no CUDA device is present; set sft.bf16=false to train on CPU")
        kwargs["use_cpu"] = True
    for name in ("wandb", "tensorboard"):
        if name in kwargs["report_to"] and importlib.util.find_spec(name) is None:
            raise TrainError(f"logging.report_to lists {name} but {name} is not installed: pip install {name}")
    if r.logging.wandb_project:
        os.environ.setdefault("WANDB_PROJECT", r.logging.wandb_project)
    try:
        return SFTConfig(**kwargs)
    except ValueError as exc:
        raise TrainError(f"trl.SFTConfig rejected the recipe: {exc}") from None


def guard_sft_trainer_class():
    """``GuardSFTTrainer``: ``SFTTrainer`` whose resume maps checkpoint keys back to the model's own names."""
    from trl import SFTTrainer

    from proguard.train.trainer import _read_checkpoint_weights, _tied_keys, _to_model_keys

    class GuardSFTTrainer(SFTTrainer):
        """``SFTTrainer`` with the checkpoint loader of ``GuardGRPOTrainer`` (transformers issue #43701)."""

        def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
            target = model if model is not None else self.model
            state = None
            if not (self.is_deepspeed_enabled or self.is_fsdp_enabled or hasattr(target, "peft_config")):
                state = _read_checkpoint_weights(Path(resume_from_checkpoint))
            if state is None:
                return super()._load_from_checkpoint(resume_from_checkpoint, model)
            result = target.load_state_dict(_to_model_keys(target, state), strict=False)
            missing = [k for k in result.missing_keys if k not in _tied_keys(target)]
            if missing or result.unexpected_keys:
                raise TrainError(
                    f"--resume: {resume_from_checkpoint} does not match the model: {len(missing)} missing, "
                    f"{len(result.unexpected_keys)} unexpected weights"
                )

    return GuardSFTTrainer


@dataclass
class SFTSetup:
    """What ``build_sft_trainer`` assembled."""

    trainer: Any
    processor: Any
    model_path: str
    dataset: Any


def build_sft_trainer(r: SFTRecipe, *, train_dataset=None, callbacks: Sequence[Any] = ()) -> SFTSetup:
    """Dataset, processor, length check and the ``SFTTrainer`` (``train_dataset`` overrides the recipe's data)."""
    from accelerate import PartialState

    from proguard.train.run import _peft_config
    from proguard.train.policy import load_processor, prepare_policy_dir, resolve_model_path
    from proguard.train.sft_data import build_sft_dataset, enforce_lengths, sequence_lengths
    from proguard.train.trainer import metrics_callback

    args = build_sft_config(r)
    out = Path(r.output_dir)
    state = PartialState()
    with state.main_process_first():  # inline distillation writes files: the main process first, others reuse its cache
        ds = train_dataset if train_dataset is not None else build_sft_dataset(r, progress=state.is_main_process)
    model_path = resolve_model_path(r)  # type: ignore[arg-type]  # reads model.name_or_path only
    processor = load_processor(model_path, r)  # type: ignore[arg-type]  # reads model.* and images.*
    if r.images.max_pixels or r.images.min_pixels:
        with state.local_main_process_first():
            if state.is_local_main_process:
                prepare_policy_dir(model_path, processor, out / POLICY_INIT_DIR)
        model_path = str(out / POLICY_INIT_DIR)
    ds = enforce_lengths(ds, sequence_lengths(processor, ds), r)
    keep = ["messages", "images"]
    ds = ds.select_columns(keep)
    trainer = guard_sft_trainer_class()(
        model=model_path,
        args=args,
        train_dataset=ds,
        processing_class=processor,
        peft_config=_peft_config(r),  # type: ignore[arg-type]  # reads peft.* only
        callbacks=[metrics_callback(out / METRICS_FILE), *callbacks],
    )
    return SFTSetup(trainer, processor, model_path, ds)


def validate_sft(r: SFTRecipe) -> None:
    """What the schema cannot check without data or models: the inline distillation's taxonomy loads."""
    from taxonomy import TaxonomyError, load_taxonomy

    if r.data.distill is not None:
        try:
            load_taxonomy(r.data.distill.taxonomy)
        except TaxonomyError as exc:
            raise TrainError(f"data.distill.taxonomy: {exc}") from None


def dry_run_sft(r: SFTRecipe) -> str:
    """The resolved recipe, the data counts and one rendered training conversation per modality; no model, no files."""
    import datasets

    from proguard.train.dataset import render_messages
    from proguard.train.sft_data import _label_only, check_sft_dataset, distill_inline, resolve_dataset_path, sft_summary

    validate_sft(r)
    lines = ["# resolved recipe", sft_recipe_to_yaml(r).rstrip(), ""]
    examples: list[tuple[str, str, list]] = []
    if r.data.dataset is not None:
        path = resolve_dataset_path(r.data.dataset)
        if not path.exists():
            lines += ["# training data", f"{path} does not exist here (write it with proguard distill; training needs it)", ""]
        else:
            ds = datasets.load_from_disk(str(path))
            check_sft_dataset(ds, str(path))
            lines += ["# training data", json.dumps(sft_summary(ds), indent=2), ""]
            for i, modality in enumerate(ds["modality"]):
                if modality not in {m for m, _, _ in examples}:
                    examples.append((modality, ds[i]["task_id"], ds[i]["messages"]))
    else:
        from proguard.distill.gold import Gold, check_answer

        tasks, taxonomy, teacher = distill_inline(r, None)
        lines += ["# training data (distilled inline by the template teacher)",
                  json.dumps({"tasks": len(tasks), "by_modality": dict(sorted(_count(tasks["modality"]).items()))},
                             indent=2), ""]
        for i, modality in enumerate(tasks["modality"]):
            if modality in {m for m, _, _ in examples}:
                continue
            gold = Gold.from_row(tasks[i], taxonomy, f"row {i + 1}")
            text = teacher.critique(gold)
            _, reason = check_answer(text, gold)
            if reason is not None:
                raise TrainError(f"the template teacher's answer for row {i + 1} fails its own check ({reason})")
            messages = [*tasks[i]["prompt"], {"role": "assistant", "content": [{"type": "text", "text": text}]}]
            examples.append((modality, tasks[i]["task_id"], messages))
    lines.append("# loss: assistant turn only (trl assistant_only_loss)" + (", <answer> block only (data.label_only)"
                                                                           if r.data.label_only else ""))
    lines.append(f"# batch: {r.sft.per_device_train_batch_size * r.sft.gradient_accumulation_steps} sequences per "
                 "optimizer step on 1 process")
    lines.append("")
    for modality, task_id, messages in examples:
        if r.data.label_only:
            messages = _label_only({"messages": messages})["messages"]
        lines += [f"# sample conversation ({modality}, {task_id})", render_messages(messages), ""]
    return "\n".join(lines)


def _count(values):
    from collections import Counter

    return Counter(values)


def train_sft(r: SFTRecipe, *, resume: bool = False, callbacks: Sequence[Any] = ()) -> Path:
    """Fine-tune per the recipe and save ``<output_dir>/final``; ``resume`` continues the latest checkpoint."""
    from proguard.train.run import latest_checkpoint, save_final

    out = Path(r.output_dir)
    checkpoint = latest_checkpoint(out)
    if resume and checkpoint is None:
        raise TrainError(f"--resume: no checkpoint-N directory in {out} to resume from")
    if not resume and checkpoint is not None:
        raise TrainError(
            f"output_dir {out} already holds {checkpoint.name}; pass --resume to continue that run, "
            "or choose another output_dir"
        )
    validate_sft(r)
    setup = build_sft_trainer(r, callbacks=callbacks)
    trainer = setup.trainer
    if trainer.is_world_process_zero():
        out.mkdir(parents=True, exist_ok=True)
        (out / RECIPE_FILE).write_text(sft_recipe_to_yaml(r), encoding="utf-8")
    trainer.train(resume_from_checkpoint=str(checkpoint) if resume else None)
    return save_final(trainer, setup.processor, out / FINAL_DIR, merge_lora=r.peft.enabled)
