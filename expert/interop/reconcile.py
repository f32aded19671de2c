"""Reconcile two copies of a table, one in the lake and one in the warehouse, by per-day checksums.

Why checksums and not a row-by-row diff: comparing two copies of a fact table row by row ships
every row across systems. A checksum query (rows, units, integer cents, sum of keys per day) runs
inside each engine and only the small per-day result travels; equal partitions give equal
numbers, because integer sums are exact in both engines. Only a day that disagrees is drilled
into, row by row, and repaired from the system of record.

The checksum SQL is the caller's (it is the contract between the two copies): it must return a
`day` column and one integer column per measure, and run unchanged in Spark SQL and Snowflake.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from expert.interop.transfer import delta_frame
from expert.lakehouse.delta_ops import delta_table

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from expert.runtime.snowflake import SnowflakeSession

Checksums = dict[str, dict[str, int]]
"""Day (ISO date) → measure → value."""


def checksums_by_day(rows: Sequence[Mapping[str, Any]], measures: Sequence[str]) -> Checksums:
    """Rows of a checksum query from either engine (any column case) as day → measure → int."""
    out: Checksums = {}
    for row in rows:
        lower = {k.lower(): v for k, v in row.items()}
        out[str(lower["day"])] = {m: int(lower[m]) for m in measures}
    return out


def lake_checksums(spark: SparkSession, query: str, location: str, measures: Sequence[str]) -> Checksums:
    """`query` (with `{table}`) over the Delta table at `location`, computed by Spark."""
    rows = spark.sql(query.format(table=f"{delta_table(location)}")).collect()
    return checksums_by_day([r.asDict() for r in rows], measures)


def warehouse_checksums(session: SnowflakeSession, query: str, table: str, measures: Sequence[str]) -> Checksums:
    """The same `query` computed inside Snowflake (only the small per-day result travels)."""
    return checksums_by_day(session.fetch(query.format(table=table)), measures)


@dataclass(frozen=True)
class Mismatch:
    day: str
    measure: str
    lake: int
    warehouse: int


def compare_checksums(lake: Checksums, warehouse: Checksums) -> list[Mismatch]:
    """Every (day, measure) where the two copies disagree; a day missing on one side counts as zeros."""
    measures = next(iter({**lake, **warehouse}.values()), {})
    zero = dict.fromkeys(measures, 0)
    mismatches = []
    for day in sorted(set(lake) | set(warehouse)):
        left, right = lake.get(day, zero), warehouse.get(day, zero)
        mismatches += [Mismatch(day, m, left[m], right[m]) for m in measures if left[m] != right[m]]
    return mismatches


@dataclass(frozen=True)
class DayPartition:
    """One fact kept in both systems: its checksum SQL, and how one day of it is found and compared.

    `query` has a `{table}` placeholder, returns `day` and one integer column per measure, and runs
    unchanged in Spark SQL and Snowflake. `columns` (with `key` first) make up a row's content.
    """

    query: str
    measures: tuple[str, ...]
    table: str
    date_column: str
    key: str
    columns: tuple[str, ...]

    def lake(self, spark: SparkSession, location: str) -> Checksums:
        return lake_checksums(spark, self.query, location, self.measures)

    def warehouse(self, session: SnowflakeSession) -> Checksums:
        return warehouse_checksums(session, self.query, self.table, self.measures)


def differing_keys(
    spark: SparkSession, session: SnowflakeSession, location: str, part: DayPartition, day: str
) -> list[int]:
    """Drill down into one mismatched day: the keys whose rows differ between the two copies."""
    columns = [part.key, *part.columns]
    lake = delta_frame(spark, location, f"{part.date_column} = DATE'{day}'")[[c.upper() for c in columns]]
    warehouse = session.fetch_df(
        f"SELECT {', '.join(c.upper() for c in columns)} FROM {part.table} WHERE {part.date_column.upper()} = %s",
        (day,),
    )

    def rows(frame: Any) -> set[tuple[str, ...]]:
        return {tuple(_canonical(v) for v in row) for row in frame.itertuples(index=False, name=None)}

    return sorted({int(float(row[0])) for row in rows(lake) ^ rows(warehouse)})


def _canonical(value: Any) -> str:
    """One text form per value whatever type the engine returned it as (int, float, Decimal): numbers to the cent."""
    if isinstance(value, numbers.Real | Decimal):
        return f"{float(value):.2f}"
    return str(value)


def repair_day(spark: SparkSession, session: SnowflakeSession, location: str, part: DayPartition, day: str) -> int:
    """Replace one day of the warehouse copy with the lake's rows (the lake is the system of record)."""
    session.execute(f"DELETE FROM {part.table} WHERE {part.date_column.upper()} = %s", (day,))
    frame = delta_frame(spark, location, f"{part.date_column} = DATE'{day}'")
    return session.write_pandas(frame, part.table, auto_create_table=False)
