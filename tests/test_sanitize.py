"""Lone UTF-16 surrogates in completions, files and server replies are replaced at the boundary, so
scoring, writing, caching and benchmarking never fail on them."""

from __future__ import annotations

import json

from proguard.bench.cache import CachedGeneration, GenerationCache
from proguard.bench.runner import BenchConfig, run_bench, select_splits
from proguard.cli import main as cli_main
from proguard.data import BUNDLED_SAMPLES, load_samples
from proguard.protocol import parse_completion
from proguard.sanitize import REPLACEMENT, clean_text
from proguard.tasks import TaskConfig, build_tasks
from doubles.bench import ScriptedBackend, perfect_answer
from taxonomy import load_taxonomy

LONE = "\ud800"
TAX = load_taxonomy("default")


def test_clean_text_replaces_and_counts_lone_surrogates_only():
    assert clean_text(f"a{LONE}b\udfff") == (f"a{REPLACEMENT}b{REPLACEMENT}", 2)
    text = "emoji \U0001F600 stays"
    assert clean_text(text) == (text, 0) and clean_text(text)[0] is text
    nested, n = clean_text({"k": [LONE, ("x", LONE)], LONE: 1, "n": 3})
    assert n == 3 and nested == {"k": [REPLACEMENT, ("x", REPLACEMENT)], REPLACEMENT: 1, "n": 3}
    json.dumps(nested, ensure_ascii=False).encode("utf-8")  # writable now


def test_the_parser_never_passes_a_surrogate_on():
    p = parse_completion(f"<think>r{LONE}</think><answer>\nRequest: unsafe\nResponse: None\nCategory: Ev{LONE}l\n</answer>",
                         "text")
    assert p.ok and p.category == f"Ev{REPLACEMENT}l" and p.reasoning == f"r{REPLACEMENT}"


def test_rewards_score_and_its_output_survive_surrogates(tmp_path, capsys):
    rows = [
        {"completion": f"<think>x{LONE}</think><answer>\nRequest: unsafe\nResponse: None\nCategory: Bo{LONE}mbs\n</answer>",
         "modality": "text", "request_label": "unsafe", "category": "C8S1", "ood": True, "note": LONE},
        {"completion": "<think>fine</think><answer>\nRequest: safe\nResponse: None\nCategory: None\n</answer>",
         "modality": "text", "request_label": "safe"},
    ]
    data = tmp_path / "in.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")  # "\ud800" escapes
    out = tmp_path / "scored.jsonl"
    assert cli_main(["rewards", "score", "--input", str(data), "--output", str(out)]) == 0
    assert "replaced 3 lone UTF-16 surrogate(s)" in capsys.readouterr().err
    scored = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(scored) == 2 and scored[0]["note"] == REPLACEMENT and isinstance(scored[0]["reward"], float)


def test_bench_caches_and_reports_replies_with_surrogates(tmp_path):
    samples = load_samples(BUNDLED_SAMPLES, TAX)
    tasks = select_splits(build_tasks(samples, TAX, TaskConfig(holdout=["C8S1"], seed=1)), "all").select(range(6))
    backend = ScriptedBackend.from_tasks(tasks, lambda row: perfect_answer(row, reasoning=f"Checked{LONE}."))
    config = BenchConfig(batch_size=3, progress=False, plots=False)
    first = run_bench(tasks, backend, tmp_path, config, taxonomy=TAX)
    assert first.generated == 6 and not first.failures
    results = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert results["run"]["replaced_surrogates"] == 6
    again = run_bench(tasks, backend, tmp_path, config, taxonomy=TAX)  # the rerun reads the cache back
    assert again.cached == 6 and again.generated == 0
    assert all(REPLACEMENT in r.completion for r in again.records)


def test_the_cache_splits_lines_on_newlines_only(tmp_path):
    cache = GenerationCache(tmp_path / "g.jsonl", "k")
    cache.append([CachedGeneration("t1", "h", f"a\u2028b\x1cc{LONE}", 0.1, 0.1)])
    got = cache.load()
    assert got["t1"].text == f"a\u2028b\x1cc{REPLACEMENT}"
