"""Benchmark guard inference throughput: the tiny Qwen2.5-VL through ``proguard bench``'s transformers
backend on the bundled sample tasks (36 tasks: 12 text, 12 image, 12 text+image).

Each configuration runs ``run_bench`` into a fresh output folder (so nothing comes from the
generation cache), after a one-batch warm-up that is not timed. It reports the benchmark's own
timing metrics: throughput (samples per second of generation wall time) and latency per request
(a batch's wall time), overall and per modality. The tiny model is random: its completions are
garbage of up to ``--max-new-tokens`` tokens (length varies by prompt), so the numbers measure the
pipeline (prompt rendering, image processing, batched ``generate``, parsing), not a real guard.

Run from the project root (prints its own command line, the machine and its load):

    .venv/bin/python benchmarks/bench_guard_throughput.py                      # CPU, batch 1 and 8
    .venv/bin/python benchmarks/bench_guard_throughput.py --device cuda --batch-sizes 1,8,32
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from proguard.bench.backends import GenerationSettings, TransformersBackend  # noqa: E402
from proguard.bench.runner import BenchConfig, run_bench  # noqa: E402
from proguard.data import BUNDLED_SAMPLES, load_samples  # noqa: E402
from proguard.tasks import default_tasks  # noqa: E402
from proguard.models.tiny_vlm import tiny_vlm_path  # noqa: E402
from taxonomy import load_taxonomy  # noqa: E402


def measure(tasks, model: str, device: str, batch_size: int, max_new_tokens: int) -> dict:
    """One timed benchmark run (after an untimed warm-up batch) and its timing metrics."""
    settings = GenerationSettings(max_new_tokens=max_new_tokens)
    backend = TransformersBackend(model, settings, device=device)
    t0 = time.perf_counter()
    backend.prepare()
    load_s = time.perf_counter() - t0
    warm = [(tasks[i]["prompt"], tasks[i].get("image")) for i in range(min(batch_size, len(tasks)))]
    backend.generate(warm)  # first-call costs (kernels, allocator) are not throughput
    config = BenchConfig(batch_size=batch_size, progress=False, plots=False)
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        result = run_bench(tasks, backend, out, config)
        total_s = time.perf_counter() - t0
    per_mod = {}
    for mod in ("text", "image", "text_image"):
        recs = [r for r in result.records if r.target.modality == mod]
        share = sum(r.time_share_s or 0.0 for r in recs)
        lat = [r.latency_s for r in recs if r.latency_s is not None]
        per_mod[mod] = {"n": len(recs), "samples_per_s": len(recs) / share if share else None,
                        "latency_mean_s": sum(lat) / len(lat) if lat else None}
    tm = result.metrics["timing"]
    return {
        "batch_size": batch_size,
        "n": result.metrics["n"],
        "generated": result.generated,
        "model_load_s": load_s,
        "bench_total_s": total_s,
        "generation_wall_s": tm["generation_wall_s"],
        "samples_per_s": tm["throughput_samples_per_s"],
        "latency_mean_s": tm["latency_mean_s"],
        "latency_p50_s": tm["latency_p50_s"],
        "latency_p95_s": tm["latency_p95_s"],
        "per_modality": per_mod,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    ap.add_argument("--batch-sizes", default="1,8", help="comma-separated (default 1,8)")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--model", default=None, help="checkpoint (default: the tiny in-process Qwen2.5-VL)")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)

    model = args.model or str(tiny_vlm_path())
    gpu = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None
    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} with "
          f"{torch.get_num_threads()} threads, device {args.device}{f' ({gpu})' if gpu else ''}, "
          f"load average {tuple(round(x, 2) for x in os.getloadavg())}")
    tax = load_taxonomy("default")
    tasks = default_tasks(load_samples(BUNDLED_SAMPLES, tax), tax)
    print(f"model {model}; {len(tasks)} bundled sample tasks; max_new_tokens {args.max_new_tokens}, greedy")

    rows = [measure(tasks, model, args.device, int(b), args.max_new_tokens) for b in args.batch_sizes.split(",")]
    print()
    print("| device | batch | samples | samples/s | latency mean (s/request) | latency p95 | "
          "text / image / text+image samples/s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        mods = " / ".join(f"{r['per_modality'][m]['samples_per_s']:.2f}" for m in ("text", "image", "text_image"))
        print(f"| {args.device} | {r['batch_size']} | {r['n']} | {r['samples_per_s']:.2f} | "
              f"{r['latency_mean_s']:.3f} | {r['latency_p95_s']:.3f} | {mods} |")
    print(f"\nload average after: {tuple(round(x, 2) for x in os.getloadavg())}")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": args.device, "rows": rows}, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
