"""Benchmark GRPO steps of the tiny recipe on CPU with vLLM colocate rollouts vs the HF backend.

Run from the project root, in the vLLM venv (``scripts/install_vllm_cpu.sh VENV``), under
``flock /tmp/bench.lock`` on a shared machine:

    VENV/bin/python benchmarks/bench_vllm_cpu.py                  # 6 steps per backend
    VENV/bin/python benchmarks/bench_vllm_cpu.py --steps 8 lengths.max_completion_length=64

Each backend runs in its own child process (vLLM sets process-wide state): the tiny recipe
(``recipes/tiny/grpo_cpu.yaml``) with ``rollout.backend`` set, through ``proguard.train.build_trainer``
and ``trainer.train()``. Reported per backend: ``import vllm``; trainer set-up (dataset, checks,
policy load and, for vLLM, the engine); the engine start alone (TRL's ``VLLMGeneration._init_vllm``
timed); per-step wall time (a ``TrainerCallback``), with the median of steps 2..N and step 1 on its
own (step 1 pays warm-up). Prints the command line, the machine's load average and a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "tiny" / "grpo_cpu.yaml"


def child(backend: str, steps: int, overrides: list[str], out_dir: str) -> dict:
    """One backend's timings (runs in a fresh process)."""
    result: dict = {"backend": backend}
    if backend == "vllm":
        t0 = time.perf_counter()
        import vllm  # noqa: F401

        result["import_vllm_s"] = time.perf_counter() - t0
        from trl.generation import vllm_generation

        original = vllm_generation.VLLMGeneration._init_vllm

        def timed_init(self):
            t = time.perf_counter()
            original(self)
            result["engine_init_s"] = time.perf_counter() - t

        vllm_generation.VLLMGeneration._init_vllm = timed_init

    from transformers import TrainerCallback

    from proguard.train.recipe import load_recipe
    from proguard.train import build_trainer

    class StepTimer(TrainerCallback):
        """Wall time of every optimizer step (generation, scoring, forward, backward, optimizer, weight sync)."""

        def __init__(self) -> None:
            self.times: list[float] = []
            self.t = 0.0

        def on_step_begin(self, args, state, control, **kwargs):
            self.t = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append(time.perf_counter() - self.t)

    recipe = load_recipe(
        RECIPE,
        [
            f"rollout.backend={backend}",
            "rollout.vllm_mode=colocate",
            f"grpo.max_steps={steps}",
            f"output_dir={out_dir}",
            "logging.report_to=[none]",
            f"checkpoint.save_steps={steps + 1}",  # no checkpoint writes inside the timed steps
            *overrides,
        ],
    )
    timer = StepTimer()
    t0 = time.perf_counter()
    setup = build_trainer(recipe, callbacks=[timer])
    result["setup_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    setup.trainer.train()
    result["train_s"] = time.perf_counter() - t0
    result["step_s"] = timer.times
    return result


def main() -> int:
    """Run both backends and print the table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--backends", nargs="+", default=["hf", "vllm"], choices=["hf", "vllm"])
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--json", help=argparse.SUPPRESS)
    p.add_argument("overrides", nargs="*", help="recipe overrides, e.g. lengths.max_completion_length=64")
    args = p.parse_args()

    if args.child:
        with tempfile.TemporaryDirectory() as tmp:
            out = child(args.child, args.steps, args.overrides, str(Path(tmp) / "run"))
        Path(args.json).write_text(json.dumps(out))
        return 0

    print("$ " + " ".join([Path(sys.executable).name, *sys.argv]))
    print(f"load average before: {os.getloadavg()}")
    rows = []
    env = {**os.environ, "VLLM_NO_USAGE_STATS": "1", "HF_HUB_OFFLINE": "1", "VLLM_HOST_IP": "127.0.0.1"}
    for backend in args.backends:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "out.json"
            cmd = [sys.executable, __file__, "--steps", str(args.steps), "--child", backend, "--json", str(out),
                   *args.overrides]
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, env={**env, "VLLM_CACHE_ROOT": tmp}, cwd=ROOT)
            wall = time.perf_counter() - t0
            if proc.returncode != 0:
                print(proc.stdout[-3000:], proc.stderr[-5000:], sep="\n")
                return 1
            r = json.loads(out.read_text())
            r["process_s"] = wall
            rows.append(r)
    print(f"load average after: {os.getloadavg()}")
    print()
    print("| backend | `import vllm` s | engine init s | trainer set-up s | step 1 s | median step 2..N s | "
          f"{args.steps} steps s | whole process s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        steps = r["step_s"]
        rest = statistics.median(steps[1:]) if len(steps) > 1 else float("nan")
        print(
            f"| {r['backend']} | {r.get('import_vllm_s', 0):.1f} | {r.get('engine_init_s', 0):.1f} | "
            f"{r['setup_s']:.1f} | {steps[0]:.2f} | {rest:.2f} | {r['train_s']:.1f} | {r['process_s']:.1f} |"
        )
    print()
    for r in rows:
        print(f"{r['backend']} per-step s: {', '.join(f'{s:.2f}' for s in r['step_s'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
