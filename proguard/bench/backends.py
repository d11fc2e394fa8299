"""Generation backends behind one interface: a local transformers model, vLLM offline, or an
OpenAI-compatible HTTP endpoint.

Every backend turns a batch of ``(messages, image or None)`` pairs, the conversational prompts the
task generator writes (``{"type": "image"}`` parts mark where the image goes), into one completion
string per prompt. The benchmark and ``Guard`` never look behind this interface. ``describe()``
says what would change the completions (model, backend, sampling settings); the generation cache
keys on it.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import importlib.util
import io
import json
import math
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from proguard.bench.errors import BackendMissing, BenchError

Messages = list[dict[str, Any]]
Prompt = tuple[Messages, Any]  # (chat messages, PIL image, Media or None)


@dataclass(frozen=True)
class Media:
    """A prompt's video or audio, decoded: ``video`` a list of RGB frames, ``audio`` 16 kHz mono samples.

    It takes the image's place in a ``Prompt``; the transformers backend feeds it through
    ``OmniInputs``, the vLLM and OpenAI backends refuse it (TRL-free paths not verified here).
    """

    video: list | None = None
    audio: Any = None

    @property
    def kind(self) -> str:
        return "video" if self.video is not None else "audio"


def media_of(row: dict[str, Any]) -> Any:
    """A task row's medium for a ``Prompt``: its image, a decoded ``Media`` for video/audio, or ``None``."""
    if row.get("video"):
        from proguard.media import load_video

        v = row["video"]
        return Media(video=load_video(v[0] if len(v) == 1 else v).frames)
    if row.get("audio"):
        from proguard.media import load_audio

        return Media(audio=load_audio(row["audio"]))
    return row.get("image")

BACKENDS = ("transformers", "vllm", "openai")
VLLM_MISSING = "the vllm backend needs vLLM: pip install 'proguard[vllm]'"


@dataclass(frozen=True)
class GenerationSettings:
    """How completions are sampled; part of the generation-cache key."""

    max_new_tokens: int = 1024
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise BenchError(f"max_new_tokens must be a positive integer, got {self.max_new_tokens!r}")
        # NaN passes every comparison's negation: test for finiteness first (--temperature nan, --top-p inf)
        if not _finite(self.temperature) or self.temperature < 0:
            raise BenchError(f"temperature must be a finite number >= 0, got {self.temperature!r}")
        if not _finite(self.top_p) or not 0 < self.top_p <= 1:
            raise BenchError(f"top_p must be in (0, 1], got {self.top_p!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise BenchError(f"seed must be an integer, got {self.seed!r}")


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True)
class GenerationFailed:
    """A prompt the backend could not answer (after its retries); scored as a malformed answer."""

    message: str


@runtime_checkable
class Backend(Protocol):
    """What the benchmark needs from a model: completions for a batch of prompts."""

    settings: GenerationSettings

    def describe(self) -> dict[str, Any]:
        """JSON-able identity: backend kind, model and settings (everything that changes outputs)."""
        ...

    def generate(self, batch: Sequence[Prompt]) -> list[str | GenerationFailed]:
        """One completion per prompt, in order. Local backends raise on failure; HTTP ones report it."""
        ...


def prepare(backend: Backend) -> None:
    """Load the backend's model now if it loads lazily (its optional ``prepare()``), so that loading
    is not timed as generation."""
    hook = getattr(backend, "prepare", None)
    if callable(hook):
        hook()


def token_counter(backend: Backend) -> Callable[[str], int] | None:
    """The guard's own tokenizer as a counter, for backends that load one (local models); else ``None``."""
    tokenizer = getattr(backend, "tokenizer", None)
    tok = tokenizer() if callable(tokenizer) else None
    if tok is None:
        return None
    return lambda text: len(tok(text, add_special_tokens=False)["input_ids"])


