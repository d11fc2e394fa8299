"""Step cost of an image row vs a text row for the SmolVLM policy (``smolvlm-smollm2``) on CPU, one torch thread.

For one bundled text task and one bundled image task, rendered as ``recipes/smolvlm-smollm2`` renders them
(top-level categories, names only, no examples), times the two halves of a training step at batch 1:

* ``fwd_bwd``: forward + backward over prompt + a fixed 60-token guard answer (the SFT step's work per row,
  the GRPO loss pass per rollout), optimizer not stepped;
* ``generate``: greedy generation of ``--new-tokens`` tokens (a rollout), ``min_new_tokens`` = max so
  every repetition generates the same number.

Prints medians of ``--reps`` (after one warm-up), the prompt and image token counts, and image/text ratios.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_smolvlm_step.py [--reps 5] [--new-tokens 32]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

ANSWER = (
    "<think>\nThe image shows a weapon held in a threatening way: it falls under C7. The request is unsafe.\n"
    "</think>\n<answer>\nRequest: unsafe\nResponse: None\nCategory: C7\n</answer>"
)


def rows():
    """One text task and one image task of the bundled samples, with the recipe's prompt settings."""
    from proguard.data import BUNDLED_SAMPLES, load_samples
    from proguard.protocol import PromptConfig
    from proguard.tasks.generator import default_tasks
    from taxonomy import load_taxonomy

    tax = load_taxonomy("default")
    config = PromptConfig(category_levels={"text": "category", "image": "category", "text_image": "category"},
                          descriptions=False, examples=False)
    tasks = default_tasks(load_samples(BUNDLED_SAMPLES, tax), tax, config)
    return {m: next(tasks[i] for i in range(len(tasks)) if tasks[i]["modality"] == m) for m in ("text", "image")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--new-tokens", type=int, default=32)
    a = p.parse_args()

    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from proguard.models.smolvlm import smolvlm_path

    torch.set_num_threads(1)
    load_before = os.getloadavg()[0]
    path = smolvlm_path()
    processor = AutoProcessor.from_pretrained(path)
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32)
    image_id = model.config.image_token_id
    out: dict = {"model": str(path), "threads": torch.get_num_threads(), "reps": a.reps}
    for modality, row in rows().items():
        images = [[row["image"].convert("RGB")]] if row["image"] is not None else None
        prompt = processor.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=False)
        enc = processor(text=[prompt], images=images, return_tensors="pt")
        full = processor(text=[prompt + ANSWER + "<|im_end|>"], images=images, return_tensors="pt")
        labels = full["input_ids"].clone()
        labels[:, : enc["input_ids"].shape[1]] = -100  # loss on the answer only, as SFT/GRPO
        fwd_bwd, generate = [], []
        for rep in range(a.reps + 1):  # the first is a warm-up
            model.train()
            t0 = time.perf_counter()
            model(**full, labels=labels).loss.backward()
            model.zero_grad(set_to_none=True)
            t1 = time.perf_counter()
            model.eval()
            with torch.no_grad():
                model.generate(**enc, max_new_tokens=a.new_tokens, min_new_tokens=a.new_tokens, do_sample=False)
            t2 = time.perf_counter()
            if rep:
                fwd_bwd.append(t1 - t0)
                generate.append(t2 - t1)
        out[modality] = {
            "prompt_tokens": int(enc["input_ids"].shape[1]),
            "image_tokens": int((enc["input_ids"] == image_id).sum()),
            "train_tokens": int(full["input_ids"].shape[1]),
            "fwd_bwd_median_s": round(statistics.median(fwd_bwd), 3),
            "fwd_bwd_range_s": [round(min(fwd_bwd), 3), round(max(fwd_bwd), 3)],
            "generate_median_s": round(statistics.median(generate), 3),
            "generate_range_s": [round(min(generate), 3), round(max(generate), 3)],
        }
    for key in ("fwd_bwd_median_s", "generate_median_s"):
        out[f"image_over_text_{key.split('_median')[0]}"] = round(out["image"][key] / out["text"][key], 3)
    out["load_avg_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
