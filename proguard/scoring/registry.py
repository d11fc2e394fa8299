"""The reward registry: ``Registry[T]`` (``proguard.plugins``) of reward modules, with their contract and options.

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
import inspect
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from proguard.hints import did_you_mean
from proguard.plugins import Entry, Registry, RegistryError
from proguard.plugins import load_dotted as _load_dotted

ENTRY_POINT_GROUP = "proguard.rewards"


class RewardRegistryError(RegistryError):
    """A reward name, path or option could not be resolved; the message says which and why."""


RewardEntry = Entry
"""One registered reward: its name, where it lives (``module:attr``) and who registered it."""


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
    """Import ``package.module:Name`` (``Name`` may be dotted) and return the object (a class or function)."""
    what = what or f"reward {path!r}"
    obj = _load_dotted(path, what=what, error=RewardRegistryError)
    if not callable(obj):
        raise RewardRegistryError(f"{what}: {path} is a {type(obj).__name__}, not a class or function")
    return obj


class RewardRegistry(Registry[Callable[..., Any]]):
    """Reward names to modules; built from entry points, extended with in-process entries."""

    kind = "reward"
    group = ENTRY_POINT_GROUP
    error = RewardRegistryError

    def __init__(self, entries: Iterable[RewardEntry] = ()):
        super().__init__(entries, check=check_reward_contract)

    def _copy(self, entries: list[Entry]) -> RewardRegistry:
        return RewardRegistry(entries)

    @classmethod
    def from_entry_points(cls, group: str = ENTRY_POINT_GROUP, extra: Iterable[RewardEntry] = ()) -> RewardRegistry:
        """Every entry point of ``group`` in the installed distributions, plus ``extra``."""
        return cls([*Registry.entry_points(group), *extra])

    # ---- lookup -----------------------------------------------------------------------------
    def resolve(self, name: str) -> Any:
        """The class or function behind a registered name or a dotted path ``package.module:Name``.

        The object is checked against the reward contract (``check_reward_contract``) before anyone
        constructs or calls it: ``--check`` and the build resolve through here, so they agree, and a
        dotted name such as ``subprocess:Popen`` is refused without running it.
        """
        if ":" in name:
            obj = load_dotted(name)
            check_reward_contract(name, obj)
            return obj
        return self.load(name)

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
