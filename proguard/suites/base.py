"""What a benchmark adapter is: the ``Adapter`` base class, the ``BenchSample`` it yields, and the
readers of upstream release files (CSV, JSON/JSONL, gzip/xz, parquet, a saved ``datasets`` directory).

An adapter reads one public benchmark **as released** (its own file names, columns and quirks) into
``BenchSample`` rows: the project's sample schema (``proguard.data``) plus ``group`` (same prompt =
same group) and ``source_labels``, the benchmark's own category labels, which the adapter's category
map (``<adapter>.yaml`` next to its module, see ``proguard.suites.catmap``) turns into taxonomy IDs.

A label the benchmark does not give is ``None`` ("not labelled"), never a guess: XSTest labels no
responses, BeaverTails labels no prompts, an OpenAI Moderation row with a missing flag and no flag
set is unknown, not safe. Such rows are kept and counted; a level is scored only where it is
labelled. Every problem is a ``SuiteDataError`` naming the file, the row and the field.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import lzma
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from proguard.errors import UsageError

LEVELS = ("prompt", "response", "image")
"""What a benchmark labels: the user's request (text or text+image), the assistant's response, an image alone."""


class SuiteDataError(UsageError):
    """A benchmark's files are missing or do not match its published format; the message says which and where."""


class MissingData(SuiteDataError):
    """A benchmark's files are not under the data root; the message names what to put where."""


@dataclass(frozen=True)
class BenchSample:
    """One benchmark item in the project's sample schema, plus its group and the benchmark's own labels.

    ``request_label`` / ``response_label`` are ``"safe"``, ``"unsafe"`` or ``None`` when the benchmark
    does not label that level. ``image`` is an absolute path or the image bytes.
    """

    id: str
    modality: str
    request: str | None
    response: str | None
    request_label: str | None
    response_label: str | None
    group: str
    source_labels: tuple[str, ...] = ()
    image: Any = None

    @property
    def unsafe(self) -> bool:
        """Whether a labelled level is unsafe."""
        return self.request_label == "unsafe" or self.response_label == "unsafe"


@dataclass(frozen=True)
class LoadResult:
    """An adapter's samples and what it left out, with the reason per row (never dropped silently)."""

    samples: list[BenchSample]
    files: list[str]
    skipped: dict[str, int] = field(default_factory=dict)


class Adapter:
    """Base class of a benchmark adapter; a subclass sets the class attributes and ``read``.

    ``files`` are the upstream file names the adapter looks for under ``<data_root>/<folder>/`` (the
    first that exists is read; ``docs/suites.md`` lists them). ``hub_id`` (with ``hub_config`` and
    ``hub_split``) is what ``--allow-download`` loads with ``datasets.load_dataset``.
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    folder: ClassVar[str] = ""
    files: ClassVar[tuple[str, ...]] = ()
    hub_id: ClassVar[str | None] = None
    hub_config: ClassVar[str | None] = None
    hub_split: ClassVar[str | None] = "test"
    published: ClassVar[str] = ""  # where the release lives (URL) and its licence
    levels: ClassVar[tuple[str, ...]] = ("prompt",)
    categories: ClassVar[bool] = False  # whether it labels categories (else binary only)
    modality: ClassVar[str] = "text"
    map_name: ClassVar[str | None] = None  # the category map's file stem, if not ``name``

    def map_path(self) -> Path | None:
        """The category map next to the adapter's module (``<map_name or name>.yaml``), if there is one."""
        import inspect

        p = Path(inspect.getfile(type(self))).with_name(f"{self.map_name or self.name}.yaml")
        return p if p.is_file() else None

    # ---- what a subclass writes -------------------------------------------------------------
    def read(self, path: Path) -> Iterator[BenchSample]:
        """Samples from one upstream file or directory (``path``)."""
        raise NotImplementedError

    def read_hub(self, dataset: Any, origin: str) -> Iterator[BenchSample]:
        """Samples from a ``datasets.Dataset`` loaded from the hub (default: its rows as records)."""
        for i, row in enumerate(dataset, start=1):
            yield from self.from_record(dict(row), i, origin, base=None)

    def from_record(self, rec: dict, row: int, origin: str, base: Path | None) -> Iterator[BenchSample]:
        """One upstream record (a dict of its published fields) as zero or more samples."""
        raise NotImplementedError

    # ---- shared machinery -------------------------------------------------------------------
    def locate(self, data_root: str | Path) -> Path:
        """The first expected upstream file present under ``<data_root>/<folder>``; ``MissingData`` otherwise."""
        folder = Path(data_root) / self.folder
        for name in self.files:
            p = folder / name
            if p.exists():
                return p
        wanted = " or ".join(str(folder / n) if n else f"the release's files under {folder}/" for n in self.files)
        hub = f"; or pass --allow-download to load {self.hub_id} with datasets" if self.hub_id else ""
        raise MissingData(f"{self.name}: no data: put {wanted} there as released ({self.published}){hub}")

    def load(self, data_root: str | Path | None, *, allow_download: bool = False) -> LoadResult:
        """Every sample of the benchmark, from ``data_root`` or (allowed, files absent) the hub."""
        skipped: dict[str, int] = {}
        try:
            if data_root is None:
                raise MissingData(f"{self.name}: no --data-root given")
            path = self.locate(data_root)
        except MissingData:
            if not (allow_download and self.hub_id):
                raise
            return self._load_hub(skipped)
        samples = _collect(self.read(path), skipped)
        return LoadResult(samples, [str(path)], skipped)

    def _load_hub(self, skipped: dict[str, int]) -> LoadResult:
        try:
            import datasets
        except ImportError as exc:  # pragma: no cover - datasets is a core dependency
            raise SuiteDataError("--allow-download needs the datasets package: pip install datasets") from exc
        ds = datasets.load_dataset(self.hub_id, self.hub_config, split=self.hub_split)
        origin = f"hf://{self.hub_id}" + (f"[{self.hub_config}]" if self.hub_config else "")
        return LoadResult(_collect(self.read_hub(ds, origin), skipped), [origin], skipped)


