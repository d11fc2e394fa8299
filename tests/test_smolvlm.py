"""The SmolVLM-architecture policy (``smolvlm-smollm2``): an Idefics3 model whose language half is a pretrained Llama.

Fast tests build the hybrid in-process over a tiny random Llama (a locally trained ChatML tokenizer, 2
layers): the checkpoint reloads with the Auto classes, its text-only logits are the text model's, an image
costs ``image_seq_len`` tokens and changes the prediction, the cache builds once, and the training paths'
checks (image-token alignment, prompt lengths, text-only micro-batches, SFT assistant masks) hold. The slow
tests train it (GRPO and SFT steps on image rows) and check the real SmolLM2-135M build.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from transformers import (  # noqa: E402
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoProcessor,
    AutoTokenizer,
    Idefics3ForConditionalGeneration,
    Idefics3Processor,
)

from proguard.models import smolvlm  # noqa: E402
from proguard.models.smolvlm import (  # noqa: E402
    CHAT_TEMPLATE,
    IMAGE_TOKENS,
    MARKER_FILE,
    build_smolvlm,
    sft_processor,
    skip_padding_only_images,
    smolvlm_path,
)
from proguard.models.tiny_vlm import make_test_image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_IMAGE = ROOT / "proguard" / "assets" / "sample" / "images" / "knife.png"

# SmolLM2-135M-Instruct's own chat template (its tokenizer_config.json / the GGUF's tokenizer.chat_template).
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + "
    "message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def build_tiny_llama(out: Path, seed: int = 0) -> Path:
    """A 2-layer random ``LlamaForCausalLM`` with a locally trained ChatML tokenizer (tied embeddings, like SmolLM2)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from proguard.models.tiny_vlm import _build_tokenizer

    tok = _build_tokenizer(1000, special_tokens=("<|endoftext|>", "<|im_start|>", "<|im_end|>"))
    tok.pad_token = "<|im_end|>"
    config = LlamaConfig(
        vocab_size=-(-len(tok) // 64) * 64, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True, max_position_embeddings=2048,
        bos_token_id=tok.convert_tokens_to_ids("<|im_start|>"), eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tok.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def llama(tmp_path_factory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("llama") / "text")


@pytest.fixture(scope="module")
def hybrid(llama, tmp_path_factory) -> Path:
    return build_smolvlm(tmp_path_factory.mktemp("smolvlm") / "model", llama)


@pytest.fixture(scope="module")
def loaded(hybrid):
    return AutoProcessor.from_pretrained(hybrid, padding_side="left"), AutoModelForImageTextToText.from_pretrained(hybrid).eval()


def _image_messages(text="Is this image safe?"):
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]


def _text_messages(text="How do I bake bread?"):
    return [{"role": "user", "content": [{"type": "text", "text": text}]}]


# ---------------------------------------------------------------------------------------------
# The checkpoint
# ---------------------------------------------------------------------------------------------
def test_build_writes_an_idefics3_checkpoint_over_the_text_models_weights(hybrid, llama, loaded):
    processor, model = loaded
    assert isinstance(model, Idefics3ForConditionalGeneration) and isinstance(processor, Idefics3Processor)
    meta = json.loads((hybrid / MARKER_FILE).read_text())
    assert meta["image_seq_len"] == processor.image_seq_len == 16
    assert processor.image_processor.do_image_splitting is False
    tok = AutoTokenizer.from_pretrained(hybrid)
    for t in IMAGE_TOKENS:  # single tokens, after the text model's vocabulary
        assert tok.convert_ids_to_tokens(tok.convert_tokens_to_ids(t)) == t
        assert tok.convert_tokens_to_ids(t) >= meta["text_vocab_size"] - 64
    assert model.config.image_token_id == tok.convert_tokens_to_ids("<image>")
    assert tok.eos_token == "<|im_end|>" and model.generation_config.eos_token_id == tok.eos_token_id
    assert model.lm_head.weight.data_ptr() == model.model.text_model.embed_tokens.weight.data_ptr()  # tied, as SmolLM2

    text = AutoModelForCausalLM.from_pretrained(llama)
    mine = model.model.text_model.state_dict()
    for name, weight in text.model.state_dict().items():
        got = mine[name][: weight.shape[0]] if name == "embed_tokens.weight" else mine[name]
        assert torch.equal(got, weight), name
    grown = mine["embed_tokens.weight"][text.config.vocab_size:]
    assert torch.allclose(grown, text.model.embed_tokens.weight.mean(0).expand_as(grown))


def test_text_only_predictions_are_the_text_models(llama, loaded):
    processor, model = loaded
    text = AutoModelForCausalLM.from_pretrained(llama).eval()
    prompt = processor.apply_chat_template(_text_messages(), add_generation_prompt=True, tokenize=False)
    ids = processor.tokenizer(prompt, return_tensors="pt").input_ids
    assert torch.equal(ids, AutoTokenizer.from_pretrained(llama)(prompt, return_tensors="pt").input_ids)
    with torch.no_grad():
        want, got = text(ids).logits, model(input_ids=ids).logits
    assert torch.equal(got[..., : want.shape[-1]], want)
    out_text = text.generate(ids, max_new_tokens=6, do_sample=False, pad_token_id=text.config.pad_token_id)
    out_vlm = model.generate(input_ids=ids, max_new_tokens=6, do_sample=False)
    assert torch.equal(out_text, out_vlm)


def test_an_image_costs_image_seq_len_tokens_and_changes_the_prediction(loaded):
    processor, model = loaded
    image_id = model.config.image_token_id
    prompt = processor.apply_chat_template(_image_messages(), add_generation_prompt=True, tokenize=False)
    assert "<|im_start|>user\n<image>Is this image safe?<|im_end|>" in prompt
    text_prompt = processor.apply_chat_template(_text_messages(), add_generation_prompt=True, tokenize=False)
    logits = []
    for image in (make_test_image(64, 1), make_test_image(64, 2), make_test_image(40, 3).resize((90, 40))):
        enc = processor(text=[prompt, text_prompt], images=[[image], []], padding=True, return_tensors="pt")
        assert (enc.input_ids == image_id).sum(1).tolist() == [16, 0]  # any size: one 64x64 square, no splitting
        assert tuple(enc.pixel_values.shape) == (2, 1, 3, 64, 64)
        with torch.no_grad():
            logits.append(model(**enc).logits)
    assert not torch.allclose(logits[0][0, -1], logits[1][0, -1])  # the vision tower feeds the text model
    alone = processor(text=[text_prompt], return_tensors="pt")
    with torch.no_grad():
        solo = model(**alone).logits[0]
    n = solo.shape[0]
    assert torch.allclose(logits[0][1, -n:], solo, atol=1e-5)  # the other row's image does not leak into a text row


def test_same_arguments_same_weights_and_the_seed_moves_only_the_vision_half(llama, hybrid, tmp_path):
    from safetensors.torch import load_file

    base = load_file(str(hybrid / "model.safetensors"))
    again = load_file(str(build_smolvlm(tmp_path / "again", llama) / "model.safetensors"))
    other = load_file(str(build_smolvlm(tmp_path / "other", llama, seed=1) / "model.safetensors"))
    assert base.keys() == again.keys() == other.keys()
    assert all(torch.equal(base[k], again[k]) for k in base)
    vision = [k for k in base if "vision_model" in k or "connector" in k]
    text = [k for k in base if k not in vision]
    assert vision and text
    assert all(torch.equal(base[k], other[k]) for k in text)
    assert any(not torch.equal(base[k], other[k]) for k in vision)


def test_build_refuses_a_text_model_without_chatml(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=64)).save_pretrained(tmp_path / "gpt2")
    with pytest.raises(ValueError, match="the SmolVLM text model must be a llama one"):
        build_smolvlm(tmp_path / "out", tmp_path / "gpt2")


