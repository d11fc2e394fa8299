"""Group bootstrap intervals (proguard.bench.bootstrap): groups resampled whole, seeded, undefined resamples left out."""

from __future__ import annotations

import pytest

from proguard.bench.bootstrap import Interval, group_bootstrap, paired_difference, resample_indices


def mean(rows):
    return sum(rows) / len(rows) if rows else None


def test_a_resample_keeps_every_row_of_a_drawn_group():
    groups = ["q1"] * 6 + ["q2"] * 6 + ["x1"]
    for draw in resample_indices(groups, 50, seed=3):
        drawn = [groups[i] for i in draw]
        for g in set(drawn):
            size = 6 if g.startswith("q") else 1
            assert drawn.count(g) % size == 0  # a question's six rows come (and repeat) together


def test_grouped_interval_is_wider_than_a_row_level_one_for_correlated_rows():
    # 10 groups of 6 identical rows: the evidence is 10 items, not 60
    values = [float(g % 2) for g in range(10) for _ in range(6)]
    grouped = group_bootstrap(values, [i // 6 for i in range(60)], {"m": mean}, n_resamples=400)["m"]
    by_row = group_bootstrap(values, list(range(60)), {"m": mean}, n_resamples=400)["m"]
    assert grouped.point == by_row.point == pytest.approx(0.5)
    assert (grouped.high - grouped.low) > 1.5 * (by_row.high - by_row.low)


def test_seeded_and_point_is_the_full_sample_statistic():
    values = [0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0]
    a = group_bootstrap(values, list(range(7)), {"m": mean}, seed=1)["m"]
    b = group_bootstrap(values, list(range(7)), {"m": mean}, seed=1)["m"]
    assert a == b
    assert a.point == pytest.approx(5 / 7)
    assert 0.0 <= a.low < a.point < a.high <= 1.0


def test_undefined_resamples_are_left_out_and_counted():
    rows = [1, 0, 0, 0]

    def needs_a_one(sample):
        return 1.0 if 1 in sample else None

    iv = group_bootstrap(rows, list(range(4)), {"s": needs_a_one}, n_resamples=200)["s"]
    assert 0 < iv.n_defined < 200
    assert iv.low == iv.high == 1.0
    none = group_bootstrap(rows, list(range(4)), {"s": lambda s: None}, n_resamples=20)["s"]
    assert none.point is None and none.low is None and str(none) == "n/a"


def test_paired_difference_sees_a_consistent_gain():
    before = [0.0] * 20 + [1.0] * 20
    after = [1.0] * 40
    d = paired_difference(before, after, list(range(40)), mean, n_resamples=300)
    assert d.point == pytest.approx(0.5)
    assert d.low > 0.25  # every resample improves: the interval excludes 0
    same = paired_difference(before, before, list(range(40)), mean, n_resamples=50)
    assert same.low == same.high == 0.0


def test_overlap_and_bad_input():
    a = Interval(0.5, 0.4, 0.6, 0.95, 10, 10)
    assert a.overlaps(Interval(0.7, 0.61, 0.8, 0.95, 10, 10)) is False
    assert a.overlaps(Interval(0.6, 0.55, 0.8, 0.95, 10, 10)) is True
    with pytest.raises(ValueError, match="one group per row"):
        group_bootstrap([1, 2], ["a"], {"m": mean})
    with pytest.raises(ValueError, match="level"):
        group_bootstrap([1], ["a"], {"m": mean}, level=95)
