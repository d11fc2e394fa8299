"""The hierarchical safety taxonomy: categories with subcategories, stable IDs, hide and shuffle.

A taxonomy is immutable. IDs are positional, as in ProGuard's prompts: category ``C<i>`` and
subcategory ``C<i>S<j>``, numbered from 1. Every node also keeps ``key``, the ID it had in the
source file, so that a hidden or shuffled copy can always be mapped back to the original.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace

_ID_RE = re.compile(r"^C([1-9][0-9]*)(?:S([1-9][0-9]*))?$")


class TaxonomyError(ValueError):
    """A taxonomy file or operation is invalid; the message names where."""


def parse_id(node_id: str) -> tuple[int, int | None] | None:
    """Split ``C3S2`` into ``(3, 2)`` and ``C3`` into ``(3, None)``; ``None`` if not an ID."""
    m = _ID_RE.match(node_id) if isinstance(node_id, str) else None
    if m is None:
        return None
    return int(m.group(1)), (int(m.group(2)) if m.group(2) else None)


def is_node_id(text: str) -> bool:
    """Whether ``text`` has the form of a category or subcategory ID."""
    return parse_id(text) is not None


def parent_id_of(node_id: str) -> str | None:
    """``C3S2`` -> ``C3``; a category ID or a non-ID gives ``None``."""
    parsed = parse_id(node_id)
    if parsed is None or parsed[1] is None:
        return None
    return f"C{parsed[0]}"


def normalize_name(text: str) -> str:
    """The comparison form of a name or phrase: lower case, single spaces."""
    return " ".join(text.lower().split())


@dataclass(frozen=True)
class Node:
    """One category or subcategory."""

    id: str
    name: str
    description: str = ""
    synonyms: tuple[str, ...] = ()
    children: tuple[Node, ...] = ()
    key: str = ""  # the ID in the source taxonomy; survives hiding and re-numbering

    @property
    def is_category(self) -> bool:
        """True for a top-level category, False for a subcategory."""
        return parse_id(self.id)[1] is None  # type: ignore[index]

    @property
    def parent_id(self) -> str | None:
        """The parent's ID for a subcategory, ``None`` for a category."""
        return parent_id_of(self.id)


