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

CHAMPION_ARM = "A"
CHALLENGER_ARM = "B"


def bucket(unit_id: object, experiment: str) -> float:
    """A stable number in [0, 1) for one unit in one experiment: sha256 of `experiment:unit_id`."""
    digest = hashlib.sha256(f"{experiment}:{unit_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_arm(unit_id: object, experiment: str, challenger_share: float = 0.5) -> str:
    """`B` (challenger) for the first `challenger_share` of the hash space, `A` (champion) otherwise."""
    return CHALLENGER_ARM if bucket(unit_id, experiment) < challenger_share else CHAMPION_ARM
