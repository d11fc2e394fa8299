"""The quick start's task: real safety data (Do-Not-Answer + XSTest) read in place, split by question, one harm
type held out; or the bundled samples when no data root is found.

Real data (``--data-root``, default the ``shared/reference`` folder beside the checkout): Do-Not-Answer's
questions (``donotanswer/do_not_answer_prompts.csv``, all unsafe, each in one of 5 risk areas) and XSTest's
safe prompts that look unsafe (``xstest/xstest_prompts.csv``). The taxonomy is Do-Not-Answer's 5 risk
areas, flat, each described by its harm types: the category list is 5 short lines, which keeps the
policy prompt near 290 tokens (every training token costs on CPU; the 12 harm types' long names cost 100
more). ``Information Hazards`` is held out of every prompt, so its questions are out-of-distribution: the
right answer is "unsafe" with the risk named in words.
Splits are made per question (``group``: Do-Not-Answer's response file repeats each question six times,
and the rule is kept here too), so no held-out prompt was trained on. XSTest's unsafe contrast prompts
carry no harm type and are not used (the data line says so).

Files are read through the suite adapters (``proguard.suites``: one-line errors naming file, row and
field) and written only under the run's own folder; nothing is copied into the project.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proguard.train.errors import TrainError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA_ROOT = PROJECT_ROOT.parent / "shared" / "reference"
"""The ``shared/reference`` folder beside the checkout, used when it exists and ``--data-root`` is not given."""
DNA_FILE = Path("donotanswer") / "do_not_answer_prompts.csv"
XSTEST_FILE = Path("xstest") / "xstest_prompts.csv"
HOLDOUT_AREA = "Information Hazards"
BUNDLED_HOLDOUT = "C8"
"""The default taxonomy's category held out when the quick start falls back to the bundled samples."""


@dataclass(frozen=True)
class Sizes:
    """How many prompts each split takes (per shown risk area for Do-Not-Answer)."""

    train_per_area: int = 18
    """18 x 4 shown areas + 72 safe: 144 prompts, one epoch of the SFT recipe's 36 steps of 4 (96 before the recipe
    froze its lower 18 layers; BENCHMARKS.md, quick start round 5)."""
    eval_per_area: int = 8
    """8 x 4 + 24 safe + 8 OOD: 64 held-out prompts (34 until the shared prompt prefix was cached, which cut an answer
    to 0.60x the time; at 34 one prompt was 0.03 of accuracy and seeds' results jumped by it)."""
    train_safe: int = 72
    eval_safe: int = 24
    eval_ood: int = 8
    dev_per_area: int = 8
    """Dev prompts per shown risk area: never trained on, never in the held-out table; the decision threshold
    (``proguard.bench.label_bias``) is fitted on them."""
    dev_safe: int = 24
    own_hide_prob: float = 0.25
    """Training prompts only: the chance that an unsafe prompt's own risk area is left out of its category list,
    so the teacher's answer names the risk in words (ProGuard's OOD training tasks). Without these SFT never
    sees a free-text answer and the held-out area is never detected (BENCHMARKS.md, issue 21: OOD detection
    0.000 at 0.0). Evaluation prompts always list every shown area."""


@dataclass
class QuickstartData:
    """The task splits (``train``, ``eval_id``, ``eval_ood`` and, for the real data, ``dev``), the taxonomy and a line
    saying where they came from."""

    tasks: Any
    taxonomy: Any
    taxonomy_path: Path
    source: str


def resolve_data_root(data_root: str | Path | None) -> Path | None:
    """The data root to read (an explicit one must hold both files), or ``None`` (use the bundled samples)."""
    if data_root is not None:
        root = Path(data_root).expanduser()
        missing = [str(root / f) for f in (DNA_FILE, XSTEST_FILE) if not (root / f).is_file()]
        if missing:
            raise TrainError(f"--data-root {data_root}: missing {', '.join(missing)} (Do-Not-Answer and XSTest as "
                             "released)")
        return root
    if all((DEFAULT_DATA_ROOT / f).is_file() for f in (DNA_FILE, XSTEST_FILE)):
        return DEFAULT_DATA_ROOT
    return None


