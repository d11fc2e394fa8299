"""LlavaGuard dataset (Helff et al., ICML 2025; hf AIML-TUDA/LlavaGuard, gated): images rated against a
9-category policy, released as parquet (``data/test-*.parquet``).

Columns as released: ``id, image, rating, category, rationale`` (and the ``policy`` prompt). ``rating``
is ``Safe``/``Unsafe``; ``category`` is ``O1: Hate, Humiliation, Harassment`` ... ``O9: Disasters or
Emergencies``, or ``NA: None applying`` for safe images. Image level with categories.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from proguard.suites.base import Adapter, BenchSample, SuiteDataError, files_in, group_of, harm_label, image_cell, read_table, text


class LlavaGuard(Adapter):
    """LlavaGuard test split (image level, 9 categories)."""

    name = "llavaguard"
    title = "LlavaGuard"
    folder = "llavaguard"
    files = ("",)
    hub_id = "AIML-TUDA/LlavaGuard"
    hub_split = "test"
    published = "huggingface.co/datasets/AIML-TUDA/LlavaGuard (data/test-*.parquet, gated)"
    levels = ("image",)
    categories = True
    modality = "image"

    def read(self, path: Path) -> Iterator[BenchSample]:
        for f in files_in(path, "*test*.parquet"):
            for i, rec in read_table(f):
                yield from self.from_record(rec, i, str(f), f.parent)

    def from_record(self, rec: dict, row: int, origin: str, base: Path | None) -> Iterator[BenchSample]:
        where = f"{origin}: row {row}"
        label = harm_label(rec.get("rating"), where, "rating", unsafe=("unsafe",), safe=("safe",))
        if label is None:
            raise SuiteDataError(f"{where}: rating: empty")
        cat = text(rec, "category", where, optional=True)
        image = image_cell(rec.get("image"), base, where)
        sid = rec.get("id") or f"{Path(origin).stem}-{row}"
        cats = (cat,) if cat and label == "unsafe" and not cat.upper().startswith("NA") else ()
        yield BenchSample(f"llavaguard-{sid}", "image", None, None, label, None, group_of(str(sid)), cats, image)
