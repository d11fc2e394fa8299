"""``data.balance_labels``: every training step sees safe and unsafe rows in their share (``trainer_mixins``)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import datasets
import pytest
import torch

from proguard.train.errors import TrainError
from proguard.train.trainer_mixins import LabelBalancedSampler, balanced_order, label_strata

ROOT = Path(__file__).resolve().parents[1]


def _windows(order: list[int], strata: list[str], k: int) -> list[Counter]:
    return [Counter(strata[i] for i in order[a : a + k]) for a in range(0, len(order) - k + 1, k)]


def test_balanced_order_is_a_shuffle_that_alternates_equal_labels():
    strata = ["unsafe"] * 48 + ["safe"] * 48
    order = balanced_order(strata, seed=0)
    assert sorted(order) == list(range(96))
    assert all(w == Counter(unsafe=1, safe=1) for w in _windows(order, strata, 2))
    assert order == balanced_order(strata, seed=0)
    assert order != balanced_order(strata, seed=1)
    # the rows within a label are shuffled, not kept in file order
    assert [i for i in order if strata[i] == "unsafe"] != list(range(48))


def test_balanced_order_spreads_a_minority_label_over_the_whole_run():
    strata = ["unsafe"] * 30 + ["safe"] * 10 + ["unsafe/safe"] * 5
    order = balanced_order(strata, seed=3)
    assert sorted(order) == list(range(45))
    for w in _windows(order, strata, 9):  # 9 rows: 6 unsafe, 2 safe, 1 pair, each within one row
        assert abs(w["unsafe"] - 6) <= 1 and abs(w["safe"] - 2) <= 1 and abs(w["unsafe/safe"] - 1) <= 1, w
    # a plain shuffle of the same rows does not promise this (the reason for the option)
    plains = [torch.randperm(45, generator=torch.Generator().manual_seed(s)).tolist() for s in range(5)]
    assert sum(any(abs(w["safe"] - 2) > 1 or abs(w["unsafe"] - 6) > 1 for w in _windows(p, strata, 9)) for p in plains) >= 2


def test_grpo_sampler_keeps_trl_group_layout_and_mixes_labels_per_step():
    from trl.trainer.utils import RepeatSampler

    strata = ["unsafe"] * 8 + ["safe"] * 8
    trl = RepeatSampler(strata, mini_repeat_count=4, batch_size=2, repeat_count=1, shuffle=True, seed=0)
    sampler = LabelBalancedSampler(trl, strata, seed=0)
    drawn = list(sampler)
    assert len(drawn) == len(trl) == 64
    groups = [drawn[a : a + 4] for a in range(0, 64, 4)]
    assert all(len(set(g)) == 1 for g in groups)  # each prompt's rollouts stay together, as TRL lays them out
    steps = [{strata[g[0]] for g in groups[a : a + 2]} for a in range(0, 16, 2)]
    assert all(s == {"safe", "unsafe"} for s in steps)  # one safe and one unsafe prompt per step
    assert sorted(g[0] for g in groups) == list(range(16))
    sampler.set_epoch(1)
    assert list(sampler) != drawn  # reshuffled per epoch, and the same order for the same epoch
    sampler.set_epoch(0)
    assert list(sampler) == drawn


def test_plain_sampler_is_replaced_by_the_balanced_order():
    strata = ["safe", "unsafe"] * 5
    sampler = LabelBalancedSampler(torch.utils.data.RandomSampler(strata), strata, seed=7)
    assert list(sampler) == balanced_order(strata, 7) and len(sampler) == 10
    with pytest.raises(TrainError, match="3 labels for a sampler over 10 rows"):
        LabelBalancedSampler(torch.utils.data.RandomSampler(strata), strata[:3], seed=0)


def test_label_strata_reads_request_and_response_labels_and_names_a_missing_column():
    ds = datasets.Dataset.from_dict({"request_label": ["unsafe", "safe", "safe"],
                                     "response_label": [None, "unsafe", None]})
    assert label_strata(ds) == ["unsafe", "safe/unsafe", "safe"]
    with pytest.raises(TrainError, match="no request_label column.*data.balance_labels=false"):
        label_strata(datasets.Dataset.from_dict({"prompt": ["x"]}))


@pytest.mark.slow
def test_sft_run_with_balance_labels_trains_in_the_balanced_order(tmp_path, monkeypatch):
    import proguard.train.trainer_mixins as mixins
    from proguard.cli import main as cli_main

    calls = []
    original = mixins.balanced_order

    def recording(strata, seed):
        calls.append(list(strata))
        return original(strata, seed)

    monkeypatch.setattr(mixins, "balanced_order", recording)
    recipe = str(ROOT / "recipes" / "tiny" / "sft_cpu.yaml")
    args = ["data.prompt.examples=false", "data.max_samples=4", "sft.per_device_train_batch_size=2",
            "sft.max_steps=1", "logging.report_to=[none]", "lengths.max_length=1536", "data.balance_labels=true",
            f"output_dir={tmp_path / 'run'}"]
    assert cli_main(["sft", recipe, *args]) == 0
    assert calls and len(calls[0]) == 4 and set(calls[0]) <= {"safe", "unsafe", "safe/safe", "safe/unsafe",
                                                                "unsafe/safe", "unsafe/unsafe"}


def test_grpo_sampler_lays_out_an_order_exactly_as_trls_repeat_sampler(monkeypatch):
    """The chunk/repeat loop is a copy of TRL's ``RepeatSampler.__iter__``: with the identity order both must
    yield the same indices (fails if TRL changes its layout and the copy was not updated)."""
    from trl.trainer.utils import RepeatSampler

    import proguard.train.trainer_mixins as mixins

    monkeypatch.setattr(mixins, "balanced_order", lambda strata, seed: list(range(len(strata))))
    strata = ["unsafe", "safe"] * 7  # 14 rows: batch_size 4 leaves a partial chunk that both drop
    trl = RepeatSampler(strata, mini_repeat_count=3, batch_size=4, repeat_count=2, shuffle=False)
    assert list(mixins.LabelBalancedSampler(trl, strata, seed=0)) == list(trl)
