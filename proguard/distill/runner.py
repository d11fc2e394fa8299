"""``run_distill``: teacher answers for a task dataset, checked against gold, as an SFT dataset plus a report.

Rows are walked in modality-grouped batches (as ``proguard bench`` does). Each batch's teacher
answers go to the generation cache (``proguard.bench.cache``: keyed by the teacher's description and
a hash of the teacher prompt and image) before the next batch starts, so an interrupted run resumes
where it stopped and a rerun asks the teacher again only for what failed. Every answer is parsed
and checked against the row's gold (``proguard.distill.gold.check_answer``); a failed request, a
format error or a disagreement is rejected and counted, never kept.

Outputs under ``out_dir``: ``dataset/`` (a ``datasets`` dataset: conversational ``messages`` ending
in the teacher's assistant turn, an ``images`` list column, the task's ground-truth columns),
``rejected.jsonl`` (every rejected row: reason, parser code, completion), ``generations.jsonl`` (the
cache), ``distill.json`` (the counts) and ``report.md`` (kept/rejected per modality and category).
``out_dir`` must be new, empty or an earlier distill output (``proguard.outputs``: its marker), and is
locked for the run. A teacher reply holding a chat-template control token (``<|im_end|>``...) is
rejected (``special_tokens``): kept, it would become a real control token in the SFT data.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proguard.bench.backends import GenerationFailed, clean_messages
from proguard.bench.cache import CACHE_FILE, CachedGeneration, GenerationCache, config_key, prompt_hash
from proguard.distill.gold import DistillError, Gold, check_answer
from proguard.distill.teachers import Teacher, TeacherPrompt, find_special_token
from proguard.outputs import output_run
from taxonomy import Taxonomy

OUTPUT_KIND = "distill"
"""The marker kind of a distill output folder (``proguard.outputs``)."""
DATASET_DIR = "dataset"
REPORT_FILE = "report.md"
SUMMARY_FILE = "distill.json"
REJECTED_FILE = "rejected.jsonl"
KEPT_COLUMNS = (
    "task_id", "sample_id", "modality", "request_label", "response_label", "category", "category_name",
    "category_level", "id_map", "ood", "ood_name", "ood_synonyms",
)
"""Task columns copied into the SFT dataset (ground truth, so the dataset can be checked or benched)."""


@dataclass(frozen=True)
class DistillConfig:
    """Options of a distillation run (sampling settings belong to the teacher's backend)."""

    batch_size: int = 16
    limit: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise DistillError(f"batch_size: must be a positive integer, got {self.batch_size!r}")
        if self.limit is not None and (not isinstance(self.limit, int) or self.limit < 1):
            raise DistillError(f"limit: must be a positive integer or None, got {self.limit!r}")


@dataclass
class DistillResult:
    """Counts and output paths of a run."""

    out_dir: Path
    rows: int
    kept: int
    generated: int
    cached: int
    rejected: Counter = field(default_factory=Counter)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def dataset_path(self) -> Path:
        """The SFT dataset directory."""
        return self.out_dir / DATASET_DIR

    @property
    def report_path(self) -> Path:
        """``report.md``."""
        return self.out_dir / REPORT_FILE


def run_distill(
    tasks: Any,
    teacher: Teacher,
    out_dir: str | Path,
    taxonomy: Taxonomy,
    *,
    prompt: TeacherPrompt | None = None,
    config: DistillConfig | None = None,
    tasks_label: str = "tasks",
) -> DistillResult:
    """Distil ``tasks`` (a task dataset) with ``teacher``; write the dataset, the report and the cache."""
    config = config or DistillConfig()
    prompt = prompt or TeacherPrompt()
    with output_run(out_dir, OUTPUT_KIND, command="distill", inputs=[prompt.path], legacy=[SUMMARY_FILE]) as out:
        return _distill(tasks, teacher, out, taxonomy, prompt, config, tasks_label)


def _distill(tasks: Any, teacher: Teacher, out: Path, taxonomy: Taxonomy, prompt: TeacherPrompt,
             config: DistillConfig, tasks_label: str) -> DistillResult:
    _check_columns(tasks, tasks_label)
    if config.limit is not None:
        tasks = tasks.select(range(min(config.limit, len(tasks))))
    if len(tasks) == 0:
        raise DistillError(f"{tasks_label}: no rows to distil")
    golds = [Gold.from_row(tasks[i], taxonomy, f"{tasks_label}: row {i + 1}") for i in range(len(tasks))]
    started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    description = {**teacher.describe(), "template_sha": config_key({"t": prompt.text})}
    cache = GenerationCache(out / CACHE_FILE, config_key(description))
    cached = cache.load()

    texts: dict[int, str | GenerationFailed] = {}
    n_generated = n_cached = 0
    modalities = tasks["modality"]
    order = sorted(range(len(tasks)), key=lambda i: modalities[i])
    from tqdm.auto import tqdm

    with tqdm(total=len(order), desc="distill", unit="row", disable=not config.progress) as bar:
        for start in range(0, len(order), config.batch_size):
            idx = order[start : start + config.batch_size]
            pending = []
            for i in idx:
                row = tasks[i]
                messages = prompt.messages(row["prompt"], golds[i])
                h = prompt_hash(messages, row.get("image"))
                hit = cached.get(golds[i].task_id)
                if hit is not None and hit.prompt_hash == h:
                    texts[i] = hit.text
                    n_cached += 1
                else:
                    pending.append((i, messages, row.get("image"), h))
            if pending:
                outs = teacher.answer([(m, img, golds[i]) for i, m, img, _ in pending])
                if len(outs) != len(pending):
                    raise RuntimeError(f"teacher returned {len(outs)} answers for {len(pending)} requests")
                fresh = []
                for (i, _, _, h), text in zip(pending, outs, strict=True):
                    texts[i] = text
                    if not isinstance(text, GenerationFailed):
                        fresh.append(CachedGeneration(golds[i].task_id, h, text, 0.0, 0.0))
                cache.append(fresh)  # before the next batch: an interruption loses at most one batch
                n_generated += len(fresh)
            bar.update(len(idx))

    kept_rows: list[int] = []
    rejected: list[dict[str, Any]] = []
    special = getattr(teacher, "special_tokens", None)
    specials = list(special()) if callable(special) else []
    for i in range(len(tasks)):
        text = texts[i]
        if isinstance(text, GenerationFailed):
            rejected.append(_rejection(golds[i], "generation_failed", text.message, ""))
            continue
        token = find_special_token(text, specials)
        if token is not None:
            rejected.append(_rejection(golds[i], "special_tokens", f"holds the control token {token!r}", text))
            continue
        parsed, reason = check_answer(text, golds[i])
        if reason is None:
            kept_rows.append(i)
        else:
            detail = f"{parsed.code}: {parsed.message}" if not parsed.ok else _disagreement(parsed, golds[i], reason)
            rejected.append(_rejection(golds[i], reason, detail, text))
    if kept_rows:
        _write_dataset(out / DATASET_DIR, tasks, kept_rows, texts, description)
    elif (out / DATASET_DIR).exists():
        _replace_dir(out / DATASET_DIR, None)
    _write_jsonl(out / REJECTED_FILE, rejected)

    summary = _summary(golds, kept_rows, rejected, description, tasks_label, started, n_generated, n_cached)
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / REPORT_FILE).write_text(_report(summary, rejected), encoding="utf-8")
    return DistillResult(
        out, len(tasks), len(kept_rows), n_generated, n_cached, Counter(r["reason"] for r in rejected), summary
    )


