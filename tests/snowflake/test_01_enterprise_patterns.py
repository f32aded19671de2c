"""snowflake/01: staged loads, the polling loader, CDC offsets, JSON, clones and the cloud-only record.

Runs of main() come from the shared `pattern_run` fixture (cached per argument set; no Spark started).
"""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest
from pydantic import ValidationError

from expert.runtime.pattern import load_module, select_patterns
from expert.runtime.snowflake_ddl import (
    AccountUsageQuery,
    AddShareAccounts,
    AlterFailoverGroup,
    CatalogIntegration,
    Clone,
    CopyInto,
    FailoverGroup,
    FileFormat,
    GrantToShare,
    IcebergTable,
    OnError,
    Pipe,
    StorageIntegration,
    TimeTravel,
)


@pytest.fixture(scope="module")
def pattern() -> ModuleType:
    (meta,) = select_patterns("snowflake/01")
    return load_module(meta)


def test_pattern_passes_every_invariant(pattern_run) -> None:  # type: ignore[no-untyped-def]
    outcome = pattern_run("snowflake/01")
    code, report = outcome.exit_code, outcome.report
    assert code == 0, report.error
    assert report.checks and all(c.passed for c in report.checks)
    names = " | ".join(c.name for c in report.checks)
    for expected in ("ABORT_STATEMENT", "rerun changes no table", "applies nothing twice", "schema drift", "DEV"):
        assert expected in names


def test_cloud_only_record_lists_the_account_statements_in_order(pattern_run) -> None:  # type: ignore[no-untyped-def]
    recorded = pattern_run("snowflake/01").report.cloud_only
    expected_prefixes = [
        "CREATE OR REPLACE STREAM RAW.ORDERS_RAW_STREAM ON TABLE RAW.ORDERS_RAW APPEND_ONLY = TRUE",
        "COPY INTO CORE.ORDERS_CONTINUE",
        "CREATE STORAGE INTEGRATION IF NOT EXISTS LANDING_INT",
        "CREATE STAGE IF NOT EXISTS RAW.LAKE_LANDING",
        "CREATE PIPE IF NOT EXISTS RAW.ORDERS_PIPE",
        "CREATE OR REPLACE TASK CORE.MERGE_ORDERS",
        "ALTER TASK CORE.MERGE_ORDERS RESUME",
        "CREATE OR REPLACE DATABASE SHOP_DEV CLONE SHOP",
        "CREATE OR REPLACE DATABASE SHOP_QA CLONE SHOP",
        "ALTER TABLE CORE.ORDERS SET DATA_RETENTION_TIME_IN_DAYS = 1",
        "SELECT COUNT_IF(STATUS = 'delivered') AS DELIVERED FROM CORE.ORDERS BEFORE(STATEMENT =>",
        "CREATE OR REPLACE TABLE CORE.ORDERS_BEFORE_UPDATES CLONE CORE.ORDERS BEFORE(STATEMENT =>",
        "UNDROP TABLE SHOP_DEV.CORE.ORDERS",
        "CREATE FAILOVER GROUP IF NOT EXISTS SHOP_DR",
    ]
    assert len(recorded) == len(expected_prefixes)
    for sql, prefix in zip(recorded, expected_prefixes, strict=True):
        assert sql.startswith(prefix), (prefix, sql)
    assert "ON_ERROR = CONTINUE" in recorded[1]
    assert "WHEN SYSTEM$STREAM_HAS_DATA('RAW.ORDERS_RAW_STREAM')" in recorded[5]
    assert "FROM RAW.ORDERS_RAW_STREAM" in recorded[5] and "QUALIFY ROW_NUMBER()" in recorded[5]
    # Time Travel points at the query id of the MERGE that applied the status updates.
    assert re.search(r"BEFORE\(STATEMENT => '[0-9a-f-]{36}'\)", recorded[10])


def test_figures_come_from_the_run(pattern_run) -> None:  # type: ignore[no-untyped-def]
    report = pattern_run("snowflake/01").report
    assert report.value("cloud-only statements") == len(report.cloud_only)
    assert report.value("orders upserted by CDC") > 0
    assert report.value("order lines rejected") > 0


def test_a_second_run_at_another_size_is_clean(pattern_run) -> None:  # type: ignore[no-untyped-def]
    outcome = pattern_run("snowflake/01", "--rows", "3000", "--seed", "7")
    code, report = outcome.exit_code, outcome.report
    assert code == 0, report.error
    assert all(c.passed for c in report.checks)


