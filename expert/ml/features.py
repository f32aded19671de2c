"""The feature jobs of integration/03: daily customer-activity snapshots and profile attributes.

Why point-in-time starts here: a daily feature job runs at midnight and sees only the events
before it. `activity_snapshots` is given events up to its last snapshot and computes, for every
customer and every day, the 7 days before that midnight (views, carts, purchases, spend, active
days, cart rate, days since the last event, capped at the window). Each row is keyed by
`(customer_id, feature_ts)`, the primary key of a time-series feature table; the as-of join in the
pattern then picks, for each label, the latest row at or before the label's time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

import pandas as pd

from expert.lakehouse.delta_ops import merge_into
from expert.ml.split import bucket
from expert.runtime.data import EPOCH, EcommerceWorld

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def day_ts(day: int) -> pd.Timestamp:
    """Midnight UTC of a world day, as a naive timestamp in Spark's session time zone (UTC)."""
    return pd.Timestamp(EPOCH + timedelta(days=day)).tz_convert(None)


def activity_snapshots(
    events: DataFrame, customers: DataFrame, first_day: int, last_day: int, *, recency_cap_days: float
) -> DataFrame:
    """Daily snapshots at midnight of days `first_day..last_day`; each sees only events before it."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    spark = events.sparkSession
    epoch_s = int(EPOCH.timestamp())
    seen = events.where(F.col("event_ts") < F.lit(day_ts(last_day)))
    is_type = {t: F.col("event_type") == t for t in ("view", "cart", "purchase")}
    daily = seen.groupBy(
        "customer_id", F.floor((F.unix_timestamp("event_ts") - epoch_s) / 86_400).cast("int").alias("day")
    ).agg(
        F.sum(is_type["view"].cast("int")).alias("views"),
        F.sum(is_type["cart"].cast("int")).alias("carts"),
        F.sum(is_type["purchase"].cast("int")).alias("purchases"),
        F.sum(F.when(is_type["purchase"], F.col("price")).otherwise(0.0)).alias("spend"),
        F.max("event_ts").alias("last_event_ts"),
    )
    days = spark.range(0, last_day).select(F.col("id").cast("int").alias("day"))
    grid = (
        customers.select("customer_id")
        .crossJoin(days)
        .join(daily, ["customer_id", "day"], "left")
        .fillna(0, subset=["views", "carts", "purchases"])
        .fillna(0.0, subset=["spend"])
    )
    week = Window.partitionBy("customer_id").orderBy("day").rowsBetween(-6, 0)
    history = Window.partitionBy("customer_id").orderBy("day").rowsBetween(Window.unboundedPreceding, 0)
    snapshot_day = F.col("day") + 1
    feature_ts = F.timestamp_seconds(F.lit(epoch_s) + snapshot_day * 86_400)
    snapshots = grid.select(
        "customer_id",
        snapshot_day.alias("snapshot_day"),
        feature_ts.alias("feature_ts"),
        F.sum("views").over(week).cast("int").alias("views_7d"),
        F.sum("carts").over(week).cast("int").alias("carts_7d"),
        F.sum("purchases").over(week).cast("int").alias("purchases_7d"),
        F.round(F.sum("spend").over(week), 2).alias("spend_7d"),
        F.sum((F.col("last_event_ts").isNotNull()).cast("int")).over(week).cast("int").alias("active_days_7d"),
        F.max("last_event_ts").over(history).alias("last_event_ts"),
    ).where(F.col("snapshot_day").between(first_day, last_day))
    recency = (F.unix_timestamp("feature_ts") - F.unix_timestamp("last_event_ts")) / 86_400
    return snapshots.select(
        "customer_id",
        "feature_ts",
        "views_7d",
        "carts_7d",
        "purchases_7d",
        "spend_7d",
        "active_days_7d",
        F.round(F.col("carts_7d") / F.greatest(F.col("views_7d"), F.lit(1)), 4).alias("cart_rate_7d"),
        F.round(F.coalesce(F.least(recency, F.lit(recency_cap_days)), F.lit(recency_cap_days)), 4).alias(
            "days_since_last_event"
        ),
    )


def profile_features(world: EcommerceWorld) -> pd.DataFrame:
    """Profile features from the customer table: no PII leaves it, only segment and age."""
    customers = world.customers
    return pd.DataFrame(
        {
            "customer_id": customers["customer_id"].astype("int64"),
            "feature_ts": pd.to_datetime(customers["signup_ts"]).dt.tz_convert(None),
            "segment": customers["segment"],
            "age_years": (EPOCH.year - pd.to_datetime(customers["birth_date"]).dt.year).astype("int32"),
        }
    )


def expected_views_7d(events: pd.DataFrame, days: Sequence[int]) -> dict[int, int]:
    """Ground truth from the raw events (pandas, not Spark): view events in each snapshot's window."""
    views = events.loc[events["event_type"] == "view", "event_ts"]
    window = {d: (pd.Timestamp(EPOCH + timedelta(days=d - 7)), pd.Timestamp(EPOCH + timedelta(days=d))) for d in days}
    return {d: int(((views >= start) & (views < end)).sum()) for d, (start, end) in window.items()}


