"""The generation cache: raw completions per task in a JSONL file, so an interrupted run resumes.

Each line holds one completion with the key of what produced it (a hash of the backend's
``describe()``: backend, model, sampling settings) and a hash of the prompt it answered (messages
and image pixels). A later run reuses a line only when both match, so changing the model, the
settings or the task rows regenerates instead of silently mixing answers. Lines are appended and
flushed batch by batch; a line cut short by a crash (the last one) is ignored and regenerated.
Failed generations are never cached: a rerun retries them.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from proguard.bench.errors import BenchError
from proguard.sanitize import clean_text

CACHE_FILE = "generations.jsonl"


@dataclass(frozen=True)
class CachedGeneration:
    """One raw completion and how long it took.

    ``latency_s`` is the wall time of the request (a batched backend: of the whole batch);
    ``time_share_s`` is this sample's share of the run's wall time (batch wall / batch size), so
    throughput over any set of samples is ``len(set) / sum(time_share_s)``.
    """

    task_id: str
    prompt_hash: str
    text: str
    latency_s: float
    time_share_s: float


def config_key(description: dict[str, Any]) -> str:
    """A short stable hash of a backend description."""
    return hashlib.sha256(json.dumps(description, sort_keys=True, default=str).encode()).hexdigest()[:16]


def prompt_hash(messages: Any, image: Any, video: Any = None, audio: Any = None) -> str:
    """A hash of a prompt: its messages as JSON and, if any, the image's mode, size and pixels, or the
    video / audio paths with their sizes and modification times (decoding them to hash would cost a decode)."""
    h = hashlib.sha256(json.dumps(messages, sort_keys=True, default=str).encode())
    if image is not None and not hasattr(image, "tobytes"):  # a decoded video / audio (backends.Media)
        import numpy as np

        frames = getattr(image, "video", None) or []
        h.update(f"|media|{len(frames)}|".encode())
        for f in frames:
            h.update(f.tobytes())
        if getattr(image, "audio", None) is not None:
            h.update(np.ascontiguousarray(image.audio, dtype=np.float32).tobytes())
        return h.hexdigest()[:16]
    for paths in ([video] if isinstance(video, str) else video or [], [audio] if audio else []):
        for p in paths:
            st = Path(p).stat() if Path(p).exists() else None
            h.update(f"|{p}|{st.st_size if st else -1}|{st.st_mtime_ns if st else -1}|".encode())
    if image is not None:
        h.update(f"|{image.mode}|{image.size}|".encode())
        h.update(image.tobytes())
    return h.hexdigest()[:16]


class GenerationCache:
    """Append-only JSONL of completions under one config key."""

    def __init__(self, path: str | Path, key: str) -> None:
        self.path = Path(path)
        self.key = key
        self.replaced = [0]  # lone surrogates replaced with U+FFFD (proguard.sanitize), counted by the run

    def load(self) -> dict[str, CachedGeneration]:
        """Cached completions for this key, by task ID (a later line wins)."""
        if not self.path.exists():
            return {}
        if self.path.is_dir():
            raise BenchError(f"{self.path}: is a directory, not a generation cache file")
        # split on \n only: a completion may hold \u2028 or \x1c, which json.dumps leaves unescaped
        # with ensure_ascii=False and str.splitlines() would take as line ends
        raw = self.path.read_bytes().split(b"\n")
        if raw and raw[-1] == b"":
            raw.pop()
        lines = raw
        out: dict[str, CachedGeneration] = {}
        for n, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line.decode("utf-8"))
                if not isinstance(rec, dict):
                    raise TypeError(f"a JSON {type(rec).__name__}, not an object")
                if rec["key"] != self.key:
                    continue
                if not isinstance(rec["text"], str):
                    raise TypeError(f"text is {type(rec['text']).__name__}, not a string")
                text, n_bad = clean_text(rec["text"])
                self.replaced[0] += n_bad
                entry = CachedGeneration(
                    task_id=str(rec["task_id"]),
                    prompt_hash=str(rec["prompt_hash"]),
                    text=text,
                    latency_s=float(rec["latency_s"]),
                    time_share_s=float(rec["time_share_s"]),
                )
            except (ValueError, KeyError, TypeError) as exc:
                if n == len(lines):  # the last line of an interrupted write: drop it, it is regenerated
                    warnings.warn(f"{self.path}: line {n}: ignoring a truncated cache line", stacklevel=2)
                    continue
                raise BenchError(
                    f"{self.path}: line {n}: not a cache record ({type(exc).__name__}: {_clip(str(exc))}); delete "
                    "that line (or the file) and rerun: its completions are generated again"
                ) from None
            out[entry.task_id] = entry
        return out

    def append(self, entries: Iterable[CachedGeneration]) -> None:
        """Write completions and push them to disk, so a crash after this call loses none of them."""
        records = [clean_text({"key": self.key, **asdict(e)})[0] for e in entries]  # never a UnicodeEncodeError
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        if not text:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _drop_partial_last_line(self.path)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())


def _drop_partial_last_line(path: Path) -> None:
    """Cut a last line that a crash left without its newline; it would corrupt the next record."""
    if not path.exists():
        return
    with path.open("rb+") as fh:
        if fh.seek(0, os.SEEK_END) == 0:
            return
        fh.seek(-1, os.SEEK_END)
        if fh.read(1) == b"\n":
            return
        fh.seek(0)
        fh.truncate(fh.read().rfind(b"\n") + 1)  # rare (after a crash): reading it all is fine


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
