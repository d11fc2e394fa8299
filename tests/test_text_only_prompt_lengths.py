"""The start-up prompt-length check accepts a text-only policy, whose processor is its tokenizer (smollm2-135m)."""

from __future__ import annotations

from pathlib import Path

from proguard.train import build_train_dataset, load_processor, resolve_model_path
from proguard.train.checks import prompt_lengths
from proguard.train.recipe import load_recipe

TINY_RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "tiny" / "grpo_cpu.yaml"


def test_prompt_lengths_take_a_bare_tokenizer_as_the_processor():
    recipe = load_recipe(TINY_RECIPE, ["images.max_pixels=null"])
    processor = load_processor(resolve_model_path(recipe), recipe)
    ds = build_train_dataset(recipe)
    text = ds.select([i for i, m in enumerate(ds["modality"]) if m == "text"][:8])
    assert len(text) > 0
    by_tokenizer = prompt_lengths(processor.tokenizer, text)  # what a text-only policy's processor is
    assert by_tokenizer == prompt_lengths(processor, text)
    assert all(n > 50 for n in by_tokenizer)  # a system prompt and a conversation, not an empty string
