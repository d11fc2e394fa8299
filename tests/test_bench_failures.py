"""No silent success in ``proguard bench``: failed samples make the run exit 1 (unless allowed), null or
non-string replies are failures that are not cached, reasoning_content is used only when asked, and
reply size is capped with the truncations counted. Against a loopback stub server, a few requests each."""

from __future__ import annotations

import json
import socket

import pytest

from proguard.bench.backends import GenerationFailed, GenerationSettings, OpenAIBackend
from proguard.cli import main as cli_main
from proguard.protocol import build_messages
from doubles.openai_stub import OpenAIStub
from taxonomy import load_taxonomy

TAX = load_taxonomy("default")
ANSWER = "<think>\nok\n</think>\n<answer>\nRequest: safe\nResponse: None\nCategory: None\n</answer>"


def prompts(n=2):
    return [(build_messages("text", f"request {i}", None, TAX), None) for i in range(n)]


def backend(url, **kw):
    opts = dict(timeout=2.0, max_retries=0, backoff_s=0.0, concurrency=2)
    opts.update(kw)
    return OpenAIBackend(url, "stub-guard", GenerationSettings(max_new_tokens=32), **opts)


@pytest.mark.parametrize("message", [{"role": "assistant", "content": None}, {"role": "assistant", "content": 42},
                                     {"role": "assistant", "content": ["a"]}])
def test_null_or_non_string_content_is_a_failure(message):
    with OpenAIStub(message) as stub:
        outs = backend(stub.url).generate(prompts())
    assert all(isinstance(o, GenerationFailed) and "not text" in o.message for o in outs)


def test_reasoning_content_is_used_only_when_the_option_says_so():
    message = {"role": "assistant", "content": "", "reasoning_content": ANSWER}
    with OpenAIStub(message) as stub:
        plain = backend(stub.url).generate(prompts(1))[0]
        opted = backend(stub.url, use_reasoning_content=True)
        assert opted.generate(prompts(1)) == [ANSWER]
    assert isinstance(plain, GenerationFailed) and "--use-reasoning-content" in plain.message
    assert opted.describe()["use_reasoning_content"] is True  # part of the cache key


def test_reply_size_is_capped_in_bytes_and_tokens_and_counted():
    with OpenAIStub("x" * 200_000) as stub:
        by_bytes = backend(stub.url, max_reply_bytes=10_000)
        outs = by_bytes.generate(prompts(3))
        assert all(isinstance(o, GenerationFailed) and "larger than 10000 bytes" in o.message for o in outs)
        assert by_bytes.truncations == 3
        by_tokens = backend(stub.url)  # 32 tokens x 16 characters
        outs = by_tokens.generate(prompts(2))
    assert [len(o) for o in outs] == [512, 512] and by_tokens.truncations == 2


def bench_args(url, out, *extra):
    return ["bench", "--backend", "openai", "--base-url", url, "--model", "m", "--out", str(out), "--limit", "4",
            "--max-retries", "0", "--timeout", "2", "--no-plots", "--no-progress", *extra]


def test_bench_exits_1_when_samples_fail_and_caches_none_of_them(tmp_path, capsys):
    with OpenAIStub({"role": "assistant", "content": None}) as stub:
        assert cli_main(bench_args(stub.url, tmp_path / "null")) == 1
        err = capsys.readouterr().err
        assert "proguard bench: error: 4 of 4 samples failed after retries" in err and "Traceback" not in err
        cache = tmp_path / "null" / "generations.jsonl"
        assert not cache.exists() or cache.read_text() == ""
        assert cli_main(bench_args(stub.url, tmp_path / "ok", "--allow-failures", "100%")) == 0
        assert cli_main(bench_args(stub.url, tmp_path / "ok", "--allow-failures", "3")) == 1
        assert cli_main(bench_args(stub.url, tmp_path / "ok", "--allow-failures", "4")) == 0
        assert len(stub.requests) == 16  # bounded: one request per sample per run, nothing retried or cached
    saved = json.loads((tmp_path / "null" / "results.json").read_text())
    assert saved["run"]["failed"] == 4  # the results are written either way


def test_bench_with_nothing_listening_is_a_failed_run(tmp_path, capsys):
    with socket.socket() as s:  # a free loopback port that nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert cli_main(bench_args(f"http://127.0.0.1:{port}/v1", tmp_path / "down")) == 1
    assert "4 of 4 samples failed" in capsys.readouterr().err


def test_a_huge_reply_is_cut_and_reported(tmp_path, capsys):
    with OpenAIStub(ANSWER + " " * 100_000) as stub:
        assert cli_main(bench_args(stub.url, tmp_path / "huge", "--max-new-tokens", "64", "--allow-failures", "4")) == 0
    out = capsys.readouterr().out
    assert "4 replies truncated at the size cap" in out
    saved = json.loads((tmp_path / "huge" / "results.json").read_text())
    assert saved["run"]["truncated_replies"] == 4
    lines = (tmp_path / "huge" / "generations.jsonl").read_text().splitlines()
    assert len(lines) == 4 and all(len(json.loads(x)["text"]) == 64 * 16 for x in lines)


@pytest.mark.parametrize("value", ["-1", "x", "150%"])
def test_allow_failures_must_be_a_count_or_a_percentage(tmp_path, capsys, value):
    assert cli_main(bench_args("http://127.0.0.1:9/v1", tmp_path / "x", "--allow-failures", value)) == 2
    assert "--allow-failures" in capsys.readouterr().err
