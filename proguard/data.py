"""The labelled-sample schema and its loader: JSONL, parquet or a saved ``datasets`` directory.

A sample record (one JSON object per line)::

    id              str, unique
    modality        "text" | "image" | "text_image"
    request         str   (text, text_image; absent for image)
    response        str   (optional; absent for image)
    image           str path (relative to the data file) or bytes (image, text_image)
    request_label   "safe" | "unsafe"   (for image-only samples: the image's label)
    response_label  "safe" | "unsafe"   (exactly when ``response`` is present)
    category        ID (``C8S1``) or name of a node in the taxonomy; required when any label is
                    unsafe, empty when all are safe
    group           str (optional): samples that share a prompt share a group (Do-Not-Answer asks each
                    question six times, once per model response); a split must not cut a group

Every problem is reported with the file, the row and the field; nothing is dropped silently.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
from PIL import Image as PILImage

from rewards.types import LABELS, MODALITIES
from taxonomy import Taxonomy

SAMPLE_FIELDS = ("id", "modality", "request", "response", "image", "request_label", "response_label", "category", "group")
BUNDLED_SAMPLES = Path(__file__).parent / "assets" / "sample" / "samples.jsonl"
MAX_ERRORS_SHOWN = 20


class DataError(ValueError):
    """Invalid sample data; the message lists each problem as ``file: row N: field: what``."""


@dataclass(frozen=True)
class Sample:
    """One validated labelled sample (``category`` is a node ID of the taxonomy, or ``None``)."""

    id: str
    modality: str
    request: str | None
    response: str | None
    image: Any  # absolute path str, raw bytes, or None
    request_label: str
    response_label: str | None
    category: str | None
    group: str | None = None  # same prompt = same group; None: the sample is its own group


def sample_features() -> datasets.Features:
    """The ``datasets`` schema of a loaded sample set (images decode to PIL on access)."""
    s = datasets.Value("string")
    return datasets.Features(
        {
            "id": s,
            "modality": s,
            "request": s,
            "response": s,
            "image": datasets.Image(),
            "request_label": s,
            "response_label": s,
            "category": s,
            "group": s,
        }
    )


def load_samples(path: str | Path, taxonomy: Taxonomy, *, check_images: bool = True) -> datasets.Dataset:
    """Load and validate labelled samples; raises ``DataError`` naming file, row and field."""
    samples = list(validate_samples(read_records(path), taxonomy, origin=str(path), check_images=check_images))
    return samples_to_dataset(samples)


def samples_to_dataset(samples: Iterable[Sample]) -> datasets.Dataset:
    """A ``datasets.Dataset`` with the sample schema."""
    rows = []
    for s in samples:
        row = {k: getattr(s, k) for k in SAMPLE_FIELDS}
        row["image"] = _image_cell(s.image)
        rows.append(row)
    return datasets.Dataset.from_list(rows, features=sample_features())


def _image_cell(image: Any) -> dict | None:
    if image is None:
        return None
    if isinstance(image, (bytes, bytearray)):
        return {"bytes": bytes(image), "path": None}
    return {"bytes": None, "path": str(image)}


def read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` per non-blank line of a JSONL file; invalid JSON is a ``DataError`` naming the line."""
    with path.open(encoding="utf-8") as fh:
        for i, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield i, json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}: row {i}: not valid JSON: {exc.msg}") from None


def read_jsonl_objects(path: Path) -> Iterator[tuple[int, dict]]:
    """Like ``read_jsonl``, but every line must hold a JSON object."""
    for i, record in read_jsonl(path):
        if not isinstance(record, dict):
            raise DataError(f"{path}: row {i}: expected a JSON object, got {type(record).__name__}")
        yield i, record


