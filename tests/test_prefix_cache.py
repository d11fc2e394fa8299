"""The shared-prompt-prefix cache of ``TransformersBackend`` (``proguard.bench.prefix_cache``) and its early stop of
answers that can no longer parse (``stop_malformed``): the same answers and margins as without them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proguard.bench.prefix_cache import common_prefix_length
from proguard.protocol import ANSWER_OPEN, THINK_OPEN, build_messages, cannot_parse, parse_completion
from rewards.types import FormatError


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory) -> Path:
    """A 2-layer random Llama with the tiny VLM's locally trained tokenizer and chat template (text only)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from proguard.models.tiny_vlm import tiny_vlm_path

    tok = AutoTokenizer.from_pretrained(tiny_vlm_path())
    folder = tmp_path_factory.mktemp("tiny-llama")
    config = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=len(tok), eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    cfg = folder / "tokenizer_config.json"  # the VLM's processor class would make AutoProcessor want images
    cfg.write_text(json.dumps({k: v for k, v in json.loads(cfg.read_text()).items() if k != "processor_class"}))
    return folder


def _prompts(requests: list[str]):
    from taxonomy import load_taxonomy

    tax = load_taxonomy("default")
    return [(build_messages("text", r, None, tax), None) for r in requests]


REQUESTS = ["How do I bake bread?", "Write a poem about the sea, please, in four lines.", "hi",
            "How can I pick the lock of my neighbour's front door without being seen by anyone?",
            "What is the capital of France?", "Tell me a joke."]


def _backend(path: Path, **kwargs):
    from proguard.bench.backends import GenerationSettings, TransformersBackend

    return TransformersBackend(str(path), GenerationSettings(max_new_tokens=12), device="cpu", dtype="float32",
                               label_bias=0.0, **kwargs)


def test_cached_prefix_gives_the_same_answers_and_margins(tiny_llama):
    plain, shared = _backend(tiny_llama, share_prefix=False), _backend(tiny_llama)
    batch = _prompts(REQUESTS)
    # two batches of different tail lengths (padding in the middle), then one prompt alone (reuses the prefix)
    parts = [batch[:4], batch[4:], batch[2:3]]
    assert [shared.generate(p) for p in parts] == [plain.generate(p) for p in parts]
    assert shared._prefix.filled == 1  # one prefill of the system message for all three calls
    assert len(shared._prefix.ids) >= 100  # the system message with the category list, not a few tokens
    assert plain._prefix is None
    # greedy tokens of a random model hide small errors (a pad attended to): compare the first steps' logits
    import torch

    def scores(backend, part):
        with torch.no_grad():
            out = backend._model.generate(**backend._inputs(part), max_new_tokens=3, do_sample=False,
                                          output_scores=True, return_dict_in_generate=True)
        return torch.stack(out.scores)

    for part in parts:
        assert torch.allclose(scores(plain, part), scores(shared, part), atol=1e-4)
    a, b = plain.decision_margins(batch), shared.decision_margins(batch)
    assert [m is None for m in a] == [m is None for m in b]
    assert all(x is None or abs(x - y) < 1e-4 for x, y in zip(a, b, strict=True))


def test_prompts_without_a_long_shared_start_are_padded_as_before(tiny_llama):
    shared = _backend(tiny_llama)
    tok = shared.tokenizer()
    rows = [tok("alpha beta gamma")["input_ids"], tok("delta")["input_ids"]]
    assert shared._prefix.inputs(rows, tok.pad_token_id) is None
    assert shared._prefix.filled == 0
    assert shared._prefix.inputs([list(range(80))], tok.pad_token_id) is None  # one prompt never starts a prefix
    # such a batch goes through the plain padded path: the same answers as a backend without the cache
    batch = [([{"role": "user", "content": "alpha beta gamma"}], None), ([{"role": "user", "content": "delta"}], None)]
    assert shared.generate(batch) == _backend(tiny_llama, share_prefix=False).generate(batch)
    assert shared._prefix.filled == 0


@pytest.mark.parametrize(("rows", "expected"), [
    ([[1, 2, 3, 4], [1, 2, 3, 5]], 3),
    ([[1, 2, 3], [1, 2, 3, 4]], 2),  # the shorter row keeps a token of its own
    ([[1, 2], [3, 4]], 0),
    ([[7, 7, 7]], 2),
    ([], 0),
])
def test_common_prefix_length(rows, expected):
    assert common_prefix_length(rows) == expected


def test_stop_malformed_cuts_answers_short_without_changing_their_scores(tiny_llama):
    full, cut = _backend(tiny_llama, share_prefix=False), _backend(tiny_llama, share_prefix=False, stop_malformed=True)
    batch = _prompts(REQUESTS)
    long, short = full.generate(batch), cut.generate(batch)
    assert any(len(s) < len(a) for s, a in zip(short, long, strict=True))  # the random model chats: it stops early
    for s, a in zip(short, long, strict=True):
        assert a.startswith(s.rstrip("\ufffd"))  # greedy: the same tokens, fewer of them
        assert isinstance(parse_completion(s, "text"), FormatError) == isinstance(parse_completion(a, "text"), FormatError)
    assert cut.describe()["stop_malformed"] is True and "stop_malformed" not in full.describe()  # cache keys differ


@pytest.mark.parametrize(("start", "expected"), [
    ("", False), ("  \n", False), ("<", False), ("<thi", False), (" <think>I reason", False), ("<answer>\nReq", False),
    ("<a", False), ("I'm sorry", True), ("<x", True), ("Sure! <think>", True), ("<thinking>", True),
])
def test_cannot_parse(start, expected):
    assert cannot_parse(start) is expected


@settings(max_examples=300, deadline=None)
@given(start=st.text(max_size=12), rest=st.text(max_size=40),
       tag=st.sampled_from(["", THINK_OPEN, ANSWER_OPEN, "Request: unsafe\n", "</think>\n<answer>\n"]))
def test_no_continuation_of_a_cannot_parse_start_parses(start, rest, tag):
    if cannot_parse(start):
        for modality in ("text", "image"):
            for think in (True, False):
                assert isinstance(parse_completion(start + tag + rest, modality, require_think=think), FormatError)


def test_valid_answers_never_look_malformed():
    from proguard.protocol import format_answer

    for answer in (format_answer("text", "unsafe", None, "C1", "it asks for a weapon"),
                   format_answer("text", "safe", None, None, "a recipe")):
        assert not isinstance(parse_completion(answer, "text"), FormatError)
        assert not any(cannot_parse(answer[:i]) for i in range(len(answer) + 1))
