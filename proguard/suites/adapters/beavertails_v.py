"""BeaverTails-V (Ji et al., 2025; CC-BY-NC-4.0; hf PKU-Alignment/BeaverTails-V): image + question +
response triples in one config per harm category, each with an ``evaluation`` split, released as
parquet files (``<category>/evaluation-*.parquet``).

Columns as released: ``question, image, category, image_severity, response, is_response_safe``.
``is_response_safe`` is the string ``"yes"``/``"no"`` (response level). The request (question + image)
is unsafe when ``image_severity`` > 0 and safe at 0 (our reading of the card: 0 = no harm in the image).
The category label is the ``category`` column (the config name, e.g. ``animal_abuse``). Text+image.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from proguard.suites.base import (
    Adapter,
    BenchSample,
    SuiteDataError,
    files_in,
    flag,
    group_of,
    image_cell,
    need,
    read_table,
    text,
)


class BeaverTailsV(Adapter):
    """BeaverTails-V evaluation splits of every category (prompt and response level, text+image)."""

    name = "beavertails_v"
    title = "BeaverTails-V"
    folder = "beavertails_v"
    files = ("",)  # the folder itself: every *evaluation*.parquet under it
    hub_id = None  # one config per category: download the evaluation parquet files instead
    published = "huggingface.co/datasets/PKU-Alignment/BeaverTails-V (<category>/evaluation-*.parquet), CC-BY-NC-4.0"
    levels = ("prompt", "response")
    categories = True
    modality = "text_image"

    def read(self, path: Path) -> Iterator[BenchSample]:
        for f in files_in(path, "*evaluation*.parquet"):
            for i, rec in read_table(f):
                yield from self.from_record(rec, i, str(f), f.parent)

    def from_record(self, rec: dict, row: int, origin: str, base: Path | None) -> Iterator[BenchSample]:
        where = f"{origin}: row {row}"
        question = text(rec, "question", where)
        response = text(rec, "response", where)
        cat = text(rec, "category", where)
        severity = need(rec, "image_severity", where)
        if not isinstance(severity, int) or isinstance(severity, bool) or severity < 0:
            raise SuiteDataError(f"{where}: image_severity: expected a non-negative integer, got {severity!r}")
        safe = flag(need(rec, "is_response_safe", where), where, "is_response_safe")
        if safe is None:
            raise SuiteDataError(f"{where}: is_response_safe: empty")
        image = image_cell(rec.get("image"), base, where)
        yield BenchSample(f"btv-{Path(origin).parent.name}-{Path(origin).stem}-{row}", "text_image", question,
                          response, "unsafe" if severity > 0 else "safe", "safe" if safe else "unsafe",
                          group_of(question, image if isinstance(image, str) else len(image)), (cat,), image)
