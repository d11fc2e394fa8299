"""SimpleSafetyTests (Vidgen et al., 2023; CC-BY-2.0 on the hub; hf Bertievidgen/SimpleSafetyTests):
100 hand-written unsafe prompts, released as ``sst_test_cases.csv``.

Columns as released: ``id, harm_area, counter, category, prompts_final``. Every prompt is unsafe; the
category map is over ``harm_area`` (five areas).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from proguard.suites.base import Adapter, BenchSample, group_of, read_csv, text


class SimpleSafetyTests(Adapter):
    """SimpleSafetyTests (prompt level, five harm areas)."""

    name = "simplesafetytests"
    title = "SimpleSafetyTests"
    folder = "simplesafetytests"
    files = ("sst_test_cases.csv",)
    hub_id = "Bertievidgen/SimpleSafetyTests"
    hub_split = "test"
    published = "huggingface.co/datasets/Bertievidgen/SimpleSafetyTests (sst_test_cases.csv)"
    levels = ("prompt",)
    categories = True

    def read(self, path: Path) -> Iterator[BenchSample]:
        for i, rec in read_csv(path, ("id", "harm_area", "prompts_final")):
            yield from self.from_record(rec, i, str(path), path.parent)

    def from_record(self, rec: dict, row: int, origin: str, base: Path | None) -> Iterator[BenchSample]:
        where = f"{origin}: row {row}"
        prompt = text(rec, "prompts_final", where)
        area = text(rec, "harm_area", where)
        yield BenchSample(f"sst-{rec.get('id') or row}", "text", prompt, None, "unsafe", None, group_of(prompt), (area,))
