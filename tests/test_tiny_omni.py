"""The tiny Qwen2.5-Omni thinker and OmniInputs: real architecture, placeholders expanded to the features made."""

import numpy as np
import pytest
import torch

from proguard.media.synth import draw_frames, tone
from proguard.models.omni_inputs import audio_tokens_for_frames, patch_videos
from proguard.models.tiny_omni import load_omni_inputs, tiny_omni_path
from proguard.models.tiny_vlm import make_test_image


@pytest.fixture(scope="module")
def omni():
    from transformers import AutoModelForImageTextToText

    path = tiny_omni_path()
    return AutoModelForImageTextToText.from_pretrained(path).eval(), load_omni_inputs(path)


def _prompt(inputs, part):
    content = ([{"type": part}] if part else []) + [{"type": "text", "text": "Assess this."}]
    return inputs.tokenizer.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True,
                                                tokenize=False)


def test_real_architecture_and_placeholders(omni):
    model, inputs = omni
    assert type(model).__name__ == "Qwen2_5OmniThinkerForConditionalGeneration"
    cfg = model.config
    assert (cfg.audio_token_index, cfg.image_token_index, cfg.video_token_index) == (
        inputs.tokens.audio_id, inputs.tokens.image_id, inputs.tokens.video_id)
    assert "<|audio_bos|><|AUDIO|><|audio_eos|>" in _prompt(inputs, "audio")
    assert "<|vision_bos|><|VIDEO|><|vision_eos|>" in _prompt(inputs, "video")
    assert type(inputs.feature_extractor).__name__ == "WhisperFeatureExtractor"


def test_mixed_batch_forward_and_generate(omni):
    model, inputs = omni
    texts = [_prompt(inputs, p) for p in ("image", "video", "audio", None)]
    batch = inputs(texts, images=[[make_test_image()], [], [], []], videos=[[], [draw_frames(4, 56)], [], []],
                   audios=[[], [], [tone(1.0)], []])
    ids = batch["input_ids"]
    assert (ids == inputs.tokens.image_id).sum(-1).tolist() == [4, 0, 0, 0]  # 56x56 -> 4x4 patches / 2x2 merge
    assert (ids == inputs.tokens.video_id).sum(-1).tolist() == [0, 8, 0, 0]  # 4 frames -> 2 temporal x 4
    assert (ids == inputs.tokens.audio_id).sum(-1).tolist() == [0, 0, 25, 0]  # 1 s -> 100 mel frames -> 25
    with torch.no_grad():
        logits = model(**batch).logits
        out = model.generate(**batch, max_new_tokens=4, do_sample=False)
    assert logits.shape[:2] == ids.shape and out.shape == (4, ids.shape[1] + 4)
    assert audio_tokens_for_frames(3000) == 750  # Whisper's 30 s window: 750 audio tokens, as Qwen2.5-Omni


def test_video_patches_match_the_image_processor_on_a_still_clip(omni):
    _, inputs = omni
    ip = inputs.image_processor
    still = make_test_image(seed=4)
    video, grid = patch_videos(ip, [[still, still]])
    image = ip(images=[still], return_tensors="pt")
    # An image is tiled across the temporal patch; a two-frame still clip is the same patches.
    assert grid.tolist() == image["image_grid_thw"].tolist()
    assert torch.allclose(video, image["pixel_values"], atol=1e-6)
    moving, g2 = patch_videos(ip, [draw_frames(3, 56, seed=1)])
    assert g2.tolist() == [[2, 4, 4]] and moving.shape[0] == 2 * 16  # 3 frames padded to 4 (last repeated)


def test_placeholder_count_must_match_the_media(omni):
    _, inputs = omni
    with pytest.raises(ValueError, match="2 audio placeholder"):
        inputs([_prompt(inputs, "audio") + "<|AUDIO|>"], audios=[[np.zeros(16000, np.float32)]])
    with pytest.raises(ValueError, match="video placeholder but no video"):
        inputs([_prompt(inputs, "video")])


def test_qwen2_5_vl_takes_video_through_omni_inputs():
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from proguard.models.omni_inputs import OmniInputs
    from proguard.models.tiny_vlm import tiny_vlm_path

    path = tiny_vlm_path()
    model = AutoModelForImageTextToText.from_pretrained(path).eval()
    proc = AutoProcessor.from_pretrained(path)
    enc = OmniInputs(proc.tokenizer, proc.image_processor, None, getattr(proc, "video_processor", None),
                     video_time_key="second_per_grid_ts")
    text = proc.tokenizer.apply_chat_template(
        [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "hi"}]}], add_generation_prompt=True,
        tokenize=False)
    batch = enc([text, text], videos=[[draw_frames(4, 56)], [draw_frames(6, 56, seed=2)]])
    assert (batch["input_ids"] == model.config.video_token_id).sum(-1).tolist() == [8, 12]  # 2 and 3 temporal x 4
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=3, do_sample=False)
    assert out.shape == (2, batch["input_ids"].shape[1] + 3)
    with pytest.raises(ValueError, match="need a feature extractor"):
        enc([proc.tokenizer.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False)], audios=[[tone(0.5)]])
