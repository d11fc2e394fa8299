"""``proguard bench compare RUN_DIR... [--out DIR]``: suite runs side by side as ProGuard's tables, with the
paper's published rows marked "published" (markdown, CSV, PNG)."""

from __future__ import annotations

import argparse

from proguard.errors import UsageError

HELP = "Lay `proguard bench --suite` runs side by side with the ProGuard paper's published rows."


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``proguard bench compare``."""
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="--out folders of `proguard bench --suite` runs")
    p.add_argument("--out", default="compare", help="output folder (default: ./compare)")
    p.add_argument("--no-png", action="store_true", help="skip the PNG")


def run(args: argparse.Namespace) -> int:
    """Write the tables and print where they are."""
    from pathlib import Path

    from proguard.outputs import output_run
    from proguard.suites.compare import compare

    missing = [r for r in args.runs if not Path(r).is_dir()]
    if missing:
        raise UsageError(f"{missing[0]}: no such run folder (give the --out folders of `proguard bench --suite` runs)")
    try:  # never a run folder or a user's folder; locked for the run
        with output_run(args.out, "bench-compare", command="bench compare", inputs=args.runs, legacy=["compare.md"]):
            paths = compare(args.runs, args.out, png=not args.no_png)
    except ValueError as exc:
        raise UsageError(f"{exc}") from None
    print(paths["markdown"].read_text(encoding="utf-8"))
    print("wrote " + ", ".join(str(p) for p in paths.values() if p))
    return 0
