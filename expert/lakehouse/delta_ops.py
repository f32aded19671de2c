"""Measuring and operating Delta tables: files a query really read, table detail, history, MERGE, confs.

Why: "OPTIMIZE made it faster" is a claim; the number of files the scan actually opened is a
measurement. Spark's file scan node keeps SQL metrics ("number of files read", "size of files
read") — the same numbers the Spark UI's SQL tab shows — and Delta's data skipping happens before
the scan, so those metrics count only the files that survived skipping.

Everything here is Delta SQL (`DESCRIBE DETAIL`, `DESCRIBE HISTORY`, `MERGE INTO`) rather than the
Python `DeltaTable` API: SQL is parsed by the server, so the same call works on a local session,
on a cluster and over Spark Connect / Databricks Connect, where `DeltaTable` needs Delta's Connect
server plugin (not published for every Delta release: 4.4.0 on Spark 4.2 has none).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from os import PathLike
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

    Classic Spark: the metrics live on the JVM plan object of this very DataFrame. Spark Connect:
    the server sends the executed plan's metrics back with the result (`executionInfo`).
    """
    rows = df.collect()
    if hasattr(df, "_jdf"):
        plan = df._jdf.queryExecution().executedPlan()
        nodes = [n for n in _plan_nodes(plan) if n.metrics().get("numFiles").isDefined()]
        totals = {key: sum(_metric(n, key) for n in nodes) for key in ("numFiles", "filesSize", "numOutputRows")}
    else:
        scans = [
            {m.name: int(m.value) for m in node.metrics}
            for node in df.executionInfo.metrics._metrics
            if any(m.name == "numFiles" for m in node.metrics)
        ]
        totals = {key: sum(scan.get(key, 0) for scan in scans) for key in ("numFiles", "filesSize", "numOutputRows")}
    return rows, ScanMetrics(
        files_read=totals["numFiles"], bytes_read=totals["filesSize"], rows_output=totals["numOutputRows"]
    )


NOT_A_DELTA_TABLE = frozenset({"DELTA_MISSING_DELTA_TABLE", "DELTA_TABLE_ONLY_OPERATION", "PATH_NOT_FOUND"})
"""Error conditions Delta raises for a path with no Delta table (missing, empty or another format)."""


def _first_row(spark: SparkSession, statement: str, column: str) -> Any | None:
    """`column` of the statement's first row; None when the statement's table is not a Delta table."""
    from pyspark.errors import AnalysisException

    try:
        row = spark.sql(statement).select(column).first()
    except AnalysisException as error:
        if error.getCondition() in NOT_A_DELTA_TABLE:
            return None
        raise
    return None if row is None else row[column]


def delta_table(location: str | PathLike[str]) -> str:
    """The SQL name of the Delta table at a path: `` delta.`<location>` ``, with any backtick in the
    path doubled, so a path is always one quoted identifier and never ends the quoting early."""
    return "delta.`" + str(location).replace("`", "``") + "`"


def is_delta_table(spark: SparkSession, location: str) -> bool:
    """Whether `location` holds a Delta table (a missing or non-Delta path is simply False).

    `DESCRIBE DETAIL` reads the snapshot only (~0.1 s here); the history would also read commits.
    """
    return _first_row(spark, f"DESCRIBE DETAIL {delta_table(location)}", "format") is not None


def latest_version(spark: SparkSession, location: str) -> int | None:
    """The latest committed version of the Delta table at `location`, None if there is no table (reads the log)."""
    version = _first_row(spark, f"DESCRIBE HISTORY {delta_table(location)} LIMIT 1", "version")
    return None if version is None else int(version)


def merge_into(spark: SparkSession, location: str, source: DataFrame, clauses: str) -> dict[str, int]:
    """`MERGE INTO delta.`location` t USING source s <clauses>` and return its row counts.

    `clauses` is the rest of the statement (`ON … WHEN MATCHED … WHEN NOT MATCHED …`). The source
    is a session temp view with a unique name, dropped afterwards, so concurrent merges in one
    session (several streams' foreachBatch) cannot see each other's rows.
    """
    view = f"_merge_source_{uuid.uuid4().hex}"
    source.createOrReplaceTempView(view)
    try:
        result = spark.sql(f"MERGE INTO {delta_table(location)} AS t USING {view} AS s {clauses}").first()
    finally:
        spark.catalog.dropTempView(view)
    return {k: int(v or 0) for k, v in (result.asDict() if result else {}).items()}


@dataclass(frozen=True)
class TableDetail:
    """`DESCRIBE DETAIL`: how many data files the current version has and how big it is."""

    files: int
    bytes: int
    version: int


def table_detail(spark: SparkSession, location: str) -> TableDetail:
    detail = spark.sql(f"DESCRIBE DETAIL {delta_table(location)}").select("numFiles", "sizeInBytes").first()
    version = latest_version(spark, location)
    assert detail is not None and version is not None
    return TableDetail(int(detail["numFiles"]), int(detail["sizeInBytes"]), version)


def history(spark: SparkSession, location: str, limit: int | None = 20) -> list[dict[str, Any]]:
    """The newest `limit` commits (all when None), newest first: version, time, operation, parameters,
    operation metrics and the commit's user metadata."""
    rows = (
        spark.sql(f"DESCRIBE HISTORY {delta_table(location)}" + ("" if limit is None else f" LIMIT {int(limit)}"))
        .select("version", "timestamp", "operation", "operationParameters", "operationMetrics", "userMetadata")
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
