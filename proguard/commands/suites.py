"""``proguard suites``: list the benchmark adapters and named suites; propose a category map for review."""

from __future__ import annotations

import argparse

from proguard.errors import UsageError

HELP = "Public benchmark adapters and suites: list them, or propose a category map for review."


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Sub-commands ``list`` and ``map``."""
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    sub.add_parser("list", help="adapters (levels, categories, expected files) and suites")
    m = sub.add_parser("map", help="propose a category map with the OOD reward's ranking (printed for review, never used)")
    m.add_argument("benchmark", help="adapter name or package.module:Class")
    m.add_argument("--taxonomy", default="default", help="target taxonomy: bundled name or YAML path")
    m.add_argument("--data-root", default=None,
                   help="read the labels from the benchmark's files (default: the labels of its shipped map)")
    m.add_argument("--min-score", type=float, default=0.2,
                   help="best ranking score (the ood_description reward's, 0-1) under this proposes null (default 0.2)")
    m.add_argument("--out", default=None, help="also write the proposal to this YAML file")
    e = sub.add_parser("export", help="a benchmark's rows as labelled samples (with group) for `proguard tasks`")
    e.add_argument("benchmark", help="adapter name or package.module:Class")
    e.add_argument("--data-root", required=True, help="folder with one sub-folder per benchmark, files as released")
    e.add_argument("--taxonomy", default="default", help="taxonomy of the category map (default: bundled default)")
    e.add_argument("--category-map", default=None, help="a reviewed map file (default: the adapter's own)")
    e.add_argument("--out", required=True,
                   help="output .jsonl (text only) or .parquet; never a file under the benchmark's own folder")
    e.add_argument("--overwrite", action="store_true", help="replace an existing --out file that is not an export")


def run(args: argparse.Namespace) -> int:
    """Dispatch to the action."""
    from proguard.suites.registry import default_registry

    reg = default_registry()
    if args.action == "list":
        from proguard.suites.definitions import SUITES

        for name in reg.names():
            a = reg.get(name)
            print(f"{name:<22} {', '.join(a.levels):<18} {'categories' if a.categories else 'binary':<10} "
                  f"<data-root>/{a.folder}/{' | '.join(n or '*.parquet' for n in a.files)}")
            for proto, rule in a.protocols.items():
                print(f"{'':<22} @{proto}: {rule}")
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

    from pathlib import Path

    from proguard.outputs import check_output_file, write_output_file

    adapter = reg.get(args.benchmark)
    # the release files are inputs: every file of the benchmark's folder, by any name or link
    folder = Path(args.data_root) / adapter.folder
    inputs = [*(f for f in folder.rglob("*") if f.is_file()), *([args.category_map] if args.category_map else [])] \
        if folder.is_dir() else []
    check_output_file(args.out, overwrite=args.overwrite, inputs=inputs, owned=_is_export)
    taxonomy = load_taxonomy(args.taxonomy)
    try:
        path = args.category_map or adapter.map_path()
        cmap = load_map(path) if path else None
        if cmap is not None and cmap.usable_for(taxonomy):
            raise UsageError(f"{cmap.usable_for(taxonomy)}")
        samples, left = to_samples(adapter.load(args.data_root).samples, taxonomy, cmap, adapter.label_parents)
        if not samples:
            counts = "; ".join(f"{n} {r}" for r, n in left.items())
            raise UsageError(f"{adapter.name}: no row can be exported ({counts}); check the category map's keys "
                             f"against the release's labels")
        write_output_file(args.out, lambda tmp: write_samples(samples, tmp), overwrite=args.overwrite, inputs=inputs,
                          owned=_is_export)
    except SuiteDataError as exc:
        raise UsageError(f"{exc}") from None
    print(f"wrote {len(samples)} samples to {args.out}" + "".join(f"; left out {n}: {r}" for r, n in left.items()))
    return 0


def _is_export(path) -> bool:
    """Whether ``path`` is a samples file ``suites export`` wrote (its columns; a .jsonl's first row)."""
    from proguard.outputs import jsonl_with_keys

    keys = ("id", "modality", "request_label", "group")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return set(keys) <= set(pq.ParquetFile(str(path)).schema_arrow.names)
    return jsonl_with_keys(*keys)(path)


def _map(args: argparse.Namespace, reg) -> int:
    from pathlib import Path

    from proguard.suites.catmap import dump_map, load_map
    from proguard.suites.propose import propose_map
    from taxonomy import load_taxonomy

    import math

    if not (math.isfinite(args.min_score) and -1 <= args.min_score <= 1):
        raise UsageError(f"--min-score must be a finite similarity in [-1, 1], got {args.min_score}")
    adapter = reg.get(args.benchmark)
    taxonomy = load_taxonomy(args.taxonomy)
    from proguard.suites.base import SuiteDataError

    parents: dict[str, str | None] = dict(adapter.label_parents)
    if args.data_root:
        try:
            samples = adapter.load(args.data_root).samples
        except SuiteDataError as exc:
            raise UsageError(str(exc)) from None
        labels = [label for s in samples for label in s.source_labels]
        for s in samples:  # the release's own parent of each label, where it gives one
            for label, parent in zip(s.source_labels, s.source_parents, strict=False):
                if parent:
                    parents[label] = parent
    elif adapter.map_path() is not None:
        labels = list(load_map(adapter.map_path()).mapping)
    else:
        raise UsageError(f"{adapter.name}: no shipped map to take labels from; pass --data-root")
    if not labels:
        raise UsageError(f"{adapter.name}: no category labels found")
    proposal, notes = propose_map(adapter.name, labels, taxonomy, min_score=args.min_score, parents=parents)
    text = ("# PROPOSED category map: review every line, then set reviewed: true (it is not used before).\n"
            + dump_map(proposal, notes))
    print(text, end="")
    if args.out:
        from proguard.outputs import write_output_file

        def proposal(path: Path) -> bool:  # a proposal this command wrote earlier
            with path.open(encoding="utf-8") as fh:
                return fh.readline().startswith("# PROPOSED category map")

        write_output_file(args.out, lambda tmp: tmp.write_text(text, encoding="utf-8"), owned=proposal,
                          inputs=[adapter.map_path()] if adapter.map_path() else [])
        print(f"# wrote {args.out}")
    return 0
