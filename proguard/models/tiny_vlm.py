"""A tiny, randomly initialised Qwen2.5-VL checkpoint built offline: the quick start's policy (`model.name_or_path: tiny`) and the tests'.

Nothing here touches the network. :func:`build_tiny_vlm` assembles, in a few
seconds and entirely in-process:

* a real ``Qwen2_5_VLForConditionalGeneration`` from a miniature config
  (text: hidden 128, 4 query heads / 2 KV heads, head_dim 32, 2 layers;
  vision: one block, hidden 64), randomly initialised from ``seed``;
* a byte-level BPE tokenizer trained locally with ``tokenizers`` on a small
  built-in English corpus (with the safety-guard vocabulary the project's
  prompts and rewards use), carrying the Qwen2.5-VL special tokens;
* the real Qwen2.5-VL chat template, so ``{"type": "image"}`` content parts
  render as ``<|vision_start|><|image_pad|><|vision_end|>``;
* a Qwen2-VL image processor with a tiny pixel budget, so a 56x56 image
  becomes 4 image tokens;

and writes it all with ``save_pretrained`` so that ``AutoProcessor``,
``AutoTokenizer`` and ``AutoModelForImageTextToText`` (and TRL's
``GRPOTrainer``, which calls ``AutoProcessor.from_pretrained``) reload it.

Processor decision (why the saved processor class depends on torchvision)
------------------------------------------------------------------------
``Qwen2_5_VLProcessor`` has a mandatory ``video_processor``: its constructor
type-checks every sub-processor, so ``None`` raises ``TypeError``, and on
reload ``ProcessorMixin`` always fetches one through ``AutoVideoProcessor``.
Every video processor in transformers 5.x (``Qwen2VLVideoProcessor``
included) and ``AutoVideoProcessor`` itself require torchvision, and there is
no CPU-only torchvision build for this project's CPU environment. So:

* torchvision importable (the GPU machine): the checkpoint is laid out
  exactly like a hub Qwen2.5-VL checkpoint -- ``Qwen2_5_VLProcessor`` with
  ``Qwen2VLImageProcessor`` and ``Qwen2VLVideoProcessor``. This is also what
  vLLM's Qwen2.5-VL support expects (it asks for a ``Qwen2_5_VLProcessor`` by
  class).
* torchvision absent (CPU test machines): the processor saved is
  ``PaddleOCRVLProcessor``, a stock transformers processor whose
  ``__init__`` takes just ``(image_processor, tokenizer, chat_template)`` and
  whose image handling is the same as Qwen2.5-VL's: it expands each image
  placeholder to ``prod(image_grid_thw) // merge_size**2`` copies of
  ``tokenizer.image_token`` and returns ``mm_token_type_ids``. Paired with the
  PIL-backed ``Qwen2VLImageProcessorPil``, it produces exactly the
  ``input_ids``/``pixel_values``/``image_grid_thw`` that
  ``Qwen2_5_VLProcessor`` would for image+text prompts; only video support is
  missing, and the project never feeds video.

Alternatives rejected: a custom processor class shipped as remote code would
force ``trust_remote_code=True`` on every loader (TRL defaults it to False);
registering a subclass with ``AutoProcessor.register`` only works in
processes that imported this module first (vLLM workers and TRL subprocesses
would not have); monkeypatching ``Qwen2_5_VLProcessor`` or
``AutoVideoProcessor`` changes library behaviour for real checkpoints too.

The layout used is part of the cache key of :func:`tiny_vlm_path`, and is
recorded in ``proguard_tiny_vlm.json`` inside the checkpoint.

Longer than most modules because the whole checkpoint (config, tokenizer, chat template, processor,
weights, cache) is assembled here in one readable pass; splitting it would scatter one recipe.
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

__all__ = [
    "BUILDER_VERSION",
    "CHAT_TEMPLATE",
    "SPECIAL_TOKENS",
    "build_tiny_vlm",
    "default_processor_layout",
    "expected_image_tokens",
    "make_test_image",
    "tiny_vlm_path",
]

# Bump whenever the produced checkpoint changes (corpus, config, layout...):
# it is part of the cache key used by :func:`tiny_vlm_path`.
BUILDER_VERSION = "1"

# Qwen2.5-VL's special tokens, in the order (and so relative id order) the real
# tokenizer has them after its BPE vocabulary.
SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
# Added but not "special" in the real tokenizer (they survive skip_special_tokens).
_NON_SPECIAL_ADDED_TOKENS: tuple[str, ...] = ("<tool_call>", "</tool_call>")

# The chat template shipped with Qwen/Qwen2.5-VL-*-Instruct.
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Qwen2 pre-tokenisation regex (same as transformers' Qwen2Tokenizer).
_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# Image budget: 28*28*4 .. 28*28*16 pixels, i.e. 1..4 merged tokens per side
# product of 4..16 tokens; a 56x56 image gives grid (1, 4, 4) -> 4 tokens.
_PATCH_SIZE = 14
_MERGE_SIZE = 2
_TEMPORAL_PATCH_SIZE = 2
MIN_PIXELS = 28 * 28 * 4
MAX_PIXELS = 28 * 28 * 16

_METADATA_FILE = "proguard_tiny_vlm.json"

CORPUS_FILE = Path(__file__).resolve().parent.parent / "assets" / "tiny_vlm_corpus.json"
"""The tokenizer's training corpus: English prose, the guard vocabulary, category codes and answer shapes."""


