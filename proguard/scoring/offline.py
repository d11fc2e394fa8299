"""Offline reward scoring: a JSONL file of completions with their ground truth in, every score out.

One JSON object per line: the completion under ``completion`` (a string, or a list of chat
messages) plus the sample-schema ground truth (``modality``, ``request_label``,
``response_label``, ``category`` as an ID or a name of the taxonomy) and, optionally, the task
columns (``category_level``, ``id_map``, ``ood``, ``ood_name``, ``ood_synonyms``). An OOD row
without ``ood_name`` takes the name and synonyms of its category from the taxonomy; a row without
``category_level`` takes the level the default prompt asks for. Every problem is reported as
``file: row N: field: what``.

Output rows are the input rows plus ``reward`` (the total), ``reward_components``,
``reward_parts`` and ``format_error`` (the parser's code, or ``null``).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from proguard.data import DataError, read_jsonl
from proguard.hints import problems_message
from proguard.protocol import PromptConfig
from proguard.scoring.compose import Breakdown, CompositeReward, check_target_row, target_from_row
from rewards.types import Target
from taxonomy import Taxonomy



class ScoringInputError(ValueError):
    """Invalid rows in a file to score; the message lists ``file: row N: field: what`` per problem."""


@dataclass
class ScoringRows:
    """The validated rows of a file: raw records, completions and targets, in file order."""

    records: list[dict[str, Any]]
    completions: list[Any]
    targets: list[Target]


def _read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    try:
        yield from read_jsonl(path)
    except DataError as exc:
        raise ScoringInputError(str(exc)) from None


def _resolve_category(row: dict[str, Any], taxonomy: Taxonomy, problems: list[str]) -> None:
    cat = row.get("category")
    if cat in (None, ""):
        return
    node = taxonomy.find(cat) if isinstance(cat, str) else None
    if node is None:
        problems.append(f"category: {cat!r} is not an ID or name in taxonomy {taxonomy.name!r}")
        return
    row["category"] = node.key or node.id
    if row.get("ood") is True and not row.get("ood_name"):
        row["ood_name"] = node.name
        row.setdefault("ood_synonyms", list(node.synonyms))


def read_scoring_rows(path: str | Path, taxonomy: Taxonomy) -> ScoringRows:
    """Read and validate a JSONL file of completions; raises ``ScoringInputError`` listing every problem."""
    path = Path(path)
    if not path.is_file():
        raise ScoringInputError(f"{path}: no such file")
    prompt = PromptConfig()
    errors: list[str] = []
    out = ScoringRows([], [], [])
    for n, record in _read_jsonl(path):
        if not isinstance(record, dict):
            errors.append(f"{path}: row {n}: expected a JSON object, got {type(record).__name__}")
            continue
        problems: list[str] = []
        if "completion" not in record:
            problems.append("completion: missing (the completion text to score)")
        elif not isinstance(record["completion"], (str, list)):
            problems.append(f"completion: must be a string or a list of chat messages, got {type(record['completion']).__name__}")
        row = dict(record)
        _resolve_category(row, taxonomy, problems)
        if not problems:
            problems.extend(check_target_row(row))
        if not problems and not row.get("category_level") and row.get("modality"):
            row["category_level"] = prompt.level(row["modality"], taxonomy)
        if problems:
            errors.extend(f"{path}: row {n}: {p}" for p in problems)
            continue
        out.records.append(record)
        out.completions.append(record["completion"])
        out.targets.append(target_from_row(row))
    if errors:
        raise ScoringInputError(problems_message(f"{len(errors)} problem(s) in {path}:", errors))
    if not out.records:
        raise ScoringInputError(f"{path}: no rows")
    return out


def score_rows(reward: CompositeReward, rows: ScoringRows, batch_size: int = 1024) -> Breakdown:
    """Score validated rows in batches; one ``Breakdown`` over the whole file."""
    merged: Breakdown | None = None
    for start in range(0, len(rows.records), batch_size):
        part = reward.breakdown(rows.completions[start : start + batch_size], rows.targets[start : start + batch_size])
        if merged is None:
            merged = part
            continue
        merged.total += part.total
        merged.parsed += part.parsed
        for k, v in part.components.items():
            merged.components[k] += v
        for k, v in part.parts.items():
            merged.parts[k] += v
    assert merged is not None
    return merged


def write_scored(path: str | Path | TextIO, rows: ScoringRows, result: Breakdown) -> None:
    """Write each input row with its total, components, parts and format error as JSONL."""
    if not isinstance(path, (str, Path)):
        _write_rows(path, rows, result)
        return
    with Path(path).open("w", encoding="utf-8") as fh:
        _write_rows(fh, rows, result)


def _write_rows(fh: TextIO, rows: ScoringRows, result: Breakdown) -> None:
    for i, record in enumerate(rows.records):
        r = result.row(i)
        out = {
            **record,
            "reward": r["reward"],
            "reward_components": r["components"],
            "reward_parts": r["parts"],
            "format_error": r["format_error"],
        }
        fh.write(json.dumps(out, ensure_ascii=False) + "\n")


def summary(result: Breakdown) -> str:
    """A plain-text table: total, then each component and part (mean, std, rows applicable), format errors."""
    metrics = result.metrics()
    n = len(result.total)
    mean = sum(result.total) / n
    std = (sum((t - mean) ** 2 for t in result.total) / n) ** 0.5
    lines = [f"{'score':<28} {'mean':>8} {'std':>8} {'rows':>7}", f"{'total':<28} {mean:8.4f} {std:8.4f} {n:7d}"]
    for name, scores in result.components.items():
        applied = sum(s is not None for s in scores)
        if applied:
            lines.append(
                f"{name:<28} {metrics[f'reward/{name}/mean']:8.4f} {metrics[f'reward/{name}/std']:8.4f} {applied:7d}"
            )
        else:
            lines.append(f"{name:<28} {'-':>8} {'-':>8} {0:7d}")
    for key, scores in result.parts.items():
        applied = sum(s is not None for s in scores)
        shown = f"{metrics[f'reward/{key}/mean']:8.4f}" if applied else f"{'-':>8}"
        lines.append(f"  {key:<26} {shown} {'':>8} {applied:7d}")
    errors = Counter(p.code for p in result.parsed if not p.ok)  # type: ignore[union-attr]
    if errors:
        lines.append("format errors: " + ", ".join(f"{code} {count}" for code, count in errors.most_common()))
    return "\n".join(lines)
