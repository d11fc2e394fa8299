"""``Registry[T]``: names to plugin objects of one kind (rewards, benchmark adapters), with two ways in.

1. Entry points of the kind's group (``proguard.rewards``, ``proguard.suites``): the project's own
   built-ins (declared in its ``pyproject.toml``) and any installed package's plugins, found alike.
2. A dotted path ``package.module:Name``, for a plugin that is importable but not installed.

In-process entries (``with_entries``) serve tests and notebooks. Entries load lazily: a plugin's heavy
imports happen only when it is used. A name registered twice with different targets is an error when
it is used; an unknown name's error lists the known names with near-miss suggestions. Every message
names the registry's kind ("unknown reward 'x'", "unknown benchmark 'y'").
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from proguard.errors import UsageError
from proguard.hints import did_you_mean

T = TypeVar("T")


class RegistryError(UsageError):
    """A plugin name, path or option could not be resolved; the message names the kind and says why."""


@dataclass(frozen=True)
class Entry:
    """One registered plugin: its name, where it lives (``module:attr``) and who registered it."""

    name: str
    target: str
    origin: str
    obj: Any = None  # set for in-process entries; loaded from ``target`` otherwise


def load_dotted(path: str, *, what: str, error: type[Exception] = RegistryError, shape: str = "package.module:Name") -> Any:
    """Import ``package.module:Name`` (``Name`` may be dotted) and return the object; ``error`` names ``what``."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise error(f"{what}: {path!r} is not a dotted path of the form {shape}")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:  # an import error inside a plugin is reported with the plugin's name
        raise error(f"{what}: cannot import module {module_name!r}: {type(exc).__name__}: {exc}") from exc
    for part in attr.split("."):
        if not hasattr(obj, part):
            public = sorted(n for n in dir(obj) if not n.startswith("_"))
            raise error(f"{what}: {module_name!r} has no attribute {attr!r}{did_you_mean(part, public)}")
        obj = getattr(obj, part)
    return obj


class Registry(Generic[T]):
    """Names of one ``kind`` of plugin to their objects; built from entry points, extended in-process.

    ``check(name, obj)`` (optional) refuses an object that is not a ``T`` before anyone uses it.
    """

    kind: str = "plugin"
    group: str = ""
    error: type[Exception] = RegistryError

    def __init__(self, entries: Iterable[Entry] = (), *, kind: str | None = None, group: str | None = None,
                 error: type[Exception] | None = None, check: Callable[[str, Any], None] | None = None) -> None:
        self.kind = kind or self.kind
        self.group = group if group is not None else self.group
        self.error = error or self.error
        self._check = check
        self._all: list[Entry] = []
        self._entries: dict[str, Entry] = {}
        self._conflicts: dict[str, list[Entry]] = {}
        for entry in entries:
            self.add_entry(entry)

    # ---- building ---------------------------------------------------------------------------
    def add_entry(self, entry: Entry) -> None:
        """Register ``entry``; a second, different target for the same name is remembered as a conflict."""
        if ":" in entry.name or not entry.name.strip():
            raise self.error(f"bad {self.kind} name {entry.name!r} (from {entry.origin}): names hold no ':'")
        self._all.append(entry)
        old = self._entries.get(entry.name)
        if old is None:
            self._entries[entry.name] = entry
        elif (old.target, old.obj) != (entry.target, entry.obj):
            self._conflicts.setdefault(entry.name, [old]).append(entry)

    @staticmethod
    def entry_points(group: str) -> list[Entry]:
        """Every installed entry point of ``group``, with the distribution that declares it."""
        entries = []
        for ep in importlib.metadata.entry_points(group=group):
            dist = getattr(ep, "dist", None)
            entries.append(Entry(ep.name, ep.value, f"package {dist.name}" if dist is not None else "an installed package"))
        return entries

    def with_entries(self, objects: Mapping[str, Any]):
        """A copy where in-process objects replace (or add) the named entries."""
        kept = [e for e in self._all if e.name not in objects]
        new = [Entry(n, f"{getattr(o, '__module__', '?')}:{getattr(o, '__qualname__', '?')}", "in-process", o)
               for n, o in objects.items()]
        return self._copy([*kept, *new])

    def _copy(self, entries: list[Entry]):
        clone = type(self).__new__(type(self))
        Registry.__init__(clone, entries, kind=self.kind, group=self.group, error=self.error, check=self._check)
        return clone

    # ---- lookup -----------------------------------------------------------------------------
    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def entry(self, name: str) -> Entry:
        """The entry registered under ``name``; errors for unknown and doubly registered names."""
        if name in self._conflicts:
            who = "; ".join(f"{e.target} from {e.origin}" for e in self._conflicts[name])
            raise self.error(f"{self.kind} name {name!r} is registered more than once ({who}); uninstall one")
        if name not in self._entries:
            known = ", ".join(self.names()) or "(none)"
            raise self.error(
                f"unknown {self.kind} {name!r}{did_you_mean(name, self.names())}. Known {self.kind}s: {known}. A "
                f"plugin can also be named by a dotted path 'package.module:Name' or registered through the "
                f"entry-point group {self.group!r}."
            )
        return self._entries[name]

    def load(self, name: str) -> T:
        """The object behind a registered name or a dotted path ``package.module:Name``, checked as a ``T``."""
        if ":" in name:
            obj = load_dotted(name, what=f"{self.kind} {name!r}", error=self.error)
        else:
            entry = self.entry(name)
            obj = entry.obj if entry.obj is not None else load_dotted(
                entry.target, what=f"{self.kind} {name!r} (registered by {entry.origin})", error=self.error)
        if self._check is not None:
            self._check(name, obj)
        return obj


__all__ = ["Entry", "Registry", "RegistryError", "load_dotted"]
