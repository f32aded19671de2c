"""Snowflake as a monitored source: warehouse credits, queueing and failed queries as Prometheus metrics.

Why: the lakehouse's serving side costs money and makes people wait. Snowflake keeps what a
platform team watches in SNOWFLAKE.ACCOUNT_USAGE: WAREHOUSE_METERING_HISTORY (credits billed per
warehouse and hour) and QUERY_HISTORY (per query: its status, how long it ran, how long it queued
behind a busy warehouse). An exporter reads both with SQL on a schedule and exposes gauges that
alert rules and dashboards read, like every other metric of the pipeline.

Locally, ACCOUNT_USAGE does not exist: a generated month of it (the snowflake track's usage-history
generator, loaded into the local engine under the real names) stands in, so the same SQL runs.
Every figure is computed from those rows; the pandas `queued_shares` recomputes the queueing share
from the generated frame, independently of the SQL, as ground truth.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Gauge

from expert.runtime import usage_history

if TYPE_CHECKING:
    import pandas as pd

    from expert.runtime.snowflake import SnowflakeSession

QUERY_WINDOW = timedelta(minutes=10)
"""The exporter reports on queries that started in the last 10 minutes."""
FAILED_STATUSES = ("FAIL", "INCIDENT")
"""QUERY_HISTORY.EXECUTION_STATUS of a query that did not succeed."""

QUERY_SQL = """\
SELECT WAREHOUSE_NAME,
       COUNT(*) AS QUERIES,
       COUNT_IF(EXECUTION_STATUS IN ('FAIL', 'INCIDENT')) AS FAILED,
       COALESCE(SUM(QUEUED_OVERLOAD_TIME), 0) / 1000 AS QUEUED_S,
       COALESCE(SUM(EXECUTION_TIME), 0) / 1000 AS EXECUTION_S
FROM SNOWFLAKE.ACCOUNT_USAGE.QUERY_HISTORY
WHERE START_TIME >= %(start)s AND START_TIME < %(end)s AND WAREHOUSE_NAME IS NOT NULL
GROUP BY WAREHOUSE_NAME"""
METERING_SQL = """\
SELECT WAREHOUSE_NAME, SUM(CREDITS_USED) AS CREDITS
FROM SNOWFLAKE.ACCOUNT_USAGE.WAREHOUSE_METERING_HISTORY
WHERE START_TIME >= %(start)s AND START_TIME < %(end)s
GROUP BY WAREHOUSE_NAME"""


class SnowflakeMetrics:
    """The Snowflake gauges, in their own registry (served on the same /metrics as the pipeline's)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.credits = Gauge(
            "snowflake_warehouse_credits_last_hour",
            "Credits a warehouse was billed for in the last complete metering hour",
            ["warehouse"],
            registry=r,
        )
        self.queries = Gauge(
            "snowflake_warehouse_queries",
            "Queries started on a warehouse in the last 10 minutes",
            ["warehouse"],
            registry=r,
        )
        self.failed = Gauge(
            "snowflake_warehouse_failed_queries",
            "Queries that failed (EXECUTION_STATUS FAIL or INCIDENT) in the last 10 minutes",
            ["warehouse"],
            registry=r,
        )
        self.queued_seconds = Gauge(
            "snowflake_warehouse_queued_seconds",
            "Seconds queries waited for a busy warehouse (QUEUED_OVERLOAD_TIME), last 10 minutes",
            ["warehouse"],
            registry=r,
        )
        self.queued_ratio = Gauge(
            "snowflake_warehouse_queued_ratio",
            "Queued time / (queued + execution time) of the queries of the last 10 minutes",
            ["warehouse"],
            registry=r,
        )

    def names(self) -> set[str]:
        """Every sample name these gauges expose."""
        return {family.name for family in self.registry.collect()}