@dataclass(frozen=True)
class Taxonomy:
    """An ordered tree of categories (depth two at most), looked up by ID or name."""

    categories: tuple[Node, ...]
    name: str = "taxonomy"
    _by_id: dict[str, Node] = field(init=False, repr=False, compare=False)
    _by_key: dict[str, Node] = field(init=False, repr=False, compare=False)
    _by_name: dict[str, Node] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_id: dict[str, Node] = {}
        by_key: dict[str, Node] = {}
        by_name: dict[str, Node] = {}
        for node in self.nodes():
            if parse_id(node.id) is None:
                raise TaxonomyError(f"{self.name}: bad node ID {node.id!r}")
            if node.id in by_id:
                raise TaxonomyError(f"{self.name}: duplicate ID {node.id}")
            if not node.name.strip():
                raise TaxonomyError(f"{self.name}: node {node.id} has an empty name")
            norm = normalize_name(node.name)
            if norm in by_name:
                raise TaxonomyError(
                    f"{self.name}: duplicate name {node.name!r} ({by_name[norm].id} and {node.id})"
                )
            by_id[node.id] = node
            by_key[node.key or node.id] = node
            by_name[norm] = node
        object.__setattr__(self, "_by_id", by_id)
        object.__setattr__(self, "_by_key", by_key)
        object.__setattr__(self, "_by_name", by_name)

    # ---- lookup -------------------------------------------------------------------------
    def nodes(self) -> Iterator[Node]:
        """All nodes, depth first: each category followed by its subcategories."""
        for cat in self.categories:
            yield cat
            yield from cat.children

    def leaves(self) -> Iterator[Node]:
        """The nodes an answer should name: subcategories, or categories that have none."""
        for cat in self.categories:
            yield from (cat.children or (cat,))

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._by_id

    def ids(self) -> list[str]:
        """Every node ID in order."""
        return list(self._by_id)

    def get(self, node_id: str) -> Node:
        """The node with this (current) ID; ``KeyError`` naming the known IDs if absent."""
        try:
            return self._by_id[node_id]
        except KeyError:
            raise KeyError(f"{self.name}: no node with ID {node_id!r}") from None

    def by_key(self, key: str) -> Node:
        """The node whose source-taxonomy ID is ``key``."""
        try:
            return self._by_key[key]
        except KeyError:
            raise KeyError(f"{self.name}: no node with original ID {key!r}") from None

    def find(self, name_or_id: str) -> Node | None:
        """The node with this ID or (case- and space-insensitive) name, else ``None``."""
        if name_or_id in self._by_id:
            return self._by_id[name_or_id]
        return self._by_name.get(normalize_name(name_or_id)) if isinstance(name_or_id, str) else None

    def parent(self, node_id: str) -> Node | None:
        """The parent category of a subcategory, ``None`` for a category."""
        pid = parent_id_of(node_id)
        return self.get(pid) if pid else None

    # ---- pure transforms ----------------------------------------------------------------
    def without(self, ids: Iterable[str]) -> Taxonomy:
        """A copy with these nodes (and a hidden category's subcategories) removed; IDs kept."""
        hide = set(ids)
        unknown = sorted(hide - set(self._by_id))
        if unknown:
            raise TaxonomyError(f"{self.name}: cannot hide unknown IDs {unknown}")
        cats = tuple(
            replace(c, children=tuple(s for s in c.children if s.id not in hide))
            for c in self.categories
            if c.id not in hide
        )
        return Taxonomy(cats, name=self.name)

    def renumbered(self, order: Mapping[str, list[str]] | None = None) -> tuple[Taxonomy, dict[str, str]]:
        """Re-number IDs densely from 1 in the given order; returns the taxonomy and old->new IDs.

        ``order`` maps ``""`` to the category IDs in their new order and each category ID to its
        subcategory IDs in their new order; omitted lists keep the current order.
        """
        order = order or {}
        cat_ids = list(order.get("", [c.id for c in self.categories]))
        if sorted(cat_ids) != sorted(c.id for c in self.categories):
            raise TaxonomyError(f"{self.name}: renumbering order must list every category once")
        id_map: dict[str, str] = {}
        cats = []
        for i, cid in enumerate(cat_ids, start=1):
            cat = self._by_id[cid]
            sub_ids = list(order.get(cid, [s.id for s in cat.children]))
            if sorted(sub_ids) != sorted(s.id for s in cat.children):
                raise TaxonomyError(f"{self.name}: renumbering order for {cid} must list its subcategories once")
            new_cid = f"C{i}"
            id_map[cid] = new_cid
            subs = []
            for j, sid in enumerate(sub_ids, start=1):
                new_sid = f"{new_cid}S{j}"
                id_map[sid] = new_sid
                subs.append(replace(self._by_id[sid], id=new_sid))
            cats.append(replace(cat, id=new_cid, children=tuple(subs)))
        return Taxonomy(tuple(cats), name=self.name), id_map

    def shuffled(self, seed: int) -> tuple[Taxonomy, dict[str, str]]:
        """Categories and, within each, subcategories in a seeded random order, re-numbered."""
        rng = random.Random(seed)
        cat_ids = [c.id for c in self.categories]
        rng.shuffle(cat_ids)
        order: dict[str, list[str]] = {"": cat_ids}
        for c in self.categories:
            subs = [s.id for s in c.children]
            rng.shuffle(subs)
            order[c.id] = subs
        return self.renumbered(order)

    # ---- rendering ----------------------------------------------------------------------
    def render(self, *, subcategories: bool = True, descriptions: bool = True) -> str:
        """The category list as shown in the policy prompt, one node per line."""
        lines = []
        for cat in self.categories:
            lines.append(_render_line(cat, descriptions, indent=""))
            if subcategories:
                lines.extend(_render_line(s, descriptions, indent="  ") for s in cat.children)
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """The project's own YAML schema as plain data (keys are not written: IDs are positional)."""
        return {
            "name": self.name,
            "categories": [
                {
                    **_node_dict(c),
                    "subcategories": [_node_dict(s) for s in c.children],
                }
                for c in self.categories
            ],
        }


def _render_line(node: Node, descriptions: bool, indent: str) -> str:
    if descriptions and node.description:
        return f"{indent}{node.id}: {node.name} - {node.description}"
    return f"{indent}{node.id}: {node.name}"


def _node_dict(node: Node) -> dict:
    return {"name": node.name, "description": node.description, "synonyms": list(node.synonyms)}
