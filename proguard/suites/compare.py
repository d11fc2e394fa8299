"""``compare``: several suite runs side by side as ProGuard's Tables 1-4 (markdown, CSV, PNG), with the
paper's published rows (``published.yaml``, source named) marked "published".

A run is a ``proguard bench --suite`` output folder (its ``suite.json``). A run's cell is its metric for
that benchmark and level in percent with two decimals; "-" where the run did not score it (the suite
did not include it, or the metric is one suites do not compute yet: OOD detection and description).
Published figures are copied as the strings printed in the paper, so the table reproduces them byte
for byte. The runs' "Avg" cells are the sample-weighted average F1 of the benchmarks the run scored at
that level (GuardReasoner's rule); ProGuard's printed averages cover all seven (or four) sets.
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


def run_cell(run: dict[str, Any], column: str, metric: str) -> str:
    """A run's value for ``benchmark/level`` under ``metric``, in percent with two decimals, or ``-``."""
    bench, _, level = column.partition("/")
    if bench == "avg":
        a = run.get("averages", {}).get(level)
        return _pct(a.get("weighted_f1")) if a and metric == "f1" else MISSING
    for r in run.get("rows", []):
        if r["benchmark"] == bench and r["level"] == level:
            return _pct(r.get(metric))
    return MISSING


def _pct(x: Any) -> str:
    return MISSING if x is None else f"{100 * float(x):.2f}"


def build_tables(runs: Sequence[tuple[str, dict[str, Any]]], published: dict[str, Any]) -> list[Table]:
    """Each published table with the runs' rows first, then the published rows."""
    tables = []
    for t in published["tables"]:
        rows = [(label, "run", [run_cell(run, c, t["metric"]) for c in t["columns"]]) for label, run in runs]
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
