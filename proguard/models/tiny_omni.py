"""A tiny, randomly initialised Qwen2.5-Omni *thinker* built offline: the omni recipe's policy and the tests'.

``build_tiny_omni`` assembles in a few seconds, in-process, with no download:

* a real ``Qwen2_5OmniThinkerForConditionalGeneration`` (text out only; the talker and token2wav
  that speak are not part of a guard) from a miniature config: text hidden 128, 2 layers, 4/2
  heads; vision tower 1 block, hidden 64; audio tower 1 layer, d_model 64, 128 mel bins;
* the tiny VLM's locally trained byte-level BPE tokenizer (same corpus and builder,
  proguard/models/tiny_vlm.py) carrying Qwen2.5-Omni's special tokens in the real ID order
  (``<|AUDIO|>``, ``<|audio_bos|>`` ... ``<|IMAGE|>``, ``<|VIDEO|>``) and Qwen2.5-Omni's chat
  template, so ``image`` / ``video`` / ``audio`` content parts render as the real placeholders;
* the real feature extractor (``WhisperFeatureExtractor``, 128 mel bins, 16 kHz) and the Qwen2-VL
  image processor (PIL backend) with a tiny pixel budget (a 56x56 image -> 4 tokens).

The checkpoint is written with ``save_pretrained``; ``load_omni_inputs`` reloads its input side as
an ``OmniInputs`` (proguard/models/omni_inputs.py says why that, not ``Qwen2_5OmniProcessor``:
no CPU torchvision here, and the Omni processor cannot exist without a video processor).
Cached per user like the tiny VLM (``tiny_omni_path``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from proguard.models import tiny_vlm

BUILDER_VERSION = "1"

# Qwen2.5-Omni's added tokens in the real tokenizer's order (151643 <|endoftext|> ... 151656 <|VIDEO|>).
SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|AUDIO|>",
    "<|audio_bos|>",
    "<|audio_eos|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_bos|>",
    "<|vision_eos|>",
    "<|vision_pad|>",
    "<|IMAGE|>",
    "<|VIDEO|>",
)
NAMED_TOKENS = {
    "image_token": "<|IMAGE|>",
    "video_token": "<|VIDEO|>",
    "audio_token": "<|AUDIO|>",
    "vision_bos_token": "<|vision_bos|>",
    "vision_eos_token": "<|vision_eos|>",
    "audio_bos_token": "<|audio_bos|>",
    "audio_eos_token": "<|audio_eos|>",
}

# Qwen2.5-Omni's chat template (the hub one, without its default "virtual human" system text).
CHAT_TEMPLATE = (
    "{% set audio_count = namespace(value=0) %}{% set image_count = namespace(value=0) %}"
    "{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}<|vision_bos|><|IMAGE|><|vision_eos|>"
    "{% elif content['type'] == 'audio' or 'audio' in content or 'audio_url' in content %}"
    "{% set audio_count.value = audio_count.value + 1 %}"
    "{% if add_audio_id %}Audio {{ audio_count.value }}: {% endif %}<|audio_bos|><|AUDIO|><|audio_eos|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_bos|><|VIDEO|><|vision_eos|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

NUM_MEL_BINS = 128
_METADATA_FILE = "proguard_tiny_omni.json"
FEATURE_EXTRACTOR_FILE = "feature_extractor_config.json"
"""The Whisper feature extractor's settings (the image processor owns preprocessor_config.json)."""


def _build_feature_extractor():
    from transformers import WhisperFeatureExtractor

    # Qwen2.5-Omni's settings: 128 mel bins, 16 kHz, 10 ms hop, a 30 s window.
    return WhisperFeatureExtractor(feature_size=NUM_MEL_BINS, sampling_rate=16000, hop_length=160, chunk_length=30, n_fft=400)


