"""snowflake/02: the billing model, the SQL replay against an independent one, sizing and cold-start rules.

Runs of main() come from the shared `pattern_run` fixture (cached per argument set; no Spark started).
"""

from __future__ import annotations

import re
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from expert.runtime import usage_history
from expert.runtime.pattern import load_module, select_patterns
from expert.runtime.snowflake_ddl import WarehouseSize


@pytest.fixture(scope="module")
def cost() -> ModuleType:
    (meta,) = select_patterns("snowflake/02")
    return load_module(meta)


def test_billing_model_by_hand(cost: ModuleType) -> None:
    starts, ends = np.array([0.0, 100.0, 5000.0]), np.array([10.0, 130.0, 5001.0])
    # AUTO_SUSPEND 600: queries 1-2 share a run [0, 130 + 600]; query 3 resumes again.
    assert cost.billed_sessions(starts, ends, 600) == [(0.0, 730.0), (5000.0, 5601.0)]
    # AUTO_SUSPEND 0: every run bills at least 60 seconds.
    assert cost.billed_sessions(starts, ends, 0) == [(0.0, 60.0), (100.0, 160.0), (5000.0, 5060.0)]
    assert cost.billed_credits(starts, ends, 600, 4) == pytest.approx((730 + 601) * 4 / 3600)
    hourly = usage_history.hourly_credits(cost.billed_sessions(starts, ends, 600), 4, 3)
    assert hourly.sum() == pytest.approx(cost.billed_credits(starts, ends, 600, 4))
    assert hourly[1] == pytest.approx((5601 - 5000) * 4 / 3600)


def test_sql_replay_matches_the_python_replay(cost: ModuleType, snowflake_local) -> None:  # type: ignore[no-untyped-def]
    """Two independent implementations of the billing model agree on random, overlapping queries."""
    rng = np.random.default_rng(5)
    starts = np.sort(rng.uniform(0, 6 * 3600, 300))
    ends = starts + rng.exponential(40, 300)
    origin = usage_history.LOCAL_ORIGIN
    frame = pd.DataFrame(
        {
            "WAREHOUSE_NAME": "WH",
            "WAREHOUSE_SIZE": "Medium",
            "START_TIME": [origin + pd.Timedelta(seconds=float(s)) for s in starts],
            "END_TIME": [origin + pd.Timedelta(seconds=float(e)) for e in ends],
            "EXECUTION_TIME": 1000,
        }
    )
    snowflake_local.execute("CREATE DATABASE IF NOT EXISTS SNOWFLAKE")
    snowflake_local.execute("CREATE SCHEMA IF NOT EXISTS SNOWFLAKE.ACCOUNT_USAGE")
    snowflake_local.execute(
        "CREATE TABLE SNOWFLAKE.ACCOUNT_USAGE.QUERY_HISTORY (WAREHOUSE_NAME VARCHAR, WAREHOUSE_SIZE VARCHAR, "
        "START_TIME TIMESTAMP_NTZ, END_TIME TIMESTAMP_NTZ, EXECUTION_TIME NUMBER)"
    )
    snowflake_local.execute("USE SCHEMA SNOWFLAKE.ACCOUNT_USAGE")
    snowflake_local.write_pandas(frame, "QUERY_HISTORY", auto_create_table=False, use_logical_type=True)
    window = (origin, origin + pd.Timedelta(days=1))
    for suspend in (0, 60, 300, 1800):
        replayed = cost.replay(snowflake_local, "WH", suspend, window)
        expected = cost.billed_credits(starts, ends, suspend, WarehouseSize.MEDIUM.credits_per_hour)
        assert replayed.credits == pytest.approx(expected, rel=1e-5), suspend
        assert replayed.resumes == len(cost.billed_sessions(starts, ends, suspend))
    union, reach = 0.0, -np.inf
    for s, e in sorted(zip(starts, ends, strict=True)):
        union += max(0.0, e - max(s, reach))
        reach = max(reach, e)
    assert cost.replay(snowflake_local, "WH", 0, window).active_seconds == pytest.approx(union, rel=1e-5)


