"""Checks for integration/01 (lakehouse architecture): the seams between systems, proved on unseen data."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np
import pandas as pd

from expert.exercises.context import CheckContext
from expert.exercises.learner import LearnerCode
from expert.exercises.verdict import expect
from expert.runtime.data import EcommerceWorld
from expert.upstream.payments_api import PaymentsApi, decode_cursor, payment_records, retrying_session

# --- integration/01.1: the incremental API pull ------------------------------------------------


def gapped_records(world: EcommerceWorld, rng: np.random.Generator) -> list[dict[str, Any]]:
    """The provider's records renumbered the way a shared change sequence numbers them: increasing, with gaps."""
    records, _ = payment_records(world)
    seqs = int(rng.integers(1, 50)) + np.cumsum(rng.integers(1, 6, len(records)))
    return [{**r, "seq": int(s)} for r, s in zip(records, seqs, strict=True)]


def page_records(url: str, records: Sequence[dict[str, Any]]) -> list[int]:
    """The seqs the page at `url` serves (from its query: a cursor, or since + limit), computed apart from the server."""
    query = parse_qs(urlparse(url).query)
    if "cursor" in query:
        after, limit = decode_cursor(query["cursor"][0])
    else:
        after, limit = int(query.get("since", ["0"])[0]), int(query.get("limit", ["100"])[0])
    return [r["seq"] for r in records if r["seq"] > after][:limit]


def pulled(result: Any, name: str) -> tuple[list[dict[str, Any]], Any]:
    expect(
        isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], list),
        f"{name} returns (records, watermark)",
        f"got {type(result).__name__}",
    )
    return result[0], result[1]


def same_records(got: list[dict[str, Any]], want: Sequence[dict[str, Any]], stage: str) -> None:
    """Exactly `want`, once each, in seq order, with the API's fields and the page each came from."""
    seqs = [r.get("seq") for r in got]
    wanted = [r["seq"] for r in want]
    repeated = len(seqs) - len(set(seqs))
    expect(repeated == 0, f"{stage}: each record exactly once",
           f"{repeated} records returned more than once ({len(got)} returned, {len(want)} new): "
           "pages overlap when the client builds its own offsets")  # fmt: skip
    missing = sorted(set(wanted) - set(seqs))
    extra = sorted(set(seqs) - set(wanted), key=str)
    expect(not missing and not extra, f"{stage}: every new record, and only new ones",
           f"{len(missing)} missing (first seqs {missing[:3]}), {len(extra)} not newer than the watermark "
           f"or unknown (first {extra[:3]})")  # fmt: skip
    disorder = [i for i, (a, b) in enumerate(zip(seqs, wanted, strict=True)) if a != b]
    expect(
        not disorder,
        f"{stage}: records in seq order",
        f"{len(disorder)} out of place, first at position {disorder[:1]}",
    )
    changed = [r["seq"] for r, w in zip(got, want, strict=True) if {k: r.get(k) for k in w} != w]
    expect(
        not changed,
        f"{stage}: every field as the API sent it",
        f"{len(changed)} records differ, first seq {changed[:1]}",
    )
    unsourced = [
        r["seq"]
        for r in got
        if not isinstance(r.get("_source_file"), str) or r["seq"] not in page_records(r["_source_file"], want)
    ]
    expect(not unsourced, f"{stage}: each record's _source_file is the URL of the page that served it",
           f"{len(unsourced)} of {len(got)} records name another page or none (first seq {unsourced[:1]})")  # fmt: skip


