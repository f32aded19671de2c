"""Lakehouse architecture: files, an operational database and an HTTP API into Delta gold, served from Snowflake.

Why it matters in production: a "modern lakehouse" is not one pipeline but a contract between
systems. Data arrives from files, from the shop's operational database and from a partner's
paginated API; Databricks (Spark + Delta) conforms it into a gold star schema; Snowflake serves it
to BI (Pattern A) and holds a second copy of gold that must agree with the lake (Pattern C). The
failures teams meet are at the seams: an API page fetched twice, an extract that re-reads the
whole table, a warehouse copy that drifted after a "quick fix", a backup that turns out to
reference the very files that were lost. This pattern builds every seam for real and proves each
one against independent ground truth.

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
- Maintain the serving marts as a dbt project (models, tests, docs) and build it on the served gold

Run it:
    python expert/integration/01_lakehouse_architecture.py [--rows N] [--page-size N]
    expert run integration/01

Locally: PySpark + Delta Lake in-process, SQLite through Python's sqlite3 driver, an HTTP API on
127.0.0.1 (http.server in a thread, fetched with requests), fakesnow for Snowflake, and dbt-core
with dbt-snowflake (its own virtualenv) against fakesnow's server; everything under
.work/integration/01_lakehouse_architecture/. With SNOWFLAKE_* in .env the same
write_pandas calls, views and reconciliation run against your account; the Snowflake tables over
the lake (external volume + Delta catalog integration + Iceberg table) and the replication /
failover group are recorded in cloud-plan.sql for an administrator, never applied by the script.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from expert.interop.reconcile import DayPartition, compare_checksums, differing_keys, repair_day
from expert.interop.transfer import delta_frame, snowflake_table_ddl
from expert.lakehouse import (
    DIM_CUSTOMER,
    GOLD_DAILY_FUNNEL,
    GOLD_DAILY_SALES,
    QUARANTINE,
    SILVER_ORDERS,
    MedallionLayout,
    MedallionResult,
    land_raw,
    run_medallion,
    table_version,
)
from expert.lakehouse.delta_ops import delta_table, history, is_delta_table
from expert.recovery.delta_backup import copy_tables, deep_clone_supported, fingerprints, readable
from expert.recovery.failover import recommend_failover_group
from expert.runtime import snowflake_ddl as ddl
from expert.runtime.dashboard import Chart, charts_from_queries, inspect_dashboard, write_dashboard
from expert.runtime.data import EPOCH, DirtReport, EcommerceWorld
from expert.runtime.dbt import DATABRICKS_NOT_LOCAL, dbt_build, dbt_databricks_step, dbt_gate
from expert.runtime.pattern import PatternRun, run_pattern
from expert.upstream.bronze import land_payments, land_products
from expert.upstream.operational_db import build_operational_db, iso_utc, reprice_products
from expert.upstream.payments_api import PaymentsApi, payment_records, retrying_session
from expert.upstream.silver import (
    BRONZE_PAYMENTS,
    BRONZE_PRODUCTS,
    SILVER_PAYMENTS,
    SILVER_PRODUCTS,
    run_silver_sources,
)

if TYPE_CHECKING:
    import requests
    from pyspark.sql import SparkSession

    from expert.runtime.snowflake import SnowflakeSession

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

SNOWFLAKE_DATABASE, SNOWFLAKE_SCHEMA = "LAKEHOUSE", "GOLD"
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

CHANGED_PRODUCTS_SQL = """SELECT product_id, name, category, price, updated_at FROM products
WHERE updated_at > ? ORDER BY updated_at, product_id"""
"""The incremental extract: rows changed after the high-water mark bronze already holds (query-based CDC
by an indexed `updated_at`: it sees inserts and updates, not deletes; log-based CDC sees those)."""

CHECKSUM_QUERY = """SELECT order_date AS day, count(*) AS row_count, sum(quantity) AS units,
       sum(CAST(amount * 100 AS BIGINT)) AS amount_cents, sum(order_id) AS key_sum
FROM {table} GROUP BY order_date"""
"""Per-day checksums of the fact table, in SQL both engines run unchanged (Spark SQL and Snowflake).

