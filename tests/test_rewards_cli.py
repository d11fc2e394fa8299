"""``proguard rewards list`` and ``proguard rewards score``: the offline scorer end to end."""

from __future__ import annotations

import json

import pytest

import proguard.scoring.compose as compose
from proguard.cli import main as cli_main
from proguard.protocol import format_answer
from proguard.scoring.registry import default_registry


def ans(modality, request, response, category=None, reasoning="Looking at it."):
    return format_answer(modality, request, response, category, reasoning)


ROWS = [  # (row, total under format gate x (binary + category))
    ({"completion": ans("text", "unsafe", "safe", "C8S1"), "modality": "text", "request_label": "unsafe",
      "response_label": "safe", "category": "C8S1"}, 3.0),
    # a category given by name is mapped to its ID; the right parent earns the partial credit
    ({"completion": ans("text", "unsafe", "safe", "C8S2"), "modality": "text", "request_label": "unsafe",
      "response_label": "safe", "category": "Weapons"}, 2.5),
    ({"completion": ans("image", "safe", None), "modality": "image", "request_label": "unsafe",
      "category": "C8S1"}, 0.0),
    ({"completion": ans("image", "safe", None), "modality": "image", "request_label": "safe"}, 2.0),
    # no category_level column: text+image takes the default prompt's level (top-level category)
    ({"completion": ans("text_image", "unsafe", "unsafe", "C8"), "modality": "text_image", "request_label": "unsafe",
      "response_label": "unsafe", "category": "C8S1"}, 3.0),
    # shuffled prompt: C2S3 was C8S1's ID in this sample's prompt
    ({"completion": ans("text", "unsafe", "safe", "C2S3"), "modality": "text", "request_label": "unsafe",
      "response_label": "safe", "category": "C8S1", "id_map": {"C8": "C2", "C8S1": "C2S3"}}, 3.0),
    ({"completion": [{"role": "assistant", "content": ans("text", "safe", "safe")}], "modality": "text",
      "request_label": "safe", "response_label": "safe"}, 2.0),
    ({"completion": "Request: unsafe", "modality": "text", "request_label": "unsafe", "response_label": "safe",
      "category": "C8S1"}, 0.0),
]

RECIPE = """\
# only the rewards list matters to the scorer
model: anything
rewards:
  - name: format
    gate: true
  - name: binary
  - name: category
    options: {partial: 0.5}
"""


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def inputs(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE, encoding="utf-8")
    return write_jsonl(tmp_path / "completions.jsonl", [r for r, _ in ROWS]), recipe


