"""The hierarchical safety taxonomy: categories with subcategories (to any depth), stable IDs, hide and shuffle.

A taxonomy is immutable. IDs are positional, as in ProGuard's prompts: category ``C<i>`` and
subcategory ``C<i>S<j>``, numbered from 1; a deeper node appends ``S<k>`` per level (``C<i>S<j>S<k>``:
Do-Not-Answer's 5 risk areas / 12 harm types / 61 specific harms are three levels). Every node also
keeps ``key``, the ID it had in the source file, so that a hidden or shuffled copy can always be mapped
back to the original.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace

_ID_RE = re.compile(r"^C([1-9][0-9]*)(?:S([1-9][0-9]*))?$")
_PATH_RE = re.compile(r"^C[1-9][0-9]*(?:S[1-9][0-9]*)*$")


class TaxonomyError(ValueError):
    """A taxonomy file or operation is invalid; the message names where."""


def parse_id(node_id: str) -> tuple[int, int | None] | None:
    """Split ``C3S2`` into ``(3, 2)`` and ``C3`` into ``(3, None)``; ``None`` if not a one- or two-level
    ID (a deeper ID is split by ``id_path``)."""
    m = _ID_RE.match(node_id) if isinstance(node_id, str) else None
    if m is None:
        return None
    return int(m.group(1)), (int(m.group(2)) if m.group(2) else None)


def id_path(node_id: str) -> tuple[int, ...] | None:
    """The positions along the path of any-depth ID: ``C3S2S1`` -> ``(3, 2, 1)``; ``None`` if not an ID."""
    if not isinstance(node_id, str) or _PATH_RE.match(node_id) is None:
        return None
    return tuple(int(x) for x in node_id[1:].split("S"))


def id_of_path(path: tuple[int, ...]) -> str:
    """The inverse of ``id_path``: ``(3, 2, 1)`` -> ``C3S2S1``."""
    return "C" + "S".join(str(i) for i in path)


def is_node_id(text: str) -> bool:
    """Whether ``text`` has the form of a node ID at any depth (``C3``, ``C3S2``, ``C3S2S1``...)."""
    return id_path(text) is not None


def parent_id_of(node_id: str) -> str | None:
    """The parent's ID: ``C3S2`` -> ``C3``, ``C3S2S1`` -> ``C3S2``; a category ID or a non-ID gives ``None``."""
    path = id_path(node_id)
    if path is None or len(path) == 1:
        return None
    return id_of_path(path[:-1])


def top_id_of(node_id: str) -> str | None:
    """The top-level category of any node ID (itself for a category); ``None`` for a non-ID."""
    path = id_path(node_id)
    return None if path is None else f"C{path[0]}"


def id_depth(node_id: str) -> int | None:
    """1 for a category, 2 for a subcategory, 3 for the level below...; ``None`` for a non-ID."""
    path = id_path(node_id)
    return None if path is None else len(path)


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
        return id_depth(self.id) == 1

    @property
    def depth(self) -> int:
        """1 for a category, 2 for a subcategory, 3 below that..."""
        return id_depth(self.id) or 0

    def descendants(self) -> Iterator[Node]:
        """Every node under this one, depth first."""
        for child in self.children:
            yield child
            yield from child.descendants()

    @property
    def parent_id(self) -> str | None:
        """The parent's ID for a subcategory, ``None`` for a category."""
        return parent_id_of(self.id)


