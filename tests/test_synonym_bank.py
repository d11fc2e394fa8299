"""Synonym bank data (build, overrides, save/load, matching its taxonomy) and WordNet proposals; no model."""

import json
from pathlib import Path

import pytest
import yaml

from proguard.cli import main
from synonym_bank.bank import BankError, SynonymBank, default_paths, load_bank
from synonym_bank.lexical import WordNetUnavailable, head_word, load_wordnet, propose
from taxonomy import dump_taxonomy, load_taxonomy
from reference_data import PROGUARD_TAXONOMY, private_copy

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = PROGUARD_TAXONOMY
needs_reference = pytest.mark.skipif(not REFERENCE.exists(), reason=f"reference data absent: {REFERENCE}")


@pytest.fixture
def tax_file(tmp_path):
    """The bundled default taxonomy copied to a user folder, so files can sit next to it."""
    path = tmp_path / "policy.yaml"
    dump_taxonomy(load_taxonomy("default"), path)
    return path


def test_from_taxonomy_has_every_node_with_name_first():
    tax = load_taxonomy("default")
    bank = SynonymBank.from_taxonomy(tax)
    assert bank.keys() == tax.ids()
    for node in tax.nodes():
        # a synonym equal to the name (one default node lists it) is kept once
        assert bank.phrases(node.id) == (node.name, *[s for s in node.synonyms if s.lower() != node.name.lower()])
    assert bank.find(tax.get("C4S2").name.upper()).key == "C4S2"
    assert bank.find("no such node") is None


@needs_reference
def test_proguard_taxonomy_bank_loads_with_its_five_synonyms():
    bank = load_bank(private_copy(REFERENCE))
    assert len(bank) == 39
    assert all(len(e.phrases()) == 6 for e in bank)
    assert bank.get("C8S1").name == "Weapons"


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_save_load_round_trip_keeps_phrases_and_hash(tmp_path, suffix):
    bank = SynonymBank.from_taxonomy(load_taxonomy("default"))
    bank.extend("C4S2", ["Trojan Horse", "malicious software"])  # the second is a duplicate of a synonym
    assert bank.get("C4S2").generated == ["Trojan Horse"]
    again = SynonymBank.load(bank.save(tmp_path / f"bank{suffix}"))
    assert again.to_dict() == bank.to_dict()
    assert again.content_hash() == bank.content_hash()
    again.extend("C1", ["Software Piracy"])
    assert again.content_hash() != bank.content_hash()


def test_overrides_replace_add_remove_and_win_over_generated():
    bank = SynonymBank.from_taxonomy(load_taxonomy("default"))
    bank.extend("C3S1", ["Cozenage", "Swindle"])
    bank.extend("C4S2", ["Worm"])
    bank.apply_overrides(
        {
            "C3S1": {"remove": ["cozenage", "Con Artistry"], "add": ["Romance Scam"]},
            "Malware and Attack Tooling": {"synonyms": ["Malware", "Trojan"]},  # by name
        }
    )
    c3s1 = bank.get("C3S1")
    assert "Cozenage" not in c3s1.phrases() and "Con Artistry" not in c3s1.phrases()
    assert "Romance Scam" in c3s1.synonyms and "Swindle" in c3s1.generated
    assert bank.phrases("C4S2") == ("Malware and Attack Tooling", "Malware", "Trojan")  # generated dropped too


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"C99": {"add": ["x"]}}, "C99: no node"),
        ({"C1": {"rename": ["x"]}}, "unknown field(s) ['rename']"),
        ({"C1": {"add": "Piracy"}}, "C1.add: must be a list"),
        ({"C1": {"remove": ["Intellectual Property"]}}, "cannot remove the node's canonical name"),
        (["C1"], "must be a mapping"),
    ],
)
def test_bad_overrides_name_file_and_node(tmp_path, tax_file, overrides, needle):
    over = tmp_path / "policy.synonyms.override.yaml"
    over.write_text(yaml.safe_dump(overrides), encoding="utf-8")
    with pytest.raises(BankError) as err:
        load_bank(tax_file)
    assert str(over) in str(err.value) and needle in str(err.value)


