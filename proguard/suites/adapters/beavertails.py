"""BeaverTails (Ji et al., NeurIPS 2023; CC-BY-NC-4.0; hf PKU-Alignment/BeaverTails): question-answer
pairs judged by humans, released as ``round0/30k/test.jsonl.gz`` (3,021 rows; also ``round0/330k/test.jsonl.xz``).

Fields as released: ``prompt``, ``response``, ``category`` (a dict of the 14 harm categories to
booleans) and ``is_safe`` (the pair's label). The label is the **response's** (the QA pair): the prompt
level is not labelled. The category labels are the keys set to true.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from proguard.suites.base import Adapter, BenchSample, SuiteDataError, flag, group_of, need, read_json_records, text

CATEGORIES = (
    "animal_abuse", "child_abuse", "controversial_topics,politics", "discrimination,stereotype,injustice",
    "drug_abuse,weapons,banned_substance", "financial_crime,property_crime,theft", "hate_speech,offensive_language",
    "misinformation_regarding_ethics,laws_and_safety", "non_violent_unethical_behavior", "privacy_violation",
    "self_harm", "sexually_explicit,adult_content", "terrorism,organized_crime",
    "violence,aiding_and_abetting,incitement",
)


class BeaverTails(Adapter):
    """BeaverTails 30k test (response level, 14 categories)."""

    name = "beavertails"
    title = "BeaverTails"
    folder = "beavertails"
    files = ("test.jsonl.gz", "round0/30k/test.jsonl.gz", "30k_test.jsonl.gz", "test.jsonl.xz",
             "round0/330k/test.jsonl.xz", "test.jsonl")
    hub_id = "PKU-Alignment/BeaverTails"
    hub_split = "30k_test"
    published = "huggingface.co/datasets/PKU-Alignment/BeaverTails (round0/30k/test.jsonl.gz), CC-BY-NC-4.0"
    levels = ("response",)
    categories = True

    def read(self, path: Path) -> Iterator[BenchSample]:
        for i, rec in read_json_records(path):
            yield from self.from_record(rec, i, str(path), path.parent)

    def from_record(self, rec: dict, row: int, origin: str, base: Path | None) -> Iterator[BenchSample]:
        where = f"{origin}: row {row}"
        prompt = text(rec, "prompt", where)
        response = text(rec, "response", where)
        safe = flag(need(rec, "is_safe", where), where, "is_safe")
        cats = need(rec, "category", where)
        if not isinstance(cats, dict):
            raise SuiteDataError(f"{where}: category: expected a dict of category -> bool, got {type(cats).__name__}")
        unknown = sorted(set(cats) - set(CATEGORIES))
        if unknown:
            raise SuiteDataError(f"{where}: category: unknown key {unknown[0]!r} (BeaverTails has 14: {', '.join(CATEGORIES)})")
        on = tuple(k for k in CATEGORIES if flag(cats.get(k), where, f"category.{k}"))
        yield BenchSample(f"beavertails-{row}", "text", prompt, response, None,
                          "safe" if safe else "unsafe", group_of(prompt), on if not safe else ())
