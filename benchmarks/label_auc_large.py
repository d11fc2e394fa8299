"""Label-margin AUC of a trained guard on a large held-out set: the quick start's seed, ~390 prompts.

The quick start's own held-out split is 28 in-taxonomy prompts (one prompt is 0.036 of accuracy), too few to
tell two SFT variants apart. This rebuilds the seed's split with the training sizes the model was trained
with (so its training prompts are the same and never scored) and takes up to 60 questions per shown
Do-Not-Answer area and 150 XSTest safe prompts after them, rendered as the evaluation prompts are; it reports
the ROC AUC of ``benchmarks/label_probe.py``'s margin, and the balanced accuracy with the model's own threshold
and with the best one (an upper bound: chosen on the same prompts). Used for BENCHMARKS.md, "Quick start,
round 5" (about 1 s per prompt on one thread).

    OMP_NUM_THREADS=1 python benchmarks/label_auc_large.py runs/quickstart/sft/final --seed 0 --train-per-area 18 --train-safe 72

``--save FILE`` also writes each prompt's (task ID, label, margin); ``--reuse FILE`` reads them back instead of
scoring again. ``--dev-from RUN`` also fits the label bias on that quick-start run's dev split, as the quick start
does for its final guard, reports the balanced accuracy with it on these prompts and stores it in the ``--save``
file. Two variants of the quick start (e.g. two ``sft.decision_token_weight`` values) compared on the same
prompts, per seed and pooled over the seeds, with 95% intervals from one paired bootstrap over prompts (pooled:
over (seed, prompt)); when every file holds a dev bias, also the balanced accuracy with each model's own:

    python benchmarks/label_auc_large.py --compare w1-s0.json w1-s1.json w1-s2.json --vs w5-s0.json w5-s1.json w5-s2.json

The dev-fitted bias against the model's own threshold, paired on the same prompts (files written with
``--dev-from RUN --save FILE``, which also stores the bias):

    python benchmarks/label_auc_large.py --threshold-gain dev-s0.json dev-s1.json dev-s2.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Sequence


def _auc(rows: Sequence[tuple]) -> float | None:
    """ROC AUC of the margins; rows: (..., label, margin)."""
    from label_probe import auc  # benchmarks/ is on sys.path when this script runs

    return auc([r[-1] for r in rows if r[-2] == "unsafe"], [r[-1] for r in rows if r[-2] == "safe"])


def _mean_auc(rows: Sequence[tuple]) -> float | None:
    """The mean over seeds of each seed's AUC; rows: (seed, label, margin). AUC compares unsafe with safe prompts
    of one model, so a pooled AUC must not pair prompts across seeds (different models)."""
    seeds: dict = {}
    for r in rows:
        seeds.setdefault(r[0], []).append(r)
    aucs = [a for a in map(_auc, seeds.values()) if a is not None]
    return sum(aucs) / len(aucs) if aucs else None


def _balanced_acc(rows: Sequence[tuple]) -> float | None:
    """Balanced accuracy with the model's own threshold (margin > 0: unsafe); rows: (..., label, margin)."""
    from proguard.bench.label_bias import balanced_accuracy

    labels = {r[-2] for r in rows}
    return balanced_accuracy([(r[-2], r[-1]) for r in rows], 0.0) if {"safe", "unsafe"} <= labels else None


