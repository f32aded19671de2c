"""Back up and restore Delta tables, and fingerprint them to prove a restore is exact.

Why a module: a backup must own its data files. Databricks does that with `DEEP CLONE`; open-source
Delta 4.x parses only `SHALLOW CLONE`, which references the source's files and dies with them.
`copy_table` uses `DEEP CLONE` where the engine runs it and otherwise its documented equivalent:
read the current version and write it as a new table, with the source and version in the
commit's `userMetadata` (a new history starts; the old one is not copied).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from expert.lakehouse import table_version
from expert.lakehouse.delta_ops import delta_table

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def fingerprints(spark: SparkSession, locations: Mapping[str, str]) -> dict[str, tuple[int, int]]:
    """(rows, order-independent content hash) per table: the sum of a 64-bit hash of every full row.

    Summed as DECIMAL(38, 0), so it is exact; all tables in one query (one Spark job).
    """
    parts = [
        f"SELECT '{name}' AS t, count(*) AS n, coalesce(sum(CAST(xxhash64(*) AS DECIMAL(38, 0))), 0) AS h "
        f"FROM {delta_table(location)}"
        for name, location in locations.items()
    ]
    return {r["t"]: (int(r["n"]), int(r["h"])) for r in spark.sql(" UNION ALL ".join(parts)).collect()}


def deep_clone_sql(source: str, target: str) -> str:
    return f"CREATE OR REPLACE TABLE {delta_table(target)} DEEP CLONE {delta_table(source)}"


def deep_clone_supported(spark: SparkSession, source: str, probe: str) -> bool:
    """Whether this Delta engine runs DEEP CLONE (Databricks does; open-source Delta 4.x parses only SHALLOW)."""
    try:
        spark.sql(deep_clone_sql(source, probe)).collect()
    except Exception as exc:
        if "DEEP" in str(exc) or "PARSE" in str(exc).upper():
            return False
        raise
    return True


def copy_table(spark: SparkSession, source: str, target: str, *, deep_clone: bool, note: str) -> int:
    """A self-contained copy of `source`'s current version at `target`; returns the version copied."""
    version = table_version(spark, source)
    if deep_clone:
        spark.sql(deep_clone_sql(source, target)).collect()
        return version
    (
        spark.read.format("delta")
        .option("versionAsOf", version)
        .load(source)
        .write.format("delta")
        .mode("overwrite")
        .option("userMetadata", json.dumps({"copy_of": source, "version": version, "note": note}))
        .save(target)
    )
    return version


def readable(spark: SparkSession, location: str, column: str) -> bool:
    """Whether a table's data files can still be read (a sum over a column: count(*) may come from the log)."""
    try:
        spark.read.format("delta").load(location).agg({column: "sum"}).collect()
    except Exception:
        return False
    return True


def copy_tables(
    spark: SparkSession, pairs: Mapping[str, tuple[str, str]], *, deep_clone: bool, note: str, parallelism: int
) -> dict[str, int]:
    """`copy_table` for every name → (source, target), `parallelism` at once; returns the versions copied.

    Small tables are bound by per-commit driver work, which overlaps across threads.
    """
    with ThreadPoolExecutor(max_workers=parallelism) as pool:
        copied = pool.map(lambda p: copy_table(spark, *p, deep_clone=deep_clone, note=note), pairs.values())
        return dict(zip(pairs, copied, strict=True))
