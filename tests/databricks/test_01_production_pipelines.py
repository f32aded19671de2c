"""databricks/01: the medallion pipeline, checked against the generator's ground truth.

The pattern runs once per session (`pattern_run`); most tests read the tables it left in its
workdir and compare them with an independent pandas computation over the generator's data.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from pyspark.testing import assertDataFrameEqual

from expert.lakehouse import (
    BRONZE_TABLES,
    QUARANTINE,
    SILVER_EVENTS,
    Action,
    Expectation,
    ExpectationFailedError,
    MedallionLayout,
    apply_expectations,
    run_bronze,
    run_silver,
    table_version,
)
from expert.runtime.data import EcommerceWorld

ROWS = 10_000  # the pattern's default size, which pattern_run("databricks/01") uses


@pytest.fixture
def outcome(pattern_run):  # type: ignore[no-untyped-def]
    result = pattern_run("databricks/01")
    assert result.exit_code == 0, result.report.error
    return result


@pytest.fixture
def lake(outcome) -> MedallionLayout:  # type: ignore[no-untyped-def]
    return MedallionLayout(str((outcome.workdir / "lake").resolve()), landing_dir=str(outcome.workdir / "landing"))


def test_pattern_verifies_every_invariant(outcome) -> None:  # type: ignore[no-untyped-def]
    names = {c.name for c in outcome.report.checks}
    assert all(c.passed for c in outcome.report.checks)
    for expected in (
        "clickstream: bronze = silver + quarantined + duplicates",
        "orders: bronze = silver + quarantined + duplicates",
        "a rerun ingests only the newly landed files",
        "a rerun with no new files ingests nothing",
        "… and gold figures are identical",
        "Z-ordering lets Delta skip most files for a selective query",
        "time travel finds the good version and RESTORE brings it back",
    ):
        assert expected in names


def test_zorder_skipping_was_measured_not_assumed(outcome) -> None:  # type: ignore[no-untyped-def]
    before = outcome.report.figure("files read before Z-order")
    after = outcome.report.figure("files read after Z-order")
    assert int(after.value) < int(before.value)
    assert "numFiles" in before.how and "numFiles" in after.how


def test_liquid_clustering_was_measured_the_same_way_as_zorder(outcome, spark, lake: MedallionLayout) -> None:  # type: ignore[no-untyped-def]
    from expert.lakehouse.skipping import clustering_columns

    figures = outcome.report
    for layout_name in ("Z-order", "liquid clustering"):
        before = figures.figure(f"files read before {layout_name}")
        after = figures.figure(f"files read after {layout_name}")
        assert "numFiles" in before.how and "numFiles" in after.how
        assert int(after.value) < int(before.value)
    assert figures.value("files read before liquid clustering") == figures.value("files read before Z-order")
    names = {c.name for c in outcome.report.checks}
    assert "liquid clustering lets Delta skip most files for the same query, with the same answer" in names
    assert "ALTER TABLE … CLUSTER BY changes the keys in the table's metadata, rewriting no file" in names
    clustered = lake.table("ops_events_clustered")
    assert clustering_columns(spark, clustered) == ["event_date"]
    assert clustering_columns(spark, lake.table("ops_events")) == [], "the Z-ordered table keeps no keys"
    operations = [
        r["operation"] for r in spark.sql(f"DESCRIBE HISTORY delta.`{clustered}`").orderBy("version").collect()
    ]
    assert operations[0] == "CREATE TABLE AS SELECT" and operations[1] == "OPTIMIZE" and len(operations) == 3


def test_silver_events_equal_the_generators_clean_events(spark, lake: MedallionLayout) -> None:  # type: ignore[no-untyped-def]
    delivered, _ = EcommerceWorld(ROWS, seed=42).deliver("events", "event_id", "event_ts")
    expected = delivered.dropna(subset=["event_id"]).drop_duplicates(["event_id", "event_ts"])
    expected = expected.assign(event_id=expected["event_id"].astype("int64"))[["event_id", "event_type", "price"]]
    actual = spark.read.format("delta").load(lake.table(SILVER_EVENTS)).select("event_id", "event_type", "price")
    assertDataFrameEqual(actual, spark.createDataFrame(expected))


def test_gold_daily_sales_equals_an_independent_pandas_aggregate(spark, lake: MedallionLayout) -> None:  # type: ignore[no-untyped-def]
    delivered, _ = EcommerceWorld(ROWS, seed=42).deliver("orders", "order_id")
    orders = delivered.dropna(subset=["order_id"]).drop_duplicates()
    orders = orders.assign(order_date=pd.to_datetime(orders["order_ts"]).dt.date)
    expected = (
        orders.groupby("order_date")
        .agg(orders=("order_id", "count"), units=("quantity", "sum"), revenue=("amount", "sum"))
        .reset_index()
    )
    expected["revenue"] = expected["revenue"].round(2)
    gold = spark.read.format("delta").load(lake.table("gold_daily_sales"))
    actual = gold.selectExpr("order_date", "orders", "units", "CAST(revenue AS DOUBLE) AS revenue")
    assertDataFrameEqual(actual, spark.createDataFrame(expected.astype({"units": "int64"})), rtol=1e-9)


def test_quarantine_holds_exactly_the_injected_defects(spark, lake: MedallionLayout, workdir: Path) -> None:  # type: ignore[no-untyped-def]
    truth = EcommerceWorld(ROWS, seed=42).write_raw_landing(workdir / "truth", batches=3)
    counts = {
        (r["source_table"], r["failed_rule"]): r["n"]
        for r in spark.sql(
            f"SELECT source_table, failed_rule, count(*) AS n FROM {lake.sql(QUARANTINE)} GROUP BY 1, 2"
        ).collect()
    }
    assert counts == {
        ("silver_events", "well_formed"): truth["events"].malformed,
        ("silver_events", "event_id_present"): truth["events"].null_keys,
        ("silver_orders", "order_id_present"): truth["orders"].null_keys,
    }


def test_bronze_keeps_ingestion_metadata_and_rescues_drifted_fields(spark, lake: MedallionLayout) -> None:  # type: ignore[no-untyped-def]
    rows = spark.sql(
        f"""SELECT regexp_extract(_source_file, 'batch=(\\\\d+)', 1) AS batch,
                   count_if(_rescued_data IS NOT NULL) AS rescued, count_if(_ingested_at IS NULL) AS no_time
            FROM {lake.sql(BRONZE_TABLES["clickstream"])} WHERE _corrupt_record IS NULL GROUP BY 1 ORDER BY 1"""
    ).collect()
    assert [r["batch"] for r in rows] == ["000", "001", "002"]
    assert rows[0]["rescued"] == 0 and all(r["rescued"] > 0 for r in rows[1:])
    assert all(r["no_time"] == 0 for r in rows)


def test_expectations_attribute_each_dropped_row_to_its_first_rule(spark) -> None:  # type: ignore[no-untyped-def]
    frame = spark.createDataFrame(
        [(1, "view", None), (None, "view", None), (None, None, "{broken"), (4, "cart", None)],
        "id BIGINT, kind STRING, _corrupt_record STRING",
    )
    rules = [
        Expectation("well_formed", "_corrupt_record IS NULL", Action.DROP),
        Expectation("id_present", "id IS NOT NULL", Action.DROP),
        Expectation("is_view", "kind = 'view'", Action.WARN),
    ]
    split = apply_expectations(frame, "t", rules)
    assert split.counts.violations == {"well_formed": 1, "id_present": 1, "is_view": 1}
    assert split.counts.dropped == 2 and split.valid.count() == 2
    assert sorted(r["_failed_rules"][0] for r in split.quarantined.collect()) == ["id_present", "well_formed"]
    with pytest.raises(ExpectationFailedError) as failure:
        apply_expectations(frame, "t", [*rules[:2], Expectation("known_kind", "kind IN ('view')", Action.FAIL)])
    assert (failure.value.rule, failure.value.rows) == ("known_kind", 1)


def test_a_fail_expectation_stops_the_silver_stream_before_any_write(spark, workdir: Path) -> None:  # type: ignore[no-untyped-def]
    layout = MedallionLayout.local(workdir / "lake")
    clicks = layout.landing / "clickstream"
    clicks.mkdir(parents=True)
    good = '{"event_id":1,"session_id":1,"customer_id":1,"product_id":1,"event_type":"view","channel":"web","price":9.5,"event_ts":"2026-01-01T00:00:00Z"}'
    (clicks / "batch=000.json").write_text(
        good + "\n" + good.replace('"view"', '"refund"').replace(":1,", ":2,", 1) + "\n"
    )
    bronze = run_bronze(spark, layout)  # orders and customers: empty bronze tables, created up front
    assert bronze.rows == {"clickstream": 2, "orders": 0, "customers": 0}
    with pytest.raises(Exception, match="known_event_type"):
        run_silver(spark, layout)
    assert table_version(spark, layout.table(SILVER_EVENTS)) == 0  # created, never written
    assert spark.read.format("delta").load(layout.table(SILVER_EVENTS)).count() == 0


def test_a_layout_is_location_agnostic() -> None:
    layout = MedallionLayout("s3a://bucket/lake/", landing_dir="/data/landing", prefix="staging_")
    assert layout.table(SILVER_EVENTS) == "s3a://bucket/lake/tables/staging_silver_events"
    assert layout.checkpoint("bronze_orders") == "s3a://bucket/lake/_checkpoints/staging_bronze_orders"
    assert layout.sql(SILVER_EVENTS) == "delta.`s3a://bucket/lake/tables/staging_silver_events`"
    with pytest.raises(ValueError, match="landing_dir"):
        MedallionLayout("s3a://bucket/lake")
