"""Lakehouse architecture: files, an operational database and an HTTP API into Delta gold, served from Snowflake.

Why it matters in production: the seed's "Modern Lakehouse" is not one pipeline but a contract
between systems. Data arrives from files, from the shop's operational database and from a
partner's paginated API; Databricks (Spark + Delta) conforms it into a gold star schema;
Snowflake serves it to BI (Pattern A) and holds a second copy of gold that must agree with the
lake (Pattern C). The failures teams meet are at the seams: an API page fetched twice, an
extract that re-reads the whole table, a warehouse copy that drifted after a "quick fix", a
backup that turns out to reference the very files that were lost. This pattern builds every
seam for real and proves each one against independent ground truth.

Learning objectives:
- Ingest three kinds of source into bronze Delta with metadata: landed files (the medallion
  pipeline of databricks/01), an operational SQLite database read incrementally through its
  driver, and a paginated JSON HTTP API (cursor + next link, retried on 503) served on loopback
- Conform in silver (expectations, quarantine, deduplication, MERGE) and build a gold star schema
- Publish gold to Snowflake through Arrow + write_pandas and serve it through BI views (Pattern A)
- Reconcile Delta gold with Snowflake gold by per-day checksums, detect a deliberate drift down to
  the row, repair it (Pattern C); render an offline BI dashboard from the Snowflake views
- Rerun every incremental step and prove it changes nothing
- Back up gold (a deep copy, not a shallow clone), lose it, restore it, measure recovery time

Run it:
    python expert/integration/01_lakehouse_architecture.py [--rows N] [--page-size N]
    expert run integration/01

Locally: PySpark + Delta Lake in-process, SQLite through Python's sqlite3 driver, an HTTP API on
127.0.0.1 (http.server in a thread, fetched with requests), fakesnow for Snowflake; everything
under .work/integration/01_lakehouse_architecture/. With SNOWFLAKE_* in .env the same
write_pandas calls, views and reconciliation run against your account; the Snowflake tables over
the lake (external volume + Delta catalog integration + Iceberg table) and the replication /
failover group are shown as DDL for an administrator, never applied by the script.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import itertools
import json
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urljoin, urlparse

from expert.lakehouse import (
    DIM_CUSTOMER,
    GOLD_DAILY_FUNNEL,
    GOLD_DAILY_SALES,
    QUARANTINE,
    SILVER_ORDERS,
    Action,
    Expectation,
    MedallionLayout,
    MedallionResult,
    SilverFlow,
    SilverTableResult,
    apply_expectations,
    land_raw,
    run_medallion,
    run_silver_flows,
    table_version,
)
from expert.lakehouse.delta_ops import history, is_delta_table
from expert.lakehouse.medallion import ensure_table, merge_rows, quarantine_rows
from expert.runtime.data import EPOCH, DirtReport, EcommerceWorld
from expert.runtime.pattern import PatternRun, run_pattern
from expert.runtime.snowflake_ddl import (
    AlterFailoverGroup,
    CatalogIntegration,
    ExternalVolume,
    FailoverGroup,
    FailoverGroupAction,
    FailoverGroupReplica,
    IcebergTable,
    LakeTableFormat,
    ReplicatedObject,
    StorageProvider,
)

if TYPE_CHECKING:
    import pandas as pd
    import requests
    from pyspark.sql import DataFrame, SparkSession

    from expert.runtime.snowflake import SnowflakeSession

BRONZE_PRODUCTS = "bronze_products"
BRONZE_PAYMENTS = "bronze_payments"
SILVER_PRODUCTS = "silver_products"
SILVER_PAYMENTS = "silver_payments"
GOLD_FACT_SALES = "gold_fact_sales"
GOLD_DIM_PRODUCT = "gold_dim_product"
GOLD_DIM_CUSTOMER = "gold_dim_customer"
GOLD_DAILY_CATEGORY = "gold_daily_category"
STAR_TABLES = (GOLD_DIM_PRODUCT, GOLD_DIM_CUSTOMER, GOLD_DAILY_CATEGORY, GOLD_FACT_SALES)
"""Built in this order: the fact is written last, and its commit records what the star was built from."""
GOLD_TABLES = (*STAR_TABLES, GOLD_DAILY_SALES, GOLD_DAILY_FUNNEL)
PUBLISHED = {
    "FACT_SALES": GOLD_FACT_SALES,
    "DIM_PRODUCT": GOLD_DIM_PRODUCT,
    "DIM_CUSTOMER": GOLD_DIM_CUSTOMER,
    "DAILY_CATEGORY": GOLD_DAILY_CATEGORY,
    "DAILY_SALES": GOLD_DAILY_SALES,
}
"""Snowflake table → Delta gold table it serves."""

SNOWFLAKE_DATABASE = "LAKEHOUSE"
SNOWFLAKE_SCHEMA = "GOLD"
UNPRICED_PRODUCTS = ((900_001, "Draft item", "home", 0.0), (900_002, "Unlisted item", None, 12.5))
"""Catalogue rows the operational system holds but silver must not publish (no price; no category)."""
REPRICED_PRODUCTS = 3
"""How many products the shop reprices between two extracts (what the incremental extract must find)."""
FLAKY_PAGE = 2
"""The API answers the first request for this page with 503 (the client must retry, not skip it)."""
DR_PARALLELISM = 3
"""Tables backed up / restored at once: small tables are bound by per-commit driver work, which overlaps."""
DRIFT_CENTS = 1_000
"""The deliberate drift: one order's amount raised by $10.00 in Snowflake only."""

PRODUCT_EXPECTATIONS = (
    Expectation("product_id_present", "product_id IS NOT NULL", Action.DROP),
    Expectation("has_price", "price > 0", Action.DROP),
    Expectation("has_category", "category IS NOT NULL", Action.DROP),
)
PAYMENT_EXPECTATIONS = (
    Expectation("payment_id_present", "payment_id IS NOT NULL", Action.DROP),
    Expectation("known_status", "status IN ('captured', 'failed')", Action.FAIL),
    Expectation("positive_amount", "amount > 0", Action.WARN),
)
PRODUCTS_SCHEMA = "product_id BIGINT, name STRING, category STRING, price DOUBLE, updated_at STRING"
PAYMENTS_SCHEMA = (
    "payment_id BIGINT, order_id BIGINT, method STRING, amount DOUBLE, status STRING, paid_ts STRING, "
    "_api_seq BIGINT, _source_file STRING"
)
BRONZE_PRODUCTS_SCHEMA = (
    "product_id BIGINT, name STRING, category STRING, price DOUBLE, updated_at TIMESTAMP, "
    "_source_file STRING, _ingested_at TIMESTAMP"
)
BRONZE_PAYMENTS_SCHEMA = (
    "payment_id BIGINT, order_id BIGINT, method STRING, amount DOUBLE, status STRING, paid_ts TIMESTAMP, "
    "_api_seq BIGINT, _source_file STRING, _ingested_at TIMESTAMP"
)
SILVER_PRODUCTS_SCHEMA = BRONZE_PRODUCTS_SCHEMA
SILVER_PAYMENTS_SCHEMA = BRONZE_PAYMENTS_SCHEMA

CHECKSUM_QUERY = """SELECT order_date AS day, count(*) AS row_count, sum(quantity) AS units,
       sum(CAST(amount * 100 AS BIGINT)) AS amount_cents, sum(order_id) AS key_sum
FROM {table} GROUP BY order_date"""
"""Per-day checksums of the fact table, in SQL both engines run unchanged (Spark SQL and Snowflake).

Integer cents and key sums are exact in both engines, so equal partitions give equal numbers."""
CHECKSUM_MEASURES = ("row_count", "units", "amount_cents", "key_sum")