# ---------------------------------------------------------------------------------------------
# The chat template
# ---------------------------------------------------------------------------------------------
def test_chat_template_renders_text_like_smollm2_and_images_as_placeholders(loaded):
    processor, _ = loaded
    tok = processor.tokenizer
    for conversation in (
        [{"role": "user", "content": "Hi there"}],
        [{"role": "system", "content": "You are a guard."}, {"role": "user", "content": "Is this safe?"},
         {"role": "assistant", "content": "<answer>safe</answer>"}],
    ):
        for gen in (True, False):
            want = tok.apply_chat_template(conversation, chat_template=SMOLLM2_TEMPLATE, tokenize=False,
                                           add_generation_prompt=gen)
            assert tok.apply_chat_template(conversation, chat_template=CHAT_TEMPLATE, tokenize=False,
                                           add_generation_prompt=gen) == want
            parts = [{**m, "content": [{"type": "text", "text": m["content"]}]} for m in conversation]
            assert processor.apply_chat_template(parts, tokenize=False, add_generation_prompt=gen) == want
    two = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "a"}, {"type": "image"}]}]
    assert "<|im_start|>user\n<image>a<image><|im_end|>\n" in processor.apply_chat_template(two, tokenize=False)


def test_sft_processor_masks_exactly_the_assistant_turn_on_mixed_batches(hybrid):
    """TRL's SFT collator call on a (text row, image row) batch: transformers' stock Idefics3Processor fails it."""
    processor = sft_processor(AutoProcessor.from_pretrained(hybrid))
    image = make_test_image(64, 1)
    rows = [
        [*_text_messages(), {"role": "assistant", "content": [{"type": "text", "text": "<answer>safe</answer>"}]}],
        [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": "Safe?"}]},
         {"role": "assistant", "content": [{"type": "text", "text": "<answer>unsafe</answer>"}]}],
    ]
    out = processor.apply_chat_template(
        rows, tokenize=True, return_dict=True, return_tensors="pt", return_assistant_tokens_mask=True,
        processor_kwargs={"padding": True, "padding_side": "right", "add_special_tokens": False},
    )
    assert isinstance(out["input_ids"], torch.Tensor) and tuple(out["pixel_values"].shape[:2]) == (2, 1)
    decoded = [processor.tokenizer.decode(ids[mask.bool()]) for ids, mask in zip(out["input_ids"], out["assistant_masks"])]
    assert decoded == ["<answer>safe</answer><|im_end|>", "<answer>unsafe</answer><|im_end|>"]
    assert type(processor).__name__ == "Idefics3Processor"  # what it saves is the stock class
    assert sft_processor(processor.tokenizer) is processor.tokenizer  # anything else passes through


