"""Benchmark the held-out-category task generator on ProGuard-sized synthetic data (87,000 samples).

Run from the project root:

    python benchmarks/bench_tasks.py                  # 87,000 samples, the default taxonomy
    python benchmarks/bench_tasks.py --n 20000 --taxonomy ../shared/reference/proguard_taxonomy.yaml

Writes mixed-modality synthetic samples (a third each of text, image and text+image; images are four
small PNG files shared by all rows) to a temporary JSONL file, then times each phase in a fresh
subprocess, so that each phase's peak memory (``ru_maxrss``) is its own:

- ``load (datasets)``: ``datasets.Dataset.from_json`` of the file, the baseline the target refers to;
- ``load_samples``: the project's validated loader (``proguard.data.load_samples``), for reference;
- ``default_tasks``: one plain task per sample (nothing hidden, no shuffle);
- ``build_tasks (proactive)``: 2 held-out categories, 25% random hiding, own category hidden with
  p=0.3, IDs shuffled per task, the leak check included;
- ``save_to_disk``: writing the proactive splits (images embedded by ``datasets``).

Prints the command line, the machine's load average and a Markdown table. Timings taken while other
jobs share the CPU are inflated: compare runs on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = (
    "please explain how someone could quickly get around the rules about money weapons data software chemicals "
    "account password image photo story people city bank system online private plan build make find share write "
    "without anyone noticing safely legally step by step detailed guide for a school project my friend asked"
).split()

PHASES = ("load (datasets)", "load_samples", "default_tasks", "build_tasks (proactive)", "save_to_disk")


def make_samples(path: Path, n: int, taxonomy: str, seed: int = 0) -> None:
    """Write ``n`` synthetic samples (mixed modalities, ~half unsafe) and four shared PNG images."""
    from PIL import Image, ImageDraw

    from taxonomy import load_taxonomy

    tax = load_taxonomy(taxonomy)
    leaves = [n.id for n in tax.leaves()]
    images = []
    for k, colour in enumerate(["red", "green", "blue", "black"]):
        img = Image.new("RGB", (64, 64), "white")
        ImageDraw.Draw(img).ellipse((8 + k, 8, 56, 56 - k), fill=colour)
        name = f"img{k}.png"
        img.save(path.parent / name)
        images.append(name)
    rng = random.Random(seed)

    def text(k: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(k)).capitalize() + "."

    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            modality = ("text", "image", "text_image")[i % 3]
            unsafe = rng.random() < 0.5
            row: dict = {"id": f"syn-{i:06d}", "modality": modality, "request_label": "unsafe" if unsafe else "safe"}
            if modality != "image":
                row["request"] = text(rng.randint(8, 40))
                if rng.random() < 0.7:
                    row["response"] = text(rng.randint(10, 60))
                    row["response_label"] = "unsafe" if unsafe and rng.random() < 0.5 else "safe"
            if modality != "text":
                row["image"] = rng.choice(images)
            if unsafe:
                row["category"] = rng.choice(leaves)
            fh.write(json.dumps(row) + "\n")


def phase(name: str, data: str, taxonomy: str, scratch: str) -> dict:
    """Run one phase in this process and return its seconds and peak RSS (MiB)."""
    import datasets

    from proguard.data import load_samples
    from proguard.tasks import TaskConfig, build_tasks, default_tasks
    from taxonomy import load_taxonomy

    datasets.disable_progress_bars()
    tax = load_taxonomy(taxonomy)
    holdout = [c.id for c in tax.categories[:2]]
    config = TaskConfig(holdout=holdout, hide_fraction=0.25, own_category_hide_prob=0.3, shuffle_ids=True, seed=0)
    samples = None
    if name not in ("load (datasets)", "load_samples"):
        samples = load_samples(data, tax, check_images=False)
    tasks = build_tasks(samples, tax, config) if name == "save_to_disk" else None
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cpu0 = _cpu()
    start = time.perf_counter()
    extra: dict = {}
    if name == "load (datasets)":
        ds = datasets.Dataset.from_json(data, cache_dir=scratch)
        extra["rows"] = len(ds)
    elif name == "load_samples":
        extra["rows"] = len(load_samples(data, tax))
    elif name == "default_tasks":
        extra["rows"] = len(default_tasks(samples, tax))
    elif name == "build_tasks (proactive)":
        out = build_tasks(samples, tax, config)
        extra["rows"] = {k: len(v) for k, v in out.items()}
        extra["prompt_MB"] = round(sum(v.data.nbytes for v in out.values()) / 1e6)
    elif name == "save_to_disk":
        target = Path(scratch) / "tasks"
        tasks.save_to_disk(str(target))
        extra["disk_MB"] = round(sum(f.stat().st_size for f in target.rglob("*") if f.is_file()) / 1e6)
    seconds = time.perf_counter() - start
    cpu = _cpu() - cpu0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"phase": name, "seconds": round(seconds, 3), "cpu_s": round(cpu, 3), "peak_MiB": round(peak),
            "phase_MiB": round(peak - before), **extra}


def _cpu() -> float:
    """CPU seconds of this process, all threads (less sensitive than wall time to other jobs on the machine)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    """Generate the data once, run every phase in a fresh subprocess, print a Markdown table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=87_000)
    p.add_argument("--taxonomy", default="default")
    p.add_argument("--repeats", type=int, default=1, help="runs per phase; the fastest is reported")
    p.add_argument("--_phase", help=argparse.SUPPRESS)
    p.add_argument("--_data", help=argparse.SUPPRESS)
    p.add_argument("--_scratch", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._phase:
        print(json.dumps(phase(args._phase, args._data, args.taxonomy, args._scratch)))
        return
    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} (1 min)")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "samples.jsonl"
        t = time.perf_counter()
        make_samples(data, args.n, args.taxonomy)
        print(f"wrote {args.n} samples ({data.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t:.1f} s")
        results = []
        for name in PHASES:
            best = None
            for r in range(args.repeats):
                scratch = Path(tmp) / f"scratch-{len(results)}-{r}"
                cmd = [sys.executable, __file__, "--taxonomy", args.taxonomy, "--_phase", name, "--_data", str(data),
                       "--_scratch", str(scratch)]
                out = subprocess.run(cmd, check=True, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
                res = json.loads(out.stdout.strip().splitlines()[-1])
                best = res if best is None or res["seconds"] < best["seconds"] else best
            results.append(best)
            print(json.dumps(best), flush=True)
    base, base_cpu = results[0]["seconds"], results[0]["cpu_s"]
    print()
    print("| phase | seconds | x load (datasets) | CPU seconds | x load (CPU) | peak RSS MiB | RSS added MiB | notes |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    shown = ("phase", "seconds", "cpu_s", "peak_MiB", "phase_MiB")
    for r in results:
        notes = ", ".join(f"{k}={v}" for k, v in r.items() if k not in shown)
        print(f"| {r['phase']} | {r['seconds']:.2f} | {r['seconds'] / base:.2f} | {r['cpu_s']:.2f} | "
              f"{r['cpu_s'] / base_cpu:.2f} | {r['peak_MiB']} | {r['phase_MiB']} | {notes} |")


if __name__ == "__main__":
    main()
