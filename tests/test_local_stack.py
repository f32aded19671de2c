"""Smoke test of the whole local stack: Delta write, MERGE, time travel; Snowflake load + query; cloud-only record."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from pyspark.testing import assertDataFrameEqual

from expert.runtime.data import Dirt, EcommerceWorld
from expert.runtime.snowflake_ddl import Stream, Task


def test_delta_write_merge_and_time_travel(spark, workdir: Path) -> None:  # type: ignore[no-untyped-def]
    path = str(workdir / "orders")
    orders = EcommerceWorld(2_000, dirt=Dirt.clean()).orders
    first = spark.createDataFrame(orders.head(100))
    first.write.format("delta").save(path)
    changes = spark.createDataFrame(
        orders.iloc[90:120].assign(status="shipped")  # 10 updates, 20 inserts
    )
    changes.createOrReplaceTempView("changes")
    spark.sql(
        f"""MERGE INTO delta.`{path}` AS t USING changes AS s ON t.order_id = s.order_id
            WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *"""
    )
    current = spark.read.format("delta").load(path)
    assert current.count() == 120
    assert current.filter("status = 'shipped'").count() >= 30
    version0 = spark.read.format("delta").option("versionAsOf", 0).load(path)
    assertDataFrameEqual(version0, first)
    metrics = spark.sql(f"DESCRIBE HISTORY delta.`{path}`").filter("operation = 'MERGE'").first()
    assert metrics is not None
    assert int(metrics["operationMetrics"]["numTargetRowsUpdated"]) == 10
    assert int(metrics["operationMetrics"]["numTargetRowsInserted"]) == 20


def test_snowflake_write_pandas_query_and_cloud_only_record(snowflake_local) -> None:  # type: ignore[no-untyped-def]
    orders = EcommerceWorld(2_000, dirt=Dirt.clean()).orders
    frame = orders[["order_id", "customer_id", "amount", "status"]].rename(columns=str.upper)
    assert snowflake_local.write_pandas(frame, "ORDERS") == len(frame)
    top = snowflake_local.fetch_df(
        "SELECT STATUS, COUNT(*) AS N, ROUND(SUM(AMOUNT), 2) AS REVENUE FROM ORDERS GROUP BY STATUS ORDER BY STATUS"
    )
    expected = frame.groupby("STATUS").agg(N=("ORDER_ID", "size"), REVENUE=("AMOUNT", "sum")).reset_index()
    assert list(top["STATUS"]) == sorted(expected["STATUS"])
    assert list(top["N"]) == list(expected.sort_values("STATUS")["N"])
    pd.testing.assert_series_equal(
        top["REVENUE"].astype(float),
        expected.sort_values("STATUS")["REVENUE"].round(2).reset_index(drop=True),
        check_names=False,
    )
    snowflake_local.cloud_only(Stream(name="orders_stream", on_table="orders"), purpose="CDC")
    snowflake_local.cloud_only(
        Task(name="apply_orders", warehouse="transform_wh", schedule="1 MINUTE", body="MERGE INTO ...")
    )
    assert [(r.kind, r.executed) for r in snowflake_local.ledger] == [("stream", False), ("task", False)]