def test_load_bank_uses_bank_and_overrides_next_to_the_taxonomy(tax_file):
    bank_path, over_path = default_paths(tax_file)
    assert bank_path == tax_file.with_name("policy.synonyms.yaml")
    bank = SynonymBank.from_taxonomy(load_taxonomy(tax_file))
    bank.extend("C1S1", ["Warez", "Bootleg"])
    bank.save(bank_path)
    over_path.write_text("C1S1:\n  remove: [Warez]\n", encoding="utf-8")
    loaded = load_bank(tax_file)
    assert "Bootleg" in loaded.phrases("C1S1") and "Warez" not in loaded.phrases("C1S1")
    over_path.write_text("", encoding="utf-8")  # an empty override file is no overrides
    assert "Warez" in load_bank(tax_file).phrases("C1S1")


def test_bundled_taxonomy_files_live_in_the_package_data_dir():
    bank_path, over_path = default_paths("default")
    assert bank_path.parent.name == "data" and bank_path.parent.parent.name == "synonym_bank"
    assert bank_path.name == "default.synonyms.yaml" and over_path.name == "default.synonyms.override.yaml"


def test_bank_that_does_not_match_its_taxonomy_is_an_error(tmp_path, tax_file):
    data = SynonymBank.from_taxonomy(load_taxonomy(tax_file)).to_dict()
    data["nodes"]["C2"]["name"] = "Something Else"
    del data["nodes"]["C1S1"]
    path = tmp_path / "other.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(BankError) as err:
        load_bank(tax_file, bank=path)
    msg = str(err.value)
    assert str(path) in msg and "node C1S1" in msg and "node C2: bank name 'Something Else'" in msg


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("nodes: [", "not valid YAML"),
        ("nodes: {C1: {name: X, synonyms: [1, 2]}}", "nodes.C1.synonyms: must be a list of non-empty strings"),
        ("nodes: {C1: {synonyms: [a]}}", "nodes.C1.name: missing or empty"),
        ("[1, 2]", "a mapping with a 'nodes' mapping"),
    ],
)
def test_bad_bank_file_names_file_and_field(tmp_path, text, needle):
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(BankError) as err:
        SynonymBank.load(path)
    assert str(path) in str(err.value) and needle in str(err.value)


@pytest.mark.parametrize(
    ("phrase", "head"),
    [
        ("Fraud and Scams", "Scams"),
        ("Removal or Misuse of Copyright Information", "Misuse"),
        ("Weapons", "Weapons"),
        ("Biological, Chemical, and Radioactive Materials", "Materials"),
        ("Content Generation Without Permission", "Generation"),
        ("of the", None),
    ],
)
def test_head_word_is_last_content_word_before_a_preposition(phrase, head):
    match = head_word(phrase)
    assert (match.group() if match else None) == head


def test_missing_wordnet_is_a_clear_error_not_a_download(tmp_path):
    with pytest.raises(WordNetUnavailable) as err:
        load_wordnet(tmp_path / "no-wordnet", cache_dir=tmp_path)
    assert "apt-get install wordnet-base" in str(err.value) and "never downloads" in str(err.value)


@pytest.fixture(scope="module")
def wordnet(tmp_path_factory):
    try:
        return load_wordnet(cache_dir=tmp_path_factory.mktemp("cache"))
    except WordNetUnavailable as exc:
        pytest.skip(f"no offline WordNet data: {exc}")


def test_wordnet_proposals_singularise_and_swap_lemmas(wordnet):
    out = propose(wordnet, ["Fraud and Scams", "Weapons"], max_proposals=10)
    assert "Fraud and Scam" in out and "Weapon" in out
    assert any(p.startswith("Fraud and ") and p not in ("Fraud and Scam", "Fraud and Scams") for p in out)
    assert "Fraud and Scams" not in out and "Weapons" not in out  # never the input itself
    assert len(propose(wordnet, ["Fraud and Scams", "Weapons"], max_proposals=2)) == 2


