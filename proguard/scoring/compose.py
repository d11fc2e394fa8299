"""Composition: many reward modules as one TRL reward function, with gates and per-part logging.

``CompositeReward`` parses each completion once per batch (``proguard.protocol.parse_completion``
with the sample's modality; the reasoning block is left optional so that the ``format`` module
decides whether it is required), builds each sample's ``Target`` from the dataset columns TRL
passes, calls every module and combines them::

    total = prod(gate scores) * sum(weight * score)

A module's ``None`` means "not applicable to this sample": it adds 0 to the sum, and a gate that
returns ``None`` does not gate (multiplies by 1). The total is always a float.

Inside TRL's ``GRPOTrainer`` it logs, through the ``log_metric`` callback TRL hands to reward
functions, ``reward/<name>/mean`` and ``reward/<name>/std`` for every component and
``reward/<name>/<part>/mean`` for its named parts (over the samples where they apply), next to TRL's
own ``rewards/<composite name>/mean``; per-completion component scores go to the completions table
through ``log_extra``. Outside TRL, ``breakdown`` returns the same numbers per row.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from proguard.errors import RunError
from proguard.data import sample_problems
from proguard.hints import problems_message
from proguard.protocol import DEFAULT_CATEGORY_LEVELS, parse_completion
from proguard.scoring.registry import RewardRegistry, default_registry
from proguard.scoring.specs import RewardSpec, load_preset, load_reward_specs, parse_specs, preset_names
from rewards.api import Scored
from rewards.types import LABELS, MODALITIES, TARGET_COLUMNS, Parsed, Target
from taxonomy import is_node_id

Score = float | None
REQUIRED_COLUMNS = ("modality", "request_label")


class RewardOutputError(RunError, ValueError):
    """A reward module returned something other than one finite float (or ``None``) per completion."""


@dataclass(frozen=True)
class Component:
    """A built reward module with its name (the metric key), weight and gate flag."""

    name: str
    module: Callable[..., Any]
    weight: float = 1.0
    gate: bool = False


@dataclass
class Breakdown:
    """Every number behind a batch's totals, per completion."""

    total: list[float]
    components: dict[str, list[Score]]
    parts: dict[str, list[Score]]  # keyed "<component>/<part>"
    parsed: list[Parsed]
    targets: list[Target] = field(default_factory=list)

    def metrics(self) -> dict[str, float]:
        """``reward/<name>/mean|std`` and ``reward/<name>/<part>/mean`` over the applicable samples,
        ``format/valid_rate`` (the share that follows the protocol exactly, reasoning block included)
        and ``data/ood_share`` (the share of the batch whose category was hidden from the prompt);
        ``reward/modality/<modality>/mean`` is the total's mean per modality present in the batch."""
        out: dict[str, float] = {}
        if self.targets:
            out["data/ood_share"] = sum(t.ood for t in self.targets) / len(self.targets)
            by_modality: dict[str, list[float]] = {}
            for t, total in zip(self.targets, self.total, strict=False):
                by_modality.setdefault(t.modality, []).append(float(total))
            for m in MODALITIES:  # fixed order, so the logged keys come in the same order every step
                if m in by_modality:
                    out[f"reward/modality/{m}/mean"] = sum(by_modality[m]) / len(by_modality[m])
        if self.parsed:
            # The batch was parsed with the reasoning block optional; requiring it is the same parse
            # plus "a reasoning block was there", so no second parse is needed.
            valid = sum(p.ok and p.reasoning is not None for p in self.parsed)
            out["format/valid_rate"] = valid / len(self.parsed)
        for name, scores in self.components.items():
            vals = [float(s) for s in scores if s is not None]
            if vals:
                mean = sum(vals) / len(vals)
                out[f"reward/{name}/mean"] = mean
                out[f"reward/{name}/std"] = math.sqrt(sum((v - mean) ** 2 for v in vals) / len(vals))
        for key, scores in self.parts.items():
            vals = [float(s) for s in scores if s is not None]
            if vals:
                out[f"reward/{key}/mean"] = sum(vals) / len(vals)
        return out

    def row(self, i: int) -> dict[str, Any]:
        """Completion ``i``'s total, component scores, part scores and format error code (or ``None``)."""
        p = self.parsed[i]
        return {
            "reward": self.total[i],
            "components": {n: s[i] for n, s in self.components.items()},
            "parts": {k: s[i] for k, s in self.parts.items()},
            "format_error": None if p.ok else p.code,  # type: ignore[union-attr]
        }


