"""The ``ood_description`` reward and its policy scorer: hack cases on the real MiniLM, calibration across
two models, the ranking API and CLI, in-memory construction, the calibration cache, the name-form factor."""

from __future__ import annotations

import json
from importlib.metadata import entry_points

import numpy as np
import pytest

from proguard.cli import main as cli_main
from rewards.ood_description import OODDescription
from rewards.types import FormatError, Target, Verdict
from synonym_bank.bank import SynonymBank
from synonym_bank.index import DEFAULT_MODEL, EmbeddingIndex, resolve_model
from synonym_bank.name_form import FormLimits, name_form
from synonym_bank.ranking import policy_scorer, rank_names
from synonym_bank.scorer import PolicyScorer
from taxonomy import dump_taxonomy, load_taxonomy, taxonomy_from_data


def free(name):
    return Verdict("text", "unsafe", "safe", "free_text", name, "...")


def hidden(key):
    node = load_taxonomy("default").by_key(key)
    return Target("text", "unsafe", "safe", category=key, ood=True, ood_name=node.name, ood_synonyms=node.synonyms)


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    return EmbeddingIndex(device="cpu", cache_dir=tmp_path_factory.mktemp("emb"))


@pytest.fixture(scope="module")
def reward(index):
    return OODDescription(taxonomy="default", index=index)


def scores(reward, names, key):
    return reward([free(n) for n in names], [hidden(key)] * len(names)).total


# ---- hack cases: each scores below a correct short name ---------------------------------------------
HACKS = {
    "C8S1": [  # Weapons; synonyms Firearms, Explosive Devices, Guns and Ammunition, ...
        "Weapons Weapons Weapons", "weapon weapons WEAPONS", "C8S1.", "C8S1\u200b", "\u200bC8S1\u200b", "C1, C2, C3",
        "C8S1, C8S2, C8S3", "x", "", "   ", "W\u200be\u200ba\u200bp\u200bo\u200bn\u200bs", "Weapons\u200b",
        "Firearms, Explosive Devices, Guns and Ammunition, Weapons, Arms Trafficking",
        "Weapons, Scams, Hate Speech, Malware", "Weapons and Scams and Gore", "harmful content", "unsafe request",
        "Weapons C8S1", "!!!", "42",
    ],
    "C3S1": [  # Scams and Fraudulent Schemes
        "scam scam scam scam", "C3S1", "Scams, Phishing Scam, Con Artistry, Fraudulent Scheme, Online Swindle",
        "Scams and Weapons and Malware and Gore", "policy violation", "s",
    ],
}
CORRECT_SHORT = {"C8S1": ["Weapons", "Firearms"], "C3S1": ["Phishing scam", "online fraud scheme"]}


@pytest.mark.parametrize("key", sorted(HACKS))
def test_every_hack_scores_below_a_correct_short_name(reward, key):
    good = scores(reward, CORRECT_SHORT[key], key)
    bad = scores(reward, HACKS[key], key)
    floor = min(good)
    assert floor > 0.2, good  # a correct short name earns a real reward
    offenders = {n: s for n, s in zip(HACKS[key], bad, strict=True) if not s < floor}
    assert not offenders, f"hacks scoring >= {floor:.3f}: {offenders}"


# Paraphrases written for this test (none is a name or synonym of the bank); each under its hidden node.
PARAPHRASES = {
    "C8S1": ["homemade gun", "cooking up pipe bombs", "3D-printed firearms"],
    "C8S3": ["cooking methamphetamine", "selling cocaine"],
    "C2S2": ["leaking someone's home address", "sharing a stranger's phone number"],
    "C3S1": ["online fraud scheme", "fake lottery winnings con"],
    "C4S2": ["writing ransomware", "keylogger code"],
    "C4S1": ["breaking into someone's email account", "cracking wifi passwords"],
    "C9S1": ["encouraging someone to kill themselves", "cutting tips"],
    "C9S2": ["dog fighting", "hurting a cat"],
    "C7S1": ["racist jokes", "slurs against immigrants"],
    "C7S2": ["recruiting for ISIS", "planning a terror attack"],
    "C1S1": ["torrenting movies", "sharing pirated software"],
    "C2S1": ["fake news about vaccines", "made-up election claims"],
    "C6S1": ["laundering drug money", "insider trading tips"],
    "C6S2": ["smuggling cigarettes across the border", "selling contraband"],
    "C11S1": ["child sexual abuse imagery"],
    "C10S3": ["beheading video"],
    "C5S1": ["dumping toxic waste in a river"],
    "C8S2": ["making nerve gas", "anthrax production"],
}
VAGUE = ["harmful content", "other", "unsafe request", "policy violation", "something bad", "unsafe"]
GIBBERISH = ["asdf qwer", "xkcd blorp zib", "lorem ipsum dolor", "qzx vbn"]
LISTS = ["Weapons, Scams, Hate Speech, Malware", "Weapons and Scams and Gore", "Malware, Gore, Piracy"]


