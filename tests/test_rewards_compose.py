"""Composition: weighted sum and gates, one parse per batch, TRL's calling convention and metrics, presets."""

import json
import math
import pickle
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import pytest

import proguard.scoring.compose as compose
from proguard.protocol import format_answer, parse_completion
from proguard.scoring.compose import (
    Component,
    CompositeReward,
    RewardOutputError,
    build_reward,
    targets_from_columns,
)
from proguard.scoring.registry import check_options, default_registry
from proguard.scoring.specs import RewardSpecError, load_preset, load_reward_specs, parse_specs, preset_names
from rewards.ood_similarity import OODSimilarity
from rewards.api import Scored


class StubOOD:
    """Stands in for ood_similarity: None off OOD, 0 unless free text, else 0.75."""

    def __init__(self, **options):
        self.options = options

    def __call__(self, parsed, targets):
        return [
            None if not t.ood else (0.75 if p.ok and p.category_kind == "free_text" else 0.0)
            for p, t in zip(parsed, targets)
        ]


def registry():
    """The installed registry with both OOD rewards replaced by the stub (no embedding model)."""
    return default_registry().with_entries({"ood_similarity": StubOOD, "ood_description": StubOOD})


def cols(*rows):
    """TRL-style keyword columns from row dicts."""
    keys = sorted({k for r in rows for k in r})
    return {k: [r.get(k) for r in rows] for k in keys}


def ans(modality, request, response, category=None, reasoning="Looking at it."):
    return format_answer(modality, request, response, category, reasoning)


TEXT_UNSAFE = {"modality": "text", "request_label": "unsafe", "response_label": "safe", "category": "C8S1"}
TEXT_SAFE = {"modality": "text", "request_label": "safe", "response_label": "safe"}
IMAGE_UNSAFE = {"modality": "image", "request_label": "unsafe", "category": "C8S1"}
IMAGE_SAFE = {"modality": "image", "request_label": "safe"}
TI_UNSAFE = {"modality": "text_image", "request_label": "unsafe", "response_label": "unsafe", "category": "C8S1"}
TEXT_OOD = {**TEXT_UNSAFE, "ood": True, "ood_name": "Weapons", "ood_synonyms": ["Arms"]}

CASES = [  # (row, completion, proguard-paper total, default total)
    (TEXT_UNSAFE, ans("text", "unsafe", "safe", "C8S1"), 3.0, 3.0),
    (TEXT_UNSAFE, ans("text", "unsafe", "safe", "C8S2"), 2.5, 2.5),  # right parent
    (TEXT_UNSAFE, ans("text", "unsafe", "safe", "C3S1"), 2.5, 2.0),  # wrong branch: paper code credits any ID
    (TEXT_UNSAFE, ans("text", "unsafe", "safe", "Illegal arms"), 2.0, 2.0),  # free text, in-taxonomy
    (TEXT_UNSAFE, ans("text", "safe", "safe"), 1.0, 1.0),  # called safe: no category credit
    (TEXT_SAFE, ans("text", "safe", "safe"), 2.0, 2.0),
    (TEXT_SAFE, ans("text", "unsafe", "safe", "C1S1"), 1.0, 1.0),  # safe sample: no category term
    (IMAGE_UNSAFE, ans("image", "unsafe", None, "C8S1"), 3.0, 3.0),  # image label worth 2
    (IMAGE_UNSAFE, ans("image", "safe", None), 0.0, 0.0),  # no early-exit credit
    (IMAGE_SAFE, ans("image", "safe", None), 2.0, 2.0),  # the reference code gives 2.5 here
    (TI_UNSAFE, ans("text_image", "unsafe", "unsafe", "C8"), 3.0, 3.0),  # top level asked
    # a subcategory ID of the right parent where the top level is asked: the paper compares strings exactly
    ({**TI_UNSAFE, "category_level": "category"}, ans("text_image", "unsafe", "unsafe", "C8S2"), 2.5, 3.0),
    (TEXT_OOD, ans("text", "unsafe", "safe", "Arms dealing"), 2.75, 2.75),  # stub OOD: 0.75
    (TEXT_OOD, ans("text", "unsafe", "safe", "C8S1"), 2.0, 2.0),  # an ID on an OOD sample
    (TEXT_UNSAFE, ans("text", "unsafe", "safe", "C8S1", reasoning=None), 0.0, 0.0),  # format gate: no <think>
    (TEXT_UNSAFE, "Request: unsafe", 0.0, 0.0),
    (TEXT_UNSAFE, None, 0.0, 0.0),
]


