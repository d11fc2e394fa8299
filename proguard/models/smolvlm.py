"""A SmolVLM-architecture policy whose language half is pretrained: ``model.name_or_path: smolvlm-smollm2``.

SmolVLM (HuggingFaceTB/SmolVLM-256M/500M-Instruct) is transformers' ``Idefics3ForConditionalGeneration``
(``model_type: idefics3``) over a SmolLM2 text model: a SigLIP-style vision encoder, a pixel-shuffle
connector (``scale_factor``) with one linear projection into the text model's hidden size, and the
``<image>`` placeholder that ``Idefics3Processor`` expands to
``<fake_token_around_image><global-img><image>*image_seq_len<fake_token_around_image>``.
:func:`build_smolvlm` assembles that architecture offline with

* the **text model**: the weights of a Llama-architecture causal LM folder (SmolLM2-135M-Instruct as
  converted by ``proguard.models.smollm2``, or any small Llama for tests), copied unchanged, with the
  embedding grown by SmolVLM's 40 image tokens (``IMAGE_TOKENS``; new rows = the mean of the old ones,
  so they never dominate a text-only prediction);
* a **vision encoder and connector**, small and randomly initialised from ``seed`` (default: 64x64
  images in 8x8 patches, hidden 64, 2 layers; ``scale_factor`` 2 -> 16 image tokens per image);
* a **real processor**: ``Idefics3Processor`` with the PIL image processor set to no image splitting
  and a ``image_size`` square, so an image costs ``image_seq_len + 3`` tokens;
* SmolLM2's **ChatML template extended for images** (``CHAT_TEMPLATE``): a ``{"type": "image"}`` part
  renders ``<image>``; the assistant turn carries ``{% generation %}`` markers for TRL's
  ``assistant_only_loss``; text-only conversations render exactly as SmolLM2's own template does.

Why ``Idefics3*`` and not the ``SmolVLM*`` classes: SmolVLM-256M/500M-Instruct themselves are
``idefics3`` checkpoints; transformers' ``SmolVLMProcessor`` (SmolVLM2) requires a video processor,
which needs torchvision (absent on the CPU machines), and ``num2words``; ``Idefics3Processor`` takes
an image processor and a tokenizer only, and vLLM serves ``Idefics3ForConditionalGeneration`` too.

:func:`smolvlm_path` builds once per (text model, build arguments, transformers version) into a
per-user cache (``$PROGUARD_SMOLVLM_CACHE``, else ``$XDG_CACHE_HOME/proguard/smolvlm-smollm2``, else
``~/.cache/...``): a scratch folder renamed into place, used only when its completion marker is there.
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

from proguard.models.smollm2 import chatml_template

__all__ = [
    "BUILDER_VERSION",
    "CHAT_TEMPLATE",
    "IMAGE_TOKENS",
    "MARKER_FILE",
    "MODEL_NAME",
    "build_smolvlm",
    "default_cache_dir",
    "image_features_per_image",
    "is_smolvlm",
    "sft_processor",
    "skip_padding_only_images",
    "smolvlm_path",
    "vision_features",
]

MODEL_NAME = "smolvlm-smollm2"
"""The ``model.name_or_path`` / ``--model`` value that resolves to :func:`smolvlm_path`."""
BUILDER_VERSION = "1"
"""Bump when the built checkpoint changes; it is part of the cache key."""
MARKER_FILE = "proguard_smolvlm.json"
"""Build metadata, written last: a cache folder without it is incomplete and never used."""

IMAGE_TOKENS: tuple[str, ...] = (
    "<fake_token_around_image>",
    "<image>",
    "<end_of_utterance>",
    "<global-img>",
    *(f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)),
)
"""The tokens SmolVLM adds to SmolLM2's vocabulary (the row/column tags are used only with image splitting)."""

CHAT_TEMPLATE = chatml_template(
    "{%- set ns = namespace(text='') %}"
    "{%- for part in message['content'] %}"
    "{%- if part['type'] == 'image' or (part['type'] is not defined and part['image'] is defined) %}"
    "{%- set ns.text = ns.text + '<image>' %}"
    "{%- elif part['type'] == 'text' %}{%- set ns.text = ns.text + part['text'] %}"
    "{%- endif %}"
    "{%- endfor %}{%- set text = ns.text %}"
)
"""SmolLM2's ChatML template with image parts (``<image>``) and ``{% generation %}`` markers on the assistant turn."""