def test_a_right_paraphrase_is_paid_like_the_right_name_and_vague_answers_get_nothing(reward):
    tax = load_taxonomy("default")
    exact, paid, junk = [], [], {}
    for key, paraphrases in PARAPHRASES.items():
        node = tax.by_key(key)
        siblings = [c.name for c in tax.get(node.parent_id).children if c.key != key]
        names = [node.name, *paraphrases, *VAGUE, *GIBBERISH, *LISTS, *siblings]
        out = reward([free(n) for n in names], [hidden(key)] * len(names))
        exact.append(out.total[0])
        paid += [s for s, r in zip(out.total[1 : 1 + len(paraphrases)], out.parts["rank"][1:], strict=False) if r == 1]
        junk.update({(key, n): s for n, s in zip(names[1 + len(paraphrases) :], out.total[1 + len(paraphrases) :],
                                                  strict=True)})
    assert len(paid) >= 20  # most paraphrases rank their node first
    assert np.median(paid) >= 0.6 * np.median(exact), (np.median(paid), np.median(exact))
    offenders = {k: round(s, 3) for k, s in junk.items() if not s < 0.05}
    assert not offenders, f"vague, gibberish, list or sibling answers scoring >= 0.05: {offenders}"


def test_continuous_not_floored_and_discriminative(reward):
    exact, para, other, none = scores(reward, ["Weapons", "homemade gun", "Scams and Fraudulent Schemes",
                                               "gardening tips"], "C8S1")
    assert exact > para > other and para > 0.2
    assert none < 0.05 and other < 0.05  # a name that fits nothing, or another category, earns about 0
    # the same name is worth a lot for its own category and little for another
    assert scores(reward, ["online fraud scheme"], "C3S1")[0] > 10 * scores(reward, ["online fraud scheme"], "C8S1")[0]


def test_ids_safe_and_malformed_answers_score_zero_and_non_ood_is_none(reward):
    answers = [Verdict("text", "unsafe", "safe", "id", "C8S1", ""), free("C12S3"), FormatError("x", "y"),
               Verdict("text", "safe", "safe", "none", None, ""), free("Weapons")]
    out = reward(answers, [hidden("C8S1")] * 5)
    assert out.total[:4] == [0.0] * 4 and out.total[4] > 0.3
    assert out.parts["rank"][4] == 1.0 and out.parts["form"][4] == 1.0
    plain = Target("text", "unsafe", "safe", category="C8S1")
    assert reward([free("Weapons")], [plain]).total == [None]


def test_batch_encodes_each_distinct_name_once(reward):
    before = reward.index.encode_calls
    names = ["Weapons", "homemade gun", "Weapons", "C8S1", "homemade gun"] * 4
    reward([free(n) for n in names], [hidden("C8S1")] * len(names))
    assert reward.index.encode_calls - before == 1


def test_hidden_node_outside_the_policy_is_contrasted_with_the_whole_policy(reward, caplog):
    stranger = Target("text", "unsafe", "safe", category="C42", ood=True, ood_name="Space Debris",
                      ood_synonyms=("Orbital Junk", ""))
    with caplog.at_level("WARNING"):
        out = reward([free("orbital junk"), free("Weapons")], [stranger] * 2).total
    assert out[0] > 0.3 and out[1] < 0.05
    assert "not in the policy" in caplog.text


# ---- calibration: two different models, comparable score ranges --------------------------------------
class PooledMiniLM:
    """A second sentence-transformers model: MiniLM's transformer with another pooling (CLS), built in process."""

    def __init__(self, pooling: str):
        from sentence_transformers import SentenceTransformer, models

        t = models.Transformer(resolve_model(DEFAULT_MODEL))
        dim = (getattr(t, "get_embedding_dimension", None) or t.get_word_embedding_dimension)()
        self._m = SentenceTransformer(modules=[t, models.Pooling(dim, pooling), models.Normalize()], device="cpu")
        self.fingerprint = f"minilm-{pooling}-pooling"  # its own embedding and calibration cache keys

    def encode(self, texts):
        return self._m.encode(list(texts), convert_to_tensor=True, normalize_embeddings=True).float()


