"""GRPO training of a vision-language guard: recipe -> task dataset, composite reward, TRL ``GRPOTrainer``.

``train(recipe)`` builds the training prompts (``proguard.tasks``), the reward from the recipe's
``rewards`` list (``proguard.reward_compose.build_reward``) and a ``GRPOTrainer`` for the policy
(Auto classes; Qwen2.5-VL / Qwen3-VL class), checks before any model weights load that every
prompt fits ``lengths.max_prompt_length`` and that the processor's image tokens line up with what
the policy's vision tower produces, trains (resuming from the latest checkpoint with
``resume=True``) and saves ``<output_dir>/final`` so transformers and ``vllm serve`` load it.

Besides TRL's own metrics (``reward``, ``rewards/<fn>/mean``, ``kl``, ``entropy``,
``completions/mean_length``...), every logging step records the reward's components
(``reward/<name>/mean``), ``format/valid_rate`` and ``data/ood_share``; all of them go to the
recipe's reporters and to ``<output_dir>/metrics.jsonl``.

Run it with ``proguard train RECIPE.yaml`` (or ``accelerate launch -m proguard.cli train ...``).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proguard.config import (
    BUNDLED,
    TINY_MODEL,
    Recipe,
    grpo_config_kwargs,
    prompt_config,
    prompts_per_step,
    recipe_to_yaml,
)
from proguard.vllm_rollout import VLLM_MISSING, adapt_trainer, block_image_tokens, check_vllm, vllm_installed

FINAL_DIR = "final"
POLICY_INIT_DIR = "policy-init"
METRICS_FILE = "metrics.jsonl"
RECIPE_FILE = "recipe.yaml"
REWARD_NAME = "proguard"
"""TRL logs the composite reward's total as ``rewards/proguard/mean``."""
# Files a processor writes with save_pretrained; a prepared policy dir gets fresh ones, never links.
_PROCESSOR_FILES = (
    "preprocessor_config.json",
    "processor_config.json",
    "video_preprocessor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "chat_template.json",
    "chat_template.jinja",
)


class TrainError(RuntimeError):
    """Training cannot start or continue; the message says why and what to change."""


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------
def build_train_dataset(r: Recipe):
    """The training prompts: a prepared task dataset, or the task generator run over labelled samples."""
    import datasets

    from proguard.data import BUNDLED_SAMPLES, load_samples
    from taxonomy import load_taxonomy

    if r.data.prepared:
        path = Path(r.data.prepared)
        if not path.exists():
            raise TrainError(f"data.prepared: {path}: no such directory")
        loaded = datasets.load_from_disk(str(path))
        origin = str(path)
        if isinstance(loaded, datasets.DatasetDict):
            if r.data.train_split not in loaded:
                raise TrainError(f"data.train_split: {path} has splits {', '.join(loaded)}, not {r.data.train_split!r}")
            ds = loaded[r.data.train_split]
            origin = f"{path} [{r.data.train_split}]"
        else:
            ds = loaded
    else:
        from proguard import tasks

        taxonomy = load_taxonomy(r.data.taxonomy)
        samples_path = BUNDLED_SAMPLES if r.data.samples == BUNDLED else Path(r.data.samples)
        samples = load_samples(samples_path, taxonomy)
        origin = str(samples_path)
        if r.data.tasks is None:
            ds = tasks.default_tasks(samples, taxonomy, prompt_config(r))
        else:
            splits = tasks.build_tasks(samples, taxonomy, task_config(r))
            if r.data.train_split not in splits:
                raise TrainError(f"data.train_split: the task generator made {', '.join(splits)}, not {r.data.train_split!r}")
            ds = splits[r.data.train_split]
            origin = f"{origin} [{r.data.train_split}]"
    if r.data.max_samples is not None and len(ds) > r.data.max_samples:
        ds = ds.select(range(r.data.max_samples))
    check_dataset(ds, origin)
    return ds