BI_VIEWS = {
    "BI_DAILY_REVENUE": """SELECT ORDER_DATE, COUNT(*) AS ORDERS, SUM(AMOUNT) AS REVENUE,
       SUM(CASE WHEN PAYMENT_STATUS = 'captured' THEN AMOUNT ELSE 0 END) AS CAPTURED_REVENUE
FROM FACT_SALES GROUP BY ORDER_DATE""",
    "BI_REVENUE_BY_CATEGORY": """SELECT p.CATEGORY, COUNT(*) AS ORDERS, SUM(f.AMOUNT) AS REVENUE
FROM FACT_SALES f JOIN DIM_PRODUCT p ON p.PRODUCT_ID = f.PRODUCT_ID GROUP BY p.CATEGORY""",
    "BI_REVENUE_BY_SEGMENT": """SELECT c.SEGMENT, c.COUNTRY, COUNT(*) AS ORDERS, SUM(f.AMOUNT) AS REVENUE
FROM FACT_SALES f JOIN DIM_CUSTOMER c ON c.CUSTOMER_ID = f.CUSTOMER_ID GROUP BY c.SEGMENT, c.COUNTRY""",
    "BI_PAYMENT_MIX": """SELECT PAYMENT_METHOD, PAYMENT_STATUS, COUNT(*) AS ORDERS, SUM(AMOUNT) AS AMOUNT
FROM FACT_SALES GROUP BY PAYMENT_METHOD, PAYMENT_STATUS""",
}
"""What BI reads: views over the published star, so dashboards never depend on table layout."""

SPARK_SNOWFLAKE_CONNECTOR = """\
(spark.read.table("main.lakehouse.gold_fact_sales")
    .write.format("snowflake").options(**snowflake_options)   # sfUrl, sfUser, pem_private_key, sfWarehouse …
    .option("dbtable", "LAKEHOUSE.GOLD.FACT_SALES").mode("overwrite").save())"""


# ---------------------------------------------------------------------------------- source 2: SQLite


def _iso(ts: Any) -> str:
    """A timestamp as ISO-8601 UTC text: SQLite has no datetime type, and ISO text sorts correctly."""
    import pandas as pd

    return pd.Timestamp(ts).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_operational_db(path: Path, world: EcommerceWorld) -> int:
    """The shop's product catalogue as its operational system keeps it; returns the rows it holds.

    The generator's products plus `UNPRICED_PRODUCTS`: rows an operational database legitimately
    holds (drafts) that the analytical model must keep out.
    """
    rows = [
        (int(r.product_id), r.name, r.category, float(r.price), _iso(EPOCH))
        for r in world.products.itertuples(index=False)
    ]
    rows += [(*draft, _iso(EPOCH)) for draft in UNPRICED_PRODUCTS]
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(
            "CREATE TABLE products (product_id INTEGER PRIMARY KEY, name TEXT NOT NULL, category TEXT, "
            "price REAL NOT NULL, updated_at TEXT NOT NULL)"
        )
        conn.execute("CREATE INDEX products_updated_at ON products (updated_at)")
        conn.executemany("INSERT INTO products VALUES (?, ?, ?, ?, ?)", rows)
    return len(rows)


def extract_products(path: Path, since: str | None) -> list[tuple[Any, ...]]:
    """Rows changed after the high-water mark `since` (all rows when None), through the sqlite3 driver.

    Incremental extraction by an indexed `updated_at` column: the classic query-based CDC. It sees
    inserts and updates, not deletes (log-based CDC, e.g. Debezium, is what sees those).
    """
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return conn.execute(
            "SELECT product_id, name, category, price, updated_at FROM products "
            "WHERE updated_at > ? ORDER BY updated_at, product_id",
            (since or "",),
        ).fetchall()