def _check_columns(tasks: Any, origin: str) -> None:
    from rewards.types import TARGET_COLUMNS

    needed = ("task_id", "prompt", *TARGET_COLUMNS)
    missing = [c for c in needed if c not in tasks.column_names]
    if missing:
        raise DistillError(
            f"{origin}: not a task dataset, missing column(s) {', '.join(missing)} "
            "(task datasets come from proguard tasks / proguard.tasks.build_tasks)"
        )


def _rejection(gold: Gold, reason: str, detail: str, text: str) -> dict[str, Any]:
    return {
        "task_id": gold.task_id, "sample_id": gold.sample_id, "modality": gold.modality, "group": gold.group,
        "reason": reason, "detail": detail, "completion": text,
    }


def _disagreement(parsed: Any, gold: Gold, reason: str) -> str:
    t = gold.target
    if reason == "request_label":
        return f"said Request: {parsed.request}, gold {t.request_label}"
    if reason == "response_label":
        return f"said Response: {parsed.response}, gold {t.response_label}"
    return f"said Category: {parsed.category} ({parsed.category_kind}), gold {gold.category_shown}"


# ---------------------------------------------------------------------------------------------
# Outputs
# ---------------------------------------------------------------------------------------------
def sft_features():
    """The ``datasets`` schema of a distilled SFT dataset."""
    import datasets

    s = datasets.Value("string")
    features = {c: s for c in KEPT_COLUMNS}
    features["ood"] = datasets.Value("bool")
    features["ood_synonyms"] = datasets.List(s)
    features["messages"] = datasets.List({"role": s, "content": datasets.List({"type": s, "text": s})})
    features["images"] = datasets.List(datasets.Image())
    features["teacher"] = s
    return datasets.Features(features)