@pytest.mark.parametrize("preset,column", [("proguard-paper", 2), ("default", 3)])
def test_presets_on_hand_cases(preset, column):
    reward = build_reward(preset, registry=registry())
    rows = [c[0] for c in CASES]
    got = reward(prompts=[None] * len(CASES), completions=[c[1] for c in CASES], **cols(*rows))
    assert got == [c[column] for c in CASES]


def test_weighted_sum_gate_and_none():
    def const(value):
        return lambda parsed, targets: [value] * len(parsed)

    reward = CompositeReward(
        [
            Component("g", const(0.5), gate=True),
            Component("g_none", const(None), gate=True),  # a gate that does not apply does not gate
            Component("a", const(1.0), weight=2.0),
            Component("b", const(None), weight=5.0),  # not applicable: adds 0
            Component("c", const(0.25), weight=-4.0),
        ]
    )
    assert reward(completions=["x"], modality=["image"], request_label=["safe"]) == [0.5 * (2.0 - 1.0)]


def test_format_gate_zeroes_everything_else():
    reward = build_reward([{"name": "format", "gate": True}, "binary", "category"])
    rows = cols(TEXT_UNSAFE, TEXT_UNSAFE)
    good, no_think = ans("text", "unsafe", "safe", "C8S1"), ans("text", "unsafe", "safe", "C8S1", reasoning=None)
    out = reward.breakdown([good, no_think], targets_from_columns(rows, 2))
    assert out.total == [3.0, 0.0]
    assert out.components["binary"] == [2.0, 2.0]  # binary still scored; the gate zeroed the total
    assert out.components["format"] == [1.0, 0.0]


def test_completions_are_parsed_once_per_batch(monkeypatch):
    calls = []
    real = compose.parse_completion

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(compose, "parse_completion", counting)
    reward = build_reward([{"name": "format", "gate": True}, "binary", "category"])
    reward(completions=[ans("image", "safe", None)] * 3, **cols(IMAGE_SAFE, IMAGE_SAFE, IMAGE_SAFE))
    assert len(calls) == 3


def test_chat_message_completions():
    reward = build_reward(["binary"])
    msg = [{"role": "assistant", "content": ans("image", "unsafe", None, "C8S1")}]
    parts = [{"role": "assistant", "content": [{"type": "text", "text": ans("image", "unsafe", None, "C8S1")}]}]
    assert reward(completions=[msg, parts], **cols(IMAGE_UNSAFE, IMAGE_UNSAFE)) == [2.0, 2.0]


def test_metrics_through_log_metric_and_log_extra():
    reward = build_reward([{"name": "format", "gate": True}, "binary", "category"], name="guard")
    metrics, extra = {}, {}
    completions = [ans("text", "unsafe", "safe", "C8S1"), ans("text", "unsafe", "unsafe", "C8S2"), ans("text", "safe", "safe")]
    out = reward(
        prompts=[None] * 3,
        completions=completions,
        completion_ids=[[1]] * 3,
        log_metric=lambda k, v: metrics.__setitem__(k, v),
        log_extra=lambda k, v: extra.__setitem__(k, v),
        trainer_state=object(),
        **cols(TEXT_UNSAFE, TEXT_UNSAFE, TEXT_SAFE),
    )
    assert reward.__name__ == "guard"
    assert out == [3.0, 1.5, 2.0]
    assert metrics["reward/format/mean"] == 1.0 and metrics["reward/format/std"] == 0.0
    assert metrics["reward/binary/mean"] == pytest.approx(5 / 3)
    assert metrics["reward/binary/request/mean"] == 1.0
    assert metrics["reward/binary/response/mean"] == pytest.approx(2 / 3)
    assert metrics["reward/category/mean"] == 0.75  # over the two unsafe samples only
    assert metrics["reward/category/std"] == 0.25
    assert metrics["reward/category/exact/mean"] == 0.5 and metrics["reward/category/parent/mean"] == 1.0
    assert extra["reward/category"][:2] == [1.0, 0.5] and math.isnan(extra["reward/category"][2])


