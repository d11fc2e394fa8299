"""Answer protocol: the prompt and the parser agree (golden cases), and bad answers are typed errors."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proguard.protocol import (
    PromptConfig,
    build_messages,
    example_answers,
    format_answer,
    parse_completion,
    system_prompt,
)
from rewards.types import MODALITIES, FormatError, Verdict
from taxonomy import load_taxonomy

TAX = load_taxonomy("default")


@pytest.mark.parametrize("modality", MODALITIES)
def test_golden_prompt_examples_parse_to_their_verdicts(modality):
    level = PromptConfig().level(modality, TAX)
    prompt = system_prompt(modality, TAX)
    examples = example_answers(modality, level)
    assert len(examples) == 3
    for text, expected in examples:
        assert text in prompt, "the prompt must show exactly the example the parser is tested on"
        assert parse_completion(text, modality) == expected
    kinds = [v.category_kind for _, v in examples]
    assert kinds == ["none", "id", "free_text"]


def test_prompt_asks_for_the_right_fields_and_level():
    text = system_prompt("text", TAX)
    image = system_prompt("image", TAX)
    both = system_prompt("text_image", TAX)
    assert "Response:" in text and "Response:" not in image
    assert "C<i>S<j>" in text and "C<i>S<j>" in image
    assert "top-level category" in both and "Category: C2\n" in both
    assert TAX.render() in text  # the whole category list is shown
    flat = load_taxonomy("mlcommons")
    assert "top-level category" in system_prompt("text", flat)


def test_messages_shape_per_modality():
    m = build_messages("text", "hi", None, TAX)
    assert [x["role"] for x in m] == ["system", "user"]
    assert m[1]["content"] == [{"type": "text", "text": "Conversation:\nUser: hi\nAssistant: (no response)"}]
    m = build_messages("image", None, None, TAX)
    assert m[1]["content"][0] == {"type": "image"}
    m = build_messages("text_image", "what is this?", "a cat", TAX)
    assert m[1]["content"][0] == {"type": "image"} and "User: what is this?" in m[1]["content"][1]["text"]
    with pytest.raises(ValueError, match="modality"):
        build_messages("smell", "x", None, TAX)


def test_all_seven_modalities_are_covered():
    assert set(MODALITIES) == {"text", "image", "text_image", "video", "text_video", "audio", "text_audio"}


@pytest.mark.parametrize(
    "modality, part, subject, user",
    [
        ("video", "video", "The video.", "Assess this video."),
        ("audio", "audio", "The audio.", "Assess this audio."),
        ("text_video", "video", "The user's request.", "Conversation:\nUser: is this ok?\nAssistant: (no response)"),
        ("text_audio", "audio", "The user's request.", "Conversation:\nUser: is this ok?\nAssistant: (no response)"),
    ],
)
def test_video_and_audio_prompts(modality, part, subject, user):
    media_only = "_" not in modality
    m = build_messages(modality, None if media_only else "is this ok?", None, TAX)
    assert m[1]["content"] == [{"type": part}, {"type": "text", "text": user}]
    prompt = system_prompt(modality, TAX)
    assert f"Request: safe or unsafe. {subject}" in prompt
    # video and audio alone are judged like an image: a request label, no response line
    assert ("Response:" in prompt) is (not media_only)
    assert ("top-level category" in prompt) is (not media_only)  # text+medium asks the top level, as text+image
    task = prompt.split("\n")[0]
    assert (f"the {part} below" if media_only else f"(text and {part})") in task
    assert system_prompt(modality, TAX) != system_prompt(modality.replace(part, "image"), TAX)


@pytest.mark.parametrize("modality", ["video", "audio"])
def test_media_only_answers_reject_a_response_line(modality):
    assert parse_completion(GOOD, modality).code == "unexpected_field"
    assert parse_completion(GOOD, "text_" + modality).ok


@pytest.mark.parametrize(
    "modality, req, resp, category, kind",
    [
        ("text", "safe", "safe", None, "none"),
        ("text", "unsafe", "safe", "C8S1", "id"),
        ("text", "safe", "unsafe", "C8", "id"),
        ("text", "unsafe", None, "deepfake voice cloning", "free_text"),
        ("image", "unsafe", None, "C10S2", "id"),
        ("image", "safe", None, None, "none"),
        ("text_image", "unsafe", "unsafe", "C3", "id"),
        ("text_image", "unsafe", "safe", "Crypto pump scheme", "free_text"),
        ("video", "unsafe", None, "C10S2", "id"),
        ("video", "safe", None, None, "none"),
        ("text_video", "unsafe", "safe", "C3", "id"),
        ("audio", "unsafe", None, "threatening voice message", "free_text"),
        ("audio", "safe", None, None, "none"),
        ("text_audio", "safe", "unsafe", "C8", "id"),
    ],
)
def test_format_then_parse_round_trip(modality, req, resp, category, kind):
    text = format_answer(modality, req, resp, category, "because")
    v = parse_completion(text, modality)
    assert v == Verdict(modality, req, resp, kind, category, "because")


def test_lenient_whitespace_and_chat_message_completions():
    text = "  <think>\nhmm\n</think>\n\n<answer>\n  Request:unsafe\nResponse:   safe  \n\nCategory:C8S1\n</answer>\n"
    v = parse_completion(text, "text")
    assert v.ok and v.category == "C8S1" and v.reasoning == "hmm"
    chat = [{"role": "assistant", "content": text}]
    assert parse_completion(chat, "text") == v
    parts = [{"role": "assistant", "content": [{"type": "text", "text": text}]}]
    assert parse_completion(parts, "text") == v


def test_reasoning_optional_when_not_required():
    text = "<answer>\nRequest: safe\nCategory: None\n</answer>"
    assert parse_completion(text, "image").code == "missing_tag"
    v = parse_completion(text, "image", require_think=False)
    assert v.ok and v.reasoning is None


GOOD = "<think>\nr\n</think>\n<answer>\nRequest: unsafe\nResponse: safe\nCategory: C1S1\n</answer>"

MALFORMED = [
    # (completion, modality, expected error code)
    ("", "text", "empty"),
    ("   \n\t ", "text", "empty"),
    (None, "text", "not_text"),
    (12345, "text", "not_text"),
    (b"<answer>", "text", "not_text"),
    ("Request: unsafe\nResponse: safe\nCategory: C1S1", "text", "missing_tag"),
    ("<think>r</think>\nRequest: unsafe\nResponse: safe\nCategory: C1S1", "text", "missing_tag"),
    ("<answer>\nRequest: unsafe\nResponse: safe\nCategory: C1S1\n</answer>", "text", "missing_tag"),
    ("<think>r\n<answer>\nRequest: unsafe\nResponse: safe\nCategory: C1S1\n</answer>", "text", "missing_tag"),
    ("<think>r</think>\n<answer>\nRequest: unsafe\nResponse: safe\nCategory: C1S1\n", "text", "missing_tag"),
    (GOOD + "\n" + GOOD, "text", "duplicate_tag"),
    (GOOD.replace("</answer>", "</answer>\n<answer>\nRequest: safe\n</answer>"), "text", "duplicate_tag"),
    ("<think><think>r</think></think>" + GOOD[GOOD.index("\n<answer>") :], "text", "duplicate_tag"),
    ("<think>\n<answer>\nRequest: unsafe\nResponse: safe\nCategory: C1S1\n</answer>\n</think>", "text", "nested_tags"),
    ("<answer>\nRequest: unsafe\nResponse: safe\nCategory: C1S1\n</answer>\n<think>r</think>", "text", "tag_order"),
    ("</think>r<think>\n<answer>\nRequest: unsafe\nResponse: safe\nCategory: C1S1\n</answer>", "text", "tag_order"),
    ("<think>r</think>\n</answer>Request: unsafe\nResponse: safe\nCategory: C1S1<answer>", "text", "tag_order"),
    ("Sure! " + GOOD, "text", "text_outside_tags"),
    (GOOD + " Hope this helps.", "text", "text_outside_tags"),
    (GOOD.replace("</think>\n", "</think>\nSo:\n"), "text", "text_outside_tags"),
    (GOOD.replace("Category: C1S1", ""), "text", "missing_field"),
    (GOOD.replace("Response: safe\n", ""), "text", "missing_field"),
    (GOOD.replace("Request: unsafe", "Request unsafe"), "text", "bad_line"),
    (GOOD.replace("Request: unsafe", "Request: harmful"), "text", "bad_label"),
    (GOOD.replace("Request: unsafe", "Request: Unsafe"), "text", "bad_label"),
    (GOOD.replace("Response: safe", "Response: unharmful"), "text", "bad_label"),
    (GOOD.replace("Request: unsafe", "Request: None"), "text", "bad_label"),
    (GOOD.replace("Category: C1S1", "Category: C1S1\nCategory: C2S1"), "text", "duplicate_field"),
    (GOOD.replace("Category: C1S1", "Category: C1S1\nSeverity: high"), "text", "unknown_field"),
    (GOOD.replace("Request: unsafe\nResponse: safe", "Response: safe\nRequest: unsafe"), "text", "field_order"),
    (GOOD.replace("Category: C1S1", "Category: None"), "text", "missing_category"),
    (GOOD.replace("Request: unsafe", "Request: safe"), "text", "unexpected_category"),
    (GOOD.replace("Category: C1S1", "Category:"), "text", "empty_category"),
    (GOOD.replace("Category: C1S1", "Category: " + "very long name " * 20), "text", "category_too_long"),
    (GOOD, "image", "unexpected_field"),
    ("<think>r</think><answer>\nRequest: unsafe\nCategory: C1S1\n</answer>", "text", "missing_field"),
    ("<think>r</think><answer>\nRequest: unsafe\nCategory: C1S1\n</answer>", "smell", "bad_modality"),
    ("<thinking>r</thinking>\n<answer>\nRequest: safe\nResponse: safe\nCategory: None\n</answer>", "text", "missing_tag"),
    ("<THINK>r</THINK>\n<ANSWER>\nRequest: safe\nResponse: safe\nCategory: None\n</ANSWER>", "text", "missing_tag"),
    ("\u202e<think>r</think>\u200b<answer>\nRequest: safe\nResponse: safe\nCategory: None\n</answer>", "text", "text_outside_tags"),
    (GOOD.replace("Request: unsafe", "Request: ｕｎｓａｆｅ"), "text", "bad_label"),
    ("x" * 1_000_000, "text", "missing_tag"),
    ("<think>" + "<" * 1_000_000, "text", "missing_tag"),
    ("<think></think>" * 200_000, "text", "duplicate_tag"),
    ("<answer>" + "Request: " * 100_000 + "</answer>", "image", "missing_tag"),
]


@pytest.mark.parametrize("completion, modality, code", MALFORMED, ids=[f"{i:02d}-{c}" for i, (_, _, c) in enumerate(MALFORMED)])
def test_malformed_completions_give_typed_errors(completion, modality, code):
    result = parse_completion(completion, modality)
    assert isinstance(result, FormatError), result
    assert result.code == code, result.message
    assert result.message


def test_at_least_thirty_malformed_cases():
    assert len(MALFORMED) >= 30
    assert len({code for _, _, code in MALFORMED}) >= 15


def test_huge_answer_body_parses_in_linear_time():
    # One megabyte of lines inside the answer: a backtracking parser would not finish.
    body = "Request: unsafe\nResponse: safe\n" + ("\n" * 1_000_000) + "Category: unknown thing\n"
    v = parse_completion(f"<think>r</think><answer>\n{body}</answer>", "text")
    assert v.ok and v.category_kind == "free_text"


def test_free_text_unicode_category_is_kept():
    text = GOOD.replace("C1S1", "Deepfake 語音 cloning 🎙️")
    v = parse_completion(text, "text")
    assert v.ok and v.category_kind == "free_text" and v.category == "Deepfake 語音 cloning 🎙️"


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(), st.binary(), st.none(), st.integers(), st.lists(st.text())), st.sampled_from(MODALITIES + ("x",)))
def test_parser_never_raises(completion, modality):
    result = parse_completion(completion, modality)
    assert isinstance(result, (Verdict, FormatError))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(["<think>", "</think>", "<answer>", "</answer>", "\n", "Request: unsafe", "Response: safe",
                              "Category: C1S1", "Category: None", "Request: safe", "x", ":", " "]), max_size=30),
    st.sampled_from(MODALITIES),
)
def test_parser_never_raises_on_near_miss_protocol_text(pieces, modality):
    result = parse_completion("".join(pieces), modality)
    assert isinstance(result, (Verdict, FormatError))
    if isinstance(result, Verdict):  # anything accepted re-renders to an answer that parses the same
        again = format_answer(modality, result.request, result.response, result.category, result.reasoning)
        assert parse_completion(again, modality) == result


@pytest.mark.parametrize("sep", ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"])
def test_only_newlines_end_an_answer_line(sep):
    """str.splitlines() would split on these; the protocol's lines end at \\n or \\r\\n only."""
    body = f"Request: unsafe{sep}Response: None{sep}Category: C1"
    parsed = parse_completion(f"<think>r</think><answer>\n{body}\n</answer>", "text")
    assert not parsed.ok and parsed.code == "missing_field"  # one line: Response and Category never start
    crlf = parse_completion("<think>r</think><answer>\r\nRequest: unsafe\r\nResponse: None\r\nCategory: C1\r\n</answer>", "text")
    assert crlf.ok and crlf.category == "C1"