def reprice_products(path: Path, count: int, at: str) -> list[int]:
    """The shop changes `count` prices (an ordinary operational write); returns the product ids."""
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        ids = [r[0] for r in conn.execute("SELECT product_id FROM products WHERE price > 0 ORDER BY product_id")]
        chosen = ids[:: max(1, len(ids) // count)][:count]
        conn.executemany(
            "UPDATE products SET price = round(price * 1.1, 2), updated_at = ? WHERE product_id = ?",
            [(at, pid) for pid in chosen],
        )
    return chosen


# ---------------------------------------------------------------------------------- source 3: HTTP API


def encode_cursor(after_seq: int, limit: int) -> str:
    """An opaque cursor: clients follow it, never build or parse it (so the server may change it)."""
    return base64.urlsafe_b64encode(json.dumps({"after": after_seq, "limit": limit}).encode()).decode()


def decode_cursor(cursor: str) -> tuple[int, int]:
    state = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    return int(state["after"]), int(state["limit"])


@dataclass
class PaymentsApi:
    """The payment provider's API: `GET /v1/payments?since=SEQ&limit=N`, then follow `next` links.

    Every record carries `seq`, the provider's change sequence number: a client that remembers the
    highest `seq` it stored asks only for what is newer. Served on 127.0.0.1 (ephemeral port) by
    http.server in a daemon thread. `flaky_page` is answered once with 503, as real APIs do.
    """

    records: list[dict[str, Any]]
    flaky_page: int | None = None
    max_limit: int = 1_000
    requests_served: int = 0
    failures_served: int = 0
    _failed_once: set[int] = field(default_factory=set)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "the API is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def page(self, query: Mapping[str, list[str]]) -> tuple[int, dict[str, Any]]:
        """One response (status, body) for a query string: the API's whole logic, testable without HTTP."""
        if "cursor" in query:
            after, limit = decode_cursor(query["cursor"][0])
        else:
            after, limit = int(query.get("since", ["0"])[0]), int(query.get("limit", ["100"])[0])
        if not 1 <= limit <= self.max_limit:
            return 400, {"error": f"limit must be within 1..{self.max_limit}"}
        page_number = after // limit
        if page_number == self.flaky_page and page_number not in self._failed_once:
            self._failed_once.add(page_number)
            return 503, {"error": "temporarily unavailable, retry"}
        data = [r for r in self.records if r["seq"] > after][:limit]
        more = bool(data) and data[-1]["seq"] < self.records[-1]["seq"]
        next_link = f"/v1/payments?cursor={encode_cursor(data[-1]['seq'], limit)}" if more else None
        return 200, {"data": data, "next": next_link}

    def __enter__(self) -> PaymentsApi:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parsed = urlparse(self.path)
                status, body = (
                    api.page(parse_qs(parsed.query)) if parsed.path == "/v1/payments" else (404, {"error": "not found"})
                )
                api.requests_served += 1
                api.failures_served += status >= 500
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the pattern narrates what matters."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, name="payments-api", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def payment_records(world: EcommerceWorld) -> tuple[list[dict[str, Any]], DirtReport]:
    """The payments feed as the provider delivers it (redeliveries, null ids, late rows), with `seq`."""
    import pandas as pd

    delivered, report = world.deliver("payments", "payment_id", "paid_ts")
    records = [
        {
            "seq": seq,
            "payment_id": None if pd.isna(r.payment_id) else int(r.payment_id),
            "order_id": int(r.order_id),
            "method": r.method,
            "amount": float(r.amount),
            "status": r.status,
            "paid_ts": _iso(r.paid_ts),
        }
        for seq, r in enumerate(delivered.itertuples(index=False), start=1)
    ]
    return records, report


def api_session(retries: int = 3) -> requests.Session:
    """A requests session that retries 429/5xx with backoff: a transient error must not lose a page."""
    import requests
    from requests.adapters import HTTPAdapter, Retry

    session = requests.Session()
    retry = Retry(total=retries, backoff_factor=0.05, status_forcelist=(429, 502, 503, 504), allowed_methods=("GET",))
    session.mount("http://", HTTPAdapter(max_retries=retry))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    return session


@dataclass(frozen=True)
class ApiPull:
    """What one incremental pull fetched: records (each tagged with the page URL it came from) and pages."""

    records: list[dict[str, Any]]
    page_sizes: list[int]


def fetch_payments(base_url: str, since: int, limit: int, session: requests.Session) -> ApiPull:
    """Every record with `seq > since`, page by page, following the server's `next` link until none."""
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


# ---------------------------------------------------------------------------------- bronze + silver


def _high_water(spark: SparkSession, location: str, column: str) -> Any:
    """The highest value of `column` already in bronze: where the next incremental pull starts.

    Timestamps come back as ISO-8601 UTC text formatted by Spark (the session runs in UTC), never
    through a Python datetime, which PySpark would shift into the machine's local time zone.
    """
    expr = f"date_format(max({column}), \"yyyy-MM-dd'T'HH:mm:ss'Z'\")" if column == "updated_at" else f"max({column})"
    row = spark.sql(f"SELECT {expr} AS hw FROM delta.`{location}`").first()
    return None if row is None else row["hw"]


def land_products(spark: SparkSession, layout: MedallionLayout, db: Path) -> int:
    """Extract catalogue rows newer than bronze's high-water mark and append them; returns rows read."""
    from pyspark.sql import functions as F

    location = layout.table(BRONZE_PRODUCTS)
    ensure_table(spark, location, BRONZE_PRODUCTS_SCHEMA, {})
    rows = extract_products(db, _high_water(spark, location, "updated_at"))
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


def land_payments(
    spark: SparkSession, layout: MedallionLayout, api: PaymentsApi, page_size: int, session: requests.Session
) -> ApiPull:
    """Pull payments newer than bronze's highest `seq` from the API and append them as they came."""
    from pyspark.sql import functions as F

    location = layout.table(BRONZE_PAYMENTS)
    ensure_table(spark, location, BRONZE_PAYMENTS_SCHEMA, {})
    pull = fetch_payments(api.url, int(_high_water(spark, location, "_api_seq") or 0), page_size, session)
    if pull.records:
        columns = [c.split()[0] for c in PAYMENTS_SCHEMA.split(", ")]
        renamed = [{**r, "_api_seq": r["seq"]} for r in pull.records]
        (
            spark.createDataFrame([tuple(r[c] for c in columns) for r in renamed], PAYMENTS_SCHEMA)
            .withColumn("paid_ts", F.to_timestamp("paid_ts"))
            .withColumn("_ingested_at", F.current_timestamp())
            .write.format("delta")
            .mode("append")
            .save(location)
        )
    return pull


def _products_batch(
    spark: SparkSession, layout: MedallionLayout, expectations: Sequence[Expectation], batch: DataFrame, batch_id: int
) -> SilverTableResult:
    """SCD type 1 product dimension: the newest version of each product wins; older replays change nothing."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    split = apply_expectations(batch, SILVER_PRODUCTS, expectations)
    if split.counts.dropped:
        quarantine_rows(split.quarantined, layout, SILVER_PRODUCTS, batch_id)
    newest = Window.partitionBy("product_id").orderBy(F.desc("updated_at"))
    latest = split.valid.withColumn("_rank", F.row_number().over(newest)).where("_rank = 1").drop("_rank")
    metrics = merge_rows(
        spark,
        layout.table(SILVER_PRODUCTS),
        latest,
        "t.product_id = s.product_id",
        update_when="s.updated_at > t.updated_at",
    )
    changed = metrics["num_inserted_rows"] + metrics["num_updated_rows"]
    return SilverTableResult(
        SILVER_PRODUCTS,
        quality=split.counts,
        inserted=metrics["num_inserted_rows"],
        updated=metrics["num_updated_rows"],
        duplicates=split.counts.rows_in - split.counts.dropped - changed,
        batches=1,
    )


def _payments_batch(
    spark: SparkSession, layout: MedallionLayout, expectations: Sequence[Expectation], batch: DataFrame, batch_id: int
) -> SilverTableResult:
    """Payments are immutable facts: the first delivery of each id is kept, redeliveries are counted."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    split = apply_expectations(batch, SILVER_PAYMENTS, expectations)
    if split.counts.dropped:
        quarantine_rows(split.quarantined, layout, SILVER_PAYMENTS, batch_id)
    first = Window.partitionBy("payment_id").orderBy("_api_seq")
    unique = split.valid.withColumn("_rank", F.row_number().over(first)).where("_rank = 1").drop("_rank")
    metrics = merge_rows(spark, layout.table(SILVER_PAYMENTS), unique, "t.payment_id = s.payment_id")
    return SilverTableResult(
        SILVER_PAYMENTS,
        quality=split.counts,
        inserted=metrics["num_inserted_rows"],
        duplicates=split.counts.rows_in - split.counts.dropped - metrics["num_inserted_rows"],
        batches=1,
    )


def run_silver_sources(spark: SparkSession, layout: MedallionLayout) -> dict[str, SilverTableResult]:
    """Bring silver_products and silver_payments up to date with bronze: availableNow + foreachBatch.

    The same machinery as the medallion's silver flows (checkpointed, incremental, quarantine shared,
    outcome of each micro-batch logged to the `_silver_batches` table).
    """
    ensure_table(spark, layout.table(SILVER_PRODUCTS), SILVER_PRODUCTS_SCHEMA, {})
    ensure_table(spark, layout.table(SILVER_PAYMENTS), SILVER_PAYMENTS_SCHEMA, {})
    flows = {
        SILVER_PRODUCTS: SilverFlow(BRONZE_PRODUCTS, _products_batch, PRODUCT_EXPECTATIONS),
        SILVER_PAYMENTS: SilverFlow(BRONZE_PAYMENTS, _payments_batch, PAYMENT_EXPECTATIONS),
    }
    return run_silver_flows(spark, layout, flows).tables


# ---------------------------------------------------------------------------------- gold star schema


def star_sources(spark: SparkSession, layout: MedallionLayout) -> dict[str, int]:
    """The silver versions the star is built from (its lineage, recorded in the fact's commit)."""
    tables = (SILVER_ORDERS, DIM_CUSTOMER, SILVER_PRODUCTS, SILVER_PAYMENTS)
    return {t: table_version(spark, layout.table(t)) for t in tables}


def star_queries(layout: MedallionLayout) -> dict[str, str]:
    """The gold star: a sales fact at order grain, two conformed dimensions without PII, one aggregate."""
    fact = f"""WITH pay AS (
                SELECT order_id, method, status,
                       row_number() OVER (PARTITION BY order_id ORDER BY paid_ts DESC, payment_id DESC) AS rn
                FROM {layout.sql(SILVER_PAYMENTS)})
            SELECT o.order_id, o.order_date, o.customer_id, o.product_id, o.quantity,
                   CAST(o.amount AS DECIMAL(18, 2)) AS amount, o.status AS order_status,
                   coalesce(p.method, 'none') AS payment_method, coalesce(p.status, 'missing') AS payment_status
            FROM {layout.sql(SILVER_ORDERS)} o LEFT JOIN pay p ON p.order_id = o.order_id AND p.rn = 1"""
    return {
        GOLD_DIM_PRODUCT: f"""SELECT product_id, name, category, CAST(price AS DECIMAL(18, 2)) AS list_price
            FROM {layout.sql(SILVER_PRODUCTS)}""",
        GOLD_DIM_CUSTOMER: f"""SELECT customer_id, country, city, segment
            FROM {layout.sql(DIM_CUSTOMER)} WHERE is_current""",
        GOLD_DAILY_CATEGORY: f"""SELECT f.order_date, d.category, count(*) AS orders,
                   CAST(sum(f.quantity) AS BIGINT) AS units, sum(f.amount) AS revenue,
                   sum(CASE WHEN f.payment_status = 'captured' THEN f.amount ELSE 0 END) AS captured_revenue
            FROM ({fact}) f JOIN {layout.sql(SILVER_PRODUCTS)} d ON d.product_id = f.product_id
            GROUP BY f.order_date, d.category""",
        GOLD_FACT_SALES: fact,
    }


def build_star(spark: SparkSession, layout: MedallionLayout) -> bool:
    """Rebuild the star when a silver source changed since the last build; returns whether it rebuilt.

    Each table is replaced in one overwrite commit (never appended), so a rebuild is idempotent;
    the fact is written last with the silver versions in its commit's `userMetadata`, so an
    unchanged lineage means there is nothing to do and nothing is committed.
    """
    lineage = json.dumps(star_sources(spark, layout), sort_keys=True)
    fact = layout.table(GOLD_FACT_SALES)
    if is_delta_table(spark, fact) and history(spark, fact, 1)[0]["userMetadata"] == lineage:
        return False
    queries = star_queries(layout)

    def write(table: str, metadata: str | None = None) -> None:
        writer = spark.sql(queries[table]).write.format("delta").mode("overwrite").option("overwriteSchema", "true")
        if metadata is not None:
            writer = writer.option("userMetadata", metadata)
        writer.save(layout.table(table))

    with ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(write, [t for t in STAR_TABLES if t != GOLD_FACT_SALES]))
    write(GOLD_FACT_SALES, lineage)
    return True


# ---------------------------------------------------------------------------------- Pattern A: publish


SNOWFLAKE_TYPES = {
    "long": "NUMBER(19, 0)",
    "integer": "NUMBER(10, 0)",
    "double": "FLOAT",
    "string": "VARCHAR",
    "date": "DATE",
    "timestamp": "TIMESTAMP_NTZ",
    "boolean": "BOOLEAN",
}


def snowflake_ddl(name: str, schema: Any) -> str:
    """`CREATE TABLE IF NOT EXISTS` with types mapped from the Delta schema: the published contract.

    Explicit types, not inferred from pandas: an inferred table turns dates and decimals into text.
    """
    columns = []
    for f in schema.fields:
        kind = f.dataType.typeName()
        sf_type = f"NUMBER({f.dataType.precision}, {f.dataType.scale})" if kind == "decimal" else SNOWFLAKE_TYPES[kind]
        columns.append(f"{f.name.upper()} {sf_type}")
    return f"CREATE TABLE IF NOT EXISTS {name} ({', '.join(columns)})"


def delta_frame(spark: SparkSession, location: str, where: str = "") -> pd.DataFrame:
    """A Delta table (or a slice of it) as pandas through Arrow: `toArrow()` ships Arrow batches, no row objects."""
    df = spark.read.format("delta").load(location)
    if where:
        df = df.where(where)
    frame = df.toArrow().to_pandas()
    frame.columns = [c.upper() for c in frame.columns]
    return frame


def publish_gold(spark: SparkSession, session: SnowflakeSession, layout: MedallionLayout) -> dict[str, int]:
    """Pattern A: every published gold table replaced in Snowflake through write_pandas; rows loaded each.

    `overwrite=True` on an existing table makes the connector TRUNCATE, then COPY: readers can see
    an empty table for a moment. Where that matters, load a staging table and `ALTER TABLE … SWAP WITH`.
    """
    loaded = {}
    for name, table in PUBLISHED.items():
        location = layout.table(table)
        session.execute(snowflake_ddl(name, spark.read.format("delta").load(location).schema))
        loaded[name] = session.write_pandas(delta_frame(spark, location), name, overwrite=True, auto_create_table=False)
    return loaded


def create_bi_views(session: SnowflakeSession) -> None:
    for name, query in BI_VIEWS.items():
        session.execute(f"CREATE OR REPLACE VIEW {name} AS {query}")


# ---------------------------------------------------------------------------------- Pattern C: reconcile


Checksums = dict[str, dict[str, int]]
"""Day (ISO date) → measure → value."""


def _normalise(rows: Sequence[Mapping[str, Any]]) -> Checksums:
    out: Checksums = {}
    for row in rows:
        lower = {k.lower(): v for k, v in row.items()}
        out[str(lower["day"])] = {m: int(lower[m]) for m in CHECKSUM_MEASURES}
    return out


def lake_checksums(spark: SparkSession, location: str) -> Checksums:
    """Per-day checksums of the Delta fact, computed by Spark."""
    rows = spark.sql(CHECKSUM_QUERY.format(table=f"delta.`{location}`")).collect()
    return _normalise([r.asDict() for r in rows])


def warehouse_checksums(session: SnowflakeSession, table: str = "FACT_SALES") -> Checksums:
    """The same checksums computed inside Snowflake (only the small per-day result travels)."""
    return _normalise(session.fetch(CHECKSUM_QUERY.format(table=table)))


@dataclass(frozen=True)
class Mismatch:
    day: str
    measure: str
    lake: int
    warehouse: int


def compare_checksums(lake: Checksums, warehouse: Checksums) -> list[Mismatch]:
    """Every (day, measure) where the two copies disagree; a day missing on one side counts as zeros."""
    zero = dict.fromkeys(CHECKSUM_MEASURES, 0)
    mismatches = []
    for day in sorted(set(lake) | set(warehouse)):
        left, right = lake.get(day, zero), warehouse.get(day, zero)
        mismatches += [Mismatch(day, m, left[m], right[m]) for m in CHECKSUM_MEASURES if left[m] != right[m]]
    return mismatches


def differing_orders(spark: SparkSession, session: SnowflakeSession, location: str, day: str) -> list[int]:
    """Drill down into one mismatched day: the order ids whose rows differ between the two copies."""
    columns = ("ORDER_ID", "QUANTITY", "AMOUNT", "PAYMENT_STATUS")
    lake = delta_frame(spark, location, f"order_date = DATE'{day}'")[list(columns)]
    warehouse = session.fetch_df(f"SELECT {', '.join(columns)} FROM FACT_SALES WHERE ORDER_DATE = %s", (day,))

    def keyed(frame: pd.DataFrame) -> set[tuple[int, int, str, str]]:
        return {
            (int(r.ORDER_ID), int(r.QUANTITY), f"{float(r.AMOUNT):.2f}", str(r.PAYMENT_STATUS))
            for r in frame.itertuples(index=False)
        }

    return sorted({row[0] for row in keyed(lake) ^ keyed(warehouse)})


def repair_day(spark: SparkSession, session: SnowflakeSession, location: str, day: str) -> int:
    """Replace one day of FACT_SALES in Snowflake with the lake's rows (the lake is the system of record)."""
    session.execute("DELETE FROM FACT_SALES WHERE ORDER_DATE = %s", (day,))
    frame = delta_frame(spark, location, f"order_date = DATE'{day}'")
    return session.write_pandas(frame, "FACT_SALES", auto_create_table=False)


# ---------------------------------------------------------------------------------- BI dashboard


ERROR_PROBE = (
    "<script>document.documentElement.dataset.jsErrors='0';"
    "window.addEventListener('error',function(){var d=document.documentElement.dataset;"
    "d.jsErrors=String(Number(d.jsErrors)+1);});</script>"
)
"""Counts script errors into `<html data-js-errors>`: a render-health marker a headless browser can read."""


def dashboard_figures(session: SnowflakeSession) -> list[Any]:
    """One chart per BI view, from the Snowflake views (what a BI tool would query)."""
    import plotly.graph_objects as go

    daily = session.fetch_df("SELECT * FROM BI_DAILY_REVENUE ORDER BY ORDER_DATE")
    category = session.fetch_df("SELECT * FROM BI_REVENUE_BY_CATEGORY ORDER BY REVENUE DESC")
    segment = session.fetch_df(
        "SELECT SEGMENT, SUM(REVENUE) AS REVENUE FROM BI_REVENUE_BY_SEGMENT GROUP BY SEGMENT ORDER BY REVENUE DESC"
    )
    payments = session.fetch_df(
        "SELECT PAYMENT_METHOD, SUM(ORDERS) AS ORDERS FROM BI_PAYMENT_MIX GROUP BY PAYMENT_METHOD ORDER BY ORDERS DESC"
    )
    revenue = go.Figure(
        [
            go.Scatter(x=daily["ORDER_DATE"], y=daily["REVENUE"].astype(float), name="revenue"),
            go.Scatter(x=daily["ORDER_DATE"], y=daily["CAPTURED_REVENUE"].astype(float), name="captured"),
        ]
    )
    revenue.update_layout(title="Revenue per day (BI_DAILY_REVENUE)")
    by_category = go.Figure(go.Bar(x=category["CATEGORY"], y=category["REVENUE"].astype(float)))
    by_category.update_layout(title="Revenue by category (BI_REVENUE_BY_CATEGORY)")
    by_segment = go.Figure(go.Bar(x=segment["SEGMENT"], y=segment["REVENUE"].astype(float)))
    by_segment.update_layout(title="Revenue by customer segment (BI_REVENUE_BY_SEGMENT)")
    mix = go.Figure(go.Pie(labels=payments["PAYMENT_METHOD"], values=payments["ORDERS"].astype(int)))
    mix.update_layout(title="Orders by payment method (BI_PAYMENT_MIX)")
    return [revenue, by_category, by_segment, mix]


def write_dashboard(path: Path, figures: Sequence[Any], subtitle: str) -> int:
    """One offline HTML file: plotly.js inlined once, one div per chart. Returns its size in bytes."""
    charts = "\n".join(
        fig.to_html(full_html=False, include_plotlyjs=(i == 0), div_id=f"chart-{i}") for i, fig in enumerate(figures)
    )
    html = (
        "<!doctype html>\n<html><head><meta charset='utf-8'><title>Lakehouse sales dashboard</title>"
        f"{ERROR_PROBE}</head>\n<body><h1>Lakehouse sales dashboard</h1><p>{subtitle}</p>\n{charts}\n</body></html>\n"
    )
    path.write_text(html, encoding="utf-8")
    return path.stat().st_size


# ---------------------------------------------------------------------------------- disaster recovery


def fingerprints(spark: SparkSession, locations: Mapping[str, str]) -> dict[str, tuple[int, int]]:
    """(rows, order-independent content hash) per table: the sum of a 64-bit hash of every full row.

    Summed as DECIMAL(38, 0), so it is exact; all tables in one query (one Spark job).
    """
    parts = [
        f"SELECT '{name}' AS t, count(*) AS n, coalesce(sum(CAST(xxhash64(*) AS DECIMAL(38, 0))), 0) AS h "
        f"FROM delta.`{location}`"
        for name, location in locations.items()
    ]
    return {r["t"]: (int(r["n"]), int(r["h"])) for r in spark.sql(" UNION ALL ".join(parts)).collect()}


def deep_clone_sql(source: str, target: str) -> str:
    return f"CREATE OR REPLACE TABLE delta.`{target}` DEEP CLONE delta.`{source}`"


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
    """A self-contained copy of `source`'s current version at `target`; returns the version copied.

    With DEEP CLONE the engine copies the data files and records the clone in the target's history.
    Otherwise (open-source Delta) the documented equivalent: read the version and write it as a new
    table, with the source and version in the commit's `userMetadata`. Either way the copy owns
    its files, which is what makes it a backup (a SHALLOW CLONE points at the source's files).
    """
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
    """Whether a table's data files can still be read (sum over a column: count(*) may come from the log)."""
    try:
        spark.read.format("delta").load(location).agg({column: "sum"}).collect()
    except Exception:
        return False
    return True


# ---------------------------------------------------------------------------------- steps


@dataclass
class Sources:
    """Everything upstream of bronze, with its ground truth."""

    db: Path
    api: PaymentsApi
    http: requests.Session
    file_truth: dict[str, DirtReport]
    catalogue_rows: int
    payment_truth: DirtReport
    page_size: int


def land_files(run: PatternRun, layout: MedallionLayout, world: EcommerceWorld) -> dict[str, DirtReport]:
    """Source 1: raw files (clickstream JSON, orders CSV, customer snapshots), as databricks/01 lands them."""
    truth = land_raw(world, layout, batches=2)
    files = sorted(p for p in layout.landing.rglob("*") if p.is_file())
    run.say(f"files: {len(files)} landed ({', '.join(sorted({p.parent.name for p in files}))})")
    return truth


def show_files(run: PatternRun, result: MedallionResult, truth: dict[str, DirtReport]) -> None:
    """The files went through the medallion pipeline of databricks/01, unchanged: bronze, silver, gold."""
    run.table(
        [{"source": s, "rows into bronze": n} for s, n in result.bronze.rows.items()],
        title="files → bronze (expert.lakehouse.run_medallion: availableNow streams)",
    )
    orders = result.silver.tables[SILVER_ORDERS]
    expected = truth["orders"].clean_rows - truth["orders"].null_keys
    silver_orders = orders.inserted
    run.check(
        "files: silver_orders holds every clean order exactly once",
        silver_orders == expected,
        f"{silver_orders} orders = {truth['orders'].clean_rows} generated − {truth['orders'].null_keys} null keys",
    )
    run.figure(
        "medallion pipeline (files)",
        result.seconds,
        "s",
        how="run_medallion wall time: bronze + silver + gold for the three file sources",
    )


def ingest_database(run: PatternRun, layout: MedallionLayout, sources: Sources) -> None:
    """Source 2: the operational catalogue, extracted incrementally through the sqlite3 driver."""
    extracted = land_products(run.spark, layout, sources.db)
    run.check(
        "database: the first extract reads every catalogue row",
        extracted == sources.catalogue_rows,
        f"{extracted} rows read = {sources.catalogue_rows} in {sources.db.name}",
    )


def ingest_api(run: PatternRun, layout: MedallionLayout, sources: Sources) -> None:
    """Source 3: the payments API, page by page (cursor + next link), one 503 retried."""
    started = time.perf_counter()
    pull = land_payments(run.spark, layout, sources.api, sources.page_size, sources.http)
    pages = len(pull.page_sizes)
    expected_pages = -(-len(sources.api.records) // sources.page_size)
    run.table(
        [
            {
                "pages": pages,
                "records": len(pull.records),
                "page size": sources.page_size,
                "HTTP requests": sources.api.requests_served,
                "503s retried": sources.api.failures_served,
            }
        ],
        title=f"API → bronze_payments ({sources.api.url}/v1/payments)",
    )
    seqs = [r["seq"] for r in pull.records]
    in_bronze = run.spark.read.format("delta").load(layout.table(BRONZE_PAYMENTS)).count()
    delivered = sources.payment_truth.delivered_rows
    run.check(
        "API: every record fetched exactly once across pages, despite a 503",
        seqs == list(range(1, delivered + 1))
        and in_bronze == delivered
        and pages == expected_pages
        and sources.api.failures_served == 1,
        f"{in_bronze} rows in bronze = {delivered} delivered by the provider (seq 1..{delivered} in order), "
        f"{pages} pages, {sources.api.failures_served} 503 retried",
    )
    run.figure("API pull", time.perf_counter() - started, "s", how="all pages fetched + bronze append")


def show_bronze_metadata(run: PatternRun, layout: MedallionLayout) -> None:
    """Every bronze row says where it came from and when it arrived."""
    rows = run.spark.sql(
        f"""SELECT 'bronze_products' AS table, regexp_extract(_source_file, '^[a-z]+', 0) AS source_kind,
                   count(*) AS rows, count(DISTINCT _source_file) AS distinct_sources, min(_ingested_at) AS ingested_at
            FROM {layout.sql(BRONZE_PRODUCTS)} GROUP BY 1, 2
            UNION ALL
            SELECT 'bronze_payments', regexp_extract(_source_file, '^[a-z]+', 0), count(*),
                   count(DISTINCT _source_file), min(_ingested_at)
            FROM {layout.sql(BRONZE_PAYMENTS)} GROUP BY 1, 2"""
    ).toPandas()
    run.table(rows, title="bronze metadata: _source_file (DB table or API page URL), _ingested_at")


def conform_silver(run: PatternRun, layout: MedallionLayout, sources: Sources) -> None:
    """Silver for the two new sources: expectations + quarantine, deduplication, MERGE; checked against truth."""
    outcomes = run_silver_sources(run.spark, layout)
    products, payments = outcomes[SILVER_PRODUCTS], outcomes[SILVER_PAYMENTS]
    truth = sources.payment_truth
    rows = []
    for table, out in outcomes.items():
        for rule, count in out.quality.violations.items():
            rows.append({"table": table, "expectation": rule, "action": out.quality.actions[rule].value, "rows": count})
    run.table(rows, title="silver expectations for the database and API sources")
    generated = sources.catalogue_rows - len(UNPRICED_PRODUCTS)
    run.check(
        "database: silver_products = catalogue − unpriced/uncategorised rows (quarantined)",
        (products.inserted, products.quality.dropped) == (generated, len(UNPRICED_PRODUCTS)),
        f"{products.inserted} products + {products.quality.dropped} quarantined = {sources.catalogue_rows} rows",
    )
    expected = (truth.clean_rows - truth.null_keys, truth.null_keys, truth.duplicates)
    got = (payments.inserted, payments.quality.dropped, payments.duplicates)
    run.check(
        "API: silver_payments, quarantine and redeliveries match the generator's ground truth",
        got == expected,
        f"got {got[0]}/{got[1]}/{got[2]}, generator says {expected[0]}/{expected[1]}/{expected[2]} "
        "(payments / null ids / redelivered)",
    )
    by_rule = run.spark.sql(
        f"""SELECT source_table, failed_rule, count(*) AS rows FROM {layout.sql(QUARANTINE)}
            WHERE source_table IN ('{SILVER_PRODUCTS}', '{SILVER_PAYMENTS}') GROUP BY 1, 2 ORDER BY 1, 2"""
    ).toPandas()
    run.table(by_rule, title="quarantine (shared with the file sources) for the new sources")
    run.check(
        "quarantine holds exactly the rows silver dropped",
        int(by_rule["rows"].sum()) == products.quality.dropped + payments.quality.dropped,
        f"{int(by_rule['rows'].sum())} rows in silver_quarantine",
    )


def build_gold(run: PatternRun, layout: MedallionLayout) -> None:
    """The star schema; verified for grain, referential integrity and against the medallion's own gold."""
    spark = run.spark
    build_star(spark, layout)
    counts = {t: spark.read.format("delta").load(layout.table(t)).count() for t in STAR_TABLES}
    run.table([{"gold table": t, "rows": n} for t, n in counts.items()], title="gold star schema on Delta")
    check = spark.sql(
        f"""SELECT count(*) AS facts, count(DISTINCT f.order_id) AS orders,
                   count_if(p.product_id IS NULL) AS orphan_products, count_if(c.customer_id IS NULL) AS orphan_customers,
                   sum(f.amount) AS revenue, count_if(f.payment_status = 'missing') AS unpaid
            FROM {layout.sql(GOLD_FACT_SALES)} f
            LEFT JOIN {layout.sql(GOLD_DIM_PRODUCT)} p ON p.product_id = f.product_id
            LEFT JOIN {layout.sql(GOLD_DIM_CUSTOMER)} c ON c.customer_id = f.customer_id"""
    ).first()
    assert check is not None
    silver_orders = spark.read.format("delta").load(layout.table(SILVER_ORDERS)).count()
    run.check(
        "fact grain: one row per silver order (the payment join fans out nothing)",
        check["facts"] == check["orders"] == silver_orders,
        f"{check['facts']} facts, {check['orders']} distinct orders, {silver_orders} silver orders",
    )
    run.check(
        "referential integrity: every fact has its product and customer dimension row",
        check["orphan_products"] == 0 and check["orphan_customers"] == 0,
        f"{check['orphan_products']} orphan products, {check['orphan_customers']} orphan customers",
    )
    medallion_revenue = spark.sql(f"SELECT sum(revenue) AS r FROM {layout.sql(GOLD_DAILY_SALES)}").first()
    assert medallion_revenue is not None
    run.check(
        "star revenue = the medallion's gold_daily_sales revenue (two gold paths agree)",
        check["revenue"] == medallion_revenue["r"],
        f"{check['revenue']:,} = {medallion_revenue['r']:,}",
    )
    run.check(
        "dimensions carry no PII (names, emails, phones stay in silver)",
        not {"first_name", "last_name", "email", "phone", "birth_date"}
        & set(spark.read.format("delta").load(layout.table(GOLD_DIM_CUSTOMER)).columns),
        "gold_dim_customer: customer_id, country, city, segment",
    )
    run.say(
        f"{check['unpaid']} orders have no payment yet (payment_status 'missing'): their payments arrived without an id and are in quarantine."
    )
    run.figure("gold revenue", float(check["revenue"]), "", how="sum of gold_fact_sales.amount", key=True)


def publish_and_serve(run: PatternRun, layout: MedallionLayout, session: SnowflakeSession) -> None:
    """Pattern A: Delta gold → Arrow → write_pandas into Snowflake, then BI views over it."""
    spark = run.spark
    started = time.perf_counter()
    loaded = publish_gold(spark, session, layout)
    seconds = time.perf_counter() - started
    create_bi_views(session)
    rows = []
    for name, table in PUBLISHED.items():
        in_lake = spark.read.format("delta").load(layout.table(table)).count()
        in_warehouse = int(session.scalar(f"SELECT COUNT(*) FROM {name}"))
        rows.append(
            {"Snowflake table": name, "Delta gold": table, "lake rows": in_lake, "Snowflake rows": in_warehouse}
        )
    run.table(rows, title=f"published to {session.database}.{session.schema} (Arrow → write_pandas)")
    run.check(
        "every published table has the lake's row count in Snowflake",
        all(r["lake rows"] == r["Snowflake rows"] == loaded[r["Snowflake table"]] for r in rows),
        ", ".join(f"{r['Snowflake table']}={r['Snowflake rows']}" for r in rows),
    )
    total = sum(loaded.values())
    run.figure("publish to Snowflake", seconds, "s", how=f"{total} rows, {len(loaded)} tables: toArrow + write_pandas")
    fact_revenue = session.scalar("SELECT SUM(AMOUNT) FROM FACT_SALES")
    totals = {
        view: session.scalar(f"SELECT SUM({'AMOUNT' if view == 'BI_PAYMENT_MIX' else 'REVENUE'}) FROM {view}")
        for view in BI_VIEWS
    }
    run.table([{"BI view": v, "total revenue": t} for v, t in totals.items()], title="BI views in Snowflake")
    run.check(
        "every BI view adds up to the fact's revenue (no join loses or duplicates an order)",
        all(abs(float(t) - float(fact_revenue)) < 0.005 for t in totals.values()),
        f"each = {float(fact_revenue):,.2f}",
    )
    if not run.settings.databricks.is_cloud:
        run.cloud_only_step(
            "databricks",
            f"Pattern A from a Databricks job, with the Spark-Snowflake connector:\n{SPARK_SNOWFLAKE_CONNECTOR}",
            "the connector runs on a Databricks cluster against a Snowflake account; locally write_pandas did the same load",
        )


def lake_tables_in_snowflake(run: PatternRun, session: SnowflakeSession, layout: MedallionLayout) -> None:
    """Cloud: Snowflake reads the Delta gold in place (external volume + Delta catalog integration + Iceberg table)."""
    why = "needs the lake on object storage and an IAM role an administrator provisions; review, then run it"
    volume = ExternalVolume(
        name="LAKEHOUSE_GOLD_VOLUME",
        location_name="lakehouse-gold",
        provider=StorageProvider.S3,
        base_url="s3://your-lakehouse-bucket/integration/01_lakehouse_architecture/lake/tables/",
        aws_role_arn="arn:aws:iam::123456789012:role/snowflake-lakehouse-reader",
    )
    session.recommend(volume, "where the Delta gold files live (read-only role)", why)
    catalog = CatalogIntegration(name="DELTA_GOLD_CATALOG", table_format=LakeTableFormat.DELTA)
    session.recommend(catalog, "read table metadata from the Delta log itself (no external catalog)", why)
    for name, table in (("FACT_SALES_LAKE", GOLD_FACT_SALES), ("DAILY_SALES_LAKE", GOLD_DAILY_SALES)):
        session.recommend(
            IcebergTable(
                name=name,
                external_volume=volume.name,
                catalog=catalog.name,
                base_location=Path(layout.table(table)).name,
            ),
            f"Snowflake queries {table} in place: no copy, refreshed from the Delta log",
            why,
        )
    run.note(
        "Pattern A copies gold into Snowflake storage (fast BI, a second copy to reconcile); the Iceberg/Delta "
        "table reads the lake in place (one copy, lake-speed). Both are shown: the copy runs, the in-place read is DDL."
    )


def reconcile(run: PatternRun, layout: MedallionLayout, session: SnowflakeSession) -> None:
    """Pattern C: gold lives in both systems; per-day checksums prove they agree, and catch a drift."""
    spark = run.spark
    location = layout.table(GOLD_FACT_SALES)
    started = time.perf_counter()
    lake, warehouse = lake_checksums(spark, location), warehouse_checksums(session)
    clean = compare_checksums(lake, warehouse)
    run.figure("reconciliation", time.perf_counter() - started, "s", how="per-day checksums in both engines")
    run.check(
        "Delta gold and Snowflake gold agree on every day (rows, units, cents, key sum)",
        not clean and len(lake) == len(warehouse) > 0,
        f"{len(lake)} days × {len(CHECKSUM_MEASURES)} measures compared, {len(clean)} mismatches",
    )
    run.figure("days reconciled", len(lake), "days", how="per-day checksum partitions compared", key=True)
    victim = int(session.scalar("SELECT MAX(ORDER_ID) FROM FACT_SALES"))
    session.execute(f"UPDATE FACT_SALES SET AMOUNT = AMOUNT + {DRIFT_CENTS / 100:.2f} WHERE ORDER_ID = %s", (victim,))
    victim_day = str(session.scalar("SELECT ORDER_DATE FROM FACT_SALES WHERE ORDER_ID = %s", (victim,)))
    drift = compare_checksums(lake, warehouse_checksums(session))
    run.table([vars(m) for m in drift], title=f"after a 'quick fix' in Snowflake: order {victim} amount +$10")
    found = differing_orders(spark, session, location, drift[0].day) if drift else []
    run.check(
        "reconciliation detects exactly the drift: one day, one measure, $10.00, one order",
        [(m.day, m.measure, m.warehouse - m.lake) for m in drift] == [(victim_day, "amount_cents", DRIFT_CENTS)]
        and found == [victim],
        f"mismatches {[(m.day, m.measure) for m in drift]}; drill-down finds order(s) {found}",
    )
    repaired = repair_day(spark, session, location, victim_day)
    after = compare_checksums(lake, warehouse_checksums(session))
    run.check(
        "repairing the day from the lake restores agreement",
        not after,
        f"{repaired} rows of {victim_day} reloaded; {len(after)} mismatches left",
    )
    run.figure("drifted days detected", len(drift), "days", how="checksum comparison after the drift", key=True)


def dashboard(run: PatternRun, session: SnowflakeSession) -> None:
    """The BI dashboard: charts from the Snowflake views, one self-contained offline HTML file."""
    figures = dashboard_figures(session)
    path = run.workdir / "dashboard.html"
    revenue = float(session.scalar("SELECT SUM(REVENUE) FROM BI_DAILY_REVENUE"))
    size = write_dashboard(path, figures, f"Served from Snowflake views; total revenue {revenue:,.2f}.")
    html = path.read_text(encoding="utf-8")
    run.say(f"dashboard: {path} ({size / 1e6:.1f} MB, plotly.js inlined: opens offline)")
    run.check(
        "the dashboard is self-contained: every chart, plotly.js inline, no external script",
        html.count('class="plotly-graph-div"') == len(figures) and "<script src=" not in html,
        f"{len(figures)} charts, {size:,} bytes",
    )


def rerun_is_idempotent(run: PatternRun, layout: MedallionLayout, session: SnowflakeSession, sources: Sources) -> None:
    """Every incremental step again with nothing new: nothing read, nothing committed; then one real change."""
    spark = run.spark
    tables = (
        BRONZE_PRODUCTS,
        BRONZE_PAYMENTS,
        SILVER_PRODUCTS,
        SILVER_PAYMENTS,
        SILVER_ORDERS,
        GOLD_FACT_SALES,
        GOLD_DAILY_SALES,
    )
    before = {t: table_version(spark, layout.table(t)) for t in tables}
    medallion = run_medallion(spark, layout)
    extracted = land_products(spark, layout, sources.db)
    pull = land_payments(spark, layout, sources.api, sources.page_size, sources.http)
    outcomes = run_silver_sources(spark, layout)
    rebuilt = build_star(spark, layout)
    after = {t: table_version(spark, layout.table(t)) for t in tables}
    read = sum(medallion.bronze.rows.values()) + extracted + len(pull.records)
    silver_batches = sum(o.batches for o in outcomes.values())
    run.table(
        [{"table": t, "version before": before[t], "version after": after[t]} for t in tables],
        title="rerun with nothing new: files, database, API, silver, gold",
    )
    run.check(
        "a rerun reads nothing new from any source and commits nothing",
        read == 0 and silver_batches == 0 and not rebuilt and after == before,
        f"{read} rows read, {silver_batches} silver batches, gold rebuilt: {rebuilt}; versions unchanged",
    )
    republished = publish_gold(spark, session, layout)
    mismatches = compare_checksums(lake_checksums(spark, layout.table(GOLD_FACT_SALES)), warehouse_checksums(session))
    run.check(
        "republishing replaces, never appends: Snowflake still equals the lake",
        not mismatches
        and republished["FACT_SALES"] == spark.read.format("delta").load(layout.table(GOLD_FACT_SALES)).count(),
        f"FACT_SALES {republished['FACT_SALES']} rows, {len(mismatches)} checksum mismatches",
    )
    stamp = _iso(EPOCH + timedelta(days=40))
    repriced = reprice_products(sources.db, REPRICED_PRODUCTS, stamp)
    extracted = land_products(spark, layout, sources.db)
    outcomes = run_silver_sources(spark, layout)
    products = outcomes[SILVER_PRODUCTS]
    rebuilt = build_star(spark, layout)
    run.check(
        "a catalogue change flows through: exactly the repriced rows are extracted and updated",
        extracted == len(repriced) == products.updated and products.inserted == 0 and rebuilt,
        f"{len(repriced)} products repriced in SQLite → {extracted} rows extracted → {products.updated} "
        "silver rows updated → star rebuilt",
    )
    publish_gold(spark, session, layout)


def disaster_recovery(run: PatternRun, layout: MedallionLayout, session: SnowflakeSession) -> None:
    """Back up gold, lose it, restore it: measured recovery time, verified content; replication as DDL."""
    spark = run.spark
    backup_root = Path(layout.location("backup"))
    gold = {t: layout.table(t) for t in GOLD_TABLES}
    before = fingerprints(spark, gold)
    deep = deep_clone_supported(spark, layout.table(GOLD_DIM_PRODUCT), str(backup_root / "_probe"))
    shutil.rmtree(backup_root / "_probe", ignore_errors=True)
    method = "DEEP CLONE" if deep else "versioned deep copy (read VERSION AS OF + write)"
    if not deep:
        run.note(
            "Open-source Delta 4.4 parses only SHALLOW CLONE (DEEP CLONE is a Databricks feature). The backup here "
            "is its open-source equivalent: the current version read and written as a new, self-contained table "
            "whose commit records the source and version (a new history starts; the old one is not copied)."
        )
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=DR_PARALLELISM) as pool:
        copied = pool.map(
            lambda t: copy_table(spark, gold[t], str(backup_root / t), deep_clone=deep, note="gold backup"), GOLD_TABLES
        )
        versions = dict(zip(GOLD_TABLES, copied, strict=True))
    backup_seconds = time.perf_counter() - started
    shallow = str(backup_root / "shallow_fact_sales")
    spark.sql(f"CREATE TABLE delta.`{shallow}` SHALLOW CLONE delta.`{layout.table(GOLD_FACT_SALES)}`").collect()
    run.figure("gold backup", backup_seconds, "s", how=f"{len(GOLD_TABLES)} tables, {method}")

    for table in GOLD_TABLES:
        shutil.rmtree(layout.table(table))
    lost = [t for t in GOLD_TABLES if is_delta_table(spark, gold[t])]
    shallow_survives = readable(spark, shallow, "amount")
    run.check(
        "the loss is real: no gold table is left, and the shallow clone died with it",
        not lost and not shallow_survives,
        "a SHALLOW CLONE references the source's data files: it is a cheap fork, not a backup",
    )

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=DR_PARALLELISM) as pool:
        list(
            pool.map(
                lambda t: copy_table(spark, str(backup_root / t), gold[t], deep_clone=deep, note="restore drill"),
                GOLD_TABLES,
            )
        )
    restore_seconds = time.perf_counter() - started
    restored = fingerprints(spark, gold)
    run.table(
        [
            {
                "gold table": t,
                "backed-up version": versions[t],
                "rows": restored[t][0],
                "content hash equal": restored[t] == before[t],
            }
            for t in GOLD_TABLES
        ],
        title=f"restore drill ({method})",
    )
    run.check(
        "restored gold equals the pre-loss gold, row for row (count + content hash per table)",
        restored == before,
        f"{sum(n for n, _ in restored.values())} rows in {len(GOLD_TABLES)} tables",
    )
    mismatches = compare_checksums(lake_checksums(spark, layout.table(GOLD_FACT_SALES)), warehouse_checksums(session))
    run.check("the restored lake reconciles with Snowflake again", not mismatches, f"{len(mismatches)} mismatches")
    run.figure(
        "restore time (RTO)", restore_seconds, "s", how=f"{len(GOLD_TABLES)} tables copied back, {method}", key=True
    )

    why = "needs a second Snowflake account in your organization (Business Critical edition for failover); never automatic"
    group = FailoverGroup(
        name="LAKEHOUSE_DR",
        object_types=(ReplicatedObject.DATABASES, ReplicatedObject.ROLES),
        allowed_databases=(session.database,),
        allowed_accounts=("MYORG.LAKEHOUSE_DR",),
        replication_schedule="10 MINUTE",
    )
    session.recommend(group, "replicate the serving database and its roles every 10 minutes (RPO ≈ 10 min)", why)
    session.recommend(
        FailoverGroupReplica(name="LAKEHOUSE_DR", primary="MYORG.LAKEHOUSE_PRIMARY.LAKEHOUSE_DR"),
        "in the DR account: the secondary copy",
        why,
    )
    session.recommend(
        AlterFailoverGroup(name="LAKEHOUSE_DR", action=FailoverGroupAction.REFRESH),
        "in the DR account: pull the latest snapshot now",
        why,
    )
    session.recommend(
        AlterFailoverGroup(name="LAKEHOUSE_DR", action=FailoverGroupAction.PRIMARY),
        "the failover: promote the DR account's copy to primary",
        why,
    )