def test_sizing_rules(cost: ModuleType) -> None:
    warehouse = cost.WarehouseConfig("WH", WarehouseSize.LARGE, 60, interactive=True)
    origin = usage_history.LOCAL_ORIGIN
    intervals = pd.DataFrame(
        {
            "WAREHOUSE_NAME": "WH",
            "START_TIME": [origin + pd.Timedelta(hours=h) for h in range(10)],
            "EXECUTION_TIME": 10_000,
            "BYTES_SPILLED_TO_REMOTE_STORAGE": [5, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        }
    )
    replayed = cost.Replay("WH", 60, 10, 700.0, 700 * 8 / 3600, 50.0)  # busy 7% of billed time
    quiet = {"REMOTE_SPILL_SHARE": 0, "QUEUED_SHARE": 0, "P95_QUEUED_SECONDS": None}
    down = cost.recommend_size(quiet, warehouse, replayed, intervals, origin)
    assert down.action == "size down to Medium" and down.credits_after < down.credits_before
    queued = cost.recommend_size(
        {**quiet, "QUEUED_SHARE": 0.2, "P95_QUEUED_SECONDS": 30}, warehouse, replayed, intervals, origin
    )
    assert queued.action == "multi-cluster 1-2"
    assert "MAX_CLUSTER_COUNT = 2" in queued.statements[0].to_sql()
    spilled = cost.recommend_size({**quiet, "REMOTE_SPILL_SHARE": 0.5}, warehouse, replayed, intervals, origin)
    assert spilled.action == "split: spilling jobs to WH_XLARGE"
    assert spilled.statements[0].to_sql().startswith("CREATE WAREHOUSE IF NOT EXISTS WH_XLARGE")


def test_cold_start_budget_keeps_interactive_warehouses_warm(cost: ModuleType) -> None:
    def rep(suspend: int, resumes: int, credits: float) -> object:
        return cost.Replay("BI", suspend, resumes, 1.0, credits, 1.0)

    ladder = [rep(60, 50 * cost.DAYS, 1.0), rep(300, 30 * cost.DAYS, 2.0), rep(600, 10 * cost.DAYS, 3.0)]
    interactive = cost.WarehouseConfig("BI", WarehouseSize.SMALL, 600, interactive=True)
    batch = cost.WarehouseConfig("ETL", WarehouseSize.SMALL, 600, interactive=False)
    assert cost.choose_auto_suspend(interactive, ladder).auto_suspend == 300
    assert cost.choose_auto_suspend(batch, ladder).auto_suspend == 60


def test_pattern_passes_and_records_recommendations_in_order(pattern_run) -> None:  # type: ignore[no-untyped-def]
    outcome = pattern_run("snowflake/02")
    code, report = outcome.exit_code, outcome.report
    assert code == 0, report.error
    assert all(c.passed for c in report.checks)
    expected = [
        "SHOW WAREHOUSES",
        "ALTER WAREHOUSE ETL_WH SET\n  AUTO_SUSPEND = 60",
        "ALTER WAREHOUSE BI_WH SET\n  AUTO_SUSPEND =",
        "ALTER WAREHOUSE ADHOC_WH SET\n  AUTO_SUSPEND = 60",
        "CREATE WAREHOUSE IF NOT EXISTS ETL_WH_LARGE",
        "ALTER WAREHOUSE BI_WH SET\n  MIN_CLUSTER_COUNT = 1\n  MAX_CLUSTER_COUNT = 2",
        "ALTER WAREHOUSE ADHOC_WH SET\n  WAREHOUSE_SIZE = 'MEDIUM'",
        "CREATE OR REPLACE RESOURCE MONITOR MONTHLY_FLEET_CAP",
        "ALTER WAREHOUSE ETL_WH SET\n  RESOURCE_MONITOR = MONTHLY_FLEET_CAP",
        "ALTER WAREHOUSE BI_WH SET\n  RESOURCE_MONITOR = MONTHLY_FLEET_CAP",
        "ALTER WAREHOUSE ADHOC_WH SET\n  RESOURCE_MONITOR = MONTHLY_FLEET_CAP",
        "ALTER TABLE SHOP.CORE.ORDERS CLUSTER BY (TO_DATE(ORDER_TS))",
    ]
    assert len(report.cloud_only) == len(expected)
    for sql, prefix in zip(report.cloud_only, expected, strict=True):
        assert sql.startswith(prefix), (prefix, sql)


def test_auto_suspend_saving_equals_an_independent_recomputation(cost: ModuleType, pattern_run) -> None:  # type: ignore[no-untyped-def]
    """Recompute the headline figure with the Python billing model from the generator's own frames."""
    report = pattern_run("snowflake/02").report
    chosen = {
        m.group(1): int(m.group(2))
        for sql in report.cloud_only
        if (m := re.match(r"ALTER WAREHOUSE (\w+) SET\n  AUTO_SUSPEND = (\d+)", sql))
    }
    history = usage_history.generate_account_usage(12_000, 42, billing=cost.billed_sessions).views["QUERY_HISTORY"]
    saved = 0.0
    for warehouse in usage_history.FLEET:
        busy = history[(history["WAREHOUSE_NAME"] == warehouse.name) & (history["EXECUTION_TIME"] > 0)]
        starts, ends = usage_history.seconds_since(busy["START_TIME"]), usage_history.seconds_since(busy["END_TIME"])
        today = cost.billed_credits(starts, ends, warehouse.auto_suspend, warehouse.credits_per_hour)
        after = cost.billed_credits(starts, ends, chosen[warehouse.name], warehouse.credits_per_hour)
        saved += today - after
    assert report.value("credits saved by the auto-suspend change") == pytest.approx(saved, rel=1e-4)
    assert saved > 0
