"""The Databricks side of the cost comparison: each option priced from the same query intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from expert.runtime import databricks_costs as dbx
from expert.runtime.snowflake_ddl import WarehouseSize
from expert.runtime.usage_history import LOCAL_ORIGIN, WarehouseConfig


def _spans(starts: np.ndarray, ends: np.ndarray, idle: int) -> list[tuple[float, float]]:
    return [(float(s), float(e) + idle) for s, e in zip(starts, ends, strict=True)]


def test_each_option_follows_its_formula() -> None:
    fleet = {"WH": WarehouseConfig("WH", WarehouseSize.SMALL, 60, interactive=True)}
    starts = [3600.0, 90_000.0]
    intervals = pd.DataFrame(
        {
            "WAREHOUSE_NAME": "WH",
            "START_TIME": [LOCAL_ORIGIN + pd.Timedelta(seconds=s) for s in starts],
            "END_TIME": [LOCAL_ORIGIN + pd.Timedelta(seconds=s + 600) for s in starts],
        }
    )
    costs = {c.option: c for c in dbx.databricks_costs(intervals, fleet, LOCAL_ORIGIN, sessions=_spans)}
    up_hours = 2 * (600 + dbx.DBX_SQL_AUTO_STOP_SECONDS) / 3600
    serverless = costs["Databricks SQL serverless"]
    assert serverless.quantity == pytest.approx(up_hours * dbx.DBX_SQL_DBU_PER_HOUR["X-Small"])
    fixed = costs["Databricks jobs cluster, fixed size"]
    assert fixed.quantity == pytest.approx(2 * 3 * (600 + dbx.DBX_CLUSTER_START_SECONDS) / 3600), (
        "2 days, 2 nodes + driver"
    )
    spot, autoscaling = costs["Databricks autoscaling on spot"], costs["Databricks jobs cluster, autoscaling"]
    assert spot.quantity == autoscaling.quantity and spot.usd < autoscaling.usd
