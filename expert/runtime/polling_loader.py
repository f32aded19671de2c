"""A polling loader: the local twin of Snowpipe, made idempotent by COPY's load metadata.

Why: Snowpipe loads each file seconds after the bucket announces it, with a serverless COPY. That
needs a bucket, an IAM role and event notifications, so the patterns poll instead: each round PUTs
every file of an inbox to an internal stage and runs the caller's COPY for it. COPY remembers
which files it loaded into a table (load metadata, kept 64 days), so a file seen again is skipped,
and a round with nothing new changes nothing. Each file loads in one transaction together with
whatever the caller does after the COPY (tagging, judging, typing its rows): all or nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from expert.runtime.snowflake import SnowflakeSession
from expert.runtime.snowflake_ddl import CopyInto

LOADED_STATUSES = ("LOADED", "PARTIALLY_LOADED")


@dataclass(frozen=True)
class FileLoad:
    """One file seen by one polling round: whether COPY loaded it or its load metadata skipped it."""

    file: str
    status: str
    lines: int


def poll_once(
    session: SnowflakeSession,
    inbox: Path,
    *,
    stage: str,
    copy: Callable[[str, str], CopyInto],
    after_load: Callable[[SnowflakeSession, str, str], None],
) -> list[FileLoad]:
    """One polling round over `inbox/<source>/<file>`: PUT each file to `@stage/<source>/`, then
    `copy(source, file)` and, when the COPY loaded it, `after_load(session, source, "<source>/<file>")`,
    both in one transaction."""
    loads: list[FileLoad] = []
    for path in sorted(p for p in inbox.rglob("*") if p.is_file()):
        source = path.parent.name
        file_name = f"{source}/{path.name}"
        session.execute(f"PUT '{path.resolve().as_uri()}' @{stage}/{source}/ AUTO_COMPRESS = TRUE OVERWRITE = FALSE")
        session.execute("BEGIN")
        try:
            rows = session.fetch(copy(source, path.name).to_sql())
            loaded = any(r.get("STATUS") in LOADED_STATUSES for r in rows)
            count = sum(int(r.get("ROWS_LOADED") or 0) for r in rows)
            if loaded:
                after_load(session, source, file_name)
            session.execute("COMMIT")
        except Exception:
            session.execute("ROLLBACK")
            raise
        loads.append(FileLoad(file_name, "LOADED" if loaded else "SKIPPED (loaded before)", count))
    return loads
