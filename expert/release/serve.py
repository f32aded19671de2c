"""Serve the live release from Snowflake: load exactly the live Delta version, tagged with its release.

Why: consumers in Snowflake must read the release that is live in Delta, never a half-loaded
table or another version. The load replaces the served table's rows with one Delta version (read
by time travel, so a publish that lands meanwhile cannot mix in), and every row carries the
release and the Delta version it came from, so "what am I looking at?" has one answer.

The load is write-audit-publish on the Snowflake side too: the rows go to a candidate table in
its own schema, dbt's tests on the `gold.daily_sales` source run against the candidate (the same
tests `dbt/lakehouse` runs on the served gold), and only a candidate every test passed replaces
the served rows, in one transaction. A failing dbt test blocks the publish, naming the test, and
consumers keep reading the previous release.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from expert.runtime.dbt import DbtResult, GateDecision, dbt_build, dbt_gate

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from expert.runtime.snowflake import SnowflakeEndpoint, SnowflakeSession

DAILY_SALES_COLUMNS = ("ORDER_DATE", "ORDERS", "UNITS", "REVENUE", "CUSTOMERS", "RETURNED_ORDERS")
CANDIDATE_SCHEMA = "CANDIDATE"
"""Where a load waits for dbt's verdict, beside GOLD in the same database."""
DBT_SELECTION = ("source:gold.daily_sales",)
"""The dbt nodes that gate the daily sales: the tests declared on that source, and nothing they would build."""


@dataclass(frozen=True)
class Served:
    """What was loaded from Delta and what Snowflake then serves."""

    delta_rows: int
    delta_revenue: float
    served_rows: int
    served_revenue: float
    releases: tuple[str, str]
    """The lowest and highest RELEASE tag served (equal when one release is served)."""


def serve_daily_sales(
    spark: SparkSession, session: SnowflakeSession, location: str, version: int, *, release: str, table: str
) -> Served:
    """Replace `table`'s rows with version `version` of the Delta daily sales table, tagged with `release`."""
    frame = spark.read.format("delta").option("versionAsOf", version).load(location).toPandas()
    session.execute(f"DELETE FROM {table}")
    rows = [
        (
            r.order_date.isoformat(),
            int(r.orders),
            int(r.units),
            float(r.revenue),
            int(r.customers),
            int(r.returned_orders),
            release,
            version,
        )
        for r in frame.itertuples()
    ]
    columns = ", ".join((*DAILY_SALES_COLUMNS, "RELEASE", "DELTA_VERSION"))
    placeholders = ", ".join(["%s"] * (len(DAILY_SALES_COLUMNS) + 2))
    session.connection.cursor().executemany(f"INSERT INTO {table} ({columns}) VALUES ({placeholders})", rows)
    rows_served, revenue, releases = served_figures(session, table)
    return Served(len(frame), float(frame["revenue"].astype(float).sum()), rows_served, revenue, releases)


@dataclass(frozen=True)
class GatedPublish:
    """One gated load: what the candidate held, dbt's run and verdict, and what is served afterwards."""

    candidate: Served
    dbt: DbtResult
    decision: GateDecision
    served: Served


def candidate_table(table: str) -> str:
    """`DB.GOLD.DAILY_SALES` → `DB.CANDIDATE.DAILY_SALES`: the same name in the candidate schema."""
    database, _, name = table.split(".")
    return f"{database}.{CANDIDATE_SCHEMA}.{name}"


def prepare_candidate(session: SnowflakeSession, table: str) -> str:
    """An empty candidate with the served table's columns (recreated each run, so no old rows linger)."""
    candidate = candidate_table(table)
    session.execute(f"CREATE SCHEMA IF NOT EXISTS {candidate.rsplit('.', 1)[0]}")
    session.execute(f"CREATE OR REPLACE TABLE {candidate} AS SELECT * FROM {table} LIMIT 0")
    return candidate


def served_figures(session: SnowflakeSession, table: str) -> tuple[int, float, tuple[str, str]]:
    """Rows, revenue and the lowest and highest release tag of a Snowflake daily sales table."""
    row = session.fetch(
        f"SELECT COUNT(*) AS N, SUM(REVENUE) AS REVENUE, MIN(RELEASE) AS LO, MAX(RELEASE) AS HI FROM {table}"
    )[0]
    return int(row["N"]), float(row["REVENUE"] or 0), (row["LO"], row["HI"])


def publish_if_dbt_passes(
    session: SnowflakeSession, endpoint: SnowflakeEndpoint, table: str, candidate: Served, workdir: Path
) -> GatedPublish:
    """Run dbt's tests on the candidate; replace `table`'s rows with it only when every test passed.

    `endpoint` reaches the same database as `session` (dbt runs in its own process); the swap is a
    DELETE and an INSERT … SELECT in one transaction, so a reader sees the old release or the new one.
    """
    result = dbt_build(endpoint, workdir, gold_schema=CANDIDATE_SCHEMA, select=DBT_SELECTION)
    decision = dbt_gate(result)
    if decision.publish:
        session.execute("BEGIN")
        session.execute(f"DELETE FROM {table}")
        session.execute(f"INSERT INTO {table} SELECT * FROM {candidate_table(table)}")
        session.execute("COMMIT")
    rows, revenue, releases = served_figures(session, table)
    served = Served(candidate.delta_rows, candidate.delta_revenue, rows, revenue, releases)
    return GatedPublish(candidate, result, decision, served)
