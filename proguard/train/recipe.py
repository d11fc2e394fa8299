"""The training recipe: a dataclass schema, loaded with omegaconf and checked before anything runs.

``load_recipe(path, overrides)`` starts from ``OmegaConf.structured(Recipe)``, merges the YAML file,
then the command-line dotlist (``grpo.learning_rate=1e-5``), and converts the result to typed
objects. An unknown key, a value of the wrong type or a failed cross-field check raises
``RecipeError`` naming the key and where it came from (the file, or ``command line``). The
``grpo`` section maps onto ``trl.GRPOConfig`` fields of the same name (``grpo_config_kwargs``);
rarely used ``GRPOConfig`` fields go in ``grpo.extra`` and are checked against its field names.
Nothing here imports torch, transformers or TRL at module level: ``proguard train --check`` and
``--dry-run`` stay fast.

Longer than most modules on purpose: every field carries its help text next to it (the one place it
is written; ``explain`` and ``proguard train --explain KEY`` print it), which is about half the file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proguard.errors import UsageError
from proguard.hints import did_you_mean
from proguard.media import MediaLimits
from proguard.protocol import PromptConfig
from proguard.scoring.specs import RewardSpec, RewardSpecError, load_preset, parse_specs, preset_names
from proguard.tasks.config import TaskConfig, TaskError, TaskOptions
from proguard.train.recipe_guards import env_reads, non_finite

TINY_MODEL = "tiny"
"""``model.name_or_path`` value that builds the in-process tiny Qwen2.5-VL (``proguard.models.tiny_vlm``)."""
TINY_OMNI_MODEL = "tiny-omni"
"""``model.name_or_path`` value that builds the in-process tiny Qwen2.5-Omni thinker (``proguard.models.tiny_omni``)."""
BUNDLED = "bundled"
"""``data.samples`` value for the bundled sample set (``proguard.data.BUNDLED_SAMPLES``)."""

LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo")
SCALE_REWARDS = ("group", "batch", "none")
DTYPES = ("auto", "bfloat16", "float16", "float32")
REPORTERS = ("tensorboard", "wandb", "none")


class RecipeError(UsageError):
    """An invalid recipe; the message names the key and the file (or the command line) it came from."""


# ---------------------------------------------------------------------------------------------
# Schema
# ---------------------------------------------------------------------------------------------
@dataclass
class ModelConfig:
    """The policy: a checkpoint loadable with ``AutoModelForImageTextToText`` (or ``tiny``)."""

    name_or_path: str = field(
        default=TINY_MODEL,
        metadata={"help": "the policy: a local checkpoint directory, a hub ID, 'tiny' (the in-process tiny Qwen2.5-VL) "
                          "or 'tiny-omni' (the in-process tiny Qwen2.5-Omni thinker: text, image, video, audio)"},
    )
    dtype: str = field(
        default="auto",
        metadata={"help": "weights dtype when loading: auto (the checkpoint's own), bfloat16, float16 or float32"},
    )
    attn_implementation: str | None = field(
        default=None,
        metadata={"help": "transformers attention kernel (e.g. sdpa, flash_attention_2); null: transformers' default"},
    )
    trust_remote_code: bool = field(
        default=False,
        metadata={"help": "run the checkpoint's own modelling code (some hub models need it; it runs their code)"},
    )


@dataclass
class ImagesConfig:
    """Image budget of the processor: pixels per image bound the number of image tokens."""

    max_pixels: int | None = field(
        default=None,
        metadata={"help": "largest image area the processor keeps (bounds the image tokens per image); null: the checkpoint's"},
    )
    min_pixels: int | None = field(
        default=None, metadata={"help": "smallest image area the processor upscales to; null: the checkpoint's"},
    )


@dataclass
class DataConfig:
    """Where the training prompts come from: labelled samples through the task generator, or a prepared dir."""

    samples: str = field(
        default=BUNDLED,
        metadata={"help": "labelled samples (JSONL, parquet or a saved datasets dir) run through the task generator; 'bundled': the bundled set"},
    )
    taxonomy: str = field(
        default="default",
        metadata={"help": "the policy taxonomy: 'default', 'mlcommons' or a YAML path (own schema or ProGuard's)"},
    )
    prepared: str | None = field(
        default=None,
        metadata={"help": "a task dataset written by `proguard tasks` (a DatasetDict dir); replaces samples + tasks"},
    )
    tasks: TaskOptions | None = field(
        default=None,
        metadata={"help": "task-generator options (held-out categories, hiding, shuffling, splits); null: every sample as an in-taxonomy task"},
    )
    prompt: PromptConfig = field(
        default_factory=PromptConfig,
        metadata={"help": "how the policy prompt is written (category levels per modality, descriptions, examples)"},
    )
    train_split: str = field(
        default="train", metadata={"help": "the split to train on (of the prepared dataset or the generated tasks)"},
    )
    max_samples: int | None = field(
        default=None, metadata={"help": "train on at most this many rows (the first ones); null: all"},
    )
    allow_outside_data: bool = field(
        default=False,
        metadata={"help": "accept media paths that resolve outside the data file's folder (absolute, ../, links)"},
    )
    modalities: list[str] | None = field(
        default=None,
        metadata={"help": "train only on these modalities (e.g. [text, image, text_image] for a policy without "
                          "audio); the rows left out are counted in the start-up report; null: every modality"},
    )
    media: MediaLimits = field(
        default_factory=MediaLimits,
        metadata={"help": "video and audio limits checked at load (duration, frames, sample rates) and the "
                          "frame rate / sample rate given to the model"},
    )


@dataclass
class RolloutConfig:
    """Who generates the rollouts: transformers ``generate`` (``hf``) or vLLM (colocated or a server)."""

    backend: str = field(
        default="hf", metadata={"help": "who generates rollouts: hf (transformers generate inside TRL) or vllm"},
    )
    vllm_mode: str = field(
        default="colocate",
        metadata={"help": "vllm only: colocate (an engine in every training process) or server (a `proguard vllm-serve` process)"},
    )
    server_host: str = field(default="127.0.0.1", metadata={"help": "server mode: the vLLM server's host"})
    server_port: int = field(default=8000, metadata={"help": "server mode: the vLLM server's port"})
    server_base_url: str | None = field(
        default=None, metadata={"help": "server mode: the server's base URL (overrides host and port)"},
    )
    server_timeout: float = field(
        default=240.0, metadata={"help": "server mode: seconds to wait for the server at start"},
    )
    gpu_memory_utilization: float = field(
        default=0.3,
        metadata={"help": "colocate: the share of GPU memory vLLM may take (weights + KV cache), in (0, 1]"},
    )
    tensor_parallel_size: int = field(default=1, metadata={"help": "vLLM tensor-parallel degree"})
    enable_sleep_mode: bool = field(
        default=False, metadata={"help": "colocate: release vLLM's memory while the optimizer step runs"},
    )


@dataclass
class LengthsConfig:
    """Token budgets: the longest prompt accepted and the longest completion sampled."""

    max_prompt_length: int = field(
        default=3072,
        metadata={"help": "longest prompt accepted, in tokens, image tokens included (checked at start-up)"},
    )
    max_completion_length: int = field(default=1024, metadata={"help": "longest completion sampled, in tokens"})
    overlong_prompts: str = field(
        default="error",
        metadata={"help": "prompts over max_prompt_length: error (stop and name them) or drop (and report)"},
    )


@dataclass
class GRPOOptions:
    """GRPO hyper-parameters; each maps onto the ``trl.GRPOConfig`` field of the same name."""

    per_device_train_batch_size: int = field(default=8, metadata={"help": "completions per device per micro-batch"})
    num_generations: int = field(
        default=8,
        metadata={"help": "rollouts per prompt: the group whose rewards are normalised into advantages (at least 2)"},
    )
    gradient_accumulation_steps: int | None = field(
        default=1, metadata={"help": "micro-batches per optimizer step; set this or prompts_per_step, not both"},
    )
    prompts_per_step: int | None = field(
        default=None,
        metadata={"help": "prompts per optimizer step across all processes; gradient accumulation is derived at launch"},
    )
    steps_per_generation: int | None = field(
        default=None,
        metadata={"help": "optimizer micro-steps per generation batch; null: gradient_accumulation_steps"},
    )
    num_iterations: int = field(
        default=1, metadata={"help": "policy updates per generation batch (mu in the GRPO paper)"},
    )
    learning_rate: float = field(default=1e-6, metadata={"help": "AdamW learning rate"})
    lr_scheduler_type: str = field(
        default="constant", metadata={"help": "transformers learning-rate schedule (constant, linear, cosine, ...)"},
    )
    warmup_steps: float = field(
        default=0.0, metadata={"help": "warmup optimizer steps (a float below 1 is a share of the run)"},
    )
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping norm (0: no clipping)"})
    beta: float = field(
        default=0.0,
        metadata={"help": "KL coefficient to the reference policy, a loss term only (TRL never adds KL to the reward); 0: no reference model"},
    )
    epsilon: float = field(
        default=0.2, metadata={"help": "PPO clip range (lower bound, and upper too unless epsilon_high is set)"},
    )
    epsilon_high: float | None = field(
        default=None, metadata={"help": "upper clip range (DAPO's clip-higher); null: epsilon"},
    )
    entropy_coef: float = field(default=0.0, metadata={"help": "entropy bonus coefficient in the loss"})
    loss_type: str = field(
        default="dapo",
        metadata={"help": "how token losses are averaged: grpo, dr_grpo, dapo, bnpo, cispo, sapo, luspo or vespo (trl.GRPOConfig.loss_type)"},
    )
    scale_rewards: str = field(
        default="group", metadata={"help": "advantage normalisation: group (by the group's std), batch, or none"},
    )
    mask_truncated_completions: bool = field(
        default=False, metadata={"help": "leave completions cut at max_completion_length out of the loss"},
    )
    temperature: float = field(default=1.0, metadata={"help": "rollout sampling temperature"})
    top_p: float = field(default=1.0, metadata={"help": "rollout nucleus-sampling mass, in (0, 1]"})
    top_k: int = field(default=0, metadata={"help": "rollout top-k sampling (0: off)"})
    max_steps: int = field(
        default=-1, metadata={"help": "optimizer steps to run; -1: num_train_epochs over the tasks"},
    )
    num_train_epochs: float = field(default=1.0, metadata={"help": "epochs over the tasks when max_steps is -1"})
    bf16: bool = field(default=False, metadata={"help": "bfloat16 mixed precision (needs a GPU)"})
    gradient_checkpointing: bool = field(
        default=True, metadata={"help": "recompute activations in the backward pass (less memory, more compute)"},
    )
    seed: int = field(default=42, metadata={"help": "seed of the trainer (data order, sampling, initialisation)"})
    extra: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "any other trl.GRPOConfig field by name (checked against GRPOConfig; keys other sections own are refused)"},
    )


@dataclass
class PeftOptions:
    """LoRA adapters through peft; the final model is saved merged."""

    enabled: bool = field(
        default=False, metadata={"help": "train LoRA adapters instead of all weights (final/ is saved merged)"},
    )
    r: int = field(default=16, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling alpha"})
    lora_dropout: float = field(default=0.05, metadata={"help": "dropout on the LoRA path, in [0, 1)"})
    target_modules: list[str] = field(
        default_factory=lambda: ["all-linear"], metadata={"help": "modules to adapt: names, or ['all-linear']"},
    )


@dataclass
class LoggingConfig:
    """Where metrics go: TensorBoard by default, W&B when listed; a progress bar always."""

    report_to: list[str] = field(
        default_factory=lambda: ["tensorboard"],
        metadata={"help": "metric sinks: tensorboard, wandb, or [none]; metrics.jsonl is always written"},
    )
    logging_steps: int = field(default=1, metadata={"help": "log every this many optimizer steps"})
    run_name: str | None = field(default=None, metadata={"help": "the run's name in TensorBoard / W&B"})
    wandb_project: str | None = field(default=None, metadata={"help": "W&B project (sets WANDB_PROJECT)"})
    log_completions: bool = field(default=False, metadata={"help": "log sampled completions with their rewards"})


@dataclass
class CheckpointConfig:
    """Checkpoints every ``save_steps`` optimizer steps, keeping the last ``save_total_limit``."""

    save_steps: int = field(default=100, metadata={"help": "write a checkpoint every this many optimizer steps"})
    save_total_limit: int | None = field(
        default=3, metadata={"help": "keep the newest this many checkpoints; null: all"},
    )


@dataclass
class Recipe:
    """A whole training recipe (``recipes/<model>/<method>.yaml``)."""

    model: ModelConfig = field(default_factory=ModelConfig, metadata={"help": "the policy checkpoint"})
    images: ImagesConfig = field(default_factory=ImagesConfig, metadata={"help": "the processor's image budget"})
    data: DataConfig = field(default_factory=DataConfig, metadata={"help": "where the training prompts come from"})
    rewards: Any = field(
        default="default",
        metadata={"help": "a preset name (default, proguard-paper) or a list of {name, weight, gate, options}"},
    )
    rollout: RolloutConfig = field(default_factory=RolloutConfig, metadata={"help": "who generates the rollouts"})
    lengths: LengthsConfig = field(default_factory=LengthsConfig, metadata={"help": "token budgets"})
    grpo: GRPOOptions = field(
        default_factory=GRPOOptions,
        metadata={"help": "GRPO hyper-parameters (trl.GRPOConfig fields of the same name)"},
    )
    peft: PeftOptions = field(default_factory=PeftOptions, metadata={"help": "LoRA adapters"})
    logging: LoggingConfig = field(default_factory=LoggingConfig, metadata={"help": "where metrics go"})
    checkpoint: CheckpointConfig = field(
        default_factory=CheckpointConfig, metadata={"help": "checkpoint cadence and retention"},
    )
    output_dir: str = field(
        default="runs/proguard",
        metadata={"help": "where checkpoints, metrics.jsonl, recipe.yaml and final/ are written"},
    )

    # Typed views of the sections the schema cannot type (``rewards``) or that combine two sections
    # (tasks + prompt). ``load_recipe`` parses them once, in ``check_recipe``; later calls return the
    # same objects. The cache lives outside the dataclass fields, so it is never saved or merged.
    def reward_specs(self) -> list[RewardSpec]:
        """The ``rewards`` section as typed specs, a preset name resolved to its rows."""
        if "_reward_specs" not in self.__dict__:
            self.__dict__["_reward_specs"] = _parse_rewards(self.rewards, "recipe")
        return self.__dict__["_reward_specs"]

    def prompt_config(self) -> PromptConfig:
        """How the policy prompt is written (``data.prompt``)."""
        return self.data.prompt

    def task_config(self) -> TaskConfig | None:
        """``data.tasks`` with ``data.prompt``: what the task generator runs with (``None``: the default tasks)."""
        if self.data.tasks is None:
            return None
        return TaskConfig.from_options(self.data.tasks, self.data.prompt)


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------
def recipe_layers(
    path: str | Path | None, overrides: Sequence[str], *, sections: str, example: str
) -> list[tuple[str, Any]]:
    """``(origin, config)`` per layer: the YAML file, then the command-line dotlist (``RecipeError`` if malformed).

    Shared by the GRPO and SFT recipe loaders; ``sections`` and ``example`` only word their messages.
    """
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    layers: list[tuple[str, Any]] = []
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise RecipeError(f"{path}: no such recipe file")
        try:
            raw = OmegaConf.load(path)
        except Exception as exc:  # yaml's parser errors carry the line; keep their message
            raise RecipeError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(raw, DictConfig):
            raise RecipeError(f"{path}: a recipe is a mapping of sections ({sections}), got a list")
        layers.append((str(path), raw))
    if overrides:
        bad = [o for o in overrides if "=" not in o or o.startswith("=")]
        if bad:
            raise RecipeError(f"command line: {bad[0]!r}: overrides are key=value (e.g. {example})")
        try:
            layers.append(("command line", OmegaConf.from_dotlist(list(overrides))))
        except OmegaConfBaseException as exc:
            raise RecipeError(f"command line: {exc}") from None
    return layers


def load_recipe(
    path: str | Path | None, overrides: Sequence[str] = (), *, allow_env: bool | Sequence[str] = ()
) -> Recipe:
    """Schema defaults <- the YAML file <- ``key=value`` overrides, typed and checked.

    ``${oc.env:VAR}`` interpolation is off unless ``allow_env`` names ``VAR`` (or is ``True``): a
    shared recipe must not read API keys out of the environment into run names and saved files.
    Keys filled from the environment are written back as their ``${oc.env:...}`` text by
    ``recipe_to_yaml``, so the value itself never reaches ``recipe.yaml`` or ``--dry-run``.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    schema = OmegaConf.structured(Recipe)
    layers = recipe_layers(path, overrides, sections="model:, data:, grpo: ...", example="grpo.max_steps=10")

    merged = schema
    env_keys: dict[str, str] = {}
    for origin, layer in layers:
        found, problem = env_reads(OmegaConf.to_container(layer, resolve=False), allow_env)
        if problem:
            raise RecipeError(f"{origin}: {problem}")
        env_keys.update(found)
    for origin, layer in layers:
        container = OmegaConf.to_container(layer, resolve=False)
        _check_sections(container, Recipe, origin, prefix="")
        # data.prepared and data.tasks are two sources of the training prompts: a later layer naming
        # one replaces the other from an earlier layer (`... data.prepared=tasks/` just works on a
        # recipe that generates tasks); one layer naming both is an error (check_recipe).
        data = container.get("data") if isinstance(container, Mapping) else None
        if isinstance(data, Mapping):
            for key, other in (("prepared", "tasks"), ("tasks", "prepared")):
                if data.get(key) is not None and other not in data:
                    merged = OmegaConf.merge(merged, {"data": {other: None}})
        try:
            merged = OmegaConf.merge(merged, layer)
        except OmegaConfBaseException as exc:
            raise RecipeError(f"{origin}: {_key_message(exc)}") from None
    # The finite-number rule runs on the merged values before the sections are built: a section that checks
    # itself on construction (data.media, data.tasks) would otherwise report a NaN in its own words.
    problem = non_finite(OmegaConf.to_container(merged, resolve=False))
    if problem:
        raise RecipeError(f"{_where(layers)}: {problem}")
    try:
        recipe = OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        raise RecipeError(f"{_where(layers)}: {_key_message(exc)}") from None
    except TaskError as exc:  # TaskOptions validates itself on construction
        raise RecipeError(f"{_where(layers)}: data.tasks.{exc}") from None
    assert isinstance(recipe, Recipe)
    recipe.__dict__["_env_keys"] = env_keys  # outside the fields: never merged or saved
    check_recipe(recipe, origin=_where(layers))
    return recipe