def check_incremental_api_pull(learner: LearnerCode, ctx: CheckContext) -> str:
    """A first pull, a rerun, the provider's new records, a rerun: exactly once, watermark kept."""
    pull_payments = learner.function("pull_payments", ("base_url", "watermark", "page_size", "session"))
    rng = np.random.default_rng(ctx.seed(1))
    records = gapped_records(EcommerceWorld(2_500, seed=ctx.seed()), rng)
    page_size = int(rng.choice([20, 25, 30]))
    first = records[: len(records) * 2 // 3]
    later = records[len(first) :]
    flaky = first[2 * page_size - 1]["seq"] // page_size
    served = list(first)
    with PaymentsApi(served, flaky_page=flaky) as api, contextlib.closing(retrying_session()) as http:
        got, watermark = pulled(pull_payments(api.url, 0, page_size, http), "pull_payments")
        same_records(got, first, "first pull")
        top = first[-1]["seq"]
        expect(watermark == top, "the watermark is the highest seq pulled", f"got {watermark!r}, highest seq {top}")
        again, kept = pulled(pull_payments(api.url, watermark, page_size, http), "pull_payments")
        expect(not again and kept == top, "a rerun with the watermark reads nothing and keeps it",
               f"{len(again)} records read again; watermark {kept!r} (was {top})")  # fmt: skip
        served += later
        new, advanced = pulled(pull_payments(api.url, kept, page_size, http), "pull_payments")
        same_records(new, later, "after the provider added records")
        expect(advanced == later[-1]["seq"], "the watermark advances to the newest record",
               f"got {advanced!r}, newest seq {later[-1]['seq']}")  # fmt: skip
        last, final = pulled(pull_payments(api.url, advanced, page_size, http), "pull_payments")
        expect(not last and final == advanced, "the last rerun reads nothing", f"{len(last)} records read again")
        retried = api.failures_served
    return (
        f"{len(first)} records (seq with gaps, page size {page_size}, {retried} 503 retried) pulled once each with "
        f"their page URL; reruns read 0; {len(later)} later records picked up exactly; watermark {final}"
    )


# --- integration/01.2: the fact at order grain -------------------------------------------------

FACT_COLUMNS = ("ORDER_ID", "ORDER_DATE", "CUSTOMER_ID", "PRODUCT_ID", "QUANTITY", "AMOUNT", "ORDER_STATUS",
                "PAYMENT_METHOD", "PAYMENT_STATUS")  # fmt: skip
ORDERS_DDL = """CREATE TABLE SILVER_ORDERS (ORDER_ID NUMBER, ORDER_DATE DATE, CUSTOMER_ID NUMBER, PRODUCT_ID NUMBER,
    QUANTITY NUMBER, AMOUNT NUMBER(12, 2), STATUS VARCHAR, ORDER_TS TIMESTAMP_NTZ)"""
PAYMENTS_DDL = """CREATE TABLE SILVER_PAYMENTS (PAYMENT_ID NUMBER, ORDER_ID NUMBER, METHOD VARCHAR,
    AMOUNT NUMBER(12, 2), STATUS VARCHAR, PAID_TS TIMESTAMP_NTZ)"""


def silver_orders(world: EcommerceWorld) -> pd.DataFrame:
    orders = world.orders[["order_id", "customer_id", "product_id", "quantity", "amount", "status", "order_ts"]].copy()
    orders["order_ts"] = naive_utc(orders["order_ts"])
    orders.insert(1, "order_date", orders["order_ts"].dt.date)
    return orders


def payment_attempts(world: EcommerceWorld, rng: np.random.Generator) -> tuple[pd.DataFrame, dict[str, int]]:
    """Every attempt a provider reports: retries, refunds, same-second pairs, late earlier attempts; some orders unpaid."""
    first = world.payments.copy()
    first["paid_ts"] = naive_utc(first["paid_ts"])
    first["status"] = "captured"
    share = max(3, len(first) // 12)
    picked = rng.permutation(len(first))
    kinds = ("unpaid", "retried", "refunded", "same second", "late earlier attempt")
    groups = {kind: picked[i * share : (i + 1) * share] for i, kind in enumerate(kinds)}
    minutes = pd.to_timedelta(rng.integers(1, 600, len(first)), unit="min")
    methods = np.array(["card", "paypal", "bank_transfer", "gift_card"])
    other = methods[(np.searchsorted(methods, first["method"].to_numpy(), sorter=np.argsort(methods)) + 1) % 4]
    extra = []
    for kind, rows in groups.items():
        if kind == "unpaid":
            continue
        attempt = first.iloc[rows].copy()
        if kind == "retried":
            first.loc[first.index[rows], "status"] = "failed"
            attempt["method"], attempt["paid_ts"] = other[rows], attempt["paid_ts"] + minutes[rows]
        elif kind == "refunded":
            attempt["status"], attempt["paid_ts"] = "refunded", attempt["paid_ts"] + minutes[rows] * 24
        elif kind == "same second":
            first.loc[first.index[rows], "status"] = "failed"
            attempt["method"] = other[rows]
        else:
            attempt["method"], attempt["status"] = other[rows], "failed"
            attempt["paid_ts"] = attempt["paid_ts"] - minutes[rows]
        extra.append(attempt)
    payments = pd.concat([first.drop(first.index[groups["unpaid"]]), *extra], ignore_index=True)
    later = payments.index >= len(first) - share
    payments.loc[later, "payment_id"] = first["payment_id"].max() + 1 + np.arange(int(later.sum()))
    shuffled = payments.sample(frac=1.0, random_state=int(rng.integers(1 << 31))).reset_index(drop=True)
    return shuffled, {kind: len(rows) for kind, rows in groups.items()}


def latest_payment(orders: pd.DataFrame, payments: pd.DataFrame) -> pd.DataFrame:
    """Ground truth in pandas: per order, the payment with the highest paid_ts (then payment_id), or none/missing."""
    last = payments.sort_values(["order_id", "paid_ts", "payment_id"]).drop_duplicates("order_id", keep="last")
    want = orders.merge(last[["order_id", "method", "status"]].rename(columns={"status": "payment_status"}),
                        on="order_id", how="left", suffixes=("", "_p"))  # fmt: skip
    want["payment_method"] = want["method"].fillna("none")
    want["payment_status"] = want["payment_status"].fillna("missing")
    return want.set_index("order_id")


def naive_utc(values: pd.Series) -> pd.Series:
    """Timestamps as TIMESTAMP_NTZ holds them: UTC wall time, microseconds."""
    stamps = pd.to_datetime(values)
    if stamps.dt.tz is not None:
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    return stamps.astype("datetime64[us]")


def check_fact_grain(learner: LearnerCode, ctx: CheckContext) -> str:
    """The learner's fact over orders and every payment attempt: order grain, latest payment, unpaid kept."""
    fact_sales_sql = learner.function("fact_sales_sql", ("orders", "payments"))
    world = EcommerceWorld(2_500, seed=ctx.seed())
    orders = silver_orders(world)
    payments, kinds = payment_attempts(world, np.random.default_rng(ctx.seed(1)))
    sql = fact_sales_sql("SILVER_ORDERS", "SILVER_PAYMENTS")
    with ctx.snowflake(database="LAKEHOUSE", schema="SILVER") as session:
        session.execute(ORDERS_DDL)
        session.execute(PAYMENTS_DDL)
        session.write_pandas(orders.rename(columns=str.upper), "SILVER_ORDERS", auto_create_table=False,
                             use_logical_type=True)  # fmt: skip
        session.write_pandas(payments.rename(columns=str.upper), "SILVER_PAYMENTS", auto_create_table=False,
                             use_logical_type=True)  # fmt: skip
        try:
            fact = session.fetch_df(sql)
        except Exception as exc:
            expect(False, "the fact's SELECT runs in Snowflake", str(exc).strip().splitlines()[0])
    fact.columns = [str(c).upper() for c in fact.columns]
    absent = [c for c in FACT_COLUMNS if c not in fact.columns]
    expect(not absent, "the fact has the star's columns", f"missing {', '.join(absent)}; got {', '.join(fact.columns)}")
    ids = set(orders["order_id"])
    lost = ids - set(fact["ORDER_ID"].astype("int64"))
    expect(not lost, "no order is lost (an order without a payment is still an order)",
           f"{len(lost)} of {len(ids)} orders missing from the fact ({kinds['unpaid']} have no payment yet)")  # fmt: skip
    counts = fact["ORDER_ID"].value_counts()
    fanned = counts[counts > 1]
    want_revenue, got_revenue = float(orders["amount"].sum()), float(fact["AMOUNT"].astype(float).sum())
    expect(fanned.empty and len(fact) == len(ids), "fact grain: one row per order (the payment join fans out nothing)",
           f"{len(fact):,} rows for {len(ids):,} orders; {len(fanned)} orders repeated; revenue {got_revenue:,.2f} "
           f"instead of {want_revenue:,.2f}")  # fmt: skip
    got = fact.assign(ORDER_ID=fact["ORDER_ID"].astype("int64")).set_index("ORDER_ID").sort_index()
    want = latest_payment(orders, payments).sort_index()
    wrong_order = int((got["QUANTITY"].astype("int64") != want["quantity"]).sum()
                      + ((got["AMOUNT"].astype(float) - want["amount"]).abs() > 0.005).sum()
                      + (got["ORDER_STATUS"] != want["status"]).sum())  # fmt: skip
    expect(wrong_order == 0, "each fact row carries its order's values unchanged",
           f"{wrong_order} QUANTITY / AMOUNT / ORDER_STATUS values differ from the order")  # fmt: skip
    wrong = want[(got["PAYMENT_METHOD"] != want["payment_method"]) | (got["PAYMENT_STATUS"] != want["payment_status"])]
    example = ""
    if len(wrong):
        order = wrong.index[0]
        example = (f"; e.g. order {order}: {got.at[order, 'PAYMENT_STATUS']}/{got.at[order, 'PAYMENT_METHOD']}, "
                   f"its latest payment says {want.at[order, 'payment_status']}/{want.at[order, 'payment_method']}")  # fmt: skip
    expect(wrong.empty, "each order carries its latest payment (highest PAID_TS, then PAYMENT_ID), or none/missing",
           f"{len(wrong)} of {len(want)} orders carry another payment{example}")  # fmt: skip
    return (
        f"{len(got):,} orders, one row each, revenue {got_revenue:,.2f} unchanged, from {len(payments):,} payment "
        f"attempts ({', '.join(f'{n} {k}' for k, n in kinds.items())}): every order carries its latest payment"
    )


# --- integration/01.3: reconciliation by per-day checksums -------------------------------------

FACT_SCHEMA = "order_id BIGINT, order_date DATE, customer_id BIGINT, quantity BIGINT, amount DECIMAL(18,2), " \
    "payment_status STRING"  # fmt: skip
LAKE_VIEW = "lake_gold_fact_sales"
"""The lake's copy of the fact as Spark SQL sees it (a view of the rows: the checksum SQL is what is checked)."""
FACT_DDL = """CREATE TABLE FACT_SALES (ORDER_ID NUMBER(19, 0), ORDER_DATE DATE, CUSTOMER_ID NUMBER(19, 0),
    QUANTITY NUMBER(19, 0), AMOUNT NUMBER(18, 2), PAYMENT_STATUS VARCHAR)"""


@dataclass(frozen=True)
class Drift:
    """One 'quick fix' made in Snowflake only, and the days it changes."""

    what: str
    days: tuple[str, ...]
    statement: str


def gold_fact(world: EcommerceWorld) -> pd.DataFrame:
    orders = world.orders
    return pd.DataFrame(
        {
            "order_id": orders["order_id"].astype("int64"),
            "order_date": naive_utc(orders["order_ts"]).dt.date,
            "customer_id": orders["customer_id"].astype("int64"),
            "quantity": orders["quantity"].astype("int64"),
            "amount": orders["amount"].round(2),
            "payment_status": np.where(world.payments["status"] == "failed", "failed", "captured"),
        }
    )


def drifts(fact: pd.DataFrame, rng: np.random.Generator) -> list[Drift]:
    """Six single-row drifts, each on its own days (a seventh day receives the moved order)."""
    per_day = fact.groupby("order_date")["order_id"].apply(list)
    days = [d for d in rng.permutation(per_day.index.to_numpy()) if len(per_day[d]) >= 2][:7]
    victim = {d: int(rng.choice(per_day[d])) for d in days}
    new_key = int(fact["order_id"].max()) + int(rng.integers(10, 10_000))
    day = [str(d) for d in days]
    where = [f"WHERE ORDER_ID = {victim[d]}" for d in days]
    return [
        Drift(f"order {victim[days[0]]}'s AMOUNT + 0.01", (day[0],), f"UPDATE FACT_SALES SET AMOUNT = AMOUNT + 0.01 {where[0]}"),
        Drift(f"order {victim[days[1]]}'s QUANTITY + 1", (day[1],), f"UPDATE FACT_SALES SET QUANTITY = QUANTITY + 1 {where[1]}"),
        Drift(f"order {victim[days[2]]} deleted", (day[2],), f"DELETE FROM FACT_SALES {where[2]}"),
        Drift(f"order {victim[days[3]]} loaded twice", (day[3],), f"INSERT INTO FACT_SALES SELECT * FROM FACT_SALES {where[3]}"),
        Drift(f"order {victim[days[4]]} re-keyed to {new_key}", (day[4],), f"UPDATE FACT_SALES SET ORDER_ID = {new_key} {where[4]}"),
        Drift(f"order {victim[days[5]]} moved to {day[6]}", (day[5], day[6]),
              f"UPDATE FACT_SALES SET ORDER_DATE = '{day[6]}' {where[5]}"),
    ]  # fmt: skip


def checksum_rows(rows: Sequence[dict[str, Any]], engine: str) -> dict[str, dict[str, Any]]:
    """day → measure → value from one engine's result, with the shape and integer invariants checked."""
    lowered = [{str(k).lower(): v for k, v in row.items()} for row in rows]
    columns = list(lowered[0]) if lowered else []
    expect("day" in columns and len(columns) >= 2, "the checksum query returns `day` and at least one measure",
           f"{engine} returned columns {columns}")  # fmt: skip
    out: dict[str, dict[str, Any]] = {}
    for row in lowered:
        day = str(row["day"])
        expect(day not in out, "one checksum row per day", f"{engine} returned {day} more than once")
        for measure, value in row.items():
            exact = measure == "day" or is_integral(value)
            expect(exact, "every measure is an exact integer in both engines",
                   f"{measure} = {value!r} on {day} in {engine}: sum money as integer cents, "
                   "CAST(amount * 100 AS BIGINT), never as a decimal or a float")  # fmt: skip
        out[day] = {m: int(v) for m, v in row.items() if m != "day"}
    return out


def is_integral(value: Any) -> bool:
    """An integer, or a number with no fraction (fakesnow hands integer sums back as floats)."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | np.number):
        return False
    return bool(np.isfinite(float(value))) and value == int(value)


def differing_days(lake: dict[str, dict[str, Any]], warehouse: dict[str, dict[str, Any]]) -> list[str]:
    """Days whose checksums differ; a day present on one side only counts."""
    return sorted(d for d in set(lake) | set(warehouse) if lake.get(d) != warehouse.get(d))


def run_query(engine: str, run: Callable[[], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    try:
        return run()
    except Exception as exc:
        expect(False, "the checksum query runs unchanged in Spark SQL and in Snowflake",
               f"{engine} rejected it: {str(exc).strip().splitlines()[0][:300]}")  # fmt: skip
        raise


def check_reconcile_checksums(learner: LearnerCode, ctx: CheckContext) -> str:
    """The learner's checksums on the lake's fact (Spark) and its Snowflake copy: clean, then six drifts in Snowflake."""
    checksum_sql = learner.function("checksum_sql", ("table",))
    spark = ctx.spark
    fact = gold_fact(EcommerceWorld(2_000, seed=ctx.seed()))
    rows = fact.assign(amount=[Decimal(f"{a:.2f}") for a in fact["amount"]])
    spark.createDataFrame(rows, FACT_SCHEMA).createOrReplaceTempView(LAKE_VIEW)
    lake_sql, warehouse_sql = checksum_sql(LAKE_VIEW), checksum_sql("FACT_SALES")
    lake = checksum_rows(run_query("Spark", lambda: [r.asDict() for r in spark.sql(lake_sql).collect()]), "Spark")
    with ctx.snowflake(database="LAKEHOUSE", schema="GOLD") as session:
        session.execute(FACT_DDL)
        session.write_pandas(
            fact.rename(columns=str.upper), "FACT_SALES", auto_create_table=False, use_logical_type=True
        )
        clean = checksum_rows(run_query("Snowflake", lambda: session.fetch(warehouse_sql)), "Snowflake")
        days = sorted(str(d) for d in fact["order_date"].unique())
        expect(sorted(lake) == days, "one checksum row for every day with orders",
               f"{len(lake)} rows for {len(days)} days")  # fmt: skip
        alarms = differing_days(lake, clean)
        expect(not alarms, "two equal copies give equal checksums (no false alarm)",
               f"{len(alarms)} of {len(days)} days differ on equal data, first {alarms[0] if alarms else ''}: "
               f"Spark {lake.get(alarms[0]) if alarms else ''} vs Snowflake {clean.get(alarms[0]) if alarms else ''}")  # fmt: skip
        planted = drifts(fact, np.random.default_rng(ctx.seed(1)))
        for drift in planted:
            session.execute(drift.statement)
        found = differing_days(lake, checksum_rows(session.fetch(warehouse_sql), "Snowflake"))
    missed = [d for d in planted if not set(d.days) <= set(found)]
    expect(not missed, "every single-row drift is detected on its day",
           f"{len(missed)} of {len(planted)} drifts missed: "
           + "; ".join(f"{d.what} on {', '.join(d.days)}" for d in missed))  # fmt: skip
    expected = sorted({day for d in planted for day in d.days})
    expect(found == expected, "only the drifted days differ", f"{len(found)} days differ, {len(expected)} drifted")
    measures = len(next(iter(lake.values())))
    return (
        f"{len(days)} days × {measures} integer measures agree in Spark and Snowflake on equal copies; "
        f"{len(planted)} single-row drifts ({', '.join(d.what.split(' ', 2)[-1] for d in planted)}) "
        f"found on exactly their {len(expected)} days"
    )
