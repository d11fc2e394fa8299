"""The gold answer of a task row and the check a teacher's answer must pass to be kept.

A task row (``proguard.tasks``) carries its ground truth in source-taxonomy IDs plus the ID map of
its own prompt. ``Gold.from_row`` turns that into what the prompt's answer must say: the labels, the
category ID *as this prompt shows it* at the level the prompt asks for, or for an OOD task (its
category hidden from the prompt) a free-text name. ``check_answer`` parses a teacher's text with the
policy's own parser and names the first field that disagrees with the gold; a teacher answer that
fails it is rejected, never kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from proguard.errors import UsageError
from proguard.protocol import format_answer, parse_completion
from rewards.category import CategoryReward
from rewards.types import Parsed, Target
from taxonomy import Taxonomy, parent_id_of

REJECT_REASONS = (
    "generation_failed",
    "special_tokens",
    "format",
    "request_label",
    "response_label",
    "category",
    "ood_needs_free_text",
)
"""Why a teacher answer is rejected; ``format`` answers also record the parser's error code;
``special_tokens``: the reply holds a chat-template control token (``<|im_end|>``...)."""


class DistillError(UsageError):
    """Bad distillation input (a task row, the teacher template, an option); the message names it."""


@dataclass(frozen=True)
class Gold:
    """What a task row's answer must say, plus the words a critique may use to explain it."""

    task_id: str
    target: Target
    category_shown: str | None
    """``Category:`` of the gold answer: the prompt-side ID, the OOD free-text name, or ``None`` (safe)."""
    category_name: str | None
    category_description: str
    sample_id: str | None = None

    @property
    def modality(self) -> str:
        """The task's modality."""
        return self.target.modality

    @property
    def group(self) -> str:
        """The report's category bucket: the gold category's name, ``safe``, or ``OOD: name``."""
        if not self.target.unsafe:
            return "safe"
        name = self.category_name or self.target.category or "?"
        return f"OOD: {name}" if self.target.ood else name

    def answer_block(self) -> str:
        """The gold ``<answer>`` block alone (no reasoning)."""
        t = self.target
        return format_answer(t.modality, t.request_label, t.response_label, self.category_shown, reasoning=None)

    @classmethod
    def from_row(cls, row: Mapping[str, Any], taxonomy: Taxonomy, where: str) -> Gold:
        """The gold of one task row; ``DistillError`` naming ``where`` if its category is not in ``taxonomy``."""
        target = Target.from_columns(row)
        name, description, shown = None, "", None
        if target.unsafe:
            if not target.category:
                raise DistillError(f"{where}: category: empty on an unsafe task")
            asked = target.category
            if target.category_level == "category":
                asked = parent_id_of(asked) or asked
            node = _node(taxonomy, asked)
            if node is None:
                raise DistillError(
                    f"{where}: category: {asked!r} is not in taxonomy {taxonomy.name!r}; pass the taxonomy the "
                    "tasks were built from (--taxonomy)"
                )
            name, description = node.name, node.description
            if target.ood:
                shown = target.ood_name or row.get("category_name") or node.name
            else:
                shown = target.prompt_id(asked)
        return cls(
            task_id=str(row["task_id"]),
            target=target,
            category_shown=shown,
            category_name=name,
            category_description=description,
            sample_id=row.get("sample_id"),
        )


def _node(taxonomy: Taxonomy, source_id: str):
    for node in taxonomy.nodes():
        if (node.key or node.id) == source_id:
            return node
    return None


_CATEGORY = CategoryReward()


def check_answer(text: str, gold: Gold) -> tuple[Parsed, str | None]:
    """Parse ``text`` as the policy would; the reason it disagrees with ``gold`` (``None``: keep it)."""
    parsed = parse_completion(text, gold.modality, require_think=True)
    if not parsed.ok:
        return parsed, "format"
    t = gold.target
    if parsed.request != t.request_label:
        return parsed, "request_label"
    if t.modality != "image" and parsed.response != t.response_label:
        return parsed, "response_label"
    if t.unsafe:
        if t.ood:
            if parsed.category_kind != "free_text":
                return parsed, "ood_needs_free_text"
        elif _CATEGORY([parsed], [t]).parts["exact"][0] != 1.0:
            return parsed, "category"
    return parsed, None
