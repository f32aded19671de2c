"""Enterprise patterns on Snowflake: staged loads, continuous ingestion, CDC, JSON, environments, recovery.

Why it matters in production: most Snowflake incidents are loading incidents (a file loaded twice,
one bad row failing a whole batch or silently vanishing, a CDC job that re-applies or skips
changes) and environment incidents (testing against stale copies, no way back after a bad
deploy). The platform has an answer for each: load metadata, ON_ERROR, streams + tasks, VARIANT,
zero-copy CLONE, Time Travel. This pattern uses every one of them on dirty data whose defects are
counted by the generator, and proves the counts come out right.

Learning objectives:
- Land files in an internal stage with PUT and load them with COPY INTO: ON_ERROR semantics, a
  report of rejected rows, and load metadata that makes a rerun load nothing twice
- Ingest continuously: Snowpipe auto-ingest as typed cloud DDL, and its local twin, a polling loader
- Run CDC as a stream + task: a MERGE upsert fed by QUALIFY dedup, consuming exactly the rows the
  stream delivers (locally: an explicit change set with committed offsets), safe across a crash
- Keep raw JSON in VARIANT, project it with PARSE_JSON / FLATTEN and detect schema drift
- Create DEV and QA from PROD by zero-copy CLONE; recover with Time Travel and UNDROP

Run it:
    python expert/snowflake/01_enterprise_patterns.py [--rows N]
    expert run snowflake/01

Locally: fakesnow (DuckDB) under the real snowflake-connector-python runs every data statement
(stages, PUT, COPY INTO, MERGE, QUALIFY, VARIANT, FLATTEN, transactions, table CLONE); streams,
tasks, pipes, database clones, Time Travel and UNDROP are generated as typed DDL and recorded.
Three local stand-ins are named where they run: a polling loader for Snowpipe, an offset-driven
change set for the stream, a table-by-table copy for the database clone. With credentials in
.env: the same statements run on your account, including the stream, the task (created
suspended), the database clones and the Time Travel checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from expert.runtime import polling_loader
from expert.runtime import snowflake_ddl as ddl
from expert.runtime.change_set import ChangeSet
from expert.runtime.data import EcommerceWorld
from expert.runtime.landing_zone import Landing, arrive, expected_funnel, expected_orders, land_files, orders_differing
from expert.runtime.pattern import PatternRun, run_pattern
from expert.runtime.polling_loader import FileLoad
from expert.runtime.snowflake import SnowflakeSession

PROD_DATABASE = "SHOP"
ENVIRONMENTS = ("DEV", "QA")
STAGE = "RAW.LANDING"
STREAM = "RAW.ORDERS_RAW_STREAM"
BATCHES = 3
BAD_LINE_RATE = 0.01
"""Share of order CSV lines a crashing writer leaves truncated (counted, so rejects are checkable)."""
STATUS_ADVANCES = {"placed": "shipped", "shipped": "delivered"}
ORDER_COLUMNS = {
    "ORDER_ID": "NUMBER", "CUSTOMER_ID": "NUMBER", "PRODUCT_ID": "NUMBER", "QUANTITY": "NUMBER",
    "UNIT_PRICE": "NUMBER(12,2)", "AMOUNT": "NUMBER(12,2)", "STATUS": "VARCHAR",
    "ORDER_TS": "TIMESTAMP_NTZ", "UPDATED_AT": "TIMESTAMP_NTZ",
}  # fmt: skip
"""The order feed's fields, in file order, with their Snowflake types."""
ORDER_FIELDS = tuple(ORDER_COLUMNS)
ORDER_DDL = ", ".join(f"{column} {kind}" for column, kind in ORDER_COLUMNS.items())
ISO_TS = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?Z$"
"""The timestamps the order feed writes; anything else is rejected rather than guessed."""
LINES_FORMAT = ddl.FileFormat(skip_header=0, field_delimiter="NONE", escape_unenclosed_field="NONE")
"""One column per line: nothing can fail while landing, so every line is kept and judged in SQL."""
CSV_LINES_FORMAT = ddl.FileFormat(skip_header=1, field_delimiter="NONE", escape_unenclosed_field="NONE")
EXAMPLE_BUCKET = "s3://example-landing-bucket/shop/"
EXAMPLE_ROLE_ARN = "arn:aws:iam::123456789012:role/snowflake-landing"
DR_ACCOUNT = "MYORG.SHOP_DR"
POLLING_LOADER = (
    "Snowpipe auto-ingest",
    "a polling loader: PUT each inbox file to the internal stage and COPY it; COPY's load metadata skips "
    "the files it loaded before (it runs on an account too: a pipe needs your bucket and its notifications)",
)
"""The local twin of Snowpipe, as `run.stand_in` names it."""
DATABASE_CLONE = "zero-copy database CLONE"


# --- Step 1 · PROD layout -------------------------------------------------------------------


