"""Category maps: a benchmark's own category labels to node IDs of a guard taxonomy, as a reviewed data file.

A map file (``<adapter>.yaml`` next to the adapter module, or any path given with ``--category-map``)::

    benchmark: aegis2
    taxonomy: proguard-default      # the taxonomy whose IDs the targets are
    source: how the map was made (by hand, reviewed by ...; or "proposed by proguard suites map")
    reviewed: true                  # a proposed map is false until a person has checked it
    map:
      "Violence": C9S3              # a label -> a category or subcategory ID
      "Needs Caution": null         # null: no counterpart in the taxonomy (not scored for category)

A map is applied only to the taxonomy it names and only when ``reviewed`` is true: a proposed map is
never used silently. A label the map does not list scores no category for that sample and is named
in the run's results (with its count), so a new upstream label is never scored by accident.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from proguard.suites.base import SuiteDataError
from taxonomy import Taxonomy


CATEGORY_RULES = ("all", "most_specific")
"""How a multi-label row's labels become accepted nodes: every mapped node, or only the most specific."""


@dataclass(frozen=True)
class CategoryMap:
    """Benchmark label -> taxonomy node ID (``None``: no counterpart)."""

    benchmark: str
    taxonomy: str
    mapping: Mapping[str, str | None]
    reviewed: bool
    source: str
    origin: str

    def targets(self, labels: Iterable[str], *, rule: str = "all",
                parents: Mapping[str, str] | None = None) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The distinct node IDs the labels map to, most specific first, and the labels the map does not list.

        Most specific first: a label whose broader label (``parents``: the release's own hierarchy, e.g.
        OpenAI Moderation's ``S3`` under ``S``) is also present comes before it, then deeper nodes
        (``C9S3``) before top-level ones (``C9``); otherwise the labels' order. ``rule="all"`` keeps
        every node (any is a right answer); ``rule="most_specific"`` keeps only the first.

        An unlisted label is reported, never guessed: the runner counts it and names it in results.json
        so the map can be extended (an ID, or null for no counterpart).
        """
        if rule not in CATEGORY_RULES:
            raise SuiteDataError(f"category rule {rule!r}: expected one of {', '.join(CATEGORY_RULES)}")
        labels = list(labels)
        present = set(labels)
        parents = parents or {}
        narrower = {parents[lab] for lab in labels if lab in parents and parents[lab] in present}
        out: list[tuple[int, int, int, str]] = []
        unknown: list[str] = []
        for i, label in enumerate(labels):
            if label not in self.mapping:
                unknown.append(label)
                continue
            node = self.mapping[label]
            if node is not None and all(node != o[3] for o in out):
                out.append((label in narrower, -node.count("S"), i, node))
        ids = tuple(o[3] for o in sorted(out))
        return (ids[:1] if rule == "most_specific" else ids), tuple(unknown)

    def unseen_keys(self, labels: Iterable[str]) -> list[str]:
        """Map keys that match no label in ``labels`` (a misspelt key, or a label the release does not use)."""
        seen = set(labels)
        return [k for k in self.mapping if k not in seen]

    def check(self, taxonomy: Taxonomy) -> None:
        """Every target must be a node of ``taxonomy``."""
        for label, node in self.mapping.items():
            if node is not None and taxonomy.find(node) is None:
                raise SuiteDataError(f"{self.origin}: {label!r} -> {node!r}: no such node in taxonomy {taxonomy.name!r}")

    def usable_for(self, taxonomy: Taxonomy) -> str | None:
        """``None`` when the map may score categories on ``taxonomy``; otherwise why not."""
        if not self.reviewed:
            return f"{self.origin} is not reviewed (reviewed: false); check it and set reviewed: true"
        if self.taxonomy != taxonomy.name:
            return (f"{self.origin} maps to taxonomy {self.taxonomy!r}, the guard uses {taxonomy.name!r}; "
                    f"pass --category-map {self.benchmark}=FILE with a map for it")
        return None


def load_map(path: str | Path) -> CategoryMap:
    """Read and check the shape of a map file."""
    path = Path(path)
    if not path.is_file():
        raise SuiteDataError(f"{path}: no such category map")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SuiteDataError(f"{path}: not valid YAML: {exc}") from None
    return map_from_data(data, str(path))


def map_from_data(data: Any, origin: str) -> CategoryMap:
    """A ``CategoryMap`` from parsed YAML; errors name the key."""
    if not isinstance(data, dict):
        raise SuiteDataError(f"{origin}: a category map is a mapping with benchmark, taxonomy, reviewed and map")
    for key in ("benchmark", "taxonomy", "map"):
        if key not in data:
            raise SuiteDataError(f"{origin}: {key}: missing")
    mapping = data["map"] or {}
    if not isinstance(mapping, dict):
        raise SuiteDataError(f"{origin}: map: must be a mapping of label -> ID or null")
    for label, node in mapping.items():
        if node is not None and not isinstance(node, str):
            raise SuiteDataError(f"{origin}: map: {label!r}: must be an ID string or null, got {node!r}")
    reviewed = data.get("reviewed", False)
    if not isinstance(reviewed, bool):
        raise SuiteDataError(f"{origin}: reviewed: must be true or false")
    return CategoryMap(str(data["benchmark"]), str(data["taxonomy"]), {str(k): v for k, v in mapping.items()},
                       reviewed, str(data.get("source", "")), origin)


def dump_map(m: CategoryMap, notes: Mapping[str, str] | None = None) -> str:
    """YAML text of a map, with an optional comment per label (the proposal's scores)."""
    lines = [f"benchmark: {m.benchmark}", f"taxonomy: {m.taxonomy}", f"source: {json_str(m.source)}",
             f"reviewed: {'true' if m.reviewed else 'false'}", "map:"]
    for label, node in m.mapping.items():
        note = f"  # {notes[label]}" if notes and label in notes else ""
        lines.append(f"  {json_str(label)}: {node if node is not None else 'null'}{note}")
    return "\n".join(lines) + "\n"


def json_str(s: str) -> str:
    """A YAML-safe double-quoted scalar."""
    import json

    return json.dumps(s, ensure_ascii=False)
