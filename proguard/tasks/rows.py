"""Fast task-row writer for ``proguard.tasks``: each task's visible taxonomy, prompt and targets, as Arrow.

Building a task's policy prompt through ``Taxonomy.without(...).renumbered(...)`` and
``protocol.build_messages`` costs about 0.7 ms, too slow for ProGuard-sized data (87k tasks, each
with its own shuffled category list). Here a batch of tasks is rendered column-wise: numpy orders
every task's visible nodes, and pyarrow joins precomputed text pieces (the prompt before and after
the category list, each node's line without its ID, the IDs, each sample's user text) into the prompt
strings. The pieces are cut from the protocol's own output, and ``RowWriter`` checks the first task
of every prompt shape against ``build_messages`` on a real ``Taxonomy``, raising if they differ: the
fast path cannot drift from the protocol unnoticed.

A batch's hidden nodes are a boolean matrix (tasks x nodes, in ``Taxonomy.nodes()`` order); a hidden
category's row also marks its subcategories (``TaxonomyIndex.expand``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from proguard.protocol import PromptConfig, build_messages, system_prompt, user_text
from rewards.types import MEDIUM, MODALITIES
from taxonomy import Node, Taxonomy

Layout = tuple[tuple[int, tuple[int, ...]], ...]
"""A visible taxonomy in display order: ``((category index, (subcategory index, ...)), ...)``."""

MAX_MERGED_PIECES = 200_000
"""Most precomputed (node, position) pieces: a larger taxonomy lays out IDs and their text separately."""

BATCH_ROWS = 2048
"""Tasks per Arrow record batch: bounds the memory of intermediate text (a prompt is ~5 kB)."""

_TEXT_POOL = pa.system_memory_pool()
"""Allocator of the joined prompt text. pyarrow's default pool (mimalloc) page-faulted the ~10 MB text
buffer of every batch afresh: on 87k tasks the system allocator cut system CPU time from 0.5-1.1 s to 0.3 s."""


def task_features() -> datasets.Features:
    """The ``datasets`` schema of a task dataset (column order as written)."""
    s = datasets.Value("string")
    part = {"type": s, "text": s}
    return datasets.Features(
        {
            "task_id": s,
            "sample_id": s,
            "prompt": datasets.List({"role": s, "content": datasets.List(part)}),
            "image": datasets.Image(),
            "video": datasets.List(s),
            "audio": s,
            "modality": s,
            "request_label": s,
            "response_label": s,
            "category": s,
            "category_name": s,
            "category_level": s,
            "id_map": s,
            "ood": datasets.Value("bool"),
            "ood_name": s,
            "ood_synonyms": datasets.List(s),
            "hidden": datasets.List(s),
        }
    )


class TaxonomyIndex:
    """A taxonomy's nodes by position (``Taxonomy.nodes()`` order) with parents, branches and source IDs."""

    def __init__(self, taxonomy: Taxonomy) -> None:
        self.taxonomy = taxonomy
        self.nodes: list[Node] = list(taxonomy.nodes())
        self.n = len(self.nodes)
        self.ids = [n.id for n in self.nodes]
        self.src = [n.key or n.id for n in self.nodes]  # source IDs: what sample categories hold
        self.by_src = {s: i for i, s in enumerate(self.src)}
        pos = {n.id: i for i, n in enumerate(self.nodes)}
        self.is_cat = np.array([n.is_category for n in self.nodes], dtype=bool)
        self.parent = np.array([pos[n.parent_id] if n.parent_id else -1 for n in self.nodes], dtype=np.int64)
        self.top = np.where(self.parent < 0, np.arange(self.n), self.parent)
        self.cats = [i for i in range(self.n) if self.is_cat[i]]
        self.children = {c: [pos[s.id] for s in self.nodes[c].children] for c in self.cats}
        self.leaves = [i for i in range(self.n) if not (self.is_cat[i] and self.children[i])]
        self.subs = np.flatnonzero(~self.is_cat)

    def hidden_vector(self, src_ids: list[str]) -> np.ndarray:
        """Boolean vector of these source IDs with their branches; an unknown ID raises ``KeyError``."""
        v = np.zeros(self.n, dtype=bool)
        v[[self.by_src[s] for s in src_ids]] = True
        return self.expand(v[None, :])[0]

    def expand(self, hidden: np.ndarray) -> np.ndarray:
        """Mark every subcategory of a hidden category as hidden too (in place; returns ``hidden``)."""
        hidden[:, self.subs] |= hidden[:, self.parent[self.subs]]
        return hidden

    def hidden_ids(self, hidden: np.ndarray) -> list[str]:
        """Source IDs of the hidden nodes of one task, in taxonomy order."""
        return [self.src[i] for i in np.flatnonzero(hidden)]

    def layout(self, hidden: np.ndarray, keys: np.ndarray) -> Layout:
        """One task's visible taxonomy, categories and subcategories ordered by ``keys`` (stable)."""
        cats = sorted((c for c in self.cats if not hidden[c]), key=lambda c: keys[c])
        return tuple(
            (c, tuple(sorted((s for s in self.children[c] if not hidden[s]), key=lambda s: keys[s]))) for c in cats
        )

    def real_taxonomy(self, layout: Layout, positional: bool) -> Taxonomy:
        """The same visible taxonomy built the canonical way, with ``without`` and ``renumbered``."""
        shown = {c for c, _ in layout} | {s for _, subs in layout for s in subs}
        visible = self.taxonomy.without([self.ids[i] for i in range(self.n) if i not in shown])
        if not positional:
            return visible
        order: dict[str, list[str]] = {"": [self.ids[c] for c, _ in layout]}
        order.update({self.ids[c]: [self.ids[s] for s in subs] for c, subs in layout})
        return visible.renumbered(order)[0]


