"""``model.freeze_layers``: the embeddings and the lowest decoder layers keep their weights through a real SFT and GRPO
run (and the rest trains), on every named policy's layer layout; bad values are one-line recipe errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from proguard.cli import main as cli_main
from proguard.train.errors import TrainError
from proguard.train.recipe import RecipeError, load_recipe, load_sft_recipe

ROOT = Path(__file__).resolve().parents[1]
SFT = str(ROOT / "recipes" / "tiny" / "sft_cpu.yaml")
GRPO = str(ROOT / "recipes" / "tiny" / "grpo_cpu.yaml")
SFT_FAST = [
    "data.prompt.examples=false", "data.max_samples=6", "sft.per_device_train_batch_size=2", "sft.max_steps=2",
    "logging.report_to=[none]", "checkpoint.save_steps=2", "lengths.max_length=1536", "sft.learning_rate=1e-2",
]


def _load(path):
    """The model in its config's architecture class (as TRL's trainers load a policy)."""
    import transformers

    return getattr(transformers, transformers.AutoConfig.from_pretrained(path).architectures[0]).from_pretrained(path)


def _weights(path) -> dict:
    """The parameters as the model class names them (the tiny model's file keeps older key names)."""
    return {n: p.detach().clone() for n, p in _load(path).named_parameters()}


def _changed(before: dict, after: dict, part: str) -> set[bool]:
    """For each weight whose name holds ``part``: whether training changed it."""
    import torch

    names = [n for n in before if part in n]
    assert names, f"no weight named like {part!r}"
    return {not torch.equal(before[n], after[n]) for n in names}


def test_bad_values_are_recipe_errors():
    with pytest.raises(RecipeError, match="model.freeze_layers"):
        load_sft_recipe(SFT, ["model.freeze_layers=-1"])
    with pytest.raises(RecipeError, match=r"model.freeze_layers: LoRA \(peft.enabled\)"):
        load_recipe(GRPO, ["model.freeze_layers=1", "peft.enabled=true"])


def test_every_named_policy_has_its_layers_found():
    """The tiny Qwen2.5-VL's and the omni thinker's language layers are found, and freezing all of them is refused."""
    from proguard.models.named import named_model_path
    from proguard.train.freezing import decoder_layers, freeze_lower_layers

    for name in ("tiny", "tiny-omni"):
        model = _load(named_model_path(name))
        layers = decoder_layers(model)
        assert len(layers) == 2
        with pytest.raises(TrainError, match="not below the policy's 2 decoder layers"):
            freeze_lower_layers(model, 2)
        trainable = freeze_lower_layers(model, 1)
        assert not model.get_input_embeddings().weight.requires_grad
        assert not any(p.requires_grad for p in layers[0].parameters())
        assert all(p.requires_grad for p in layers[1].parameters())
        assert 0 < trainable < sum(p.numel() for p in model.parameters())


@pytest.mark.slow
def test_sft_and_grpo_keep_the_frozen_weights_and_train_the_rest(tmp_path, capsys):
    from proguard.models.named import named_model_path

    base = _weights(named_model_path("tiny"))
    sft_out = tmp_path / "sft"
    assert cli_main(["sft", SFT, *SFT_FAST, "model.freeze_layers=1", f"output_dir={sft_out}"]) == 0
    final = Path(json.loads(capsys.readouterr().out.strip().splitlines()[-1])["final_model"])
    after = _weights(final)
    assert _changed(base, after, "embed_tokens") == {False}
    assert _changed(base, after, "language_model.layers.0.") == {False}
    assert True in _changed(base, after, "language_model.layers.1.")

    grpo_out = tmp_path / "grpo"
    assert cli_main([
        "train", GRPO, f"model.name_or_path={final}", f"output_dir={grpo_out}", "grpo.max_steps=1",
        "lengths.max_completion_length=16", "data.prompt.examples=false", "data.max_samples=4",
        "grpo.per_device_train_batch_size=4", "logging.report_to=[none]", "model.freeze_layers=1",
        "grpo.learning_rate=1e-2",
    ]) == 0
    grpo = _weights(grpo_out / "final")
    assert _changed(after, grpo, "embed_tokens") == {False}
    assert _changed(after, grpo, "language_model.layers.0.") == {False}


@pytest.mark.slow
def test_reentrant_gradient_checkpointing_still_trains_the_upper_layers(tmp_path, capsys):
    """With reentrant gradient checkpointing a layer whose inputs need no gradient (the frozen layers' output) could
    be left untrained: the upper layers still train, the frozen ones keep their weights."""
    from proguard.models.named import named_model_path

    base = _weights(named_model_path("tiny"))
    assert cli_main(["sft", SFT, *SFT_FAST, "model.freeze_layers=1", "sft.gradient_checkpointing=true",
                     "sft.extra.gradient_checkpointing_kwargs={use_reentrant: true}",
                     f"output_dir={tmp_path / 'sft'}"]) == 0
    final = Path(json.loads(capsys.readouterr().out.strip().splitlines()[-1])["final_model"])
    after = _weights(final)
    assert _changed(base, after, "language_model.layers.0.") == {False}
    assert True in _changed(base, after, "language_model.layers.1.")
