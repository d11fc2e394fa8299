"""``compare``: several suite runs side by side as ProGuard's Tables 1-4 (markdown, CSV, PNG), with the
paper's published rows (``published.yaml``, source named) marked "published".

A run is a ``proguard bench --suite`` output folder (its ``suite.json``). A run's cell is its metric for
that benchmark and level in percent with two decimals and the number of samples it is computed on
(``83.10 (n=1680)``; for OOD figures the number of OOD tasks); "-" where the run did not score it (the
suite did not include it; OOD figures need ``--ood-holdout``). Published figures are copied as the
strings printed in the paper, so the table reproduces them byte for byte. The runs' "Avg" cells are the
sample-weighted average F1 of the table's sets of that level **and input kind** the run scored (text
and text+image never mixed; GuardReasoner's weighting); an average over fewer sets than the table's
column count is marked partial, e.g. ``91.20 (n=4120, 5/7 sets)``: ProGuard's printed averages cover all seven
(or four) sets.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from proguard.suites.run import SUITE_JSON

PUBLISHED = Path(__file__).with_name("published.yaml")
MISSING = "-"


@dataclass(frozen=True)
class Table:
    """One paper table: its columns and rows of ``(label, kind, cells)`` (kind: ``run`` or ``published``)."""

    key: str
    title: str
    headers: list[str]
    rows: list[tuple[str, str, list[str]]]


def load_published(path: str | Path = PUBLISHED) -> dict[str, Any]:
    """The published reference data; every row must have one figure per column."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    for t in data["tables"]:
        if len(t["headers"]) != len(t["columns"]):
            raise ValueError(f"{path}: table {t['key']}: {len(t['headers'])} headers for {len(t['columns'])} columns")
        for model, values in t["rows"].items():
            if len(values) != len(t["columns"]) or not all(isinstance(v, str) for v in values):
                raise ValueError(f"{path}: table {t['key']}: row {model}: need {len(t['columns'])} quoted figures")
    return data


def load_run(run_dir: str | Path) -> dict[str, Any]:
    """A suite run's ``suite.json``; a clear error when the folder is not a suite run."""
    p = Path(run_dir) / SUITE_JSON
    if not p.is_file():
        raise ValueError(f"{run_dir}: no {SUITE_JSON} (is it the --out folder of `proguard bench --suite`?)")
    return json.loads(p.read_text(encoding="utf-8"))


N_OF = {"ood_f1": "ood_n", "ood_description": "ood_n", "category_top": "category_n", "category_exact": "category_n"}
"""The sample count a metric is computed on (default: ``n``, the samples scored at that level)."""


def avg_sets(columns: Sequence[str], key: str) -> list[str]:
    """The table's benchmark columns an ``avg/<key>`` column averages (same level, same input kind)."""
    from proguard.suites.registry import AdapterRegistryError, default_registry
    from proguard.suites.scoring import average_key

    reg = default_registry()
    out = []
    for c in columns:
        bench, _, level = c.partition("/")
        if bench == "avg" or not level:
            continue
        try:
            modality = reg.get(bench).modality
        except AdapterRegistryError:  # a column naming no installed adapter is averaged by nothing
            continue
        if average_key(level, "image" if level == "image" else modality) == key:
            out.append(c)
    return out


def run_cell(run: dict[str, Any], column: str, metric: str, columns: Sequence[str] = ()) -> str:
    """A run's value for ``benchmark/level`` under ``metric``: percent with two decimals and its n, or ``-``."""
    bench, _, level = column.partition("/")
    if bench == "avg":
        if metric != "f1":
            return MISSING
        # The table's own sets of that level and input kind, as this run scored them (first run of each).
        want = avg_sets(columns, level)
        used: dict[str, dict[str, Any]] = {}
        for r in run.get("rows", []):
            key = f"{r.get('adapter', r['benchmark'])}/{r['level']}"
            if key in want and key not in used and r.get("f1") is not None:
                used[key] = r
        n = sum(r["n"] for r in used.values())
        if not n:
            return MISSING
        mark = f", {len(used)}/{len(want)} sets" if len(used) < len(want) else ""
        return f"{100 * sum(r['f1'] * r['n'] for r in used.values()) / n:.2f} (n={n}{mark})"
    for r in run.get("rows", []):
        if r.get("adapter", r["benchmark"]) == bench and r["level"] == level:
            value = r.get(metric)
            n = r.get(N_OF.get(metric, "n"))
            return MISSING if value is None else f"{100 * float(value):.2f}" + (f" (n={n})" if n is not None else "")
    return MISSING


