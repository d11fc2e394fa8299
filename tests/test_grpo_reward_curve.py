"""The GRPO reward-curve benchmark's analysis (benchmarks/grpo_reward_curve.py) on run folders written here; no model."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def rc():
    if str(ROOT / "benchmarks") not in sys.path:  # the script imports label_probe as its own sibling
        sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("grpo_reward_curve", ROOT / "benchmarks" / "grpo_reward_curve.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_a_rising_series_gains_with_an_interval_above_zero(rc):
    g = rc.third_gain([0.1 * i for i in range(30)], resamples=500)
    assert g["steps_per_third"] == 10
    assert g["first"] == pytest.approx(0.45) and g["last"] == pytest.approx(2.45)
    assert g["gain"] == pytest.approx(2.0) and 0 < g["low"] <= g["gain"] <= g["high"]


def test_a_noisy_flat_series_has_an_interval_around_zero(rc):
    g = rc.third_gain([0.0, 1.0] * 15, resamples=500)
    assert g["low"] < 0 < g["high"]


def _write_run(path: Path, seed: int, rewards: list[float], sft: list[tuple[str, str | None]],
               grpo: list[tuple[str, str | None]], **meta) -> None:
    (path / "grpo").mkdir(parents=True)
    (path / "curve_args.json").write_text(json.dumps({"seed": seed, "sft_steps": 8, "grpo_steps": len(rewards),
                                                      "lr": 1e-5, **meta}))
    with open(path / "grpo" / "metrics.jsonl", "w") as fh:
        for i, r in enumerate(rewards, 1):
            fh.write(json.dumps({"step": i, "reward": r, "format/valid_rate": r / 2, "reward_std": 0.5,
                                 "frac_reward_zero_std": 0.0, "entropy": 0.5 - i / 100}) + "\n")
        fh.write(json.dumps({"train_runtime": 10.0}) + "\n")  # the closing record has no reward: skipped
    for model, answers in (("sft", sft), ("grpo", grpo)):
        (path / "eval" / model).mkdir(parents=True)
        with open(path / "eval" / model / "predictions.jsonl", "w") as fh:
            for i, (truth, said) in enumerate(answers):
                parsed = {"ok": said is not None, "request": said}
                fh.write(json.dumps({"task_id": f"eval_id/{i}", "truth": {"request": truth}, "parsed": parsed}) + "\n")


def test_held_out_counts_a_malformed_answer_as_wrong(rc, tmp_path):
    _write_run(tmp_path / "r", 0, [0.0] * 3, [("unsafe", None), ("safe", "safe")], [("unsafe", "unsafe"), ("safe", "unsafe")])
    assert rc.held_out(tmp_path / "r", "sft") == {"eval_id/0": (True, False, False, False),
                                                  "eval_id/1": (False, True, True, False)}
    assert rc.held_out(tmp_path / "r", "grpo") == {"eval_id/0": (True, True, True, True),
                                                   "eval_id/1": (False, False, True, True)}


def test_analyze_reports_each_run_and_the_pooled_held_out_difference(rc, tmp_path):
    sft = [("unsafe", None)] * 4 + [("safe", "safe")] * 4
    grpo = [("unsafe", "unsafe")] * 4 + [("safe", "safe")] * 4
    _write_run(tmp_path / "s0", 0, [0.0] * 5 + [1.0] * 5 + [2.0] * 5, sft, grpo)
    _write_run(tmp_path / "s1", 1, [1.0] * 15, sft, sft, prompts_per_step=8, beta=0.04)
    plot = tmp_path / "curve.png"
    text = rc.analyze([tmp_path / "s0", tmp_path / "s1"], resamples=200, plot=plot)
    assert "| s0 | 0 | 8 | 15 x 2, 1e-05 | 0.000 -> 2.000 | +2.000 [+2.000, +2.000] |" in text
    assert "| s1 | 1 | 8 | 15 x 8, 1e-05, beta 0.04 | 1.000 -> 1.000 | +0.000 [+0.000, +0.000] |" in text
    # s0: the four malformed answers became right; s1 unchanged; pooled over 16 prompts: +4/16
    assert "| s0 | 0 | 8 | 15 x 2, 1e-05 | 0.000 -> 2.000 | +2.000 [+2.000, +2.000] | 0.000 -> 1.000 |" in text
    assert "| 0.00 | 0.470 -> 0.370 |" in text  # entropy: mean of steps 1-5, then 11-15
    assert "| s0 | 8 | 0.500 -> 1.000 | +0.500" in text
    assert "| 0.000 -> 0.500 | +0.500" in text  # s0: the four malformed answers now call their prompts unsafe
    assert "| s1 | 8 | 0.500 -> 0.500 | +0.000 [+0.000, +0.000]" in text
    assert "| pooled | 16 | 0.500 -> 0.750 | +0.250" in text
    assert plot.is_file() and plot.stat().st_size > 0


def test_runs_scored_on_different_prompts_are_refused(rc, tmp_path):
    _write_run(tmp_path / "r", 0, [0.0] * 3, [("safe", "safe")] * 2, [("safe", "safe")] * 3)
    with pytest.raises(SystemExit, match="different prompts"):
        rc.analyze([tmp_path / "r"], resamples=50, plot=None)


def _write_margins(path: Path, sft: dict[str, list[tuple[str, float]]], grpo_of) -> None:
    """A run folder's label_margins.json: the SFT margins per split and the GRPO ones as ``grpo_of(margin)``."""
    path.mkdir(parents=True, exist_ok=True)
    grpo = {s: [(lab, grpo_of(m)) for lab, m in rows] for s, rows in sft.items()}
    (path / "label_margins.json").write_text(json.dumps({"sft": sft, "grpo": grpo}))


