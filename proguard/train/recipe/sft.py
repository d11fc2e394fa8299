"""The SFT recipe (``proguard sft``): a dataclass schema sharing the GRPO recipe's sections, loaded by the same loader.

``model``, ``images``, ``peft``, ``logging``, ``checkpoint`` and ``output_dir`` are the shared sections
(``proguard.train.recipe.sections``), so an SFT recipe and the GRPO recipe that continues from its
``final/`` read alike. What differs: ``data`` (a distilled dataset, or distil one from labelled
samples with the offline template teacher first), ``lengths`` (one sequence budget) and ``sft``
(optimisation; each key maps onto the ``trl.SFTConfig`` field of the same name, rare ones go in
``sft.extra``). ``load_sft_recipe`` is the shared loader on ``SFTRecipe``: the same guards as GRPO
(finite numbers, ``${oc.env:...}`` refused unless allowed, unknown keys, ranges). No torch or TRL
import at module level.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from proguard.tasks.config import TaskError, TaskOptions
from proguard.train.recipe.fields import RecipeError, option, section
from proguard.train.recipe.loader import load
import proguard.train.recipe.sections as shared

TEACHERS_IN_RECIPES = ("template",)
"""Teachers a recipe may run inline; model teachers run through ``proguard distill`` (then ``data.dataset``)."""


@dataclass
class DistillSource:
    """Distil the SFT data first, from labelled samples, with the offline template teacher."""

    teacher: str = option("template", "the inline teacher: template (offline, no model); model teachers: run "
                                      "proguard distill, then data.dataset")
    samples: str = option(shared.BUNDLED, "labelled samples file, or 'bundled'")
    taxonomy: str = option("default", "source taxonomy: bundled name or YAML path")
    tasks: TaskOptions | None = option(None, "task-generator options (as in the GRPO recipe's data.tasks); null: one "
                                             "plain task per sample")
    split: str = option("train", "which generated split to distil")
    description_words: int = option(12, "template teacher: words of the category description quoted in the "
                                        "critique (0: none)", ge=0)


@dataclass
class SFTDataConfig(shared.DataSelection):
    """The SFT data: a dataset written by ``proguard distill``, or one distilled inline (``distill``)."""

    dataset: str | None = option(None, "a distilled dataset: proguard distill's --out dir (its dataset/) or the "
                                       "dataset dir itself")
    distill: DistillSource | None = option(None, "distil inline into <output_dir>/distill (set exactly one of "
                                                 "dataset and distill)")
    label_only: bool = option(False, "train on the <answer> block alone, the critique dropped (OmniGuard's "
                                     "label-only ablation)")


@dataclass
class SFTLengths:
    """Token budget of one training sequence (prompt, image tokens and the assistant answer)."""

    max_length: int = option(4096, "longest sequence, in tokens", gt=0)
    overlong: str = option("error", "a longer row: error (the default, naming the row) or drop (counted and "
                                    "printed); never truncated", choices=("error", "drop"))


@dataclass
class SFTOptions(shared.TrainingOptions):
    """Optimisation; each key maps onto the ``trl.SFTConfig`` field of the same name (SFT's own defaults below)."""

    per_device_train_batch_size: int = option(4, "sequences per device per micro-batch", gt=0)
    gradient_accumulation_steps: int = option(1, "micro-batches per optimizer step", gt=0)
    learning_rate: float = option(1e-5, "peak learning rate", gt=0)
    lr_scheduler_type: str = option("cosine", "transformers scheduler name")
    decision_token_weight: float = option(1.0, "loss weight of the safe/unsafe decision tokens (the first token of "
                                               "' safe' / ' unsafe' in the assistant turn) against 1 for every other "
                                               "token; 1.0 is TRL's loss (proguard.train.decision_weight)", gt=0)


@dataclass
class SFTRecipe:
    """A whole SFT recipe (``recipes/<model>/sft.yaml``)."""

    LAYER_HELP: ClassVar[tuple[str, str]] = ("model:, data:, sft: ...", "sft.max_steps=10")
    SECTION_ERRORS: ClassVar[dict[type, str]] = {TaskError: "data.distill.tasks."}

    model: shared.ModelConfig = section(shared.ModelConfig, "the policy to fine-tune")
    images: shared.ImagesConfig = section(shared.ImagesConfig, "image pixel budget")
    data: SFTDataConfig = section(SFTDataConfig, "the SFT data")
    lengths: SFTLengths = section(SFTLengths, "token budget")
    sft: SFTOptions = section(SFTOptions, "optimisation")
    peft: shared.PeftOptions = section(shared.PeftOptions, "LoRA adapters, merged into final/")
    logging: shared.LoggingConfig = section(shared.LoggingConfig, "reporters and logging steps")
    checkpoint: shared.CheckpointConfig = section(shared.CheckpointConfig, "checkpoints")
    output_dir: str = option("runs/proguard-sft", "checkpoints, logs, metrics.jsonl, final/", nonempty="")

    def check(self, origin: str = "recipe") -> None:
        """Rules that span several keys; raises ``RecipeError`` (each field's own range is checked by the loader)."""

        def fail(key: str, msg: str) -> None:
            raise RecipeError(f"{origin}: {key}: {msg}")

        problem = shared.check_shared(self, method="sft", config="SFTConfig", owned=_OWNED_ELSEWHERE,
                               known=sft_config_field_names)
        if problem:
            raise RecipeError(f"{origin}: {problem}")
        if (self.data.dataset is None) == (self.data.distill is None):
            fail("data.dataset", "set exactly one of data.dataset (a distilled dataset) and data.distill (distil "
                                 "inline)")
        if self.data.distill is not None and self.data.distill.teacher not in TEACHERS_IN_RECIPES:
            fail("data.distill.teacher", f"must be template, got {self.data.distill.teacher!r}; for a model teacher "
                                         "run `proguard distill --teacher openai|transformers|vllm ...` and set "
                                         "data.dataset")


def sft_config_field_names() -> set[str]:
    """Names of ``trl.SFTConfig``'s fields (imports TRL's config module only)."""
    from trl import SFTConfig

    return {f.name for f in dataclasses.fields(SFTConfig)}


def load_sft_recipe(
    path: str | Path | None, overrides: Sequence[str] = (), *, allow_env: bool | Sequence[str] = ()
) -> SFTRecipe:
    """Schema defaults <- the YAML file <- ``key=value`` overrides, typed and checked (``RecipeError``)."""
    return load(SFTRecipe, path, overrides, allow_env=allow_env)


# Keys of SFTConfig that other recipe sections own (or that proguard fixes); in sft.extra they are an error.
_OWNED_ELSEWHERE = {
    **shared.SHARED_OWNED,
    "max_length": "lengths.max_length",
    "assistant_only_loss": "(always true: the loss is on the assistant turn only)",
    "completion_only_loss": "(the data is conversational: assistant_only_loss masks the prompt)",
    "packing": "(packing is not supported for vision-language data)",
}

NOT_FORWARDED = {
    "model.name_or_path": "the trainer's model argument (resolved by proguard.train.policy), not a config field",
    "model.freeze_layers": "applied to the trainer's model before its optimizer is built (proguard.train.freezing)",
    "model.trust_remote_code": "passed to the processor and model loaders (proguard.train.policy)",
    "images.max_pixels": "written into the policy dir's processor config (proguard.train.policy)",
    "images.min_pixels": "written into the policy dir's processor config (proguard.train.policy)",
    "data.*": "builds the training conversations (proguard.train.sft_data), the trainer's train_dataset",
    "lengths.overlong": "the start-up length check's action (proguard.train.sft_data.enforce_lengths)",
    "sft.decision_token_weight": "set on the trainer, which weights the decision tokens in its loss (proguard.train.decision_weight)",
    "peft.*": "the trainer's peft_config (a peft.LoraConfig), not a config field",
    "logging.wandb_project": "sets WANDB_PROJECT in the environment",
    "logging.log_completions": "GRPO only (SFT samples no completions)",
}
"""Recipe keys that do not map onto a ``trl.SFTConfig`` field of their own, and where they go instead."""


def sft_config_kwargs(r: SFTRecipe) -> dict[str, Any]:
    """Keyword arguments for ``trl.SFTConfig`` (no TRL import)."""
    kwargs: dict[str, Any] = {
        **shared.shared_trl_kwargs(r),
        **shared.section_kwargs(r.sft, skip=("extra", "decision_token_weight")),
        "max_length": r.lengths.max_length,
        "assistant_only_loss": True,
        "packing": False,
    }
    kwargs.update(r.sft.extra)
    return kwargs
