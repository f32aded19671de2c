"""Checks for databricks/01 (production pipelines): the lesson's invariants on data the starter does not show."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from expert.exercises.context import CheckContext
from expert.exercises.learner import LearnerCode
from expert.exercises.verdict import expect
from expert.runtime.data import EcommerceWorld

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

DIMENSION_SCHEMA = (
    "customer_id BIGINT, city STRING, segment STRING, valid_from TIMESTAMP, valid_to TIMESTAMP, is_current BOOLEAN"
)


def snapshot_frame(spark: SparkSession, snapshot: pd.DataFrame) -> DataFrame:
    frame = snapshot[["customer_id", "city", "segment", "updated_at"]].copy()
    frame["updated_at"] = pd.to_datetime(frame["updated_at"]).dt.tz_localize(None)
    return spark.createDataFrame(frame, "customer_id BIGINT, city STRING, segment STRING, updated_at TIMESTAMP")


def dimension_rows(spark: SparkSession, dimension: str) -> pd.DataFrame:
    return spark.read.format("delta").load(dimension).toPandas().sort_values(["customer_id", "valid_from"])


def check_scd2_merge(learner: LearnerCode, ctx: CheckContext) -> str:
    """Initial dimension, then a snapshot with changes and newcomers, then the same snapshot again."""
    scd2_merge = learner.function("scd2_merge", ("spark", "dimension", "snapshot"))
    spark = ctx.spark
    first, second = EcommerceWorld(4_000, seed=ctx.seed()).customer_snapshots(count=2, change_rate=0.3)
    dimension = str(ctx.workdir / "dim_customer")
    initial = snapshot_frame(spark, first).selectExpr(
        "customer_id",
        "city",
        "segment",
        "updated_at AS valid_from",
        "CAST(NULL AS TIMESTAMP) AS valid_to",
        "true AS is_current",
    )
    initial.write.format("delta").save(dimension)
    scd2_merge(spark, dimension, snapshot_frame(spark, second))
    after = dimension_rows(spark, dimension)

    old = first.set_index("customer_id")[["city", "segment"]]
    new = second.set_index("customer_id")[["city", "segment", "updated_at"]]
    common = old.index.intersection(new.index)
    changed = common[
        (old.loc[common, "city"] != new.loc[common, "city"])
        | (old.loc[common, "segment"] != new.loc[common, "segment"])
    ]
    newcomers = new.index.difference(old.index)
    current = after[after["is_current"]]
    per_key = current["customer_id"].value_counts()
    expect(per_key.max() == 1 and len(per_key) == len(new), "exactly one current row per customer",
           f"{int((per_key > 1).sum())} customers with several current rows, "
           f"{len(new) - len(per_key)} with none ({len(new)} customers)")  # fmt: skip
    versions = after.groupby("customer_id").size()
    kept = int((versions.reindex(changed).fillna(0) == 2).sum())
    expect(kept == len(changed), "history is kept: each changed customer has its old and its new version",
           f"{kept} of {len(changed)} changed customers have two versions")  # fmt: skip
    closed = after[~after["is_current"]].set_index("customer_id")
    want_close = pd.to_datetime(new.loc[changed, "updated_at"]).dt.tz_localize(None)
    gaps = int((closed.reindex(changed)["valid_to"] != want_close).sum())
    expect(gaps == 0, "each closed version ends when the new one starts (no gap, no overlap)",
           f"{gaps} of {len(changed)} closed versions have another valid_to")  # fmt: skip
    now = current.set_index("customer_id").reindex(new.index)
    stale = int(((now["city"] != new["city"]) | (now["segment"] != new["segment"])).sum())
    expect(stale == 0, "current rows hold the snapshot's values", f"{stale} current rows differ from the snapshot")
    unchanged = common.difference(changed)
    touched = int((versions.reindex(unchanged) != 1).sum())
    expect(touched == 0, "unchanged customers keep their single row", f"{touched} of {len(unchanged)} got new rows")

    scd2_merge(spark, dimension, snapshot_frame(spark, second))
    rerun = dimension_rows(spark, dimension)
    same = rerun.reset_index(drop=True).equals(after.reset_index(drop=True))
    expect(same, "merging the same snapshot again changes nothing", f"{len(after)} rows before, {len(rerun)} after")
    return (
        f"{len(changed)} changed customers closed and reopened, {len(newcomers)} newcomers, "
        f"{len(unchanged)} unchanged left alone, one current row each; the rerun changed nothing"
    )