MARGINS = {"dev": [("unsafe", 1.0), ("unsafe", 2.0), ("safe", -1.0), ("safe", -2.0)],
           "eval_id": [("unsafe", 1.0), ("unsafe", 2.0), ("unsafe", 3.0), ("unsafe", -0.5),
                       ("safe", -1.0), ("safe", 0.2), ("safe", -2.0), ("safe", -0.5)]}


def test_a_uniform_margin_shift_moves_the_threshold_not_the_ranking(rc, tmp_path):
    _write_margins(tmp_path / "shift", MARGINS, lambda m: m - 1.5)
    text = rc.analyze_margins([tmp_path / "shift"], resamples=200)
    # both kinds of prompt moved by -1.5; AUC unchanged (14.5 of 16 pairs ranked right); the dev split's threshold
    # moves with the margins, so the held-out answers with it are the SFT's (6 of 8 right)
    assert "| shift | 8 | -1.50 [-1.50, -1.50] | -1.50 [-1.50, -1.50] | 0.906 -> 0.906 | +0.000 [+0.000, +0.000] | " \
           "0.750 -> 0.750 | +0.000 [+0.000, +0.000] |" in text
    # moved back by the dev prompts' mean shift (+1.50), the GRPO margins are the SFT's
    assert "| +1.50 | 0.750 -> 0.750 | +0.000 [+0.000, +0.000] |" in text


def test_a_reversed_ranking_loses_auc_and_dev_threshold_accuracy(rc, tmp_path):
    _write_margins(tmp_path / "flip", MARGINS, lambda m: -m)
    _write_margins(tmp_path / "same", MARGINS, lambda m: m)
    text = rc.analyze_margins([tmp_path / "flip", tmp_path / "same"], resamples=200)
    assert "| 0.906 -> 0.094 | -0.812 [" in text
    # no dev threshold separates reversed margins: the best one calls everything unsafe (3 of 8 right held out)
    assert "| 0.750 -> 0.375 | -0.375 [" in text
    # the dev margins' mean is 0 for both: no anchoring shift, and the reversed ranking keeps 2 of 8 right
    assert "| +0.00 | 0.750 -> 0.250 | -0.500 [" in text
    assert "| same | 8 | +0.00 [+0.00, +0.00] | +0.00 [+0.00, +0.00] | 0.906 -> 0.906 |" in text
    assert "| pooled | 16 |" in text and "| 0.750 -> 0.562 | -0.188 [" in text
    assert "| 0.906 -> 0.500 (mean of runs) | -0.406 [" in text  # the mean of the two runs' AUCs


def test_margins_on_different_prompts_are_refused(rc, tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "label_margins.json").write_text(json.dumps(
        {"sft": {"eval_id": [["safe", 1.0], ["unsafe", 2.0]]}, "grpo": {"eval_id": [["unsafe", 1.0], ["unsafe", 2.0]]}}))
    with pytest.raises(SystemExit, match="same held-out prompts"):
        rc.analyze_margins([tmp_path / "r"], resamples=50)


def test_pooled_rows_resample_one_seeds_runs_together(rc, tmp_path):
    # two runs from one seed score the same held-out prompts: a prompt is one resampling unit for both
    _write_run(tmp_path / "a", 0, [0.0] * 3, [("safe", "safe")], [("safe", "safe")])
    _write_run(tmp_path / "b", 0, [0.0] * 3, [("safe", "safe")], [("safe", "safe")])
    (tmp_path / "c").mkdir()
    assert rc._prompt_key(tmp_path / "a") == rc._prompt_key(tmp_path / "b") == "seed 0"
    assert rc._prompt_key(tmp_path / "c") == "c"  # no curve_args.json: the run folder's name
