"""``propose_map``: a *proposed* category map for a benchmark, for a person to review.

Each benchmark label is ranked against every taxonomy node by the OOD reward's own scorer
(``synonym_bank.ranking.rank_names``: the score the ``ood_description`` reward would give the label if
that node were the hidden one, over the node's name, description and synonym bank), so a map and the
reward agree on what a label means. Where the release gives a label's parent (VLGuard's
``harmful_category`` over ``harmful_subcategory``) the ranked text is ``"parent: label"``: ``other``
under ``discrimination`` is ranked as discrimination, not as anything. A best score under ``min_score``
proposes ``null`` (no counterpart). The result is always ``reviewed: false``: the runner refuses to
score with it until a person has checked each line and set ``reviewed: true``. The scores are comments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from proguard.suites.catmap import CategoryMap
from taxonomy import Taxonomy


def label_text(label: str, parent: str | None = None) -> str:
    """What is ranked for a label: ``"parent: label"`` where the release gives a parent, else the label."""
    return f"{parent}: {label}" if parent and parent != label else label


def rank_nodes(labels: Sequence[str], taxonomy: Taxonomy, index=None, top_k: int = 3,
               parents: Mapping[str, str | None] | None = None) -> list[list[tuple[str, float]]]:
    """For each label, the ``top_k`` taxonomy nodes (source IDs) with the OOD reward's score, best first."""
    from synonym_bank.ranking import rank_names

    parents = parents or {}
    texts = [label_text(lab, parents.get(lab)) for lab in labels]
    ranked = rank_names(texts, taxonomy, **({"index": index} if index is not None else {}))
    key = {n.id: (n.key or n.id) for n in taxonomy.nodes()}
    return [[(key.get(r.id, r.id), r.score) for r in nr.ranking[:top_k]] for nr in ranked]


def propose_map(benchmark: str, labels: Sequence[str], taxonomy: Taxonomy, *, min_score: float = 0.2,
                index=None, parents: Mapping[str, str | None] | None = None) -> tuple[CategoryMap, dict[str, str]]:
    """A ``reviewed: false`` map and, per label, a comment listing the candidates and their scores
    (and the parent the label was ranked under)."""
    labels = list(dict.fromkeys(labels))
    parents = parents or {}
    ranked = rank_nodes(labels, taxonomy, index=index, parents=parents) if labels else []
    mapping: dict[str, str | None] = {}
    notes: dict[str, str] = {}
    names = {(n.key or n.id): n.name for n in taxonomy.nodes()}
    for label, cands in zip(labels, ranked, strict=True):
        best, score = cands[0]
        mapping[label] = best if score >= min_score else None
        under = f"[as {label_text(label, parents.get(label))!r}] " if parents.get(label) else ""
        notes[label] = under + "; ".join(f"{i} {names[i]} {s:.2f}" for i, s in cands)
    source = (f"proposed by `proguard suites map {benchmark}` (synonym_bank.ranking.rank_names, the OOD reward's "
              f"scorer; min score {min_score}); NOT REVIEWED")
    return CategoryMap(benchmark, taxonomy.name, mapping, False, source, "<proposal>"), notes
