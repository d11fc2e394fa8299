"""Benchmark one GRPO step of the tiny recipe and the share of it spent scoring rewards.

Run from the project root (under ``flock /tmp/bench.lock`` on a shared machine):

    python benchmarks/bench_train_step.py                           # CPU, the tiny recipe as shipped
    python benchmarks/bench_train_step.py --device cuda --bf16      # a CUDA GPU, bf16
    python benchmarks/bench_train_step.py --steps 8 grpo.num_generations=8   # recipe overrides

Runs ``recipes/tiny/grpo_cpu.yaml`` (the tiny in-process Qwen2.5-VL, bundled samples, the default
composite reward: format gate x (binary + category + OOD similarity)) in-process with
``proguard.train.train``, with ``CompositeReward.__call__`` and each component module wrapped in a
``time.perf_counter`` timer. Per step it reads TRL's ``step_time`` (generation, scoring, the
reference/old log-prob passes, forward and backward, optimizer) from ``metrics.jsonl`` and divides
the reward time of that step by it. A random policy never writes a valid answer, so each batch is
scored a second time with protocol-valid answers (free-text names on OOD rows run the sentence embedder);
that time is reported on its own ("share if valid") and taken out of the step time. Step 1 also pays one-off costs (the sentence embedder loads on
the first OOD batch), so the summary reports the median of steps 2..N and step 1 separately.

Prints the command line, the machine's load average and a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "tiny" / "grpo_cpu.yaml"


class Timers:
    """Seconds spent per reward call (the composite) and per component, in call order."""

    def __init__(self) -> None:
        self.calls: list[float] = []
        self.well_formed: list[float] = []  # the same batch re-scored with protocol-valid answers
        self.components: dict[str, list[float]] = defaultdict(list)
        self.valid_components: dict[str, list[float]] = defaultdict(list)
        self.ood_rows: list[int] = []
        self.recording = True


def instrument(timers: Timers) -> None:
    """Wrap ``CompositeReward.__call__`` and every component module it builds with timers."""
    from proguard import reward_compose

    original_call = reward_compose.CompositeReward.__call__
    original_init = reward_compose.CompositeReward.__init__

    def timed_call(self, prompts=None, completions=None, **kwargs):
        t0 = time.perf_counter()
        out = original_call(self, prompts=prompts, completions=completions, **kwargs)
        timers.calls.append(time.perf_counter() - t0)
        # A random policy never writes a valid answer, so every module short-cuts on the format error.
        # Re-score the batch with valid answers (free-text names on OOD rows, which run the embedder)
        # to bound what scoring costs once the policy follows the protocol; the result is discarded.
        columns = {k: v for k, v in kwargs.items() if k not in ("log_metric", "log_extra")}
        valid = well_formed_answers(columns, len(completions))
        timers.ood_rows.append(sum(bool(v) for v in columns.get("ood") or []))
        timers.recording = False
        t0 = time.perf_counter()
        original_call(self, prompts=prompts, completions=valid, **columns)
        timers.well_formed.append(time.perf_counter() - t0)
        timers.recording = True
        return out

    def timed_init(self, components, name="proguard"):
        wrapped = []
        for c in components:
            def module(parsed, targets, _m=c.module, _n=c.name):
                t0 = time.perf_counter()
                try:
                    return _m(parsed, targets)
                finally:
                    store = timers.components if timers.recording else timers.valid_components
                    store[_n].append(time.perf_counter() - t0)

            wrapped.append(reward_compose.Component(c.name, module, c.weight, c.gate))
        original_init(self, wrapped, name)

    reward_compose.CompositeReward.__call__ = timed_call
    reward_compose.CompositeReward.__init__ = timed_init


def well_formed_answers(columns: dict, n: int) -> list[str]:
    """A protocol-valid answer per row: the true labels, the prompt's ID, or a free-text name on OOD rows."""
    from proguard.protocol import format_answer
    from proguard.scoring.compose import targets_from_columns

    out = []
    for t in targets_from_columns(columns, n):
        category = None
        if t.ood:
            category = "dangerous harmful activity"
        elif t.unsafe:
            category = t.prompt_id(t.category)
        out.append(format_answer(t.modality, t.request_label, t.response_label, category))
    return out


