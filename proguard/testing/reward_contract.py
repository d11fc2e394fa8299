"""The reward contract kit: run it on your reward module before you train with it.

    # pip install 'proguard[testing]'   (the kit's one extra dependency: hypothesis)
    from proguard.testing.reward_contract import check_reward
    report = check_reward(MyReward(), n=1000)   # raises ContractViolation on the first breach

It feeds the module hand-written answers for every modality and then ``n`` hypothesis-generated
batches of hostile completions (random text, near-miss protocol answers, huge strings, unicode,
nested and repeated tags, ``None`` and other non-strings, chat-message lists) against random
targets (all modalities, shuffled ID maps, safe and unsafe, OOD), and checks that the module:

* never raises;
* returns one finite float or ``None`` per completion (and the same for each named part);
* is deterministic (the same batch scores the same twice, and after a pickle round trip);
* gives the same scores when run through ``CompositeReward`` the way TRL calls it.

The strategies (``hostile_completions``, ``targets``, ``batches``) are public, for a plugin
author's own property tests.
"""

from __future__ import annotations

import functools
import json
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

try:
    from hypothesis import HealthCheck, given, seed, settings
    from hypothesis import strategies as st
except ImportError:  # the kit is opt-in: a plain install trains and scores without hypothesis
    raise ImportError(
        "the reward contract kit needs hypothesis, which a plain install leaves out: pip install 'proguard[testing]'"
    ) from None

from proguard.protocol import ANSWER_CLOSE, ANSWER_OPEN, THINK_CLOSE, THINK_OPEN, format_answer
from proguard.scoring.compose import Component, CompositeReward, _check_output, parse_batch
from rewards.types import MODALITIES, Target, has_response
from taxonomy import Taxonomy, load_taxonomy

_TAGS = [THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE, "<thinking>", "</thinking>", "<answer/>", "<think/>"]
_WORDS = ["Request:", "Response:", "Category:", "safe", "unsafe", "None", "C1", "C8S1", "C99S99", "\n", " ", ":"]
_ODD = ["\x00", "\u202e", "\ufeff", "\u200b", "\r\n", "\r", "\t", "\U0001f600", "\u0301", "Ａ", "İ", "ß", "\x85", "\u2028"]


class ContractViolation(AssertionError):
    """A reward module broke the contract; the message shows the completion and target that did it."""


@dataclass
class ContractReport:
    """What ``check_reward`` exercised."""

    examples: int = 0
    completions: int = 0
    hostile: int = 0
    """Completions other than the target's correct protocol answer."""
    non_text: int = 0
    modalities: set[str] = field(default_factory=set)
    format_errors: set[str] = field(default_factory=set)
    none_scores: int = 0


# ---------------------------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _default_taxonomy() -> Taxonomy:
    return load_taxonomy("default")


def _taxonomy(taxonomy: Taxonomy | None) -> Taxonomy:
    return taxonomy if taxonomy is not None else _default_taxonomy()


@functools.lru_cache(maxsize=256)
def _shuffled_map(tax: Taxonomy, seed_value: int) -> dict[str, str]:
    return tax.shuffled(seed_value)[1]


def targets(taxonomy: Taxonomy | None = None) -> st.SearchStrategy[Target]:
    """Valid ground truth for every modality: safe/unsafe, both category levels, ID maps, OOD."""
    return _targets(_taxonomy(taxonomy))


@st.composite
def _targets(draw: st.DrawFn, tax: Taxonomy) -> Target:
    modality = draw(st.sampled_from(MODALITIES))
    request = draw(st.sampled_from(["safe", "unsafe"]))
    response = None if not has_response(modality) else draw(st.sampled_from([None, "safe", "unsafe"]))
    unsafe = "unsafe" in (request, response)
    category = draw(st.sampled_from([n.key or n.id for n in tax.nodes()])) if unsafe else None
    id_map: dict[str, str] = {}
    if draw(st.booleans()):
        id_map = dict(_shuffled_map(tax, draw(st.integers(0, 255))))
        if draw(st.booleans()) and category is not None:  # hide the sample's own node
            id_map = {k: v for k, v in id_map.items() if k != category}
    ood = unsafe and draw(st.booleans())
    name = draw(st.sampled_from([n.name for n in tax.nodes()]) | st.text(min_size=1, max_size=30)) if ood else None
    if name is not None and not name.strip():
        name = "x" + name
    synonyms = tuple(draw(st.lists(st.text(max_size=30), max_size=5))) if ood else ()
    return Target(
        modality=modality,
        request_label=request,
        response_label=response,
        category=category,
        category_level=draw(st.sampled_from(["subcategory", "category"])),
        id_map=id_map,
        ood=ood,
        ood_name=name,
        ood_synonyms=synonyms,
    )