def test_text_only_micro_batches_run_with_their_padding_images(loaded):
    """A slice of a mixed batch holding only text rows carries all-zero images; the hook makes it a text forward."""
    processor, model = loaded
    text_prompt = processor.apply_chat_template(_text_messages(), add_generation_prompt=True, tokenize=False)
    enc = processor(text=[text_prompt], return_tensors="pt")
    zeros = {"pixel_values": torch.zeros(1, 1, 3, 64, 64), "pixel_attention_mask": torch.zeros(1, 1, 64, 64, dtype=torch.long)}
    hooked = AutoModelForImageTextToText.from_pretrained(model.name_or_path).eval()
    assert skip_padding_only_images(hooked) is True
    assert skip_padding_only_images(hooked) is False  # once per model
    with torch.no_grad():
        assert torch.equal(hooked(**enc, **zeros).logits, model(**enc).logits)
    assert skip_padding_only_images(None) is False


# ---------------------------------------------------------------------------------------------
# The training checks
# ---------------------------------------------------------------------------------------------
def _task_rows(n_text: int = 2, n_image: int = 2):
    import datasets

    rows = []
    for i in range(n_text + n_image):
        is_image = i >= n_text
        content = ([{"type": "image"}] if is_image else []) + [{"type": "text", "text": f"Is request {i} safe? Answer."}]
        rows.append({"task_id": f"t{i}", "prompt": [{"role": "user", "content": content}],
                     "modality": "image" if is_image else "text", "request_label": "unsafe" if i % 2 else "safe",
                     "image": str(SAMPLE_IMAGE) if is_image else None})
    return datasets.Dataset.from_list(rows).cast_column("image", datasets.Image())