def main() -> int:
    """Run the benchmark and print the table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=6, help="GRPO steps (default 6, as the recipe)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--bf16", action="store_true", help="bf16 weights and autocast (CUDA)")
    p.add_argument("--json", type=Path, help="also write the per-step numbers here")
    p.add_argument("overrides", nargs="*", help="recipe overrides, key=value")
    args = p.parse_args()

    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    from proguard.train.recipe import load_recipe
    from proguard.train import train

    timers = Timers()
    instrument(timers)
    out = Path(tempfile.mkdtemp(prefix="bench-train-"))
    overrides = [
        f"output_dir={out}",
        f"grpo.max_steps={args.steps}",
        f"checkpoint.save_steps={args.steps}",
        "logging.report_to=[none]",
        *(["grpo.bf16=true", "model.dtype=bfloat16"] if args.bf16 else []),
        *args.overrides,
    ]
    recipe = load_recipe(RECIPE, overrides)
    t0 = time.perf_counter()
    train(recipe)
    wall = time.perf_counter() - t0

    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "step_time" in r]
    if len(timers.calls) != len(rows):
        print(f"warning: {len(timers.calls)} reward calls for {len(rows)} steps", file=sys.stderr)
    steps = []
    for i, r in enumerate(rows):
        reward_s = timers.calls[i] if i < len(timers.calls) else float("nan")
        valid_s = timers.well_formed[i] if i < len(timers.well_formed) else float("nan")
        step_s = r["step_time"] - valid_s  # TRL's step time includes the extra, discarded scoring
        steps.append({"step": r["step"], "step_s": step_s, "reward_s": reward_s, "share": reward_s / step_s,
                      "valid_reward_s": valid_s, "valid_share": valid_s / (step_s - reward_s + valid_s),
                      "ood_rows": timers.ood_rows[i] if i < len(timers.ood_rows) else 0,
                      "valid_components_s": {n: ts[i] for n, ts in timers.valid_components.items() if i < len(ts)},
                      **{f"{n}_s": ts[i] for n, ts in timers.components.items() if i < len(ts)}})

    import torch

    device = torch.cuda.get_device_name(0) if args.device == "cuda" else f"CPU ({os.cpu_count()} cores)"
    later = steps[1:] or steps
    med = statistics.median
    print(f"command: python benchmarks/bench_train_step.py {' '.join(sys.argv[1:])}")
    print(f"device: {device}; torch {torch.__version__}; load average {os.getloadavg()}")
    print(f"recipe: {RECIPE.relative_to(ROOT)} + {' '.join(overrides[1:])}; wall {wall:.1f} s\n")
    print("| | step time (s) | reward scoring (s) | reward share | scoring valid answers (s) | share if valid |")
    print("| --- | --- | --- | --- | --- | --- |")
    for label, rows_ in ((f"step 1 (one-off loads)", steps[:1]), (f"median of steps 2-{len(steps)}", later)):
        print(f"| {label} | {med(s['step_s'] for s in rows_):.2f} | {med(s['reward_s'] for s in rows_):.4f} | "
              f"{med(s['share'] for s in rows_):.2%} | {med(s['valid_reward_s'] for s in rows_):.4f} | "
              f"{med(s['valid_share'] for s in rows_):.2%} |")
    ood = [s for s in later if s["ood_rows"]]
    if ood:
        print(f"| steps 2-{len(steps)} with OOD rows ({len(ood)}), mean | "
              f"{statistics.mean(s['step_s'] for s in ood):.2f} | {statistics.mean(s['reward_s'] for s in ood):.4f} | "
              f"{statistics.mean(s['share'] for s in ood):.2%} | {statistics.mean(s['valid_reward_s'] for s in ood):.4f} | "
              f"{statistics.mean(s['valid_share'] for s in ood):.2%} |")
    print("\nper step:")
    for s in steps:
        parts = ", ".join(f"{k[:-2]} {v * 1000:.1f} ms" for k, v in s.items() if k.endswith("_s")
                          and k not in ("step_s", "reward_s", "valid_reward_s", "valid_components_s"))
        valid_parts = ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in s["valid_components_s"].items())
        print(f"  step {s['step']} ({s['ood_rows']} OOD rows): {s['step_s']:.2f} s, reward {s['reward_s'] * 1000:.1f} ms "
              f"({s['share']:.2%}; {parts}); valid answers {s['valid_reward_s'] * 1000:.1f} ms "
              f"({s['valid_share']:.2%}; {valid_parts})")
    if args.json:
        args.json.write_text(json.dumps({"device": device, "steps": steps}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
