"""OOD detection and description on public benchmarks (ProGuard Tables 3-4), computed from a user's guard.

ProGuard's protocol: some categories of the policy are **held out** — removed from the prompt's
category list (the visible ones renumbered densely, so no gap shows) — and the benchmark's unsafe rows
whose mapped category falls under a held-out node become OOD tasks: the right answer is a free-text
name of the unseen risk, scored against the hidden node's name and synonyms. Every other row is an
in-taxonomy task shown with the same reduced policy. The tasks come from the project's own generator
(``proguard.tasks.build_tasks`` with ``holdout``; its leak check runs), so the benchmark is scored
exactly as ``proguard bench --holdout`` scores the bundled data.

Per benchmark and level this gives ``ood_f1`` (OOD detection F1: "is this a new risk?", OOD = positive;
``proguard.bench.metrics.ood_detection``) and ``ood_description`` (mean score of the ``ood_description``
reward on the OOD tasks), the two figures of Tables 3 and 4.

A row with several mapped labels is OOD only when **none** of its nodes is shown (each lies under a held-out
ID); otherwise its category is its most specific shown node, which the guard can name. Unsafe rows with
no mapped label and levels the benchmark does not label are left out and counted (``left_out``). Which IDs to hold
out is the user's choice (``--ood-holdout``): ProGuard does not publish its per-dataset held-out sets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from proguard.bench.runner import BenchConfig, run_bench
from proguard.suites.base import BenchSample
from proguard.suites.catmap import CategoryMap
from taxonomy import Taxonomy


def ood_samples(samples: Sequence[BenchSample], level: str) -> list[BenchSample]:
    """The samples as the OOD run shows them at ``level``: the response is kept only at response level
    (prompt-level OOD asks about the request alone, as ProGuard's prompt columns do)."""
    if level == "response":
        return list(samples)
    return [replace(s, response=None, response_label=None) for s in samples]


def run_ood(samples: Sequence[BenchSample], level: str, taxonomy: Taxonomy, cmap: CategoryMap,
            parents: Mapping[str, str], holdout: Sequence[str], backend: Any, out_dir: Path,
            config: BenchConfig, scorers: tuple[Any, Any] | None = None, log=print) -> dict[str, Any]:
    """Run the guard on ``samples`` with ``holdout`` hidden; the OOD figures and counts (or why none)."""
    import datasets

    from proguard.data import samples_to_dataset
    from proguard.suites.export import to_samples
    from proguard.tasks import TaskConfig, TaskError, build_tasks

    def hidden(node_id: str) -> bool:
        return any(node_id == h or node_id.startswith(h + "S") for h in holdout)

    def choose(ids: tuple[str, ...]) -> str:
        return next((i for i in ids if not hidden(i)), ids[0])

    rows, left = to_samples(ood_samples(samples, level), taxonomy, cmap, parents, choose=choose)
    out: dict[str, Any] = {"holdout": list(holdout), "left_out": left, "ood_f1": None, "ood_description": None}
    if not rows:
        out["note"] = "no row has a label and, when unsafe, a mapped category"
        return out
    try:
        tasks = build_tasks(samples_to_dataset(rows), taxonomy, TaskConfig(holdout=list(holdout), eval_fraction=0.0))
    except TaskError as exc:
        out["note"] = str(exc)
        log(f"{out_dir.parent.name}: OOD at {level} level not run: {out['note']}")
        return out
    # eval_fraction 0: every in-taxonomy row is in "train" (shown with the same reduced policy; nothing
    # else is hidden there by default), the held-out rows in eval_ood.
    parts = [tasks[k] for k in ("train", "eval_id", "eval_ood") if k in tasks and len(tasks[k])]
    table = datasets.concatenate_datasets(parts)
    ood_scorer, description = scorers if scorers is not None else (None, None)
    result = run_bench(table, backend, out_dir, config, ood_scorer=ood_scorer, taxonomy=taxonomy,
                       description_scorer=description, tasks_label=f"OOD, holdout {','.join(holdout)}")
    m = result.metrics
    out.update(
        n_tasks=m["n"], n_ood=sum(1 for r in result.records if r.target.ood),
        ood_f1=m["ood_detection"].get("f1"), ood_description=m["ood_description"].get("mean_score"),
        results=str(result.results_path),
    )
    if result.failures:
        out["failures"] = {"failed": len(result.failures), "n": m["n"], "first": result.failures[0]["message"]}
    return out
