"""WildGuardTest (Han et al., NeurIPS 2024; ODC-BY; hf allenai/wildguardmix, config ``wildguardtest``,
gated): released as ``test/wildguard_test.parquet``.

Columns as released: ``prompt, adversarial, response, prompt_harm_label, response_refusal_label,
response_harm_label, subcategory`` and the ``*_agreement`` columns. Labels are ``harmful`` /
``unharmful``; prompt-only rows have ``response`` and the response labels null, and a few rows have a
null label where annotators disagreed: those levels are not labelled (kept, counted, not scored).
Prompt and response level, binary (``subcategory`` is kept as the source label). The column names
``prompt_harm_label``, ``response_harm_label`` and ``response_refusal_label`` are the ones GuardReasoner's
``evaluate.py`` reads from its copy (verified there); the rest is from the dataset card (gated, unverified).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from proguard.suites.base import Adapter, BenchSample, group_of, harm_label, read_table, text


class WildGuardTest(Adapter):
    """WildGuardTest (prompt and response level, binary)."""

    name = "wildguardtest"
    title = "WildGuardTest"
    folder = "wildguardtest"
    files = ("wildguard_test.parquet", "test/wildguard_test.parquet")
    hub_id = "allenai/wildguardmix"
    hub_config = "wildguardtest"
    hub_split = "test"
    published = "huggingface.co/datasets/allenai/wildguardmix (test/wildguard_test.parquet, gated), ODC-BY"
    levels = ("prompt", "response")

    def read(self, path: Path) -> Iterator[BenchSample]:
        for i, rec in read_table(path):
            yield from self.from_record(rec, i, str(path), path.parent)

    def from_record(self, rec: dict, row: int, origin: str, base: Path | None) -> Iterator[BenchSample]:
        where = f"{origin}: row {row}"
        prompt = text(rec, "prompt", where)
        response = text(rec, "response", where, optional=True)
        p_label = harm_label(rec.get("prompt_harm_label"), where, "prompt_harm_label")
        r_label = harm_label(rec.get("response_harm_label"), where, "response_harm_label") if response else None
        sub = rec.get("subcategory")
        yield BenchSample(f"wildguardtest-{row}", "text", prompt, response, p_label, r_label, group_of(prompt),
                          (str(sub),) if sub else ())
