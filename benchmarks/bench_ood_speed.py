"""Speed of the ``ood_description`` reward against its floor: one encode call of the batch's distinct names.

Issue 24's target: scoring a batch costs within 1.05x of one encode of its distinct names (forms,
softmax and the list-item rule once per distinct name, not per completion). The batch is
``bench_ood_similarity.py``'s: 4,096 completions (256 prompts x 16 rollouts) of ProGuard's taxonomy.
Both are timed in one process on the same loaded model, interleaved (A B A B ...), and the median of
the per-pair ratios is quoted, so a machine whose speed drifts still gives a fair ratio.

    .venv/bin/python benchmarks/bench_ood_speed.py [--repeats 9] [--views described|three]

(A) the reward's call; (B) ``index.encode`` of the distinct cleaned names and list items the reward
encodes (the names it would send to the model anyway). One torch thread.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from bench_ood_similarity import REFERENCE, make_batch  # noqa: E402
from rewards.ood_description import OODDescription  # noqa: E402
from synonym_bank.name_form import split_items  # noqa: E402
from taxonomy import load_taxonomy  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--views", default="described")
    ap.add_argument("--taxonomy", default=str(REFERENCE))
    args = ap.parse_args()
    torch.set_num_threads(1)
    tax = load_taxonomy(args.taxonomy)
    parsed, targets = make_batch(tax, 256, 16, seed=0)
    t0 = time.perf_counter()
    reward = OODDescription(taxonomy=tax, device="cpu", cache_dir=tempfile.mkdtemp(), views=args.views)
    built = time.perf_counter() - t0
    t0 = time.perf_counter()
    reward(parsed, targets)  # first call: model load, node embeddings, calibration
    first = time.perf_counter() - t0
    names = [reward._free_text_name(p) for p in parsed if getattr(p, "ok", False)]
    forms = reward.scorer.forms([n for n in dict.fromkeys(names) if n is not None])
    texts = [f.text for f in forms if f.factor > 0]
    texts += [t for f in forms if f.factor > 0 and len(split_items(f.text)) > 1 for t in split_items(f.text)]
    distinct = list(dict.fromkeys(texts))
    a_times, b_times = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        reward(parsed, targets)
        a_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        reward.index.encode(distinct)
        b_times.append(time.perf_counter() - t0)
    ratios = [a / b for a, b in zip(a_times, b_times, strict=True)]
    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} (1 min); views {args.views}")
    print(f"{len(parsed)} completions, {len(distinct)} distinct texts encoded (names + list items)")
    print(f"build {built:.2f} s (no model); first call {first:.2f} s (model, node embeddings, calibration)")
    print(f"(A) reward call median {statistics.median(a_times):.3f} s; (B) one encode of the distinct texts "
          f"median {statistics.median(b_times):.3f} s; A/B median {statistics.median(ratios):.3f} "
          f"(min {min(ratios):.3f}, max {max(ratios):.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