def _where(layers: list[tuple[str, Any]]) -> str:
    return " + ".join(o for o, _ in layers) or "defaults"


def _key_message(exc: Exception) -> str:
    key = getattr(exc, "full_key", None)
    msg = str(getattr(exc, "msg", None) or exc).splitlines()[0]
    return f"{key}: {msg}" if key else msg


def _check_sections(data: Any, schema: type, origin: str, prefix: str) -> None:
    """A section of the schema given as a scalar or a list is an error naming the key."""
    if not isinstance(data, Mapping):
        return
    fields = {f.name: f for f in dataclasses.fields(schema)}
    for key, value in data.items():
        f = fields.get(key)
        if f is None:
            hint = did_you_mean(str(key), fields, n=1)
            raise RecipeError(f"{origin}: {prefix}{key}: unknown key{hint}; keys here: {', '.join(fields)}")
        sub = _dataclass_type(f)
        if sub is None:
            continue
        if value is not None and not isinstance(value, Mapping):
            raise RecipeError(f"{origin}: {prefix}{key}: must be a mapping of {sub.__name__} keys, got {value!r}")
        _check_sections(value, sub, origin, f"{prefix}{key}.")


def _dataclass_type(f: dataclasses.Field) -> type | None:
    factory = f.default_factory  # every section field is declared with default_factory=<its class>
    return factory if isinstance(factory, type) and dataclasses.is_dataclass(factory) else None


