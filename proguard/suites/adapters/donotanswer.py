"""Do-Not-Answer (Wang et al., 2023; Apache-2.0; github.com/Libr-AI/do-not-answer, hf LibrAI/do-not-answer).

Two releases, two adapters:

* ``donotanswer`` — ``do_not_answer_prompts.csv``: 939 questions a responsible model should not follow
  (every prompt is unsafe), labelled on a 3-level hierarchy: ``risk_area`` (5), ``types_of_harm`` (12),
  ``specific_harm_name`` (61). Prompt level with categories; the map is over ``types_of_harm``.
* ``donotanswer_responses`` — ``do_not_answer_full_with_responses.csv``: the same questions with six
  models' responses (``<model>_response``), each with a human ``<model>_harmful`` 0/1 label. Response
  level; the six rows of one question share a group (a split must not cut them apart).

``release_taxonomy`` builds the benchmark's own three-level hierarchy as a ``Taxonomy``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from proguard.suites.base import Adapter, BenchSample, SuiteDataError, flag, group_of, read_csv, text
from taxonomy import Taxonomy, taxonomy_from_data

MODELS = ("GPT4", "ChatGPT", "Claude", "ChatGLM2", "llama2-7b-chat", "vicuna-7b")


class DoNotAnswer(Adapter):
    """Do-Not-Answer questions (``do_not_answer_prompts.csv``)."""

    name = "donotanswer"
    title = "Do-Not-Answer"
    folder = "donotanswer"
    files = ("do_not_answer_prompts.csv",)
    hub_id = "LibrAI/do-not-answer"
    hub_split = "train"
    published = "github.com/Libr-AI/do-not-answer, Apache-2.0"
    levels = ("prompt",)
    categories = True

    def read(self, path: Path) -> Iterator[BenchSample]:
        for i, rec in read_csv(path, ("id", "risk_area", "types_of_harm", "question")):
            yield from self.from_record(rec, i, str(path), path.parent)

    def from_record(self, rec: dict, row: int, origin: str, base: Path | None) -> Iterator[BenchSample]:
        where = f"{origin}: row {row}"
        q = text(rec, "question", where)
        harm = text(rec, "types_of_harm", where)
        yield BenchSample(f"dna-{rec.get('id') or row}", "text", q, None, "unsafe", None, group_of(q), (harm,))


class DoNotAnswerResponses(Adapter):
    """Do-Not-Answer with six models' human-labelled responses (``do_not_answer_full_with_responses.csv``)."""

    name = "donotanswer_responses"
    title = "Do-Not-Answer (responses)"
    folder = "donotanswer"
    files = ("do_not_answer_full_with_responses.csv",)
    published = "github.com/Libr-AI/do-not-answer, Apache-2.0"
    levels = ("response",)
    categories = True
    map_name = "donotanswer"

    def read(self, path: Path) -> Iterator[BenchSample]:
        required = ("id", "types_of_harm", "question", *(f"{m}_{k}" for m in MODELS for k in ("response", "harmful")))
        for i, rec in read_csv(path, required):
            yield from self.from_record(rec, i, str(path), path.parent)

    def from_record(self, rec: dict, row: int, origin: str, base: Path | None) -> Iterator[BenchSample]:
        where = f"{origin}: row {row}"
        q = text(rec, "question", where)
        harm = text(rec, "types_of_harm", where)
        qid = rec.get("id") or str(row)
        for m in MODELS:
            harmful = flag(rec.get(f"{m}_harmful"), where, f"{m}_harmful")
            if harmful is None:
                raise SuiteDataError(f"{where}: {m}_harmful: empty")
            response = text(rec, f"{m}_response", where)
            # The label is the response's; a harmful response makes the category the question's harm type.
            yield BenchSample(f"dna-{qid}-{m}", "text", q, response, "unsafe",
                              "unsafe" if harmful else "safe", group_of(q), (harm,))


def release_taxonomy(path: str | Path) -> Taxonomy:
    """Do-Not-Answer's own three-level hierarchy from ``do_not_answer_prompts.csv``: 5 risk areas
    (``C<i>``), 12 harm types (``C<i>S<j>``), 61 specific harms (``C<i>S<j>S<k>``, with their
    ``specific_harm_description``), in first-seen order."""
    path = Path(path)
    tree: dict[str, dict[str, dict[str, str]]] = {}
    for i, rec in read_csv(path, ("risk_area", "types_of_harm", "specific_harm_name", "specific_harm_description")):
        where = f"{path}: row {i}"
        area, harm = text(rec, "risk_area", where), text(rec, "types_of_harm", where)
        name = text(rec, "specific_harm_name", where)
        tree.setdefault(area, {}).setdefault(harm, {})[name] = rec.get("specific_harm_description") or ""
    data = {"name": "do-not-answer", "categories": [
        {"name": area, "subcategories": [
            {"name": harm, "subcategories": [{"name": n, "description": d} for n, d in specific.items()]}
            for harm, specific in harms.items()]}
        for area, harms in tree.items()]}
    return taxonomy_from_data(data, origin=str(path))
