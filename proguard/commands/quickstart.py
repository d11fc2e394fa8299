"""``proguard quickstart``: the README's one command: the pretrained SmolLM2-135M guard trained by SFT then GRPO on a
small real-data task, and a before/after table on held-out prompts (``proguard.train.quickstart``).
"""

from __future__ import annotations

import argparse

HELP = ("Train the pretrained SmolLM2-135M guard (SFT, then GRPO) on a small real-data task on CPU and print a "
        "held-out before/after table (base vs SFT vs GRPO).")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``proguard quickstart``."""
    from proguard.train.quickstart import GRPO_RECIPE, OUT_DIR, SFT_RECIPE
    from proguard.train.quickstart_data import DEFAULT_DATA_ROOT

    p.add_argument("--data-root", default=None,
                   help="folder holding donotanswer/do_not_answer_prompts.csv and xstest/xstest_prompts.csv as "
                   f"released (default: {DEFAULT_DATA_ROOT} when it exists, else the bundled samples)")
    p.add_argument("--out", default=OUT_DIR, help=f"folder for the data, both runs and the evaluation (default {OUT_DIR}; "
                   "must be new or empty)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and of both trainings (default 0)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: on a shared or 2-core machine one thread is the fastest)")
    p.add_argument("--dev-threshold", action=argparse.BooleanOptionalAction, default=None,
                   help="fit the final model's safe/unsafe threshold on the dev split (56 prompts it never trained on), "
                   "score it with it as one more row and save it beside the weights (label_bias.json, which bench and "
                   "moderate apply). On by default (not with --anchor-bias): on ~390 held-out prompts it raised the "
                   "final guard's balanced accuracy 0.721 -> 0.787 over 3 seeds (BENCHMARKS.md, 'Quick start: the "
                   "dev threshold'); --no-dev-threshold leaves the greedy model alone")
    p.add_argument("--anchor-bias", action="store_true",
                   help="also score the final model with its safe/unsafe bias moved back onto the SFT model's on the "
                   "dev split (labels not used; saved beside the weights as label_bias.json): GRPO moved every "
                   "prompt's label margin by about the same amount in BENCHMARKS.md's longer runs. Turns the dev "
                   "threshold off (both write label_bias.json)")
    p.add_argument("--sft-recipe", default=SFT_RECIPE, help=f"the SFT recipe (default {SFT_RECIPE})")
    p.add_argument("--grpo-recipe", default=GRPO_RECIPE, help=f"the GRPO recipe (default {GRPO_RECIPE})")
    p.add_argument("--sft", action="append", default=[], metavar="KEY=VALUE", help="an SFT recipe override (repeatable)")
    p.add_argument("--grpo", action="append", default=[], metavar="KEY=VALUE", help="a GRPO recipe override (repeatable)")


def run(args: argparse.Namespace) -> int:
    """Run the three stages and print the table and the closing line."""
    import torch

    from proguard.errors import UsageError

    if args.threads < 1:
        raise UsageError(f"--threads: must be at least 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    from proguard.train.quickstart import THRESHOLD_MODELS, run_quickstart

    # neither flag: run_quickstart's default (the dev threshold, unless --anchor-bias); both: its one-line error
    thresholds = None if args.dev_threshold is None else THRESHOLD_MODELS if args.dev_threshold else ()

    result = run_quickstart(args.sft_recipe, args.grpo_recipe, out=args.out, data_root=args.data_root, seed=args.seed,
                            sft_overrides=args.sft, grpo_overrides=args.grpo,
                            threshold_models=thresholds, anchor_bias=args.anchor_bias)
    print("\nHeld-out results (prompts never trained on; category acc on in-taxonomy unsafe prompts):")
    print(result.table())
    print()
    print(result.closing())
    return 0
