"""SimpleSafetyTests (Vidgen et al., 2023; github.com/bertiev/SimpleSafetyTests, hf
Bertievidgen/SimpleSafetyTests): 100 hand-written unsafe prompts in five harm areas.

Two published forms, both read:

* GitHub: ``SimpleSafetyTests - test cases.csv`` (the name has spaces), columns
  ``id, harm_area, counter, category, prompts_final``;
* Hugging Face: the same rows with the prompt column named ``prompt`` (``sst_test_cases.csv`` or the
  hub's parquet export ``data/test-*.parquet``).

Every prompt is unsafe; the category map is over ``harm_area``, whose five strings as released are
``Suicide, Self-Harm, and Eating Disorders``, ``Physical harm and Violence``, ``Illegal and Highly
Regulated items``, ``Scams and fraud``, ``Child safety`` (verified against the GitHub file).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from proguard.suites.base import Adapter, BenchSample, column, group_of, read_rows, text

PROMPT_COLUMNS = ("prompts_final", "prompt")
"""GitHub's name first, then the Hugging Face release's."""


class SimpleSafetyTests(Adapter):
    """SimpleSafetyTests (prompt level, five harm areas)."""

    name = "simplesafetytests"
    title = "SimpleSafetyTests"
    folder = "simplesafetytests"
    files = ("SimpleSafetyTests - test cases.csv", "sst_test_cases.csv", "data/test-*.parquet", "*.parquet")
    hub_id = "Bertievidgen/SimpleSafetyTests"
    hub_split = "test"
    published = ("github.com/bertiev/SimpleSafetyTests (SimpleSafetyTests - test cases.csv) or "
                 "hf Bertievidgen/SimpleSafetyTests")
    levels = ("prompt",)
    categories = True

    def read(self, path: Path) -> Iterator[BenchSample]:
        for i, rec in read_rows(path, ("id", "harm_area", PROMPT_COLUMNS)):
            yield from self.from_record(rec, i, str(path), path.parent)

    def from_record(self, rec: dict, row: int, origin: str, base: Path | None) -> Iterator[BenchSample]:
        where = f"{origin}: row {row}"
        prompt = text(rec, column(rec, PROMPT_COLUMNS, where), where)
        area = text(rec, "harm_area", where)
        yield BenchSample(f"sst-{rec.get('id') or row}", "text", prompt, None, "unsafe", None, group_of(prompt), (area,))