def task_config(r: Recipe):
    """``proguard.tasks.TaskConfig`` from ``data.tasks``, with the recipe's ``data.prompt`` options."""
    from dataclasses import replace

    from proguard.tasks import TaskConfig, TaskError

    try:
        config = TaskConfig.from_dict(dict(r.data.tasks or {}), origin="data.tasks")
    except TaskError as exc:
        raise TrainError(str(exc)) from None
    return replace(config, prompt=prompt_config(r))


def check_dataset(ds, origin: str) -> None:
    """Every row has a conversational prompt, the reward's columns, and one image per image placeholder."""
    from rewards.types import TARGET_COLUMNS

    required = ["prompt", "modality", "request_label"]
    missing = [c for c in required if c not in ds.column_names]
    if missing:
        raise TrainError(
            f"{origin}: missing column(s) {', '.join(missing)}; a task dataset carries prompt, image and "
            f"{', '.join(TARGET_COLUMNS)}"
        )
    if len(ds) == 0:
        raise TrainError(f"{origin}: no training rows")
    names = row_names(ds)
    problems = []
    for i, (prompt, image) in enumerate(_prompts_and_images(ds)):
        if not isinstance(prompt, list) or not all(isinstance(m, dict) and "role" in m for m in prompt):
            problems.append(f"{names[i]}: prompt: must be a list of chat messages")
            continue
        placeholders = sum(
            1
            for m in prompt
            if isinstance(m.get("content"), list)
            for part in m["content"]
            if isinstance(part, dict) and part.get("type") == "image"
        )
        n_images = int(image is not None)
        if placeholders != n_images:
            problems.append(f"{names[i]}: prompt has {placeholders} image placeholder(s) but the row has {n_images} image(s)")
        if len(problems) >= 20:
            break
    if problems:
        raise TrainError(f"{origin}: bad row(s):\n" + "\n".join(problems))


def row_names(ds) -> list[str]:
    """How errors name each row: its task or sample ID when the dataset has one, else its number."""
    for column in ("task_id", "id", "sample_id"):
        if column in ds.column_names:
            return [f"row {i + 1} ({v})" for i, v in enumerate(ds[column])]
    return [f"row {i + 1}" for i in range(len(ds))]


def _prompts_and_images(ds, batch_size: int = 1024):
    """``(prompt, undecoded image cell or None)`` per row, read in batches (task sets can be large)."""
    has_image = "image" in ds.column_names
    view = ds.cast_column("image", _undecoded_image()) if has_image else ds
    view = view.select_columns(["prompt", "image"] if has_image else ["prompt"])
    for batch in view.iter(batch_size=batch_size):
        images = batch["image"] if has_image else [None] * len(batch["prompt"])
        yield from zip(batch["prompt"], images, strict=True)


def _undecoded_image():
    import datasets

    return datasets.Image(decode=False)


def dataset_summary(ds) -> dict[str, Any]:
    """Row counts by modality, unsafe and OOD (what ``--dry-run`` prints)."""
    out: dict[str, Any] = {"rows": len(ds), "by_modality": dict(sorted(Counter(ds["modality"]).items()))}
    labels = ds["request_label"]
    responses = ds["response_label"] if "response_label" in ds.column_names else [None] * len(ds)
    out["unsafe"] = sum(1 for a, b in zip(labels, responses, strict=True) if "unsafe" in (a, b))
    if "ood" in ds.column_names:
        out["ood"] = sum(1 for v in ds["ood"] if v)
    return out


def render_messages(messages: Sequence[dict]) -> str:
    """A chat prompt as readable text, images shown as ``<image>``."""
    lines = []
    for m in messages:
        lines.append(f"===== {m['role']} =====")
        content = m["content"]
        if isinstance(content, str):
            lines.append(content)
            continue
        for part in content:
            lines.append("<image>" if part.get("type") == "image" else str(part.get("text", "")))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Policy checkpoint and processor
# ---------------------------------------------------------------------------------------------
def resolve_model_path(r: Recipe) -> str:
    """A local path or hub id of the policy; ``tiny`` builds (once, cached) the in-process tiny VLM."""
    if r.model.name_or_path == TINY_MODEL:
        from proguard.testing.tiny_vlm import tiny_vlm_path

        return str(tiny_vlm_path())
    return r.model.name_or_path


