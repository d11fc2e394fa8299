"""The tiny random Qwen2.5-VL through the transformers backend, end to end on the bundled sample
tasks: every modality is generated, garbage answers are scored as wrong (never skipped), the outputs
are written, and a rerun is served from the cache without loading the model."""

from __future__ import annotations

import json

import pytest

from proguard.bench.backends import GenerationSettings, TransformersBackend
from proguard.bench.runner import BenchConfig, run_bench
from proguard.data import BUNDLED_SAMPLES, load_samples
from proguard.tasks import default_tasks
from proguard.models.tiny_vlm import tiny_vlm_path
from taxonomy import load_taxonomy


@pytest.fixture(scope="module")
def tasks():
    tax = load_taxonomy("default")
    all_tasks = default_tasks(load_samples(BUNDLED_SAMPLES, tax), tax)
    mods = all_tasks["modality"]
    pick = [i for m in ("text", "image", "text_image") for i in [j for j, x in enumerate(mods) if x == m][:4]]
    return all_tasks.select(pick)


def test_tiny_vlm_end_to_end(tmp_path, tasks):
    settings = GenerationSettings(max_new_tokens=16)
    backend = TransformersBackend(str(tiny_vlm_path()), settings, device="cpu")
    result = run_bench(tasks, backend, tmp_path, BenchConfig(batch_size=4, progress=False))
    m = result.metrics
    assert m["n"] == 12 and m["n_per_modality"] == {"image": 4, "text": 4, "text_image": 4}
    assert result.generated == 12 and not result.failures
    assert m["binary"]["request"]["all"]["n"] == 12  # nothing skipped, whatever the model wrote
    assert m["format"]["valid_rate"] == 0.0  # a random model does not follow the protocol
    assert m["binary"]["request"]["all"]["tp"] == m["binary"]["request"]["all"]["tn"] == 0
    assert m["timing"]["throughput_samples_per_s"] > 0
    preds = [json.loads(x) for x in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 12 and all(p["completion"] for p in preds)
    assert (tmp_path / "report.md").is_file() and (tmp_path / "confusion_parent.png").is_file()

    again = TransformersBackend(str(tiny_vlm_path()), settings, device="cpu")
    rerun = run_bench(tasks, again, tmp_path, BenchConfig(batch_size=4, progress=False))
    assert (rerun.generated, rerun.cached) == (0, 12) and again._model is None  # never loaded
    assert rerun.metrics["binary"] == m["binary"]