def _area_taxonomy(harms_by_area: dict[str, list[str]]) -> dict:
    cats = [{"name": area, "description": "; ".join(harms) + ".", "synonyms": [area, *harms]}
            for area, harms in harms_by_area.items()]
    return {"name": "do-not-answer-risk-areas", "categories": cats}


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def real_data(root: Path, out: Path, seed: int, sizes: Sizes) -> QuickstartData:
    """Do-Not-Answer questions + XSTest safe prompts as train / eval_id / eval_ood / dev task splits.

    The dev questions come after the training and evaluation ones in each shuffled list, so adding them left the
    other splits of every seed as they were (the random draws are the same)."""
    import csv

    import yaml

    from proguard.suites.adapters.donotanswer import DoNotAnswer
    from proguard.suites.adapters.xstest import XSTest
    from proguard.suites.base import group_of
    from taxonomy import load_taxonomy

    dna = list(DoNotAnswer().read(root / DNA_FILE))
    xs = list(XSTest().read(root / XSTEST_FILE))
    area_of: dict[str, str] = {}  # question group -> risk area (the adapter keeps the harm type only)
    harms_by_area: dict[str, list[str]] = {}
    with (root / DNA_FILE).open(newline="", encoding="utf-8") as fh:
        for rec in csv.DictReader(fh):
            area_of[group_of(rec["question"])] = rec["risk_area"]
            harms = harms_by_area.setdefault(rec["risk_area"], [])
            if rec["types_of_harm"] not in harms:
                harms.append(rec["types_of_harm"])
    if HOLDOUT_AREA not in harms_by_area:
        raise TrainError(f"{root / DNA_FILE}: no question in risk area {HOLDOUT_AREA!r} (the quick start holds it out)")
    out.mkdir(parents=True, exist_ok=True)
    tax_path = out / "taxonomy.yaml"
    tax_path.write_text(yaml.safe_dump(_area_taxonomy(harms_by_area), sort_keys=False), encoding="utf-8")
    taxonomy = load_taxonomy(tax_path)
    node = {n.name: n.id for n in taxonomy.nodes()}

    rng = random.Random(seed)
    by_area: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for s in dna:  # grouped by question: a question's rows never cross splits
        by_area[area_of[s.group]][s.group].append(s)
    train, evals, dev = [], [], []
    for area in harms_by_area:
        groups = sorted(by_area[area])
        rng.shuffle(groups)
        if area == HOLDOUT_AREA:  # to eval_ood from either file (the generator never trains on them); the
            # training file needs one, since a holdout with no sample under it is an error of the generator
            cut = max(2, sizes.eval_ood)
            held = [by_area[area][g] for g in groups[:cut]]
            train += held[0]
            evals += [s for rows in held[1:] for s in rows]
            dev += [s for g in groups[cut : cut + 1] for s in by_area[area][g]]  # the generator's rule, as for train
            continue
        first_dev = sizes.train_per_area + sizes.eval_per_area
        train += [s for g in groups[: sizes.train_per_area] for s in by_area[area][g]]
        evals += [s for g in groups[sizes.train_per_area : first_dev] for s in by_area[area][g]]
        dev += [s for g in groups[first_dev : first_dev + sizes.dev_per_area] for s in by_area[area][g]]
    safe = [s for s in xs if s.request_label == "safe"]
    rng.shuffle(safe)
    train += safe[: sizes.train_safe]
    evals += safe[sizes.train_safe : sizes.train_safe + sizes.eval_safe]
    first_dev_safe = sizes.train_safe + sizes.eval_safe
    dev += safe[first_dev_safe : first_dev_safe + sizes.dev_safe]

    def row(s) -> dict:
        cat = node[area_of[s.group]] if s.request_label == "unsafe" else None
        return {"id": s.id, "modality": "text", "request": s.request, "request_label": s.request_label,
                "category": cat, "group": s.group}

    tasks = _splits(_write_jsonl(out / "train_samples.jsonl", [row(s) for s in train]),
                    _write_jsonl(out / "eval_samples.jsonl", [row(s) for s in evals]),
                    taxonomy, [node[HOLDOUT_AREA]], seed, own_hide_prob=sizes.own_hide_prob,
                    dev_path=_write_jsonl(out / "dev_samples.jsonl", [row(s) for s in dev]))
    n_contrast = sum(1 for s in xs if s.request_label == "unsafe")
    source = (f"real data from {root}: Do-Not-Answer questions ({len(harms_by_area)} risk areas, {HOLDOUT_AREA!r} "
              f"held out as OOD) + XSTest safe prompts, split by question; XSTest's {n_contrast} unsafe contrasts carry "
              "no harm type and are not used")
    return QuickstartData(tasks, taxonomy, tax_path, source)