def near_miss_answers(taxonomy: Taxonomy | None = None) -> st.SearchStrategy[str]:
    """A protocol answer (any modality, any labels and category), often mutated a little."""
    return _near_miss(_taxonomy(taxonomy))


@st.composite
def _near_miss(draw: st.DrawFn, tax: Taxonomy) -> str:
    modality = draw(st.sampled_from(MODALITIES))
    labels = st.sampled_from(["safe", "unsafe", "Safe", "UNSAFE", "", "maybe"])
    category = draw(
        st.none()
        | st.sampled_from(tax.ids() + ["C0", "C99", "C1S99", "c1s1", "C1 S1", "None", ""])
        | st.text(max_size=40)
    )
    reasoning = draw(st.none() | st.text(max_size=60))
    text = format_answer(modality, draw(labels), draw(st.none() | labels), category, reasoning)
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["delete", "duplicate", "insert", "case", "strip_newlines", "spaces"]))
        i = draw(st.integers(0, len(text)))
        j = draw(st.integers(i, min(len(text), i + 20)))
        if kind == "delete":
            text = text[:i] + text[j:]
        elif kind == "duplicate":
            text = text[:j] + text[i:j] + text[j:]
        elif kind == "insert":
            piece = draw(st.sampled_from(_TAGS + _WORDS + _ODD) | st.text(max_size=10))
            text = text[:i] + piece + text[i:]
        elif kind == "case":
            text = text[:i] + text[i:j].swapcase() + text[j:]
        elif kind == "strip_newlines":
            text = text.replace("\n", "")
        else:
            text = text.replace(":", " : ").replace("\n", " \n  ")
    return text


@st.composite
def nested_tags(draw: st.DrawFn) -> str:
    """Tags nested, repeated, unclosed or out of order, with protocol words between them."""
    pieces = draw(st.lists(st.sampled_from(_TAGS + _WORDS + _ODD) | st.text(max_size=8), min_size=1, max_size=40))
    return "".join(pieces)


def _huge(unit: str, times: int) -> str:
    return (unit or "x") * times


def _chat(content: Any, parts: bool) -> list[dict[str, Any]]:
    if parts:
        return [{"role": "assistant", "content": [{"type": "text", "text": content}, {"type": "image"}, "junk"]}]
    return [{"role": "assistant", "content": content}]


def hostile_completions(taxonomy: Taxonomy | None = None) -> st.SearchStrategy[Any]:
    """Anything a policy (or a broken pipeline) could hand a reward function as a completion."""
    pieces = st.lists(st.sampled_from(_ODD + _WORDS + _TAGS), max_size=60).map("".join)
    text = st.text() | st.text(st.sampled_from([c for c in _ODD if len(c) == 1]), max_size=200) | pieces
    answers = near_miss_answers(taxonomy)
    huge = st.builds(_huge, answers | st.text(max_size=5), st.integers(1_000, 20_000))
    non_str = (
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=True)
        | st.binary(max_size=50)
        | st.lists(st.integers(), max_size=3)
        | st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3)
        | st.just([{"role": "assistant"}])
        | st.just([{"role": "assistant", "content": None}])
        | st.just([{"role": "assistant", "content": [None, 3, {"text": 5}]}])
    )
    chat = st.builds(_chat, answers | st.none() | st.integers(), st.booleans())
    return answers | text | nested_tags() | huge | non_str | chat


def batches(taxonomy: Taxonomy | None = None, max_size: int = 8) -> st.SearchStrategy[list[tuple[Any, Target]]]:
    """Batches of (completion, target) pairs; about half of them correct answers."""
    pair = st.tuples(hostile_completions(taxonomy), targets(taxonomy)) | targets(taxonomy).map(
        lambda t: (_correct_answer(t), t)
    )
    return st.lists(pair, min_size=1, max_size=max_size)


def _correct_answer(t: Target) -> str:
    if not t.unsafe:
        category = None
    elif t.ood:
        category = t.ood_name
    else:
        category = t.prompt_id(t.category) or t.category
    return format_answer(t.modality, t.request_label, t.response_label, category, "Reasoning.")


