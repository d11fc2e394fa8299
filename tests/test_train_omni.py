"""Omni GRPO on CPU: the tiny Qwen2.5-Omni thinker over all seven modalities, the media checks, vLLM's refusal.

One run of ``recipes/tiny/grpo_omni_cpu.yaml`` (one step, one prompt per modality, short completions)
covers video frames and audio features through generation and the loss; ``final/`` reloads and
answers a video and an audio sample. The alignment check is shown catching planted mismatches.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from proguard.cli import main as cli_main
from rewards.types import MODALITIES

ROOT = Path(__file__).resolve().parents[1]
OMNI_RECIPE = ROOT / "recipes" / "tiny" / "grpo_omni_cpu.yaml"
FAST = ["lengths.max_completion_length=8", "data.prompt.examples=false"]


@pytest.fixture(scope="module")
def omni_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("omni") / "run"
    assert cli_main(["train", str(OMNI_RECIPE), f"output_dir={out}", *FAST]) == 0
    return out


@pytest.mark.slow
def test_every_modality_trains_and_logs_its_reward(omni_run):
    steps = [r for r in (json.loads(line) for line in (omni_run / "metrics.jsonl").read_text().splitlines())
             if "reward" in r]
    assert len(steps) == 2
    per_step = [{m for m in MODALITIES if f"reward/modality/{m}/mean" in s} for s in steps]
    # Batches mix modalities (7 prompts drawn from a modality-balanced train split); the recipe's two
    # steps cover all seven.
    assert all(len(seen) >= 3 for seen in per_step), per_step
    assert set().union(*per_step) == set(MODALITIES), f"never trained: {set(MODALITIES) - set().union(*per_step)}"
    assert all(s["completions/mean_length"] > 0 and "entropy" in s for s in steps)


@pytest.mark.slow
def test_final_model_answers_a_video_and_an_audio_sample(omni_run):
    from transformers import AutoModelForImageTextToText

    from proguard.data import BUNDLED_SAMPLES, load_samples
    from proguard.models.tiny_omni import load_omni_inputs
    from proguard.protocol import build_messages
    from proguard.train.trainer import row_media
    from taxonomy import load_taxonomy

    final = omni_run / "final"
    model = AutoModelForImageTextToText.from_pretrained(final).eval()
    inputs = load_omni_inputs(final)
    tax = load_taxonomy("default")
    samples = load_samples(BUNDLED_SAMPLES, tax)
    for modality in ("video", "audio"):
        row = next(r for r in samples if r["modality"] == modality)
        media = row_media(row)
        text = inputs.tokenizer.apply_chat_template(build_messages(modality, None, None, tax), add_generation_prompt=True,
                                                    tokenize=False)
        batch = inputs([text], [media["images"]], [media["videos"]], [media["audios"]])
        assert ("pixel_values_videos" in batch) == (modality == "video") and ("input_features" in batch) == (modality == "audio")
        with torch.no_grad():
            out = model.generate(**batch, max_new_tokens=6, do_sample=False)
        assert out.shape[1] > batch["input_ids"].shape[1]  # it answered (random weights: any text)


def test_media_alignment_check_passes_and_catches_planted_mismatches(tiny_omni_parts):
    from proguard.train.checks import check_media_token_alignment
    from proguard.train.errors import TrainError

    inputs, config, ds = tiny_omni_parts
    found = check_media_token_alignment(inputs, config, ds)
    assert [a.medium for a in found] == ["image", "video", "audio"]
    assert all(a.prompt_tokens == a.features > 0 for a in found)
    # Video: a policy whose vision tower merges 4x4 patches makes 4x fewer features than the prompt holds.
    merged = copy.deepcopy(config)
    merged.vision_config.spatial_merge_size = 4
    with pytest.raises(TrainError, match=r"image-token misalignment .* prompt has 4 image tokens but .* makes 1"):
        check_media_token_alignment(inputs, merged, ds)
    no_images = ds.filter(lambda r: r["modality"] != "image" and r["modality"] != "text_image")
    with pytest.raises(TrainError, match=r"video-token misalignment on training row \d+ \((text_)?video\): the prompt has \d+"):
        check_media_token_alignment(inputs, merged, no_images)
    # Audio: a chat template that renders the audio placeholder twice for one clip.
    twice = copy.copy(inputs)
    twice.tokenizer = copy.deepcopy(inputs.tokenizer)
    twice.tokenizer.chat_template = inputs.tokenizer.chat_template.replace("<|AUDIO|>", "<|AUDIO|><|AUDIO|>")
    with pytest.raises(TrainError, match=r"audio-token misalignment .* 2 audio placeholder\(s\) but 1 audio"):
        check_media_token_alignment(twice, config, ds)
    # Audio: the model's audio token is not the processor's.
    other = copy.deepcopy(config)
    other.audio_token_index = inputs.tokens.video_id
    with pytest.raises(TrainError, match=r"audio-token mismatch .* the policy expects"):
        check_media_token_alignment(inputs, other, ds)


def test_vllm_rollout_refuses_video_audio_and_omni():
    from types import SimpleNamespace

    from proguard.train.errors import TrainError
    from proguard.train.recipe import load_recipe
    from proguard.train.rollout import VLLMRollout

    backend = VLLMRollout(load_recipe(ROOT / "recipes" / "tiny" / "grpo_cpu.yaml"))
    vl = SimpleNamespace(model_type="qwen2_5_vl")
    backend.check_media({"text", "image", "text_image"}, vl)  # images: TRL's vLLM path takes them
    with pytest.raises(TrainError, match=r"rollout.backend: vllm .* audio, text_video samples.*Use rollout.backend: hf"):
        backend.check_media({"text", "audio", "text_video"}, vl)
    with pytest.raises(TrainError, match="the policy is an omni model"):
        backend.check_media({"text"}, SimpleNamespace(model_type="qwen2_5_omni_thinker"))


@pytest.fixture(scope="module")
def tiny_omni_parts():
    from transformers import AutoConfig

    from proguard.data import BUNDLED_SAMPLES, load_samples
    from proguard.models.tiny_omni import load_omni_inputs, tiny_omni_path
    from proguard.tasks.generator import default_tasks
    from taxonomy import load_taxonomy

    path = tiny_omni_path()
    tax = load_taxonomy("default")
    ds = default_tasks(load_samples(BUNDLED_SAMPLES, tax), tax)
    return load_omni_inputs(path), AutoConfig.from_pretrained(path), ds
