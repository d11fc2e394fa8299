"""Offline by default: a model named by a Hugging Face Hub ID is used only when it is already on disk,
unless the user passes an explicit ``--allow-download``.

Training, ``vllm-serve``, ``bench`` and ``moderate`` all resolve their model through
``local_model_or_download``, so no command fetches weights from the network without being asked.
"""

from __future__ import annotations

from pathlib import Path

from proguard.errors import UsageError


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
