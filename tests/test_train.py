"""End to end on CPU: ``proguard train`` on the tiny recipe, its outputs, the final model, LoRA, start-up checks.

The CI run is the tiny recipe (in-process tiny Qwen2.5-VL, bundled samples, the default composite
reward, HF rollouts) for 3 GRPO steps with short completions; the assertions cover the checkpoints,
``metrics.jsonl`` (every reward component, KL, lengths, format-valid rate, OOD share), TensorBoard
events and a ``final/`` that the Auto classes reload and generate with.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from proguard.cli import main as cli_main
from proguard.train.recipe import load_recipe
from proguard.scoring.specs import load_preset

TINY_RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "tiny" / "grpo_cpu.yaml"
# Short rollouts and 2 prompts x 2 rollouts per step: a step takes ~2 s on 2 CPU cores.
FAST = [
    "lengths.max_completion_length=8",
    "grpo.per_device_train_batch_size=4",
    "grpo.num_generations=2",
    "data.prompt.examples=false",
]
STEPS = 3


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """The tiny recipe through the CLI: 3 steps, a checkpoint every step, the last two kept."""
    out = tmp_path_factory.mktemp("tiny") / "run"
    rc = cli_main(["train", str(TINY_RECIPE), f"output_dir={out}", f"grpo.max_steps={STEPS}",
                   "checkpoint.save_steps=1", *FAST])
    assert rc == 0
    return out


def records(out: Path) -> list[dict]:
    """Per-step records of ``metrics.jsonl``."""
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if "reward" in r]


def test_checkpoints_and_recipe_are_written(tiny_run):
    """save_total_limit=2 keeps the last two checkpoints, each with what --resume needs."""
    names = sorted(p.name for p in tiny_run.glob("checkpoint-*"))
    assert names == ["checkpoint-2", "checkpoint-3"]
    for name in names:
        for f in ("model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json"):
            assert (tiny_run / name / f).is_file(), f"{name}/{f} missing"
    assert json.loads((tiny_run / "checkpoint-3" / "trainer_state.json").read_text())["global_step"] == STEPS
    saved = load_recipe(tiny_run / "recipe.yaml")  # the resolved recipe reloads through the schema
    assert saved.grpo.max_steps == STEPS and saved.lengths.max_completion_length == 8
    # The model cards name the real base model and carry the recipe, never "a fine-tuned version of [None]".
    for card in (tiny_run / "README.md", tiny_run / "final" / "README.md"):
        text = card.read_text()
        assert "[None]" not in text and "in-process tiny Qwen2.5-VL" in text
        assert "`format`: gate" in text and f"max_steps: {STEPS}" in text


def test_metrics_cover_every_reward_component(tiny_run):
    """Each step logs the total, KL, lengths, format-valid rate, OOD share; every component appears."""
    rows = records(tiny_run)
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
    per_step = ["reward", "reward_std", "rewards/proguard/mean", "kl", "completions/mean_length",
                "format/valid_rate", "data/ood_share", "reward/format/mean", "reward/format/std",
                "reward/binary/mean", "reward/binary/std", "step_time"]
    for r in rows:
        missing = [k for k in per_step if k not in r]
        assert not missing, f"step {r['step']} lacks {missing}"
        assert 0.0 <= r["format/valid_rate"] <= 1.0 and 0.0 <= r["data/ood_share"] <= 1.0
        assert r["completions/mean_length"] <= 8
        # A component is logged on the steps it applies to: OOD description whenever the batch holds an OOD row.
        if r["data/ood_share"] > 0:
            assert "reward/ood_description/mean" in r and "reward/ood_description/std" in r
    logged = set().union(*rows)
    for spec in load_preset("default"):
        assert f"reward/{spec.name}/mean" in logged and f"reward/{spec.name}/std" in logged, spec.name
    # TensorBoard is the default reporter.
    assert list((tiny_run / "runs").rglob("events.out.tfevents.*")), "no TensorBoard event file"


def test_final_model_reloads_and_generates(tiny_run):
    """final/ loads with the Auto classes (as vLLM and transformers would) and generates."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from proguard.models.tiny_vlm import make_test_image

    final = tiny_run / "final"
    processor = AutoProcessor.from_pretrained(final)
    model = AutoModelForImageTextToText.from_pretrained(final).eval()
    assert processor.image_processor.size["longest_edge"] == 12544  # the recipe's images.max_pixels
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Is this safe?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = processor(images=[make_test_image(56)], text=[text], return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]
    # The trained weights are the final checkpoint's.
    from safetensors.torch import load_file

    last = load_file(str(tiny_run / "checkpoint-3" / "model.safetensors"))
    final_w = load_file(str(final / "model.safetensors"))
    assert last.keys() == final_w.keys()
    assert all(torch.equal(last[k], final_w[k]) for k in last)


