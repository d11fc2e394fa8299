"""Synonym phrases per taxonomy node (``bank``), WordNet proposals (``lexical``), the sentence-embedding
index (``index``), the bank quality report (``quality``), the calibrated policy scorer of the OOD
reward (``scorer``, ``name_form``) and its ranking API (``ranking``).

The bank is light to import; the embedding and WordNet names load torch / nltk on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from synonym_bank.bank import BankEntry, BankError, SynonymBank, default_paths, load_bank

_LAZY = {
    "DEFAULT_MODEL": "synonym_bank.index",
    "EmbeddingIndex": "synonym_bank.index",
    "EmbeddingModelError": "synonym_bank.index",
    "WordNetUnavailable": "synonym_bank.lexical",
    "add_proposals": "synonym_bank.lexical",
    "load_wordnet": "synonym_bank.lexical",
    "QualityReport": "synonym_bank.quality",
    "check_bank": "synonym_bank.quality",
    "NodeText": "synonym_bank.scorer",
    "PolicyScorer": "synonym_bank.scorer",
    "policy_nodes": "synonym_bank.scorer",
    "NameRanking": "synonym_bank.ranking",
    "policy_scorer": "synonym_bank.ranking",
    "rank_names": "synonym_bank.ranking",
}

__all__ = ["BankEntry", "BankError", "SynonymBank", "default_paths", "load_bank", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'synonym_bank' has no attribute {name!r}")