def create_prod_layout(session: SnowflakeSession) -> None:
    """Schemas, the internal stage, landing tables, and the stream that must exist before any load.

    The run owns the RAW and CORE schemas: they are dropped first, so a rerun starts clean (on an
    account, only if these patterns created them; the session refuses otherwise: --reset-existing).
    """
    for schema in ("RAW", "CORE"):
        session.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        session.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    session.execute(f"CREATE STAGE IF NOT EXISTS {STAGE}")
    session.execute("CREATE TABLE IF NOT EXISTS RAW.FILE_LINES (SOURCE VARCHAR, FILE_NAME VARCHAR, LINE VARCHAR)")
    session.execute(f"CREATE TABLE IF NOT EXISTS RAW.ORDERS_RAW ({ORDER_DDL}, _FILE VARCHAR, _SEQ NUMBER)")
    session.execute("CREATE TABLE IF NOT EXISTS RAW.ORDER_REJECTS (FILE_NAME VARCHAR, LINE VARCHAR, REASON VARCHAR)")
    session.execute("CREATE TABLE IF NOT EXISTS RAW.CLICKSTREAM (FILE_NAME VARCHAR, V VARIANT)")
    session.execute("CREATE TABLE IF NOT EXISTS RAW.CLICKSTREAM_REJECTS (FILE_NAME VARCHAR, LINE VARCHAR)")
    session.execute(f"CREATE TABLE IF NOT EXISTS CORE.ORDERS ({ORDER_DDL})")
    session.execute(order_lines_view_sql())
    session.cloud_only(
        ddl.Stream(name=STREAM, on_table="RAW.ORDERS_RAW", append_only=True),
        purpose="track every row appended to RAW.ORDERS_RAW for the CDC task",
    )


def order_lines_view_sql() -> str:
    """A view that judges every landed order line: its typed fields, or why it is rejected."""
    fields = ",\n    ".join(f"SPLIT_PART(LINE, ',', {i}) AS F{i}" for i in range(1, len(ORDER_FIELDS) + 1))
    numbers = " OR ".join(f"TRY_TO_NUMBER(F{i}, 12, 2) IS NULL" for i in (1, 2, 3, 4, 5, 6))
    stamps = " OR ".join(f"NOT REGEXP_LIKE(F{i}, '{ISO_TS}')" for i in (8, 9))
    return f"""CREATE OR REPLACE VIEW RAW.ORDER_LINES_PARSED AS
WITH f AS (
  SELECT FILE_NAME, LINE, ARRAY_SIZE(SPLIT(LINE, ',')) AS N_FIELDS,
    {fields}
  FROM RAW.FILE_LINES WHERE SOURCE = 'orders'
)
SELECT FILE_NAME, LINE,
  CASE
    WHEN N_FIELDS <> {len(ORDER_FIELDS)} THEN 'wrong number of fields'
    WHEN F1 = '' THEN 'ORDER_ID is missing'
    WHEN {numbers} THEN 'a number does not parse'
    WHEN {stamps} THEN 'a timestamp does not parse'
  END AS REJECT_REASON,
  TRY_TO_NUMBER(F1) AS ORDER_ID, TRY_TO_NUMBER(F2) AS CUSTOMER_ID, TRY_TO_NUMBER(F3) AS PRODUCT_ID,
  TRY_TO_NUMBER(F4) AS QUANTITY, TRY_TO_NUMBER(F5, 12, 2) AS UNIT_PRICE, TRY_TO_NUMBER(F6, 12, 2) AS AMOUNT,
  F7 AS STATUS,
  IFF(REGEXP_LIKE(F8, '{ISO_TS}'), TO_TIMESTAMP_NTZ(F8), NULL) AS ORDER_TS,
  IFF(REGEXP_LIKE(F9, '{ISO_TS}'), TO_TIMESTAMP_NTZ(F9), NULL) AS UPDATED_AT
FROM f"""


def step_layout(run: PatternRun, session: SnowflakeSession) -> None:
    run.step(
        "PROD layout: stage, landing tables, and the stream declared before any load",
        why="a stream returns only changes made after it exists: created after the first load, it would miss them",
    )
    create_prod_layout(session)


# --- Step 2 · Land files --------------------------------------------------------------------


def step_land(run: PatternRun, world: EcommerceWorld) -> Landing:
    run.step("Land files with counted defects", why="the loader's counts are checked against the generator's")
    landing = land_files(
        world, run.workdir, run.seed, batches=BATCHES, bad_line_rate=BAD_LINE_RATE, status_advances=STATUS_ADVANCES
    )
    run.table(landing.ground_truth(), title="ground truth from the generator")
    return landing


# --- Step 3 · COPY INTO, through the polling loader -----------------------------------------