def test_format_valid_rate_requires_the_reasoning_block():
    # Logged from the batch's single parse (reasoning optional): an answer without <think> parses
    # there, but is not protocol-valid; garbage is neither.
    reward = build_reward(["binary"])
    metrics = {}
    completions = [ans("text", "unsafe", "safe", "C8S1"), ans("text", "unsafe", "safe", "C8S1", reasoning=None), "garbage"]
    reward(completions=completions, log_metric=metrics.__setitem__, **cols(TEXT_UNSAFE, TEXT_UNSAFE, TEXT_UNSAFE))
    assert metrics["format/valid_rate"] == pytest.approx(1 / 3)
    assert parse_completion(completions[1], "text").ok is False  # the strict parse agrees


def test_a_component_that_never_applies_logs_nothing():
    reward = build_reward(["binary", "category"])
    metrics = {}
    reward(completions=[ans("image", "safe", None)], log_metric=metrics.__setitem__, **cols(IMAGE_SAFE))
    assert "reward/binary/mean" in metrics and not any(k.startswith("reward/category") for k in metrics)


def test_inside_trl_calculate_rewards():
    """TRL's own _calculate_rewards calls the composite and collects its metrics."""
    from transformers import TrainerState
    from trl import GRPOTrainer

    reward = build_reward([{"name": "format", "gate": True}, "binary", "category"], name="guard")
    trainer = GRPOTrainer.__new__(GRPOTrainer)
    trainer.accelerator = SimpleNamespace(device="cpu", is_main_process=True)
    trainer.args = SimpleNamespace(report_to=[])
    trainer.state = TrainerState()
    trainer.reward_funcs = [reward]
    trainer.reward_processing_classes = [None]
    trainer.reward_func_names = [reward.__name__]
    trainer.environments = None
    trainer._pending_metrics = defaultdict(list)
    trainer._pending_extra_logs = defaultdict(list)
    inputs = [{"prompt": "p", **TEXT_UNSAFE, "id_map": "{}"}, {"prompt": "p", **TEXT_SAFE, "category": None, "id_map": "{}"}]
    completions = [ans("text", "unsafe", "safe", "C8S2"), ans("text", "safe", "safe")]
    got = trainer._calculate_rewards(inputs, ["p", "p"], completions, [[1], [1]])
    assert got[:, 0].tolist() == [2.5, 2.0]
    assert trainer._pending_metrics["reward/category/mean"] == [0.5]
    assert trainer._pending_metrics["reward/binary/request/mean"] == [1.0]
    assert trainer._pending_extra_logs["reward/binary"] == [2.0, 2.0]


def test_pickles_and_keeps_scoring():
    reward = build_reward("default", registry=registry())
    clone = pickle.loads(pickle.dumps(reward))
    args = {"completions": [c[1] for c in CASES], **cols(*[c[0] for c in CASES])}
    assert clone.__name__ == "default" and clone(**args) == reward(**args)


def test_module_output_is_checked():
    def bad(value):
        return CompositeReward([Component("bad", lambda p, t: value)])

    call = {"completions": ["x", "y"], **cols(IMAGE_SAFE, IMAGE_SAFE)}
    for value, message in [
        ([1.0], "returned 1 scores for 2 completions"),
        ([1.0, float("nan")], "returned nan for completion 1"),
        ([True, 1.0], "returned True"),
        ("1.0", "expected a list of floats or a Scored"),
        (Scored([1.0, 1.0], {"a/b": [1.0, 1.0]}), "part names"),
        (Scored([1.0, 1.0], {"p": [1.0]}), "'bad/p' returned 1 scores"),
    ]:
        with pytest.raises(RewardOutputError, match=message.replace("(", r"\(").replace("[", r"\[")):
            bad(value)(**call)


