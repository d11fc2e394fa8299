"""Every shipped recipe loads through the schema, passes ``--check`` and ``--dry-run`` with no model and no network.

GRPO recipes go through ``proguard train``, SFT recipes (``sft*.yaml``) through ``proguard sft``.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from proguard.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[1]
ALL_RECIPES = sorted(p for p in (ROOT / "recipes").rglob("*.yaml") if p.parent.name != "accelerate")
SFT_RECIPES = [p for p in ALL_RECIPES if p.name.startswith("sft")]
RECIPES = [p for p in ALL_RECIPES if p not in SFT_RECIPES]
ACCELERATE = sorted((ROOT / "recipes" / "accelerate").glob("*.yaml"))


def test_recipes_are_found():
    """The tiny recipe and the two paper recipes ship; the accelerate configs for ZeRO-2 and ZeRO-3."""
    names = {str(p.relative_to(ROOT / "recipes")) for p in RECIPES}
    assert {"tiny/grpo_cpu.yaml", "qwen2.5-vl-7b/grpo.yaml", "qwen2.5-vl-3b/grpo.yaml"} <= names
    sft = {str(p.relative_to(ROOT / "recipes")) for p in SFT_RECIPES}
    assert {"tiny/sft_cpu.yaml", "qwen2.5-vl-7b/sft.yaml", "qwen2.5-vl-3b/sft.yaml"} <= sft
    assert {p.name for p in ACCELERATE} == {"zero2.yaml", "zero3.yaml"}


@pytest.fixture
def offline(monkeypatch):
    """Any network connection or model/processor load fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("--check/--dry-run tried to reach the network or load a model")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import transformers

    for name in ("AutoProcessor", "AutoConfig", "AutoModelForImageTextToText", "AutoTokenizer"):
        monkeypatch.setattr(getattr(transformers, name), "from_pretrained", refuse)
    import proguard.train.policy
    import proguard.train.run

    monkeypatch.setattr(proguard.train.policy, "resolve_model_path", refuse)
    monkeypatch.setattr(proguard.train.run, "resolve_model_path", refuse)


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: str(p.relative_to(ROOT / "recipes")))
def test_recipe_check_and_dry_run_offline(recipe, offline, capsys):
    """--check passes; --dry-run prints the resolved recipe, counts, rewards and a prompt, loading no model."""
    assert cli_main(["train", str(recipe), "--check"]) == 0
    assert ": ok (" in capsys.readouterr().out
    # The paper recipes train on prepared task splits the user builds; preview them on the bundled samples.
    data = ["data.prepared=null", "data.samples=bundled"] if "qwen" in str(recipe) else []
    assert cli_main(["train", str(recipe), "--dry-run", *data]) == 0
    out = capsys.readouterr().out
    for section in ("# resolved recipe", "# training data", "# rewards", "# sample prompt (text"):
        assert section in out, section
    assert '"rows": ' in out and "- format: gate" in out


@pytest.mark.parametrize("recipe", SFT_RECIPES, ids=lambda p: str(p.relative_to(ROOT / "recipes")))
def test_sft_recipe_check_and_dry_run_offline(recipe, offline, capsys, tmp_path):
    """``proguard sft --check`` passes; ``--dry-run`` shows the recipe, counts and a conversation, writing nothing."""
    assert cli_main(["sft", str(recipe), "--check"]) == 0
    assert ": ok (sft" in capsys.readouterr().out
    # The paper recipes train on a dataset the user distils; preview them distilled inline from the bundled samples.
    data = ["data.dataset=null", "data.distill.samples=bundled"] if "qwen" in str(recipe) else []
    assert cli_main(["sft", str(recipe), "--dry-run", *data, f"output_dir={tmp_path / 'run'}"]) == 0
    out = capsys.readouterr().out
    for section in ("# resolved recipe", "# training data", "# loss: assistant turn only", "# sample conversation (text"):
        assert section in out, section
    assert "===== assistant =====\n<think>" in out
    assert not (tmp_path / "run").exists()


def test_paper_dry_run_warns_when_vllm_is_missing(offline, capsys, monkeypatch):
    """The vLLM recipes' dry run says how to get vLLM (or use hf) when it is not importable."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real(name, *a))
    recipe = ROOT / "recipes" / "qwen2.5-vl-7b" / "grpo.yaml"
    assert cli_main(["train", str(recipe), "--dry-run", "data.prepared=null"]) == 0
    assert "WARNING: rollout.backend is 'vllm' but vLLM is not installed" in capsys.readouterr().out


def test_recipe_keys_carry_a_comment():
    """Every key line of a shipped recipe has a comment line right above it (verl's rule)."""
    for recipe in ALL_RECIPES:
        lines = recipe.read_text().splitlines()
        for i, line in enumerate(lines):
            stripped = line.strip()
            if not stripped or stripped.startswith("#") or stripped.startswith("- ") or ":" not in stripped:
                continue
            above = lines[i - 1].strip() if i else ""
            section = stripped.endswith(":")  # a section header may be explained by its first key's comment
            assert above.startswith("#") or section, f"{recipe.name}:{i + 1}: {stripped!r} has no comment above"


@pytest.mark.parametrize("config", ACCELERATE, ids=lambda p: p.name)
def test_accelerate_configs_load(config):
    """accelerate parses each DeepSpeed config (unknown keys would raise) and it names its ZeRO stage."""
    from accelerate.commands.config.config_args import ClusterConfig

    cfg = ClusterConfig.from_yaml_file(str(config))
    assert str(cfg.distributed_type) in ("DEEPSPEED", "DistributedType.DEEPSPEED")
    assert cfg.deepspeed_config["zero_stage"] == int(config.stem[-1])


def test_flags_may_follow_overrides(capsys):
    """`proguard train R key=value --check` works; two modes or an unknown option are errors."""
    tiny = str(ROOT / "recipes" / "tiny" / "grpo_cpu.yaml")
    assert cli_main(["train", tiny, "grpo.max_steps=2", "--check"]) == 0
    assert cli_main(["train", "--check", tiny, "grpo.max_steps=2"]) == 0
    assert cli_main(["train", tiny, "grpo.max_steps=2", "--check", "--resume"]) == 2
    assert "--check and --resume cannot be combined" in capsys.readouterr().err
    assert cli_main(["train", tiny, "--chek"]) == 2
    assert "unknown option '--chek'" in capsys.readouterr().err
