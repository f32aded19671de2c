"""Checks for snowflake/01 (enterprise patterns): the invariants the lesson proves, on unseen data."""

from __future__ import annotations

import numpy as np
import pandas as pd

from expert.exercises.context import CheckContext
from expert.exercises.learner import LearnerCode
from expert.exercises.verdict import expect
from expert.runtime.data import Dirt, EcommerceWorld
from expert.runtime.snowflake import SnowflakeSession

ORDER_COLUMNS = (
    "ORDER_ID",
    "CUSTOMER_ID",
    "PRODUCT_ID",
    "QUANTITY",
    "UNIT_PRICE",
    "AMOUNT",
    "STATUS",
    "ORDER_TS",
    "UPDATED_AT",
)
ADVANCE = {"placed": "shipped", "shipped": "delivered"}


def change_sets(world: EcommerceWorld, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two change sets as a feed delivers them: the first load (redelivered copies, NULL keys), then
    status advances mixed with stale replays of versions older than what the first load applied."""
    first, _ = world.deliver("orders", "order_id")
    keyed = first.dropna(subset=["order_id"]).drop_duplicates("order_id")
    movable = keyed[keyed["status"].isin(list(ADVANCE))]
    advanced = movable.sample(n=max(1, len(movable) // 3), random_state=rng.integers(1 << 31)).copy()
    advanced["status"] = advanced["status"].map(ADVANCE)
    advanced["updated_at"] = advanced["updated_at"] + pd.Timedelta(days=1)
    stale = keyed.drop(advanced.index).sample(n=max(1, len(keyed) // 10), random_state=rng.integers(1 << 31)).copy()
    stale["status"] = "placed"
    stale["updated_at"] = stale["updated_at"] - pd.Timedelta(days=2)
    second = pd.concat([advanced, stale, advanced.head(len(advanced) // 4)], ignore_index=True)
    return first, second.sample(frac=1.0, random_state=rng.integers(1 << 31)).reset_index(drop=True)


def load_changes(session: SnowflakeSession, frame: pd.DataFrame, first_seq: int) -> None:
    """Replace RAW.CHANGES with `frame`, numbering rows in load order from `first_seq`."""
    table = frame.rename(columns=str.upper)[list(ORDER_COLUMNS)].copy()
    table["ORDER_ID"] = table["ORDER_ID"].astype("Int64")
    for column in ("ORDER_TS", "UPDATED_AT"):
        table[column] = naive_utc(table[column])
    table["_SEQ"] = np.arange(first_seq, first_seq + len(table))
    session.execute("DELETE FROM RAW.CHANGES")
    session.write_pandas(table, "RAW.CHANGES", auto_create_table=False, use_logical_type=True)


def latest_versions(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Ground truth in pandas: per keyed ORDER_ID, the version with the highest UPDATED_AT (then load order)."""
    rows = pd.concat(frames, ignore_index=True).dropna(subset=["order_id"])
    rows = rows.assign(order_id=rows["order_id"].astype("int64"), seq=np.arange(len(rows)))
    latest = rows.sort_values(["order_id", "updated_at", "seq"]).drop_duplicates("order_id", keep="last")
    return latest.set_index("order_id")[["status", "updated_at"]]


def orders_now(session: SnowflakeSession) -> pd.DataFrame:
    frame = session.fetch_df("SELECT ORDER_ID, STATUS, UPDATED_AT FROM CORE.ORDERS")
    frame.columns = [c.lower() for c in frame.columns]
    frame["updated_at"] = naive_utc(frame["updated_at"])
    return frame


def naive_utc(values: pd.Series) -> pd.Series:
    """Timestamps as TIMESTAMP_NTZ holds them: UTC wall time, microseconds."""
    stamps = pd.to_datetime(values)
    if stamps.dt.tz is not None:
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    return stamps.astype("datetime64[us]")


def compare(actual: pd.DataFrame, expected: pd.DataFrame, stage: str) -> None:
    """Every CORE.ORDERS invariant of the lesson, with the numbers when one breaks."""
    expect(actual["order_id"].notna().all(), f"{stage}: rows with a NULL ORDER_ID never land",
           f"{int(actual['order_id'].isna().sum())} NULL keys in CORE.ORDERS")  # fmt: skip
    counts = actual["order_id"].value_counts()
    repeated = counts[counts > 1]
    expect(repeated.empty, f"{stage}: one row per ORDER_ID",
           f"{len(repeated)} ORDER_IDs appear more than once ({len(actual):,} rows for {counts.size:,} orders)")  # fmt: skip
    got = actual.set_index("order_id").sort_index()
    missing = expected.index.difference(got.index)
    extra = got.index.difference(expected.index)
    expect(missing.empty and extra.empty, f"{stage}: every keyed order, and only those",
           f"{len(missing)} orders missing, {len(extra)} unexpected")  # fmt: skip
    want = expected.assign(updated_at=naive_utc(expected["updated_at"])).sort_index()
    wrong = want[(got["status"] != want["status"]) | (got["updated_at"] != want["updated_at"])]
    older = int((got.loc[wrong.index, "updated_at"] < wrong["updated_at"]).sum())
    expect(wrong.empty, f"{stage}: each order holds its latest version",
           f"{len(wrong)} of {len(want):,} orders hold another version ({older} of them an OLDER one: "
           "a stale replay or a duplicate overwrote a newer version)")  # fmt: skip


def check_cdc_merge(learner: LearnerCode, ctx: CheckContext) -> str:
    """Two change sets through the learner's MERGE, then the second again: latest versions, exactly once."""
    merge_orders_sql = learner.function("merge_orders_sql", ("changes",))
    world = EcommerceWorld(1_500, seed=ctx.seed(), dirt=Dirt(duplicate_rate=0.05, null_key_rate=0.02))
    first, second = change_sets(world, np.random.default_rng(ctx.seed(1)))
    columns = ", ".join(f"{c} {_type(c)}" for c in ORDER_COLUMNS)
    with ctx.snowflake(database="SHOP", schema="RAW") as session:
        session.execute("CREATE SCHEMA IF NOT EXISTS CORE")
        session.execute(f"CREATE TABLE RAW.CHANGES ({columns}, _SEQ NUMBER)")
        session.execute(f"CREATE TABLE CORE.ORDERS ({columns})")
        load_changes(session, first, 1)
        session.execute(merge_orders_sql("RAW.CHANGES"))
        compare(orders_now(session), latest_versions([first]), "after the first change set")
        load_changes(session, second, len(first) + 1)
        session.execute(merge_orders_sql("RAW.CHANGES"))
        after = orders_now(session)
        compare(after, latest_versions([first, second]), "after the updates and stale replays")
        session.execute(merge_orders_sql("RAW.CHANGES"))
        rerun = orders_now(session)
    same = (
        after.sort_values("order_id")
        .reset_index(drop=True)
        .equals(rerun.sort_values("order_id").reset_index(drop=True))
    )
    expect(same, "a rerun of the same change set changes nothing", f"{len(after):,} rows before, {len(rerun):,} after")
    return (
        f"{len(rerun):,} orders, one row each, every one at its latest version after "
        f"{len(first):,} + {len(second):,} changes (duplicates, NULL keys and stale replays included); rerun identical"
    )


def _type(column: str) -> str:
    return {"UNIT_PRICE": "NUMBER(12,2)", "AMOUNT": "NUMBER(12,2)", "STATUS": "VARCHAR"}.get(
        column, "TIMESTAMP_NTZ" if column in ("ORDER_TS", "UPDATED_AT") else "NUMBER"
    )
