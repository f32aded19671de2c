"""The generated ACCOUNT_USAGE: deterministic, shaped like the views, metered by the billing it is given."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from expert.runtime import usage_history
from expert.runtime.snowflake_ddl import WarehouseSize


def _per_query(starts: np.ndarray, ends: np.ndarray, auto_suspend: int) -> list[tuple[float, float]]:
    """A billing rule simple enough to check by hand: every query bills its own span plus AUTO_SUSPEND."""
    return [(float(s), float(e) + auto_suspend) for s, e in zip(starts, ends, strict=True)]


@pytest.fixture(scope="module")
def month() -> usage_history.GeneratedUsage:
    return usage_history.generate_account_usage(3000, 7, billing=_per_query)


def test_same_seed_same_month(month: usage_history.GeneratedUsage) -> None:
    again = usage_history.generate_account_usage(3000, 7, billing=_per_query)
    other = usage_history.generate_account_usage(3000, 8, billing=_per_query)
    pd.testing.assert_frame_equal(month.views["QUERY_HISTORY"], again.views["QUERY_HISTORY"])
    assert month.avoidable_misses == again.avoidable_misses
    assert not month.views["QUERY_HISTORY"].equals(other.views["QUERY_HISTORY"])


def test_views_have_the_declared_columns(month: usage_history.GeneratedUsage) -> None:
    for view, ddl in usage_history.ACCOUNT_USAGE_DDL.items():
        declared = [column.split()[0] for column in ddl.split(", ")]
        assert list(month.views[view].columns) == declared, view


def test_metering_bills_the_busy_queries_by_the_given_rule(month: usage_history.GeneratedUsage) -> None:
    history, metering = month.views["QUERY_HISTORY"], month.views["WAREHOUSE_METERING_HISTORY"]
    for warehouse in usage_history.FLEET:
        busy = history[(history["WAREHOUSE_NAME"] == warehouse.name) & (history["EXECUTION_TIME"] > 0)]
        starts, ends = usage_history.seconds_since(busy["START_TIME"]), usage_history.seconds_since(busy["END_TIME"])
        billed = sum(e - s for s, e in _per_query(starts, ends, warehouse.auto_suspend))
        metered = metering.loc[metering["WAREHOUSE_NAME"] == warehouse.name, "CREDITS_USED"].sum()
        assert metered == pytest.approx(billed * warehouse.credits_per_hour / 3600)


def test_hourly_credits_split_at_clock_hours() -> None:
    hourly = usage_history.hourly_credits([(3000.0, 4200.0), (7300.0, 7400.0)], 4, 3)
    assert list(hourly) == pytest.approx([600 * 4 / 3600, 600 * 4 / 3600, 100 * 4 / 3600])


def test_the_result_cache_and_queueing_are_simulated(month: usage_history.GeneratedUsage) -> None:
    history = month.views["QUERY_HISTORY"]
    served = history[history["EXECUTION_TIME"] == 0]
    assert len(served) > 0 and set(served["QUERY_TYPE"]) == {"SELECT"}
    assert not served["QUERY_TEXT"].str.contains("CURRENT_TIMESTAMP", case=False).any()
    assert set(history.loc[history["QUEUED_OVERLOAD_TIME"] > 0, "WAREHOUSE_NAME"]) == {"BI_WH"}
    avoidable = history[history["QUERY_ID"].isin(month.avoidable_misses)]
    assert len(avoidable) == len(month.avoidable_misses) > 0
    assert (avoidable["EXECUTION_TIME"] > 0).all(), "an avoidable miss is a query that ran"


def test_loaded_into_the_local_engine_under_the_views_names(
    month: usage_history.GeneratedUsage, snowflake_local
) -> None:  # type: ignore[no-untyped-def]
    loaded = usage_history.load_local_account_usage(snowflake_local, month.views)
    assert loaded == {view: len(frame) for view, frame in month.views.items()}
    assert (
        snowflake_local.scalar("SELECT COUNT(*) FROM SNOWFLAKE.ACCOUNT_USAGE.QUERY_HISTORY") == loaded["QUERY_HISTORY"]
    )


def test_fleet_is_read_from_show_warehouses_rows() -> None:
    rows = [
        {"NAME": "COMPUTE_WH", "SIZE": "X-Small", "AUTO_SUSPEND": 600},
        {"NAME": "BIG", "SIZE": "2X-Large", "AUTO_SUSPEND": None},
    ]
    fleet = usage_history.fleet_from_show_warehouses(rows)
    assert fleet["COMPUTE_WH"].size is WarehouseSize.XSMALL and fleet["COMPUTE_WH"].auto_suspend == 600
    assert fleet["BIG"].size is WarehouseSize.XXLARGE
    assert fleet["BIG"].auto_suspend == usage_history.NEVER_SUSPENDS, "NULL means the warehouse never suspends"
    assert usage_history.fleet_from_show_warehouses(None) == {w.name: w for w in usage_history.FLEET}
