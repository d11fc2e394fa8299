"""The key/value cache of the prompt prefix that a batch of text prompts shares, computed once and reused.

A guard's prompts repeat one long system message (instructions and the category list, 221 of SmolLM2's ~246
prompt tokens in the quick start) before a short conversation. On CPU, prefilling that system message is ~0.8 s
of a held-out answer's ~2 s (one thread), so ``TransformersBackend`` fills it once and every batch starts from
a copy of the cache (0.60x the time, BENCHMARKS.md "Shared prompt prefix"): the batch is laid out as the shared prefix, then each
row's own tail left-padded to the longest tail (padding in the middle, masked out; the positions of a row's
tokens are what they would be without padding, since ``generate`` numbers them from the attention mask).
Greedy answers are the same as without the cache up to float rounding (the prefix's keys and values come from a
batch-1 forward instead of the batched one; 64 of 64 identical answers measured).
"""

from __future__ import annotations

import copy
import inspect
from typing import Any

MIN_SHARED_TOKENS = 32  # below this the copy and bookkeeping cost about what the saved prefill would


def common_prefix_length(rows: list[list[int]]) -> int:
    """The number of leading tokens every row shares, leaving each row at least one token of its own (the
    cached prefix cannot be a whole prompt: ``generate`` needs an uncached token to start from)."""
    if not rows:
        return 0
    limit = min(len(r) for r in rows) - 1
    n = 0
    first = rows[0]
    while n < limit and all(r[n] == first[n] for r in rows):
        n += 1
    return max(n, 0)


class SharedPrefixCache:
    """The last shared prefix's tokens and key/value cache, for one causal language model."""

    def __init__(self, model: Any, min_tokens: int = MIN_SHARED_TOKENS) -> None:
        self.model = model
        self.min_tokens = min_tokens
        self.ids: list[int] | None = None
        self._cache: Any = None
        # transformers renamed generate/forward's ``past_key_values`` to ``cache`` (5.2x; the old name warns)
        self._kwarg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        self.filled = 0  # prefixes computed (each one forward pass); for tests and benchmarks

    def _matches(self, rows: list[list[int]]) -> bool:
        ids = self.ids
        return ids is not None and all(len(r) > len(ids) and r[: len(ids)] == ids for r in rows)

    def _fill(self, prefix: list[int]) -> None:
        import torch
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        with torch.no_grad():
            self.model(input_ids=torch.tensor([prefix], device=self.model.device), use_cache=True,
                       **{self._kwarg: cache})
        self.ids, self._cache = list(prefix), cache
        self.filled += 1

    def inputs(self, rows: list[list[int]], pad_id: int) -> dict[str, Any] | None:
        """``generate`` keyword arguments (``input_ids``, ``attention_mask`` and a copy of the prefix's cache) for
        these tokenised prompts, or ``None`` when they share fewer than ``min_tokens`` leading tokens (then the
        caller pads and prefills as usual). A single prompt reuses the last prefix but never starts a new one."""
        import torch

        if not self._matches(rows):
            n = common_prefix_length(rows) if len(rows) > 1 else 0
            if n < self.min_tokens:
                return None
            self._fill(rows[0][:n])
        assert self.ids is not None
        n = len(self.ids)
        width = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        prefix = torch.tensor(self.ids, dtype=torch.long)
        for i, row in enumerate(rows):
            tail = row[n:]
            input_ids[i, :n], mask[i, :n] = prefix, 1
            input_ids[i, width - len(tail):] = torch.tensor(tail, dtype=torch.long)
            mask[i, width - len(tail):] = 1
        cache = copy.deepcopy(self._cache)
        cache.batch_repeat_interleave(len(rows))
        device = self.model.device
        return {"input_ids": input_ids.to(device), "attention_mask": mask.to(device), self._kwarg: cache}
