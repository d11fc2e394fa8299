"""Which rewards to use: ``RewardSpec`` rows, the recipe's ``rewards:`` list, and the bundled presets.

A recipe (and every preset) selects rewards with a list of mappings::

    rewards:
      - name: format          # a registered name, or a dotted path package.module:Name
        gate: true            # multiplies the sum of the others (default false)
      - name: category
        weight: 1.0           # default 1.0
        options: {partial: 0.5}

Presets are YAML files of that shape under ``proguard/assets/reward_presets/``: ``default`` (the
project's reward) and ``proguard-paper`` (the published ProGuard reward).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proguard.errors import UsageError
from proguard.hints import did_you_mean

PRESET_DIR = Path(__file__).resolve().parent.parent / "assets" / "reward_presets"
SPEC_KEYS = ("name", "weight", "gate", "options")


class RewardSpecError(UsageError):
    """A ``rewards:`` list is malformed; the message names the file, the row and the field."""


@dataclass(frozen=True)
class RewardSpec:
    """One selected reward: registry name (or dotted path), weight, gate flag and its options."""

    name: str
    weight: float = 1.0
    gate: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, row: Any, where: str = "rewards[0]") -> RewardSpec:
        """Validate one ``{name, weight, gate, options}`` mapping; errors start with ``where``."""
        if isinstance(row, RewardSpec):
            return row
        if isinstance(row, str):  # shorthand: just a name
            row = {"name": row}
        if not isinstance(row, Mapping):
            raise RewardSpecError(f"{where}: expected a mapping with keys {', '.join(SPEC_KEYS)}, got {type(row).__name__}")
        for key in row:
            if key not in SPEC_KEYS:
                hint = did_you_mean(str(key), SPEC_KEYS, n=1)
                raise RewardSpecError(f"{where}: {key}: unknown key{hint}; keys are {', '.join(SPEC_KEYS)}")
        name = row.get("name")
        if not isinstance(name, str) or not name.strip():
            raise RewardSpecError(f"{where}: name: required, a reward name or package.module:Name, got {name!r}")
        weight = row.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
            raise RewardSpecError(f"{where}: weight: must be a finite number, got {weight!r}")
        gate = row.get("gate", False)
        if not isinstance(gate, bool):
            raise RewardSpecError(f"{where}: gate: must be true or false, got {gate!r}")
        if gate and float(weight) != 1.0:
            raise RewardSpecError(f"{where}: weight: a gate multiplies the total, so its weight must stay 1.0")
        options = row.get("options") or {}
        if not isinstance(options, Mapping) or not all(isinstance(k, str) for k in options):
            raise RewardSpecError(f"{where}: options: must be a mapping of option names to values, got {options!r}")
        return cls(name.strip(), float(weight), gate, dict(options))

    def to_dict(self) -> dict[str, Any]:
        """The recipe form of this row."""
        return {"name": self.name, "weight": self.weight, "gate": self.gate, "options": dict(self.options)}


def parse_specs(rows: Any, origin: str = "rewards") -> list[RewardSpec]:
    """Validate a ``rewards:`` list; each name may appear once (its metrics are keyed by name)."""
    if isinstance(rows, (str, Mapping)) or not isinstance(rows, Sequence):
        raise RewardSpecError(f"{origin}: rewards: must be a list of {{name, weight, gate, options}} mappings")
    if not rows:
        raise RewardSpecError(f"{origin}: rewards: the list is empty")
    specs = [RewardSpec.from_mapping(r, f"{origin}: rewards[{i}]") for i, r in enumerate(rows)]
    seen: dict[str, int] = {}
    for i, s in enumerate(specs):
        if s.name in seen:
            raise RewardSpecError(f"{origin}: rewards[{i}]: name: {s.name!r} is already listed at rewards[{seen[s.name]}]")
        seen[s.name] = i
    if all(s.gate for s in specs):
        raise RewardSpecError(f"{origin}: rewards: every row is a gate; at least one must add to the total")
    return specs


def load_reward_specs(path: str | Path) -> list[RewardSpec]:
    """The ``rewards:`` list of a recipe YAML file (other top-level keys are the recipe's business)."""
    from omegaconf import OmegaConf

    path = Path(path)
    if not path.is_file():
        raise RewardSpecError(f"{path}: no such file")
    try:
        data = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except Exception as exc:
        raise RewardSpecError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict) or "rewards" not in data:
        raise RewardSpecError(f"{path}: no top-level 'rewards:' list")
    if isinstance(data["rewards"], str):  # a recipe may name a preset: `rewards: default`
        try:
            return load_preset(data["rewards"])
        except RewardSpecError as exc:
            raise RewardSpecError(f"{path}: rewards: {exc}") from None
    return parse_specs(data["rewards"], str(path))


def preset_names() -> list[str]:
    """Names of the bundled reward presets."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_preset(name: str) -> list[RewardSpec]:
    """The rewards of a bundled preset; an unknown name lists the known ones."""
    path = PRESET_DIR / f"{name}.yaml"
    if not path.is_file():
        hint = did_you_mean(name, preset_names(), n=2)
        raise RewardSpecError(f"unknown reward preset {name!r}{hint}; presets: {', '.join(preset_names())}")
    return load_reward_specs(path)
