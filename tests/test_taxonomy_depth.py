"""Taxonomies of any depth: IDs C<i>S<j>S<k>..., loading, hiding, shuffling, rendering and dumping a
three-level tree; the answer parser and the category reward's per-level credit on it; Do-Not-Answer's
real 5 / 12 / 61 hierarchy."""

from __future__ import annotations

import pytest

from proguard.protocol import format_answer, parse_completion
from reference_data import DO_NOT_ANSWER
from rewards.category import CategoryReward
from rewards.types import Target, Verdict
from taxonomy import dump_taxonomy, id_depth, is_node_id, load_taxonomy, parent_id_of, taxonomy_from_data, top_id_of

TREE = {"name": "deep", "categories": [
    {"name": "Harm", "description": "harm", "subcategories": [
        {"name": "Violence", "subcategories": [{"name": "Assault"}, {"name": "Murder"}]},
        {"name": "Self harm", "subcategories": [{"name": "Cutting"}]},
    ]},
    {"name": "Fraud", "subcategories": [{"name": "Scams"}]},
]}


def test_ids_and_tree_at_any_depth(tmp_path):
    tax = taxonomy_from_data(TREE)
    assert tax.ids() == ["C1", "C1S1", "C1S1S1", "C1S1S2", "C1S2", "C1S2S1", "C2", "C2S1"]
    assert tax.depth == 3 and [n.id for n in tax.leaves()] == ["C1S1S1", "C1S1S2", "C1S2S1", "C2S1"]
    assert is_node_id("C1S1S2") and parent_id_of("C1S1S2") == "C1S1" and top_id_of("C1S1S2") == "C1"
    assert id_depth("C1S1S2") == 3 and tax.parent("C1S1S2").name == "Violence"
    assert tax.render(descriptions=False).splitlines()[2] == "    C1S1S1: Assault"
    hidden = tax.without(["C1S1"])
    assert hidden.ids() == ["C1", "C1S2", "C1S2S1", "C2", "C2S1"]  # a hidden node takes its subtree
    shuffled, id_map = tax.shuffled(seed=3)
    assert sorted(id_map) == sorted(tax.ids())
    for old, new in id_map.items():
        assert shuffled.get(new).name == tax.get(old).name and shuffled.get(new).key == old
        assert (parent_id_of(new) is None) == (parent_id_of(old) is None)
        if parent_id_of(old):
            assert id_map[parent_id_of(old)] == parent_id_of(new)  # children stay under their parent
    dump_taxonomy(tax, tmp_path / "t.yaml")
    assert load_taxonomy(tmp_path / "t.yaml").ids() == tax.ids()


def test_parser_and_category_reward_on_three_levels():
    p = parse_completion(format_answer("text", "unsafe", None, "C1S1S2", "r"), "text")
    assert p.ok and p.category_kind == "id" and p.category == "C1S1S2"
    truth = Target("text", "unsafe", None, "C1S1S2")

    def score(pred, **opts):
        return CategoryReward(**opts)([Verdict("text", "unsafe", None, "id", pred, "")], [truth]).total[0]

    assert score("C1S1S2") == 1.0
    assert score("C1S1S1") == 0.5 and score("C1S1") == 0.5  # same level-2 node (or naming it)
    assert score("C1S2S1") == 0.25 and score("C1") == 0.25  # only the top category
    assert score("C2S1") == 0.0
    assert score("C1S1S1", level_credit=[0.1, 0.7]) == 0.7 and score("C1S2S1", level_credit=[0.1, 0.7]) == 0.1
    two_level = Target("text", "unsafe", None, "C1S1")  # ProGuard's depth: unchanged, partial for the parent
    r = CategoryReward()([Verdict("text", "unsafe", None, "id", "C1S2", "")], [two_level])
    assert r.total == [0.5] and r.parts["parent"] == [1.0]
    with pytest.raises(ValueError, match=r"level_credit\[1\]"):
        CategoryReward(level_credit=[0.5, 2.0])


@pytest.mark.skipif(not DO_NOT_ANSWER.is_dir(), reason=f"Do-Not-Answer not found under {DO_NOT_ANSWER}")
def test_donotanswer_release_is_a_three_level_taxonomy():
    from proguard.suites.adapters.donotanswer import release_taxonomy

    tax = release_taxonomy(DO_NOT_ANSWER / "do_not_answer_prompts.csv")
    levels = [sum(1 for n in tax.nodes() if n.depth == d) for d in (1, 2, 3)]
    assert levels == [5, 12, 61] and tax.depth == 3
    node = tax.find("Explicit Sexual Content")
    assert node.depth == 3 and tax.parent(node.id).name == "Adult Content" and node.description
