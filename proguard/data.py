"""The labelled-sample schema and its loader: JSONL, parquet or a saved ``datasets`` directory.

A sample record (one JSON object per line)::

    id              str, unique
    modality        "text" | "image" | "text_image" | "video" | "text_video" | "audio" | "text_audio"
    request         str   (every modality but the media-only image, video, audio)
    response        str   (optional; absent for image, video, audio)
    image           str path (relative to the data file) or bytes (image, text_image)
    video           str path of a video file or of a directory of frame images, or a list of frame
                    image paths (video, text_video); decoded with PyAV (proguard.media)
    audio           str path of a wav / flac / ogg / mp3 file (audio, text_audio)
    request_label   "safe" | "unsafe"   (for media-only samples: the medium's label)
    response_label  "safe" | "unsafe"   (exactly when ``response`` is present)
    category        ID (``C8S1``) or name of a node in the taxonomy; required when any label is
                    unsafe, empty when all are safe
    group           str, optional: samples sharing a group (one prompt with several responses, say)
                    always land in the same split

Every problem is reported with the file, the row and the field; nothing is dropped silently.
Videos and audio are opened and checked against ``MediaLimits`` (duration, frames, sample rate)
at load time; a loaded set stores them as absolute paths (a video as its list of paths).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import datasets
import pyarrow as pa
import pyarrow.compute as pc

from proguard.errors import UsageError
from proguard.hints import problems_message
from proguard.media.decode import MediaError, MediaLimits, check_audio, check_image, check_video
from rewards.types import LABELS, MEDIA_ONLY, MEDIUM, MODALITIES
from taxonomy import Taxonomy

SAMPLE_FIELDS = (
    "id", "modality", "request", "response", "image", "video", "audio", "request_label", "response_label", "category",
    "group",
)
MEDIA_FIELDS = ("image", "video", "audio")
BUNDLED_SAMPLES = Path(__file__).parent / "assets" / "sample" / "samples.jsonl"


class DataError(UsageError):
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
    video: list[str] | None = None  # absolute paths: [file], [directory] or the frames
    audio: str | None = None  # absolute path
    group: str | None = None  # samples of one group (e.g. one prompt, several responses) never cross splits


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
            "video": datasets.Sequence(s),
            "audio": s,
            "request_label": s,
            "response_label": s,
            "category": s,
            "group": s,
        }
    )


def load_samples(
    path: str | Path,
    taxonomy: Taxonomy,
    *,
    check_images: bool = True,
    allow_outside_data: bool = False,
    media_limits: MediaLimits | None = None,
) -> datasets.Dataset:
    """Load and validate labelled samples; raises ``DataError`` naming file, row and field.

    Media paths must stay inside the data file's folder (after following links) unless
    ``allow_outside_data``: a shared data file must not be able to pull in any readable file of the
    machine it is loaded on. ``check_images`` also opens every video and audio file and checks it
    against ``media_limits``.
    """
    samples = list(
        validate_samples(
            read_records(path), taxonomy, origin=str(path), check_images=check_images,
            allow_outside_data=allow_outside_data, media_limits=media_limits,
        )
    )
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


MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays/objects accepted in an input row (a real row nests a few levels)."""
MAX_INT_DIGITS = 64
"""Longest integer literal accepted in an input row (Python's own limit is 4300 digits, then a ValueError)."""


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text)} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def loads_bounded(text: str) -> Any:
    """``json.loads`` with bounded nesting and integer size; ``ValueError`` saying what is wrong.

    Deep nesting would otherwise be a ``RecursionError`` (in the decoder, or later in code walking
    the value) and a huge integer a bare ``ValueError`` from ``int``.
    """
    depth = 0
    in_string = escaped = False
    # nesting counted before parsing (the decoder itself recurses), and only on lines that could be deep
    for ch in text if text.count("[") + text.count("{") > MAX_JSON_DEPTH else "":
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise ValueError(f"nested more than {MAX_JSON_DEPTH} levels deep")
        elif ch in "]}":
            depth -= 1
    try:
        return json.loads(text, parse_int=_bounded_int)
    except json.JSONDecodeError as exc:
        raise ValueError(exc.msg) from None
    except RecursionError:
        raise ValueError(f"nested more than {MAX_JSON_DEPTH} levels deep") from None


