"""Which task rows a distillation run answers: a saved task dataset, or tasks built from labelled samples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from proguard.distill.gold import DistillError
from proguard.protocol import PromptConfig
from proguard.tasks.config import TaskConfig
from taxonomy import Taxonomy


def tasks_from_samples(
    samples_path: str | Path | None,
    taxonomy: Taxonomy,
    task_config: TaskConfig | None = None,
    split: str | None = "train",
    prompt: PromptConfig | None = None,
) -> tuple[Any, str]:
    """Task rows from a samples file (``None``: the bundled set) and a label naming them.

    Without ``task_config`` every sample becomes one plain task (``default_tasks``: every category
    shown, source IDs); with it the task generator runs and ``split`` picks its split (``train`` by
    default: distil what the guard will be trained on, keep ``eval_*`` for the benchmark). Plain tasks
    have no splits: a ``split`` other than ``None`` or ``train`` is an error, never ignored.
    """
    from proguard.data import BUNDLED_SAMPLES, load_samples
    from proguard.inputs import check_source
    from proguard.tasks.generator import build_tasks, default_tasks

    path = Path(samples_path) if samples_path else BUNDLED_SAMPLES
    check_source(path)  # non-UTF-8, corrupt parquet, not a dataset dir: one line naming it
    samples = load_samples(path, taxonomy)
    if task_config is None:
        if split not in (None, "train"):
            raise DistillError(f"--split {split}: tasks built from --data without --holdout/--shuffle-ids are one "
                               "plain set with no splits; drop --split, or add --holdout to build train/eval splits")
        return default_tasks(samples, taxonomy, prompt), f"default_tasks({path})"
    split = split or "train"
    splits = build_tasks(samples, taxonomy, task_config)
    if split not in splits:
        raise DistillError(f"split: the task generator made {', '.join(splits)}, not {split!r}")
    return splits[split], f"build_tasks({path}) [{split}]"


def tasks_from_disk(path: str | Path, split: str | None = "train") -> tuple[Any, str]:
    """A saved task dataset (a ``DatasetDict`` narrowed to ``split``, or one dataset) or a parquet file."""
    from proguard.bench.runner import load_task_dataset

    try:
        return load_task_dataset(path, split), f"{path}" + (f" [{split}]" if split else "")
    except ValueError as exc:
        raise DistillError(str(exc)) from None