Integer cents and key sums are exact in both engines, so equal partitions give equal numbers."""
CHECKSUM_MEASURES = ("row_count", "units", "amount_cents", "key_sum")
FACT_DAYS = DayPartition(CHECKSUM_QUERY, CHECKSUM_MEASURES, "FACT_SALES", "order_date", "order_id",
                         ("quantity", "amount", "payment_status"))  # fmt: skip
"""The fact in both systems: its checksums, and how one day is compared row by row and repaired."""

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

DASHBOARD = (
    Chart("Revenue per day (BI_DAILY_REVENUE)", "line",
          "SELECT ORDER_DATE AS X, 'revenue' AS SERIES, REVENUE AS Y FROM BI_DAILY_REVENUE UNION ALL "
          "SELECT ORDER_DATE, 'captured', CAPTURED_REVENUE FROM BI_DAILY_REVENUE ORDER BY SERIES DESC, X"),
    Chart("Revenue by category (BI_REVENUE_BY_CATEGORY)", "bar",
          "SELECT CATEGORY AS X, REVENUE AS Y FROM BI_REVENUE_BY_CATEGORY ORDER BY Y DESC"),
    Chart("Revenue by customer segment (BI_REVENUE_BY_SEGMENT)", "bar",
          "SELECT SEGMENT AS X, SUM(REVENUE) AS Y FROM BI_REVENUE_BY_SEGMENT GROUP BY SEGMENT ORDER BY Y DESC"),
    Chart("Orders by payment method (BI_PAYMENT_MIX)", "pie",
          "SELECT PAYMENT_METHOD AS X, SUM(ORDERS) AS Y FROM BI_PAYMENT_MIX GROUP BY PAYMENT_METHOD ORDER BY Y DESC"),
)  # fmt: skip
"""The BI dashboard: one chart per query over the Snowflake views (what a BI tool would run)."""

SPARK_SNOWFLAKE_CONNECTOR = """\
# In a Databricks job: gold to Snowflake with the Spark-Snowflake connector (parallel, no pandas).
snowflake_options = {
    "sfUrl": "<account>.snowflakecomputing.com", "sfUser": "<service user>",
    "pem_private_key": dbutils.secrets.get("lakehouse", "snowflake-key"),
    "sfDatabase": "LAKEHOUSE", "sfSchema": "GOLD", "sfWarehouse": "<warehouse>",
}
(spark.read.table("main.lakehouse.gold_fact_sales")
    .write.format("snowflake").options(**snowflake_options)
    .option("dbtable", "LAKEHOUSE.GOLD.FACT_SALES").mode("overwrite").save())"""


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


@contextlib.contextmanager
def upstream_sources(run: PatternRun, layout: MedallionLayout, world: EcommerceWorld) -> Iterator[Sources]:
    """Land the files, create the operational database, start the payments API; stop it afterwards."""
    file_truth = land_raw(world, layout, batches=2)
    files = sorted(p for p in layout.landing.rglob("*") if p.is_file())
    run.say(f"files: {len(files)} landed ({', '.join(sorted({p.parent.name for p in files}))})")
    db = run.workdir / "ops.sqlite"
    catalogue = build_operational_db(db, world, UNPRICED_PRODUCTS)
    run.stand_in("the shop's operational database", "a SQLite file read through Python's sqlite3 driver")
    run.say(f"database: {db.name}, table products with {catalogue} rows")
    records, payment_truth = payment_records(world)
    with PaymentsApi(records, flaky_page=FLAKY_PAGE) as api, contextlib.closing(retrying_session()) as http:
        run.stand_in("the payment provider's REST API", f"http.server on {api.url}")
        run.say(f"API: {api.url}/v1/payments serving {len(records)} payment records (cursor pagination)")
        yield Sources(db, api, http, file_truth, catalogue, payment_truth, int(run.args.page_size))


def show_files(run: PatternRun, result: MedallionResult, truth: dict[str, DirtReport]) -> None:
    """Source 1: the files went through the medallion pipeline of databricks/01, unchanged."""
    run.table(
        [{"source": s, "rows into bronze": n} for s, n in result.bronze.rows.items()],
        title="files → bronze (expert.lakehouse.run_medallion: availableNow streams)",
    )
    orders = truth["orders"]
    inserted = result.silver.tables[SILVER_ORDERS].inserted
    run.check(
        "files: silver_orders holds every clean order exactly once",
        inserted == orders.clean_rows - orders.null_keys,
        f"{inserted} orders = {orders.clean_rows} generated − {orders.null_keys} null keys",
    )
    run.figure("medallion pipeline (files)", result.seconds, "s", how="run_medallion wall time: bronze + silver + gold")


def ingest_database(run: PatternRun, layout: MedallionLayout, sources: Sources) -> None:
    """Source 2: the operational catalogue, extracted incrementally through the sqlite3 driver."""
    extracted = land_products(run.spark, layout, sources.db, CHANGED_PRODUCTS_SQL)
    run.check(
        "database: the first extract reads every catalogue row",
        extracted == sources.catalogue_rows,
        f"{extracted} rows read = {sources.catalogue_rows} in {sources.db.name}",
    )


def ingest_api(run: PatternRun, layout: MedallionLayout, sources: Sources) -> None:
    """Source 3: the payments API, page by page (cursor + next link), one 503 retried."""
    with run.timed() as watch:
        pull = land_payments(run.spark, layout, sources.api.url, sources.page_size, sources.http)
    api, pages = sources.api, len(pull.page_sizes)
    run.table(
        [{"pages": pages, "records": len(pull.records), "page size": sources.page_size,
          "HTTP requests": api.requests_served, "503s retried": api.failures_served}],
        title=f"API → bronze_payments ({api.url}/v1/payments)",
    )  # fmt: skip
    seqs = [r["seq"] for r in pull.records]
    in_bronze = run.spark.read.format("delta").load(layout.table(BRONZE_PAYMENTS)).count()
    delivered = sources.payment_truth.delivered_rows
    run.check(
        "API: every record fetched exactly once across pages, despite a 503",
        seqs == list(range(1, delivered + 1))
        and in_bronze == delivered
        and pages == -(-len(api.records) // sources.page_size)
        and api.failures_served == 1,
        f"{in_bronze} rows in bronze = {delivered} delivered by the provider (seq 1..{delivered} in order), "
        f"{pages} pages, {api.failures_served} 503 retried",
    )
    run.figure("API pull", watch.seconds, "s", how="all pages fetched + bronze append")


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
    rows = [
        {"table": table, "expectation": rule, "action": out.quality.actions[rule].value, "rows": count}
        for table, out in outcomes.items()
        for rule, count in out.quality.violations.items()
    ]
    run.table(rows, title="silver expectations for the database and API sources")
    generated = sources.catalogue_rows - len(UNPRICED_PRODUCTS)
    run.check(
        "database: silver_products = catalogue − unpriced/uncategorised rows (quarantined)",
        (products.inserted, products.quality.dropped) == (generated, len(UNPRICED_PRODUCTS)),
        f"{products.inserted} products + {products.quality.dropped} quarantined = {sources.catalogue_rows} rows",
    )
    truth = sources.payment_truth
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
    sources = (SILVER_ORDERS, DIM_CUSTOMER, SILVER_PRODUCTS, SILVER_PAYMENTS)
    lineage = json.dumps({t: table_version(spark, layout.table(t)) for t in sources}, sort_keys=True)
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


def build_gold(run: PatternRun, layout: MedallionLayout) -> None:
    """The star schema; verified for grain, referential integrity and against the medallion's own gold."""
    spark = run.spark
    run.stand_in("Unity Catalog tables", "Delta tables at paths under the run's workdir")
    build_star(spark, layout)
    counts = {t: spark.read.format("delta").load(layout.table(t)).count() for t in STAR_TABLES}
    run.table([{"gold table": t, "rows": n} for t, n in counts.items()], title="gold star schema on Delta")
    star = spark.sql(
        f"""SELECT count(*) AS facts, count(DISTINCT f.order_id) AS orders,
                   count_if(p.product_id IS NULL) AS orphan_products, count_if(c.customer_id IS NULL) AS orphan_customers,
                   sum(f.amount) AS revenue, count_if(f.payment_status = 'missing') AS unpaid
            FROM {layout.sql(GOLD_FACT_SALES)} f
            LEFT JOIN {layout.sql(GOLD_DIM_PRODUCT)} p ON p.product_id = f.product_id
            LEFT JOIN {layout.sql(GOLD_DIM_CUSTOMER)} c ON c.customer_id = f.customer_id"""
    ).first()
    medallion = spark.sql(f"SELECT sum(revenue) AS r FROM {layout.sql(GOLD_DAILY_SALES)}").first()
    assert star is not None and medallion is not None
    silver_orders = spark.read.format("delta").load(layout.table(SILVER_ORDERS)).count()
    run.check(
        "fact grain: one row per silver order (the payment join fans out nothing)",
        star["facts"] == star["orders"] == silver_orders,
        f"{star['facts']} facts, {star['orders']} distinct orders, {silver_orders} silver orders",
    )
    run.check(
        "referential integrity: every fact has its product and customer dimension row",
        star["orphan_products"] == 0 and star["orphan_customers"] == 0,
        f"{star['orphan_products']} orphan products, {star['orphan_customers']} orphan customers",
    )
    run.check(
        "star revenue = the medallion's gold_daily_sales revenue (two gold paths agree)",
        star["revenue"] == medallion["r"],
        f"{star['revenue']:,} = {medallion['r']:,}",
    )
    run.check(
        "dimensions carry no PII (names, emails, phones stay in silver)",
        not {"first_name", "last_name", "email", "phone", "birth_date"}
        & set(spark.read.format("delta").load(layout.table(GOLD_DIM_CUSTOMER)).columns),
        "gold_dim_customer: customer_id, country, city, segment",
    )
    run.say(
        f"{star['unpaid']} orders have no payment yet (payment_status 'missing'): "
        "their payments arrived without an id and are in quarantine."
    )
    run.figure("gold revenue", float(star["revenue"]), "", how="sum of gold_fact_sales.amount", key=True)