def lines_copy(source: str, file_name: str) -> ddl.CopyInto:
    """The COPY that lands one staged file, line by line, into RAW.FILE_LINES."""
    file_format = CSV_LINES_FORMAT if source == "orders" else LINES_FORMAT
    return ddl.CopyInto(
        table="RAW.FILE_LINES",
        columns=("LINE",),
        source=f"@{STAGE}/{source}/{file_name}.gz",
        file_format=file_format,
        on_error=ddl.OnError.ABORT_STATEMENT,
    )


def poll_once(session: SnowflakeSession, inbox: Path) -> list[FileLoad]:
    """One round of the polling loader: each new inbox file staged, COPY'd line by line, tagged and judged."""
    return polling_loader.poll_once(session, inbox, stage=STAGE, copy=lines_copy, after_load=tag_and_judge)


def tag_and_judge(session: SnowflakeSession, source: str, file_name: str) -> None:
    """In the file's load transaction: tag its landed lines with their file, then judge them."""
    session.execute(
        "UPDATE RAW.FILE_LINES SET SOURCE = %s, FILE_NAME = %s WHERE FILE_NAME IS NULL", (source, file_name)
    )
    if source == "orders":
        judge_order_lines(session, file_name)
    else:
        parse_clickstream_lines(session, file_name)


def judge_order_lines(session: SnowflakeSession, file_name: str) -> None:
    """Typed rows to RAW.ORDERS_RAW (each with the next change offset), the rest to the reject report."""
    columns = ", ".join(ORDER_FIELDS)
    session.execute(
        f"""INSERT INTO RAW.ORDERS_RAW ({columns}, _FILE, _SEQ)
SELECT {columns}, FILE_NAME,
  (SELECT COALESCE(MAX(_SEQ), 0) FROM RAW.ORDERS_RAW) + ROW_NUMBER() OVER (ORDER BY ORDER_ID, UPDATED_AT, LINE)
FROM RAW.ORDER_LINES_PARSED WHERE FILE_NAME = %s AND REJECT_REASON IS NULL""",
        (file_name,),
    )
    session.execute(
        """INSERT INTO RAW.ORDER_REJECTS (FILE_NAME, LINE, REASON)
SELECT FILE_NAME, LINE, REJECT_REASON FROM RAW.ORDER_LINES_PARSED
WHERE FILE_NAME = %s AND REJECT_REASON IS NOT NULL""",
        (file_name,),
    )


def parse_clickstream_lines(session: SnowflakeSession, file_name: str) -> None:
    """Valid JSON lines become VARIANT rows; lines TRY_PARSE_JSON cannot read are kept as rejects."""
    session.execute(
        """INSERT INTO RAW.CLICKSTREAM (FILE_NAME, V)
SELECT FILE_NAME, TRY_PARSE_JSON(LINE) FROM RAW.FILE_LINES
WHERE SOURCE = 'clickstream' AND FILE_NAME = %s AND TRY_PARSE_JSON(LINE) IS NOT NULL""",
        (file_name,),
    )
    session.execute(
        """INSERT INTO RAW.CLICKSTREAM_REJECTS (FILE_NAME, LINE)
SELECT FILE_NAME, LINE FROM RAW.FILE_LINES
WHERE SOURCE = 'clickstream' AND FILE_NAME = %s AND TRY_PARSE_JSON(LINE) IS NULL""",
        (file_name,),
    )


def strict_copy(session: SnowflakeSession, file_name: str) -> tuple[bool, int, str]:
    """The default ON_ERROR = ABORT_STATEMENT on a typed table: one bad line fails the whole file."""
    session.execute(f"CREATE TABLE IF NOT EXISTS CORE.ORDERS_STRICT ({ORDER_DDL})")
    copy = ddl.CopyInto(
        table="CORE.ORDERS_STRICT", source=f"@{STAGE}/orders/{file_name}.gz", file_format=ddl.FileFormat(skip_header=1)
    )
    try:
        session.execute(copy.to_sql())
        failed, message = False, ""
    except Exception as exc:
        failed, message = True, str(getattr(exc, "msg", "") or exc).splitlines()[0][:120]
    return failed, int(session.scalar("SELECT COUNT(*) FROM CORE.ORDERS_STRICT")), message


