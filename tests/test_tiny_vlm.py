"""The offline tiny Qwen2.5-VL builder produces a real, reloadable, working VLM."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from transformers import (  # noqa: E402
    AutoModelForImageTextToText,
    AutoProcessor,
    AutoTokenizer,
    Qwen2_5_VLForConditionalGeneration,
)

from proguard.models.tiny_vlm import (  # noqa: E402
    CHAT_TEMPLATE,
    SPECIAL_TOKENS,
    build_tiny_vlm,
    default_processor_layout,
    expected_image_tokens,
    make_test_image,
    tiny_vlm_path,
)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One fresh build (not the shared cache) for the reload tests."""
    return build_tiny_vlm(tmp_path_factory.mktemp("tiny_vlm") / "model", seed=0)


@pytest.fixture(scope="module")
def loaded(built):
    processor = AutoProcessor.from_pretrained(built)
    model = AutoModelForImageTextToText.from_pretrained(built).eval()
    return processor, model


def _image_prompt(processor, image, text="Is this image safe? Answer with safe or unsafe."):
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return prompt, processor(text=[prompt], images=[image], return_tensors="pt")


def test_build_writes_reloadable_checkpoint(built):
    for name in ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json"):
        assert (built / name).is_file(), name
    meta = json.loads((built / "proguard_tiny_vlm.json").read_text())
    assert meta["processor_layout"] == default_processor_layout()

    tokenizer = AutoTokenizer.from_pretrained(built)
    processor = AutoProcessor.from_pretrained(built)
    model = AutoModelForImageTextToText.from_pretrained(built)

    assert isinstance(model, Qwen2_5_VLForConditionalGeneration)
    assert isinstance(processor, transformers.ProcessorMixin)
    assert type(processor).__name__ == meta["processor_class"]
    text_cfg = model.config.text_config
    assert text_cfg.hidden_size // text_cfg.num_attention_heads == 32  # vLLM CPU backend head_dim
    assert sum(text_cfg.rope_parameters["mrope_section"]) == 32 // 2
    assert text_cfg.vocab_size >= len(tokenizer)

    # Special tokens exist as single tokens and the config points at them.
    for tok in SPECIAL_TOKENS:
        tid = tokenizer.convert_tokens_to_ids(tok)
        assert tid != tokenizer.unk_token_id and tokenizer.convert_ids_to_tokens(tid) == tok
    assert model.config.image_token_id == tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert model.config.video_token_id == tokenizer.convert_tokens_to_ids("<|video_pad|>")
    assert model.config.vision_start_token_id == tokenizer.convert_tokens_to_ids("<|vision_start|>")
    assert model.config.vision_end_token_id == tokenizer.convert_tokens_to_ids("<|vision_end|>")
    assert processor.image_token == "<|image_pad|>"
    assert processor.tokenizer.image_token_id == model.config.image_token_id

    # eos / pad wiring (TRL mirrors pad onto the model and stops on every eos).
    assert tokenizer.eos_token == "<|im_end|>"
    assert tokenizer.pad_token == "<|endoftext|>"
    gen = model.generation_config
    assert tokenizer.eos_token_id in gen.eos_token_id
    assert tokenizer.convert_tokens_to_ids("<|endoftext|>") in gen.eos_token_id
    assert gen.pad_token_id == tokenizer.pad_token_id

    # Both loaders give the same tokenizer; text round-trips exactly.
    text = "<think>The Request is harmful.</think>\n<answer>Request: unsafe\nCategory: C1S2</answer>"
    assert processor.tokenizer(text).input_ids == tokenizer(text).input_ids
    assert tokenizer.decode(tokenizer(text).input_ids) == text
    assert len(tokenizer(text).input_ids) < len(text) / 2  # the BPE learned real merges


def test_chat_template_renders_image_parts(loaded):
    processor, _ = loaded
    assert processor.chat_template == CHAT_TEMPLATE
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe it."}]},
        {"role": "assistant", "content": "A square."},
    ]
    rendered = processor.apply_chat_template(messages, tokenize=False)
    assert rendered == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Describe it.<|im_end|>\n"
        "<|im_start|>assistant\nA square.<|im_end|>\n"
    )
    with_prompt = processor.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
    assert with_prompt.endswith("<|im_end|>\n<|im_start|>assistant\n")


@pytest.mark.parametrize("size", [56, 100])
def test_image_token_alignment(loaded, size):
    processor, model = loaded
    image = make_test_image(size=size, seed=3)
    _, inputs = _image_prompt(processor, image)
    grid = inputs["image_grid_thw"]
    assert grid.shape == (1, 3)
    merge = processor.image_processor.merge_size
    implied = int(grid.prod()) // merge**2
    n_pad = int((inputs["input_ids"] == model.config.image_token_id).sum())
    assert n_pad == implied == expected_image_tokens(processor, image)
    # One pixel_values row per (temporal x spatial) patch.
    assert inputs["pixel_values"].shape[0] == int(grid.prod())
    if size == 56:
        assert n_pad == 4  # 56x56 -> 4x4 patches -> 2x2 merged tokens
    assert 4 <= n_pad <= 16  # the tiny pixel budget


