"""Checkpoint completeness: planted partial checkpoints of each kind are skipped (with the reason) in
favour of the newest complete one; metrics.jsonl is cut back to the resumed step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from proguard.train.checkpoints import checkpoint_problem, find_resumable, set_aside, truncate_metrics
from proguard.train.run import latest_checkpoint


def complete(path: Path, step: int) -> Path:
    path.mkdir(parents=True)
    save_file({"w": torch.arange(64, dtype=torch.float32)}, str(path / "model.safetensors"))
    torch.save({"state": {0: torch.zeros(16)}}, path / "optimizer.pt")
    (path / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return path


def cut(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


PARTIAL = {
    "empty dir": (lambda p: None, "no trainer_state.json"),
    "truncated model.safetensors": (lambda p: cut(p / "model.safetensors", 0.8), "model.safetensors is truncated"),
    "truncated optimizer.pt": (lambda p: cut(p / "optimizer.pt"), "optimizer.pt is truncated or corrupt"),
    "missing trainer_state.json": (lambda p: (p / "trainer_state.json").unlink(), "no trainer_state.json"),
    "missing optimizer.pt": (lambda p: (p / "optimizer.pt").unlink(), "no optimizer.pt"),
    "no weights": (lambda p: (p / "model.safetensors").unlink(), "no model weights"),
    "header only": (lambda p: cut(p / "model.safetensors", 0.0001), "model.safetensors is truncated"),
}


@pytest.mark.parametrize("kind", list(PARTIAL))
def test_each_kind_of_partial_checkpoint_is_detected(tmp_path, kind):
    damage, reason = PARTIAL[kind]
    path = tmp_path / "checkpoint-7"
    if kind == "empty dir":
        path.mkdir()
    else:
        complete(path, 7)
        damage(path)
    assert reason in (checkpoint_problem(path) or "")


def test_resume_picks_the_newest_complete_checkpoint_and_says_what_it_skipped(tmp_path):
    complete(tmp_path / "checkpoint-2", 2)
    for step, kind in zip(range(3, 3 + len(PARTIAL)), PARTIAL, strict=True):
        path = tmp_path / f"checkpoint-{step}"
        if kind == "empty dir":
            path.mkdir()
        else:
            complete(path, step)
            PARTIAL[kind][0](path)
    best, skipped = find_resumable(tmp_path)
    assert best == tmp_path / "checkpoint-2" and latest_checkpoint(tmp_path) == best
    assert [p.name for p, _ in skipped] == [f"checkpoint-{s}" for s in range(2 + len(PARTIAL), 2, -1)]
    assert all(why for _, why in skipped)
    moved = set_aside(skipped[0][0])
    assert moved.name.startswith("incomplete-checkpoint-") and moved.is_dir()
    assert find_resumable(tmp_path)[0] == best  # the set-aside one is no checkpoint-N any more


def test_metrics_rows_after_the_resumed_step_are_dropped(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"step": s, "reward": 0.1}) + "\n" for s in (1, 2, 3)) + '{"step": 4, "rew')
    assert truncate_metrics(path, 2) == 2
    assert [json.loads(x)["step"] for x in path.read_text().splitlines()] == [1, 2]
    assert truncate_metrics(path, 2) == 0