class _Pieces:
    """Every text fragment a prompt or ID map is joined from, in one Arrow array, addressed by index."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def add(self, texts: list[str]) -> np.ndarray:
        start = len(self.texts)
        self.texts += texts
        return np.arange(start, len(self.texts), dtype=np.int64)


class RowWriter:
    """Writes the tasks of one sample set as Arrow record batches with the ``task_features`` schema.

    ``samples`` holds the validated sample columns as lists plus ``cat`` (node index, -1 when safe)
    and ``unsafe``; ``table`` is the samples' Arrow table (for columns copied as they are).
    """

    def __init__(self, index: TaxonomyIndex, config: PromptConfig, samples: dict[str, list], table: pa.Table,
                 images: pa.Array) -> None:
        self.index, self.config, self.s, self.images = index, config, samples, images
        self.copied = {  # columns copied from the samples as they are
            k: table.column(k).combine_chunks().cast(pa.string()) if k in table.column_names else pa.nulls(len(table), pa.string())
            for k in ("id", "modality", "request_label", "response_label", "category", "audio")
        }
        self.copied["video"] = (table.column("video").combine_chunks().cast(pa.list_(pa.string()))
                                if "video" in table.column_names else pa.nulls(len(table), pa.list_(pa.string())))
        self.features = task_features()
        self.schema = self.features.arrow_schema
        self.cat = np.asarray(samples["cat"], dtype=np.int64)
        self.unsafe = np.asarray(samples["unsafe"], dtype=bool)
        self.modality = np.asarray([MODALITIES.index(m) for m in samples["modality"]], dtype=np.int64)
        self._verified: set[tuple[int, bool, bool]] = set()
        self._build_pieces()
        # Every sample's user text follows the prompt pieces, so a task's text is one more piece index.
        self.n_pieces = len(self.pieces)
        self.all_pieces = pa.concat_arrays([self.pieces, _user_texts(table, self.modality)])

    # ---- precomputation -------------------------------------------------------------------
    def _build_pieces(self) -> None:
        idx, cfg = self.index, self.config
        base = idx.taxonomy
        if not base.categories:
            raise ValueError(f"taxonomy {base.name!r} has no categories")
        lines = base.render(descriptions=cfg.descriptions).split("\n")
        if len(lines) != idx.n:
            raise RuntimeError("Taxonomy.render no longer writes one line per node; update proguard.tasks.rows")
        indent, suffix = [], []
        for i, line in enumerate(lines):  # a line is <indent><ID><suffix>
            at = line.find(idx.ids[i])
            if at < 0 or line[:at].strip():
                raise RuntimeError(f"unexpected rendered line {line!r}; update proguard.tasks.rows")
            indent.append(line[:at])
            suffix.append(line[at + len(idx.ids[i]) :])
        cat_indent = {indent[c] for c in idx.cats} or {""}
        sub_indent = {indent[s] for s in idx.subs} or {"  "}
        if len(cat_indent) > 1 or len(sub_indent) > 1:
            raise RuntimeError("Taxonomy.render indents nodes of one level differently; update proguard.tasks.rows")
        ci, si = cat_indent.pop(), sub_indent.pop()
        n_cats = len(idx.cats)
        self.max_k = max([len(ch) for ch in idx.children.values()] + [1])
        p = self._pieces = _Pieces()
        N, n_sub_slots = idx.n, n_cats * self.max_k
        # A line is its display ID (which depends on the node's position) and its text (which does not).
        # Joining ID and text into one piece per (node, position) halves the pieces a prompt is laid out
        # from, and the time of laying them out; a taxonomy with too many (node, position) pairs keeps
        # them apart. The same holds for the ID map's entries ("<source>": "<shown>").
        self.merged = 2 * (2 * n_cats * n_cats + len(idx.subs) * n_sub_slots + 2 * N) <= MAX_MERGED_PIECES
        self.p_suffix = p.add(suffix)  # and p_key below: the separate pieces when not merged
        nl = {True: "", False: "\n"}  # "first" variants open the list, the others start a new line
        pos_cat = [f"C{i}" for i in range(1, n_cats + 1)]
        pos_sub = [f"C{i}S{j}" for i in range(1, n_cats + 1) for j in range(1, self.max_k + 1)]
        own = [(ci if idx.is_cat[i] else si) + idx.ids[i] for i in range(N)]
        line = (lambda i, x: x + suffix[i]) if self.merged else None
        self.p_cat_line = {f: _grid(p, N, idx.cats, [nl[f] + ci + x for x in pos_cat], line) for f in (True, False)}
        # A subcategory never opens the list: its category comes before it.
        self.p_sub_line = _grid(p, N, idx.subs, ["\n" + si + x for x in pos_sub], line)
        tail = suffix if self.merged else [""] * N
        self.p_own_line = {f: p.add([nl[f] + own[i] + tail[i] for i in range(N)]) for f in (True, False)}
        # ID map JSON: {"<source>": "<shown>", ...}
        key = {f: [("" if f else ", ") + json.dumps(s) + ": " for s in idx.src] for f in (True, False)}
        self.p_key = {f: p.add(key[f]) for f in (True, False)}
        entry = {f: (lambda i, x, f=f: key[f][i] + x) if self.merged else None for f in (True, False)}
        self.p_cat_val = {f: _grid(p, N, idx.cats, [json.dumps(x) for x in pos_cat], entry[f]) for f in (True, False)}
        self.p_sub_val = _grid(p, N, idx.subs, [json.dumps(x) for x in pos_sub], entry[False])
        self.p_own_val = {f: p.add([(key[f][i] if self.merged else "") + json.dumps(idx.ids[i]) for i in range(N)])
                          for f in (True, False)}
        self.p_open, self.p_close = p.add(["{", "}"])
        # One lookup table per column, [first in list?, node, slot]: a category's slot is its position - 1,
        # a subcategory's its (category, position) cell, and the last slot its own (source) ID. A task's
        # pieces are then one gather in display order, not a where over each variant for every node.
        self.own_slot = max(n_cats, n_sub_slots)
        self.t_line = _table(self.p_cat_line, self.p_sub_line, self.p_own_line, idx, self.own_slot)
        self.t_val = _table(self.p_cat_val, self.p_sub_val, self.p_own_val, idx, self.own_slot)
        self.child_grid = np.full((n_cats, self.max_k), -1, dtype=np.int64)  # subcategories per category, padded
        for j, c in enumerate(idx.cats):
            self.child_grid[j, : len(idx.children[c])] = idx.children[c]
        # Prompt templates per (modality, has visible subcategories): system = head + list + tail.
        flat = Taxonomy(tuple(replace(c, children=()) for c in base.categories), base.name)
        self.levels = np.empty((len(MODALITIES), 2), dtype=object)
        heads, tails = [], []
        for m, modality in enumerate(MODALITIES):
            for has_subs in (False, True):
                rep = base if has_subs and len(idx.subs) else flat
                text = system_prompt(modality, rep, cfg)
                listing = rep.render(descriptions=cfg.descriptions)
                if text.count(listing) != 1:
                    raise RuntimeError("system prompt does not hold the category list once; update proguard.tasks.rows")
                head, tail = text.split(listing)
                heads.append(head)
                tails.append(tail)
                self.levels[m, int(has_subs)] = cfg.level(modality, rep)
        self.p_head, self.p_tail = p.add(heads), p.add(tails)
        # Per prompt shape (modality * 2 + has subcategories): its level, as Arrow text and as a flag.
        self.level_names = pa.array(self.levels.ravel().tolist(), pa.string())
        self.asks_sub = self.levels.ravel() == "subcategory"
        self.pieces = pa.array(p.texts, pa.string())
        self.names = pa.array([n.name for n in idx.nodes], pa.string())
        self.synonyms = pa.array([list(n.synonyms) for n in idx.nodes] + [[]], pa.list_(pa.string()))
        self.src_ids = pa.array(idx.src, pa.string())

    def level(self, modality: str, has_subs: bool) -> str:
        """The category level a prompt asks for (``PromptConfig.level`` of that prompt shape)."""
        return self.levels[MODALITIES.index(modality), int(has_subs)]

    # ---- batches ----------------------------------------------------------------------------
    def batch(self, split: str, rows: np.ndarray, copies: np.ndarray, hidden: np.ndarray,
              keys: np.ndarray | None) -> pa.RecordBatch:
        """Tasks for samples ``rows`` with hidden-node matrix ``hidden``; ``keys`` (tasks x nodes) shuffle IDs."""
        idx, n, N = self.index, len(rows), self.index.n
        positional = np.full(n, keys is not None) | hidden.any(axis=1)
        if keys is None:
            keys = np.broadcast_to(np.arange(N, dtype=np.float64), (n, N))
        order, pos, sub_pos, visible = self._order(hidden, keys)
        has_subs = (~hidden[:, idx.subs]).any(axis=1) if len(idx.subs) else np.zeros(n, dtype=bool)
        mod = self.modality[rows]
        tmpl = mod * 2 + has_subs

        # Display ID and line pieces of every shown node, in display order: the visible nodes come first.
        W = self.own_slot + 1
        cat_slot = pos[:, idx.top] - 1
        slot = np.where(idx.is_cat[None, :], cat_slot, cat_slot * self.max_k + sub_pos - 1)
        slot = np.where(positional[:, None], slot, self.own_slot)
        flat = order * W + np.take_along_axis(slot, order, axis=1)
        flat[:, 0] += N * W  # the first line opens the list: the tables' "first" half
        n_shown = visible.sum(axis=1)
        hide = np.arange(N)[None, :] >= n_shown[:, None]
        line_cols = [self.t_line.ravel()[flat]]
        map_cols = [self.t_val.ravel()[flat]]
        if not self.merged:
            line_cols.append(self.p_suffix[order])
            keys_shown = self.p_key[False][order]
            keys_shown[:, 0] = self.p_key[True][order[:, 0]]
            map_cols.insert(0, keys_shown)
        line_pieces = np.stack(line_cols, axis=2)
        line_pieces[hide] = -1
        map_pieces = np.stack(map_cols, axis=2)
        map_pieces[hide] = -1

        # Prompt parts: system = head + lines + tail; an image placeholder; the user's conversation.
        user_piece = self.n_pieces + rows
        sys_q = np.concatenate([self.p_head[tmpl][:, None], line_pieces.reshape(n, -1),
                                self.p_tail[tmpl][:, None], user_piece[:, None]], axis=1)
        media_type = _MEDIA_TYPE[mod]  # 0: text only, else the media part's index in _PART_TYPES
        has_media = media_type > 0
        n_lines = len(line_cols) * n_shown
        part_sizes = np.stack([n_lines + 2, np.zeros(n, np.int64), np.ones(n, np.int64)], axis=1)
        part_mask = np.stack([np.zeros(n, bool), ~has_media, np.zeros(n, bool)], axis=1)  # drop absent media parts
        keep = ~part_mask.ravel()
        part_type = np.stack([np.zeros(n, np.int8), media_type, np.zeros(n, np.int8)], axis=1).ravel()[keep]
        is_media = part_type > 0  # per kept part
        texts = _join(self.all_pieces, sys_q, part_sizes.ravel()[keep], null=is_media)
        map_q = np.concatenate([np.full((n, 1), self.p_open), map_pieces.reshape(n, -1), np.full((n, 1), self.p_close)],
                               axis=1)
        id_maps = _join(self.pieces, map_q, len(map_cols) * n_shown + 2)

        # Targets. OOD: unsafe and the asked-for node hidden (hidden parents mark their branch).
        cat = self.cat[rows]
        known = cat >= 0
        asked = np.where(self.asks_sub[tmpl], cat, idx.top[np.where(known, cat, 0)])
        ood = self.unsafe[rows] & known & hidden[np.arange(n), np.where(known, asked, 0)]
        r_hidden, c_hidden = np.nonzero(hidden)
        sid = self.s["id"]
        arrays = {
            "task_id": pa.array([f"{split}/{sid[i]}/{c}" if c else f"{split}/{sid[i]}"
                                 for i, c in zip(rows.tolist(), copies.tolist())], pa.string()),
            "sample_id": self.copied["id"].take(rows),
            "prompt": _prompt(n, texts, part_type, part_mask, self.schema),
            "image": self.images.take(rows),
            "video": self.copied["video"].take(rows),
            "audio": self.copied["audio"].take(rows),
            **{k: self.copied[k].take(rows) for k in ("modality", "request_label", "response_label", "category")},
            "category_name": self.names.take(pa.array(np.where(known, cat, 0), mask=~known)),
            "category_level": self.level_names.take(pa.array(tmpl)),
            "id_map": id_maps,
            "ood": pa.array(ood),
            "ood_name": self.names.take(pa.array(np.where(ood, asked, 0), mask=~ood)),
            "ood_synonyms": self.synonyms.take(pa.array(np.where(ood, asked, N))),
            "hidden": pa.ListArray.from_arrays(_offsets(hidden.sum(axis=1)), self.src_ids.take(pa.array(c_hidden))),
        }
        batch = pa.RecordBatch.from_arrays([arrays[f.name].cast(f.type) for f in self.schema], schema=self.schema)
        self._verify_new_shapes(batch, rows, hidden, keys, positional, mod, has_subs)
        return batch

    def _order(self, hidden: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, ...]:
        """Display order of nodes (hidden last), category positions, subcategory positions, visibility.

        Positions are 1-based and follow ``keys`` with hidden nodes after the visible ones (stable sorts).
        """
        idx, n, N = self.index, len(hidden), self.index.n
        inf = np.inf
        pos = np.zeros((n, N), dtype=np.int64)
        cats = np.asarray(idx.cats)
        cat_order = np.argsort(np.where(hidden[:, cats], inf, keys[:, cats]), axis=1, kind="stable")
        pos[:, cats] = _ranks(cat_order)
        # Every category's subcategories in one sort of a (task, category, slot) grid, not a sort per
        # category; padding slots sort after the category's hidden subcategories, those after its visible ones.
        grid = self.child_grid
        real = grid >= 0
        cell = np.where(real, grid, 0)
        sub_order = np.argsort(np.where(real & ~hidden[:, cell], keys[:, cell], inf), axis=2, kind="stable")
        sub_pos = np.zeros((n, N), dtype=np.int64)
        sub_pos[:, grid[real]] = _ranks(sub_order)[:, real]
        # Display slots are distinct small integers (hidden nodes after every slot, in node order), so a
        # stable sort of them in the narrowest integer type is a fast radix sort.
        visible = ~hidden
        slots = (len(cats) + 1) * (self.max_k + 1)
        display = np.where(visible, pos[:, idx.top] * (self.max_k + 1) + sub_pos, slots + np.arange(N))
        order = np.argsort(display.astype(np.min_scalar_type(slots + N)), axis=1, kind="stable")
        return order, pos, sub_pos, visible

    # ---- verification ------------------------------------------------------------------------
    def _verify_new_shapes(self, batch: pa.RecordBatch, rows: np.ndarray, hidden: np.ndarray, keys: np.ndarray,
                           positional: np.ndarray, mod: np.ndarray, has_subs: np.ndarray) -> None:
        """Check the first task of each (modality, has subcategories, renumbered) shape against the protocol."""
        codes = (mod * 2 + has_subs) * 2 + positional
        for r in np.unique(codes, return_index=True)[1].tolist():  # the first task of each shape in the batch
            shape = (int(mod[r]), bool(has_subs[r]), bool(positional[r]))
            if shape in self._verified:
                continue
            self._verified.add(shape)
            i = int(rows[r])
            real = self.index.real_taxonomy(self.index.layout(hidden[r], keys[r]), bool(positional[r]))
            modality = self.s["modality"][i]
            want = build_messages(modality, self.s["request"][i], self.s["response"][i], real, self.config)
            got = _messages(batch.column("prompt")[r].as_py())
            want_map = {n.key or n.id: n.id for n in real.nodes()}
            level = batch.column("category_level")[r].as_py()
            if got != want or json.loads(batch.column("id_map")[r].as_py()) != want_map \
                    or self.config.level(modality, real) != level:
                raise RuntimeError(
                    f"task prompt for sample {self.s['id'][i]!r} ({modality}) differs from protocol.build_messages; "
                    "the protocol changed: update proguard.tasks.rows"
                )


def _user_texts(table: pa.Table, modality: np.ndarray) -> pa.Array:
    """``protocol.user_text`` of every sample, joined by Arrow from templates cut from its own output.

    A Python call per sample cost ~0.1 s on 87k samples. The templates are ``user_text`` with marker
    request and response texts; a protocol change that no longer fits them raises here, and
    ``RowWriter._verify_new_shapes`` still compares whole prompts.
    """
    req_mark, resp_mark = "\x00request\x00", "\x00response\x00"
    parts: list[tuple[str, str, str, str]] = []  # (before request, between, after response, missing response)
    uses: list[bool] = []  # whether the modality's text holds the conversation
    for m in MODALITIES:
        text = user_text(m, req_mark, resp_mark)
        if req_mark not in text and resp_mark not in text and user_text(m, "", None) == text:
            parts.append((text, "", "", ""))
            uses.append(False)
            continue
        before, _, rest = text.partition(req_mark)
        between, _, after = rest.partition(resp_mark)
        head, no_reply = before + req_mark + between, user_text(m, req_mark, None)
        if text != head + resp_mark + after or not no_reply.startswith(head) or not no_reply.endswith(after) \
                or user_text(m, None, resp_mark) != before + between + resp_mark + after:
            raise RuntimeError(f"protocol.user_text({m!r}) no longer fits its template; update proguard.tasks.rows")
        missing = no_reply[len(head) : len(no_reply) - len(after)]
        parts.append((before, between, after, missing))
        uses.append(True)
    n = len(modality)
    mod = pa.array(modality)

    def column(name: str) -> pa.Array:
        return table.column(name).combine_chunks().cast(pa.string()) if name in table.column_names \
            else pa.nulls(n, pa.string())

    per = [pa.array([p[k] for p in parts], pa.string()).take(mod) for k in range(4)]
    use = pa.array(uses).take(mod)
    empty = pa.scalar("", pa.string())
    request = pc.if_else(use, pc.fill_null(column("request"), ""), empty)  # request None -> ""
    response = pc.if_else(use, pc.coalesce(column("response"), per[3]), empty)
    return pc.binary_join_element_wise(per[0], request, per[1], response, per[2], "")


def _ranks(order: np.ndarray) -> np.ndarray:
    """1-based rank of each entry along the last axis, from its ``argsort`` (the inverse permutation)."""
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(1, order.shape[-1] + 1), axis=-1)
    return ranks


def _table(cat: dict[bool, np.ndarray], sub: np.ndarray, own: dict[bool, np.ndarray], idx: TaxonomyIndex,
           own_slot: int) -> np.ndarray:
    """Piece index per (first in the list?, node, slot) from a column's category, subcategory and own-ID grids."""
    table = np.zeros((2, idx.n, own_slot + 1), dtype=np.int64)
    for f in (False, True):
        table[int(f)][idx.cats, : cat[f].shape[1]] = cat[f][idx.cats]
        table[int(f)][idx.subs, : sub.shape[1]] = sub[idx.subs]  # a subcategory never opens the list
        table[int(f)][:, own_slot] = own[f]
    return table


