"""A month of SNOWFLAKE.ACCOUNT_USAGE for a generated account: the local stand-in for an account's history.

Why: cost work on Snowflake starts from ACCOUNT_USAGE (QUERY_HISTORY, WAREHOUSE_METERING_HISTORY,
TABLES), which the local engine does not have. This module generates a month of it for a small
fleet of warehouses (hourly and nightly ETL, a 09:00 report rush that queues, dashboards from two
BI tools that spell the same queries differently, ad-hoc analysts), simulating what Snowflake does
with each query: queueing behind a busy warehouse, spilling, and reusing a result from the result
cache. It is seeded: the same (queries, seed) gives the same month. `load_local_account_usage`
loads the views into the local engine under their real names, so the same SQL runs on an account.
It also returns the ground truth an analysis is checked against: which cache misses were avoidable.
"""

from __future__ import annotations

import contextlib
import heapq
import math
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import snowflake.connector.errors

from expert.runtime.data import EPOCH
from expert.runtime.errors import ExpertError
from expert.runtime.snowflake import SnowflakeSession
from expert.runtime.snowflake_ddl import WarehouseSize

DAYS = 30
"""The history covers this many days from LOCAL_ORIGIN."""
LOCAL_ORIGIN = pd.Timestamp(EPOCH).tz_convert(None).to_pydatetime()
"""The generated month starts here (naive UTC, as TIMESTAMP_NTZ)."""
SIZE_LABELS = {
    WarehouseSize.XSMALL: "X-Small",
    WarehouseSize.SMALL: "Small",
    WarehouseSize.MEDIUM: "Medium",
    WarehouseSize.LARGE: "Large",
    WarehouseSize.XLARGE: "X-Large",
    WarehouseSize.XXLARGE: "2X-Large",
}
"""How QUERY_HISTORY.WAREHOUSE_SIZE spells each size."""
MAX_CONCURRENCY_LEVEL = 8
"""Snowflake's default concurrent queries per cluster before new ones queue."""
RESULT_REUSE_SECONDS = 24 * 3600
"""Snowflake reuses a query result for 24 hours (if nothing it read has changed)."""
SPILL_SLOWDOWN = 2.0
"""A generated query that spills to remote storage runs this much slower."""
TABLES = {
    "SHOP.CORE.ORDERS": (1.6, 12_000, 0.03),
    "SHOP.CORE.EVENTS": (9.0, 70_000, 0.02),
    "SHOP.CORE.CUSTOMERS": (0.004, 40, 0.05),
    "SHOP.MART.DAILY_REVENUE": (0.001, 4, 1.0),
}
"""Generated table sizes: TB, micro-partitions, share of the table's rows changed per day by DML."""
ROWS_PER_TB = 4_000_000_000
GENERATED_HISTORY = (
    "SNOWFLAKE.ACCOUNT_USAGE and SHOW WAREHOUSES",
    "a generated month of QUERY_HISTORY, WAREHOUSE_METERING_HISTORY (billed by the pattern's model) and "
    "TABLES for a generated fleet of three warehouses, loaded into the local engine under the same names",
)
"""What the generated history stands in for, and how (for `run.stand_in`)."""
SIMULATED_ON_THE_WAY = (
    "the result cache and warehouse queueing",
    "simulated while the history is generated: a query repeated with the same text and role within 24 h, "
    "nothing it read changed since, is served without running; a ninth concurrent query queues",
)
"""What the generator simulates as Snowflake would, and how (for `run.stand_in`)."""

Sessions = Callable[[np.ndarray, np.ndarray, int], list[tuple[float, float]]]
"""The intervals a warehouse is up and billed for busy intervals (starts, ends in seconds) and an AUTO_SUSPEND."""


@dataclass(frozen=True)
class WarehouseConfig:
    """A warehouse as configured: size, AUTO_SUSPEND seconds, and whether people wait on it."""

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
"""The generated account's warehouses as configured today."""
NEVER_SUSPENDS = DAYS * 86_400
"""AUTO_SUSPEND = 0 / NULL (never), replayed as idling until the end of the 30-day window."""


