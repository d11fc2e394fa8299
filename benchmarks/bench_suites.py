"""Benchmark the public-benchmark path: adapter load time per 10,000 rows, task building, and suite
throughput of the tiny Qwen2.5-VL through ``proguard bench --suite``.

Load: each adapter reads a synthetic file of ``--rows`` rows written in its upstream format (CSV with
CRLF, gzip JSON lines with nested dicts, JSON lines, parquet) into a temporary data root, plus the real
Do-Not-Answer and XSTest copies when present; the median of ``--repeats`` loads is reported as seconds
per 10,000 rows, and ``to_tasks`` (prompt rows for ``run_bench``) likewise. Throughput: ``run_suites``
with the tiny random model (transformers backend, greedy, ``--max-new-tokens``) on the test fixtures and
the real XSTest, ``--limit`` tasks per benchmark; the model is random, so this measures the pipeline.

    .venv/bin/python benchmarks/bench_suites.py                 # load + throughput
    .venv/bin/python benchmarks/bench_suites.py --no-throughput --rows 100000
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from proguard.suites import default_registry, load_map  # noqa: E402
from proguard.suites.rows import category_targets, to_tasks  # noqa: E402
from taxonomy import load_taxonomy  # noqa: E402

REFERENCE = Path(os.environ.get("PROGUARD_REFERENCE_DIR") or ROOT.parent / "shared" / "reference")
FIXTURES = ROOT / "tests" / "fixtures" / "suites"


def write_synthetic(root: Path, n: int) -> None:
    """``n`` rows per benchmark, in each release's own format."""
    (root / "toxicchat").mkdir(parents=True)
    with (root / "toxicchat" / "toxic-chat_annotation_test.csv").open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\r\n")
        w.writerow(["conv_id", "user_input", "model_output", "human_annotation", "toxicity", "jailbreaking", "openai_moderation"])
        w.writerows([f"c{i}", f"user prompt number {i}\nwith a second line", "reply", "False", i % 2, 0, "[]"] for i in range(n))
    (root / "openai_moderation").mkdir()
    flags = ("S", "H", "V", "HR", "SH", "S3", "H2", "V2")
    with gzip.open(root / "openai_moderation" / "samples-1680.jsonl.gz", "wt") as fh:
        for i in range(n):
            fh.write(json.dumps({"prompt": f"prompt {i}", **{k: int(i % 9 == j) for j, k in enumerate(flags)}}) + "\n")
    (root / "beavertails").mkdir()
    cats = [c for c in load_map(default_registry().get("beavertails").map_path()).mapping]
    with gzip.open(root / "beavertails" / "test.jsonl.gz", "wt") as fh:
        for i in range(n):
            fh.write(json.dumps({"prompt": f"q {i // 3}", "response": f"a {i}", "category": {c: c == cats[i % 14] for c in cats},
                                 "is_safe": i % 2 == 0}) + "\n")
    (root / "aegis2").mkdir()
    with (root / "aegis2" / "test.json").open("w") as fh:
        for i in range(n):
            fh.write(json.dumps({"id": str(i), "prompt": f"p {i}", "response": f"r {i}" if i % 2 else None,
                                 "prompt_label": "unsafe" if i % 3 else "safe", "response_label": "safe" if i % 2 else None,
                                 "violated_categories": "Violence, Threat" if i % 3 else ""}) + "\n")
    (root / "wildguardtest").mkdir()
    pq.write_table(pa.table({
        "prompt": [f"p {i}" for i in range(n)], "adversarial": [False] * n, "response": [f"r {i}" for i in range(n)],
        "prompt_harm_label": ["harmful", "unharmful"] * (n // 2) + ["harmful"] * (n % 2),
        "response_refusal_label": ["refusal"] * n, "response_harm_label": ["unharmful"] * n, "subcategory": ["others"] * n,
    }), root / "wildguardtest" / "wildguard_test.parquet")


def median_time(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def bench_load(rows: int, repeats: int) -> list[dict]:
    reg, tax = default_registry(), load_taxonomy("default")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_synthetic(root, rows)
        cases = [(n, root) for n in ("toxicchat", "openai_moderation", "beavertails", "aegis2", "wildguardtest")]
        if (REFERENCE / "donotanswer").is_dir():
            cases += [("donotanswer_responses", REFERENCE), ("xstest", REFERENCE)]
        for name, data_root in cases:
            a = reg.get(name)
            load_s, loaded = median_time(lambda a=a, r=data_root: a.load(r), repeats)
            cmap = load_map(a.map_path()) if a.categories else None
            samples = loaded.samples
            tasks_s, _ = median_time(lambda s=samples, c=cmap: to_tasks(s, tax, category_targets(s, c)), repeats)
            n = len(samples) + sum(loaded.skipped.values())
            results.append({"benchmark": name, "rows": n, "load_s": load_s, "load_s_per_10k": load_s / n * 10_000,
                            "tasks_s_per_10k": tasks_s / max(len(samples), 1) * 10_000})
    return results


def bench_throughput(limit: int, batch_size: int, max_new_tokens: int) -> dict:
    from proguard.bench.backends import GenerationSettings, TransformersBackend
    from proguard.bench.runner import BenchConfig
    from proguard.suites.run import run_suites
    from proguard.models.tiny_vlm import tiny_vlm_path

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        root.mkdir()
        for p in FIXTURES.iterdir():
            if p.is_dir():
                (root / p.name).symlink_to(p)
        if (REFERENCE / "xstest").is_dir():
            (root / "xstest").symlink_to(REFERENCE / "xstest")
        backend = TransformersBackend(str(tiny_vlm_path()), GenerationSettings(max_new_tokens=max_new_tokens), device="cpu")
        backend.prepare()
        config = BenchConfig(batch_size=batch_size, limit=limit, progress=False, plots=False)
        t0 = time.perf_counter()
        result = run_suites("all", backend, Path(tmp) / "out", load_taxonomy("default"), data_root=root, config=config,
                            log=lambda *_: None)
        wall = time.perf_counter() - t0
        per = {}
        for name in {r["benchmark"] for r in result.rows}:
            res = json.loads((Path(tmp) / "out" / name / "results.json").read_text())
            per[name] = {"n": res["metrics"]["n"], "samples_per_s": res["metrics"]["timing"]["throughput_samples_per_s"]}
    n = sum(v["n"] for v in per.values())
    return {"benchmarks": per, "samples": n, "wall_s": wall, "samples_per_s_end_to_end": n / wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=50_000, help="rows per synthetic benchmark file (default 50,000)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-throughput", action="store_true")
    ap.add_argument("--limit", type=int, default=16, help="tasks per benchmark in the throughput run (default 16)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    args = ap.parse_args()
    print("command:", " ".join(sys.argv), "| machine:", platform.machine(), os.cpu_count(), "cores | load",
          os.getloadavg() if hasattr(os, "getloadavg") else "?")
    for r in bench_load(args.rows, args.repeats):
        print(f"load {r['benchmark']:<22} rows {r['rows']:>7}  {r['load_s_per_10k']:.3f} s/10k rows (median of "
              f"{args.repeats}; total {r['load_s']:.2f} s)  to_tasks {r['tasks_s_per_10k']:.3f} s/10k")
    if not args.no_throughput:
        t = bench_throughput(args.limit, args.batch_size, args.max_new_tokens)
        for name, v in sorted(t["benchmarks"].items()):
            print(f"throughput {name:<22} n {v['n']:>4}  {v['samples_per_s']:.2f} samples/s (generation)")
        print(f"suite 'all': {t['samples']} samples in {t['wall_s']:.1f} s end to end = {t['samples_per_s_end_to_end']:.2f} samples/s")


if __name__ == "__main__":
    main()
