"""Checkpoints that survive a kill: atomic saves, a resume that finds the newest complete one, and a
``metrics.jsonl`` that holds each step once.

A checkpoint is written into a temporary sibling (``.partial-checkpoint-N/checkpoint-N``), its files
fsynced, then renamed into place (``GuardGRPOTrainer._save_checkpoint``), so ``checkpoint-N`` is
either absent or whole. Directories written before that (or cut short by a full disk) are checked
here: weights whose safetensors header and size agree, an optimizer file that is a whole zip
archive, a ``trainer_state.json`` that parses. An incomplete one is never resumed from and never
deleted: it is renamed ``incomplete-checkpoint-N`` (outside the Trainer's ``checkpoint-*`` rotation)
and the run says so.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import zipfile
from collections.abc import Iterable
from pathlib import Path

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
STAGING_PREFIX = ".partial-checkpoint-"
"""Staging root of a checkpoint being written; a leftover one is the project's own scratch."""
INCOMPLETE_PREFIX = "incomplete-"
TRAINER_STATE = "trainer_state.json"
OPTIMIZER = "optimizer.pt"
WEIGHT_FILES = ("model.safetensors", "adapter_model.safetensors")
WEIGHT_INDEX = "model.safetensors.index.json"


def checkpoints(output_dir: str | Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every ``checkpoint-N`` directory, newest first."""
    out = Path(output_dir)
    if not out.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in out.iterdir() if (m := CHECKPOINT_RE.match(p.name)) and p.is_dir()]
    return sorted(found, reverse=True)


def safetensors_problem(path: Path) -> str | None:
    """Why ``path`` is not a whole safetensors file (header length, JSON header, data size), or ``None``."""
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                return f"{path.name} is truncated ({size} bytes)"
            (n,) = struct.unpack("<Q", head)
            if n > size - 8:
                return f"{path.name} is truncated (header of {n} bytes in a {size}-byte file)"
            header = json.loads(fh.read(n))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        return f"{path.name} is unreadable ({type(exc).__name__})"
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)]
    want = 8 + n + max(ends, default=0)
    if size < want:
        return f"{path.name} is truncated ({size} of {want} bytes)"
    return None


def checkpoint_problem(path: str | Path, *, needs_optimizer: bool = True) -> str | None:
    """Why the checkpoint directory cannot be resumed from, or ``None`` when it is complete."""
    p = Path(path)
    state = p / TRAINER_STATE
    if not state.is_file():
        return f"no {TRAINER_STATE}"
    try:
        json.loads(state.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"{TRAINER_STATE} is unreadable ({type(exc).__name__})"
    weights = [p / name for name in WEIGHT_FILES if (p / name).is_file()]
    index = p / WEIGHT_INDEX
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return f"{WEIGHT_INDEX} is unreadable ({type(exc).__name__})"
        missing = [s for s in shards if not (p / s).is_file()]
        if missing:
            return f"weight shard {missing[0]} is missing"
        weights += [p / s for s in shards]
    deepspeed = any(c.is_dir() and c.name.startswith("global_step") for c in p.iterdir())
    if not weights and not deepspeed:
        return "no model weights (model.safetensors)"
    for w in weights:
        problem = safetensors_problem(w)
        if problem:
            return problem
    if needs_optimizer and not deepspeed:
        opt = p / OPTIMIZER
        if not opt.is_file():
            return f"no {OPTIMIZER}"
        try:
            with zipfile.ZipFile(opt) as zf:  # torch.save writes a zip: a cut file has no central directory
                zf.namelist()
        except (OSError, zipfile.BadZipFile) as exc:
            return f"{OPTIMIZER} is truncated or corrupt ({type(exc).__name__})"
    return None


def find_resumable(output_dir: str | Path) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The newest complete ``checkpoint-N`` and the newer incomplete ones skipped, with why."""
    skipped: list[tuple[Path, str]] = []
    for _, path in checkpoints(output_dir):
        problem = checkpoint_problem(path)
        if problem is None:
            return path, skipped
        skipped.append((path, problem))
    return None, skipped


def set_aside(path: Path) -> Path:
    """Rename an incomplete checkpoint to ``incomplete-checkpoint-N[.K]`` (kept, out of the way)."""
    target = path.with_name(INCOMPLETE_PREFIX + path.name)
    k = 1
    while target.exists():
        target = path.with_name(f"{INCOMPLETE_PREFIX}{path.name}.{k}")
        k += 1
    os.rename(path, target)
    return target


def remove_staging(output_dir: str | Path) -> list[Path]:
    """Delete staging roots a killed save left behind (``.partial-checkpoint-N``, this project's scratch)."""
    out = Path(output_dir)
    if not out.is_dir():
        return []
    left = [p for p in out.iterdir() if p.is_dir() and p.name.startswith(STAGING_PREFIX)]
    for p in left:
        shutil.rmtree(p)
    return left


def fsync_tree(root: Path) -> None:
    """Push every file under ``root``, and the directories themselves, to disk."""
    for dirpath, _, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(dirpath))


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # a platform without directory file descriptors
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def publish(staged: Path, final: Path) -> None:
    """Move a fully written ``staged`` checkpoint to ``final`` (an older one there is set aside)."""
    fsync_tree(staged)
    if final.exists():
        set_aside(final)
    os.rename(staged, final)
    _fsync_dir(final.parent)


def truncate_metrics(path: Path, step: int) -> int:
    """Drop the ``metrics.jsonl`` rows logged after ``step`` (a resumed run logs them again); returns how many."""
    if not path.is_file():
        return 0
    kept: list[str] = []
    dropped = 0
    for line in path.read_text(encoding="utf-8").split("\n"):
        if not line.strip():
            continue
        try:
            row_step = json.loads(line).get("step")
        except (ValueError, AttributeError):
            row_step = None  # a line cut by the kill: dropped with the steps after the checkpoint
        if isinstance(row_step, int) and row_step <= step:
            kept.append(line)
        else:
            dropped += 1
    if dropped:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        os.replace(tmp, path)
    return dropped


def describe_skipped(skipped: Iterable[tuple[Path, str]]) -> str:
    """``checkpoint-5 (no trainer_state.json), checkpoint-4 (...)``."""
    return ", ".join(f"{p.name} ({why})" for p, why in skipped)
