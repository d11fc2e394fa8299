"""UnsafeBench (Qu et al., CCS 2025; hf yiting/UnsafeBench, gated): 10,146 real and AI-generated images,
released as parquet (``data/test-*.parquet``, 2,037 test rows).

Columns as released: ``image, safety_label, category, source`` (and ``text``, the caption, added later).
``safety_label`` is ``Safe``/``Unsafe``. ``category`` (one of 11, e.g. ``Hate``, ``Sexual``) is the
category the image was *collected* for and is set on safe images too: it is a label only when unsafe.
Image level with categories.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from proguard.suites.base import (
    Adapter,
    BenchSample,
    SuiteDataError,
    files_in,
    group_of,
    harm_label,
    image_cell,
    read_table,
    text,
)


class UnsafeBench(Adapter):
    """UnsafeBench test split (image level, 11 categories)."""

    name = "unsafebench"
    title = "UnsafeBench"
    folder = "unsafebench"
    files = ("",)
    hub_id = "yiting/UnsafeBench"
    hub_split = "test"
    published = "huggingface.co/datasets/yiting/UnsafeBench (data/test-*.parquet, gated)"
    levels = ("image",)
    categories = True
    modality = "image"

    def read(self, path: Path) -> Iterator[BenchSample]:
        for f in files_in(path, "*test*.parquet"):
            for i, rec in read_table(f):
                yield from self.from_record(rec, i, str(f), f.parent)

    def from_record(self, rec: dict, row: int, origin: str, base: Path | None) -> Iterator[BenchSample]:
        where = f"{origin}: row {row}"
        label = harm_label(rec.get("safety_label"), where, "safety_label", unsafe=("unsafe",), safe=("safe",))
        if label is None:
            raise SuiteDataError(f"{where}: safety_label: empty")
        cat = text(rec, "category", where)
        image = image_cell(rec.get("image"), base, where)
        sid = f"unsafebench-{Path(origin).stem}-{row}"
        yield BenchSample(sid, "image", None, None, label, None, group_of(sid), (cat,) if label == "unsafe" else (), image)