def publish_gold(spark: SparkSession, session: SnowflakeSession, layout: MedallionLayout) -> dict[str, int]:
    """Pattern A: every published gold table replaced in Snowflake through write_pandas; rows loaded each.

    `overwrite=True` on an existing table makes the connector TRUNCATE, then COPY: readers can see
    an empty table for a moment. Where that matters, load a staging table and `ALTER TABLE … SWAP WITH`.
    """
    loaded = {}
    for name, table in PUBLISHED.items():
        location = layout.table(table)
        session.execute(snowflake_table_ddl(name, spark.read.format("delta").load(location).schema))
        loaded[name] = session.write_pandas(delta_frame(spark, location), name, overwrite=True, auto_create_table=False)
    return loaded


def publish_and_serve(run: PatternRun, layout: MedallionLayout, session: SnowflakeSession) -> None:
    """Pattern A: Delta gold → Arrow → write_pandas into Snowflake, then BI views over it."""
    spark = run.spark
    if session.is_local:
        run.stand_in("Snowflake", "fakesnow (DuckDB) under the real snowflake-connector-python")
    with run.timed() as watch:
        loaded = publish_gold(spark, session, layout)
    for name, query in BI_VIEWS.items():
        session.execute(f"CREATE OR REPLACE VIEW {name} AS {query}")
    rows = [
        {"Snowflake table": name, "Delta gold": table,
         "lake rows": spark.read.format("delta").load(layout.table(table)).count(),
         "Snowflake rows": int(session.scalar(f"SELECT COUNT(*) FROM {name}"))}
        for name, table in PUBLISHED.items()
    ]  # fmt: skip
    run.table(rows, title=f"published to {session.database}.{session.schema} (Arrow → write_pandas)")
    run.check(
        "every published table has the lake's row count in Snowflake",
        all(r["lake rows"] == r["Snowflake rows"] == loaded[r["Snowflake table"]] for r in rows),
        ", ".join(f"{r['Snowflake table']}={r['Snowflake rows']}" for r in rows),
    )
    how = f"{sum(loaded.values())} rows, {len(loaded)} tables: toArrow + write_pandas"
    run.figure("publish to Snowflake", watch.seconds, "s", how=how)
    fact_revenue = float(session.scalar("SELECT SUM(AMOUNT) FROM FACT_SALES"))
    totals = {
        view: session.scalar(f"SELECT SUM({'AMOUNT' if view == 'BI_PAYMENT_MIX' else 'REVENUE'}) FROM {view}")
        for view in BI_VIEWS
    }
    run.table([{"BI view": v, "total revenue": t} for v, t in totals.items()], title="BI views in Snowflake")
    run.check(
        "every BI view adds up to the fact's revenue (no join loses or duplicates an order)",
        all(abs(float(t) - fact_revenue) < 0.005 for t in totals.values()),
        f"each = {fact_revenue:,.2f}",
    )
    if not run.settings.databricks.is_cloud:
        run.cloud_only_step(
            "databricks",
            SPARK_SNOWFLAKE_CONNECTOR,
            "the connector runs on a Databricks cluster against a Snowflake account; locally write_pandas did the same load",
            kind="job code",
            language="python",
            purpose="Pattern A at scale: Spark writes gold to Snowflake in parallel",
        )


