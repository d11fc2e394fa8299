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

import contextlib
import csv
import gzip
import io
import json
import lzma
import zlib
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
    """A benchmark's files (or its media) are not under the data root; the message names what to put where."""


FIELD_LIMIT = 16 * 1024 * 1024
"""Largest CSV field read (characters): well above any release's longest text (the csv module's own
default, 131,072, is below some real conversations), small enough to stop a runaway unquoted field."""


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
    source_parents: tuple[str | None, ...] = ()
    """The release's parent label of each ``source_labels`` entry where it has one (VLGuard's
    ``harmful_category``), else ``None``: ``proguard suites map`` ranks ``"parent: label"``."""

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
    label_parents: ClassVar[dict[str, str]] = {}
    """Label -> its broader label in the release (OpenAI Moderation's ``S3`` -> ``S``): the narrower one is
    the more specific category (``CategoryMap.targets(..., rule="most_specific")``)."""
    protocols: ClassVar[dict[str, str]] = {}
    """Named row sets and label rules (name -> what it is); the first is the default."""
    protocol_files: ClassVar[dict[str, tuple[str, ...]]] = {}
    """Per protocol, the upstream files it reads when they differ from ``files``."""

    def __init__(self, protocol: str | None = None) -> None:
        if protocol is not None and protocol not in self.protocols:
            known = ", ".join(self.protocols) or "none (this benchmark has one row set)"
            raise SuiteDataError(f"{self.name}: unknown protocol {protocol!r}; protocols: {known}")
        self.protocol: str | None = protocol or next(iter(self.protocols), None)

    def expected_files(self) -> tuple[str, ...]:
        """The upstream names (glob patterns allowed, relative to the folder) the protocol reads."""
        return self.protocol_files.get(self.protocol or "", self.files)

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
        for name in self.expected_files():
            if any(ch in name for ch in "*?["):
                found = sorted(p for p in folder.glob(name) if p.is_file())
                if found:
                    return found[0]
                continue
            p = folder / name
            if p.exists():
                return p
        wanted = " or ".join(str(folder / n) if n else f"the release's files under {folder}/"
                             for n in self.expected_files())
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
        try:
            samples = _collect(self.read(path), skipped)
        except SuiteDataError:
            raise
        except Exception as exc:  # a reader error no reader caught: still one line, never a traceback
            raise SuiteDataError(f"{path}: cannot be read ({type(exc).__name__}: {_first_line(exc)}); "
                                 f"is this the file as released? Download it again") from None
        if not samples and not skipped:
            raise SuiteDataError(f"{path}: no rows (a header-only or empty file); put the release's file there "
                                 f"as published")
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
def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def _what_went_wrong(path: Path, exc: BaseException) -> str | None:
    """``what; what to do`` for an error reading a release file, or ``None`` if it is not a reading error."""
    import pyarrow as pa

    kind = "xz" if path.suffix == ".xz" else "gzip" if path.suffix == ".gz" else None
    if isinstance(exc, UnicodeDecodeError):
        return (f"not UTF-8 text ({exc.reason} at byte {exc.start}); re-save it as UTF-8, e.g. "
                f"`iconv -f LATIN1 -t UTF-8` (the releases are UTF-8: this copy was re-encoded)")
    if isinstance(exc, csv.Error):
        if "field larger than field limit" in str(exc):
            return (f"a field longer than {FIELD_LIMIT:,} characters (an unclosed quote?); "
                    f"check the quoting of that row, or download the file again")
        if "NUL" in str(exc):
            return "NUL bytes in the text (UTF-16 or a binary file?); re-save it as UTF-8 CSV"
        return f"malformed CSV ({_first_line(exc)}); download the file again"
    if isinstance(exc, EOFError):
        return f"the {kind or 'compressed'} file ends early (truncated download); download it again"
    if isinstance(exc, (lzma.LZMAError, zlib.error, gzip.BadGzipFile)) or (isinstance(exc, OSError) and kind):
        return f"not a valid {kind or 'compressed'} file ({_first_line(exc)}); download it again"
    if isinstance(exc, RecursionError):
        return "JSON nested too deeply to be a release record; download the file again"
    if isinstance(exc, pa.ArrowException):
        return f"not a readable parquet file ({_first_line(exc)}); download it again"
    if isinstance(exc, ValueError) and "integer string conversion" in str(exc):
        return "a JSON number too long to be a release value; download the file again"
    return None


@contextlib.contextmanager
def reading(path: Path, where: list[int]):
    """Turn an error while reading ``path`` into one ``SuiteDataError`` line naming the file, the row
    (``where[0]``: the last row read, 0 before the first) and what to do; other errors pass through."""
    import pyarrow as pa

    try:
        yield
    except SuiteDataError:
        raise
    except (UnicodeDecodeError, csv.Error, EOFError, OSError, lzma.LZMAError, zlib.error, RecursionError,
            ValueError, pa.ArrowException) as exc:
        what = _what_went_wrong(path, exc)
        if what is None:
            raise
        # Text is decoded in blocks, so a decoding error names the row being read when it surfaced.
        raise SuiteDataError(f"{path}: row {where[0] + 1}: {what}") from None


