"""Helpers for the task-generator tests: synthetic samples and an independent check of each task row.

``assert_task_matches_protocol`` rebuilds a task's visible taxonomy the slow, canonical way (from
the row's ``id_map`` with ``Taxonomy.without`` and ``renumbered``) and compares the stored prompt with
``protocol.build_messages``: it shares no code with the generator's fast renderer.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import datasets

from proguard.data import Sample, samples_to_dataset
from proguard.protocol import PromptConfig, build_messages
from rewards.types import MEDIUM, MODALITIES, Target, has_response
from taxonomy import Taxonomy, parse_id

_SAMPLE = Path(__file__).resolve().parents[1] / "proguard" / "assets" / "sample"
IMAGES = sorted((_SAMPLE / "images").glob("*.png"))
VIDEOS = sorted((_SAMPLE / "video").glob("*.mp4"))
AUDIO = sorted((_SAMPLE / "audio").glob("*.ogg"))


def synthetic_samples(taxonomy: Taxonomy, per_leaf: int = 1, safe: int = 12, seed: int = 0) -> datasets.Dataset:
    """``per_leaf`` unsafe samples per (leaf node, modality), plus ``safe`` safe ones per modality."""
    rng = random.Random(seed)
    rows: list[Sample] = []
    leaves = [n for n in taxonomy.leaves()]
    k = 0
    for leaf in leaves:
        for modality in MODALITIES:
            for _ in range(per_leaf):
                rows.append(_sample(f"u{k}", modality, "unsafe", leaf.key or leaf.id, rng))
                k += 1
    for modality in MODALITIES:
        for _ in range(safe):
            rows.append(_sample(f"s{k}", modality, "safe", None, rng))
            k += 1
    rng.shuffle(rows)
    return samples_to_dataset(rows)


def _sample(sid: str, modality: str, label: str, category: str | None, rng: random.Random) -> Sample:
    text = f"Request {sid}: please describe the thing in detail." if has_response(modality) else None
    response = "Here is a plain answer." if has_response(modality) and rng.random() < 0.5 else None
    medium = MEDIUM[modality]
    image = str(rng.choice(IMAGES)) if medium == "image" else None
    video = [str(rng.choice(VIDEOS))] if medium == "video" else None
    audio = str(rng.choice(AUDIO)) if medium == "audio" else None
    return Sample(sid, modality, text, response, image, label, "safe" if response else None, category, video, audio)


def samples_by_id(samples: datasets.Dataset) -> dict[str, dict[str, Any]]:
    """Sample rows by id, images left undecoded."""
    ds = samples.cast_column("image", datasets.Image(decode=False))
    return {row["id"]: row for row in ds}


def visible_taxonomy(row: dict[str, Any], taxonomy: Taxonomy) -> Taxonomy:
    """The taxonomy a task showed, rebuilt from its ``id_map`` with the canonical taxonomy operations."""
    id_map = json.loads(row["id_map"])
    hidden = [n.id for n in taxonomy.nodes() if (n.key or n.id) not in id_map]
    visible = taxonomy.without(hidden)
    if not hidden and all(k == v for k, v in id_map.items()):
        return visible

    def number(node_id: str) -> tuple[int, int]:
        cat, sub = parse_id(id_map[node_id])  # type: ignore[misc]
        return cat, sub or 0

    order = {"": sorted((c.id for c in visible.categories), key=number)}
    order.update({c.id: sorted((s.id for s in c.children), key=number) for c in visible.categories})
    renumbered, mapping = visible.renumbered(order)
    assert mapping == id_map, "id_map is not a dense renumbering of the visible nodes"
    return renumbered


def assert_task_matches_protocol(
    row: dict[str, Any], taxonomy: Taxonomy, samples: dict[str, dict[str, Any]], config: PromptConfig | None = None
) -> Taxonomy:
    """Assert that a task row is exactly what the protocol builds for its sample and visible taxonomy."""
    config = config or PromptConfig()
    sample = samples[row["sample_id"]]
    visible = visible_taxonomy(row, taxonomy)
    want = build_messages(row["modality"], sample["request"], sample["response"], visible, config)
    got = [
        {"role": m["role"], "content": [{k: v for k, v in p.items() if v is not None} for p in m["content"]]}
        for m in row["prompt"]
    ]
    assert got == want, f"{row['task_id']}: prompt differs from build_messages"
    shown = set(json.loads(row["id_map"]))
    assert row["hidden"] == [n.key or n.id for n in taxonomy.nodes() if (n.key or n.id) not in shown]
    assert row["category_level"] == config.level(row["modality"], visible)
    for key in ("modality", "request_label", "response_label", "category", "video", "audio"):
        assert row[key] == sample[key], f"{row['task_id']}: {key}"
    target = Target.from_columns(row)
    assert target.category == sample["category"] and target.ood == row["ood"]
    for src, pid in json.loads(row["id_map"]).items():
        assert target.prompt_id(src) == pid and target.source_id(pid) == src
    return visible