def lake_tables_in_snowflake(run: PatternRun, session: SnowflakeSession, layout: MedallionLayout) -> None:
    """Cloud: Snowflake reads the Delta gold in place (external volume + Delta catalog integration + Iceberg table)."""
    why = "needs the lake on object storage and an IAM role an administrator provisions; review, then run it"
    volume = ddl.ExternalVolume(
        name="LAKEHOUSE_GOLD_VOLUME",
        location_name="lakehouse-gold",
        provider=ddl.StorageProvider.S3,
        base_url="s3://your-lakehouse-bucket/integration/01_lakehouse_architecture/lake/tables/",
        aws_role_arn="arn:aws:iam::123456789012:role/snowflake-lakehouse-reader",
    )
    session.recommend(volume, "point Snowflake at the Delta gold files (a read-only role)", why)
    catalog = ddl.CatalogIntegration(name="DELTA_GOLD_CATALOG", table_format=ddl.LakeTableFormat.DELTA)
    session.recommend(catalog, "read table metadata from the Delta log itself (no external catalog)", why)
    for name, table in (("FACT_SALES_LAKE", GOLD_FACT_SALES), ("DAILY_SALES_LAKE", GOLD_DAILY_SALES)):
        lake_table = ddl.IcebergTable(
            name=name, external_volume=volume.name, catalog=catalog.name, base_location=Path(layout.table(table)).name
        )
        session.recommend(lake_table, f"query {table} in place from Snowflake: no copy, refreshed from the log", why)
    run.note(
        "Pattern A copies gold into Snowflake storage (fast BI, a second copy to reconcile); the Iceberg/Delta "
        "table reads the lake in place (one copy, lake-speed). Both are shown: the copy runs, the in-place read is DDL."
    )


