"""Text from models, files and servers made safe to parse, tokenize, cache and write.

A lone UTF-16 surrogate (``"\\ud800"``: JSON's ``"\\ud800"`` escape without its pair, or a server's
broken output) is a valid Python ``str`` but cannot be encoded as UTF-8 and makes tokenizers
raise: one such character aborted ``rewards score`` on a whole file, and a bench run at its cache
write. ``clean_text`` replaces each with U+FFFD and says how many it replaced; the project calls it
where text enters (completion parsing, scoring files, backend replies, the generation cache), so
nothing downstream meets one.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

REPLACEMENT = "\ufffd"
_SURROGATE = re.compile("[\ud800-\udfff]")  # a valid pair is one astral code point in a str, never two
T = TypeVar("T")


def clean_text(value: T) -> tuple[T, int]:
    """``value`` with every lone surrogate replaced by U+FFFD, and how many were replaced.

    Strings are cleaned; lists, tuples and dicts (keys and values) are walked; anything else is
    returned as it is. Text without surrogates is returned unchanged (the same object).
    """
    if isinstance(value, str):
        if not _SURROGATE.search(value):
            return value, 0
        cleaned, n = _SURROGATE.subn(REPLACEMENT, value)
        return cleaned, n  # type: ignore[return-value]
    if isinstance(value, (list, tuple)):
        items, total = [], 0
        for v in value:
            c, n = clean_text(v)
            items.append(c)
            total += n
        return (type(value)(items) if total else value), total  # type: ignore[return-value]
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        total = 0
        for k, v in value.items():
            ck, nk = clean_text(k)
            cv, nv = clean_text(v)
            out[ck] = cv
            total += nk + nv
        return (out if total else value), total  # type: ignore[return-value]
    return value, 0
