"""Outputs the project writes: claim a folder, lock it, replace a folder or a file without losing user data.

One rule for every writing command:

* **Folders.** Every directory a command creates gets a marker file, ``.proguard-output.json``,
  naming its kind (``tasks``, ``bench``, ``distill``, ``policy-init``...). ``claim_output_dir`` lets
  a command write into a folder only if it is new, empty, or carries the marker of the same kind (a
  resumable output such as the bench cache); a folder of the user's, or another command's, is
  refused with one line. ``--overwrite`` and every other removal go through ``replace_output_dir``,
  which deletes only a directory that carries the marker of the same kind, and never one that holds
  (or is) an input of the run, the home folder or the working directory. A new output is written
  into a temporary sibling first and renamed into place, so a failure leaves the old one intact.
* **Files.** ``write_output_file`` replaces an existing file only when ``--overwrite`` is given or
  the command recognises the file as one it wrote (``owned``: a look at its content), never when
  the file is one of the command's inputs; it writes a temporary sibling and renames it into place.
* **Locks.** ``output_lock`` holds ``.proguard-lock`` (pid, host, command, start time) in an output
  folder for the whole run, with ``flock``: a second run on the same folder fails at once with one
  line naming the holder; the kernel drops the lock when its process dies, so a lock file left by a
  killed run is taken over with a warning. A folder that is swapped as a whole (``replace_output_dir``)
  is locked beside it (``.<name>.proguard-lock``), since a lock inside would be swapped away.
  ``output_run`` is what a run uses: lock, claim, and remove again a folder it created if it fails
  before writing anything.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from proguard.errors import UsageError

MARKER = ".proguard-output.json"
"""The file in every directory the project wrote; ``{"kind": ..., "created": ...}``."""
LOCK = ".proguard-lock"
"""The lock file of an output folder in use: ``{"pid", "host", "command", "started"}``."""


class OutputError(UsageError):
    """An output path that cannot be used or replaced; the message names it and says what to do."""


class OutputLocked(OutputError):
    """Another run holds the output's lock; nothing was written. Exit 1: the input is fine, the folder is busy."""

    exit_code = 1


def _oserror(path: Path, exc: OSError, doing: str) -> OutputError:
    return OutputError(f"{path}: cannot {doing} ({exc.strerror or exc}); choose another output path")


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


def _contents(p: Path) -> list[Path]:
    """What a folder holds besides a lock file (a lock alone does not make a folder someone's)."""
    return [e for e in p.iterdir() if e.name != LOCK]


def check_not_input(path: str | Path, inputs: Iterable[str | Path], what: str = "output") -> None:
    """``OutputError`` when ``path`` is one of ``inputs`` (the same file or folder, by any name or link)."""
    p = Path(path)
    try:
        target = p.resolve()
    except (OSError, RuntimeError):
        return
    for item in inputs:
        if item is None:
            continue
        q = Path(item)
        try:
            same = q.resolve() == target or (p.exists() and q.exists() and os.path.samefile(p, q))
        except (OSError, RuntimeError):
            same = False
        if same:
            raise OutputError(f"{p}: the {what} is one of this command's inputs ({q}); choose another output path")


