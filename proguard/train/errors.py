"""The one error type of ``proguard train`` / ``proguard sft``: what cannot start or continue, and what to change."""

from __future__ import annotations

from proguard.errors import RunError, UsageError


class TrainError(RunError):
    """Training cannot start or continue; the message says why and what to change."""


class TrainInputError(UsageError, TrainError):
    """A training input is wrong (a recipe value, the output directory, a checkpoint to resume): exit 2."""

