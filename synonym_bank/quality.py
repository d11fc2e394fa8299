"""Bank quality report: does each synonym sit closer to its own node than to any other node?

For every phrase of a node the report measures ``own``, its highest similarity to the node's other
phrases, and ``nearest``, its highest similarity to any phrase of another node; ``margin = own -
nearest``. A phrase whose margin is below ``min_margin`` (default 0) is flagged: as a reference
phrase of the OOD reward it would reward a name that means the other category. A node's own
parent or subcategories are not "other" by default (they overlap by design). ``proguard synonyms
check`` prints this as a table and writes it as JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from synonym_bank.bank import SynonymBank
from synonym_bank.index import EmbeddingIndex
from taxonomy import parent_id_of


@dataclass
class PhraseCheck:
    """One phrase's similarity to its own node and to the nearest other node."""

    phrase: str
    own: float | None  # None when the node has no other phrase to compare with
    nearest_key: str | None
    nearest_name: str | None
    nearest_phrase: str | None  # the other node's phrase it is closest to
    nearest_sim: float | None
    margin: float | None
    flagged: bool


@dataclass
class NodeCheck:
    """A node's phrases, its worst margin and the node that margin is against."""

    key: str
    name: str
    phrases: list[PhraseCheck] = field(default_factory=list)

    @property
    def worst(self) -> PhraseCheck | None:
        """The phrase with the smallest margin (``None`` if no phrase has one)."""
        scored = [p for p in self.phrases if p.margin is not None]
        return min(scored, key=lambda p: p.margin) if scored else None  # type: ignore[arg-type, return-value]

    @property
    def own_mean(self) -> float | None:
        """Mean of the phrases' ``own`` similarities."""
        owns = [p.own for p in self.phrases if p.own is not None]
        return float(np.mean(owns)) if owns else None

    @property
    def flagged(self) -> list[PhraseCheck]:
        """The phrases that sit closer to another node than ``min_margin`` allows."""
        return [p for p in self.phrases if p.flagged]


@dataclass
class QualityReport:
    """The per-node, per-phrase margins of a bank under one embedding model."""

    bank: str
    bank_hash: str
    model: str
    min_margin: float
    include_family: bool
    nodes: list[NodeCheck]

    def flagged(self) -> list[tuple[NodeCheck, PhraseCheck]]:
        """Every flagged (node, phrase), worst margin first."""
        pairs = [(n, p) for n in self.nodes for p in n.flagged]
        return sorted(pairs, key=lambda np_: np_[1].margin)  # type: ignore[arg-type, return-value]

    def to_dict(self) -> dict:
        """Plain data for JSON: settings, per-node summary with per-phrase rows, and the flagged list."""
        return {
            "bank": self.bank,
            "bank_hash": self.bank_hash,
            "model": self.model,
            "min_margin": self.min_margin,
            "include_family": self.include_family,
            "nodes": [
                {
                    "key": n.key,
                    "name": n.name,
                    "own_mean": n.own_mean,
                    "worst_margin": n.worst.margin if n.worst else None,
                    "nearest_key": n.worst.nearest_key if n.worst else None,
                    "flagged": len(n.flagged),
                    "phrases": [asdict(p) for p in n.phrases],
                }
                for n in self.nodes
            ],
            "flagged": [{"key": n.key, **asdict(p)} for n, p in self.flagged()],
        }

    def render(self) -> str:
        """A plain-text table of nodes, then one line per flagged phrase."""
        head = f"{'node':<6} {'name':<36} {'n':>2} {'own':>5} {'margin':>6} {'nearest':<6} {'flag':>4}"
        lines = [f"synonym bank {self.bank} | model {self.model} | flag margin < {self.min_margin:+.2f}", head]
        lines.append("-" * len(head))
        for n in self.nodes:
            w = n.worst
            lines.append(
                f"{n.key:<6} {_clip(n.name, 36):<36} {len(n.phrases):>2} {_num(n.own_mean):>5} "
                f"{_num(w.margin if w else None, sign=True):>6} {(w.nearest_key if w else '-') or '-':<6} "
                f"{len(n.flagged):>4}"
            )
        flagged = self.flagged()
        lines.append("")
        lines.append(f"{len(flagged)} flagged phrase(s) of {sum(len(n.phrases) for n in self.nodes)}")
        for n, p in flagged:
            lines.append(
                f"  {n.key:<6} {_clip(p.phrase, 44)!r}: own {_num(p.own)}, {_num(p.nearest_sim)} to "
                f"{p.nearest_key} {_clip(p.nearest_phrase or '', 40)!r} (margin {_num(p.margin, sign=True)})"
            )
        return "\n".join(lines)


def _num(x: float | None, sign: bool = False) -> str:
    return "-" if x is None else (f"{x:+.2f}" if sign else f"{x:.2f}")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _family(a: str, b: str) -> bool:
    return parent_id_of(a) == b or parent_id_of(b) == a


def check_bank(
    bank: SynonymBank, index: EmbeddingIndex, *, min_margin: float = 0.0, include_family: bool = False
) -> QualityReport:
    """Measure every phrase's margin between its own node and the nearest other node."""
    entries = list(bank)
    phrases = [e.phrases() for e in entries]
    flat = [p for ps in phrases for p in ps]
    owner = np.repeat(np.arange(len(entries)), [len(ps) for ps in phrases])
    matrix = index.phrase_matrix(flat)
    sims = EmbeddingIndex.similarity(matrix, matrix).cpu().numpy()
    # best[r, m]: phrase r's highest similarity to any phrase of node m (one reduction per node)
    best = np.stack([sims[:, owner == m].max(axis=1) for m in range(len(entries))], axis=1)
    nodes = []
    for m, entry in enumerate(entries):
        check = NodeCheck(entry.key, entry.name)
        rows = np.flatnonzero(owner == m)
        others = [
            j for j, other in enumerate(entries) if j != m and (include_family or not _family(entry.key, other.key))
        ]
        for r in rows:
            mates = rows[rows != r]
            own = float(sims[r, mates].max()) if len(mates) else None
            j = max(others, key=lambda j: best[r, j]) if others else None
            near = float(best[r, j]) if j is not None else None
            near_phrase = flat[int(np.flatnonzero(owner == j)[sims[r, owner == j].argmax()])] if j is not None else None
            margin = own - near if own is not None and near is not None else None
            check.phrases.append(
                PhraseCheck(
                    phrase=flat[r],
                    own=own,
                    nearest_key=entries[j].key if j is not None else None,
                    nearest_name=entries[j].name if j is not None else None,
                    nearest_phrase=near_phrase,
                    nearest_sim=near,
                    margin=margin,
                    flagged=margin is not None and margin < min_margin,
                )
            )
        nodes.append(check)
    return QualityReport(bank.name, bank.content_hash(), index.model_name, min_margin, include_family, nodes)
