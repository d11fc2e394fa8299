"""Held-out-category task generator: labelled samples + a taxonomy -> GRPO-ready tasks with OOD targets.

A task is one sample shown with one version of the policy: some categories hidden from the prompt's
category list, IDs optionally shuffled. ``build_tasks`` returns a ``DatasetDict``:

- ``eval_ood``: every unsafe sample whose category falls under ``holdout``, as an OOD task (its
  right answer is a free-text name; the target is the hidden node's name and synonyms);
- ``eval_id`` and ``train``: the other samples, split by ``eval_fraction``. The held-out nodes are
  hidden from every task of every split, so they appear nowhere except as ``eval_ood`` targets;
  ``check_split`` (``proguard.tasks.leakcheck``) verifies this on every build and raises ``LeakError``;
- ``eval_modality``: with ``holdout_modality`` (say ``audio``), that modality's in-taxonomy samples;
  none of its samples is in train or eval_id, so a run measures transfer to an unseen modality
  (OmniGuard's held-out-modality test). Absent without the option.

Training tasks may also hide random categories (``hide_fraction``) and the sample's own category
(``own_category_hide_prob``), which makes OOD training tasks from in-taxonomy samples. Whenever
anything is hidden, the visible categories are renumbered densely (``C1, C2, ...``): gaps would tell
the model that something is missing. ``shuffle_ids`` renumbers in a random order per task. Every task
stores ``id_map`` (source ID -> prompt ID) so rewards and the benchmark score shuffled prompts.

OOD rule: a task is OOD exactly when the sample is unsafe and the node its prompt asks for, or that
node's parent, is hidden. The node asked for is the sample's own category at subcategory level and
its top-level category at category level (``PromptConfig.level``; text+image by default), so a hidden
subcategory under a visible parent is in-taxonomy for a category-level prompt: the parent is the right
answer there. The OOD target (``ood_name``, ``ood_synonyms``) is always that asked-for node, even when it
was hidden with its whole branch: it is the most specific risk the model could not see. See docs/tasks.md.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

import proguard
from proguard.data import sample_problems, valid_sample_columns
from proguard.hints import problems_message
from proguard.protocol import PromptConfig
from proguard.tasks.config import HIDE_LEVELS, SPLITS, TaskConfig, TaskError
from proguard.tasks.leakcheck import LeakError, PromptScanner, check_split
from proguard.tasks.rows import BATCH_ROWS, RowWriter, TaxonomyIndex, task_features
from rewards.types import LABELS, MODALITIES
from taxonomy import Taxonomy

__all__ = [
    "SPLITS",
    "LeakError",
    "TaskBuild",
    "TaskConfig",
    "TaskError",
    "build_tasks",
    "check_split",
    "default_tasks",
    "format_summary",
    "generate_tasks",
    "task_features",
]

log = logging.getLogger(__name__)

_STREAMS = {"split": 1, "balance": 2, "train": 10, "eval_id": 11, "eval_ood": 12, "eval_modality": 13}
"""Independent random streams per purpose: changing one option does not reshuffle the others."""


@dataclass
class TaskBuild:
    """What ``generate_tasks`` returns: the splits and a JSON-ready summary of how they were made."""

    tasks: datasets.DatasetDict
    summary: dict[str, Any]


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------
def build_tasks(samples: datasets.Dataset, taxonomy: Taxonomy, config: TaskConfig | None = None) -> datasets.DatasetDict:
    """Tasks split into ``train``, ``eval_id`` and ``eval_ood``; the leak check runs and raises on a leak."""
    return generate_tasks(samples, taxonomy, config).tasks


def default_tasks(
    samples: datasets.Dataset, taxonomy: Taxonomy, prompt_config: PromptConfig | None = None
) -> datasets.Dataset:
    """One plain in-taxonomy task per sample, in order: nothing hidden, source IDs, no split."""
    index = TaxonomyIndex(taxonomy)
    cols, table, images, sample_fp = _read_samples(samples, index)
    writer = RowWriter(index, prompt_config or PromptConfig(), cols, table, images)
    rows = np.arange(len(cols["id"]), dtype=np.int64)
    batches = [
        writer.batch("all", r, np.zeros(len(r), np.int64), np.zeros((len(r), index.n), bool), None)
        for r in (rows[a : a + BATCH_ROWS] for a in range(0, len(rows), BATCH_ROWS))
    ]
    cfg = {"default_tasks": True, "prompt": TaskConfig(prompt=prompt_config or PromptConfig()).to_dict()["prompt"]}
    return _dataset(batches, writer, "all", _fingerprint(cfg, taxonomy, index, sample_fp, "all"))


def generate_tasks(samples: datasets.Dataset, taxonomy: Taxonomy, config: TaskConfig | None = None) -> TaskBuild:
    """Build the task splits and their summary (``build_tasks`` without the summary)."""
    cfg = config or TaskConfig()
    index = TaxonomyIndex(taxonomy)
    unknown = [h for h in cfg.holdout if h not in index.by_src]
    if unknown:
        raise TaskError(
            f"holdout: unknown node ID(s) {', '.join(unknown)} in taxonomy {taxonomy.name!r}; "
            f"known IDs: {', '.join(index.src)}"
        )
    cols, table, images, sample_fp = _read_samples(samples, index)
    writer = RowWriter(index, cfg.prompt, cols, table, images)
    base = index.hidden_vector(cfg.holdout)
    base_has_subs = bool(len(index.subs)) and not base[index.subs].all()
    base_level = {m: writer.level(m, base_has_subs) for m in MODALITIES}

    # Held-out unsafe samples -> eval_ood, or "excluded" when their prompt level still lists the answer.
    cat = writer.cat
    held = (cat >= 0) & base[np.maximum(cat, 0)]
    asks_sub = np.array([base_level[m] == "subcategory" for m in MODALITIES])[writer.modality]
    asked = np.where(asks_sub, cat, index.top[np.maximum(cat, 0)])
    ood_rows = np.flatnonzero(held & base[asked]).tolist()
    excluded = np.flatnonzero(held & ~base[asked]).tolist()
    pool = np.flatnonzero(~held).tolist()
    modality_rows: list[int] = []
    if cfg.holdout_modality is not None:
        # The held-out modality trains nowhere: its in-taxonomy samples are eval_modality; its samples of
        # held-out categories stay eval_ood targets (the leak check keeps those in eval_ood only).
        mine = writer.modality == MODALITIES.index(cfg.holdout_modality)
        if not mine.any():
            raise TaskError(f"holdout_modality {cfg.holdout_modality}: no sample has that modality; "
                            "eval_modality would be empty")
        modality_rows = [i for i in pool if mine[i]]
        pool = [i for i in pool if not mine[i]]
    if cfg.holdout and not ood_rows:
        raise TaskError(f"holdout {', '.join(cfg.holdout)}: no unsafe sample falls under it; eval_ood would be empty")
    if excluded:
        log.warning("%d sample(s) of held-out subcategories are in-taxonomy at category level and are not used "
                    "(first: %s)", len(excluded), cols["id"][excluded[0]])
    # A group (one prompt with several responses) never crosses splits: groups with a held-out row
    # keep their other rows out of train (they go to eval_id), and eval_id draws whole groups.
    groups = _groups(cols)
    forced = {groups[r] for r in ood_rows + excluded} if groups is not None else set()
    eval_rows, train_rows = _split_eval(pool, cfg, len(cols["id"]), groups, forced)
    train, balance = _balance(train_rows, cols["modality"], cfg)

    fp_cfg = cfg.to_dict()
    zeros = np.zeros
    plans = {"train": train, "eval_id": (np.asarray(eval_rows, np.int64), zeros(len(eval_rows), np.int64)),
             "eval_ood": (np.asarray(ood_rows, np.int64), zeros(len(ood_rows), np.int64)),
             "eval_modality": (np.asarray(modality_rows, np.int64), zeros(len(modality_rows), np.int64))}
    splits = {}
    # The leak check's regex pass over the prompts (the larger half of its work) runs on worker threads
    # while the next batches are written; check_split collects those results for the very same chunks.
    with PromptScanner.for_holdout(taxonomy, cfg.holdout) as scanner:
        for name in SPLITS:
            if name == "eval_modality" and cfg.holdout_modality is None:
                continue  # present only when asked for (an empty split would not reload from disk)
            rows, copies = plans[name]
            rng = _rng(cfg, name)
            batches = []
            for a in range(0, len(rows), BATCH_ROWS):
                r, cp = rows[a : a + BATCH_ROWS], copies[a : a + BATCH_ROWS]
                if name == "train":
                    hidden = _train_hidden(r, writer, index, cfg, base, base_level, rng)
                else:
                    hidden = np.repeat(base[None, :], len(r), axis=0)
                keys = rng.random((len(r), index.n)) if cfg.shuffle_ids else None
                batches.append(writer.batch(name, r, cp, hidden, keys))
                scanner.submit(batches[-1])
            splits[name] = _dataset(batches, writer, name, _fingerprint(fp_cfg, taxonomy, index, sample_fp, name))
        tasks = datasets.DatasetDict(splits)
        if len(tasks["train"]) == 0:
            raise TaskError("no training tasks: every sample is held out or in eval_id")
        leak = check_split(
            tasks, taxonomy, cfg.holdout, scope=cfg.leak_scope, scanner=scanner,
            groups=None if groups is None else dict(zip(cols["id"], groups, strict=True)),
        )
    summary = _summary(tasks, taxonomy, index, cfg, len(cols["id"]), [cols["id"][i] for i in excluded], balance, leak)
    return TaskBuild(tasks, summary)


# ---------------------------------------------------------------------------------------------
# Samples
# ---------------------------------------------------------------------------------------------
_REQUIRED = ("id", "modality", "request_label", "category")
_OPTIONAL = ("request", "response", "response_label", "group")


def _read_samples(
    samples: datasets.Dataset, index: TaxonomyIndex
) -> tuple[dict[str, list], pa.Table, pa.Array, str]:
    """Validated sample columns (lists), the Arrow table, the image storage column and a content hash."""
    if not isinstance(samples, datasets.Dataset):
        raise TaskError(f"samples: expected a datasets.Dataset (proguard.data.load_samples), got {type(samples).__name__}")
    missing = [c for c in _REQUIRED if c not in samples.column_names]
    if missing:
        raise TaskError(f"samples: missing column(s) {', '.join(missing)} (load samples with proguard.data.load_samples)")
    if len(samples) == 0:
        raise TaskError("samples: the dataset is empty")
    table = samples.with_format("arrow")[:]
    cols: dict[str, list] = {}
    for name in _REQUIRED + _OPTIONAL:
        cols[name] = table.column(name).to_pylist() if name in table.column_names else [None] * table.num_rows
    images = _image_storage(table)
    videos, audios = _present(table, "video"), _present(table, "audio")
    fast = valid_sample_columns(table, images.is_valid(), index.src, videos, audios)
    if fast is not None:
        cols["cat"], cols["unsafe"] = fast
        return cols, table, images, _table_hash(table)
    has_image = images.is_valid().to_pylist()
    has_video, has_audio = videos.to_pylist(), audios.to_pylist()
    problems: list[str] = []
    seen: dict[str, int] = {}
    cats: list[int] = []
    unsafe: list[bool] = []
    tax_name = index.taxonomy.name
    for i in range(table.num_rows):
        sid = cols["id"][i]
        where = f"samples[{i}] (id {sid!r})"
        if not isinstance(sid, str) or not sid:
            problems.append(f"{where}: id: missing or empty")
        elif sid in seen:
            problems.append(f"{where}: id: duplicate of samples[{seen[sid]}]")
        else:
            seen[sid] = i
        req, resp, cat = cols["request_label"][i], cols["response_label"][i], cols["category"][i]
        problems.extend(
            f"{where}: {p}"
            for p in sample_problems(
                cols["modality"][i], req, resp, cat, has_request=cols["request"][i] is not None,
                has_response=cols["response"][i] is not None, has_image=has_image[i], has_video=has_video[i],
                has_audio=has_audio[i],
            )
        )
        c = index.by_src.get(cat, -1) if cat is not None else -1
        if cat is not None and c < 0:
            hint = " (a name? samples hold node IDs: load them with proguard.data.load_samples)" \
                if index.taxonomy.find(str(cat)) is not None else ""
            problems.append(f"{where}: category: {cat!r} is not a node ID of taxonomy {tax_name!r}{hint}")
        cats.append(c)
        unsafe.append(req == "unsafe" or resp == "unsafe")
    if problems:
        raise TaskError(problems_message(f"{len(problems)} problem(s) in the samples:", problems))
    cols["cat"], cols["unsafe"] = cats, unsafe
    return cols, table, images, _table_hash(table)


def _present(table: pa.Table, name: str) -> pa.Array:
    """Per row, whether the media column ``name`` holds a value (all False when the column is absent)."""
    if name not in table.column_names:
        return pa.array([False] * table.num_rows)
    col = table.column(name).combine_chunks()
    if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
        return pc.fill_null(pc.greater(pc.list_value_length(col), 0), False)
    return pc.fill_null(pc.greater(pc.utf8_length(col.cast(pa.string())), 0), False)


def _image_storage(table: pa.Table) -> pa.Array:
    """The ``image`` column as ``datasets.Image`` storage (struct of bytes and path); nulls if absent."""
    typ = datasets.Image().pa_type
    if "image" not in table.column_names:
        return pa.nulls(table.num_rows, typ)
    col = table.column("image").combine_chunks()
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        paths = col.cast(pa.string())
        return pa.StructArray.from_arrays([pa.nulls(len(col), pa.binary()), paths], fields=list(typ), mask=paths.is_null())
    if col.type != typ:
        raise TaskError(f"samples: image: expected a datasets.Image column or paths, got {col.type}")
    return col


def _table_hash(table: pa.Table) -> str:
    """SHA-256 of the table's Arrow IPC stream, hashed as it is written (no 30 MB copy to page in)."""
    sink = _HashSink()
    with pa.ipc.new_stream(pa.PythonFile(sink, mode="w"), table.schema) as writer:
        writer.write_table(table)
    return sink.hash.hexdigest()