def test_score_writes_total_and_every_component_per_row(inputs, tmp_path, capsys):
    data, recipe = inputs
    out = tmp_path / "scored.jsonl"
    assert cli_main(["rewards", "score", "--recipe", str(recipe), "--input", str(data), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "CompositeReward(recipe: format (gate), binary x1, category x1)" in printed
    assert f"on {len(ROWS)} completions" in printed and "format errors: missing_tag 1" in printed
    scored = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["reward"] for r in scored] == [total for _, total in ROWS]
    first = scored[0]
    assert first["completion"] == ROWS[0][0]["completion"]  # the input row is kept
    assert first["reward_components"] == {"format": 1.0, "binary": 2.0, "category": 1.0}
    assert first["reward_parts"] == {"binary/request": 1.0, "binary/response": 1.0, "category/exact": 1.0,
                                     "category/parent": 1.0}
    assert first["format_error"] is None and scored[-1]["format_error"] == "missing_tag"
    assert scored[3]["reward_components"]["category"] is None  # safe sample: no category term


def test_score_to_stdout(inputs, capsys):
    data, recipe = inputs
    assert cli_main(["rewards", "score", "--recipe", str(recipe), "--input", str(data), "--output", "-"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["reward"] for line in lines] == [total for _, total in ROWS]


class StubOOD:
    """Stands in for ood_similarity (no embedding model): 0.75 for any free-text name on an OOD sample."""

    def __init__(self, **options):
        self.options = options

    def __call__(self, parsed, targets):
        return [None if not t.ood else (0.75 if p.ok and p.category_kind == "free_text" else 0.0)
                for p, t in zip(parsed, targets)]


@pytest.mark.parametrize("preset, wrong_branch", [("default", 2.0), ("proguard-paper", 2.5)])
def test_score_with_a_preset_and_ood_rows(tmp_path, monkeypatch, capsys, preset, wrong_branch):
    stubbed = default_registry().with_entries({"ood_similarity": StubOOD, "ood_description": StubOOD})
    monkeypatch.setattr(compose, "default_registry", lambda: stubbed)
    base = {"modality": "text", "request_label": "unsafe", "response_label": "safe", "category": "C8S1"}
    rows = [
        {**base, "completion": ans("text", "unsafe", "safe", "C3S1")},
        # an OOD row without ood_name takes its category's name and synonyms from the taxonomy
        {**base, "ood": True, "completion": ans("text", "unsafe", "safe", "illegal arms trade")},
    ]
    data = write_jsonl(tmp_path / "c.jsonl", rows)
    out = tmp_path / "s.jsonl"
    assert cli_main(["rewards", "score", "--preset", preset, "--input", str(data), "--output", str(out)]) == 0
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["reward"] for r in scored] == [wrong_branch, 2.75]
    ood_row = scored[1]["reward_components"]
    ood_term = "ood_description" if preset == "default" else "ood_similarity"
    assert ood_row["category"] is None and ood_row[ood_term] == 0.75
    assert f"CompositeReward({preset}:" in capsys.readouterr().out


def test_score_reports_every_bad_row_without_a_traceback(tmp_path, inputs, capsys):
    _, recipe = inputs
    bad = write_jsonl(tmp_path / "bad.jsonl", [
        {"completion": "x", "modality": "smell", "request_label": "safe"},
        {"modality": "text", "request_label": "safe", "response_label": "safe"},
        {"completion": "x", "modality": "text", "request_label": "unsafe", "category": "Knitting"},
    ])
    assert cli_main(["rewards", "score", "--recipe", str(recipe), "--input", str(bad)]) == 2
    msg = capsys.readouterr().err
    assert msg.startswith("proguard rewards: error: 3 problem(s) in")
    assert f"{bad}: row 1: modality: must be one of text, image, text_image, video" in msg
    assert f"{bad}: row 2: completion: missing" in msg
    assert f"{bad}: row 3: category: 'Knitting' is not an ID or name" in msg
    assert cli_main(["rewards", "score", "--preset", "nope", "--input", str(bad)]) == 2
    assert "unknown reward preset 'nope'" in capsys.readouterr().err


def test_list_shows_rewards_options_and_presets(capsys):
    assert cli_main(["rewards", "list"]) == 0
    text = capsys.readouterr().out
    for line in ("  category  (rewards.category:CategoryReward, package proguard)",
                 "    - partial: float (default 0.5)",
                 "    - require_think: bool (default True)",
                 "  proguard-paper\n    - format (gate; options: require_think=True)",
                 "    - category (weight 1; options: partial=0.5, wrong_id=0.5, literal_top_level=True)"):
        assert line in text
    # The presets' difference is visible: each one's rows with weights, gates and options.
    default, paper = text.split("\n  default\n")[1].split("\n  proguard-paper\n")
    assert default != paper
    assert cli_main(["rewards", "list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    names = {r["name"]: r for r in data["rewards"]}
    assert {"format", "binary", "category", "ood_similarity"} <= set(names)
    defaults = {o["name"]: o["default"] for o in names["binary"]["options"]}
    assert defaults == {"request_weight": 1.0, "response_weight": 1.0}
    assert data["presets"]["proguard-paper"][2]["options"] == {"partial": 0.5, "wrong_id": 0.5, "literal_top_level": True}