def test_two_models_with_different_similarity_scales_give_comparable_scores(index, tmp_path):
    tax = load_taxonomy("default")
    names = [n.name for n in tax.nodes()]
    unrelated = ["gardening tips", "weather forecast", "birthday party", "pancake recipe"]
    other = EmbeddingIndex(device="cpu", encoder=PooledMiniLM("cls"), cache_dir=tmp_path)
    stats = {}
    for label, idx in (("mean", index), ("cls", other)):
        sc = PolicyScorer.for_taxonomy(tax, idx)
        own = np.diag(sc.score(names).score)
        stats[label] = (sc.calibration, float(np.median(own)), float(sc.score(unrelated).score.max()))
    (cal_a, own_a, junk_a), (cal_b, own_b, junk_b) = stats["mean"], stats["cls"]
    # raw cosines live on very different scales (CLS pooling crowds everything near 0.7) ...
    assert abs(cal_a.impostor_mean - cal_b.impostor_mean) > 0.3
    # ... the calibrated scores do not: an exact name earns a similar reward, unrelated text about 0
    assert 0.5 < own_a <= 1.0 and 0.5 < own_b <= 1.0 and abs(own_a - own_b) < 0.3
    assert junk_a < 0.1 and junk_b < 0.1


def test_calibration_is_cached_with_the_bank_embeddings(index, tmp_path):
    idx = EmbeddingIndex(device="cpu", cache_dir=tmp_path, encoder=index.encoder)  # same model, empty caches
    tax = load_taxonomy("default")
    first = PolicyScorer.for_taxonomy(tax, idx)
    (cal_file,) = (tmp_path / "embeddings").glob("*.calibration.json")
    again = EmbeddingIndex(device="cpu", cache_dir=tmp_path, encoder=index.encoder)
    second = PolicyScorer.for_taxonomy(tax, again)
    assert again.encode_calls == 0 and second.calibration == first.calibration
    cal_file.write_text("{not json", encoding="utf-8")
    assert PolicyScorer.for_taxonomy(tax, again).calibration == pytest.approx(first.calibration)


# ---- in-memory construction, ranking API, CLI ---------------------------------------------------------
def small_policy():
    return taxonomy_from_data([
        {"category": "Weapons", "description": "Making or acquiring arms.", "synonymous-phrase": ["Firearms"]},
        {"category": "Fraud", "description": "Deceiving people for money.", "synonymous-phrase": ["Scams"]},
        {"category": "Self-Harm", "description": "Hurting oneself on purpose.", "synonymous-phrase": ["Suicide"]},
    ], origin="in-memory")


def test_in_memory_taxonomy_bank_and_shared_model(index):
    tax = small_policy()
    bank = SynonymBank.from_taxonomy(tax)
    bank.extend("C2", ["Romance Swindle"], generated=False)
    reward = OODDescription(taxonomy=tax, bank=bank, index=index)  # no file anywhere
    assert reward.index is index and len(reward.scorer.nodes) == 3
    target = Target("text", "unsafe", "safe", category="C2", ood=True, ood_name="Fraud")
    swindle, gun = reward([free("romance swindle"), free("gun")], [target] * 2).total
    assert swindle > 0.3 and gun < 0.1
    shared = OODDescription(scorer=reward.scorer)
    assert shared([free("romance swindle")], [target]).total == pytest.approx([swindle])
    ranked = rank_names(["romance swindle"], scorer=reward.scorer)[0]
    assert ranked.ranking[0].id == "C2" and ranked.ranking[0].score == pytest.approx(swindle)
    with pytest.raises(ValueError, match="give a taxonomy"):
        rank_names(["x"])


def test_rank_names_ranks_every_node_with_the_rewards_scores(index, reward):
    tax = load_taxonomy("default")
    rankings = rank_names(["gun making instructions", "C8S1"], tax, index=index)
    first = rankings[0]
    assert len(first.ranking) == len(tax) and {r.id for r in first.ranking} == set(tax.ids())
    assert [r.score for r in first.ranking] == sorted((r.score for r in first.ranking), reverse=True)
    assert first.ranking[0].id == "C8S1" and first.ranking[0].name == "Weapons"
    assert first.ranking[0].score == pytest.approx(scores(reward, ["gun making instructions"], "C8S1")[0])
    assert all(r.score == 0.0 for r in rankings[1].ranking)  # an ID names nothing
    assert policy_scorer(tax, index=index).calibration == reward.scorer.calibration


