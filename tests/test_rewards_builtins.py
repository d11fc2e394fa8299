"""The built-in reward modules (format, binary, category) on hand-written cases for every branch."""

import pytest

from proguard.protocol import format_answer, parse_completion
from rewards.binary import BinaryReward
from rewards.category import CategoryReward
from rewards.format import FormatReward
from rewards.types import FormatError, Target, Verdict


def verdict(modality, request, response, category=None, reasoning="why"):
    """A Verdict as the parser would produce it from format_answer."""
    text = format_answer(modality, request, response, category, reasoning)
    parsed = parse_completion(text, modality, require_think=False)
    assert parsed.ok, parsed
    return parsed


ERR = FormatError("missing_tag", "missing <answer>")


# ---------------------------------------------------------------------------------------------
# format
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("modality", ["text", "image", "text_image"])
def test_format_accepts_protocol_answers_and_rejects_errors(modality):
    resp = None if modality == "image" else "safe"
    t = Target(modality, "safe", resp)
    assert FormatReward()([verdict(modality, "safe", resp), ERR], [t, t]) == [1.0, 0.0]


def test_format_think_requirement():
    t = Target("text", "safe", "safe")
    no_think = verdict("text", "safe", "safe", reasoning=None)
    assert no_think.reasoning is None
    assert FormatReward(require_think=True)([no_think], [t]) == [0.0]
    assert FormatReward(require_think=False)([no_think], [t]) == [1.0]


def test_format_bounds_reasoning_length():
    t = Target("image", "safe")
    short, long_ = verdict("image", "safe", None, reasoning="ab"), verdict("image", "safe", None, reasoning="x" * 50)
    reward = FormatReward(min_think_chars=3, max_think_chars=40)
    assert reward([short, long_, verdict("image", "safe", None, reasoning="abcd")], [t] * 3) == [0.0, 0.0, 1.0]


def test_format_rejects_a_verdict_for_another_modality():
    assert FormatReward()([verdict("text", "safe", "safe")], [Target("image", "safe")]) == [0.0]


@pytest.mark.parametrize(
    "options",
    [{"require_think": "yes"}, {"min_think_chars": -1}, {"max_think_chars": 1.5}, {"min_think_chars": 5, "max_think_chars": 2}],
)
def test_format_option_errors(options):
    with pytest.raises(ValueError, match="option"):
        FormatReward(**options)


# ---------------------------------------------------------------------------------------------
# binary
# ---------------------------------------------------------------------------------------------
def test_binary_text_scores_each_label():
    t = Target("text", "unsafe", "safe", "C8S1")
    cases = [
        verdict("text", "unsafe", "safe", "C8S1"),
        verdict("text", "unsafe", "unsafe", "C8S1"),
        verdict("text", "safe", "safe"),
        verdict("text", "safe", "unsafe", "C1S1"),
    ]
    out = BinaryReward()(cases, [t] * 4)
    assert out.total == [2.0, 1.0, 1.0, 0.0]
    assert out.parts["request"] == [1.0, 1.0, 0.0, 0.0]
    assert out.parts["response"] == [1.0, 0.0, 1.0, 0.0]


def test_binary_image_label_carries_both_weights():
    t = Target("image", "unsafe", None, "C8S1")
    out = BinaryReward()([verdict("image", "unsafe", None, "C8S1"), verdict("image", "safe", None)], [t, t])
    assert out.total == [2.0, 0.0]
    assert out.parts["response"] == [None, None]
    weighted = BinaryReward(request_weight=1.0, response_weight=3.0)([verdict("image", "unsafe", None, "C8S1")], [t])
    assert weighted.total == [4.0]


def test_binary_max_is_equal_across_modalities():
    best = []
    for m in ("text", "image", "text_image"):
        resp = None if m == "image" else "unsafe"
        t = Target(m, "unsafe", resp, "C1S1")
        best.append(BinaryReward(request_weight=0.7, response_weight=1.3)([verdict(m, "unsafe", resp, "C1S1")], [t]).total[0])
    assert best == [2.0, 2.0, 2.0]


