"""Where a model comes from, offline by default: a local directory, ``tiny``, or a Hugging Face Hub ID used
only when it is already on disk unless the user passes an explicit ``--allow-download``.

``check_model_source`` runs first, before torch is imported: a path-shaped name that does not exist
(``runs/my-guard`` mistyped) fails at once with "no such model directory" instead of a minute of hub
retries and a long traceback.

Training, ``vllm-serve``, ``bench`` and ``moderate`` all resolve their model through
``local_model_or_download``, so no command fetches weights from the network without being asked.
"""

from __future__ import annotations

import os
from pathlib import Path

from proguard.errors import UsageError


TINY_MODEL = "tiny"
"""The in-process tiny Qwen2.5-VL (``proguard.models.tiny_vlm``); never a path."""
NAMED_MODELS = ("tiny", "tiny-omni", "smollm2-135m", "smolvlm-smollm2")
"""Names ``proguard.models.named`` resolves to local folders (built or converted on first use); never paths."""


class ModelSourceError(UsageError):
    """A model argument that names a local directory which does not exist (exit 2)."""


def looks_local(name: str) -> bool:
    """True when ``name`` can only mean a path: it starts with ``.``, ``/``, ``~`` or ``runs/``, or has two
    or more path separators, or a backslash. A hub ID has at most one ``/`` (``org/name``)."""
    if name.startswith((".", "/", "~", "runs/", "runs" + os.sep)):
        return True
    return name.count("/") >= 2 or "\\" in name or (os.sep != "/" and os.sep in name)


def check_model_source(name: str, *, what: str = "model") -> str:
    """``name`` unchanged when it is a named model (``NAMED_MODELS``), an existing path or a hub-ID-shaped string; else a one-line error.

    A path-shaped ``name`` that does not exist raises ``no such model directory: PATH``; one that is a
    file (not a checkpoint directory) says so too. Hub IDs pass through: whether they may be downloaded
    is the loader's concern.
    """
    if name in NAMED_MODELS:
        return name
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelSourceError(f"{what} {name}: a file, not a model directory (config.json + weights)")
        return name
    if looks_local(name):
        raise ModelSourceError(f"no such model directory: {name}")
    return name


class DownloadNotAllowed(UsageError):
    """A model that is neither a local directory nor in the local Hub cache, and downloads are off."""


def local_model_or_download(name: str, allow_download: bool, *, what: str, option: str = "--allow-download") -> str:
    """``name`` as a local checkpoint directory, the Hub cache's copy of it, or (when allowed) the Hub ID.

    Raises ``DownloadNotAllowed`` naming ``option`` when the model would have to be downloaded.
    """
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path)
    if path.exists():
        raise DownloadNotAllowed(f"{what}: {name} is a file; a checkpoint is a directory (config.json, weights...)")
    check_model_source(name, what=what)  # a mistyped runs/my-guard must not become a minute of hub retries
    if allow_download:
        return name
    cached = _cached_snapshot(name)
    if cached is not None:
        return cached
    raise DownloadNotAllowed(
        f"{what}: {name} is not a local directory (nor in the local Hugging Face cache); downloading it from "
        f"the Hub needs {option} (proguard is offline by default)"
    )


def _cached_snapshot(repo_id: str) -> str | None:
    """The local Hub-cache directory of ``repo_id`` if it is fully cached; never touches the network."""
    try:
        from huggingface_hub import snapshot_download

        return str(snapshot_download(repo_id=repo_id, local_files_only=True))
    except Exception:  # not cached, not a valid repo ID, or huggingface_hub missing: all mean "not local"
        return None
