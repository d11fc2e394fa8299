"""``run_suites``: load each benchmark of the named suites, run the guard once per benchmark through
``proguard.bench.run_bench``, score every level the suites ask for, and write one suite table.

Outputs under ``out_dir``: ``<benchmark>/`` (the bench's own outputs: generation cache, predictions,
``results.json`` with a ``suite`` section added, report), ``suite.json``, ``suite.md`` and ``suite.csv``.
A benchmark whose files (or media) are absent is named in ``missing`` (with what to put where) and the
others run; a benchmark whose files are present but malformed stops the run with one line naming the
file, row and field. Samples the backend failed on are counted per benchmark (``failures``; the command
exits 1 past ``--allow-failures``). With ``ood_holdout`` each benchmark with a category map is also run
under ProGuard's OOD protocol (``proguard.suites.ood``) into ``<benchmark>/ood-<level>/``.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Mapping, Sequence
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
    failures: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per benchmark run with failed samples: ``failed``, ``n`` and the ``first`` message."""

    @property
    def n_failed(self) -> int:
        """Samples that failed after their retries, over every benchmark run."""
        return sum(f["failed"] for f in self.failures.values())

    n_sent: int = 0
    """Samples sent to the guard, over every benchmark run (OOD runs included)."""


def selects(sample: BenchSample, level: str) -> bool:
    """Whether ``sample`` is labelled at ``level``."""
    if level == "image":
        return sample.modality == "image" and sample.request_label is not None
    if level == "response":
        return sample.response is not None and sample.response_label is not None
    return sample.modality != "image" and sample.request_label is not None


def _modality(samples: list[BenchSample]) -> str:
    """What a benchmark's scored samples are at one level: ``text``, ``text_image`` or ``image``."""
    kinds = {s.modality for s in samples}
    if kinds <= {"text"}:
        return "text"
    return "image" if kinds <= {"image"} else "text_image"


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
    category_rule: str = "all",
    ood_holdout: Sequence[str] | None = None,
    ood_scorers: tuple[Any, Any] | None = None,
    log=print,
) -> SuiteResult:
    """Run the suites ``spec`` (``NAME[,NAME...]``) with ``backend``; see the module docstring.

    ``category_rule``: a multi-label row accepts every mapped node (``all``) or only the most specific.
    ``ood_holdout``: taxonomy IDs held out of the prompt (ProGuard's OOD protocol, ``proguard.suites.ood``);
    each benchmark with a category map is run a second time that way and its rows gain ``ood_f1`` and
    ``ood_description``; ``ood_scorers`` is the ``(ood_scorer, description_scorer)`` pair to score with.
    """
    registry = registry or default_registry()
    config = config or BenchConfig(progress=False)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    entries = resolve(spec, registry)
    by_run: dict[str, list[Entry]] = {}
    for e in entries:
        by_run.setdefault(e.run_name, []).append(e)
    rows: list[dict[str, Any]] = []
    missing: dict[str, str] = {}
    details: dict[str, Any] = {}
    failures: dict[str, dict[str, Any]] = {}
    sent = 0
    for name, group in by_run.items():
        levels = [e.level for e in group]
        adapter = type(registry.get(group[0].adapter))(group[0].protocol)
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
        cmap, cmap_note = _category_map(adapter, taxonomy, (category_maps or {}).get(group[0].adapter))
        unseen = cmap.unseen_keys(lab for s in loaded.samples for lab in s.source_labels) if cmap else []
        if unseen:
            log(f"warning: {name}: category map {cmap.origin} has key(s) that match no label in "
                f"{loaded.files[0]}: {', '.join(map(repr, unseen))} (misspelt, or not in this release)")
        targets = category_targets(samples, cmap, rule=category_rule, parents=adapter.label_parents)
        if not samples:
            missing[name] = f"{name}: {loaded.files[0]} holds no samples labelled at {', '.join(levels)}"
            continue
        tasks = to_tasks(samples, taxonomy, targets)
        log(f"{name}: {len(samples)} samples from {loaded.files[0]} ({load_s:.2f} s)")
        bench_dir = out / name
        result = run_bench(tasks, backend, bench_dir, config, taxonomy=taxonomy, tasks_label=f"{name} ({loaded.files[0]})")
        sent += result.metrics["n"]
        if result.failures:
            failures[name] = {"failed": len(result.failures), "n": result.metrics["n"],
                              "first": result.failures[0]["message"]}
        per_level = {}
        ood_part: dict[str, Any] = {}
        for level in levels:
            scored = score_level(result.records, level, targets.accepted, categories=cmap is not None)
            per_level[level] = scored
            cat = scored["category"] or {}
            row = {
                "benchmark": name, "adapter": adapter.name, "protocol": adapter.protocol, "title": adapter.title,
                "level": level, "modality": _modality([s for s in samples if selects(s, level)]), "n": scored["n"],
                "n_unsafe": scored["n_unsafe"], "f1": scored["f1"], "precision": scored["precision"],
                "recall": scored["recall"], "category_top": cat.get("top"), "category_exact": cat.get("exact"),
                "category_n": cat.get("n"), "format_valid_rate": scored["format_valid_rate"],
                "ood_f1": None, "ood_description": None, "ood_n": None,
            }
            if ood_holdout and cmap is not None:
                from proguard.suites.ood import run_ood

                level_samples = [s for s in samples if selects(s, level)]
                ood = run_ood(level_samples, level, taxonomy, cmap, adapter.label_parents, ood_holdout, backend,
                              bench_dir / f"ood-{level}", config, ood_scorers, log=log)
                ood_part[level] = ood
                sent += ood.get("n_tasks", 0)
                if ood.get("failures"):
                    failures[f"{name} (OOD, {level})"] = ood["failures"]
                row.update(ood_f1=ood.get("ood_f1"), ood_description=ood.get("ood_description"), ood_n=ood.get("n_ood"))
            rows.append(row)
        suite_part = {
            "files": loaded.files, "protocol": adapter.protocol,
            "protocol_rule": adapter.protocols.get(adapter.protocol or ""), "load_seconds": load_s,
            "rows_read": len(loaded.samples) + sum(loaded.skipped.values()),
            "skipped": loaded.skipped, "not_labelled_at_levels": not_labelled, "levels": per_level,
            "category_map": str(cmap.origin) if cmap else None, "category_map_note": cmap_note,
            "category_rule": category_rule, "map_keys_unseen": unseen,
            "unmapped_labels": targets.unknown_labels, "groups": len({s.group for s in samples}),
            "failed": len(result.failures),
        }
        if ood_part:
            suite_part["ood"] = ood_part
        details[name] = suite_part
        _add_to_results(bench_dir / "results.json", suite_part)
    avg = averages(rows)
    result = SuiteResult(rows, avg, missing, out, failures, sent)
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


