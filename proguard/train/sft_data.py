"""The SFT data of a recipe: a distilled dataset (or one distilled inline), label-only view, checks and lengths.

``build_sft_dataset`` returns a ``datasets.Dataset`` with conversational ``messages`` (system, user,
assistant) and an ``images`` list column, ready for TRL's vision-language collator. With
``data.label_only`` the assistant turn keeps only its ``<answer>`` block. Every row is checked: the
conversation ends in an assistant turn, and the image parts match the row's images.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from proguard.protocol import ANSWER_OPEN
from proguard.train.errors import TrainError
from proguard.train.recipe import SFTRecipe

DISTILL_DIR = "distill"
"""Where an inline distillation writes (under ``output_dir``)."""


def resolve_dataset_path(path: str | Path) -> Path:
    """``proguard distill --out`` dirs hold ``dataset/``; a dataset dir itself is taken as is."""
    p = Path(path)
    if (p / "dataset" / "dataset_info.json").is_file():
        return p / "dataset"
    return p


def distill_inline(r: SFTRecipe, out_dir: Path | None, *, progress: bool = True):
    """Tasks from ``data.distill``'s samples, answered by the template teacher.

    With ``out_dir`` the full distillation runs there (cache, dataset, report.md) and the dataset is
    returned; with ``None`` (``--dry-run``) nothing is written and the teacher answers in memory.
    """
    from proguard.distill.runner import DistillConfig, run_distill
    from proguard.distill.source import tasks_from_samples
    from proguard.distill.teachers import TemplateTeacher
    from proguard.tasks.config import TaskConfig
    from taxonomy import load_taxonomy

    d = r.data.distill
    assert d is not None
    taxonomy = load_taxonomy(d.taxonomy)
    cfg = TaskConfig.from_options(d.tasks, r.data.prompt) if d.tasks is not None else None
    samples = None if d.samples == "bundled" else d.samples
    tasks, label = tasks_from_samples(samples, taxonomy, cfg, d.split, r.data.prompt)
    teacher = TemplateTeacher(description_words=d.description_words)
    if out_dir is None:
        return tasks, taxonomy, teacher
    result = run_distill(tasks, teacher, out_dir, taxonomy, config=DistillConfig(progress=progress), tasks_label=label)
    if not result.kept:
        raise TrainError(f"data.distill: the teacher's answers were all rejected; see {result.report_path}")
    import datasets

    return datasets.load_from_disk(str(result.dataset_path))


def build_sft_dataset(r: SFTRecipe, *, progress: bool = True):
    """The training conversations of the recipe (inline distillation writes under ``<output_dir>/distill``)."""
    import datasets

    if r.data.dataset is not None:
        path = resolve_dataset_path(r.data.dataset)
        if not path.exists():
            raise TrainError(f"data.dataset: {path}: no such directory (write one with proguard distill --out)")
        ds = datasets.load_from_disk(str(path))
        if isinstance(ds, datasets.DatasetDict):
            if "train" not in ds:
                raise TrainError(f"data.dataset: {path} has splits {', '.join(ds)}, no 'train'")
            ds = ds["train"]
        origin = str(path)
    else:
        ds = distill_inline(r, Path(r.output_dir) / DISTILL_DIR, progress=progress)
        origin = str(Path(r.output_dir) / DISTILL_DIR / "dataset")
    if r.data.modalities is not None:
        from proguard.train.dataset import select_modalities

        ds = select_modalities(ds, r.data.modalities)
    if r.data.max_samples is not None and len(ds) > r.data.max_samples:
        ds = ds.select(range(r.data.max_samples))
    check_sft_dataset(ds, origin)
    if r.data.label_only:
        ds = ds.map(_label_only, desc="label_only")
    return ds


def check_sft_dataset(ds, origin: str) -> None:
    """Columns ``messages`` and ``images``; each row ends in an assistant turn; image parts match images."""
    missing = [c for c in ("messages", "images") if c not in ds.column_names]
    if missing:
        raise TrainError(f"{origin}: missing column(s) {', '.join(missing)}; an SFT dataset comes from proguard distill")
    if len(ds) == 0:
        raise TrainError(f"{origin}: no rows")
    problems = []
    names = ds["task_id"] if "task_id" in ds.column_names else [None] * len(ds)
    view = ds.cast_column("images", _undecoded_images()).select_columns(["messages", "images"])
    for i, row in enumerate(view):
        where = f"row {i + 1}" + (f" ({names[i]})" if names[i] else "")
        messages = row["messages"]
        if not messages or messages[-1].get("role") != "assistant":
            problems.append(f"{where}: messages: must end with the assistant turn")
            continue
        if _text(messages[-1]).find(ANSWER_OPEN) < 0:
            problems.append(f"{where}: messages: the assistant turn has no {ANSWER_OPEN} block")
        parts = sum(1 for m in messages for p in m["content"] or [] if p.get("type") == "image")
        if parts != len(row["images"] or []):
            problems.append(f"{where}: {parts} image part(s) but {len(row['images'] or [])} image(s)")
        if len(problems) >= 20:
            break
    if problems:
        raise TrainError(f"{origin}: bad row(s):\n" + "\n".join(problems))


def _text(message: dict[str, Any]) -> str:
    return "".join(p.get("text") or "" for p in message.get("content") or [] if p.get("type") == "text")


def _label_only(row: dict[str, Any]) -> dict[str, Any]:
    """The assistant turn cut to its ``<answer>`` block (the critique dropped)."""
    messages = list(row["messages"])
    text = _text(messages[-1])
    messages[-1] = {"role": "assistant", "content": [{"type": "text", "text": text[text.find(ANSWER_OPEN):]}]}
    return {"messages": messages}


def _undecoded_images():
    import datasets

    return datasets.List(datasets.Image(decode=False))


def sequence_lengths(processor, ds, batch_size: int = 256) -> list[int]:
    """Tokens per training row (whole conversation, each image expanded to its image tokens)."""
    from proguard.bench.backends import clean_messages
    from proguard.train.checks import _image_tokens

    tokenizer = getattr(processor, "tokenizer", processor)  # a text-only policy's processor is its tokenizer
    image_token = getattr(processor, "image_token", None)
    image_token_id = tokenizer.convert_tokens_to_ids(image_token) if image_token else None
    view = ds.cast_column("images", _undecoded_images()).select_columns(["messages", "images"])
    lengths: list[int] = []
    for batch in view.iter(batch_size=batch_size):
        texts = processor.apply_chat_template([clean_messages(m) for m in batch["messages"]], tokenize=False)
        for ids, cells in zip(tokenizer(texts, add_special_tokens=False)["input_ids"], batch["images"], strict=True):
            n = len(ids)
            if cells and image_token_id is not None:
                n += sum(_image_tokens(processor, c) for c in cells) - ids.count(image_token_id)
            lengths.append(n)
    return lengths


def enforce_lengths(ds, lengths: list[int], r: SFTRecipe):
    """Rows longer than ``lengths.max_length``: an error naming them, or dropped and reported (never truncated)."""
    limit = r.lengths.max_length
    over = [i for i, n in enumerate(lengths) if n > limit]
    if not over:
        return ds
    ids = ds["task_id"] if "task_id" in ds.column_names else [None] * len(ds)
    shown = ", ".join(f"row {i + 1} ({ids[i]}): {lengths[i]} tokens" for i in over[:5])
    msg = f"{len(over)} of {len(ds)} SFT rows are longer than lengths.max_length={limit}: {shown}"
    if r.lengths.overlong == "error":
        raise TrainError(msg + ". Raise lengths.max_length, lower images.max_pixels, or set lengths.overlong=drop")
    print(f"[proguard] dropping {msg}", flush=True)
    keep = sorted(set(range(len(ds))) - set(over))
    if not keep:
        raise TrainError(msg + "; nothing left to train on")
    return ds.select(keep)


def sft_summary(ds) -> dict[str, Any]:
    """Row counts by modality and label (what ``--dry-run`` prints)."""
    out: dict[str, Any] = {"rows": len(ds)}
    if "modality" in ds.column_names:
        out["by_modality"] = dict(sorted(Counter(ds["modality"]).items()))
    if "request_label" in ds.column_names:
        responses = ds["response_label"] if "response_label" in ds.column_names else [None] * len(ds)
        out["unsafe"] = sum(1 for a, b in zip(ds["request_label"], responses, strict=True) if "unsafe" in (a, b))
    if "ood" in ds.column_names:
        out["ood"] = sum(1 for v in ds["ood"] if v)
    return out