def _grid(p: _Pieces, n: int, nodes: Iterable[int], slots: list[str],
          join: Callable[[int, str], str] | None) -> np.ndarray:
    """Piece index per (node, slot): ``join(node, slot text)`` for ``nodes``, or with no ``join`` the slot text itself."""
    grid = np.zeros((n, len(slots)), dtype=np.int64)
    if join is None:
        grid[:] = p.add(slots)
    else:
        for i in nodes:
            grid[i] = p.add([join(i, x) for x in slots])
    return grid


def _offsets(sizes: np.ndarray) -> pa.Array:
    out = np.zeros(len(sizes) + 1, dtype=np.int32)
    np.cumsum(sizes, out=out[1:])
    return pa.array(out)


def _join(pieces: pa.Array, matrix: np.ndarray, sizes: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    """Per list of ``sizes``, the concatenation of the pieces the non-negative entries of ``matrix`` name.

    One ``take`` lays every piece out in order; the joined strings are that same data buffer with
    offsets at the list boundaries, so nothing is copied twice.
    """
    values = pc.take(pieces, pa.array(matrix[matrix >= 0], pa.int64()), memory_pool=_TEXT_POOL)
    value_offsets = np.frombuffer(values.buffers()[1], dtype=np.int32)[values.offset : values.offset + len(values) + 1]
    bounds = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=bounds[1:])
    offsets = pa.py_buffer(np.ascontiguousarray(value_offsets[bounds], dtype=np.int32))
    data = values.buffers()[2] or pa.py_buffer(b"")
    validity = pa.array(~null).buffers()[1] if null is not None and null.any() else None
    return pa.StringArray.from_buffers(len(sizes), offsets, data, validity)


