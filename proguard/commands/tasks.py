"""``proguard tasks``: turn labelled samples and a taxonomy into GRPO-ready task splits with OOD targets."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rewards.types import MODALITIES

OUTPUT_KIND = "tasks"
"""The marker kind of a tasks output directory (``proguard.outputs``): only such a directory is overwritten."""
HELP = "Generate train / eval_id / eval_ood task splits with held-out categories (see docs/tasks.md)."


def _own(value: str) -> float | None:
    """``always`` -> 1.0, ``never`` -> 0.0, ``random`` -> None (an ordinary candidate), else a probability."""
    named = {"always": 1.0, "never": 0.0, "random": None}
    if value in named:
        return named[value]
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected always, never, random or a probability, got {value!r}") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``proguard tasks``."""
    p.add_argument("--data", required=True, help="labelled samples: .jsonl, .parquet or a saved datasets directory")
    p.add_argument("--taxonomy", required=True, help="taxonomy YAML (own or ProGuard schema) or a bundled name")
    p.add_argument("--out", required=True, help="output directory (DatasetDict.save_to_disk plus summary.json)")
    p.add_argument("--holdout", default="", help="comma-separated node IDs held out of every prompt -> eval_ood")
    p.add_argument("--hide-fraction", type=float, default=0.0, help="training tasks: share of categories hidden at random")
    p.add_argument("--hide-level", choices=("category", "subcategory"), default="category",
                   help="what random hiding removes: whole categories or single subcategories")
    p.add_argument("--hide-own", type=_own, default=None, metavar="always|never|random|P",
                   help="training tasks: hide the sample's own category always, never, as any other (random), "
                        "or with probability P")
    p.add_argument("--shuffle-ids", action="store_true", help="renumber the visible categories randomly per task")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-fraction", type=float, default=0.1, help="share of in-taxonomy samples in eval_id")
    p.add_argument("--balance", choices=("none", "down", "up"), default="none",
                   help="balance modalities in train: down-sample to the rarest or up-sample to the commonest")
    p.add_argument("--holdout-modality", choices=MODALITIES, default=None,
                   help="keep one modality out of training: its in-taxonomy samples form eval_modality "
                        "(OmniGuard's cross-modal transfer test)")
    p.add_argument("--leak-scope", choices=("policy", "prompt"), default="policy",
                   help="leak check: system prompts only (policy) or training conversations too (prompt)")
    p.add_argument("--no-descriptions", action="store_true", help="list categories without their descriptions")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing output directory (only one that proguard tasks wrote; never one holding the inputs)")
    p.add_argument("--allow-outside-data", action="store_true",
                   help="accept media paths that resolve outside the data file's folder (absolute, ../, links)")


def run(args: argparse.Namespace) -> int:
    """Load, generate, save, print the summary."""
    from proguard.outputs import check_output_dir, output_lock

    out = Path(args.out)
    # the inputs are never inside what --overwrite may remove
    protect = [p for p in (Path(args.data), Path(args.taxonomy)) if p.exists()]
    check_output_dir(out, OUTPUT_KIND, overwrite=args.overwrite, protect=protect)
    # held from the check to the swap: a second `proguard tasks` on this --out fails at once, naming this run
    with output_lock(out, command="tasks", beside=True):
        return _generate(args, out, protect)


def _generate(args: argparse.Namespace, out: Path, protect: list[Path]) -> int:
    from proguard.data import load_samples
    from proguard.inputs import check_source
    from proguard.outputs import check_output_dir, replace_output_dir
    from proguard.protocol import PromptConfig
    from proguard.tasks import LeakError, TaskConfig, format_summary, generate_tasks
    from taxonomy import load_taxonomy

    check_output_dir(out, OUTPUT_KIND, overwrite=args.overwrite, protect=protect)  # again, under the lock
    try:
        config = TaskConfig(
            holdout=args.holdout,
            hide_fraction=args.hide_fraction,
            hide_level=args.hide_level,
            own_category_hide_prob=args.hide_own,
            shuffle_ids=args.shuffle_ids,
            seed=args.seed,
            eval_fraction=args.eval_fraction,
            balance_modalities=args.balance,
            leak_scope=args.leak_scope,
            holdout_modality=args.holdout_modality,
            prompt=PromptConfig(descriptions=not args.no_descriptions),
        )
        taxonomy = load_taxonomy(args.taxonomy)
        check_source(args.data)  # non-UTF-8, corrupt parquet, not a dataset dir: one line naming it
        samples = load_samples(args.data, taxonomy, allow_outside_data=args.allow_outside_data)
        build = generate_tasks(samples, taxonomy, config)
    except LeakError as exc:
        raise LeakError(f"nothing written: {exc}") from None
    summary = {"data": str(args.data), "taxonomy_source": str(args.taxonomy), **build.summary}

    def write(scratch: Path) -> None:
        # One shard per split even when a split is empty (no --holdout: eval_ood has 0 rows): datasets
        # otherwise writes no shard for it and load_from_disk of the whole directory fails (IndexError).
        build.tasks.save_to_disk(str(scratch), num_shards={name: 1 for name in build.tasks})
        (scratch / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")

    replace_output_dir(out, OUTPUT_KIND, write, overwrite=args.overwrite, protect=protect, command="tasks")
    print(format_summary(build.summary))
    print(f"wrote {out} (splits: {', '.join(build.tasks)}) and {out / 'summary.json'}")
    return 0