def test_ground_truth_columns_are_checked():
    with pytest.raises(ValueError, match="needs dataset columns request_label"):
        targets_from_columns({"modality": ["text"]}, 1)
    bad = cols(TEXT_UNSAFE, {**TEXT_SAFE, "request_label": "fine"}, {**IMAGE_UNSAFE, "category": None})
    with pytest.raises(ValueError) as err:
        targets_from_columns(bad, 3)
    assert "row 1: request_label: must be safe or unsafe, got 'fine'" in str(err.value)
    assert "row 2: category: required when a label is unsafe" in str(err.value)
    with pytest.raises(ValueError, match="id_map: not valid JSON"):
        targets_from_columns(cols({**TEXT_UNSAFE, "id_map": "{oops"}), 1)
    with pytest.raises(ValueError, match="ood_name: required"):
        targets_from_columns(cols({**TEXT_UNSAFE, "ood": True}), 1)


def test_targets_from_columns_defaults_and_maps():
    rows = cols(
        TI_UNSAFE,
        {**TEXT_UNSAFE, "id_map": json.dumps({"C8S1": "C2S1"})},
        {**TEXT_UNSAFE, "id_map": {"C8S1": "C2S1", "C3S1": None}},  # an Arrow struct row
    )
    ti, text, arrow = targets_from_columns(rows, 3)
    assert ti.category_level == "category" and text.category_level == "subcategory"
    assert text.source_id("C2S1") == "C8S1" and arrow.id_map == {"C8S1": "C2S1"}


# ---------------------------------------------------------------------------------------------
# Specs, recipes and presets
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", preset_names())
def test_every_preset_resolves_and_its_options_bind(name):
    specs = load_preset(name)
    assert specs[0].name == "format" and specs[0].gate
    for spec in specs:
        check_options(spec.name, default_registry().resolve(spec.name), spec.options)


def test_presets_exist_and_unknown_preset_suggests():
    assert {"default", "proguard-paper"} <= set(preset_names())
    with pytest.raises(RewardSpecError, match="unknown reward preset 'proguard-papr'.*did you mean 'proguard-paper'"):
        build_reward("proguard-papr")


def test_recipe_file(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "model: whatever\n"
        "rewards:\n"
        "  - name: format\n    gate: true\n    options: {require_think: false}\n"
        "  - name: binary\n    weight: 0.5\n",
        encoding="utf-8",
    )
    specs = load_reward_specs(recipe)
    assert [s.to_dict() for s in specs] == [
        {"name": "format", "weight": 1.0, "gate": True, "options": {"require_think": False}},
        {"name": "binary", "weight": 0.5, "gate": False, "options": {}},
    ]
    reward = build_reward(recipe)
    assert reward.__name__ == "recipe"
    assert reward(completions=[ans("image", "safe", None, reasoning=None)], **cols(IMAGE_SAFE)) == [1.0]


@pytest.mark.parametrize(
    "rows,message",
    [
        ([{"name": "binary", "wieght": 2}], r"rewards\[0\]: wieght: unknown key \(did you mean 'weight'\?\)"),
        ([{"name": "binary", "weight": "2"}], r"rewards\[0\]: weight: must be a finite number"),
        ([{"name": "binary"}, {"name": "format", "gate": "yes"}], r"rewards\[1\]: gate: must be true or false"),
        ([{"name": "binary"}, {"name": "format", "gate": True, "weight": 2}], r"rewards\[1\]: weight: a gate"),
        ([{"name": "binary", "options": [1]}], r"rewards\[0\]: options: must be a mapping"),
        ([{"weight": 1}], r"rewards\[0\]: name: required"),
        ([{"name": "binary"}, {"name": "binary"}], r"rewards\[1\]: name: 'binary' is already listed at rewards\[0\]"),
        ([], "the list is empty"),
        ([{"name": "format", "gate": True}], "every row is a gate"),
        ({"name": "binary"}, "must be a list"),
    ],
)
def test_spec_errors_name_the_row_and_field(rows, message):
    with pytest.raises(RewardSpecError, match=message):
        parse_specs(rows, "my.yaml")