def step_copy(run: PatternRun, session: SnowflakeSession, landing: Landing) -> None:
    run.step(
        "COPY INTO: ABORT_STATEMENT fails the file, CONTINUE keeps good rows, nothing is lost",
        why="one bad line must neither fail a whole file nor vanish without a trace",
    )
    first = [f"batch={i:03d}.csv" for i in range(BATCHES - 1)]
    arrive(landing, "orders", first)
    arrive(landing, "clickstream", [f"batch={i:03d}.json" for i in range(BATCHES - 1)])
    with run.stand_in(*POLLING_LOADER):
        round_one = poll_once(session, landing.inbox)
    run.table([{"file": f.file, "status": f.status, "lines": f.lines} for f in round_one], title="round 1")
    failed, strict_rows, message = strict_copy(session, first[0])
    run.say(f"ON_ERROR = ABORT_STATEMENT on a typed table: {'failed' if failed else 'loaded'} — {message}")
    run.check(
        "ABORT_STATEMENT: a file with a bad line loads nothing (the COPY is atomic)",
        failed and strict_rows == 0,
        f"failed={failed}, rows in CORE.ORDERS_STRICT={strict_rows}",
    )
    session.execute("CREATE TABLE IF NOT EXISTS CORE.ORDERS_CONTINUE LIKE CORE.ORDERS_STRICT")
    continue_copy = ddl.CopyInto(
        table="CORE.ORDERS_CONTINUE",
        source=f"@{STAGE}/orders/{first[0]}.gz",
        file_format=ddl.FileFormat(skip_header=1),
        on_error=ddl.OnError.CONTINUE,
    )
    loaded = session.cloud_only_fetch(continue_copy, purpose="keep every good row of the file and report the bad ones")
    run.note(
        "Local equivalent of ON_ERROR = CONTINUE that also runs on an account: land each line as one "
        "VARCHAR (nothing can fail), then judge every line in SQL — typed rows go on, rejects are kept with a reason."
    )
    rejects = session.fetch("SELECT REASON, COUNT(*) AS N FROM RAW.ORDER_REJECTS GROUP BY REASON ORDER BY REASON")
    run.table(rejects, title="rejected order lines after round 1, by reason")
    if loaded is not None:
        format_valid = session.scalar(
            "SELECT COUNT(*) FROM RAW.ORDER_LINES_PARSED WHERE FILE_NAME = %s "
            "AND COALESCE(REJECT_REASON, '') <> 'wrong number of fields'",
            (f"orders/{first[0]}",),
        )
        continue_rows = session.scalar("SELECT COUNT(*) FROM CORE.ORDERS_CONTINUE")
        run.check(
            "ON_ERROR = CONTINUE loaded exactly the well-formed lines",
            continue_rows == format_valid,
            f"{continue_rows} = {format_valid}",
        )


# --- Step 4 · Snowpipe, and the polling loader rerun ----------------------------------------


def snowpipe_definitions() -> list[ddl.StorageIntegration | ddl.ExternalStage | ddl.Pipe]:
    """Snowpipe auto-ingest: bucket → event notification → serverless COPY. Placeholders name your bucket."""
    integration = ddl.StorageIntegration(
        name="LANDING_INT",
        provider=ddl.StorageProvider.S3,
        allowed_locations=(EXAMPLE_BUCKET,),
        aws_role_arn=EXAMPLE_ROLE_ARN,
    )
    stage = ddl.ExternalStage(name="RAW.LAKE_LANDING", url=EXAMPLE_BUCKET, storage_integration="LANDING_INT")
    pipe = ddl.Pipe(
        name="RAW.ORDERS_PIPE",
        auto_ingest=True,
        copy_statement=ddl.CopyInto(
            table="RAW.FILE_LINES",
            columns=("SOURCE", "FILE_NAME", "LINE"),
            transform=("'orders'", "METADATA$FILENAME", "$1"),
            source="@RAW.LAKE_LANDING/orders/",
            file_format=CSV_LINES_FORMAT,
            on_error=ddl.OnError.SKIP_FILE,
        ),
        comment="lands order files line by line as they arrive; validation runs downstream",
    )
    return [integration, stage, pipe]


def table_counts(session: SnowflakeSession) -> dict[str, int]:
    tables = ("RAW.FILE_LINES", "RAW.ORDERS_RAW", "RAW.ORDER_REJECTS", "RAW.CLICKSTREAM", "RAW.CLICKSTREAM_REJECTS")
    return {t: int(session.scalar(f"SELECT COUNT(*) FROM {t}")) for t in tables}