def fleet_from_show_warehouses(rows: list[dict] | None) -> dict[str, WarehouseConfig]:
    """The warehouses as configured, from SHOW WAREHOUSES rows on an account; the generated FLEET for `None`.

    A warehouse with AUTO_SUSPEND NULL or 0 never suspends: it is replayed as idling to the window's end.
    """
    if rows is None:
        return {w.name: w for w in FLEET}
    labels = {label.upper().replace("-", ""): size for size, label in SIZE_LABELS.items()}
    fleet = {}
    for row in rows:
        size = labels.get(str(row.get("SIZE", "")).upper().replace("-", ""))
        if size is not None:
            name = str(row["NAME"])
            suspend = int(row.get("AUTO_SUSPEND") or 0) or NEVER_SUSPENDS
            fleet[name] = WarehouseConfig(name, size, suspend, interactive=True)
    return fleet


def seconds_since(times: pd.Series, origin: datetime = LOCAL_ORIGIN) -> np.ndarray:
    """Seconds from `origin` to each timestamp (naive or UTC): the billing replays work in seconds."""
    stamps = pd.to_datetime(times)
    if stamps.dt.tz is not None:
        stamps = stamps.dt.tz_convert(None)
    return (stamps - pd.Timestamp(origin)).dt.total_seconds().to_numpy()


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
        return produced is not None and now - produced < RESULT_REUSE_SECONDS and self.last_write[table] < produced

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


def generate_account_usage(queries: int, seed: int, *, billing: Sessions) -> GeneratedUsage:
    """A month of ACCOUNT_USAGE for the FLEET: QUERY_HISTORY, WAREHOUSE_METERING_HISTORY, TABLES.

    Deterministic for (queries, seed); queueing and the result cache are simulated as Snowflake
    applies them. WAREHOUSE_METERING_HISTORY is the time each warehouse is billed for under its
    current AUTO_SUSPEND, by `billing(starts, ends, auto_suspend)` (the pattern passes its own
    billing model), split into clock hours.
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
            seconds = template.seconds * float(rng.lognormal(0, 0.25)) * (SPILL_SLOWDOWN if spill else 1.0)
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
        "WAREHOUSE_METERING_HISTORY": _metering(history, fleet, billing),
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


def hourly_credits(billed: list[tuple[float, float]], credits_per_hour: float, hours: int) -> np.ndarray:
    """Billed intervals (seconds) as credits per clock hour: the grain of WAREHOUSE_METERING_HISTORY."""
    out = np.zeros(hours)
    for resumed, suspended in billed:
        cursor, hour = resumed, int(resumed // 3600)
        while cursor < suspended and hour < hours:
            edge = min(suspended, (hour + 1) * 3600)
            out[hour] += (edge - cursor) * credits_per_hour / 3600
            cursor, hour = edge, hour + 1
    return out


def _metering(history: pd.DataFrame, fleet: dict[str, WarehouseConfig], billing: Sessions) -> pd.DataFrame:
    """Hourly credits per warehouse under its current AUTO_SUSPEND."""
    rows = []
    for name, warehouse in fleet.items():
        busy = history[(history["WAREHOUSE_NAME"] == name) & (history["EXECUTION_TIME"] > 0)]
        starts, ends = seconds_since(busy["START_TIME"]), seconds_since(busy["END_TIME"])
        billed = billing(starts, ends, warehouse.auto_suspend)
        credits = hourly_credits(billed, warehouse.credits_per_hour, DAYS * 24 + 24)
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
"""The columns of each ACCOUNT_USAGE view that the generator writes (a subset; same names and types)."""


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


@contextlib.contextmanager
def account_usage_access() -> Iterator[None]:
    """On an account, turn a refusal to read SNOWFLAKE.ACCOUNT_USAGE into the grant that is missing."""
    try:
        yield
    except snowflake.connector.errors.ProgrammingError as exc:
        raise ExpertError(
            f"cannot read SNOWFLAKE.ACCOUNT_USAGE: {str(exc.msg or exc).splitlines()[0]}",
            "use a role with IMPORTED PRIVILEGES on the SNOWFLAKE database "
            "(GRANT IMPORTED PRIVILEGES ON DATABASE SNOWFLAKE TO ROLE <your role>, as ACCOUNTADMIN)",
        ) from None
