"""Cost optimization: Snowflake's billing model made executable, replayed over a month of query history.

Why it matters in production: a warehouse bills per second while it runs, with a 60-second minimum
every time it resumes, and most of a typical bill is idle time after the last query — paid for
because AUTO_SUSPEND was left at 10 or 30 minutes. Oversized warehouses, repeated queries that miss
the result cache, unclustered large tables and no spending cap are the other usual leaks. Every
one of them is visible in SNOWFLAKE.ACCOUNT_USAGE; this pattern turns that history into savings
computed from the data, each with its formula in the code, and compares the same workload on
Databricks.

Learning objectives:
- Compute credits from warehouse size (X-Small = 1 credit/hour, doubling per size), per-second
  billing and the 60-second minimum per resume
- Replay QUERY_HISTORY under different AUTO_SUSPEND values in SQL (gaps and islands) and measure
  billed credits, idle waste and cold starts; cross-check against WAREHOUSE_METERING_HISTORY
- Right-size warehouses from utilization, queueing and spilling; cap spend with a resource monitor
  and see on which day it would fire
- Find repeated queries that miss the result cache, clustering keys worth their upkeep, and cost
  the same workload on Databricks (fixed, autoscaling, spot with its interruption risk)

Run it:
    python expert/snowflake/02_cost_optimization.py [--rows N] [--apply]
    expert run snowflake/02

Locally: a month of QUERY_HISTORY, WAREHOUSE_METERING_HISTORY and TABLES is generated (seeded,
numpy) and loaded into the local engine (fakesnow on DuckDB) as SNOWFLAKE.ACCOUNT_USAGE, then
analysed with the same SQL an account runs. With credentials in .env: the same SQL reads your
account's SNOWFLAKE.ACCOUNT_USAGE (read-only; needs IMPORTED PRIVILEGES on the SNOWFLAKE
database) and the recommendations are shown; `--apply` executes them.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import math
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import sqlglot
from sqlglot import exp

from expert.runtime.data import EPOCH
from expert.runtime.pattern import PatternRun, run_pattern
from expert.runtime.snowflake import SnowflakeSession
from expert.runtime.snowflake_ddl import (
    AlterWarehouse,
    CloudStatement,
    ClusterBy,
    MonitorAction,
    MonitorTrigger,
    ResourceMonitor,
    ScalingPolicy,
    ShowWarehouses,
    Warehouse,
    WarehouseSize,
)

# --- The billing model (Snowflake documents these; they are not assumptions) -----------------
MINIMUM_BILLED_SECONDS = 60
"""Each resume bills at least 60 seconds; after that, per second."""
SIZE_LABELS = {
    WarehouseSize.XSMALL: "X-Small",
    WarehouseSize.SMALL: "Small",
    WarehouseSize.MEDIUM: "Medium",
    WarehouseSize.LARGE: "Large",
    WarehouseSize.XLARGE: "X-Large",
    WarehouseSize.XXLARGE: "2X-Large",
}
"""How QUERY_HISTORY.WAREHOUSE_SIZE spells each size."""
RESULT_CACHE_HOURS = 24
MAX_CONCURRENCY_LEVEL = 8
"""Snowflake's default concurrent queries per cluster before new ones queue."""

# --- Prices and platform assumptions: change them to yours ------------------------------------
CREDIT_PRICE_USD = 3.00
"""ASSUMPTION: on-demand Enterprise edition list price per credit (region and contract change it)."""
DBX_SQL_SERVERLESS_USD_PER_DBU = 0.70
"""ASSUMPTION: Databricks SQL Serverless list price per DBU (compute included)."""
DBX_SQL_DBU_PER_HOUR = {"2X-Small": 4, "X-Small": 6, "Small": 12, "Medium": 24, "Large": 40, "X-Large": 80}
"""ASSUMPTION: Databricks SQL warehouse DBUs per hour by size (published sizing table)."""
SNOWFLAKE_TO_DBX_SQL = {
    WarehouseSize.XSMALL: "2X-Small",
    WarehouseSize.SMALL: "X-Small",
    WarehouseSize.MEDIUM: "Small",
    WarehouseSize.LARGE: "Medium",
    WarehouseSize.XLARGE: "Large",
}
"""ASSUMPTION: equal-capacity sizes across the platforms. Benchmark your own workload before trusting it."""
DBX_SQL_AUTO_STOP_SECONDS = 300
"""ASSUMPTION: serverless SQL warehouse auto-stop (the replay treats it like AUTO_SUSPEND)."""
DBX_JOBS_USD_PER_DBU = 0.15
"""ASSUMPTION: Databricks Jobs Compute (classic) list price per DBU."""
DBX_NODE_DBU_PER_HOUR = 2.0
"""ASSUMPTION: DBUs per hour of one 8-vCPU worker, taken as the capacity of a Snowflake X-Small
(so a warehouse of N credits/hour becomes N workers)."""
DBX_NODE_VM_USD_PER_HOUR = 0.624
"""ASSUMPTION: that worker's on-demand VM price per hour (billed by the cloud provider, not Databricks)."""
DBX_CLUSTER_START_SECONDS = 300
"""ASSUMPTION: a classic cluster's cold start, billed VM time with no work done."""
DBX_AUTOSCALE_SCALE_DOWN_MINUTES = 10
"""ASSUMPTION: how long autoscaling keeps a node after demand falls."""
SPOT_DISCOUNT = 0.65
"""ASSUMPTION: spot VM discount against on-demand."""
SPOT_INTERRUPTIONS_PER_NODE_HOUR = 0.005
"""ASSUMPTION: chance a spot node is reclaimed in a given hour (about 1 in 200 node-hours)."""
SPOT_REWORK_MINUTES = 10
"""ASSUMPTION: node-minutes of work redone (on demand) after each interruption."""

# --- Rules of thumb the recommendations use (named so they can be argued with) ---------------
CANDIDATE_AUTO_SUSPEND = (1800, 600, 300, 120, 60)
NEVER_SUSPENDS = 30 * 86_400
"""AUTO_SUSPEND = 0 / NULL (never), replayed as idling until the end of the 30-day window."""
INTERACTIVE_COLD_STARTS_PER_DAY = 40
"""An interactive warehouse may resume at most this often per day (each resume starts with a cold cache)."""
REMOTE_SPILL_SIZE_UP = 0.10
"""Size up when at least this share of execution time spills to remote storage."""
QUEUED_SHARE_MULTI_CLUSTER = 0.01
"""Add clusters (not size) when at least this share of queries queues behind others."""
UTILIZATION_SIZE_DOWN = 0.10
"""Size down when the warehouse is busy less than this share of the time it is billed."""
REMOTE_SPILL_SLOWDOWN = 2.0
"""ASSUMPTION: a query spilling to remote storage runs this much slower than it would in memory."""
MIN_CLUSTERING_BYTES = 1 << 40
"""Snowflake's guidance: clustering pays off on multi-terabyte tables; below ~1 TB pruning rarely hurts."""
POOR_PRUNING_RATIO = 0.30
"""Queries on the candidate column scan more than this share of partitions."""
CLUSTERED_SCAN_RATIO = 0.10
"""ASSUMPTION: share of partitions a date-filtered query scans once the table is clustered by date."""
RECLUSTER_CREDITS_PER_TB_REWRITTEN = 4.0
"""ASSUMPTION: Automatic Clustering credits per TB of table it has to rewrite."""
BUDGET_HEADROOM = 1.15
"""The monthly quota is the optimized spend plus 15%."""
FIRES_ON = "fires on day (today's settings)"

DAYS = 30
TABLES = {
    "SHOP.CORE.ORDERS": (1.6, 12_000, 0.03),
    "SHOP.CORE.EVENTS": (9.0, 70_000, 0.02),
    "SHOP.CORE.CUSTOMERS": (0.004, 40, 0.05),
    "SHOP.MART.DAILY_REVENUE": (0.001, 4, 1.0),
}
"""Generated table sizes: TB, micro-partitions, share of the table's rows changed per day by DML."""
ROWS_PER_TB = 4_000_000_000


@dataclass(frozen=True)
class WarehouseConfig:
    name: str
    size: WarehouseSize
    auto_suspend: int
    interactive: bool

    @property
    def credits_per_hour(self) -> int:
        return self.size.credits_per_hour


FLEET = (
    WarehouseConfig("ETL_WH", WarehouseSize.MEDIUM, 600, interactive=False),
    WarehouseConfig("BI_WH", WarehouseSize.SMALL, 600, interactive=True),
    WarehouseConfig("ADHOC_WH", WarehouseSize.LARGE, 1800, interactive=True),
)
"""The generated account's warehouses as configured today (read from SHOW WAREHOUSES on an account)."""


# ---------------------------------------------------------------------------------------------
# The billing model as code
# ---------------------------------------------------------------------------------------------