def make_backend(
    kind: str,
    model: str,
    settings: GenerationSettings | None = None,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    allow_download: bool = False,
    **options: Any,
) -> Backend:
    """Build a backend by name: ``transformers``, ``vllm`` or ``openai`` (needs ``base_url``).

    A local model (``transformers``, ``vllm``) must be a directory or already in the Hub cache unless
    ``allow_download`` is set: nothing is downloaded without being asked."""
    settings = settings or GenerationSettings()
    if kind == "vllm" and importlib.util.find_spec("vllm") is None:
        raise BackendMissing(VLLM_MISSING)  # before the model: the missing library is the first thing to fix
    if kind in ("transformers", "vllm"):
        from proguard.hub import local_model_or_download
        from proguard.models.named import named_model_path

        named = named_model_path(model)  # tiny, tiny-omni, smollm2-135m: built or converted once, cached
        model = str(named) if named is not None else local_model_or_download(model, bool(allow_download), what="--model")
    if kind == "transformers":
        return TransformersBackend(model, settings, **options)
    if kind == "vllm":
        return VLLMBackend(model, settings, **options)
    if kind == "openai":
        if not base_url:
            raise BenchError("the openai backend needs a base URL (e.g. http://127.0.0.1:8000/v1)")
        return OpenAIBackend(base_url, model, settings, api_key=api_key, **options)
    raise BenchError(f"unknown backend {kind!r}; expected one of {', '.join(BACKENDS)}")


def model_fingerprint(model: str) -> str | None:
    """A cheap identity of a local checkpoint (names, sizes and mtimes of its files), else ``None``."""
    path = Path(model)
    if not path.is_dir():
        return None
    h = hashlib.sha256()
    for f in sorted(path.iterdir()):
        if f.is_file():
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}:{int(st.st_mtime)}\n".encode())
    return h.hexdigest()[:16]


def clean_messages(messages: Messages) -> Messages:
    """Messages without ``None``-valued keys in content parts.

    A prompt stored in a ``datasets`` table comes back with every part holding every key (Arrow
    unifies the struct), e.g. ``{"type": "text", "text": ..., "image": None}``; chat templates that
    test ``'image' in part`` would then render a text part as an image.
    """
    out = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            content = [{k: v for k, v in p.items() if v is not None} if isinstance(p, dict) else p for p in content]
        out.append({k: v for k, v in {**m, "content": content}.items() if v is not None})
    return out


def _check_batch(batch: Sequence[Prompt]) -> None:
    for i, (messages, medium) in enumerate(batch):
        kinds = [p.get("type") for m in messages if isinstance(m.get("content"), list)
                 for p in m["content"] if isinstance(p, dict)]
        kind = medium.kind if isinstance(medium, Media) else "image"
        wants = kinds.count(kind)
        if wants != (medium is not None) or (medium is None and any(k in kinds for k in ("image", "video", "audio"))):
            raise BenchError(f"prompt {i}: has {wants} {kind} part(s) but {'a' if medium is not None else 'no'} {kind}")


def refuse_media(batch: Sequence[Prompt], backend: str) -> None:
    """``BenchError`` for video/audio prompts on a backend that cannot send them."""
    if any(isinstance(m, Media) for _, m in batch):
        raise BenchError(f"the {backend} backend does not take video or audio here; use --backend transformers")


def _rgb(image: Any) -> Any:
    return image.convert("RGB") if getattr(image, "mode", "RGB") != "RGB" else image


def _text_only_messages(messages: Messages) -> Messages:
    """Content-part lists joined into plain strings, for chat templates that expect strings."""
    out = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            content = "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
        out.append({**m, "content": content})
    return out


def _chat_text(processor: Any, messages: Messages) -> str:
    """A prompt rendered by the model's chat template; a text-only model gets plain-string contents."""
    conv = clean_messages(messages) if hasattr(processor, "image_processor") else _text_only_messages(messages)
    return processor.apply_chat_template(conv, add_generation_prompt=True, tokenize=False)


