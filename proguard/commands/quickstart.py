"""``proguard quickstart``: the README's one command: SFT on template-teacher critiques, then GRPO from it, on CPU.

Runs ``recipes/tiny/sft_cpu.yaml`` then ``recipes/tiny/grpo_from_sft_cpu.yaml`` (its model is the SFT's
``final/``) and prints the SFT loss and, per GRPO step, the format-valid rate and reward.
"""

from __future__ import annotations

import argparse
import sys

HELP = "SFT a tiny guard on template critiques, then GRPO from it (CPU); prints format-valid rate and reward per step."


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``proguard quickstart``."""
    from proguard.train.quickstart import GRPO_RECIPE, SFT_RECIPE

    p.add_argument("--sft-recipe", default=SFT_RECIPE, help=f"the SFT recipe (default {SFT_RECIPE})")
    p.add_argument("--grpo-recipe", default=GRPO_RECIPE, help=f"the GRPO recipe (default {GRPO_RECIPE})")
    p.add_argument("--sft", action="append", default=[], metavar="KEY=VALUE", help="an SFT recipe override (repeatable)")
    p.add_argument("--grpo", action="append", default=[], metavar="KEY=VALUE", help="a GRPO recipe override (repeatable)")


def run(args: argparse.Namespace) -> int:
    """Run both stages and print the summary."""
    from proguard.data import DataError
    from proguard.errors import ProguardError
    from proguard.train.quickstart import run_quickstart
    from taxonomy import TaxonomyError

    try:
        result = run_quickstart(args.sft_recipe, args.grpo_recipe, sft_overrides=args.sft, grpo_overrides=args.grpo)
    except (ProguardError, DataError, TaxonomyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)
    print(result.summary())
    return 0