def billed_sessions(starts: np.ndarray, ends: np.ndarray, auto_suspend: int) -> list[tuple[float, float]]:
    """Warehouse run intervals (seconds): it resumes for a query and suspends `auto_suspend` s after going idle.

    Billed length of each = max(60, last query end - resume + auto_suspend).
    """
    order = np.lexsort((ends, starts))
    sessions: list[tuple[float, float]] = []
    start, last_end = None, -math.inf
    for s, e in zip(starts[order], ends[order], strict=True):
        if start is None or s - last_end > auto_suspend:
            if start is not None:
                sessions.append((start, max(start + MINIMUM_BILLED_SECONDS, last_end + auto_suspend)))
            start, last_end = s, e
        else:
            last_end = max(last_end, e)
    if start is not None:
        sessions.append((start, max(start + MINIMUM_BILLED_SECONDS, last_end + auto_suspend)))
    return sessions


def billed_credits(starts: np.ndarray, ends: np.ndarray, auto_suspend: int, credits_per_hour: float) -> float:
    """credits = Σ billed seconds of every run × credits per hour / 3600."""
    return sum(b - a for a, b in billed_sessions(starts, ends, auto_suspend)) * credits_per_hour / 3600


def hourly_credits(
    starts: np.ndarray, ends: np.ndarray, auto_suspend: int, credits_per_hour: float, hours: int
) -> np.ndarray:
    """The same credits split over clock hours (the grain of WAREHOUSE_METERING_HISTORY)."""
    out = np.zeros(hours)
    for resumed, suspended in billed_sessions(starts, ends, auto_suspend):
        cursor, hour = resumed, int(resumed // 3600)
        while cursor < suspended and hour < hours:
            edge = min(suspended, (hour + 1) * 3600)
            out[hour] += (edge - cursor) * credits_per_hour / 3600
            cursor, hour = edge, hour + 1
    return out


# ---------------------------------------------------------------------------------------------
# Step 1: an account's usage history, generated (locally) the shape ACCOUNT_USAGE has
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Template:
    """One recurring query: where it runs, what it reads, how long it takes at the warehouse's size."""

    key: str
    warehouse: str
    role: str
    query_type: str
    table: str
    text: str
    variant: str | None
    seconds: float
    scan_ratio: tuple[float, float]
    spill_share: float = 0.0


BI_TILES = (
    Template(
        "revenue_30d", "BI_WH", "BI_READER", "SELECT", "SHOP.CORE.ORDERS",
        "SELECT DATE_TRUNC('day', ORDER_TS) AS DAY, SUM(AMOUNT) AS REVENUE FROM SHOP.CORE.ORDERS "
        "WHERE ORDER_TS >= DATEADD(day, -30, CURRENT_DATE()) GROUP BY 1 ORDER BY 1",
        "select date_trunc('day', order_ts) as day, sum(amount) as revenue\nfrom shop.core.orders\n"
        "where order_ts >= dateadd(day, -30, current_date()) group by 1 order by 1",
        40.0, (0.55, 0.80),
    ),
    Template(
        "status_7d", "BI_WH", "BI_READER", "SELECT", "SHOP.CORE.ORDERS",
        "SELECT STATUS, COUNT(*) AS ORDERS FROM SHOP.CORE.ORDERS WHERE ORDER_TS >= DATEADD(day, -7, CURRENT_DATE()) GROUP BY STATUS",
        "select status, count(*) as orders from shop.core.orders where order_ts >= dateadd(day, -7, current_date()) group by status",
        25.0, (0.50, 0.75),
    ),
    Template(
        "enterprise_by_country", "BI_WH", "BI_READER", "SELECT", "SHOP.CORE.CUSTOMERS",
        "SELECT COUNTRY, COUNT(*) AS CUSTOMERS FROM SHOP.CORE.CUSTOMERS WHERE SEGMENT = 'enterprise' GROUP BY COUNTRY",
        "select country, count(*) as customers  from shop.core.customers where segment = 'enterprise' group by country",
        1.5, (1.0, 1.0),
    ),
    Template(
        "events_last_hour", "BI_WH", "BI_READER", "SELECT", "SHOP.CORE.EVENTS",
        "SELECT COUNT(*) AS EVENTS FROM SHOP.CORE.EVENTS WHERE EVENT_TS >= DATEADD(hour, -1, CURRENT_TIMESTAMP())",
        None,
        3.0, (0.0004, 0.0008),
    ),
    Template(
        "funnel_today", "BI_WH", "BI_READER", "SELECT", "SHOP.CORE.EVENTS",
        "SELECT EVENT_TYPE, COUNT(*) AS EVENTS FROM SHOP.CORE.EVENTS WHERE EVENT_TS >= CURRENT_DATE() GROUP BY EVENT_TYPE",
        "SELECT event_type, COUNT(*) AS events FROM shop.core.events WHERE event_ts >= CURRENT_DATE() GROUP BY event_type",
        5.0, (0.003, 0.006),
    ),
)  # fmt: skip
MORNING_REPORT = Template(
    "morning_report", "BI_WH", "BI_READER", "SELECT", "SHOP.CORE.ORDERS",
    "SELECT STATUS, COUNT(*) AS ORDERS, SUM(AMOUNT) AS REVENUE FROM SHOP.CORE.ORDERS "
    "WHERE ORDER_TS >= DATEADD(day, -1, CURRENT_DATE()) AND COUNTRY = '{country}' AND CHANNEL = '{channel}' GROUP BY STATUS",
    None, 30.0, (0.50, 0.75),
)  # fmt: skip
"""One subscription per country and channel, all scheduled for 09:00 on weekdays (the rush that queues)."""
REPORT_COUNTRIES = ("US", "GB", "DE", "FR", "IN", "BR")
REPORT_CHANNELS = ("web", "ios", "android")
HOURLY_ETL = (
    Template(
        "copy_events", "ETL_WH", "LOADER", "COPY", "SHOP.RAW.EVENTS_LANDING",
        "COPY INTO SHOP.RAW.EVENTS_LANDING FROM @SHOP.RAW.LANDING/events/", None, 40.0, (1.0, 1.0),
    ),
    Template(
        "insert_events", "ETL_WH", "LOADER", "INSERT", "SHOP.CORE.EVENTS",
        "INSERT INTO SHOP.CORE.EVENTS SELECT * FROM SHOP.RAW.EVENTS_LANDING", None, 55.0, (0.0, 0.0),
    ),
    Template(
        "merge_orders", "ETL_WH", "LOADER", "MERGE", "SHOP.CORE.ORDERS",
        "MERGE INTO SHOP.CORE.ORDERS t USING SHOP.RAW.ORDERS_LANDING s ON t.ORDER_ID = s.ORDER_ID "
        "WHEN MATCHED THEN UPDATE SET STATUS = s.STATUS WHEN NOT MATCHED THEN INSERT VALUES (s.ORDER_ID, s.STATUS)",
        None, 80.0, (0.2, 0.4),
    ),
)  # fmt: skip
NIGHTLY_ETL = (
    Template(
        "merge_customers", "ETL_WH", "LOADER", "MERGE", "SHOP.CORE.CUSTOMERS",
        "MERGE INTO SHOP.CORE.CUSTOMERS t USING SHOP.RAW.CUSTOMERS_LANDING s ON t.CUSTOMER_ID = s.CUSTOMER_ID "
        "WHEN MATCHED THEN UPDATE SET CITY = s.CITY",
        None, 90.0, (1.0, 1.0),
    ),
    Template(
        "daily_revenue", "ETL_WH", "LOADER", "INSERT", "SHOP.MART.DAILY_REVENUE",
        "INSERT OVERWRITE INTO SHOP.MART.DAILY_REVENUE SELECT o.ORDER_TS::DATE, c.COUNTRY, SUM(o.AMOUNT) "
        "FROM SHOP.CORE.ORDERS o JOIN SHOP.CORE.CUSTOMERS c ON o.CUSTOMER_ID = c.CUSTOMER_ID GROUP BY 1, 2",
        None, 420.0, (1.0, 1.0), 0.6,
    ),
    Template(
        "sessionize", "ETL_WH", "LOADER", "INSERT", "SHOP.MART.SESSIONS",
        "INSERT OVERWRITE INTO SHOP.MART.SESSIONS SELECT SESSION_ID, MIN(EVENT_TS), MAX(EVENT_TS), COUNT(*) "
        "FROM SHOP.CORE.EVENTS WHERE EVENT_TS >= DATEADD(day, -1, CURRENT_DATE()) GROUP BY SESSION_ID",
        None, 360.0, (0.003, 0.006), 0.5,
    ),
)  # fmt: skip
ADHOC = (
    Template(
        "orders_for_customer", "ADHOC_WH", "ANALYST", "SELECT", "SHOP.CORE.ORDERS",
        "SELECT * FROM SHOP.CORE.ORDERS WHERE ORDER_TS >= '{day}' AND CUSTOMER_ID = {customer}",
        None, 4.0, (0.55, 0.85),
    ),
    Template(
        "events_for_customer", "ADHOC_WH", "ANALYST", "SELECT", "SHOP.CORE.EVENTS",
        "SELECT EVENT_TYPE, COUNT(*) FROM SHOP.CORE.EVENTS WHERE EVENT_TS >= '{day}' AND CUSTOMER_ID = {customer} "
        "GROUP BY 1",
        None, 6.0, (0.01, 0.04),
    ),
)  # fmt: skip


@dataclass
class _Warehouse:
    """Queueing: at most MAX_CONCURRENCY_LEVEL queries run at once; the rest wait in arrival order."""

    running: list[float] = field(default_factory=list)

    def admit(self, arrival: float, seconds: float) -> tuple[float, float]:
        while self.running and self.running[0] <= arrival:
            heapq.heappop(self.running)
        start = arrival
        if len(self.running) >= MAX_CONCURRENCY_LEVEL:
            start = heapq.heappop(self.running)
        end = start + seconds
        heapq.heappush(self.running, end)
        return start - arrival, end


def schedule_workload(queries: int, rng: np.random.Generator) -> list[tuple[float, Template, str]]:
    """When each query arrives (seconds into the month): hourly + nightly ETL, the 09:00 report
    rush on weekdays, dashboard views in business hours (two BI tools, two spellings), ad-hoc analysts."""
    arrivals: list[tuple[float, Template, str]] = []
    etl_per_day = len(HOURLY_ETL) * 24 + len(NIGHTLY_ETL)
    adhoc_per_day = 12
    views_per_day = max(1.0, (queries / DAYS - etl_per_day - adhoc_per_day) / len(BI_TILES))
    for day in range(DAYS):
        base = day * 86_400.0
        for hour in range(24):
            arrivals += _chain(base + hour * 3600 + 300 + rng.uniform(0, 30), HOURLY_ETL, spacing=1.5)
        arrivals += _chain(base + 2 * 3600, NIGHTLY_ETL, spacing=2.5)
        weekend = (EPOCH + timedelta(days=day)).weekday() >= 5
        if not weekend:
            arrivals += [
                (
                    base + 9 * 3600 + rng.uniform(0, 20),
                    MORNING_REPORT,
                    MORNING_REPORT.text.format(country=c, channel=ch),
                )
                for c in REPORT_COUNTRIES
                for ch in REPORT_CHANNELS
            ]
        for minute in rng.uniform(8 * 60, 18 * 60, rng.poisson(views_per_day * (0.3 if weekend else 1.0))):
            tool_b = rng.random() < 0.4
            arrivals += [
                (base + minute * 60 + j * 0.3, t, t.variant if tool_b and t.variant else t.text)
                for j, t in enumerate(BI_TILES)
            ]
        for _ in range(rng.poisson(adhoc_per_day * (0.2 if weekend else 1.0))):
            template = ADHOC[int(rng.integers(len(ADHOC)))]
            day_literal = (EPOCH + timedelta(days=day - int(rng.integers(1, 30)))).strftime("%Y-%m-%d")
            text = template.text.format(day=day_literal, customer=int(rng.integers(1, 250_000)))
            arrivals.append((base + rng.uniform(9, 19) * 3600, template, text))
    return sorted(arrivals, key=lambda a: a[0])


def _chain(start: float, templates: Sequence[Template], *, spacing: float) -> list[tuple[float, Template, str]]:
    """A job's steps, each starting after the previous one's typical duration × spacing."""
    out = []
    for template in templates:
        out.append((start, template, template.text))
        start += template.seconds * spacing
    return out


@dataclass
class _ResultCache:
    """Snowflake's result reuse: same text and role, < 24 h old, no DML on the table since, no
    run-time functions. Also tracks the ground truth of avoidable misses: an equivalent query
    (same template, any spelling) had a still-valid result."""

    results: dict[tuple[str, str], float] = field(default_factory=dict)
    equivalents: dict[tuple[str, str], float] = field(default_factory=dict)
    last_write: dict[str, float] = field(default_factory=lambda: defaultdict(lambda: -math.inf))

    def _valid(self, produced: float | None, now: float, table: str) -> bool:
        return produced is not None and now - produced < RESULT_CACHE_HOURS * 3600 and self.last_write[table] < produced

    @staticmethod
    def _equivalent(template: Template, text: str) -> tuple[str, str]:
        return (template.key if text in (template.text, template.variant) else text, template.role)

    def reusable(self, template: Template, text: str, now: float) -> bool:
        if template.query_type != "SELECT" or "CURRENT_TIMESTAMP" in text.upper():
            return False
        return self._valid(self.results.get((text, template.role)), now, template.table)

    def avoidable(self, template: Template, text: str, now: float) -> bool:
        key = self._equivalent(template, text)
        return template.query_type == "SELECT" and self._valid(self.equivalents.get(key), now, template.table)

    def executed(self, template: Template, text: str, now: float, end: float) -> None:
        if template.query_type == "SELECT":
            self.results[(text, template.role)] = now
            self.equivalents[self._equivalent(template, text)] = now
        else:
            self.last_write[template.table] = end


@dataclass(frozen=True)
class GeneratedUsage:
    """The generated ACCOUNT_USAGE views, and the ground truth the analysis is checked against."""

    views: dict[str, pd.DataFrame]
    avoidable_misses: frozenset[str]


def generate_account_usage(queries: int, seed: int) -> GeneratedUsage:
    """A month of ACCOUNT_USAGE for the FLEET: QUERY_HISTORY, WAREHOUSE_METERING_HISTORY, TABLES.

    Deterministic for (queries, seed); queueing and the result cache are simulated as Snowflake
    applies them.
    """
    rng = np.random.default_rng([seed, 2])
    fleet = {w.name: w for w in FLEET}
    arrivals = schedule_workload(queries, rng)
    queues = {name: _Warehouse() for name in fleet}
    cache = _ResultCache()
    avoidable: set[str] = set()
    rows = []
    for i, (arrival, template, text) in enumerate(arrivals):
        warehouse = fleet[template.warehouse]
        size_tb, partitions, churn = TABLES.get(template.table, (0.0, 1, 0.0))
        query_id = f"01b{seed:04x}-{i:08d}"
        spill = rng.random() < template.spill_share
        if cache.reusable(template, text, arrival):
            seconds, queued, ratio, spill = 0.0, 0.0, 0.0, False
            end = arrival + 0.05
        else:
            if cache.avoidable(template, text, arrival):
                avoidable.add(query_id)
            ratio = float(rng.uniform(*template.scan_ratio))
            seconds = template.seconds * float(rng.lognormal(0, 0.25)) * (REMOTE_SPILL_SLOWDOWN if spill else 1.0)
            queued, end = queues[warehouse.name].admit(arrival, seconds)
            cache.executed(template, text, arrival, end)
        rows.append(
            {
                "QUERY_ID": query_id,
                "QUERY_TEXT": text,
                "QUERY_TYPE": template.query_type,
                "USER_NAME": template.role.lower() + "_user",
                "ROLE_NAME": template.role,
                "WAREHOUSE_NAME": warehouse.name,
                "WAREHOUSE_SIZE": SIZE_LABELS[warehouse.size],
                "EXECUTION_STATUS": "SUCCESS",
                "START_TIME": EPOCH + timedelta(seconds=arrival),
                "END_TIME": EPOCH + timedelta(seconds=end),
                "TOTAL_ELAPSED_TIME": round((end - arrival) * 1000),
                "EXECUTION_TIME": round(seconds * 1000),
                "QUEUED_OVERLOAD_TIME": round(queued * 1000),
                "BYTES_SCANNED": round(size_tb * ratio * 1e12),
                "PARTITIONS_SCANNED": round(partitions * ratio),
                "PARTITIONS_TOTAL": partitions if template.query_type == "SELECT" else 0,
                "BYTES_SPILLED_TO_REMOTE_STORAGE": round(seconds * 2e8) if spill else 0,
                "ROWS_UPDATED": round(churn * size_tb * ROWS_PER_TB / 24) if template.query_type == "MERGE" else 0,
            }
        )
    history = pd.DataFrame(rows)
    history["START_TIME"] = pd.to_datetime(history["START_TIME"]).dt.tz_convert(None)
    history["END_TIME"] = pd.to_datetime(history["END_TIME"]).dt.tz_convert(None)
    views = {
        "QUERY_HISTORY": history,
        "WAREHOUSE_METERING_HISTORY": _metering(history, fleet),
        "TABLES": pd.DataFrame(
            [
                {
                    "TABLE_CATALOG": name.split(".")[0],
                    "TABLE_SCHEMA": name.split(".")[1],
                    "TABLE_NAME": name.split(".")[2],
                    "ROW_COUNT": round(size_tb * ROWS_PER_TB),
                    "BYTES": round(size_tb * 1e12),
                    "CLUSTERING_KEY": None,
                    "DELETED": pd.NaT,
                }
                for name, (size_tb, _, _) in TABLES.items()
            ]
        ),
    }
    return GeneratedUsage(views, frozenset(avoidable))


def _metering(history: pd.DataFrame, fleet: dict[str, WarehouseConfig]) -> pd.DataFrame:
    """Hourly credits per warehouse under its current AUTO_SUSPEND (numpy replay of the billing model)."""
    rows = []
    for name, warehouse in fleet.items():
        busy = history[(history["WAREHOUSE_NAME"] == name) & (history["EXECUTION_TIME"] > 0)]
        starts, ends = _seconds(busy["START_TIME"]), _seconds(busy["END_TIME"])
        credits = hourly_credits(starts, ends, warehouse.auto_suspend, warehouse.credits_per_hour, DAYS * 24 + 24)
        for hour in np.flatnonzero(credits):
            start = pd.Timestamp(LOCAL_ORIGIN) + pd.Timedelta(hours=int(hour))
            rows.append(
                {
                    "START_TIME": start,
                    "END_TIME": start + pd.Timedelta(hours=1),
                    "WAREHOUSE_NAME": name,
                    "CREDITS_USED_COMPUTE": float(credits[hour]),
                    "CREDITS_USED_CLOUD_SERVICES": 0.0,
                    "CREDITS_USED": float(credits[hour]),
                }
            )
    return pd.DataFrame(rows)


LOCAL_ORIGIN = pd.Timestamp(EPOCH).tz_convert(None).to_pydatetime()
"""The generated month starts here (naive UTC, as TIMESTAMP_NTZ)."""


def _seconds(times: pd.Series, origin: datetime = LOCAL_ORIGIN) -> np.ndarray:
    """Seconds since the analysis window starts: the replay works in seconds."""
    stamps = pd.to_datetime(times)
    if stamps.dt.tz is not None:
        stamps = stamps.dt.tz_convert(None)
    return (stamps - pd.Timestamp(origin)).dt.total_seconds().to_numpy()


ACCOUNT_USAGE_DDL = {
    "QUERY_HISTORY": (
        "QUERY_ID VARCHAR, QUERY_TEXT VARCHAR, QUERY_TYPE VARCHAR, USER_NAME VARCHAR, ROLE_NAME VARCHAR, "
        "WAREHOUSE_NAME VARCHAR, WAREHOUSE_SIZE VARCHAR, EXECUTION_STATUS VARCHAR, START_TIME TIMESTAMP_NTZ, "
        "END_TIME TIMESTAMP_NTZ, TOTAL_ELAPSED_TIME NUMBER, EXECUTION_TIME NUMBER, QUEUED_OVERLOAD_TIME NUMBER, "
        "BYTES_SCANNED NUMBER, PARTITIONS_SCANNED NUMBER, PARTITIONS_TOTAL NUMBER, "
        "BYTES_SPILLED_TO_REMOTE_STORAGE NUMBER, ROWS_UPDATED NUMBER"
    ),
    "WAREHOUSE_METERING_HISTORY": (
        "START_TIME TIMESTAMP_NTZ, END_TIME TIMESTAMP_NTZ, WAREHOUSE_NAME VARCHAR, CREDITS_USED_COMPUTE FLOAT, "
        "CREDITS_USED_CLOUD_SERVICES FLOAT, CREDITS_USED FLOAT"
    ),
    "TABLES": (
        "TABLE_CATALOG VARCHAR, TABLE_SCHEMA VARCHAR, TABLE_NAME VARCHAR, ROW_COUNT NUMBER, BYTES NUMBER, "
        "CLUSTERING_KEY VARCHAR, DELETED TIMESTAMP_NTZ"
    ),
}
"""The subset of each ACCOUNT_USAGE view's columns this pattern reads (same names and types)."""


def load_local_account_usage(session: SnowflakeSession, frames: dict[str, pd.DataFrame]) -> dict[str, int]:
    """Create SNOWFLAKE.ACCOUNT_USAGE in the local engine and bulk-load the generated views."""
    session.execute("CREATE DATABASE IF NOT EXISTS SNOWFLAKE")
    session.execute("CREATE SCHEMA IF NOT EXISTS SNOWFLAKE.ACCOUNT_USAGE")
    session.execute("USE SCHEMA SNOWFLAKE.ACCOUNT_USAGE")
    loaded = {}
    for view, columns in ACCOUNT_USAGE_DDL.items():
        session.execute(f"CREATE OR REPLACE TABLE SNOWFLAKE.ACCOUNT_USAGE.{view} ({columns})")
        loaded[view] = session.write_pandas(frames[view], view, auto_create_table=False, use_logical_type=True)
    session.execute(f"USE SCHEMA {session.database}.{session.schema}")
    return loaded


# ---------------------------------------------------------------------------------------------
# Step 2-3: replay AUTO_SUSPEND in SQL
# ---------------------------------------------------------------------------------------------


def size_credits_case(column: str = "WAREHOUSE_SIZE") -> str:
    """SQL mapping QUERY_HISTORY's size names to credits per hour (X-Small 1, doubling per size)."""
    whens = " ".join(f"WHEN '{label}' THEN {size.credits_per_hour}" for size, label in SIZE_LABELS.items())
    return f"CASE {column} {whens} END"


REPLAY_SQL = f"""
WITH busy AS (
  SELECT WAREHOUSE_NAME, START_TIME AS S, END_TIME AS E, {size_credits_case()} AS CREDITS_PER_HOUR
  FROM SNOWFLAKE.ACCOUNT_USAGE.QUERY_HISTORY
  WHERE EXECUTION_TIME > 0 AND WAREHOUSE_NAME = %(warehouse)s
    AND START_TIME >= %(window_start)s AND START_TIME < %(window_end)s
),
ordered AS (
  SELECT *, MAX(E) OVER (PARTITION BY WAREHOUSE_NAME ORDER BY S, E
                         ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS PREV_END
  FROM busy
),
runs AS (
  SELECT *, SUM(IFF(PREV_END IS NULL OR DATEDIFF('millisecond', PREV_END, S) > %(auto_suspend)s * 1000, 1, 0))
              OVER (PARTITION BY WAREHOUSE_NAME ORDER BY S, E ROWS UNBOUNDED PRECEDING) AS RUN_NO
  FROM ordered
),
billed AS (
  SELECT RUN_NO, MAX(CREDITS_PER_HOUR) AS CREDITS_PER_HOUR,
    GREATEST({MINIMUM_BILLED_SECONDS}, DATEDIFF('millisecond', MIN(S), MAX(E)) / 1000 + %(auto_suspend)s) AS BILLED_SECONDS
  FROM runs GROUP BY RUN_NO
)
SELECT COUNT(*) AS RESUMES, SUM(BILLED_SECONDS) AS BILLED_SECONDS,
  SUM(BILLED_SECONDS * CREDITS_PER_HOUR / 3600) AS CREDITS
FROM billed
"""
"""Gaps and islands: a query starting more than AUTO_SUSPEND seconds after every earlier one ended
starts a new run; each run bills max(60 s, its span + AUTO_SUSPEND) at the size's credits/hour."""

ACTIVE_SQL = """
WITH busy AS (
  SELECT START_TIME AS S, END_TIME AS E FROM SNOWFLAKE.ACCOUNT_USAGE.QUERY_HISTORY
  WHERE EXECUTION_TIME > 0 AND WAREHOUSE_NAME = %(warehouse)s
    AND START_TIME >= %(window_start)s AND START_TIME < %(window_end)s
),
ordered AS (
  SELECT *, MAX(E) OVER (ORDER BY S, E ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS PREV_END FROM busy
),
islands AS (
  SELECT *, SUM(IFF(PREV_END IS NULL OR S > PREV_END, 1, 0)) OVER (ORDER BY S, E ROWS UNBOUNDED PRECEDING) AS ISLAND
  FROM ordered
)
SELECT COALESCE(SUM(SPAN), 0) AS ACTIVE_SECONDS
FROM (SELECT DATEDIFF('millisecond', MIN(S), MAX(E)) / 1000 AS SPAN FROM islands GROUP BY ISLAND)
"""
"""Seconds with at least one query running: the union of the query intervals (gap 0 islands)."""


@dataclass(frozen=True)
class Replay:
    warehouse: str
    auto_suspend: int
    resumes: int
    billed_seconds: float
    credits: float
    active_seconds: float

    @property
    def idle_share(self) -> float:
        return 1 - self.active_seconds / self.billed_seconds if self.billed_seconds else 0.0


def replay(session: SnowflakeSession, warehouse: str, auto_suspend: int, window: tuple[datetime, datetime]) -> Replay:
    params = {"warehouse": warehouse, "auto_suspend": auto_suspend, "window_start": window[0], "window_end": window[1]}
    row = session.fetch(REPLAY_SQL, params)[0]
    active = float(session.scalar(ACTIVE_SQL, params) or 0)
    return Replay(
        warehouse,
        auto_suspend,
        int(row["RESUMES"] or 0),
        float(row["BILLED_SECONDS"] or 0),
        float(row["CREDITS"] or 0),
        active,
    )


def choose_auto_suspend(warehouse: WarehouseConfig, replays: list[Replay]) -> Replay:
    """Batch warehouses: the lowest setting. Interactive ones: the lowest that keeps cold starts within budget."""
    ordered = sorted(replays, key=lambda r: r.auto_suspend)
    if not warehouse.interactive:
        return ordered[0]
    for candidate in ordered:
        if candidate.resumes / DAYS <= INTERACTIVE_COLD_STARTS_PER_DAY:
            return candidate
    return ordered[-1]


# ---------------------------------------------------------------------------------------------
# Step 4: right-sizing
# ---------------------------------------------------------------------------------------------

SIZING_SQL = """
SELECT WAREHOUSE_NAME, COUNT(*) AS QUERIES,
  SUM(EXECUTION_TIME) / 1000 AS EXECUTION_SECONDS,
  MEDIAN(EXECUTION_TIME) / 1000 AS MEDIAN_SECONDS,
  COUNT_IF(QUEUED_OVERLOAD_TIME > 0) / COUNT(*) AS QUEUED_SHARE,
  APPROX_PERCENTILE(NULLIF(QUEUED_OVERLOAD_TIME, 0), 0.95) / 1000 AS P95_QUEUED_SECONDS,
  SUM(IFF(BYTES_SPILLED_TO_REMOTE_STORAGE > 0, EXECUTION_TIME, 0)) / NULLIF(SUM(EXECUTION_TIME), 0) AS REMOTE_SPILL_SHARE
FROM SNOWFLAKE.ACCOUNT_USAGE.QUERY_HISTORY
WHERE EXECUTION_TIME > 0 AND START_TIME >= %(window_start)s AND START_TIME < %(window_end)s
GROUP BY WAREHOUSE_NAME ORDER BY WAREHOUSE_NAME
"""


@dataclass(frozen=True)
class Sizing:
    warehouse: str
    action: str
    reason: str
    statements: tuple[CloudStatement, ...]
    credits_before: float
    credits_after: float


def recommend_size(
    evidence: dict, warehouse: WarehouseConfig, chosen: Replay, intervals: pd.DataFrame, origin: datetime
) -> Sizing:
    """One rule per symptom; the credits after are a replay of the same queries under the new size."""
    sizes = list(WarehouseSize)
    position = sizes.index(warehouse.size)
    utilization = chosen.active_seconds / chosen.billed_seconds if chosen.billed_seconds else 0.0
    mine = intervals[intervals["WAREHOUSE_NAME"] == warehouse.name]
    starts = _seconds(mine["START_TIME"], origin)
    seconds = mine["EXECUTION_TIME"].to_numpy() / 1000
    spilled = mine["BYTES_SPILLED_TO_REMOTE_STORAGE"].to_numpy() > 0
    before = chosen.credits
    if float(evidence["REMOTE_SPILL_SHARE"] or 0) >= REMOTE_SPILL_SIZE_UP:
        # Size per workload, not per team: only the spilling queries move to a warehouse one size up,
        # where linear scaling halves them and, fitting in memory, they lose the remote-spill slowdown.
        bigger = sizes[position + 1]
        stay = billed_credits(starts[~spilled], starts[~spilled] + seconds[~spilled], chosen.auto_suspend,
                              warehouse.credits_per_hour)  # fmt: skip
        moved = seconds[spilled] / 2 / REMOTE_SPILL_SLOWDOWN
        big = billed_credits(starts[spilled], starts[spilled] + moved, chosen.auto_suspend, bigger.credits_per_hour)
        target = f"{warehouse.name}_{bigger.value}"
        statement = Warehouse(
            name=target, size=bigger, auto_suspend_seconds=chosen.auto_suspend,
            comment=f"memory-hungry jobs from {warehouse.name}",
        )  # fmt: skip
        reason = (
            f"{float(evidence['REMOTE_SPILL_SHARE']):.0%} of execution time spills to remote storage: "
            f"run those jobs on {SIZE_LABELS[bigger]}"
        )
        return Sizing(warehouse.name, f"split: spilling jobs to {target}", reason, (statement,), before, stay + big)
    if float(evidence["QUEUED_SHARE"] or 0) >= QUEUED_SHARE_MULTI_CLUSTER:
        statement = AlterWarehouse(
            name=warehouse.name, min_cluster_count=1, max_cluster_count=2, scaling_policy=ScalingPolicy.STANDARD
        )
        reason = (
            f"{float(evidence['QUEUED_SHARE']):.0%} of queries queue (p95 wait {float(evidence['P95_QUEUED_SECONDS']):.0f} s) "
            "and none spill: more concurrency, not a bigger size"
        )
        return Sizing(warehouse.name, "multi-cluster 1-2", reason, (statement,), before, before)
    quiet = float(evidence["QUEUED_SHARE"] or 0) == 0 and float(evidence["REMOTE_SPILL_SHARE"] or 0) == 0
    if utilization < UTILIZATION_SIZE_DOWN and quiet and position > 0:
        smaller = sizes[position - 1]
        after = billed_credits(starts, starts + seconds * 2, chosen.auto_suspend, smaller.credits_per_hour)
        statement = AlterWarehouse(name=warehouse.name, size=smaller)
        reason = f"busy {utilization:.0%} of billed time, no queueing or spilling: queries run ≤2× longer"
        return Sizing(warehouse.name, f"size down to {SIZE_LABELS[smaller]}", reason, (statement,), before, after)
    return Sizing(warehouse.name, "keep", "no symptom above its threshold", (), before, before)


# ---------------------------------------------------------------------------------------------
# Step 6: result cache
# ---------------------------------------------------------------------------------------------


def normalized(text: str) -> str:
    """The query as the optimizer sees it: keyword and identifier case, whitespace and layout erased."""
    return sqlglot.parse_one(text, read="snowflake").sql(dialect="snowflake", normalize=True, pretty=False)


def written_table(text: str) -> str | None:
    """The table a DML statement changes (which invalidates cached results that read it)."""
    tree = sqlglot.parse_one(text, read="snowflake")
    if not isinstance(tree, exp.Insert | exp.Merge | exp.Copy):
        return None
    target = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
    return ".".join(p.name for p in target.parts).upper() if isinstance(target, exp.Table) else None


def read_tables(text: str) -> set[str]:
    return {
        ".".join(p.name for p in t.parts).upper() for t in sqlglot.parse_one(text, read="snowflake").find_all(exp.Table)
    }


@dataclass(frozen=True)
class CacheMiss:
    query_id: str
    why: str
    execution_seconds: float


def result_cache_misses(history: pd.DataFrame, origin: datetime) -> list[CacheMiss]:
    """Queries that ran on a warehouse although an equivalent result from the last 24 h was still valid.

    Equivalent = same normalized text and role, no DML committed on any table read since. Snowflake
    reuses a result only for identical text without run-time functions such as CURRENT_TIMESTAMP(),
    so these are the misses one BI query template (and the time bound as a literal) would turn into hits.
    """
    misses: list[CacheMiss] = []
    last_result: dict[tuple[str, str], tuple[float, str]] = {}
    last_write: dict[str, float] = defaultdict(lambda: -math.inf)
    parsed: dict[str, tuple[str, frozenset[str], str | None]] = {}
    frame = history.sort_values("START_TIME", kind="stable")
    starts = _seconds(frame["START_TIME"], origin)
    ends = _seconds(frame["END_TIME"], origin)
    for row, start, end in zip(frame.itertuples(index=False), starts, ends, strict=True):
        text = str(row.QUERY_TEXT)
        if text not in parsed:
            stable = RUNTIME_FUNCTION.sub("CURRENT_DATE()", text)
            parsed[text] = (normalized(stable), frozenset(read_tables(text)), written_table(text))
        key_text, tables, writes = parsed[text]
        if writes:
            last_write[writes] = max(last_write[writes], end)
            continue
        if row.QUERY_TYPE != "SELECT" or row.EXECUTION_TIME <= 0:
            continue
        key = (key_text, str(row.ROLE_NAME))
        previous = last_result.get(key)
        valid = (
            previous is not None
            and start - previous[0] < RESULT_CACHE_HOURS * 3600
            and all(last_write[t] < previous[0] for t in tables)
        )
        if valid and previous is not None:
            if RUNTIME_FUNCTION.search(text):
                misses.append(CacheMiss(str(row.QUERY_ID), "run-time function", row.EXECUTION_TIME / 1000))
            elif previous[1] != text:
                misses.append(CacheMiss(str(row.QUERY_ID), "text differs", row.EXECUTION_TIME / 1000))
        last_result[key] = (start, text)
    return misses


RUNTIME_FUNCTION = re.compile(r"CURRENT_TIMESTAMP\(\)", re.IGNORECASE)


# ---------------------------------------------------------------------------------------------
# Step 7: clustering
# ---------------------------------------------------------------------------------------------


def filter_columns(text: str) -> dict[str, set[str]]:
    """Columns each table is filtered on in WHERE (what a clustering key must serve)."""
    tree = sqlglot.parse_one(text, read="snowflake")
    where = tree.find(exp.Where)
    if where is None:
        return {}
    tables = {t.alias_or_name.upper(): ".".join(p.name for p in t.parts).upper() for t in tree.find_all(exp.Table)}
    only = next(iter(tables.values())) if len(tables) == 1 else None
    out: dict[str, set[str]] = defaultdict(set)
    for column in where.find_all(exp.Column):
        table = tables.get(column.table.upper()) if column.table else only
        if table:
            out[table].add(column.name.upper())
    return out


@dataclass(frozen=True)
class ClusteringAdvice:
    table: str
    size_tb: float
    column: str | None
    filter_share: float
    scan_ratio: float
    verdict: str
    monthly_credits_saved: float
    monthly_recluster_credits: float
    statement: ClusterBy | None


def clustering_advice(
    history: pd.DataFrame,
    tables: pd.DataFrame,
    fleet: dict[str, WarehouseConfig],
    chosen: dict[str, int],
    origin: datetime,
) -> list[ClusteringAdvice]:
    """Per table: its most-filtered column, how well queries on it prune, and whether clustering pays.

    saved = replayed credits of the queries filtering on it now - with their execution time scaled
    by CLUSTERED_SCAN_RATIO / current scan ratio (time ∝ partitions scanned);
    upkeep = TB rewritten per month by DML × RECLUSTER_CREDITS_PER_TB_REWRITTEN.
    """
    selects = history[(history["QUERY_TYPE"] == "SELECT") & (history["EXECUTION_TIME"] > 0)]
    filters = {text: filter_columns(text) for text in selects["QUERY_TEXT"].unique()}
    churn = daily_churn(history, tables)
    advice = []
    for table in tables.itertuples(index=False):
        name = f"{table.TABLE_CATALOG}.{table.TABLE_SCHEMA}.{table.TABLE_NAME}"
        on_table = selects[selects["QUERY_TEXT"].map(lambda t, n=name: n in filters[t])]
        size_tb = table.BYTES / 1e12
        if on_table.empty:
            advice.append(ClusteringAdvice(name, size_tb, None, 0.0, 0.0, "not queried", 0.0, 0.0, None))
            continue
        counts = Counter(c for t in on_table["QUERY_TEXT"] for c in filters[t][name])
        column, hits = counts.most_common(1)[0]
        filtered = on_table[on_table["QUERY_TEXT"].map(lambda t, n=name, c=column: c in filters[t][n])]
        ratio = float((filtered["PARTITIONS_SCANNED"] / filtered["PARTITIONS_TOTAL"].clip(lower=1)).mean())
        share = hits / len(on_table)
        recluster = size_tb * churn.get(name, 0.0) * DAYS * RECLUSTER_CREDITS_PER_TB_REWRITTEN
        if table.BYTES < MIN_CLUSTERING_BYTES:
            verdict, saved = f"not worth it: {size_tb * 1000:.0f} GB, below ~1 TB pruning rarely matters", 0.0
        elif ratio <= POOR_PRUNING_RATIO:
            verdict, saved = f"not needed: queries already scan {ratio:.1%} (natural load order prunes)", 0.0
        else:
            saved = _clustering_saving(history, filtered, fleet, chosen, ratio=ratio, origin=origin)
            verdict = "cluster" if saved > recluster else "not worth it: upkeep exceeds the saving"
        key = f"TO_DATE({column})" if column.endswith("_TS") else column
        statement = ClusterBy(table=name, keys=(key,)) if verdict == "cluster" else None
        advice.append(ClusteringAdvice(name, size_tb, column, share, ratio, verdict, saved, recluster, statement))
    return advice


def daily_churn(history: pd.DataFrame, tables: pd.DataFrame) -> dict[str, float]:
    """Share of each table's rows changed per day: Σ ROWS_UPDATED of DML on it / days / ROW_COUNT."""
    rows = {f"{t.TABLE_CATALOG}.{t.TABLE_SCHEMA}.{t.TABLE_NAME}": float(t.ROW_COUNT or 0) for t in tables.itertuples()}
    dml = history[history["QUERY_TYPE"].isin(["INSERT", "MERGE", "UPDATE", "DELETE"])]
    changed: dict[str, float] = defaultdict(float)
    for text, updated in zip(dml["QUERY_TEXT"], dml["ROWS_UPDATED"].fillna(0), strict=True):
        target = written_table(str(text))
        if target:
            changed[target] += float(updated)
    return {name: changed[name] / DAYS / count for name, count in rows.items() if count}


def _clustering_saving(
    history: pd.DataFrame,
    filtered: pd.DataFrame,
    fleet: dict[str, WarehouseConfig],
    chosen: dict[str, int],
    *,
    ratio: float,
    origin: datetime,
) -> float:
    factor = CLUSTERED_SCAN_RATIO / ratio
    saved = 0.0
    for name, warehouse in fleet.items():
        busy = history[(history["WAREHOUSE_NAME"] == name) & (history["EXECUTION_TIME"] > 0)]
        starts = _seconds(busy["START_TIME"], origin)
        seconds = busy["EXECUTION_TIME"].to_numpy() / 1000
        faster = np.where(busy["QUERY_ID"].isin(filtered["QUERY_ID"]).to_numpy(), seconds * factor, seconds)
        suspend = chosen[name]
        saved += billed_credits(starts, starts + seconds, suspend, warehouse.credits_per_hour) - billed_credits(
            starts, starts + faster, suspend, warehouse.credits_per_hour
        )
    return saved


# ---------------------------------------------------------------------------------------------
# Step 8: the same workload on Databricks
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlatformCost:
    option: str
    units: str
    quantity: float
    usd: float
    note: str


def minute_demand(starts: np.ndarray, ends: np.ndarray, minutes: int) -> np.ndarray:
    """Busy fraction of each minute (0-1): how much of the warehouse the workload needs then."""
    busy = np.zeros(minutes)
    for s, e in zip(starts, ends, strict=True):
        first, last = int(s // 60), int(min(e, minutes * 60 - 1) // 60)
        for m in range(first, last + 1):
            busy[m] += min(e, (m + 1) * 60) - max(s, m * 60)
    return np.clip(busy / 60, 0, 1)


def databricks_costs(
    intervals: pd.DataFrame, fleet: dict[str, WarehouseConfig], origin: datetime
) -> list[PlatformCost]:
    """Fixed, autoscaling and spot classic clusters and serverless SQL, for the same query intervals.

    Each Snowflake warehouse becomes one cluster of `credits/hour` nodes (1 node ≈ X-Small).
    """
    minutes = (DAYS + 1) * 24 * 60
    serverless_dbu = fixed_node_h = auto_node_h = 0.0
    day_ranges: list[tuple[float, float]] = []
    for name, warehouse in fleet.items():
        mine = intervals[intervals["WAREHOUSE_NAME"] == name]
        starts, ends = _seconds(mine["START_TIME"], origin), _seconds(mine["END_TIME"], origin)
        sessions = billed_sessions(starts, ends, DBX_SQL_AUTO_STOP_SECONDS)
        dbx_size = SNOWFLAKE_TO_DBX_SQL[warehouse.size]
        serverless_dbu += sum(b - a for a, b in sessions) / 3600 * DBX_SQL_DBU_PER_HOUR[dbx_size]
        nodes = warehouse.credits_per_hour
        for day in range(DAYS):
            today = (starts >= day * 86_400) & (starts < (day + 1) * 86_400)
            if today.any():
                first, last = float(starts[today].min()), float(ends[today].max())
                hours = (last - first + DBX_CLUSTER_START_SECONDS) / 3600
                fixed_node_h += (nodes + 1) * hours
                day_ranges.append((first, last))
        demand = minute_demand(starts, ends, minutes)
        needed = np.ceil(demand * nodes)
        kept = pd.Series(needed).rolling(DBX_AUTOSCALE_SCALE_DOWN_MINUTES, min_periods=1).max().to_numpy()
        up = np.zeros(minutes, dtype=bool)
        for a, b in billed_sessions(starts, ends, DBX_SQL_AUTO_STOP_SECONDS):
            up[int(a // 60) : int(min(b, minutes * 60 - 1) // 60) + 1] = True
        workers = np.where(up, np.maximum(kept, 1), 0)
        auto_node_h += float((workers + up).sum()) / 60 + len(sessions) * DBX_CLUSTER_START_SECONDS / 3600
    node_usd = DBX_NODE_DBU_PER_HOUR * DBX_JOBS_USD_PER_DBU + DBX_NODE_VM_USD_PER_HOUR
    spot_node_usd = DBX_NODE_DBU_PER_HOUR * DBX_JOBS_USD_PER_DBU + DBX_NODE_VM_USD_PER_HOUR * (1 - SPOT_DISCOUNT)
    interruptions = auto_node_h * SPOT_INTERRUPTIONS_PER_NODE_HOUR
    rework_usd = interruptions * SPOT_REWORK_MINUTES / 60 * node_usd
    spot_usd = auto_node_h * spot_node_usd + rework_usd
    busiest_day_node_hours = auto_node_h / DAYS
    risk = 1 - math.exp(-SPOT_INTERRUPTIONS_PER_NODE_HOUR * busiest_day_node_hours)
    return [
        PlatformCost(
            "Databricks SQL serverless",
            "DBU",
            serverless_dbu,
            serverless_dbu * DBX_SQL_SERVERLESS_USD_PER_DBU,
            f"auto-stop {DBX_SQL_AUTO_STOP_SECONDS} s",
        ),
        PlatformCost(
            "Databricks jobs cluster, fixed size",
            "node-hours",
            fixed_node_h,
            fixed_node_h * node_usd,
            "up from each day's first query to its last, + driver",
        ),
        PlatformCost(
            "Databricks jobs cluster, autoscaling",
            "node-hours",
            auto_node_h,
            auto_node_h * node_usd,
            f"nodes follow demand, scale down after {DBX_AUTOSCALE_SCALE_DOWN_MINUTES} min",
        ),
        PlatformCost(
            "Databricks autoscaling on spot",
            "node-hours",
            auto_node_h,
            spot_usd,
            f"{interruptions:.1f} interruptions/month expected; P(≥1 on a given day) = {risk:.0%}",
        ),
    ]


# ---------------------------------------------------------------------------------------------
# The pattern
# ---------------------------------------------------------------------------------------------


def fleet_from_account(rows: list[dict] | None) -> dict[str, WarehouseConfig]:
    """The warehouses as configured: SHOW WAREHOUSES on an account, the generated fleet locally."""
    if rows is None:
        return {w.name: w for w in FLEET}
    labels = {label.upper().replace("-", ""): size for size, label in SIZE_LABELS.items()}
    fleet = {}
    for row in rows:
        size = labels.get(str(row.get("SIZE", "")).upper().replace("-", ""))
        if size is not None:
            name = str(row["NAME"])
            # AUTO_SUSPEND NULL or 0 means "never suspend": it runs from its first resume to the end.
            suspend = int(row.get("AUTO_SUSPEND") or 0) or NEVER_SUSPENDS
            fleet[name] = WarehouseConfig(name, size, suspend, interactive=True)
    return fleet


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--apply", action="store_true", help="with a real account: execute the recommended ALTER statements"
    )


@dataclass
class Study:
    """What every step reads: the session, the analysis window, the fleet and its query intervals."""

    run: PatternRun
    session: SnowflakeSession
    window: tuple[datetime, datetime]
    fleet: dict[str, WarehouseConfig]
    intervals: pd.DataFrame
    apply: bool
    avoidable_truth: frozenset[str] | None = None

    @property
    def params(self) -> dict[str, datetime]:
        return {"window_start": self.window[0], "window_end": self.window[1]}

    def propose(self, statement: CloudStatement, purpose: str) -> None:
        """On an account, change it only when asked (`--apply`); otherwise show it. Locally, record it."""
        if self.apply:
            self.session.cloud_only(statement, purpose)
        else:
            self.session.recommend(statement, purpose, "a recommendation: rerun with --apply to execute it")


def show_billing_model(run: PatternRun) -> None:
    """The price list as code, and the 60-second minimum proven on one short query."""
    run.table(
        [{"size": SIZE_LABELS[s], "credits/hour": s.credits_per_hour, "USD/hour": s.credits_per_hour * CREDIT_PRICE_USD}
         for s in SIZE_LABELS],
        title=f"at {CREDIT_PRICE_USD:.2f} USD/credit (assumption)",
    )  # fmt: skip
    ten_second_query = billed_credits(np.array([0.0]), np.array([10.0]), 0, 1)
    run.check(
        "a 10-second query on a resumed X-Small bills the 60-second minimum",
        math.isclose(ten_second_query, MINIMUM_BILLED_SECONDS / 3600),
        f"{ten_second_query * 3600:.0f} credit-seconds",
    )


def open_history(run: PatternRun, session: SnowflakeSession, *, apply: bool) -> Study:
    """Locally: generate and load ACCOUNT_USAGE. On an account: the last 30 days, read-only."""
    truth = None
    if session.is_local:
        generated = generate_account_usage(run.rows, run.seed)
        frames, truth = generated.views, generated.avoidable_misses
        loaded = load_local_account_usage(session, frames)
        window = (LOCAL_ORIGIN, LOCAL_ORIGIN + timedelta(days=DAYS))
        run.table([{"view": f"SNOWFLAKE.ACCOUNT_USAGE.{v}", "rows": n} for v, n in loaded.items()], title="loaded")
        run.check("every generated row is in the local ACCOUNT_USAGE", all(loaded[v] == len(frames[v]) for v in loaded))
    else:
        now = datetime.now()
        window = (now - timedelta(days=DAYS), now)
    fleet = fleet_from_account(
        session.cloud_only_fetch(ShowWarehouses(), purpose="read each warehouse's size and AUTO_SUSPEND")
    )
    run.table(
        [{"warehouse": w.name, "size": SIZE_LABELS[w.size], "AUTO_SUSPEND s": w.auto_suspend} for w in fleet.values()],
        title="fleet today",
    )
    intervals = session.fetch_df(
        "SELECT QUERY_ID, QUERY_TEXT, QUERY_TYPE, ROLE_NAME, WAREHOUSE_NAME, START_TIME, END_TIME, EXECUTION_TIME, "
        "PARTITIONS_SCANNED, PARTITIONS_TOTAL, BYTES_SPILLED_TO_REMOTE_STORAGE, ROWS_UPDATED "
        "FROM SNOWFLAKE.ACCOUNT_USAGE.QUERY_HISTORY WHERE START_TIME >= %(window_start)s AND START_TIME < %(window_end)s",
        {"window_start": window[0], "window_end": window[1]},
    )
    return Study(run, session, window, fleet, intervals, apply, truth)


def tune_auto_suspend(study: Study) -> tuple[dict[str, Replay], dict[str, Replay]]:
    """Replay every candidate setting; check the replay against metering; pick and propose settings."""
    run, session, fleet = study.run, study.session, study.fleet
    replays = {
        name: [replay(session, name, s, study.window) for s in sorted({*CANDIDATE_AUTO_SUSPEND, w.auto_suspend}, reverse=True)]
        for name, w in fleet.items()
    }  # fmt: skip
    run.table(
        [{"warehouse": r.warehouse, "AUTO_SUSPEND s": r.auto_suspend, "resumes": r.resumes, "credits": r.credits,
          "idle share": f"{r.idle_share:.0%}"} for rs in replays.values() for r in rs],
        title="the same queries under each setting", max_rows=40,
    )  # fmt: skip
    metered = {
        r["WAREHOUSE_NAME"]: float(r["CREDITS"])
        for r in session.fetch(
            "SELECT WAREHOUSE_NAME, SUM(CREDITS_USED_COMPUTE) AS CREDITS FROM SNOWFLAKE.ACCOUNT_USAGE.WAREHOUSE_METERING_HISTORY "
            "WHERE START_TIME >= %(window_start)s AND START_TIME < %(window_end)s GROUP BY 1",
            {"window_start": study.window[0], "window_end": study.window[1] + timedelta(days=1)},
        )
    }
    current = {name: next(r for r in replays[name] if r.auto_suspend == w.auto_suspend) for name, w in fleet.items()}
    for name, replayed in current.items():
        metering = metered.get(name, 0.0)
        apart = abs(replayed.credits - metering) / max(metering, 1e-9)
        if session.is_local:
            run.check(
                f"{name}: the SQL replay at today's setting reproduces the metered credits",
                apart < 1e-4,
                f"replay {replayed.credits:.3f} vs metering {metering:.3f}",
            )
        else:
            run.figure(f"{name} replay vs metering", apart * 100, "% apart", how="SQL replay vs METERING_HISTORY")
    ladders = [sorted(replays[name], key=lambda r: r.auto_suspend) for name in fleet]
    run.check(
        "a lower AUTO_SUSPEND never bills more for the same queries (settings ≥ 60 s)",
        all(low.credits <= high.credits + 1e-9 for ladder in ladders for low, high in itertools.pairwise(ladder)),
    )
    chosen = {name: choose_auto_suspend(fleet[name], replays[name]) for name in fleet}
    run.table(
        [{"warehouse": n, "today": f"{current[n].auto_suspend} s", "recommended": f"{chosen[n].auto_suspend} s",
          "credits today": current[n].credits, "credits after": chosen[n].credits,
          "cold starts/day after": chosen[n].resumes / DAYS} for n in fleet],
        title="AUTO_SUSPEND recommendation",
    )  # fmt: skip
    saved = sum(current[n].credits - chosen[n].credits for n in fleet)
    total_now = sum(r.credits for r in current.values())
    run.figure("credits saved by the auto-suspend change", saved, "credits/month",
               how="Σ replay(today's AUTO_SUSPEND) − replay(recommended), same queries", key=True)  # fmt: skip
    run.figure("monthly saving at list price", saved * CREDIT_PRICE_USD, "USD",
               how=f"× {CREDIT_PRICE_USD} USD/credit (assumption)", key=True)  # fmt: skip
    run.figure("share of the bill that is idle time",
               sum(r.credits * r.idle_share for r in current.values()) / max(total_now, 1e-9) * 100, "%",
               how="billed − active seconds, credit-weighted")  # fmt: skip
    for name in fleet:
        if chosen[name].auto_suspend != fleet[name].auto_suspend:
            study.propose(
                AlterWarehouse(name=name, auto_suspend_seconds=chosen[name].auto_suspend),
                f"save {current[name].credits - chosen[name].credits:.1f} credits/month",
            )
    return current, chosen


def right_size(study: Study, chosen: dict[str, Replay]) -> list[Sizing]:
    """Evidence per warehouse in SQL, one remedy per symptom, credits after by replay."""
    evidence = {r["WAREHOUSE_NAME"]: r for r in study.session.fetch(SIZING_SQL, study.params)}
    sizings = [
        recommend_size(evidence[n], study.fleet[n], chosen[n], study.intervals, study.window[0])
        for n in study.fleet
        if n in evidence
    ]
    study.run.table(
        [{"warehouse": s.warehouse, "action": s.action, "why": s.reason, "credits before": s.credits_before,
          "credits after": s.credits_after} for s in sizings],
        title="right-sizing (credits after = replay of the same queries at the new size)",
    )  # fmt: skip
    for sizing in sizings:
        for statement in sizing.statements:
            study.propose(statement, sizing.reason)
    if study.session.is_local:
        spilling = {n for n, e in evidence.items() if float(e["REMOTE_SPILL_SHARE"] or 0) > 0}
        queueing = {n for n, e in evidence.items() if float(e["QUEUED_SHARE"] or 0) > 0}
        study.run.check(
            "the evidence SQL finds spilling only on ETL_WH and queueing only on BI_WH (where the generator put them)",
            spilling == {"ETL_WH"} and queueing == {"BI_WH"},
            f"spilling {sorted(spilling)}, queueing {sorted(queueing)}",
        )
    study.run.figure("credits saved by right-sizing", sum(s.credits_before - s.credits_after for s in sizings),
                     "credits/month", how="replayed at the new size, linear scaling assumed")  # fmt: skip
    return sizings


def cap_spend(study: Study, optimized: float) -> None:
    """A monthly quota with NOTIFY / SUSPEND / SUSPEND_IMMEDIATE, and the day each would fire today."""
    quota = math.ceil(optimized * BUDGET_HEADROOM)
    monitor = ResourceMonitor(
        name="MONTHLY_FLEET_CAP",
        credit_quota=quota,
        triggers=(
            MonitorTrigger(percent=75, action=MonitorAction.NOTIFY),
            MonitorTrigger(percent=100, action=MonitorAction.SUSPEND),
            MonitorTrigger(percent=110, action=MonitorAction.SUSPEND_IMMEDIATE),
        ),
    )
    daily = study.session.fetch_df(
        "SELECT TO_DATE(START_TIME) AS DAY, SUM(CREDITS_USED) AS CREDITS FROM SNOWFLAKE.ACCOUNT_USAGE.WAREHOUSE_METERING_HISTORY "
        "WHERE START_TIME >= %(window_start)s AND START_TIME < %(window_end)s GROUP BY 1 ORDER BY 1",
        study.params,
    )
    cumulative = daily["CREDITS"].astype(float).cumsum().to_numpy()
    fired = []
    for trigger in monitor.triggers:
        crossing = np.flatnonzero(cumulative >= quota * trigger.percent / 100)
        day = int(crossing[0]) + 1 if crossing.size else None
        fired.append({"trigger": f"{trigger.percent}% → {trigger.action.value}", "credits": quota * trigger.percent / 100,
                      FIRES_ON: day or "never"})  # fmt: skip
    study.run.table(fired, title=f"quota {quota} credits = ceil(optimized {optimized:.1f} × {BUDGET_HEADROOM})")
    study.propose(monitor, "cap monthly spend; suspend at 100%")
    for name in study.fleet:
        study.propose(AlterWarehouse(name=name, resource_monitor=monitor.name), "attach the cap")
    if study.session.is_local:
        study.run.check(
            "with today's settings the cap would suspend the fleet before month end",
            isinstance(fired[1][FIRES_ON], int),
            f"SUSPEND on day {fired[1][FIRES_ON]}",
        )


def reuse_results(study: Study, chosen: dict[str, Replay]) -> None:
    """Avoidable result-cache misses and the credits reuse would save (replay without them)."""
    misses = result_cache_misses(study.intervals, study.window[0])
    by_reason = Counter(m.why for m in misses)
    ids = {m.query_id for m in misses}
    without = 0.0
    for name, warehouse in study.fleet.items():
        mine = study.intervals[(study.intervals["WAREHOUSE_NAME"] == name) & (study.intervals["EXECUTION_TIME"] > 0)]
        kept = mine[~mine["QUERY_ID"].isin(ids)]
        without += billed_credits(
            _seconds(kept["START_TIME"], study.window[0]), _seconds(kept["END_TIME"], study.window[0]),
            chosen[name].auto_suspend, warehouse.credits_per_hour,
        )  # fmt: skip
    saving = sum(chosen[n].credits for n in study.fleet) - without
    hits = int((study.intervals["EXECUTION_TIME"] == 0).sum())
    study.run.table(
        [{"why it missed": k, "queries": v, "warehouse seconds": sum(m.execution_seconds for m in misses if m.why == k)}
         for k, v in by_reason.items()],
        title=f"{hits} queries already served from the result cache",
    )  # fmt: skip
    study.run.figure("credits saved by result reuse", saving, "credits/month",
                     how="replay at the recommended AUTO_SUSPEND with vs without the avoidable misses", key=True)  # fmt: skip
    if study.avoidable_truth is not None:
        study.run.check(
            "the SQL-text analysis finds exactly the misses the generator knows were avoidable",
            ids == study.avoidable_truth,
            f"{len(ids)} found, {len(study.avoidable_truth)} generated, {len(ids ^ study.avoidable_truth)} differ",
        )


def advise_clustering(study: Study, chosen: dict[str, Replay]) -> None:
    tables = study.session.fetch_df(
        "SELECT TABLE_CATALOG, TABLE_SCHEMA, TABLE_NAME, ROW_COUNT, BYTES FROM SNOWFLAKE.ACCOUNT_USAGE.TABLES "
        "WHERE DELETED IS NULL AND BYTES > 0"
    )
    suspend = {n: chosen[n].auto_suspend for n in study.fleet}
    advice = clustering_advice(study.intervals, tables, study.fleet, suspend, study.window[0])
    study.run.table(
        [{"table": a.table, "TB": a.size_tb, "filter column": a.column or "-", "share": f"{a.filter_share:.0%}",
          "scanned": f"{a.scan_ratio:.1%}", "saved cr/mo": a.monthly_credits_saved,
          "upkeep cr/mo": a.monthly_recluster_credits, "verdict": a.verdict} for a in advice],
        title="clustering candidates",
    )  # fmt: skip
    for item in advice:
        if item.statement is not None:
            study.propose(item.statement, item.verdict)
    if study.session.is_local:
        by_table = {a.table: a for a in advice}
        orders, low, high = by_table["SHOP.CORE.ORDERS"], *BI_TILES[0].scan_ratio
        study.run.check(
            "pruning measured from the history matches the generator; EVENTS and CUSTOMERS are never clustered",
            low <= orders.scan_ratio <= high
            and by_table["SHOP.CORE.EVENTS"].statement is None
            and by_table["SHOP.CORE.CUSTOMERS"].statement is None,
            f"ORDERS scans {orders.scan_ratio:.0%} (generated {low:.0%}-{high:.0%}); ORDERS verdict: {orders.verdict}",
        )


def compare_platforms(study: Study, today: float, optimized: float) -> None:
    costs = [
        PlatformCost("Snowflake, today's settings", "credits", today, today * CREDIT_PRICE_USD, "replay at today's AUTO_SUSPEND"),
        PlatformCost("Snowflake, optimized", "credits", optimized, optimized * CREDIT_PRICE_USD, "AUTO_SUSPEND + right-sizing"),
        *databricks_costs(study.intervals[study.intervals["EXECUTION_TIME"] > 0], study.fleet, study.window[0]),
    ]  # fmt: skip
    study.run.table(
        [{"option": c.option, "units": f"{c.quantity:,.1f} {c.units}", "USD/month": c.usd, "note": c.note} for c in costs],
        title="one month, list-price assumptions (constants at the top of this file)",
    )  # fmt: skip
    spot = next(c for c in costs if "spot" in c.option)
    autoscaling = next(c for c in costs if c.option.endswith("autoscaling"))
    study.run.check(
        "at these assumptions the spot discount outweighs the expected rework after interruptions",
        spot.usd < autoscaling.usd,
        f"{spot.usd:,.0f} < {autoscaling.usd:,.0f} USD",
    )
    cheapest = min(costs, key=lambda c: c.usd)
    study.run.figure("cheapest option", cheapest.option, how="under the stated assumptions", key=True)


def body(run: PatternRun) -> None:
    with run.snowflake(database="COSTLAB", schema="PUBLIC") as session:
        run.step("The billing model: size → credits/hour, per-second billing, 60 s minimum per resume")
        show_billing_model(run)
        run.step("A month of ACCOUNT_USAGE, queried with the same SQL an account runs")
        study = open_history(run, session, apply=bool(run.args.apply))
        run.step("Replay AUTO_SUSPEND in SQL: billed credits, idle waste, cold starts")
        current, chosen = tune_auto_suspend(study)
        run.step("Right-size from utilization, queueing and spilling")
        sizings = right_size(study, chosen)
        optimized = sum(s.credits_after for s in sizings)
        run.step("A resource monitor: a monthly cap, and the day it would fire")
        cap_spend(study, optimized)
        run.step("Result cache: repeated queries that missed it")
        reuse_results(study, chosen)
        run.step("Clustering: keys from the filters in the history, and when it is not worth it")
        advise_clustering(study, chosen)
        run.step("The same workload on Databricks")
        compare_platforms(study, sum(r.credits for r in current.values()), optimized)


def main(argv: Sequence[str] | None = None) -> int:
    return run_pattern(__file__, argv, body, default_rows=12_000, add_arguments=add_arguments)


if __name__ == "__main__":
    raise SystemExit(main())
