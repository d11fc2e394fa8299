"""Benchmark samples as the project's labelled samples (``proguard.data.Sample``), for ``proguard tasks``
and training: ``proguard suites export NAME --data-root DIR --out FILE``.

A sample-schema row needs a request label and, when unsafe, a category; benchmark rows without them
(a level the benchmark does not label, an unsafe row whose labels the map does not cover) are left out
and counted by reason. The ``group`` is kept, so a split can keep a question's responses together.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from proguard.data import Sample, samples_to_dataset
from proguard.suites.base import BenchSample, SuiteDataError
from proguard.suites.catmap import CategoryMap
from taxonomy import Taxonomy


def to_samples(samples: Sequence[BenchSample], taxonomy: Taxonomy, cmap: CategoryMap | None,
               parents: Mapping[str, str] | None = None,
               choose: Callable[[tuple[str, ...]], str] | None = None) -> tuple[list[Sample], dict[str, int]]:
    """Sample-schema rows and the count of rows left out per reason. A sample has one category: the
    most specific mapped label's node (``CategoryMap.targets``; ``parents`` is the adapter's
    ``label_parents``), so OpenAI Moderation's ``S3`` rows become sexualisation of minors, not sexual content.
    ``choose`` picks another of the mapped nodes (most specific first), as the OOD protocol does."""
    out: list[Sample] = []
    left: dict[str, int] = {}

    def skip(reason: str) -> None:
        left[reason] = left.get(reason, 0) + 1

    for s in samples:
        if s.request_label is None:
            skip("request not labelled by the benchmark")
            continue
        if s.response is not None and s.response_label is None:
            skip("response not labelled by the benchmark")
            continue
        category = None
        if s.unsafe:
            ids = cmap.targets(s.source_labels, parents=parents)[0] if cmap is not None else ()
            if not ids:
                skip("unsafe, but no mapped category")
                continue
            node = taxonomy.find(choose(ids) if choose else ids[0])
            category = node.key or node.id
        out.append(Sample(s.id, s.modality, s.request, s.response, s.image, s.request_label, s.response_label,
                          category, group=s.group))
    return out, left


def write_samples(samples: Sequence[Sample], path: str | Path) -> Path:
    """``.parquet`` (any modality, images embedded) or ``.jsonl`` (text only)."""
    path = Path(path)
    if not samples:
        raise SuiteDataError(f"{path}: nothing to write: no row of the benchmark has a request label and, when "
                             f"unsafe, a mapped category (see the counts left out)")
    ds = samples_to_dataset(samples)
    if path.suffix == ".parquet":
        ds.to_parquet(str(path))
    elif path.suffix == ".jsonl":
        if any(s.image is not None for s in samples):
            raise SuiteDataError(f"{path}: image samples need a .parquet output")
        ds.remove_columns("image").to_json(str(path), lines=True, force_ascii=False)
    else:
        raise SuiteDataError(f"{path}: write .parquet or .jsonl")
    return path
