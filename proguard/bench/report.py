"""Benchmark outputs: ``results.json`` (every metric and the run's provenance), ``report.md`` (tables)
and PNG plots (per-category accuracy, OOD similarity histogram, parent-category confusion matrix).

Plots use matplotlib's Agg backend (no display needed). A plot with nothing to show (no OOD sample,
no in-taxonomy unsafe sample) is not drawn; the report says so instead of linking a blank image.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from proguard.bench.metrics import PRED_FREE, PRED_MALFORMED, PRED_SAFE, PRED_UNLISTED, Record, id_sort_key

PLOT_CATEGORY = "category_accuracy.png"
PLOT_OOD = "ood_similarity.png"
PLOT_CONFUSION = "confusion_parent.png"


def write_results(path: Path, results: Mapping[str, Any]) -> Path:
    """``results.json``, pretty-printed."""
    path.write_text(json.dumps(results, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")
    return path


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_report(path: Path, results: Mapping[str, Any], plots: Mapping[str, Path | None]) -> Path:
    """``report.md``: provenance, a summary table, then one section per metric family."""
    m = results["metrics"]
    b, c, od, ds, fm, tm = (
        m["binary"],
        m["category"],
        m["ood_detection"],
        m["ood_description"],
        m["format"],
        m["timing"],
    )
    run = results["run"]
    out = [
        "# Guard benchmark report",
        "",
        f"- model: `{run['backend'].get('model')}` via `{run['backend'].get('backend')}`",
        f"- tasks: `{run.get('tasks')}` ({m['n']} samples: "
        + ", ".join(f"{k} {v}" for k, v in m["n_per_modality"].items())
        + f"; {m['n_unsafe']} unsafe, {m['n_ood']} OOD)",
        f"- seed {run['settings']['seed']}, max_new_tokens {run['settings']['max_new_tokens']}, "
        f"temperature {run['settings']['temperature']}, strict think block: {run['require_think']}",
        f"- started {run['started']}; proguard {results['versions'].get('proguard')}, "
        f"transformers {results['versions'].get('transformers')}, torch {results['versions'].get('torch')}",
        f"- generations: {run['generated']} new, {run['cached']} from cache, {run['failed']} failed",
        "",
        "A malformed answer (or a failed generation) counts as wrong, never skipped.",
        "",
        "## Summary",
        "",
        _table(
            ["metric", "value"],
            [
                ["request F1 (all, unsafe = positive)", b["request"].get("all", {}).get("f1")],
                ["response F1 (all)", b["response"].get("all", {}).get("f1")],
                ["category accuracy, exact (level asked)", c["exact"]],
                ["category accuracy, subcategory", c["subcategory"]],
                ["category accuracy, parent", c["parent"]],
                ["OOD detection precision", od["precision"]],
                ["OOD detection recall", od["recall"]],
                ["OOD detection F1", od["f1"]],
                ["OOD description mean similarity", ds["mean_similarity"]],
                [f"OOD description share >= {ds['threshold']}", ds["share_above_threshold"]],
                ["OOD description mean score (ood_description, the default reward)", ds.get("mean_score")],
                ["OOD description mean reward, paper formula (ood_similarity)", ds["mean_reward"]],
                ["format-valid rate", fm["valid_rate"]],
                ["mean reasoning length (guard's tokens)", fm.get("mean_reasoning_tokens")],
                ["mean reasoning length (words)", fm["mean_reasoning_words"]],
                ["latency mean (s/request)", tm["latency_mean_s"]],
                ["latency p95 (s/request)", tm["latency_p95_s"]],
                ["throughput (samples/s)", tm["throughput_samples_per_s"]],
            ],
        ),
        "",
        "## Binary labels (unsafe = positive)",
        "",
        _table(
            ["label", "modality", "n", "TP", "FP", "FN", "TN", "precision", "recall", "F1", "accuracy", "balanced acc"],
            [
                [label, mod, v["n"], v["tp"], v["fp"], v["fn"], v["tn"],
                 v["precision"], v["recall"], v["f1"], v["accuracy"], v["balanced_accuracy"]]
                for label in ("request", "response")
                for mod, v in b[label].items()
            ],
        ),
        "",
        f"## Category accuracy (in-taxonomy unsafe samples: {c['n']})",
        "",
        _table(
            ["modality", "n", "exact", "parent"],
            [[mod, v["n"], v["exact"], v["parent"]] for mod, v in c["per_modality"].items()]
            + [["all", c["n"], c["exact"], c["parent"]]],
        ),
        "",
        _table(
            ["true category", "name", "n", "exact", "parent"],
            [[cid, v["name"], v["n"], v["exact"], v["parent"]] for cid, v in c["per_category"].items()],
        ),
        "",
        _image("Per-category accuracy", plots.get("category")),
        "",
        "## Confusion of top-level categories",
        "",
        "Rows: true category; columns: the answer's top-level category, or "
        f"`{PRED_SAFE}`, `{PRED_FREE}`, `{PRED_UNLISTED}`, `{PRED_MALFORMED}`.",
        "",
        _confusion_table(m["confusion_parent"]),
        "",
        _image("Confusion matrix", plots.get("confusion")),
        "",
        "## OOD detection (unsafe samples, OOD = positive)",
        "",
        _table(
            ["n", "TP", "FP", "FN", "TN", "precision", "recall", "F1"],
            [[od["n"], od["tp"], od["fp"], od["fn"], od["tn"], od["precision"], od["recall"], od["f1"]]],
        ),
        "",
        f"## OOD description (OOD samples: {ds['n']}; answered in free text: {ds['answered_free_text']})",
        "",
        f"Score: `{results['run'].get('description_scorer')}`, the default reward's OOD term: how well the "
        f"answer singles out the hidden category against every node of the policy, calibrated to the model "
        f"(docs/ood_reward.md); mean {_fmt(ds.get('mean_score'))}. Paper formula: "
        f"`{results['run'].get('similarity_scorer')}`, mean {_fmt(ds['mean_reward'])}; similarity: its best "
        f"cosine similarity to the hidden category's name and synonyms. An OOD sample answered without free "
        f"text scores 0. Mean similarity over free-text answers only: {_fmt(ds['mean_similarity_answered'])}.",
        "",
        _table(
            ["hidden category", "n", "free text", "mean score", "mean similarity", f"share >= {ds['threshold']}"],
            [
                [k, v["n"], v["answered_free_text"], v.get("mean_score"), v["mean_similarity"],
                 v["share_above_threshold"]]
                for k, v in ds["per_category"].items()
            ],
        ),
        "",
        _image("OOD similarity histogram", plots.get("ood")),
        "",
        "## Format",
        "",
        _table(["error code", "count"], [[k, v] for k, v in fm["error_codes"].items()] or [["(none)", 0]]),
        "",
    ]
    failures = results.get("failures") or []
    if failures:
        out += ["## Failed generations", "", *(f"- `{f['task_id']}`: {f['message']}" for f in failures[:20])]
        if len(failures) > 20:
            out.append(f"- ... and {len(failures) - 20} more (see predictions.jsonl)")
        out.append("")
    path.write_text("\n".join(out), encoding="utf-8")
    return path


def _image(title: str, path: Path | None) -> str:
    return f"![{title}]({path.name})" if path is not None else f"_{title}: nothing to plot in this run._"


def _confusion_table(conf: Mapping[str, Mapping[str, int]]) -> str:
    if not conf:
        return "_no in-taxonomy unsafe samples._"
    cols = confusion_columns(conf)
    return _table(["true \\ predicted", *cols], [[row, *(conf[row].get(col, 0) for col in cols)] for row in conf])


def confusion_columns(conf: Mapping[str, Mapping[str, int]]) -> list[str]:
    """Category columns (every true row and predicted ID, in ID order), then the special columns."""
    special = [PRED_SAFE, PRED_FREE, PRED_UNLISTED, PRED_MALFORMED]
    cats = set(conf) | {c for row in conf.values() for c in row if c not in special}
    return sorted(cats, key=id_sort_key) + [s for s in special if any(s in row for row in conf.values())]


# ---------------------------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------------------------
def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_category_accuracy(path: Path, per_category: Mapping[str, Mapping[str, Any]]) -> Path | None:
    """Horizontal bars: exact and parent-level accuracy per true top-level category."""
    if not per_category:
        return None
    plt = _pyplot()
    from matplotlib.transforms import offset_copy

    ids = list(per_category)[::-1]  # first category at the top
    labels = [f"{cid} {per_category[cid]['name']} (n={per_category[cid]['n']})" for cid in ids]
    exact = [per_category[cid]["exact"] or 0.0 for cid in ids]
    parent = [per_category[cid]["parent"] or 0.0 for cid in ids]
    fig, ax = plt.subplots(figsize=(8, max(2.2, 1.2 + 0.45 * len(ids))))
    y = range(len(ids))
    bars_p = ax.barh([i + 0.2 for i in y], parent, height=0.4, label="parent level", color="#9ecae1")
    bars_e = ax.barh([i - 0.2 for i in y], exact, height=0.4, label="exact (level asked)", color="#3182bd")
    for bars in (bars_p, bars_e):  # values written out, so a 0.00 bar is still visible
        ax.bar_label(bars, fmt="%.2f", padding=2, fontsize=7)
    ax.set_yticks(list(y), labels, fontsize=8)
    ax.set_xlim(0, 1.08)
    ax.set_xlabel("accuracy")
    ax.set_title("Category accuracy by true top-level category")
    # below the x label (a fixed offset in points, whatever the height): inside, it would cover bars
    below = offset_copy(ax.transAxes, fig=fig, y=-34, units="points")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, 0.0), bbox_transform=below, ncol=2, fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_ood_similarity(path: Path, records: Sequence[Record], threshold: float) -> Path | None:
    """Histogram of OOD-description similarity; free-text answers and the rest (scored 0) stacked."""
    rows = [r for r in records if r.target.ood]
    if not rows:
        return None
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    # cosine similarity can dip below 0; the bins start at 0, so such answers are drawn in the first bin
    free = [max(0.0, float(r.similarity or 0.0)) for r in rows if r.parsed.ok and r.parsed.category_kind == "free_text"]
    other = [0.0 for r in rows if not (r.parsed.ok and r.parsed.category_kind == "free_text")]
    bins = [i / 20 for i in range(21)]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.hist([free, other], bins=bins, stacked=True, color=["#31a354", "#bdbdbd"],
            label=[f"free-text answer (n={len(free)})", f"no free text, scored 0 (n={len(other)})"])
    ax.axvline(threshold, color="#de2d26", linestyle="--", label=f"threshold {threshold}")
    ax.set_xlim(0, 1)
    ax.set_xlabel("similarity to the hidden category (below 0 counted at 0)")
    ax.set_ylabel("OOD samples")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts: no 0.5-sample ticks
    ax.set_title("OOD description similarity")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_confusion(path: Path, conf: Mapping[str, Mapping[str, int]], names: Mapping[str, str]) -> Path | None:
    """Row-normalised confusion matrix of top-level categories, counts written in the cells."""
    if not conf:
        return None
    plt = _pyplot()
    rows = list(conf)
    cols = confusion_columns(conf)
    counts = [[conf[r].get(c, 0) for c in cols] for r in rows]
    shares = [[v / max(1, sum(row)) for v in row] for row in counts]
    # a floor on the size: a 1x1 matrix must still fit its title, labels and colour bar
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 + 0.55 * len(cols)), max(3.0, 1.4 + 0.45 * len(rows))))
    im = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), [f"{r} {names.get(r, '')}".strip() for r in rows], fontsize=8)
    for i, row in enumerate(counts):
        for j, v in enumerate(row):
            if v:
                ax.text(j, i, str(v), ha="center", va="center", fontsize=8,
                        color="white" if shares[i][j] > 0.6 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Top-level category confusion (row-normalised)")
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def write_plots(
    out_dir: Path, metrics: Mapping[str, Any], records: Sequence[Record], names: Mapping[str, str]
) -> dict[str, Path | None]:
    """All three plots; a value is ``None`` where there was nothing to plot."""
    return {
        "category": plot_category_accuracy(out_dir / PLOT_CATEGORY, metrics["category"]["per_category"]),
        "ood": plot_ood_similarity(out_dir / PLOT_OOD, records, metrics["ood_description"]["threshold"]),
        "confusion": plot_confusion(out_dir / PLOT_CONFUSION, metrics["confusion_parent"], names),
    }
