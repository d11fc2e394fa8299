"""The ``format`` reward: 1 when a completion follows the answer protocol for its modality, else 0.

The engine parses every completion once (``proguard.protocol.parse_completion``, reasoning block
optional); this module decides what counts as well-formed on top of that: whether the
``<think>`` block is required and how long its text may be. Used as a gate it reproduces
ProGuard's rule "no reward for an unparseable answer".
"""

from __future__ import annotations

from collections.abc import Sequence

from rewards import _checks
from rewards.types import Parsed, Target

DEFAULT_MIN_THINK_CHARS = 1
"""An empty reasoning block is not reasoning: ``<think></think>`` gets no format credit."""
DEFAULT_MAX_THINK_CHARS = 8000
"""A reasoning block far beyond any completion budget (a 1M-character think) gets no format credit."""


class FormatReward:
    """1.0 for a well-formed answer, 0.0 otherwise.

    Args:
        require_think: the answer must follow a ``<think>...</think>`` block.
        min_think_chars: fewest characters of (stripped) reasoning; counts only when a block is given.
            Default 1: an empty ``<think></think>`` earns nothing.
        max_think_chars: most characters of reasoning (``None``: no bound). Default 8000 (about
            2,000 tokens, twice the paper's completion budget): a runaway block earns nothing.

    Returns:
        One float per completion.

    Example:
        >>> from rewards.types import FormatError, Target, Verdict
        >>> ok = Verdict("image", "safe", None, "none", None, "A flower.")
        >>> FormatReward(max_think_chars=5)([ok, FormatError("empty", "")], [Target("image", "safe")] * 2)
        [0.0, 0.0]
        >>> FormatReward()([ok], [Target("image", "safe")])
        [1.0]
    """

    def __init__(
        self,
        require_think: bool = True,
        min_think_chars: int = DEFAULT_MIN_THINK_CHARS,
        max_think_chars: int | None = DEFAULT_MAX_THINK_CHARS,
    ):
        self.require_think = _checks.flag("require_think", require_think)
        self.min_think_chars = _checks.count("min_think_chars", min_think_chars)
        self.max_think_chars = _checks.count("max_think_chars", max_think_chars, allow_none=True)
        if self.max_think_chars is not None and self.max_think_chars < self.min_think_chars:
            raise ValueError(f"option max_think_chars ({max_think_chars}) is below min_think_chars ({min_think_chars})")

    def __call__(self, parsed: Sequence[Parsed], targets: Sequence[Target]) -> list[float | None]:
        """Score each completion."""
        return [self._one(p, t) for p, t in zip(parsed, targets, strict=True)]

    def _one(self, p: Parsed, t: Target) -> float:
        if not p.ok or p.modality != t.modality:
            return 0.0
        if p.reasoning is None:
            return 0.0 if self.require_think else 1.0
        n = len(p.reasoning)
        if n < self.min_think_chars or (self.max_think_chars is not None and n > self.max_think_chars):
            return 0.0
        return 1.0