def reconcile(run: PatternRun, layout: MedallionLayout, session: SnowflakeSession) -> None:
    """Pattern C: gold lives in both systems; per-day checksums prove they agree, and catch a drift."""
    spark, location = run.spark, layout.table(GOLD_FACT_SALES)
    with run.timed() as watch:
        lake, warehouse = FACT_DAYS.lake(spark, layout.table(GOLD_FACT_SALES)), FACT_DAYS.warehouse(session)
        clean = compare_checksums(lake, warehouse)
    run.figure("reconciliation", watch.seconds, "s", how="per-day checksums in both engines")
    run.check(
        "Delta gold and Snowflake gold agree on every day (rows, units, cents, key sum)",
        not clean and len(lake) == len(warehouse) > 0,
        f"{len(lake)} days × {len(CHECKSUM_MEASURES)} measures compared, {len(clean)} mismatches",
    )
    run.figure("days reconciled", len(lake), "days", how="per-day checksum partitions compared", key=True)
    victim = int(session.scalar("SELECT MAX(ORDER_ID) FROM FACT_SALES"))
    session.execute(f"UPDATE FACT_SALES SET AMOUNT = AMOUNT + {DRIFT_CENTS / 100:.2f} WHERE ORDER_ID = %s", (victim,))
    victim_day = str(session.scalar("SELECT ORDER_DATE FROM FACT_SALES WHERE ORDER_ID = %s", (victim,)))
    drift = compare_checksums(lake, FACT_DAYS.warehouse(session))
    run.table([vars(m) for m in drift], title=f"after a 'quick fix' in Snowflake: order {victim} amount +$10")
    found = differing_keys(spark, session, location, FACT_DAYS, drift[0].day) if drift else []
    run.check(
        "reconciliation detects exactly the drift: one day, one measure, $10.00, one order",
        [(m.day, m.measure, m.warehouse - m.lake) for m in drift] == [(victim_day, "amount_cents", DRIFT_CENTS)]
        and found == [victim],
        f"mismatches {[(m.day, m.measure) for m in drift]}; drill-down finds order(s) {found}",
    )
    repaired = repair_day(spark, session, location, FACT_DAYS, victim_day)
    after = compare_checksums(lake, FACT_DAYS.warehouse(session))
    run.check(
        "repairing the day from the lake restores agreement",
        not after,
        f"{repaired} rows of {victim_day} reloaded; {len(after)} mismatches left",
    )
    run.figure("drifted days detected", len(drift), "days", how="checksum comparison after the drift", key=True)


