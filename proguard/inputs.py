"""Preflight checks of input files, so a malformed one is a one-line error naming the file (and row)
instead of a decoder's or pyarrow's traceback.

``check_source(path)`` looks at what a loader is about to read: a JSONL file must be UTF-8 line by
line (the error names the row and the byte), a parquet file must have its footer, a directory must
be a saved ``datasets`` Dataset or DatasetDict. It reads the file once more than the loader does,
which costs little next to parsing and decoding images; nothing is changed.
"""

from __future__ import annotations

from pathlib import Path

from proguard.data import DataError

DATASET_DIR_FILES = ("dataset_dict.json", "state.json", "dataset_info.json")


def check_utf8(path: str | Path, error: type[Exception] = DataError) -> None:
    """Raise ``error`` naming the first line of ``path`` that is not UTF-8 text."""
    p = Path(path)
    with p.open("rb") as fh:
        for n, line in enumerate(fh, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                bad = line[exc.start]
                raise error(
                    f"{p}: row {n}: not UTF-8 text (byte 0x{bad:02x} at column {exc.start + 1}); save the file as UTF-8"
                ) from None


def check_parquet(path: str | Path, error: type[Exception] = DataError) -> None:
    """Raise ``error`` when ``path`` is not a readable parquet file (empty, cut short, another format)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = Path(path)
    try:
        pq.ParquetFile(str(p)).metadata  # noqa: B018 - reading the footer is the check
    except (pa.ArrowException, OSError) as exc:
        raise error(f"{p}: not a readable parquet file ({str(exc).splitlines()[0]})") from None


def check_dataset_dir(path: str | Path, error: type[Exception] = DataError) -> None:
    """Raise ``error`` when the directory ``path`` is not a ``save_to_disk`` Dataset or DatasetDict."""
    p = Path(path)
    if not any((p / name).is_file() for name in DATASET_DIR_FILES):
        raise error(
            f"{p}: a directory that is not a saved datasets Dataset or DatasetDict (no {' / '.join(DATASET_DIR_FILES)}); "
            "give a .jsonl or .parquet file, or a directory written by save_to_disk"
        )


def check_source(path: str | Path, error: type[Exception] = DataError) -> None:
    """The check that fits what ``path`` is; a path that does not exist is left to the loader's message."""
    p = Path(path)
    if p.is_dir():
        check_dataset_dir(p, error)
    elif p.suffix == ".parquet" and p.is_file():
        check_parquet(p, error)
    elif p.is_file():
        check_utf8(p, error)
