"""The policy scorer: how well a free-text name identifies each node of the full policy, calibrated to the model.

One scorer serves the ``ood_description`` reward, the ranking API (``synonym_bank.ranking``,
``proguard synonyms rank``) and the bench's OOD-description metric, so the three can never disagree.

Every node of the policy (hidden or visible) is one L2-normalised embedding of the policy author's
own text, ``"<name>. <description>"`` (``views="described"``, the default). Round 1's three views
(``views="three"``: that text, the same with the synonyms, and a prototype of phrases and sentences)
stay available; on the held-out tasks of ``benchmarks/bench_ood_validity.py`` they did not beat the
one view (docs/ood_reward.md). The *fit* of a name ``q`` to node ``j`` is the cosine ``l_j(q)``.
The probability that ``q`` names node ``j`` is a softmax over **all** nodes plus a *none* option::

    p_j(q) = exp(l_j / T) / (exp(null(q) / T) + sum_k exp(l_k / T)),   null(q) = max(mean_k l_k(q) + delta, floor)

so a name that fits another category as well as ``j`` gets at most about one half, and a name that
does not stand out from its own average fit over the policy by more than a wrong category typically
does gets about 0 (gibberish, vague names). ``T`` and ``delta`` are not constants: they come from
the policy's own phrases under the model, once per (model, policy text), cached on disk next to the
bank embeddings (``Calibration``):

* ``delta`` is the mean, over the policy's phrases (names and synonyms), of their best fit to a node
  that is not their own minus their mean fit over all nodes (how far the best wrong category
  typically stands out);
* ``floor`` is the 0.95 quantile of the fits of policy phrases to nodes not their own (unrelated
  text earns about 0 even for a model whose cosines crowd together);
* ``T`` is set so that the policy's own synonyms that rank their node first (they are not in the
  node text, so they are held-out paraphrases written by the policy author) earn ``PAY`` = 0.95 at the
  median: a right paraphrase is paid like a right name, whatever the model's cosine scale.

A name made of list items (``Weapons, Scams and Malware``) is also scored item by item: when an item's
best node lies outside the hidden node's family (itself, its parent, its children), the name earns
at most what its weakest item earns, so a list of categories cannot collect the reward of one of them.
The reward multiplies ``p`` by the name's form factor (``synonym_bank.name_form``).
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
from typing import Any
from pathlib import Path

import numpy as np

from synonym_bank.bank import SynonymBank
from synonym_bank.contrastive import ADAPT_MODES, BuildReport, ContrastiveOptions, NodeDocument, adapted_index
from synonym_bank.index import EmbeddingIndex
from synonym_bank.name_form import FormLimits, NameForm, name_form, split_items
from taxonomy import Taxonomy, normalize_name

log = logging.getLogger(__name__)
CALIBRATION_VERSION = 3  # bump when the views or the calibration change: old cache files are then ignored
FLOOR_QUANTILE = 0.95  # the none option never fits worse than this quantile of wrong (phrase, node) fits
PAY = 0.95  # the median probability of a policy synonym that ranks its node first (sets T; see above)
VIEWS = ("described", "three")  # the node text a name is compared with (see the module docstring)
_SENTENCE = re.compile(r"(?<=[.!?;])\s+|\n+")


@dataclass(frozen=True)
class NodeText:
    """The policy text of one node: its ID, source key, name, description and phrases (name first)."""

    id: str
    key: str
    name: str
    description: str = ""
    phrases: tuple[str, ...] = ()
    parent: str | None = None  # the parent node's key (the list-item rule treats parent and children as one family)

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
        parent = taxonomy.get(n.parent_id) if n.parent_id else None
        out.append(NodeText(n.id, key, n.name, n.description, tuple(phrases),
                            (parent.key or parent.id) if parent is not None else None))
    return out


def node_documents(nodes: Sequence[NodeText]) -> list[NodeDocument]:
    """The policy text the contrastive fine-tune learns from: per node its text and anchors."""
    return [NodeDocument.from_text(n.key, n.name, n.description, n.all_phrases(), n.parent) for n in nodes]


@dataclass(frozen=True)
class Calibration:
    """The model's own similarity scale on a policy: softmax temperature and the *none* option's margin."""

    temperature: float
    null_offset: float
    floor: float
    impostor_mean: float
    impostor_sd: float
    paraphrases: int  # how many synonyms ranked their node first and set the temperature

    @classmethod
    def from_fits(cls, fits: np.ndarray, own: Sequence[int], synonym: Sequence[bool]) -> Calibration:
        """From the fit of every policy phrase (rows) to every node (columns).

        ``own[i]`` is row i's node; ``synonym[i]`` says whether row i is a synonym (not the node's name).
        """
        n_nodes = fits.shape[1]
        rows = np.arange(len(own))
        own = np.asarray(own, dtype=int)
        mask = np.ones_like(fits, dtype=bool)
        mask[rows, own] = False
        impostor = fits[mask]
        if n_nodes < 2 or impostor.size < 2:
            raise ValueError("the policy scorer needs at least two nodes to contrast a name against")
        sd = max(float(impostor.std()), 1e-4)  # a degenerate model (all fits equal) must not divide by 0
        offset = float((np.where(mask, fits, -np.inf).max(axis=1) - fits.mean(axis=1)).mean())
        floor = float(np.quantile(impostor, FLOOR_QUANTILE))
        first = fits.argmax(axis=1) == own
        chosen = first & np.asarray(synonym, dtype=bool)
        if chosen.sum() < 3:  # a policy without (enough) synonyms: its names stand in for them
            chosen = first
        temperature = sd
        if chosen.any():
            f, o = fits[chosen], own[chosen]

            def median_pay(t: float) -> float:
                null = np.maximum(f.mean(axis=1, keepdims=True) + offset, floor)
                return float(np.median(_softmax(f, null, t)[np.arange(len(o)), o]))

            lo, hi = np.log(sd / 100), np.log(sd * 10)  # pay falls as T grows: bisect on log T
            if median_pay(np.exp(hi)) >= PAY:
                lo = hi
            for _ in range(60):
                mid = (lo + hi) / 2
                lo, hi = (mid, hi) if median_pay(np.exp(mid)) >= PAY else (lo, mid)
            temperature = float(np.exp(lo))
        return cls(temperature=temperature, null_offset=offset, floor=floor, impostor_mean=float(impostor.mean()),
                   impostor_sd=sd, paraphrases=int(chosen.sum()))


def _softmax(fit: np.ndarray, null: np.ndarray, temperature: float) -> np.ndarray:
    """Softmax of ``fit / T`` over the columns plus a *none* column at ``null / T`` (left out of the result)."""
    z = fit / temperature
    nz = null / temperature
    top = np.maximum(z.max(axis=1, keepdims=True) if z.size else nz, nz)
    ez = np.exp(z - top)
    return ez / (ez.sum(axis=1, keepdims=True) + np.exp(nz - top))


@dataclass(frozen=True)
class NameScores:
    """Scores of a list of names against every policy node.

    ``fit[i, j]`` is the raw fit of name i to node j, ``probability[i, j]`` the calibrated softmax
    (with the *none* option and the list-item rule), ``form[i]`` the form factor, and
    ``score = probability * form``: the reward name i earns when node j is the hidden one.
    ``embeddings[i]`` is name i's embedding (zeros when its form is 0) and ``items[i]`` the
    embeddings of its list items (``None`` for a single-item name), for nodes outside the policy.
    """

    names: list[str]
    forms: list[NameForm]
    fit: np.ndarray
    probability: np.ndarray
    embeddings: np.ndarray | None = None
    items: list[np.ndarray | None] | None = None

    @property
    def score(self) -> np.ndarray:
        """``probability`` times each name's form factor."""
        return self.probability * np.array([f.factor for f in self.forms], dtype=np.float64)[:, None]


