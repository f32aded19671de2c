"""Deterministic traffic split: which arm of an experiment a unit belongs to, with no stored state.

Why sha256 and not a random draw or Python's `hash()`: the same customer must land in the same
arm on every request, on every server and after every restart. `hash()` of a string is salted per
process (PYTHONHASHSEED), so it reshuffles customers whenever a server restarts; a random draw
needs an assignment table. A cryptographic hash of `experiment:unit_id` needs neither, and a new
experiment name reshuffles everyone independently of earlier experiments. Standard library only,
so any service (or a fresh process in a test) can import it cheaply.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

CHAMPION_ARM = "A"
CHALLENGER_ARM = "B"


def bucket(unit_id: object, experiment: str) -> float:
    """A stable number in [0, 1) for one unit in one experiment: sha256 of `experiment:unit_id`."""
    digest = hashlib.sha256(f"{experiment}:{unit_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_arm(unit_id: object, experiment: str, challenger_share: float = 0.5) -> str:
    """`B` (challenger) for the first `challenger_share` of the hash space, `A` (champion) otherwise."""
    return CHALLENGER_ARM if bucket(unit_id, experiment) < challenger_share else CHAMPION_ARM


def assignment_survives_restart(ids: list[int], experiment: str) -> tuple[bool, int]:
    """Assign every unit in two fresh Python processes with different hash seeds.

    Returns whether both reproduce this process's sha256 arms exactly, and how many units
    Python's built-in `hash()` (salted per process by PYTHONHASHSEED) puts in different arms.
    """
    code = (
        "import json, sys\n"
        "from expert.ml.split import assign_arm\n"
        "ids, experiment = json.load(sys.stdin)\n"
        "print(json.dumps([[assign_arm(i, experiment) for i in ids], [hash(f'{experiment}:{i}') % 2 for i in ids]]))"
    )
    runs = [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", code],
                input=json.dumps([ids, experiment]),
                capture_output=True,
                text=True,
                check=True,
                timeout=120,
                env={**os.environ, "PYTHONHASHSEED": seed},
            ).stdout
        )
        for seed in ("1", "2")
    ]
    here = [assign_arm(i, experiment) for i in ids]
    switched = sum(a != b for a, b in zip(runs[0][1], runs[1][1], strict=True))
    return all(arms == here for arms, _ in runs), switched
