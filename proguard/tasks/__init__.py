"""The held-out-category task generator: labelled samples + a taxonomy -> GRPO-ready tasks with OOD targets.

- ``config``: ``TaskConfig`` and its checks (light: no numpy / Arrow)
- ``rows``: the taxonomy index and the Arrow row writer (prompts, ID maps, targets)
- ``leakcheck``: proof that held-out categories appear nowhere but as OOD targets
- ``generator``: ``build_tasks`` / ``generate_tasks`` / ``default_tasks``

The names below are importable from ``proguard.tasks`` directly; each loads its module on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TaskConfig": "config", "TaskError": "config", "SPLITS": "config", "HIDE_LEVELS": "config",
    "BALANCE_MODES": "config", "SCOPES": "config",
    "TaskBuild": "generator", "build_tasks": "generator", "default_tasks": "generator",
    "generate_tasks": "generator", "format_summary": "generator",
    "LeakError": "leakcheck", "check_split": "leakcheck",
    "task_features": "rows", "TaxonomyIndex": "rows",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'proguard.tasks' has no attribute {name!r}")
    return getattr(importlib.import_module(f"proguard.tasks.{_EXPORTS[name]}"), name)
