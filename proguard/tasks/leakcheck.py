"""The split leak check: held-out categories must be invisible everywhere except as ``eval_ood`` targets.

``check_split`` verifies a task ``DatasetDict`` (``train``, ``eval_id``, ``eval_ood``) against the
held-out node IDs and raises ``LeakError`` naming the first offending task:

- no prompt's system message (the policy, with its category list) contains a held-out node's name,
  synonym or description (case-insensitive, whole words, any whitespace; a hyphenated compound
  is one word), in any split;
- no held-out node is in any task's ``id_map`` (it is never a listed category);
- no ``train`` or ``eval_id`` task targets a held-out node (``category`` or ``ood_name``);
- every ``eval_ood`` task is OOD and targets a held-out node;
- no sample is in ``train`` and in an eval split.

The conversation (the user message) is the sample's own text: a safe request may well say "hacking"
while a held-out category is called "Hacking". With ``scope="policy"`` (default) training
conversations that mention a held-out term are only counted in the report; ``scope="prompt"`` makes
them leaks too. Scanning uses pyarrow's RE2 kernels on threads (about 0.75 CPU seconds for 87k 5 kB
prompts); ``build_tasks`` hands each batch of prompts to a ``PromptScanner`` as it is written, so the
scan overlaps the writing, and ``check_split`` reuses a result only for the very chunk that was scanned.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from proguard.errors import UsageError
from proguard.tasks.config import SCOPES
from proguard.tasks.rows import TaxonomyIndex
from taxonomy import Taxonomy

MAX_EXAMPLES = 5


class LeakError(UsageError):
    """A held-out category is visible where it must not be; the message names the task and the text."""


def held_out_terms(taxonomy: Taxonomy, holdout: Sequence[str]) -> list[tuple[str, str]]:
    """``(text, origin)`` for each name, synonym and description of the held-out nodes and their branches."""
    index = TaxonomyIndex(taxonomy)
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for src in index.hidden_ids(index.hidden_vector(list(holdout))):
        node = index.nodes[index.by_src[src]]
        for what, text in [("name", node.name), *[("synonym", s) for s in node.synonyms], ("description", node.description)]:
            norm = " ".join(text.split()).casefold()
            if norm and norm not in seen:
                seen.add(norm)
                out.append((text, f"{src} {what}"))
    return out


def term_pattern(terms: Sequence[str]) -> str:
    """An RE2 pattern matching any term as whole words, case-insensitively, across any whitespace.

    A hyphen joins words: ``Violent Crimes`` does not match inside ``Non-Violent Crimes``.
    """
    alts = [r"\s+".join(_escape(w) for w in t.split()) for t in terms]
    return r"(?i)(?:^|[^\w-])(?:" + "|".join(alts) + r")(?:[^\w-]|$)"


def _escape(word: str) -> str:
    # RE2 accepts a backslash before any ASCII punctuation; letters, digits and non-ASCII stay literal.
    return "".join("\\" + ch if ch.isascii() and not ch.isalnum() and ch != "_" else ch for ch in word)


def check_split(
    tasks: datasets.DatasetDict, taxonomy: Taxonomy, holdout: Sequence[str], *, scope: str = "policy",
    scanner: PromptScanner | None = None, groups: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Verify a category-disjoint split; raise ``LeakError`` on the first leak, else return a report.

    ``scanner``: a ``PromptScanner`` the task batches were submitted to as they were written.
    ``groups``: sample ID -> group key; no group may have samples both in train and in an eval split.
    """
    if scope not in SCOPES:
        raise ValueError(f"leak check scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    index = TaxonomyIndex(taxonomy)
    held = index.hidden_ids(index.hidden_vector(list(holdout)))
    terms = held_out_terms(taxonomy, holdout)
    pattern, id_map_pattern = _patterns(held, terms)
    tables = {name: ds.with_format("arrow")[:] for name, ds in tasks.items()}
    report: dict[str, Any] = {
        "scope": scope,
        "held_out": held,
        "terms": len(terms),
        "prompts_scanned": {name: t.num_rows for name, t in tables.items()},
        "conversation_mentions": 0,
        "conversation_examples": [],
    }
    if groups is not None:
        report["groups_checked"] = _check_groups(tables, groups)
    if not held:
        return report
    held_set = pa.array(held, pa.string())
    held_names = pa.array([index.nodes[index.by_src[h]].name for h in held], pa.string())

    train_ids = tables["train"].column("sample_id") if "train" in tables else pa.array([], pa.string())
    for name, table in tables.items():
        tid = table.column("task_id")
        if name != "train":
            _fail_where(pc.is_in(table.column("sample_id"), value_set=train_ids), tid, name,
                        "its sample is also in train (samples must not cross splits)")
        _fail_where(_run(scanner, _match, table.column("id_map"), id_map_pattern), tid, name,
                    "a held-out node is in its id_map (it was listed in the prompt)")
        if name == "eval_ood":
            _fail_where(pc.invert(table.column("ood")), tid, name, "an eval_ood task must be OOD")
            _fail_where(pc.invert(pc.is_in(table.column("category"), value_set=held_set)), tid, name,
                        "an eval_ood task must target a held-out node")
        else:
            _fail_where(pc.is_in(table.column("category"), value_set=held_set), tid, name,
                        "it targets a held-out node (held-out samples belong in eval_ood only)")
            _fail_where(pc.is_in(table.column("ood_name"), value_set=held_names), tid, name,
                        "its OOD target is a held-out node")
        if pattern is None:
            continue
        strict = name == "train" and scope == "prompt"  # conversations count as leaks only in train, scope prompt
        hits = [(start + row, role, text) for start, found in _run(scanner, _scan_chunk, table.column("prompt"), pattern)
                for row, role, text in found]
        leaks = [(row, text) for row, role, text in hits if role == "system" or strict]
        if leaks:
            row, text = leaks[0]
            raise LeakError(_leak_message(tid[row].as_py(), name, text, terms, len({r for r, _ in leaks})))
        if name == "train":
            mentions = sorted({row for row, role, _ in hits if role != "system"})
            report["conversation_mentions"] = len(mentions)
            report["conversation_examples"] = [tid[r].as_py() for r in mentions[:MAX_EXAMPLES]]
    return report


def _check_groups(tables: Mapping[str, pa.Table], groups: Mapping[str, str]) -> int:
    """``LeakError`` if a group has samples in train and in an eval split; returns the number of groups."""
    train = {groups[s] for s in tables["train"].column("sample_id").to_pylist()} if "train" in tables else set()
    for name, table in tables.items():
        if name == "train":
            continue
        for task_id, sid in zip(table.column("task_id").to_pylist(), table.column("sample_id").to_pylist(), strict=True):
            if groups[sid] in train:
                raise LeakError(
                    f"{name}: task {task_id}: its sample's group ({groups[sid].split(':', 1)[1]!r}) is also in train "
                    "(a group's samples must stay in one split)"
                )
    return len(set(groups.values()))


def _fail_where(flags: Any, task_ids: Any, split: str, why: str) -> None:
    flags = pc.fill_null(flags, False)
    if pc.any(flags).as_py():
        rows = pc.indices_nonzero(flags)
        first = task_ids[rows[0].as_py()].as_py()
        raise LeakError(f"leak: task {first!r} ({split}): {why}; {len(rows)} task(s) affected")


def _chunk_key(chunk: pa.Array) -> tuple:
    """Identity of an Arrow array's memory: equal keys of two live arrays mean the same bytes."""
    return (chunk.offset, len(chunk), tuple((b.address, b.size) if b is not None else None for b in chunk.buffers()))


def _scan_chunk(chunk: pa.Array, pattern: str) -> list[tuple[int, str, str]]:
    """``(row in chunk, role, text)`` of every message part of a ``prompt`` chunk that matches ``pattern``."""
    messages = pc.list_flatten(chunk)
    msg_row = pc.list_parent_indices(chunk)
    content = pc.struct_field(messages, "content")
    part_msg = pc.list_parent_indices(content)
    texts = pc.struct_field(pc.list_flatten(content), "text")
    hit = pc.fill_null(pc.match_substring_regex(texts, pattern), False)
    roles = pc.struct_field(messages, "role")
    out = []
    for p in pc.indices_nonzero(hit).to_pylist():
        m = part_msg[p].as_py()
        out.append((msg_row[m].as_py(), roles[m].as_py(), texts[p].as_py()))
    return out


def _patterns(held: Sequence[str], terms: Sequence[tuple[str, str]]) -> tuple[str | None, str | None]:
    """The regexes of held-out text in prompts and of held-out keys in ID maps (``None``: nothing held out)."""
    text = term_pattern([t for t, _ in terms]) if terms else None
    keys = "(?:" + "|".join(_escape(json.dumps(h)) for h in held) + r")\s*:" if held else None
    return text, keys


def _match(chunk: pa.Array, pattern: str) -> pa.Array:
    """Whether each string of ``chunk`` contains a match of ``pattern``."""
    return pc.match_substring_regex(chunk, pattern)


class PromptScanner:
    """Runs ``check_split``'s regex passes over task batches on worker threads while the caller writes more.

    ``check_split(..., scanner=...)`` takes a chunk's result from here only when the dataset's chunk is
    the very memory that was scanned (same buffers, offset and length; the scanner keeps every scanned
    chunk alive, so an address cannot be reused by other data); any other chunk is scanned afresh.
    """

    def __init__(self, patterns: tuple[str | None, str | None] = (None, None), workers: int | None = None) -> None:
        self.patterns = patterns
        self._pool = ThreadPoolExecutor(workers or max(1, os.cpu_count() or 1))  # pyarrow kernels release the GIL
        self._pending: dict[tuple, tuple[pa.Array, Future]] = {}

    @classmethod
    def for_holdout(cls, taxonomy: Taxonomy, holdout: Sequence[str]) -> PromptScanner:
        """A scanner with ``check_split``'s patterns for these held-out nodes."""
        index = TaxonomyIndex(taxonomy)
        held = index.hidden_ids(index.hidden_vector(list(holdout)))
        return cls(_patterns(held, held_out_terms(taxonomy, holdout)))

    def submit(self, batch: pa.RecordBatch) -> None:
        """Start scanning the ``prompt`` and ``id_map`` columns of one batch of tasks."""
        text, keys = self.patterns
        for fn, column, pattern in ((_scan_chunk, "prompt", text), (_match, "id_map", keys)):
            if pattern is not None:
                self.run(fn, batch.column(column), pattern)

    def run(self, fn: Callable[[pa.Array, str], Any], chunk: pa.Array, pattern: str) -> Future:
        """The pass ``fn(chunk, pattern)``: the one already started on exactly this chunk, or a new one."""
        key = (fn, pattern, _chunk_key(chunk))
        if key not in self._pending:
            self._pending[key] = (chunk, self._pool.submit(fn, chunk, pattern))
        return self._pending[key][1]

    def close(self) -> None:
        """Stop the workers (pending passes are cancelled) and drop the scanned chunks."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pending.clear()

    def __enter__(self) -> PromptScanner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _run(scanner: PromptScanner | None, fn: Callable[[pa.Array, str], Any], column: pa.ChunkedArray,
         pattern: str) -> Any:
    """``fn`` over every chunk of ``column`` on ``scanner`` (or a scanner of its own): ``_match`` gives one
    boolean column, ``_scan_chunk`` a list of ``(first row of the chunk, hits)``."""
    workers = max(1, min(column.num_chunks, os.cpu_count() or 1))
    with nullcontext(scanner) if scanner is not None else PromptScanner(workers=workers) as sc:
        results = [f.result() for f in [sc.run(fn, c, pattern) for c in column.chunks]]
    if fn is _match:
        return pa.chunked_array(results, pa.bool_())
    starts = np.cumsum([0] + [len(c) for c in column.chunks[:-1]]).tolist()
    return list(zip(starts, results))


def _leak_message(task_id: str, split: str, text: str, terms: list[tuple[str, str]], n_rows: int) -> str:
    for term, origin in terms:
        found = re.search(term_pattern([term]).removeprefix("(?i)"), text, re.IGNORECASE)
        if found:
            snippet = " ".join(text[max(0, found.start() - 60) : found.end() + 60].split())
            return (
                f"leak: task {task_id!r} ({split}) shows held-out text {term!r} ({origin}) in its prompt: "
                f"'...{snippet}...'; {n_rows} task(s) affected. A held-out category must not be named or "
                "described by anything a task shows: hold out the node whose text mentions it too, or reword it."
            )
    return f"leak: task {task_id!r} ({split}) shows held-out text in its prompt; {n_rows} task(s) affected"