def step_snowpipe(run: PatternRun, session: SnowflakeSession, landing: Landing) -> int:
    run.step(
        "Snowpipe auto-ingest, and its local twin: a polling loader made idempotent by load metadata",
        why="files arrive all day; each must load exactly once, however often the loader runs",
    )
    for statement in snowpipe_definitions():
        session.recommend(
            statement,
            purpose="Snowpipe: load each file seconds after the bucket announces it",
            why_not_applied="needs your own bucket, IAM role and event notification (replace the placeholders)",
        )
    arrive(landing, "orders", [f"batch={BATCHES - 1:03d}.csv"])
    arrive(landing, "clickstream", [f"batch={BATCHES - 1:03d}.json"])
    with run.stand_in(*POLLING_LOADER):
        round_two = poll_once(session, landing.inbox)
        run.table([{"file": f.file, "status": f.status, "lines": f.lines} for f in round_two], title="round 2")
        after_two = table_counts(session)
        round_three = poll_once(session, landing.inbox)
    after_three = table_counts(session)
    run.check(
        "round 2 loads only the new files; round 3 (nothing new) loads nothing",
        sum(f.status == "LOADED" for f in round_two) == 2 and not any(f.status == "LOADED" for f in round_three),
        f"round 2 loaded {sum(f.status == 'LOADED' for f in round_two)}, round 3 loaded "
        f"{sum(f.status == 'LOADED' for f in round_three)} of {len(round_three)}",
    )
    run.check("a rerun changes no table", after_two == after_three, str(after_three))
    order_lines = landing.orders_delivered + landing.orders_truncated
    reasons = {
        r["REASON"]: int(r["N"])
        for r in session.fetch("SELECT REASON, COUNT(*) AS N FROM RAW.ORDER_REJECTS GROUP BY REASON")
    }
    typed = after_three["RAW.ORDERS_RAW"]
    landed = int(session.scalar("SELECT COUNT(*) FROM RAW.FILE_LINES WHERE SOURCE = 'orders'"))
    run.check(
        "order lines in = typed rows + rejected lines (every line accounted for)",
        landed == order_lines == typed + sum(reasons.values()),
        f"{landed} landed = {order_lines} delivered+truncated = {typed} typed + {sum(reasons.values())} rejected",
    )
    truth = {"wrong number of fields": landing.orders_truncated, "ORDER_ID is missing": landing.orders_null_keys}
    run.check(
        "rejects match the generator: truncated lines and null keys, nothing else",
        reasons == {reason: n for reason, n in truth.items() if n},
        str(reasons),
    )
    run.figure("order lines rejected", sum(reasons.values()), "lines", how="ON_ERROR=CONTINUE twin", key=True)
    return typed


# --- Step 5 · CDC: stream + task ------------------------------------------------------------


def merge_sql(changes: str) -> str:
    """The task body: dedup the change set with QUALIFY, then upsert; an older version never wins."""
    columns = ", ".join(ORDER_FIELDS)
    updates = ", ".join(f"{c} = s.{c}" for c in ORDER_FIELDS if c != "ORDER_ID")
    values = ", ".join(f"s.{c}" for c in ORDER_FIELDS)
    return f"""MERGE INTO CORE.ORDERS AS t
USING (
  SELECT {columns} FROM {changes}
  QUALIFY ROW_NUMBER() OVER (PARTITION BY ORDER_ID ORDER BY UPDATED_AT DESC, _SEQ DESC) = 1
) AS s
ON t.ORDER_ID = s.ORDER_ID
WHEN MATCHED AND s.UPDATED_AT > t.UPDATED_AT THEN UPDATE SET {updates}
WHEN NOT MATCHED THEN INSERT ({columns}) VALUES ({values})"""


def order_changes(session: SnowflakeSession) -> ChangeSet:
    """The changes the task consumes: the stream on an account, rows past a committed offset locally."""
    return ChangeSet(
        session, table="RAW.ORDERS_RAW", stream=STREAM, offsets="CORE.CDC_OFFSETS", consumer="MERGE_ORDERS"
    )


def orders_match(session: SnowflakeSession, expected: pd.DataFrame) -> tuple[int, int]:
    """(rows in CORE.ORDERS, rows that differ from the pandas ground truth on key, status, amount, updated_at)."""
    actual = session.fetch_df("SELECT ORDER_ID, STATUS, AMOUNT, UPDATED_AT FROM CORE.ORDERS")
    return len(actual), orders_differing(actual, expected)


