"""The reward contract kit (proguard.testing.reward_contract) over every registered built-in reward.

Each built-in meets the contract on at least 1,000 hypothesis-generated hostile completions (all
modalities, non-strings, huge and malformed answers, shuffled ID maps, OOD targets) with zero
exceptions. ``ood_similarity`` and ``ood_description`` run there on a deterministic hash encoder (its whole scoring path,
without the model's cost), plus a shorter run on the real offline MiniLM. The kit itself is checked
to catch broken modules, so a passing run means something.
"""

from __future__ import annotations

import hashlib
import tempfile
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch

from proguard.scoring.registry import ENTRY_POINT_GROUP, default_registry
from proguard.testing.reward_contract import ContractViolation, check_reward
from rewards.ood_description import OODDescription
from rewards.ood_similarity import OODSimilarity
from rewards.types import MODALITIES
from synonym_bank.index import EmbeddingIndex

ROOT = Path(__file__).resolve().parents[1]
BUILTINS = sorted(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"][ENTRY_POINT_GROUP])
MIN_COMPLETIONS = 1000


class HashEncoder:
    """A deterministic stand-in for the sentence model: each text's unit vector is seeded by its hash."""

    def encode(self, texts: list[str]) -> torch.Tensor:
        rows = []
        for t in texts:
            seed = int.from_bytes(hashlib.sha256(t.encode("utf-8", "surrogatepass")).digest()[:8], "little")
            v = np.random.default_rng(seed).standard_normal(16)
            rows.append(v / np.linalg.norm(v))
        return torch.tensor(np.asarray(rows), dtype=torch.float32)


def scratch_dir() -> str:
    """An index cache folder for this test process, removed when it ends."""
    import atexit
    import shutil

    path = tempfile.mkdtemp(prefix="proguard-contract-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def build(name: str):
    """A built-in by its registered name; the OOD rewards on the hash encoder."""
    if name == "ood_similarity":
        return OODSimilarity(index=EmbeddingIndex(device="cpu", encoder=HashEncoder()))
    if name == "ood_description":
        return OODDescription(index=EmbeddingIndex(device="cpu", encoder=HashEncoder(), cache_dir=scratch_dir()))
    return default_registry().build(name)


def test_every_registered_builtin_is_covered():
    assert set(BUILTINS) == {"format", "binary", "category", "ood_similarity", "ood_description"}
    assert set(BUILTINS) <= set(default_registry().names())


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_meets_the_contract_on_1000_hostile_completions(name):
    report = check_reward(build(name), n=400, seed_value=1, batch_size=16)
    assert report.hostile >= MIN_COMPLETIONS, report
    assert report.modalities == set(MODALITIES)
    assert report.non_text > 100  # None, numbers, bytes and chat lists were among them
    assert len(report.format_errors) >= 8  # many distinct ways to be malformed were exercised


def test_ood_similarity_meets_the_contract_on_the_real_model():
    """The real MiniLM on the fixed cases and generated batches (hostile names reach its tokenizer)."""
    reward = default_registry().build("ood_similarity", {"device": "cpu"})
    report = check_reward(reward, n=4, seed_value=2, batch_size=16, check_pickle=False)
    assert report.hostile > 20 and report.none_scores > 0


def test_ood_description_meets_the_contract_on_the_real_model(tmp_path):
    """The real MiniLM behind the default preset's OOD term, through the registry like a recipe builds it."""
    reward = default_registry().build("ood_description", {"device": "cpu", "cache_dir": str(tmp_path)})
    report = check_reward(reward, n=4, seed_value=2, batch_size=16, check_pickle=False)
    assert report.hostile > 20 and report.none_scores > 0


# ---- the kit catches broken modules -----------------------------------------------------------
class RaisesOnOdd:
    def __call__(self, parsed, targets):
        return [1.0 if p.ok else 1 / 0 for p in parsed]


class WrongLength:
    def __call__(self, parsed, targets):
        return [0.0] * (len(parsed) + 1)


class NotFinite:
    def __call__(self, parsed, targets):
        return [float("inf") if t.modality == "text_image" else 0.0 for t in targets]


class Flaky:
    def __init__(self):
        self.calls = 0

    def __call__(self, parsed, targets):
        self.calls += 1
        return [float(self.calls)] * len(parsed)


@pytest.mark.parametrize(
    "module, message",
    [
        (RaisesOnOdd(), "ZeroDivisionError"),
        (WrongLength(), "scores for"),
        (NotFinite(), "finite float"),
        (Flaky(), "not deterministic"),
        (lambda parsed, targets: [0.0] * len(parsed), "does not pickle"),
    ],
    ids=["raises", "wrong-length", "not-finite", "flaky", "unpicklable"],
)
def test_the_kit_catches_broken_modules(module, message):
    with pytest.raises(ContractViolation, match=message):
        check_reward(module, n=20)