COLUMNS = ("benchmark", "protocol", "level", "modality", "n", "n_unsafe", "f1", "precision", "recall", "category_top",
           "category_exact", "category_n", "format_valid_rate", "ood_f1", "ood_description", "ood_n")


def _pct(x: Any) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}"


def write_suite(out: Path, spec: str, result: SuiteResult, details: Mapping[str, Any], backend: Mapping[str, Any]) -> None:
    """``suite.json``, ``suite.md`` and ``suite.csv`` (F1 and accuracies in percent in the table)."""
    doc = {"suite": spec, "backend": dict(backend), "rows": result.rows, "averages": result.averages,
           "missing": result.missing, "failures": result.failures, "benchmarks": dict(details)}
    (out / SUITE_JSON).write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    with (out / SUITE_CSV).open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        for r in result.rows:
            w.writerow([r.get(c) for c in COLUMNS])
    lines = [f"# Suite `{spec}`", "", f"Model: `{backend.get('model')}` ({backend.get('backend')})", "",
             "| Benchmark | Protocol | Level | Input | n | unsafe | F1 | Precision | Recall | Category (top) | "
             "Category (exact) | Format-valid | OOD F1 | OOD description |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in result.rows:
        ood_n = f" (n={r['ood_n']})" if r.get("ood_n") is not None else ""
        lines.append(f"| {r['title']} | {r.get('protocol') or ''} | {r['level']} | {r.get('modality', '')} | "
                     f"{r['n']} | "
                     f"{r['n_unsafe']} | {_pct(r['f1'])} | {_pct(r['precision'])} | {_pct(r['recall'])} | "
                     f"{_pct(r['category_top'])} | {_pct(r['category_exact'])} | {_pct(r['format_valid_rate'])} | "
                     f"{_pct(r.get('ood_f1'))}{ood_n} | {_pct(r.get('ood_description'))} |")
    for key, a in result.averages.items():
        lines.append(f"| **Average ({key.replace('_', ' ')})** | | {a['level']} | {a['modality']} | {a['n']} | | "
                     f"weighted {_pct(a['weighted_f1'])}, mean {_pct(a['mean_f1'])} ({len(a['benchmarks'])} sets) "
                     f"| | | | | | | |")
    if result.failures:
        lines += ["", f"Failed samples (counted as wrong answers): {result.n_failed}", ""]
        lines += [f"- {k}: {f['failed']} of {f['n']} (first: {f['first']})" for k, f in result.failures.items()]
    if result.missing:
        lines += ["", "Missing (not run):", ""] + [f"- {m}" for m in result.missing.values()]
    (out / SUITE_MD).write_text("\n".join(lines) + "\n", encoding="utf-8")


__all__ = ["Entry", "SuiteResult", "level_truth", "run_suites", "selects", "write_suite"]