def step_cdc(
    run: PatternRun, session: SnowflakeSession, world: EcommerceWorld, landing: Landing, typed: int
) -> tuple[str, int]:
    run.step(
        "CDC: stream + task, locally an offset-driven change set; MERGE fed by QUALIFY dedup",
        why="downstream tables must apply every change exactly once, across crashes and reruns",
    )
    task = ddl.Task(
        name="CORE.MERGE_ORDERS",
        warehouse=run.settings.snowflake.get("SNOWFLAKE_WAREHOUSE"),
        schedule="1 MINUTE",
        when=f"SYSTEM$STREAM_HAS_DATA('{STREAM}')",
        body=merge_sql(STREAM),
    )
    session.cloud_only(task, purpose="upsert CORE.ORDERS from the stream whenever it has data")
    if task.warehouse is None:
        run.note("No WAREHOUSE in the task: a serverless task, sized and billed per run by Snowflake.")
    session.recommend(
        ddl.ResumeTask(name="CORE.MERGE_ORDERS"),
        purpose="start the schedule",
        why_not_applied="a resumed task runs every minute on your account; resume it when you mean to",
    )
    changes = order_changes(session)
    if session.is_local:
        run.stand_in(changes.feature, "an offset-driven change set: the rows of RAW.ORDERS_RAW past the offset "
                     "committed in CORE.CDC_OFFSETS, the offset committed after the MERGE")  # fmt: skip
    delivered, _, _ = changes.consume(merge_sql)
    run.check("run 1: the change set is every typed row loaded so far", delivered == typed,
              f"{delivered} delivered = {typed} appended")  # fmt: skip
    expected_first = expected_orders(world)
    rows, differing = orders_match(session, expected_first)
    run.check(
        "CORE.ORDERS = latest version per ORDER_ID (duplicates collapsed by QUALIFY)",
        rows == len(expected_first) and differing == 0,
        f"{rows} rows, {differing} differ from the pandas ground truth",
    )
    delivered_before = int(session.scalar("SELECT COUNT_IF(STATUS = 'delivered') FROM CORE.ORDERS"))
    arrive(landing, "orders", [f"batch={BATCHES:03d}.csv"], folder="orders_later")
    with run.stand_in(*POLLING_LOADER):
        poll_once(session, landing.inbox)
    updates = len(landing.status_updates)
    if session.is_local:
        killed_delivered, killed_changed, merge_query_id = changes.consume(merge_sql, crash_before_offset_commit=True)
        _, pending_after_kill, _ = changes.pending()
        run.check(
            "a run killed after its MERGE, before its offset commit, leaves those changes pending",
            killed_delivered == killed_changed == pending_after_kill == updates,
            f"{killed_changed} upserted, {pending_after_kill} still pending",
        )
        delivered2, changed2, _ = changes.consume(merge_sql)
        run.check(
            "the rerun re-delivers them and the MERGE applies nothing twice",
            delivered2 == updates and changed2 == 0,
            f"{delivered2} delivered again, {changed2} changed",
        )
        upserted = killed_changed
    else:
        run.note("On an account the MERGE consumes the stream atomically: there is no window to kill.")
        delivered2, upserted, merge_query_id = changes.consume(merge_sql)
        run.check(
            "run 2 delivers exactly the status updates and upserts each once",
            delivered2 == upserted == updates,
            f"{delivered2} delivered, {upserted} changed, {updates} updates sent",
        )
    delivered3, changed3, _ = changes.consume(merge_sql)
    run.check("run 3 (no new data) delivers and changes nothing", delivered3 == changed3 == 0)
    expected_final = expected_orders(world, landing.status_updates)
    rows, differing = orders_match(session, expected_final)
    run.check(
        "final CORE.ORDERS equals the ground truth after the upserts",
        rows == len(expected_final) and differing == 0,
        f"{rows} rows, {differing} differ",
    )
    run.figure("orders upserted by CDC", upserted, "rows", how="MERGE change count for the update file", key=True)
    return merge_query_id, delivered_before


# --- Step 6 · Semi-structured ---------------------------------------------------------------


def build_clickstream_views(session: SnowflakeSession) -> None:
    """Project VARIANT into typed columns (dedup by EVENT_ID) and nest sessions as JSON documents."""
    session.execute(
        """CREATE OR REPLACE VIEW CORE.CLICKSTREAM_EVENTS AS
SELECT V:event_id::NUMBER AS EVENT_ID, V:session_id::NUMBER AS SESSION_ID, V:customer_id::NUMBER AS CUSTOMER_ID,
  V:product_id::NUMBER AS PRODUCT_ID, V:event_type::STRING AS EVENT_TYPE, V:channel::STRING AS CHANNEL,
  V:price::FLOAT AS PRICE, V:event_ts::TIMESTAMP_NTZ AS EVENT_TS, V:device::STRING AS DEVICE, FILE_NAME
FROM RAW.CLICKSTREAM
WHERE V:event_id::NUMBER IS NOT NULL
QUALIFY ROW_NUMBER() OVER (PARTITION BY V:event_id::NUMBER ORDER BY FILE_NAME) = 1"""
    )
    session.execute(
        """CREATE OR REPLACE TABLE CORE.SESSION_DOCS AS
SELECT SESSION_ID,
  OBJECT_CONSTRUCT('session_id', SESSION_ID, 'customer_id', MIN(CUSTOMER_ID),
    'events', ARRAY_AGG(OBJECT_CONSTRUCT('event_type', EVENT_TYPE, 'product_id', PRODUCT_ID,
                                         'at', TO_VARCHAR(EVENT_TS)))
              WITHIN GROUP (ORDER BY EVENT_TS, EVENT_ID)) AS DOC
FROM CORE.CLICKSTREAM_EVENTS GROUP BY SESSION_ID"""
    )


def schema_keys_by_file(session: SnowflakeSession) -> dict[str, set[str]]:
    """FLATTEN every JSON object into its keys: the schema each file actually carries."""
    rows = session.fetch(
        """SELECT FILE_NAME, f.key AS KEY_NAME, COUNT(*) AS N
FROM RAW.CLICKSTREAM, LATERAL FLATTEN(input => V) f
GROUP BY FILE_NAME, f.key ORDER BY FILE_NAME, KEY_NAME"""
    )
    keys: dict[str, set[str]] = {}
    for row in rows:
        keys.setdefault(row["FILE_NAME"], set()).add(row["KEY_NAME"])
    return keys


