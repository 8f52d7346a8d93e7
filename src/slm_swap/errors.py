"""The one error a user can fix.

Anything raised as `SlmSwapError` is printed by the CLI as a short message that names the fix, and
the command exits with status 2. Everything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class SlmSwapError(Exception):
    """A problem the user can fix: bad input, missing configuration, a wrong path."""

    exit_code = 2


class InputError(SlmSwapError):
    """A file the user gave us is malformed; the message names the file and the row or line."""

    def __init__(self, path: object, where: str | None, problem: str, fix: str | None = None):
        location = f"{path}:{where}" if where else f"{path}"
        message = f"{location}: {problem}"
        if fix:
            message += f"\n  fix: {fix}"
        super().__init__(message)
        self.path = path
        self.where = where
        self.problem = problem


class ConfigError(SlmSwapError):
    """A required setting (environment variable or flag) is missing or inconsistent."""