def dashboard(run: PatternRun, session: SnowflakeSession) -> None:
    """The BI dashboard: charts from the Snowflake views, one self-contained offline HTML file."""
    figures = charts_from_queries(session.fetch_df, DASHBOARD)
    path = run.workdir / "dashboard.html"
    revenue = float(session.scalar("SELECT SUM(REVENUE) FROM BI_DAILY_REVENUE"))
    write_dashboard(
        path,
        figures,
        "Lakehouse sales dashboard",
        subtitle=f"Served from Snowflake views; total revenue {revenue:,.2f}.",
    )
    page = inspect_dashboard(path)
    run.say(f"dashboard: {path} ({page.size / 1e6:.1f} MB, plotly.js inlined: opens offline)")
    run.check(
        "the dashboard is self-contained: every chart, plotly.js inline, no external script",
        page.self_contained and page.charts == len(figures),
        f"{page.charts} charts, {page.size:,} bytes",
    )


def rerun_is_idempotent(run: PatternRun, layout: MedallionLayout, session: SnowflakeSession, sources: Sources) -> None:
    """Every incremental step again with nothing new: nothing read, nothing committed; then one real change."""
    spark = run.spark
    tables = (BRONZE_PRODUCTS, BRONZE_PAYMENTS, SILVER_PRODUCTS, SILVER_PAYMENTS, SILVER_ORDERS, GOLD_FACT_SALES,
              GOLD_DAILY_SALES)  # fmt: skip
    before = {t: table_version(spark, layout.table(t)) for t in tables}
    medallion = run_medallion(spark, layout)
    extracted = land_products(spark, layout, sources.db, CHANGED_PRODUCTS_SQL)
    pull = land_payments(spark, layout, sources.api.url, sources.page_size, sources.http)
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
    mismatches = compare_checksums(FACT_DAYS.lake(spark, layout.table(GOLD_FACT_SALES)), FACT_DAYS.warehouse(session))
    run.check(
        "republishing replaces, never appends: Snowflake still equals the lake",
        not mismatches
        and republished["FACT_SALES"] == spark.read.format("delta").load(layout.table(GOLD_FACT_SALES)).count(),
        f"FACT_SALES {republished['FACT_SALES']} rows, {len(mismatches)} checksum mismatches",
    )
    repriced = reprice_products(sources.db, REPRICED_PRODUCTS, iso_utc(EPOCH + timedelta(days=40)))
    extracted = land_products(spark, layout, sources.db, CHANGED_PRODUCTS_SQL)
    products = run_silver_sources(spark, layout)[SILVER_PRODUCTS]
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
        run.stand_in(
            "Databricks DEEP CLONE", "each table's current version read and written as a new, self-contained table"
        )
        run.note("Open-source Delta parses only SHALLOW CLONE; the copy's commit records the source and version.")

    def copy_all(source: Mapping[str, str], target: Mapping[str, str], note: str) -> dict[str, int]:
        pairs = {t: (source[t], target[t]) for t in GOLD_TABLES}
        return copy_tables(spark, pairs, deep_clone=deep, note=note, parallelism=DR_PARALLELISM)

    backup = {t: str(backup_root / t) for t in GOLD_TABLES}
    with run.timed() as backup_watch:
        versions = copy_all(gold, backup, "gold backup")
    shallow = str(backup_root / "shallow_fact_sales")
    spark.sql(f"CREATE TABLE {delta_table(shallow)} SHALLOW CLONE {delta_table(gold[GOLD_FACT_SALES])}").collect()
    run.figure("gold backup", backup_watch.seconds, "s", how=f"{len(GOLD_TABLES)} tables, {method}")

    for table in GOLD_TABLES:
        shutil.rmtree(gold[table])
    lost = [t for t in GOLD_TABLES if is_delta_table(spark, gold[t])]
    run.check(
        "the loss is real: no gold table is left, and the shallow clone died with it",
        not lost and not readable(spark, shallow, "amount"),
        "a SHALLOW CLONE references the source's data files: it is a cheap fork, not a backup",
    )
    with run.timed() as restore_watch:
        copy_all(backup, gold, "restore drill")
    restored = fingerprints(spark, gold)
    run.table(
        [{"gold table": t, "backed-up version": versions[t], "rows": restored[t][0],
          "content hash equal": restored[t] == before[t]} for t in GOLD_TABLES],
        title=f"restore drill ({method})",
    )  # fmt: skip
    run.check(
        "restored gold equals the pre-loss gold, row for row (count + content hash per table)",
        restored == before,
        f"{sum(n for n, _ in restored.values())} rows in {len(GOLD_TABLES)} tables",
    )
    mismatches = compare_checksums(FACT_DAYS.lake(spark, layout.table(GOLD_FACT_SALES)), FACT_DAYS.warehouse(session))
    run.check("the restored lake reconciles with Snowflake again", not mismatches, f"{len(mismatches)} mismatches")
    how = f"{len(GOLD_TABLES)} tables copied back, {method}"
    run.figure("restore time (RTO)", restore_watch.seconds, "s", how=how, key=True)
    recommend_failover_group(session)