def load_processor(model_path: str, r: Recipe):
    """The policy's processor, left-padded as TRL needs, with the recipe's image pixel budget."""
    from transformers import AutoProcessor, ProcessorMixin

    processor = AutoProcessor.from_pretrained(
        model_path, padding_side="left", truncation_side="left", trust_remote_code=r.model.trust_remote_code
    )
    if not isinstance(processor, ProcessorMixin):
        raise TrainError(
            f"model.name_or_path: {r.model.name_or_path}: its processor is a {type(processor).__name__}, not a "
            "vision-language processor; proguard trains vision-language policies (Qwen2.5-VL / Qwen3-VL class)"
        )
    if r.images.max_pixels or r.images.min_pixels:
        ip = processor.image_processor
        size = dict(getattr(ip, "size", None) or {})
        if "longest_edge" not in size:
            raise TrainError(
                f"images.max_pixels: the image processor {type(ip).__name__} has no pixel budget "
                "(size.longest_edge); leave images.max_pixels/min_pixels null for this model"
            )
        if r.images.max_pixels:
            size["longest_edge"] = r.images.max_pixels
        if r.images.min_pixels:
            size["shortest_edge"] = r.images.min_pixels
        if size["shortest_edge"] > size["longest_edge"]:
            raise TrainError(
                f"images: min_pixels {size['shortest_edge']} > max_pixels {size['longest_edge']} after merging with "
                "the checkpoint's image processor settings"
            )
        ip.size = size
    return processor


def prepare_policy_dir(model_path: str, processor, out_dir: Path) -> Path:
    """A checkpoint dir whose processor files carry the recipe's pixel budget; weights are symlinked.

    vLLM builds its own processor from the model directory, so a pixel budget set only in memory
    would give it different image-token counts than the trainer. Everything that loads the policy
    (the trainer, colocated vLLM, a ``trl vllm-serve`` pointed here) reads this one directory.
    """
    src = Path(model_path)
    if not src.is_dir():
        from huggingface_hub import snapshot_download

        src = Path(snapshot_download(model_path))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        processor.save_pretrained(scratch)
        written = {p.name for p in scratch.iterdir()}
        for item in src.iterdir():
            if item.name in _PROCESSOR_FILES or item.name in written or item.name.startswith("."):
                continue
            (scratch / item.name).symlink_to(item.resolve())
        (scratch / "proguard_policy_source.txt").write_text(f"{src.resolve()}\n")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.rename(scratch, out_dir)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return out_dir


# ---------------------------------------------------------------------------------------------
# Start-up checks
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Alignment:
    """The image-token check on one sample prompt."""

    row: int
    prompt_tokens: int
    forward_tokens: int
    vision_features: int


