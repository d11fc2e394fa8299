"""The GRPO recipe (``proguard train``): its own sections (``data``, ``rewards``, ``rollout``, ``lengths``, ``grpo``).

``load_recipe(path, overrides)`` is the shared loader (``proguard.train.recipe.loader``) on ``Recipe``:
every guard runs there. The ``grpo`` section maps onto ``trl.GRPOConfig`` fields of the same name
(``grpo_config_kwargs``); rarely used ``GRPOConfig`` fields go in ``grpo.extra`` and are checked
against its field names. ``rewards`` is a preset name, a list of ``{name, weight, gate, options}`` or
a mapping keyed by name: ``rewards.ood_description.weight=0.5`` on the command line changes one
reward of the preset the file names. No torch, transformers or TRL import at module level.

Longer than most modules on purpose: every field carries its help text and range next to it (the one
place they are written; ``--explain KEY`` prints them), which is most of the file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from proguard.media import MediaLimits
from proguard.media.decode import MediaError
from proguard.protocol import PromptConfig
from proguard.scoring.specs import RewardSpec, RewardSpecError, load_preset, parse_specs, preset_names
from proguard.tasks.config import TaskConfig, TaskError, TaskOptions
from proguard.train.recipe.fields import RecipeError, option, section
from proguard.train.recipe.loader import load
from proguard.train.recipe.sections import BUNDLED, SHARED_OWNED, CheckpointConfig, ImagesConfig, LoggingConfig
from proguard.train.recipe.sections import DataSelection, ModelConfig, PeftOptions, TrainingOptions, check_shared
from proguard.train.recipe.sections import section_kwargs
from proguard.train.recipe.sections import shared_trl_kwargs

LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo")
SCALE_REWARDS = ("group", "batch", "none")
ROLLOUT_BACKEND_NAMES = ("hf", "vllm")
"""The ``rollout.backend`` values: the one list (``proguard.train.rollout.ROLLOUT_BACKENDS`` is built from it)."""
VLLM_MODES = ("colocate", "server")


@dataclass
class DataConfig(DataSelection):
    """Where the training prompts come from: labelled samples through the task generator, or a prepared dir."""

    samples: str = option(BUNDLED, "labelled samples (JSONL, parquet or a saved datasets dir) run through the task "
                                   "generator; 'bundled': the bundled set")
    taxonomy: str = option("default", "the policy taxonomy: 'default', 'mlcommons' or a YAML path (own schema or "
                                      "ProGuard's)")
    prepared: str | None = option(None, "a task dataset written by `proguard tasks` (a DatasetDict dir); replaces "
                                         "samples + tasks")
    tasks: TaskOptions | None = option(None, "task-generator options (held-out categories, hiding, shuffling, "
                                             "splits); null: every sample as an in-taxonomy task")
    train_split: str = option("train", "the split to train on (of the prepared dataset or the generated tasks)")
    allow_outside_data: bool = option(False, "accept media paths that resolve outside the data file's folder "
                                             "(absolute, ../, links)")
    media: MediaLimits = section(MediaLimits, "video and audio limits checked at load (duration, frames, sample "
                                              "rates) and the frame rate / sample rate given to the model")


@dataclass
class RolloutConfig:
    """Who generates the rollouts: transformers ``generate`` (``hf``) or vLLM (colocated or a server)."""

    backend: str = option("hf", "who generates rollouts: hf (transformers generate inside TRL) or vllm",
                          choices=ROLLOUT_BACKEND_NAMES)
    vllm_mode: str = option("colocate", "vllm only: colocate (an engine in every training process) or server (a "
                                        "`proguard vllm-serve` process)", choices=VLLM_MODES)
    server_host: str = option("127.0.0.1", "server mode: the vLLM server's host")
    server_port: int = option(8000, "server mode: the vLLM server's port", gt=0, lt=65536)
    server_base_url: str | None = option(None, "server mode: the server's base URL (overrides host and port)")
    server_timeout: float = option(240.0, "server mode: seconds to wait for the server at start")
    gpu_memory_utilization: float = option(0.3, "colocate: the share of GPU memory vLLM may take (weights + KV "
                                                "cache), in (0, 1]", gt=0, le=1)
    tensor_parallel_size: int = option(1, "vLLM tensor-parallel degree", gt=0)
    enable_sleep_mode: bool = option(False, "colocate: release vLLM's memory while the optimizer step runs")


@dataclass
class LengthsConfig:
    """Token budgets: the longest prompt accepted and the longest completion sampled."""

    max_prompt_length: int = option(3072, "longest prompt accepted, in tokens, image tokens included (checked at "
                                          "start-up)", gt=0)
    max_completion_length: int = option(1024, "longest completion sampled, in tokens", gt=0)
    overlong_prompts: str = option("error", "prompts over max_prompt_length: error (stop and name them) or drop (and "
                                            "report)", choices=("error", "drop"))


@dataclass
class GRPOOptions(TrainingOptions):
    """GRPO hyper-parameters; each maps onto the ``trl.GRPOConfig`` field of the same name."""

    num_generations: int = option(8, "rollouts per prompt: the group whose rewards are normalised into advantages "
                                     "(at least 2)")
    prompts_per_step: int | None = option(None, "prompts per optimizer step across all processes; gradient "
                                                "accumulation is derived at launch", gt=0)
    steps_per_generation: int | None = option(None, "optimizer micro-steps per generation batch; null: "
                                                    "gradient_accumulation_steps", gt=0)
    num_iterations: int = option(1, "policy updates per generation batch (mu in the GRPO paper)", gt=0)
    beta: float = option(0.0, "KL coefficient to the reference policy, a loss term only (TRL never adds KL to the "
                              "reward); 0: no reference model", ge=0)
    epsilon: float = option(0.2, "PPO clip range (lower bound, and upper too unless epsilon_high is set)", gt=0)
    epsilon_high: float | None = option(None, "upper clip range (DAPO's clip-higher); null: epsilon", gt=0)
    entropy_coef: float = option(0.0, "entropy bonus coefficient in the loss", ge=0)
    loss_type: str = option("dapo", "how token losses are averaged: grpo, dr_grpo, dapo, bnpo, cispo, sapo, luspo or "
                                    "vespo (trl.GRPOConfig.loss_type)", choices=LOSS_TYPES)
    scale_rewards: str = option("group", "advantage normalisation: group (by the group's std), batch, or none",
                                choices=SCALE_REWARDS)
    mask_truncated_completions: bool = option(False, "leave completions cut at max_completion_length out of the loss")
    temperature: float = option(1.0, "rollout sampling temperature", gt=0)
    top_p: float = option(1.0, "rollout nucleus-sampling mass, in (0, 1]", gt=0, le=1)
    top_k: int = option(0, "rollout top-k sampling (0: off)", ge=0)


@dataclass
class Recipe:
    """A whole GRPO training recipe (``recipes/<model>/<method>.yaml``)."""

    LAYER_HELP: ClassVar[tuple[str, str]] = ("model:, data:, grpo: ...", "grpo.max_steps=10")
    SECTION_ERRORS: ClassVar[dict[type, str]] = {TaskError: "data.tasks.", MediaError: "data."}

    model: ModelConfig = section(ModelConfig, "the policy checkpoint")
    images: ImagesConfig = section(ImagesConfig, "the processor's image budget")
    data: DataConfig = section(DataConfig, "where the training prompts come from")
    rewards: Any = option("default", "a preset name (default, proguard-paper), a list of {name, weight, gate, "
                                     "options}, or a mapping name -> {weight, gate, options}; on the command line "
                                     "rewards.NAME.weight=0.5 changes one reward of the preset or list")
    rollout: RolloutConfig = section(RolloutConfig, "who generates the rollouts")
    lengths: LengthsConfig = section(LengthsConfig, "token budgets")
    grpo: GRPOOptions = section(GRPOOptions, "GRPO hyper-parameters (trl.GRPOConfig fields of the same name)")
    peft: PeftOptions = section(PeftOptions, "LoRA adapters")
    logging: LoggingConfig = section(LoggingConfig, "where metrics go")
    checkpoint: CheckpointConfig = section(CheckpointConfig, "checkpoint cadence and retention")
    output_dir: str = option("runs/proguard", "where checkpoints, metrics.jsonl, recipe.yaml and final/ are written",
                             nonempty="")

    # Typed views of the sections the schema cannot type (``rewards``) or that combine two sections
    # (tasks + prompt). ``load_recipe`` parses them once, in ``check``; later calls return the same
    # objects. The cache lives outside the dataclass fields, so it is never saved or merged.
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

    @staticmethod
    def merge_layer(merged: Any, layer: Any, origin: str) -> tuple[Any, Any]:
        """Before a layer is merged: its data source replaces the other one; rewards by name merge into the list."""
        from omegaconf import OmegaConf

        container = OmegaConf.to_container(layer, resolve=False)
        # data.prepared and data.tasks are two sources of the training prompts: a later layer naming
        # one replaces the other from an earlier layer (`... data.prepared=tasks/` just works on a
        # recipe that generates tasks); one layer naming both is an error (check).
        data = container.get("data") if isinstance(container, Mapping) else None
        if isinstance(data, Mapping):
            for key, other in (("prepared", "tasks"), ("tasks", "prepared")):
                if data.get(key) is not None and other not in data:
                    merged = OmegaConf.merge(merged, {"data": {other: None}})
        rewards = container.get("rewards") if isinstance(container, Mapping) else None
        # rewards keyed by name on the command line change the rows the file (or the default preset) set;
        # in a recipe file a mapping is the whole list, by name.
        if isinstance(rewards, Mapping) and origin == "command line":
            base = OmegaConf.to_container(merged, resolve=False)["rewards"]
            keyed = rewards_by_name(base, origin)
            order = list(keyed)
            for name, row in rewards.items():
                name = str(name)
                if name.isdigit() and name not in keyed and int(name) < len(order):  # rewards.3.weight: by position
                    name = order[int(name)]
                keyed[name] = _merge_row(keyed.get(name), row)
            merged.rewards = None  # an Any node: replaced whole, never merged key by key
            merged = OmegaConf.merge(merged, {"rewards": keyed})
            layer = OmegaConf.masked_copy(layer, [k for k in container if k != "rewards"])
        return merged, layer

    def check(self, origin: str = "recipe") -> None:
        """Rules that span several keys; raises ``RecipeError`` (each field's own range is checked by the loader)."""

        def fail(key: str, msg: str) -> None:
            raise RecipeError(f"{origin}: {key}: {msg}")

        problem = check_shared(self, method="grpo", config="GRPOConfig", owned=_OWNED_ELSEWHERE,
                               known=grpo_config_field_names)
        if problem:
            raise RecipeError(f"{origin}: {problem}")
        if self.data.prepared is not None and self.data.tasks is not None:
            fail("data.tasks", "a prepared dataset (data.prepared) already holds its tasks; set only one of the two")
        self.__dict__["_reward_specs"] = _parse_rewards(self.rewards, origin)
        g = self.grpo
        if g.num_generations < 2:
            fail("grpo.num_generations", f"GRPO needs at least 2 rollouts per prompt, got {g.num_generations}")
        if (g.gradient_accumulation_steps is None) == (g.prompts_per_step is None):
            fail("grpo.prompts_per_step", "set exactly one of grpo.gradient_accumulation_steps and "
                                          "grpo.prompts_per_step (the other is derived from the number of GPUs at "
                                          "launch)")
        if g.prompts_per_step is not None and g.steps_per_generation is not None:
            fail("grpo.steps_per_generation", "grpo.prompts_per_step fixes the generation batch; leave this null")
        # One process's share of a generation batch must hold whole prompt groups; TRL checks the global
        # batch again at launch, with the real number of processes.
        if g.gradient_accumulation_steps is not None:
            local = g.per_device_train_batch_size * (g.steps_per_generation or g.gradient_accumulation_steps)
            if local % g.num_generations:
                fail("grpo.num_generations", f"per_device_train_batch_size x steps_per_generation = {local} "
                                             "completions per process is not a multiple of num_generations = "
                                             f"{g.num_generations}")


def load_recipe(
    path: str | Path | None, overrides: Sequence[str] = (), *, allow_env: bool | Sequence[str] = ()
) -> Recipe:
    """Schema defaults <- the YAML file <- ``key=value`` overrides, typed and checked (``RecipeError``).

    ``${oc.env:VAR}`` interpolation is off unless ``allow_env`` names ``VAR`` (or is ``True``): a
    shared recipe must not read API keys out of the environment into run names and saved files.
    Keys filled from the environment are written back as their ``${oc.env:...}`` text by
    ``recipe_to_yaml``, so the value itself never reaches ``recipe.yaml`` or ``--dry-run``.
    """
    return load(Recipe, path, overrides, allow_env=allow_env)


def check_recipe(r: Recipe, origin: str = "recipe") -> None:
    """Every rule of a built recipe (what ``load_recipe`` runs after building it)."""
    from proguard.train.recipe.loader import check

    check(r, origin)


# ---------------------------------------------------------------------------------------------
# Rewards
# ---------------------------------------------------------------------------------------------
def _parse_rewards(rewards: Any, origin: str) -> list[RewardSpec]:
    """A preset name, a ``[{name, weight, gate, options}]`` list or a ``{name: {...}}`` mapping, as typed specs."""
    if isinstance(rewards, str):
        if rewards not in preset_names():
            from proguard.hints import did_you_mean

            hint = did_you_mean(rewards, preset_names(), n=1)
            raise RecipeError(f"{origin}: rewards: unknown preset {rewards!r}{hint}; presets: {', '.join(preset_names())}")
        try:
            return load_preset(rewards)
        except RewardSpecError as exc:
            raise RecipeError(f"{origin}: rewards: {exc}") from None
    if isinstance(rewards, Mapping):
        rows = []
        for name, row in rewards.items():
            if row is None or row is False:  # `rewards.NAME=null` leaves a preset's reward out
                continue
            if not isinstance(row, Mapping):
                raise RecipeError(f"{origin}: rewards.{name}: must be a mapping of weight, gate, options "
                                  f"(or null to leave it out), got {row!r}")
            if "name" in row and row["name"] != name:
                raise RecipeError(f"{origin}: rewards.{name}: name: {row['name']!r} differs from its key")
            rows.append({**row, "name": name})
        rewards = rows
    try:
        return parse_specs(rewards, origin)
    except RewardSpecError as exc:
        raise RecipeError(str(exc)) from None


def rewards_by_name(rewards: Any, origin: str) -> dict[str, Any]:
    """The ``rewards`` value (preset name, list or mapping) keyed by reward name, in order."""
    if isinstance(rewards, str):
        return {s.name: {k: v for k, v in s.to_dict().items() if k != "name"} for s in _parse_rewards(rewards, origin)}
    if isinstance(rewards, Mapping):
        return {str(k): v for k, v in rewards.items()}
    if isinstance(rewards, Sequence):
        keyed: dict[str, Any] = {}
        for i, row in enumerate(rewards):
            name = row if isinstance(row, str) else (row.get("name") if isinstance(row, Mapping) else None)
            if not isinstance(name, str):
                raise RecipeError(f"{origin}: rewards[{i}]: name: required to address the reward by name")
            keyed[name] = {} if isinstance(row, str) else {k: v for k, v in row.items() if k != "name"}
        return keyed
    raise RecipeError(f"{origin}: rewards: a preset name, a list or a mapping, got {rewards!r}")


def _merge_row(base: Any, row: Any) -> Any:
    """One reward's row after a layer changes some of its keys (``None``: leave the reward out)."""
    if row is None or base is None or not isinstance(row, Mapping):
        return row
    merged = {k: v for k, v in dict(base).items() if k != "name"}
    for key, value in row.items():
        if key == "options" and isinstance(value, Mapping):
            merged["options"] = {**dict(merged.get("options") or {}), **value}
        else:
            merged[key] = value
    return merged


# ---------------------------------------------------------------------------------------------
# trl.GRPOConfig keyword arguments
# ---------------------------------------------------------------------------------------------
# Keys of GRPOConfig that other recipe sections own; setting them in grpo.extra would be silently
# overridden (or fight the section), so it is an error that says where the key lives.
_OWNED_ELSEWHERE = {
    **SHARED_OWNED,
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
    "log_completions": "logging.log_completions",
    "trust_remote_code": "model.trust_remote_code",
    "reward_weights": "rewards (weights live in the rewards list)",
    "generation_batch_size": "grpo.steps_per_generation",
    "remove_unused_columns": "(the reward needs the dataset columns; always false)",
}

NOT_FORWARDED = {
    "model.name_or_path": "the trainer's model argument (resolved by proguard.train.policy), not a config field",
    "model.freeze_layers": "applied to the trainer's model before its optimizer is built (proguard.train.freezing)",
    "images.max_pixels": "written into the policy dir's processor config (proguard.train.policy)",
    "images.min_pixels": "written into the policy dir's processor config (proguard.train.policy)",
    "data.*": "builds the training dataset (proguard.train.dataset), the trainer's train_dataset",
    "rewards": "builds the reward function (proguard.scoring.compose), the trainer's reward_funcs",
    "rollout.backend": "forwarded as use_vllm (a bool), and selects the proguard.train.rollout backend",
    "lengths.max_prompt_length": "checked at start-up on every prompt (proguard.train.checks); with the completion "
                                 "length it sets vllm_max_model_length",
    "lengths.overlong_prompts": "the start-up length check's action (proguard.train.checks)",
    "grpo.prompts_per_step": "derives gradient_accumulation_steps from the number of processes",
    "peft.*": "the trainer's peft_config (a peft.LoraConfig), not a config field",
    "logging.wandb_project": "sets WANDB_PROJECT in the environment",
}
"""Recipe keys that do not map onto a ``trl.GRPOConfig`` field of their own, and where they go instead."""


def grpo_config_field_names() -> set[str]:
    """Names of ``trl.GRPOConfig``'s fields (imports TRL's config module only)."""
    from trl import GRPOConfig

    return {f.name for f in dataclasses.fields(GRPOConfig)}


def gradient_accumulation(r: Recipe, world_size: int) -> int:
    """Gradient-accumulation steps for ``world_size`` processes (derived from ``grpo.prompts_per_step`` if set)."""
    g = r.grpo
    if g.prompts_per_step is None:
        assert g.gradient_accumulation_steps is not None
        return g.gradient_accumulation_steps
    completions = g.prompts_per_step * g.num_generations
    per_micro_step = g.per_device_train_batch_size * world_size
    if completions % per_micro_step:
        raise RecipeError(
            f"grpo.prompts_per_step: {g.prompts_per_step} prompts x {g.num_generations} rollouts = {completions} "
            f"completions per step do not split into micro-batches of per_device_train_batch_size "
            f"{g.per_device_train_batch_size} x {world_size} process(es)"
        )
    return completions // per_micro_step


def prompts_per_step(r: Recipe, world_size: int) -> float:
    """Prompts per optimizer step: per_device x processes x accumulation / rollouts per prompt."""
    g = r.grpo
    completions = g.per_device_train_batch_size * world_size * gradient_accumulation(r, world_size)
    return completions / g.num_generations


def grpo_config_kwargs(r: Recipe, *, world_size: int = 1) -> dict[str, Any]:
    """Keyword arguments for ``trl.GRPOConfig`` (no TRL import; the caller builds the config)."""
    kwargs: dict[str, Any] = {
        **shared_trl_kwargs(r),
        **section_kwargs(r.grpo, skip=("extra", "prompts_per_step")),
        "gradient_accumulation_steps": gradient_accumulation(r, world_size),
        "max_completion_length": r.lengths.max_completion_length,
        "trust_remote_code": r.model.trust_remote_code,
        "log_completions": r.logging.log_completions,
        # The reward reads the ground-truth columns; TRL must pass them through.
        "remove_unused_columns": False,
        "use_vllm": r.rollout.backend == "vllm",
        "vllm_mode": r.rollout.vllm_mode,
        "vllm_server_host": r.rollout.server_host,
        "vllm_server_port": r.rollout.server_port,
        "vllm_server_base_url": r.rollout.server_base_url,
        "vllm_server_timeout": r.rollout.server_timeout,
        "vllm_gpu_memory_utilization": r.rollout.gpu_memory_utilization,
        "vllm_tensor_parallel_size": r.rollout.tensor_parallel_size,
        "vllm_enable_sleep_mode": r.rollout.enable_sleep_mode,
        "vllm_max_model_length": r.lengths.max_prompt_length + r.lengths.max_completion_length,
    }
    kwargs.update(r.grpo.extra)
    return kwargs
