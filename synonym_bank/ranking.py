"""The ranking API: for free-text names and a policy, every node ranked by the OOD reward's own scorer.

``rank_names(["gun making instructions"], "default")`` returns, per name, every node of the
taxonomy with the score the ``ood_description`` reward would give that name if the node were the
hidden one (``synonym_bank.scorer``: calibrated probability x form factor), best first. The CLI
``proguard synonyms rank`` writes the same as JSON::

    [{"name": str, "ranking": [{"id": str, "name": str, "score": float}, ...]}, ...]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from synonym_bank.bank import SynonymBank, load_bank
from synonym_bank.index import DEFAULT_MODEL, EmbeddingIndex
from synonym_bank.scorer import PolicyScorer
from taxonomy import Taxonomy, load_taxonomy


@dataclass(frozen=True)
class RankedNode:
    """One node in a name's ranking."""

    id: str
    name: str
    score: float


@dataclass(frozen=True)
class NameRanking:
    """A name and every node of the policy, best first."""

    name: str
    ranking: tuple[RankedNode, ...]

    def to_dict(self) -> dict:
        """The JSON form: ``{"name", "ranking": [{"id", "name", "score"}, ...]}``."""
        return {"name": self.name, "ranking": [{"id": r.id, "name": r.name, "score": r.score} for r in self.ranking]}


def policy_scorer(
    taxonomy: str | Path | Taxonomy,
    *,
    bank: str | Path | SynonymBank | None = None,
    model: str = DEFAULT_MODEL,
    index: EmbeddingIndex | None = None,
    device: str | None = None,
    cache_dir: str | Path | None = None,
) -> PolicyScorer:
    """A scorer for a taxonomy (object, bundled name or file), its bank (object, file or the default) and a model.

    Pass ``index`` to share one loaded model; otherwise ``model`` is loaded offline.
    """
    tax = taxonomy if isinstance(taxonomy, Taxonomy) else load_taxonomy(taxonomy)
    if isinstance(bank, SynonymBank):
        bank.check_matches(tax, f"bank {bank.name}")
        the_bank = bank
    else:
        the_bank = load_bank(tax if isinstance(taxonomy, Taxonomy) else taxonomy, bank)
    index = index or EmbeddingIndex(model, device=device, cache_dir=cache_dir)
    return PolicyScorer.for_taxonomy(tax, index, the_bank)


def rank_names(
    names: Sequence[str],
    taxonomy: str | Path | Taxonomy | None = None,
    *,
    scorer: PolicyScorer | None = None,
    **options,
) -> list[NameRanking]:
    """Every node ranked for each name, best first (ties keep taxonomy order).

    Give a ready ``scorer`` (shared with a reward), or a ``taxonomy`` plus ``policy_scorer``'s
    options (``bank``, ``model``, ``index``, ``device``, ``cache_dir``).
    """
    if scorer is None:
        if taxonomy is None:
            raise ValueError("rank_names: give a taxonomy (object, name or file) or a scorer")
        scorer = policy_scorer(taxonomy, **options)
    names = list(names)
    scores = scorer.score(names).score
    out = []
    for i, name in enumerate(names):
        order = sorted(range(len(scorer.nodes)), key=lambda j: (-scores[i, j], j))
        out.append(NameRanking(name, tuple(
            RankedNode(scorer.nodes[j].id, scorer.nodes[j].name, float(scores[i, j])) for j in order
        )))
    return out
