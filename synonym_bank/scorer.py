"""The policy scorer: how well a free-text name identifies each node of the full policy, calibrated to the model.

One scorer serves the ``ood_description`` reward, the ranking API (``synonym_bank.ranking``,
``proguard synonyms rank``) and the bench's OOD-description metric, so the three can never disagree.

Every node of the policy (hidden or visible) is represented by three views, each an L2-normalised
embedding of the policy author's own text:

* ``"<name>. <description>"``;
* the same followed by ``" Also: <synonym>, <synonym>, ..."`` (the bank's phrases);
* the normalised mean of the embeddings of the first view, each phrase, and each sentence of the
  description (a prototype, as in prototypical networks).

The *fit* of a name ``q`` to node ``j`` is the mean of the three cosines, ``l_j(q)``. The score of
``q`` for node ``j`` is a softmax over **all** nodes plus a *none* option::

    p_j(q) = exp(l_j / T) / (exp(tau / T) + sum_k exp(l_k / T))

so a name that fits another category as well as ``j`` gets at most about one half, and a name that
fits nothing better than unrelated policy text does gets about 0. ``T`` and ``tau`` are not
constants: they come from the model's own similarity distribution over the policy, computed once per
(model, policy text) and cached on disk next to the bank embeddings (``Calibration``):

* ``T`` is the standard deviation of the fit of every bank phrase to every *other* node (the
  impostor spread: one unit of "how much better than chance" for this model);
* ``tau`` is the mean, over bank phrases, of their best fit to a node that is not their own (how
  well the best wrong category typically fits: a name must beat it to earn anything).

So MiniLM, BGE-M3 or any other sentence-transformers model gives scores on the same scale. The
reward multiplies ``p`` by the name's form factor (``synonym_bank.name_form``): repetitions, IDs,
lists, over-long names and invisible characters earn less than a clean short name.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from synonym_bank.bank import SynonymBank
from synonym_bank.index import EmbeddingIndex
from synonym_bank.name_form import FormLimits, NameForm, name_form
from taxonomy import Taxonomy, normalize_name

log = logging.getLogger(__name__)
CALIBRATION_VERSION = 1  # bump when the views or the calibration change: old cache files are then ignored
_SENTENCE = re.compile(r"(?<=[.!?;])\s+|\n+")


@dataclass(frozen=True)
class NodeText:
    """The policy text of one node: its ID, source key, name, description and phrases (name first)."""

    id: str
    key: str
    name: str
    description: str = ""
    phrases: tuple[str, ...] = ()

    def all_phrases(self) -> tuple[str, ...]:
        """Name first, then the other phrases (the name is added if ``phrases`` lacks it)."""
        return self.phrases if self.phrases and self.phrases[0] == self.name else (self.name, *self.phrases)

    def views(self) -> tuple[str, str, list[str]]:
        """The text of view 1, of view 2, and the texts averaged into the prototype (view 3)."""
        described = f"{self.name}. {self.description}" if self.description.strip() else self.name
        others = [p for p in self.all_phrases()[1:]]
        with_synonyms = f"{described} Also: {', '.join(others)}" if others else described
        sentences = [s.strip() for s in _SENTENCE.split(self.description) if len(s.strip()) > 3]
        return described, with_synonyms, [described, *self.all_phrases(), *sentences]


def policy_nodes(taxonomy: Taxonomy, bank: SynonymBank | None = None) -> list[NodeText]:
    """Every node of a taxonomy with its description and its phrases (from ``bank`` when given)."""
    out = []
    for n in taxonomy.nodes():
        key = n.key or n.id
        entry = bank.find(key) if bank is not None else None
        phrases = entry.phrases() if entry is not None else (n.name, *n.synonyms)
        out.append(NodeText(n.id, key, n.name, n.description, tuple(phrases)))
    return out


@dataclass(frozen=True)
class Calibration:
    """The model's own similarity scale on a policy: softmax temperature and the *none* option's fit."""

    temperature: float
    null_fit: float
    impostor_mean: float
    impostor_pairs: int

    @classmethod
    def from_fits(cls, fits: np.ndarray, own: Sequence[int]) -> Calibration:
        """From the fit of every bank phrase (rows) to every node (columns); ``own[i]`` is row i's node."""
        n_nodes = fits.shape[1]
        mask = np.ones_like(fits, dtype=bool)
        mask[np.arange(len(own)), list(own)] = False
        impostor = fits[mask]
        if n_nodes < 2 or impostor.size < 2:
            raise ValueError("the policy scorer needs at least two nodes to contrast a name against")
        best_wrong = np.where(mask, fits, -np.inf).max(axis=1)
        sd = float(impostor.std())
        return cls(
            temperature=max(sd, 1e-4),  # a degenerate model (all fits equal) must not divide by 0
            null_fit=float(best_wrong.mean()),
            impostor_mean=float(impostor.mean()),
            impostor_pairs=int(impostor.size),
        )


