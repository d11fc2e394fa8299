"""Media benchmarks: decode throughput of the sample loader's media paths, and a GRPO-step proxy per modality.

Decode: ``check_video`` / ``check_audio`` (what ``load_samples`` runs per row) and ``load_video`` /
``load_audio`` (what a training step runs per sample) over the bundled clips and sounds, in clips/s.

Step per modality: the tiny Qwen2.5-Omni thinker on a batch of the tiny omni recipe's shape (7
prompts x 2 rollouts, one modality at a time, the bundled tasks): media decoding and encoding
(``row_media`` + ``OmniInputs``), ``generate`` of 16 tokens, and one forward + backward pass over
prompt + completion, i.e. the work of one GRPO step without TRL's bookkeeping. Medians of ``--reps``.

    .venv/bin/python benchmarks/bench_media.py [--reps 3]

Long clip (issue 25): peak RSS of ``load_video`` on a 60 s 1080p clip generated here with PyAV (30 fps,
H.264, a moving box on a gradient, keyframe every 2 s), each measurement in a fresh process (its
``ru_maxrss``); beside it the same process importing only, a 10 s clip (memory must not grow with
length) and, for scale, decoding every frame of the first 5 s to images (the old path).

    .venv/bin/python benchmarks/bench_media.py --long-clip [--workdir /tmp/bench_media]
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


def write_long_clip(path, seconds: int, width: int = 1920, height: int = 1080, fps: int = 30):
    """A ``seconds`` long clip: a box moving over a gradient, H.264 (libx264, ultrafast), keyframe every 2 s."""
    import av
    import numpy as np

    base = np.zeros((height, width, 3), np.uint8)
    base[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    base[..., 2] = np.linspace(0, 255, height, dtype=np.uint8)[:, None]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = 2 * fps
        stream.options = {"preset": "ultrafast", "crf": "30"}
        for i in range(seconds * fps):
            frame = base.copy()
            x = (i * 16) % (width - 200)
            frame[400:600, x : x + 200] = (255, 255, 0)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


PEAK = """
import json, resource, sys, time
from proguard.media import MediaLimits, load_video, require_av
mode, clip = sys.argv[1], sys.argv[2]
limits = MediaLimits(max_video_seconds=120.0)
t0 = time.perf_counter()
frames = 0
if mode == "sampled":
    frames = len(load_video(clip, limits).frames)
elif mode == "all-5s":  # the old path: every frame decoded to an image, then sampled (stopped after 5 s)
    av = require_av()
    with av.open(clip) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        kept = []
        for f in c.decode(s):
            kept.append(f.to_image())
            if len(kept) >= 150:
                break
    frames = len(kept)
print(json.dumps({"mode": mode, "frames": frames, "seconds": round(time.perf_counter() - t0, 2),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))
"""


def long_clip(workdir: str) -> dict:
    """Peak RSS of decoding long 1080p clips, each in a fresh process."""
    import subprocess
    import sys
    from pathlib import Path

    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    out: dict = {}
    clips = {}
    for seconds in (10, 60):
        clip = work / f"clip_{seconds}s_1080p.mp4"
        t0 = time.perf_counter()
        if not clip.exists():
            write_long_clip(clip, seconds)
        clips[seconds] = clip
        out[f"clip_{seconds}s"] = {"mb": round(clip.stat().st_size / 1e6, 1), "encode_s": round(time.perf_counter() - t0, 1)}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name, mode, clip in (("imports_only", "none", clips[10]), ("sampled_10s", "sampled", clips[10]),
                             ("sampled_60s", "sampled", clips[60]), ("old_all_frames_first_5s", "all-5s", clips[60])):
        res = subprocess.run([sys.executable, "-c", PEAK, mode, str(clip)], capture_output=True, text=True, env=env,
                             check=True)
        out[name] = json.loads(res.stdout.strip().splitlines()[-1])
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--skip-step", action="store_true")
    p.add_argument("--long-clip", action="store_true", help="only the long-clip peak-RSS measurement (issue 25)")
    p.add_argument("--workdir", default="/tmp/bench_media", help="--long-clip: where the generated clips go")
    a = p.parse_args()
    if a.long_clip:
        result = {"load_avg_1min": round(os.getloadavg()[0], 2), "long_clip": long_clip(a.workdir),
                  "load_avg_1min_after": round(os.getloadavg()[0], 2)}
        print(json.dumps(result, indent=2))
        return
    result = {"load_avg_1min": round(os.getloadavg()[0], 2), "decode": decode_rates(a.reps)}
    if not a.skip_step:
        result["step_per_modality"] = step_per_modality(a.reps)
    result["load_avg_1min_after"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
