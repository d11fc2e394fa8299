"""The reward registry: names to reward modules, with three ways in.

1. Entry points in the group ``proguard.rewards``: the built-ins (declared in this project's
   ``pyproject.toml``) and any installed package's plugins are found the same way.
2. A dotted path ``package.module:Name``, for a plugin that is importable but not installed.
3. In-process entries passed to ``RewardRegistry(...)`` (tests, notebooks).

Entries load lazily: a plugin's heavy imports (an embedding model) happen only when it is used. A
name registered twice with different targets is rejected when it is used; an unknown name's error
lists the known names with near-miss suggestions. Options are checked against the module's
signature before it is built, so a typo in a recipe names the option and the ones that exist.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import inspect
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from proguard.errors import UsageError
from proguard.hints import did_you_mean

ENTRY_POINT_GROUP = "proguard.rewards"


class RewardRegistryError(UsageError):
    """A reward name, path or option could not be resolved; the message says which and why."""


@dataclass(frozen=True)
class RewardEntry:
    """One registered reward: its name, where it lives (``module:attr``) and who registered it."""

    name: str
    target: str
    origin: str
    obj: Any = None  # set for in-process entries; loaded from ``target`` otherwise

    def load(self) -> Any:
        """The reward class (or function) this entry names."""
        if self.obj is not None:
            return self.obj
        return load_dotted(self.target, what=f"reward {self.name!r} (registered by {self.origin})")


@dataclass(frozen=True)
class OptionInfo:
    """One option of a reward module, read from its signature."""

    name: str
    default: Any
    required: bool
    annotation: str


@dataclass(frozen=True)
class RewardInfo:
    """What ``proguard rewards list`` shows for a reward."""

    name: str
    target: str
    origin: str
    summary: str
    options: tuple[OptionInfo, ...]
    error: str | None = None


def load_dotted(path: str, *, what: str | None = None) -> Any:
    """Import ``package.module:Name`` (``Name`` may be dotted) and return the object."""
    what = what or f"reward {path!r}"
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise RewardRegistryError(f"{what}: {path!r} is not a dotted path of the form package.module:Name")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:  # an import error inside a plugin is reported with the plugin's name
        raise RewardRegistryError(f"{what}: cannot import module {module_name!r}: {type(exc).__name__}: {exc}") from exc
    for part in attr.split("."):
        if not hasattr(obj, part):
            public = sorted(n for n in dir(obj) if not n.startswith("_"))
            hint = did_you_mean(part, public)
            raise RewardRegistryError(f"{what}: {module_name!r} has no attribute {attr!r}{hint}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise RewardRegistryError(f"{what}: {path} is a {type(obj).__name__}, not a class or function")
    return obj


class RewardRegistry:
    """Reward names to modules; built from entry points, extended with in-process entries."""

    def __init__(self, entries: Iterable[RewardEntry] = ()):
        self._all: list[RewardEntry] = []
        self._entries: dict[str, RewardEntry] = {}
        self._conflicts: dict[str, list[RewardEntry]] = {}
        for entry in entries:
            self._add(entry)

    def _add(self, entry: RewardEntry) -> None:
        if ":" in entry.name or not entry.name.strip():
            raise RewardRegistryError(f"bad reward name {entry.name!r} (from {entry.origin}): names hold no ':'")
        self._all.append(entry)
        old = self._entries.get(entry.name)
        if old is None:
            self._entries[entry.name] = entry
        elif (old.target, old.obj) != (entry.target, entry.obj):
            self._conflicts.setdefault(entry.name, [old]).append(entry)

    @classmethod
    def from_entry_points(cls, group: str = ENTRY_POINT_GROUP, extra: Iterable[RewardEntry] = ()) -> RewardRegistry:
        """Every entry point of ``group`` in the installed distributions, plus ``extra``."""
        entries = []
        for ep in importlib.metadata.entry_points(group=group):
            dist = getattr(ep, "dist", None)
            origin = f"package {dist.name}" if dist is not None else "an installed package"
            entries.append(RewardEntry(ep.name, ep.value, origin))
        return cls([*entries, *extra])

    def with_entries(self, entries: Mapping[str, Any]) -> RewardRegistry:
        """A copy where in-process objects replace (or add) the named entries."""
        kept = [e for e in self._all if e.name not in entries]
        new = [RewardEntry(n, f"{getattr(o, '__module__', '?')}:{getattr(o, '__qualname__', '?')}", "in-process", o)
               for n, o in entries.items()]
        return RewardRegistry([*kept, *new])

    # ---- lookup -----------------------------------------------------------------------------
    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def entry(self, name: str) -> RewardEntry:
        """The entry registered under ``name``; errors for unknown and doubly registered names."""
        if name in self._conflicts:
            who = "; ".join(f"{e.target} from {e.origin}" for e in self._conflicts[name])
            raise RewardRegistryError(f"reward name {name!r} is registered more than once ({who}); uninstall one")
        if name not in self._entries:
            known = ", ".join(self.names()) or "(none)"
            raise RewardRegistryError(
                f"unknown reward {name!r}{did_you_mean(name, self.names())}. Known rewards: {known}. A plugin can also "
                f"be named by a dotted path 'package.module:Name' or registered through the entry-point group "
                f"{ENTRY_POINT_GROUP!r}."
            )
        return self._entries[name]

    def resolve(self, name: str) -> Any:
        """The class or function behind a registered name or a dotted path ``package.module:Name``.

        The object is checked against the reward contract (``check_reward_contract``) before anyone
        constructs or calls it: ``--check`` and the build resolve through here, so they agree, and a
        dotted name such as ``subprocess:Popen`` is refused without running it.
        """
        obj = load_dotted(name) if ":" in name else self.entry(name).load()
        check_reward_contract(name, obj)
        return obj

    def build(self, name: str, options: Mapping[str, Any] | None = None) -> Callable[..., Any]:
        """A ready reward module: a class is instantiated with ``options``; a function is used as is."""
        factory = self.resolve(name)
        options = dict(options or {})
        if not inspect.isclass(factory):
            if options:
                raise RewardRegistryError(f"reward {name!r} is a function, it takes no options (got {sorted(options)})")
            return factory
        check_options(name, factory, options)
        try:
            module = factory(**options)
        except (TypeError, ValueError) as exc:
            raise RewardRegistryError(f"reward {name!r}: {exc}") from exc
        if not callable(module):
            raise RewardRegistryError(f"reward {name!r}: {factory.__name__} instances are not callable")
        if type(module) is not factory:  # a factory class built something else: that must meet the contract
            check_reward_contract(name, module)
        return module

    def describe(self, name: str) -> RewardInfo:
        """Name, origin, one-line summary and options of a reward (load errors are reported, not raised)."""
        if name not in self._entries:
            self.entry(name)  # raises the unknown-name error
        entry = self._entries[name]
        try:
            obj = self.resolve(name)
        except RewardRegistryError as exc:
            return RewardInfo(name, entry.target, entry.origin, "", (), error=str(exc))
        doc = inspect.getdoc(obj) or ""
        return RewardInfo(name, entry.target, entry.origin, doc.splitlines()[0] if doc else "", options_of(obj))


def check_reward_contract(name: str, obj: Any) -> None:
    """Refuse ``obj`` unless it is a reward class (instances called as ``(parsed, targets)``) or a
    Python function taking ``(parsed, targets)``; nothing is constructed or called here.

    Objects of the Python standard library (``subprocess:Popen``, ``os:system``, ``shutil:move``) are
    refused whatever their signature: none of them is a reward, and building or calling one runs
    its side effects with the recipe's options as arguments.
    """
    where = f"{getattr(obj, '__module__', None) or '?'}:{getattr(obj, '__qualname__', type(obj).__name__)}"
    top = (getattr(obj, "__module__", None) or "").partition(".")[0]
    if top in sys.stdlib_module_names or top == "builtins":
        raise RewardRegistryError(f"reward {name!r}: {where} is part of the Python standard library, not a reward module")
    contract = "a reward is a class whose instances are called as (parsed, targets), or a function (parsed, targets)"
    if inspect.isclass(obj):
        if any(_python_new(k) for k in obj.__mro__ if k is not object):
            return  # a factory class (a Python __new__ returns the module): the built object is checked in build()
        if not any("__call__" in vars(k) for k in obj.__mro__ if k is not object):
            raise RewardRegistryError(f"reward {name!r}: {where} is a class whose instances are not callable; {contract}")
        call, args = inspect.getattr_static(obj, "__call__"), (None, None, None)  # self, parsed, targets
        if isinstance(call, staticmethod):
            call, args = call.__func__, (None, None)
    elif inspect.isfunction(obj):
        call, args = obj, (None, None)
    elif callable(obj) and inspect.isfunction(getattr(type(obj), "__call__", None)):  # an in-process instance
        call, args = type(obj).__call__, (None, None, None)
    else:
        raise RewardRegistryError(f"reward {name!r}: {where} is a {type(obj).__name__}, not a class or function; {contract}")
    if not inspect.isfunction(call):
        raise RewardRegistryError(f"reward {name!r}: {where}: its __call__ is not a Python function; {contract}")
    try:
        inspect.signature(call).bind(*args)
    except TypeError:
        raise RewardRegistryError(
            f"reward {name!r}: {where}{inspect.signature(call)} does not take (parsed, targets); {contract}"
        ) from None


def _python_new(cls: type) -> bool:
    """Whether ``cls`` itself defines ``__new__`` in Python (not a C type's constructor)."""
    new = vars(cls).get("__new__")
    return inspect.isfunction(getattr(new, "__func__", new))


def options_of(factory: Any) -> tuple[OptionInfo, ...]:
    """The keyword options a reward class takes (a function takes none)."""
    if not inspect.isclass(factory):
        return ()
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return ()
    out = []
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        ann = p.annotation if isinstance(p.annotation, str) else getattr(p.annotation, "__name__", "")
        if p.annotation is inspect.Parameter.empty:
            ann = ""
        required = p.default is inspect.Parameter.empty
        out.append(OptionInfo(p.name, None if required else p.default, required, str(ann)))
    return tuple(out)


def check_options(name: str, factory: Any, options: Mapping[str, Any]) -> None:
    """Bind ``options`` to the factory's signature; a clear error for unknown or missing options."""
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return  # no signature to check against (a C extension): the constructor will complain
    params = sig.parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return
    accepted = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for key in options:
        if key not in accepted:
            listed = ", ".join(accepted) or "(none)"
            raise RewardRegistryError(
                f"reward {name!r}: unknown option {key!r}{did_you_mean(key, accepted)}. Its options: {listed}."
            )
    try:
        sig.bind(**options)
    except TypeError as exc:
        raise RewardRegistryError(f"reward {name!r}: {exc}") from None


@functools.lru_cache(maxsize=1)
def default_registry() -> RewardRegistry:
    """The registry of installed entry points (cached; ``default_registry.cache_clear()`` re-reads)."""
    return RewardRegistry.from_entry_points()
