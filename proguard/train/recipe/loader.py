"""The one recipe loader: schema defaults <- YAML file <- ``key=value`` overrides, with every guard, for any root schema.

``load(schema, path, overrides)`` runs, in order and for every root schema (``Recipe`` for GRPO,
``SFTRecipe``): the file and override syntax checks; the environment rule (``${oc.env:VAR}`` is
refused unless ``allow_env`` names ``VAR``); unknown keys and scalars given for sections, with a
hint; the schema's own layer hook (``merge_layer``: the GRPO recipe's rewards by name, its two data
sources); the finite-number rule on the merged values; the typed conversion; the range rules
declared beside each field (``fields.check_fields``); and the schema's cross-field ``check``. Every
failure is a ``RecipeError`` naming the key and where it came from (the file, or ``command line``).
``explain`` prints a key's help from the same schema; ``to_yaml`` writes a loaded recipe back, keys
read from the environment as their ``${oc.env:...}`` text. No torch or TRL import.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from proguard.hints import did_you_mean
from proguard.train.recipe.fields import RecipeError, check_fields
from proguard.train.recipe.guards import env_reads, non_finite

T = TypeVar("T")
ENV_KEYS = "_env_keys"
"""Where a loaded recipe keeps the keys read from the environment (outside its fields: never merged or saved)."""


def recipe_layers(
    path: str | Path | None, overrides: Sequence[str], *, sections: str, example: str
) -> list[tuple[str, Any]]:
    """``(origin, config)`` per layer: the YAML file, then the command-line dotlist (``RecipeError`` if malformed)."""
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    layers: list[tuple[str, Any]] = []
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise RecipeError(f"{path}: no such recipe file")
        try:
            raw = OmegaConf.load(path)
        except Exception as exc:  # yaml's parser errors carry the line; keep their message
            raise RecipeError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(raw, DictConfig):
            raise RecipeError(f"{path}: a recipe is a mapping of sections ({sections}), got a list")
        layers.append((str(path), raw))
    if overrides:
        bad = [o for o in overrides if "=" not in o or o.startswith("=")]
        if bad:
            raise RecipeError(f"command line: {bad[0]!r}: overrides are key=value (e.g. {example})")
        try:
            layers.append(("command line", OmegaConf.from_dotlist(list(overrides))))
        except OmegaConfBaseException as exc:
            raise RecipeError(f"command line: {exc}") from None
    return layers


def load(schema: type[T], path: str | Path | None, overrides: Sequence[str] = (), *,
         allow_env: bool | Sequence[str] = ()) -> T:
    """A typed, checked ``schema`` instance from defaults, the file and the overrides (``RecipeError``).

    ``schema`` may define ``LAYER_HELP = (sections, example)`` (message wording), ``merge_layer(merged,
    layer, origin) -> merged`` (a hook run before each layer is merged), ``SECTION_ERRORS`` (exception
    type -> key prefix, for sections that check themselves on construction) and ``check(origin)``
    (cross-field rules).
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    sections, example = getattr(schema, "LAYER_HELP", ("model:, data: ...", "output_dir=runs/x"))
    layers = recipe_layers(path, overrides, sections=sections, example=example)
    env_keys: dict[str, str] = {}
    for origin, layer in layers:
        found, problem = env_reads(OmegaConf.to_container(layer, resolve=False), allow_env)
        if problem:
            raise RecipeError(f"{origin}: {problem}")
        env_keys.update(found)
    merged = OmegaConf.structured(schema)
    hook = getattr(schema, "merge_layer", None)
    for origin, layer in layers:
        check_sections(OmegaConf.to_container(layer, resolve=False), schema, origin)
        if hook is not None:
            merged, layer = hook(merged, layer, origin)
        try:
            merged = OmegaConf.merge(merged, layer)
        except OmegaConfBaseException as exc:
            raise RecipeError(f"{origin}: {key_message(exc)}") from None
    where = " + ".join(o for o, _ in layers) or "defaults"
    # The finite-number rule runs on the merged values before the sections are built: a section that checks
    # itself on construction (data.media, data.tasks) would otherwise report a NaN in its own words.
    problem = non_finite(OmegaConf.to_container(merged, resolve=False))
    if problem:
        raise RecipeError(f"{where}: {problem}")
    section_errors: Mapping[type, str] = getattr(schema, "SECTION_ERRORS", {})
    try:
        recipe = OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        raise RecipeError(f"{where}: {key_message(exc)}") from None
    except tuple(section_errors) as exc:  # a section that validates itself on construction
        prefix = next(p for t, p in section_errors.items() if isinstance(exc, t))
        raise RecipeError(f"{where}: {prefix}{exc}") from None
    assert isinstance(recipe, schema)
    recipe.__dict__[ENV_KEYS] = env_keys
    check(recipe, where)
    return recipe


