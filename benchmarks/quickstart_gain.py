"""The quick start's held-out gain over the constant guard, with paired bootstrap intervals, per seed and pooled.

    python benchmarks/quickstart_gain.py runs/qs-s0 runs/qs-s1 runs/qs-s2 [--models sft,grpo] [--resamples 2000]

``--models`` names folders under ``eval/``: ``sft``, ``grpo``, ``grpo-anchored`` (``--anchor-bias``) or
``grpo-dev-threshold`` (``--dev-threshold``).

Each argument is a ``proguard quickstart --out`` folder. From its ``eval/<model>/predictions.jsonl`` and
``eval/always-unsafe/predictions.jsonl`` (the same 64 held-out prompts), prints per seed and pooled over the
seeds the request accuracy and request F1 (unsafe = positive) of each model minus the ``always unsafe`` row's,
with a 95% percentile interval from one paired bootstrap over prompts (``proguard.bench.bootstrap``; pooled:
over (seed, prompt)). A malformed answer counts as wrong. Markdown on stdout.
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


def main() -> int:
    from proguard.bench.bootstrap import paired_difference

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="proguard quickstart --out folders (one per seed)")
    p.add_argument("--models", default="sft,grpo")
    p.add_argument("--resamples", type=int, default=2000)
    args = p.parse_args()
    print("| seed | model | request acc (model / constant) | gain [95% CI] | request F1 (model / constant) | gain [95% CI] |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for model in args.models.split(","):
        pooled_a, pooled_b, pooled_groups = [], [], []
        for run in map(Path, args.runs):
            seed = json.loads((run / "quickstart.json").read_text()).get("seed", run.name)
            base, mine = read(run / "eval" / BASELINE_DIR / "predictions.jsonl"), read(run / "eval" / model / "predictions.jsonl")
            ids = sorted(base)
            if sorted(mine) != ids:
                raise SystemExit(f"{run}: {model} and {BASELINE_DIR} were scored on different prompts")
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
    for stat in (accuracy, f1):
        iv = paired_difference(a, b, groups, stat, n_resamples=resamples, seed=0)
        cells += [f"{stat(b):.3f} / {stat(a):.3f}", f"{iv.point:+.3f} [{iv.low:+.3f}, {iv.high:+.3f}]"]
    print(f"| {seed} | {model} (n={len(a)}) | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    raise SystemExit(main())
