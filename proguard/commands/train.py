"""``proguard train RECIPE.yaml [key=value ...]``: GRPO-train a guard model from a recipe.

``--check`` validates the recipe (keys, types, cross-field rules, reward names and options) without
touching data or models; ``--dry-run`` also builds the training prompts and prints the resolved
recipe, a rendered sample prompt, dataset counts and the reward list, without loading the model;
``--resume`` continues from the latest ``checkpoint-N`` in ``output_dir``; ``--explain KEY`` prints a
recipe key's type, default and help from the schema (``--explain grpo`` lists a section).
"""

from __future__ import annotations

import argparse
import json
import sys

HELP = "GRPO-train a guard model from a recipe (recipes/<model>/<method>.yaml); key=value overrides."


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``proguard train``."""
    p.add_argument("recipe", nargs="?", help="recipe YAML, e.g. recipes/tiny/grpo_cpu.yaml")
    # REMAINDER so that flags may follow the overrides (`... grpo.max_steps=4 --resume`); run() sorts them out.
    p.add_argument(
        "overrides", nargs=argparse.REMAINDER, metavar="key=value", help="recipe overrides, e.g. grpo.max_steps=10"
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="validate the recipe and exit (no data, no model)")
    mode.add_argument("--dry-run", action="store_true", help="show config, a sample prompt, counts, rewards; no model")
    mode.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in output_dir")
    mode.add_argument("--explain", metavar="KEY", nargs="?", const="",
                      help="print a recipe key's type, default and help (a section lists its keys; no KEY: all)")
    add_safety_arguments(p)


def add_safety_arguments(p: argparse.ArgumentParser) -> None:
    """``--allow-env`` and ``--allow-download``, shared with ``proguard vllm-serve``."""
    p.add_argument("--allow-env", action="append", default=[], metavar="VAR[,VAR]",
                   help="let the recipe read these environment variables with ${oc.env:VAR} (off by default; "
                   "the values are never written to recipe.yaml or printed by --dry-run); '*' allows any")
    p.add_argument("--allow-download", action="store_true",
                   help="let model.name_or_path be a Hugging Face Hub ID that is downloaded now (default: offline, "
                   "a local checkpoint directory or 'tiny')")


def allowed_env(values: list[str]) -> bool | list[str]:
    """``--allow-env`` values as ``load_recipe``'s ``allow_env``."""
    names = [n.strip() for v in values for n in v.split(",") if n.strip()]
    return True if "*" in names else names


def run(args: argparse.Namespace) -> int:
    """Validate, preview or train."""
    from proguard.errors import UsageError
    from proguard.train.recipe import explain, load_recipe

    if args.explain is not None:
        print(explain(explain_key(args)))
        return 0
    if args.recipe is None:
        raise UsageError("a recipe is required (e.g. recipes/tiny/grpo_cpu.yaml); --explain KEY needs none")
    _split_flags(args)
    recipe = load_recipe(args.recipe, args.overrides, allow_env=allowed_env(args.allow_env))

    from proguard.train import dry_run, train, validate

    if args.dry_run:  # validates the recipe itself
        print(dry_run(recipe))
        return 0
    specs = validate(recipe)
    if args.check:
        for warning in _input_warnings(recipe):
            print(f"warning: {warning}", file=sys.stderr)
        print(f"{args.recipe}: ok ({len(specs)} rewards: {', '.join(s.name for s in specs)})")
        return 0
    final = train(recipe, resume=args.resume, allow_download=args.allow_download)
    print(json.dumps({"final_model": str(final)}))
    return 0


def explain_key(args: argparse.Namespace) -> str:
    """The key ``--explain`` was given (``--explain grpo.beta``, or ``--explain`` then the key as the positional)."""
    if args.explain:
        return args.explain
    recipe = args.recipe or ""
    return recipe if "." in recipe and not recipe.endswith((".yaml", ".yml")) else ""


def _split_flags(args: argparse.Namespace) -> None:
    """Move ``--check``/``--dry-run``/``--resume`` given after the overrides onto ``args``."""
    from proguard.errors import UsageError

    modes = {"--check": "check", "--dry-run": "dry_run", "--resume": "resume"}
    overrides = []
    items = iter(args.overrides)
    for item in items:
        if item in modes:
            setattr(args, modes[item], True)
        elif item == "--allow-download":
            args.allow_download = True
        elif item == "--allow-env" or item.startswith("--allow-env="):
            value = item.partition("=")[2] if "=" in item else next(items, None)
            if not value:
                raise UsageError("--allow-env needs a variable name (--allow-env VAR)")
            args.allow_env.append(value)
        elif item.startswith("-"):
            known = [*modes, "--allow-env", "--allow-download"]
            raise UsageError(f"unknown option {item!r}; options: {', '.join(known)} (overrides are key=value)")
        else:
            overrides.append(item)
    args.overrides = overrides
    chosen = [flag for flag, attr in modes.items() if getattr(args, attr)]
    if len(chosen) > 1:
        raise UsageError(f"{' and '.join(chosen)} cannot be combined")


def _input_warnings(recipe) -> list[str]:
    """Inputs a recipe names that are not on this machine (fine for --check; training needs them)."""
    from pathlib import Path

    from proguard.train.recipe import BUNDLED

    out = []
    if recipe.data.prepared and not Path(recipe.data.prepared).exists():
        out.append(f"data.prepared: {recipe.data.prepared} does not exist here (training needs it)")
    if not recipe.data.prepared and recipe.data.samples != BUNDLED and not Path(recipe.data.samples).exists():
        out.append(f"data.samples: {recipe.data.samples} does not exist here (training needs it)")
    return out
