"""What a reward module receives: the parsed answer (or its format error) and the sample's truth.

These types live in ``rewards`` (not in the ``proguard`` engine) because the import graph is one-way
(taxonomy <- synonym_bank <- rewards <- proguard): the engine's parser produces them, and reward
plugins, built-in or a user's, read them without importing the engine.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Modality = Literal["text", "image", "text_image", "video", "text_video", "audio", "text_audio"]
Label = Literal["safe", "unsafe"]
CategoryKind = Literal["none", "id", "free_text"]
CategoryLevel = Literal["subcategory", "category"]

MODALITIES: tuple[str, ...] = ("text", "image", "text_image", "video", "text_video", "audio", "text_audio")
LABELS: tuple[str, ...] = ("safe", "unsafe")

MEDIA_ONLY: tuple[str, ...] = ("image", "video", "audio")
"""Modalities with no conversation: the guard labels the medium itself (a request label, no response)."""

MEDIUM: dict[str, str | None] = {
    "text": None,
    "image": "image",
    "text_image": "image",
    "video": "video",
    "text_video": "video",
    "audio": "audio",
    "text_audio": "audio",
}
"""The non-text input a modality carries (the sample field holding it), ``None`` for text."""


def has_response(modality: str) -> bool:
    """Whether answers for ``modality`` carry a ``Response:`` label (every modality but the media-only ones)."""
    return modality not in MEDIA_ONLY


@dataclass(frozen=True)
class Verdict:
    """A well-formed guard answer.

    ``request`` is the medium's label for media-only samples (image, video, audio). ``response`` is
    ``None`` for media-only samples and for conversations without a response. ``category`` is a prompt-side ID when
    ``category_kind == "id"``, the model's own short name when ``"free_text"``, else ``None``.
    """

    modality: str
    request: str
    response: str | None
    category_kind: CategoryKind
    category: str | None
    reasoning: str | None

    ok = True

    @property
    def unsafe(self) -> bool:
        """Whether any label is ``unsafe``."""
        return self.request == "unsafe" or self.response == "unsafe"


@dataclass(frozen=True)
class FormatError:
    """A completion that does not follow the answer protocol; ``code`` is stable, ``message`` human."""

    code: str
    message: str

    ok = False


Parsed = Verdict | FormatError


@dataclass(frozen=True)
class Target:
    """A sample's ground truth as rewards see it.

    ``category`` is the node's ID in the *source* taxonomy (``None`` when safe); ``id_map`` maps
    source IDs to the IDs shown in this sample's prompt, so a shuffled prompt scores correctly.
    ``ood`` marks a sample whose category (or its parent) was hidden from the prompt: the right
    answer is then a free-text name, scored against ``ood_name`` and ``ood_synonyms``.
    """

    modality: str
    request_label: str
    response_label: str | None = None
    category: str | None = None
    category_level: CategoryLevel = "subcategory"
    id_map: Mapping[str, str] = field(default_factory=dict)
    ood: bool = False
    ood_name: str | None = None
    ood_synonyms: tuple[str, ...] = ()

    @property
    def unsafe(self) -> bool:
        """Whether any true label is ``unsafe``."""
        return self.request_label == "unsafe" or self.response_label == "unsafe"

    def prompt_id(self, source_id: str | None) -> str | None:
        """The ID a source-taxonomy node has in this sample's prompt (identity without a map)."""
        if source_id is None:
            return None
        return self.id_map.get(source_id, source_id) if self.id_map else source_id

    def source_id(self, prompt_id: str) -> str | None:
        """The source-taxonomy ID behind a prompt-side ID; ``None`` if the prompt had no such ID."""
        if not self.id_map:
            return prompt_id
        for src, shown in self.id_map.items():
            if shown == prompt_id:
                return src
        return None

    @classmethod
    def from_columns(cls, row: Mapping[str, Any]) -> Target:
        """Build from a dataset row (the columns the task generator writes; extra keys ignored)."""
        id_map = row.get("id_map") or {}
        if isinstance(id_map, str):
            id_map = json.loads(id_map) if id_map.strip() else {}
        syns = row.get("ood_synonyms") or ()
        return cls(
            modality=str(row["modality"]),
            request_label=str(row["request_label"]),
            response_label=row.get("response_label") or None,
            category=row.get("category") or None,
            category_level=row.get("category_level") or "subcategory",
            id_map=dict(id_map),
            ood=bool(row.get("ood") or False),
            ood_name=row.get("ood_name") or None,
            ood_synonyms=tuple(syns),
        )


TARGET_COLUMNS: tuple[str, ...] = (
    "modality",
    "request_label",
    "response_label",
    "category",
    "category_level",
    "id_map",
    "ood",
    "ood_name",
    "ood_synonyms",
)
"""Dataset columns that ``Target.from_columns`` reads; every task dataset carries them."""
