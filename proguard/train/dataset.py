"""The training prompts of a recipe: a prepared task dataset, or the task generator run over labelled samples.

``build_train_dataset`` returns a ``datasets.Dataset`` of conversational prompts plus the reward's
ground-truth columns, checked row by row (``check_dataset``); ``dataset_summary`` and
``render_messages`` are what ``--dry-run`` prints.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from proguard.train.errors import TrainError
from proguard.train.recipe import BUNDLED, Recipe


def build_train_dataset(r: Recipe):
    """The training prompts: a prepared task dataset, or the task generator run over labelled samples."""
    import datasets

    from proguard.data import BUNDLED_SAMPLES, load_samples
    from proguard.inputs import check_dataset_dir, check_source
    from proguard.train.errors import TrainInputError
    from taxonomy import load_taxonomy

    if r.data.prepared:
        path = Path(r.data.prepared)
        if not path.exists():
            raise TrainError(f"data.prepared: {path}: no such directory")
        if not path.is_dir():
            raise TrainInputError(f"data.prepared: {path}: not a directory (a task dataset saved by proguard tasks)")
        check_dataset_dir(path, TrainInputError)
        loaded = datasets.load_from_disk(str(path))
        origin = str(path)
        if isinstance(loaded, datasets.DatasetDict):
            if r.data.train_split not in loaded:
                raise TrainError(f"data.train_split: {path} has splits {', '.join(loaded)}, not {r.data.train_split!r}")
            ds = loaded[r.data.train_split]
            origin = f"{path} [{r.data.train_split}]"
        else:
            ds = loaded
    else:
        from proguard.tasks import generator as tasks

        taxonomy = load_taxonomy(r.data.taxonomy)
        samples_path = BUNDLED_SAMPLES if r.data.samples == BUNDLED else Path(r.data.samples)
        check_source(samples_path)  # a non-UTF-8 or corrupt file: one line naming it, not a traceback
        samples = load_samples(samples_path, taxonomy, allow_outside_data=r.data.allow_outside_data,
                               media_limits=r.data.media)
        origin = str(samples_path)
        if r.data.tasks is None:
            ds = tasks.default_tasks(samples, taxonomy, r.prompt_config())
        else:
            splits = tasks.build_tasks(samples, taxonomy, r.task_config())
            if r.data.train_split not in splits:
                raise TrainError(f"data.train_split: the task generator made {', '.join(splits)}, not {r.data.train_split!r}")
            ds = splits[r.data.train_split]
            origin = f"{origin} [{r.data.train_split}]"
    if r.data.modalities is not None:
        ds = select_modalities(ds, r.data.modalities)
    if r.data.max_samples is not None and len(ds) > r.data.max_samples:
        ds = ds.select(range(r.data.max_samples))
    check_dataset(ds, origin)
    return ds


def check_holdout(taxonomy: str, tasks: Any, key: str) -> None:
    """``--check``: every held-out node ID of ``tasks`` (``TaskOptions`` or ``None``) is a node of ``taxonomy``.

    Raises ``TrainInputError`` naming the key, the unknown IDs and a near miss; the task generator
    checks the same at build time, which ``--check`` never reaches.
    """
    from proguard.hints import did_you_mean
    from proguard.tasks.rows import TaxonomyIndex
    from proguard.train.errors import TrainInputError
    from taxonomy import TaxonomyError, load_taxonomy

    try:
        tax = load_taxonomy(taxonomy)
    except TaxonomyError as exc:
        raise TrainInputError(f"{key.rsplit('.', 1)[0]}.taxonomy: {exc}") from None
    if tasks is None or not tasks.holdout:
        return
    known = TaxonomyIndex(tax).src
    unknown = [h for h in tasks.holdout if h not in known]
    if unknown:
        raise TrainInputError(f"{key}.holdout: unknown node ID(s) {', '.join(map(repr, unknown))} in taxonomy "
                              f"{taxonomy!r}{did_you_mean(unknown[0], known, n=1)}; known IDs: {', '.join(known)}")


def check_dataset(ds, origin: str) -> None:
    """Every row has a conversational prompt, the reward's columns, and one image per image placeholder."""
    from rewards.types import TARGET_COLUMNS

    required = ["prompt", "modality", "request_label"]
    missing = [c for c in required if c not in ds.column_names]
    if missing:
        raise TrainError(
            f"{origin}: missing column(s) {', '.join(missing)}; a task dataset carries prompt, image and "
            f"{', '.join(TARGET_COLUMNS)}"
        )
    if len(ds) == 0:
        raise TrainError(f"{origin}: no training rows")
    names = row_names(ds)
    problems = []
    videos = ds["video"] if "video" in ds.column_names else [None] * len(ds)
    audios = ds["audio"] if "audio" in ds.column_names else [None] * len(ds)
    for i, (prompt, image) in enumerate(_prompts_and_images(ds)):
        if not isinstance(prompt, list) or not all(isinstance(m, dict) and "role" in m for m in prompt):
            problems.append(f"{names[i]}: prompt: must be a list of chat messages")
            continue
        parts = [part.get("type") for m in prompt if isinstance(m.get("content"), list)
                 for part in m["content"] if isinstance(part, dict)]
        for medium, value in (("image", image), ("video", videos[i]), ("audio", audios[i])):
            placeholders, given = parts.count(medium), int(bool(value))
            if placeholders != given:
                problems.append(f"{names[i]}: prompt has {placeholders} {medium} placeholder(s) but the row has {given} {medium}(s)")
        if len(problems) >= 20:
            break
    if problems:
        raise TrainError(f"{origin}: bad row(s):\n" + "\n".join(problems))