def _corpus() -> list[str]:
    """Deterministic training corpus for the BPE tokenizer (``CORPUS_FILE``, a JSON list of texts)."""
    return json.loads(CORPUS_FILE.read_text(encoding="utf-8"))


def default_processor_layout() -> str:
    """``"qwen2_5_vl"`` if torchvision is importable, else ``"image_only"``."""
    from transformers.utils import is_torchvision_available

    return "qwen2_5_vl" if is_torchvision_available() else "image_only"


_VL_NAMED_TOKENS = {
    "image_token": "<|image_pad|>",
    "video_token": "<|video_pad|>",
    "vision_bos_token": "<|vision_start|>",
    "vision_eos_token": "<|vision_end|>",
}


def _build_tokenizer(
    vocab_size: int,
    special_tokens: tuple[str, ...] = SPECIAL_TOKENS,
    named_tokens: dict[str, str] | None = None,
    chat_template: str = CHAT_TEMPLATE,
):
    """A byte-level BPE trained on the built-in corpus, with ``special_tokens`` after its vocabulary.

    ``named_tokens`` become tokenizer attributes (``tokenizer.image_token`` / ``.image_token_id``...)
    that processors read; the defaults are Qwen2.5-VL's (the tiny Omni thinker passes its own).
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers.models.qwen2.tokenization_qwen2 import Qwen2Tokenizer

    # Same pipeline as Qwen2Tokenizer, so reloading from vocab/merges is exact.
    raw = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    raw.normalizer = normalizers.NFC()
    raw.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        show_progress=False,
        special_tokens=[],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    raw.train_from_iterator(_corpus(), trainer=trainer)
    state = json.loads(raw.to_str())
    vocab: dict[str, int] = dict(state["model"]["vocab"])
    # Like the real tokenizer, the added tokens get ids right after the BPE
    # vocabulary, in Qwen's order (<|endoftext|> first, then <|im_start|> ...).
    for token in (*special_tokens, *_NON_SPECIAL_ADDED_TOKENS):
        vocab[token] = len(vocab)
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in state["model"]["merges"]]

    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=None,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=32768,
        errors="replace",
        split_special_tokens=False,
        # Named extra tokens become tokenizer.image_token / .image_token_id etc.
        # Both Qwen2_5_VLProcessor and PaddleOCRVLProcessor read these.
        model_specific_special_tokens=dict(named_tokens or _VL_NAMED_TOKENS),
    )
    from tokenizers import AddedToken

    tokenizer.add_special_tokens(
        {"extra_special_tokens": [AddedToken(t, special=True, normalized=False) for t in special_tokens]},
        replace_extra_special_tokens=False,
    )
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in _NON_SPECIAL_ADDED_TOKENS])
    tokenizer.chat_template = chat_template
    return tokenizer


def _require_torchvision_for(layout: str) -> None:
    from transformers.utils import is_torchvision_available

    if layout == "qwen2_5_vl" and not is_torchvision_available():
        raise ImportError(
            "processor_layout='qwen2_5_vl' needs torchvision (Qwen2_5_VLProcessor requires a video processor and "
            "every transformers video processor needs torchvision); use processor_layout='image_only' or None."
        )


def _build_image_processor(layout: str):
    kwargs = dict(
        size={"shortest_edge": MIN_PIXELS, "longest_edge": MAX_PIXELS},
        patch_size=_PATCH_SIZE,
        temporal_patch_size=_TEMPORAL_PATCH_SIZE,
        merge_size=_MERGE_SIZE,
    )
    if layout == "image_only":
        try:  # transformers >= 5.2x: the PIL backend has its own class
            from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
                Qwen2VLImageProcessorPil as ImageProcessor,
            )
        except ImportError:  # older releases: the base class was the PIL/numpy one
            from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor as ImageProcessor
    else:
        # The hub default (the torchvision backend in current transformers).
        from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor as ImageProcessor
    return ImageProcessor(**kwargs)


def _build_processor(layout: str, tokenizer):
    if layout not in ("qwen2_5_vl", "image_only"):
        raise ValueError(f"unknown processor_layout {layout!r}; expected 'qwen2_5_vl', 'image_only' or None")
    _require_torchvision_for(layout)
    image_processor = _build_image_processor(layout)
    if layout == "qwen2_5_vl":
        # Exactly the hub layout (needs torchvision, see the module docstring).
        from transformers import Qwen2_5_VLProcessor
        from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

        video_processor = Qwen2VLVideoProcessor(
            size={"shortest_edge": MIN_PIXELS, "longest_edge": MAX_PIXELS},
            patch_size=_PATCH_SIZE,
            temporal_patch_size=_TEMPORAL_PATCH_SIZE,
            merge_size=_MERGE_SIZE,
        )
        return Qwen2_5_VLProcessor(
            image_processor=image_processor,
            tokenizer=tokenizer,
            video_processor=video_processor,
            chat_template=CHAT_TEMPLATE,
        )
    # Stock, torchvision-free processor with Qwen2.5-VL's image semantics
    # (see the module docstring for why this class).
    try:
        from transformers import PaddleOCRVLProcessor
    except ImportError as exc:  # pragma: no cover - depends on the transformers release
        raise ImportError(
            "processor_layout='image_only' needs transformers' PaddleOCRVLProcessor, missing from transformers "
            "in this environment; install torchvision and use processor_layout='qwen2_5_vl'."
        ) from exc
    return PaddleOCRVLProcessor(image_processor=image_processor, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE)


def _build_config(
    tokenizer,
    *,
    hidden_size: int,
    num_layers: int,
    num_heads: int,
    num_kv_heads: int,
    intermediate_size: int,
    vision_depth: int,
    vision_hidden_size: int,
    vision_num_heads: int,
):
    from transformers import Qwen2_5_VLConfig

    if hidden_size % num_heads:
        raise ValueError(f"hidden_size {hidden_size} not divisible by num_heads {num_heads}")
    head_dim = hidden_size // num_heads
    if head_dim % 2:
        raise ValueError(f"head_dim {head_dim} must be even")
    # mrope splits the head_dim/2 rotary frequencies into (temporal, height,
    # width) sections; the real model uses [16, 24, 24] for head_dim 128.
    half = head_dim // 2
    t_section = half // 4
    h_section = (half - t_section) // 2
    mrope_section = [t_section, h_section, half - t_section - h_section]

    ids = {tok: tokenizer.convert_tokens_to_ids(tok) for tok in SPECIAL_TOKENS}
    # Room for every token id, rounded up like the real embedding matrix.
    vocab_size = -(-len(tokenizer) // 64) * 64

    text_config = dict(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        hidden_act="silu",
        max_position_embeddings=4096,
        rms_norm_eps=1e-6,
        use_cache=True,
        use_sliding_window=False,
        sliding_window=None,
        max_window_layers=num_layers,
        attention_dropout=0.0,
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": mrope_section},
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
        tie_word_embeddings=False,
    )
    vision_config = dict(
        depth=vision_depth,
        hidden_size=vision_hidden_size,
        hidden_act="silu",
        intermediate_size=2 * vision_hidden_size,
        num_heads=vision_num_heads,
        in_channels=3,
        patch_size=_PATCH_SIZE,
        spatial_merge_size=_MERGE_SIZE,
        temporal_patch_size=_TEMPORAL_PATCH_SIZE,
        tokens_per_second=2,
        window_size=112,
        out_hidden_size=hidden_size,
        # The real model does full attention every 8th block (last of each 8).
        fullatt_block_indexes=[i for i in range(vision_depth) if i % 8 == 7 or i == vision_depth - 1],
    )
    return Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )


def build_tiny_vlm(
    out_dir: str | os.PathLike[str],
    *,
    seed: int = 0,
    hidden_size: int = 128,
    num_layers: int = 2,
    vision_depth: int = 1,
    vocab_size: int = 2000,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 256,
    vision_hidden_size: int = 64,
    vision_num_heads: int = 2,
    processor_layout: str | None = None,
) -> Path:
    """Build and save a tiny random Qwen2.5-VL checkpoint into ``out_dir``.

    Offline and fast (a few seconds on CPU). ``vocab_size`` is the BPE
    training target; the built-in corpus yields somewhat fewer merges, and the
    model's embedding is sized to ``len(tokenizer)`` rounded up to 64.
    ``num_heads`` defaults to 4 so that head_dim is 32, which vLLM's CPU
    attention backend supports. ``processor_layout`` is ``"qwen2_5_vl"``
    (needs torchvision) or ``"image_only"``; ``None`` picks
    :func:`default_processor_layout`. The same arguments give bit-identical
    weights.

    Returns ``Path(out_dir)``, which then holds config.json,
    generation_config.json, model.safetensors, the tokenizer files, the
    processor files and ``proguard_tiny_vlm.json`` (build metadata).
    """
    import torch
    import transformers
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration

    layout = processor_layout or default_processor_layout()
    if layout not in ("qwen2_5_vl", "image_only"):
        raise ValueError(f"unknown processor_layout {layout!r}; expected 'qwen2_5_vl', 'image_only' or None")
    _require_torchvision_for(layout)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    tokenizer = _build_tokenizer(vocab_size)
    processor = _build_processor(layout, tokenizer)
    config = _build_config(
        tokenizer,
        hidden_size=hidden_size,
        num_layers=num_layers,
        num_heads=num_heads,
        num_kv_heads=num_kv_heads,
        intermediate_size=intermediate_size,
        vision_depth=vision_depth,
        vision_hidden_size=vision_hidden_size,
        vision_num_heads=vision_num_heads,
    )

    # Seed a private generator state so building does not disturb (or depend
    # on) the caller's global RNG.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2_5_VLForConditionalGeneration(config)
    model = model.to(torch.float32).eval()

    eos_ids = [tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")]
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=eos_ids,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,  # greedy by default: deterministic tests
    )

    model.save_pretrained(out)
    processor.save_pretrained(out)
    # The processor saves its tokenizer too; saving explicitly keeps
    # AutoTokenizer.from_pretrained(out) working whatever the processor does.
    tokenizer.save_pretrained(out)

    metadata = {
        "builder_version": BUILDER_VERSION,
        "processor_layout": layout,
        "processor_class": type(processor).__name__,
        "transformers_version": transformers.__version__,
        "params": {
            "seed": seed,
            "hidden_size": hidden_size,
            "num_layers": num_layers,
            "vision_depth": vision_depth,
            "vocab_size": vocab_size,
            "num_heads": num_heads,
            "num_kv_heads": num_kv_heads,
            "intermediate_size": intermediate_size,
            "vision_hidden_size": vision_hidden_size,
            "vision_num_heads": vision_num_heads,
        },
        "tokenizer_size": len(tokenizer),
        "model_vocab_size": config.text_config.vocab_size,
    }
    (out / _METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
    return out


_CACHE_LOCK = threading.Lock()
_CACHE: dict[tuple[str, str], Path] = {}


def _cache_key(params: dict[str, Any]) -> str:
    import transformers

    payload = json.dumps(
        {"builder_version": BUILDER_VERSION, "transformers": transformers.__version__, **params},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def default_cache_dir() -> Path:
    """A per-user cache (``$XDG_CACHE_HOME/proguard/tiny-vlm``, else ``~/.cache/...``): never a name shared in /tmp."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "proguard" / "tiny-vlm"