def read_margins(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SystemExit(f"{path}: cannot read a label_auc_large.py --save file ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list) or "seed" not in data:
        raise SystemExit(f"{path}: not a label_auc_large.py --save file (needs 'seed' and 'rows')")
    return data


def _seed_rows(data: dict, shift: float = 0.0) -> list[tuple]:
    """A --save file's rows as (seed, label, margin + shift): the rows every table statistic reads."""
    return [(data["seed"], label, m + shift) for _, label, m in data["rows"]]


def _groups(data: dict) -> list[tuple]:
    """The bootstrap group of each row: (seed, task ID), so pooled resamples never pair two seeds' prompts."""
    return [(data["seed"], tid) for tid, _, _ in data["rows"]]


def _dev_bias(data: dict) -> float | None:
    """The bias ``--dev-from ... --save`` stored, or None for a file written without it."""
    bias = data.get("dev_bias")
    return bias if isinstance(bias, (int, float)) else None


def _pairs_table(pairs: Sequence[tuple], stats: Sequence[tuple], pooled_stats: Sequence[tuple],
                 names: tuple[str, str], resamples: int) -> str:
    """Markdown: one row per seed (``pairs``: (seed, base rows, other rows, bootstrap groups)) and a pooled one
    (over (seed, prompt)); per statistic (header, fn) base -> other and other - base with a paired 95% interval."""
    from proguard.bench.bootstrap import paired_difference

    a_name, b_name = names
    head = "".join(f" {h} {a_name} -> {b_name} | {b_name} - {a_name} [95% CI] |" for h, _ in stats)
    lines = [f"| seed | prompts (unsafe / safe) |{head}", "| --- | ---: |" + " ---: | ---: |" * len(stats)]

    def row(name, a, b, groups, row_stats):
        cells = []
        for _, stat in row_stats:
            iv = paired_difference(a, b, groups, stat, n_resamples=resamples, seed=0)
            cells.append(f"{stat(a):.3f} -> {stat(b):.3f} | {iv.point:+.3f} [{iv.low:+.3f}, {iv.high:+.3f}]")
        n_unsafe = sum(r[-2] == "unsafe" for r in a)
        lines.append(f"| {name} | {n_unsafe} / {len(a) - n_unsafe} | " + " | ".join(cells) + " |")

    for seed, a, b, groups in pairs:
        row(str(seed), a, b, groups, stats)
    if len(pairs) > 1:
        row("pooled" + (" (AUC: mean of seeds)" if any(h == "AUC" for h, _ in pooled_stats) else ""),
            [r for p in pairs for r in p[1]], [r for p in pairs for r in p[2]], [g for p in pairs for g in p[3]],
            pooled_stats)
    return "\n".join(lines)


def compare(base: Sequence[Path], other: Sequence[Path], resamples: int = 2000) -> str:
    """Markdown: per seed and pooled, the AUC and the own-threshold balanced accuracy of ``other`` minus ``base``
    (files of the same seeds, in the same order, scored on the same prompts); when every file holds a ``dev_bias``
    (``--dev-from``), a second table: the balanced accuracy with each model's own dev-fitted bias."""
    if len(base) != len(other) or not base:
        raise SystemExit(f"--compare and --vs need the same number of files (one per seed); got {len(base)} and {len(other)}")
    pairs, dev_pairs = [], []
    for pa, pb in zip(base, other, strict=True):
        da, db = read_margins(pa), read_margins(pb)
        if da["seed"] != db["seed"] or [r[:2] for r in da["rows"]] != [r[:2] for r in db["rows"]]:
            raise SystemExit(f"{pa} and {pb}: not the same seed and prompts")
        pairs.append((da["seed"], _seed_rows(da), _seed_rows(db), _groups(da)))
        if _dev_bias(da) is not None and _dev_bias(db) is not None:
            dev_pairs.append((da["seed"], _seed_rows(da, _dev_bias(da)), _seed_rows(db, _dev_bias(db)), _groups(da)))
    table = _pairs_table(pairs, [("AUC", _auc), ("balanced acc", _balanced_acc)],
                         [("AUC", _mean_auc), ("balanced acc", _balanced_acc)], ("base", "other"), resamples)
    if dev_pairs and len(dev_pairs) == len(pairs):  # every file from --dev-from: each model with its own dev bias
        stats = [("balanced acc, dev bias", _balanced_acc)]
        table += "\n\nEach model with its own dev-fitted bias (dev_bias):\n\n" + _pairs_table(
            dev_pairs, stats, stats, ("base", "other"), resamples)
    return table


def threshold_gain(files: Sequence[Path], resamples: int = 2000) -> str:
    """Markdown: per seed and pooled, the balanced accuracy with the label bias fitted on the run's dev split
    (``dev_bias`` of a ``--dev-from ... --save`` file) minus with the model's own threshold, on the same prompts."""
    pairs = []
    for path in files:
        data = read_margins(path)
        bias = _dev_bias(data)
        if bias is None:
            raise SystemExit(f"{path}: no dev_bias (write it with --dev-from RUN --save FILE)")
        pairs.append((data["seed"], _seed_rows(data), _seed_rows(data, bias), _groups(data)))
    stats = [("balanced acc", _balanced_acc)]
    return _pairs_table(pairs, stats, stats, ("own", "dev"), resamples)


def score(args, ap) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from label_probe import margins  # benchmarks/ is on sys.path when this script runs
    from proguard.bench.label_bias import balanced_accuracy
    from proguard.train import quickstart_data as qd

    if not (Path(args.model) / "config.json").is_file():
        ap.error(f"model {args.model}: no config.json there (pass a trained model folder such as .../sft/final)")
    if qd.resolve_data_root(args.data_root) is None:
        ap.error("no Do-Not-Answer/XSTest data root found: pass --data-root DIR")
    torch.set_num_threads(1)
    sizes = qd.Sizes(train_per_area=args.train_per_area, train_safe=args.train_safe, eval_per_area=60,
                     eval_safe=150, dev_per_area=1, dev_safe=1)  # dev must not be empty; it is not scored
    with tempfile.TemporaryDirectory(prefix="label-auc-") as tmp:
        rows = list(qd.quickstart_data(Path(tmp), args.data_root, args.seed, sizes).tasks["eval_id"])
    tok = model = None

    def scored_on(prompts):  # the model is loaded on first use: --reuse without --dev-from never needs it
        nonlocal tok, model
        if model is None:
            tok = AutoTokenizer.from_pretrained(args.model)
            model = AutoModelForCausalLM.from_pretrained(args.model).eval()
        return margins(tok, model, prompts)

    if args.reuse:  # the margins a --save run of this model wrote: only the dev prompts are scored now
        saved = read_margins(args.reuse)
        if saved["model"] != args.model or saved["seed"] != args.seed or [r[0] for r in saved["rows"]] != \
                [r["task_id"] for r in rows]:
            ap.error(f"--reuse {args.reuse}: written for another model, seed or split")
        scored = [(label, m) for _, label, m in saved["rows"]]
    else:
        scored = scored_on(rows)
    pos = [m for label, m in scored if label == "unsafe"]
    neg = [m for label, m in scored if label == "safe"]
    best = max(balanced_accuracy(scored, -m) for m in [0.0, *pos, *neg])  # a threshold at each margin
    report = {"model": args.model, "seed": args.seed, "n_unsafe": len(pos), "n_safe": len(neg),
              "auc": round(_auc(scored), 4), "own_threshold_balanced_acc": round(balanced_accuracy(scored, 0.0), 3),
              "best_threshold_balanced_acc": round(best, 3)}
    if args.dev_from:
        # the bias the quick start's dev threshold fits on that run's 56 dev prompts, applied here
        import datasets

        from proguard.bench.label_bias import fit_label_bias

        dev = list(datasets.load_from_disk(str(Path(args.dev_from) / "data" / "tasks"))["dev"])
        fit = fit_label_bias(scored_on(dev), fitted_on=f"{args.dev_from} dev split")
        report |= {"dev_bias": round(fit.bias, 3), "dev_threshold_balanced_acc": round(balanced_accuracy(scored, fit.bias), 3)}
    print(json.dumps(report))
    if args.save:
        saved = {"model": args.model, "seed": args.seed,
                 "rows": [[r["task_id"], label, m] for r, (label, m) in zip(rows, scored, strict=True)]}
        if "dev_bias" in report:  # unrounded: --threshold-gain applies it to the margins again
            saved |= {"dev_bias": fit.bias, "dev_from": str(args.dev_from)}
        Path(args.save).write_text(json.dumps(saved) + "\n", encoding="utf-8")


def main() -> None:
    from proguard.train import quickstart_data as qd

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", help="a trained model folder (e.g. runs/quickstart/sft/final)")
    ap.add_argument("--seed", type=int, default=0, help="the quick start's --seed the model was trained with")
    ap.add_argument("--train-per-area", type=int, default=qd.Sizes.train_per_area,
                    help="training questions per shown area the model was trained with (default: the quick start's)")
    ap.add_argument("--train-safe", type=int, default=qd.Sizes.train_safe,
                    help="XSTest safe training prompts the model was trained with (default: the quick start's)")
    ap.add_argument("--data-root", default=None, help="Do-Not-Answer + XSTest root (default: as the quick start)")
    ap.add_argument("--dev-from", default=None,
                    help="a proguard quickstart --out folder: also fit the label bias on its dev split (as the quick "
                         "start does) and report the balanced accuracy with it here (and store it in --save's file)")
    ap.add_argument("--reuse", default=None, help="a --save file of this model and seed: its margins, not scored again")
    ap.add_argument("--save", default=None, help="also write each prompt's (task ID, label, margin) to this JSON file")
    ap.add_argument("--compare", nargs="+", type=Path, help="--save files of the base variant, one per seed")
    ap.add_argument("--vs", nargs="+", type=Path, help="--save files of the other variant, same seeds and order")
    ap.add_argument("--threshold-gain", nargs="+", type=Path,
                    help="--dev-from ... --save files, one per seed: the balanced accuracy with the dev-fitted bias "
                         "minus with the model's own threshold, paired on the same prompts")
    ap.add_argument("--resamples", type=int, default=2000)
    args = ap.parse_args()
    if args.threshold_gain:
        if args.model or args.compare or args.vs:
            ap.error("--threshold-gain FILES reads saved margins and dev biases; it takes no model, --compare or --vs")
        print(threshold_gain(args.threshold_gain, args.resamples))
    elif args.compare or args.vs:
        if args.model:
            ap.error("--compare FILES --vs FILES compares saved margins; it takes no model")
        if not (args.compare and args.vs):
            ap.error("--compare and --vs go together: the base variant's --save files, then the other's")
        print(compare(args.compare, args.vs, args.resamples))
    elif args.model:
        score(args, ap)
    else:
        ap.error("pass a model folder, --compare FILES --vs FILES, or --threshold-gain FILES")


if __name__ == "__main__":
    main()
