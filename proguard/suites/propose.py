"""``propose_map``: a *proposed* category map for a benchmark, by embedding similarity, for a person to review.

Each benchmark label is matched to the taxonomy node whose "name: description" is most similar (cosine
of sentence embeddings, ``synonym_bank.index.EmbeddingIndex``); a best score under ``min_score`` proposes
``null`` (no counterpart). The result is always ``reviewed: false``: the runner refuses to score with it
until a person has checked each line and set ``reviewed: true``. The scores are written as comments.

``rank_nodes`` is the one place that ranks nodes for a label; it is deliberately plain (name +
description cosine) so that it can later delegate to the synonym bank's ranking API.
"""

from __future__ import annotations

from collections.abc import Sequence

from proguard.suites.catmap import CategoryMap
from taxonomy import Taxonomy


def node_texts(taxonomy: Taxonomy) -> tuple[list[str], list[str]]:
    """Node IDs (source keys) and the text each is matched by: ``"<name>: <description>"``."""
    ids, texts = [], []
    for node in taxonomy.nodes():
        ids.append(node.key or node.id)
        texts.append(f"{node.name}: {node.description}" if node.description else node.name)
    return ids, texts


def rank_nodes(labels: Sequence[str], taxonomy: Taxonomy, index=None, top_k: int = 3) -> list[list[tuple[str, float]]]:
    """For each label, the ``top_k`` taxonomy nodes with their cosine similarity, best first."""
    if index is None:
        from synonym_bank.index import EmbeddingIndex

        index = EmbeddingIndex()
    ids, texts = node_texts(taxonomy)
    sims = index.similarity(index.encode(list(labels)), index.phrase_matrix(texts).to("cpu"))
    out = []
    for row in sims.tolist():
        order = sorted(range(len(ids)), key=lambda j: -row[j])[:top_k]
        out.append([(ids[j], float(row[j])) for j in order])
    return out


def propose_map(benchmark: str, labels: Sequence[str], taxonomy: Taxonomy, *, min_score: float = 0.3,
                index=None) -> tuple[CategoryMap, dict[str, str]]:
    """A ``reviewed: false`` map and, per label, a comment listing the candidates and their scores."""
    labels = list(dict.fromkeys(labels))
    ranked = rank_nodes(labels, taxonomy, index=index) if labels else []
    mapping: dict[str, str | None] = {}
    notes: dict[str, str] = {}
    names = {(n.key or n.id): n.name for n in taxonomy.nodes()}
    for label, cands in zip(labels, ranked, strict=True):
        best, score = cands[0]
        mapping[label] = best if score >= min_score else None
        notes[label] = "; ".join(f"{i} {names[i]} {s:.2f}" for i, s in cands)
    source = (f"proposed by `proguard suites map {benchmark}` (name+description cosine, min score {min_score}); "
              f"NOT REVIEWED")
    return CategoryMap(benchmark, taxonomy.name, mapping, False, source, "<proposal>"), notes