# ---------------------------------------------------------------------------------------------
# transformers
# ---------------------------------------------------------------------------------------------
def _stop_malformed(tokenizer: Any, start: int) -> Any:
    """A ``StoppingCriteriaList`` ending each row whose new text (from token ``start``) can no longer parse."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    from proguard.protocol import cannot_parse

    class Malformed(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            texts = tokenizer.batch_decode(input_ids[:, start:], skip_special_tokens=True)
            return torch.tensor([cannot_parse(t) for t in texts], dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([Malformed()])


class TransformersBackend:
    """A local (or hub-cached) checkpoint run with ``model.generate``; loads on first use."""

    def __init__(
        self,
        model_path: str,
        settings: GenerationSettings | None = None,
        *,
        device: str = "auto",
        dtype: str = "auto",
        label_bias: float | None = None,
        share_prefix: bool = True,
        stop_malformed: bool = False,
    ) -> None:
        """``label_bias``: the decision threshold shift (``proguard.bench.label_bias``); ``None`` reads the model
        folder's ``label_bias.json`` if it has one (else 0), ``0.0`` turns it off. ``share_prefix``: text prompts
        of a text-only model that start with the same tokens (the system message) prefill them once
        (``proguard.bench.prefix_cache``; 0.60x the time of a CPU answer). ``stop_malformed``: a text answer
        stops as soon as no continuation of it can parse (``proguard.protocol.cannot_parse``: a chatting base
        model's "I'm sorry, ..."), so it is stored cut short; every score is what the full answer would get."""
        from proguard.bench.label_bias import load_label_bias

        self.model_path = str(model_path)
        self.settings = settings or GenerationSettings()
        self.device = device
        self.dtype = dtype
        if label_bias is None:
            saved = load_label_bias(self.model_path)  # None for a hub ID or a folder without the file
            label_bias = saved.bias if saved is not None else 0.0
        if not _finite(label_bias):
            raise BenchError(f"label_bias must be a finite number, got {label_bias!r}")
        self.label_bias = float(label_bias)
        self._model: Any = None
        self._processor: Any = None
        self._omni: Any = None  # an OmniInputs for omni checkpoints (proguard.models.tiny_omni layout)
        self.share_prefix = share_prefix
        self.stop_malformed = stop_malformed
        self._prefix: Any = None  # a SharedPrefixCache once a text-only model is loaded with share_prefix

    def describe(self) -> dict[str, Any]:
        """Backend, model path and fingerprint, sampling settings (and the label bias when one is applied)."""
        info = {
            "backend": "transformers",
            "model": self.model_path,
            "model_fingerprint": model_fingerprint(self.model_path),
            "settings": asdict(self.settings),
        }
        if self.label_bias:
            info["label_bias"] = self.label_bias
        if self.stop_malformed:  # answers are stored cut short: not interchangeable with full ones in the cache
            info["stop_malformed"] = True
        return info

    def prepare(self) -> None:
        """Load the model and processor (once; ``generate`` calls it too)."""
        if self._model is None:
            self._load()

    def tokenizer(self) -> Any:
        """The model's tokenizer (loads the model if needed)."""
        self.prepare()
        return getattr(self._processor, "tokenizer", self._processor)

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor

        device = self.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype: Any = self.dtype
        if dtype == "auto":
            dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        elif isinstance(dtype, str):
            dtype = getattr(torch, dtype)
        try:
            model = AutoModelForImageTextToText.from_pretrained(self.model_path, dtype=dtype)
        except ValueError:  # a text-only checkpoint: no image-text-to-text class is registered for it
            model = AutoModelForCausalLM.from_pretrained(self.model_path, dtype=dtype)
        self._model = model.to(device).eval()
        from proguard.models.tiny_omni import has_omni_inputs, load_omni_inputs

        if has_omni_inputs(self.model_path):
            self._omni = load_omni_inputs(self.model_path)
            self._processor = self._omni.tokenizer
        else:
            self._processor = AutoProcessor.from_pretrained(self.model_path)
        tok = getattr(self._processor, "tokenizer", self._processor)
        tok.padding_side = "left"  # decoder-only batched generation continues from the right edge
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        self.device = device
        if self.share_prefix and self._omni is None and not hasattr(self._processor, "image_processor"):
            from proguard.bench.prefix_cache import SharedPrefixCache

            self._prefix = SharedPrefixCache(self._model)

    def generate(self, batch: Sequence[Prompt]) -> list[str | GenerationFailed]:
        """Greedy (or sampled) completions for a batch, decoded without special tokens."""
        import torch

        if not batch:
            return []
        _check_batch(batch)
        self.prepare()
        processor = self._processor
        if any(isinstance(m, Media) for _, m in batch) or self._omni is not None:
            return self._generate_media(batch)
        inputs = self._inputs(batch)
        kwargs = self._generate_kwargs(len(batch))
        start = inputs["input_ids"].shape[1]
        if self.stop_malformed:
            kwargs["stopping_criteria"] = _stop_malformed(self.tokenizer(), start)
        with torch.no_grad():
            out = self._model.generate(**inputs, **kwargs)
        return list(processor.batch_decode(out[:, start:], skip_special_tokens=True))

    def decision_margins(self, batch: Sequence[Prompt]) -> list[float | None]:
        """Per prompt, the ``unsafe`` - ``safe`` logit margin at the completion's decision point (the first step whose
        top token is a label word), greedy and without any bias; ``None`` where no label came within
        ``max_new_tokens``. What ``proguard.bench.label_bias.fit_label_bias`` fits on (image or text prompts)."""
        import torch
        from transformers import LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

        from proguard.bench.label_bias import label_bias_processor

        if not batch:
            return []
        _check_batch(batch)
        self.prepare()
        if self._omni is not None or any(isinstance(m, Media) for _, m in batch):
            raise BenchError(f"{self.model_path}: decision margins are measured on text and image prompts only")
        inputs = self._inputs(batch)
        recorder = label_bias_processor(self.tokenizer(), len(batch), record=True)

        class AllDecided(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return torch.full((input_ids.shape[0],), recorder.all_decided(), dtype=torch.bool)

        with torch.no_grad():
            self._model.generate(**inputs, max_new_tokens=self.settings.max_new_tokens, do_sample=False,
                                 logits_processor=LogitsProcessorList([recorder]),
                                 stopping_criteria=StoppingCriteriaList([AllDecided()]))
        return list(recorder.margins)

    def _inputs(self, batch: Sequence[Prompt]) -> Any:
        """Tokenised text-or-image prompts (left-padded), on the model's device; for text prompts that share a
        long start, the start's cached keys and values with the rest (``proguard.bench.prefix_cache``)."""
        processor = self._processor
        is_multimodal = hasattr(processor, "image_processor")
        images = [_rgb(img) for _, img in batch if img is not None]
        if images and not is_multimodal:
            raise BenchError(f"{self.model_path}: the model has no image processor, but the batch holds images")
        texts = [_chat_text(processor, m) for m, _ in batch]
        if is_multimodal:
            inputs = processor(text=texts, images=images or None, padding=True, return_tensors="pt")
            return inputs.to(self._model.device)
        if self._prefix is None:
            return processor(texts, padding=True, return_tensors="pt", add_special_tokens=False).to(self._model.device)
        enc = processor(texts, add_special_tokens=False)  # tokenised once: the prefix path, else padded below
        shared = self._prefix.inputs(enc["input_ids"], processor.pad_token_id)
        if shared is not None:
            return shared
        return processor.pad(enc, return_tensors="pt").to(self._model.device)

    def _generate_kwargs(self, batch_size: int) -> dict[str, Any]:
        """``generate`` arguments from the settings, with the label-bias processor when a bias is set."""
        import torch

        s = self.settings
        kwargs: dict[str, Any] = {"max_new_tokens": s.max_new_tokens, "do_sample": s.temperature > 0}
        if s.temperature > 0:
            kwargs.update(temperature=s.temperature, top_p=s.top_p)
            torch.manual_seed(s.seed)
        if self.label_bias:
            from transformers import LogitsProcessorList

            from proguard.bench.label_bias import label_bias_processor

            kwargs["logits_processor"] = LogitsProcessorList(
                [label_bias_processor(self.tokenizer(), batch_size, bias=self.label_bias)])
        return kwargs

    def _generate_media(self, batch: Sequence[Prompt]) -> list[str | GenerationFailed]:
        """Prompts with video or audio (or any prompt of an omni checkpoint), encoded with ``OmniInputs``."""
        import torch

        from proguard.models.omni_inputs import OmniInputs

        enc = self._omni
        if enc is None:
            p = self._processor
            enc = OmniInputs(p.tokenizer, p.image_processor, getattr(p, "feature_extractor", None),
                             getattr(p, "video_processor", None), video_time_key="second_per_grid_ts")
        if enc.feature_extractor is None and any(isinstance(m, Media) and m.audio is not None for _, m in batch):
            # A model without an audio encoder: those samples fail on their own, the rest are answered.
            ok = [i for i, (_, m) in enumerate(batch) if not (isinstance(m, Media) and m.audio is not None)]
            answers = self._generate_media([batch[i] for i in ok]) if ok else []
            out: list[str | GenerationFailed] = [GenerationFailed(f"{self.model_path}: the model takes no audio")] * len(batch)
            for i, a in zip(ok, answers, strict=True):
                out[i] = a
            return out
        texts = [enc.tokenizer.apply_chat_template(clean_messages(m), add_generation_prompt=True, tokenize=False)
                 for m, _ in batch]
        images = [[_rgb(m)] if m is not None and not isinstance(m, Media) else [] for _, m in batch]
        videos = [[m.video] if isinstance(m, Media) and m.video is not None else [] for _, m in batch]
        audios = [[m.audio] if isinstance(m, Media) and m.audio is not None else [] for _, m in batch]
        inputs = {k: v.to(self._model.device) for k, v in enc(texts, images, videos, audios).items()}
        kwargs = self._generate_kwargs(len(batch))
        with torch.no_grad():
            out = self._model.generate(**inputs, **kwargs)
        return list(enc.tokenizer.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True))


# ---------------------------------------------------------------------------------------------
# vLLM (offline)
# ---------------------------------------------------------------------------------------------
class VLLMBackend:
    """A checkpoint run in-process with ``vllm.LLM``; prompts rendered with the model's chat template."""

    def __init__(self, model_path: str, settings: GenerationSettings | None = None, **llm_kwargs: Any) -> None:
        if importlib.util.find_spec("vllm") is None:
            raise BackendMissing(VLLM_MISSING)
        self.model_path = str(model_path)
        self.settings = settings or GenerationSettings()
        self.llm_kwargs = llm_kwargs
        from proguard.bench.label_bias import LABEL_BIAS_FILE

        if (Path(self.model_path) / LABEL_BIAS_FILE).is_file():  # vLLM V1 has no per-request logits processor hook
            print(f"warning: {Path(self.model_path) / LABEL_BIAS_FILE}: the vllm backend does not apply the label "
                  "bias; answers use the model's own threshold (the transformers backend applies it)",
                  file=sys.stderr, flush=True)
        self._llm: Any = None
        self._processor: Any = None

    def describe(self) -> dict[str, Any]:
        """Backend, model path and fingerprint, sampling settings."""
        return {
            "backend": "vllm",
            "model": self.model_path,
            "model_fingerprint": model_fingerprint(self.model_path),
            "settings": asdict(self.settings),
        }

    def prepare(self) -> None:
        """Start the vLLM engine and load the processor (once; ``generate`` calls it too)."""
        if self._llm is None:
            from transformers import AutoProcessor
            from vllm import LLM

            self._processor = AutoProcessor.from_pretrained(self.model_path)
            self._llm = LLM(model=self.model_path, seed=self.settings.seed, **self.llm_kwargs)

    def tokenizer(self) -> Any:
        """The model's tokenizer (starts the engine if needed)."""
        self.prepare()
        return getattr(self._processor, "tokenizer", self._processor)

    def generate(self, batch: Sequence[Prompt]) -> list[str | GenerationFailed]:
        """Completions from ``LLM.generate`` with the image passed as ``multi_modal_data``."""
        from vllm import SamplingParams

        if not batch:
            return []
        _check_batch(batch)
        refuse_media(batch, "vllm")
        self.prepare()
        requests = []
        for messages, image in batch:
            req: dict[str, Any] = {"prompt": _chat_text(self._processor, messages)}
            if image is not None:
                req["multi_modal_data"] = {"image": _rgb(image)}
            requests.append(req)
        s = self.settings
        params = SamplingParams(max_tokens=s.max_new_tokens, temperature=s.temperature, top_p=s.top_p, seed=s.seed)
        outputs = self._llm.generate(requests, params, use_tqdm=False)
        return [o.outputs[0].text for o in outputs]


# ---------------------------------------------------------------------------------------------
# OpenAI-compatible HTTP endpoint (standard library only)
# ---------------------------------------------------------------------------------------------
MAX_REPLY_BYTES = 4_000_000
"""Largest reply body read (a 1024-token answer with its JSON is a few kB; this leaves room for long ones)."""
MAX_ERROR_BYTES = 65_536
"""Largest error body read (only its first few hundred characters are shown)."""
CHARS_PER_TOKEN = 16
"""Reply text is cut at ``max_new_tokens`` x this many characters: no tokenizer's tokens are longer on average."""
RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


class OpenAIBackend:
    """Chat completions from any OpenAI-compatible server (``vllm serve``, a hosted API).

    Images travel as base64 PNG data URLs in ``image_url`` parts. ``timeout`` bounds each attempt as
    a whole, from connecting to the last byte of the body (a server that drips a byte a second is cut
    off at the deadline, not kept alive by every byte). Timeouts, connection errors,
    HTTP 429 and 5xx are retried with exponential backoff (``backoff_s * 2**attempt``); a prompt
    that still fails comes back as ``GenerationFailed`` so the run goes on. Requests of a batch
    run ``concurrency`` at a time.

    A reply whose ``content`` is null or not a string is a failure (never cached as ``""``), unless
    ``use_reasoning_content`` is set and the message's ``reasoning_content`` holds the text (servers
    with a reasoning parser move the ``<think>`` block there). Replies are bounded: a body over
    ``max_reply_bytes`` is not read further and fails; content longer than ``max_new_tokens`` x
    ``chars_per_token`` characters (a server ignoring ``max_tokens``) is cut there. Both count in
    ``truncations``. An error body is read up to ``MAX_ERROR_BYTES``.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        settings: GenerationSettings | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        max_retries: int = 3,
        backoff_s: float = 1.0,
        concurrency: int = 8,
        use_reasoning_content: bool = False,
        max_reply_bytes: int = MAX_REPLY_BYTES,
        chars_per_token: int = CHARS_PER_TOKEN,
    ) -> None:
        try:
            parsed = urllib.parse.urlparse(base_url)
            parsed.port  # noqa: B018 - raises on a port that is not a number
            hostname = parsed.hostname
        except ValueError as exc:  # http://[::1 (an unclosed IPv6 bracket), a port out of range
            raise BenchError(f"base URL {base_url!r} is malformed ({exc}); it must look like http://host:port/v1") from None
        if parsed.scheme not in ("http", "https") or not parsed.netloc or not hostname:
            raise BenchError(f"base URL must look like http://host:port/v1, got {base_url!r}")
        if (not _finite(timeout) or not timeout > 0 or not isinstance(max_retries, int) or max_retries < 0
                or not _finite(backoff_s) or not backoff_s >= 0 or not isinstance(concurrency, int) or concurrency < 1):
            raise BenchError(
                f"--timeout must be > 0, --max-retries >= 0 and --concurrency >= 1 (got timeout={timeout}, "
                f"max_retries={max_retries}, concurrency={concurrency}; backoff_s={backoff_s} must be >= 0)"
            )
        if max_reply_bytes < 1 or chars_per_token < 1:
            raise BenchError("max_reply_bytes and chars_per_token must be >= 1")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.settings = settings or GenerationSettings()
        self.api_key = api_key
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.concurrency = concurrency
        self.use_reasoning_content = bool(use_reasoning_content)
        self.max_reply_bytes = max_reply_bytes
        self.max_reply_chars = self.settings.max_new_tokens * chars_per_token
        self.truncations = 0  # replies cut at max_reply_chars or dropped at max_reply_bytes
        self._count_lock = threading.Lock()
        handlers = [urllib.request.ProxyHandler({})] if hostname in _LOOPBACK else []
        # a local server is never reached via a proxy; every connection is registered with its request's deadline
        self._opener = urllib.request.build_opener(*handlers, _DeadlineHTTPHandler(), _DeadlineHTTPSHandler())

    def describe(self) -> dict[str, Any]:
        """Backend, endpoint, served model name and sampling settings (never the API key)."""
        out = {"backend": "openai", "base_url": self.base_url, "model": self.model, "settings": asdict(self.settings)}
        if self.use_reasoning_content:  # changes what a reply's text is; absent otherwise (old caches stay valid)
            out["use_reasoning_content"] = True
        return out

    def generate(self, batch: Sequence[Prompt]) -> list[str | GenerationFailed]:
        """One chat-completion request per prompt; failures after retries are returned, not raised."""
        _check_batch(batch)
        refuse_media(batch, "openai")
        bodies = [self.request_body(m, img) for m, img in batch]
        if len(bodies) <= 1 or self.concurrency == 1:
            return [self._post(b) for b in bodies]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(bodies))) as pool:
            return list(pool.map(self._post, bodies))

    def request_body(self, messages: Messages, image: Any) -> dict[str, Any]:
        """The JSON body of one chat-completion request."""
        s = self.settings
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [_openai_message(m, image) for m in clean_messages(messages)],
            "max_tokens": s.max_new_tokens,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "seed": s.seed,
        }
        return body

    def _post(self, body: dict[str, Any]) -> str | GenerationFailed:
        data = json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        url = self.base_url + "/chat/completions"
        last = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            req = urllib.request.Request(url, data=data, headers=headers, method="POST")
            deadline = _Deadline(self.timeout)
            req.proguard_deadline = deadline  # type: ignore[attr-defined]  # read by _DeadlineHTTP(S)Handler
            try:
                with self._opener.open(req, timeout=self.timeout) as resp:
                    payload = _read_capped(resp, self.max_reply_bytes + 1)  # never more than the cap in memory
            except urllib.error.HTTPError as exc:
                try:
                    detail = _clip(_read_capped(exc, MAX_ERROR_BYTES))
                except (OSError, http.client.HTTPException):
                    detail = "(body not read)"
                finally:
                    exc.close()
                last = f"HTTP {exc.code} from {url}: {detail}"
                if exc.code not in RETRY_STATUS:
                    return GenerationFailed(last)  # a client error will not fix itself
                continue
            except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:  # timeouts are OSErrors
                reason = getattr(exc, "reason", exc)
                if deadline.expired:
                    last = f"no complete reply from {url} within --timeout {self.timeout:g} s"
                else:
                    last = f"{type(reason).__name__} from {url}: {reason}"
                continue
            finally:
                deadline.cancel()
            if deadline.expired:  # the socket was shut down mid-body: what was read is cut short
                last = f"no complete reply from {url} within --timeout {self.timeout:g} s"
                continue
            if len(payload) > self.max_reply_bytes:
                self._count_truncation()
                return GenerationFailed(f"reply from {url} is larger than {self.max_reply_bytes} bytes (not read further)")
            try:
                message = json.loads(payload)["choices"][0]["message"]
                content = message.get("content")
            except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
                return GenerationFailed(f"unexpected response from {url} ({type(exc).__name__}): {_clip(payload)}")
            if self.use_reasoning_content and (content is None or content == ""):
                reasoning = message.get("reasoning_content")
                if isinstance(reasoning, str) and reasoning:
                    content = reasoning
            moved = bool(message.get("reasoning_content")) and not self.use_reasoning_content
            if not isinstance(content, str) or (content == "" and moved):
                # an empty content beside a reasoning_content is a server setting, not the guard's answer
                hint = "; pass --use-reasoning-content if the server puts the answer there" if moved else ""
                what = "empty content" if content == "" else f"content {type(content).__name__}, not text"
                return GenerationFailed(f"reply from {url} has {what}{hint}")
            if len(content) > self.max_reply_chars:
                self._count_truncation()
                content = content[: self.max_reply_chars]
            return content
        return GenerationFailed(f"failed after {self.max_retries + 1} attempt(s): {last}")


    def _count_truncation(self) -> None:
        with self._count_lock:
            self.truncations += 1


class _Deadline:
    """One HTTP attempt's deadline: when it passes, the attempt's socket is shut down, which ends any
    blocking read at once (the per-read ``timeout`` of urllib alone is renewed by every byte)."""

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def attach(self, sock: socket.socket | None) -> None:
        with self._lock:
            self._sock = sock
            if self.expired:
                self._shutdown()

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            self._shutdown()

    def _shutdown(self) -> None:
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cancel(self) -> None:
        self._timer.cancel()


def _deadline_connection(base: type, req: Any) -> type:
    """``base`` (an ``http.client`` connection class) whose socket is handed to ``req``'s deadline."""
    deadline = getattr(req, "proguard_deadline", None)

    class Connection(base):  # type: ignore[misc, valid-type]
        def connect(self) -> None:
            super().connect()
            if deadline is not None:
                deadline.attach(self.sock)

    return Connection


class _DeadlineHTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req):  # noqa: D102
        return self.do_open(_deadline_connection(http.client.HTTPConnection, req), req)