class CompositeReward:
    """A weighted, gated sum of reward modules, usable directly as a TRL ``reward_funcs`` entry.

    Args:
        components: the modules with their names, weights and gate flags.
        name: the function name TRL logs the total under (``rewards/<name>/mean``).

    Example:
        >>> from proguard.scoring.compose import build_reward
        >>> reward = build_reward([{"name": "format", "gate": True}, "binary"])
        >>> ok = "<think>\\nfine\\n</think>\\n<answer>\\nRequest: safe\\nCategory: None\\n</answer>"
        >>> reward(prompts=[None, None], completions=[ok, "safe"], modality=["image"] * 2, request_label=["safe"] * 2)
        [2.0, 0.0]
    """

    def __init__(self, components: Sequence[Component], name: str = "proguard"):
        components = list(components)
        if not components:
            raise ValueError("a composite reward needs at least one component")
        names = [c.name for c in components]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"component names must be unique (metrics are keyed by name); repeated: {', '.join(dup)}")
        if all(c.gate for c in components):
            raise ValueError("every component is a gate; at least one must add to the total")
        self.components = components
        self.__name__ = name

    def __repr__(self) -> str:
        parts = ", ".join(f"{c.name}{' (gate)' if c.gate else f' x{c.weight:g}'}" for c in self.components)
        return f"CompositeReward({self.__name__}: {parts})"

    def __call__(
        self,
        prompts: Sequence[Any] | None = None,
        completions: Sequence[Any] | None = None,
        completion_ids: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> list[float]:
        """TRL's reward-function signature: the batch plus every dataset column as keyword lists."""
        log_metric = kwargs.pop("log_metric", None)
        log_extra = kwargs.pop("log_extra", None)
        if completions is None:
            raise ValueError("the reward needs the completions (TRL passes them as completions=)")
        result = self.breakdown(completions, targets_from_columns(kwargs, len(completions)))
        if log_metric is not None:
            for key, value in result.metrics().items():
                log_metric(key, value)
        if log_extra is not None:
            for name, scores in result.components.items():
                log_extra(f"reward/{name}", [math.nan if s is None else float(s) for s in scores])
        return result.total

    def breakdown(self, completions: Sequence[Any], targets: Sequence[Target]) -> Breakdown:
        """Score a batch and keep every component's and part's per-completion score."""
        n = len(completions)
        if len(targets) != n:
            raise ValueError(f"{n} completions but {len(targets)} targets")
        parsed = parse_batch(completions, targets)
        components: dict[str, list[Score]] = {}
        parts: dict[str, list[Score]] = {}
        for c in self.components:
            total, sub = _check_output(c.name, c.module(parsed, targets), n)
            components[c.name] = total
            for part, scores in sub.items():
                parts[f"{c.name}/{part}"] = scores
        totals = []
        for i in range(n):
            gate = 1.0
            acc = 0.0
            for c in self.components:
                s = components[c.name][i]
                if s is None:
                    continue
                if c.gate:
                    gate *= s
                else:
                    acc += c.weight * s
            totals.append(gate * acc)
        return Breakdown(totals, components, parts, parsed, list(targets))


def parse_batch(completions: Sequence[Any], targets: Sequence[Target]) -> list[Parsed]:
    """Each completion parsed once with its sample's modality; the reasoning block optional."""
    return [parse_completion(c, t.modality, require_think=False) for c, t in zip(completions, targets, strict=True)]


def _check_output(name: str, out: Any, n: int) -> tuple[list[Score], dict[str, list[Score]]]:
    if isinstance(out, Scored):
        total, parts = out.total, dict(out.parts)
    elif isinstance(out, (list, tuple)):
        total, parts = out, {}
    else:
        raise RewardOutputError(f"reward {name!r} returned {type(out).__name__}; expected a list of floats or a Scored")
    checked_total, checked = _check_scores(name, total, n), {}
    for part, scores in parts.items():
        if not isinstance(part, str) or not part or "/" in part:
            raise RewardOutputError(f"reward {name!r}: part names must be non-empty strings without '/', got {part!r}")
        if not isinstance(scores, (list, tuple)):
            raise RewardOutputError(f"reward {name!r}: part {part!r} is a {type(scores).__name__}, not a list")
        checked[part] = _check_scores(f"{name}/{part}", scores, n)
    return checked_total, checked


def _check_scores(name: str, scores: Sequence[Any], n: int) -> list[Score]:
    if len(scores) != n:
        raise RewardOutputError(f"reward {name!r} returned {len(scores)} scores for {n} completions")
    out: list[Score] = []
    for i, s in enumerate(scores):
        if s is None:
            out.append(None)
        elif isinstance(s, numbers.Real) and not isinstance(s, bool) and math.isfinite(s):
            out.append(float(s))
        else:
            raise RewardOutputError(f"reward {name!r} returned {s!r} for completion {i}; expected a finite float or None")
    return out


# ---------------------------------------------------------------------------------------------
# Ground truth from dataset columns
# ---------------------------------------------------------------------------------------------
def check_target_row(row: Mapping[str, Any]) -> list[str]:
    """Problems with one row's ground-truth columns, each as ``field: what`` (empty when valid)."""
    modality, req, resp = row.get("modality"), row.get("request_label"), row.get("response_label") or None
    cat = row.get("category") or None
    problems = sample_problems(modality, req, resp, cat)
    if modality not in MODALITIES:
        return problems
    unsafe = "unsafe" in (req, resp)
    if cat is not None and not (isinstance(cat, str) and is_node_id(cat)):
        problems.append(f"category: must be a taxonomy ID such as C8S1, got {cat!r}")
    level = row.get("category_level") or None
    if level is not None and level not in ("subcategory", "category"):
        problems.append(f"category_level: must be subcategory or category, got {level!r}")
    id_map = row.get("id_map")
    if isinstance(id_map, str) and id_map.strip():
        try:
            id_map = json.loads(id_map)
        except json.JSONDecodeError as exc:
            problems.append(f"id_map: not valid JSON: {exc.msg}")
            id_map = {}
    if id_map and not (isinstance(id_map, Mapping) and all(isinstance(v, (str, type(None))) for v in id_map.values())):
        problems.append("id_map: must map source IDs to prompt IDs (strings)")
    ood = row.get("ood")
    if ood is not None and not isinstance(ood, bool):
        problems.append(f"ood: must be true or false, got {ood!r}")
    if ood is True:
        if not unsafe:
            problems.append("ood: an OOD sample must have an unsafe label")
        name = row.get("ood_name")
        if not isinstance(name, str) or not name.strip():
            problems.append("ood_name: required for an OOD sample (the hidden category's name)")
    syns = row.get("ood_synonyms")
    if syns is not None and (isinstance(syns, str) or not isinstance(syns, Sequence) or not all(isinstance(s, str) for s in syns)):
        problems.append("ood_synonyms: must be a list of strings")
    return problems


def target_from_row(row: Mapping[str, Any]) -> Target:
    """A ``Target`` from a checked row; a missing ``category_level`` follows the default prompt."""
    target = Target.from_columns(row)
    if not row.get("category_level"):
        level = DEFAULT_CATEGORY_LEVELS.get(target.modality, "subcategory")
        if level != target.category_level:
            target = replace(target, category_level=level)
    if target.id_map and any(v is None for v in target.id_map.values()):
        # An Arrow struct column fills IDs absent from a row with None: they were not in that prompt.
        target = replace(target, id_map={k: v for k, v in target.id_map.items() if v is not None})
    return target


def targets_from_columns(columns: Mapping[str, Sequence[Any]], n: int) -> list[Target]:
    """One ``Target`` per completion from TRL's keyword columns; a clear error for bad ground truth."""
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        have = ", ".join(sorted(columns)) or "(none)"
        raise ValueError(f"the reward needs dataset columns {', '.join(missing)}; the batch has: {have}")
    present = [c for c in TARGET_COLUMNS if c in columns]
    for c in present:
        if len(columns[c]) != n:
            raise ValueError(f"column {c} has {len(columns[c])} values for {n} completions")
    targets, errors = [], []
    # A GRPO batch repeats each prompt's row once per generation: check and build each distinct row
    # once (its problems are still reported for every row that has them).
    built: dict[Any, tuple[list[str], Target | None]] = {}
    maps: dict[str, Any] = {}  # and parse each distinct ID map once
    for i in range(n):
        values = tuple(columns[c][i] for c in present)
        key = _row_key(values)
        done = built.get(key) if key is not None else None
        if done is None:
            row = dict(zip(present, values, strict=True))
            id_map = row.get("id_map")
            if isinstance(id_map, str) and id_map.strip():
                if id_map not in maps:
                    try:
                        maps[id_map] = json.loads(id_map)
                    except json.JSONDecodeError:
                        maps[id_map] = id_map  # left as text: check_target_row reports it
                row["id_map"] = maps[id_map]
            problems = check_target_row(row)
            done = (problems, None if problems else target_from_row(row))
            if key is not None:
                built[key] = done
        problems, target = done
        errors.extend(f"row {i}: {p}" for p in problems)
        if target is not None:
            targets.append(target)
    if errors:
        raise ValueError(problems_message("bad ground truth in the reward batch (rows counted from 0):", errors))
    return targets


def _row_key(values: tuple[Any, ...]) -> Any:
    """A hashable key, equal only for rows with equal values of the same types; ``None`` when there is none.

    Types are part of the key: ``1 == True`` in Python, but ``ood: 1`` is an error and ``ood: true`` is not.
    Lists of strings (``ood_synonyms``) and mappings of strings (an Arrow ``id_map``) are frozen; a row
    with any other unhashable value gets no key and is built on its own.
    """
    types = tuple(map(type, values))
    try:
        return values, types, hash(values)
    except TypeError:
        pass
    frozen = []
    for v in values:
        if isinstance(v, list) and all(type(x) is str for x in v):
            frozen.append(tuple(v))
        elif isinstance(v, Mapping) and all(type(k) is str and (x is None or type(x) is str) for k, x in v.items()):
            frozen.append(tuple(v.items()))
        else:
            try:
                hash(v)
            except TypeError:
                return None
            frozen.append(v)
    return tuple(frozen), types


# ---------------------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------------------
PresetOrSpecs = str | Path | Sequence[RewardSpec | Mapping[str, Any] | str]


def resolve_specs(preset_or_specs: PresetOrSpecs) -> tuple[list[RewardSpec], str]:
    """Specs and a display name from a preset name, a recipe YAML path or a list of rows."""
    if isinstance(preset_or_specs, Path) or (
        isinstance(preset_or_specs, str) and preset_or_specs.endswith((".yaml", ".yml"))
    ):
        path = Path(preset_or_specs)
        return load_reward_specs(path), path.stem
    if isinstance(preset_or_specs, str):
        return load_preset(preset_or_specs), preset_or_specs
    return parse_specs(list(preset_or_specs)), "rewards"


def build_reward(
    preset_or_specs: PresetOrSpecs, *, registry: RewardRegistry | None = None, name: str | None = None
) -> CompositeReward:
    """A ``CompositeReward`` from a preset name (``default``, ``proguard-paper``), a recipe file or rows."""
    specs, default_name = resolve_specs(preset_or_specs)
    registry = registry or default_registry()
    components = [Component(s.name, registry.build(s.name, s.options), s.weight, s.gate) for s in specs]
    return CompositeReward(components, name=name or default_name)


__all__ = [
    "Breakdown",
    "Component",
    "CompositeReward",
    "RewardOutputError",
    "RewardSpec",
    "build_reward",
    "check_target_row",
    "parse_batch",
    "preset_names",
    "target_from_row",
    "targets_from_columns",
]