class PolicyScorer:
    """Scores free-text names against every node of a policy (see the module docstring).

    Args:
        nodes: the policy's nodes (``policy_nodes(taxonomy, bank)``, or built by hand).
        index: the embedding index (one shared model); its disk cache holds the node embeddings
            and the calibration.
        max_chars: names are cut to this many characters before encoding.
        views: ``"described"`` (one embedding of ``"<name>. <description>"`` per node, the default)
            or ``"three"`` (round 1's mean of three views).
        adapt: ``"none"`` (the model as it is, the default) or ``"contrastive"``: the model is first
            fine-tuned on this policy's own text (``synonym_bank.contrastive``; trained once per
            (model, policy text, options), then read from ``index``'s cache folder).
        adapt_options: settings of the fine-tune (``ContrastiveOptions`` or a mapping of its fields).
    """

    def __init__(self, nodes: Sequence[NodeText], index: EmbeddingIndex, *, max_chars: int = 1000,
                 views: str = "described", adapt: str = "none",
                 adapt_options: ContrastiveOptions | dict[str, Any] | None = None) -> None:
        if views not in VIEWS:
            raise ValueError(f"views: must be one of {', '.join(VIEWS)}, got {views!r}")
        if adapt not in ADAPT_MODES:
            raise ValueError(f"adapt: must be one of {', '.join(ADAPT_MODES)}, got {adapt!r}")
        options = ContrastiveOptions.from_mapping(adapt_options)
        self.view_set = views
        self.nodes = list(nodes)
        if len(self.nodes) < 2:
            raise ValueError("the policy scorer needs at least two nodes to contrast a name against")
        self.adapt = adapt
        self.base_index = index
        self.adapt_report: BuildReport | None = None
        if adapt == "contrastive":
            index, self.adapt_report = adapted_index(node_documents(self.nodes), index, options)
        self.index = index
        self.max_chars = max_chars
        self.limits = FormLimits.from_phrases(p for n in self.nodes for p in n.all_phrases())
        self._col = {n.key: j for j, n in enumerate(self.nodes)}
        self.family = self._family_matrix()
        self.views = self._node_matrix(self.nodes)  # (nodes, dim)
        self.calibration = self._calibrate()

    # ---- construction ------------------------------------------------------------------------
    @classmethod
    def for_taxonomy(cls, taxonomy: Taxonomy, index: EmbeddingIndex, bank: SynonymBank | None = None,
                     **kw: Any) -> PolicyScorer:
        """A scorer over every node of ``taxonomy`` (phrases from ``bank`` when given)."""
        return cls(policy_nodes(taxonomy, bank), index, **kw)

    def _family_matrix(self) -> np.ndarray:
        """``family[j, k]``: node k is node j, its parent or one of its children."""
        n = len(self.nodes)
        fam = np.eye(n, dtype=bool)
        for k, node in enumerate(self.nodes):
            j = self._col.get(node.parent) if node.parent else None
            if j is not None:
                fam[j, k] = fam[k, j] = True
        return fam

    def _node_matrix(self, nodes: Sequence[NodeText]) -> np.ndarray:
        if self.view_set == "described":  # one view: "<name>. <description>"
            rows = self.index.phrase_matrix([n.views()[0] for n in nodes]).detach().cpu().numpy()
            return rows.astype(np.float64)
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
            [CALIBRATION_VERSION, PAY, FLOOR_QUANTILE, self.view_set, self.index.fingerprint,
             [[n.key, n.name, n.description, list(n.all_phrases())] for n in self.nodes]],
            ensure_ascii=False,
        )
        digest = hashlib.sha256(key_text.encode()).hexdigest()
        path = self.index.cache_root / "embeddings" / f"{digest}.calibration.json"
        cached = _read_calibration(path)
        if cached is not None:
            return cached
        phrases = [p for n in self.nodes for p in n.all_phrases()]
        own = [j for j, n in enumerate(self.nodes) for _ in n.all_phrases()]
        synonym = [k > 0 for n in self.nodes for k in range(len(n.all_phrases()))]
        rows = self.index.phrase_matrix(phrases).detach().cpu().numpy().astype(np.float64)
        result = Calibration.from_fits(rows @ self.views.T, own, synonym)
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
        """The vectors of nodes outside the policy (a target's own node): rows to take a dot product with."""
        return self._node_matrix(nodes)

    def probabilities(self, fit: np.ndarray, extra: np.ndarray | None = None) -> np.ndarray:
        """Softmax over the nodes (plus ``extra`` columns) and the *none* option, at the calibrated temperature."""
        cal = self.calibration
        logits = fit if extra is None else np.concatenate([fit, extra], axis=1)
        null = (logits.mean(axis=1, keepdims=True) if logits.size else np.zeros((len(logits), 1))) + cal.null_offset
        null = np.maximum(null, cal.floor)
        return _softmax(logits, null, cal.temperature)

    def score(self, names: Sequence[str]) -> NameScores:
        """Scores of ``names`` against every node: one encode call for the distinct names and list items.

        Names that earn a 0 form are not encoded (their probability is 0); each distinct name is
        formed and put through the softmax once.
        """
        names = list(names)
        distinct: dict[str, int] = {}
        inverse = [distinct.setdefault(n if isinstance(n, str) else "", len(distinct)) for n in names]
        forms = self.forms(list(distinct))
        live = [i for i, f in enumerate(forms) if f.factor > 0.0]
        parts = {i: split_items(forms[i].text) for i in live}
        parts = {i: p for i, p in parts.items() if len(p) > 1}
        texts = [forms[i].text for i in live] + [t for i in parts for t in parts[i]]
        rows = self.embed(texts)
        dim = self.views.shape[1]
        emb = np.zeros((len(forms), dim))
        emb[live] = rows[: len(live)]
        fit = np.full((len(forms), len(self.nodes)), -1.0)
        if live:
            fit[live] = emb[live] @ self.views.T
        prob = self.probabilities(fit)
        items: list[np.ndarray | None] = [None] * len(forms)
        at = len(live)
        for i, p in parts.items():
            items[i] = rows[at : at + len(p)]
            at += len(p)
            item_fit = items[i] @ self.views.T
            prob[i] = self.list_rule(prob[i], self.probabilities(item_fit), item_fit.argmax(axis=1), self.family)
        prob[[i for i, f in enumerate(forms) if f.factor == 0.0]] = 0.0
        return NameScores(names, [forms[k] for k in inverse], fit[inverse], prob[inverse], emb[inverse],
                          [items[k] for k in inverse])

    @staticmethod
    def list_rule(prob: np.ndarray, item_prob: np.ndarray, item_best: np.ndarray, family: np.ndarray) -> np.ndarray:
        """A name's probabilities after its list items: for node j, when an item's best node is outside
        j's family, the name earns at most its weakest item's probability of j."""
        outside = ~family[:, item_best].all(axis=1)  # per node j: some item points outside j's family
        return np.where(outside, np.minimum(prob, item_prob.min(axis=0)), prob)

    def describe(self) -> dict:
        """The calibration and policy size, for reports."""
        return {"nodes": len(self.nodes), "views": self.view_set, "adapt": self.adapt, **asdict(self.calibration),
                **asdict(self.limits)}


def _read_calibration(path: Path) -> Calibration | None:
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        cal = Calibration(**data)
    except (OSError, ValueError, TypeError) as exc:
        log.warning("calibration cache %s unreadable (%s); recomputing", path, exc)
        return None
    if not all(math.isfinite(v) for v in (cal.temperature, cal.null_offset, cal.floor, cal.impostor_mean)) or cal.temperature <= 0:
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
