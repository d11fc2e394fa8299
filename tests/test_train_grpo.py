"""Real GRPO runs on the tiny VLM with a learnable synthetic task: the policy learns, and resume continues exactly.

The task: each prompt names a label word ("Say the word unsafe."); ``LetterReward`` pays the share of
the completion's letters that occur in that word. A random policy scores about 0.35; shifting its
output distribution toward those letters is within reach of a 2-layer model in a few steps, so the
reward curve rises for real (no mocked trainer), and its gradients are non-zero, which the resume
test needs to tell a restored optimizer from a fresh one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from proguard.train.recipe import load_recipe
from proguard.train import TrainError, train

TINY_RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "tiny" / "grpo_cpu.yaml"


class LetterReward:
    """Share of a completion's letters that occur in the label word its prompt names (TRL signature)."""

    def __init__(self, seen: list[list[str]] | None = None) -> None:
        self.__name__ = "label_letters"
        self.seen = seen  # task IDs per reward call (one call per optimizer step here): the data order

    def __call__(self, prompts=None, completions=None, request_label=None, task_id=None, **kwargs: Any) -> list[float]:
        """TRL reward signature."""
        if self.seen is not None:
            self.seen.append(list(task_id))
        out = []
        for completion, label in zip(completions, request_label, strict=True):
            text = completion[-1]["content"] if isinstance(completion, list) else completion
            letters = [ch for ch in text.lower() if ch.isalpha()]
            out.append(sum(ch in label for ch in letters) / len(letters) if letters else 0.0)
        return out


@pytest.fixture(scope="module")
def word_task(tmp_path_factory) -> Path:
    """A prepared (``data.prepared``) text-only dataset of 32 short prompts naming ``safe`` or ``unsafe``."""
    import datasets

    rows = []
    for i in range(32):
        label = "safe" if i % 2 else "unsafe"
        rows.append(
            {
                "task_id": f"word-{i:02d}",
                "prompt": [{"role": "user", "content": f"Say the word {label}."}],
                "modality": "text",
                "request_label": label,
            }
        )
    path = tmp_path_factory.mktemp("word_task") / "ds"
    datasets.Dataset.from_list(rows).save_to_disk(str(path))
    return path


def word_recipe(data: Path, out: Path, *overrides: str):
    """The tiny recipe on the word task: 2 prompts x 8 rollouts of 8 tokens per step, no KL, no reporters."""
    return load_recipe(
        TINY_RECIPE,
        [
            f"output_dir={out}",
            f"data.prepared={data}",
            "data.tasks=null",
            "images.max_pixels=null",
            "lengths.max_completion_length=8",
            "grpo.per_device_train_batch_size=16",
            "grpo.num_generations=8",
            "grpo.beta=0.0",
            "logging.report_to=[none]",
            *overrides,
        ],
    )


def read_metrics(out: Path) -> list[dict]:
    """The per-step records of ``metrics.jsonl`` (the final summary record left out)."""
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if "reward" in r]


def test_grpo_learns_the_word_task(word_task, tmp_path):
    """Mean reward over the last 3 of 10 steps beats the first 3 by more than 0.15.

    Measured on CPU: seed 1 (this test) 0.371 -> 0.888; seeds 2 and 3 of the same setup 0.353 -> 0.680 and
    0.383 -> 0.942, so the threshold leaves room for other hardware's numerics.
    """
    out = tmp_path / "run"
    recipe = word_recipe(word_task, out, "grpo.max_steps=10", "grpo.learning_rate=2e-2", "grpo.seed=1",
                         "checkpoint.save_steps=1000")
    train(recipe, reward_funcs=[LetterReward()])
    rewards = [r["reward"] for r in read_metrics(out)]
    print("rewards per step:", [round(x, 3) for x in rewards])  # shown with pytest -s
    assert len(rewards) == 10
    first, last = sum(rewards[:3]) / 3, sum(rewards[-3:]) / 3
    assert last > first + 0.15, f"reward did not rise: {[round(x, 3) for x in rewards]}"
    assert all("rewards/label_letters/mean" in r for r in read_metrics(out))


def optimizer_steps(checkpoint: Path) -> set[int]:
    """The Adam step counters stored in a checkpoint's ``optimizer.pt``."""
    state = torch.load(checkpoint / "optimizer.pt", map_location="cpu", weights_only=True)["state"]
    assert state, f"{checkpoint}/optimizer.pt holds no optimizer state"
    return {int(s["step"]) for s in state.values()}


def test_resume_continues_steps_optimizer_and_data_order(word_task, tmp_path):
    """Stop at N=2, resume to M=4: same steps, optimizer counters, data order and weights as one run to 4."""
    common = ("grpo.learning_rate=5e-3", "grpo.seed=3", "checkpoint.save_steps=1", "checkpoint.save_total_limit=null")
    whole_seen: list[list[str]] = []
    whole = tmp_path / "whole"
    train(word_recipe(word_task, whole, "grpo.max_steps=4", *common), reward_funcs=[LetterReward(whole_seen)])

    split = tmp_path / "split"
    first_seen: list[list[str]] = []
    train(word_recipe(word_task, split, "grpo.max_steps=2", *common), reward_funcs=[LetterReward(first_seen)])
    assert optimizer_steps(split / "checkpoint-2") == {2}
    with pytest.raises(TrainError, match="--resume"):  # a second run into a used output_dir must ask for --resume
        train(word_recipe(word_task, split, "grpo.max_steps=4", *common), reward_funcs=[LetterReward()])
    resumed_seen: list[list[str]] = []
    train(word_recipe(word_task, split, "grpo.max_steps=4", *common), resume=True,
          reward_funcs=[LetterReward(resumed_seen)])

    # The step counter continues: the resumed run logs steps 3 and 4 only, and ends at global step 4.
    steps = [r["step"] for r in read_metrics(split)]
    assert steps == [1, 2, 3, 4]
    assert json.loads((split / "checkpoint-4" / "trainer_state.json").read_text())["global_step"] == 4
    # The optimizer state was loaded: a fresh AdamW would have counted 2 steps by checkpoint-4, not 4.
    assert optimizer_steps(split / "checkpoint-4") == {4}
    # The data order continues: the resumed steps see the prompts the uninterrupted run saw at steps 3-4.
    assert first_seen == whole_seen[:2]
    assert resumed_seen == whole_seen[2:]
    # Same rewards (RNG restored) and same weights (optimizer moments restored; gradients are non-zero).
    whole_rewards = [r["reward"] for r in read_metrics(whole)]
    split_rewards = [r["reward"] for r in read_metrics(split)]
    assert split_rewards == pytest.approx(whole_rewards, abs=1e-6)
    a, b = load_file(str(whole / "final" / "model.safetensors")), load_file(str(split / "final" / "model.safetensors"))
    init = load_file(str(split / "checkpoint-2" / "model.safetensors"))
    assert a.keys() == b.keys()
    moved = max(float((b[k].float() - init[k].float()).abs().max()) for k in b)
    assert moved > 0, "the resumed steps did not change the weights; the comparison below would prove nothing"
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=lambda m, k=k: f"{k}: {m}")