def tiny_vlm_path(cache_dir: str | os.PathLike[str] | None = None, **build_kwargs: Any) -> Path:
    """Path of a tiny Qwen2.5-VL checkpoint, built on first use and reused.

    The directory is ``<cache_dir>/tiny-qwen2_5_vl-<layout>-<key>`` where
    ``key`` hashes :data:`BUILDER_VERSION`, the transformers version and the
    build arguments (``build_kwargs`` are :func:`build_tiny_vlm`'s keyword
    arguments). ``cache_dir`` defaults to ``$PROGUARD_TINY_VLM_CACHE`` or
    ``<tempdir>/proguard-tiny-vlm``. Building goes to a scratch directory
    that is renamed into place, so concurrent processes (pytest-xdist) never
    see a half-written checkpoint. Callers must treat the files as read-only.
    """
    if cache_dir is None:
        cache_dir = os.environ.get("PROGUARD_TINY_VLM_CACHE") or default_cache_dir()
    root = Path(cache_dir)
    params = dict(build_kwargs)
    params["processor_layout"] = params.get("processor_layout") or default_processor_layout()
    key = _cache_key(params)
    memo_key = (str(root.resolve()), key)
    with _CACHE_LOCK:
        cached = _CACHE.get(memo_key)
        if cached is not None and (cached / _METADATA_FILE).is_file():
            return cached
        final = root / f"tiny-qwen2_5_vl-{params['processor_layout']}-{key}"
        if not (final / _METADATA_FILE).is_file():
            root.mkdir(parents=True, exist_ok=True)
            scratch = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=root))
            try:
                build_tiny_vlm(scratch, **params)
                try:
                    os.rename(scratch, final)
                except OSError:
                    # Another process won the race (final exists and is
                    # non-empty) -- use theirs.
                    if not (final / _METADATA_FILE).is_file():
                        raise
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        _CACHE[memo_key] = final
        return final