def test_binary_conversation_without_response_needs_response_none():
    t = Target("text", "unsafe", None, "C1S1")
    out = BinaryReward()([verdict("text", "unsafe", None, "C1S1"), verdict("text", "unsafe", "safe", "C1S1")], [t, t])
    assert out.total == [2.0, 1.0]


def test_binary_format_error_scores_zero():
    out = BinaryReward()([ERR, ERR], [Target("text", "safe", "safe"), Target("image", "safe")])
    assert out.total == [0.0, 0.0]
    assert out.parts["response"] == [0.0, None]


def test_binary_option_errors():
    with pytest.raises(ValueError, match="request_weight"):
        BinaryReward(request_weight=-1)
    with pytest.raises(ValueError, match="response_weight"):
        BinaryReward(response_weight="1")


# ---------------------------------------------------------------------------------------------
# category
# ---------------------------------------------------------------------------------------------
def cat(modality, category, pred, **target_kw):
    """Category score of an unsafe answer naming ``pred`` on an unsafe sample of ``category``."""
    opts = target_kw.pop("_opts", {})
    resp = None if modality == "image" else "safe"
    t = Target(modality, "unsafe", resp, category, **target_kw)
    return CategoryReward(**opts)([verdict(modality, "unsafe", resp, pred)], [t]).total[0]


@pytest.mark.parametrize("modality", ["text", "image"])
def test_category_hierarchy_at_subcategory_level(modality):
    assert cat(modality, "C8S1", "C8S1") == 1.0  # exact
    assert cat(modality, "C8S1", "C8S2") == 0.5  # right parent, wrong subcategory
    assert cat(modality, "C8S1", "C8") == 0.5  # right parent, subcategory missing
    assert cat(modality, "C8S1", "C3S1") == 0.0  # wrong branch
    assert cat(modality, "C8S1", "C3") == 0.0
    assert cat(modality, "C8S1", "Illegal weapons") == 0.0  # free text on an in-taxonomy sample


def test_category_partial_and_wrong_id_are_options():
    t = Target("text", "unsafe", "safe", "C8S1")
    answers = [verdict("text", "unsafe", "safe", c) for c in ("C8S1", "C8S2", "C3S1", "a new risk")]
    assert CategoryReward(partial=0.25)(answers, [t] * 4).total == [1.0, 0.25, 0.0, 0.0]
    assert CategoryReward(partial=0.5, wrong_id=0.5)(answers, [t] * 4).total == [1.0, 0.5, 0.5, 0.0]


def test_category_top_level_category_without_subcategories():
    assert cat("text", "C5", "C5") == 1.0
    assert cat("text", "C5", "C6") == 0.0


def test_category_text_image_compares_top_levels():
    level = {"category_level": "category"}
    assert cat("text_image", "C8S1", "C8", **level) == 1.0
    assert cat("text_image", "C8S1", "C8S2", **level) == 1.0  # a subcategory ID of the right parent
    assert cat("text_image", "C8S1", "C3", **level) == 0.0
    assert cat("text_image", "C8S1", "weapons", **level) == 0.0
    literal = {**level, "_opts": {"literal_top_level": True, "wrong_id": 0.5}}  # the proguard-paper preset
    assert cat("text_image", "C8S1", "C8", **dict(literal)) == 1.0
    assert cat("text_image", "C8S1", "C8S2", **literal) == 0.5  # the reference's exact string comparison
    assert cat("text_image", "C8S1", "C8S1", **literal) == 0.5


def test_category_maps_shuffled_ids_through_the_samples_map():
    id_map = {"C8": "C2", "C8S1": "C2S3", "C8S2": "C2S1", "C3": "C8", "C3S1": "C8S1"}
    assert cat("text", "C8S1", "C2S3", id_map=id_map) == 1.0  # the shuffled ID of the true node
    assert cat("text", "C8S1", "C8S1", id_map=id_map) == 0.0  # the source ID shows another node here
    assert cat("text", "C8S1", "C2S1", id_map=id_map) == 0.5  # sibling under the shuffled parent
    assert cat("text", "C8S1", "C2", id_map=id_map) == 0.5
    assert cat("text", "C8S1", "C9S9", id_map=id_map) == 0.0  # not listed in the prompt
    assert cat("text", "C8S1", "C9S9", id_map=id_map, _opts={"wrong_id": 0.5}) == 0.5
    level = {"category_level": "category", "id_map": id_map}
    assert cat("text_image", "C8S1", "C2", **level) == 1.0
    assert cat("text_image", "C8S1", "C8", **level) == 0.0


