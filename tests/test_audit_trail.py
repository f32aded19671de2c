"""The audit trail: one JSON line per statement, with the tables it read."""

from __future__ import annotations

import json
from pathlib import Path

from expert.runtime.audit_trail import statements_reading, write_audit_trail


def test_trail_has_every_statement_and_the_tables_read(snowflake_local, workdir: Path) -> None:  # type: ignore[no-untyped-def]
    snowflake_local.execute("CREATE TABLE T (SECRET VARCHAR)")
    snowflake_local.execute("INSERT INTO T VALUES ('top-secret-value')")
    snowflake_local.execute("SELECT SECRET FROM T")
    written = write_audit_trail(snowflake_local.audit, workdir / "trail.jsonl")
    records = [json.loads(line) for line in (workdir / "trail.jsonl").read_text().splitlines()]
    assert written == len(records) == len(snowflake_local.audit) == 3
    assert [r["tables"] for r in records] == [[], [], ["T"]]
    assert all("top-secret" not in json.dumps(r) for r in records), "statement text (and its literals) is not written"
    assert [e.seq for e in statements_reading(snowflake_local.audit, {"T"})] == [3]
