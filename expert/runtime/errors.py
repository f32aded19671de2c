"""Errors a learner can act on: each carries what went wrong and how to fix it."""

from __future__ import annotations


class ExpertError(Exception):
    """A problem the learner can fix (setup, configuration, connectivity).

    The CLI and the pattern harness print it as two plain lines (`error:` and `fix:`) and exit
    non-zero, instead of a traceback.
    """

    exit_code = 2

    def __init__(self, message: str, fix: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.message} (fix: {self.fix})" if self.fix else self.message


class ConfigError(ExpertError):
    """Settings in `.env` or the environment are incomplete or contradictory."""


class ArgumentError(ExpertError, ValueError):
    """A value out of its allowed range (`--rows` below a generator's minimum, a negative seed).

    A user error like any `ExpertError` (exit 2, with the fix), and a `ValueError` for the code
    that validates values.
    """


class InvariantError(Exception):
    """A pattern's self-check failed: the data or the pipeline is wrong, not the setup."""

    exit_code = 1

    def __init__(self, name: str, detail: str) -> None:
        super().__init__(f"{name}: {detail}")
        self.name = name
        self.detail = detail