def bundled_data(out: Path, seed: int, sizes: Sizes) -> QuickstartData:
    """The project's bundled text samples under the default taxonomy, one category held out."""
    from proguard.data import BUNDLED_SAMPLES, load_samples
    from taxonomy import load_taxonomy

    taxonomy = load_taxonomy("default")
    samples = load_samples(BUNDLED_SAMPLES, taxonomy)
    text = samples.filter(lambda m: m == "text", input_columns="modality")
    rows = text.remove_columns([c for c in text.column_names if c not in ("id", "modality", "request", "response",
                                                                               "request_label", "response_label",
                                                                               "category", "group")]).to_list()
    rng = random.Random(seed)
    rng.shuffle(rows)

    def top(cat):
        parent = taxonomy.parent(cat) if cat else None
        return parent.id if parent is not None else cat

    held = [r for r in rows if top(r["category"]) == BUNDLED_HOLDOUT]
    rest = [r for r in rows if top(r["category"]) != BUNDLED_HOLDOUT]
    if not held:
        raise TrainError(f"{BUNDLED_SAMPLES}: no text sample in category {BUNDLED_HOLDOUT} (the fallback holds it out)")
    cut = max(1, len(rest) * 2 // 3)
    out.mkdir(parents=True, exist_ok=True)
    # the held-out category's rows go to eval_ood from either file; each file needs one (the generator's rule)
    tasks = _splits(_write_jsonl(out / "train_samples.jsonl", rest[:cut] + held[:1]),
                    _write_jsonl(out / "eval_samples.jsonl", rest[cut:] + held[1:] if len(held) > 1 else rest[cut:]),
                    taxonomy, [BUNDLED_HOLDOUT], seed, level="category", own_hide_prob=sizes.own_hide_prob)
    source = (f"the bundled samples ({BUNDLED_SAMPLES}, {len(rows)} text rows; category {BUNDLED_HOLDOUT} held out): "
              "no Do-Not-Answer/XSTest data root was found (pass --data-root DIR for the real-data task)")
    return QuickstartData(tasks, taxonomy, Path("default"), source)


def _splits(train_path: Path, eval_path: Path, taxonomy, holdout: list[str], seed: int, level: str = "category",
            own_hide_prob: float = 0.0, dev_path: Path | None = None):
    """``train`` from the training file; ``eval_id`` and ``eval_ood`` from both (the holdout never trains); ``dev``
    from the dev file's in-taxonomy prompts, rendered like the evaluation ones (its held-out-area row is dropped).
    ``own_hide_prob`` hides a training prompt's own category (an OOD training task); never on the eval file."""
    import dataclasses

    import datasets

    from proguard.data import load_samples
    from proguard.protocol import PromptConfig
    from proguard.tasks.config import TaskConfig
    from proguard.tasks.generator import build_tasks

    prompt = PromptConfig(category_levels={"text": level}, descriptions=False, examples=False)
    cfg = TaskConfig(holdout=holdout, shuffle_ids=False, eval_fraction=0.0, seed=seed, prompt=prompt)
    train_cfg = dataclasses.replace(cfg, own_category_hide_prob=own_hide_prob or None)
    train = build_tasks(load_samples(train_path, taxonomy), taxonomy, train_cfg)
    held = build_tasks(load_samples(eval_path, taxonomy), taxonomy, cfg)
    parts = [d for d in (train["eval_ood"], held["eval_ood"]) if len(d)]
    splits = {
        "train": train["train"],
        "eval_id": _named(held["train"], "eval_id"),  # the eval file's in-taxonomy questions: never trained on
        "eval_ood": datasets.concatenate_datasets(parts) if parts else held["eval_ood"],
    }
    if dev_path is not None:
        splits["dev"] = _named(build_tasks(load_samples(dev_path, taxonomy), taxonomy, cfg)["train"], "dev")
    return datasets.DatasetDict(splits)


def _named(tasks, split: str):
    """``tasks`` with each task ID's split prefix set to ``split``: the generator names the eval and dev files'
    in-taxonomy rows ``train/...`` (they are its train split), which read as training rows in a bench report."""
    return tasks.map(lambda r: {"task_id": f"{split}/{r['task_id'].split('/', 1)[1]}"})


def quickstart_data(out: Path, data_root: str | Path | None, seed: int, sizes: Sizes | None = None) -> QuickstartData:
    """The quick start's task splits, written under ``out`` (``tasks/``, the samples files, the taxonomy)."""
    root = resolve_data_root(data_root)
    sizes = sizes or Sizes()
    data = real_data(root, out, seed, sizes) if root is not None else bundled_data(out, seed, sizes)
    data.tasks.save_to_disk(str(out / "tasks"))
    return data
