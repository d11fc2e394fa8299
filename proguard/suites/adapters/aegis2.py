"""Aegis 2.0 (Ghosh et al., NAACL 2025; CC-BY-4.0; hf nvidia/Aegis-AI-Content-Safety-Dataset-2.0):
human-LLM interactions released as ``test.json`` (1,964 rows; JSON lines).

Fields as released: ``id, prompt, response, prompt_label, response_label, violated_categories,
prompt_label_source, response_label_source`` (and ``reconstruction_id_if_redacted``). Labels are
``safe``/``unsafe``; prompt-only rows have ``response`` and ``response_label`` null or empty.
``violated_categories`` is one comma-separated string over 12 core and 9 extended categories.

Quirk: prompts taken from the Suicide Detection dataset are not distributed; their ``prompt`` is the
literal ``REDACTED``. Those rows are left out and counted ("prompt REDACTED upstream").
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from proguard.suites.base import Adapter, BenchSample, Skip, group_of, harm_label, read_json_records, text

# Category names contain commas only inside these (e.g. none today), so a plain split on "," is exact;
# kept as a list to make a future comma-bearing name an explicit edit.
_COMPOSITE: tuple[str, ...] = ()


def split_categories(value: str | None) -> tuple[str, ...]:
    """``"Violence, Criminal Planning/Confessions"`` -> ``("Violence", "Criminal Planning/Confessions")``."""
    if not value:
        return ()
    return tuple(c.strip() for c in str(value).split(",") if c.strip())


class Aegis2(Adapter):
    """Aegis 2.0 test (prompt and response level, 21 categories)."""

    name = "aegis2"
    title = "Aegis 2.0"
    folder = "aegis2"
    files = ("test.json", "test.jsonl", "data/test.json")
    hub_id = "nvidia/Aegis-AI-Content-Safety-Dataset-2.0"
    hub_split = "test"
    published = "huggingface.co/datasets/nvidia/Aegis-AI-Content-Safety-Dataset-2.0 (test.json), CC-BY-4.0"
    levels = ("prompt", "response")
    categories = True

    def read(self, path: Path) -> Iterator[BenchSample | Skip]:
        for i, rec in _records(path):
            yield from self.from_record(rec, i, str(path), path.parent)

    def from_record(self, rec: dict, row: int, origin: str, base: Path | None) -> Iterator[BenchSample | Skip]:
        where = f"{origin}: row {row}"
        prompt = text(rec, "prompt", where)
        if prompt.strip() == "REDACTED":
            yield Skip("prompt REDACTED upstream (Suicide Detection samples are not distributed)")
            return
        response = text(rec, "response", where, optional=True)
        p_label = harm_label(rec.get("prompt_label"), where, "prompt_label", unsafe=("unsafe",), safe=("safe",))
        r_label = None
        if response is not None:
            r_label = harm_label(rec.get("response_label"), where, "response_label", unsafe=("unsafe",), safe=("safe",))
        cats = split_categories(rec.get("violated_categories"))
        sid = rec.get("id") or row
        yield BenchSample(f"aegis2-{sid}", "text", prompt, response, p_label, r_label, group_of(prompt), cats)


def _records(path: Path) -> Iterator[tuple[int, dict]]:
    """``test.json`` is JSON lines despite its name; a JSON list is read too."""
    import json

    from proguard.suites.base import SuiteDataError, open_text

    with open_text(path) as fh:
        head = fh.read(1)
        while head and head.isspace():
            head = fh.read(1)
    if head == "[":
        yield from read_json_records(path)
        return
    with open_text(path) as fh:
        for i, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SuiteDataError(f"{path}: row {i}: not valid JSON: {exc.msg}") from None
            if not isinstance(rec, dict):
                raise SuiteDataError(f"{path}: row {i}: expected a JSON object")
            yield i, rec