def test_image_token_checks_and_prompt_lengths_hold_for_idefics3(loaded):
    from proguard.train.checks import check_image_token_alignment, prompt_lengths

    processor, model = loaded
    ds = _task_rows()
    alignment = check_image_token_alignment(processor, model.config, ds)
    assert (alignment.row, alignment.prompt_tokens, alignment.forward_tokens, alignment.vision_features) == (2, 16, 16, 16)
    want = []
    for row in ds:
        text = processor.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=False)
        images = [[row["image"].convert("RGB")]] if row["image"] is not None else None
        want.append(len(processor(text=[text], images=images)["input_ids"][0]))
    assert prompt_lengths(processor, ds) == want


def test_a_mismatched_image_token_count_is_an_error(loaded):
    from proguard.train.checks import check_image_token_alignment
    from proguard.train.errors import TrainError

    processor, model = loaded
    config = model.config.__class__.from_dict(model.config.to_dict())
    config.scale_factor = 4  # the model would make 4 features per image; the processor writes 16 tokens
    with pytest.raises(TrainError, match=r"16 image tokens.*makes 4 features \(pixel_values .*scale_factor 4\)"):
        check_image_token_alignment(processor, config, _task_rows())


# ---------------------------------------------------------------------------------------------
# The cache and the name
# ---------------------------------------------------------------------------------------------
def test_smolvlm_path_builds_once_into_a_per_user_cache(llama, tmp_path, monkeypatch):
    calls = []
    real = smolvlm.build_smolvlm
    monkeypatch.setattr(smolvlm, "build_smolvlm", lambda *a, **k: calls.append(a) or real(*a, **k))
    cache = tmp_path / "cache"
    first = smolvlm_path(llama, cache_dir=cache)
    assert smolvlm_path(llama, cache_dir=cache) == first and len(calls) == 1
    assert [p.name for p in cache.iterdir()] == [first.name]  # the scratch folder was renamed, nothing left
    assert smolvlm_path(llama, cache_dir=cache, seed=1) != first and len(calls) == 2  # arguments key the cache
    (first / MARKER_FILE).unlink()  # an unfinished folder is never used: rebuilt
    assert smolvlm_path(llama, cache_dir=cache) == first and len(calls) == 3 and (first / MARKER_FILE).is_file()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("PROGUARD_SMOLVLM_CACHE", raising=False)
    assert smolvlm.default_cache_dir() == tmp_path / "xdg" / "proguard" / "smolvlm-smollm2"
    with pytest.raises(TypeError, match="unknown build arguments vision_depth"):
        smolvlm_path(llama, cache_dir=cache, vision_depth=2)


def test_the_name_resolves_everywhere_a_model_is_accepted(monkeypatch, tmp_path):
    from proguard.hub import NAMED_MODELS, check_model_source
    from proguard.models import named

    assert "smolvlm-smollm2" in NAMED_MODELS and "smolvlm-smollm2" in named.NAMED_MODELS
    assert check_model_source("smolvlm-smollm2") == "smolvlm-smollm2"
    monkeypatch.setattr(smolvlm, "smolvlm_path", lambda: tmp_path)
    assert named.named_model_path("smolvlm-smollm2") == tmp_path