def ensure_output_dir(
    path: str | Path, kind: str, *, inputs: Iterable[str | Path] = (), legacy: Iterable[str] = ()
) -> Path:
    """Claim ``path`` as a ``kind`` output folder: create and mark it, or accept it as it is.

    Accepted: a new path, an empty folder (both get the marker), or a folder already marked as
    ``kind`` (a resumable output such as the bench cache). ``legacy``: glob patterns of what versions
    before the marker wrote (``checkpoint-*``); an unmarked folder holding one is taken as ``kind``
    and marked. Refused with one line: a file, a folder holding files proguard did not write or
    another kind's output, one of ``inputs``, a path that cannot be created (``/proc/...``, a parent
    that is a file).
    """
    p = Path(path)
    check_not_input(p, inputs)
    if p.is_symlink() and not p.is_dir():
        raise OutputError(f"{p}: a broken link; choose another output path")
    if p.exists():
        if not p.is_dir():
            raise OutputError(f"{p}: exists and is a file, not a directory; choose another output path")
        try:
            contents = _contents(p)
        except OSError as exc:
            raise _oserror(p, exc, "list the folder") from None
        found = output_kind(p)
        if found is None and contents and any(next(p.glob(pattern), None) is not None for pattern in legacy):
            contents = []  # written before markers existed: taken as ``kind`` and marked below
        if contents and found != kind:
            what = f"a {found!r} output" if found else f"a folder proguard did not write (no {MARKER})"
            raise OutputError(f"{p}: refusing to write into it: it is {what}, not a {kind!r} output; "
                              "choose a new or empty output folder")
        if found == kind:
            return p
    try:
        p.mkdir(parents=True, exist_ok=True)
        if output_kind(p) is None:
            write_marker(p, kind)
    except (FileExistsError, NotADirectoryError):
        raise OutputError(f"{p}: a parent of this path is a file; choose another output path") from None
    except OSError as exc:
        raise _oserror(p, exc, "create the output folder") from None
    return p


claim_output_dir = ensure_output_dir


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
    try:
        if not _contents(p):
            return
    except OSError as exc:
        raise _oserror(p, exc, "list the folder") from None
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
    command: str | None = None,
) -> Path:
    """Write a new ``kind`` output at ``path`` with ``write(scratch_dir)``, then swap it into place.

    ``check_output_dir`` decides first whether ``path`` may be (over)written; the old directory is
    removed only after the new one is complete, and only if it still passes that same check (with the
    caller's ``overwrite``: an output another process wrote meanwhile is not replaced without it). The
    whole write holds the lock beside ``path`` (``output_lock(beside=True)``).
    """
    protect = list(protect)
    legacy_markers = list(legacy_markers)
    p = Path(path)
    check_output_dir(p, kind, overwrite=overwrite, protect=protect, legacy_markers=legacy_markers)
    with output_lock(p, command=command or kind, beside=True):
        existed = p.exists()
        check_output_dir(p, kind, overwrite=overwrite, protect=protect, legacy_markers=legacy_markers)
        try:
            scratch = Path(tempfile.mkdtemp(prefix=f".{p.name}.", dir=p.parent))
        except OSError as exc:
            raise _oserror(p, exc, "write beside the output") from None
        try:
            write(scratch)
            write_marker(scratch, kind)
            if p.exists() or p.is_symlink():
                if not existed and not overwrite:
                    raise OutputError(f"{p}: appeared while this run was writing it (another run?); nothing replaced, "
                                      "rerun with another output path")
                # checked again: the directory may have changed while ``write`` ran
                check_output_dir(p, kind, overwrite=overwrite, protect=protect, legacy_markers=legacy_markers)
                shutil.rmtree(p) if _contents(p) or (p / LOCK).exists() else p.rmdir()
            os.rename(scratch, p)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)  # scratch is our own temporary directory
    return p


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------
def check_output_file(
    path: str | Path,
    *,
    overwrite: bool = False,
    inputs: Iterable[str | Path] = (),
    owned: Callable[[Path], bool] | None = None,
    flag: str = "--out",
) -> Path:
    """Raise ``OutputError`` unless a file may be written at ``path``; changes nothing.

    Allowed: a new path in an existing or creatable folder; an existing regular file when
    ``overwrite`` is set or ``owned(path)`` recognises it as one this command wrote. Never one of
    ``inputs``, a folder, or a special file (``/proc/...``, a device).
    """
    p = Path(path)
    check_not_input(p, inputs, what=f"{flag} file")
    if p.is_dir():
        raise OutputError(f"{flag} {p}: is a directory; give a file path")
    if p.exists() or p.is_symlink():
        if not p.is_file():
            raise OutputError(f"{flag} {p}: exists and is not a regular file; choose another output path")
        mine = False
        if owned is not None:
            try:
                mine = bool(owned(p))
            except Exception:  # a sniff of a foreign file must not crash: it is simply not ours
                mine = False
        if not (overwrite or mine):
            raise OutputError(f"{flag} {p}: exists and was not written by this command; pass --overwrite to "
                              "replace it, or choose another path")
    parent = p.parent
    probe = parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise OutputError(f"{flag} {p}: {probe} is not a folder; choose another output path")
    if str(p.resolve()).startswith(("/proc/", "/sys/", "/dev/")):
        raise OutputError(f"{flag} {p}: not a place for output files (/proc, /sys, /dev); choose another path")
    return p


