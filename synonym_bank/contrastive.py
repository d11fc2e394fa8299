"""A contrastive fine-tune of the embedding model on one policy's own text, cached per (policy, model).

The policy scorer (``synonym_bank.scorer``) compares a free-text name with each node's text,
``"<name>. <description>"``. This module adapts the embedding model to that comparison using only
what the policy author wrote, never labelled evaluation names: every *anchor* of a node (its name,
its synonyms, each sentence of its description) is pulled towards the node's text and pushed away
from the other nodes' texts in the batch and from one *hard negative*, the sibling node (same
parent; any other node for a node without siblings) whose text the base model finds closest to
the anchor. The loss is the multiple-negatives ranking loss (InfoNCE over cosines times ``scale``),
written here rather than imported so that it does not move with sentence-transformers' API. The
candidate texts of a batch are de-duplicated per node, so two anchors of one node are never each
other's negatives.

The word embeddings stay frozen (a paraphrase's words are mostly not in the policy, and only the
policy's words would move); the transformer layers train. Training is seeded (batch order,
dropout) and runs inside ``torch.random.fork_rng``, so it is reproducible and leaves the caller's
RNG alone. The trained weights are cached under ``<cache>/adapted/<sha256>.safetensors``, keyed by
the base model's fingerprint, the options and the policy text, so a policy is trained once per
(model, policy text, options); a corrupt file is retrained. The adapted model gets its own
fingerprint, so node embeddings and calibration are cached apart from the base model's.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synonym_bank.index import EmbeddingIndex

log = logging.getLogger(__name__)
CONTRASTIVE_VERSION = 1  # bump when the training data or loop changes: old cached weights are then ignored
ADAPT_MODES = ("none", "contrastive")
SENTENCE_BREAK = re.compile(r"(?<=[.!?;])\s+|\n+")  # where a description splits into sentences


@dataclass(frozen=True)
class ContrastiveOptions:
    """Settings of the fine-tune (the defaults were chosen on the validity benchmark's design task only)."""

    epochs: int = 1  # passes over the policy's anchors (1, 3 and 6 tied on the design task; 1 is cheapest)
    batch_size: int = 32  # anchors per step (their nodes' texts and hard negatives are the candidates)
    learning_rate: float = 2e-5  # AdamW, constant
    scale: float = 20.0  # cosine -> logit factor of the ranking loss (sentence-transformers' default)
    max_seq_length: int = 128  # tokens per text while training (encoding afterwards uses the model's own limit)
    seed: int = 0  # batch order and dropout

    @classmethod
    def from_mapping(cls, value: ContrastiveOptions | Mapping[str, Any] | None,
                     where: str = "adapt_options") -> ContrastiveOptions:
        """Options from a mapping (a config), checked; a bad field raises one line naming it."""
        if value is None:
            return cls()
        if isinstance(value, ContrastiveOptions):
            value.check(where)
            return value
        if not isinstance(value, Mapping):
            raise ValueError(f"{where}: must be a mapping of fine-tune settings, got {value!r}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(k) for k in value if k not in known)
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        out = cls(**dict(value))
        out.check(where)
        return out

    def check(self, where: str = "adapt_options") -> None:
        """Raise ``ValueError`` naming the first bad field."""
        for name in ("epochs", "batch_size", "max_seq_length"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{where}.{name}: must be an integer of at least 1, got {v!r}")
        for name in ("learning_rate", "scale"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v <= 0:
                raise ValueError(f"{where}.{name}: must be a positive number, got {v!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"{where}.seed: must be an integer, got {self.seed!r}")


@dataclass(frozen=True)
class NodeDocument:
    """The training text of one node: its text (the positive), its anchors and its parent's key."""

    key: str
    document: str  # "<name>. <description>": what the scorer compares names with
    anchors: tuple[str, ...]  # name, synonyms, description sentences
    parent: str | None = None

    @classmethod
    def from_text(cls, key: str, name: str, description: str, phrases: Sequence[str],
                  parent: str | None = None) -> NodeDocument:
        """A node's document and anchors from its name, description and phrases (name first)."""
        document = f"{name}. {description}" if description.strip() else name
        sentences = [s.strip() for s in SENTENCE_BREAK.split(description) if len(s.strip()) > 3]
        anchors = tuple(dict.fromkeys([name, *phrases, *sentences]))
        return cls(key, document, anchors, parent)


def _hard_negatives(docs: Sequence[NodeDocument], anchor_rows: np.ndarray, doc_rows: np.ndarray,
                    owners: Sequence[int]) -> list[int]:
    """Per anchor, the sibling node (same parent; else any other node) whose text fits it best under the base model."""
    by_parent: dict[str | None, list[int]] = {}
    for j, d in enumerate(docs):
        by_parent.setdefault(d.parent, []).append(j)
    out = []
    for i, j in enumerate(owners):
        pool = [k for k in by_parent[docs[j].parent] if k != j] or [k for k in range(len(docs)) if k != j]
        fit = doc_rows[pool] @ anchor_rows[i]
        out.append(pool[int(np.argmax(fit))])
    return out


def _embedding_layer(model: Any) -> torch.nn.Module:
    """The token embeddings (with position embeddings and their norm when the model groups them)."""
    auto = model[0].auto_model
    layer = getattr(auto, "embeddings", None)
    return layer if isinstance(layer, torch.nn.Module) else auto.get_input_embeddings()


def trainable_state(model: Any) -> dict[str, torch.Tensor]:
    """The weights the fine-tune changes (everything but the frozen embeddings): what the cache stores."""
    frozen = {id(p) for p in _embedding_layer(model).parameters()}
    return {n: p.detach() for n, p in model.named_parameters() if id(p) not in frozen}


def _features(model: Any, texts: Sequence[str]) -> dict[str, torch.Tensor]:
    prep = getattr(model, "preprocess", None) or model.tokenize  # the newer name first: no deprecation warning
    feats = prep(list(texts))
    return {k: v.to(model.device) if isinstance(v, torch.Tensor) else v for k, v in feats.items()}


def _embed(model: Any, texts: Sequence[str]) -> torch.Tensor:
    return torch.nn.functional.normalize(model(_features(model, texts))["sentence_embedding"], dim=-1)


def train(model: Any, docs: Sequence[NodeDocument], options: ContrastiveOptions,
          base: EmbeddingIndex | None = None) -> dict[str, float]:
    """Fine-tune a sentence-transformers ``model`` in place on the policy text; returns loss figures.

    ``base`` (the unadapted index) picks the hard negatives; without it they come from ``model`` itself.
    """
    anchors = [(a, j) for j, d in enumerate(docs) for a in d.anchors]
    texts = [a for a, _ in anchors]
    owners = [j for _, j in anchors]
    with torch.inference_mode():
        if base is not None:
            a_rows = base.phrase_vectors(texts).cpu().numpy()
            d_rows = base.phrase_vectors([d.document for d in docs]).cpu().numpy()
        else:
            model.eval()
            a_rows, d_rows = (_embed(model, t).cpu().numpy() for t in (texts, [d.document for d in docs]))
    negatives = _hard_negatives(docs, a_rows, d_rows, owners)
    for p in _embedding_layer(model).parameters():
        p.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=options.learning_rate)
    rng = np.random.default_rng(options.seed)
    keep_len = model.max_seq_length
    model.max_seq_length = min(options.max_seq_length, keep_len)
    losses: list[float] = []
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(options.seed)
            model.train()
            for _ in range(options.epochs):
                order = rng.permutation(len(anchors))
                for start in range(0, len(order), options.batch_size):
                    batch = order[start : start + options.batch_size]
                    cand = list(dict.fromkeys([owners[i] for i in batch] + [negatives[i] for i in batch]))
                    col = {j: c for c, j in enumerate(cand)}
                    q = _embed(model, [texts[i] for i in batch])
                    d = _embed(model, [docs[j].document for j in cand])
                    labels = torch.tensor([col[owners[i]] for i in batch], device=q.device)
                    loss = torch.nn.functional.cross_entropy(options.scale * (q @ d.T), labels)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    losses.append(float(loss.detach()))
    finally:
        model.max_seq_length = keep_len
        model.eval()
    steps = max(1, len(losses) // max(1, options.epochs))
    return {"anchors": float(len(anchors)), "steps": float(len(losses)),
            "first_epoch_loss": float(np.mean(losses[:steps])) if losses else float("nan"),
            "last_epoch_loss": float(np.mean(losses[-steps:])) if losses else float("nan")}


class AdaptedEncoder:
    """A sentence-transformers model fine-tuned on one policy; encodes like ``SentenceEncoder``."""

    def __init__(self, model: Any, fingerprint: str, batch_size: int = 256) -> None:
        self._model = model
        self.fingerprint = fingerprint
        self.batch_size = batch_size

    def encode(self, texts: list[str]) -> torch.Tensor:
        """L2-normalised float32 embeddings, one row per text."""
        with torch.inference_mode():
            out = self._model.encode(list(texts), batch_size=self.batch_size, convert_to_tensor=True,
                                     normalize_embeddings=True, show_progress_bar=False)
        return out.float()


@dataclass(frozen=True)
class BuildReport:
    """How an adapted index was obtained: from the cache or trained (with its figures)."""

    cached: bool
    seconds: float
    path: str
    figures: dict[str, float]


def adapted_index(docs: Sequence[NodeDocument], index: EmbeddingIndex,
                  options: ContrastiveOptions | Mapping[str, Any] | None = None) -> tuple[EmbeddingIndex, BuildReport]:
    """An index whose model is ``index``'s model fine-tuned on ``docs`` (trained once, then read from the cache).

    Raises ``ValueError`` when ``index`` does not hold a sentence-transformers model (a test double).
    """
    opts = ContrastiveOptions.from_mapping(options)
    base_model = getattr(index.encoder, "sentence_transformer", None)
    if base_model is None:
        raise ValueError(
            f"adapt: contrastive needs a sentence-transformers model to fine-tune; the index's encoder is "
            f"{type(index.encoder).__name__}"
        )
    if len(docs) < 2:
        raise ValueError("adapt: contrastive needs at least two nodes to contrast")
    key_text = json.dumps([CONTRASTIVE_VERSION, index.fingerprint, asdict(opts),
                           [[d.key, d.document, list(d.anchors), d.parent] for d in docs]], ensure_ascii=False)
    digest = hashlib.sha256(key_text.encode()).hexdigest()
    path = index.cache_root / "adapted" / f"{digest}.safetensors"
    t0 = time.perf_counter()
    model = copy.deepcopy(base_model)
    state = _read_weights(path)
    figures: dict[str, float] = {}
    if state is not None and set(state) != set(trainable_state(model)):
        log.warning("adapted weights %s do not fit the model; retraining", path)
        state = None
    if state is not None:
        try:
            model.load_state_dict(state, strict=False)
        except RuntimeError as exc:  # shapes differ
            log.warning("adapted weights %s do not fit the model (%s); retraining", path, exc)
            model, state = copy.deepcopy(base_model), None
    if state is None:
        figures = train(model, docs, opts, base=index)
        _write_weights(path, trainable_state(model))
    model.eval()
    adapted = EmbeddingIndex(index.model_name, device=index.device, cache_dir=index.cache_root,
                             batch_size=index.batch_size,
                             encoder=AdaptedEncoder(model, f"contrastive:{digest}", index.batch_size))
    return adapted, BuildReport(state is not None, time.perf_counter() - t0, str(path), figures)


def _read_weights(path: Path) -> dict[str, torch.Tensor] | None:
    if not path.exists():
        return None
    try:
        from safetensors.torch import load_file

        return load_file(str(path))
    except Exception as exc:  # any unreadable file means: train again
        log.warning("adapted weights %s unreadable (%s); retraining", path, exc)
        return None


def _write_weights(path: Path, state: dict[str, torch.Tensor]) -> None:
    try:
        from safetensors.torch import save_file

        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        os.close(fd)
        save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, tmp)
        os.replace(tmp, path)  # a concurrent reader never sees half a file
    except OSError as exc:  # an unwritable cache costs a retraining, not correctness
        log.warning("could not write adapted weights %s: %s", path, exc)
