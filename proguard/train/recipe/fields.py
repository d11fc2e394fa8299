"""Recipe fields: the help text and the range rule of a key, declared together, and the one check that runs them.

``option(default, help, gt=0)`` is a dataclass field whose metadata carries its help (what
``--explain`` prints) and its rule (what ``check_fields`` enforces), so a key's documentation and its
validation are written once, side by side, for every root schema (GRPO, SFT). A list field's rule
applies to each element (``logging.report_to``'s choices). Cross-field rules (one key against
another) stay with their schema's ``check`` method.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from proguard.errors import UsageError


class RecipeError(UsageError):
    """An invalid recipe; the message names the key and the file (or the command line) it came from."""


@dataclass(frozen=True)
class Rule:
    """A key's allowed values: bounds (``gt``/``ge``/``lt``/``le``), ``choices``, or ``nonempty`` text."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    choices: tuple[str, ...] | None = None
    nonempty: str | None = None  # the hint after "empty; " when the text is blank

    def problem(self, value: Any) -> str | None:
        """Why ``value`` breaks the rule, or ``None`` (``None`` values are allowed: nullable keys)."""
        if value is None or isinstance(value, bool):
            return None
        if self.choices is not None and value not in self.choices:
            return f"must be one of {', '.join(self.choices)}, got {value!r}"
        if self.nonempty is not None and isinstance(value, str) and not value.strip():
            return f"empty; {self.nonempty}" if self.nonempty else "empty"
        if not isinstance(value, (int, float)):
            return None
        low_ok = (self.gt is None or value > self.gt) and (self.ge is None or value >= self.ge)
        high_ok = (self.lt is None or value < self.lt) and (self.le is None or value <= self.le)
        if low_ok and high_ok:
            return None
        if self.lt is None and self.le is None:
            return f"must be {'> ' + _num(self.gt) if self.gt is not None else '>= ' + _num(self.ge)}, got {value!r}"
        low = f"({_num(self.gt)}" if self.gt is not None else f"[{_num(self.ge)}"
        high = f"{_num(self.lt)})" if self.lt is not None else f"{_num(self.le)}]"
        return f"must be in {low}, {high}, got {value!r}"


def _num(x: float | None) -> str:
    return f"{x:g}"


def option(default: Any = dataclasses.MISSING, help: str = "", *, factory: Callable[[], Any] | None = None,
           gt: float | None = None, ge: float | None = None, lt: float | None = None, le: float | None = None,
           choices: Sequence[str] | None = None, nonempty: str | None = None) -> Any:
    """A recipe field: its default (or ``factory``), its help and its rule, in one declaration."""
    rule = Rule(gt, ge, lt, le, tuple(choices) if choices is not None else None, nonempty)
    metadata: dict[str, Any] = {"help": help}
    if rule != Rule():
        metadata["rule"] = rule
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def section(factory: type, help: str) -> Any:
    """A recipe section (a nested dataclass) with its help."""
    return field(default_factory=factory, metadata={"help": help})


def check_fields(obj: Any, key: str = "") -> str | None:
    """``"<key>: <why>"`` for the first field of ``obj`` (walked into its sections) that breaks its rule."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        sub = f"{key}.{f.name}" if key else f.name
        rule: Rule | None = f.metadata.get("rule")
        if rule is not None:
            items = list(enumerate(value)) if isinstance(value, (list, tuple)) else [(None, value)]
            for i, item in items:
                why = rule.problem(item)
                if why:
                    return f"{sub}[{i}]: {why}" if i is not None else f"{sub}: {why}"
        if dataclasses.is_dataclass(value) and not isinstance(value, type) and _is_recipe_section(value):
            problem = check_fields(value, sub)
            if problem:
                return problem
    return None


def _is_recipe_section(value: Any) -> bool:
    """Sections declared with ``option``/``section`` (other dataclasses, e.g. ``MediaLimits``, check themselves)."""
    return any("rule" in f.metadata for f in dataclasses.fields(value)) or type(value).__module__.startswith(
        "proguard.train.recipe")