def make_test_image(size: int = 56, seed: int = 0):
    """A deterministic RGB ``size`` x ``size`` picture drawn with PIL.

    A coloured background, a rectangle, an ellipse and a line whose colours
    and positions depend on ``seed`` (different seeds -> different images).
    """
    import random

    from PIL import Image, ImageDraw

    rng = random.Random(seed)

    def colour() -> tuple[int, int, int]:
        return (rng.randrange(256), rng.randrange(256), rng.randrange(256))

    def box() -> tuple[int, int, int, int]:
        x0, x1 = sorted(rng.randrange(size) for _ in range(2))
        y0, y1 = sorted(rng.randrange(size) for _ in range(2))
        return (x0, y0, max(x1, x0 + 1), max(y1, y0 + 1))

    image = Image.new("RGB", (size, size), colour())
    draw = ImageDraw.Draw(image)
    draw.rectangle(box(), fill=colour())
    draw.ellipse(box(), fill=colour(), outline=colour())
    draw.line(box(), fill=colour(), width=max(1, size // 16))
    return image


def expected_image_tokens(processor, image) -> int:
    """How many ``<|image_pad|>`` tokens ``processor`` expands ``image`` to.

    ``prod(image_grid_thw) // merge_size**2``, computed from the image
    processor alone -- the quantity the model's vision tower produces
    embeddings for, which the text side must match exactly.
    """
    image_processor = processor.image_processor
    grid = image_processor(images=[image], return_tensors="pt")["image_grid_thw"][0]
    return int(grid.prod().item()) // int(image_processor.merge_size) ** 2
