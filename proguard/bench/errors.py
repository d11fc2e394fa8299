"""The benchmark's own error: a bad task dataset, split, backend option or cache file (exit 2)."""

from __future__ import annotations

from proguard.errors import RunError, UsageError


class BenchError(UsageError):
    """Invalid benchmark input; the message names the file, row, option or URL."""


class BackendMissing(RunError, ImportError):
    """A backend's library is not installed; the message names what to install (still an ``ImportError``)."""


class BenchFailedError(RunError):
    """The run finished but too many samples failed after their retries (see ``--allow-failures``)."""