def snapshot_frames(
    activity: DataFrame, profile: pd.DataFrame, days: Sequence[int], features: Sequence[str], numeric: Sequence[str]
) -> dict[int, pd.DataFrame]:
    """The population as the feature store saw it at midnight of each day (model inputs, no label)."""
    from pyspark.sql import functions as F

    rows = activity.where(F.col("feature_ts").isin([day_ts(d).to_pydatetime() for d in days])).toPandas()
    rows = rows.merge(profile[["customer_id", "segment", "age_years"]], on="customer_id", how="left")
    rows[list(numeric)] = rows[list(numeric)].astype("float64")
    frames = {}
    for day in days:
        frame = rows[rows["feature_ts"] == day_ts(day)]
        frames[day] = frame[["customer_id", *features]].sort_values("customer_id", kind="stable").reset_index(drop=True)
    return frames


def snapshot_summary(activity: DataFrame) -> pd.DataFrame:
    """Per snapshot day: rows, distinct customers, total views_7d and purchases_7d (what the checks compare)."""
    from pyspark.sql import functions as F

    return (
        activity.groupBy(F.datediff("feature_ts", F.lit(day_ts(0))).alias("day"))
        .agg(
            F.count("*").alias("rows"),
            F.countDistinct("customer_id").alias("customers"),
            F.sum("views_7d").alias("views_7d"),
            F.sum("purchases_7d").alias("purchases_7d"),
        )
        .orderBy("day")
        .toPandas()
    )


def scoring_spine(customers: pd.DataFrame, day: int) -> pd.DataFrame:
    """One scoring moment per customer on `day`, at a hash-chosen second of that day."""
    ids = customers["customer_id"].astype("int64")
    offsets = [int(bucket(c, f"moment-{day}") * 86_400) for c in ids]
    return pd.DataFrame({"customer_id": ids, "label_ts": day_ts(day) + pd.to_timedelta(offsets, unit="s")})


def with_labels(spine: DataFrame, events: DataFrame, horizon: timedelta) -> DataFrame:
    """label = 1 if the customer purchases within `horizon` after the scoring moment (`label_ts`)."""
    from pyspark.sql import functions as F

    purchases = events.where(F.col("event_type") == "purchase").select(
        F.col("customer_id").alias("p_customer"), F.col("event_ts").alias("purchase_ts")
    )
    horizon_s = int(horizon.total_seconds())
    window = (
        (F.col("p_customer") == F.col("customer_id"))
        & (F.col("purchase_ts") >= F.col("label_ts"))
        & (F.unix_timestamp("purchase_ts") < F.unix_timestamp("label_ts") + horizon_s)
    )
    return (
        spine.join(purchases, window, "left")
        .groupBy(*spine.columns)
        .agg((F.count("purchase_ts") > 0).cast("int").alias("label"))
    )


def merge_features(spark: SparkSession, path: str, updates: DataFrame) -> dict[str, int]:
    """Upsert snapshots by primary key; unchanged rows are not rewritten. Returns the rows inserted and updated."""
    value_columns = [c for c in updates.columns if c not in ("customer_id", "feature_ts")]
    changed = " OR ".join(f"NOT (t.{c} <=> s.{c})" for c in value_columns)
    metrics = merge_into(
        spark,
        path,
        updates,
        "ON t.customer_id = s.customer_id AND t.feature_ts = s.feature_ts"
        f" WHEN MATCHED AND ({changed}) THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *",
    )
    return {k: metrics[k] for k in ("num_inserted_rows", "num_updated_rows")}