def read_records(path: str | Path) -> Iterator[tuple[int, dict, Path]]:
    """Raw records with their 1-based row number and the directory that relative paths start from."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    if path.is_dir():
        ds = datasets.load_from_disk(str(path))
        if isinstance(ds, datasets.DatasetDict):
            raise DataError(f"{path}: holds several splits ({', '.join(ds)}); point at one split's directory")
        for i, row in enumerate(ds.cast_column("image", datasets.Image(decode=False)) if "image" in ds.column_names else ds, start=1):
            yield i, dict(row), path
    elif path.suffix == ".parquet":
        ds = datasets.Dataset.from_parquet(str(path))
        if "image" in ds.column_names and isinstance(ds.features["image"], datasets.Image):
            ds = ds.cast_column("image", datasets.Image(decode=False))
        for i, row in enumerate(ds, start=1):
            yield i, dict(row), path.parent
    elif path.suffix in (".jsonl", ".json"):
        for i, record in read_jsonl_objects(path):
            yield i, record, path.parent
    else:
        raise DataError(f"{path}: unsupported format (use .jsonl, .parquet or a saved datasets directory)")


def validate_samples(
    records: Iterable[tuple[int, dict, Path]], taxonomy: Taxonomy, *, origin: str, check_images: bool = True
) -> Iterator[Sample]:
    """Validate records; collects every problem (up to a limit) before raising one ``DataError``."""
    errors: list[str] = []
    seen: dict[str, int] = {}
    out = []
    for row, record, base in records:
        problems: list[str] = []
        sample = _validate(record, taxonomy, base, check_images, problems)
        sid = record.get("id")
        if isinstance(sid, (str, int)) and str(sid) in seen:
            problems.append(f"id: duplicate of row {seen[str(sid)]}")
        elif isinstance(sid, (str, int)):
            seen[str(sid)] = row
        errors.extend(f"{origin}: row {row}: {p}" for p in problems)
        if sample is not None and not problems:
            out.append(sample)
    if errors:
        shown = errors[:MAX_ERRORS_SHOWN]
        more = f"\n... and {len(errors) - len(shown)} more" if len(errors) > len(shown) else ""
        raise DataError(f"{len(errors)} problem(s) in sample data:\n" + "\n".join(shown) + more)
    if not out:
        raise DataError(f"{origin}: no samples")
    return iter(out)


def _str_field(record: dict, key: str, problems: list[str]) -> str | None:
    value = record.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        problems.append(f"{key}: must be a string, got {type(value).__name__}")
        return None
    return value


def _validate(record: dict, taxonomy: Taxonomy, base: Path, check_images: bool, problems: list[str]) -> Sample | None:
    unknown = sorted(set(record) - set(SAMPLE_FIELDS))
    if unknown:
        problems.append(f"{unknown[0]}: unknown field (known: {', '.join(SAMPLE_FIELDS)})")
    sid = record.get("id")
    if not isinstance(sid, (str, int)) or isinstance(sid, bool) or str(sid) == "":
        problems.append("id: missing or not a string")
    modality = record.get("modality")
    if modality not in MODALITIES:
        problems.append(f"modality: must be one of {', '.join(MODALITIES)}, got {modality!r}")
        return None
    request = _str_field(record, "request", problems)
    response = _str_field(record, "response", problems)
    request_label = record.get("request_label")
    response_label = record.get("response_label") or None
    if request_label not in LABELS:
        problems.append(f"request_label: must be safe or unsafe, got {request_label!r}")
    if response_label is not None and response_label not in LABELS:
        problems.append(f"response_label: must be safe or unsafe, got {response_label!r}")

    if modality == "image":
        if request is not None or response is not None:
            problems.append("modality: image samples carry no request or response text (use text_image)")
        if response_label is not None:
            problems.append("response_label: image samples have no response label")
    else:
        if request is None:
            problems.append(f"request: required for {modality} samples")
        if response is not None and response_label is None:
            problems.append("response_label: required when a response is given")
        if response is None and response_label is not None:
            problems.append("response_label: given without a response")

    image = _image(record.get("image"), modality, base, check_images, problems)

    group = _str_field(record, "group", problems)
    category = record.get("category") or None
    unsafe = request_label == "unsafe" or response_label == "unsafe"
    node_id = None
    if category is not None:
        node = taxonomy.find(str(category))
        if node is None:
            problems.append(f"category: {category!r} is not an ID or name in taxonomy {taxonomy.name!r}")
        elif not unsafe:
            problems.append(f"category: given ({category!r}) but every label is safe")
        else:
            node_id = node.key or node.id
    elif unsafe:
        problems.append("category: required when a label is unsafe")
    if problems:
        return None
    return Sample(str(sid), modality, request, response, image, request_label, response_label, node_id, group)


def _image(value: Any, modality: str, base: Path, check: bool, problems: list[str]) -> Any:
    if isinstance(value, dict):  # a datasets Image cell: {"bytes": ..., "path": ...}
        value = value.get("bytes") or value.get("path")
    if modality == "text":
        if value is not None:
            problems.append("image: text samples carry no image (use text_image)")
        return None
    if value is None or value == "":
        problems.append(f"image: required for {modality} samples")
        return None
    if isinstance(value, (bytes, bytearray)):
        source: Any = io.BytesIO(value)
        result: Any = bytes(value)
    elif isinstance(value, str):
        p = Path(value)
        p = p if p.is_absolute() else (base / p)
        if not p.is_file():
            problems.append(f"image: file not found: {p}")
            return None
        source = result = str(p.resolve())
    else:
        problems.append(f"image: must be a path or bytes, got {type(value).__name__}")
        return None
    if check:
        try:
            with PILImage.open(source) as im:
                im.verify()
        except Exception as exc:
            problems.append(f"image: unreadable ({type(exc).__name__}: {exc})")
            return None
    return result