@dataclass(frozen=True)
class NameScores:
    """Scores of a list of names against every policy node.

    ``fit[i, j]`` is the raw fit of name i to node j, ``probability[i, j]`` the calibrated softmax
    (with the *none* option), ``form[i]`` the form factor, and ``score = probability * form``: the
    reward name i earns when node j is the hidden one.
    """

    names: list[str]
    forms: list[NameForm]
    fit: np.ndarray
    probability: np.ndarray

    @property
    def score(self) -> np.ndarray:
        """``probability`` times each name's form factor."""
        return self.probability * np.array([f.factor for f in self.forms], dtype=np.float64)[:, None]


class PolicyScorer:
    """Scores free-text names against every node of a policy (see the module docstring).

    Args:
        nodes: the policy's nodes (``policy_nodes(taxonomy, bank)``, or built by hand).
        index: the embedding index (one shared model); its disk cache holds the view embeddings
            and the calibration.
        max_chars: names are cut to this many characters before encoding.
    """

    def __init__(self, nodes: Sequence[NodeText], index: EmbeddingIndex, *, max_chars: int = 1000) -> None:
        self.nodes = list(nodes)
        if len(self.nodes) < 2:
            raise ValueError("the policy scorer needs at least two nodes to contrast a name against")
        self.index = index
        self.max_chars = max_chars
        self.limits = FormLimits.from_phrases(p for n in self.nodes for p in n.all_phrases())
        self._col = {n.key: j for j, n in enumerate(self.nodes)}
        self.views = self._node_matrix(self.nodes)  # (nodes, dim): mean of the three view vectors
        self.calibration = self._calibrate()

    # ---- construction ------------------------------------------------------------------------
    @classmethod
    def for_taxonomy(cls, taxonomy: Taxonomy, index: EmbeddingIndex, bank: SynonymBank | None = None,
                     **kw: int) -> PolicyScorer:
        """A scorer over every node of ``taxonomy`` (phrases from ``bank`` when given)."""
        return cls(policy_nodes(taxonomy, bank), index, **kw)

    def _node_matrix(self, nodes: Sequence[NodeText]) -> np.ndarray:
        texts: list[str] = []
        spans = []
        for n in nodes:
            described, with_synonyms, proto = n.views()
            spans.append((len(texts), len(proto)))
            texts += [described, with_synonyms, *proto]
        rows = self.index.phrase_matrix(texts).detach().cpu().numpy().astype(np.float64)
        out = []
        for start, k in spans:
            proto = rows[start + 2 : start + 2 + k].mean(axis=0)
            proto /= max(float(np.linalg.norm(proto)), 1e-12)
            out.append((rows[start] + rows[start + 1] + proto) / 3.0)  # mean of cosines = cosine with the mean
        return np.stack(out)

    def _calibrate(self) -> Calibration:
        key_text = json.dumps(
            [CALIBRATION_VERSION, self.index.fingerprint, [[n.key, n.name, n.description, list(n.all_phrases())]
                                                            for n in self.nodes]],
            ensure_ascii=False,
        )
        digest = hashlib.sha256(key_text.encode()).hexdigest()
        path = self.index.cache_root / "embeddings" / f"{digest}.calibration.json"
        cached = _read_calibration(path)
        if cached is not None:
            return cached
        phrases = [p for n in self.nodes for p in n.all_phrases()]
        own = [j for j, n in enumerate(self.nodes) for _ in n.all_phrases()]
        rows = self.index.phrase_matrix(phrases).detach().cpu().numpy().astype(np.float64)
        result = Calibration.from_fits(rows @ self.views.T, own)
        _write_calibration(path, result)
        return result

    # ---- lookup ------------------------------------------------------------------------------
    def column(self, key: str) -> int | None:
        """The column of the node with this source key, else ``None``."""
        return self._col.get(key)

    def find(self, key: str | None, name: str | None) -> int | None:
        """The column of a hidden node: by key when its name agrees, else by name; ``None`` if absent."""
        j = self._col.get(key) if key else None
        if j is not None and (not name or normalize_name(self.nodes[j].name) == normalize_name(name)):
            return j
        if name:
            want = normalize_name(name)
            return next((k for k, n in enumerate(self.nodes) if normalize_name(n.name) == want), None)
        return None

    # ---- scoring -----------------------------------------------------------------------------
    def forms(self, names: Sequence[str]) -> list[NameForm]:
        """Each name cleaned, with its form factor."""
        return [name_form(n if isinstance(n, str) else "", self.limits, self.max_chars) for n in names]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of (already clean) texts, one row per text: one encode call for the distinct ones."""
        if not texts:
            return np.zeros((0, self.views.shape[1]))
        rows, inverse = self.index.encode_distinct(list(texts))
        return rows.detach().cpu().numpy().astype(np.float64)[inverse]

    def fits(self, texts: Sequence[str]) -> np.ndarray:
        """Raw fit of each (already clean) text to every node."""
        return self.embed(texts) @ self.views.T

    def node_vectors(self, nodes: Sequence[NodeText]) -> np.ndarray:
        """The fit vectors of nodes outside the policy (a target's own node): rows to take a dot product with."""
        return self._node_matrix(nodes)

    def probabilities(self, fit: np.ndarray, extra: np.ndarray | None = None) -> np.ndarray:
        """Softmax over the nodes (plus ``extra`` columns) and the *none* option, at the calibrated temperature."""
        cal = self.calibration
        logits = fit if extra is None else np.concatenate([fit, extra], axis=1)
        z = logits / cal.temperature
        null = np.full((z.shape[0], 1), cal.null_fit / cal.temperature)
        top = np.maximum(z.max(axis=1, keepdims=True) if z.size else null, null)
        ez = np.exp(z - top)
        return ez / (ez.sum(axis=1, keepdims=True) + np.exp(null - top))

    def score(self, names: Sequence[str]) -> NameScores:
        """Scores of ``names`` against every node (names that earn a 0 form are not encoded)."""
        forms = self.forms(names)
        live = [i for i, f in enumerate(forms) if f.factor > 0.0]
        fit = np.full((len(forms), len(self.nodes)), -1.0)
        if live:
            fit[live] = self.fits([forms[i].text for i in live])
        prob = self.probabilities(fit)
        prob[[i for i, f in enumerate(forms) if f.factor == 0.0]] = 0.0
        return NameScores(list(names), forms, fit, prob)

    def describe(self) -> dict:
        """The calibration and policy size, for reports."""
        return {"nodes": len(self.nodes), **asdict(self.calibration), **asdict(self.limits)}


def _read_calibration(path: Path) -> Calibration | None:
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        cal = Calibration(**data)
    except (OSError, ValueError, TypeError) as exc:
        log.warning("calibration cache %s unreadable (%s); recomputing", path, exc)
        return None
    if not all(math.isfinite(v) for v in (cal.temperature, cal.null_fit, cal.impostor_mean)) or cal.temperature <= 0:
        log.warning("calibration cache %s holds bad values; recomputing", path)
        return None
    return cal


def _write_calibration(path: Path, cal: Calibration) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False, encoding="utf-8") as fh:
            json.dump(asdict(cal), fh)
        os.replace(fh.name, path)
    except OSError as exc:  # an unwritable cache costs a recomputation, not correctness
        log.warning("could not write calibration cache %s: %s", path, exc)
