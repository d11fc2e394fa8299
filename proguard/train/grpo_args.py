"""The recipe's ``grpo`` / ``rollout`` / ``logging`` / ``checkpoint`` sections as ``trl.GRPOConfig`` keyword arguments.

No TRL import here: ``--check`` and ``--dry-run`` compute the batch arithmetic without loading TRL.
"""

from __future__ import annotations

from typing import Any

from proguard.train.recipe import Recipe, RecipeError


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
    g = r.grpo
    init_kwargs: dict[str, Any] = {"dtype": r.model.dtype}
    if r.model.attn_implementation:
        init_kwargs["attn_implementation"] = r.model.attn_implementation
    kwargs: dict[str, Any] = {
        "output_dir": r.output_dir,
        "per_device_train_batch_size": g.per_device_train_batch_size,
        "num_generations": g.num_generations,
        "gradient_accumulation_steps": gradient_accumulation(r, world_size),
        "steps_per_generation": g.steps_per_generation,
        "num_iterations": g.num_iterations,
        "learning_rate": g.learning_rate,
        "lr_scheduler_type": g.lr_scheduler_type,
        "warmup_steps": g.warmup_steps,
        "weight_decay": g.weight_decay,
        "max_grad_norm": g.max_grad_norm,
        "beta": g.beta,
        "epsilon": g.epsilon,
        "epsilon_high": g.epsilon_high,
        "entropy_coef": g.entropy_coef,
        "loss_type": g.loss_type,
        "scale_rewards": g.scale_rewards,
        "mask_truncated_completions": g.mask_truncated_completions,
        "temperature": g.temperature,
        "top_p": g.top_p,
        "top_k": g.top_k,
        "max_steps": g.max_steps,
        "num_train_epochs": g.num_train_epochs,
        "bf16": g.bf16,
        "gradient_checkpointing": g.gradient_checkpointing,
        "seed": g.seed,
        "max_completion_length": r.lengths.max_completion_length,
        "model_init_kwargs": init_kwargs,
        "trust_remote_code": r.model.trust_remote_code,
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
        "report_to": [] if r.logging.report_to == ["none"] else list(r.logging.report_to),
        "logging_steps": r.logging.logging_steps,
        "run_name": r.logging.run_name,
        "log_completions": r.logging.log_completions,
        "save_strategy": "steps",
        "save_steps": r.checkpoint.save_steps,
        "save_total_limit": r.checkpoint.save_total_limit,
        "save_only_model": False,  # resume restores the optimizer, scheduler and RNG states
        "disable_tqdm": False,
    }
    kwargs.update(g.extra)
    return kwargs