def row_names(ds) -> list[str]:
    """How errors name each row: its task or sample ID when the dataset has one, else its number."""
    for column in ("task_id", "id", "sample_id"):
        if column in ds.column_names:
            return [f"row {i + 1} ({v})" for i, v in enumerate(ds[column])]
    return [f"row {i + 1}" for i in range(len(ds))]


def _prompts_and_images(ds, batch_size: int = 1024):
    """``(prompt, undecoded image cell or None)`` per row, read in batches (task sets can be large)."""
    has_image = "image" in ds.column_names
    view = ds.cast_column("image", _undecoded_image()) if has_image else ds
    view = view.select_columns(["prompt", "image"] if has_image else ["prompt"])
    for batch in view.iter(batch_size=batch_size):
        images = batch["image"] if has_image else [None] * len(batch["prompt"])
        yield from zip(batch["prompt"], images, strict=True)


def _undecoded_image():
    import datasets

    return datasets.Image(decode=False)


def dataset_summary(ds) -> dict[str, Any]:
    """Row counts by modality, unsafe and OOD (what ``--dry-run`` prints)."""
    out: dict[str, Any] = {"rows": len(ds), "by_modality": dict(sorted(Counter(ds["modality"]).items()))}
    labels = ds["request_label"]
    responses = ds["response_label"] if "response_label" in ds.column_names else [None] * len(ds)
    out["unsafe"] = sum(1 for a, b in zip(labels, responses, strict=True) if "unsafe" in (a, b))
    if "ood" in ds.column_names:
        out["ood"] = sum(1 for v in ds["ood"] if v)
    return out


def render_messages(messages: Sequence[dict]) -> str:
    """A chat prompt as readable text, media shown as ``<image>`` / ``<video>`` / ``<audio>``."""
    lines = []
    for m in messages:
        lines.append(f"===== {m['role']} =====")
        content = m["content"]
        if isinstance(content, str):
            lines.append(content)
            continue
        for part in content:
            kind = part.get("type")
            lines.append(f"<{kind}>" if kind in ("image", "video", "audio") else str(part.get("text", "")))
    return "\n".join(lines)


def select_modalities(ds, modalities: list[str], key: str = "data.modalities"):
    """The rows of ``ds`` whose modality is listed; how many of each other modality were left out is printed."""
    from rewards.types import MODALITIES

    unknown = [m for m in modalities if m not in MODALITIES]
    if unknown:
        raise TrainError(f"{key}: unknown modality {unknown[0]!r}; expected some of {', '.join(MODALITIES)}")
    keep = set(modalities)
    mods = ds["modality"]
    rows = [i for i, m in enumerate(mods) if m in keep]
    left = Counter(m for m in mods if m not in keep)
    if left:  # reported, never silent
        print(f"[proguard] {key}: training on {len(rows)} of {len(ds)} rows; left out "
              + ", ".join(f"{m} {n}" for m, n in sorted(left.items())), flush=True)
    return ds.select(rows)