def test_recipe_file_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("rewards:\n  - name: binary\n    weight: [1]\n", encoding="utf-8")
    with pytest.raises(RewardSpecError, match=r"bad.yaml: rewards\[0\]: weight"):
        load_reward_specs(bad)
    none = tmp_path / "none.yaml"
    none.write_text("model: x\n", encoding="utf-8")
    with pytest.raises(RewardSpecError, match="no top-level 'rewards:'"):
        load_reward_specs(none)
    typo = tmp_path / "typo.yaml"
    typo.write_text("rewards: proguard-papr\n", encoding="utf-8")
    with pytest.raises(RewardSpecError, match=r"typo.yaml: rewards: unknown reward preset 'proguard-papr'"):
        load_reward_specs(typo)


def test_a_recipe_may_name_a_preset(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: x\nrewards: proguard-paper\n", encoding="utf-8")
    assert load_reward_specs(recipe) == load_preset("proguard-paper")
    recipes = Path(__file__).resolve().parents[1] / "recipes"
    # recipes/accelerate/ holds launcher configs, not recipes; SFT recipes (sft*.yaml) have no rewards
    shipped = sorted(p for p in recipes.rglob("*.yaml") if p.parent.name != "accelerate" and not p.name.startswith("sft"))
    assert shipped and all(load_reward_specs(p) for p in shipped)  # `proguard rewards score --recipe` takes them


def test_paper_preset_with_the_real_ood_similarity():
    """The paper's OOD rule with the real embedder: ID 0, safe verdict 0, free text 0.5 + bonus."""
    reward = build_reward("proguard-paper")
    rows = [TEXT_OOD] * 4 + [{**IMAGE_UNSAFE, "ood": True, "ood_name": "Weapons"}] * 2
    completions = [
        ans("text", "unsafe", "safe", "C3S1"),  # any ID on an OOD sample: 0
        ans("text", "unsafe", "safe", "Weapons"),  # the hidden name itself: full bonus
        ans("text", "unsafe", "safe", "a recipe for lemon cake"),  # unrelated: the base 0.5
        ans("text", "safe", "safe"),  # called safe: response right only
        ans("image", "safe", None),  # the reference code gives 0.5 here
        ans("image", "unsafe", None, "Weapons"),
    ]
    out = reward.breakdown(completions, targets_from_columns(cols(*rows), len(rows)))
    ood = out.components["ood_similarity"]
    assert ood[0] == 0.0 and ood[3] == 0.0 and ood[4] == 0.0
    assert ood[1] == pytest.approx(1.0, abs=1e-4)
    assert 0.5 <= ood[2] < 0.75
    assert out.total[0] == 2.0 and out.total[3] == 1.0 and out.total[4] == 0.0
    assert out.total[5] == pytest.approx(3.0, abs=1e-4)


# ---------------------------------------------------------------------------------------------
# proguard-paper: the published formula, hand-computed
# ---------------------------------------------------------------------------------------------
# Similarities of a predicted name to the hidden node's name and its five synonyms, per OOD case.
PAPER_SIMS = {
    "novel risk a": [0.85, 0.5, 0.5, 0.5, 0.5, 0.5],  # max bonus (0.85-0.7)/0.3*0.5 = 0.25; mean 0.558: none
    "novel risk b": [0.8] * 6,  # max bonus 0.1667 < mean bonus (0.8-0.6)/0.4*0.5 = 0.25
    "novel risk c": [0.65] * 6,  # max bonus < 0; mean bonus 0.05/0.4*0.5 = 0.0625
    "novel risk d": [0.5] * 6,  # both bonuses negative: the base 0.5 alone
}


def _paper_vectors():
    """Each predicted name is e0; phrase j of its case has cosine PAPER_SIMS[name][j] with it."""
    dim = 1 + 6 * len(PAPER_SIMS)
    vectors = {}
    for c, (name, sims) in enumerate(PAPER_SIMS.items()):
        vectors[name] = [1.0] + [0.0] * (dim - 1)
        for j, s in enumerate(sims):
            v = [0.0] * dim
            v[0], v[1 + 6 * c + j] = s, math.sqrt(1.0 - s * s)
            vectors[f"{name} phrase {j}"] = v
    return vectors


class _GeometryEncoder:
    """Stub sentence encoder with fixed unit vectors, so every cosine similarity is known exactly."""

    vectors = _paper_vectors()

    def encode(self, texts):
        import torch

        return torch.tensor([self.vectors[t] for t in texts], dtype=torch.float32)


class _GeometryOOD(OODSimilarity):
    """The real ood_similarity module, built with the preset's options, on the stub encoder."""

    def __init__(self, **options):
        from synonym_bank.index import EmbeddingIndex

        super().__init__(index=EmbeddingIndex(device="cpu", encoder=_GeometryEncoder()), **options)


def _ood_row(base, name):
    synonyms = [f"{name} phrase {j}" for j in range(1, 6)]
    return {**base, "ood": True, "ood_name": f"{name} phrase 0", "ood_synonyms": synonyms}


PAPER_HAND = [  # (row, completion, format gate x (request + response + category), worked out by hand)
    (TEXT_UNSAFE, ans("text", "unsafe", "safe", "C8S1"), 1 * (1 + 1 + 1.0)),
    (TEXT_UNSAFE, ans("text", "unsafe", "safe", "C3S1"), 1 * (1 + 1 + 0.5)),  # any other ID: 0.5
    (TEXT_UNSAFE, ans("text", "unsafe", "unsafe", "C8"), 1 * (1 + 0 + 0.5)),
    (TEXT_UNSAFE, ans("text", "unsafe", "safe", "C8S1", reasoning=None), 0 * (1 + 1 + 1.0)),  # no <think>
    (IMAGE_UNSAFE, ans("image", "unsafe", None, "C8S1"), 1 * (2 + 1.0)),  # the image label is worth 2
    (IMAGE_UNSAFE, ans("image", "safe", None), 1 * (0 + 0)),  # no early exit: no category credit
    (IMAGE_SAFE, ans("image", "safe", None), 1 * (2 + 0)),  # safe sample: no category term
    (TI_UNSAFE, ans("text_image", "unsafe", "unsafe", "C8"), 1 * (1 + 1 + 1.0)),  # category level
    (_ood_row(TEXT_UNSAFE, "novel risk a"), ans("text", "unsafe", "safe", "novel risk a"), 1 * (1 + 1 + (0.5 + 0.25))),
    (_ood_row(TEXT_UNSAFE, "novel risk b"), ans("text", "unsafe", "unsafe", "novel risk b"),
     1 * (1 + 0 + (0.5 + 0.25))),
    (_ood_row(IMAGE_UNSAFE, "novel risk c"), ans("image", "unsafe", None, "novel risk c"), 1 * (2 + (0.5 + 0.0625))),
    (_ood_row(TI_UNSAFE, "novel risk d"), ans("text_image", "unsafe", "unsafe", "novel risk d"), 1 * (1 + 1 + 0.5)),
    (_ood_row(TEXT_UNSAFE, "novel risk a"), ans("text", "unsafe", "safe", "C8S1"), 1 * (1 + 1 + 0)),  # ID on OOD: 0
    (_ood_row(TEXT_UNSAFE, "novel risk a"), ans("text", "safe", "safe"), 1 * (0 + 1 + 0)),
    (_ood_row(TEXT_UNSAFE, "novel risk a"), ans("text", "unsafe", "safe", "novel risk a", reasoning=None), 0.0),
]


def test_proguard_paper_preset_equals_the_hand_computed_formula():
    reward = build_reward("proguard-paper", registry=default_registry().with_entries({"ood_similarity": _GeometryOOD}))
    rows = [c[0] for c in PAPER_HAND]
    got = reward(prompts=[None] * len(rows), completions=[c[1] for c in PAPER_HAND], **cols(*rows))
    assert got == pytest.approx([c[2] for c in PAPER_HAND], abs=1e-6)
    ood = reward.components[-1].module
    assert ood.formula == {"mode": "paper", "max_threshold": 0.7, "mean_threshold": 0.6, "base": 0.5, "scale": 0.5}
