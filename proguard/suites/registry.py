"""The adapter registry: benchmark names to adapter classes, with three ways in (as for rewards).

1. Built-ins: the adapters of ``proguard.suites.adapters``.
2. Entry points in the group ``proguard.suites``: an installed package registers ``name = "pkg.mod:Class"``.
3. A dotted path ``package.module:Class`` for an adapter that is importable but not installed.

Entries load lazily. A name registered twice with different targets is an error when it is used; an
unknown name's error lists the known names with near-miss suggestions.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
from collections.abc import Mapping

from proguard.errors import UsageError
from proguard.hints import did_you_mean
from proguard.suites.base import Adapter

ENTRY_POINT_GROUP = "proguard.suites"

BUILTIN: dict[str, str] = {
    "aegis2": "proguard.suites.adapters.aegis2:Aegis2",
    "beavertails": "proguard.suites.adapters.beavertails:BeaverTails",
    "beavertails_v": "proguard.suites.adapters.beavertails_v:BeaverTailsV",
    "donotanswer": "proguard.suites.adapters.donotanswer:DoNotAnswer",
    "donotanswer_responses": "proguard.suites.adapters.donotanswer:DoNotAnswerResponses",
    "harmbench": "proguard.suites.adapters.harmbench:HarmBench",
    "llavaguard": "proguard.suites.adapters.llavaguard:LlavaGuard",
    "openai_moderation": "proguard.suites.adapters.openai_moderation:OpenAIModeration",
    "simplesafetytests": "proguard.suites.adapters.simplesafetytests:SimpleSafetyTests",
    "toxicchat": "proguard.suites.adapters.toxicchat:ToxicChat",
    "unsafebench": "proguard.suites.adapters.unsafebench:UnsafeBench",
    "vlguard": "proguard.suites.adapters.vlguard:VLGuard",
    "wildguardtest": "proguard.suites.adapters.wildguardtest:WildGuardTest",
    "xstest": "proguard.suites.adapters.xstest:XSTest",
    "xstest_response": "proguard.suites.adapters.xstest_response:XSTestResponse",
}


class AdapterRegistryError(UsageError):
    """An adapter name or path could not be resolved; the message says which and why."""


class AdapterRegistry:
    """Benchmark names to ``module:Class`` targets, with their origin (built-in or a package)."""

    def __init__(self, entries: Mapping[str, tuple[str, str]]) -> None:
        self._entries = dict(entries)  # name -> (target, origin)
        self._conflicts: dict[str, list[tuple[str, str]]] = {}

    @classmethod
    def default(cls) -> AdapterRegistry:
        """Built-ins plus every installed entry point of ``proguard.suites``."""
        reg = cls({n: (t, "built-in") for n, t in BUILTIN.items()})
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = getattr(ep, "dist", None)
            reg.add(ep.name, ep.value, f"package {dist.name}" if dist is not None else "an installed package")
        return reg

    def add(self, name: str, target: str, origin: str) -> None:
        """Register ``name``; a second, different target for the same name is remembered as a conflict."""
        old = self._entries.get(name)
        if old is None:
            self._entries[name] = (target, origin)
        elif old[0] != target:
            self._conflicts.setdefault(name, [old]).append((target, origin))

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def get(self, name: str) -> Adapter:
        """An adapter instance for a registered name or a dotted path ``package.module:Class``."""
        if ":" in name:
            return _instantiate(name, f"adapter {name!r}")
        if name in self._conflicts:
            who = "; ".join(f"{t} from {o}" for t, o in self._conflicts[name])
            raise AdapterRegistryError(f"benchmark name {name!r} is registered more than once ({who}); uninstall one")
        if name not in self._entries:
            raise AdapterRegistryError(
                f"unknown benchmark {name!r}{did_you_mean(name, self.names())}. Known: {', '.join(self.names())}. "
                f"An adapter can also be named by a dotted path 'package.module:Class' or registered through "
                f"the entry-point group {ENTRY_POINT_GROUP!r}."
            )
        target, origin = self._entries[name]
        return _instantiate(target, f"adapter {name!r} (registered by {origin})")


def _instantiate(path: str, what: str) -> Adapter:
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise AdapterRegistryError(f"{what}: {path!r} is not of the form package.module:Class")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # a plugin's import error is reported with the plugin's name
        raise AdapterRegistryError(f"{what}: cannot import {module_name!r}: {type(exc).__name__}: {exc}") from exc
    obj = getattr(module, attr, None)
    if obj is None:
        public = [n for n in dir(module) if not n.startswith("_")]
        raise AdapterRegistryError(f"{what}: {module_name!r} has no attribute {attr!r}{did_you_mean(attr, public)}")
    if not (isinstance(obj, type) and issubclass(obj, Adapter)):
        raise AdapterRegistryError(f"{what}: {path} is not a subclass of proguard.suites.Adapter")
    return obj()


@functools.lru_cache(maxsize=1)
def default_registry() -> AdapterRegistry:
    """The registry of built-ins and installed entry points (cached)."""
    return AdapterRegistry.default()
