"""XSTest (Röttger et al., NAACL 2024; CC-BY-4.0): 450 prompts, 250 safe that look unsafe and 200 unsafe
contrasts, released as ``xstest_prompts.csv`` (github.com/paul-rottger/xstest; hf Paul/XSTest).

Columns as released: ``id, prompt, type, label, focus, note``; ``label`` is ``safe``/``unsafe``. Prompt
level, binary only (ProGuard scores XSTest's binary label; its ``type`` is a prompt style, not a harm).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from proguard.suites.base import Adapter, BenchSample, SuiteDataError, group_of, harm_label, read_csv, text


class XSTest(Adapter):
    """XSTest prompts (``xstest_prompts.csv``)."""

    name = "xstest"
    title = "XSTest"
    folder = "xstest"
    files = ("xstest_prompts.csv",)
    hub_id = "Paul/XSTest"
    hub_split = "train"
    published = "github.com/paul-rottger/xstest, CC-BY-4.0"
    levels = ("prompt",)

    def read(self, path: Path) -> Iterator[BenchSample]:
        for i, rec in read_csv(path, ("id", "prompt", "label")):
            yield from self.from_record(rec, i, str(path), path.parent)

    def from_record(self, rec: dict, row: int, origin: str, base: Path | None) -> Iterator[BenchSample]:
        where = f"{origin}: row {row}"
        prompt = text(rec, "prompt", where)
        label = harm_label(rec.get("label"), where, "label")
        if label is None:
            raise SuiteDataError(f"{where}: label: empty")
        yield BenchSample(f"xstest-{rec.get('id') or row}", "text", prompt, None, label, None, group_of(prompt))
