"""Read taxonomies from YAML: the project's own schema, ProGuard's ``taxonomy.yaml``, bundled names.

Own schema::

    name: my-policy
    categories:
      - name: Weapons
        description: ...
        synonyms: [arms, firearms]
        subcategories: [{name: ..., description: ..., synonyms: [...]}]

ProGuard schema: a top-level list of ``{category, description, synonymous-phrase, subcategories:
[{name, description, synonymous-phrase}]}``. The format is detected from the top-level shape.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from taxonomy.model import Node, Taxonomy, TaxonomyError

BUNDLED_DIR = Path(__file__).parent / "data"


def bundled_taxonomies() -> list[str]:
    """Names of the taxonomies shipped with the project (``load_taxonomy`` accepts them)."""
    return sorted(p.stem for p in BUNDLED_DIR.glob("*.yaml"))


def load_taxonomy(source: str | Path) -> Taxonomy:
    """Load a bundled taxonomy by name (``default``, ``mlcommons``) or a YAML file in either schema."""
    path = Path(source)
    if not path.exists() and str(source) in bundled_taxonomies():
        path = BUNDLED_DIR / f"{source}.yaml"
    if not path.exists():
        raise TaxonomyError(
            f"taxonomy {str(source)!r}: no such file, and not a bundled name ({', '.join(bundled_taxonomies())})"
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise TaxonomyError(f"{path}: not valid YAML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise TaxonomyError(f"{path}: not UTF-8 text (byte {exc.start}); a taxonomy is a YAML file") from None
    except OSError as exc:
        raise TaxonomyError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except RecursionError:
        raise TaxonomyError(f"{path}: nested too deeply to be a taxonomy") from None
    return taxonomy_from_data(data, origin=str(path))


def taxonomy_from_data(data: Any, origin: str = "<data>") -> Taxonomy:
    """Build a taxonomy from already-parsed YAML data in either schema."""
    if isinstance(data, list):
        return _from_proguard(data, origin)
    if isinstance(data, dict) and "categories" in data:
        name = data.get("name") or Path(origin).stem
        return _build(data["categories"], origin, name=str(name), cat_key="name", syn_key="synonyms")
    raise TaxonomyError(
        f"{origin}: unrecognised taxonomy: expected a list (ProGuard schema) or a mapping with 'categories'"
    )


def _from_proguard(data: list, origin: str) -> Taxonomy:
    return _build(data, origin, name=Path(origin).stem, cat_key="category", syn_key="synonymous-phrase")


def _build(cats: Any, origin: str, *, name: str, cat_key: str, syn_key: str) -> Taxonomy:
    if not isinstance(cats, list) or not cats:
        raise TaxonomyError(f"{origin}: categories must be a non-empty list")
    out = []
    for i, raw in enumerate(cats, start=1):
        where = f"{origin}: categories[{i - 1}]"
        out.append(_tree(raw, where, f"C{i}", cat_key, syn_key))
    try:
        return Taxonomy(tuple(out), name=name)
    except TaxonomyError as exc:
        raise TaxonomyError(f"{origin}: {exc}") from None


def _tree(raw: Any, where: str, node_id: str, name_key: str, syn_key: str) -> Node:
    """A node and, recursively, its ``subcategories`` (any depth; IDs ``<parent>S<k>``)."""
    subs_raw = _mapping(raw, where).get("subcategories") or []
    if not isinstance(subs_raw, list):
        raise TaxonomyError(f"{where}.subcategories: must be a list")
    children = tuple(
        _tree(s, f"{where}.subcategories[{j - 1}]", f"{node_id}S{j}", "name", syn_key)
        for j, s in enumerate(subs_raw, start=1)
    )
    return _node(raw, where, node_id, name_key, syn_key, children=children)


def _mapping(raw: Any, where: str) -> dict:
    if not isinstance(raw, dict):
        raise TaxonomyError(f"{where}: must be a mapping, got {type(raw).__name__}")
    return raw


def _node(raw: Any, where: str, node_id: str, name_key: str, syn_key: str, children: tuple = ()) -> Node:
    raw = _mapping(raw, where)
    name = raw.get(name_key)
    if not isinstance(name, str) or not name.strip():
        raise TaxonomyError(f"{where}: missing or empty '{name_key}'")
    desc = raw.get("description", "") or ""
    if not isinstance(desc, str):
        raise TaxonomyError(f"{where}.description: must be a string")
    syns = raw.get(syn_key, []) or []
    if not isinstance(syns, list) or not all(isinstance(s, str) and s.strip() for s in syns):
        raise TaxonomyError(f"{where}.{syn_key}: must be a list of non-empty strings")
    return Node(
        id=node_id,
        name=name.strip(),
        description=" ".join(desc.split()),
        synonyms=tuple(s.strip() for s in syns),
        children=children,
        key=node_id,
    )


def dump_taxonomy(tax: Taxonomy, path: str | Path) -> None:
    """Write a taxonomy in the project's own schema."""
    Path(path).write_text(yaml.safe_dump(tax.to_dict(), sort_keys=False, allow_unicode=True), encoding="utf-8")