_DEFAULT_BUILD: dict[str, Any] = {
    "seed": 0,
    "image_size": 64,
    "patch_size": 8,
    "scale_factor": 2,
    "vision_hidden_size": 64,
    "vision_layers": 2,
    "vision_heads": 2,
    "vision_intermediate_size": 128,
}


def image_features_per_image(image_size: int, patch_size: int, scale_factor: int) -> int:
    """``<image>`` tokens (= connector outputs) per image: ``(image_size / patch_size)^2 / scale_factor^2``."""
    if image_size % patch_size:
        raise ValueError(f"image_size {image_size} is not a multiple of patch_size {patch_size}")
    side = image_size // patch_size
    if side % scale_factor:
        raise ValueError(f"{side} patches per side is not a multiple of scale_factor {scale_factor} (pixel shuffle)")
    return (side // scale_factor) ** 2


def is_smolvlm(model_config) -> bool:
    """Whether a model config is Idefics3/SmolVLM class (a pixel-shuffle connector, padded per-sample pixel values)."""
    return getattr(model_config, "model_type", None) in ("idefics3", "smolvlm")


def vision_features(model_config, pixel_values) -> int:
    """Connector outputs (= ``<image>`` tokens) an Idefics3 policy makes for ``pixel_values``.

    ``pixel_values`` is the processor's ``(batch, images, channels, height, width)``, padded with
    all-zero images that the model skips; each real one is ``(height/patch)*(width/patch)/scale_factor^2``.
    """
    patch = int(model_config.vision_config.patch_size)
    scale = int(model_config.scale_factor)
    flat = pixel_values.reshape(-1, *pixel_values.shape[-3:])
    real = int((flat != 0).flatten(1).any(dim=1).sum())
    return real * (flat.shape[-2] // patch) * (flat.shape[-1] // patch) // scale**2


def skip_padding_only_images(model) -> bool:
    """Make an Idefics3 ``model`` accept calls whose images are all padding (returns whether a hook was added).

    The processor gives every sample of a batch the same number of image slots, filling a text-only
    sample's with all-zero images that the model drops. A forward on a slice holding only text-only
    samples (TRL's GRPO scores a generation batch in micro-batches) then leaves no image at all, and
    transformers' Idefics3 vision embeddings fail on an empty batch ("cannot reshape tensor of 0
    elements"). The hook removes ``pixel_values``/``pixel_attention_mask`` from such calls, which is
    what the model computes for text anyway. No-op (``False``) for other models or when already added.
    """
    if model is None or not is_smolvlm(getattr(model, "config", None)) or getattr(model, "_proguard_padding_hook", None):
        return False

    def hook(module, args, kwargs):
        pixels = kwargs.get("pixel_values")
        if pixels is not None and not bool((pixels != 0).any()):
            kwargs = {k: v for k, v in kwargs.items() if k not in ("pixel_values", "pixel_attention_mask")}
        return args, kwargs

    model._proguard_padding_hook = model.register_forward_pre_hook(hook, with_kwargs=True)
    return True


def sft_processor(processor):
    """``processor`` made usable by TRL's SFT collator: ``Idefics3Processor`` with safe assistant masks.

    TRL's ``assistant_only_loss`` calls ``apply_chat_template(..., return_assistant_tokens_mask=True,
    return_tensors="pt")``, which makes the processor return ``text_replacement_offsets`` (a list of
    dicts). transformers 5.24's ``Idefics3Processor.__call__`` builds its ``BatchFeature`` without the
    ``skip_tensor_conversion`` list every other processor passes, so any batch with an image fails
    ("Unable to convert output 'text_replacement_offsets' ... to tensor"). The returned instance (the
    same object, its class swapped for a subclass named ``Idefics3Processor``, so what it saves is
    unchanged) converts to tensors itself, skipping those fields. Other processors are returned as they are.
    """
    from transformers import Idefics3Processor

    if type(processor) is not Idefics3Processor:
        return processor
    processor.__class__ = _sft_processor_class()
    return processor


def _sft_processor_class():
    cls = globals().get("_Idefics3ProcessorForSFT")
    if cls is not None:
        return cls
    from transformers import BatchFeature, Idefics3Processor

    class _Idefics3ProcessorForSFT(Idefics3Processor):
        def __call__(self, images=None, text=None, **kwargs):
            return_tensors = kwargs.pop("return_tensors", None)
            out = super().__call__(images=images, text=text, **kwargs)
            return BatchFeature(dict(out), tensor_type=return_tensors, skip_tensor_conversion=self.skip_tensor_conversion)

    # Saved as (and shown as) the stock class; pickled by its module-level name (see ``__getattr__``).
    _Idefics3ProcessorForSFT.__name__ = "Idefics3Processor"
    _Idefics3ProcessorForSFT.__qualname__ = "_Idefics3ProcessorForSFT"
    _Idefics3ProcessorForSFT.__module__ = __name__
    globals()["_Idefics3ProcessorForSFT"] = _Idefics3ProcessorForSFT
    return _Idefics3ProcessorForSFT


def __getattr__(name: str):
    # The SFT processor class is built on first use (importing transformers takes seconds); unpickling
    # one in a fresh process (a DataLoader worker) asks this module for it by name.
    if name == "_Idefics3ProcessorForSFT":
        return _sft_processor_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _build_tokenizer(text_model_dir: Path):
    from tokenizers import AddedToken
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(text_model_dir))
    missing = [t for t in ("<|im_start|>", "<|im_end|>") if t not in tokenizer.get_vocab()]
    if missing:
        raise ValueError(f"{text_model_dir}: the tokenizer has no {' or '.join(missing)}; a ChatML text model is needed")
    tokenizer.add_special_tokens(
        {"extra_special_tokens": [AddedToken(t, special=True, normalized=False) for t in IMAGE_TOKENS]},
        replace_extra_special_tokens=False,
    )
    tokenizer.eos_token = "<|im_end|>"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def _build_processor(tokenizer, image_size: int, image_seq_len: int):
    from transformers import Idefics3Processor

    try:  # transformers >= 5.2x: the PIL backend has its own class (no torchvision)
        from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil as Images
    except ImportError:  # pragma: no cover - older releases: the base class was the PIL/numpy one
        from transformers import Idefics3ImageProcessor as Images
    image_processor = Images(
        do_image_splitting=False,  # one image -> one square of image_size: few tokens, fixed count
        size={"longest_edge": image_size},
        max_image_size={"longest_edge": image_size},
        do_pad=True,
    )
    return Idefics3Processor(image_processor=image_processor, tokenizer=tokenizer, image_seq_len=image_seq_len,
                             chat_template=CHAT_TEMPLATE)


def build_smolvlm(
    out_dir: str | os.PathLike[str],
    text_model_dir: str | os.PathLike[str],
    *,
    seed: int = 0,
    image_size: int = 64,
    patch_size: int = 8,
    scale_factor: int = 2,
    vision_hidden_size: int = 64,
    vision_layers: int = 2,
    vision_heads: int = 2,
    vision_intermediate_size: int = 128,
) -> Path:
    """Write an ``Idefics3ForConditionalGeneration`` checkpoint whose text model is ``text_model_dir``'s weights.

    ``text_model_dir`` is a Llama-architecture causal LM folder with a ChatML tokenizer (``<|im_start|>``,
    ``<|im_end|>``). The vision encoder and connector are random (seeded by ``seed``, without touching the
    caller's RNG); the same arguments give identical weights. Returns ``Path(out_dir)``.
    """
    import torch
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig, Idefics3Config
    from transformers import Idefics3ForConditionalGeneration

    text_dir = Path(text_model_dir)
    out = Path(out_dir)
    text_config = AutoConfig.from_pretrained(str(text_dir))
    if text_config.model_type != "llama":
        raise ValueError(f"{text_dir}: a {text_config.model_type!r} model; the SmolVLM text model must be a llama one")
    image_seq_len = image_features_per_image(image_size, patch_size, scale_factor)
    if vision_hidden_size % vision_heads:
        raise ValueError(f"vision_hidden_size {vision_hidden_size} not divisible by vision_heads {vision_heads}")

    tokenizer = _build_tokenizer(text_dir)
    processor = _build_processor(tokenizer, image_size, image_seq_len)
    old_vocab = text_config.vocab_size
    vocab = max(old_vocab, -(-len(tokenizer) // 64) * 64)  # room for the image tokens, rounded like SmolVLM's
    tied = bool(text_config.tie_word_embeddings)
    text_dict = text_config.to_dict()
    text_dict.update(vocab_size=vocab, tie_word_embeddings=tied)
    config = Idefics3Config(
        text_config=text_dict,
        vision_config={
            "hidden_size": vision_hidden_size,
            "intermediate_size": vision_intermediate_size,
            "num_hidden_layers": vision_layers,
            "num_attention_heads": vision_heads,
            "image_size": image_size,
            "patch_size": patch_size,
        },
        scale_factor=scale_factor,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        tie_word_embeddings=tied,
        pad_token_id=tokenizer.pad_token_id,
    )

    lm = AutoModelForCausalLM.from_pretrained(str(text_dir), dtype=torch.float32)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Idefics3ForConditionalGeneration(config)
    model = model.to(torch.float32).eval()
    state = lm.model.state_dict()
    state["embed_tokens.weight"] = _grown(state["embed_tokens.weight"], vocab)
    model.model.text_model.load_state_dict(state, strict=True)
    if tied:
        model.tie_weights()
    else:
        model.lm_head.weight.data.copy_(_grown(lm.lm_head.weight.data, vocab))
    del lm

    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.convert_tokens_to_ids("<|im_start|>"),
        eos_token_id=im_end,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,  # greedy by default: deterministic tests and benches
    )
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    tokenizer.save_pretrained(out)  # AutoTokenizer.from_pretrained(out) works whatever the processor writes
    meta = {
        "builder_version": BUILDER_VERSION,
        "transformers_version": transformers.__version__,
        "text_model": str(text_dir),
        "text_vocab_size": old_vocab,
        "vocab_size": vocab,
        "image_seq_len": image_seq_len,
        "params": {"seed": seed, "image_size": image_size, "patch_size": patch_size, "scale_factor": scale_factor,
                   "vision_hidden_size": vision_hidden_size, "vision_layers": vision_layers,
                   "vision_heads": vision_heads, "vision_intermediate_size": vision_intermediate_size},
    }
    (out / MARKER_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return out


def _grown(weight, rows: int):
    """``weight`` with extra rows (the mean of the existing ones) up to ``rows``."""
    import torch

    extra = rows - weight.shape[0]
    if extra <= 0:
        return weight
    return torch.cat([weight, weight.mean(dim=0, keepdim=True).expand(extra, -1)], dim=0).contiguous()


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/proguard/smolvlm-smollm2`` (else ``~/.cache/...``): per user, never a shared /tmp name."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "proguard" / MODEL_NAME


def _text_identity(text_dir: Path) -> dict[str, Any]:
    """What identifies the text model's weights cheaply: its folder and the sizes/mtimes of its files."""
    files = sorted(p for p in text_dir.iterdir() if p.is_file())
    return {"dir": str(text_dir.resolve()),
            "files": [[p.name, p.stat().st_size, int(p.stat().st_mtime)] for p in files]}


def _cache_key(text_dir: Path, params: dict[str, Any]) -> str:
    import transformers

    payload = json.dumps({"builder": BUILDER_VERSION, "transformers": transformers.__version__,
                          "text": _text_identity(text_dir), **params}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


_LOCK = threading.Lock()


def smolvlm_path(
    text_model_dir: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    **build_kwargs: Any,
) -> Path:
    """The SmolVLM checkpoint over ``text_model_dir`` (default: SmolLM2-135M-Instruct), built on first use.

    ``build_kwargs`` are :func:`build_smolvlm`'s keyword arguments. The folder is
    ``<cache_dir>/smolvlm-<key>``, ``key`` hashing the builder version, transformers' version, the text
    model's files and the arguments. Building (about 10 s for SmolLM2-135M) goes to a scratch folder
    renamed into place; a folder without :data:`MARKER_FILE` is never used, so a killed build or two
    concurrent ones leave nothing half-written. Treat the files as read-only.
    """
    unknown = sorted(set(build_kwargs) - set(_DEFAULT_BUILD))
    if unknown:
        raise TypeError(f"smolvlm_path: unknown build arguments {', '.join(unknown)}")
    if text_model_dir is None:
        from proguard.models.smollm2 import smollm2_path

        text_model_dir = smollm2_path()
    text_dir = Path(text_model_dir)
    params = {**_DEFAULT_BUILD, **build_kwargs}
    root = Path(cache_dir or os.environ.get("PROGUARD_SMOLVLM_CACHE") or default_cache_dir())
    final = root / f"smolvlm-{_cache_key(text_dir, params)}"
    with _LOCK:
        if (final / MARKER_FILE).is_file():
            return final
        root.mkdir(parents=True, exist_ok=True)
        print(f"[proguard] {MODEL_NAME}: building the SmolVLM policy over {text_dir.name} once into {final} ...",
              flush=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=root))
        try:
            build_smolvlm(scratch, text_dir, **params)
            if final.exists() and not (final / MARKER_FILE).is_file():
                shutil.rmtree(final, ignore_errors=True)  # an incomplete folder an earlier writer left: ours
            try:
                os.rename(scratch, final)
            except OSError:
                if not (final / MARKER_FILE).is_file():  # not "another process finished first"
                    raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return final
