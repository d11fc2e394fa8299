"""The quick start's held-out gain over the constant guard, with paired bootstrap intervals, per seed and pooled.

    python benchmarks/quickstart_gain.py runs/qs-s0 runs/qs-s1 runs/qs-s2 [--models sft,grpo] [--resamples 2000]

``--models`` names folders under ``eval/``: ``sft``, ``grpo``, ``grpo-anchored`` (``--anchor-bias``) or
``grpo-dev-threshold`` (``--dev-threshold``).

Each argument is a ``proguard quickstart --out`` folder. From its ``eval/<model>/predictions.jsonl`` and
``eval/always-unsafe/predictions.jsonl`` (the same 64 held-out prompts), prints per seed and pooled over the
seeds the request accuracy and request F1 (unsafe = positive) of each model minus the ``always unsafe`` row's,
with a 95% percentile interval from one paired bootstrap over prompts (``proguard.bench.bootstrap``; pooled:
over (seed, prompt)). A malformed answer counts as wrong. Markdown on stdout.

``--baseline MODEL`` compares with another model of the same runs instead (e.g. ``--models grpo-dev-threshold
--baseline grpo``). ``--vs RUN...`` (one folder per seed, in the same order) replaces the constant guard by the same model of
another quick-start variant on the same prompts, e.g. ``sft.decision_token_weight=5`` against the default:

    python benchmarks/quickstart_gain.py w5-s0 w5-s1 w5-s2 --vs w1-s0 w1-s1 w1-s2 --models sft,grpo
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

BASELINE_DIR = "always-unsafe"


def read(path: Path) -> dict[str, tuple[bool, bool]]:
    """task ID -> (request truly unsafe, predicted unsafe); a malformed answer is taken as the wrong label, as
    ``proguard.bench.metrics.binary_metrics`` scores it."""
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        parsed = r.get("parsed") or {}
        unsafe = r["truth"]["request"] == "unsafe"
        out[r["task_id"]] = (unsafe, parsed["request"] == "unsafe" if parsed.get("ok") else not unsafe)
    return out


def _counts(rows) -> dict:
    from proguard.bench.metrics import binary_counts

    return binary_counts([t for t, _ in rows], [p for _, p in rows])


def accuracy(rows) -> float | None:
    return _counts(rows)["accuracy"]


def f1(rows) -> float | None:
    return _counts(rows)["f1"]


def balanced_accuracy(rows) -> float | None:
    """Mean of unsafe and safe recall: 0.5 for the constant guard whatever the label mix."""
    return _counts(rows)["balanced_accuracy"]


def main() -> int:
    from proguard.bench.bootstrap import paired_difference

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="proguard quickstart --out folders (one per seed)")
    p.add_argument("--models", default="sft,grpo")
    p.add_argument("--resamples", type=int, default=2000)
    p.add_argument("--baseline", default=BASELINE_DIR,
                   help="the eval/ folder of the same run to compare with (default always-unsafe; e.g. grpo for "
                        "grpo-dev-threshold against the greedy GRPO row)")
    p.add_argument("--vs", nargs="+", default=None,
                   help="quick-start folders of another variant, one per run in the same order: the baseline is "
                        "their same model instead of the constant guard")
    args = p.parse_args()
    if args.vs is not None and len(args.vs) != len(args.runs):
        p.error(f"--vs needs one folder per run: {len(args.runs)} runs, {len(args.vs)} --vs folders")
    if args.vs is not None and args.baseline != BASELINE_DIR:
        p.error("--baseline and --vs are two different baselines: pass one")
    base_name = "--vs" if args.vs is not None else "constant" if args.baseline == BASELINE_DIR else args.baseline
    print(f"| seed | model | request acc (model / {base_name}) | gain [95% CI] | request F1 (model / {base_name}) | "
          f"gain [95% CI] | balanced acc (model / {base_name}) | gain [95% CI] |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for model in args.models.split(","):
        pooled_a, pooled_b, pooled_groups = [], [], []
        for i, run in enumerate(map(Path, args.runs)):
            seed = json.loads((run / "quickstart.json").read_text()).get("seed", run.name)
            base_path = (run / "eval" / args.baseline if args.vs is None else Path(args.vs[i]) / "eval" / model) \
                / "predictions.jsonl"
            if args.vs is not None and json.loads((Path(args.vs[i]) / "quickstart.json").read_text()).get("seed") != seed:
                raise SystemExit(f"{run} and {args.vs[i]}: different seeds")
            base, mine = read(base_path), read(run / "eval" / model / "predictions.jsonl")
            ids = sorted(base)
            if sorted(mine) != ids:
                raise SystemExit(f"{run}: {model} and {base_path} were scored on different prompts")
            a, b = [base[i] for i in ids], [mine[i] for i in ids]
            pooled_a += a
            pooled_b += b
            pooled_groups += [(seed, i) for i in ids]
            _row(str(seed), model, a, b, ids, args.resamples, paired_difference)
        if len(args.runs) > 1:
            _row("pooled", model, pooled_a, pooled_b, pooled_groups, args.resamples, paired_difference)
    return 0


def _row(seed, model, a, b, groups, resamples, paired_difference) -> None:
    cells = []
    for stat in (accuracy, f1, balanced_accuracy):
        iv = paired_difference(a, b, groups, stat, n_resamples=resamples, seed=0)
        cells += [f"{stat(b):.3f} / {stat(a):.3f}", f"{iv.point:+.3f} [{iv.low:+.3f}, {iv.high:+.3f}]"]
    print(f"| {seed} | {model} (n={len(a)}) | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    raise SystemExit(main())
