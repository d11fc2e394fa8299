"""Media benchmarks: decode throughput of the sample loader's media paths, and a GRPO-step proxy per modality.

Decode: ``check_video`` / ``check_audio`` (what ``load_samples`` runs per row) and ``load_video`` /
``load_audio`` (what a training step runs per sample) over the bundled clips and sounds, in clips/s.

Step per modality: the tiny Qwen2.5-Omni thinker on a batch of the tiny omni recipe's shape (7
prompts x 2 rollouts, one modality at a time, the bundled tasks): media decoding and encoding
(``row_media`` + ``OmniInputs``), ``generate`` of 16 tokens, and one forward + backward pass over
prompt + completion, i.e. the work of one GRPO step without TRL's bookkeeping. Medians of ``--reps``.

    .venv/bin/python benchmarks/bench_media.py [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time


def decode_rates(reps: int) -> dict:
    from proguard.data import BUNDLED_SAMPLES
    from proguard.media import check_audio, check_video, load_audio, load_video

    root = BUNDLED_SAMPLES.parent
    clips = sorted((root / "video").glob("*.mp4"))
    sounds = sorted((root / "audio").glob("*.ogg"))
    out = {}
    for name, fn, items in (
        ("check_video", check_video, clips),
        ("load_video", load_video, clips),
        ("check_audio", check_audio, sounds),
        ("load_audio", load_audio, sounds),
    ):
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            for it in items:
                fn(it)
            times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        out[name] = {"items": len(items), "median_s": round(med, 4), "clips_per_s": round(len(items) / med, 1)}
    return out


def step_per_modality(reps: int) -> dict:
    import torch
    from transformers import AutoModelForImageTextToText

    from proguard.data import BUNDLED_SAMPLES, load_samples
    from proguard.models.tiny_omni import load_omni_inputs, tiny_omni_path
    from proguard.protocol import PromptConfig
    from proguard.tasks.generator import default_tasks
    from proguard.train.trainer import row_media
    from rewards.types import MODALITIES
    from taxonomy import load_taxonomy

    path = tiny_omni_path()
    model = AutoModelForImageTextToText.from_pretrained(path)
    inputs = load_omni_inputs(path)
    tax = load_taxonomy("default")
    tasks = default_tasks(load_samples(BUNDLED_SAMPLES, tax), tax, PromptConfig(descriptions=False))
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    from proguard.train.rollout import media_token_ids

    suppress = sorted(media_token_ids(model.config))  # as training does (a sampled placeholder breaks the loss pass)
    out = {}
    for m in MODALITIES:
        rows = [r for r in tasks if r["modality"] == m]
        rows = (rows * 14)[:14]  # 7 prompts x 2 rollouts
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            media = [row_media(r) for r in rows]
            texts = [inputs.tokenizer.apply_chat_template(r["prompt"], add_generation_prompt=True, tokenize=False)
                     for r in rows]
            batch = inputs(texts, [x["images"] for x in media], [x["videos"] for x in media],
                           [x["audios"] for x in media])
            model.eval()
            with torch.no_grad():
                seq = model.generate(**batch, max_new_tokens=16, min_new_tokens=16, do_sample=True,
                                     suppress_tokens=suppress)
            model.train()
            full = {**batch, "input_ids": seq,
                    "attention_mask": torch.cat([batch["attention_mask"], torch.ones_like(seq[:, batch["input_ids"].shape[1]:])], 1)}
            loss = model(**full).logits[:, -16:].float().logsumexp(-1).mean()
            loss.backward()
            opt.zero_grad()
            times.append(time.perf_counter() - t0)
        out[m] = {"median_s": round(statistics.median(times), 2), "prompt_tokens": int(batch["input_ids"].shape[1])}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--skip-step", action="store_true")
    a = p.parse_args()
    result = {"load_avg_1min": round(os.getloadavg()[0], 2), "decode": decode_rates(a.reps)}
    if not a.skip_step:
        result["step_per_modality"] = step_per_modality(a.reps)
    result["load_avg_1min_after"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
