"""The OpenAI-compatible backend against a stub chat-completions server on 127.0.0.1 (ephemeral port):
canned answers, a request that times out once, HTTP 500s (once, and always), a 400; then a whole
benchmark run through it where one sample never gets an answer and the run still completes."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from proguard.bench.backends import GenerationFailed, GenerationSettings, OpenAIBackend, make_backend
from proguard.protocol import build_messages
from doubles.openai_stub import OpenAIStub
from proguard.models.tiny_vlm import make_test_image
from taxonomy import load_taxonomy

TAX = load_taxonomy("default")
ANSWER = "<think>\nok\n</think>\n<answer>\nRequest: safe\nResponse: None\nCategory: None\n</answer>"


def prompt(marker: str, image=None):
    modality = "text_image" if image is not None else "text"
    return build_messages(modality, f"request {marker}", None, TAX), image


@pytest.fixture
def server():
    with OpenAIStub(ANSWER) as s:
        yield s


def backend(url, **kw):
    opts = dict(timeout=0.3, max_retries=2, backoff_s=0.01, concurrency=4)
    opts.update(kw)
    return OpenAIBackend(url, "stub-guard", GenerationSettings(max_new_tokens=32, seed=7), **opts)


def test_canned_answers_retries_and_reported_failures(server):
    b = backend(server.url, api_key="sk-test")
    outs = b.generate([prompt("ok"), prompt("slow-once"), prompt("500-once"), prompt("500-always"), prompt("400")])
    assert outs[:3] == [ANSWER, ANSWER, ANSWER]  # the timeout and the first 500 were retried
    assert isinstance(outs[3], GenerationFailed) and "HTTP 500" in outs[3].message
    assert "3 attempt(s)" in outs[3].message
    assert isinstance(outs[4], GenerationFailed) and "HTTP 400" in outs[4].message
    assert server.hits == {"ok": 1, "slow-once": 2, "500-once": 2, "500-always": 3, "400": 1}  # 400 is not retried
    req = server.requests[0]
    assert req["path"] == "/v1/chat/completions" and req["auth"] == "Bearer sk-test"
    body = req["body"]
    assert (body["model"], body["max_tokens"], body["temperature"], body["seed"]) == ("stub-guard", 32, 0.0, 7)
    assert body["messages"][0]["role"] == "system" and isinstance(body["messages"][0]["content"], str)
    assert "C8S1: Weapons" in body["messages"][0]["content"]  # the task's own taxonomy rendering


def test_timeout_without_retries_is_reported(server):
    outs = backend(server.url, max_retries=0).generate([prompt("slow-once")])
    assert isinstance(outs[0], GenerationFailed) and "attempt" in outs[0].message


def test_image_travels_as_a_png_data_url(server):
    image = make_test_image(40, seed=3)
    assert backend(server.url).generate([prompt("ok", image)]) == [ANSWER]
    parts = server.requests[0]["body"]["messages"][1]["content"]
    assert [p["type"] for p in parts] == ["image_url", "text"]
    url = parts[0]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    decoded = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert decoded.size == (40, 40) and list(decoded.convert("RGB").getdata()) == list(image.getdata())


def test_prompt_and_image_must_agree(server):
    with pytest.raises(ValueError, match="image part"):
        backend(server.url).generate([(build_messages("image", None, None, TAX), None)])


def test_bad_options_are_rejected():
    with pytest.raises(ValueError, match="base URL"):
        OpenAIBackend("127.0.0.1:8000", "m")
    with pytest.raises(ValueError, match="needs a base URL"):
        make_backend("openai", "m")
    with pytest.raises(ValueError, match="unknown backend"):
        make_backend("tgi", "m")


def test_vllm_backend_names_the_extra_when_missing():
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here")
    with pytest.raises(ImportError, match=r"pip install 'proguard\[vllm\]'"):
        make_backend("vllm", "any-model")


def test_bench_run_through_the_endpoint_survives_a_dead_sample(tmp_path):
    """One sample's request always fails: the run completes, reports it, scores it wrong, does not
    cache it; the rerun asks the (now healthy) server for that sample only."""
    import json

    from proguard.bench.runner import BenchConfig, run_bench
    from proguard.data import load_samples
    from proguard.tasks import default_tasks

    rows = [
        {"id": "a", "modality": "text", "request": "hello there", "request_label": "safe"},
        {"id": "b", "modality": "text", "request": "500-always here", "request_label": "safe"},
        {"id": "c", "modality": "text", "request": "slow-once here", "request_label": "safe"},
    ]
    (tmp_path / "s.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    tasks = default_tasks(load_samples(tmp_path / "s.jsonl", TAX), TAX)
    config = BenchConfig(batch_size=8, progress=False, plots=False)
    with OpenAIStub(ANSWER) as server:
        result = run_bench(tasks, backend(server.url), tmp_path / "out", config)
        assert [f["task_id"] for f in result.failures] == ["all/b"] and result.generated == 2
        m = result.metrics
        assert m["n"] == 3 and m["format"]["error_codes"] == {"generation_failed": 1}
        assert m["binary"]["request"]["all"]["fp"] == 1  # the failed safe sample counts as wrong
        saved = json.loads((tmp_path / "out" / "results.json").read_text())
        assert saved["run"]["failed"] == 1 and "HTTP 500" in saved["failures"][0]["message"]
        preds = [json.loads(x) for x in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()]
        assert [p["generation_failed"] for p in preds] == [False, True, False]
        assert server.hits["500-always"] == 3

        server.healthy = True
        rerun = run_bench(tasks, backend(server.url), tmp_path / "out", config)
        assert (rerun.generated, rerun.cached, rerun.failures) == (1, 2, [])
        assert server.hits == {"ok": 1, "500-always": 4, "slow-once": 2}
        assert rerun.metrics["format"]["valid_rate"] == 1.0


def test_cli_bench_through_the_endpoint_writes_every_output(tmp_path, capsys):
    import json

    from proguard.cli import main

    out = tmp_path / "out"
    with OpenAIStub(ANSWER) as server:
        args = ["bench", "--backend", "openai", "--base-url", server.url, "--model", "stub-guard", "--api-key-env", "",
                "--limit", "6", "--batch-size", "3", "--seed", "5", "--out", str(out), "--no-progress"]
        assert main(args) == 0
        assert len(server.requests) == 5
        printed = capsys.readouterr().out
        assert "samples 5 (5 generated, 0 cached, 0 failed)" in printed and "wrote" in printed
        assert main(args) == 0 and len(server.requests) == 5  # the rerun is served from the cache
        assert "samples 5 (0 generated, 5 cached, 0 failed)" in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert results["run"]["backend"]["base_url"] == server.url and results["run"]["settings"]["seed"] == 5
    # the bundled samples' eval split (6 rows, never the training split) less its video row, which the openai
    # backend cannot send: skipped and named, not failed
    assert results["run"]["tasks"].startswith("build_tasks(bundled") and results["metrics"]["n"] == 5
    assert "skipped, not scored: video 1" in results["run"]["tasks"]
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 5
    assert (out / "report.md").read_text().startswith("# Guard benchmark report")