_PART_TYPES = pa.array(["text", "image", "video", "audio"], pa.string())
_MEDIA_TYPE = np.array([0 if MEDIUM[m] is None else ["text", "image", "video", "audio"].index(MEDIUM[m]) for m in MODALITIES],
                       dtype=np.int8)
"""Per modality index: the content-part type (index into ``_PART_TYPES``) of its medium, 0 for text only."""
_ROLES = pa.array(["system", "user"], pa.string())


def _prompt(n: int, texts: pa.Array, part_type: np.ndarray, part_mask: np.ndarray, schema: pa.Schema) -> pa.Array:
    """The conversational ``prompt`` column: per task a system message and a user message."""
    typ = schema.field("prompt").type
    msg_type = typ.value_type
    content_type = msg_type.field("content").type
    parts = pa.StructArray.from_arrays([_PART_TYPES.take(pa.array(part_type.astype(np.int8))), texts],
                                       fields=list(content_type.value_type))
    per_message = np.stack([np.ones(n, np.int64), 1 + (~part_mask[:, 1])], axis=1).ravel()
    content = pa.ListArray.from_arrays(_offsets(per_message), parts, type=content_type)
    messages = pa.StructArray.from_arrays([_ROLES.take(pa.array(np.tile(np.arange(2, dtype=np.int8), n))), content],
                                          fields=list(msg_type))
    return pa.ListArray.from_arrays(_offsets(np.full(n, 2)), messages, type=typ)


def _messages(prompt: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A stored prompt as ``build_messages`` writes it (Arrow fills an image part's missing text with None)."""
    return [
        {"role": m["role"], "content": [{k: v for k, v in part.items() if v is not None} for part in m["content"]]}
        for m in prompt
    ]
