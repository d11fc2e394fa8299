"""The one training run, for every method (GRPO, SFT): output dir, resume, recipe.yaml, train, ``final/``, model card.

``run(recipe, build, resume=...)`` prepares ``output_dir`` (a leftover staging dir removed, incomplete
checkpoints set aside, a fresh run refused where a complete checkpoint exists, ``--resume`` refused
where none does), calls ``build()`` for the method's trainer, drops the ``metrics.jsonl`` rows a
resumed run logs again, writes ``recipe.yaml``, trains, saves ``final/`` (LoRA merged) and writes the
model card once, at the end, into ``output_dir`` and ``final/``. ``trl_config`` builds a TRL config
(``GRPOConfig`` or ``SFTConfig``) with the checks both need (CPU vs bf16, reporters installed).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proguard.train.checkpoints import describe_skipped, find_resumable, remove_staging, set_aside, truncate_metrics
from proguard.train.errors import TrainError, TrainInputError
from proguard.train.recipe import recipe_to_yaml

FINAL_DIR = "final"
POLICY_INIT_DIR = "policy-init"
METRICS_FILE = "metrics.jsonl"
RECIPE_FILE = "recipe.yaml"
TRAIN_LEGACY = ("checkpoint-*", "incomplete-checkpoint-*", ".partial-checkpoint-*", METRICS_FILE, RECIPE_FILE, FINAL_DIR,
                POLICY_INIT_DIR)
"""What a training run wrote before output folders carried a marker (proguard.outputs)."""


@dataclass
class Setup:
    """What a method's ``build`` assembled, for the caller to inspect before training."""

    trainer: Any
    processor: Any
    model_path: str
    dataset: Any
    alignment: Any = None  # GRPO: where the image tokens were checked against the vision features
    started: Callable[[], None] | None = None  # printed on the main process once the output dir is ready


def trl_config(config_cls: type, kwargs: dict[str, Any], *, section: str, wandb_project: str | None = None) -> Any:
    """``config_cls(**kwargs)`` for this machine: CPU when no CUDA device is present, reporters checked installed."""
    import torch

    kwargs = dict(kwargs)
    # transformers 5.x renamed gradient_checkpointing to activation_checkpointing and warns on every run
    # given the old name: pass the name this transformers has (the old one where it is all there is).
    if "activation_checkpointing" in {f.name for f in dataclasses.fields(config_cls)} and \
            "gradient_checkpointing" in kwargs:
        kwargs["activation_checkpointing"] = kwargs.pop("gradient_checkpointing")
    if not torch.cuda.is_available():
        mps = getattr(torch.backends, "mps", None)
        if kwargs.get("bf16") and not (mps is not None and mps.is_available()):
            raise TrainError(f"{section}.bf16 is true but no CUDA device is present; set {section}.bf16=false to "
                             "train on CPU")
        kwargs["use_cpu"] = True
    for name in ("wandb", "tensorboard"):
        if name in kwargs.get("report_to", ()) and importlib.util.find_spec(name) is None:
            raise TrainError(f"logging.report_to lists {name} but {name} is not installed: pip install {name}")
    if wandb_project:
        os.environ.setdefault("WANDB_PROJECT", wandb_project)
    try:
        return config_cls(**kwargs)
    except ValueError as exc:
        raise TrainError(f"trl.{config_cls.__name__} rejected the recipe: {exc}") from None


def make_trainer(cls: type, r: Any, *, model_path: str, args: Any, dataset: Any, processor: Any,
                 callbacks: Any = (), label_rows: Any = None, **kwargs: Any) -> Any:
    """``cls`` (``GuardGRPOTrainer``, ``GuardSFTTrainer``) with what every proguard run gives it: the policy dir,
    the TRL config, the data, the processor, the LoRA config and the ``metrics.jsonl`` callback first.

    With ``data.balance_labels`` the sampler's label strata are read from ``label_rows`` (the same rows as
    ``dataset`` in the same order, before columns the trainer does not take were dropped; default ``dataset``).
    """
    from proguard.train.trainer import metrics_callback
    from proguard.train.trainer_mixins import label_strata

    strata = label_strata(dataset if label_rows is None else label_rows) if r.data.balance_labels else None
    trainer = cls(
        model=model_path, args=args, train_dataset=dataset, processing_class=processor, peft_config=peft_config(r),
        callbacks=[metrics_callback(Path(r.output_dir) / METRICS_FILE), *callbacks], **kwargs,
    )
    trainer.proguard_label_strata = strata
    if r.model.freeze_layers:  # before train() builds the optimizer, which takes the trainable weights only
        from proguard.train.freezing import freeze_lower_layers

        freeze_lower_layers(trainer.model, r.model.freeze_layers)
    return trainer