def _build_config(tokenizer, *, hidden_size: int, num_layers: int, num_heads: int, num_kv_heads: int,
                  intermediate_size: int, vision_depth: int, vision_hidden_size: int, audio_layers: int,
                  audio_d_model: int):
    from transformers import Qwen2_5OmniThinkerConfig

    head_dim = hidden_size // num_heads
    half = head_dim // 2
    t_section = half // 4
    h_section = (half - t_section) // 2
    ids = {tok: tokenizer.convert_tokens_to_ids(tok) for tok in SPECIAL_TOKENS}
    vocab_size = -(-len(tokenizer) // 64) * 64
    text_config = dict(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=4096,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 1_000_000.0,
            "mrope_section": [t_section, h_section, half - t_section - h_section],
        },
        tie_word_embeddings=False,
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
    )
    vision_config = dict(
        depth=vision_depth,
        hidden_size=vision_hidden_size,
        intermediate_size=2 * vision_hidden_size,
        num_heads=2,
        patch_size=tiny_vlm._PATCH_SIZE,
        spatial_merge_size=tiny_vlm._MERGE_SIZE,
        temporal_patch_size=tiny_vlm._TEMPORAL_PATCH_SIZE,
        window_size=112,
        out_hidden_size=hidden_size,
        fullatt_block_indexes=[vision_depth - 1],
    )
    audio_config = dict(
        num_mel_bins=NUM_MEL_BINS,
        encoder_layers=audio_layers,
        encoder_attention_heads=2,
        encoder_ffn_dim=2 * audio_d_model,
        d_model=audio_d_model,
        output_dim=hidden_size,
        n_window=100,
        max_source_positions=1500,
    )
    return Qwen2_5OmniThinkerConfig(
        text_config=text_config,
        vision_config=vision_config,
        audio_config=audio_config,
        audio_token_index=ids["<|AUDIO|>"],
        image_token_index=ids["<|IMAGE|>"],
        video_token_index=ids["<|VIDEO|>"],
        audio_start_token_id=ids["<|audio_bos|>"],
        audio_end_token_id=ids["<|audio_eos|>"],
        vision_start_token_id=ids["<|vision_bos|>"],
        user_token_id=tokenizer.convert_tokens_to_ids("user") if "user" in tokenizer.get_vocab() else ids["<|im_start|>"],
        position_id_per_seconds=25,
        seconds_per_chunk=2,
        tie_word_embeddings=False,
    )


