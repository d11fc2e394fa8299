"""Hierarchical safety taxonomies: the model, loaders for two YAML schemas, bundled policies."""

from taxonomy.loaders import bundled_taxonomies, dump_taxonomy, load_taxonomy, taxonomy_from_data
from taxonomy.model import (
    Node,
    Taxonomy,
    TaxonomyError,
    id_depth,
    id_path,
    is_node_id,
    normalize_name,
    parent_id_of,
    parse_id,
    top_id_of,
)

__all__ = [
    "Node",
    "Taxonomy",
    "TaxonomyError",
    "bundled_taxonomies",
    "dump_taxonomy",
    "id_depth",
    "id_path",
    "is_node_id",
    "load_taxonomy",
    "normalize_name",
    "parent_id_of",
    "parse_id",
    "taxonomy_from_data",
    "top_id_of",
]
