"""``GuardGRPOTrainer``: TRL's ``GRPOTrainer`` with the smallest overrides proguard needs, and its callbacks.

The overrides: mixed text/image batches, video and audio (omni policies and Qwen2.5-VL video; see
``GuardGRPOTrainer``), an epoch-seeded sampler (resume replays the right order), atomic checkpoint
saves (``proguard.train.checkpoints``) and a checkpoint loader that maps saved keys back to the
model's own names. Nothing here is a second RL loop: generation, advantages and the loss are TRL's.
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

        # ---- video and audio ----------------------------------------------------------------
        # TRL 1.16 forwards only images (trl#5373). For a batch with any video or audio, or any batch
        # of an omni policy, every medium takes this path instead: TRL sees text-only rows, and
        #   _tokenize_prompts      expands each sample's placeholders with OmniInputs and hands the
        #                          media tensors to generation (TRL passes multimodal fields through);
        #   the output dict        carries each sample's media tensors ("omni_media", a list, which TRL's
        #                          shuffle/split of the generation batch keeps aligned per sample);
        #   _get_per_token_logps_and_entropies  runs TRL's own loop one chunk at a time with that chunk's
        #                          media added to the model call by a forward pre-hook.
        omni_inputs = None  # an OmniInputs, set by build_trainer for policies that take video/audio
        media_limits = None  # the recipe's data.media (MediaLimits), set by build_trainer
        _prompt_media = None
        _sample_media = None
        _forward_media = None
        _pending = None

        def _media_batch(self, inputs) -> bool:
            if not inputs:
                return False
            if getattr(self, "omni_policy", False):
                return True
            return any(x.get("video") or x.get("audio") for x in inputs)

        def _generate_and_score_completions(self, inputs):
            if self._media_batch(inputs):
                if self.omni_inputs is None:
                    raise TrainError(
                        "this batch has video or audio but the trainer has no media encoder (omni_inputs); "
                        "build it with proguard.train.run.build_trainer"
                    )
                self._prompt_media = [row_media(x, self.media_limits) for x in inputs]
                rows = [{k: v for k, v in x.items() if k not in ("image", "images", "video", "audio")} for x in inputs]
                try:
                    output = super()._generate_and_score_completions(rows)
                finally:
                    self._prompt_media = None
                output["omni_media"] = self._sample_media
                self._sample_media = self._forward_media = None
                return output
            if inputs and "image" in inputs[0] and "images" not in inputs[0]:
                inputs = [
                    {**{k: v for k, v in x.items() if k != "image"}, "images": [] if x["image"] is None else [x["image"]]}
                    for x in inputs
                ]
            return super()._generate_and_score_completions(inputs)

        def _tokenize_prompts(self, prompts: list):
            if self._prompt_media is None:
                return super()._tokenize_prompts(prompts)
            from proguard.models.omni_inputs import collate_media

            texts = self.processing_class.apply_chat_template(
                prompts, add_generation_prompt=True, tokenize=False, chat_template=self.chat_template,
                **self.chat_template_kwargs,
            )
            media = self._prompt_media
            ids, per_sample = self.omni_inputs.encode(
                texts, [m["images"] for m in media], [m["videos"] for m in media], [m["audios"] for m in media]
            )
            self._sample_media = self._forward_media = per_sample
            return ids, None, collate_media(per_sample)

        def _compute_loss(self, model, inputs):
            self._forward_media = inputs.get("omni_media")
            try:
                return super()._compute_loss(model, inputs)
            finally:
                self._forward_media = None

        def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep,
                                               batch_size=None, compute_entropy=False, compute_aux_loss=False,
                                               **kwargs):
            media = self._forward_media
            if media is None or not any(media):
                return super()._get_per_token_logps_and_entropies(
                    model, input_ids, attention_mask, logits_to_keep, batch_size, compute_entropy,
                    compute_aux_loss, **kwargs,
                )
            import torch

            from proguard.models.omni_inputs import collate_media

            if len(media) != input_ids.size(0):
                raise TrainError(f"media for {len(media)} samples but {input_ids.size(0)} sequences: samples out of step")
            _install_media_hook(self, model)
            step = batch_size or input_ids.size(0)
            logps, entropies, aux = [], [], []
            for start in range(0, input_ids.size(0), step):
                end = min(start + step, input_ids.size(0))
                device = input_ids.device
                self._pending = {k: v.to(device) for k, v in collate_media(media[start:end]).items()}
                try:
                    lp, ent, ax = super()._get_per_token_logps_and_entropies(
                        model, input_ids[start:end], attention_mask[start:end], logits_to_keep, end - start,
                        compute_entropy, compute_aux_loss,
                    )
                finally:
                    self._pending = None
                logps.append(lp)
                entropies.append(ent)
                aux.append(ax)
            entropy = torch.cat(entropies) if compute_entropy else None
            aux_loss = torch.stack(aux).mean() if compute_aux_loss and aux[0] is not None else None
            return torch.cat(logps), entropy, aux_loss

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


def row_media(row: dict, limits=None) -> dict:
    """A training row's media as the model needs them: PIL images, decoded video frames, 16 kHz audio."""
    from proguard.media import load_audio, load_video

    images = row.get("images") or ([row["image"]] if row.get("image") is not None else [])
    images = [im.convert("RGB") if hasattr(im, "convert") else im for im in images]
    video = row.get("video")
    videos = [load_video(video[0] if len(video) == 1 else video, limits).frames] if video else []
    audios = [load_audio(row["audio"], limits)] if row.get("audio") else []
    return {"images": images, "videos": videos, "audios": audios}


def _install_media_hook(trainer, model) -> None:
    """Once per module: a forward pre-hook adding ``trainer._pending`` media to the model call."""
    module = trainer.accelerator.unwrap_model(model)
    if getattr(module, "_proguard_media_hook", None) is not None:
        return

    def hook(mod, args, kwargs):
        pending = trainer._pending
        if pending:
            kwargs = {**kwargs, **pending}
        return args, kwargs

    module._proguard_media_hook = module.register_forward_pre_hook(hook, with_kwargs=True)


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

