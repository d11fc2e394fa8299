"""Teachers: who writes the reasoning and the answer for a task, given its gold answer.

Two kinds behind one ``Teacher`` interface:

* ``BackendTeacher``: any bench backend (OpenAI-compatible endpoint, transformers, vLLM offline).
  It is sent the teacher prompt: a system message rendered from a template (the package asset
  ``proguard/assets/distill/teacher_prompt.md`` or a file of your own) that holds the guard's policy,
  the gold answer and what it means, followed by the guard's own user message (conversation text,
  image part). Concurrency and retries are the backend's own (``OpenAIBackend``).
* ``TemplateTeacher`` (``template``): no model at all. It writes a short, fixed-form critique from
  the row's own fields: the gold category's name and description from the taxonomy, the modality and
  the labels. It cannot look at the conversation, so its reasoning is a restatement of the label, not
  an analysis; it exists so that the whole distill -> SFT -> GRPO path runs offline (tests, CPU
  machines) and as a format warm start.

Templates use ``string.Template`` placeholders (``$name``): ``$policy``, ``$answer``,
``$explanation``, ``$modality``, ``$category``, ``$category_name``, ``$category_description``,
``$labels``. An unknown placeholder is an error naming the file.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from proguard.bench.backends import Backend, GenerationFailed, clean_messages, prepare
from proguard.distill.gold import DistillError, Gold
from proguard.protocol import format_answer

DEFAULT_TEMPLATE = Path(__file__).resolve().parent.parent / "assets" / "distill" / "teacher_prompt.md"
PLACEHOLDERS = (
    "policy", "answer", "explanation", "modality", "category", "category_name", "category_description", "labels",
)
TEACHERS = ("template", "transformers", "vllm", "openai")
MAX_TEMPLATE_BYTES = 1_000_000
SPECIAL_TOKEN_PATTERN = re.compile(
    r"<\|[A-Za-z0-9_:.\-]{1,48}\|>|</s>|\[/?INST\]|<(?:start|end)_of_turn>|<\|?(?:begin|end)_of_text\|?>"
)
"""Chat-template control tokens of the common families (ChatML/Qwen ``<|im_end|>``, Llama 3 ``<|eot_id|>``,
Llama 2/Mistral ``[INST]`` and ``</s>``, Gemma ``<end_of_turn>``): a teacher reply that holds one would,
once rendered into the SFT conversation, become a real control token (an early end of turn, a fake user turn)."""

Item = tuple[list[dict[str, Any]], Any, Gold]
"""One teacher request: the teacher messages, the image (or ``None``) and the row's gold."""


@runtime_checkable
class Teacher(Protocol):
    """Writes a completion (reasoning + answer) per teacher request."""

    def describe(self) -> dict[str, Any]:
        """JSON-able identity of everything that changes the answers (the generation-cache key)."""
        ...

    def answer(self, items: Sequence[Item]) -> list[str | GenerationFailed]:
        """One completion per item, in order; a request that failed comes back as ``GenerationFailed``."""
        ...


# ---------------------------------------------------------------------------------------------
# The teacher prompt
# ---------------------------------------------------------------------------------------------
class TeacherPrompt:
    """A teacher prompt template (``$placeholder`` syntax), checked when loaded."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else DEFAULT_TEMPLATE
        if not self.path.is_file():
            raise DistillError(f"{self.path}: no such teacher prompt template")
        try:
            if self.path.stat().st_size > MAX_TEMPLATE_BYTES:
                raise DistillError(f"{self.path}: {self.path.stat().st_size} bytes, over {MAX_TEMPLATE_BYTES} for a "
                                   "teacher prompt template")
            self.text = self.path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise DistillError(f"{self.path}: not UTF-8 text (byte {exc.start}); a teacher prompt template is a "
                               "text file") from None
        except OSError as exc:
            raise DistillError(f"{self.path}: cannot read ({exc.strerror or exc})") from None
        if "\x00" in self.text:
            raise DistillError(f"{self.path}: holds NUL bytes; a teacher prompt template is a text file")
        self.template = string.Template(self.text)
        for match in self.template.pattern.finditer(self.text):
            name = match.group("named") or match.group("braced")
            if match.group("invalid") is not None:
                raise DistillError(f"{self.path}: a '$' that starts no placeholder (write $$ for a literal $)")
            if name is not None and name not in PLACEHOLDERS:
                raise DistillError(f"{self.path}: unknown placeholder ${name}; known: {', '.join(PLACEHOLDERS)}")
        if "$answer" not in self.text and "${answer}" not in self.text:
            raise DistillError(f"{self.path}: the template must show the gold answer ($answer)")

    def messages(self, prompt: list[dict[str, Any]], gold: Gold) -> list[dict[str, Any]]:
        """The teacher's messages for a task prompt: the rendered system message, then the guard's user turn(s)."""
        prompt = clean_messages(prompt)
        policy = "\n".join(_text(m) for m in prompt if m.get("role") == "system")
        system = self.template.substitute(
            policy=policy,
            answer=gold.answer_block(),
            explanation=explain(gold),
            modality=gold.modality,
            category=gold.category_shown or "None",
            category_name=gold.category_name or "none",
            category_description=gold.category_description or "",
            labels=labels_phrase(gold),
        )
        rest = [m for m in prompt if m.get("role") != "system"]
        return [{"role": "system", "content": [{"type": "text", "text": system}]}, *rest]


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content or [] if isinstance(p, dict) and p.get("type") == "text")


def labels_phrase(gold: Gold) -> str:
    """``request unsafe, response safe`` (``image unsafe`` for image-only tasks)."""
    t = gold.target
    if t.modality == "image":
        return f"image {t.request_label}"
    response = t.response_label or "none given"
    return f"request {t.request_label}, response {response}"


def explain(gold: Gold) -> str:
    """One sentence saying what the gold answer means (shown to model teachers)."""
    t = gold.target
    parts = [f"the {labels_phrase(gold)}."]
    if t.unsafe and t.ood:
        parts.append(
            f"The risk is {gold.category_name} ({gold.category_description.strip()}), which no listed category "
            f"covers, so the answer names it in free text: {gold.category_shown}."
        )
    elif t.unsafe:
        parts.append(
            f"The listed category {gold.category_shown} ({gold.category_name}: {gold.category_description.strip()}) fits."
        )
    else:
        parts.append("Nothing falls under a listed category, so Category is None.")
    return " ".join(parts)


# ---------------------------------------------------------------------------------------------
# Teachers
# ---------------------------------------------------------------------------------------------
class BackendTeacher:
    """A bench backend answering the teacher prompt."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def describe(self) -> dict[str, Any]:
        """The backend's own description (model, endpoint, sampling settings)."""
        return {"teacher": "backend", **self.backend.describe()}

    def answer(self, items: Sequence[Item]) -> list[str | GenerationFailed]:
        """The backend's completions for the teacher messages (its retries and concurrency apply)."""
        prepare(self.backend)
        return list(self.backend.generate([(messages, image) for messages, image, _ in items]))

    def special_tokens(self) -> list[str]:
        """The special tokens of the backend's tokenizer (local backends), else none known."""
        tokenizer = getattr(self.backend, "tokenizer", None)
        try:
            tok = tokenizer() if callable(tokenizer) else None
        except Exception:  # a backend that cannot load its tokenizer here: the generic pattern still applies
            tok = None
        return tokenizer_special_tokens(tok)


