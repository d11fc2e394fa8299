"""The guard benchmark and guard inference: backends, metrics, generation cache, reports, ``Guard``.

``run_bench`` scores any guard (a local transformers checkpoint, vLLM offline, or an
OpenAI-compatible endpoint) on a task dataset; ``Guard`` classifies single inputs with a trained
guard. The command lines are ``proguard bench`` and ``proguard moderate``.
"""

from proguard.bench.backends import (
    Backend,
    GenerationFailed,
    GenerationSettings,
    OpenAIBackend,
    TransformersBackend,
    VLLMBackend,
    make_backend,
)
from proguard.bench.guard import Guard
from proguard.bench.metrics import Record, compute_metrics
from proguard.bench.runner import BenchConfig, BenchResult, run_bench

__all__ = [
    "Backend",
    "BenchConfig",
    "BenchResult",
    "GenerationFailed",
    "GenerationSettings",
    "Guard",
    "OpenAIBackend",
    "Record",
    "TransformersBackend",
    "VLLMBackend",
    "compute_metrics",
    "make_backend",
    "run_bench",
]
