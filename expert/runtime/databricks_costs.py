"""The same workload costed on Databricks: serverless SQL, and jobs clusters fixed, autoscaling or on spot.

Why: "would this be cheaper on the other platform?" is a question every platform team gets, and
the only honest answer replays the same query intervals under each platform's billing. Each
Snowflake warehouse becomes one Databricks cluster of `credits/hour` nodes; the prices and
platform behaviours are ASSUMPTIONS, named below so they can be changed to yours (list prices
vary by cloud, region and contract). Benchmark your own workload before trusting the sizes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from expert.runtime.snowflake_ddl import WarehouseSize
from expert.runtime.usage_history import DAYS, Sessions, WarehouseConfig, seconds_since

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
    intervals: pd.DataFrame, fleet: dict[str, WarehouseConfig], origin: datetime, *, sessions: Sessions
) -> list[PlatformCost]:
    """Fixed, autoscaling and spot classic clusters and serverless SQL, for the same query intervals.

    Each Snowflake warehouse becomes one cluster of `credits/hour` nodes (1 node ≈ X-Small).
    `sessions(starts, ends, idle_seconds)` gives the intervals a compute stays up, given the idle
    time before it stops (the pattern passes its billing model, so auto-stop bills as AUTO_SUSPEND does).
    """
    minutes = (DAYS + 1) * 24 * 60
    serverless_dbu = fixed_node_h = auto_node_h = 0.0
    for name, warehouse in fleet.items():
        mine = intervals[intervals["WAREHOUSE_NAME"] == name]
        starts, ends = seconds_since(mine["START_TIME"], origin), seconds_since(mine["END_TIME"], origin)
        up_time = sessions(starts, ends, DBX_SQL_AUTO_STOP_SECONDS)
        dbx_size = SNOWFLAKE_TO_DBX_SQL[warehouse.size]
        serverless_dbu += sum(b - a for a, b in up_time) / 3600 * DBX_SQL_DBU_PER_HOUR[dbx_size]
        nodes = warehouse.credits_per_hour
        for day in range(DAYS):
            today = (starts >= day * 86_400) & (starts < (day + 1) * 86_400)
            if today.any():
                first, last = float(starts[today].min()), float(ends[today].max())
                hours = (last - first + DBX_CLUSTER_START_SECONDS) / 3600
                fixed_node_h += (nodes + 1) * hours
        demand = minute_demand(starts, ends, minutes)
        needed = np.ceil(demand * nodes)
        kept = pd.Series(needed).rolling(DBX_AUTOSCALE_SCALE_DOWN_MINUTES, min_periods=1).max().to_numpy()
        up = np.zeros(minutes, dtype=bool)
        for a, b in up_time:
            up[int(a // 60) : int(min(b, minutes * 60 - 1) // 60) + 1] = True
        workers = np.where(up, np.maximum(kept, 1), 0)
        auto_node_h += float((workers + up).sum()) / 60 + len(up_time) * DBX_CLUSTER_START_SECONDS / 3600
    node_usd = DBX_NODE_DBU_PER_HOUR * DBX_JOBS_USD_PER_DBU + DBX_NODE_VM_USD_PER_HOUR
    spot_node_usd = DBX_NODE_DBU_PER_HOUR * DBX_JOBS_USD_PER_DBU + DBX_NODE_VM_USD_PER_HOUR * (1 - SPOT_DISCOUNT)
    interruptions = auto_node_h * SPOT_INTERRUPTIONS_PER_NODE_HOUR
    rework_usd = interruptions * SPOT_REWORK_MINUTES / 60 * node_usd
    spot_usd = auto_node_h * spot_node_usd + rework_usd
    node_hours_per_day = auto_node_h / DAYS
    risk = 1 - math.exp(-SPOT_INTERRUPTIONS_PER_NODE_HOUR * node_hours_per_day)
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