def write_output_file(
    path: str | Path,
    write: Callable[[Path], None],
    *,
    overwrite: bool = False,
    inputs: Iterable[str | Path] = (),
    owned: Callable[[Path], bool] | None = None,
    flag: str = "--out",
) -> Path:
    """``check_output_file``, then ``write(temp_path)`` (same suffix) and rename it onto ``path``.

    A failed write leaves the old file (if any) as it was; an ``OSError`` becomes one line naming the path.
    """
    p = check_output_file(path, overwrite=overwrite, inputs=inputs, owned=owned, flag=flag)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{p.stem}.", suffix=p.suffix, dir=p.parent)
        os.close(fd)
    except OSError as exc:
        raise _oserror(p, exc, "write the output file") from None
    tmp = Path(tmp_name)
    try:
        write(tmp)
        if p.exists() and not (overwrite or (owned is not None and owned(p))):  # appeared meanwhile
            raise OutputError(f"{flag} {p}: appeared while this run was writing it; nothing replaced")
        os.replace(tmp, p)
    except OSError as exc:
        raise _oserror(p, exc, "write the output file") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return p


def jsonl_with_keys(*keys: str) -> Callable[[Path], bool]:
    """An ``owned`` check: the file's first line is a JSON object with all of ``keys`` (reads at most 1 MB)."""

    def owned(path: Path) -> bool:
        with path.open("rb") as fh:
            line = fh.readline(1_000_000)
        try:
            record = json.loads(line)
        except ValueError:
            return False
        return isinstance(record, dict) and all(k in record for k in keys)

    return owned


# ---------------------------------------------------------------------------------------------
# Locks
# ---------------------------------------------------------------------------------------------
_held: dict[str, tuple[int, int]] = {}  # lock file -> (thread id, depth): nesting in one thread is allowed
_held_guard = threading.Lock()


def lock_path(path: str | Path, *, beside: bool = False) -> Path:
    """Where the lock of output ``path`` lives: inside it, or beside it for a folder swapped as a whole."""
    p = Path(path)
    return p.parent / f".{p.name}{LOCK}" if beside else p / LOCK


def lock_holder(path: str | Path, *, beside: bool = False) -> dict | None:
    """What the lock file of ``path`` says (pid, host, command, started), or ``None``."""
    return _read_lock(lock_path(path, beside=beside))