def test_cli_build_without_wordnet_writes_a_loadable_bank(tmp_path, tax_file, capsys):
    assert main(["synonyms", "build", "--taxonomy", str(tax_file), "--wordnet-dir", str(tmp_path / "none"),
                 "--next-to-taxonomy"]) == 0
    err = capsys.readouterr().err
    assert "skipping WordNet proposals" in err and "apt-get install wordnet-base" in err
    assert tax_file.with_name("policy.synonyms.yaml").exists()
    bank = load_bank(tax_file)  # picks up policy.synonyms.yaml written next to the taxonomy
    assert bank.to_dict() == SynonymBank.from_taxonomy(load_taxonomy(tax_file)).to_dict()


@needs_reference
def test_cli_build_with_wordnet_then_curated_overrides_win(wordnet, tmp_path, monkeypatch, capsys):
    """The real path: WordNet proposals for ProGuard's taxonomy land in ``generated``; the override
    file next to the taxonomy removes and replaces them on load."""
    monkeypatch.setenv("PROGUARD_CACHE_DIR", str(tmp_path / "cache"))  # WordNet is staged here, once
    tax_path = tmp_path / "proguard.yaml"
    tax_path.write_bytes(private_copy(REFERENCE).read_bytes())
    assert main(["synonyms", "build", "--taxonomy", str(tax_path), "--next-to-taxonomy"]) == 0
    assert "skipping WordNet" not in capsys.readouterr().err
    built = SynonymBank.load(tax_path.with_name("proguard.synonyms.yaml"))
    assert len(built) == 39 and all(len(e.synonyms) == 5 for e in built)
    assert sum(len(e.generated) for e in built) >= 39  # WordNet found variants for (nearly) every node
    weapons = built.find("Weapons")
    assert "Weapon" in weapons.generated  # singular of the head word
    c3s1 = built.get("C3S1")
    assert c3s1.generated and c3s1.generated[0] == "Fraud and Scam"

    tax_path.with_name("proguard.synonyms.override.yaml").write_text(
        f"C3S1:\n  remove: [{c3s1.generated[1]!r}]\n  add: [Romance Scam]\nWeapons:\n  synonyms: [Guns]\n",
        encoding="utf-8",
    )
    loaded = load_bank(tax_path)
    assert c3s1.generated[1] not in loaded.phrases("C3S1") and "Romance Scam" in loaded.phrases("C3S1")
    assert c3s1.generated[0] in loaded.phrases("C3S1")  # the rest of the generated list stays
    assert loaded.phrases(weapons.key) == ("Weapons", "Guns")  # replaced: generated dropped too


def test_cli_build_writes_beside_the_taxonomy_only_when_asked(tmp_path, tax_file, capsys):
    """Without --out or --next-to-taxonomy nothing is written (a bank beside a taxonomy changes every later load)."""
    with pytest.raises(SystemExit) as exc:
        main(["synonyms", "build", "--taxonomy", str(tax_file), "--no-wordnet"])
    assert exc.value.code == 2
    assert not tax_file.with_name("policy.synonyms.yaml").exists()
    out = tmp_path / "elsewhere" / "bank.yaml"
    assert main(["synonyms", "build", "--taxonomy", str(tax_file), "--no-wordnet", "--out", str(out)]) == 0
    assert out.exists() and not tax_file.with_name("policy.synonyms.yaml").exists()
    assert "building the synonym bank" in capsys.readouterr().err  # a start line before the work


def test_cli_build_errors_are_one_line(tmp_path, capsys):
    assert main(["synonyms", "build", "--taxonomy", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "b.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[1].startswith("proguard synonyms: error:") and "nope.yaml" in err[1]
    assert main(["synonyms", "build", "--taxonomy", "default", "--next-to-taxonomy"]) == 2
    assert "use --out PATH" in capsys.readouterr().err
