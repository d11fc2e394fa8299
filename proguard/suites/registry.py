"""The adapter registry: ``Registry[Adapter]`` (``proguard.plugins``), benchmark names to adapter classes.

1. Entry points in the group ``proguard.suites``: the built-in adapters (declared in this project's
   ``pyproject.toml``, like the built-in rewards) and any installed package's, found the same way.
2. A dotted path ``package.module:Class`` for an adapter that is importable but not installed.

Entries load lazily. A name registered twice with different targets is an error when it is used; an
unknown name's error lists the known names with near-miss suggestions.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from proguard.plugins import Entry, Registry, RegistryError
from proguard.suites.base import Adapter

ENTRY_POINT_GROUP = "proguard.suites"


class AdapterRegistryError(RegistryError):
    """An adapter name or path could not be resolved; the message says which and why."""


def _check_adapter(name: str, obj: Any) -> None:
    if not (isinstance(obj, type) and issubclass(obj, Adapter)):
        where = f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', type(obj).__name__)}"
        raise AdapterRegistryError(f"benchmark {name!r}: {where} is not a subclass of proguard.suites.Adapter")


class AdapterRegistry(Registry[type[Adapter]]):
    """Benchmark names to ``module:Class`` targets, with their origin (an installed package, the project's own)."""

    kind = "benchmark"
    group = ENTRY_POINT_GROUP
    error = AdapterRegistryError

    def __init__(self, entries: Mapping[str, tuple[str, str]] = {}) -> None:  # noqa: B006 (read only)
        super().__init__([Entry(n, t, o) for n, (t, o) in entries.items()], check=_check_adapter)

    def _copy(self, entries: list[Entry]) -> AdapterRegistry:
        clone = AdapterRegistry()
        for e in entries:
            clone.add_entry(e)
        return clone

    @classmethod
    def default(cls) -> AdapterRegistry:
        """Every installed entry point of ``proguard.suites`` (the built-ins are entry points of this project)."""
        reg = cls()
        for entry in Registry.entry_points(ENTRY_POINT_GROUP):
            reg.add_entry(entry)
        return reg

    def add(self, name: str, target: str, origin: str) -> None:
        """Register ``name``; a second, different target for the same name is remembered as a conflict."""
        self.add_entry(Entry(name, target, origin))

    def get(self, name: str) -> Adapter:
        """An adapter instance for a registered name or a dotted path ``package.module:Class``."""
        return self.load(name)()


@functools.lru_cache(maxsize=1)
def default_registry() -> AdapterRegistry:
    """The registry of built-ins and installed entry points (cached)."""
    return AdapterRegistry.default()


BUILTIN: dict[str, str] = {e.name: e.target for e in Registry.entry_points(ENTRY_POINT_GROUP) if e.origin == "package proguard"}
"""The project's own adapters (name -> ``module:Class``), as declared in its ``pyproject.toml``."""
