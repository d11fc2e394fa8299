"""``run_suites``: load each benchmark of the named suites, run the guard once per benchmark through
``proguard.bench.run_bench``, score every level the suites ask for, and write one suite table.

Outputs under ``out_dir``: ``<benchmark>/`` (the bench's own outputs: generation cache, predictions,
``results.json`` with a ``suite`` section added, report), ``suite.json``, ``suite.md`` and ``suite.csv``.
A benchmark whose files are absent is named in ``missing`` (with what to put where) and the others run;
a benchmark whose files are present but malformed stops the run with the file, row and field.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proguard.bench.runner import BenchConfig, run_bench
from proguard.suites.base import BenchSample, MissingData
from proguard.suites.catmap import CategoryMap, load_map
from proguard.suites.definitions import Entry, resolve
from proguard.suites.registry import AdapterRegistry, default_registry
from proguard.suites.rows import category_targets, to_tasks
from proguard.suites.scoring import averages, level_truth, score_level
from taxonomy import Taxonomy

SUITE_JSON, SUITE_MD, SUITE_CSV = "suite.json", "suite.md", "suite.csv"


@dataclass
class SuiteResult:
    """Rows of the suite table (one per benchmark and level), the averages and the missing benchmarks."""

    rows: list[dict[str, Any]]
    averages: dict[str, Any]
    missing: dict[str, str] = field(default_factory=dict)
    out_dir: Path | None = None


def selects(sample: BenchSample, level: str) -> bool:
    """Whether ``sample`` is labelled at ``level``."""
    if level == "image":
        return sample.modality == "image" and sample.request_label is not None
    if level == "response":
        return sample.response is not None and sample.response_label is not None
    return sample.modality != "image" and sample.request_label is not None


def run_suites(
    spec: str,
    backend: Any,
    out_dir: str | Path,
    taxonomy: Taxonomy,
    *,
    data_root: str | Path | None,
    config: BenchConfig | None = None,
    allow_download: bool = False,
    category_maps: Mapping[str, str | Path] | None = None,
    registry: AdapterRegistry | None = None,
    log=print,
) -> SuiteResult:
    """Run the suites ``spec`` (``NAME[,NAME...]``) with ``backend``; see the module docstring."""
    registry = registry or default_registry()
    config = config or BenchConfig(progress=False)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    entries = resolve(spec, registry)
    by_adapter: dict[str, list[str]] = {}
    for e in entries:
        by_adapter.setdefault(e.adapter, []).append(e.level)
    rows: list[dict[str, Any]] = []
    missing: dict[str, str] = {}
    details: dict[str, Any] = {}
    for name, levels in by_adapter.items():
        adapter = registry.get(name)
        t0 = time.perf_counter()
        try:
            loaded = adapter.load(data_root, allow_download=allow_download)
        except MissingData as exc:
            missing[name] = str(exc)
            log(f"missing: {exc}")
            continue
        load_s = time.perf_counter() - t0
        samples = [s for s in loaded.samples if any(selects(s, lvl) for lvl in levels)]
        not_labelled = len(loaded.samples) - len(samples)
        cmap, cmap_note = _category_map(adapter, taxonomy, (category_maps or {}).get(name))
        targets = category_targets(samples, cmap)
        if not samples:
            missing[name] = f"{name}: {loaded.files[0]} holds no samples labelled at {', '.join(levels)}"
            continue
        tasks = to_tasks(samples, taxonomy, targets)
        log(f"{name}: {len(samples)} samples from {loaded.files[0]} ({load_s:.2f} s)")
        bench_dir = out / name
        result = run_bench(tasks, backend, bench_dir, config, taxonomy=taxonomy, tasks_label=f"{name} ({loaded.files[0]})")
        per_level = {}
        for level in levels:
            scored = score_level(result.records, level, targets.accepted, categories=cmap is not None)
            per_level[level] = scored
            cat = scored["category"] or {}
            rows.append({
                "benchmark": name, "title": adapter.title, "level": level, "n": scored["n"],
                "n_unsafe": scored["n_unsafe"], "f1": scored["f1"], "precision": scored["precision"],
                "recall": scored["recall"], "category_top": cat.get("top"), "category_exact": cat.get("exact"),
                "category_n": cat.get("n"), "format_valid_rate": scored["format_valid_rate"],
            })
        suite_part = {
            "files": loaded.files, "load_seconds": load_s, "rows_read": len(loaded.samples) + sum(loaded.skipped.values()),
            "skipped": loaded.skipped, "not_labelled_at_levels": not_labelled, "levels": per_level,
            "category_map": str(cmap.origin) if cmap else None, "category_map_note": cmap_note,
            "unmapped_labels": targets.unknown_labels,
            "groups": len({s.group for s in samples}),
        }
        details[name] = suite_part
        _add_to_results(bench_dir / "results.json", suite_part)
    avg = averages(rows)
    result = SuiteResult(rows, avg, missing, out)
    write_suite(out, spec, result, details, backend.describe())
    return result


def _category_map(adapter, taxonomy: Taxonomy, override: str | Path | None) -> tuple[CategoryMap | None, str | None]:
    """The map to score categories with, or ``None`` and why not."""
    if not adapter.categories:
        return None, "the benchmark labels no categories"
    path = override or adapter.map_path()
    if path is None:
        return None, f"no category map for {adapter.name}: propose one with `proguard suites map {adapter.name}`"
    cmap = load_map(path)
    why = cmap.usable_for(taxonomy)
    if why is not None:
        return None, why
    cmap.check(taxonomy)
    return cmap, None


def _add_to_results(path: Path, suite_part: dict[str, Any]) -> None:
    results = json.loads(path.read_text(encoding="utf-8"))
    results["suite"] = suite_part
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


COLUMNS = ("benchmark", "level", "n", "n_unsafe", "f1", "precision", "recall", "category_top", "category_exact",
           "format_valid_rate")


def _pct(x: Any) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}"


def write_suite(out: Path, spec: str, result: SuiteResult, details: Mapping[str, Any], backend: Mapping[str, Any]) -> None:
    """``suite.json``, ``suite.md`` and ``suite.csv`` (F1 and accuracies in percent in the table)."""
    doc = {"suite": spec, "backend": dict(backend), "rows": result.rows, "averages": result.averages,
           "missing": result.missing, "benchmarks": dict(details)}
    (out / SUITE_JSON).write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    with (out / SUITE_CSV).open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        for r in result.rows:
            w.writerow([r.get(c) for c in COLUMNS])
    lines = [f"# Suite `{spec}`", "", f"Model: `{backend.get('model')}` ({backend.get('backend')})", "",
             "| Benchmark | Level | n | unsafe | F1 | Precision | Recall | Category (top) | Category (exact) | Format-valid |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in result.rows:
        lines.append(f"| {r['title']} | {r['level']} | {r['n']} | {r['n_unsafe']} | {_pct(r['f1'])} | "
                     f"{_pct(r['precision'])} | {_pct(r['recall'])} | {_pct(r['category_top'])} | "
                     f"{_pct(r['category_exact'])} | {_pct(r['format_valid_rate'])} |")
    for level, a in result.averages.items():
        lines.append(f"| **Average ({level})** | {level} | {a['n']} | | weighted {_pct(a['weighted_f1'])}, "
                     f"mean {_pct(a['mean_f1'])} | | | | | |")
    if result.missing:
        lines += ["", "Missing (not run):", ""] + [f"- {m}" for m in result.missing.values()]
    (out / SUITE_MD).write_text("\n".join(lines) + "\n", encoding="utf-8")


__all__ = ["Entry", "SuiteResult", "level_truth", "run_suites", "selects", "write_suite"]
