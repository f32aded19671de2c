"""How many Delta commits and MERGEs a run made, read from its tables' transaction logs.

Why: on a small machine a pattern's time is its number of Delta operations, not its data (each
commit costs about half a second, a MERGE one to two). Counting them per run shows where the
time goes. The `_delta_log/NNNNNNNNNNNNNNNNNNNN.json` files are the tables' history; each holds
one `commitInfo` action naming its operation, the same record `DESCRIBE HISTORY` returns.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class DeltaActivity:
    """Commits under one directory tree, by table and by operation."""

    tables: int = 0
    commits: int = 0
    operations: Counter[str] = field(default_factory=Counter)

    @property
    def merges(self) -> int:
        return self.operations.get("MERGE", 0)


def delta_activity(root: Path) -> DeltaActivity:
    """Every Delta table under `root` (a local directory) and the commits in its log."""
    operations: Counter[str] = Counter()
    tables = commits = 0
    for log in sorted(root.rglob("_delta_log")):
        if not log.is_dir():
            continue
        tables += 1
        for entry in sorted(log.glob("[0-9]" * 20 + ".json")):
            commits += 1
            operations[_operation(entry)] += 1
    return DeltaActivity(tables, commits, operations)


def _operation(commit: Path) -> str:
    for line in commit.read_text().splitlines():
        if '"commitInfo"' in line:
            return str(json.loads(line)["commitInfo"].get("operation", "UNKNOWN"))
    return "UNKNOWN"