class _HashSink(io.RawIOBase):
    """A write-only file that feeds what is written to SHA-256."""

    def __init__(self) -> None:
        super().__init__()
        self.hash = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.hash.update(data)
        return len(data)


# ---------------------------------------------------------------------------------------------
# Splitting, balancing, hiding
# ---------------------------------------------------------------------------------------------
def _rng(cfg: TaskConfig, stream: str) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([cfg.seed, _STREAMS[stream]])))


def _pick(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """``k`` of ``range(n)`` at random, in increasing order (uniform draws only: stable across numpy)."""
    return np.sort(np.argsort(rng.random(n), kind="stable")[:k])


def _groups(cols: Mapping[str, list]) -> list[str] | None:
    """Each sample's group key (its own ID where it has none); ``None`` when no sample has a group."""
    if all(g is None for g in cols["group"]):
        return None
    return [f"group:{g}" if g is not None else f"sample:{sid}" for sid, g in zip(cols["id"], cols["group"], strict=True)]


def _split_eval(
    pool: list[int], cfg: TaskConfig, n_samples: int, groups: list[str] | None = None, forced: set[str] = frozenset()
) -> tuple[list[int], list[int]]:
    """``eval_id`` and ``train`` rows of the in-taxonomy pool: ``eval_fraction`` of its groups (each sample is
    its own group when none are given), drawn whole; ``forced`` groups go to ``eval_id`` on top."""
    rows = np.asarray(pool, dtype=np.int64)
    if groups is None:
        member = np.arange(len(rows))
        free = len(rows)
    else:
        keys = [groups[r] for r in pool]
        order = list(dict.fromkeys(k for k in keys if k not in forced))
        position = {k: i for i, k in enumerate(order)}
        member = np.array([position.get(k, -1) for k in keys], dtype=np.int64)
        free = len(order)
    what = "in-taxonomy sample(s)" if groups is None else "in-taxonomy group(s)"
    k = math.floor(cfg.eval_fraction * free + 0.5)
    if cfg.eval_fraction > 0:
        k = min(max(k, 1), free - 1)
        if k < 1:
            raise TaskError(f"eval_fraction {cfg.eval_fraction}: only {free} {what} of {n_samples} samples; "
                            "eval_id and train cannot both hold one (set eval_fraction to 0)")
    chosen_group = np.zeros(free + 1, dtype=bool)  # the last slot: forced groups (member -1)
    chosen_group[-1] = True
    if k:
        chosen_group[_pick(_rng(cfg, "split"), free, k)] = True
    chosen = chosen_group[member]
    return rows[chosen].tolist(), rows[~chosen].tolist()


def _balance(rows: list[int], modality: list[str], cfg: TaskConfig) -> tuple[tuple[np.ndarray, np.ndarray], dict]:
    """Training rows and copy numbers after modality balancing (rows stay in sample order)."""
    by_mod: dict[str, list[int]] = {}
    for i in rows:
        by_mod.setdefault(modality[i], []).append(i)
    before = {m: len(v) for m, v in by_mod.items()}
    info = {"mode": cfg.balance_modalities, "before": before, "after": dict(before)}
    if cfg.balance_modalities == "none" or len(by_mod) < 2:
        return (np.asarray(rows, np.int64), np.zeros(len(rows), np.int64)), info
    rng = _rng(cfg, "balance")
    target = (min if cfg.balance_modalities == "down" else max)(before.values())
    plan: list[tuple[int, int]] = []
    for m in MODALITIES:  # fixed order: the draws do not depend on dict order
        members = by_mod.get(m, [])
        if not members:
            continue
        if len(members) >= target:
            keep = _pick(rng, len(members), target)
            plan += [(members[j], 0) for j in keep]
        else:
            full, rest = divmod(target, len(members))
            extra = set(_pick(rng, len(members), rest).tolist())
            plan += [(i, c) for j, i in enumerate(members) for c in range(full + (j in extra))]
        info["after"][m] = target
    plan.sort()
    return (np.asarray([p[0] for p in plan], np.int64), np.asarray([p[1] for p in plan], np.int64)), info


def _train_hidden(
    rows: np.ndarray, writer: RowWriter, index: TaxonomyIndex, cfg: TaskConfig, base: np.ndarray,
    base_level: dict[str, str], rng: np.random.Generator,
) -> np.ndarray:
    """Hidden nodes per training task: the held-out set, a random fraction of candidates, maybe the own node."""
    n = len(rows)
    hidden = np.repeat(base[None, :], n, axis=0)
    cat = writer.cat[rows]
    own_ok = (cat >= 0) & writer.unsafe[rows]
    protect = cfg.own_category_hide_prob is not None
    cand = np.asarray([x for x in (index.cats if cfg.hide_level == "category" else index.leaves) if not base[x]])
    if cfg.hide_fraction > 0 and len(cand):
        keys = rng.random((n, len(cand)))
        if protect:  # the own node is drawn below: the random fraction alone must never make a task OOD
            safe_cat = np.where(own_ok, cat, -1)
            for node in (safe_cat, np.where(own_ok, index.top[np.maximum(safe_cat, 0)], -1)):
                hit = own_ok[:, None] & (cand[None, :] == node[:, None])
                keys[hit] = np.inf
        sizes = np.isfinite(keys).sum(axis=1)
        counts = np.floor(cfg.hide_fraction * sizes + 0.5).astype(np.int64)
        order = np.argsort(keys, axis=1, kind="stable")
        chosen = np.arange(len(cand))[None, :] < counts[:, None]  # the first `count` of each row's order
        r_idx, slot = np.nonzero(chosen)
        hidden[r_idx, cand[order[r_idx, slot]]] = True
    if protect:
        u = rng.random(n)
        hit = own_ok & (u < cfg.own_category_hide_prob)
        mods = [writer.s["modality"][i] for i in rows.tolist()]
        by_level = np.asarray([cfg.hide_level == "category" or base_level[m] == "category" for m in mods], bool)
        own = np.where(by_level, index.top[np.maximum(cat, 0)], cat)
        hidden[np.flatnonzero(hit), own[hit]] = True
    return index.expand(hidden)


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------
def _fingerprint(cfg: dict, taxonomy: Taxonomy, index: TaxonomyIndex, sample_hash: str, split: str) -> str:
    """A content hash of every input, so the same inputs give the same bytes (``save_to_disk`` stores it)."""
    blob = json.dumps(
        {"v": proguard.__version__, "config": cfg, "taxonomy": taxonomy.to_dict(), "keys": index.src,
         "samples": sample_hash, "split": split},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _dataset(batches: list[pa.RecordBatch], writer: RowWriter, split: str, fingerprint: str) -> datasets.Dataset:
    table = pa.Table.from_batches(batches, schema=writer.schema)
    info = datasets.DatasetInfo(features=writer.features)
    return datasets.Dataset(datasets.table.InMemoryTable(table), info=info, split=datasets.NamedSplit(split),
                            fingerprint=fingerprint)


def _summary(
    tasks: datasets.DatasetDict, taxonomy: Taxonomy, index: TaxonomyIndex, cfg: TaskConfig, n_samples: int,
    excluded: list[str], balance: dict, leak: dict,
) -> dict[str, Any]:
    splits: dict[str, Any] = {}
    for name, ds in tasks.items():
        t = ds.with_format("arrow")[:]
        n = t.num_rows
        ood = pc.sum(t.column("ood")).as_py() or 0
        unsafe_flags = pc.or_(pc.equal(t.column("request_label"), "unsafe"),
                              pc.fill_null(pc.equal(t.column("response_label"), "unsafe"), False))
        unsafe = pc.sum(unsafe_flags).as_py() or 0
        modality = {d["values"]: d["counts"] for d in pc.value_counts(t.column("modality")).to_pylist()}
        hidden = pc.sum(pc.list_value_length(t.column("hidden"))).as_py() or 0
        splits[name] = {
            "tasks": n,
            "samples": pc.count_distinct(t.column("sample_id")).as_py(),
            "modality": dict(sorted(modality.items())),
            "unsafe": unsafe,
            "ood": ood,
            "ood_share": round(ood / n, 4) if n else 0.0,
            "ood_share_of_unsafe": round(ood / unsafe, 4) if unsafe else 0.0,
            "hidden_nodes_per_task": round(hidden / n, 3) if n else 0.0,
        }
    empty = {}
    if not len(tasks["eval_ood"]):
        empty["eval_ood"] = "no held-out categories (holdout is empty)"
    if not len(tasks["eval_id"]):
        empty["eval_id"] = "eval_fraction is 0"
    held = leak["held_out"]
    return {
        "taxonomy": taxonomy.name,
        "samples": n_samples,
        "config": cfg.to_dict(),
        "holdout": [{"id": h, "name": index.nodes[index.by_src[h]].name} for h in cfg.holdout],
        "hidden_everywhere": held,
        "splits": splits,
        "empty_splits": empty,
        "excluded": {
            "count": len(excluded),
            "reason": "unsafe samples of a held-out subcategory whose parent stays listed, in a category-level "
            "prompt: their right answer is the visible parent, so they are neither OOD nor allowed in train",
            "sample_ids": excluded[:10],
        },
        "balance": balance,
        "leak_check": leak,
    }


def format_summary(summary: Mapping[str, Any]) -> str:
    """The summary as a short human-readable report."""
    cfg = summary["config"]
    lines = [f"tasks from {summary['samples']} samples, taxonomy {summary['taxonomy']!r}, seed {cfg['seed']}"]
    held = ", ".join(f"{h['id']} {h['name']}" for h in summary["holdout"]) or "none"
    lines.append(f"held out: {held} ({len(summary['hidden_everywhere'])} node(s) hidden from every task)")
    widths = {m: max(7, len(m) + 1) for m in MODALITIES}  # one column per modality
    head = f"{'split':<9}{'tasks':>7}" + "".join(f"{m:>{w}}" for m, w in widths.items())
    lines.append(head + f"{'unsafe':>8}{'OOD':>7}{'OOD share':>10}")
    for name, s in summary["splits"].items():
        m = s["modality"]
        lines.append(
            f"{name:<9}{s['tasks']:>7}" + "".join(f"{m.get(k, 0):>{w}}" for k, w in widths.items())
            + f"{s['unsafe']:>8}{s['ood']:>7}{s['ood_share']:>10.1%}"
        )
    own = cfg["own_category_hide_prob"]
    lines.append(
        f"train hiding: fraction {cfg['hide_fraction']} of {cfg['hide_level']} nodes, own node "
        f"{'as any other' if own is None else f'p={own}'}; mean hidden nodes per task "
        f"{summary['splits']['train']['hidden_nodes_per_task']}; IDs shuffled: {'yes' if cfg['shuffle_ids'] else 'no'}"
    )
    b = summary["balance"]
    if b["mode"] != "none":
        lines.append(f"modality balance ({b['mode']}): {b['before']} -> {b['after']}")
    for name, why in summary["empty_splits"].items():
        lines.append(f"{name} is empty: {why}")
    if summary["excluded"]["count"]:
        lines.append(f"not used: {summary['excluded']['count']} sample(s): {summary['excluded']['reason']}")
    leak = summary["leak_check"]
    lines.append(
        f"leak check passed: {leak['terms']} held-out term(s), {sum(leak['prompts_scanned'].values())} prompts, "
        f"scope {leak['scope']}"
        + (f"; {leak['conversation_mentions']} training conversation(s) mention a held-out term (sample text, "
           f"allowed in scope 'policy'), e.g. {', '.join(leak['conversation_examples'])}"
           if leak["conversation_mentions"] else "")
    )
    return "\n".join(lines)
