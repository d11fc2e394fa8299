"""``proguard rewards``: list the registered reward modules, or score a file of completions offline.

    proguard rewards list
    proguard rewards score --preset proguard-paper --input completions.jsonl --output scored.jsonl
    proguard rewards score --recipe my_recipe.yaml --input completions.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys

HELP = "List reward modules and presets, or score a JSONL file of completions offline (no GPU)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``proguard rewards list`` and ``proguard rewards score``."""
    sub = p.add_subparsers(dest="rewards_command", required=True, metavar="ACTION")
    ls = sub.add_parser("list", help="registered rewards with their options, and the presets")
    ls.add_argument("--json", action="store_true", help="print JSON instead of text")
    sc = sub.add_parser("score", help="score completions: total and every component per row")
    which = sc.add_mutually_exclusive_group()
    which.add_argument("--preset", default=None, help="reward preset (default: 'default'; see `proguard rewards list`)")
    which.add_argument("--recipe", default=None,
                       help="YAML file with a `rewards:` list of {name, weight, gate, options} (any file name)")
    sc.add_argument("--input", required=True, help="JSONL: one completion per row under `completion` plus ground truth")
    sc.add_argument("--output", default=None,
                    help="write the scored rows here as JSONL ('-' for stdout); an existing file is replaced only "
                    "if it holds scored rows (or with --overwrite), never the input")
    sc.add_argument("--overwrite", action="store_true", help="replace an existing --output file whatever it holds")
    sc.add_argument("--taxonomy", default="default", help="taxonomy that category IDs and names refer to")
    sc.add_argument("--batch-size", type=int, default=1024, help="completions per reward call")


def run(args: argparse.Namespace) -> int:
    """Dispatch to ``list`` or ``score``; a bad recipe, preset or input file raises a ``UsageError`` naming it."""
    return _list(args) if args.rewards_command == "list" else _score(args)


def _list(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from proguard.scoring.registry import default_registry
    from proguard.scoring.specs import load_preset, preset_names

    registry = default_registry()
    infos = [registry.describe(n) for n in registry.names()]
    presets = {n: [s.to_dict() for s in load_preset(n)] for n in preset_names()}
    if args.json:
        print(json.dumps({"rewards": [asdict(i) for i in infos], "presets": presets}, indent=2, default=str))
        return 0
    print("Rewards (entry-point group proguard.rewards; a dotted path package.module:Name also works):")
    for info in infos:
        print(f"\n  {info.name}  ({info.target}, {info.origin})")
        if info.error:
            print(f"    cannot load: {info.error}")
            continue
        if info.summary:
            print(f"    {info.summary}")
        for o in info.options:
            ann = f": {o.annotation}" if o.annotation else ""
            default = "required" if o.required else f"default {o.default!r}"
            print(f"    - {o.name}{ann} ({default})")
    print("\nPresets (total = product of gates x weighted sum; proguard rewards score --preset NAME):")
    for name, specs in presets.items():
        print(f"\n  {name}")
        for s in specs:
            role = "gate" if s["gate"] else f"weight {s['weight']:g}"
            options = ", ".join(f"{k}={v!r}" for k, v in s["options"].items()) or "defaults"
            print(f"    - {s['name']} ({role}; options: {options})")
    return 0


def _score(args: argparse.Namespace) -> int:
    from proguard.scoring.compose import build_reward, resolve_specs
    from proguard.scoring.offline import read_scoring_rows, score_rows, summary, write_scored
    from taxonomy import load_taxonomy

    from pathlib import Path

    from proguard.errors import UsageError
    from proguard.outputs import check_output_file, jsonl_with_keys, write_output_file

    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {args.batch_size}")
    # a recipe is a file whatever its name (a preset is a bundled name): never "unknown preset 'my.recipe'"
    which = Path(args.recipe) if args.recipe else (args.preset or "default")
    owned = jsonl_with_keys("reward", "reward_components")  # rows this command wrote
    to_file = args.output not in (None, "-")
    if to_file:  # a bad --output fails before any scoring
        check_output_file(args.output, overwrite=args.overwrite, inputs=[args.input, args.recipe], owned=owned,
                          flag="--output")
    resolve_specs(which)  # a bad preset or recipe, then a bad input file, before any reward module loads
    rows = read_scoring_rows(args.input, load_taxonomy(args.taxonomy))
    # building the reward loads the sentence-embedding model (seconds to a minute): say so before the wait
    print(f"scoring {len(rows.records)} completions from {args.input} with {which}: loading the reward modules "
          "(and the sentence-embedding model) ...", file=sys.stderr, flush=True)
    reward = build_reward(which)
    if rows.replaced:
        print(f"{args.input}: replaced {rows.replaced} lone UTF-16 surrogate(s) with U+FFFD", file=sys.stderr)
    result = score_rows(reward, rows, batch_size=args.batch_size)
    if args.output == "-":
        write_scored(sys.stdout, rows, result)
        return 0
    if to_file:
        write_output_file(args.output, lambda tmp: write_scored(tmp, rows, result), overwrite=args.overwrite,
                          inputs=[args.input, args.recipe], owned=owned, flag="--output")
    print(f"{reward!r} on {len(rows.records)} completions from {args.input}")
    print(summary(result))
    if args.output:
        print(f"wrote {args.output}", file=sys.stderr)
    return 0
