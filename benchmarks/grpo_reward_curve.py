"""Does GRPO learn from its reward? The quick start's task and recipes with GRPO run longer: its reward per step,
and what the GRPO model does on the quick start's 64 held-out prompts next to the SFT model it started from.

    # (1) from an early SFT checkpoint (8 of the quick start's 36 steps): the answer format half learnt
    OMP_NUM_THREADS=1 python benchmarks/grpo_reward_curve.py --out runs/curve-s0 --seed 0 \
        --sft-steps 8 --grpo-steps 30 --lr 1e-5
    # (2) from the quick start's full SFT, 8 prompts a step instead of 2 (the recipe's rate)
    OMP_NUM_THREADS=1 python benchmarks/grpo_reward_curve.py --out runs/wide-s0 --seed 0 \
        --sft-steps 36 --grpo-steps 10 --lr 3e-6 --grad-accum 4
    # the tables (and a plot) from finished runs
    python benchmarks/grpo_reward_curve.py --analyze runs/curve-s0 runs/curve-s1 [--plot curve.png]

Why two settings: from the quick start's full SFT every rollout is format-valid, the policy's entropy is ~0.1
nats a token, a third of the GRPO groups have no reward spread and the per-step reward is the noise of which
two prompts were drawn (BENCHMARKS.md, real-data experiment round 2). (1) A few SFT steps in, sampled rollouts
write the answer block only some of the time: the format gate splits each group into 0-reward and rewarded
rollouts, the signal GRPO is built to use, so the curve says whether the trainer turns reward into policy
change. (2) Asks whether averaging each update over more prompts lets GRPO move the safe/unsafe label of a
trained guard without the one-label drift seen with 2 prompts a step.

A run is ``proguard.train.quickstart.run_quickstart`` with ``sft.max_steps``, ``grpo.max_steps``,
``grpo.learning_rate`` and ``grpo.gradient_accumulation_steps`` overridden (its held-out table scores the base
model, the SFT and the GRPO model, greedy). ``--analyze`` reads finished runs and prints, per run: the mean
reward, format-valid rate and entropy of the first and last third of the GRPO steps, with the differences' 95%
bootstrap intervals (steps resampled within each third: each step draws its own prompts); and, per run and
pooled, GRPO's held-out request accuracy, format-valid rate and share of prompts called unsafe minus the SFT's,
paired over the same prompts.
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
        pooled["groups"] += [(run_dir.name, i) for i in ids]
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
    args = p.parse_args(argv)
    if not args.analyze and not args.out:
        p.error("pass --out NEW_DIR to run, or --analyze RUN [RUN ...]")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    runs = args.analyze or [run(args)]
    print(analyze(runs, args.resamples, args.plot))
    return 0


if __name__ == "__main__":
    sys.exit(main())