def funnel_from_documents(session: SnowflakeSession) -> dict[str, int]:
    """FLATTEN the nested `events` arrays back into rows and count the funnel stages."""
    rows = session.fetch(
        """SELECT e.value:event_type::STRING AS EVENT_TYPE, COUNT(*) AS N
FROM CORE.SESSION_DOCS, LATERAL FLATTEN(input => DOC:events) e GROUP BY 1"""
    )
    return {r["EVENT_TYPE"]: int(r["N"]) for r in rows}


def step_semi_structured(run: PatternRun, session: SnowflakeSession, world: EcommerceWorld, landing: Landing) -> None:
    run.step(
        "Semi-structured: raw JSON in VARIANT, FLATTEN to columns, drift detected",
        why="keep the JSON exactly as it came, query it as columns, and notice when its shape changes",
    )
    malformed = int(session.scalar("SELECT COUNT(*) FROM RAW.CLICKSTREAM_REJECTS"))
    parsed = int(session.scalar("SELECT COUNT(*) FROM RAW.CLICKSTREAM"))
    run.check(
        "TRY_PARSE_JSON kept every record and rejected exactly the truncated lines",
        parsed == landing.events_delivered and malformed == landing.events_malformed,
        f"{parsed} parsed = {landing.events_delivered}, {malformed} rejected = {landing.events_malformed}",
    )
    keys = schema_keys_by_file(session)
    run.table(
        [{"file": f, "keys": ", ".join(sorted(k))} for f, k in sorted(keys.items())], title="keys by file (FLATTEN)"
    )
    drifted = {f for f, k in keys.items() if "device" in k}
    run.check(
        "schema drift found: `device` appears from the second batch on",
        drifted == {f"clickstream/batch={i:03d}.json" for i in range(1, BATCHES)},
        ", ".join(sorted(drifted)),
    )
    build_clickstream_views(session)
    events = int(session.scalar("SELECT COUNT(*) FROM CORE.CLICKSTREAM_EVENTS"))
    run.check(
        "the typed view holds each keyed event once (duplicates and null keys out)",
        events == landing.events_clean - landing.events_null_keys,
        f"{events} = {landing.events_clean} generated - {landing.events_null_keys} null keys",
    )
    funnel = funnel_from_documents(session)
    run.table([{"event type": k, "events": v} for k, v in sorted(funnel.items())], title="funnel from nested docs")
    run.check("FLATTEN of the nested session documents gives the generator's funnel", funnel == expected_funnel(world))


# --- Step 7 · Environments ------------------------------------------------------------------


def base_tables(session: SnowflakeSession, database: str) -> list[str]:
    rows = session.fetch(
        f"SELECT TABLE_SCHEMA, TABLE_NAME FROM {database}.INFORMATION_SCHEMA.TABLES "
        "WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA IN ('RAW', 'CORE') ORDER BY 1, 2"
    )
    return [f"{r['TABLE_SCHEMA']}.{r['TABLE_NAME']}" for r in rows]


def clone_environment(run: PatternRun, session: SnowflakeSession, prod: str, env: str) -> None:
    """`CREATE DATABASE env CLONE prod` on an account; locally, a copy made table by table."""
    session.cloud_only(
        ddl.Clone(object_type=ddl.ObjectType.DATABASE, name=env, source=prod),
        purpose=f"{env}: a zero-copy clone of {prod} (storage is shared until either side changes)",
    )
    if not session.is_local:
        return
    how = ("a copy made table by table (fakesnow 0.12.1 creates a cloned database empty, and DuckDB has no "
           "shared micro-partitions, so each table is copied)")  # fmt: skip
    with run.stand_in(DATABASE_CLONE, how):
        session.execute(f"CREATE DATABASE IF NOT EXISTS {env}")
        for table in base_tables(session, prod):
            schema = table.split(".")[0]
            session.execute(f"CREATE SCHEMA IF NOT EXISTS {env}.{schema}")
            session.execute(f"CREATE TABLE {env}.{table} CLONE {prod}.{table}")


def differing_rows(session: SnowflakeSession, left: str, right: str) -> int:
    """Rows in one table and not the other, both ways (0 means identical contents)."""
    return int(
        session.scalar(
            f"SELECT (SELECT COUNT(*) FROM (SELECT * FROM {left} EXCEPT SELECT * FROM {right}))"
            f" + (SELECT COUNT(*) FROM (SELECT * FROM {right} EXCEPT SELECT * FROM {left}))"
        )
    )


