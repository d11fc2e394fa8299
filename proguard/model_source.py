"""Where a model comes from: a local directory, a hub ID, or ``tiny``; a missing local path fails at once.

Every command that loads a checkpoint (``bench``, ``moderate``, ``train``) passes its model argument
through :func:`check_model_source` before anything imports torch or contacts the hub. Without it a
mistyped ``runs/my-guard`` is taken for a hub ID: transformers retries the hub for close to a minute
and ends in a long traceback that never says the directory is missing.
"""

from __future__ import annotations

import os
from pathlib import Path

from proguard.errors import UsageError

TINY_MODEL = "tiny"
"""The in-process tiny Qwen2.5-VL (``proguard.models.tiny_vlm``); never a path."""


class ModelSourceError(UsageError):
    """A model argument that names a local directory which does not exist (exit 2)."""


def looks_local(name: str) -> bool:
    """True when ``name`` can only mean a path: it starts with ``.``, ``/``, ``~`` or ``runs/``, or has two
    or more path separators, or a backslash. A hub ID has at most one ``/`` (``org/name``)."""
    if name.startswith((".", "/", "~", "runs/", "runs" + os.sep)):
        return True
    return name.count("/") >= 2 or "\\" in name or (os.sep != "/" and os.sep in name)


def check_model_source(name: str, *, what: str = "model") -> str:
    """``name`` unchanged when it is ``tiny``, an existing path or a hub-ID-shaped string; else a one-line error.

    A path-shaped ``name`` that does not exist raises ``no such model directory: PATH``; one that is a
    file (not a checkpoint directory) says so too. Hub IDs pass through: whether they may be downloaded
    is the loader's concern.
    """
    if name == TINY_MODEL:
        return name
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelSourceError(f"{what} {name}: a file, not a model directory (config.json + weights)")
        return name
    if looks_local(name):
        raise ModelSourceError(f"no such model directory: {name}")
    return name
