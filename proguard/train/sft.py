"""Supervised fine-tuning of a guard on distilled critiques: TRL's ``SFTTrainer``, loss on the assistant turn only.

``train_sft(recipe)`` builds the conversations (``proguard.train.sft_data``: a ``proguard distill``
dataset, or the template teacher inline), loads the policy's processor (with the recipe's pixel
budget), checks every row fits ``lengths.max_length`` and trains with ``assistant_only_loss=True``:
TRL's vision-language collator renders each conversation with a training variant of the chat
template whose ``{% generation %}`` markers cover the assistant turn (TRL ships one for the
Qwen2.5-VL template the tiny model and the hub checkpoints use), so the prompt, the policy text and
the image tokens carry no loss. ``final/`` holds the model, processor and generation config: a
valid ``model.name_or_path`` for ``proguard train`` (GRPO from the warm start).

The run itself (output dir, ``--resume``, staged checkpoints, ``metrics.jsonl`` kept in step on resume,
``final/``, the model card at the end) is ``proguard.train.runner.run``, the same as ``proguard train``'s.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from proguard.train.errors import TrainError
from proguard.train.recipe import SFTRecipe, recipe_to_yaml, sft_config_kwargs
from proguard.train.runner import Setup, make_trainer, policy_with_budget, run, trl_config

SFTSetup = Setup
"""What ``build_sft_trainer`` assembled (the runner's ``Setup``)."""


def build_sft_config(r: SFTRecipe):
    """``trl.SFTConfig`` for the recipe (CPU when no CUDA device is present)."""
    from trl import SFTConfig

    return trl_config(SFTConfig, sft_config_kwargs(r), section="sft", wandb_project=r.logging.wandb_project)


def build_sft_trainer(r: SFTRecipe, *, train_dataset=None, callbacks: Sequence[Any] = ()) -> Setup:
    """Dataset, processor, length check and the ``GuardSFTTrainer`` (``train_dataset`` overrides the recipe's data)."""
    from accelerate import PartialState

    from proguard.train.policy import check_policy_modalities, load_processor, resolve_model_path
    from proguard.train.sft_data import build_sft_dataset, enforce_lengths, sequence_lengths
    from proguard.models.smolvlm import sft_processor
    from proguard.train.sft_trainer import GuardSFTTrainer

    args = build_sft_config(r)
    state = PartialState()
    with state.main_process_first():  # inline distillation writes files: the main process first, others reuse its cache
        ds = train_dataset if train_dataset is not None else build_sft_dataset(r, progress=state.is_main_process)
    model_path = resolve_model_path(r)  # type: ignore[arg-type]  # reads model.name_or_path only
    processor = load_processor(model_path, r)  # type: ignore[arg-type]  # reads model.* and images.*
    processor = sft_processor(processor)  # Idefics3/SmolVLM: assistant masks on image batches (transformers bug)
    check_policy_modalities(model_path, processor, set(ds["modality"]), r)
    model_path = policy_with_budget(r, model_path, processor, state)
    ds = enforce_lengths(ds, sequence_lengths(processor, ds), r)
    from transformers import ProcessorMixin

    # a text-only policy (its processor is the tokenizer) gets no images column: TRL would take it for a VLM dataset
    rows, ds = ds, ds.select_columns(["messages", "images"] if isinstance(processor, ProcessorMixin) else ["messages"])
    trainer = make_trainer(GuardSFTTrainer, r, model_path=model_path, args=args, dataset=ds, processor=processor,
                           callbacks=callbacks, label_rows=rows)
    trainer.decision_token_weight = r.sft.decision_token_weight
    return Setup(trainer, processor, model_path, ds)


def validate_sft(r: SFTRecipe) -> None:
    """What the schema cannot check without data or models: the inline distillation's taxonomy loads and
    holds every held-out ID."""
    from proguard.train.dataset import check_holdout

    if r.data.distill is not None:
        check_holdout(r.data.distill.taxonomy, r.data.distill.tasks, "data.distill.tasks")


def dry_run_sft(r: SFTRecipe) -> str:
    """The resolved recipe, the data counts and one rendered training conversation per modality; no model, no files."""
    import datasets

    from proguard.train.dataset import render_messages
    from proguard.train.sft_data import (
        _label_only,
        check_sft_dataset,
        distill_inline,
        resolve_dataset_path,
        sft_summary,
    )

    validate_sft(r)
    lines = ["# resolved recipe", recipe_to_yaml(r).rstrip(), ""]
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
                                                                           if r.data.label_only else "")
                 + (f", decision tokens weighted {r.sft.decision_token_weight:g} (sft.decision_token_weight)"
                    if r.sft.decision_token_weight != 1.0 else ""))
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


def train_sft(r: SFTRecipe, *, resume: bool = False, callbacks: Sequence[Any] = (), progress: Any = None) -> Path:
    """Fine-tune per the recipe and save ``<output_dir>/final`` (``proguard.train.runner.run``, as GRPO does).
    ``progress``: a callback in place of transformers' progress bar and log printer (as in ``train``)."""

    def build() -> Setup:
        validate_sft(r)
        return build_sft_trainer(r, callbacks=callbacks)

    return run(r, build, resume=resume, method="SFT", progress=progress)