def check_image_token_alignment(processor, model_config, ds) -> Alignment | None:
    """Assert the prompt's image tokens equal the vision features the policy makes for its image.

    Tokenizes the first image row twice, as TRL does (``apply_chat_template`` for generation, the
    processor on the rendered text for the training forward pass), and compares both image-token
    counts with ``prod(image_grid_thw) / merge_size**2`` computed with the *policy's* merge size and
    image-token ID. ``None`` when the data has no image rows. Raises ``TrainError`` on a mismatch:
    silent prompt/image misalignment is the most reported failure of VLM GRPO in TRL.
    """
    from trl.data_utils import prepare_multimodal_messages

    index = next((i for i, (_, cell) in enumerate(_prompts_and_images(ds)) if cell is not None), None)
    if index is None:
        return None
    row = ds[index]
    messages = prepare_multimodal_messages(row["prompt"], images=[row["image"]])
    gen = processor.apply_chat_template(
        conversation=[messages], add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    text = processor.apply_chat_template([messages], add_generation_prompt=True, tokenize=False)
    fwd = processor(images=[[row["image"]]], text=text, padding=True, return_tensors="pt")

    image_token_id = getattr(model_config, "image_token_id", None)
    vision = getattr(model_config, "vision_config", None)
    merge = getattr(vision, "spatial_merge_size", None)
    grid = fwd.get("image_grid_thw")
    if image_token_id is None or merge is None or grid is None:
        raise TrainError(
            f"cannot check image-token alignment for {type(model_config).__name__}: it needs image_token_id, "
            "vision_config.spatial_merge_size and the processor's image_grid_thw (Qwen2-VL family). "
            "proguard trains Qwen2.5-VL / Qwen3-VL class policies."
        )
    tokenizer = processor.tokenizer
    proc_token = getattr(processor, "image_token", None)
    if proc_token is not None and tokenizer.convert_tokens_to_ids(proc_token) != image_token_id:
        raise TrainError(
            f"image-token mismatch: the processor marks images with {proc_token!r} "
            f"(id {tokenizer.convert_tokens_to_ids(proc_token)}) but the policy's image_token_id is {image_token_id}; "
            "the processor and the model come from different checkpoints"
        )
    ip_merge = getattr(processor.image_processor, "merge_size", merge)
    features = int(sum(int(math.prod(g.tolist())) for g in grid)) // int(merge) ** 2
    n_gen = int((gen["input_ids"] == image_token_id).sum())
    n_fwd = int((fwd["input_ids"] == image_token_id).sum())
    if ip_merge != merge or not n_gen == n_fwd == features:
        raise TrainError(
            f"image-token misalignment on training row {index + 1}: the generation prompt has {n_gen} image tokens, "
            f"the training forward pass {n_fwd}, and the policy's vision tower makes {features} features "
            f"(image_grid_thw {grid.tolist()} / spatial_merge_size {merge}^2; image processor merge_size {ip_merge}). "
            "Check that the chat template renders one image placeholder per image and that the processor belongs "
            "to the model checkpoint."
        )
    return Alignment(index, n_gen, n_fwd, features)


def prompt_lengths(processor, ds, batch_size: int = 256) -> list[int]:
    """Tokens per training prompt as the policy sees it: text tokens plus each image's expanded tokens."""
    tokenizer = processor.tokenizer
    image_token = getattr(processor, "image_token", None)
    image_token_id = tokenizer.convert_tokens_to_ids(image_token) if image_token else None
    lengths: list[int] = []
    prompts: list = []
    images: list = []

    def flush() -> None:
        texts = processor.apply_chat_template(prompts, add_generation_prompt=True, tokenize=False)
        for ids, cell in zip(tokenizer(texts, add_special_tokens=False)["input_ids"], images, strict=True):
            n = len(ids)
            if cell is not None and image_token_id is not None:
                n += _image_tokens(processor, cell) - ids.count(image_token_id)
            lengths.append(n)
        prompts.clear()
        images.clear()

    for prompt, cell in _prompts_and_images(ds):
        prompts.append(prompt)
        images.append(cell)
        if len(prompts) == batch_size:
            flush()
    if prompts:
        flush()
    return lengths


def _image_tokens(processor, cell: dict) -> int:
    """Image tokens the processor expands one image to, from its size (no pixel processing)."""
    import io

    from PIL import Image

    ip = processor.image_processor
    merge = int(getattr(ip, "merge_size", 1))
    source = io.BytesIO(cell["bytes"]) if cell.get("bytes") else cell["path"]
    with Image.open(source) as im:
        if hasattr(ip, "get_number_of_image_patches"):
            return ip.get_number_of_image_patches(im.height, im.width, {}) // merge**2
        grid = ip(images=[im.convert("RGB")], return_tensors="pt")["image_grid_thw"]
    return int(grid.prod(-1).sum()) // merge**2


def enforce_prompt_lengths(ds, lengths: list[int], r: Recipe, origin: str = "training data"):
    """Rows whose prompt exceeds ``lengths.max_prompt_length``: an error, or dropped and reported."""
    limit = r.lengths.max_prompt_length
    over = [i for i, n in enumerate(lengths) if n > limit]
    if not over:
        return ds
    names = row_names(ds)
    shown = ", ".join(f"{names[i]}: {lengths[i]} tokens" for i in over[:5])
    msg = (
        f"{origin}: {len(over)} of {len(ds)} prompts are longer than lengths.max_prompt_length={limit}: {shown}"
        + (" ..." if len(over) > 5 else "")
    )
    if r.lengths.overlong_prompts == "error":
        raise TrainError(
            msg + ". Raise lengths.max_prompt_length, lower images.max_pixels, shorten the prompt "
            "(data.prompt.descriptions=false), or set lengths.overlong_prompts=drop"
        )
    print(f"[proguard] dropping {msg}", flush=True)
    keep = sorted(set(range(len(ds))) - set(over))
    if not keep:
        raise TrainError(msg + "; nothing left to train on")
    return ds.select(keep)


# ---------------------------------------------------------------------------------------------
# Reward statistics, trainer, callbacks
# ---------------------------------------------------------------------------------------------
class RewardWithStats:
    """The composite reward plus a batch statistic TRL does not log: the OOD share.

    ``data/ood_share`` is the share of the batch whose category was hidden from the prompt; it goes
    through TRL's ``log_metric`` callback, next to the components and ``format/valid_rate``, which the
    composite reward logs from its own parse of the batch.
    """

    def __init__(self, reward: Callable[..., list[float]]):
        self.reward = reward
        self.__name__ = getattr(reward, "__name__", type(reward).__name__)

    def __call__(self, prompts=None, completions=None, **kwargs: Any) -> list[float]:
        """TRL's reward signature; delegates scoring to the wrapped reward."""
        log_metric = kwargs.get("log_metric")
        if log_metric is not None and completions:
            ood = kwargs.get("ood")
            log_metric("data/ood_share", (sum(bool(v) for v in ood) / len(ood)) if ood else 0.0)
        return self.reward(prompts=prompts, completions=completions, **kwargs)


def _trainer_class():
    from trl import GRPOTrainer

    class GuardGRPOTrainer(GRPOTrainer):
        """``GRPOTrainer`` that accepts batches mixing text-only and image prompts.

        TRL 1.16 turns a missing ``image`` into ``None`` image lists, which the processor call of the
        training forward pass rejects (a batch of only text rows from a dataset with an ``image``
        column fails the same way). transformers' processors take an empty list for "no image in this
        sample", so rows are handed to TRL with an ``images`` list instead, and the image lists
        that generation returns get ``[]`` for text-only prompts.
        """

        def _generate_and_score_completions(self, inputs):
            if inputs and "image" in inputs[0] and "images" not in inputs[0]:
                inputs = [
                    {**{k: v for k, v in x.items() if k != "image"}, "images": [] if x["image"] is None else [x["image"]]}
                    for x in inputs
                ]
            return super()._generate_and_score_completions(inputs)

        def _generate(self, prompts: list):
            out = super()._generate(prompts)
            if len(out) != 8:
                raise TrainError(f"unsupported TRL version: GRPOTrainer._generate returned {len(out)} items, expected 8")
            images = out[6]
            if images is not None and any(im is None for im in images):
                out = (*out[:6], [im if im is not None else [] for im in images], out[7])
            return out

        def _get_train_sampler(self, dataset=None):
            return EpochSeededSampler(super()._get_train_sampler(dataset))

        def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
            target = model if model is not None else self.model
            state = None
            if not (self.is_deepspeed_enabled or self.is_fsdp_enabled or hasattr(target, "peft_config")):
                state = _read_checkpoint_weights(Path(resume_from_checkpoint))
            if state is None:
                return super()._load_from_checkpoint(resume_from_checkpoint, model)
            result = target.load_state_dict(_to_model_keys(target, state), strict=False)
            tied = _tied_keys(target)
            missing = [k for k in result.missing_keys if k not in tied]
            if missing or result.unexpected_keys:
                raise TrainError(
                    f"--resume: {resume_from_checkpoint} does not match the model: {len(missing)} missing weights "
                    f"({', '.join(missing[:3])}), {len(result.unexpected_keys)} unexpected "
                    f"({', '.join(result.unexpected_keys[:3])})"
                )

    return GuardGRPOTrainer


class EpochSeededSampler:
    """TRL's ``RepeatSampler`` with its shuffle seeded by ``seed + epoch``.

    TRL's sampler draws each epoch's order from one generator seeded once, so a run resumed in a
    later epoch (a fresh sampler) replays epoch 0's order. The Trainer calls ``set_epoch`` before
    every epoch, the resumed one included, which makes the order a function of the epoch alone.
    """

    def __init__(self, sampler):
        self.sampler = sampler

    def set_epoch(self, epoch: int) -> None:
        """Reseed the shuffle for ``epoch``."""
        if getattr(self.sampler, "shuffle", False):
            self.sampler.generator.manual_seed(int(self.sampler.seed or 0) + epoch)

    def __iter__(self):
        return iter(self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)


def _read_checkpoint_weights(checkpoint: Path) -> dict | None:
    """A checkpoint's safetensors weights (one file or an indexed set of shards); ``None`` if absent."""
    from safetensors.torch import load_file

    single = checkpoint / "model.safetensors"
    index = checkpoint / "model.safetensors.index.json"
    if single.is_file():
        return load_file(str(single), device="cpu")
    if index.is_file():
        state: dict = {}
        for shard in sorted(set(json.loads(index.read_text())["weight_map"].values())):
            state.update(load_file(str(checkpoint / shard), device="cpu"))
        return state
    return None


def _to_model_keys(model, state: dict) -> dict:
    """Checkpoint keys (saved in the original hub layout) renamed to the model's own parameter names.

    ``save_pretrained`` reverts transformers' key renaming (Qwen2.5-VL's ``model.language_model.*`` is
    saved as ``model.*``), but the Trainer's resume loads the file with ``load_state_dict`` as is, so
    no weight would load (transformers issue #43701). The renaming is recovered by reverting a
    placeholder state dict and matching the placeholders back.
    """
    import torch
    from transformers.core_model_loading import revert_weight_conversion

    placeholders = {k: torch.empty(0) for k in model.state_dict()}
    by_id = {id(v): k for k, v in placeholders.items()}
    saved = revert_weight_conversion(model, placeholders)
    mapping = {saved_key: by_id[id(v)] for saved_key, v in saved.items() if id(v) in by_id}
    return {mapping.get(k, k): v for k, v in state.items()}


def _tied_keys(model) -> set[str]:
    """Parameter names that share storage with another (tied embeddings are saved once)."""
    seen: dict[int, str] = {}
    tied = set()
    for name, tensor in model.state_dict().items():
        ptr = tensor.data_ptr()
        if ptr in seen:
            tied.add(name)
        else:
            seen[ptr] = name
    return tied


def _metrics_callback(path: Path):
    from transformers import TrainerCallback

    class MetricsFile(TrainerCallback):
        """Appends every log record, with its step, to a JSON-lines file (main process only)."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and logs:
                with path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps({"step": state.global_step, **logs}, default=float) + "\n")

    return MetricsFile()


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def build_grpo_config(r: Recipe):
    """``trl.GRPOConfig`` for the recipe and this launch's number of processes."""
    import torch
    from trl import GRPOConfig

    kwargs = grpo_config_kwargs(r, world_size=_world_size())
    if not torch.cuda.is_available():
        mps = getattr(torch.backends, "mps", None)
        if kwargs.get("bf16") and not (mps is not None and mps.is_available()):
            raise TrainError("grpo.bf16 is true but no CUDA device is present; set grpo.bf16=false to train on CPU")
        kwargs["use_cpu"] = True
    if "wandb" in kwargs["report_to"] and importlib.util.find_spec("wandb") is None:
        raise TrainError("logging.report_to lists wandb but wandb is not installed: pip install wandb")
    if "tensorboard" in kwargs["report_to"] and importlib.util.find_spec("tensorboard") is None:
        raise TrainError("logging.report_to lists tensorboard but tensorboard is not installed: pip install tensorboard")
    if r.logging.wandb_project:
        os.environ.setdefault("WANDB_PROJECT", r.logging.wandb_project)
    try:
        return GRPOConfig(**kwargs)
    except ValueError as exc:
        raise TrainError(f"trl.GRPOConfig rejected the recipe: {exc}") from None


def _peft_config(r: Recipe):
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


@dataclass
class Setup:
    """What ``build_trainer`` assembled, for the caller to inspect before training."""

    trainer: Any
    processor: Any
    model_path: str
    alignment: Alignment | None
    dataset: Any


def build_trainer(
    r: Recipe,
    *,
    train_dataset=None,
    reward_funcs: Callable | Sequence[Callable] | None = None,
    callbacks: Sequence[Any] = (),
) -> Setup:
    """Dataset, reward, processor, checks and the ``GRPOTrainer`` (``train_dataset``/``reward_funcs`` override the recipe)."""
    from accelerate import PartialState
    from transformers import AutoConfig

    if r.rollout.backend == "vllm":
        check_vllm(r)
    args = build_grpo_config(r)
    out = Path(r.output_dir)
    state = PartialState()

    ds = train_dataset if train_dataset is not None else build_train_dataset(r)
    model_path = resolve_model_path(r)
    processor = load_processor(model_path, r)
    if r.images.max_pixels or r.images.min_pixels:
        with state.local_main_process_first():
            if state.is_local_main_process:
                prepare_policy_dir(model_path, processor, out / POLICY_INIT_DIR)
        model_path = str(out / POLICY_INIT_DIR)
    model_config = AutoConfig.from_pretrained(model_path, trust_remote_code=r.model.trust_remote_code)
    alignment = check_image_token_alignment(processor, model_config, ds)
    if r.rollout.backend == "vllm":
        block_image_tokens(args, model_config)
    ds = enforce_prompt_lengths(ds, prompt_lengths(processor, ds), r)

    if reward_funcs is None:
        from proguard.reward_compose import build_reward

        reward_funcs = RewardWithStats(build_reward(_reward_spec(r.rewards), name=REWARD_NAME))
    trainer = _trainer_class()(
        model=model_path,
        reward_funcs=reward_funcs,
        args=args,
        train_dataset=ds,
        processing_class=processor,
        peft_config=_peft_config(r),
        callbacks=[_metrics_callback(out / METRICS_FILE), *callbacks],
    )
    if r.rollout.backend == "vllm":
        adapt_trainer(trainer)
    return Setup(trainer, processor, model_path, alignment, ds)


def _reward_spec(rewards: Any) -> Any:
    return rewards if isinstance(rewards, str) else [dict(row) for row in rewards]


# ---------------------------------------------------------------------------------------------
# Validation and preview (no model)
# ---------------------------------------------------------------------------------------------
def validate(r: Recipe) -> list:
    """Check what the schema cannot: the taxonomy loads, every reward resolves and takes its options.

    Returns the reward specs. Reward modules are resolved, not built, so nothing heavy loads.
    """
    from proguard.reward_compose import resolve_specs
    from proguard.reward_registry import RewardRegistryError, check_options, default_registry
    from proguard.reward_specs import RewardSpecError
    from taxonomy import TaxonomyError, load_taxonomy

    if not r.data.prepared:
        try:
            load_taxonomy(r.data.taxonomy)
        except TaxonomyError as exc:
            raise TrainError(f"data.taxonomy: {exc}") from None
        if r.data.tasks is not None:
            task_config(r)
    try:
        specs, _ = resolve_specs(_reward_spec(r.rewards))
        registry = default_registry()
        for i, spec in enumerate(specs):
            try:
                check_options(spec.name, registry.resolve(spec.name), spec.options)
            except RewardRegistryError as exc:
                raise TrainError(f"rewards[{i}]: {exc}") from None
    except RewardSpecError as exc:
        raise TrainError(f"rewards: {exc}") from None
    return specs


def dry_run(r: Recipe) -> str:
    """The resolved recipe, a rendered sample prompt per modality, dataset counts and the reward list."""
    specs = validate(r)
    ds = build_train_dataset(r)
    lines = ["# resolved recipe", recipe_to_yaml(r).rstrip(), ""]
    summary = dataset_summary(ds)
    lines += ["# training data", json.dumps(summary, indent=2), ""]
    lines.append(
        f"# batch: {prompts_per_step(r, 1):g} prompts x {r.grpo.num_generations} rollouts per optimizer step "
        "on 1 process (scales with the number of processes unless grpo.prompts_per_step is set)"
    )
    if r.rollout.backend == "vllm" and not vllm_installed():
        lines.append(f"# WARNING: {VLLM_MISSING}")
    lines.append("")
    lines.append("# rewards (total = product of gates x weighted sum of the rest)")
    for spec in specs:
        role = "gate" if spec.gate else f"weight {spec.weight:g}"
        options = f" options {json.dumps(dict(spec.options))}" if spec.options else ""
        lines.append(f"- {spec.name}: {role}{options}")
    lines.append("")
    shown: set[str] = set()
    names = row_names(ds)
    for i, modality in enumerate(ds["modality"]):
        if modality in shown:
            continue
        shown.add(modality)
        lines += [f"# sample prompt ({modality}, {names[i]})", render_messages(ds[i]["prompt"]), ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Run
# ---------------------------------------------------------------------------------------------
def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The highest-numbered ``checkpoint-N`` in ``output_dir`` (``None`` if there is none)."""
    from transformers.trainer_utils import get_last_checkpoint

    out = Path(output_dir)
    if not out.is_dir():
        return None
    last = get_last_checkpoint(str(out))
    return Path(last) if last else None


def train(r: Recipe, *, resume: bool = False, callbacks: Sequence[Any] = (), **overrides: Any) -> Path:
    """Train per the recipe and save ``<output_dir>/final``; ``resume`` continues the latest checkpoint."""
    out = Path(r.output_dir)
    checkpoint = latest_checkpoint(out)
    if resume and checkpoint is None:
        raise TrainError(f"--resume: no checkpoint-N directory in {out} to resume from")
    if not resume and checkpoint is not None:
        raise TrainError(
            f"output_dir {out} already holds {checkpoint.name}; pass --resume to continue that run, "
            "or choose another output_dir"
        )
    setup = build_trainer(r, callbacks=callbacks, **overrides)
    trainer = setup.trainer
    if trainer.is_world_process_zero():
        out.mkdir(parents=True, exist_ok=True)
        (out / RECIPE_FILE).write_text(recipe_to_yaml(r), encoding="utf-8")
        if setup.alignment is not None:
            a = setup.alignment
            print(
                f"[proguard] image tokens aligned on row {a.row + 1}: {a.prompt_tokens} prompt tokens = "
                f"{a.vision_features} vision features",
                flush=True,
            )
    trainer.train(resume_from_checkpoint=str(checkpoint) if resume else None)
    return save_final(trainer, setup.processor, out / FINAL_DIR, merge_lora=r.peft.enabled)


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
        processor.tokenizer.save_pretrained(final_dir)
        model = trainer.accelerator.unwrap_model(trainer.model)
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.save_pretrained(final_dir)
    trainer.accelerator.wait_for_everyone()
    return final_dir


__all__ = [
    "Alignment",
    "Setup",
    "TrainError",
    "RewardWithStats",
    "build_grpo_config",
    "build_train_dataset",
    "build_trainer",
    "check_dataset",
    "check_image_token_alignment",
    "dataset_summary",
    "enforce_prompt_lengths",
    "latest_checkpoint",
    "load_processor",
    "prepare_policy_dir",
    "prompt_lengths",
    "render_messages",
    "dry_run",
    "validate",
    "resolve_model_path",
    "save_final",
    "train",
]