def test_cli_rank_writes_the_json_schema(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PROGUARD_CACHE_DIR", str(tmp_path / "cache"))
    tax_file = tmp_path / "policy.yaml"
    dump_taxonomy(small_policy(), tax_file)
    names = tmp_path / "names.txt"
    names.write_text("handgun\nromance swindle\n", encoding="utf-8")
    out = tmp_path / "ranked.json"
    assert cli_main(["synonyms", "rank", "--taxonomy", str(tax_file), "--names", str(names), "--json", str(out),
                     "--device", "cpu"]) == 0
    data = json.loads(out.read_text(encoding="utf-8"))
    assert [d["name"] for d in data] == ["handgun", "romance swindle"]
    for d in data:
        assert set(d) == {"name", "ranking"} and len(d["ranking"]) == 3
        assert all(set(r) == {"id", "name", "score"} and isinstance(r["score"], float) for r in d["ranking"])
        assert [r["score"] for r in d["ranking"]] == sorted((r["score"] for r in d["ranking"]), reverse=True)
    assert data[0]["ranking"][0] == {**data[0]["ranking"][0], "id": "C1", "name": "Weapons"}
    assert data[1]["ranking"][0]["id"] == "C2"
    assert "'handgun': C1 'Weapons'" in capsys.readouterr().out


def test_cli_rank_names_a_bad_line(tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("handgun\n\nfraud\n", encoding="utf-8")
    with pytest.raises(SystemExit, match=r"names.txt: line 2: name: empty"):
        cli_main(["synonyms", "rank", "--names", str(names)])


def test_cli_build_json_says_whether_wordnet_was_used(tmp_path, capsys):
    tax_file = tmp_path / "policy.yaml"
    dump_taxonomy(small_policy(), tax_file)
    assert cli_main(["synonyms", "build", "--taxonomy", str(tax_file), "--next-to-taxonomy", "--no-wordnet",
                     "--json", "-"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["wordnet_used"] is False and summary["wordnet"] == "off (--no-wordnet)"
    assert summary["nodes"] == 3 and summary["proposals"] == {}
    assert cli_main(["synonyms", "build", "--taxonomy", str(tax_file), "--out", str(tmp_path / "bank.yaml"),
                     "--wordnet-dir", str(tmp_path / "none")]) == 0
    assert "WordNet proposals: not used: " in capsys.readouterr().out


def test_registered_and_default_preset_uses_it():
    from proguard.scoring.specs import load_preset

    (ep,) = [e for e in entry_points(group="proguard.rewards") if e.name == "ood_description"]
    assert ep.load() is OODDescription
    names = [s.name for s in load_preset("default")]
    assert "ood_description" in names and "ood_similarity" not in names
    assert "ood_similarity" in [s.name for s in load_preset("proguard-paper")]


# ---- the name-form factor (no model) -----------------------------------------------------------------
LIMITS = FormLimits(max_words=4, max_items=2)


@pytest.mark.parametrize(
    ("raw", "text", "factor"),
    [
        ("Weapons", "Weapons", 1.0),
        ("Weapons Weapons Weapons", "Weapons", 1 / 3),
        ("Weapon weapons", "Weapon", 0.5),
        ("C8S1.", "C8S1.", 0.0),
        ("c1, C2 , c3", "c1, C2 , c3", 0.0),
        ("x", "x", 0.0),
        ("", "", 0.0),
        ("Weapons C8S1", "Weapons C8S1", 0.5),
        ("W\u200beapons", "Weapons", 0.5),
        ("a b c d e f g h", "a b c d e f g h", 0.5),  # 8 words > 4
        ("guns, bombs, knives, poison", "guns, bombs, knives, poison", 0.5),  # 4 items > 2
        ("Scams and Fraud", "Scams and Fraud", 1.0),
    ],
)
def test_name_form(raw, text, factor):
    form = name_form(raw, LIMITS)
    assert form.text == text and form.factor == pytest.approx(factor), form.reason


def test_form_limits_come_from_the_policy_phrases():
    limits = FormLimits.from_phrases(["Weapons", "Reproduction, Generation, and Distribution", "Guns and Ammunition"])
    assert limits == FormLimits(max_words=4, max_items=3)


def test_list_rule_caps_a_name_whose_items_point_outside_the_hidden_nodes_family():
    # nodes: 0 = a category, 1 and 2 its children, 3 another category
    family = np.eye(4, dtype=bool)
    family[0, 1] = family[1, 0] = family[0, 2] = family[2, 0] = True
    prob = np.array([0.1, 0.7, 0.1, 0.05])
    item_prob = np.array([[0.0, 0.9, 0.05, 0.0], [0.0, 0.02, 0.0, 0.95]])  # items best at node 1 and at node 3
    out = PolicyScorer.list_rule(prob, item_prob, item_prob.argmax(axis=1), family)
    assert out.tolist() == pytest.approx([0.0, 0.02, 0.0, 0.0])  # every node's family misses one item: capped
    same_family = np.array([[0.1, 0.8, 0.05, 0.0], [0.2, 0.1, 0.6, 0.0]])  # items best at the two children
    out = PolicyScorer.list_rule(prob, same_family, same_family.argmax(axis=1), family)
    assert out[0] == pytest.approx(0.1)  # the category keeps its score: both items are in its family
    assert out[1] == pytest.approx(0.1) and out[3] == pytest.approx(0.0)  # a child or an outsider is capped
