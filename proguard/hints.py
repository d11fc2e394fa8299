"""Error-message helpers shared by every check: "did you mean" hints and the "N problems ... and K more" list."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence


def did_you_mean(word: str, known: Iterable[str], n: int = 3) -> str:
    """`` (did you mean 'a' or 'b'?)`` for up to ``n`` close matches of ``word``; empty when none is close."""
    close = difflib.get_close_matches(word, list(known), n=n, cutoff=0.6)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


MAX_PROBLEMS_SHOWN = 20
"""How many problems an error message lists before it says how many more there are."""


def problems_message(header: str, problems: Sequence[str], limit: int = MAX_PROBLEMS_SHOWN) -> str:
    """``header`` plus one problem per line, the first ``limit`` of them, then ``... and K more``."""
    shown = "\n".join(problems[:limit])
    more = f"\n... and {len(problems) - limit} more" if len(problems) > limit else ""
    return f"{header}\n{shown}{more}"
