"""Error-message hints shared by the recipe, preset and registry checks."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(word: str, known: Iterable[str], n: int = 3) -> str:
    """`` (did you mean 'a' or 'b'?)`` for up to ``n`` close matches of ``word``; empty when none is close."""
    close = difflib.get_close_matches(word, list(known), n=n, cutoff=0.6)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
