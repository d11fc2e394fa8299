"""Taxonomy model and loaders: the real ProGuard file, bundled policies, hide/shuffle, errors."""

from pathlib import Path

import pytest
import yaml

from reference_data import PROGUARD_TAXONOMY, private_copy
from taxonomy import (
    Taxonomy,
    TaxonomyError,
    bundled_taxonomies,
    dump_taxonomy,
    load_taxonomy,
    parent_id_of,
    parse_id,
)

REFERENCE = PROGUARD_TAXONOMY
needs_reference = pytest.mark.skipif(not REFERENCE.exists(), reason=f"reference data absent: {REFERENCE}")


@needs_reference
def test_proguard_taxonomy_import_counts_ids_synonyms():
    tax = load_taxonomy(private_copy(REFERENCE))
    assert len(tax.categories) == 11
    assert sum(len(c.children) for c in tax.categories) == 28
    assert all(len(n.synonyms) == 5 for n in tax.nodes())
    assert tax.get("C1").name == "Copyright"
    assert tax.get("C1S3").name == "Removal or Misuse of Copyright Information"
    assert tax.get("C8S1").name == "Weapons"
    assert tax.parent("C8S1").name == "Dangerous Goods"
    assert tax.get("C11S2").name == "Exposure of Sexual Organs"
    assert "Intellectual Property Violation" in tax.get("C1").synonyms
    # The rendered list is what ProGuard's prompt shows: one node per line, subcategories indented.
    lines = tax.render().splitlines()
    assert len(lines) == 39
    assert lines[0].startswith("C1: Copyright - ")
    assert lines[1].startswith("  C1S1: Reproduction, Generation, and Distribution - ")


def test_bundled_taxonomies_load():
    assert {"default", "mlcommons"} <= set(bundled_taxonomies())
    default = load_taxonomy("default")
    assert len(default.categories) == 11 and sum(len(c.children) for c in default.categories) == 28
    assert all(n.description and len(n.synonyms) >= 4 for n in default.nodes())
    ml = load_taxonomy("mlcommons")
    names = [c.name for c in ml.categories]
    assert len(names) == 14
    assert names[0] == "Violent Crimes" and names[3] == "Child Sexual Exploitation"
    assert names[8] == "Indiscriminate Weapons" and names[13] == "Code Interpreter Abuse"
    assert list(ml.leaves()) == list(ml.categories)  # flat: categories are the leaves


@needs_reference
def test_default_covers_proguard_risk_areas_in_own_words():
    ours, theirs = load_taxonomy("default"), load_taxonomy(private_copy(REFERENCE))
    assert [len(c.children) for c in ours.categories] == [len(c.children) for c in theirs.categories]
    their_text = {n.description for n in theirs.nodes()}
    assert not their_text & {n.description for n in ours.nodes()}, "default taxonomy must use its own wording"


def test_lookup_by_id_and_name():
    tax = load_taxonomy("default")
    assert tax.find("c8s1") is None  # IDs are case-sensitive
    assert tax.find("C8S1").name == "Weapons"
    assert tax.find("  weapons ").id == "C8S1"
    assert tax.find("nothing like this") is None
    with pytest.raises(KeyError, match="C99"):
        tax.get("C99")
    assert tax.parent("C8") is None
    assert parent_id_of("C10S3") == "C10" and parent_id_of("C10") is None and parent_id_of("x") is None
    assert parse_id("C12S3") == (12, 3) and parse_id("C0") is None and parse_id("C1S") is None


def test_without_hides_nodes_and_keeps_ids():
    tax = load_taxonomy("default")
    hidden = tax.without(["C8", "C3S2"])
    assert "C8" not in hidden and "C8S1" not in hidden and "C3S2" not in hidden
    assert "C9" in hidden and hidden.get("C3S1").name == tax.get("C3S1").name
    assert len(hidden) == len(tax) - 4 - 1
    assert len(tax) == 39, "the original must be untouched (pure function)"
    with pytest.raises(TaxonomyError, match="C42"):
        tax.without(["C42"])


def test_shuffle_round_trips_and_is_seeded():
    tax = load_taxonomy("default")
    shuffled, id_map = tax.shuffled(seed=7)
    assert sorted(id_map) == sorted(tax.ids())
    assert sorted(id_map.values()) == sorted(shuffled.ids())  # every node gets one dense new ID
    assert [c.id for c in shuffled.categories] == [f"C{i}" for i in range(1, 12)]
    for old, new in id_map.items():
        node = shuffled.get(new)
        assert node.name == tax.get(old).name
        assert node.key == old
        assert shuffled.by_key(old).id == new
        if tax.parent(old):
            assert shuffled.parent(new).name == tax.parent(old).name
    assert tax.shuffled(seed=7) == (shuffled, id_map)
    assert tax.shuffled(seed=8)[1] != id_map
    inverse = {v: k for k, v in id_map.items()}
    assert [inverse[n.id] for n in shuffled.nodes()] != tax.ids()


def test_hide_then_renumber_closes_gaps():
    tax = load_taxonomy("default")
    dense, id_map = tax.without(["C2"]).renumbered()
    assert [c.id for c in dense.categories] == [f"C{i}" for i in range(1, 11)]
    assert id_map["C3"] == "C2" and id_map["C11S2"] == "C10S2"
    assert dense.get("C2").key == "C3"


def test_own_schema_round_trip(tmp_path):
    tax = load_taxonomy("default")
    out = tmp_path / "t.yaml"
    dump_taxonomy(tax, out)
    again = load_taxonomy(out)
    assert [(n.id, n.name, n.description, n.synonyms) for n in again.nodes()] == [
        (n.id, n.name, n.description, n.synonyms) for n in tax.nodes()
    ]


@pytest.mark.parametrize(
    "data, message",
    [
        ({"categories": []}, "non-empty list"),
        ({"categories": [{"description": "x"}]}, r"categories\[0\]: missing or empty 'name'"),
        ({"categories": [{"name": "A", "synonyms": "oops"}]}, r"categories\[0\]\.synonyms: must be a list"),
        ({"categories": [{"name": "A", "subcategories": [{"name": ""}]}]}, r"categories\[0\]\.subcategories\[0\]"),
        ({"categories": [{"name": "A"}, {"name": "a"}]}, "duplicate name"),
        ([{"name": "no category key"}], r"categories\[0\]: missing or empty 'category'"),
        ({"something": 1}, "unrecognised taxonomy"),
    ],
)
def test_bad_taxonomy_files_name_the_place(tmp_path, data, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(TaxonomyError, match=message) as info:
        load_taxonomy(path)
    assert str(path) in str(info.value)


def test_unknown_source_lists_bundled_names():
    with pytest.raises(TaxonomyError, match="default"):
        load_taxonomy("no-such-policy")


def test_taxonomy_is_immutable():
    tax = load_taxonomy("default")
    with pytest.raises(Exception):
        tax.categories = ()  # type: ignore[misc]
    assert isinstance(tax, Taxonomy)
