"""``proguard suites``: list the benchmark adapters and named suites; propose a category map for review."""

from __future__ import annotations

from proguard.errors import UsageError

import argparse

HELP = "Public benchmark adapters and suites: list them, or propose a category map for review."


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Sub-commands ``list`` and ``map``."""
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    sub.add_parser("list", help="adapters (levels, categories, expected files) and suites")
    m = sub.add_parser("map", help="propose a category map by embedding similarity (printed for review, never used)")
    m.add_argument("benchmark", help="adapter name or package.module:Class")
    m.add_argument("--taxonomy", default="default", help="target taxonomy: bundled name or YAML path")
    m.add_argument("--data-root", default=None,
                   help="read the labels from the benchmark's files (default: the labels of its shipped map)")
    m.add_argument("--min-score", type=float, default=0.3, help="best similarity under this proposes null (default 0.3)")
    m.add_argument("--out", default=None, help="also write the proposal to this YAML file")
    e = sub.add_parser("export", help="a benchmark's rows as labelled samples (with group) for `proguard tasks`")
    e.add_argument("benchmark", help="adapter name or package.module:Class")
    e.add_argument("--data-root", required=True, help="folder with one sub-folder per benchmark, files as released")
    e.add_argument("--taxonomy", default="default", help="taxonomy of the category map (default: bundled default)")
    e.add_argument("--category-map", default=None, help="a reviewed map file (default: the adapter's own)")
    e.add_argument("--out", required=True, help="output .jsonl (text only) or .parquet")


def run(args: argparse.Namespace) -> int:
    """Dispatch to the action."""
    from proguard.suites.registry import default_registry

    reg = default_registry()
    if args.action == "list":
        from proguard.suites.definitions import SUITES

        for name in reg.names():
            a = reg.get(name)
            print(f"{name:<22} {', '.join(a.levels):<18} {'categories' if a.categories else 'binary':<10} "
                  f"<data-root>/{a.folder}/{' | '.join(a.files) or '*.parquet'}")
        for s, entries in SUITES.items():
            print(f"suite {s}: " + ", ".join(f"{e.adapter}/{e.level}" for e in entries))
        print("suite all: every adapter at every level it labels")
        return 0
    if args.action == "export":
        return _export(args, reg)
    return _map(args, reg)


def _export(args: argparse.Namespace, reg) -> int:
    from proguard.suites.base import SuiteDataError
    from proguard.suites.catmap import load_map
    from proguard.suites.export import to_samples, write_samples
    from taxonomy import load_taxonomy

    adapter = reg.get(args.benchmark)
    taxonomy = load_taxonomy(args.taxonomy)
    try:
        path = args.category_map or adapter.map_path()
        cmap = load_map(path) if path else None
        if cmap is not None and cmap.usable_for(taxonomy):
            raise UsageError(f"{cmap.usable_for(taxonomy)}")
        samples, left = to_samples(adapter.load(args.data_root).samples, taxonomy, cmap)
        write_samples(samples, args.out)
    except SuiteDataError as exc:
        raise UsageError(f"{exc}") from None
    print(f"wrote {len(samples)} samples to {args.out}" + "".join(f"; left out {n}: {r}" for r, n in left.items()))
    return 0


def _map(args: argparse.Namespace, reg) -> int:
    from pathlib import Path

    from proguard.suites.catmap import dump_map, load_map
    from proguard.suites.propose import propose_map
    from taxonomy import load_taxonomy

    adapter = reg.get(args.benchmark)
    taxonomy = load_taxonomy(args.taxonomy)
    if args.data_root:
        labels = [label for s in adapter.load(args.data_root).samples for label in s.source_labels]
    elif adapter.map_path() is not None:
        labels = list(load_map(adapter.map_path()).mapping)
    else:
        raise UsageError(f"{adapter.name}: no shipped map to take labels from; pass --data-root")
    if not labels:
        raise UsageError(f"{adapter.name}: no category labels found")
    proposal, notes = propose_map(adapter.name, labels, taxonomy, min_score=args.min_score)
    text = ("# PROPOSED category map: review every line, then set reviewed: true (it is not used before).\n"
            + dump_map(proposal, notes))
    print(text, end="")
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"# wrote {args.out}")
    return 0
