"""Benchmark samples to a task dataset ``run_bench`` scores: one plain task per sample, the whole
taxonomy shown with its own IDs (nothing hidden, nothing shuffled), the prompt written by
``proguard.protocol`` exactly as training writes it.

A level the benchmark does not label is written as ``UNLABELLED`` (``"unknown"``): it is not a label,
the bench metrics skip it, and the suite scores only the levels the benchmark labels.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import datasets

from proguard.protocol import PromptConfig, build_messages, user_text
from proguard.suites.base import BenchSample
from proguard.suites.catmap import CategoryMap
from taxonomy import Taxonomy

UNLABELLED = "unknown"


def features() -> datasets.Features:
    """The columns ``run_bench`` reads (``rewards.types.TARGET_COLUMNS``, prompt, IDs) plus the image."""
    s = datasets.Value("string")
    return datasets.Features({
        "task_id": s,
        "sample_id": s,
        "group": s,
        "prompt": datasets.List({"role": s, "content": datasets.List({"type": s, "text": s})}),
        "image": datasets.Image(),
        "modality": s,
        "request_label": s,
        "response_label": s,
        "category": s,
        "category_name": s,
        "category_level": s,
        "id_map": s,
        "ood": datasets.Value("bool"),
        "ood_name": s,
        "ood_synonyms": datasets.List(s),
        "source_labels": datasets.List(s),
    })


@dataclass(frozen=True)
class Targets:
    """Category truth per sample id: the accepted node IDs (empty: not scored) and unmapped labels."""

    accepted: dict[str, tuple[str, ...]]
    unknown_labels: dict[str, int]


def category_targets(samples: Sequence[BenchSample], cmap: CategoryMap | None, *, rule: str = "all",
                     parents: Mapping[str, str] | None = None) -> Targets:
    """What each unsafe sample's benchmark labels map to under ``cmap`` (nothing without a map), most
    specific first; ``rule`` keeps all of them or only the most specific (``CategoryMap.targets``)."""
    accepted: dict[str, tuple[str, ...]] = {}
    unknown: dict[str, int] = {}
    for s in samples:
        if cmap is None or not s.unsafe or not s.source_labels:
            accepted[s.id] = ()
            continue
        ids, missing = cmap.targets(s.source_labels, rule=rule, parents=parents)
        for label in missing:
            unknown[label] = unknown.get(label, 0) + 1
        accepted[s.id] = ids
    return Targets(accepted, unknown)


def to_tasks(samples: Sequence[BenchSample], taxonomy: Taxonomy, targets: Targets,
             prompt_config: PromptConfig | None = None) -> datasets.Dataset:
    """The task dataset of ``samples`` (system prompts rendered once per modality)."""
    config = prompt_config or PromptConfig()
    system: dict[str, list] = {}
    rows = []
    for s in samples:
        if s.modality not in system:
            system[s.modality] = build_messages(s.modality, "", None, taxonomy, config)[:1]
        # The user turn exactly as protocol.build_messages writes it (its system part is rendered once
        # per modality above); the datasets struct unifies parts, so an image part carries text=None.
        parts = [{"type": "image", "text": None}] if s.modality in ("image", "text_image") else []
        parts.append({"type": "text", "text": user_text(s.modality, s.request, s.response)})
        user = {"role": "user", "content": parts}
        first = targets.accepted.get(s.id) or ()
        node = taxonomy.find(first[0]) if first else None
        rows.append({
            "task_id": s.id,
            "sample_id": s.id,
            "group": s.group,
            "prompt": [*system[s.modality], user],
            "image": _image(s.image),
            "modality": s.modality,
            "request_label": s.request_label or UNLABELLED,
            "response_label": (s.response_label or UNLABELLED) if s.response is not None else None,
            "category": (node.key or node.id) if node is not None else None,
            "category_name": node.name if node is not None else None,
            "category_level": config.level(s.modality, taxonomy),
            "id_map": json.dumps({}),
            "ood": False,
            "ood_name": None,
            "ood_synonyms": [],
            "source_labels": list(s.source_labels),
        })
    return datasets.Dataset.from_list(rows, features=features())


def _image(value):
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        return {"bytes": bytes(value), "path": None}
    return {"bytes": None, "path": str(value)}
