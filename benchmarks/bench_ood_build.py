"""Build cost of the OOD reward: what building the default reward (or the tiny GRPO trainer) costs, in one process.

Issue 22 measured that the trainer loaded the sentence-embedding model at build time, even when no
completion is ever scored by it. Time the whole process from outside (``/usr/bin/time -v`` gives its
CPU seconds and peak RSS) for each of:

    .venv/bin/python benchmarks/bench_ood_build.py reward     # build_reward("default")
    .venv/bin/python benchmarks/bench_ood_build.py trainer    # build_trainer(recipes/tiny/grpo_cpu.yaml)
    .venv/bin/python benchmarks/bench_ood_build.py imports    # the imports alone (the floor)
    .venv/bin/python benchmarks/bench_ood_build.py score      # build_reward("default") + one OOD batch scored

``score`` is the cost the first OOD batch pays now that the model loads on first use. The script
prints the in-process seconds of the step too. Use one torch thread (``OMP_NUM_THREADS=1``).

The per-batch ground truth (``targets_from_columns``), against another checkout's, in one process,
interleaved, on ``bench_rewards.py``'s 10,000 completions in batches of 256 whose rows repeat in
groups as in GRPO (``--group-size``); parse-only time of the same batches for scale:

    .venv/bin/python benchmarks/bench_ood_build.py ground-truth --against ../main --group-size 8
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("imports", "reward", "trainer", "score", "ground-truth"))
    ap.add_argument("--against", default=None, help="ground-truth: another checkout whose compose.py to time too")
    ap.add_argument("--group-size", type=int, default=8, help="ground-truth: rows per prompt (GRPO generations)")
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    if args.what == "ground-truth":
        return ground_truth(args)
    import torch

    torch.set_num_threads(1)
    from proguard.scoring.compose import build_reward

    t0 = time.perf_counter()
    if args.what == "reward":
        build_reward("default")
    elif args.what == "score":
        reward = build_reward("default")
        ok = "<think>\nx\n</think>\n<answer>\nRequest: unsafe\nResponse: None\nCategory: homemade firearms\n</answer>"
        out = reward(prompts=[None], completions=[ok], modality=["text"], request_label=["unsafe"],
                     category=["C8S1"], ood=[True], ood_name=["Weapons"])
        assert out[0] > 0.0, out
    elif args.what == "trainer":
        from proguard.train.recipe import load_recipe
        from proguard.train.run import build_trainer

        with tempfile.TemporaryDirectory() as tmp:
            build_trainer(load_recipe(ROOT / "recipes" / "tiny" / "grpo_cpu.yaml", [f"output_dir={tmp}"]))
    print(f"{args.what}: {time.perf_counter() - t0:.2f} s in process")
    return 0


def ground_truth(args: argparse.Namespace) -> int:
    """Time ``targets_from_columns`` (this checkout's and, with ``--against``, another's) and parsing."""
    import importlib.util
    import statistics

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_rewards import make_batch

    from proguard.scoring.compose import parse_batch, targets_from_columns

    versions = {"this checkout": targets_from_columns}
    if args.against:
        path = Path(args.against) / "proguard" / "scoring" / "compose.py"
        spec = importlib.util.spec_from_file_location("compose_against", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["compose_against"] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
        versions[f"{args.against}"] = module.targets_from_columns
    n, size, g = 10_000, 256, args.group_size
    completions, cols, _ = make_batch(n)
    cols = {k: [v[i - i % g] for i in range(n)] for k, v in cols.items()}
    batches = [({k: v[a : a + size] for k, v in cols.items()}, completions[a : a + size], min(size, n - a))
               for a in range(0, n, size)]
    times: dict[str, list[float]] = {k: [] for k in (*versions, "parse only")}
    for _ in range(args.repeats):
        for label, fn in versions.items():
            t0 = time.perf_counter()
            for c, _, m in batches:
                fn(c, m)
            times[label].append(time.perf_counter() - t0)
        targets = [targets_from_columns(c, m) for c, _, m in batches]
        t0 = time.perf_counter()
        for (_, comp, _), ts in zip(batches, targets, strict=True):
            parse_batch(comp, ts)
        times["parse only"].append(time.perf_counter() - t0)
    print(f"ground truth, {n} rows in batches of {size}, groups of {g}; median of {args.repeats} (s):")
    for label, ts in times.items():
        print(f"  {label:<40} {statistics.median(ts):.3f}")
    if args.against:
        this, other = times["this checkout"], times[args.against]
        print(f"  this / {args.against}: median of paired ratios "
              f"{statistics.median([a / b for a, b in zip(this, other, strict=True)]):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
