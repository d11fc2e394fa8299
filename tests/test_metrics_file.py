"""metrics.jsonl: every training-step row has the same keys (null where a component did not apply)."""

from __future__ import annotations

import json

from proguard.train.trainer import same_keys_on_every_step


def test_step_rows_get_the_union_of_keys_and_the_summary_row_is_kept(tmp_path):
    path = tmp_path / "metrics.jsonl"
    rows = [
        {"step": 1, "loss": 0.1, "reward/format/mean": 1.0, "reward/ood_similarity/mean": 0.4},
        {"step": 2, "loss": 0.2, "reward/format/mean": 0.5, "reward/category/mean": 1.0},
        {"step": 2, "train_runtime": 3.0, "train_loss": 0.15},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    same_keys_on_every_step(path)
    got = [json.loads(line) for line in path.read_text().splitlines()]
    assert set(got[0]) == set(got[1]) == {"step", "loss", "reward/format/mean", "reward/ood_similarity/mean",
                                          "reward/category/mean"}
    assert got[0]["reward/category/mean"] is None and got[1]["reward/ood_similarity/mean"] is None
    assert got[1]["reward/category/mean"] == 1.0 and got[2] == rows[2]
