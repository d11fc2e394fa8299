"""Output directories the project writes: make one, claim it, and replace it without losing user data.

Every directory a command creates gets a marker file, ``.proguard-output.json``, naming its kind
(``tasks``, ``bench``, ``policy-init``...). ``--overwrite`` and every other removal go through
``replace_output_dir``, which deletes only a directory that carries the marker of the same kind, and
never one that holds (or is) an input of the run, the home folder or the working directory: a
typo in ``--out`` cannot delete a home folder or the samples being read. A new output is written
into a temporary sibling first and renamed into place, so a failure leaves the old one intact.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from proguard.errors import UsageError

MARKER = ".proguard-output.json"
"""The file in every directory the project wrote; ``{"kind": ..., "created": ...}``."""


class OutputError(UsageError):
    """An output path that cannot be used or replaced; the message names it and says what to do."""


def write_marker(path: str | Path, kind: str) -> Path:
    """Mark ``path`` (a directory) as a ``kind`` output of this project."""
    marker = Path(path) / MARKER
    created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    marker.write_text(json.dumps({"kind": kind, "created": created}) + "\n", encoding="utf-8")
    return marker


def output_kind(path: str | Path) -> str | None:
    """The kind of output ``path`` was written as, or ``None`` when it carries no (readable) marker."""
    marker = Path(path) / MARKER
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    kind = data.get("kind") if isinstance(data, dict) else None
    return kind if isinstance(kind, str) else None


def ensure_output_dir(path: str | Path, kind: str) -> Path:
    """Create ``path`` (and parents) if needed and mark it as ``kind``; an existing file is an error.

    An existing directory is kept as it is (a resumable output such as the bench cache); it is
    marked only when it is new or empty, so a marker is never added to a folder the user owns.
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OutputError(f"{p}: exists and is a file, not a directory; choose another output path")
    fresh = not p.exists() or not any(p.iterdir())
    try:
        p.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise OutputError(f"{p}: a parent of this path is a file; choose another output path") from None
    if fresh:
        write_marker(p, kind)
    return p


def check_output_dir(
    path: str | Path,
    kind: str,
    *,
    overwrite: bool = False,
    protect: Iterable[str | Path] = (),
    legacy_markers: Iterable[str] = (),
) -> None:
    """Raise ``OutputError`` unless a new ``kind`` output may be written at ``path``; changes nothing.

    Allowed: a path that does not exist, an empty directory, or (with ``overwrite``) a directory
    marked as ``kind`` (or holding one of ``legacy_markers``, files older versions wrote) that is
    not and does not contain any ``protect`` path, the home folder or the working directory.
    """
    p = Path(path)
    if not p.exists() and not p.is_symlink():
        return
    if not p.is_dir() or p.is_symlink():
        raise OutputError(f"{p}: exists and is not a directory; choose another output path")
    if not any(p.iterdir()):
        return
    if not overwrite:
        raise OutputError(f"{p} exists and is not empty (use --overwrite to replace it)")
    found = output_kind(p)
    if found is None and any((p / name).is_file() for name in legacy_markers):
        found = kind
    if found != kind:
        what = f"a {found!r} output" if found else f"not written by proguard (no {MARKER})"
        raise OutputError(f"{p}: refusing to overwrite: it is {what}, not a {kind!r} output; remove it yourself "
                          "or choose another output path")
    target = p.resolve()
    for item in [*protect, Path.home(), Path.cwd()]:
        q = Path(item).resolve()
        if q == target or target in q.parents:
            raise OutputError(f"{p}: refusing to overwrite: it holds {q} (an input of this run, the home folder "
                              "or the working directory)")


def replace_output_dir(
    path: str | Path,
    kind: str,
    write: Callable[[Path], None],
    *,
    overwrite: bool = False,
    protect: Iterable[str | Path] = (),
    legacy_markers: Iterable[str] = (),
) -> Path:
    """Write a new ``kind`` output at ``path`` with ``write(scratch_dir)``, then swap it into place.

    ``check_output_dir`` decides first whether ``path`` may be (over)written; the old directory is
    removed only after the new one is complete, and only if it passes that check.
    """
    protect = list(protect)
    legacy_markers = list(legacy_markers)
    check_output_dir(path, kind, overwrite=overwrite, protect=protect, legacy_markers=legacy_markers)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{p.name}.", dir=p.parent))
    try:
        write(scratch)
        write_marker(scratch, kind)
        if p.exists():
            # checked again: the directory may have changed while ``write`` ran
            check_output_dir(p, kind, overwrite=True, protect=protect, legacy_markers=legacy_markers)
            shutil.rmtree(p) if any(p.iterdir()) else p.rmdir()
        os.rename(scratch, p)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)  # scratch is our own temporary directory
    return p
