"""The SFT recipe (``proguard sft``): a dataclass schema sharing the GRPO recipe's sections, loaded the same way.

``model``, ``images``, ``peft``, ``logging``, ``checkpoint`` and ``output_dir`` are the GRPO recipe's
own sections (``proguard.train.recipe``), so an SFT recipe and the GRPO recipe that continues from
its ``final/`` read alike. What differs: ``data`` (a distilled dataset, or distil one from labelled
samples with the offline template teacher first), ``lengths`` (one sequence budget) and ``sft``
(optimisation; each key maps onto the ``trl.SFTConfig`` field of the same name, rare ones go in
``sft.extra``). Loading merges schema defaults <- YAML <- ``key=value`` overrides and raises
``RecipeError`` naming the key and where it came from, exactly like ``load_recipe``. No torch or TRL
import at module level.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proguard.protocol import PromptConfig
from proguard.tasks.config import TaskError, TaskOptions
from proguard.train.recipe import (
    recipe_layers,
    BUNDLED,
    DTYPES,
    REPORTERS,
    CheckpointConfig,
    ImagesConfig,
    LoggingConfig,
    ModelConfig,
    PeftOptions,
    RecipeError,
    _check_sections,
    _key_message,
    _where,
)

TEACHERS_IN_RECIPES = ("template",)
"""Teachers a recipe may run inline; model teachers run through ``proguard distill`` (then ``data.dataset``)."""


@dataclass
class DistillSource:
    """Distil the SFT data first, from labelled samples, with the offline template teacher."""

    teacher: str = field(default="template", metadata={"help": "the inline teacher: template (offline, no model); "
                                                                "model teachers: run proguard distill, then data.dataset"})
    samples: str = field(default=BUNDLED, metadata={"help": "labelled samples file, or 'bundled'"})
    taxonomy: str = field(default="default", metadata={"help": "source taxonomy: bundled name or YAML path"})
    tasks: TaskOptions | None = field(default=None, metadata={"help": "task-generator options (as in the GRPO recipe's "
                                                                      "data.tasks); null: one plain task per sample"})
    split: str = field(default="train", metadata={"help": "which generated split to distil"})
    description_words: int = field(default=12, metadata={"help": "template teacher: words of the category description "
                                                                 "quoted in the critique (0: none)"})


@dataclass
class SFTDataConfig:
    """The SFT data: a dataset written by ``proguard distill``, or one distilled inline (``distill``)."""

    dataset: str | None = field(default=None, metadata={"help": "a distilled dataset: proguard distill's --out dir "
                                                                "(its dataset/) or the dataset dir itself"})
    distill: DistillSource | None = field(default=None, metadata={"help": "distil inline into <output_dir>/distill "
                                                                          "(set exactly one of dataset and distill)"})
    prompt: PromptConfig = field(default_factory=PromptConfig,
                                 metadata={"help": "inline distill: how the policy prompt is written (match the GRPO "
                                                   "recipe's data.prompt)"})
    label_only: bool = field(default=False, metadata={"help": "train on the <answer> block alone, the critique dropped "
                                                              "(OmniGuard's label-only ablation)"})
    max_samples: int | None = field(default=None, metadata={"help": "use only the first N rows"})
    modalities: list[str] | None = field(
        default=None,
        metadata={"help": "train only on these modalities (e.g. [text, image, text_image] for a vision-language "
                          "policy); the rows left out are counted and printed; null: all"},
    )


@dataclass
class SFTLengths:
    """Token budget of one training sequence (prompt, image tokens and the assistant answer)."""

    max_length: int = field(default=4096, metadata={"help": "longest sequence, in tokens"})
    overlong: str = field(default="error", metadata={"help": "a longer row: error (the default, naming the row) or "
                                                             "drop (counted and printed); never truncated"})


@dataclass
class SFTOptions:
    """Optimisation; each key maps onto the ``trl.SFTConfig`` field of the same name."""

    per_device_train_batch_size: int = field(default=4, metadata={"help": "sequences per device per micro-batch"})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "micro-batches per optimizer step"})
    learning_rate: float = field(default=1e-5, metadata={"help": "peak learning rate"})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "transformers scheduler name"})
    warmup_steps: float = field(default=0.0, metadata={"help": "warm-up steps (a float below 1: a ratio)"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping"})
    num_train_epochs: float = field(default=1.0, metadata={"help": "epochs (when max_steps is -1)"})
    max_steps: int = field(default=-1, metadata={"help": "optimizer steps; -1: run num_train_epochs"})
    bf16: bool = field(default=False, metadata={"help": "bfloat16 mixed precision (GPU)"})
    gradient_checkpointing: bool = field(default=True, metadata={"help": "recompute activations to save memory"})
    seed: int = field(default=42, metadata={"help": "seed of initialisation-free randomness: data order, dropout"})
    extra: dict[str, Any] = field(default_factory=dict, metadata={"help": "other trl.SFTConfig fields, checked by name"})


@dataclass
class SFTRecipe:
    """A whole SFT recipe (``recipes/<model>/sft.yaml``)."""

    model: ModelConfig = field(default_factory=ModelConfig, metadata={"help": "the policy to fine-tune"})
    images: ImagesConfig = field(default_factory=ImagesConfig, metadata={"help": "image pixel budget"})
    data: SFTDataConfig = field(default_factory=SFTDataConfig, metadata={"help": "the SFT data"})
    lengths: SFTLengths = field(default_factory=SFTLengths, metadata={"help": "token budget"})
    sft: SFTOptions = field(default_factory=SFTOptions, metadata={"help": "optimisation"})
    peft: PeftOptions = field(default_factory=PeftOptions, metadata={"help": "LoRA adapters, merged into final/"})
    logging: LoggingConfig = field(default_factory=LoggingConfig, metadata={"help": "reporters and logging steps"})
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig, metadata={"help": "checkpoints"})
    output_dir: str = field(default="runs/proguard-sft", metadata={"help": "checkpoints, logs, metrics.jsonl, final/"})


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------
def load_sft_recipe(path: str | Path | None, overrides: Sequence[str] = ()) -> SFTRecipe:
    """Schema defaults <- the YAML file <- ``key=value`` overrides, typed and checked (``RecipeError``)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    layers = recipe_layers(path, overrides, sections="model:, data:, sft: ...", example="sft.max_steps=10")
    merged = OmegaConf.structured(SFTRecipe)
    for origin, layer in layers:
        _check_sections(OmegaConf.to_container(layer, resolve=False), SFTRecipe, origin, prefix="")
        try:
            merged = OmegaConf.merge(merged, layer)
        except OmegaConfBaseException as exc:
            raise RecipeError(f"{origin}: {_key_message(exc)}") from None
    try:
        recipe = OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        raise RecipeError(f"{_where(layers)}: {_key_message(exc)}") from None
    except TaskError as exc:
        raise RecipeError(f"{_where(layers)}: data.distill.tasks.{exc}") from None
    assert isinstance(recipe, SFTRecipe)
    check_sft_recipe(recipe, origin=_where(layers))
    return recipe