@dataclass(frozen=True)
class Taxonomy:
    """An ordered tree of categories (any depth; ProGuard's has two levels), looked up by ID or name."""

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
            if id_path(node.id) is None:
                raise TaxonomyError(f"{self.name}: bad node ID {node.id!r}")
            if any(parent_id_of(c.id) != node.id for c in node.children):
                raise TaxonomyError(f"{self.name}: the children of {node.id} must have IDs {node.id}S<k>")
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
        """All nodes, depth first: each category followed by its subcategories (and theirs)."""
        for cat in self.categories:
            yield cat
            yield from cat.descendants()

    def leaves(self) -> Iterator[Node]:
        """The nodes an answer should name: the nodes without children."""
        for node in self.nodes():
            if not node.children:
                yield node

    @property
    def depth(self) -> int:
        """The number of levels (2 for ProGuard's taxonomy)."""
        return max(n.depth for n in self.nodes())

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
        """A copy with these nodes (and everything under a hidden node) removed; IDs kept."""
        hide = set(ids)
        unknown = sorted(hide - set(self._by_id))
        if unknown:
            raise TaxonomyError(f"{self.name}: cannot hide unknown IDs {unknown}")

        def keep(nodes: tuple[Node, ...]) -> tuple[Node, ...]:
            return tuple(replace(n, children=keep(n.children)) for n in nodes if n.id not in hide)

        return Taxonomy(keep(self.categories), name=self.name)

    def renumbered(self, order: Mapping[str, list[str]] | None = None) -> tuple[Taxonomy, dict[str, str]]:
        """Re-number IDs densely from 1 in the given order; returns the taxonomy and old->new IDs.

        ``order`` maps ``""`` to the category IDs in their new order and each node's ID to its
        children's IDs in their new order; omitted lists keep the current order.
        """
        order = order or {}
        id_map: dict[str, str] = {}

        def number(nodes: tuple[Node, ...], parent_key: str, parent_new: str | None) -> tuple[Node, ...]:
            ids = list(order.get(parent_key, [n.id for n in nodes]))
            if sorted(ids) != sorted(n.id for n in nodes):
                what = "every category" if parent_key == "" else f"the subcategories of {parent_key}"
                raise TaxonomyError(f"{self.name}: renumbering order must list {what} once")
            out = []
            for i, nid in enumerate(ids, start=1):
                node = self._by_id[nid]
                new_id = f"C{i}" if parent_new is None else f"{parent_new}S{i}"
                id_map[nid] = new_id
                out.append(replace(node, id=new_id, children=number(node.children, nid, new_id)))
            return tuple(out)

        cats = number(self.categories, "", None)
        return Taxonomy(cats, name=self.name), id_map

    def shuffled(self, seed: int) -> tuple[Taxonomy, dict[str, str]]:
        """Categories and, within each, subcategories in a seeded random order, re-numbered."""
        rng = random.Random(seed)
        cat_ids = [c.id for c in self.categories]
        rng.shuffle(cat_ids)
        order: dict[str, list[str]] = {"": cat_ids}
        for node in self.nodes():
            if node.children:
                subs = [s.id for s in node.children]
                rng.shuffle(subs)
                order[node.id] = subs
        return self.renumbered(order)

    # ---- rendering ----------------------------------------------------------------------
    def render(self, *, subcategories: bool = True, descriptions: bool = True) -> str:
        """The category list as shown in the policy prompt, one node per line."""
        lines = []
        for node in self.nodes():
            if node.depth == 1 or subcategories:
                lines.append(_render_line(node, descriptions, indent="  " * (node.depth - 1)))
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """The project's own YAML schema as plain data (keys are not written: IDs are positional)."""
        return {"name": self.name, "categories": [_tree_dict(c, top=True) for c in self.categories]}


def _render_line(node: Node, descriptions: bool, indent: str) -> str:
    if descriptions and node.description:
        return f"{indent}{node.id}: {node.name} - {node.description}"
    return f"{indent}{node.id}: {node.name}"


def _tree_dict(node: Node, top: bool = False) -> dict:
    # A category always lists its subcategories (possibly none), as the schema has always been written;
    # a deeper node lists its children only when it has some.
    out = _node_dict(node)
    if top or node.children:
        out["subcategories"] = [_tree_dict(c) for c in node.children]
    return out


def _node_dict(node: Node) -> dict:
    return {"name": node.name, "description": node.description, "synonyms": list(node.synonyms)}
