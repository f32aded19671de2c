"""A Snowflake session's audit trail as JSON lines: the local twin of ACCESS_HISTORY.

Why: an auditor asks what was read, and ACCESS_HISTORY answers on an account. Every statement a
`SnowflakeSession` issues is already in its `audit` list; this writes it down, one JSON object a
line, with the statement's SHA-256 (not its text, which may hold literals) and the tables it read,
parsed from the SQL (`expert.runtime.query_text.tables_read`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from expert.runtime.query_text import tables_read
from expert.runtime.snowflake import AuditEntry


def write_audit_trail(audit: Iterable[AuditEntry], path: Path) -> int:
    """Write one JSON line per statement (seq, category, ok, seconds, sql_sha256, tables); return the count."""
    lines = [
        json.dumps(
            {"seq": entry.seq, "category": entry.category, "ok": entry.ok, "seconds": round(entry.seconds, 4),
             "sql_sha256": hashlib.sha256(entry.sql.encode()).hexdigest(), "tables": sorted(tables_read(entry.sql))}
        )
        for entry in audit
    ]  # fmt: skip
    path.write_text("".join(line + "\n" for line in lines))
    return len(lines)


def statements_reading(audit: Iterable[AuditEntry], tables: set[str]) -> list[AuditEntry]:
    """The statements that read any of `tables` (fully qualified, upper case)."""
    return [entry for entry in audit if tables_read(entry.sql) & tables]
