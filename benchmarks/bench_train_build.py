"""Benchmark building the quick start's GRPO trainer (recipe load -> tasks -> checks -> ``GuardGRPOTrainer``).

Run from the project root, as a whole process under an outside timer (wall time, peak RSS):

    /usr/bin/time -v python benchmarks/bench_train_build.py            # recipes/tiny/grpo_from_sft_cpu.yaml
    /usr/bin/time -v python benchmarks/bench_train_build.py --recipe recipes/tiny/grpo_cpu.yaml

The quick start's GRPO recipe starts from the SFT run's ``final/``; ``model.name_or_path=tiny`` stands in
for it (the same tiny Qwen2.5-VL architecture), so no SFT run is needed. Nothing is trained: the process
builds the trainer the way ``proguard train`` does and exits, printing the seconds each stage took.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", default=str(ROOT / "recipes" / "tiny" / "grpo_from_sft_cpu.yaml"))
    p.add_argument("overrides", nargs="*", help="recipe overrides (key=value)")
    a = p.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    t0 = time.perf_counter()
    import torch

    torch.set_num_threads(1)
    from proguard.train.recipe import load_recipe
    from proguard.train.run import build_trainer

    with tempfile.TemporaryDirectory() as tmp:
        r = load_recipe(a.recipe, ["model.name_or_path=tiny", "logging.report_to=[none]", f"output_dir={tmp}/run",
                                   *a.overrides])
        t1 = time.perf_counter()
        build_trainer(r)
        t2 = time.perf_counter()
    print(f"imports+load {t1 - t0:.2f} s, build_trainer {t2 - t1:.2f} s, total {t2 - t0:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