# ---------------------------------------------------------------------------------------------
# Cross-field checks
# ---------------------------------------------------------------------------------------------
def check_recipe(r: Recipe, origin: str = "recipe") -> None:
    """Checks that span several keys or need more than a type; raises ``RecipeError``."""

    def fail(key: str, msg: str) -> None:
        raise RecipeError(f"{origin}: {key}: {msg}")

    def one_of(key: str, value: Any, allowed: Sequence[str]) -> None:
        if value not in allowed:
            fail(key, f"must be one of {', '.join(allowed)}, got {value!r}")

    def positive(key: str, value: float | None, *, zero_ok: bool = False) -> None:
        if value is not None and (value < 0 or (value == 0 and not zero_ok)):
            fail(key, f"must be {'>= 0' if zero_ok else '> 0'}, got {value!r}")

    problem = non_finite(r)  # one rule for every float key of every section
    if problem:
        raise RecipeError(f"{origin}: {problem}")
    if not r.model.name_or_path.strip():
        fail("model.name_or_path", "empty; a checkpoint path, a hub id or 'tiny'")
    one_of("model.dtype", r.model.dtype, DTYPES)

    positive("images.max_pixels", r.images.max_pixels)
    positive("images.min_pixels", r.images.min_pixels)
    if r.images.max_pixels and r.images.min_pixels and r.images.min_pixels > r.images.max_pixels:
        fail("images.min_pixels", f"{r.images.min_pixels} is larger than images.max_pixels {r.images.max_pixels}")

    positive("data.max_samples", r.data.max_samples)
    if r.data.prepared is not None and r.data.tasks is not None:
        fail("data.tasks", "a prepared dataset (data.prepared) already holds its tasks; set only one of the two")
    if r.data.prompt.category_levels is not None:
        for modality, level in r.data.prompt.category_levels.items():
            one_of(f"data.prompt.category_levels.{modality}", level, ("subcategory", "category"))
    r.__dict__["_reward_specs"] = _parse_rewards(r.rewards, origin)

    one_of("rollout.backend", r.rollout.backend, ("hf", "vllm"))
    one_of("rollout.vllm_mode", r.rollout.vllm_mode, ("colocate", "server"))
    if not 0 < r.rollout.gpu_memory_utilization <= 1:
        fail("rollout.gpu_memory_utilization", f"must be in (0, 1], got {r.rollout.gpu_memory_utilization}")
    positive("rollout.tensor_parallel_size", r.rollout.tensor_parallel_size)
    if not 0 < r.rollout.server_port < 65536:
        fail("rollout.server_port", f"must be a TCP port, got {r.rollout.server_port}")

    positive("lengths.max_prompt_length", r.lengths.max_prompt_length)
    positive("lengths.max_completion_length", r.lengths.max_completion_length)
    one_of("lengths.overlong_prompts", r.lengths.overlong_prompts, ("error", "drop"))

    g = r.grpo
    positive("grpo.per_device_train_batch_size", g.per_device_train_batch_size)
    if g.num_generations < 2:
        fail("grpo.num_generations", f"GRPO needs at least 2 rollouts per prompt, got {g.num_generations}")
    if (g.gradient_accumulation_steps is None) == (g.prompts_per_step is None):
        fail(
            "grpo.prompts_per_step",
            "set exactly one of grpo.gradient_accumulation_steps and grpo.prompts_per_step "
            "(the other is derived from the number of GPUs at launch)",
        )
    positive("grpo.gradient_accumulation_steps", g.gradient_accumulation_steps)
    positive("grpo.prompts_per_step", g.prompts_per_step)
    positive("grpo.steps_per_generation", g.steps_per_generation)
    positive("grpo.num_iterations", g.num_iterations)
    positive("grpo.learning_rate", g.learning_rate)
    positive("grpo.warmup_steps", g.warmup_steps, zero_ok=True)
    positive("grpo.weight_decay", g.weight_decay, zero_ok=True)
    positive("grpo.max_grad_norm", g.max_grad_norm, zero_ok=True)
    positive("grpo.beta", g.beta, zero_ok=True)
    positive("grpo.epsilon", g.epsilon)
    positive("grpo.epsilon_high", g.epsilon_high)
    positive("grpo.entropy_coef", g.entropy_coef, zero_ok=True)
    positive("grpo.temperature", g.temperature)
    if not 0 < g.top_p <= 1:
        fail("grpo.top_p", f"must be in (0, 1], got {g.top_p}")
    positive("grpo.top_k", g.top_k, zero_ok=True)
    one_of("grpo.loss_type", g.loss_type, LOSS_TYPES)
    one_of("grpo.scale_rewards", g.scale_rewards, SCALE_REWARDS)
    if g.max_steps == 0 or g.max_steps < -1:
        fail("grpo.max_steps", f"must be a positive step count, or -1 to run grpo.num_train_epochs; got {g.max_steps}")
    if g.max_steps == -1:
        positive("grpo.num_train_epochs", g.num_train_epochs)
    if g.prompts_per_step is not None and g.steps_per_generation is not None:
        fail("grpo.steps_per_generation", "grpo.prompts_per_step fixes the generation batch; leave this null")
    # One process's share of a generation batch must hold whole prompt groups; TRL checks the global
    # batch again at launch, with the real number of processes.
    if g.gradient_accumulation_steps is not None:
        spg = g.steps_per_generation or g.gradient_accumulation_steps
        local = g.per_device_train_batch_size * spg
        if local % g.num_generations:
            fail(
                "grpo.num_generations",
                f"per_device_train_batch_size x steps_per_generation = {local} completions per process is not a "
                f"multiple of num_generations = {g.num_generations}",
            )
    _check_grpo_extra(g.extra, origin)

    positive("peft.r", r.peft.r)
    positive("peft.lora_alpha", r.peft.lora_alpha)
    if not 0 <= r.peft.lora_dropout < 1:
        fail("peft.lora_dropout", f"must be in [0, 1), got {r.peft.lora_dropout}")
    if r.peft.enabled and not r.peft.target_modules:
        fail("peft.target_modules", "empty; name the modules to adapt, or ['all-linear']")

    for i, rep in enumerate(r.logging.report_to):
        one_of(f"logging.report_to[{i}]", rep, REPORTERS)
    if "none" in r.logging.report_to and len(r.logging.report_to) > 1:
        fail("logging.report_to", "'none' cannot be combined with other reporters")
    positive("logging.logging_steps", r.logging.logging_steps)
    positive("checkpoint.save_steps", r.checkpoint.save_steps)
    positive("checkpoint.save_total_limit", r.checkpoint.save_total_limit)
    if not r.output_dir.strip():
        fail("output_dir", "empty")


