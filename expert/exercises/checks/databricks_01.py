"""Checks for databricks/01 (production pipelines): the lesson's invariants on data the starter does not show."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pyspark.sql import functions as F

from expert.exercises.context import CheckContext
from expert.exercises.learner import LearnerCode
from expert.exercises.verdict import expect
from expert.lakehouse.delta_log import live_files, table_commits
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
    holds: Callable[[Mapping[str, Any]], bool]


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


def batch_dirt(rng: np.random.Generator) -> list[tuple[int, dict[str, Any]]]:
    """How many rows get which values: NULLs, out-of-range and unknown values, two defects in one row."""
    return [
        (3, {"price": None}),
        (2, {"price": float(rng.choice([0.0, -4.99, 12_500.0]))}),
        (2, {"event_type": None}),
        (2, {"event_type": str(rng.choice(["refund", "View", "wishlist"]))}),
        (2, {"event_id": None}),
        (2, {"event_ts": None}),
        (2, {"event_id": None, "price": None}),
        (2, {"event_ts": None, "event_type": "refund"}),
    ]


def bronze_batch(seed: int, rows: int) -> list[tuple[Any, ...]]:
    """A bronze micro-batch of clickstream rows with the dirt the lesson's rules catch, NULLs included.

    Some rows break two rules (which one is named depends on the rules' order) and several break a
    rule only through a NULL, which a `WHERE condition` / `WHERE NOT condition` split loses. Three
    are malformed lines: every field NULL but `_corrupt_record`, as PERMISSIVE parsing leaves them.
    """
    rng = np.random.default_rng(seed)
    events = EcommerceWorld(400, seed=seed).events.sample(rows, random_state=seed).reset_index(drop=True)
    batch = [
        {
            "event_id": int(e.event_id),
            "customer_id": int(e.customer_id),
            "event_type": str(e.event_type),
            "price": float(e.price),
            "event_ts": e.event_ts.tz_localize(None).to_pydatetime(),
            "_corrupt_record": None,
            "_source_file": f"clickstream/batch={seed % 7:03d}.json#{i}",
        }
        for i, e in enumerate(events.itertuples(index=False))
    ]
    slots = iter(rng.permutation(rows).tolist())
    for count, values in batch_dirt(rng):
        for _ in range(count):
            batch[next(slots)].update(values)
    for _ in range(3):
        row = batch[next(slots)]
        line = json.dumps({"event_id": row["event_id"], "event_type": row["event_type"]})
        row.update(dict.fromkeys(("event_id", "customer_id", "event_type", "price", "event_ts"), None))
        row["_corrupt_record"] = line[: len(line) // 2]
    return [tuple(row.values()) for row in batch]


def first_failed(row: Mapping[str, Any], rules: Sequence[Rule]) -> str | None:
    """The first rule, in the order given, that the row fails (a Python twin of the SQL conditions)."""
    return next((rule.name for rule in rules if not rule.holds(row)), None)


def check_expectations(learner: LearnerCode, ctx: CheckContext) -> str:
    """Two hidden batches, two rule orders: every row kept or quarantined once, under its first failed rule.

    The truth is each row's fate by the rules' Python twins; the learner's two DataFrames are read
    back in one Spark job (a union, each row marked with the side it came from).
    """
    split = learner.function("split_by_expectations", ("batch", "rules"))
    spark = ctx.spark
    columns = [part.split()[0] for part in BRONZE_EVENTS_SCHEMA.split(", ")]
    evidence = []
    for variant, size in ((0, 40), (1, 56)):
        rng = np.random.default_rng(ctx.seed(variant))
        rules = [RULES[i] for i in rng.permutation(len(RULES))]
        batch = bronze_batch(ctx.seed(variant), size)
        truth = [first_failed(dict(zip(columns, row, strict=True)), rules) for row in batch]
        kept, quarantined = split(
            spark.createDataFrame(batch, BRONZE_EVENTS_SCHEMA), [(r.name, r.condition) for r in rules]
        )
        expect(
            kept.columns == columns,
            "the kept rows have the batch's columns, unchanged",
            f"kept columns {kept.columns}, batch columns {columns}",
        )
        expect(
            quarantined.columns == [*columns, "failed_rule"] and dict(quarantined.dtypes)["failed_rule"] == "string",
            "the quarantined rows have the batch's columns plus failed_rule (the rule's name)",
            f"quarantine columns {quarantined.dtypes}",
        )
        both = (
            kept.withColumn("failed_rule", F.lit(None).cast("string"))
            .withColumn("_kept", F.lit(True))
            .unionByName(quarantined.withColumn("_kept", F.lit(False)))
            .collect()
        )
        got_kept = Counter(tuple(r)[:-2] for r in both if r["_kept"])
        got_dropped = Counter((*tuple(r)[:-2], r["failed_rule"]) for r in both if not r["_kept"])
        rows_in = Counter(batch)
        lost = rows_in - got_kept - Counter(row[:-1] for row in got_dropped.elements())
        why = Counter(truth[batch.index(row)] for row in lost.elements())
        expect(
            got_kept.total() + got_dropped.total() == len(batch) and not lost,
            "rows in = rows kept + rows quarantined: a row is never lost",
            f"{len(batch)} rows in, {got_kept.total()} kept + {got_dropped.total()} quarantined"
            + (f"; lost rows fail {dict(why)} (a condition that is NULL is neither true nor false)" if lost else ""),
        )
        wrongly_kept = got_kept - Counter(row for row, rule in zip(batch, truth, strict=True) if rule is None)
        example = next(iter(wrongly_kept), None)
        expect(
            not wrongly_kept,
            "a kept row passes every rule (a condition that is NULL fails it)",
            f"{wrongly_kept.total()} kept rows fail a rule, e.g. {dict(zip(columns, example, strict=True))} fails "
            f"{truth[batch.index(example)]}"
            if example
            else "",
        )
        want = Counter(rule for rule in truth if rule is not None)
        named = Counter((*row, rule) for row, rule in zip(batch, truth, strict=True) if rule is not None)
        expect(
            got_dropped == named,
            "each quarantined row names the first rule it fails, in the order the rules are given",
            f"rules in this order: {', '.join(r.name for r in rules)}; quarantined per rule "
            f"{dict(Counter(r[-1] for r in got_dropped.elements()))}, expected {dict(want)}",
        )
        evidence.append(
            f"{len(batch)} rows: {got_kept.total()} kept, " + ", ".join(f"{k} {v}" for k, v in want.items())
        )
    return "every row kept or quarantined once, under its first failed rule; " + "; ".join(evidence)


# ---------------------------------------------------------------------------------- incremental gold

SILVER_ORDERS_SCHEMA = "order_id BIGINT, customer_id BIGINT, amount DOUBLE, status STRING, order_date DATE"
GOLD_SALES_SCHEMA = "order_date DATE, orders BIGINT, revenue DECIMAL(18,2), customers BIGINT"


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
MERGE INTO delta.`{silver}` AS t USING {changes} AS s ON t.order_id = s.order_id
WHEN MATCHED AND s.op = 'delete' THEN DELETE
WHEN MATCHED THEN UPDATE SET customer_id = s.customer_id, amount = s.amount, status = s.status, order_date = s.order_date
WHEN NOT MATCHED AND s.op = 'upsert' THEN INSERT (order_id, customer_id, amount, status, order_date)
  VALUES (s.order_id, s.customer_id, s.amount, s.status, s.order_date)
"""


def _gold_rows(spark: SparkSession, gold: str) -> tuple[dict[date, tuple[int, float, int]], list[date]]:
    """Gold as {day: (orders, revenue, customers)}, and the days that have more than one row."""
    rows = spark.read.format("delta").load(gold).collect()
    days = Counter(r["order_date"] for r in rows)
    values = {r["order_date"]: (int(r["orders"]), float(r["revenue"]), int(r["customers"])) for r in rows}
    return values, sorted(d for d, n in days.items() if n > 1)


def _day(values: tuple[int, float, int] | None) -> str:
    return "no row" if values is None else f"{values[0]} orders, revenue {values[1]:.2f}, {values[2]} customers"


def _gold_table(spark: SparkSession, sales: dict[date, tuple[int, float, int]], days: Sequence[date]) -> DataFrame:
    rows = [
        (day, n, Decimal(f"{revenue:.2f}"), customers) for day, (n, revenue, customers) in sales.items() if day in days
    ]
    return spark.createDataFrame(rows, GOLD_SALES_SCHEMA).coalesce(1)


def check_incremental_gold(learner: LearnerCode, ctx: CheckContext) -> str:
    """Silver gets one MERGE of updates, a re-dated order, a deleted day and a new day; gold must follow.

    Gold starts as two files, one holding only the days no change touches: a refresh that recomputes
    only the touched days leaves that file in the table. Versions and files are read from the
    tables' logs (no Spark job); the only Spark work is the two writes, the MERGE, the learner's
    refresh and one read of gold.
    """
    refresh = learner.function("refresh_daily_sales", ("spark", "silver", "gold", "start_version"))
    spark = ctx.spark
    data = order_changes(ctx.seed())
    silver, gold = ctx.workdir / "silver_orders", ctx.workdir / "gold_daily_sales"
    _spark_orders(spark, data.before).write.format("delta").option("delta.enableChangeDataFeed", "true").save(
        str(silver)
    )
    sales = daily_sales(data.before)
    touched = [day for day in sales if day not in data.untouched]
    _gold_table(spark, sales, data.untouched).union(_gold_table(spark, sales, touched)).write.format("delta").save(
        str(gold)
    )
    (untouched_file,) = [f for f in table_commits(gold)[0].added if "part-00000" in f]
    _spark_orders(spark, data.changes).createOrReplaceTempView("order_changes")
    spark.sql(MERGE_CHANGES.format(silver=silver, changes="order_changes"))
    latest = table_commits(silver)[-1].version

    applied = refresh(spark, str(silver), str(gold), latest)
    expect(
        applied == latest,
        "the refresh returns the last silver version it applied (where the next refresh starts)",
        f"returned {applied!r}, silver is at version {latest}",
    )
    want, (have, repeated) = daily_sales(data.after), _gold_rows(spark, str(gold))
    expect(
        not repeated,
        "gold has one row per day",
        f"{len(repeated)} day(s) have several rows, e.g. {repeated[0] if repeated else ''} "
        f"({data.story.get(repeated[0], 'untouched by the changes') if repeated else ''})",
    )
    wrong = sorted(d for d in set(want) | set(have) if d not in want or d not in have or
                   want[d][0::2] != have[d][0::2] or abs(want[d][1] - have[d][1]) > 0.011)  # fmt: skip
    detail = ""
    if wrong:
        day = wrong[0]
        detail = (
            f"{len(wrong)} day(s) differ, e.g. {day} ({data.story.get(day, 'untouched by the changes')}): "
            f"gold has {_day(have.get(day))}, silver says {_day(want.get(day))}"
        )
    expect(
        not wrong, "after the refresh gold equals a full recompute from silver (inserts, updates and deletes)", detail
    )
    commits = table_commits(gold)[1:]
    expect(
        len(commits) == 1,
        "the refresh is one commit: a reader sees gold before or after it, never half done",
        f"gold got {len(commits)} commits: {', '.join(c.operation for c in commits)}",
    )
    expect(
        untouched_file in live_files(gold),
        "days no change touched are not rewritten (only the days in the change feed are recomputed)",
        f"the file holding the {len(data.untouched)} untouched days ({', '.join(map(str, data.untouched))}) "
        "was replaced: the refresh rewrote days nothing changed",
    )
    again = refresh(spark, str(silver), str(gold), latest + 1)
    after = table_commits(gold)[1:]
    expect(
        again == latest and len(after) == 1,
        "a refresh with no new silver version reads nothing and commits nothing",
        f"returned {again!r}; gold got {len(after) - 1} more commit(s)",
    )
    return (
        f"one MERGE into silver ({len(data.changes)} changed orders) refreshed {len(data.story)} days of gold in one "
        f"commit: an update, a re-dated order (both its days), a deleted day gone, a new day; "
        f"{len(data.untouched)} untouched days not rewritten; gold = full recompute; the rerun committed nothing"
    )