def open_text(path: Path) -> io.TextIOBase:
    """A text handle on a plain, ``.gz`` or ``.xz`` file (BeaverTails ships both compressions).

    ``newline=""`` so the csv module sees CRLF and newlines inside quoted fields as written. A UTF-16
    byte-order mark is refused with the fix (the releases are UTF-8).
    """
    if path.suffix == ".gz":
        raw: io.BufferedIOBase = gzip.open(path, "rb")  # type: ignore[assignment]
    elif path.suffix == ".xz":
        raw = lzma.open(path, "rb")  # type: ignore[assignment]
    else:
        raw = path.open("rb")
    with reading(path, [0]):
        head = raw.peek(2)[:2] if hasattr(raw, "peek") else b""
    if head in (b"\xff\xfe", b"\xfe\xff"):
        raw.close()
        raise SuiteDataError(f"{path}: row 1: UTF-16 text; re-save it as UTF-8, e.g. "
                             f"`iconv -f UTF-16 -t UTF-8` (the releases are UTF-8)")
    return io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")


@contextlib.contextmanager
def _field_limit(limit: int):
    old = csv.field_size_limit()
    csv.field_size_limit(limit)
    try:
        yield
    finally:
        csv.field_size_limit(old)


def read_csv(path: Path, required: tuple[str | tuple[str, ...], ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """``(row number, record)`` per CSV row (row 1 is the first data row); missing columns are an error.

    A ``required`` entry may be a tuple of alternatives (``("prompts_final", "prompt")``: either
    release's name). Encoding, quoting and compression errors are one line naming the row.
    """
    where = [0]
    with reading(path, where), open_text(path) as fh, _field_limit(FIELD_LIMIT):
        reader = csv.DictReader(fh)
        names = reader.fieldnames or []
        if any("\x00" in n for n in names):
            raise SuiteDataError(f"{path}: row 1: NUL bytes in the header (UTF-16 without a byte-order mark?); "
                                 f"re-save it as UTF-8, e.g. `iconv -f UTF-16LE -t UTF-8`")
        missing = [" or ".join(c) if isinstance(c, tuple) else c for c in required
                   if not (set(c) & set(names) if isinstance(c, tuple) else c in names)]
        if missing:
            raise SuiteDataError(
                f"{path}: missing column(s) {', '.join(missing)} (has: {', '.join(names)}); "
                f"is this the file as released?"
            )
        for i, rec in enumerate(reader, start=1):
            where[0] = i - 1
            yield i, rec
            where[0] = i


def _loads(line: str, path: Path, i: int) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise SuiteDataError(f"{path}: row {i}: not valid JSON: {exc.msg}; download the file again") from None
    except RecursionError:
        raise SuiteDataError(f"{path}: row {i}: JSON nested too deeply to be a release record; "
                             f"download the file again") from None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise SuiteDataError(f"{path}: row {i}: a JSON value out of range ({_first_line(exc)}); "
                             f"download the file again") from None


def read_json_lines(path: Path) -> Iterator[tuple[int, dict]]:
    """Records of a JSON-lines file (optionally compressed); blank lines are skipped."""
    where = [0]
    with reading(path, where), open_text(path) as fh:
        for i, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            rec = _loads(line, path, i)
            if not isinstance(rec, dict):
                raise SuiteDataError(f"{path}: row {i}: expected a JSON object, got {type(rec).__name__}")
            where[0] = i - 1
            yield i, rec
            where[0] = i


def read_json_records(path: Path) -> Iterator[tuple[int, dict]]:
    """Records of a JSONL file (optionally compressed) or of a JSON file holding a list of objects."""
    name = path.name.removesuffix(".gz").removesuffix(".xz")
    if name.endswith(".jsonl"):
        yield from read_json_lines(path)
        return
    with reading(path, [0]), open_text(path) as fh:
        text_ = fh.read()
    data = _loads(text_, path, 1) if text_.strip() else []
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
    undecoded (``{"bytes", "path"}``). A file that is not parquet (cut short, another format) is one line."""
    if path.is_dir():
        import datasets

        from proguard.inputs import check_dataset_dir

        check_dataset_dir(path, SuiteDataError)
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

    from proguard.inputs import check_parquet

    check_parquet(path, SuiteDataError)
    where = [0]
    with reading(path, where):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
            for rec in batch.to_pylist():
                where[0] += 1
                yield where[0], rec


def read_rows(path: Path, required: tuple = ()) -> Iterator[tuple[int, dict]]:
    """Rows of a release file by its type: ``.csv``, ``.json``/``.jsonl`` (optionally ``.gz``/``.xz``), ``.parquet``."""
    name = path.name.removesuffix(".gz").removesuffix(".xz")
    if name.endswith(".csv"):
        yield from read_csv(path, required)
    elif name.endswith((".json", ".jsonl")):
        yield from read_json_records(path)
    else:
        yield from read_table(path)


def column(rec: dict, names: tuple[str, ...], where: str) -> str:
    """The first of ``names`` the record has (releases name one column differently); an error otherwise."""
    for n in names:
        if n in rec:
            return n
    raise SuiteDataError(f"{where}: {' or '.join(names)}: missing (fields: {', '.join(map(str, rec))})")


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


def image_cell(value: Any, base: Path | None, where: str, key: str = "image", *, fix: str | None = None) -> Any:
    """An image field (a ``{"bytes", "path"}`` cell, bytes, or a path relative to ``base``) as bytes or
    an absolute path. A path that does not exist is ``MissingData`` when the adapter says how to get the
    media (``fix``: the benchmark is then listed as missing and the rest of a suite runs), else an error."""
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
            if fix:
                raise MissingData(f"{where}: {key}: image file not found: {p}; {fix}")
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