def step_environments(run: PatternRun, session: SnowflakeSession) -> str:
    prod = session.database
    run.step(
        "Environments: DEV and QA from PROD by zero-copy CLONE",
        why="test against a full, current copy of PROD without storing it twice or touching PROD",
    )
    env_dbs = [f"{prod}_{env}" for env in ENVIRONMENTS]
    for env in env_dbs:
        clone_environment(run, session, prod, env)
    tables = base_tables(session, prod)
    compared = [
        {"table": t, **{env: differing_rows(session, f"{prod}.{t}", f"{env}.{t}") for env in env_dbs}} for t in tables
    ]
    run.table(compared, title="rows differing from PROD (EXCEPT both ways)")
    run.check(
        "every table in DEV and QA is identical to PROD",
        all(row[env] == 0 for row in compared for env in env_dbs),
        f"{len(tables)} tables x {len(env_dbs)} environments",
    )
    dev = env_dbs[0]
    session.execute(f"UPDATE {dev}.CORE.ORDERS SET STATUS = 'dev-test' WHERE ORDER_ID <= 10")
    run.check(
        "a change in DEV leaves PROD and QA untouched",
        int(session.scalar(f"SELECT COUNT_IF(STATUS = 'dev-test') FROM {prod}.CORE.ORDERS")) == 0
        and differing_rows(session, f"{prod}.CORE.ORDERS", f"{env_dbs[1]}.CORE.ORDERS") == 0
        and differing_rows(session, f"{prod}.CORE.ORDERS", f"{dev}.CORE.ORDERS") > 0,
    )
    return dev


# --- Step 8 · Recovery ----------------------------------------------------------------------


def step_recovery(
    run: PatternRun, session: SnowflakeSession, dev: str, merge_query_id: str, delivered_before: int
) -> None:
    prod = session.database
    run.step(
        "Recovery: Time Travel, restore by clone, UNDROP, failover (cloud DDL)",
        why="a bad change, a dropped table or a lost region each need a way back that was set up beforehand",
    )
    session.cloud_only(
        ddl.SetDataRetention(name="CORE.ORDERS", days=1),
        purpose="keep one day of history (up to 90 days on Enterprise edition)",
    )
    before_updates = ddl.TimeTravel(before_statement=merge_query_id)
    seen = session.cloud_only_fetch(
        ddl.TimeTravelQuery(
            table="CORE.ORDERS", at=before_updates, columns=("COUNT_IF(STATUS = 'delivered') AS DELIVERED",)
        ),
        purpose="read CORE.ORDERS as it was just before the status-update MERGE",
    )
    session.cloud_only(
        ddl.Clone(name="CORE.ORDERS_BEFORE_UPDATES", source="CORE.ORDERS", at=before_updates),
        purpose="restore path: a zero-copy clone of the table as of before the bad change",
    )
    session.execute(f"DROP TABLE IF EXISTS {dev}.CORE.ORDERS")
    session.cloud_only(ddl.Undrop(name=f"{dev}.CORE.ORDERS"), purpose="bring back a table dropped by mistake")
    session.recommend(
        ddl.FailoverGroup(
            name="SHOP_DR",
            object_types=(ddl.ReplicatedObject.DATABASES, ddl.ReplicatedObject.ROLES),
            allowed_databases=(prod,),
            allowed_accounts=(DR_ACCOUNT,),
            replication_schedule="10 MINUTE",
        ),
        purpose="replicate PROD and its roles to a second account every 10 minutes (RPO ≈ 10 min)",
        why_not_applied="needs a second account in your organization (Business Critical edition for failover)",
    )
    if seen is not None:
        run.check(
            "Time Travel shows the delivered count from before the MERGE",
            int(seen[0]["DELIVERED"]) == delivered_before,
            f"{seen[0]['DELIVERED']} = {delivered_before}",
        )
        restored = int(session.scalar(f"SELECT COUNT(*) FROM {dev}.CORE.ORDERS"))
        run.check("UNDROP restored the DEV table", restored > 0, f"{restored} rows")
    else:
        run.note(
            "Time Travel and UNDROP cannot run locally; the local twin of time travel and restore is "
            "Delta Lake's (DESCRIBE HISTORY, VERSION AS OF, RESTORE) in databricks/01."
        )
    run.figure("cloud-only statements", len(session.ledger), "statements", how="typed DDL in the ledger", key=True)


def body(run: PatternRun) -> None:
    world = EcommerceWorld(run.rows, seed=run.seed)
    with run.snowflake(database=PROD_DATABASE, schema="RAW") as session:
        step_layout(run, session)
        landing = step_land(run, world)
        step_copy(run, session, landing)
        typed = step_snowpipe(run, session, landing)
        merge_query_id, delivered_before = step_cdc(run, session, world, landing, typed)
        step_semi_structured(run, session, world, landing)
        dev = step_environments(run, session)
        step_recovery(run, session, dev, merge_query_id, delivered_before)


def main(argv: Sequence[str] | None = None) -> int:
    return run_pattern(__file__, argv, body, default_rows=10_000)


if __name__ == "__main__":
    raise SystemExit(main())