def serve_with_dbt(run: PatternRun) -> None:
    """The BI views as teams maintain them: a dbt project (dbt/lakehouse), built and tested on the served gold."""
    with run.snowflake_endpoint(SNOWFLAKE_DATABASE, SNOWFLAKE_SCHEMA) as endpoint:
        result = dbt_build(endpoint, run.workdir / "dbt")
    run.table(result.table(), title="dbt build: staging views, marts, and the tests on them", max_rows=12)
    run.figure("dbt tests passed", sum(n.status == "pass" for n in result.tests), "tests", how="dbt build", key=True)
    verdict = "dbt: every model built and every test passed (keys, relationships, accepted values, marts = gold)"
    run.check(verdict, result.passed, dbt_gate(result).reason)
    profile, command = dbt_databricks_step()
    run.cloud_only_step("databricks", profile, DATABRICKS_NOT_LOCAL, kind="dbt profile", language="yaml")
    run.cloud_only_step("databricks", command, DATABRICKS_NOT_LOCAL, kind="dbt build", language="bash")


def body(run: PatternRun) -> None:
    layout = MedallionLayout.local(run.workdir / "lake")
    world = EcommerceWorld(run.rows, seed=run.seed)
    with upstream_sources(run, layout, world) as sources, run.snowflake(SNOWFLAKE_DATABASE, SNOWFLAKE_SCHEMA) as sf:
        run.step("Bronze: files, an operational database, a paginated API", why="land each source as it came, once")
        files = run_medallion(run.spark, layout)
        show_files(run, files, sources.file_truth)
        ingest_database(run, layout, sources)
        ingest_api(run, layout, sources)
        show_bronze_metadata(run, layout)

        run.step(
            "Silver: conform, deduplicate, quarantine", why="one trusted row per key; bad rows kept aside, counted"
        )
        conform_silver(run, layout, sources)

        run.step("Gold: a star schema on Delta", why="a fact at order grain and conformed dimensions BI can join")
        build_gold(run, layout)

        run.step("Pattern A: publish gold to Snowflake, serve BI views", why="BI reads the warehouse, not the lake")
        publish_and_serve(run, layout, sf)
        lake_tables_in_snowflake(run, sf, layout)

        run.step(
            "Pattern C: reconcile Delta gold with Snowflake gold", why="two copies must agree: prove it, catch drift"
        )
        reconcile(run, layout, sf)

        run.step("BI dashboard from the Snowflake views", why="what the business sees, built from the served views")
        dashboard(run, sf)

        run.step("Rerun everything: idempotent", why="a scheduler retries: a rerun must read and commit nothing new")
        rerun_is_idempotent(run, layout, sf, sources)

        run.step("Disaster recovery: backup, loss, restore drill", why="a backup is only as good as a verified restore")
        disaster_recovery(run, layout, sf)
        run.figure("cloud-only statements", len(sf.ledger), "statements", how="typed DDL shown for an administrator")

    run.step("Serve with dbt: the same BI marts as a tested dbt project", why="how teams keep serving SQL reviewed")
    serve_with_dbt(run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--page-size", type=int, default=100, help="records per API page (default 100)")


def main(argv: Sequence[str] | None = None) -> int:
    return run_pattern(__file__, argv, body, default_rows=5_000, add_arguments=add_arguments)


if __name__ == "__main__":
    raise SystemExit(main())
