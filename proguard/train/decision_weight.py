"""The SFT loss with the decision tokens weighted up: ``sft.decision_token_weight``.

A critique is ~50 tokens and the safe/unsafe decision is one of them (``The request is unsafe: ...``), so the
mean token loss learns the format in a few steps and the decision late and weakly (BENCHMARKS.md, "Quick start,
round 4": label AUC 0.71-0.88 after SFT where a linear probe on the frozen base model's hidden state reaches
0.90-0.97). With weight ``w`` every label position holding the first token of ``" safe"`` or ``" unsafe"``
counts ``w`` times in the sum; the denominator stays TRL's (the batch's label tokens), so ``w = 1`` is TRL's loss
exactly and other weights add ``(w - 1)`` times those positions' cross-entropy.

The extra term needs the logits at a few positions only: a forward hook on the policy's decoder keeps its last
hidden state, and the output embedding is applied to the rows before the decision tokens (TRL's fused LM head
never builds the full logits, so they cannot be read from its outputs).
"""

from __future__ import annotations

from typing import Any

from proguard.train.errors import TrainError

def decision_token_ids(tokenizer: Any) -> list[int]:
    """The first token of ``" safe"`` and of ``" unsafe"`` (``proguard.bench.label_bias.label_token_ids``: the same
    tokens the label bias compares); they must differ, or the weight would not tell them apart."""
    from proguard.bench.errors import BenchError
    from proguard.bench.label_bias import label_token_ids

    try:
        return list(label_token_ids(getattr(tokenizer, "tokenizer", tokenizer)))  # a processor wraps its tokenizer
    except BenchError:
        raise TrainError("sft.decision_token_weight: the tokenizer does not tell ' safe' and ' unsafe' apart by "
                         "their first token; set sft.decision_token_weight: 1.0") from None


def decision_positions(labels: Any, ids: list[int]) -> Any:
    """Boolean mask over ``labels[:, 1:]``: the label positions holding a decision token (ignored ones never do)."""
    import torch

    return torch.isin(labels[:, 1:], torch.tensor(ids, device=labels.device))


def extra_decision_loss(hidden: Any, labels: Any, ids: list[int], output_embeddings: Any, denominator: Any) -> Any:
    """Sum of the cross-entropy at the decision positions over ``denominator`` (to be scaled by ``w - 1``).

    ``hidden``: the decoder's last hidden state ``[B, T, H]``; row ``t`` predicts ``labels[:, t + 1]``."""
    import torch
    import torch.nn.functional as F

    mask = decision_positions(labels, ids)
    if not bool(mask.any()):
        return hidden.sum() * 0.0  # keeps the graph (and every rank's backward) identical
    logits = output_embeddings(hidden[:, :-1][mask])
    target = labels[:, 1:][mask]
    return F.cross_entropy(logits.float(), target, reduction="sum") / torch.as_tensor(denominator).clamp(min=1)


class DecisionTokenWeight:
    """``compute_loss`` with ``decision_token_weight`` (set by ``proguard.train.sft``; 1.0: TRL's loss untouched)."""

    decision_token_weight: float = 1.0

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        weight = self.decision_token_weight
        labels = inputs.get("labels")
        if weight == 1.0 or labels is None:
            return super().compute_loss(model, inputs, return_outputs=return_outputs,  # type: ignore[misc]
                                        num_items_in_batch=num_items_in_batch)
        base = self.accelerator.unwrap_model(model)  # type: ignore[attr-defined]
        decoder = base.get_decoder() if hasattr(base, "get_decoder") else None
        if decoder is None:
            raise TrainError(f"sft.decision_token_weight: {type(base).__name__} has no get_decoder(); set "
                             "sft.decision_token_weight: 1.0")
        kept: list[Any] = []

        def keep(_module, _args, output):
            kept.append(output[0] if isinstance(output, tuple) else output.last_hidden_state)

        handle = decoder.register_forward_hook(keep)
        try:
            result = super().compute_loss(model, inputs, return_outputs=return_outputs,  # type: ignore[misc]
                                          num_items_in_batch=num_items_in_batch)
        finally:
            handle.remove()
        loss, outputs = result if return_outputs else (result, None)
        if not kept[0].requires_grad and model.training:
            raise TrainError("sft.decision_token_weight: the decoder's output carries no gradient")
        if not hasattr(self, "_decision_ids"):
            self._decision_ids = decision_token_ids(self.processing_class)  # type: ignore[attr-defined]
        denominator = num_items_in_batch if num_items_in_batch is not None else (labels[:, 1:] != -100).sum()
        extra = extra_decision_loss(kept[0], labels, self._decision_ids, base.get_output_embeddings(), denominator)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:  # type: ignore[attr-defined]
            extra = extra * self.accelerator.num_processes  # as TRL scales its own loss  # type: ignore[attr-defined]
        loss = loss + (weight - 1.0) * extra.to(loss.dtype)
        return (loss, outputs) if return_outputs else loss


__all__ = ["DecisionTokenWeight", "decision_positions", "decision_token_ids", "extra_decision_loss"]