def build_tiny_omni(
    out_dir: str | os.PathLike[str],
    *,
    seed: int = 0,
    hidden_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 256,
    vision_depth: int = 1,
    vision_hidden_size: int = 64,
    audio_layers: int = 1,
    audio_d_model: int = 64,
    vocab_size: int = 2000,
) -> Path:
    """Build and save a tiny random Qwen2.5-Omni thinker checkpoint into ``out_dir`` (same args -> same weights)."""
    import torch
    import transformers
    from transformers import GenerationConfig, Qwen2_5OmniThinkerForConditionalGeneration

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = tiny_vlm._build_tokenizer(vocab_size, SPECIAL_TOKENS, NAMED_TOKENS, CHAT_TEMPLATE)
    image_processor = tiny_vlm._build_image_processor("image_only")
    feature_extractor = _build_feature_extractor()
    config = _build_config(
        tokenizer, hidden_size=hidden_size, num_layers=num_layers, num_heads=num_heads, num_kv_heads=num_kv_heads,
        intermediate_size=intermediate_size, vision_depth=vision_depth, vision_hidden_size=vision_hidden_size,
        audio_layers=audio_layers, audio_d_model=audio_d_model,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2_5OmniThinkerForConditionalGeneration(config)
    model = model.to(torch.float32).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=[tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")],
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    image_processor.save_pretrained(out)
    (out / FEATURE_EXTRACTOR_FILE).write_text(feature_extractor.to_json_string())
    metadata = {
        "builder_version": BUILDER_VERSION,
        "transformers_version": transformers.__version__,
        "params": {
            "seed": seed, "hidden_size": hidden_size, "num_layers": num_layers, "num_heads": num_heads,
            "num_kv_heads": num_kv_heads, "intermediate_size": intermediate_size, "vision_depth": vision_depth,
            "vision_hidden_size": vision_hidden_size, "audio_layers": audio_layers, "audio_d_model": audio_d_model,
            "vocab_size": vocab_size,
        },
        "tokenizer_size": len(tokenizer),
    }
    (out / _METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
    return out


def is_tiny_omni(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a checkpoint ``build_tiny_omni`` wrote."""
    return (Path(path) / _METADATA_FILE).is_file()


def has_omni_inputs(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` holds an ``OmniInputs`` layout (the tiny thinker, or a policy trained from it)."""
    return (Path(path) / FEATURE_EXTRACTOR_FILE).is_file()


def save_omni_inputs(inputs, out_dir: str | os.PathLike[str]) -> None:
    """Write an ``OmniInputs``' tokenizer, image processor and feature extractor so ``load_omni_inputs`` reloads them."""
    out = Path(out_dir)
    inputs.tokenizer.save_pretrained(out)
    inputs.image_processor.save_pretrained(out)
    if inputs.feature_extractor is not None:
        (out / FEATURE_EXTRACTOR_FILE).write_text(inputs.feature_extractor.to_json_string())


def load_omni_inputs(path: str | os.PathLike[str], *, fps: float = 2.0):
    """The input side of an omni (or VL) checkpoint as an ``OmniInputs``: tokenizer, image processor, audio features.

    Reads a tiny-omni checkpoint's files directly; for any other checkpoint the parts come from its
    ``AutoProcessor`` (whose video processor is used when torchvision makes one).
    """
    from transformers import AutoTokenizer, WhisperFeatureExtractor

    from proguard.models.omni_inputs import OmniInputs

    p = Path(path)
    if has_omni_inputs(p):
        tokenizer = AutoTokenizer.from_pretrained(p)
        image_processor = tiny_vlm._build_image_processor("image_only").from_pretrained(p)
        fe = WhisperFeatureExtractor.from_dict(json.loads((p / FEATURE_EXTRACTOR_FILE).read_text()))
        return OmniInputs(tokenizer, image_processor, fe, fps=fps)
    from transformers import AutoProcessor

    proc = AutoProcessor.from_pretrained(str(path))
    return OmniInputs(
        proc.tokenizer,
        proc.image_processor,
        getattr(proc, "feature_extractor", None),
        getattr(proc, "video_processor", None),
        fps=fps,
    )


_CACHE_LOCK = threading.Lock()
_CACHE: dict[tuple[str, str], Path] = {}


def default_cache_dir() -> Path:
    """Per user: ``$XDG_CACHE_HOME/proguard/tiny-omni`` (else ``~/.cache/...``)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "proguard" / "tiny-omni"


def tiny_omni_path(cache_dir: str | os.PathLike[str] | None = None, **build_kwargs: Any) -> Path:
    """Path of a tiny omni thinker checkpoint, built on first use and reused (atomic rename, like tiny_vlm_path)."""
    import transformers

    root = Path(cache_dir or os.environ.get("PROGUARD_TINY_OMNI_CACHE") or default_cache_dir())
    payload = json.dumps({"v": BUILDER_VERSION, "transformers": transformers.__version__, **build_kwargs}, sort_keys=True)
    key = hashlib.sha256(payload.encode()).hexdigest()[:16]
    with _CACHE_LOCK:
        memo = (str(root.resolve()), key)
        if memo in _CACHE and is_tiny_omni(_CACHE[memo]):
            return _CACHE[memo]
        final = root / f"tiny-qwen2_5_omni-thinker-{key}"
        if not is_tiny_omni(final):
            root.mkdir(parents=True, exist_ok=True)
            scratch = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=root))
            try:
                build_tiny_omni(scratch, **build_kwargs)
                try:
                    os.rename(scratch, final)
                except OSError:
                    if not is_tiny_omni(final):
                        raise
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        _CACHE[memo] = final
        return final