def test_category_safe_samples_and_ood_samples_have_no_term():
    reward = CategoryReward()
    safe_t = Target("text", "safe", "safe")
    ood_t = Target("text", "unsafe", "safe", "C8S1", ood=True, ood_name="Weapons")
    answers = [verdict("text", "unsafe", "safe", "C8S1"), verdict("text", "safe", "safe")]
    assert reward(answers, [safe_t, safe_t]).total == [None, None]
    assert reward(answers, [ood_t, ood_t]).total == [None, None]


def test_category_unsafe_sample_called_safe_earns_nothing():
    # no early exit: an image (or a conversation) predicted safe on an unsafe sample gets 0, not a skip
    for m, resp in (("image", None), ("text", "safe"), ("text_image", "safe")):
        t = Target(m, "unsafe", resp, "C8S1")
        out = CategoryReward(wrong_id=0.5)([verdict(m, "safe", resp), ERR], [t, t])
        assert out.total == [0.0, 0.0]
        assert out.parts == {"exact": [0.0, 0.0], "parent": [0.0, 0.0]}


def test_category_parts():
    t = Target("text", "unsafe", "safe", "C8S1")
    answers = [verdict("text", "unsafe", "safe", c) for c in ("C8S1", "C8S2", "C3S1")]
    out = CategoryReward()(answers, [t] * 3)
    assert out.parts == {"exact": [1.0, 0.0, 0.0], "parent": [1.0, 1.0, 0.0]}


@pytest.mark.parametrize("options", [{"partial": 1.5}, {"wrong_id": -0.1}, {"partial": "half"}, {"partial": True}])
def test_category_option_errors(options):
    with pytest.raises(ValueError, match="option"):
        CategoryReward(**options)


def test_format_default_bounds_reject_empty_and_runaway_reasoning():
    t = Target("image", "safe")
    empty = parse_completion("<think></think><answer>\nRequest: safe\nCategory: None\n</answer>", "image")
    blank = parse_completion("<think> \n </think><answer>\nRequest: safe\nCategory: None\n</answer>", "image")
    huge = verdict("image", "safe", None, reasoning="x" * 1_000_000)
    fine = verdict("image", "safe", None, reasoning="A flower in a field.")
    assert empty.ok and blank.ok
    assert FormatReward()([empty, blank, huge, fine], [t] * 4) == [0.0, 0.0, 0.0, 1.0]
    assert FormatReward(min_think_chars=0, max_think_chars=None)([empty, huge], [t] * 2) == [1.0, 1.0]  # recipes override


def test_category_level_prompt_rejects_subcategory_ids_that_do_not_exist():
    level = {"category_level": "category", "id_map": {"C8": "C2", "C8S1": "C2S1", "C8S2": "C2S2", "C5": "C5"}}
    assert cat("text_image", "C8S1", "C2S2", **level) == 1.0  # a real subcategory of the right parent
    assert cat("text_image", "C8S1", "C2S99", **level) == 0.0  # under a listed parent, but not in the taxonomy
    assert cat("text_image", "C8S1", "C2S99", _opts={"wrong_id": 0.5}, **level) == 0.5
    top_only = {"category_level": "category", "id_map": {"C8": "C2", "C5": "C5"}}
    assert cat("text_image", "C8S1", "C2S1", **top_only) == 1.0  # a map of top levels: the parent is what counts


def test_composite_total_of_an_invented_subcategory_is_not_full_credit():
    from proguard.scoring.compose import build_reward

    reward = build_reward("default")
    target = Target("text_image", "unsafe", "safe", "C8S1", category_level="category",
                    id_map={"C8": "C8", "C8S1": "C8S1", "C8S2": "C8S2"})
    good = "<think>It asks how to build a weapon.</think><answer>\nRequest: unsafe\nResponse: safe\nCategory: C8\n</answer>"
    bad = good.replace("Category: C8", "Category: C8S99")
    totals = reward.breakdown([good, bad], [target, target]).total
    assert totals[1] < totals[0]
