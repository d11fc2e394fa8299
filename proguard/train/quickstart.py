"""The quick start's chain: SFT on template-teacher critiques, then GRPO from its ``final/``, and a summary of the learning.

``run_quickstart`` trains the SFT recipe, points the GRPO recipe's ``model.name_or_path`` at the SFT
``final/`` and trains it, then reads both ``metrics.jsonl`` files: SFT loss first -> last, and per GRPO
logging step the format-valid rate and the reward, so a user sees the guard learning (or not) in the
printed summary, not only in TensorBoard.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proguard.train.errors import TrainError

SFT_RECIPE = "recipes/tiny/sft_cpu.yaml"
GRPO_RECIPE = "recipes/tiny/grpo_from_sft_cpu.yaml"
REWARD_KEY = "reward"
FORMAT_KEY = "format/valid_rate"


@dataclass
class QuickstartResult:
    """Where the two runs wrote and what their metrics show."""

    sft_final: Path
    grpo_final: Path
    sft_loss: list[float]
    grpo: list[dict[str, Any]]

    def summary(self) -> str:
        """The lines the command prints."""
        lines = []
        if self.sft_loss:
            lines.append(f"SFT   loss {self.sft_loss[0]:.3f} -> {self.sft_loss[-1]:.3f} "
                         f"({len(self.sft_loss)} logged steps); model {self.sft_final}")
        lines.append("GRPO  step  format-valid  reward")
        for row in self.grpo:
            lines.append(f"      {row['step']:>4}  {row[FORMAT_KEY]:>12.3f}  {row[REWARD_KEY]:>6.3f}")
        if len(self.grpo) >= 2:
            first, last = self.grpo[0], self.grpo[-1]
            lines.append(f"GRPO  format-valid {first[FORMAT_KEY]:.3f} -> {last[FORMAT_KEY]:.3f}, reward "
                         f"{first[REWARD_KEY]:.3f} -> {last[REWARD_KEY]:.3f}; model {self.grpo_final}")
        return "\n".join(lines)


def metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl``."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def run_quickstart(
    sft_recipe: str | Path = SFT_RECIPE,
    grpo_recipe: str | Path = GRPO_RECIPE,
    *,
    sft_overrides: list[str] | None = None,
    grpo_overrides: list[str] | None = None,
) -> QuickstartResult:
    """SFT, then GRPO from the SFT's ``final/``; returns both finals and the learning curves."""
    from proguard.train.recipe import load_recipe
    from proguard.train.run import METRICS_FILE, train
    from proguard.train.sft import train_sft
    from proguard.train.sft_recipe import load_sft_recipe

    for path in (sft_recipe, grpo_recipe):
        if not Path(path).is_file():
            raise TrainError(f"{path}: no such recipe; run from the project checkout or pass --sft-recipe/--grpo-recipe")
    sft = load_sft_recipe(sft_recipe, sft_overrides or [])
    grpo = load_recipe(grpo_recipe, grpo_overrides or [])  # checked before the SFT spends any time
    sft_final = train_sft(sft)
    grpo = load_recipe(grpo_recipe, [*(grpo_overrides or []), f"model.name_or_path={sft_final}"])
    grpo_final = train(grpo)
    sft_loss = [float(r["loss"]) for r in metrics(Path(sft.output_dir) / METRICS_FILE) if "loss" in r]
    steps = [r for r in metrics(Path(grpo.output_dir) / METRICS_FILE) if REWARD_KEY in r and FORMAT_KEY in r]
    return QuickstartResult(Path(sft_final), Path(grpo_final), sft_loss, steps)
