"""``proguard sft``: recipe checks, assistant-only loss on real collated batches (text and image rows), the label-only
view, and the chain on CPU: SFT on template critiques -> ``final/`` -> ``proguard train`` (GRPO) from it, plus resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from proguard.cli import main as cli_main
from proguard.train.recipe import RecipeError
from proguard.train.recipe import load_sft_recipe

ROOT = Path(__file__).resolve().parents[1]
SFT = str(ROOT / "recipes" / "tiny" / "sft_cpu.yaml")
GRPO = str(ROOT / "recipes" / "tiny" / "grpo_cpu.yaml")
FAST = [  # short prompts and a handful of rows: seconds per step on 2 cores
    "data.prompt.examples=false", "data.max_samples=6", "sft.per_device_train_batch_size=2", "sft.max_steps=2",
    "logging.report_to=[none]", "logging.logging_steps=1", "checkpoint.save_steps=1", "lengths.max_length=1536",
]


def test_recipe_errors_name_the_key():
    """Both or neither data source, an unknown key, an owned sft.extra key and a model teacher inline are errors."""
    with pytest.raises(RecipeError, match="set exactly one of data.dataset"):
        load_sft_recipe(SFT, ["data.dataset=somewhere"])
    with pytest.raises(RecipeError, match=r"sft\.learnig_rate: unknown key \(did you mean 'learning_rate'"):
        load_sft_recipe(SFT, ["sft.learnig_rate=1"])
    with pytest.raises(RecipeError, match="sft.extra.assistant_only_loss: set by the recipe"):
        load_sft_recipe(SFT, ["sft.extra.assistant_only_loss=false"])
    with pytest.raises(RecipeError, match="data.distill.teacher: must be template"):
        load_sft_recipe(SFT, ["data.distill.teacher=openai"])


@pytest.mark.slow
@pytest.mark.parametrize("label_only", [False, True])
def test_loss_covers_the_assistant_turn_only(tmp_path, label_only):
    """Collated labels decode to exactly the assistant turn (+ end of turn) on text and image rows alike."""
    from proguard.train.sft import build_sft_trainer

    r = load_sft_recipe(SFT, [*FAST, "data.max_samples=32", f"data.label_only={str(label_only).lower()}",
                              f"output_dir={tmp_path / 'run'}"])
    setup = build_sft_trainer(r)
    ds = setup.dataset
    modalities = {}
    for i, row in enumerate(ds):
        modalities.setdefault("image" if row["images"] else "text", i)
    assert set(modalities) == {"image", "text"}
    rows = [dict(ds[i]) for i in modalities.values()]
    expected = [row["messages"][-1]["content"][0]["text"] for row in rows]
    batch = setup.trainer.data_collator(rows)
    tok = setup.processor.tokenizer
    for ids, labels, want in zip(batch["input_ids"], batch["labels"], expected, strict=True):
        trained = tok.decode(ids[labels != -100])
        assert trained == want + "<|im_end|>\n"
        assert trained.startswith("<answer>" if label_only else "<think>")
    assert "pixel_values" in batch


@pytest.mark.slow
def test_sft_then_grpo_from_its_final_end_to_end(tmp_path, capsys):
    """`proguard sft` writes distill/report.md, metrics and final/; --resume continues; GRPO trains from final/."""
    sft_out = tmp_path / "sft"
    assert cli_main(["sft", SFT, *FAST, f"output_dir={sft_out}"]) == 0
    final = Path(json.loads(capsys.readouterr().out.strip().splitlines()[-1])["final_model"])
    assert (final / "model.safetensors").is_file() and (final / "chat_template.jinja").is_file()
    assert "kept" in (sft_out / "distill" / "report.md").read_text()
    records = [json.loads(line) for line in (sft_out / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert len(losses) == 2

    assert cli_main(["sft", SFT, *FAST, "sft.max_steps=3", f"output_dir={sft_out}", "--resume"]) == 0
    capsys.readouterr()
    state = json.loads((sft_out / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["global_step"] == 3

    grpo_out = tmp_path / "grpo"
    assert cli_main([
        "train", GRPO, f"model.name_or_path={final}", f"output_dir={grpo_out}", "grpo.max_steps=1",
        "lengths.max_completion_length=16", "data.prompt.examples=false", "data.max_samples=4",
        "grpo.per_device_train_batch_size=4", "logging.report_to=[none]",
    ]) == 0
    assert (grpo_out / "final" / "model.safetensors").is_file()
    assert (grpo_out / "policy-init" / "proguard_policy_source.txt").read_text().strip() == str(final.resolve())


@pytest.mark.gpu
def test_tiny_sft_then_grpo_bf16_on_cuda(tmp_path):
    """The quick start's chain in bf16 on a CUDA GPU: SFT saves a bf16 final/, GRPO trains from it and logs rewards."""
    import torch
    from transformers import AutoModelForImageTextToText

    from proguard.train.quickstart import run_quickstart

    result = run_quickstart(
        SFT, str(ROOT / "recipes" / "tiny" / "grpo_from_sft_cpu.yaml"), out=tmp_path / "qs",
        sft_overrides=["sft.bf16=true", "model.dtype=bfloat16", "logging.report_to=[none]"],
        grpo_overrides=["grpo.bf16=true", "model.dtype=bfloat16", "grpo.max_steps=3", "logging.report_to=[none]"],
    )
    assert set(result.scores) == {"always unsafe", "base", "sft", "grpo"}
    assert len(result.grpo_steps) == 3 and all(0.0 <= r["format/valid_rate"] <= 1.0 for r in result.grpo_steps)
    model = AutoModelForImageTextToText.from_pretrained(result.sft_final)
    assert next(model.parameters()).dtype == torch.bfloat16
    assert (result.grpo_final / "model.safetensors").is_file()
