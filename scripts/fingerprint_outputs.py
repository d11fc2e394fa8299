"""Fingerprint the task generator's output and the reward scores, to show a refactor changed neither.

Run from the project root (before and after a change; the two outputs must match line for line):

    python scripts/fingerprint_outputs.py

Prints one SHA-256 per line: each split of the task generator's output on the bundled samples under
five task configurations (Arrow IPC bytes of every column, images included), and the composite
reward's per-completion totals and components on ``benchmarks/bench_rewards.py``'s 10,000 mixed
completions for the format x (binary + category) recipe and both presets (``default``'s OOD scorer
needs the embedding model and runs on the bench's OOD rows). Works with the layout before and after
the subpackage restructuring (it tries both import paths).
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
from pathlib import Path

import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from proguard.data import BUNDLED_SAMPLES, load_samples  # noqa: E402
from proguard.protocol import PromptConfig  # noqa: E402
from taxonomy import load_taxonomy  # noqa: E402

try:  # the subpackage layout
    from proguard.scoring.compose import build_reward, targets_from_columns
    from proguard.tasks.config import TaskConfig
    from proguard.tasks.generator import build_tasks
except ImportError:  # the flat layout before it
    from proguard.scoring.compose import build_reward, targets_from_columns  # type: ignore[no-redef]
    from proguard.tasks import TaskConfig, build_tasks  # type: ignore[no-redef]

CONFIGS = {
    "plain": dict(),
    "holdout": dict(holdout=["C8"], shuffle_ids=True, seed=3),
    "hide": dict(holdout=["C8S1"], hide_fraction=0.4, own_category_hide_prob=0.5, seed=4),
    "subcat": dict(hide_fraction=0.5, hide_level="subcategory", shuffle_ids=True, seed=5),
    "noprompt": dict(holdout=["C8"], shuffle_ids=True, seed=7),
}


def table_hash(ds) -> str:
    """SHA-256 of the split's Arrow IPC bytes, image paths cut to their file names (checkouts differ)."""
    sink = io.BytesIO()
    table = ds.data.table if hasattr(ds.data, "table") else ds.data
    if "image" in table.column_names:
        col = table.column("image").combine_chunks()
        paths = pa.array([None if p is None else Path(p).name for p in col.field("path").to_pylist()], pa.string())
        image = pa.StructArray.from_arrays([col.field("bytes"), paths], names=["bytes", "path"], mask=col.is_null())
        table = table.set_column(table.column_names.index("image"), "image", image)
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.sha256(sink.getvalue()).hexdigest()


def main() -> None:
    tax = load_taxonomy("default")
    samples = load_samples(BUNDLED_SAMPLES, tax)
    for name, kwargs in CONFIGS.items():
        prompt = PromptConfig(descriptions=False, examples=False) if name == "noprompt" else PromptConfig()
        tasks = build_tasks(samples, tax, TaskConfig(prompt=prompt, **kwargs))
        for split in tasks:
            print(f"tasks/{name}/{split} rows={len(tasks[split])} sha256={table_hash(tasks[split])}")
    from bench_rewards import RECIPE, make_batch

    completions, cols, _ = make_batch(10_000, seed=0)
    for label, spec in (("recipe", RECIPE), ("paper-no-ood", "proguard-paper")):
        reward = build_reward(spec)
        if label == "paper-no-ood":  # cols carry no OOD rows: the OOD component scores None throughout
            reward.components = [c for c in reward.components if c.name != "ood_similarity"]
        result = reward.breakdown(completions, targets_from_columns(cols, len(completions)))
        blob = json.dumps({"total": result.total, "components": result.components}, sort_keys=True)
        print(f"rewards/{label} n={len(completions)} sha256={hashlib.sha256(blob.encode()).hexdigest()}")


if __name__ == "__main__":
    main()
