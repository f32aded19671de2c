"""Serve the live release from Snowflake: load exactly the live Delta version, tagged with its release.

Why: consumers in Snowflake must read the release that is live in Delta, never a half-loaded
table or another version. The load replaces the served table's rows with one Delta version (read
by time travel, so a publish that lands meanwhile cannot mix in), and every row carries the
release and the Delta version it came from, so "what am I looking at?" has one answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from expert.runtime.snowflake import SnowflakeSession

DAILY_SALES_COLUMNS = ("ORDER_DATE", "ORDERS", "UNITS", "REVENUE", "CUSTOMERS", "RETURNED_ORDERS")


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
    served = session.fetch(
        f"SELECT COUNT(*) AS N, SUM(REVENUE) AS REVENUE, MIN(RELEASE) AS LO, MAX(RELEASE) AS HI FROM {table}"
    )[0]
    return Served(
        len(frame),
        float(frame["revenue"].astype(float).sum()),
        int(served["N"]),
        float(served["REVENUE"]),
        (served["LO"], served["HI"]),
    )
