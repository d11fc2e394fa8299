"""Percentile bootstrap intervals for benchmark metrics, resampling whole groups of records.

Rows of one source item are not independent: Do-Not-Answer asks each question once per model
response, so its rows share a request. Resampling rows would count a question six times as six
pieces of evidence and give intervals that are too narrow; here a resample draws *groups* (say, one
group per question) with replacement and keeps every row of a drawn group.

``group_bootstrap`` evaluates several statistics on the same resamples, so intervals of different
metrics (and ``paired_difference`` of two models scored on the same rows) come from one draw.
A statistic may be undefined on a resample (an F1 with no positive row drawn): it returns ``None``
and that resample is left out of that statistic's interval; ``Interval.n_defined`` says how many
were used.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")
Statistic = Callable[[Sequence[T]], "float | None"]


@dataclass(frozen=True)
class Interval:
    """A point estimate on all rows with its percentile bootstrap interval."""

    point: float | None
    low: float | None
    high: float | None
    level: float
    n_defined: int  # resamples on which the statistic was defined
    n_resamples: int

    def overlaps(self, other: Interval) -> bool | None:
        """Whether two intervals share a point; ``None`` when either is undefined."""
        if None in (self.low, self.high, other.low, other.high):
            return None
        return not (self.high < other.low or other.high < self.low)  # type: ignore[operator]

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {"point": self.point, "low": self.low, "high": self.high, "level": self.level,
                "n_defined": self.n_defined, "n_resamples": self.n_resamples}

    def __str__(self) -> str:
        if self.point is None:
            return "n/a"
        if self.low is None or self.high is None:
            return f"{self.point:.3f}"
        return f"{self.point:.3f} [{self.low:.2f}, {self.high:.2f}]"


def group_indices(groups: Sequence[Hashable]) -> list[list[int]]:
    """Row indices per group, groups in first-seen order."""
    by_group: dict[Hashable, list[int]] = {}
    for i, g in enumerate(groups):
        by_group.setdefault(g, []).append(i)
    return list(by_group.values())


def resample_indices(groups: Sequence[Hashable], n_resamples: int, seed: int) -> list[list[int]]:
    """``n_resamples`` lists of row indices, each drawn group by group with replacement."""
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    members = group_indices(groups)
    rng = random.Random(seed)
    draws = []
    for _ in range(n_resamples):
        rows: list[int] = []
        for _ in range(len(members)):
            rows.extend(members[rng.randrange(len(members))])
        draws.append(rows)
    return draws


def group_bootstrap(
    rows: Sequence[T],
    groups: Sequence[Hashable],
    statistics: Mapping[str, Statistic],
    *,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Interval]:
    """Each statistic on all ``rows`` and its percentile interval over group resamples."""
    _check(rows, groups, level)
    draws = resample_indices(groups, n_resamples, seed) if rows else []
    out = {}
    for name, stat in statistics.items():
        values = [v for v in (stat([rows[i] for i in d]) for d in draws) if v is not None]
        out[name] = _interval(stat(list(rows)) if rows else None, values, level, n_resamples)
    return out


def paired_difference(
    rows_a: Sequence[T],
    rows_b: Sequence[T],
    groups: Sequence[Hashable],
    statistic: Statistic,
    *,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """``statistic(b) - statistic(a)`` for two models scored on the same rows (row i of each is the
    same item), with one group resample applied to both: tighter than comparing two intervals."""
    if len(rows_a) != len(rows_b):
        raise ValueError(f"paired rows differ in length: {len(rows_a)} vs {len(rows_b)}")
    _check(rows_a, groups, level)

    def diff(idx: Sequence[int]) -> float | None:
        a, b = statistic([rows_a[i] for i in idx]), statistic([rows_b[i] for i in idx])
        return None if a is None or b is None else b - a

    draws = resample_indices(groups, n_resamples, seed) if rows_a else []
    values = [v for v in (diff(d) for d in draws) if v is not None]
    return _interval(diff(range(len(rows_a))) if rows_a else None, values, level, n_resamples)


def _check(rows: Sequence[Any], groups: Sequence[Hashable], level: float) -> None:
    if len(rows) != len(groups):
        raise ValueError(f"one group per row needed: {len(rows)} rows, {len(groups)} groups")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")


def _interval(point: float | None, values: list[float], level: float, n_resamples: int) -> Interval:
    if not values:
        return Interval(point, None, None, level, 0, n_resamples)
    ordered = sorted(values)
    tail = (1 - level) / 2
    return Interval(point, _quantile(ordered, tail), _quantile(ordered, 1 - tail), level, len(ordered), n_resamples)


def _quantile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between order statistics (numpy's default)."""
    pos = q * (len(ordered) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)