class Skip:
    """Yielded instead of a sample for a row that is left out; ``reason`` is counted in ``skipped``."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


def _collect(samples: Iterator[BenchSample | Skip], skipped: dict[str, int]) -> list[BenchSample]:
    out: list[BenchSample] = []
    seen: set[str] = set()
    for s in samples:
        if isinstance(s, Skip):
            reason = str(s)
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        if s.id in seen:
            raise SuiteDataError(f"duplicate sample id {s.id!r} (two upstream rows with the same id)")
        seen.add(s.id)
        out.append(s)
    return out


# ---------------------------------------------------------------------------------------------
# Readers of upstream files
# ---------------------------------------------------------------------------------------------
def open_text(path: Path) -> io.TextIOBase:
    """A text handle on a plain, ``.gz`` or ``.xz`` file (BeaverTails ships both compressions).

    ``newline=""`` so the csv module sees CRLF and newlines inside quoted fields as written.
    """
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    if path.suffix == ".xz":
        return io.TextIOWrapper(lzma.open(path, "rb"), encoding="utf-8", newline="")
    return path.open(encoding="utf-8-sig", newline="")


def read_csv(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """``(row number, record)`` per CSV row (row 1 is the first data row); missing columns are an error."""
    with open_text(path) as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise SuiteDataError(
                f"{path}: missing column(s) {', '.join(missing)} (has: {', '.join(reader.fieldnames or [])}); "
                f"is this the file as released?"
            )
        for i, rec in enumerate(reader, start=1):
            yield i, rec


def read_json_records(path: Path) -> Iterator[tuple[int, dict]]:
    """Records of a JSONL file (optionally compressed) or of a JSON file holding a list of objects."""
    name = path.name.removesuffix(".gz").removesuffix(".xz")
    with open_text(path) as fh:
        if name.endswith(".jsonl"):
            for i, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise SuiteDataError(f"{path}: row {i}: not valid JSON: {exc.msg}") from None
                if not isinstance(rec, dict):
                    raise SuiteDataError(f"{path}: row {i}: expected a JSON object, got {type(rec).__name__}")
                yield i, rec
            return
        try:
            data = json.load(fh)
        except json.JSONDecodeError as exc:
            raise SuiteDataError(f"{path}: not valid JSON: {exc.msg} (line {exc.lineno})") from None
    if isinstance(data, dict):  # some releases wrap the list: {"data": [...]}
        lists = [v for v in data.values() if isinstance(v, list)]
        data = lists[0] if len(lists) == 1 else data
    if not isinstance(data, list):
        raise SuiteDataError(f"{path}: expected a JSON list of records, got {type(data).__name__}")
    for i, rec in enumerate(data, start=1):
        if not isinstance(rec, dict):
            raise SuiteDataError(f"{path}: record {i}: expected a JSON object, got {type(rec).__name__}")
        yield i, rec


def read_table(path: Path) -> Iterator[tuple[int, dict]]:
    """Rows of a parquet file or a saved ``datasets`` directory, streamed batch by batch; image cells stay
    undecoded (``{"bytes", "path"}``)."""
    if path.is_dir():
        import datasets

        ds = datasets.load_from_disk(str(path))
        if isinstance(ds, datasets.DatasetDict):
            raise SuiteDataError(f"{path}: holds several splits ({', '.join(ds)}); point at the test split")
        for col, feat in ds.features.items():
            if isinstance(feat, datasets.Image):
                ds = ds.cast_column(col, datasets.Image(decode=False))
        for i, row in enumerate(ds, start=1):
            yield i, dict(row)
        return
    import pyarrow.parquet as pq

    i = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
        for rec in batch.to_pylist():
            i += 1
            yield i, rec


def files_in(path: Path, pattern: str) -> list[Path]:
    """``path`` itself when it is a file, else its files matching ``pattern`` (sorted), recursively."""
    if path.is_file():
        return [path]
    found = sorted(p for p in path.rglob(pattern) if p.is_file())
    if not found:
        raise MissingData(f"{path}: no {pattern} files in it; put the release's files there as published")
    return found


def need(rec: dict, key: str, where: str) -> Any:
    """``rec[key]``; a missing key is an error naming where."""
    if key not in rec:
        raise SuiteDataError(f"{where}: {key}: missing (fields: {', '.join(map(str, rec))})")
    return rec[key]


def text(rec: dict, key: str, where: str, *, optional: bool = False) -> str | None:
    """A non-empty string field (``None`` for an optional empty/absent one)."""
    value = rec.get(key) if optional else need(rec, key, where)
    if value is None or (isinstance(value, float) and value != value) or value == "":  # NaN from pandas exports
        if optional:
            return None
        raise SuiteDataError(f"{where}: {key}: empty")
    if not isinstance(value, str):
        raise SuiteDataError(f"{where}: {key}: expected a string, got {type(value).__name__}")
    return value


def flag(value: Any, where: str, key: str) -> bool | None:
    """A 0/1, true/false, "0"/"1", "True"/"False" or "yes"/"no" field as a bool; ``None`` when empty."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("0", "1", "true", "false", "yes", "no"):
        return value.strip().lower() in ("1", "true", "yes")
    raise SuiteDataError(f"{where}: {key}: expected 0/1 or true/false, got {value!r}")