def _write_dataset(path: Path, tasks: Any, rows: Sequence[int], texts: dict, description: dict) -> None:
    import datasets

    columns: dict[str, list] = {c: [] for c in sft_features()}
    teacher = json.dumps(description, sort_keys=True)
    has_image = "image" in tasks.column_names
    for i in rows:
        row = tasks[i]
        for c in KEPT_COLUMNS:
            columns[c].append(row.get(c))
        assistant = {"role": "assistant", "content": [{"type": "text", "text": texts[i].strip()}]}
        columns["messages"].append([*_plain(clean_messages(row["prompt"])), assistant])
        image = row.get("image") if has_image else None
        columns["images"].append([] if image is None else [image])
        columns["teacher"].append(teacher)
    ds = datasets.Dataset.from_dict(columns, features=sft_features())
    _replace_dir(path, ds)


def _plain(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages with every content part holding exactly ``type`` and ``text`` (the dataset's struct)."""
    out = []
    for m in messages:
        parts = m["content"] if isinstance(m["content"], list) else [{"type": "text", "text": m["content"]}]
        out.append({"role": m["role"], "content": [{"type": p["type"], "text": p.get("text")} for p in parts]})
    return out


def _replace_dir(path: Path, ds: Any) -> None:
    """Write ``ds`` to ``path`` via a scratch dir; an existing ``path`` is replaced only if it is a saved dataset."""
    if path.exists() and not (path / "dataset_info.json").is_file():
        raise DistillError(f"{path}: exists and is not a dataset this command wrote; choose another --out")
    if ds is None:
        shutil.rmtree(path)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        ds.save_to_disk(str(scratch / "d"))
        if path.exists():
            shutil.rmtree(path)
        os.rename(scratch / "d", path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _write_jsonl(path: Path, records: Sequence[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")


def _summary(golds, kept_rows, rejected, description, label, started, n_generated, n_cached) -> dict[str, Any]:
    def table(key) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for g in golds:
            out.setdefault(key(g), {"rows": 0, "kept": 0, "rejected": 0})["rows"] += 1
        for i in kept_rows:
            out[key(golds[i])]["kept"] += 1
        for r in rejected:
            out[r["modality"] if key is _modality else r["group"]]["rejected"] += 1
        return dict(sorted(out.items()))

    formats = Counter(r["detail"].split(":", 1)[0] for r in rejected if r["reason"] == "format")
    return {
        "tasks": label,
        "teacher": description,
        "started": started,
        "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "rows": len(golds),
        "kept": len(kept_rows),
        "rejected": len(rejected),
        "generated": n_generated,
        "cached": n_cached,
        "reasons": dict(sorted(Counter(r["reason"] for r in rejected).items())),
        "format_codes": dict(sorted(formats.items())),
        "by_modality": table(_modality),
        "by_category": table(lambda g: g.group),
    }


def _modality(g: Gold) -> str:
    return g.modality


def _report(s: dict[str, Any], rejected: Sequence[dict[str, Any]]) -> str:
    lines = [
        "# Distillation report",
        "",
        f"- tasks: `{s['tasks']}`",
        f"- teacher: `{json.dumps(s['teacher'], sort_keys=True)}`",
        f"- command: `{s['command']}`",
        f"- started {s['started']}, finished {s['finished']}",
        f"- rows {s['rows']}: **kept {s['kept']}**, rejected {s['rejected']} "
        f"({s['generated']} answers generated this run, {s['cached']} from the cache)",
        "",
        "Every answer was parsed with the guard's parser and checked against the row's gold labels and "
        "category; a rejected answer is not in the dataset.",
        "",
    ]
    for title, key in (("By modality", "by_modality"), ("By category", "by_category")):
        lines += [f"## {title}", "", "| | rows | kept | rejected |", "| --- | ---: | ---: | ---: |"]
        lines += [f"| {k} | {v['rows']} | {v['kept']} | {v['rejected']} |" for k, v in s[key].items()]
        lines.append("")
    lines += ["## Rejections", ""]
    if not rejected:
        lines += ["None.", ""]
    else:
        lines += ["| reason | count |", "| --- | ---: |"]
        lines += [f"| {k} | {v} |" for k, v in s["reasons"].items()]
        lines += [f"| format: {k} | {v} |" for k, v in s["format_codes"].items()]
        lines += ["", "First rejected rows (all of them are in `rejected.jsonl`):", ""]
        for r in rejected[:10]:
            lines.append(f"- `{r['task_id']}` ({r['modality']}, {r['group']}): {r['reason']}: {r['detail'][:200]}")
        lines.append("")
    return "\n".join(lines)
