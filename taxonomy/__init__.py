"""Hierarchical safety taxonomies: the model, loaders for two YAML schemas, bundled policies."""

from taxonomy.loaders import bundled_taxonomies, dump_taxonomy, load_taxonomy, taxonomy_from_data
from taxonomy.model import Node, Taxonomy, TaxonomyError, is_node_id, normalize_name, parent_id_of, parse_id

__all__ = [
    "Node",
    "Taxonomy",
    "TaxonomyError",
    "bundled_taxonomies",
    "dump_taxonomy",
    "is_node_id",
    "load_taxonomy",
    "normalize_name",
    "parent_id_of",
    "parse_id",
    "taxonomy_from_data",
]