def image_cell(value: Any, base: Path | None, where: str, key: str = "image") -> Any:
    """An image field (a ``{"bytes", "path"}`` cell, bytes, or a path relative to ``base``) as bytes or
    an absolute path; a path that does not exist is an error."""
    if isinstance(value, dict):
        value = value.get("bytes") or value.get("path")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if hasattr(value, "save"):  # a decoded PIL image from a hub dataset
        buf = io.BytesIO()
        value.save(buf, format="PNG")
        return buf.getvalue()
    if isinstance(value, str) and value:
        p = Path(value)
        if not p.is_absolute() and base is not None:
            p = base / p
        if not p.is_file():
            raise SuiteDataError(f"{where}: {key}: image file not found: {p}")
        return str(p.resolve())
    raise SuiteDataError(f"{where}: {key}: missing image")


def group_of(*parts: Any) -> str:
    """A stable group key: same prompt (and image) = same group, whatever the row's position."""
    import hashlib

    h = hashlib.sha1()
    for p in parts:
        h.update((" ".join(str(p).split()).lower() if isinstance(p, str) else repr(p)).encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()[:16]


def harm_label(value: Any, where: str, key: str, *, unsafe: tuple[str, ...] = ("harmful", "unsafe"),
               safe: tuple[str, ...] = ("unharmful", "safe")) -> str | None:
    """A string label such as ``harmful`` / ``unharmful`` as ``unsafe`` / ``safe``; ``None`` when absent."""
    if value is None or value == "" or (isinstance(value, float) and value != value):
        return None
    v = str(value).strip().lower()
    if v in unsafe:
        return "unsafe"
    if v in safe:
        return "safe"
    raise SuiteDataError(f"{where}: {key}: expected one of {', '.join(unsafe + safe)}, got {value!r}")
