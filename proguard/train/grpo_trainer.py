"""``GuardGRPOTrainer``: TRL's ``GRPOTrainer`` with the smallest overrides proguard needs.

Imports TRL at module level (seconds): ``proguard.train.run`` imports this module only when it
builds a trainer, so ``--check`` and ``--dry-run`` never pay for it. The class is importable,
subclassable and ``isinstance``-checkable. Its overrides: mixed text/image batches, video and audio
(``MediaInputs``), and the mixins it shares with ``GuardSFTTrainer`` (``proguard.train.trainer_mixins``:
staged checkpoints, the epoch-seeded sampler, the model card written once at the end). Nothing here is
a second RL loop: generation, advantages and the loss are TRL's.

TRL's public ``rollout_func`` hook was tried for the media path: it replaces generation only (it
returns token IDs), while the media must also reach the loss forward pass (the per-token log-probs
of a video or audio prompt need its features), which TRL exposes through no public hook; the private
overrides stay, each listed in ``PRIVATE_HOOKS`` and checked against TRL's signatures by
``tests/test_trainer_hooks.py``.
"""

from __future__ import annotations

from typing import ClassVar

from trl import GRPOTrainer

from proguard.train.errors import TrainError
from proguard.train.trainer import install_media_hook, row_media
from proguard.train.trainer_mixins import CardAtEnd, SeededSampler, StagedCheckpoints


class MediaInputs:
    """Video and audio through TRL 1.16's ``GRPOTrainer``, and batches mixing text-only and image prompts.

    TRL 1.16 turns a missing ``image`` into ``None`` image lists, which the processor call of the
    training forward pass rejects (a batch of only text rows from a dataset with an ``image``
    column fails the same way). transformers' processors take an empty list for "no image in this
    sample", so rows are handed to TRL with an ``images`` list instead, and the image lists
    that generation returns get ``[]`` for text-only prompts.
    """

    PRIVATE_HOOKS: ClassVar[dict[str, tuple[str, ...]]] = {
        "_generate_and_score_completions": ("self", "inputs"),
        "_tokenize_prompts": ("self", "prompts"),
        "_compute_loss": ("self", "model", "inputs"),
        "_get_per_token_logps_and_entropies": ("self", "model", "input_ids", "attention_mask", "logits_to_keep",
                                               "batch_size", "compute_entropy", "compute_aux_loss", "*"),
        "_generate": ("self", "prompts"),
    }

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
        install_media_hook(self, model)
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


class GuardGRPOTrainer(StagedCheckpoints, SeededSampler, CardAtEnd, MediaInputs, GRPOTrainer):
    """``GRPOTrainer`` with proguard's media inputs, staged checkpoints, seeded sampler and end-of-run card."""


__all__ = ["GuardGRPOTrainer", "MediaInputs"]