def fixed_cases(taxonomy: Taxonomy | None = None) -> list[tuple[Any, Target]]:
    """Hand-written cases: right and wrong answers for every modality, safe, unsafe, shuffled, OOD."""
    tax = _taxonomy(taxonomy)
    leaf = next(n for n in tax.leaves() if n.parent_id)
    _, id_map = tax.shuffled(7)
    cases: list[tuple[Any, Target]] = []
    for m in MODALITIES:
        resp = "safe" if has_response(m) else None
        safe = Target(m, "safe", resp)
        unsafe = Target(m, "unsafe", resp, leaf.id, id_map=id_map)
        ood = Target(m, "unsafe", resp, leaf.id, ood=True, ood_name=leaf.name, ood_synonyms=leaf.synonyms)
        for t in (safe, unsafe, ood):
            cases.append((_correct_answer(t), t))
            cases.append((format_answer(m, "unsafe", resp, "a new kind of harm"), t))
            cases.append((format_answer(m, "unsafe", resp, leaf.id), t))
            cases.append((format_answer(m, "safe", resp, None), t))
            cases.append((format_answer(m, "safe", resp, None, reasoning=None), t))
            cases.append(("", t))
            cases.append((None, t))
    return cases


# ---------------------------------------------------------------------------------------------
# The check
# ---------------------------------------------------------------------------------------------
def _columns(ts: Sequence[Target]) -> dict[str, list[Any]]:
    return {
        "modality": [t.modality for t in ts],
        "request_label": [t.request_label for t in ts],
        "response_label": [t.response_label for t in ts],
        "category": [t.category for t in ts],
        "category_level": [t.category_level for t in ts],
        "id_map": [json.dumps(dict(t.id_map)) for t in ts],
        "ood": [t.ood for t in ts],
        "ood_name": [t.ood_name for t in ts],
        "ood_synonyms": [list(t.ood_synonyms) for t in ts],
    }


def _show(batch: Sequence[tuple[Any, Target]]) -> str:
    lines = []
    for i, (c, t) in enumerate(batch):
        shown = repr(c)
        shown = shown if len(shown) <= 300 else shown[:300] + f"... ({len(shown)} chars)"
        lines.append(f"  [{i}] completion={shown}\n      target={t!r}")
    return "\n".join(lines)


def _run_once(module: Callable[..., Any], batch: Sequence[tuple[Any, Target]], report: ContractReport | None) -> Any:
    completions = [c for c, _ in batch]
    ts = [t for _, t in batch]
    try:
        parsed = parse_batch(completions, ts)
        first = _check_output("module", module(parsed, ts), len(batch))
        second = _check_output("module", module(parse_batch(completions, ts), ts), len(batch))
    except Exception as exc:
        raise ContractViolation(f"{type(exc).__name__}: {exc}\non the batch:\n{_show(batch)}") from exc
    if first != second:
        raise ContractViolation(f"not deterministic: {first} then {second}\non the batch:\n{_show(batch)}")
    composite = CompositeReward([Component("module", module)], name="contract")
    try:
        via_trl = composite.breakdown(completions, ts)
        totals = composite(prompts=[None] * len(batch), completions=completions, **_columns(ts))
    except Exception as exc:
        raise ContractViolation(f"through CompositeReward: {type(exc).__name__}: {exc}\non:\n{_show(batch)}") from exc
    if via_trl.components["module"] != first[0] or totals != [s or 0.0 for s in first[0]]:
        raise ContractViolation(f"CompositeReward scores {via_trl.components['module']} differ from {first[0]}")
    if report is not None:
        report.examples += 1
        report.completions += len(batch)
        report.hostile += sum(not isinstance(c, str) or c != _correct_answer(t) for c, t in batch)
        report.non_text += sum(not isinstance(c, str) for c in completions)
        report.modalities.update(t.modality for t in ts)
        report.format_errors.update(p.code for p in parsed if not p.ok)  # type: ignore[union-attr]
        report.none_scores += sum(s is None for s in first[0])
    return first


def check_reward(
    module: Callable[..., Any],
    n: int = 1000,
    seed_value: int = 0,
    *,
    taxonomy: Taxonomy | None = None,
    batch_size: int = 8,
    check_pickle: bool = True,
) -> ContractReport:
    """Run the contract on ``module``: ``n`` generated batches after the fixed cases; raises ``ContractViolation``."""
    report = ContractReport()
    cases = fixed_cases(taxonomy)
    expected = _run_once(module, cases, report)
    if check_pickle:
        try:
            clone = pickle.loads(pickle.dumps(module))
        except Exception as exc:
            raise ContractViolation(f"the module does not pickle ({type(exc).__name__}: {exc}); TRL may need to") from exc
        if _run_once(clone, cases, None) != expected:
            raise ContractViolation("a pickled copy of the module scores the fixed cases differently")

    @seed(seed_value)
    @settings(
        max_examples=n,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(batches(taxonomy, batch_size))
    def run(batch: list[tuple[Any, Target]]) -> None:
        _run_once(module, batch, report)

    run()
    return report
