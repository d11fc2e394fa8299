"""XSTest-Response (Han et al., 2024, the WildGuard project; ODC-BY; hf allenai/xstest-response, gated):
XSTest prompts with model responses labelled for harmfulness, the response set ProGuard's and
GuardReasoner's "XSTest (response)" columns use. Released as parquet, split ``response_harmfulness``
(446 rows): ``data/response_harmfulness-00000-of-00001.parquet``.

Columns as released: ``prompt, response, label, prompt_type, prompt_harm_category``; ``label`` is
``harmful`` / ``unharmful`` (the WildGuard convention). Response level, binary. The column list is
the one on the dataset card (gated; a verbatim public derivative, heegyu/xstest-response-ko, lists
the same columns); the ``response_refusal`` split scores refusals, which a guard does not answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from proguard.suites.base import Adapter, BenchSample, SuiteDataError, files_in, group_of, harm_label, read_table, text


class XSTestResponse(Adapter):
    """XSTest-Response, response-harmfulness split (response level, binary)."""

    name = "xstest_response"
    title = "XSTest (responses)"
    folder = "xstest_response"
    files = ("",)
    hub_id = "allenai/xstest-response"
    hub_split = "response_harmfulness"
    published = "huggingface.co/datasets/allenai/xstest-response (data/response_harmfulness-*.parquet, gated), ODC-BY"
    levels = ("response",)

    def read(self, path: Path) -> Iterator[BenchSample]:
        for f in files_in(path, "response_harmfulness-*.parquet"):
            for i, rec in read_table(f):
                yield from self.from_record(rec, i, str(f), f.parent)

    def from_record(self, rec: dict, row: int, origin: str, base: Path | None) -> Iterator[BenchSample]:
        where = f"{origin}: row {row}"
        prompt = text(rec, "prompt", where)
        response = text(rec, "response", where)
        label = harm_label(rec.get("label"), where, "label")
        if label is None:
            raise SuiteDataError(f"{where}: label: empty")
        kind = rec.get("prompt_type")
        # XSTest's own prompt label is not in this release: the request level is not labelled here.
        yield BenchSample(f"xstest_response-{row}", "text", prompt, response, None, label, group_of(prompt),
                          (str(kind),) if kind else ())
