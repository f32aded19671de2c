"""Checking a medallion run against the data generator's ground truth, and against itself.

Why a module: a pipeline verified only against its own output proves nothing. These helpers
compute what the tables must hold independently of the pipeline (plain file I/O over the landed
files, a pandas diff of the customer snapshots, a full recompute of gold from silver) and compare
frames row by row, so databricks/01 can state its invariants in a few lines each.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from expert.lakehouse.layout import MedallionLayout
from expert.lakehouse.medallion import GOLD_SPECS, SCD2_TRACKED, MedallionResult, SilverTableResult, aggregate

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import pandas as pd
    from pyspark.sql import SparkSession

    from expert.runtime.data import EcommerceWorld


def count_rows(spark: SparkSession, layout: MedallionLayout, table: str, where: str = "") -> int:
    """Row count of one table (Delta answers a plain count(*) from its log statistics)."""
    sql = f"SELECT count(*) AS n FROM {layout.sql(table)}" + (f" WHERE {where}" if where else "")
    row = spark.sql(sql).first()
    assert row is not None
    return int(row["n"])


def landed_rows(paths: Sequence[str]) -> dict[str, int]:
    """Rows per source in landing files, counted with plain file I/O (independent of Spark)."""
    counts: dict[str, int] = {}
    for path in paths:
        source = Path(path).parent.name
        lines = [line for line in Path(path).read_text().splitlines() if line.strip()]
        counts[source] = counts.get(source, 0) + len(lines) - (1 if path.endswith(".csv") else 0)
    return counts


def expected_scd2(world: EcommerceWorld, snapshots: int) -> tuple[int, int]:
    """Versions and current rows an SCD2 dimension must have after these snapshots (pandas)."""
    versions, current = 0, None
    for snapshot in world.customer_snapshots(snapshots):
        frame = snapshot.set_index("customer_id")[list(SCD2_TRACKED)].astype(str)
        if current is None:
            versions += len(frame)
        else:
            new = ~frame.index.isin(current.index)
            common = frame.index[~new]
            changed = (frame.loc[common] != current.loc[common]).any(axis=1)
            versions += int(new.sum()) + int(changed.sum())
        current = frame
    assert current is not None
    return versions, len(current)


def add_totals(totals: dict[str, SilverTableResult], result: MedallionResult) -> None:
    """Accumulate silver outcomes over several runs of the pipeline."""
    for table, outcome in result.silver.tables.items():
        total = totals.setdefault(table, SilverTableResult(table))
        total.quality.add(outcome.quality)
        total.duplicates += outcome.duplicates
        total.superseded += outcome.superseded
        total.inserted += outcome.inserted
        total.updated += outcome.updated
        total.versions_closed += outcome.versions_closed


def gold_frame(spark: SparkSession, layout: MedallionLayout, table: str, version: int | None = None) -> pd.DataFrame:
    """A gold table (optionally at a past version: time travel) as a sorted pandas frame (it is small)."""
    spec = next(s for s in GOLD_SPECS if s.table == table)
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    frame = reader.load(layout.table(table)).toPandas()
    return frame.sort_values(list(spec.keys)).reset_index(drop=True)


def gold_frames(spark: SparkSession, layout: MedallionLayout) -> dict[str, pd.DataFrame]:
    """Every gold table as a sorted pandas frame."""
    return {spec.table: gold_frame(spark, layout, spec.table) for spec in GOLD_SPECS}


def recomputed(spark: SparkSession, layout: MedallionLayout, table: str) -> pd.DataFrame:
    """The gold aggregate recomputed in full from silver (what incremental refresh must equal)."""
    spec = next(s for s in GOLD_SPECS if s.table == table)
    frame = aggregate(spark, layout, spec).toPandas()
    return frame.sort_values(list(spec.keys)).reset_index(drop=True)


def mismatched_rows(actual: pd.DataFrame, expected: pd.DataFrame) -> int:
    """Rows present in one frame and not the other (duplicates count), compared on every column."""
    keyed = [frame.astype(str).value_counts() for frame in (actual, expected[actual.columns])]
    both = keyed[0].to_frame("a").join(keyed[1].to_frame("e"), how="outer").fillna(0)
    return int((both["a"] - both["e"]).abs().sum())


def expected_daily_sales(world: EcommerceWorld) -> dict[str, tuple[int, float]]:
    """Orders and revenue per day from the generator, independent of Spark.

    What silver must hold: every delivered order with a key, once (redeliveries are exact copies).
    """
    delivered, _ = world.deliver("orders", "order_id")
    kept = delivered.dropna(subset=["order_id"]).drop_duplicates(subset=["order_id"])
    days = kept["order_ts"].dt.strftime("%Y-%m-%d")
    grouped = kept.groupby(days).agg(orders=("order_id", "size"), revenue=("amount", "sum"))
    return {day: (int(row.orders), float(row.revenue)) for day, row in grouped.iterrows()}


def daily_sales_match(spark: SparkSession, location: str, truth: Mapping[str, tuple[int, float]]) -> tuple[bool, str]:
    """Whether a daily sales table has the truth's days, exact order counts and revenue within a cent."""
    rows = spark.read.format("delta").load(location).collect()
    live = {r["order_date"].isoformat(): (int(r["orders"]), float(r["revenue"])) for r in rows}
    same_days = set(live) == set(truth)
    orders_ok = all(live[d][0] == truth[d][0] for d in truth if d in live)
    worst = max((abs(live[d][1] - truth[d][1]) for d in truth if d in live), default=float("inf"))
    return same_days and orders_ok and worst <= 0.011, f"{len(live)} days, orders exact, worst revenue gap {worst:.4f}"
