"""Benchmark reward scoring: format (gate) x (binary + category), called the way TRL's GRPOTrainer calls it.

Run from the project root:

    python benchmarks/bench_rewards.py                    # 10,000 completions, batches of 256
    python benchmarks/bench_rewards.py --n 10000 --batch-size 64 --repeats 5

Generates ``--n`` completions of mixed validity (a third each of text, image and text+image; right and
wrong labels, exact / partial / wrong / shuffled category IDs, free-text names, missing reasoning,
broken tags, chat-message completions, empty strings) with their ground-truth columns, then times the
composite reward called as ``reward(prompts=..., completions=..., completion_ids=..., **columns)`` in
batches, exactly TRL's reward-function call. Each batch's time covers building targets from the
columns, parsing every completion once, the three modules and the metrics. Also reports the same
completions through ``breakdown`` per stage (targets, parsing, each module), to show where time goes.
Prints a Markdown table; timings taken while other jobs share the CPU are inflated.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from collections import Counter
from typing import Any

from proguard.protocol import format_answer
from proguard.scoring.compose import build_reward, parse_batch, targets_from_columns
from taxonomy import load_taxonomy

RECIPE = [{"name": "format", "gate": True}, {"name": "binary"}, {"name": "category"}]
KINDS = ("correct", "wrong_label", "partial", "wrong_branch", "free_text", "no_think", "broken", "chat", "empty")


def _labels(rng: random.Random, modality: str, unsafe: bool) -> tuple[str, str | None]:
    """True request and response labels; an unsafe sample has at least one unsafe label."""
    if modality == "image":
        return ("unsafe" if unsafe else "safe"), None
    response = rng.choice(["safe", "unsafe", None]) if unsafe else rng.choice(["safe", None])
    request = "unsafe" if unsafe and (response != "unsafe" or rng.random() < 0.5) else "safe"
    return request, response


def make_batch(n: int, seed: int = 0) -> tuple[list[Any], dict[str, list[Any]], Counter]:
    """``n`` completions of mixed validity with TRL-style ground-truth columns; counts per kind."""
    rng = random.Random(seed)
    tax = load_taxonomy("default")
    leaves = [leaf for leaf in tax.leaves() if leaf.parent_id]
    maps = [tax.shuffled(s)[1] for s in range(16)]
    completions: list[Any] = []
    cols: dict[str, list[Any]] = {k: [] for k in ("modality", "request_label", "response_label", "category",
                                                  "category_level", "id_map")}
    kinds: Counter = Counter()
    reasoning = "The request asks for step-by-step instructions; the response refuses politely. " * 3
    for i in range(n):
        modality = ("text", "image", "text_image")[i % 3]
        unsafe = rng.random() < 0.6
        request, response = _labels(rng, modality, unsafe)
        leaf = rng.choice(leaves) if unsafe else None
        id_map = rng.choice(maps) if rng.random() < 0.5 else {}
        level = "category" if modality == "text_image" else "subcategory"

        def shown(src: str, id_map: dict = id_map) -> str:
            return id_map.get(src, src)

        kind = rng.choice(KINDS)
        kinds[kind] += 1
        req, resp, think = request, response, reasoning
        cat = None if leaf is None else shown(leaf.id if level == "subcategory" else leaf.parent_id)
        if kind == "wrong_label":
            req = "safe" if request == "unsafe" else "unsafe"
            cat = cat if "unsafe" in (req, resp) else None
            cat = cat or (shown(rng.choice(leaves).id) if "unsafe" in (req, resp) else None)
        elif kind == "partial" and leaf is not None:
            sibling = [c.id for c in tax.get(leaf.parent_id).children if c.id != leaf.id] or [leaf.parent_id]
            cat = shown(rng.choice(sibling))
        elif kind == "wrong_branch" and leaf is not None:
            cat = shown(rng.choice([x for x in leaves if x.parent_id != leaf.parent_id]).id)
        elif kind == "free_text" and leaf is not None:
            cat = "a risk not on the list"
        elif kind == "no_think":
            think = None
        text = format_answer(modality, req, resp, cat, think)
        if kind == "broken":
            text = rng.choice([text.replace("</answer>", ""), text.replace("Request:", "Reqest:"),
                               text[: len(text) // 2], text + "\n<answer>\nRequest: safe\n</answer>",
                               "I think this is unsafe."])
        elif kind == "empty":
            text = ""
        completions.append([{"role": "assistant", "content": text}] if kind == "chat" else text)
        cols["modality"].append(modality)
        cols["request_label"].append(request)
        cols["response_label"].append(response)
        cols["category"].append(leaf.id if leaf is not None else None)
        cols["category_level"].append(level)
        cols["id_map"].append(json.dumps(id_map))
    return completions, cols, kinds


def time_trl_calls(
    reward: Any, completions: list[Any], cols: dict[str, list[Any]], batch_size: int
) -> tuple[float, list[float]]:
    """Seconds to score everything in TRL-style calls, and the totals."""
    totals: list[float] = []
    metrics: dict[str, float] = {}
    start = time.perf_counter()
    for a in range(0, len(completions), batch_size):
        b = min(a + batch_size, len(completions))
        batch_cols = {k: v[a:b] for k, v in cols.items()}
        totals += reward(prompts=[None] * (b - a), completions=completions[a:b], completion_ids=[[0]] * (b - a),
                         log_metric=metrics.__setitem__, **batch_cols)
    return time.perf_counter() - start, totals


def time_stages(reward: Any, completions: list[Any], cols: dict[str, list[Any]], batch_size: int) -> dict[str, float]:
    """Seconds per stage over all batches: targets from columns, parsing, then each module."""
    stages: Counter = Counter()
    for a in range(0, len(completions), batch_size):
        b = min(a + batch_size, len(completions))
        t0 = time.perf_counter()
        targets = targets_from_columns({k: v[a:b] for k, v in cols.items()}, b - a)
        t1 = time.perf_counter()
        parsed = parse_batch(completions[a:b], targets)
        t2 = time.perf_counter()
        stages["targets from columns"] += t1 - t0
        stages["parse (once per batch)"] += t2 - t1
        for c in reward.components:
            t = time.perf_counter()
            c.module(parsed, targets)
            stages[f"module {c.name}"] += time.perf_counter() - t
    return dict(stages)


def main() -> None:
    """Generate the completions, time TRL-style calls (best of ``--repeats``) and the stages, print a table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--batch-size", type=int, default=256, help="completions per reward call (TRL: generation batch)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs; the fastest is reported")
    p.add_argument("--group-size", type=int, default=1,
                   help="rows per prompt, as in a GRPO batch: each run of this many rows shares its ground truth")
    args = p.parse_args()
    print("command:", " ".join([os.path.basename(sys.executable), *sys.argv]))
    print(f"machine: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, Python "
          f"{platform.python_version()}, load average {os.getloadavg()[0]:.2f} (1 min)")
    completions, cols, kinds = make_batch(args.n)
    for k, values in cols.items():  # a GRPO batch repeats each prompt's columns once per generation
        cols[k] = [values[i - i % args.group_size] for i in range(args.n)]
    reward = build_reward(RECIPE, name="format_binary_category")
    print(f"{args.n} completions: {dict(sorted(kinds.items()))}")
    runs, totals = [], []
    for _ in range(args.repeats):
        seconds, totals = time_trl_calls(reward, completions, cols, args.batch_size)
        runs.append(seconds)
    best = min(runs)
    stages = time_stages(reward, completions, cols, args.batch_size)
    parsed_ok = sum(p.ok for p in parse_batch(completions, targets_from_columns(cols, args.n)))
    mean_reward = sum(totals) / len(totals)
    print(f"well-formed: {parsed_ok} of {args.n}; mean total reward {mean_reward:.3f}; "
          f"runs (s): {', '.join(f'{r:.3f}' for r in runs)}")
    print()
    print("| what | completions | batch | seconds (best of %d) | completions/s |" % args.repeats)
    print("| --- | ---: | ---: | ---: | ---: |")
    print(f"| format (gate) x (binary + category), TRL call | {args.n} | {args.batch_size} | {best:.3f} | "
          f"{args.n / best:,.0f} |")
    for name, secs in stages.items():
        print(f"| stage: {name} | {args.n} | {args.batch_size} | {secs:.3f} | {args.n / secs:,.0f} |")


if __name__ == "__main__":
    main()