def _read_lock(lock: Path) -> dict | None:
    try:
        data = json.loads(lock.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _describe(holder: dict | None) -> str:
    if not holder:
        return "another process"
    return (f"{holder.get('command', 'proguard')} (pid {holder.get('pid', '?')} on {holder.get('host', '?')}, "
            f"since {holder.get('started', '?')})")


@contextlib.contextmanager
def output_lock(path: str | Path, *, command: str, beside: bool = False) -> Iterator[Path]:
    """Hold the lock of output folder ``path`` for the ``with`` block; ``OutputLocked`` if another run holds it.

    The folder (or, with ``beside``, its parent) is created if needed. Nested use in the same thread
    is allowed (a command and the library function it calls); another thread or process is refused.
    """
    lock = lock_path(path, beside=beside)
    key = os.path.abspath(lock)
    me = threading.get_ident()
    with _held_guard:
        owner = _held.get(key)
        if owner is not None:
            if owner[0] != me:
                raise OutputLocked(f"{path}: in use by another run in this process; wait for it to finish")
            _held[key] = (me, owner[1] + 1)
    if owner is not None:
        try:
            yield lock
        finally:
            with _held_guard:
                tid, depth = _held[key]
                _held[key] = (tid, depth - 1)
        return
    if not beside and Path(path).exists() and not Path(path).is_dir():
        raise OutputError(f"{path}: exists and is a file, not a directory; choose another output path")
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise OutputError(f"{path}: a parent of this path is a file; choose another output path") from None
    except OSError as exc:
        raise _oserror(Path(path), exc, "create the output folder") from None
    fd = _acquire(lock, path)
    stale = _read_fd(fd)
    if stale:
        print(f"warning: {path}: taking over a lock left by {_describe(stale)}, which is no longer running",
              file=sys.stderr, flush=True)
    info = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
            "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(info) + "\n").encode("utf-8"), 0)
    os.fsync(fd)
    with _held_guard:
        _held[key] = (me, 0)
    try:
        yield lock
    finally:
        with _held_guard:
            _held.pop(key, None)
        # unlinked while still locked: a waiting process then finds a different inode and retries
        with contextlib.suppress(OSError):
            if os.fstat(fd).st_ino == os.stat(lock).st_ino:
                os.unlink(lock)
        os.close(fd)


def _acquire(lock: Path, path: str | Path) -> int:
    import fcntl

    for _ in range(50):
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise _oserror(Path(path), exc, "create the lock file") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise _oserror(Path(path), exc, "lock the output") from None
            holder = _wait_for_holder(lock)
            raise OutputLocked(f"{path}: in use by {_describe(holder)}; "
                               "wait for it to finish or choose another output path") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the holder removed this file as we opened it: lock the new one
    raise OutputLocked(f"{path}: its lock keeps changing hands; try again")


def _wait_for_holder(lock: Path, *, seconds: float = 2.0) -> dict | None:
    """The holder's record of a lock we were refused. The holder writes it just after taking the lock,
    so a refusal in between reads an empty file: poll briefly so the error can name the holder (and stop
    at once if the file is gone: the holder has finished and removed it)."""
    deadline = time.monotonic() + seconds
    while (holder := _read_lock(lock)) is None and lock.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return holder


def _read_fd(fd: int) -> dict | None:
    """A lock file's old content: a run that ended normally removed its file, so any content is stale."""
    try:
        data = os.pread(fd, 65536, 0)
    except OSError:
        return None
    if not data.strip():
        return None
    try:
        holder = json.loads(data)
    except ValueError:
        holder = None
    return holder if isinstance(holder, dict) else {"command": "an unknown run"}


def run_lock(path: str | Path, *, command: str):
    """``output_lock`` for a run that may be one of several launched processes (torchrun, accelerate):
    the main process (``RANK`` 0 or unset) holds the lock, the others share it."""
    if not _main_process():
        return contextlib.nullcontext(lock_path(path))
    return output_lock(path, command=command)


def _main_process() -> bool:
    return int(os.environ.get("RANK", "0") or 0) == 0


@contextlib.contextmanager
def output_run(
    path: str | Path,
    kind: str,
    *,
    command: str,
    inputs: Iterable[str | Path] = (),
    legacy: Iterable[str] = (),
) -> Iterator[Path]:
    """A whole run on output folder ``path``: lock it (``run_lock``), claim it (``ensure_output_dir``), yield it.

    A folder this run created is removed again if the run fails before writing anything into it
    (only the marker is there), so a run refused at its start leaves nothing behind.
    """
    p = Path(path)
    fresh = not p.exists() and not p.is_symlink()
    cleanup = False
    try:
        with run_lock(p, command=command):
            try:
                ensure_output_dir(p, kind, inputs=inputs, legacy=legacy)
                yield p
            except BaseException:
                cleanup = fresh and _main_process()
                raise
    finally:
        if cleanup:
            _remove_if_unused(p)


def _remove_if_unused(p: Path) -> None:
    """Remove folder ``p`` if it holds nothing but the marker (a run that failed before writing)."""
    with contextlib.suppress(OSError):
        if {e.name for e in p.iterdir()} <= {MARKER}:
            with contextlib.suppress(FileNotFoundError):
                (p / MARKER).unlink()
            p.rmdir()
