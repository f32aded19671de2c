"""Exercise snowflake/01.3 · A polling loader that loads each file once, and all of it or none of it.

snowflake/01 stands in for Snowpipe with a polling loader: each round PUTs every file of an inbox
to an internal stage and COPYs it. COPY keeps load metadata (which files it loaded into a table),
so a file seen again is skipped and a rerun loads nothing twice. The step that runs after the COPY
(tagging the lines with their file, judging them) must share the COPY's fate: if it fails, the
file's lines and its load metadata roll back together, so the next round loads the file again.
Write one polling round.

Your task: `poll_once(session, inbox, after_load)` loads every `*.csv` file of the folder `inbox`
(in name order), so that
- each file is PUT to @RAW.LANDING/orders/ (AUTO_COMPRESS: it is staged as <file>.gz) and COPY'd
  line by line into RAW.FILE_LINES (LINE): the file has a header line, and each later line lands
  whole, as one VARCHAR (COPY_LINES below is that COPY);
- `after_load(session, "orders/<file>")` runs for a file exactly when its COPY loaded it (a row
  of the COPY's result has STATUS 'LOADED'; a file loaded before gets none: locally its row says
  'LOAD_SKIPPED'), in the same transaction as the COPY: if it raises, the file's COPY is rolled
  back and the exception goes on to the caller;
- it returns the names ("orders/<file>") of the files this round loaded.
So however often it runs, and whatever failed in an earlier round, every line of every file ends
up in RAW.FILE_LINES exactly once, and `after_load` has succeeded exactly once per file.

Check it: expert check snowflake/01.3
"""

from collections.abc import Callable
from pathlib import Path

from expert.runtime.snowflake import SnowflakeSession

STAGE = "RAW.LANDING"
COPY_LINES = (
    "COPY INTO RAW.FILE_LINES (LINE) FROM @RAW.LANDING/orders/{file}.gz "
    "FILE_FORMAT = (TYPE = CSV SKIP_HEADER = 1 FIELD_DELIMITER = NONE ESCAPE_UNENCLOSED_FIELD = NONE)"
)


def poll_once(session: SnowflakeSession, inbox: Path, after_load: Callable[[SnowflakeSession, str], None]) -> list[str]:
    """One polling round: stage and COPY each file; the load step shares the COPY's transaction."""
    loaded = []
    for path in sorted(inbox.glob("*.csv")):
        session.execute(f"PUT '{path.resolve().as_uri()}' @{STAGE}/orders/ AUTO_COMPRESS = TRUE OVERWRITE = FALSE")
        session.execute("BEGIN")
        try:
            rows = session.fetch(COPY_LINES.format(file=path.name))
            if any(row["STATUS"] == "LOADED" for row in rows):
                after_load(session, f"orders/{path.name}")
                loaded.append(f"orders/{path.name}")
            session.execute("COMMIT")
        except Exception:
            session.execute("ROLLBACK")
            raise
    return loaded
