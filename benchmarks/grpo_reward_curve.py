"""Does GRPO learn from its reward? The quick start's task and recipes with GRPO run longer: its reward per step,
and what the GRPO model does on the quick start's 64 held-out prompts next to the SFT model it started from.

    # (1) from an early SFT checkpoint (8 of the quick start's 36 steps): the answer format half learnt
    OMP_NUM_THREADS=1 python benchmarks/grpo_reward_curve.py --out runs/curve-s0 --seed 0 \
        --sft-steps 8 --grpo-steps 30 --lr 1e-5
    # (2) from the quick start's full SFT, 8 prompts a step instead of 2 (the recipe's rate)
    OMP_NUM_THREADS=1 python benchmarks/grpo_reward_curve.py --out runs/wide-s0 --seed 0 \
        --sft-steps 36 --grpo-steps 10 --lr 3e-6 --grad-accum 4
    # (3) from the quick start's full SFT, run long at a higher rate
    OMP_NUM_THREADS=1 python benchmarks/grpo_reward_curve.py --out runs/long-s0 --seed 0 \
        --sft-steps 36 --grpo-steps 30 --lr 1e-5
    # the tables (and a plot) from finished runs
    python benchmarks/grpo_reward_curve.py --analyze runs/curve-s0 runs/curve-s1 [--plot curve.png]
    # and what GRPO did to the label margin: a shift of the threshold, or the ranking (~1 min a model, cached)
    OMP_NUM_THREADS=1 python benchmarks/grpo_reward_curve.py --analyze runs/wide-s0 --margins

Why these settings: from the quick start's full SFT every rollout is format-valid, the policy's entropy is ~0.1
nats a token, a third of the GRPO groups have no reward spread and the per-step reward is the noise of which
two prompts were drawn (BENCHMARKS.md, real-data experiment round 2). (1) A few SFT steps in, sampled rollouts
write the answer block only some of the time: the format gate splits each group into 0-reward and rewarded
rollouts, the signal GRPO is built to use, so the curve says whether the trainer turns reward into policy
change. (2) Asks whether averaging each update over more prompts lets GRPO move the safe/unsafe label of a
trained guard without the one-label drift seen with 2 prompts a step; (3) whether more, larger steps from the
trained guard change what it knows about the prompts (``--margins`` tells that from a shift of its threshold).

A run is ``proguard.train.quickstart.run_quickstart`` with ``sft.max_steps``, ``grpo.max_steps``,
``grpo.learning_rate`` and ``grpo.gradient_accumulation_steps`` overridden (its held-out table scores the base
model, the SFT and the GRPO model, greedy). ``--analyze`` reads finished runs and prints, per run: the mean
reward, format-valid rate and entropy of the first and last third of the GRPO steps, with the differences' 95%
bootstrap intervals (steps resampled within each third: each step draws its own prompts); and, per run and
pooled, GRPO's held-out request accuracy, format-valid rate and share of prompts called unsafe minus the SFT's,
paired over the same prompts.

``--margins`` also reads each model's label margin, ``log p(" unsafe") - log p(" safe")`` at the label position
of the template critique (``benchmarks/label_probe.py``), on the dev and held-out prompts (cached in the run
folder's ``label_margins.json``), and reports GRPO minus SFT: the mean margin shift on unsafe and on safe held-out
prompts (a shift of the same size on both moves the threshold and leaves the ranking), the ROC AUC (the ranking),
the request accuracy with each model's threshold refitted on the dev split (what the ranking is worth once
the threshold is set on prompts neither model trained on), and the GRPO model's accuracy with its margins moved
back by their mean shift on the dev prompts (labels not used: the SFT's threshold with GRPO's ranking).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Sequence
from pathlib import Path

CURVE_KEYS = ("reward", "format/valid_rate", "reward_std", "frac_reward_zero_std", "entropy",
              "completions/mean_length", "reward/binary/mean")


def run(args: argparse.Namespace) -> Path:
    """One quick start with the early SFT checkpoint and the longer GRPO run."""
    from proguard.train.quickstart import run_quickstart

    out = Path(args.out)
    result = run_quickstart(
        out=out, seed=args.seed, data_root=args.data_root,
        sft_overrides=[f"sft.max_steps={args.sft_steps}", f"checkpoint.save_steps={args.sft_steps}"],
        grpo_overrides=[f"grpo.max_steps={args.grpo_steps}", f"checkpoint.save_steps={args.grpo_steps}",
                        f"grpo.learning_rate={args.lr}", f"grpo.gradient_accumulation_steps={args.grad_accum}",
                        *([] if args.beta is None else [f"grpo.beta={args.beta}"])])
    print(result.table(), flush=True)
    (out / "curve_args.json").write_text(json.dumps(
        {"seed": args.seed, "sft_steps": args.sft_steps, "grpo_steps": args.grpo_steps, "lr": args.lr,
         "prompts_per_step": 2 * args.grad_accum, "beta": args.beta}) + "\n",
        encoding="utf-8")
    return out


def curve(run_dir: Path) -> list[dict]:
    """Per-step GRPO log rows of one run (``grpo/metrics.jsonl``)."""
    path = run_dir / "grpo" / "metrics.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [{"step": r["step"], **{k: r.get(k) for k in CURVE_KEYS}} for r in rows if "reward" in r]


def thirds(values: Sequence[float]) -> tuple[list[float], list[float]]:
    """The first and last third of a run's per-step values."""
    k = max(1, len(values) // 3)
    return list(values[:k]), list(values[-k:])


def third_gain(values: Sequence[float], resamples: int, seed: int = 0) -> dict:
    """Mean of the last third minus the first third, with a 95% percentile interval (steps resampled with
    replacement within each third)."""
    first, last = thirds(values)
    rng = random.Random(seed)

    def mean(xs):
        return sum(xs) / len(xs)

    draws = sorted(mean([rng.choice(last) for _ in last]) - mean([rng.choice(first) for _ in first])
                   for _ in range(resamples))
    return {"first": mean(first), "last": mean(last), "gain": mean(last) - mean(first),
            "low": draws[int(0.025 * (resamples - 1))], "high": draws[int(0.975 * (resamples - 1))],
            "steps_per_third": len(first)}


def held_out(run_dir: Path, model: str) -> dict[str, tuple[bool, bool, bool, bool]]:
    """task ID -> (truly unsafe, request label right, format-valid, called unsafe) of one model's held-out answers;
    a malformed answer is wrong, as ``proguard bench`` scores it, and calls nothing unsafe."""
    out = {}
    path = run_dir / "eval" / model / "predictions.jsonl"
    for line in path.read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        parsed = r.get("parsed") or {}
        unsafe = r["truth"]["request"] == "unsafe"
        ok = bool(parsed.get("ok"))
        said_unsafe = ok and parsed.get("request") == "unsafe"
        out[r["task_id"]] = (unsafe, ok and said_unsafe == unsafe, ok, said_unsafe)
    return out


def analyze(runs: Sequence[Path], resamples: int, plot: Path | None) -> str:
    """Markdown: the reward curve summary per run and the held-out GRPO-minus-SFT differences, per run and pooled."""
    from proguard.bench.bootstrap import paired_difference

    lines = ["| run | seed | SFT steps | GRPO steps x prompts, lr | reward: first third -> last third | gain [95% CI] | "
             "format-valid: first -> last | gain [95% CI] | zero-spread groups | entropy: first -> last |",
             "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    curves, pooled = {}, {"sft": [], "grpo": [], "groups": []}
    held_lines = ["| run | held-out prompts | request acc SFT -> GRPO | GRPO - SFT [95% CI] | "
                  "format-valid SFT -> GRPO | GRPO - SFT [95% CI] | called unsafe SFT -> GRPO | GRPO - SFT [95% CI] |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for run_dir in runs:
        meta = json.loads((run_dir / "curve_args.json").read_text(encoding="utf-8"))
        rows = curve(run_dir)
        curves[f"seed {meta['seed']}"] = rows
        r = third_gain([x["reward"] for x in rows], resamples)
        f = third_gain([x["format/valid_rate"] for x in rows], resamples)
        zero = sum(x["frac_reward_zero_std"] or 0 for x in rows) / len(rows)
        ent_first, ent_last = (sum(x["entropy"] or 0 for x in part) / len(part)
                               for part in thirds(rows))
        lines.append(f"| {run_dir.name} | {meta['seed']} | {meta['sft_steps']} | "
                     f"{meta['grpo_steps']} x {meta.get('prompts_per_step', 2)}, {meta['lr']}"
                     f"{'' if meta.get('beta') is None else ', beta ' + str(meta['beta'])} | "
                     f"{r['first']:.3f} -> {r['last']:.3f} | {r['gain']:+.3f} [{r['low']:+.3f}, {r['high']:+.3f}] | "
                     f"{f['first']:.3f} -> {f['last']:.3f} | {f['gain']:+.3f} [{f['low']:+.3f}, {f['high']:+.3f}] | "
                     f"{zero:.2f} | {ent_first:.3f} -> {ent_last:.3f} |")
        sft, grpo = held_out(run_dir, "sft"), held_out(run_dir, "grpo")
        if sorted(sft) != sorted(grpo):
            raise SystemExit(f"{run_dir}: sft and grpo were scored on different prompts")
        ids = sorted(sft)
        a, b = [sft[i] for i in ids], [grpo[i] for i in ids]
        pooled["sft"] += a
        pooled["grpo"] += b
        pooled["groups"] += [(_prompt_key(run_dir), i) for i in ids]  # one seed: the same prompts
        held_lines.append(_held_row(run_dir.name, a, b, ids, resamples, paired_difference))
    if len(runs) > 1:
        held_lines.append(_held_row("pooled", pooled["sft"], pooled["grpo"], pooled["groups"], resamples,
                                    paired_difference))
    if plot is not None:
        plot_curves(plot, curves)
    return "\n".join(["**GRPO reward per step** (means of the first and last third of the steps)\n", *lines, "",
                      "**Held-out (the quick start's 64 prompts), GRPO minus the SFT it started from**\n", *held_lines])


def _rate(i: int):
    def stat(rows):
        return sum(r[i] for r in rows) / len(rows) if rows else None
    return stat


def _held_row(name, a, b, groups, resamples, paired_difference) -> str:
    cells = []
    for i in (1, 2, 3):  # request label right, format-valid, called unsafe
        stat = _rate(i)
        iv = paired_difference(a, b, groups, stat, n_resamples=resamples, seed=0)
        cells += [f"{stat(a):.3f} -> {stat(b):.3f}", f"{iv.point:+.3f} [{iv.low:+.3f}, {iv.high:+.3f}]"]
    return f"| {name} | {len(a)} | " + " | ".join(cells) + " |"


MARGIN_FILE = "label_margins.json"
MARGIN_SPLITS = ("dev", "eval_id", "eval_ood")


def label_margins(run_dir: Path) -> dict[str, dict[str, list[tuple[str, float]]]]:
    """model (sft, grpo) -> split -> (request label, margin) per row, in the split's order; computed once per run
    (one forward pass a prompt) and cached in ``label_margins.json``."""
    path = run_dir / MARGIN_FILE
    if path.is_file():
        cached = json.loads(path.read_text(encoding="utf-8"))
        return {m: {s: [tuple(r) for r in rows] for s, rows in splits.items()} for m, splits in cached.items()}
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from label_probe import margins  # benchmarks/ is on sys.path when this script runs

    torch.set_num_threads(1)
    tasks = datasets.load_from_disk(str(run_dir / "data" / "tasks"))
    out: dict[str, dict[str, list[tuple[str, float]]]] = {}
    for model in ("sft", "grpo"):
        folder = run_dir / model / "final"
        tok = AutoTokenizer.from_pretrained(folder)
        net = AutoModelForCausalLM.from_pretrained(folder).eval()
        out[model] = {s: margins(tok, net, list(tasks[s])) for s in MARGIN_SPLITS if s in tasks}
    path.write_text(json.dumps(out) + "\n", encoding="utf-8")
    return out


def _auc(rows: Sequence[tuple[str, float]]) -> float | None:
    from label_probe import auc  # benchmarks/ is on sys.path when this script runs

    return auc([m for label, m in rows if label == "unsafe"], [m for label, m in rows if label == "safe"])


def _shift(label: str):
    def stat(rows):  # rows: (label, sft margin, grpo margin)
        xs = [b - a for lab, a, b in rows if lab == label]
        return sum(xs) / len(xs) if xs else None
    return stat


def _one_interval(rows, groups, stat, resamples):
    from proguard.bench.bootstrap import group_bootstrap
    return group_bootstrap(rows, groups, {"stat": stat}, n_resamples=resamples, seed=0)["stat"]


def margin_rows(run_dir: Path, resamples: int) -> tuple[str, list, list]:
    """One markdown row of ``--margins`` for a run, and its held-out (label, sft margin, grpo margin) rows and
    dev-threshold (label, sft right, grpo right) rows for the pooled row."""
    from proguard.bench.bootstrap import paired_difference
    from proguard.bench.label_bias import fit_label_bias

    m = label_margins(run_dir)
    held = {model: [r for s in ("eval_id", "eval_ood") for r in m[model].get(s, [])] for model in ("sft", "grpo")}
    if [lab for lab, _ in held["sft"]] != [lab for lab, _ in held["grpo"]] or not held["sft"]:
        raise SystemExit(f"{run_dir / MARGIN_FILE}: sft and grpo margins are not on the same held-out prompts")
    rows = [(lab, a, b) for (lab, a), (_, b) in zip(held["sft"], held["grpo"], strict=True)]
    groups = list(range(len(rows)))
    cells = []
    for label in ("unsafe", "safe"):
        stat = _shift(label)
        iv = _one_interval(rows, groups, stat, resamples)
        cells.append(f"{iv.point:+.2f} [{iv.low:+.2f}, {iv.high:+.2f}]" if iv.point is not None else "-")
    sft_rows, grpo_rows = [(lab, a) for lab, a, _ in rows], [(lab, b) for lab, _, b in rows]
    iv = paired_difference(sft_rows, grpo_rows, groups, _auc, n_resamples=resamples, seed=0)
    a_sft, a_grpo = _auc(sft_rows), _auc(grpo_rows)
    cells.append("-" if iv.point is None else
                 f"{a_sft:.3f} -> {a_grpo:.3f} | {iv.point:+.3f} [{iv.low:+.3f}, {iv.high:+.3f}]")
    right = []
    for model in ("sft", "grpo"):
        bias = fit_label_bias(m[model]["dev"], fitted_on="dev").bias if m[model].get("dev") else 0.0
        right.append([(lab, (x + bias > 0) == (lab == "unsafe")) for lab, x in held[model]])
    dev_rows = [(lab, a, b) for (lab, a), (_, b) in zip(*right, strict=True)]
    cells.append(_dev_cell(dev_rows, groups, resamples, paired_difference))
    # the GRPO margins moved back by their mean shift on the dev prompts (no labels needed): the SFT's own
    # threshold, with GRPO's ranking
    anchor = _mean([x for _, x in m["sft"].get("dev", [])]) - _mean([x for _, x in m["grpo"].get("dev", [])]) \
        if m["sft"].get("dev") and m["grpo"].get("dev") else 0.0
    anchored = [(lab, (x > 0) == (lab == "unsafe"), (y + anchor > 0) == (lab == "unsafe")) for lab, x, y in rows]
    cells.append(f"{anchor:+.2f} | " + _dev_cell(anchored, groups, resamples, paired_difference))
    return f"| {run_dir.name} | {len(rows)} | " + " | ".join(cells) + " |", rows, dev_rows, anchored


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs)


def _dev_cell(dev_rows, groups, resamples, paired_difference) -> str:
    def acc(rows):
        return sum(r for _, r in rows) / len(rows) if rows else None
    a, b = [(lab, x) for lab, x, _ in dev_rows], [(lab, y) for lab, _, y in dev_rows]
    iv = paired_difference(a, b, groups, acc, n_resamples=resamples, seed=0)
    return f"{acc(a):.3f} -> {acc(b):.3f} | {iv.point:+.3f} [{iv.low:+.3f}, {iv.high:+.3f}]"


def _prompt_key(run_dir: Path) -> str:
    """Runs of one seed score the same held-out prompts: pooled rows are resampled by (seed, prompt), so a prompt
    brings all its runs along and two runs from one seed's SFT do not count as independent evidence."""
    args = run_dir / "curve_args.json"
    return f"seed {json.loads(args.read_text(encoding='utf-8'))['seed']}" if args.is_file() else run_dir.name


def _mean_auc(rows) -> float | None:
    """Mean over runs of each run's AUC; rows: (run, label, margin)."""
    runs: dict[str, list[tuple[str, float]]] = {}
    for run, label, m in rows:
        runs.setdefault(run, []).append((label, m))
    aucs = [a for a in (_auc(r) for r in runs.values()) if a is not None]
    return sum(aucs) / len(aucs) if aucs else None


def analyze_margins(runs: Sequence[Path], resamples: int) -> str:
    """Markdown: per run (and pooled) the label-margin shift, the AUC and the dev-threshold accuracy, GRPO - SFT."""
    from proguard.bench.bootstrap import paired_difference

    lines = ["| run | held-out prompts | margin shift, unsafe prompts [95% CI] | margin shift, safe prompts [95% CI] | "
             "AUC SFT -> GRPO | GRPO - SFT [95% CI] | request acc, dev threshold, SFT -> GRPO | GRPO - SFT [95% CI] | "
             "GRPO bias anchored on dev | request acc, SFT -> GRPO anchored | GRPO - SFT [95% CI] |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    pooled_rows, pooled_dev, pooled_groups, tagged, pooled_anchored = [], [], [], [], []
    for run_dir in runs:
        line, rows, dev_rows, anchored = margin_rows(run_dir, resamples)
        pooled_anchored += anchored
        lines.append(line)
        pooled_rows += rows
        pooled_dev += dev_rows
        pooled_groups += [(_prompt_key(run_dir), i) for i in range(len(rows))]
        tagged += [(run_dir.name, *r) for r in rows]
    if len(runs) > 1:
        cells = []
        for label in ("unsafe", "safe"):
            iv = _one_interval(pooled_rows, pooled_groups, _shift(label), resamples)
            cells.append(f"{iv.point:+.2f} [{iv.low:+.2f}, {iv.high:+.2f}]")
        a = [(run, lab, x) for run, lab, x, _ in tagged]
        b = [(run, lab, y) for run, lab, _, y in tagged]
        iv = paired_difference(a, b, pooled_groups, _mean_auc, n_resamples=resamples, seed=0)
        cells.append(f"{_mean_auc(a):.3f} -> {_mean_auc(b):.3f} (mean of runs) | "
                     f"{iv.point:+.3f} [{iv.low:+.3f}, {iv.high:+.3f}]")
        cells.append(_dev_cell(pooled_dev, pooled_groups, resamples, paired_difference))
        cells.append("(per run) | " + _dev_cell(pooled_anchored, pooled_groups, resamples, paired_difference))
        lines.append(f"| pooled | {len(pooled_rows)} | " + " | ".join(cells) + " |")
    return "\n".join(["**Label margin on the held-out prompts, GRPO minus the SFT it started from** (pooled: "
                      "resampled by seed and prompt)\n", *lines])


def plot_curves(path: Path, curves: dict[str, list[dict]]) -> None:
    """Reward and format-valid rate per GRPO step (points) with a 5-step moving mean (line), one colour per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for i, (name, rows) in enumerate(curves.items()):
        steps = [r["step"] for r in rows]
        for ax, key in zip(axes, ("reward", "format/valid_rate"), strict=True):
            ys = [r[key] for r in rows]
            ax.plot(steps, ys, ".", color=f"C{i}", alpha=0.5)
            ax.plot(steps, [sum(ys[max(0, j - 4) : j + 1]) / len(ys[max(0, j - 4) : j + 1]) for j in range(len(ys))],
                    "-", color=f"C{i}", label=name)
    axes[0].set_title("GRPO mean reward per step")
    axes[1].set_title("format-valid rate of the rollouts")
    for ax in axes:
        ax.set_xlabel("GRPO step")
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", help="new run folder (a proguard quickstart --out)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-root", default=None, help="Do-Not-Answer + XSTest root (default: the quick start's)")
    p.add_argument("--sft-steps", type=int, default=8, help="SFT steps before GRPO (the quick start: 36)")
    p.add_argument("--grpo-steps", type=int, default=30, help="GRPO steps (the quick start: 4)")
    p.add_argument("--lr", type=float, default=1e-5, help="GRPO learning rate (the quick start: 3e-6)")
    p.add_argument("--grad-accum", type=int, default=1,
                   help="micro-batches of 2 prompts x 4 rollouts per GRPO step (the quick start: 1)")
    p.add_argument("--beta", type=float, default=None,
                   help="KL coefficient to the SFT model (the recipe: 0.0; > 0 loads a reference model)")
    p.add_argument("--analyze", nargs="+", type=Path, help="finished run folders: print the tables only")
    p.add_argument("--plot", type=Path, default=None, help="write the reward curves here (png)")
    p.add_argument("--resamples", type=int, default=2000)
    p.add_argument("--margins", action="store_true",
                   help="also the label-margin shift, AUC and dev-threshold accuracy, GRPO - SFT (loads both models "
                        "once per run; cached in the run folder)")
    args = p.parse_args(argv)
    if not args.analyze and not args.out:
        p.error("pass --out NEW_DIR to run, or --analyze RUN [RUN ...]")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    runs = args.analyze or [run(args)]
    print(analyze(runs, args.resamples, args.plot))
    if args.margins:
        print("\n" + analyze_margins(runs, args.resamples))
    return 0


if __name__ == "__main__":
    sys.exit(main())