def build_tables(runs: Sequence[tuple[str, dict[str, Any]]], published: dict[str, Any]) -> list[Table]:
    """Each published table with the runs' rows first, then the published rows."""
    tables = []
    for t in published["tables"]:
        rows = [(label, "run", [run_cell(run, c, t["metric"], t["columns"]) for c in t["columns"]])
                for label, run in runs]
        rows += [(model, "published", [str(v) for v in values]) for model, values in t["rows"].items()]
        tables.append(Table(t["key"], t["title"], list(t["headers"]), rows))
    return tables


def render_markdown(tables: Sequence[Table], source: str) -> str:
    """One markdown table per paper table; published rows carry "(published)" after the model name."""
    out = ["# Guard benchmark comparison", "", f"Published rows: {source}.", ""]
    for t in tables:
        out += [f"## {t.title}", "", "| Model | " + " | ".join(t.headers) + " |",
                "|---|" + "---:|" * len(t.headers)]
        for label, kind, cells in t.rows:
            name = f"{label} (published)" if kind == "published" else label
            out.append(f"| {name} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def write_csv(path: Path, tables: Sequence[Table], source: str) -> Path:
    """Long format: ``table, model, kind, column, value, source``."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["table", "model", "kind", "column", "value", "source"])
        for t in tables:
            for label, kind, cells in t.rows:
                for h, v in zip(t.headers, cells, strict=True):
                    w.writerow([t.key, label, kind, h, v, source if kind == "published" else ""])
    return path


def write_png(path: Path, tables: Sequence[Table]) -> Path | None:
    """The tables drawn one under another (published rows greyed); ``None`` without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    heights = [len(t.rows) + 2 for t in tables]
    fig, axes = plt.subplots(len(tables), 1, figsize=(16, 0.32 * sum(heights) + 1),
                             gridspec_kw={"height_ratios": heights})
    for ax, t in zip(axes if len(tables) > 1 else [axes], tables, strict=True):
        ax.axis("off")
        ax.set_title(t.title, loc="left", fontsize=10)
        cells = [[f"{label} (published)" if kind == "published" else label, *vals] for label, kind, vals in t.rows]
        table = ax.table(cellText=cells, colLabels=["Model", *t.headers], loc="center", cellLoc="center")
        table.auto_set_font_size(False)
        table.set_fontsize(7)
        for i, (_, kind, _) in enumerate(t.rows, start=1):
            if kind == "published":
                for j in range(len(t.headers) + 1):
                    table[i, j].set_facecolor("#eeeeee")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def compare(run_dirs: Sequence[str | Path], out_dir: str | Path, published_path: str | Path = PUBLISHED,
            png: bool = True) -> dict[str, Path | None]:
    """Write ``compare.md``, ``compare.csv`` and ``compare.png`` under ``out_dir``; returns their paths."""
    published = load_published(published_path)
    runs = []
    for d in run_dirs:
        run = load_run(d)
        label = f"{Path(d).name} ({run.get('backend', {}).get('model', '?')})"
        runs.append((label, run))
    tables = build_tables(runs, published)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md = out / "compare.md"
    md.write_text(render_markdown(tables, published["source"]), encoding="utf-8")
    paths: dict[str, Path | None] = {"markdown": md, "csv": write_csv(out / "compare.csv", tables, published["source"])}
    paths["png"] = write_png(out / "compare.png", tables) if png else None
    return paths
