"""Generic safety rules of the recipe, applied to every key rather than listed per key.

``non_finite`` finds a NaN or infinite number anywhere in the recipe (``nan < 0`` is false, so the
range checks of ``check_recipe`` let it through); ``env_reads`` finds every ``${oc.env:VAR}``
interpolation and the first variable the command did not allow. ``proguard.train.recipe`` turns
their findings into ``RecipeError``; this module holds no error type so that it imports nothing.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

_ENV_RE = re.compile(r"\$\{\s*oc\.env\s*:\s*([^,}\s]*)")


def non_finite(value: Any, key: str = "") -> str | None:
    """``"<key>: must be a finite number, got nan"`` for the first non-finite float found, else ``None``.

    Walks dataclass fields, mappings (``grpo.extra``, reward options) and lists, so a key added to
    the schema later is covered without being named here.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return f"{key or 'value'}: must be a finite number, got {value!r}"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        children: Any = ((f.name, getattr(value, f.name)) for f in dataclasses.fields(value))
    elif isinstance(value, Mapping):
        children = ((str(k), v) for k, v in value.items())
    elif isinstance(value, (list, tuple)):
        children = ((f"[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    for name, child in children:
        sub = f"{key}{name}" if name.startswith("[") else (f"{key}.{name}" if key else name)
        problem = non_finite(child, sub)
        if problem:
            return problem
    return None


def env_reads(data: Any, allow_env: bool | Sequence[str], key: str = "") -> tuple[dict[str, str], str | None]:
    """``({dotted key: text}, problem)``: the values that read the environment, and a message for the
    first one whose variable ``allow_env`` does not name (``True`` allows any)."""
    found: dict[str, str] = {}
    problem: str | None = None
    if isinstance(data, Mapping):
        items: Any = ((f"{key}.{k}" if key else str(k), v) for k, v in data.items())
    elif isinstance(data, list):
        items = ((f"{key}[{i}]", v) for i, v in enumerate(data))
    else:
        items = ()
        if isinstance(data, str) and "oc.env" in data:
            found[key] = data
            names = _ENV_RE.findall(data) or ["?"]
            allowed = allow_env is True or (not isinstance(allow_env, bool) and all(n in allow_env for n in names))
            if not allowed:
                problem = (
                    f"{key}: {data!r} reads the environment variable {names[0]}; ${{oc.env:...}} is off by default "
                    f"(a recipe must not copy secrets into run names and saved files): pass --allow-env {names[0]} "
                    "to allow it, or write the value itself"
                )
    for sub, value in items:
        more, sub_problem = env_reads(value, allow_env, sub)
        found.update(more)
        problem = problem or sub_problem
    return found, problem
