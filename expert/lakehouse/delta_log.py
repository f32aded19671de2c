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
from typing import Any


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


@dataclass(frozen=True)
class Commit:
    """One commit of a Delta table: its version, operation and parameters, and the data files it changed."""

    version: int
    operation: str
    parameters: dict[str, Any]
    added: tuple[str, ...]
    removed: tuple[str, ...]
    transactions: tuple[tuple[str, int], ...] = ()
    """The (txnAppId, txnVersion) pairs the commit recorded: how idempotent writers are recognised."""


def table_commits(table: Path) -> list[Commit]:
    """Every commit of the local Delta table at `table`, oldest first, read from its JSON log.

    Why without Spark: a check that needs only versions, operations or file names gets them in
    milliseconds, where `DESCRIBE HISTORY` or loading a snapshot costs a Spark job. Every JSON
    commit stays in a local log (checkpoints summarise commits, they do not replace them here).
    """
    commits = []
    for entry in sorted((table / "_delta_log").glob("[0-9]" * 20 + ".json")):
        actions = [json.loads(line) for line in entry.read_text().splitlines() if line.strip()]
        info = next((a["commitInfo"] for a in actions if "commitInfo" in a), {})
        commits.append(
            Commit(
                version=int(entry.stem),
                operation=str(info.get("operation", "UNKNOWN")),
                parameters=dict(info.get("operationParameters") or {}),
                added=tuple(a["add"]["path"] for a in actions if "add" in a),
                removed=tuple(a["remove"]["path"] for a in actions if "remove" in a),
                transactions=tuple((a["txn"]["appId"], int(a["txn"]["version"])) for a in actions if "txn" in a),
            )
        )
    return commits


def latest_version(table: Path) -> int:
    """The newest version of the local Delta table at `table`: the highest commit file in its log (no Spark job)."""
    return max(int(entry.stem) for entry in (table / "_delta_log").glob("[0-9]" * 20 + ".json"))


def live_files(table: Path) -> set[str]:
    """The data files of the table's latest version: every file added and not removed since."""
    files: set[str] = set()
    for commit in table_commits(table):
        files = (files - set(commit.removed)) | set(commit.added)
    return files