def test_recorded_statements_really_fail_on_the_local_engine(snowflake_local) -> None:  # type: ignore[no-untyped-def]
    snowflake_local.execute("CREATE SCHEMA IF NOT EXISTS RAW")
    snowflake_local.execute("CREATE TABLE RAW.T (ID INT)")
    snowflake_local.execute("CREATE STAGE RAW.S")
    for sql in (
        "CREATE OR REPLACE STREAM RAW.T_STREAM ON TABLE RAW.T APPEND_ONLY = TRUE SHOW_INITIAL_ROWS = FALSE",
        CopyInto(table="RAW.T", source="@RAW.S/x.csv.gz", on_error=OnError.CONTINUE).to_sql(),
        "UNDROP TABLE RAW.T",
        "SELECT COUNT(*) FROM RAW.T AT(OFFSET => -60)",
    ):
        with pytest.raises(Exception):  # noqa: B017 - any engine error proves it cannot run locally
            snowflake_local.execute(sql)


def _setup(pattern: ModuleType, session) -> None:  # type: ignore[no-untyped-def]
    pattern.create_prod_layout(session)


def test_parse_view_judges_each_line(pattern: ModuleType, snowflake_local) -> None:  # type: ignore[no-untyped-def]
    _setup(pattern, snowflake_local)
    good = "1,2,3,1,10.5,10.5,placed,2026-01-02T03:04:05Z,2026-01-02T03:04:05Z"
    lines = {
        good: None,
        "1,2,3": "wrong number of fields",
        ",2,3,1,10.5,10.5,placed,2026-01-02T03:04:05Z,2026-01-02T03:04:05Z": "ORDER_ID is missing",
        "4,2,3,one,10.5,10.5,placed,2026-01-02T03:04:05Z,2026-01-02T03:04:05Z": "a number does not parse",
        "5,2,3,1,10.5,10.5,placed,yesterday,2026-01-02T03:04:05Z": "a timestamp does not parse",
    }
    for line in lines:
        snowflake_local.execute("INSERT INTO RAW.FILE_LINES VALUES ('orders', 'f', %s)", (line,))
    got = {r["LINE"]: r["REJECT_REASON"] for r in snowflake_local.fetch("SELECT * FROM RAW.ORDER_LINES_PARSED")}
    assert got == lines
    typed = snowflake_local.fetch(
        "SELECT ORDER_ID, AMOUNT, ORDER_TS FROM RAW.ORDER_LINES_PARSED WHERE LINE = %s", (good,)
    )
    assert typed[0]["ORDER_ID"] == 1 and float(typed[0]["AMOUNT"]) == 10.5
    assert typed[0]["ORDER_TS"] == pd.Timestamp("2026-01-02T03:04:05")


def test_polling_loader_loads_each_file_once(pattern: ModuleType, snowflake_local, workdir: Path) -> None:  # type: ignore[no-untyped-def]
    _setup(pattern, snowflake_local)
    inbox = workdir / "inbox" / "clickstream"
    inbox.mkdir(parents=True)
    (inbox / "a.json").write_text('{"event_id":1}\n{"event_id":2,"device":"ios"}\n{"event_\n')
    first = pattern.poll_once(snowflake_local, workdir / "inbox")
    (inbox / "b.json").write_text('{"event_id":3}\n')
    second = pattern.poll_once(snowflake_local, workdir / "inbox")
    assert [(f.file, f.status, f.lines) for f in first] == [("clickstream/a.json", "LOADED", 3)]
    assert [(f.file, f.status) for f in second] == [
        ("clickstream/a.json", "SKIPPED (loaded before)"),
        ("clickstream/b.json", "LOADED"),
    ]
    assert snowflake_local.scalar("SELECT COUNT(*) FROM RAW.CLICKSTREAM") == 3
    assert snowflake_local.scalar("SELECT COUNT(*) FROM RAW.CLICKSTREAM_REJECTS") == 1


def _append(session, rows: list[tuple[int, str, str]]) -> None:  # type: ignore[no-untyped-def]
    """Append (order_id, status, updated_at) versions to RAW.ORDERS_RAW with the next offsets."""
    base = int(session.scalar("SELECT COALESCE(MAX(_SEQ), 0) FROM RAW.ORDERS_RAW"))
    for i, (order_id, status, updated) in enumerate(rows, start=1):
        session.execute(
            "INSERT INTO RAW.ORDERS_RAW VALUES (%s, 1, 1, 1, 1, 1, %s, '2026-01-01', %s, 'f', %s)",
            (order_id, status, updated, base + i),
        )


