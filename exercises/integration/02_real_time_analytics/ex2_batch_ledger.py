"""Exercise integration/02.2 · A batch ledger: load into Snowflake exactly once across crashes.

Snowflake has no txnAppId. integration/02's loader gets the same guarantee with a ledger table:
one row per (pipeline, batch id) loaded, written in the SAME transaction as the batch's rows. A
replayed batch finds its ledger row and is skipped; a load that died half way committed nothing,
neither rows nor ledger row, so its replay loads it whole.

The tables exist:
    EVENTS (EVENT_ID NUMBER, EVENT_TYPE VARCHAR, PRICE NUMBER(10,2), EVENT_TS TIMESTAMP_NTZ, BATCH_ID NUMBER)
    BATCH_LEDGER (PIPELINE VARCHAR, BATCH_ID NUMBER, ROWS_LOADED NUMBER, LOADED_AT TIMESTAMP_NTZ)

Your task: write `load_batch` so that it loads `events` (columns EVENT_ID, EVENT_TYPE, PRICE,
EVENT_TS) of batch `batch_id` of `pipeline` into EVENTS exactly once, records the batch in
BATCH_LEDGER with the number of rows loaded, and returns True when it loaded, False when the
ledger already had the batch. Two pipelines may use the same batch ids.

`session` runs one statement at a time: `session.execute(sql, params)`, `session.scalar(sql,
params)` (the first value of the first row), `session.fetch_df(sql, params)`; `%s` placeholders.
The check kills the "process" at three points of a load (between two statements that write,
just before COMMIT, just after it); the server then discards the open transaction, as Snowflake
does for a session that died. It restarts and replays, then counts every event and ledger row.

Check it: expert check integration/02.2
"""

import pandas as pd

from expert.runtime.snowflake import SnowflakeSession

INSERT_EVENTS = (
    "INSERT INTO EVENTS (EVENT_ID, EVENT_TYPE, PRICE, EVENT_TS, BATCH_ID) "
    "SELECT e.value:EVENT_ID::NUMBER(38,0), e.value:EVENT_TYPE::VARCHAR, e.value:PRICE::NUMBER(10,2), "
    "TO_TIMESTAMP_NTZ(e.value:EVENT_TS_MS::NUMBER(38,0), 3), %s FROM TABLE(FLATTEN(INPUT => PARSE_JSON(%s))) e"
)


def as_json(events: pd.DataFrame) -> str:
    """The batch as one JSON array (exact cents as strings, times as epoch milliseconds)."""
    rows = events.assign(PRICE=events["PRICE"].astype(str), EVENT_TS_MS=events["EVENT_TS"].astype("int64") // 10**6)
    return rows.drop(columns="EVENT_TS").to_json(orient="records")


def load_batch(session: SnowflakeSession, events: pd.DataFrame, batch_id: int, pipeline: str) -> bool:
    """Load one batch of `pipeline` into EVENTS unless BATCH_LEDGER has it; True when it loaded."""
    # TODO: a replayed batch is loaded again, and a crash half way leaves half a load. Skip a
    # batch the ledger has; otherwise insert the rows AND the ledger row in one transaction
    # (BEGIN TRANSACTION ... COMMIT), so that both or neither are there after a crash.
    session.execute(INSERT_EVENTS, (batch_id, as_json(events)))
    return True
