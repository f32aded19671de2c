"""Measuring and operating Delta tables: files a query really read, table detail, history, confs.

Why: "OPTIMIZE made it faster" is a claim; the number of files the scan actually opened is a
measurement. Spark's file scan node keeps SQL metrics ("number of files read", "size of files
read") — the same numbers the Spark UI's SQL tab shows — and Delta's data skipping happens before
the scan, so those metrics count only the files that survived skipping.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


@dataclass(frozen=True)
class ScanMetrics:
    """What the file scans of one executed query read (summed over scan nodes)."""

    files_read: int
    bytes_read: int
    rows_output: int


def _plan_nodes(node: Any) -> Iterator[Any]:
    """Every physical operator, looking through adaptive execution and its query stages."""
    name = node.getClass().getSimpleName()
    if name == "AdaptiveSparkPlanExec":
        yield from _plan_nodes(node.executedPlan())
        return
    if name.endswith("QueryStageExec"):
        yield from _plan_nodes(node.plan())
        return
    yield node
    children = node.children()
    for i in range(children.size()):
        yield from _plan_nodes(children.apply(i))


def _metric(node: Any, key: str) -> int:
    found = node.metrics().get(key)
    return int(found.get().value()) if found.isDefined() else 0


def measure_scan(df: DataFrame) -> tuple[list[Any], ScanMetrics]:
    """Execute `df` (collect) and read its file-scan SQL metrics from the executed plan.

    Classic (py4j) Spark only: the metrics live on the JVM plan object of this very DataFrame.
    """
    rows = df.collect()
    plan = df._jdf.queryExecution().executedPlan()
    scans = [n for n in _plan_nodes(plan) if n.metrics().get("numFiles").isDefined()]
    return rows, ScanMetrics(
        files_read=sum(_metric(n, "numFiles") for n in scans),
        bytes_read=sum(_metric(n, "filesSize") for n in scans),
        rows_output=sum(_metric(n, "numOutputRows") for n in scans),
    )


@dataclass(frozen=True)
class TableDetail:
    """`DESCRIBE DETAIL`: how many data files the current version has and how big it is."""

    files: int
    bytes: int
    version: int


def table_detail(spark: SparkSession, location: str) -> TableDetail:
    from delta.tables import DeltaTable

    table = DeltaTable.forPath(spark, location)
    detail = table.detail().select("numFiles", "sizeInBytes").first()
    version = table.history(1).select("version").first()
    assert detail is not None and version is not None
    return TableDetail(int(detail["numFiles"]), int(detail["sizeInBytes"]), int(version["version"]))


def history(spark: SparkSession, location: str, limit: int = 20) -> list[dict[str, Any]]:
    """The newest `limit` commits: version, time, operation, parameters and operation metrics."""
    from delta.tables import DeltaTable

    rows = (
        DeltaTable.forPath(spark, location)
        .history(limit)
        .select("version", "timestamp", "operation", "operationParameters", "operationMetrics")
        .collect()
    )
    return [r.asDict() for r in rows]


@contextlib.contextmanager
def temporary_conf(spark: SparkSession, settings: dict[str, str]) -> Iterator[None]:
    """Set session confs for a block and put the previous values back (the session is shared)."""
    previous = {key: spark.conf.get(key, None) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)