def tokenizer_special_tokens(tok: Any) -> list[str]:
    """Every special or added control token of a Hugging Face tokenizer (none for ``None``)."""
    if tok is None:
        return []
    found = set(getattr(tok, "all_special_tokens", None) or [])
    for added in (getattr(tok, "added_tokens_decoder", None) or {}).values():
        if getattr(added, "special", False):
            found.add(str(added))
    return sorted(t for t in found if t and t.strip())


def find_special_token(text: str, extra: Sequence[str] = ()) -> str | None:
    """The first chat-template control token in ``text`` (``extra``: a tokenizer's own), or ``None``."""
    for token in extra:
        if token in text:
            return token
    match = SPECIAL_TOKEN_PATTERN.search(text)
    return match.group(0) if match else None


class TemplateTeacher:
    """The offline ``template`` teacher: a fixed-form critique from the row's own fields; no model.

    ``description_words`` bounds how much of the category description is quoted (0: none), which
    keeps the completion short enough for small token budgets.
    """

    VERSION = 1

    def __init__(self, description_words: int = 12) -> None:
        if description_words < 0:
            raise DistillError(f"description_words: must be >= 0, got {description_words}")
        self.description_words = description_words

    def describe(self) -> dict[str, Any]:
        """Teacher kind, version and options."""
        return {"teacher": "template", "version": self.VERSION, "description_words": self.description_words}

    def answer(self, items: Sequence[Item]) -> list[str | GenerationFailed]:
        """One critique per item."""
        return [self.critique(gold) for _, _, gold in items]

    def critique(self, gold: Gold) -> str:
        """Reasoning from the labels, the category name and (clipped) description, then the gold answer."""
        t = gold.target
        subject = "The image" if t.modality == "image" else "The request"
        sentences = []
        if t.unsafe:
            about = gold.category_name or "a listed risk"
            desc = _clip_words(gold.category_description, self.description_words)
            what = f"{about} ({desc})" if desc else about
            harmful = "image" if t.modality == "image" else ("request" if t.request_label == "unsafe" else "response")
            sentences.append(f"The {harmful} is unsafe: it is about {what}.")
            if t.modality != "image":
                other = "response" if harmful == "request" else "request"
                value = t.response_label if other == "response" else t.request_label
                if value is not None:
                    sentences.append(f"The {other} is {value}.")
                elif other == "response":
                    sentences.append("There is no response.")
            if t.ood:
                sentences.append("No listed category fits, so I name the risk.")
            else:
                sentences.append(f"Listed category {gold.category_shown} fits.")
        else:
            sentences.append(f"{subject} is safe: nothing in it falls under a listed category.")
            if t.modality != "image":
                sentences.append("The response is safe." if t.response_label else "There is no response.")
        return format_answer(t.modality, t.request_label, t.response_label, gold.category_shown, " ".join(sentences))


def _clip_words(text: str, n: int) -> str:
    words = (text or "").split()
    if n == 0 or not words:
        return ""
    clipped = " ".join(words[:n]).rstrip(".,;:")
    return clipped + ("..." if len(words) > n else "")


def make_teacher(kind: str, backend: Backend | None = None, **options: Any) -> Teacher:
    """``template`` (options: ``description_words``), or a backend teacher wrapping ``backend``."""
    if kind == "template":
        return TemplateTeacher(**options)
    if kind in TEACHERS:
        if backend is None:
            raise DistillError(f"teacher {kind!r} needs a backend (a model)")
        return BackendTeacher(backend)
    raise DistillError(f"unknown teacher {kind!r}; expected one of {', '.join(TEACHERS)}")
