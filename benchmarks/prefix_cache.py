"""Held-out answer time of the transformers backend with and without the shared-prompt-prefix cache
(``proguard.bench.prefix_cache``), and whether the answers agree.

    OMP_NUM_THREADS=1 python benchmarks/prefix_cache.py --run runs/quickstart [--model sft] [--repeats 3]

``--run`` is a ``proguard quickstart`` output folder: its held-out prompts (eval_id + eval_ood) are answered
greedily in batches of 8 (the quick start's), up to 96 new tokens, by the model under ``<run>/<model>/final``
(``base``: the converted SmolLM2-135M). Prints one JSON line per repeat and a summary with medians and the
ratio; the two settings alternate within each repeat so the machine's drift hits both alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="a proguard quickstart --out folder")
    p.add_argument("--model", default="sft", help="sft, grpo or base (default sft)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--max-new-tokens", type=int, default=96)
    p.add_argument("--batch", type=int, default=8)
    args = p.parse_args()

    import datasets
    import torch

    from proguard.bench.backends import GenerationSettings, TransformersBackend, _chat_text, media_of
    from proguard.train.policy import resolve_model_path
    from proguard.train.recipe import load_recipe

    torch.set_num_threads(1)
    run = Path(args.run)
    tasks = datasets.load_from_disk(str(run / "data" / "tasks"))
    rows = [*tasks["eval_id"], *tasks["eval_ood"]]
    prompts = [(r["prompt"], media_of(r)) for r in rows]
    model = str(resolve_model_path(load_recipe(None, ["model.name_or_path=smollm2-135m"]))) if args.model == "base" \
        else str(run / args.model / "final")
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens)
    backends = {share: TransformersBackend(model, settings, device="cpu", dtype="float32", label_bias=0.0,
                                           share_prefix=share) for share in (False, True)}
    for b in backends.values():
        b.prepare()
        b.generate(prompts[:2])  # first-call set-up outside the timing
    seconds: dict[bool, list[float]] = {False: [], True: []}
    answers: dict[bool, list] = {}
    for r in range(args.repeats):
        for share, b in backends.items():
            t = time.perf_counter()
            out = [a for i in range(0, len(prompts), args.batch) for a in b.generate(prompts[i : i + args.batch])]
            seconds[share].append(time.perf_counter() - t)
            answers[share] = out
            print(json.dumps({"repeat": r, "share_prefix": share, "seconds": round(seconds[share][-1], 2)}), flush=True)
    plain, shared = (statistics.median(seconds[s]) for s in (False, True))
    same = sum(a == b for a, b in zip(answers[False], answers[True], strict=True))
    tok, processor = backends[True].tokenizer(), backends[True]._processor
    print(json.dumps({
        "model": model, "prompts": len(prompts), "repeats": args.repeats, "shared_prefix_tokens": len(backends[True]._prefix.ids),
        "prompt_tokens_median": statistics.median(
            len(tok(_chat_text(processor, p), add_special_tokens=False)["input_ids"]) for p, _ in prompts),
        "median_s_plain": round(plain, 1), "median_s_shared_prefix": round(shared, 1), "ratio": round(shared / plain, 3),
        "identical_answers": f"{same}/{len(prompts)}"}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