def test_resume_without_checkpoint_and_rerun_are_errors(tiny_run, tmp_path, capsys):
    """--resume needs a checkpoint; a fresh run into a used output_dir must ask for --resume."""
    assert cli_main(["train", str(TINY_RECIPE), f"output_dir={tmp_path / 'empty'}", "--resume", *FAST]) == 2
    assert "no complete checkpoint-N" in capsys.readouterr().err
    assert cli_main(["train", str(TINY_RECIPE), f"output_dir={tiny_run}", *FAST]) == 2
    assert "pass --resume" in capsys.readouterr().err


def test_resume_skips_an_incomplete_checkpoint_and_logs_each_step_once(tiny_run, tmp_path, capsys):
    """Killed while checkpoint-3 was written: --resume says so, continues checkpoint-2, step 3 is logged once."""
    import shutil

    from proguard.train.checkpoints import checkpoint_problem

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, symlinks=True)
    shutil.rmtree(run / "final")
    weights = run / "checkpoint-3" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    capsys.readouterr()
    assert cli_main(["train", str(TINY_RECIPE), f"output_dir={run}", f"grpo.max_steps={STEPS}",
                     "checkpoint.save_steps=1", "--resume", *FAST]) == 0
    out = capsys.readouterr().out
    assert "skipping checkpoint-3: model.safetensors is truncated" in out and "resuming from checkpoint-2" in out
    assert [r["step"] for r in records(run)] == [1, 2, 3]
    assert (run / "incomplete-checkpoint-3").is_dir() and checkpoint_problem(run / "checkpoint-3") is None
    assert not list(run.glob(".partial-checkpoint-*"))


def test_a_save_killed_before_its_rename_leaves_no_checkpoint_and_a_fresh_run_is_not_refused(tmp_path, monkeypatch,
                                                                                               capsys):
    """Checkpoints are written to a staging sibling and renamed: a kill mid-save leaves no checkpoint-N;
    a directory holding only incomplete checkpoints does not stop a fresh run."""
    import proguard.train.trainer_mixins as trainer_module
    from proguard.train.checkpoints import checkpoint_problem

    real, calls = trainer_module.publish, []

    def killed_at_the_second_save(staged, final):
        calls.append(final.name)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed while saving")
        real(staged, final)

    run = tmp_path / "run"
    monkeypatch.setattr(trainer_module, "publish", killed_at_the_second_save)
    with pytest.raises(KeyboardInterrupt):
        cli_main(["train", str(TINY_RECIPE), f"output_dir={run}", "grpo.max_steps=2", "checkpoint.save_steps=1", *FAST])
    monkeypatch.setattr(trainer_module, "publish", real)
    assert checkpoint_problem(run / "checkpoint-1") is None and not (run / "checkpoint-2").exists()
    assert (run / ".partial-checkpoint-2" / "checkpoint-2" / "trainer_state.json").is_file()

    fresh = tmp_path / "fresh"
    (fresh / "checkpoint-5").mkdir(parents=True)  # an empty checkpoint dir: a save cut short by old code
    (fresh / ".partial-checkpoint-6" / "checkpoint-6").mkdir(parents=True)
    capsys.readouterr()
    assert cli_main(["train", str(TINY_RECIPE), f"output_dir={fresh}", "grpo.max_steps=1", "checkpoint.save_steps=1",
                     *FAST]) == 0
    out = capsys.readouterr().out
    assert "skipping checkpoint-5: no trainer_state.json; moved it to incomplete-checkpoint-5" in out
    assert not (fresh / ".partial-checkpoint-6").exists() and checkpoint_problem(fresh / "checkpoint-1") is None


