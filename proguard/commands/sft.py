"""``proguard sft RECIPE.yaml [key=value ...]``: supervised fine-tuning on distilled critiques (the warm start before GRPO).

``--check`` validates the recipe without data or models; ``--dry-run`` also shows the data counts and
one rendered training conversation per modality, loading no model and writing nothing; ``--resume``
continues from the latest ``checkpoint-N`` in ``output_dir``. ``<output_dir>/final`` is a valid
``model.name_or_path`` for ``proguard train``.
"""

from __future__ import annotations

import argparse
import json

HELP = "SFT a guard on distilled critiques from a recipe (recipes/<model>/sft.yaml); key=value overrides."


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``proguard sft`` (the same as ``proguard train``)."""
    from proguard.commands.train import add_arguments as train_arguments

    train_arguments(p)


def run(args: argparse.Namespace) -> int:
    """Validate, preview or fine-tune (the same flags, loader and guards as ``proguard train``)."""
    from proguard.commands.train import _split_flags, allowed_env, explain_key
    from proguard.errors import UsageError
    from proguard.train.recipe import SFTRecipe, explain, load_sft_recipe
    from proguard.train.sft import dry_run_sft, train_sft, validate_sft

    if args.explain is not None:
        print(explain(explain_key(args), SFTRecipe))
        return 0
    if args.recipe is None:
        raise UsageError("a recipe is required (e.g. recipes/tiny/sft_cpu.yaml); --explain KEY needs none")
    _split_flags(args)
    recipe = load_sft_recipe(args.recipe, args.overrides, allow_env=allowed_env(args.allow_env))
    if args.dry_run:
        print(dry_run_sft(recipe))
        return 0
    validate_sft(recipe)
    if args.check:
        print(f"{args.recipe}: ok (sft; data: {recipe.data.dataset or 'distilled inline by the template teacher'}"
              f"{', label_only' if recipe.data.label_only else ''})")
        return 0
    final = train_sft(recipe, resume=args.resume)
    print(json.dumps({"final_model": str(final)}))
    return 0
