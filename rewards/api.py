"""The contract every reward module meets, built-in or a user's plugin.

A reward module is a callable (usually a small class whose ``__init__`` takes its options)::

    def __call__(self, parsed: Sequence[Parsed], targets: Sequence[Target]) -> list[float | None] | Scored

``parsed[i]`` is the ``Verdict`` (or ``FormatError``) of completion ``i``, parsed once per batch by
the engine and shared by every module; ``targets[i]`` is that sample's ground truth. It returns one
float per completion (``None`` = not applicable to this sample, as in TRL), or a ``Scored`` with
named sub-scores that the engine logs as ``reward/<name>/<part>``. It must never raise on any
completion: a malformed answer is a ``FormatError`` to score, not an exception.

Modules live in ``rewards`` and import only ``rewards``, ``synonym_bank`` and ``taxonomy``; the
``proguard`` engine finds them by name through the entry-point group ``proguard.rewards`` and turns
a list of them into one TRL reward function.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from rewards.types import Parsed, Target

Score = float | None


@dataclass
class Scored:
    """A module's per-completion scores plus named sub-scores for logging."""

    total: list[Score]
    parts: dict[str, list[Score]] = field(default_factory=dict)


@runtime_checkable
class RewardModule(Protocol):
    """Structural type of a reward module (no base class to inherit)."""

    def __call__(self, parsed: Sequence[Parsed], targets: Sequence[Target]) -> list[Score] | Scored: ...