def test_lora_run_saves_a_merged_model(tmp_path):
    """peft.enabled: one step with LoRA adapters; final/ is a plain merged checkpoint the Auto classes load."""
    pytest.importorskip("peft")
    from safetensors.torch import load_file
    from transformers import AutoModelForImageTextToText

    out = tmp_path / "lora"
    rc = cli_main(["train", str(TINY_RECIPE), f"output_dir={out}", "grpo.max_steps=1", "peft.enabled=true",
                   "peft.r=4", "peft.lora_alpha=8", "checkpoint.save_steps=1", *FAST])
    assert rc == 0
    assert (out / "checkpoint-1" / "adapter_model.safetensors").is_file()  # checkpoints hold the adapters
    final = out / "final"
    assert not (final / "adapter_config.json").exists()
    weights = load_file(str(final / "model.safetensors"))
    assert not [k for k in weights if "lora_" in k]
    model = AutoModelForImageTextToText.from_pretrained(final)
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"


# ---------------------------------------------------------------------------------------------
# Start-up checks (no training)
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_parts():
    """The tiny recipe's processor, policy config and dataset, as ``build_trainer`` assembles them."""
    from transformers import AutoConfig

    from proguard.train import build_train_dataset, load_processor, resolve_model_path

    recipe = load_recipe(TINY_RECIPE, ["images.max_pixels=null"])
    path = resolve_model_path(recipe)
    return load_processor(path, recipe), AutoConfig.from_pretrained(path), build_train_dataset(recipe)


def test_image_token_alignment_passes_on_the_tiny_policy(tiny_parts):
    """The tiny processor's image tokens equal the vision features the tiny policy makes."""
    from proguard.train import check_image_token_alignment

    processor, config, ds = tiny_parts
    a = check_image_token_alignment(processor, config, ds)
    assert a is not None and a.prompt_tokens == a.forward_tokens == a.vision_features > 0
    assert ds[a.row]["modality"] in ("image", "text_image")
    assert check_image_token_alignment(processor, config, ds.filter(lambda m: m == "text", input_columns="modality")) is None


def test_image_token_misalignment_is_a_clear_error(tiny_parts):
    """A policy whose merge size or image-token ID differs from the processor's fails at start-up."""
    import copy

    from proguard.train import TrainError, check_image_token_alignment

    processor, config, ds = tiny_parts
    merged_differently = copy.deepcopy(config)
    merged_differently.vision_config.spatial_merge_size = 1  # the policy would make 4x the features
    with pytest.raises(TrainError, match=r"image-token misalignment on training row \d+: .* vision tower makes"):
        check_image_token_alignment(processor, merged_differently, ds)
    other_token = copy.deepcopy(config)
    other_token.image_token_id = config.image_token_id + 1
    with pytest.raises(TrainError, match="image-token mismatch: the processor marks images with"):
        check_image_token_alignment(processor, other_token, ds)


def test_vllm_backend_without_vllm_names_the_extra_and_hf(monkeypatch, capsys, tmp_path):
    """rollout.backend=vllm with vLLM absent: exit 1 before any model loads, naming the extra and the HF backend."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real(name, *a))
    rc = cli_main(["train", str(TINY_RECIPE), "rollout.backend=vllm", f"output_dir={tmp_path / 'v'}"])
    err = capsys.readouterr().err
    assert rc == 1  # a run that cannot start here (TrainError), not a malformed recipe
    assert "proguard[vllm]" in err and "`vllm` extra" in err and "rollout.backend=hf" in err
    assert not (tmp_path / "v").exists()  # nothing was built


# ---------------------------------------------------------------------------------------------
# GPU
# ---------------------------------------------------------------------------------------------
@pytest.mark.gpu
def test_tiny_recipe_bf16_on_cuda(tmp_path):
    """The tiny recipe in bf16 on a CUDA GPU: trains, logs step time, saves a bf16 final model."""
    out = tmp_path / "gpu"
    rc = cli_main(["train", str(TINY_RECIPE), f"output_dir={out}", "grpo.max_steps=3", "grpo.bf16=true",
                   "model.dtype=bfloat16", "checkpoint.save_steps=3"])
    assert rc == 0
    rows = records(out)
    assert len(rows) == 3 and all(r["step_time"] > 0 for r in rows)
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(out / "final")
    assert next(model.parameters()).dtype == torch.bfloat16
