"""Bronze and silver tables for the operational database and the payments API, and their silver flows.

Why here: integration/01 lands these two sources in bronze itself (that is its lesson: the
incremental extract and the paginated pull); conforming them in silver is the same machinery
databricks/01 teaches (expectations + quarantine, deduplication, MERGE), run through the
medallion's `run_silver_flows`: availableNow + foreachBatch, checkpointed, incremental, with the
shared quarantine table and every micro-batch's outcome logged to `_silver_batches`.

- products: a type-1 dimension. The newest version of each product wins (`MERGE … WHEN MATCHED
  AND s.updated_at > t.updated_at`); an older replay changes nothing. Unpriced or uncategorised
  rows are quarantined.
- payments: immutable facts. The first delivery of each id (lowest `_api_seq`) is kept,
  redeliveries are counted as duplicates, rows without an id are quarantined.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from expert.lakehouse import Action, Expectation, MedallionLayout, SilverFlow, SilverTableResult, apply_expectations
from expert.lakehouse import run_silver_flows as run_flows
from expert.lakehouse.medallion import ensure_table, merge_rows, quarantine_rows

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

BRONZE_PRODUCTS, BRONZE_PAYMENTS = "bronze_products", "bronze_payments"
SILVER_PRODUCTS, SILVER_PAYMENTS = "silver_products", "silver_payments"
BRONZE_PRODUCTS_SCHEMA = (
    "product_id BIGINT, name STRING, category STRING, price DOUBLE, updated_at TIMESTAMP, "
    "_source_file STRING, _ingested_at TIMESTAMP"
)
BRONZE_PAYMENTS_SCHEMA = (
    "payment_id BIGINT, order_id BIGINT, method STRING, amount DOUBLE, status STRING, paid_ts TIMESTAMP, "
    "_api_seq BIGINT, _source_file STRING, _ingested_at TIMESTAMP"
)
PRODUCT_EXPECTATIONS = (
    Expectation("product_id_present", "product_id IS NOT NULL", Action.DROP),
    Expectation("has_price", "price > 0", Action.DROP),
    Expectation("has_category", "category IS NOT NULL", Action.DROP),
)
PAYMENT_EXPECTATIONS = (
    Expectation("payment_id_present", "payment_id IS NOT NULL", Action.DROP),
    Expectation("known_status", "status IN ('captured', 'failed')", Action.FAIL),
    Expectation("positive_amount", "amount > 0", Action.WARN),
)


def products_batch(
    spark: SparkSession, layout: MedallionLayout, expectations: Sequence[Expectation], batch: DataFrame, batch_id: int
) -> SilverTableResult:
    """SCD type 1 product dimension: the newest version of each product wins; older replays change nothing."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    split = apply_expectations(batch, SILVER_PRODUCTS, expectations)
    if split.counts.dropped:
        quarantine_rows(split.quarantined, layout, SILVER_PRODUCTS, batch_id)
    newest = Window.partitionBy("product_id").orderBy(F.desc("updated_at"))
    latest = split.valid.withColumn("_rank", F.row_number().over(newest)).where("_rank = 1").drop("_rank")
    metrics = merge_rows(
        spark,
        layout.table(SILVER_PRODUCTS),
        latest,
        "t.product_id = s.product_id",
        update_when="s.updated_at > t.updated_at",
    )
    changed = metrics["num_inserted_rows"] + metrics["num_updated_rows"]
    return SilverTableResult(
        SILVER_PRODUCTS,
        quality=split.counts,
        inserted=metrics["num_inserted_rows"],
        updated=metrics["num_updated_rows"],
        duplicates=split.counts.rows_in - split.counts.dropped - changed,
        batches=1,
    )


def payments_batch(
    spark: SparkSession, layout: MedallionLayout, expectations: Sequence[Expectation], batch: DataFrame, batch_id: int
) -> SilverTableResult:
    """Payments are immutable facts: the first delivery of each id is kept, redeliveries are counted."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    split = apply_expectations(batch, SILVER_PAYMENTS, expectations)
    if split.counts.dropped:
        quarantine_rows(split.quarantined, layout, SILVER_PAYMENTS, batch_id)
    first = Window.partitionBy("payment_id").orderBy("_api_seq")
    unique = split.valid.withColumn("_rank", F.row_number().over(first)).where("_rank = 1").drop("_rank")
    metrics = merge_rows(spark, layout.table(SILVER_PAYMENTS), unique, "t.payment_id = s.payment_id")
    return SilverTableResult(
        SILVER_PAYMENTS,
        quality=split.counts,
        inserted=metrics["num_inserted_rows"],
        duplicates=split.counts.rows_in - split.counts.dropped - metrics["num_inserted_rows"],
        batches=1,
    )


def run_silver_sources(spark: SparkSession, layout: MedallionLayout) -> dict[str, SilverTableResult]:
    """Bring silver_products and silver_payments up to date with bronze; the outcome per silver table."""
    ensure_table(spark, layout.table(SILVER_PRODUCTS), BRONZE_PRODUCTS_SCHEMA, {})
    ensure_table(spark, layout.table(SILVER_PAYMENTS), BRONZE_PAYMENTS_SCHEMA, {})
    flows = {
        SILVER_PRODUCTS: SilverFlow(BRONZE_PRODUCTS, products_batch, PRODUCT_EXPECTATIONS),
        SILVER_PAYMENTS: SilverFlow(BRONZE_PAYMENTS, payments_batch, PAYMENT_EXPECTATIONS),
    }
    return run_flows(spark, layout, flows).tables
