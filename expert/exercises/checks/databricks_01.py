"""Checks for databricks/01 (production pipelines): the lesson's invariants on data the starter does not show."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pyspark.sql import Row
from pyspark.sql import functions as F

from expert.exercises.context import CheckContext
from expert.exercises.learner import LearnerCode
from expert.exercises.verdict import expect
from expert.lakehouse.delta_log import latest_version, live_files, table_commits
from expert.lakehouse.delta_ops import delta_table
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


# ---------------------------------------------------------------------------------- expectations


@dataclass(frozen=True)
class Rule:
    """A drop expectation: its SQL condition, and the same condition in Python (None fails, as in SQL)."""

    name: str
    condition: str
    holds: Callable[[Row], bool]


EVENT_TYPES = ("view", "cart", "purchase")
RULES = (
    Rule("well_formed", "_corrupt_record IS NULL", lambda r: r["_corrupt_record"] is None),
    Rule("event_id_present", "event_id IS NOT NULL", lambda r: r["event_id"] is not None),
    Rule("event_ts_present", "event_ts IS NOT NULL", lambda r: r["event_ts"] is not None),
    Rule("price_in_range", "price > 0 AND price < 10000", lambda r: r["price"] is not None and 0 < r["price"] < 10_000),
    Rule("known_event_type", "event_type IN ('view', 'cart', 'purchase')", lambda r: r["event_type"] in EVENT_TYPES),
)
BRONZE_EVENTS_SCHEMA = (
    "event_id BIGINT, customer_id BIGINT, event_type STRING, price DOUBLE, event_ts TIMESTAMP, "
    "_corrupt_record STRING, _source_file STRING"
)


def bronze_batch(seed: int, rows: int) -> list[tuple[Any, ...]]:
    """A bronze micro-batch of clickstream rows with the dirt the lesson's rules catch, NULLs included.

    Some rows break two rules (which one is named depends on the rules' order) and several break a
    rule only through a NULL, which a `WHERE condition` / `WHERE NOT condition` split loses.
    """
    rng = np.random.default_rng(seed)
    events = EcommerceWorld(400, seed=seed).events.sample(rows, random_state=seed).reset_index(drop=True)
    batch = []
    for i, e in events.iterrows():
        event_ts = e["event_ts"].tz_localize(None).to_pydatetime()
        row = [int(e["event_id"]), int(e["customer_id"]), e["event_type"], float(e["price"]), event_ts, None]
        batch.append([*row, f"clickstream/batch={seed % 7:03d}.json#{i}"])
    slots = rng.permutation(rows)
    defects = [
        (3, lambda r: r.__setitem__(3, None)),
        (2, lambda r: r.__setitem__(3, float(rng.choice([0.0, -4.99, 12_500.0])))),
        (2, lambda r: r.__setitem__(2, None)),
        (2, lambda r: r.__setitem__(2, str(rng.choice(["refund", "View", "wishlist"])))),
        (2, lambda r: r.__setitem__(0, None)),
        (2, lambda r: r.__setitem__(4, None)),
        (2, lambda r: (r.__setitem__(0, None), r.__setitem__(3, None))),
        (2, lambda r: (r.__setitem__(4, None), r.__setitem__(2, "refund"))),
    ]
    used = 0
    for count, damage in defects:
        for slot in slots[used : used + count]:
            damage(batch[slot])
        used += count
    for slot in slots[used : used + 3]:
        line = json.dumps({"event_id": batch[slot][0], "event_type": batch[slot][2]})
        batch[slot] = [None, None, None, None, None, line[: len(line) // 2], batch[slot][6]]
    return [tuple(r) for r in batch]


def first_failed(row: Row, rules: Sequence[Rule]) -> str | None:
    return next((rule.name for rule in rules if not rule.holds(row)), None)


def _counted(rows: Sequence[tuple[Any, ...]]) -> Counter[tuple[Any, ...]]:
    return Counter(tuple(r) for r in rows)


def check_expectations(learner: LearnerCode, ctx: CheckContext) -> str:
    """Two hidden batches, two rule orders: every row kept or quarantined once, under its first failed rule."""
    split = learner.function("split_by_expectations", ("batch", "rules"))
    spark = ctx.spark
    evidence = []
    for variant, rows in ((0, 40), (1, 56)):
        rng = np.random.default_rng(ctx.seed(variant))
        rules = [RULES[i] for i in rng.permutation(len(RULES))]
        frame = spark.createDataFrame(bronze_batch(ctx.seed(variant), rows), BRONZE_EVENTS_SCHEMA)
        batch = frame.collect()
        valid, quarantined = split(frame, [(r.name, r.condition) for r in rules])
        expect(
            valid.columns == frame.columns,
            "the kept rows have the batch's columns, unchanged",
            f"kept columns {valid.columns}, batch columns {frame.columns}",
        )
        expect(
            quarantined.columns == [*frame.columns, "failed_rule"],
            "the quarantined rows have the batch's columns plus failed_rule",
            f"quarantine columns {quarantined.columns}",
        )
        kept, dropped = valid.collect(), quarantined.collect()
        truth = {id(row): first_failed(row, rules) for row in batch}
        lost = _counted(batch) - _counted(kept) - _counted([r[:-1] for r in dropped])
        why = Counter(first_failed(Row(**dict(zip(frame.columns, r, strict=True))), rules) for r in lost.elements())
        expect(
            len(kept) + len(dropped) == len(batch) and not lost,
            "rows in = rows kept + rows quarantined: a row is never lost",
            f"{len(batch)} rows in, {len(kept)} kept + {len(dropped)} quarantined"
            + (f"; lost: {dict(why)} (a NULL condition is neither true nor false)" if lost else ""),
        )
        want_kept = _counted([row for row in batch if truth[id(row)] is None])
        wrongly_kept = _counted(kept) - want_kept
        example = next(iter(wrongly_kept), None)
        expect(
            not wrongly_kept,
            "a kept row passes every rule (a condition that is NULL fails it)",
            f"{sum(wrongly_kept.values())} kept rows fail a rule, e.g. {example} fails "
            f"{first_failed(Row(**dict(zip(frame.columns, example, strict=True))), rules) if example else ''}",
        )
        want = Counter(truth.values()) - Counter({None: len(batch)})
        got = Counter(r["failed_rule"] for r in dropped)
        named = _counted([(*row, truth[id(row)]) for row in batch if truth[id(row)] is not None])
        expect(
            _counted(dropped) == named,
            "each quarantined row names the first rule it fails, in the order the rules are given",
            f"rules in this order: {', '.join(r.name for r in rules)}; quarantined per rule {dict(got)}, "
            f"expected {dict(want)}",
        )
        evidence.append(f"{len(batch)} rows: {len(kept)} kept, " + ", ".join(f"{k} {v}" for k, v in want.items()))
    return "every row kept or quarantined once, under its first failed rule; " + "; ".join(evidence)


# ---------------------------------------------------------------------------------- incremental gold

SILVER_ORDERS_SCHEMA = "order_id BIGINT, customer_id BIGINT, amount DOUBLE, status STRING, order_date DATE"
GOLD_SALES_SCHEMA = "order_date DATE, orders BIGINT, revenue DECIMAL(18,2), customers BIGINT"
GOLD_MEASURES = (
    "count(*) AS orders",
    "CAST(round(sum(amount), 2) AS DECIMAL(18, 2)) AS revenue",
    "count(DISTINCT customer_id) AS customers",
)


@dataclass(frozen=True)
class OrderChanges:
    """Silver orders before and after one MERGE, and what the MERGE did to each day."""

    before: pd.DataFrame
    after: pd.DataFrame
    changes: pd.DataFrame
    """order rows with `op` upsert or delete: the MERGE's source."""
    story: dict[date, str]
    untouched: list[date]


def order_changes(seed: int) -> OrderChanges:
    """Orders on seven days, then one change set: updates, a re-dated order, a day emptied, a new day."""
    rng = np.random.default_rng(seed)
    world = EcommerceWorld(2_000, seed=seed)
    orders = world.orders.assign(order_date=world.orders["order_ts"].dt.date)
    days = list(rng.choice(sorted(orders["order_date"].unique()), 8, replace=False))
    new_day, updated, moved_from, moved_to, emptied, *untouched = days
    parts = [orders[orders["order_date"] == d].head(int(rng.integers(3, 7))) for d in days[1:]]
    before = pd.concat(parts)[["order_id", "customer_id", "amount", "status", "order_date"]].reset_index(drop=True)
    before["customer_id"] = rng.integers(1, 9, len(before))
    after = before.copy()
    changed = after.index[after["order_date"] == updated][:2]
    after.loc[changed, "status"] = "returned"
    after.loc[changed, "amount"] = (after.loc[changed, "amount"] * 0.5).round(2)
    moved = after.index[after["order_date"] == moved_from][0]
    after.loc[moved, "order_date"] = moved_to
    after = after[after["order_date"] != emptied]
    next_id = int(orders["order_id"].max()) + 1
    fresh = pd.DataFrame(
        {
            "order_id": range(next_id, next_id + 4),
            "customer_id": rng.integers(1, 9, 4),
            "amount": rng.uniform(5, 300, 4).round(2),
            "status": "placed",
            "order_date": [new_day, new_day, new_day, updated],
        }
    )
    after = pd.concat([after, fresh]).reset_index(drop=True)
    upserts = pd.concat([after.loc[after["order_id"].isin(before.loc[[*changed, moved], "order_id"])], fresh])
    deletes = before[before["order_date"] == emptied]
    changes = pd.concat([upserts.assign(op="upsert"), deletes.assign(op="delete")]).reset_index(drop=True)
    story = {
        updated: "orders updated (returned, half refunded) and one added",
        moved_from: "an order re-dated away from it",
        moved_to: "an order re-dated onto it",
        emptied: "every order deleted",
        new_day: "a new day",
    }
    return OrderChanges(before, after, changes, story, sorted(untouched))


def daily_sales(orders: pd.DataFrame) -> dict[date, tuple[int, float, int]]:
    """gold_daily_sales computed by pandas: the ground truth."""
    grouped = orders.groupby("order_date").agg(
        orders=("order_id", "size"), revenue=("amount", "sum"), customers=("customer_id", "nunique")
    )
    return {day: (int(r.orders), round(float(r.revenue), 2), int(r.customers)) for day, r in grouped.iterrows()}


def _spark_orders(spark: SparkSession, frame: pd.DataFrame) -> DataFrame:
    """Order rows as Spark rows (with the change set's `op` column when the frame has one)."""
    columns = ["order_id", "customer_id", "amount", "status", "order_date"]
    with_op = "op" in frame.columns
    rows = [
        (int(r.order_id), int(r.customer_id), float(r.amount), str(r.status), r.order_date)
        + ((str(r.op),) if with_op else ())
        for r in frame[[*columns, *(["op"] if with_op else [])]].itertuples(index=False)
    ]
    return spark.createDataFrame(rows, SILVER_ORDERS_SCHEMA + (", op STRING" if with_op else ""))


MERGE_CHANGES = """
MERGE INTO {silver} AS t USING {changes} AS s ON t.order_id = s.order_id
WHEN MATCHED AND s.op = 'delete' THEN DELETE
WHEN MATCHED THEN UPDATE SET customer_id = s.customer_id, amount = s.amount, status = s.status, order_date = s.order_date
WHEN NOT MATCHED AND s.op = 'upsert' THEN INSERT (order_id, customer_id, amount, status, order_date)
  VALUES (s.order_id, s.customer_id, s.amount, s.status, s.order_date)
"""


def _gold_rows(spark: SparkSession, gold: str) -> dict[date, tuple[int, float, int]]:
    rows = spark.read.format("delta").load(gold).collect()
    return {r["order_date"]: (int(r["orders"]), float(r["revenue"]), int(r["customers"])) for r in rows}


def _day(values: tuple[int, float, int] | None) -> str:
    return "no row" if values is None else f"{values[0]} orders, revenue {values[1]:.2f}, {values[2]} customers"


def _silver_changed_after_gold(spark: SparkSession, data: OrderChanges, directory: Path) -> None:
    """Silver (change feed on) and the gold built from it, then one MERGE into silver that gold has not seen.

    Gold's first commit holds exactly the days no change touches, in one file: the check tells
    from it whether the refresh rewrote days it did not need to.
    """
    silver, gold = str(directory / "silver_orders"), str(directory / "gold_daily_sales")
    _spark_orders(spark, data.before).write.format("delta").option("delta.enableChangeDataFeed", "true").save(silver)
    initial = spark.read.format("delta").load(silver).groupBy("order_date").agg(*[F.expr(m) for m in GOLD_MEASURES])
    untouched = F.col("order_date").isin(data.untouched)
    initial.where(untouched).coalesce(1).write.format("delta").save(gold)
    initial.where(~untouched).coalesce(1).write.format("delta").mode("append").save(gold)
    _spark_orders(spark, data.changes).createOrReplaceTempView("order_changes")
    spark.sql(MERGE_CHANGES.format(silver=delta_table(silver), changes="order_changes"))


def check_incremental_gold(learner: LearnerCode, ctx: CheckContext) -> str:
    """Silver gets one MERGE of updates, a re-dated order, a deleted day and a new day; gold must follow."""
    refresh = learner.function("refresh_daily_sales", ("spark", "silver", "gold", "start_version"))
    spark = ctx.spark
    data = order_changes(ctx.seed())
    tables = ctx.prepared("tables", lambda directory: _silver_changed_after_gold(spark, data, directory))
    silver, gold = str(tables / "silver_orders"), str(tables / "gold_daily_sales")
    untouched_files = set(table_commits(Path(gold))[0].added)
    gold_before = latest_version(Path(gold))
    latest = latest_version(Path(silver))

    applied = refresh(spark, silver, gold, latest)
    expect(
        applied == latest,
        "the refresh returns the last silver version it applied (where the next refresh starts)",
        f"returned {applied!r}, silver is at version {latest}",
    )
    want, have = daily_sales(data.after), _gold_rows(spark, gold)
    wrong = sorted(d for d in set(want) | set(have) if d not in want or d not in have or
                   want[d][0::2] != have[d][0::2] or abs(want[d][1] - have[d][1]) > 0.005)  # fmt: skip
    expect(
        not wrong,
        "after the refresh gold equals a full recompute from silver (inserts, updates and deletes)",
        f"{len(wrong)} day(s) differ, e.g. {wrong[0] if wrong else ''} "
        f"({data.story.get(wrong[0], 'untouched by the changes') if wrong else ''}): gold has "
        f"{_day(have.get(wrong[0])) if wrong else ''}, silver says {_day(want.get(wrong[0])) if wrong else ''}",
    )
    commits = latest_version(Path(gold)) - gold_before
    expect(
        commits == 1,
        "the refresh is one commit: a reader sees gold before or after it, never half done",
        f"gold went from version {gold_before} to {gold_before + commits}",
    )
    survived = untouched_files & live_files(Path(gold))
    expect(
        survived == untouched_files,
        "days no change touched are not rewritten (only the days in the change feed are recomputed)",
        f"the file holding the {len(data.untouched)} untouched days ({', '.join(map(str, data.untouched))}) "
        "was replaced: the refresh rewrote days nothing changed",
    )
    again = refresh(spark, silver, gold, latest + 1)
    expect(
        again == latest and latest_version(Path(gold)) == gold_before + 1,
        "a refresh with no new silver version reads nothing and commits nothing",
        f"returned {again!r}; gold at version {latest_version(Path(gold))} (was {gold_before + 1})",
    )
    return (
        f"one MERGE into silver ({len(data.changes)} changed orders) refreshed {len(data.story)} days of gold in one "
        f"commit: an update, a re-dated order (both its days), a deleted day gone, a new day; "
        f"{len(data.untouched)} untouched days not rewritten; gold = full recompute; the rerun committed nothing"
    )
