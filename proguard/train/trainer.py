"""``GuardGRPOTrainer``: TRL's ``GRPOTrainer`` with the smallest overrides proguard needs, and its callbacks.

The overrides: mixed text/image batches, an epoch-seeded sampler (resume replays the right order),
atomic checkpoint saves (``proguard.train.checkpoints``) and a checkpoint loader that maps saved keys
back to the model's own names. Nothing here is a
second RL loop: generation, advantages and the loss are TRL's.
"""

from __future__ import annotations

import json
from pathlib import Path

from proguard.train.checkpoints import STAGING_PREFIX, publish
from proguard.train.errors import TrainError


def guard_trainer_class():
    """The ``GuardGRPOTrainer`` class (built on first call: importing TRL takes seconds)."""
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

        def create_model_card(self, model_name=None, dataset_name=None, tags=None):
            # TRL's card names no base model for a local or tiny policy ("fine-tuned version of [None]"):
            # with a recipe attached, write proguard's card (base model, data, rewards, the recipe).
            recipe = getattr(self, "proguard_recipe", None)
            if recipe is None:
                return super().create_model_card(model_name, dataset_name, tags)
            if self.is_world_process_zero():
                from proguard.train.model_card import write_model_card

                write_model_card(self.args.output_dir, recipe)

        def _save_checkpoint(self, model, trial) -> None:
            """The Trainer's save, written into a staging sibling, fsynced, then renamed to ``checkpoint-N``.

            A kill or a full disk mid-save leaves only ``.partial-checkpoint-N`` (never resumed from,
            removed on the next start), so every ``checkpoint-N`` is complete. The Trainer's own
            rotation runs on the staging root (nothing to rotate there) and once more on the real
            output directory after the rename.
            """
            from transformers.trainer import rotate_checkpoints

            run_dir = Path(self._get_output_dir(trial=trial))
            name = f"checkpoint-{self.state.global_step}"
            staging = run_dir / f"{STAGING_PREFIX}{self.state.global_step}"
            self._get_output_dir = lambda trial=None: str(staging)  # instance attribute: the parent writes there
            try:
                super()._save_checkpoint(model, trial)
            finally:
                del self._get_output_dir
            self.accelerator.wait_for_everyone()  # every rank's shards are in the staging dir
            if self.args.should_save:
                publish(staging / name, run_dir / name)
                staging.rmdir()
                rotate_checkpoints(output_dir=str(run_dir), save_total_limit=self.args.save_total_limit,
                                   best_model_checkpoint=self.state.best_model_checkpoint, use_mtime=True)
            self.accelerator.wait_for_everyone()

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


def metrics_callback(path: Path):
    """A callback appending every log record, with its step, to ``path`` (JSON lines)."""
    from transformers import TrainerCallback

    class MetricsFile(TrainerCallback):
        """Appends every log record, with its step, to a JSON-lines file (main process only); at the end
        every training-step row gets the same keys (see :func:`same_keys_on_every_step`)."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and logs:
                with path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps({"step": state.global_step, **logs}, default=float) + "\n")

        def on_train_end(self, args, state, control, **kwargs):
            if state.is_world_process_zero and path.exists():
                same_keys_on_every_step(path)

    return MetricsFile()


STEP_KEY = "loss"
"""A row with this key is a training-step log row (the run's closing summary row has ``train_loss``)."""


def same_keys_on_every_step(path: Path) -> None:
    """Give every training-step row of ``path`` the union of the step rows' keys, ``null`` where absent.

    A reward component is logged only on steps where it applies to some sample (``ood_similarity``
    on batches without an OOD task has no value), so raw rows differ from step to step; ``null``
    means "not applicable on that step" (never 0, which would read as a score). The closing summary
    row (``train_runtime``, ``train_loss``...) is left as it is.
    """
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    keys: dict[str, None] = {}
    for row in rows:
        if STEP_KEY in row:
            keys.update(dict.fromkeys(row))
    out = [{k: row.get(k) for k in keys} if STEP_KEY in row else row for row in rows]
    scratch = path.with_name(path.name + ".tmp")
    scratch.write_text("".join(json.dumps(r) + "\n" for r in out), encoding="utf-8")
    scratch.replace(path)  # atomic: a reader never sees half a file