# ---------------------------------------------------------------------------------------------
# Training (slow): GRPO and SFT steps on image rows
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_grpo_and_sft_train_the_hybrid_on_image_rows(hybrid, tmp_path):
    """2 GRPO steps in micro-batches of one prompt's rollouts (text-only ones included), then 2 SFT steps."""
    from proguard.train import train
    from proguard.train.recipe import load_recipe
    from proguard.train.sft import train_sft
    from proguard.train.recipe import load_sft_recipe

    data = tmp_path / "tasks"
    _task_rows().save_to_disk(str(data))
    seen: list[list[str]] = []

    def reward(completions=None, modality=None, **kwargs):
        seen.append(list(modality))
        return [float(len(c[-1]["content"] if isinstance(c, list) else c) % 3) for c in completions]

    reward.__name__ = "length_mod3"
    before = {k: v.clone() for k, v in AutoModelForImageTextToText.from_pretrained(hybrid).state_dict().items()}
    out = tmp_path / "grpo"
    recipe = load_recipe(ROOT / "recipes" / "tiny" / "grpo_cpu.yaml", [
        f"model.name_or_path={hybrid}", "images.max_pixels=null", f"data.prepared={data}", "data.tasks=null",
        f"output_dir={out}", "lengths.max_completion_length=6", "grpo.per_device_train_batch_size=2",
        "grpo.num_generations=2", "grpo.gradient_accumulation_steps=2", "grpo.max_steps=2", "grpo.beta=0.0",
        "grpo.learning_rate=1e-2", "logging.report_to=[none]", "checkpoint.save_steps=2",
    ])
    final = train(recipe, reward_funcs=[reward])
    assert {m for batch in seen for m in batch} == {"text", "image"}
    after = AutoModelForImageTextToText.from_pretrained(final).state_dict()
    moved = {k.split(".")[1] for k in before if not torch.equal(before[k], after[k])}
    assert {"vision_model", "connector", "text_model"} <= moved  # image rows trained both halves

    sft = load_sft_recipe(ROOT / "recipes" / "tiny" / "sft_cpu.yaml", [
        f"model.name_or_path={final}", "images.max_pixels=null", "data.prompt.examples=false",
        "data.modalities=[image]", "sft.per_device_train_batch_size=2", "sft.max_steps=2",
        "logging.report_to=[none]", "logging.logging_steps=1", "checkpoint.save_steps=2",
        f"output_dir={tmp_path / 'sft'}",
    ])
    sft_final = train_sft(sft)
    assert isinstance(AutoProcessor.from_pretrained(sft_final), Idefics3Processor)
    losses = [m["loss"] for m in map(json.loads, (tmp_path / "sft" / "metrics.jsonl").read_text().splitlines()) if "loss" in m]
    assert len(losses) == 2 and all(0 < loss < 100 for loss in losses)
    tuned = AutoModelForImageTextToText.from_pretrained(sft_final).state_dict()
    assert any(not torch.equal(after[k], tuned[k]) for k in after if ".vision_model." in k)  # image rows reached the tower


# ---------------------------------------------------------------------------------------------
# The real SmolLM2-135M build (slow: converts the wheel once, builds once, ~1 GB RAM)
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_paths():
    from proguard.models.smollm2 import SmolLM2Missing, smollm2_path

    try:
        text = smollm2_path()
    except SmolLM2Missing as exc:  # printed by -rs: the real path is never skipped silently
        pytest.skip(str(exc))
    return text, smolvlm_path(text)


@pytest.mark.slow
def test_the_real_build_speaks_like_smollm2(real_paths):
    text_dir, path = real_paths
    torch.set_num_threads(1)
    processor = AutoProcessor.from_pretrained(path)
    model = AutoModelForImageTextToText.from_pretrained(path).eval()
    text = AutoModelForCausalLM.from_pretrained(text_dir).eval()
    assert model.config.text_config.num_hidden_layers == 30 and model.config.text_config.hidden_size == 576
    prompt = processor.apply_chat_template(_text_messages("What is the capital of France?"), add_generation_prompt=True,
                                           tokenize=False)
    ids = processor.tokenizer(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        want, got = text(ids).logits, model(input_ids=ids).logits
    assert torch.equal(got[..., : want.shape[-1]], want)
    out = model.generate(input_ids=ids, max_new_tokens=12, do_sample=False)
    assert torch.equal(out, text.generate(ids, max_new_tokens=12, do_sample=False))
    assert "Paris" in processor.tokenizer.decode(out[0, ids.shape[1]:])

    from PIL import Image

    with Image.open(SAMPLE_IMAGE) as im:
        image = im.convert("RGB")
    image_prompt = processor.apply_chat_template(_image_messages("Describe the image."), add_generation_prompt=True,
                                                 tokenize=False)
    enc = processor(text=[image_prompt], images=[[image]], return_tensors="pt")
    assert int((enc.input_ids == model.config.image_token_id).sum()) == 16
    with torch.no_grad():
        assert torch.isfinite(model(**enc).logits).all()
