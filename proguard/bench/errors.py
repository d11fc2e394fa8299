"""The benchmark's own error: a bad task dataset, split, backend option or cache file (exit 2)."""

from __future__ import annotations

from proguard.errors import RunError, UsageError


class BenchError(UsageError):
    """Invalid benchmark input; the message names the file, row, option or URL."""


class BenchFailedError(RunError):
    """The run finished but too many samples failed after their retries (see ``--allow-failures``)."""
