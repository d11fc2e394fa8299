"""The model card (``README.md``) written once, at the end of a run, into ``output_dir`` and ``final/``.

TRL's own card names the base model only when it is a hub ID (a local or ``tiny`` policy gives
"a fine-tuned version of [None]"), and says nothing of the guard's protocol or rewards. This card
says what was trained from what, with which rewards on which data, how to load it, and embeds the
resolved recipe, so a checkpoint directory explains itself.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

from proguard.train.recipe import BUNDLED, TINY_MODEL, recipe_to_yaml

CARD_FILE = "README.md"


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def model_card(r: Any, *, method: str = "GRPO") -> str:
    """The card's Markdown for a model trained with recipe ``r`` (a GRPO ``Recipe`` or an ``SFTRecipe``)."""
    base = r.model.name_or_path
    base_text = (
        "the in-process tiny Qwen2.5-VL (random weights, built by `proguard.models.tiny_vlm`; a demo, not a guard)"
        if base == TINY_MODEL else f"`{base}`"
    )
    data_text, held = _data_text(r.data)
    if hasattr(r, "reward_specs"):
        rewards = "\n".join(
            f"- `{s.name}`: {'gate' if s.gate else f'weight {s.weight:g}'}"
            + (f", options {dict(s.options)}" if s.options else "")
            for s in r.reward_specs()
        )
        objective = f"- Rewards (total = product of gates x weighted sum):\n{rewards}"
    else:
        weight = r.sft.decision_token_weight
        objective = ("- Loss: the assistant turn only" + (" (the <answer> block)" if r.data.label_only else "")
                     + (f"; the safe/unsafe decision tokens weighted {weight:g}" if weight != 1.0 else ""))
    return f"""---
library_name: transformers
tags:
- proguard
- safety-guard
- trl
- {method.lower()}
---

# {Path(r.output_dir).name}: a proactive safety guard

Trained with proguard ({method} on TRL) from {base_text}.

- Data: {data_text}; held-out categories: {', '.join(held) or 'none'}.
- Answer protocol: `<think>...</think>` then `<answer>` with `Request:`, `Response:` (not for image-only
  samples) and `Category:` lines (`proguard.protocol`).
{objective}

## Use

```bash
proguard moderate --model PATH_TO_THIS_DIR --request "How do I pick a lock?"
```

or load it with transformers (`AutoModelForImageTextToText`, `AutoProcessor`) or `vllm serve`.

## Framework versions

proguard {_version('proguard')}, TRL {_version('trl')}, transformers {_version('transformers')}, torch {_version('torch')}

## Recipe

```yaml
{recipe_to_yaml(r).rstrip()}
```
"""


def _data_text(data: Any) -> tuple[str, list[str]]:
    """The card's data line and held-out categories, for the GRPO or the SFT ``data`` section."""
    if getattr(data, "prepared", None):
        return f"prepared tasks `{data.prepared}`", []
    if getattr(data, "dataset", None):
        return f"distilled dataset `{data.dataset}`", []
    source = getattr(data, "distill", None) or data
    tasks = source.tasks
    samples = "(the bundled set)" if source.samples == BUNDLED else f"`{source.samples}`"
    teacher = " distilled by the template teacher" if source is not data else ""
    return (f"samples {samples} through the task generator{teacher}, taxonomy `{source.taxonomy}`",
            list(tasks.holdout) if tasks is not None else [])


def write_model_card(directory: str | Path, r: Any, *, method: str = "GRPO") -> Path:
    """Write ``README.md`` into ``directory`` (created if needed); returns its path."""
    path = Path(directory) / CARD_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(model_card(r, method=method), encoding="utf-8")
    return path
