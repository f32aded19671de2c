"""Faults injected into the landing zone on purpose, and an independent count of what they broke.

Why: an alert is only proven when the fault it watches for really happens and is really caught.
`inject_malformed` corrupts the next clickstream file before it is delivered (what a producer that
crashed mid-write leaves behind); `malformed_lines` counts the lines a JSON parser rejects in the
delivered files, without Spark, so the quarantine can be checked against it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from expert.lakehouse.layout import MedallionLayout
from expert.lakehouse.medallion import next_pending
from expert.runtime.data import corrupt_lines


def inject_malformed(layout: MedallionLayout, rate: float, seed: int) -> int:
    """Add truncated lines (`rate` of its records) to the next clickstream file; return how many."""
    path = next_pending(layout, "clickstream")
    if path is None:
        return 0
    lines = path.read_text().splitlines()
    corrupted, added = corrupt_lines(lines, rate, np.random.default_rng(seed))
    path.write_text("\n".join(corrupted) + "\n")
    return added


def malformed_lines(paths: Sequence[str]) -> int:
    """Lines that are not valid JSON in the delivered clickstream files (counted with `json`)."""
    bad = 0
    for path in paths:
        if Path(path).parent.name != "clickstream":
            continue
        for line in Path(path).read_text().splitlines():
            try:
                json.loads(line)
            except json.JSONDecodeError:
                bad += 1
    return bad