def read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` per non-blank line of a JSONL file; invalid JSON is a ``DataError`` naming the line.

    Nesting deeper than ``MAX_JSON_DEPTH`` and integers longer than ``MAX_INT_DIGITS`` are invalid too.
    """
    with path.open(encoding="utf-8") as fh:
        for i, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                value = loads_bounded(line)
            except ValueError as exc:
                raise DataError(f"{path}: row {i}: not valid JSON: {exc}") from None
            yield i, value


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
    records: Iterable[tuple[int, dict, Path]],
    taxonomy: Taxonomy,
    *,
    origin: str,
    check_images: bool = True,
    allow_outside_data: bool = False,
    media_limits: MediaLimits | None = None,
) -> Iterator[Sample]:
    """Validate records; collects every problem (up to a limit) before raising one ``DataError``."""
    errors: list[str] = []
    seen: dict[str, int] = {}
    out = []
    rules = _MediaRules(check_images, allow_outside_data, media_limits or MediaLimits())
    for row, record, base in records:
        problems: list[str] = []
        sample = _validate(record, taxonomy, base, rules, problems)
        sid = record.get("id")
        if isinstance(sid, (str, int)) and str(sid) in seen:
            problems.append(f"id: duplicate of row {seen[str(sid)]}")
        elif isinstance(sid, (str, int)):
            seen[str(sid)] = row
        errors.extend(f"{origin}: row {row}: {p}" for p in problems)
        if sample is not None and not problems:
            out.append(sample)
    if errors:
        raise DataError(problems_message(f"{len(errors)} problem(s) in sample data:", errors))
    if not out:
        raise DataError(f"{origin}: no samples")
    return iter(out)


# ---------------------------------------------------------------------------------------------
# The sample rules: one set, used by the loader (records), the task generator (a loaded dataset,
# row by row or with Arrow kernels) and the reward's ground-truth rows.
# ---------------------------------------------------------------------------------------------
def sample_problems(
    modality: Any,
    request_label: Any,
    response_label: Any,
    category: Any,
    *,
    has_request: bool | None = None,
    has_response: bool | None = None,
    has_image: bool | None = None,
    has_video: bool | None = None,
    has_audio: bool | None = None,
) -> list[str]:
    """Problems with one sample's modality, labels, category and which fields it carries, as ``field: what``.

    A ``has_*`` left ``None`` is not checked (the reward's ground truth carries no texts or images).
    ``category`` is checked for presence only: whether it names a node is the caller's business (a
    record may hold a name, a loaded dataset holds node IDs).
    """
    problems: list[str] = []
    if modality not in MODALITIES:
        return [f"modality: must be one of {', '.join(MODALITIES)}, got {modality!r}"]
    response_label = response_label or None
    if request_label not in LABELS:
        problems.append(f"request_label: must be safe or unsafe, got {request_label!r}")
    if response_label is not None and response_label not in LABELS:
        problems.append(f"response_label: must be safe or unsafe, got {response_label!r}")
    if modality in MEDIA_ONLY:
        if has_request or has_response:
            problems.append(f"modality: {modality} samples carry no request or response text (use text_{modality})")
        if response_label is not None:
            problems.append(f"response_label: {modality} samples have no response label")
    else:
        if has_request is False:
            problems.append(f"request: required for {modality} samples")
        if has_response is True and response_label is None:
            problems.append("response_label: required when a response is given")
        if has_response is False and response_label is not None:
            problems.append("response_label: given without a response")
    for medium, has in (("image", has_image), ("video", has_video), ("audio", has_audio)):
        if has is None:
            continue
        if MEDIUM[modality] == medium and not has:
            problems.append(f"{medium}: required for {modality} samples")
        elif MEDIUM[modality] != medium and has:
            hint = f" (use text_{medium})" if modality == "text" else f" (a sample carries one medium: use {medium} or text_{medium})"
            problems.append(f"{medium}: {modality} samples carry no {medium}{hint}")
    unsafe = request_label == "unsafe" or response_label == "unsafe"
    category = category or None
    if category is None and unsafe:
        problems.append("category: required when a label is unsafe")
    elif category is not None and not unsafe:
        problems.append(f"category: given ({category!r}) but every label is safe")
    return problems


def valid_sample_columns(
    table: pa.Table,
    has_image: pa.Array,
    node_ids: Sequence[str],
    has_video: pa.Array | None = None,
    has_audio: pa.Array | None = None,
) -> tuple[list[int], list[bool]] | None:
    """``sample_problems`` over a whole Arrow table at once, for the task generator's fast path.

    Returns each row's position in ``node_ids`` (-1: safe) and its unsafe flag when every row passes
    (unique non-empty IDs, the rules of ``sample_problems`` with ``has_image`` / ``has_video`` /
    ``has_audio`` (absent: no row carries that medium), a category that is
    one of ``node_ids``); ``None`` when any row fails, and the caller then names each problem with
    ``sample_problems`` row by row. Same rules, Arrow kernels: the row loop took 0.15 s on 87k samples.
    """
    n = table.num_rows
    col = {}
    for name in ("id", "modality", "request_label", "category", "request", "response", "response_label"):
        c = table.column(name) if name in table.column_names else pa.nulls(n, pa.string())
        if pa.types.is_null(c.type):
            c = c.cast(pa.string())
        if not pa.types.is_string(c.type):
            return None
        col[name] = c
    ids, category = col["id"], col["category"]
    if ids.null_count or pc.any(pc.equal(pc.utf8_length(ids), 0)).as_py() or pc.count_distinct(ids).as_py() != n:
        return None
    if pc.index_in(col["modality"], value_set=pa.array(MODALITIES)).null_count:
        return None
    none = pa.array([False] * n)
    for medium, has in (("image", has_image), ("video", has_video), ("audio", has_audio)):
        wants = pc.is_in(col["modality"], value_set=pa.array([m for m, v in MEDIUM.items() if v == medium]))
        if not pc.all(pc.equal(wants, none if has is None else has)).as_py():
            return None
    labels = pa.array(LABELS)
    if pc.index_in(col["request_label"], value_set=labels).null_count \
            or pc.index_in(col["response_label"], value_set=labels).null_count != col["response_label"].null_count:
        return None
    is_image = pc.is_in(col["modality"], value_set=pa.array(MEDIA_ONLY))  # no conversation text
    has_request, has_response = col["request"].is_valid(), col["response"].is_valid()
    if pc.any(pc.and_(is_image, pc.or_(pc.or_(has_request, has_response), col["response_label"].is_valid()))).as_py():
        return None
    not_image = pc.invert(is_image)
    if pc.any(pc.and_(not_image, pc.invert(has_request))).as_py() \
            or not pc.all(pc.equal(has_response, col["response_label"].is_valid())).as_py():
        return None
    unsafe = pc.or_(pc.equal(col["request_label"], "unsafe"), pc.fill_null(pc.equal(col["response_label"], "unsafe"), False))
    cat = pc.index_in(category, value_set=pa.array(list(node_ids)))
    if cat.null_count != category.null_count or not pc.all(pc.equal(category.is_valid(), unsafe)).as_py():
        return None
    return pc.fill_null(cat, -1).to_pylist(), unsafe.to_pylist()


def _str_field(record: dict, key: str, problems: list[str]) -> str | None:
    value = record.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        problems.append(f"{key}: must be a string, got {type(value).__name__}")
        return None
    return value


class _MediaRules(NamedTuple):
    """How media fields are checked: decode them, allow paths outside the data folder, the limits."""

    check: bool
    allow_outside: bool
    limits: MediaLimits


def _present(value: Any) -> bool:
    return value not in (None, "", {}, [])


def _validate(record: dict, taxonomy: Taxonomy, base: Path, media: _MediaRules, problems: list[str]) -> Sample | None:
    """One record as a ``Sample`` (``None`` with ``problems`` filled)."""
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
    group = _str_field(record, "group", problems)
    category = record.get("category") or None
    raw = {f: record.get(f) for f in MEDIA_FIELDS}
    problems.extend(
        sample_problems(
            modality, request_label, response_label, category, has_request=request is not None,
            has_response=response is not None, has_image=_present(raw["image"]), has_video=_present(raw["video"]),
            has_audio=_present(raw["audio"]),
        )
    )
    medium = MEDIUM[modality]
    # Only the modality's own medium is opened: a misplaced one is already a problem above.
    image = _image(raw["image"], base, media, problems) if medium == "image" and _present(raw["image"]) else None
    video = _video(raw["video"], base, media, problems) if medium == "video" and _present(raw["video"]) else None
    audio = _audio(raw["audio"], base, media, problems) if medium == "audio" and _present(raw["audio"]) else None

    node_id = None
    if category is not None:
        node = taxonomy.find(str(category))
        if node is None:
            problems.append(f"category: {category!r} is not an ID or name in taxonomy {taxonomy.name!r}")
        else:
            node_id = node.key or node.id
    if problems:
        return None
    return Sample(
        str(sid), modality, request, response, image, request_label, response_label, node_id, video, audio, group
    )


def _media_path(value: str, field: str, base: Path, media: _MediaRules, problems: list[str], *, dir_ok: bool = False):
    """A media path resolved against the data folder (and kept inside it unless allowed); ``None`` on a problem."""
    p = Path(value)
    p = p if p.is_absolute() else (base / p)
    if not (p.is_file() or (dir_ok and p.is_dir())):
        problems.append(f"{field}: file not found: {p}")
        return None
    resolved = p.resolve()
    if not media.allow_outside and not resolved.is_relative_to(base.resolve()):
        problems.append(
            f"{field}: {value!r} resolves to {resolved}, outside the data file's folder {base.resolve()}; "
            "move it there or allow it explicitly (--allow-outside-data / data.allow_outside_data)"
        )
        return None
    return resolved


def _image(value: Any, base: Path, media: _MediaRules, problems: list[str]) -> Any:
    if isinstance(value, dict):  # a datasets Image cell: {"bytes": ..., "path": ...}
        value = value.get("bytes") or value.get("path")
    if isinstance(value, (bytes, bytearray)):
        source: Any = io.BytesIO(value)
        result: Any = bytes(value)
    elif isinstance(value, str):
        resolved = _media_path(value, "image", base, media, problems)
        if resolved is None:
            return None
        source = result = str(resolved)
    else:
        problems.append(f"image: must be a path or bytes, got {type(value).__name__}")
        return None
    if media.check:
        try:  # the size from the header against media.max_pixels, then a verify: nothing decoded
            check_image(source, media.limits, "image")
        except MediaError as exc:
            problems.append(str(exc).replace("image: unreadable image", "image: unreadable", 1))
            return None
    return result


def _video(value: Any, base: Path, media: _MediaRules, problems: list[str]) -> list[str] | None:
    """A video file, a frame directory or a list of frame paths, as absolute paths (checked when asked)."""
    if isinstance(value, str):
        resolved = _media_path(value, "video", base, media, problems, dir_ok=True)
        paths = None if resolved is None else [resolved]
    elif isinstance(value, (list, tuple)) and all(isinstance(v, str) and v for v in value):
        found = [_media_path(v, "video", base, media, problems) for v in value]
        paths = None if any(f is None for f in found) else found
    else:
        problems.append(f"video: must be a path (file or frame directory) or a list of frame paths, got {type(value).__name__}")
        return None
    if paths is None:
        return None
    if media.check:
        try:
            # a frame folder's frames must resolve inside the data folder too (unless allowed)
            check_video(paths[0] if len(paths) == 1 and not _is_frame(paths[0]) else paths, media.limits,
                        confine=False if media.allow_outside else base)
        except MediaError as exc:
            problems.append(f"video: {exc}")
            return None
    return [str(p) for p in paths]


def _is_frame(path: Path) -> bool:
    from proguard.media.decode import FRAME_SUFFIXES

    return path.is_file() and path.suffix.lower() in FRAME_SUFFIXES


def _audio(value: Any, base: Path, media: _MediaRules, problems: list[str]) -> str | None:
    if not isinstance(value, str):
        problems.append(f"audio: must be a path to a wav, flac, ogg or mp3 file, got {type(value).__name__}")
        return None
    resolved = _media_path(value, "audio", base, media, problems)
    if resolved is None:
        return None
    if media.check:
        try:
            check_audio(resolved, media.limits)
        except MediaError as exc:
            problems.append(f"audio: {exc}")
            return None
    return str(resolved)
