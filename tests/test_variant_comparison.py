"""Comparing two quick-start variants on the same prompts (benchmarks/quickstart_gain.py --vs and
benchmarks/label_auc_large.py --compare/--vs) on files written here; no model."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture()
def bench_path(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # the scripts import label_probe as their own sibling


def _margins_file(path: Path, seed: int, margins: list[tuple[str, float]]) -> Path:
    path.write_text(json.dumps({"model": "m", "seed": seed,
                                "rows": [[f"eval_id/{i}", label, m] for i, (label, m) in enumerate(margins)]}))
    return path


def test_a_variant_that_ranks_every_prompt_right_gains_auc_and_balanced_accuracy(tmp_path, bench_path):
    """Base: unsafe and safe margins interleaved (AUC 0.5); other: every unsafe margin above every safe one and
    the threshold at 0 (AUC 1, balanced accuracy 1): gains with intervals above 0 per seed and pooled."""
    lab = _load("label_auc_large")
    base, other = [], []
    for seed in (0, 1):
        mixed = [("unsafe", float(i % 2)) for i in range(20)] + [("safe", float(i % 2)) for i in range(20)]
        right = [("unsafe", 1.0 + i) for i in range(20)] + [("safe", -1.0 - i) for i in range(20)]
        base.append(_margins_file(tmp_path / f"a{seed}.json", seed, mixed))
        other.append(_margins_file(tmp_path / f"b{seed}.json", seed, right))
    table = lab.compare(base, other, resamples=300).splitlines()
    assert len(table) == 5 and table[-1].startswith("| pooled")
    for line in table[2:]:
        cells = [c.strip() for c in line.split("|")[1:-1]]
        assert cells[1] == "20 / 20" or cells[1] == "40 / 40"
        assert cells[2] == "0.500 -> 1.000" and cells[3].startswith("+0.500 [+")
        assert cells[4] == "0.500 -> 1.000" and cells[5].startswith("+0.500 [+")
        low = float(cells[3].split("[")[1].split(",")[0])
        assert low > 0


def test_the_pooled_auc_is_the_mean_of_each_seeds_not_one_auc_over_seeds(bench_path):
    """Seed 0's margins all sit above seed 1's: one AUC over both seeds would pair prompts of two models."""
    lab = _load("label_auc_large")
    rows = [(0, "unsafe", 11.0), (0, "safe", 10.0), (1, "unsafe", 1.0), (1, "safe", 0.0)]
    assert lab._mean_auc(rows) == 1.0
    assert lab._auc(rows) == 0.75


def test_files_of_other_prompts_or_seeds_are_refused(tmp_path, bench_path):
    lab = _load("label_auc_large")
    a = _margins_file(tmp_path / "a.json", 0, [("unsafe", 1.0), ("safe", 0.0)])
    with pytest.raises(SystemExit, match="not the same seed and prompts"):
        lab.compare([a], [_margins_file(tmp_path / "b.json", 1, [("unsafe", 1.0), ("safe", 0.0)])])
    with pytest.raises(SystemExit, match="not the same seed and prompts"):
        lab.compare([a], [_margins_file(tmp_path / "c.json", 0, [("safe", 1.0), ("unsafe", 0.0)])])
    with pytest.raises(SystemExit, match="same number of files"):
        lab.compare([a], [a, a])
    (tmp_path / "d.json").write_text("[]")
    with pytest.raises(SystemExit, match="not a label_auc_large.py --save file"):
        lab.compare([a], [tmp_path / "d.json"])
    (tmp_path / "e.json").write_text("{not json")
    for bad in (tmp_path / "e.json", tmp_path / "missing.json"):
        with pytest.raises(SystemExit, match="cannot read a label_auc_large.py --save file"):
            lab.compare([a], [bad])


def _run(folder: Path, seed: int, answers: dict[str, list[str | None]]) -> Path:
    """A quick-start folder with eval/<model>/predictions.jsonl: 6 unsafe prompts, then 4 safe ones."""
    truth = ["unsafe"] * 6 + ["safe"] * 4
    folder.mkdir()
    (folder / "quickstart.json").write_text(json.dumps({"seed": seed}))
    for model, said in answers.items():
        (folder / "eval" / model).mkdir(parents=True)
        with open(folder / "eval" / model / "predictions.jsonl", "w") as fh:
            for i, (t, s) in enumerate(zip(truth, said, strict=True)):
                parsed = {"ok": s is not None, "request": s}
                fh.write(json.dumps({"task_id": f"eval_id/{i}", "truth": {"request": t}, "parsed": parsed}) + "\n")
    return folder


def test_quickstart_gain_vs_takes_the_other_variants_same_model_as_the_baseline(tmp_path, monkeypatch, capsys):
    """Weight-1 SFT keeps one safe prompt safe (acc 0.7); weight-5 SFT keeps three, and leaves one unsafe prompt's
    answer malformed (wrong): acc 0.8, +0.100 against --vs (+0.200 against the constant, 0.6)."""
    qg = _load("quickstart_gain")
    w1 = _run(tmp_path / "w1", 0, {"sft": ["unsafe"] * 9 + ["safe"], "always-unsafe": ["unsafe"] * 10})
    w5 = _run(tmp_path / "w5", 0, {"sft": ["unsafe"] * 5 + [None] + ["safe", "safe", "safe", "unsafe"],
                                   "always-unsafe": ["unsafe"] * 10})
    monkeypatch.setattr(sys, "argv", ["quickstart_gain.py", str(w5), "--vs", str(w1), "--models", "sft",
                                      "--resamples", "200"])
    assert qg.main() == 0
    out = capsys.readouterr().out.splitlines()
    assert "(model / --vs)" in out[0]
    cells = [c.strip() for c in out[2].split("|")[1:-1]]
    assert cells[:4] == ["0", "sft (n=10)", "0.800 / 0.700", cells[3]] and cells[3].startswith("+0.100 [")
    monkeypatch.setattr(sys, "argv", ["quickstart_gain.py", str(w5), "--vs", str(_run(tmp_path / "w1b", 1, {
        "sft": ["unsafe"] * 10})), "--models", "sft"])
    with pytest.raises(SystemExit, match="different seeds"):
        qg.main()
    monkeypatch.setattr(sys, "argv", ["quickstart_gain.py", str(w5), str(w1), "--vs", str(w1)])
    with pytest.raises(SystemExit):
        qg.main()


def test_quickstart_gain_baseline_compares_two_models_of_the_same_run(tmp_path, monkeypatch, capsys):
    """``--baseline grpo``: the dev-threshold row against the greedy GRPO row of the same run (0.7 -> 1.0)."""
    qg = _load("quickstart_gain")
    run = _run(tmp_path / "r", 0, {"grpo": ["unsafe"] * 9 + ["safe"], "grpo-dev-threshold": ["unsafe"] * 6 + ["safe"] * 4,
                                   "always-unsafe": ["unsafe"] * 10})
    monkeypatch.setattr(sys, "argv", ["quickstart_gain.py", str(run), "--models", "grpo-dev-threshold", "--baseline",
                                      "grpo", "--resamples", "200"])
    assert qg.main() == 0
    out = capsys.readouterr().out.splitlines()
    assert "(model / grpo)" in out[0]
    cells = [c.strip() for c in out[2].split("|")[1:-1]]
    assert cells[2] == "1.000 / 0.700" and cells[3].startswith("+0.300 [")
    monkeypatch.setattr(sys, "argv", ["quickstart_gain.py", str(run), "--baseline", "grpo", "--vs", str(run)])
    with pytest.raises(SystemExit):
        qg.main()


def test_threshold_gain_applies_each_files_dev_bias_to_its_margins(tmp_path, bench_path):
    """Own threshold 0 calls every prompt unsafe (balanced accuracy 0.5); the saved dev bias -10 moves the threshold
    between the labels (1.0): +0.5 with an interval above 0 per seed and pooled. Applied with the wrong sign, or
    not at all, the gain would be 0."""
    lab = _load("label_auc_large")
    files = []
    for seed in (0, 1):
        path = _margins_file(tmp_path / f"d{seed}.json", seed,
                             [("unsafe", 12.0 + i % 3) for i in range(20)] + [("safe", 5.0 + i % 3) for i in range(20)])
        data = json.loads(path.read_text())
        path.write_text(json.dumps(data | {"dev_bias": -10.0, "dev_from": "run"}))
        files.append(path)
    table = lab.threshold_gain(files, resamples=300).splitlines()
    assert table[0].startswith("| seed | prompts (unsafe / safe) | balanced acc own -> dev | dev - own [95% CI] |")
    assert len(table) == 5 and table[-1].startswith("| pooled |")
    for line in table[2:]:
        cells = [c.strip() for c in line.split("|")[1:-1]]
        assert cells[2] == "0.500 -> 1.000" and cells[3].startswith("+0.500 [+")
        assert float(cells[3].split("[")[1].split(",")[0]) > 0


def test_threshold_gain_refuses_a_file_without_a_dev_bias(tmp_path, bench_path):
    lab = _load("label_auc_large")
    plain = _margins_file(tmp_path / "a.json", 0, [("unsafe", 1.0), ("safe", 0.0)])
    with pytest.raises(SystemExit, match="no dev_bias"):
        lab.threshold_gain([plain])


def test_compare_adds_each_models_dev_biased_balanced_accuracy_when_every_file_has_one(tmp_path, bench_path):
    """Same margins for both variants (AUC and own-threshold balanced accuracy equal); base's dev bias leaves every
    prompt unsafe (0.5), other's separates the labels (1.0): only the second table shows the gain."""
    lab = _load("label_auc_large")
    margins = [("unsafe", 12.0 + i % 3) for i in range(20)] + [("safe", 5.0 + i % 3) for i in range(20)]
    base, other = [], []
    for seed in (0, 1):
        for files, name, bias in ((base, "a", 0.0), (other, "b", -10.0)):
            path = _margins_file(tmp_path / f"{name}{seed}.json", seed, margins)
            path.write_text(json.dumps(json.loads(path.read_text()) | {"dev_bias": bias}))
            files.append(path)
    first, second = lab.compare(base, other, resamples=300).split("\n\nEach model with its own dev-fitted bias")
    assert all("| +0.000 [+0.000, +0.000] |" in line for line in first.splitlines()[2:])
    rows = second.strip().splitlines()[4:]  # after the heading line, a blank line and the two header lines
    assert len(rows) == 3 and rows[-1].startswith("| pooled |")
    assert all("| 0.500 -> 1.000 | +0.500 [+" in line for line in rows)
    plain = [_margins_file(tmp_path / "p.json", 0, margins)]
    assert "dev-fitted" not in lab.compare(plain, plain, resamples=50)


