"""The project's error types: every CLI command turns these into one line and an exit code.

``UsageError`` (exit 2): the input is wrong — a flag, a recipe key, a data row, a file that is not
there. ``RunError`` (exit 1): the input was fine but the run could not finish. Every module's own
error (``DataError``, ``RecipeError``, ``TaskError``, ``TrainError``...) derives from one of the two,
so ``proguard.cli`` needs no list of them; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class ProguardError(Exception):
    """Base of every error proguard raises on purpose; its message is for the user, on one line where it can be."""

    exit_code = 1


class UsageError(ProguardError, ValueError):
    """Invalid input: arguments, configuration or data. The message names the file, row and field."""

    exit_code = 2


class RunError(ProguardError, RuntimeError):
    """A run that cannot start or continue with valid input; the message says why and what to change."""

    exit_code = 1
