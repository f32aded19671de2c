"""Snowflake as a monitored source: the exporter's SQL over ACCOUNT_USAGE against a pandas recomputation."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
from prometheus_client import generate_latest

from expert.lakehouse.snowflake_metrics import QUERY_WINDOW, SnowflakeMetrics, collect, queued_over, queued_shares

NOW = datetime(2026, 1, 5, 9, 10)


def history() -> pd.DataFrame:
    rows = [
        # BI_WH: 8 queries of 30 s at once, then 4 more that queue 20 s each; one of them fails
        *[("BI_WH", NOW - timedelta(minutes=6), "SUCCESS", 0, 30_000) for _ in range(8)],
        *[("BI_WH", NOW - timedelta(minutes=6), "FAIL" if i == 0 else "SUCCESS", 20_000, 30_000) for i in range(4)],
        ("ETL_WH", NOW - timedelta(minutes=2), "SUCCESS", 0, 60_000),
        ("ETL_WH", NOW - QUERY_WINDOW - timedelta(seconds=1), "SUCCESS", 99_000, 1_000),  # just outside the window
    ]
    return pd.DataFrame(
        rows, columns=["WAREHOUSE_NAME", "START_TIME", "EXECUTION_STATUS", "QUEUED_OVERLOAD_TIME", "EXECUTION_TIME"]
    )


def test_the_exporter_reads_queueing_failures_and_credits(snowflake_local) -> None:  # type: ignore[no-untyped-def]
    session = snowflake_local
    session.execute("CREATE DATABASE IF NOT EXISTS SNOWFLAKE")
    session.execute("CREATE SCHEMA IF NOT EXISTS SNOWFLAKE.ACCOUNT_USAGE")
    session.execute(
        "CREATE TABLE SNOWFLAKE.ACCOUNT_USAGE.QUERY_HISTORY (WAREHOUSE_NAME VARCHAR, START_TIME TIMESTAMP_NTZ, "
        "EXECUTION_STATUS VARCHAR, QUEUED_OVERLOAD_TIME NUMBER, EXECUTION_TIME NUMBER)"
    )
    session.execute(
        "CREATE TABLE SNOWFLAKE.ACCOUNT_USAGE.WAREHOUSE_METERING_HISTORY (START_TIME TIMESTAMP_NTZ, "
        "END_TIME TIMESTAMP_NTZ, WAREHOUSE_NAME VARCHAR, CREDITS_USED FLOAT)"
    )
    frame = history()
    for row in frame.to_dict("records"):
        values = (row["WAREHOUSE_NAME"], row["START_TIME"].to_pydatetime(), row["EXECUTION_STATUS"])
        values += (int(row["QUEUED_OVERLOAD_TIME"]), int(row["EXECUTION_TIME"]))
        session.execute("INSERT INTO SNOWFLAKE.ACCOUNT_USAGE.QUERY_HISTORY VALUES (%s, %s, %s, %s, %s)", values)
    session.execute(
        "INSERT INTO SNOWFLAKE.ACCOUNT_USAGE.WAREHOUSE_METERING_HISTORY VALUES "
        "('2026-01-05 08:00:00', '2026-01-05 09:00:00', 'BI_WH', 1.5), "
        "('2026-01-05 09:00:00', '2026-01-05 10:00:00', 'BI_WH', 7.0)"
    )
    metrics = SnowflakeMetrics()
    rows = {r["warehouse"]: r for r in collect(metrics, session, NOW)}
    assert rows["BI_WH"]["queries"] == 12 and rows["BI_WH"]["failed"] == 1
    assert rows["BI_WH"]["queued s"] == 80.0
    assert rows["BI_WH"]["credits last hour"] == 1.5, "the last complete hour, not the running one"
    assert rows["ETL_WH"]["queued s"] == 0.0, "a query outside the window does not count"
    shares = queued_shares(frame, [NOW])
    assert rows["BI_WH"]["queued share"] == round(shares[("BI_WH", NOW)], 3) == round(80 / (80 + 360), 3)
    exposition = generate_latest(metrics.registry).decode()
    assert 'snowflake_warehouse_queued_ratio{warehouse="BI_WH"}' in exposition
    later = {r["warehouse"]: r for r in collect(metrics, session, NOW + timedelta(hours=1))}
    assert later["BI_WH"]["queued share"] == 0.0 and later["BI_WH"]["queries"] == 0, "an idle window reports 0"
    assert metrics.names() >= {"snowflake_warehouse_queued_ratio", "snowflake_warehouse_failed_queries"}
    assert queued_over(session, [NOW], 0.1, consecutive=1) == {"BI_WH"}
    assert queued_over(session, [NOW, NOW + timedelta(minutes=3)], 0.1, consecutive=2) == {"BI_WH"}
    assert queued_over(session, [NOW, NOW + timedelta(minutes=10)], 0.1, consecutive=2) == set(), "not twice in a row"