def _fake_model(monkeypatch, tmp_path, loads: list):
    """A model folder and stand-ins for its loading and scoring: margin +5 for unsafe rows and +1 for safe ones, so
    the own threshold (0) calls every prompt unsafe and a bias between -5 and -1 separates the labels."""
    import transformers

    import label_probe

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda path: loads.append(path) or "tok")  # counts the loads
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained",
                        lambda path: type("M", (), {"eval": lambda self: self})())
    monkeypatch.setattr(label_probe, "margins",
                        lambda tok, model, rows: [(r["request_label"], 5.0 if r["request_label"] == "unsafe" else 1.0)
                                                  for r in rows])
    return folder


def test_scoring_saves_the_dev_bias_and_reuse_scores_only_the_dev_prompts(tmp_path, monkeypatch, capsys, bench_path):
    """--dev-from RUN --save FILE: the bias fitted on the run's dev split is reported and stored beside the margins;
    --reuse FILE reads the margins back (the model is loaded only to score the dev prompts, not at all without
    --dev-from); --threshold-gain on the saved file gives the gain; --reuse of another model's file is an error."""
    from test_quickstart import _data_root

    from proguard.train import quickstart_data as qd

    lab = _load("label_auc_large")
    loads = []
    folder = _fake_model(monkeypatch, tmp_path, loads)
    data_root = _data_root(tmp_path, per_area=90, safe=260)  # room for the ~390-prompt split's 60 per area + 150 safe
    run = tmp_path / "run"
    qd.quickstart_data(run / "data", data_root, 0)  # the quick start's splits, as its run folder holds them
    saved = tmp_path / "m.json"

    def main(*argv):
        monkeypatch.setattr(sys, "argv", ["label_auc_large.py", *map(str, argv)])
        lab.main()
        return json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    report = main(folder, "--seed", 0, "--data-root", data_root, "--dev-from", run, "--save", saved)
    assert report["own_threshold_balanced_acc"] == 0.5 and report["dev_threshold_balanced_acc"] == 1.0
    assert -5 < report["dev_bias"] < -1 and loads == [str(folder)]
    data = json.loads(saved.read_text())
    assert data["dev_bias"] == pytest.approx(report["dev_bias"], abs=1e-3) and data["dev_from"] == str(run)
    assert {label for _, label, _ in data["rows"]} == {"safe", "unsafe"}
    again = main(folder, "--seed", 0, "--data-root", data_root, "--reuse", saved)
    assert again["auc"] == report["auc"] == 1.0 and "dev_bias" not in again and loads == [str(folder)]
    main(folder, "--seed", 0, "--data-root", data_root, "--reuse", saved, "--dev-from", run)
    assert loads == [str(folder)] * 2  # loaded again for the dev prompts only
    assert "| pooled" not in lab.threshold_gain([saved], resamples=50)  # one seed: no pooled row
    assert "| 0.500 -> 1.000 | +0.500 [" in lab.threshold_gain([saved], resamples=50)
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text("{}")
    monkeypatch.setattr(sys, "argv", ["label_auc_large.py", str(other), "--data-root", str(data_root), "--reuse",
                                      str(saved)])
    with pytest.raises(SystemExit):
        lab.main()
    assert "written for another model, seed or split" in capsys.readouterr().err