def collect(metrics: SnowflakeMetrics, session: SnowflakeSession, now: datetime) -> list[dict[str, Any]]:
    """Read ACCOUNT_USAGE as of `now` and set every gauge; returns the per-warehouse rows read.

    Warehouses with no query in the window report 0 (not a missing series), so a rule resolves
    when the queue clears.
    """
    hour = now.replace(minute=0, second=0, microsecond=0)
    credits = {
        r["WAREHOUSE_NAME"]: float(r["CREDITS"] or 0)
        for r in session.fetch(METERING_SQL, {"start": hour - timedelta(hours=1), "end": hour})
    }
    usage = {r["WAREHOUSE_NAME"]: r for r in session.fetch(QUERY_SQL, {"start": now - QUERY_WINDOW, "end": now})}
    rows = []
    for warehouse in sorted(set(credits) | set(usage) | set(_known(metrics))):
        row = usage.get(warehouse, {})
        queued, executed = float(row.get("QUEUED_S") or 0), float(row.get("EXECUTION_S") or 0)
        ratio = queued / (queued + executed) if queued + executed else 0.0
        metrics.credits.labels(warehouse).set(credits.get(warehouse, 0.0))
        metrics.queries.labels(warehouse).set(int(row.get("QUERIES") or 0))
        metrics.failed.labels(warehouse).set(int(row.get("FAILED") or 0))
        metrics.queued_seconds.labels(warehouse).set(queued)
        metrics.queued_ratio.labels(warehouse).set(ratio)
        rows.append(
            {
                "warehouse": warehouse,
                "credits last hour": round(credits.get(warehouse, 0.0), 3),
                "queries": int(row.get("QUERIES") or 0),
                "failed": int(row.get("FAILED") or 0),
                "queued s": round(queued, 1),
                "queued share": round(ratio, 3),
            }
        )
    return rows


def _known(metrics: SnowflakeMetrics) -> set[str]:
    """Warehouses already reported: they keep a series (at 0) when a window has no query."""
    return {s.labels["warehouse"] for family in metrics.queued_ratio.collect() for s in family.samples}


def queued_shares(history: pd.DataFrame, ends: Sequence[datetime]) -> dict[tuple[str, datetime], float]:
    """Queued share per warehouse and window end, recomputed in pandas from QUERY_HISTORY rows."""
    shares = {}
    for end in ends:
        window = history[(history["START_TIME"] >= end - QUERY_WINDOW) & (history["START_TIME"] < end)]
        for warehouse, rows in window.groupby("WAREHOUSE_NAME"):
            queued, executed = rows["QUEUED_OVERLOAD_TIME"].sum() / 1000, rows["EXECUTION_TIME"].sum() / 1000
            shares[(str(warehouse), end)] = float(queued / (queued + executed)) if queued + executed else 0.0
    return shares


def queued_over(session: SnowflakeSession, ends: Sequence[datetime], threshold: float, consecutive: int) -> set[str]:
    """The warehouses whose queued share passed `threshold` in `consecutive` windows in a row (ends in order).

    Ground truth for the queueing alert (a rule with `for` fires after that many evaluations in a
    row): the raw QUERY_HISTORY rows of the period, aggregated in pandas (`queued_shares`), not by
    the exporter's SQL.
    """
    rows = session.fetch_df(
        "SELECT WAREHOUSE_NAME, START_TIME, QUEUED_OVERLOAD_TIME, EXECUTION_TIME FROM SNOWFLAKE.ACCOUNT_USAGE.QUERY_HISTORY "
        "WHERE START_TIME >= %(start)s AND START_TIME < %(end)s",
        {"start": min(ends) - QUERY_WINDOW, "end": max(ends)},
    )
    shares = queued_shares(rows, ends)
    over = set()
    for warehouse in {w for w, _ in shares}:
        run = 0
        for end in ends:
            run = run + 1 if shares.get((warehouse, end), 0.0) > threshold else 0
            if run >= consecutive:
                over.add(warehouse)
    return over


def generated_account_usage(queries: int, seed: int) -> dict[str, pd.DataFrame]:
    """A generated month of ACCOUNT_USAGE (QUERY_HISTORY, WAREHOUSE_METERING_HISTORY, TABLES), metered the
    way snowflake/02 teaches it (that lesson's `billed_sessions`: a warehouse bills until it auto-suspends)."""
    return usage_history.generate_account_usage(queries, seed, billing=_cost_pattern().billed_sessions).views


def load_account_usage(session: SnowflakeSession, views: dict[str, pd.DataFrame]) -> dict[str, int]:
    """Create SNOWFLAKE.ACCOUNT_USAGE in the local engine and load the generated views (rows per view)."""
    return dict(usage_history.load_local_account_usage(session, views))


def _cost_pattern() -> Any:
    from expert.runtime.pattern import load_module, select_patterns

    return load_module(select_patterns("snowflake/02")[0])
