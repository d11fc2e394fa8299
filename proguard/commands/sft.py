"""``proguard sft RECIPE.yaml [key=value ...]``: supervised fine-tuning on distilled critiques (the warm start before GRPO).

``--check`` validates the recipe without data or models; ``--dry-run`` also shows the data counts and
one rendered training conversation per modality, loading no model and writing nothing; ``--resume``
continues from the latest ``checkpoint-N`` in ``output_dir``. ``<output_dir>/final`` is a valid
``model.name_or_path`` for ``proguard train``.
"""

from __future__ import annotations

import argparse
import json
import sys

HELP = "SFT a guard on distilled critiques from a recipe (recipes/<model>/sft.yaml); key=value overrides."


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``proguard sft`` (the same as ``proguard train``)."""
    from proguard.commands.train import add_arguments as train_arguments

    train_arguments(p)


def run(args: argparse.Namespace) -> int:
    """Validate, preview or fine-tune."""
    from proguard.commands.train import _split_flags
    from proguard.data import DataError
    from proguard.errors import ProguardError
    from taxonomy import TaxonomyError
    from proguard.train.sft import dry_run_sft, train_sft, validate_sft
    from proguard.train.sft_recipe import load_sft_recipe

    try:
        _split_flags(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        recipe = load_sft_recipe(args.recipe, args.overrides)
        if args.dry_run:
            print(dry_run_sft(recipe))
            return 0
        validate_sft(recipe)
        if args.check:
            print(f"{args.recipe}: ok (sft; data: {recipe.data.dataset or 'distilled inline by the template teacher'}"
                  f"{', label_only' if recipe.data.label_only else ''})")
            return 0
        final = train_sft(recipe, resume=args.resume)
    except (ProguardError, DataError, TaxonomyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)
    print(json.dumps({"final_model": str(final)}))
    return 0