# ---------------------------------------------------------------------------------- pattern


@contextlib.contextmanager
def upstream_sources(run: PatternRun, layout: MedallionLayout, world: EcommerceWorld) -> Iterator[Sources]:
    """Land files, create the operational database, start the payments API; stop it afterwards."""
    file_truth = land_files(run, layout, world)
    db = run.workdir / "ops.sqlite"
    catalogue = build_operational_db(db, world)
    run.say(f"database: {db.name} (sqlite3), table products with {catalogue} rows")
    records, payment_truth = payment_records(world)
    with PaymentsApi(records, flaky_page=FLAKY_PAGE) as api, contextlib.closing(api_session()) as http:
        run.say(f"API: {api.url}/v1/payments serving {len(records)} payment records (cursor pagination)")
        run.note(
            "Local stand-ins: the SQLite file is the shop's OLTP database (Postgres/MySQL via JDBC or Lakehouse "
            "Federation in Databricks); the loopback API is the payment provider's REST API."
        )
        yield Sources(db, api, http, file_truth, catalogue, payment_truth, int(run.args.page_size))


def body(run: PatternRun) -> None:
    layout = MedallionLayout.local(run.workdir / "lake")
    world = EcommerceWorld(run.rows, seed=run.seed)
    clock: list[tuple[str, float]] = []

    def step(title: str) -> None:
        clock.append((title, time.perf_counter()))
        run.step(title)

    with upstream_sources(run, layout, world) as sources, run.snowflake(SNOWFLAKE_DATABASE, SNOWFLAKE_SCHEMA) as sf:
        step("Bronze: files (medallion pipeline), operational database, paginated API")
        files = run_medallion(run.spark, layout)
        show_files(run, files, sources.file_truth)
        ingest_database(run, layout, sources)
        ingest_api(run, layout, sources)
        show_bronze_metadata(run, layout)

        step("Silver: conform, deduplicate, quarantine")
        conform_silver(run, layout, sources)

        step("Gold: a star schema on Delta")
        build_gold(run, layout)

        step("Pattern A: publish gold to Snowflake, serve BI views")
        publish_and_serve(run, layout, sf)
        lake_tables_in_snowflake(run, sf, layout)

        step("Pattern C: reconcile Delta gold with Snowflake gold, detect a drift")
        reconcile(run, layout, sf)

        step("BI dashboard from the Snowflake views")
        dashboard(run, sf)

        step("Rerun everything: idempotent")
        rerun_is_idempotent(run, layout, sf, sources)

        step("Disaster recovery: backup, loss, restore drill")
        disaster_recovery(run, layout, sf)
        run.figure("cloud-only statements", len(sf.ledger), "statements", how="typed DDL shown for an administrator")

    clock.append(("end", time.perf_counter()))
    run.table(
        [{"step": title, "seconds": round(end - start, 2)} for (title, start), (_, end) in itertools.pairwise(clock)],
        title="wall time per step",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--page-size", type=int, default=100, help="records per API page (default 100)")


def main(argv: Sequence[str] | None = None) -> int:
    return run_pattern(__file__, argv, body, default_rows=5_000, add_arguments=add_arguments)


if __name__ == "__main__":
    raise SystemExit(main())
