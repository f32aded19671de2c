"""Quartz cron expressions (the Databricks Jobs scheduler's dialect), checked offline.

Why: Quartz is not the five-field Unix cron: seconds come first, and exactly one of
day-of-month and day-of-week must be `?`. A Unix expression pasted into a job is rejected at
deploy time; this check rejects it in the unit-test gate.
"""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

QUARTZ_FIELDS = (
    ("second", 0, 59),
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 1, 7),
)


def quartz_cron_problems(expression: str, timezone_id: str) -> list[str]:
    """Check a Quartz cron expression and its time zone; an empty list means valid."""
    problems = []
    fields = expression.split()
    if len(fields) not in (6, 7):
        return [f"{expression!r}: Quartz cron has 6 or 7 fields (seconds first), found {len(fields)}"]
    for text, (name, low, high) in zip(fields, QUARTZ_FIELDS, strict=False):
        if not re.fullmatch(r"[0-9A-Z*?/,#LW-]+", text):
            problems.append(f"{name} field {text!r} has characters Quartz does not allow")
            continue
        for number in re.findall(r"\d+", text.split("/")[0].split("#")[0]):
            if not low <= int(number) <= high:
                problems.append(f"{name} field {text!r}: {number} is outside {low}-{high}")
    if (fields[3] == "?") == (fields[5] == "?"):
        problems.append("exactly one of day-of-month and day-of-week must be '?'")
    try:
        ZoneInfo(timezone_id)
    except (KeyError, ValueError):
        problems.append(f"unknown time zone {timezone_id!r}")
    return problems
