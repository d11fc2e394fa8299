"""Our own calls into transformers/TRL use current names: building the GRPO config warns nothing deprecated."""

from __future__ import annotations

import warnings

from proguard.train.recipe import load_recipe
from proguard.train.run import build_grpo_config


def test_grpo_config_of_the_tiny_recipe_raises_no_deprecation_warning(tmp_path):
    r = load_recipe("recipes/tiny/grpo_cpu.yaml", [f"output_dir={tmp_path}", "grpo.gradient_checkpointing=true"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        config = build_grpo_config(r)
    ours = [w for w in caught if "checkpointing" in str(w.message) or issubclass(w.category, FutureWarning)]
    assert not ours, [str(w.message) for w in ours]
    assert config.gradient_checkpointing is True  # the setting still reaches the trainer
