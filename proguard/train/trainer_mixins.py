"""Trainer behaviour shared by ``GuardGRPOTrainer`` and ``GuardSFTTrainer``, as mixins over TRL's trainers.

- ``StagedCheckpoints``: every ``checkpoint-N`` is written into a staging sibling, fsynced, then
  renamed (a kill mid-save never leaves a half checkpoint named like a whole one), and resume maps
  the saved keys back to the model's own names (transformers issue #43701).
- ``SeededSampler``: TRL's ``RepeatSampler`` reseeded per epoch, so a resumed run replays the right order;
  with ``data.balance_labels`` the order is stratified by label (``LabelBalancedSampler``).
- ``CardAtEnd``: no model card per checkpoint; the run writes proguard's card once, at the end.

Each mixin overrides private methods of ``transformers.Trainer`` / TRL; ``PRIVATE_HOOKS`` lists them
with the parameters they must have, and ``tests/test_trainer_hooks.py`` fails with the method's name
when an upgrade changes one. No TRL import here (the trainers' own modules import TRL).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

from proguard.train.checkpoints import STAGING_PREFIX, publish
from proguard.train.errors import TrainError


class StagedCheckpoints:
    """Atomic checkpoint saves and a checkpoint loader that maps saved keys back to the model's names."""

    PRIVATE_HOOKS: ClassVar[dict[str, tuple[str, ...]]] = {
        "_save_checkpoint": ("self", "model", "trial"),
        "_get_output_dir": ("self", "trial"),
        "_load_from_checkpoint": ("self", "resume_from_checkpoint", "model"),
    }

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

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        target = model if model is not None else self.model
        state = None
        if not (self.is_deepspeed_enabled or self.is_fsdp_enabled or hasattr(target, "peft_config")):
            state = read_checkpoint_weights(Path(resume_from_checkpoint))
        if state is None:
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        result = target.load_state_dict(to_model_keys(target, state), strict=False)
        tied = tied_keys(target)
        missing = [k for k in result.missing_keys if k not in tied]
        if missing or result.unexpected_keys:
            raise TrainError(
                f"--resume: {resume_from_checkpoint} does not match the model: {len(missing)} missing weights "
                f"({', '.join(missing[:3])}), {len(result.unexpected_keys)} unexpected "
                f"({', '.join(result.unexpected_keys[:3])})"
            )


class SeededSampler:
    """The training sampler reseeded per epoch (``EpochSeededSampler``) where it shuffles with its own seed,
    or stratified by label (``LabelBalancedSampler``) when the run sets ``proguard_label_strata``."""

    # TRL names the parameter dataset, transformers train_dataset: only its position is relied on
    PRIVATE_HOOKS: ClassVar[dict[str, tuple[str, ...]]] = {"_get_train_sampler": ("self", "*")}
    proguard_label_strata: list[str] | None = None  # one per training row: set by make_trainer (data.balance_labels)

    def _get_train_sampler(self, *args, **kwargs):
        sampler = super()._get_train_sampler(*args, **kwargs)
        if self.proguard_label_strata is not None and sampler is not None:
            return LabelBalancedSampler(sampler, self.proguard_label_strata, seed=int(self.args.seed))
        return EpochSeededSampler(sampler) if hasattr(sampler, "seed") and hasattr(sampler, "generator") else sampler


class CardAtEnd:
    """No model card per checkpoint when a recipe is attached: the run writes proguard's card once, at the end."""

    proguard_recipe = None  # set by the run; the card names the base model, data, rewards and the recipe

    def create_model_card(self, *args, **kwargs):
        if self.proguard_recipe is None:
            return super().create_model_card(*args, **kwargs)
        return None


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


def label_strata(dataset) -> list[str]:
    """Each training row's label stratum: ``request_label`` and, where the row has one, ``response_label``."""
    columns = getattr(dataset, "column_names", None) or []
    if "request_label" not in columns:
        raise TrainError("data.balance_labels: the training rows have no request_label column to balance on "
                         f"(columns: {', '.join(columns) or 'none'}); set data.balance_labels=false")
    responses = dataset["response_label"] if "response_label" in columns else [None] * len(dataset)
    return [f"{req}/{resp}" if resp else str(req) for req, resp in zip(dataset["request_label"], responses, strict=True)]