def peft_config(r: Any):
    """The recipe's ``peft`` section as a ``peft.LoraConfig`` (``None`` when off)."""
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


def policy_with_budget(r: Any, model_path: str, processor: Any, state: Any) -> str:
    """The policy dir the trainer loads: ``model_path``, or ``<output_dir>/policy-init`` with the pixel budget."""
    from transformers import ProcessorMixin

    from proguard.train.policy import prepare_policy_dir

    if not (r.images.max_pixels or r.images.min_pixels) or not isinstance(processor, ProcessorMixin):
        return model_path
    out = Path(r.output_dir) / POLICY_INIT_DIR
    with state.local_main_process_first():
        if state.is_local_main_process:
            prepare_policy_dir(model_path, processor, out)
    return str(out)


# ---------------------------------------------------------------------------------------------
# Output dir and resume
# ---------------------------------------------------------------------------------------------
def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest *complete* ``checkpoint-N`` in ``output_dir`` (``None`` if there is none).

    Incomplete ones (a save cut short: no trainer_state.json, truncated weights or optimizer) are
    passed over; ``find_resumable`` says which and why.
    """
    return find_resumable(output_dir)[0]


def prepare_output_dir(out: Path, resume: bool) -> Path | None:
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


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------
def run(r: Any, build: Callable[[], Setup], *, resume: bool = False, method: str, progress: Any = None) -> Path:
    """Train per the recipe and save ``<output_dir>/final``; ``resume`` continues the newest complete checkpoint.

    A fresh run is refused only by a complete checkpoint (``--resume`` continues it); incomplete ones
    are renamed ``incomplete-checkpoint-N`` with a message, in both modes. ``output_dir`` is locked for
    the whole run (``proguard.outputs.output_run``): a second run on it fails at once, naming this one.
    """
    from proguard.outputs import output_run

    # locked, then claimed: new, empty, or this project's training output (older runs: by what they hold)
    with output_run(r.output_dir, "train", command=method.lower(), legacy=TRAIN_LEGACY):
        return _run(r, build, resume=resume, method=method, progress=progress)


def _run(r: Any, build: Callable[[], Setup], *, resume: bool, method: str, progress: Any) -> Path:
    out = Path(r.output_dir)
    checkpoint = prepare_output_dir(out, resume)
    setup = build()
    trainer = setup.trainer
    if progress is not None:  # one line per step (the quick start) in place of transformers' printer
        from proguard.train.trainer import replace_progress

        replace_progress(trainer, progress)
    trainer.proguard_recipe = r  # checkpoints write no card: the one below, at the end, names recipe and base
    if trainer.is_world_process_zero():
        out.mkdir(parents=True, exist_ok=True)
        if checkpoint is not None:  # the steps after the checkpoint are trained (and logged) again
            step = int(json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))["global_step"])
            truncate_metrics(out / METRICS_FILE, step)
        (out / RECIPE_FILE).write_text(recipe_to_yaml(r), encoding="utf-8")
        if setup.started is not None:
            setup.started()
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint is not None else None)
    final = save_final(trainer, setup.processor, out / FINAL_DIR, merge_lora=r.peft.enabled)
    if trainer.is_world_process_zero():
        from proguard.train.model_card import write_model_card

        for directory in (out, final):
            write_model_card(directory, r, method=method)
    trainer.accelerator.wait_for_everyone()
    return final


def save_final(trainer, processor, final_dir: Path, *, merge_lora: bool = False) -> Path:
    """Model (LoRA merged), processor, tokenizer and generation config, loadable by transformers and vLLM."""
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
    trainer.accelerator.wait_for_everyone()
    return final_dir
