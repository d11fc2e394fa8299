"""HarmBench (Mazeika et al., ICML 2024; MIT; github.com/centerforaisafety/HarmBench): harmful behaviours
released as ``data/behavior_datasets/harmbench_behaviors_text_{all,test,val}.csv``.

Columns as released: ``Behavior, FunctionalCategory, SemanticCategory, Tags, ContextString, BehaviorID``
(verified on a verbatim copy of the files, busycalibrating/AdversariaLLM ``data/behavior_datasets/``).
``_all`` holds 400 rows (200 ``standard``, 100 ``contextual``, 100 ``copyright``) = ``_test`` (320: 159 /
81 / 80) + ``_val`` (80). Every behaviour is unsafe. A ``contextual`` behaviour is asked with its context
first, as HarmBench does (``ContextString`` + blank line + ``---`` + blank line + ``Behavior``). The
category map is over ``SemanticCategory``. Protocols:

* ``all`` (default; ProGuard's): the 400 rows of ``harmbench_behaviors_text_all.csv`` (the paper's
  all-unsafe F1 figures fit 400 rows for 13 of its 14 values);
* ``guardreasoner``: GuardReasoner's HarmBenchPrompt, 239 rows: the ``standard`` and ``copyright`` rows
  of ``harmbench_behaviors_text_test.csv`` (159 + 80; matched to its ``data/benchmark/0_3_harmbench_prompt.json``,
  238 exactly and one up to a trailing space); ``contextual`` rows are left out and counted;
* ``test``: the 320 rows of ``harmbench_behaviors_text_test.csv``.

(HarmBench's classifier-labelled response set is not read yet: see docs/suites.md.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from proguard.suites.base import Adapter, BenchSample, Skip, group_of, read_csv, text

_DIR = "data/behavior_datasets/"


class HarmBench(Adapter):
    """HarmBench text behaviours (prompt level)."""

    name = "harmbench"
    title = "HarmBench"
    folder = "harmbench"
    files = ("harmbench_behaviors_text_all.csv", _DIR + "harmbench_behaviors_text_all.csv")
    published = "github.com/centerforaisafety/HarmBench (data/behavior_datasets), MIT"
    levels = ("prompt",)
    categories = True
    protocols = {
        "all": "harmbench_behaviors_text_all.csv, 400 rows (test + val), ProGuard's set",
        "guardreasoner": ("harmbench_behaviors_text_test.csv without contextual rows, 239 rows "
                          "(GuardReasoner's HarmBenchPrompt)"),
        "test": "harmbench_behaviors_text_test.csv, 320 rows",
    }
    protocol_files = {
        "all": files,
        "guardreasoner": ("harmbench_behaviors_text_test.csv", _DIR + "harmbench_behaviors_text_test.csv"),
        "test": ("harmbench_behaviors_text_test.csv", _DIR + "harmbench_behaviors_text_test.csv"),
    }

    def read(self, path: Path) -> Iterator[BenchSample | Skip]:
        for i, rec in read_csv(path, ("Behavior", "SemanticCategory", "BehaviorID")):
            yield from self.from_record(rec, i, str(path), path.parent)

    def from_record(self, rec: dict, row: int, origin: str, base: Path | None) -> Iterator[BenchSample | Skip]:
        where = f"{origin}: row {row}"
        if self.protocol == "guardreasoner" and (rec.get("FunctionalCategory") or "").strip() == "contextual":
            yield Skip("contextual behaviour (not in GuardReasoner's HarmBenchPrompt)")
            return
        behavior = text(rec, "Behavior", where)
        context = text(rec, "ContextString", where, optional=True)
        prompt = f"{context}\n\n---\n\n{behavior}" if context else behavior
        bid = text(rec, "BehaviorID", where)
        cat = text(rec, "SemanticCategory", where)
        yield BenchSample(f"harmbench-{bid}", "text", prompt, None, "unsafe", None, group_of(prompt), (cat,))
