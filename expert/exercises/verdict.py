"""What a check concludes, in the pattern's voice: which invariant held or broke, with what numbers.

A check is a function `check(learner, ctx) -> str`: it returns the evidence of a pass (one line
with the figures it verified) or raises `CheckFailedError` through `expect(...)`. It never returns a
bare boolean: a learner who fails must read which invariant broke and by how much.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Status = Literal["passed", "failed", "bad-input"]


class CheckFailedError(Exception):
    """An invariant of the technique does not hold for the learner's code."""

    def __init__(self, invariant: str, detail: str, where: str = "") -> None:
        super().__init__(f"{invariant}: {detail}")
        self.invariant = invariant
        self.detail = detail
        self.where = where


class BadInputError(Exception):
    """The learner's file cannot be checked at all (it does not import, the function is missing
    or has another signature): not a failed check but a file to fix first (exit 2)."""

    def __init__(self, message: str, where: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.where = where


def expect(condition: bool, invariant: str, detail: str = "") -> None:
    """Hold the learner's code to one invariant; `detail` carries the numbers either way."""
    if not condition:
        raise CheckFailedError(invariant, detail or "it does not hold")


@dataclass(frozen=True)
class Verdict:
    """The outcome of one check, as the CLI prints it and the grade report stores it."""

    exercise: str
    status: Status
    message: str
    invariant: str = ""
    where: str = ""
    seconds: float = 0.0
    traceback: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def exit_code(self) -> int:
        return {"passed": 0, "failed": 1, "bad-input": 2}[self.status]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verdict:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
