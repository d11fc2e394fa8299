"""`proguard tasks` without --holdout writes an empty eval_ood split that loads back (training reads the whole dir)."""

from __future__ import annotations

import datasets

from proguard.cli import main
from proguard.data import BUNDLED_SAMPLES


def test_tasks_without_holdout_round_trips_through_load_from_disk(tmp_path):
    out = tmp_path / "proguard-tasks"
    assert main(["tasks", "--data", str(BUNDLED_SAMPLES), "--taxonomy", "default", "--out", str(out)]) == 0
    loaded = datasets.load_from_disk(str(out))
    assert loaded["eval_ood"].num_rows == 0
    n = sum(1 for line in BUNDLED_SAMPLES.read_text().splitlines() if line.strip())
    assert loaded["train"].num_rows + loaded["eval_id"].num_rows == n