def balanced_order(strata: list[str], seed: int) -> list[int]:
    """A shuffle of ``range(len(strata))`` in which every stratum is spread evenly over the order.

    Each stratum's rows are shuffled, and its j-th row of n is placed at fraction (j + 0.5) / n of the
    run (ties broken at random): a window of k consecutive rows holds each stratum's share of k to within
    about one row. Why: with a plain shuffle a few steps can hold one label only. Measured on the quick start
    (BENCHMARKS.md, round 3): label AUC within seed noise of the plain shuffle, the threshold still unlearnt.
    """
    import torch

    gen = torch.Generator().manual_seed(seed)
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(strata):
        groups.setdefault(s, []).append(i)
    keyed = []
    for name in sorted(groups):
        rows = groups[name]
        perm = torch.randperm(len(rows), generator=gen).tolist()
        ties = torch.rand(len(rows), generator=gen).tolist()
        keyed += [((j + 0.5) / len(rows), ties[j], rows[p]) for j, p in enumerate(perm)]
    return [i for _, _, i in sorted(keyed)]


class LabelBalancedSampler:
    """The trainer's sampler with its order drawn by ``balanced_order`` (reseeded by ``seed + epoch``).

    Wraps TRL's ``RepeatSampler`` (GRPO: the same prompt chunks, repeats and group layout, only the order of
    prompts changes, so each step's prompts mix labels) or any plain sampler over the dataset (SFT).
    """

    def __init__(self, sampler, strata: list[str], seed: int) -> None:
        if len(strata) != len(getattr(sampler, "data_source", strata)):
            raise TrainError(f"data.balance_labels: {len(strata)} labels for a sampler over "
                             f"{len(sampler.data_source)} rows")
        self.sampler, self.strata, self.seed, self.epoch = sampler, strata, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Reseed the order for ``epoch`` (a resumed run replays the same order)."""
        self.epoch = epoch

    def __iter__(self):
        order = balanced_order(self.strata, self.seed + self.epoch)
        s = self.sampler
        if not hasattr(s, "mini_repeat_count"):  # a plain sampler: one pass over the rows
            yield from order
            return
        # TRL's RepeatSampler.__iter__ with our order: whole chunks only, each repeated, each index repeated
        chunks = [order[i : i + s.batch_size] for i in range(0, len(order), s.batch_size)]
        for chunk in (c for c in chunks if len(c) == s.batch_size):
            for _ in range(s.repeat_count):
                for index in chunk:
                    for _ in range(s.mini_repeat_count):
                        yield index

    def __len__(self) -> int:
        return len(self.sampler)


def read_checkpoint_weights(checkpoint: Path) -> dict | None:
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


def to_model_keys(model, state: dict) -> dict:
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


def tied_keys(model) -> set[str]:
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


def private_hooks(cls: type) -> dict[str, tuple[str, ...]]:
    """Every private base-class method ``cls`` overrides, with the parameters it expects (from its mixins' lists)."""
    hooks: dict[str, tuple[str, ...]] = {}
    for klass in reversed(cls.__mro__):
        hooks.update(vars(klass).get("PRIVATE_HOOKS", {}))
    return hooks


def signature_problem(base: type, name: str, expected: tuple[str, ...]) -> str | None:
    """Why ``base.<name>`` no longer has the parameters an override expects (``"*"``: any after), or ``None``."""
    import inspect

    method = getattr(base, name, None)
    if method is None:
        return f"{base.__name__}.{name} no longer exists (proguard overrides it)"
    params = [p.name for p in inspect.signature(method).parameters.values()
              if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    fixed = [p for p in expected if p != "*"]
    got = params[: len(fixed)] if "*" in expected else params
    if got != fixed:
        return (f"{base.__name__}.{name}{inspect.signature(method)} changed: proguard's override expects "
                f"({', '.join(expected)}); update the override (proguard/train/trainer_mixins.py, grpo_trainer.py)")
    return None
