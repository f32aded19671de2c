"""Measuring data skipping: a table of many small files, one selective query, files read before and after.

Why: a layout change (OPTIMIZE with ZORDER, liquid clustering) is justified by the files a query no
longer opens. Each layout is measured the same way: the same rows written as the same number of
small files, the same query for one customer, and the scan node's `number of files read` SQL
metric (`measure_scan`) before and after the change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from expert.lakehouse.delta_ops import ScanMetrics, TableDetail, delta_table, measure_scan, table_detail

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from expert.runtime.pattern import PatternRun


def small_files(spark: SparkSession, source: str, files: int) -> DataFrame:
    """The rows of the Delta table at `source`, spread over `files` partitions (so many small files)."""
    return spark.read.format("delta").load(source).repartition(files)


def busiest_customer(spark: SparkSession, location: str) -> int:
    """The customer with the most rows: the selective query's predicate (it exists in every layout)."""
    top = spark.read.format("delta").load(location).groupBy("customer_id").count().orderBy("count", ascending=False)
    row = top.first()
    assert row is not None
    return int(row["customer_id"])


def selective_query(spark: SparkSession, location: str, customer: int) -> DataFrame:
    """One customer's events per type: reads few rows, so a good layout reads few files."""
    return spark.read.format("delta").load(location).where(f"customer_id = {customer}").groupBy("event_type").count()


def target_file_size(detail: TableDetail, files: int) -> int:
    """The `optimize.maxFileSize` that makes OPTIMIZE write about `files` files for this table."""
    return max(1024, detail.bytes // files)


@dataclass(frozen=True)
class LayoutMeasurement:
    """The table's files and what the selective query for `customer` read, in one layout state."""

    state: str
    location: str
    customer: int
    detail: TableDetail
    scan: ScanMetrics
    answer: list[Any]

    @property
    def skipped(self) -> float:
        """Share of the table's files the query did not open."""
        return 1 - self.scan.files_read / self.detail.files

    def row(self) -> dict[str, Any]:
        return {
            "table state": self.state,
            "files in table": self.detail.files,
            "files read": self.scan.files_read,
            "bytes read": self.scan.bytes_read,
        }


def measure_layout(spark: SparkSession, location: str, customer: int, state: str) -> LayoutMeasurement:
    """`DESCRIBE DETAIL` of the table, then the selective query with its scan metrics."""
    detail = table_detail(spark, location)
    answer, scan = measure_scan(selective_query(spark, location, customer))
    return LayoutMeasurement(state, location, customer, detail, scan, answer)


def clustering_columns(spark: SparkSession, location: str) -> list[str]:
    """The liquid clustering keys a Delta table keeps in its metadata (`DESCRIBE DETAIL`), [] for none."""
    row = spark.sql(f"DESCRIBE DETAIL {delta_table(location)}").select("clusteringColumns").first()
    return list(row["clusteringColumns"] or []) if row is not None else []


def report_skipping(run: PatternRun, layout_name: str, before: LayoutMeasurement, after: LayoutMeasurement) -> None:
    """The key figures of one layout change: files read before and after, and the share skipped."""
    how = "FileSourceScanExec numFiles metric"
    run.figure(
        f"files read before {layout_name}", before.scan.files_read, f"of {before.detail.files}", how=how, key=True
    )
    run.figure(f"files read after {layout_name}", after.scan.files_read, f"of {after.detail.files}", how=how, key=True)
    run.figure(
        f"data skipped after {layout_name}",
        round(100 * after.skipped, 1),
        "% of files",
        how="1 - files read / files in table",
        key=True,
    )