def test_generate_with_image(loaded):
    processor, model = loaded
    _, inputs = _image_prompt(processor, make_test_image(56, seed=1))
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert out.shape[0] == 1
    assert out.shape[1] > inputs["input_ids"].shape[1]
    assert out.shape[1] <= inputs["input_ids"].shape[1] + 4
    assert torch.equal(out[:, : inputs["input_ids"].shape[1]], inputs["input_ids"])
    decoded = processor.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert isinstance(decoded[0], str)


def test_generate_batched_images_left_padded(built):
    processor = AutoProcessor.from_pretrained(built, padding_side="left")
    model = AutoModelForImageTextToText.from_pretrained(built).eval()
    texts, images = [], []
    for i, question in enumerate(["Safe?", "Is the request in this picture harmful or harmless?"]):
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
        texts.append(processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
        images.append(make_test_image(56 + 28 * i, seed=i))
    inputs = processor(text=texts, images=images, padding=True, return_tensors="pt")
    n_pad = (inputs["input_ids"] == model.config.image_token_id).sum(dim=1)
    assert n_pad.tolist() == [expected_image_tokens(processor, im) for im in images]
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert out.shape[0] == 2 and out.shape[1] > inputs["input_ids"].shape[1]


def test_generate_text_only(loaded):
    processor, model = loaded
    messages = [{"role": "user", "content": [{"type": "text", "text": "How do I bake bread?"}]}]
    inputs = processor.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    assert "pixel_values" not in inputs
    assert not (inputs["input_ids"] == model.config.image_token_id).any()
    with torch.no_grad():
        out = model.generate(
            input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], max_new_tokens=4, do_sample=False
        )
    assert out.shape[1] > inputs["input_ids"].shape[1]


def test_apply_chat_template_tokenize_with_image(loaded):
    """The path TRL's GRPOTrainer takes: images inside the messages, tokenize=True."""
    processor, model = loaded
    image = make_test_image(56, seed=2)
    messages = [[{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": "Hi"}]}]]
    inputs = processor.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    assert int((inputs["input_ids"] == model.config.image_token_id).sum()) == expected_image_tokens(processor, image)
    assert "image_grid_thw" in inputs and "pixel_values" in inputs


def test_same_seed_same_weights_different_seed_differs(tmp_path, built):
    again = build_tiny_vlm(tmp_path / "again", seed=0)
    other = build_tiny_vlm(tmp_path / "other", seed=1)
    ref = Qwen2_5_VLForConditionalGeneration.from_pretrained(built).state_dict()
    same = Qwen2_5_VLForConditionalGeneration.from_pretrained(again).state_dict()
    diff = Qwen2_5_VLForConditionalGeneration.from_pretrained(other).state_dict()
    assert ref.keys() == same.keys() == diff.keys()
    assert all(torch.equal(ref[k], same[k]) for k in ref)
    assert any(not torch.equal(ref[k], diff[k]) for k in ref)
    # The tokenizer is seed-independent and deterministic.
    assert (built / "tokenizer.json").read_bytes() == (again / "tokenizer.json").read_bytes()
    assert (built / "tokenizer.json").read_bytes() == (other / "tokenizer.json").read_bytes()


def test_build_does_not_touch_global_rng(tmp_path):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_tiny_vlm(tmp_path / "m", seed=7)
    assert torch.equal(torch.rand(3), expected)


def test_tiny_vlm_path_caches(tmp_path):
    first = tiny_vlm_path(tmp_path)
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert tiny_vlm_path(tmp_path) == first
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp
    # Different build arguments -> different directory.
    other = tiny_vlm_path(tmp_path, seed=1)
    assert other != first and other.parent == first.parent
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([first.name, other.name])  # no scratch left
    # A fresh process (empty memo) reuses the directory on disk.
    from proguard.models import tiny_vlm as mod

    mod._CACHE.clear()
    assert tiny_vlm_path(tmp_path) == first
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp


def test_non_default_processor_layout(tmp_path):
    """The layout not picked by default: a clear error without torchvision, else a working checkpoint."""
    from transformers.utils import is_torchvision_available

    if not is_torchvision_available():
        with pytest.raises(ImportError, match="torchvision"):
            build_tiny_vlm(tmp_path / "m", processor_layout="qwen2_5_vl")
        assert not (tmp_path / "m").exists()
        return
    # With torchvision the default is the hub layout; the CPU fallback must work here too.
    path = build_tiny_vlm(tmp_path / "m", processor_layout="image_only")
    processor = AutoProcessor.from_pretrained(path)
    model = AutoModelForImageTextToText.from_pretrained(path).eval()
    assert type(processor).__name__ == "PaddleOCRVLProcessor"
    image = make_test_image(56)
    _, inputs = _image_prompt(processor, image)
    assert int((inputs["input_ids"] == model.config.image_token_id).sum()) == expected_image_tokens(processor, image)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]


def test_unknown_layout_rejected(tmp_path):
    with pytest.raises(ValueError, match="processor_layout"):
        build_tiny_vlm(tmp_path / "m", processor_layout="video")


def test_make_test_image_deterministic():
    a, b, c = make_test_image(), make_test_image(), make_test_image(seed=1)
    assert a.size == (56, 56) and a.mode == "RGB"
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()
    assert make_test_image(size=80).size == (80, 80)
    assert len(a.getcolors(maxcolors=56 * 56)) > 2  # not a blank canvas
