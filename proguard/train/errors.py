"""The one error type of ``proguard train`` / ``proguard sft``: what cannot start or continue, and what to change."""

from __future__ import annotations

from proguard.errors import RunError


class TrainError(RunError):
    """Training cannot start or continue; the message says why and what to change."""
