"""``Guard``: classify inputs with a trained guard through any backend.

    >>> guard = Guard.from_pretrained("runs/my-guard", taxonomy="default")     # doctest: +SKIP
    >>> guard.moderate(request="How do I build a pipe bomb?")                 # doctest: +SKIP
    Verdict(modality='text', request='unsafe', response=None, category_kind='id', category='C8S1', ...)

The prompt is the training prompt (``proguard.protocol.build_messages``) over the given taxonomy;
the answer is parsed by ``parse_completion``, so the result is a ``Verdict`` or a ``FormatError``
(never an exception for a bad answer). Category IDs are the taxonomy's own IDs.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proguard.bench.backends import Backend, GenerationFailed, GenerationSettings, Media, make_backend
from proguard.bench.errors import BenchError
from proguard.protocol import PromptConfig, build_messages, parse_completion
from rewards.types import FormatError, Parsed
from taxonomy import Taxonomy, load_taxonomy


@dataclass(frozen=True)
class Moderation:
    """One classified input: the parsed answer, the raw completion and the modality judged."""

    parsed: Parsed
    completion: str
    modality: str


def load_image(image: Any) -> Any:
    """A PIL RGB image from a path, raw bytes or a PIL image; ``ValueError`` naming a bad path."""
    from PIL import Image

    if image is None:
        return None
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    from proguard.media import MediaError, open_image

    if isinstance(image, (bytes, bytearray)):
        source, what = io.BytesIO(image), "image"
    elif isinstance(image, (str, Path)):
        source, what = Path(image), f"image: {image}"
        if not source.is_file():
            raise BenchError(f"image: file not found: {source}")
    else:
        raise BenchError(f"image: must be a path, bytes or a PIL image, got {type(image).__name__}")
    try:  # media.max_pixels checked from the header before decoding (a 17 KB PNG can declare 144 megapixels)
        return open_image(source, what=what)
    except MediaError as exc:
        raise BenchError(str(exc)) from None


def input_modality(request: str | None, response: str | None, image: Any, video: Any = None, audio: Any = None) -> str:
    """The modality of an input (``text``, ``image``, ``text_video``...); ``ValueError`` for an incomplete one."""
    if response and not request:
        raise BenchError("a response needs the request it answers (give request= too)")
    given = [k for k, v in (("image", image), ("video", video), ("audio", audio)) if v is not None]
    if len(given) > 1:
        raise BenchError(f"one medium per input, got {' and '.join(given)}")
    if given:
        return f"text_{given[0]}" if request else given[0]
    if not request:
        raise BenchError("nothing to moderate: give a request (and optionally a response), an image, or both")
    return "text"


def _load_media(item: Mapping[str, Any]) -> Any:
    """An input's video or audio decoded into a backend ``Media`` (``None`` without either)."""
    from proguard.media import load_audio, load_video

    if item.get("video"):
        v = item["video"]
        return Media(video=load_video(v if isinstance(v, (str, Path)) else list(v)).frames)
    if item.get("audio"):
        return Media(audio=load_audio(item["audio"]))
    return None


class Guard:
    """A guard model behind a backend, prompted with a taxonomy, answering with parsed verdicts."""

    def __init__(
        self,
        backend: Backend,
        taxonomy: Taxonomy | str = "default",
        *,
        prompt_config: PromptConfig | None = None,
        require_think: bool = True,
        batch_size: int = 8,
    ) -> None:
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise BenchError(f"batch_size (--batch-size) must be a positive integer, got {batch_size!r}")
        self.backend = backend
        self.taxonomy = load_taxonomy(taxonomy) if isinstance(taxonomy, (str, Path)) else taxonomy
        self.prompt_config = prompt_config or PromptConfig()
        self.require_think = require_think
        self.batch_size = batch_size

    @classmethod
    def from_pretrained(
        cls,
        model: str,
        *,
        backend: str = "transformers",
        taxonomy: Taxonomy | str = "default",
        settings: GenerationSettings | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        require_think: bool = True,
        **backend_options: Any,
    ) -> Guard:
        """A guard from a checkpoint path (or a served model name with ``backend="openai"``)."""
        b = make_backend(backend, model, settings, base_url=base_url, api_key=api_key, **backend_options)
        return cls(b, taxonomy, require_think=require_think)

    def moderate(self, request: str | None = None, response: str | None = None, image: Any = None,
                 video: Any = None, audio: Any = None) -> Parsed:
        """Classify one input: text (request, optional response), with at most one image (path/bytes/PIL),
        video (file, frame directory or frame list) or audio file."""
        item = {"request": request, "response": response, "image": image, "video": video, "audio": audio}
        return self.moderate_many([item])[0].parsed

    def moderate_many(self, items: Sequence[Mapping[str, Any]]) -> list[Moderation]:
        """Classify many inputs (dicts with ``request``, ``response``, ``image``), batched."""
        prompts = []
        for n, item in enumerate(items, start=1):
            unknown = sorted(set(item) - {"id", "request", "response", "image", "video", "audio"})
            if unknown:
                raise BenchError(f"input {n}: unknown field(s) {', '.join(unknown)} "
                                 "(known: id, request, response, image, video, audio)")
            request = item.get("request") or None
            response = item.get("response") or None
            try:
                image = load_image(item.get("image"))
                modality = input_modality(request, response, image, item.get("video") or None, item.get("audio") or None)
                medium = image if image is not None else _load_media(item)
            except ValueError as exc:  # MediaError is a ValueError too
                raise BenchError(f"input {n}: {exc}") from None
            messages = build_messages(modality, request, response, self.taxonomy, self.prompt_config)
            prompts.append((modality, messages, medium))
        out: list[Moderation] = []
        for start in range(0, len(prompts), self.batch_size):
            chunk = prompts[start : start + self.batch_size]
            texts = self.backend.generate([(m, img) for _, m, img in chunk])
            for (modality, _, _), text in zip(chunk, texts, strict=True):
                if isinstance(text, GenerationFailed):
                    out.append(Moderation(FormatError("generation_failed", text.message), "", modality))
                else:
                    parsed = parse_completion(text, modality, require_think=self.require_think)
                    out.append(Moderation(parsed, text, modality))
        return out

    def to_json(self, parsed: Parsed) -> dict[str, Any]:
        """A parsed answer as plain data, with the category's name (and parent) from the taxonomy."""
        if not parsed.ok:
            return {"ok": False, "code": parsed.code, "message": parsed.message}
        out: dict[str, Any] = {
            "ok": True,
            "modality": parsed.modality,
            "request": parsed.request,
            "response": parsed.response,
            "unsafe": parsed.unsafe,
            "category_kind": parsed.category_kind,
            "category": parsed.category,
            "category_name": None,
            "parent_category": None,
            "reasoning": parsed.reasoning,
        }
        if parsed.category_kind == "id" and parsed.category in self.taxonomy:
            out["category_name"] = self.taxonomy.get(parsed.category).name
            parent = self.taxonomy.parent(parsed.category)
            out["parent_category"] = parent.id if parent else parsed.category
        elif parsed.category_kind == "free_text":
            out["category_name"] = parsed.category  # the model's own name for an unlisted risk
        return out