def test_change_set_delivers_appended_rows_once_and_merge_keeps_the_newest(
    pattern: ModuleType, snowflake_local
) -> None:  # type: ignore[no-untyped-def]
    _setup(pattern, snowflake_local)
    changes = pattern.order_changes(snowflake_local)
    _append(snowflake_local, [(1, "placed", "2026-01-01"), (1, "shipped", "2026-01-02"), (2, "placed", "2026-01-01")])
    assert changes.consume(pattern.merge_sql)[:2] == (3, 2)
    assert changes.pending()[1] == 0
    # A stale version arriving late must not overwrite the newer one; a newer one must.
    _append(snowflake_local, [(1, "placed", "2026-01-01"), (2, "delivered", "2026-01-03")])
    delivered, changed, _ = changes.consume(pattern.merge_sql, crash_before_offset_commit=True)
    assert (delivered, changed) == (2, 1)
    assert changes.consume(pattern.merge_sql)[:2] == (2, 0), "the re-delivered change set is applied once"
    final = {r["ORDER_ID"]: r["STATUS"] for r in snowflake_local.fetch("SELECT ORDER_ID, STATUS FROM CORE.ORDERS")}
    assert final == {1: "shipped", 2: "delivered"}


def test_copy_and_pipe_definitions_are_validated() -> None:
    lines = FileFormat(skip_header=1, field_delimiter="NONE", escape_unenclosed_field="NONE")
    copy = CopyInto(table="raw.t", columns=("line",), source="@raw.s/orders/a.csv.gz", file_format=lines)
    assert copy.to_sql() == (
        "COPY INTO RAW.T (LINE)\n  FROM @RAW.S/orders/a.csv.gz\n"
        "  FILE_FORMAT = (TYPE = CSV SKIP_HEADER = 1 FIELD_DELIMITER = NONE ESCAPE_UNENCLOSED_FIELD = NONE)\n"
        "  ON_ERROR = ABORT_STATEMENT"
    )
    with pytest.raises(ValidationError, match="ABORT_STATEMENT"):
        Pipe(name="p", copy_statement=copy)
    with pytest.raises(ValidationError, match="FORCE"):
        Pipe(name="p", copy_statement=copy.model_copy(update={"on_error": OnError.SKIP_FILE, "force": True}))
    with pytest.raises(ValidationError, match="stage reference"):
        CopyInto(table="t", source="s3://bucket/x")
    with pytest.raises(ValidationError, match="CSV only"):
        FileFormat(type="JSON", skip_header=1)
    with pytest.raises(ValidationError, match="aws_role_arn"):
        StorageIntegration(name="i", provider="S3", allowed_locations=("s3://b/x/",))


def test_time_travel_clone_and_replication_definitions() -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        TimeTravel(seconds_ago=60, timestamp="2026-01-01 00:00:00")
    clone = Clone(name="core.orders_restored", source="core.orders", at=TimeTravel(seconds_ago=3600))
    assert clone.to_sql() == "CREATE OR REPLACE TABLE CORE.ORDERS_RESTORED CLONE CORE.ORDERS AT(OFFSET => -3600)"
    with pytest.raises(ValidationError, match="allowed_databases"):
        FailoverGroup(name="dr", object_types=["DATABASES"], allowed_accounts=["org.dr"])
    with pytest.raises(ValidationError, match="org_name"):
        FailoverGroup(name="dr", object_types=["ROLES"], allowed_accounts=["just_an_account"])
    assert AlterFailoverGroup(name="dr", action="PRIMARY").to_sql() == "ALTER FAILOVER GROUP DR PRIMARY"
    grant = GrantToShare(privilege="SELECT", on="VIEW", object_name="shop.core.orders_v", share="partner")
    assert grant.to_sql() == "GRANT SELECT ON VIEW SHOP.CORE.ORDERS_V TO SHARE PARTNER"
    with pytest.raises(ValidationError, match="share can be granted"):
        GrantToShare(privilege="USAGE", on="WAREHOUSE", object_name="wh", share="partner")
    assert (
        AddShareAccounts(share="partner", accounts=["org.acme"]).to_sql()
        == "ALTER SHARE PARTNER ADD ACCOUNTS = ORG.ACME"
    )
    assert "TABLE_FORMAT = DELTA" in CatalogIntegration(name="delta_cat", table_format="DELTA").to_sql()
    iceberg = IcebergTable(name="gold.orders", external_volume="lake", catalog="delta_cat", base_location="gold/orders")
    assert "BASE_LOCATION = 'gold/orders'" in iceberg.to_sql()


def test_account_usage_queries_must_be_read_only() -> None:
    ok = AccountUsageQuery(view="LOGIN_HISTORY", sql="SELECT USER_NAME FROM SNOWFLAKE.ACCOUNT_USAGE.LOGIN_HISTORY")
    assert ok.to_sql().startswith("SELECT")
    with pytest.raises(ValidationError, match="exactly one SELECT"):
        AccountUsageQuery(view="LOGIN_HISTORY", sql="DELETE FROM SNOWFLAKE.ACCOUNT_USAGE.LOGIN_HISTORY")
    with pytest.raises(ValidationError, match="does not read"):
        AccountUsageQuery(view="LOGIN_HISTORY", sql="SELECT 1 FROM SNOWFLAKE.ACCOUNT_USAGE.QUERY_HISTORY")
