"""Land the operational database and the payments API in bronze Delta, incrementally, with metadata.

Why incremental by a high-water mark: a scheduled extract must read only what changed since the
last one, and must find where that was from the lake itself (bronze), not from a state file that
can drift from it. Each source carries its own change marker: `updated_at` in the database (the
classic query-based CDC: it sees inserts and updates, not deletes; log-based CDC such as Debezium
sees those) and `seq` in the API. Every bronze row records where it came from (`_source_file`:
the database table, or the URL of the API page) and when it arrived (`_ingested_at`).
"""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

from expert.lakehouse import MedallionLayout
from expert.lakehouse.delta_ops import delta_table
from expert.lakehouse.medallion import ensure_table
from expert.upstream.silver import BRONZE_PAYMENTS, BRONZE_PAYMENTS_SCHEMA, BRONZE_PRODUCTS, BRONZE_PRODUCTS_SCHEMA

if TYPE_CHECKING:
    import requests
    from pyspark.sql import SparkSession

PRODUCTS_SCHEMA = "product_id BIGINT, name STRING, category STRING, price DOUBLE, updated_at STRING"
PAYMENTS_SCHEMA = (
    "payment_id BIGINT, order_id BIGINT, method STRING, amount DOUBLE, status STRING, paid_ts STRING, "
    "_api_seq BIGINT, _source_file STRING"
)


def high_water(spark: SparkSession, location: str, column: str) -> Any:
    """The highest value of `column` already in bronze: where the next incremental pull starts.

    Timestamps come back as ISO-8601 UTC text formatted by Spark (the session runs in UTC), never
    through a Python datetime, which PySpark would shift into the machine's local time zone.
    """
    expr = f"date_format(max({column}), \"yyyy-MM-dd'T'HH:mm:ss'Z'\")" if column == "updated_at" else f"max({column})"
    row = spark.sql(f"SELECT {expr} AS hw FROM {delta_table(location)}").first()
    return None if row is None else row["hw"]


def extract_rows(path: Path, sql: str, since: str | None) -> list[tuple[Any, ...]]:
    """Run the extract `sql` (one `?`: the high-water mark; '' when None) read-only through the sqlite3 driver."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return conn.execute(sql, (since or "",)).fetchall()


def land_products(spark: SparkSession, layout: MedallionLayout, db: Path, sql: str) -> int:
    """Extract catalogue rows newer than bronze's high-water mark with `sql` and append them; returns rows read."""
    from pyspark.sql import functions as F

    location = layout.table(BRONZE_PRODUCTS)
    ensure_table(spark, location, BRONZE_PRODUCTS_SCHEMA, {})
    rows = extract_rows(db, sql, high_water(spark, location, "updated_at"))
    if rows:
        (
            spark.createDataFrame(rows, PRODUCTS_SCHEMA)
            .select(
                "product_id",
                "name",
                "category",
                "price",
                F.to_timestamp("updated_at").alias("updated_at"),
                F.lit(f"sqlite:{db.name}#products").alias("_source_file"),
                F.current_timestamp().alias("_ingested_at"),
            )
            .write.format("delta")
            .mode("append")
            .save(location)
        )
    return len(rows)


@dataclass(frozen=True)
class ApiPull:
    """What one incremental pull fetched: records (each tagged with the page URL it came from) and pages."""

    records: list[dict[str, Any]]
    page_sizes: list[int]


def fetch_payments(base_url: str, since: int, limit: int, session: requests.Session) -> ApiPull:
    """Every record with `seq > since`, page by page, following the server's `next` link until none.

    The client never builds a cursor: it follows `next`. A 503 is retried by the session's adapter
    (`payments_api.retrying_session`); any other error status raises, so no page is skipped silently.
    """
    url: str | None = f"{base_url}/v1/payments?since={since}&limit={limit}"
    records: list[dict[str, Any]] = []
    sizes: list[int] = []
    while url is not None:
        response = session.get(url, timeout=10)
        response.raise_for_status()
        body = response.json()
        records += [{**r, "_source_file": url} for r in body["data"]]
        sizes.append(len(body["data"]))
        url = urljoin(base_url, body["next"]) if body["next"] else None
    return ApiPull(records, sizes)


def land_payments(
    spark: SparkSession, layout: MedallionLayout, base_url: str, page_size: int, session: requests.Session
) -> ApiPull:
    """Pull payments newer than bronze's highest `seq` from the API and append them as they came."""
    from pyspark.sql import functions as F

    location = layout.table(BRONZE_PAYMENTS)
    ensure_table(spark, location, BRONZE_PAYMENTS_SCHEMA, {})
    pull = fetch_payments(base_url, int(high_water(spark, location, "_api_seq") or 0), page_size, session)
    if pull.records:
        columns = [c.split()[0] for c in PAYMENTS_SCHEMA.split(", ")]
        rows = [tuple({**r, "_api_seq": r["seq"]}[c] for c in columns) for r in pull.records]
        (
            spark.createDataFrame(rows, PAYMENTS_SCHEMA)
            .withColumn("paid_ts", F.to_timestamp("paid_ts"))
            .withColumn("_ingested_at", F.current_timestamp())
            .write.format("delta")
            .mode("append")
            .save(location)
        )
    return pull
