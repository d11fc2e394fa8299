"""HarmBench (Mazeika et al., ICML 2024; MIT; github.com/centerforaisafety/HarmBench): harmful behaviours
released as ``data/behavior_datasets/harmbench_behaviors_text_test.csv`` (also ``_val``, ``_all``).

Columns as released: ``Behavior, FunctionalCategory, SemanticCategory, Tags, ContextString, BehaviorID``.
Every behaviour is unsafe. A ``contextual`` behaviour is asked with its context first, as HarmBench
does (``ContextString`` + blank line + ``---`` + blank line + ``Behavior``). The category map is over
``SemanticCategory``. (HarmBench's classifier-labelled response set is not read yet: see docs/suites.md.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from proguard.suites.base import Adapter, BenchSample, group_of, read_csv, text


class HarmBench(Adapter):
    """HarmBench text behaviours (prompt level)."""

    name = "harmbench"
    title = "HarmBench"
    folder = "harmbench"
    files = ("harmbench_behaviors_text_test.csv", "harmbench_behaviors_text_all.csv")
    published = "github.com/centerforaisafety/HarmBench (data/behavior_datasets), MIT"
    levels = ("prompt",)
    categories = True

    def read(self, path: Path) -> Iterator[BenchSample]:
        for i, rec in read_csv(path, ("Behavior", "SemanticCategory", "BehaviorID")):
            yield from self.from_record(rec, i, str(path), path.parent)

    def from_record(self, rec: dict, row: int, origin: str, base: Path | None) -> Iterator[BenchSample]:
        where = f"{origin}: row {row}"
        behavior = text(rec, "Behavior", where)
        context = text(rec, "ContextString", where, optional=True)
        prompt = f"{context}\n\n---\n\n{behavior}" if context else behavior
        bid = text(rec, "BehaviorID", where)
        cat = text(rec, "SemanticCategory", where)
        yield BenchSample(f"harmbench-{bid}", "text", prompt, None, "unsafe", None, group_of(prompt), (cat,))
