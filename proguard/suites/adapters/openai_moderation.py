"""OpenAI Moderation evaluation set (Markov et al., AAAI 2023; MIT; github.com/openai/moderation-api-release):
``data/samples-1680.jsonl.gz``, one JSON object per line: ``prompt`` and eight 0/1 flags ``S`` (sexual),
``H`` (hate), ``V`` (violence), ``HR`` (harassment), ``SH`` (self-harm), ``S3`` (sexual/minors),
``H2`` (hate/threatening), ``V2`` (violence/graphic).

Quirk: not every row carries all eight keys. A missing key is **unknown, not 0**: a row is unsafe when
any present flag is 1, safe only when all eight are present and 0, and otherwise not labelled (kept,
counted, not scored). The category labels are the flags set to 1.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from proguard.suites.base import Adapter, BenchSample, flag, group_of, read_json_records, text

FLAGS = ("S", "H", "V", "HR", "SH", "S3", "H2", "V2")


class OpenAIModeration(Adapter):
    """OpenAI Moderation 1,680 prompts (prompt level, eight category flags)."""

    name = "openai_moderation"
    title = "OpenAI Moderation"
    folder = "openai_moderation"
    files = ("samples-1680.jsonl.gz", "samples-1680.jsonl")
    published = "github.com/openai/moderation-api-release (data/samples-1680.jsonl.gz), MIT"
    levels = ("prompt",)
    categories = True

    def read(self, path: Path) -> Iterator[BenchSample]:
        for i, rec in read_json_records(path):
            yield from self.from_record(rec, i, str(path), path.parent)

    def from_record(self, rec: dict, row: int, origin: str, base: Path | None) -> Iterator[BenchSample]:
        where = f"{origin}: row {row}"
        prompt = text(rec, "prompt", where)
        flags = {k: flag(rec.get(k), where, k) for k in FLAGS}
        on = tuple(k for k in FLAGS if flags[k])
        if on:
            label: str | None = "unsafe"
        elif all(v is False for v in flags.values()):
            label = "safe"
        else:
            label = None  # some flag missing and none set: unknown
        yield BenchSample(f"oai-{row}", "text", prompt, None, label, None, group_of(prompt), on)