# Keys of SFTConfig that other recipe sections own (or that proguard fixes); in sft.extra they are an error.
_OWNED_ELSEWHERE = {
    "output_dir": "output_dir",
    "max_length": "lengths.max_length",
    "report_to": "logging.report_to",
    "logging_steps": "logging.logging_steps",
    "run_name": "logging.run_name",
    "save_steps": "checkpoint.save_steps",
    "save_total_limit": "checkpoint.save_total_limit",
    "save_strategy": "checkpoint.save_steps",
    "model_init_kwargs": "model.dtype / model.attn_implementation",
    "assistant_only_loss": "(always true: the loss is on the assistant turn only)",
    "completion_only_loss": "(the data is conversational: assistant_only_loss masks the prompt)",
    "packing": "(packing is not supported for vision-language data)",
    "save_only_model": "(resume needs the optimizer state; always false)",
}


def check_sft_recipe(r: SFTRecipe, origin: str = "recipe") -> None:
    """Checks that span several keys or need more than a type; raises ``RecipeError``."""

    def fail(key: str, msg: str) -> None:
        raise RecipeError(f"{origin}: {key}: {msg}")

    def positive(key: str, value: float | None, *, zero_ok: bool = False) -> None:
        if value is not None and (value < 0 or (value == 0 and not zero_ok)):
            fail(key, f"must be {'>= 0' if zero_ok else '> 0'}, got {value!r}")

    if not r.model.name_or_path.strip():
        fail("model.name_or_path", "empty; a checkpoint path, a hub id or 'tiny'")
    if r.model.dtype not in DTYPES:
        fail("model.dtype", f"must be one of {', '.join(DTYPES)}, got {r.model.dtype!r}")
    positive("images.max_pixels", r.images.max_pixels)
    positive("images.min_pixels", r.images.min_pixels)
    if (r.data.dataset is None) == (r.data.distill is None):
        fail("data.dataset", "set exactly one of data.dataset (a distilled dataset) and data.distill (distil inline)")
    if r.data.distill is not None:
        if r.data.distill.teacher not in TEACHERS_IN_RECIPES:
            fail("data.distill.teacher", f"must be template, got {r.data.distill.teacher!r}; for a model teacher run "
                                         "`proguard distill --teacher openai|transformers|vllm ...` and set data.dataset")
        positive("data.distill.description_words", r.data.distill.description_words, zero_ok=True)
    for modality, level in (r.data.prompt.category_levels or {}).items():
        if level not in ("subcategory", "category"):
            fail(f"data.prompt.category_levels.{modality}", f"must be subcategory or category, got {level!r}")
    positive("data.max_samples", r.data.max_samples)
    positive("lengths.max_length", r.lengths.max_length)
    if r.lengths.overlong not in ("error", "drop"):
        fail("lengths.overlong", f"must be error or drop, got {r.lengths.overlong!r}")
    s = r.sft
    positive("sft.per_device_train_batch_size", s.per_device_train_batch_size)
    positive("sft.gradient_accumulation_steps", s.gradient_accumulation_steps)
    positive("sft.learning_rate", s.learning_rate)
    positive("sft.warmup_steps", s.warmup_steps, zero_ok=True)
    positive("sft.weight_decay", s.weight_decay, zero_ok=True)
    positive("sft.max_grad_norm", s.max_grad_norm, zero_ok=True)
    if s.max_steps == 0 or s.max_steps < -1:
        fail("sft.max_steps", f"must be a positive step count, or -1 to run sft.num_train_epochs; got {s.max_steps}")
    if s.max_steps == -1:
        positive("sft.num_train_epochs", s.num_train_epochs)
    if s.extra:
        from trl import SFTConfig

        known = {f.name for f in dataclasses.fields(SFTConfig)}
        own = {f.name for f in dataclasses.fields(SFTOptions)} - {"extra"}
        for key in s.extra:
            if key in _OWNED_ELSEWHERE:
                fail(f"sft.extra.{key}", f"set by the recipe; use {_OWNED_ELSEWHERE[key]} instead")
            if key in own:
                fail(f"sft.extra.{key}", f"is an sft key; write sft.{key} instead")
            if key not in known:
                fail(f"sft.extra.{key}", "not a trl.SFTConfig field")
    positive("peft.r", r.peft.r)
    positive("peft.lora_alpha", r.peft.lora_alpha)
    if not 0 <= r.peft.lora_dropout < 1:
        fail("peft.lora_dropout", f"must be in [0, 1), got {r.peft.lora_dropout}")
    if r.peft.enabled and not r.peft.target_modules:
        fail("peft.target_modules", "empty; name the modules to adapt, or ['all-linear']")
    for i, rep in enumerate(r.logging.report_to):
        if rep not in REPORTERS:
            fail(f"logging.report_to[{i}]", f"must be one of {', '.join(REPORTERS)}, got {rep!r}")
    if "none" in r.logging.report_to and len(r.logging.report_to) > 1:
        fail("logging.report_to", "'none' cannot be combined with other reporters")
    positive("logging.logging_steps", r.logging.logging_steps)
    positive("checkpoint.save_steps", r.checkpoint.save_steps)
    positive("checkpoint.save_total_limit", r.checkpoint.save_total_limit)
    if not r.output_dir.strip():
        fail("output_dir", "empty")


def sft_recipe_to_yaml(r: SFTRecipe) -> str:
    """The resolved recipe as YAML (what ``--dry-run`` prints and the run saves)."""
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(OmegaConf.structured(r))
