"""Test helpers for the benchmark: a scripted backend that replays chosen answers, and the answer a
perfect guard would give to a task row.

``ScriptedBackend`` meets the ``proguard.bench.backends.Backend`` interface without a model: it
looks each prompt up by ``proguard.bench.cache.prompt_hash`` and counts calls and prompts, so tests
can prove what was (re)generated. It is for tests and examples only; the benchmark's real backends
live in ``proguard.bench.backends``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

from proguard.bench.backends import GenerationFailed, GenerationSettings, Prompt, media_of
from proguard.bench.cache import prompt_hash
from proguard.protocol import format_answer
from rewards.types import Target
from taxonomy import parent_id_of


class ScriptedBackend:
    """Replays answers keyed by prompt hash; ``interrupt_at_call`` raises ``KeyboardInterrupt`` there."""

    def __init__(
        self,
        answers: Mapping[str, str | GenerationFailed],
        settings: GenerationSettings | None = None,
        *,
        name: str = "scripted",
        interrupt_at_call: int | None = None,
    ) -> None:
        self.answers = dict(answers)
        self.settings = settings or GenerationSettings()
        self.name = name
        self.interrupt_at_call = interrupt_at_call
        self.calls = 0
        self.prompts = 0

    @classmethod
    def from_tasks(cls, tasks: Any, answer: Callable[[dict[str, Any]], str | GenerationFailed], **kwargs: Any) -> ScriptedBackend:
        """A backend answering each task row with ``answer(row)``."""
        table = {prompt_hash(row["prompt"], media_of(row)): answer(row) for row in tasks}
        return cls(table, **kwargs)

    def describe(self) -> dict[str, Any]:
        """Identity for the generation cache."""
        return {"backend": "scripted", "model": self.name, "settings": asdict(self.settings)}

    def generate(self, batch: Sequence[Prompt]) -> list[str | GenerationFailed]:
        """The scripted answer of each prompt; ``KeyError`` for a prompt it was not given."""
        self.calls += 1
        if self.interrupt_at_call is not None and self.calls >= self.interrupt_at_call:
            raise KeyboardInterrupt("scripted interruption")
        self.prompts += len(batch)
        return [self.answers[prompt_hash(messages, image)] for messages, image in batch]


def perfect_answer(row: Mapping[str, Any], reasoning: str = "Checked against the policy.") -> str:
    """The completion a perfect guard gives to a task row: right labels, the right ID as the prompt
    shows it (at the level asked), or the hidden category's name on an OOD sample."""
    t = Target.from_columns(row)
    category = None
    if t.unsafe:
        if t.ood:
            category = t.ood_name
        else:
            wanted = (parent_id_of(t.category) or t.category) if t.category_level == "category" else t.category
            category = t.prompt_id(wanted)
    return format_answer(t.modality, t.request_label, t.response_label, category, reasoning)