def check(recipe: Any, origin: str = "recipe") -> None:
    """Every rule of a built recipe: finite numbers, each field's range, the schema's cross-field ``check``."""
    problem = non_finite(recipe) or check_fields(recipe)
    if problem:
        raise RecipeError(f"{origin}: {problem}")
    cross = getattr(recipe, "check", None)
    if cross is not None:
        cross(origin)


def key_message(exc: Exception) -> str:
    """omegaconf's error as ``<full key>: <first line>``."""
    key = getattr(exc, "full_key", None)
    msg = str(getattr(exc, "msg", None) or exc).splitlines()[0]
    return f"{key}: {msg}" if key else msg


def check_sections(data: Any, schema: type, origin: str, prefix: str = "") -> None:
    """An unknown key, or a section given as a scalar or a list, is an error naming the key."""
    if not isinstance(data, Mapping):
        return
    fields = {f.name: f for f in dataclasses.fields(schema)}
    for key, value in data.items():
        f = fields.get(key)
        if f is None:
            hint = did_you_mean(str(key), fields, n=1)
            raise RecipeError(f"{origin}: {prefix}{key}: unknown key{hint}; keys here: {', '.join(fields)}")
        factory = f.default_factory  # every section field is declared with default_factory=<its class>
        sub = factory if isinstance(factory, type) and dataclasses.is_dataclass(factory) else None
        if sub is None:
            continue
        if value is not None and not isinstance(value, Mapping):
            raise RecipeError(f"{origin}: {prefix}{key}: must be a mapping of {sub.__name__} keys, got {value!r}")
        check_sections(value, sub, origin, f"{prefix}{key}.")


def to_yaml(recipe: Any) -> str:
    """The resolved recipe as YAML (what ``--dry-run`` prints and the run saves); values read from the
    environment are shown as their ``${oc.env:VAR}`` text, never as the value."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.structured(recipe)
    for key, text in recipe.__dict__.get(ENV_KEYS, {}).items():
        OmegaConf.update(cfg, key, text, merge=False)
    return OmegaConf.to_yaml(cfg)


# ---------------------------------------------------------------------------------------------
# --explain
# ---------------------------------------------------------------------------------------------
def explain(key: str, schema: type) -> str:
    """Help for a key of ``schema``, from the fields' own help: a section lists its keys, ``""`` all of them.

    ``proguard train --explain grpo.beta`` and ``proguard sft --explain sft.learning_rate`` print this;
    an unknown key is a ``RecipeError`` with a hint.
    """
    cls, prefix, target = schema, "", None
    for part in [p for p in key.split(".") if p]:
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if part not in fields:
            hint = did_you_mean(part, fields, n=1)
            raise RecipeError(f"--explain: {prefix}{part}: unknown key{hint}; keys here: {', '.join(fields)}")
        target = fields[part]
        sub = section_type(cls, target)
        prefix += part + "."
        if sub is None:
            return _explain_field(prefix[:-1], target)
        cls = sub
    lines = [f"{prefix[:-1]}: {target.metadata.get('help', '')}" if target is not None else "recipe keys:"]
    for f in dataclasses.fields(cls):
        if section_type(cls, f) is not None and not key:
            lines.append(f"{f.name}: {f.metadata.get('help', '')}")
            lines += [f"  {line}" for line in explain(f.name, schema).splitlines()[1:]]
        else:
            lines.append(_explain_field(prefix + f.name, f, short=True))
    return "\n".join(lines)


def section_type(cls: type, f: dataclasses.Field) -> type | None:
    """The dataclass a field of ``cls`` holds (``data.tasks: TaskOptions | None`` included), else ``None``."""
    hint = typing.get_type_hints(cls).get(f.name)
    for t in (hint, *typing.get_args(hint)):
        if isinstance(t, type) and dataclasses.is_dataclass(t):
            return t
    return None


def _explain_field(key: str, f: dataclasses.Field, short: bool = False) -> str:
    if f.default is not dataclasses.MISSING:
        default = f.default
    elif f.default_factory is not dataclasses.MISSING:
        default = f.default_factory()
    else:
        default = None
    help_ = f.metadata.get("help", "")
    rule = f.metadata.get("rule")
    allowed = _describe_rule(rule) if rule is not None else ""
    typename = str(f.type).replace("typing.", "").replace("proguard.", "")
    if short:
        return f"  {key} ({typename}, default {default!r}{allowed and ', ' + allowed}): {help_}"
    return f"{key}\n  type: {typename}\n  default: {default!r}\n" + (f"  allowed: {allowed}\n" if allowed else "") + \
        f"  {help_}"


def _describe_rule(rule: Any) -> str:
    if rule.choices is not None:
        return "one of " + ", ".join(rule.choices)
    parts = [f"{op} {v:g}" for op, v in ((">", rule.gt), (">=", rule.ge), ("<", rule.lt), ("<=", rule.le))
             if v is not None]
    if rule.nonempty is not None:
        parts.append("not empty")
    return " and ".join(parts)
