"""OpenAI Moderation evaluation set (Markov et al., AAAI 2023; MIT; github.com/openai/moderation-api-release):
``data/samples-1680.jsonl.gz``, one JSON object per line: ``prompt`` and eight 0/1 flags ``S`` (sexual),
``H`` (hate), ``V`` (violence), ``HR`` (harassment), ``SH`` (self-harm), ``S3`` (sexual/minors),
``H2`` (hate/threatening), ``V2`` (violence/graphic).

Quirk: not every row carries all eight keys (verified on the GitHub file: 755 of 1,680 rows have all
eight; 522 rows set at least one flag). Two protocols:

* ``published`` (default): a missing flag counts as 0, so every row is labelled: 1,680 rows, 522 unsafe,
  as in GuardReasoner's benchmark file (``data/benchmark/0_2_OpenAIModeration.json``: 1,680 rows, 522
  harmful) and the published F1 figures;
* ``strict``: a missing key is unknown: a row is unsafe when a present flag is 1, safe only when all
  eight are present and 0, else not labelled (859 rows scored: 522 unsafe, 337 safe). Not comparable
  with published numbers.

The category labels are the flags set to 1, the narrower first: ``S3`` is a kind of ``S``, ``H2`` of
``H``, ``V2`` of ``V`` (``label_parents``), so the most specific flag's node is chosen where one is
(export; ``--category-rule most_specific``), and scoring may keep all flags.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from proguard.suites.base import Adapter, BenchSample, flag, group_of, read_json_records, text

FLAGS = ("S", "H", "V", "HR", "SH", "S3", "H2", "V2")
SPECIFIC_FIRST = ("S3", "H2", "V2", "SH", "HR", "S", "H", "V")
"""The flags in label order: each narrower flag before its broader one."""


class OpenAIModeration(Adapter):
    """OpenAI Moderation 1,680 prompts (prompt level, eight category flags)."""

    name = "openai_moderation"
    title = "OpenAI Moderation"
    folder = "openai_moderation"
    files = ("samples-1680.jsonl.gz", "data/samples-1680.jsonl.gz", "samples-1680.jsonl")
    published = "github.com/openai/moderation-api-release (data/samples-1680.jsonl.gz), MIT"
    levels = ("prompt",)
    categories = True
    label_parents = {"S3": "S", "H2": "H", "V2": "V"}
    protocols = {
        "published": "all 1,680 rows; a missing flag counts as 0 (522 unsafe); the published evaluations' rule",
        "strict": "a missing flag is unknown: rows with no flag set and a key missing are not labelled (859 scored)",
    }

    def read(self, path: Path) -> Iterator[BenchSample]:
        for i, rec in read_json_records(path):
            yield from self.from_record(rec, i, str(path), path.parent)

    def from_record(self, rec: dict, row: int, origin: str, base: Path | None) -> Iterator[BenchSample]:
        where = f"{origin}: row {row}"
        prompt = text(rec, "prompt", where)
        flags = {k: flag(rec.get(k), where, k) for k in FLAGS}
        on = tuple(k for k in SPECIFIC_FIRST if flags[k])
        if on:
            label: str | None = "unsafe"
        elif self.protocol != "strict" or all(v is False for v in flags.values()):
            label = "safe"
        else:
            label = None  # strict: some flag missing and none set: unknown
        yield BenchSample(f"oai-{row}", "text", prompt, None, label, None, group_of(prompt), on)