def _parse_rewards(rewards: Any, origin: str) -> list[RewardSpec]:
    """A preset name or a ``[{name, weight, gate, options}]`` list, as typed specs (``RecipeError`` if malformed)."""
    if isinstance(rewards, str):
        if rewards not in preset_names():
            hint = did_you_mean(rewards, preset_names(), n=1)
            raise RecipeError(f"{origin}: rewards: unknown preset {rewards!r}{hint}; presets: {', '.join(preset_names())}")
        try:
            return load_preset(rewards)
        except RewardSpecError as exc:
            raise RecipeError(f"{origin}: rewards: {exc}") from None
    try:
        return parse_specs(rewards, origin)
    except RewardSpecError as exc:
        raise RecipeError(str(exc)) from None


# Keys of GRPOConfig that other recipe sections own; setting them in grpo.extra would be silently
# overridden (or fight the section), so it is an error that says where the key lives.
_OWNED_ELSEWHERE = {
    "output_dir": "output_dir",
    "use_vllm": "rollout.backend",
    "vllm_mode": "rollout.vllm_mode",
    "vllm_server_host": "rollout.server_host",
    "vllm_server_port": "rollout.server_port",
    "vllm_server_base_url": "rollout.server_base_url",
    "vllm_server_timeout": "rollout.server_timeout",
    "vllm_gpu_memory_utilization": "rollout.gpu_memory_utilization",
    "vllm_tensor_parallel_size": "rollout.tensor_parallel_size",
    "vllm_enable_sleep_mode": "rollout.enable_sleep_mode",
    "vllm_max_model_length": "lengths.max_prompt_length + lengths.max_completion_length",
    "max_completion_length": "lengths.max_completion_length",
    "report_to": "logging.report_to",
    "logging_steps": "logging.logging_steps",
    "run_name": "logging.run_name",
    "log_completions": "logging.log_completions",
    "save_steps": "checkpoint.save_steps",
    "save_total_limit": "checkpoint.save_total_limit",
    "save_strategy": "checkpoint.save_steps",
    "model_init_kwargs": "model.dtype / model.attn_implementation",
    "trust_remote_code": "model.trust_remote_code",
    "reward_weights": "rewards (weights live in the rewards list)",
    "generation_batch_size": "grpo.steps_per_generation",
    "remove_unused_columns": "(the reward needs the dataset columns; always false)",
    "save_only_model": "(resume needs the optimizer state; always false)",
}


