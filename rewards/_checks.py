"""Option checks shared by the built-in reward modules: options come from YAML, so types are checked."""

from __future__ import annotations

import math
from typing import Any


def number(name: str, value: Any, *, low: float | None = None, high: float | None = None) -> float:
    """``value`` as a finite float within ``[low, high]``; ``ValueError`` naming the option otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"option {name}: must be a finite number, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"[{low if low is not None else '-inf'}, {high if high is not None else 'inf'}]"
        raise ValueError(f"option {name}: must lie in {bounds}, got {value!r}")
    return float(value)


def count(name: str, value: Any, *, allow_none: bool = False) -> int | None:
    """``value`` as an integer >= 0 (or ``None`` when allowed); ``ValueError`` naming the option otherwise."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"option {name}: must be an integer >= 0{' or null' if allow_none else ''}, got {value!r}")
    return value


def flag(name: str, value: Any) -> bool:
    """``value`` as a bool; ``ValueError`` naming the option otherwise (YAML ``yes``/``no`` are already bools)."""
    if not isinstance(value, bool):
        raise ValueError(f"option {name}: must be true or false, got {value!r}")
    return value