class _DeadlineHTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req):  # noqa: D102
        extra = {"check_hostname": self._check_hostname} if hasattr(self, "_check_hostname") else {}
        return self.do_open(_deadline_connection(http.client.HTTPSConnection, req), req, context=self._context, **extra)


def _read_capped(resp: Any, limit: int) -> bytes:
    """At most ``limit`` bytes of a response body, read in chunks (a shut-down socket ends the loop)."""
    chunks, size = [], 0
    while size < limit:
        chunk = resp.read(min(65536, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _openai_message(message: dict[str, Any], image: Any) -> dict[str, Any]:
    content = message.get("content")
    if not isinstance(content, list):
        return {"role": message["role"], "content": content}
    if not any(isinstance(p, dict) and p.get("type") == "image" for p in content):
        # text-only content as a plain string: the form every server accepts, system messages included
        return _text_only_messages([message])[0]
    parts = []
    for p in content:
        if p.get("type") == "image":
            parts.append({"type": "image_url", "image_url": {"url": image_data_url(image)}})
        elif p.get("type") == "text":
            parts.append({"type": "text", "text": p.get("text", "")})
    return {"role": message["role"], "content": parts}


def image_data_url(image: Any) -> str:
    """A PIL image as a ``data:image/png;base64,...`` URL."""
    buf = io.BytesIO()
    _rgb(image).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _clip(text: Any, limit: int = 300) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = str(text)
    return text if len(text) <= limit else text[:limit] + "..."
