"""The recipe schema: loading, overrides, error messages naming key and origin, mapping onto GRPOConfig."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from proguard.train.recipe import gradient_accumulation, grpo_config_kwargs, prompts_per_step
from proguard.train.recipe import Recipe, RecipeError, load_recipe

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "recipes" / "tiny" / "grpo_cpu.yaml"
PAPER_7B = ROOT / "recipes" / "qwen2.5-vl-7b" / "grpo.yaml"


def write(tmp_path: Path, text: str) -> Path:
    """A recipe file holding ``text``."""
    path = tmp_path / "recipe.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_defaults_file_and_overrides_layer_in_order(tmp_path):
    """Schema defaults <- file <- key=value overrides, typed."""
    path = write(tmp_path, """
        grpo:
          learning_rate: 1.0e-5
          max_steps: 7
        output_dir: /tmp/from-file
    """)
    r = load_recipe(path, ["grpo.max_steps=9", "rollout.backend=hf", "logging.report_to=[none]"])
    assert isinstance(r, Recipe)
    assert r.grpo.learning_rate == 1e-5  # from the file
    assert r.grpo.max_steps == 9 and isinstance(r.grpo.max_steps, int)  # the override wins, typed
    assert r.output_dir == "/tmp/from-file"
    assert r.logging.report_to == ["none"]
    assert r.grpo.num_generations == 8  # schema default
    assert load_recipe(None).model.name_or_path == "tiny"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("grpo:\n  learning_rat: 1.0e-5\n", r"grpo\.learning_rat: unknown key \(did you mean 'learning_rate'\?\)"),
        ("modle:\n  name_or_path: x\n", r"modle: unknown key \(did you mean 'model'\?\)"),
        ("rollout:\n  backend: hf\n  vllm_modes: server\n", r"rollout\.vllm_modes: unknown key"),
        ("grpo:\n  max_steps: many\n", r"grpo\.max_steps: .*many"),
        ("grpo:\n  bf16: maybe\n", r"grpo\.bf16: .*maybe"),
        ("lengths: 1024\n", r"lengths: must be a mapping of LengthsConfig keys"),
        ("grpo:\n  num_generations: 1\n", r"grpo\.num_generations: GRPO needs at least 2 rollouts"),
        ("rollout:\n  backend: sglang\n", r"rollout\.backend: must be one of hf, vllm, got 'sglang'"),
        ("rewards: defualt\n", r"rewards: unknown preset 'defualt' \(did you mean 'default'\?\)"),
        ("grpo:\n  extra:\n    use_vllm: true\n", r"grpo\.extra\.use_vllm: set by the recipe; use rollout\.backend"),
        ("grpo:\n  extra:\n    not_a_field: 1\n", r"grpo\.extra\.not_a_field: not a trl\.GRPOConfig field"),
    ],
)
def test_file_errors_name_the_key_and_the_file(tmp_path, text, needle):
    """Unknown keys, wrong types and failed checks: one error naming the file and the key."""
    path = write(tmp_path, text)
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    msg = str(info.value)
    assert str(path) in msg, msg
    assert __import__("re").search(needle, msg), msg


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("grpo.learning_rat=1e-5", r"grpo\.learning_rat: unknown key"),
        ("grpo.max_steps=ten", r"grpo\.max_steps: .*ten"),
        ("grpo.max_steps", r"overrides are key=value"),
        ("rollout.vllm_mode=remote", r"rollout\.vllm_mode: must be one of colocate, server"),
    ],
)
def test_override_errors_name_the_key_and_the_command_line(override, needle):
    """A bad key=value override is reported against the command line, not the file."""
    with pytest.raises(RecipeError) as info:
        load_recipe(TINY, [override])
    msg = str(info.value)
    assert "command line" in msg, msg
    assert __import__("re").search(needle, msg), msg


def test_missing_file_and_bad_yaml(tmp_path):
    """A missing recipe or broken YAML names the file."""
    with pytest.raises(RecipeError, match="no such recipe file"):
        load_recipe(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("grpo: [1, 2\n")
    with pytest.raises(RecipeError, match=f"{bad}: not valid YAML"):
        load_recipe(bad)


def test_paper_recipe_maps_onto_grpo_config():
    """The 7B recipe: 256 prompts x 16 rollouts per step on 8 GPUs; lr, KL, clip, entropy as published."""
    from trl import GRPOConfig

    r = load_recipe(PAPER_7B)
    assert gradient_accumulation(r, world_size=8) == 128
    assert prompts_per_step(r, 8) == 256 and prompts_per_step(r, 1) == 256
    kwargs = grpo_config_kwargs(r, world_size=8)
    assert kwargs["learning_rate"] == 1e-6 and kwargs["beta"] == 0.01 and kwargs["epsilon"] == 0.1
    assert kwargs["entropy_coef"] == 0.01 and kwargs["num_generations"] == 16
    assert kwargs["max_completion_length"] == 1024 and kwargs["vllm_max_model_length"] == 3072 + 1024
    assert kwargs["use_vllm"] is True and kwargs["vllm_mode"] == "colocate"
    assert kwargs["remove_unused_columns"] is False and kwargs["save_only_model"] is False
    fields = {f.name for f in __import__("dataclasses").fields(GRPOConfig)}
    assert set(kwargs) <= fields, sorted(set(kwargs) - fields)  # every key is a real GRPOConfig field
    with pytest.raises(RecipeError, match="do not split into micro-batches"):
        gradient_accumulation(r, world_size=6)  # 4096 completions / (4 x 6) is not whole


def test_tiny_recipe_builds_a_grpo_config_on_cpu():
    """build_grpo_config turns the tiny recipe into a trl.GRPOConfig (CPU, TensorBoard, no vLLM)."""
    from proguard.train import build_grpo_config

    args = build_grpo_config(load_recipe(TINY, ["output_dir=/tmp/unused-proguard-run"]))
    assert args.use_vllm is False and args.use_cpu is True
    assert args.report_to == ["tensorboard"]
    assert args.num_generations == 4 and args.max_completion_length == 32 and args.beta == 0.01


def test_bf16_without_cuda_is_an_error():
    """grpo.bf16 on a CPU-only machine says how to fix it."""
    import torch

    from proguard.train import TrainError, build_grpo_config

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(TrainError, match="grpo.bf16=false"):
        build_grpo_config(load_recipe(TINY, ["grpo.bf16=true"]))


@pytest.mark.parametrize("installed", [False, True])
def test_wandb_reporting(monkeypatch, installed):
    """logging.report_to=[wandb]: without wandb a clear error; with it, the reporter and WANDB_PROJECT are set."""
    import importlib.util
    import os

    from proguard.train import TrainError, build_grpo_config

    real = importlib.util.find_spec
    fake = object() if installed else None  # only the presence check looks at it; wandb itself is never imported
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: fake if name == "wandb" else real(name, *a))
    monkeypatch.setenv("WANDB_PROJECT", "placeholder")  # recorded, so the variable is restored after the test
    monkeypatch.delenv("WANDB_PROJECT")
    recipe = load_recipe(TINY, ["logging.report_to=[tensorboard,wandb]", "logging.wandb_project=guard-runs",
                                "output_dir=/tmp/unused-proguard-run"])
    if not installed:
        with pytest.raises(TrainError, match="wandb is not installed: pip install wandb"):
            build_grpo_config(recipe)
        return
    assert build_grpo_config(recipe).report_to == ["tensorboard", "wandb"]
    assert os.environ["WANDB_PROJECT"] == "guard-runs"


def test_every_recipe_key_has_help_and_explain_prints_it(capsys):
    """Help lives once, in the schema: every field of every section has it; --explain prints it."""
    import dataclasses

    from proguard.cli import main as cli_main
    from proguard.train.recipe.loader import section_type as _section_type

    missing = []

    def walk(cls, prefix):
        for f in dataclasses.fields(cls):
            if not f.metadata.get("help"):
                missing.append(prefix + f.name)
            sub = _section_type(cls, f)
            if sub is not None:
                walk(sub, f"{prefix}{f.name}.")

    walk(Recipe, "")
    assert not missing, f"recipe keys without help: {missing}"
    assert cli_main(["train", "--explain", "grpo.beta"]) == 0
    out = capsys.readouterr().out
    assert "grpo.beta" in out and "KL coefficient" in out and "default: 0.0" in out
    assert cli_main(["train", "--explain", "data.tasks"]) == 0
    assert "data.tasks.holdout" in capsys.readouterr().out
    assert cli_main(["train", "--explain", "grpo.bta"]) == 2
    assert "did you mean 'beta'" in capsys.readouterr().err


def test_prepared_tasks_on_the_command_line_replace_the_recipes_task_generator():
    """`proguard train recipes/tiny/grpo_cpu.yaml data.prepared=DIR` works as documented (no data.tasks=null)."""
    r = load_recipe(TINY, ["data.prepared=/tmp/tasks"])
    assert r.data.prepared == "/tmp/tasks" and r.data.tasks is None and r.task_config() is None
    assert load_recipe(TINY).data.tasks is not None  # the file alone still generates tasks
    with pytest.raises(RecipeError, match="set only one of the two"):
        load_recipe(TINY, ["data.prepared=/tmp/tasks", "data.tasks.seed=1"])  # one layer naming both