def grpo_config_field_names() -> set[str]:
    """Names of ``trl.GRPOConfig``'s fields (imports TRL's config module only)."""
    from trl import GRPOConfig

    return {f.name for f in dataclasses.fields(GRPOConfig)}


def _check_grpo_extra(extra: Mapping[str, Any], origin: str) -> None:
    if not extra:
        return
    known = grpo_config_field_names()
    sections = {f.name for f in dataclasses.fields(GRPOOptions)} - {"extra", "prompts_per_step"}
    for key in extra:
        where = f"{origin}: grpo.extra.{key}"
        if key in _OWNED_ELSEWHERE:
            raise RecipeError(f"{where}: set by the recipe; use {_OWNED_ELSEWHERE[key]} instead")
        if key in sections:
            raise RecipeError(f"{where}: is a grpo key; write grpo.{key} instead")
        if key not in known:
            hint = did_you_mean(key, sorted(known), n=1)
            raise RecipeError(f"{where}: not a trl.GRPOConfig field{hint}")


def recipe_to_yaml(r: Recipe) -> str:
    """The resolved recipe as YAML (what ``--dry-run`` prints and the run saves); values read from the
    environment are shown as their ``${oc.env:VAR}`` text, never as the value."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.structured(r)
    for key, text in r.__dict__.get("_env_keys", {}).items():
        OmegaConf.update(cfg, key, text, merge=False)
    return OmegaConf.to_yaml(cfg)


def _typename(f: dataclasses.Field) -> str:
    return str(f.type).replace("typing.", "").replace("proguard.", "")


def explain(key: str = "", schema: type = Recipe) -> str:
    """Help for a recipe key, from the schema's own field help: a section lists its keys, ``""`` all of them.

    ``proguard train --explain grpo.beta`` prints this; an unknown key is a ``RecipeError`` with a hint.
    """
    cls, prefix, target = schema, "", None
    for part in [p for p in key.split(".") if p]:
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if part not in fields:
            hint = did_you_mean(part, fields, n=1)
            raise RecipeError(f"--explain: {prefix}{part}: unknown key{hint}; keys here: {', '.join(fields)}")
        target = fields[part]
        sub = _section_type(cls, target)
        prefix += part + "."
        if sub is None:
            return _explain_field(prefix[:-1], target)
        cls = sub
    lines = [f"{prefix[:-1]}: {target.metadata.get('help', '')}" if target is not None else "recipe keys:"]
    for f in dataclasses.fields(cls):
        if _section_type(cls, f) is not None and not key:
            lines.append(f"{f.name}: {f.metadata.get('help', '')}")
            lines += [f"  {line}" for line in explain(f.name, schema).splitlines()[1:]]
        else:
            lines.append(_explain_field(prefix + f.name, f, short=True))
    return "\n".join(lines)


def _section_type(cls: type, f: dataclasses.Field) -> type | None:
    """The dataclass a field of ``cls`` holds (``data.tasks: TaskOptions | None`` included), else ``None``."""
    import typing

    hint = typing.get_type_hints(cls).get(f.name)
    for t in (hint, *typing.get_args(hint)):
        if isinstance(t, type) and dataclasses.is_dataclass(t):
            return t
    return None


def _explain_field(key: str, f: dataclasses.Field, short: bool = False) -> str:
    if f.default is not dataclasses.MISSING:
        default = f.default
    elif f.default_factory is not dataclasses.MISSING:
        default = f.default_factory()
    else:
        default = None
    help_ = f.metadata.get("help", "")
    if short:
        return f"  {key} ({_typename(f)}, default {default!r}): {help_}"
    return f"{key}\n  type: {_typename(f)}\n  default: {default!r}\n  {help_}"


__all__ = [
    "BUNDLED",
    "TINY_MODEL",
    "TINY_OMNI_MODEL",
    "CheckpointConfig",
    "DataConfig",
    "GRPOOptions",
    "ImagesConfig",
    "LengthsConfig",
    "LoggingConfig",
    "ModelConfig",
    "PeftOptions",
    "Recipe",
    "RecipeError",
    "RolloutConfig",
    "check_recipe",
    "explain",
    "load_recipe",
    "recipe_to_yaml",
]
