"""The medallion pipeline on Delta Lake: bronze → silver → gold, incremental and idempotent.

Why a module rather than code inside one numbered script: the same pipeline is what the
monitoring pattern observes, what the CI/CD pattern deploys into a staging schema and promotes,
and what the lakehouse-architecture pattern extends. Each layer is a function of
`(spark, layout)` that processes only what is new since its last run and can be rerun at any
time without changing its result:

- `run_bronze`: one Structured Streaming query per raw source with `trigger(availableNow=True)`
  and its own checkpoint: what Auto Loader (`cloudFiles`) does on Databricks. Malformed lines are
  kept in `_corrupt_record` (PERMISSIVE); fields the declared schema does not know (schema drift)
  are kept as JSON in `_rescued_data`, as Auto Loader's rescue mode does; every row carries its
  source file and ingest time.
- `run_silver`: one `foreachBatch` stream per bronze table: expectations (warn / drop / fail) with
  a quarantine table, deduplication on business key + event time, `MERGE` upserts, and an SCD
  type 2 customer dimension built from full snapshots. Silver tables have Change Data Feed on.
- `run_gold`: business aggregates rebuilt incrementally from the silver change feed: the keys
  touched since the last processed table version are recomputed and merged; the version is kept
  in a small state table, so a rerun with no new changes does nothing.

Every location comes from a `MedallionLayout` (a local path or a URI root).
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from expert.lakehouse.delta_ops import delta_table, latest_version, merge_into
from expert.lakehouse.layout import (
    BRONZE_TABLES,
    DIM_CUSTOMER,
    GOLD_DAILY_FUNNEL,
    GOLD_DAILY_SALES,
    PIPELINE_STATE,
    QUARANTINE,
    SILVER_BATCHES,
    SILVER_EVENTS,
    SILVER_ORDERS,
    MedallionLayout,
)
from expert.lakehouse.quality import FAILED_RULES, Action, Expectation, QualityCounts, apply_expectations

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

    from expert.runtime.data import DirtReport, EcommerceWorld

CLICKSTREAM_FIELDS = (
    "event_id BIGINT, session_id BIGINT, customer_id BIGINT, product_id BIGINT, "
    "event_type STRING, channel STRING, price DOUBLE, event_ts TIMESTAMP"
)
"""The clickstream contract as first agreed: no `device` (it appears later: schema drift)."""
ORDERS_SCHEMA = (
    "order_id BIGINT, customer_id BIGINT, product_id BIGINT, quantity INT, unit_price DOUBLE, "
    "amount DOUBLE, status STRING, order_ts TIMESTAMP, updated_at TIMESTAMP, _corrupt_record STRING"
)
INGEST_METADATA = "_source_file STRING, _ingested_at TIMESTAMP"
CUSTOMERS_SCHEMA = (
    "customer_id BIGINT, first_name STRING, last_name STRING, email STRING, phone STRING, "
    "birth_date TIMESTAMP, country STRING, city STRING, segment STRING, updated_at TIMESTAMP, "
    "_corrupt_record STRING"
)
BRONZE_SCHEMAS = {
    "clickstream": f"{CLICKSTREAM_FIELDS}, _corrupt_record STRING, _rescued_data STRING, {INGEST_METADATA}",
    "orders": f"{ORDERS_SCHEMA}, {INGEST_METADATA}",
    "customers": f"{CUSTOMERS_SCHEMA}, {INGEST_METADATA}",
}
"""Bronze tables are created up front, so silver can stream from a source that has sent nothing yet."""
SCD2_TRACKED = ("first_name", "last_name", "email", "phone", "birth_date", "country", "city", "segment")
"""Customer attributes whose change opens a new dimension version."""

EVENT_EXPECTATIONS: tuple[Expectation, ...] = (
    Expectation("well_formed", "_corrupt_record IS NULL", Action.DROP),
    Expectation("event_id_present", "event_id IS NOT NULL", Action.DROP),
    Expectation("event_ts_present", "event_ts IS NOT NULL", Action.DROP),
    Expectation("known_event_type", "event_type IN ('view', 'cart', 'purchase')", Action.FAIL),
    Expectation("price_in_range", "price > 0 AND price < 10000", Action.FAIL),
    Expectation("device_reported", "device IS NOT NULL", Action.WARN),
)
ORDER_EXPECTATIONS: tuple[Expectation, ...] = (
    Expectation("well_formed", "_corrupt_record IS NULL", Action.DROP),
    Expectation("order_id_present", "order_id IS NOT NULL", Action.DROP),
    Expectation("positive_quantity", "quantity > 0", Action.FAIL),
    Expectation("amount_matches_lines", "abs(amount - quantity * unit_price) < 0.01", Action.WARN),
)
CUSTOMER_EXPECTATIONS: tuple[Expectation, ...] = (
    Expectation("well_formed", "_corrupt_record IS NULL", Action.DROP),
    Expectation("customer_id_present", "customer_id IS NOT NULL", Action.FAIL),
    Expectation("email_has_at", "email LIKE '%@%'", Action.WARN),
)
DEFAULT_EXPECTATIONS: Mapping[str, Sequence[Expectation]] = {
    SILVER_EVENTS: EVENT_EXPECTATIONS,
    SILVER_ORDERS: ORDER_EXPECTATIONS,
    DIM_CUSTOMER: CUSTOMER_EXPECTATIONS,
}

CDF = {"delta.enableChangeDataFeed": "true"}


# ---------------------------------------------------------------------------------- landing


def land_raw(
    world: EcommerceWorld, layout: MedallionLayout, *, batches: int = 3, release: int | None = None
) -> dict[str, DirtReport]:
    """Generate every raw batch into the outbox and deliver the first `release` (default: all).

    Returns the generator's ground truth (`DirtReport` per source) for ALL batches generated.
    """
    layout.outbox.mkdir(parents=True, exist_ok=True)
    layout.landing.mkdir(parents=True, exist_ok=True)
    reports = world.write_raw_landing(layout.outbox, batches=batches)
    for _ in range(batches if release is None else release):
        release_next_batch(layout)
    return reports


def release_next_batch(layout: MedallionLayout, *, sources: Sequence[str] | None = None) -> list[str]:
    """Deliver the next batch of every source (or only of `sources`): move it from outbox to landing.

    A rename, not a write: a streaming file source must never list a half-written file, so
    producers write elsewhere and move the finished file in (what object-store uploads do
    atomically). Returns the landing paths delivered (empty when the outbox is exhausted).
    """
    delivered = []
    for source_dir in sorted(p for p in layout.outbox.iterdir() if p.is_dir()):
        if sources is not None and source_dir.name not in sources:
            continue
        pending = sorted(source_dir.iterdir())
        if pending:
            target = layout.landing / source_dir.name / pending[0].name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(pending[0], target)
            delivered.append(str(target))
    return delivered


def next_pending(layout: MedallionLayout, source: str) -> Path | None:
    """The outbox file `release_next_batch` would deliver next for `source` (to inspect or alter)."""
    pending = sorted((layout.outbox / source).glob("*"))
    return pending[0] if pending else None


# ---------------------------------------------------------------------------------- streaming


@dataclass(frozen=True)
class StreamRun:
    """What one availableNow query did, from its progress reports."""

    name: str
    batches: int
    input_rows: int
    seconds: float
    run_id: str = ""


def _finish(query: StreamingQuery, started: float) -> StreamRun:
    """Wait for an availableNow query and summarise its progress (raises if the query failed)."""
    query.awaitTermination()
    progress = query.recentProgress
    rows = sum(int(p.numInputRows) for p in progress)
    batches = sum(1 for p in progress if int(p.numInputRows) > 0)
    return StreamRun(query.name or "", batches, rows, time.perf_counter() - started, str(query.runId))


def _run_all(starters: Sequence[Callable[[], StreamingQuery]]) -> dict[str, StreamRun]:
    """Start every query, then wait for each: concurrent queries overlap their driver overhead."""
    started = time.perf_counter()
    queries = [start() for start in starters]
    runs: dict[str, StreamRun] = {}
    try:
        for query in queries:
            run = _finish(query, started)
            runs[run.name] = run
    finally:
        for query in queries:
            if query.isActive:
                query.stop()
    return runs


# ---------------------------------------------------------------------------------- bronze


@dataclass(frozen=True)
class BronzeResult:
    """Rows each bronze stream ingested in this run (0 when no new file had landed)."""

    streams: dict[str, StreamRun]

    @property
    def rows(self) -> dict[str, int]:
        return {source: run.input_rows for source, run in self.streams.items()}


def _field_names(ddl: str) -> list[str]:
    return [part.strip().split()[0] for part in ddl.split(",")]


def _clickstream_stream(spark: SparkSession, layout: MedallionLayout, max_files: int | None) -> DataFrame:
    """JSON lines read as text, parsed against the contract; unknown fields rescued, bad lines kept."""
    from pyspark.sql import functions as F

    reader = spark.readStream.format("text")
    if max_files:
        reader = reader.option("maxFilesPerTrigger", max_files)
    lines = reader.load(layout.source_dir("clickstream"))
    known = F.array(*[F.lit(name) for name in _field_names(CLICKSTREAM_FIELDS)])
    as_map = F.from_json("value", "map<string,string>")
    unknown = F.map_filter(as_map, lambda key, _value: ~F.array_contains(known, key))
    parsed = F.from_json(
        "value",
        f"{CLICKSTREAM_FIELDS}, _corrupt_record STRING",
        {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": "_corrupt_record"},
    )
    return lines.select(
        parsed.alias("r"),
        F.when(F.size(unknown) > 0, F.to_json(unknown)).alias("_rescued_data"),
        F.col("_metadata.file_path").alias("_source_file"),
    ).select("r.*", "_rescued_data", "_source_file", F.current_timestamp().alias("_ingested_at"))


def _file_stream(
    spark: SparkSession, layout: MedallionLayout, source: str, *, fmt: str, schema: str, max_files: int | None
) -> DataFrame:
    from pyspark.sql import functions as F

    reader = (
        spark.readStream.format(fmt)
        .schema(schema)
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", "_corrupt_record")
    )
    if fmt == "csv":
        reader = reader.option("header", "true")
    if max_files:
        reader = reader.option("maxFilesPerTrigger", max_files)
    return reader.load(layout.source_dir(source)).select(
        "*",
        F.col("_metadata.file_path").alias("_source_file"),
        F.current_timestamp().alias("_ingested_at"),
    )


def bronze_source(spark: SparkSession, layout: MedallionLayout, source: str, max_files: int | None = None) -> DataFrame:
    """The streaming DataFrame of one raw source, with ingestion metadata (not started)."""
    if source == "clickstream":
        return _clickstream_stream(spark, layout, max_files)
    if source == "orders":
        return _file_stream(spark, layout, "orders", fmt="csv", schema=ORDERS_SCHEMA, max_files=max_files)
    if source == "customers":
        return _file_stream(spark, layout, "customers", fmt="json", schema=CUSTOMERS_SCHEMA, max_files=max_files)
    raise ValueError(f"unknown source {source!r}; known: {', '.join(BRONZE_TABLES)}")


def run_bronze(
    spark: SparkSession,
    layout: MedallionLayout,
    *,
    sources: Sequence[str] = tuple(BRONZE_TABLES),
    max_files_per_trigger: int | None = None,
) -> BronzeResult:
    """Ingest every file landed since the last run into bronze (availableNow, one checkpoint each).

    `max_files_per_trigger` splits the backlog into several micro-batches (one per file with 1),
    which is how a large backlog is ingested in bounded steps; `None` takes it in one batch.
    """
    for source in sources:
        (layout.landing / source).mkdir(parents=True, exist_ok=True)
        ensure_table(spark, layout.table(BRONZE_TABLES[source]), BRONZE_SCHEMAS[source], {})

    def starter(source: str) -> Callable[[], StreamingQuery]:
        def start() -> StreamingQuery:
            return (
                bronze_source(spark, layout, source, max_files_per_trigger)
                .writeStream.format("delta")
                .queryName(f"bronze_{source}")
                .option("checkpointLocation", layout.checkpoint(f"bronze_{source}"))
                .trigger(availableNow=True)
                .start(layout.table(BRONZE_TABLES[source]))
            )

        return start

    runs = _run_all([starter(s) for s in sources])
    return BronzeResult({source: runs[f"bronze_{source}"] for source in sources})


# ---------------------------------------------------------------------------------- silver


@dataclass
class SilverTableResult:
    """Where every bronze row read by one silver flow went (summed over its micro-batches).

    For events and orders: rows_read = quarantined + duplicates + superseded + inserted + updated,
    where `duplicates` are redelivered rows that changed nothing (within the batch or already in
    silver) and `superseded` are older versions of a key replaced by a newer one in the same batch.
    For the SCD2 dimension, `inserted` counts versions opened and `versions_closed` those closed.
    """

    table: str
    quality: QualityCounts = field(default_factory=QualityCounts)
    duplicates: int = 0
    superseded: int = 0
    inserted: int = 0
    updated: int = 0
    versions_closed: int = 0
    batches: int = 0

    @property
    def rows_read(self) -> int:
        return self.quality.rows_in

    @property
    def quarantined(self) -> int:
        return self.quality.dropped


@dataclass(frozen=True)
class SilverResult:
    tables: dict[str, SilverTableResult]
    streams: dict[str, StreamRun]


def ensure_table(spark: SparkSession, location: str, schema: str, properties: Mapping[str, str]) -> None:
    """Create a Delta table at `location` with an explicit schema, once (idempotent; ~30 ms when it exists)."""
    props = ", ".join(f"'{k}' = '{v}'" for k, v in properties.items())
    spark.sql(
        f"CREATE TABLE IF NOT EXISTS {delta_table(location)} ({schema}) USING DELTA"
        + (f" TBLPROPERTIES ({props})" if props else "")
    )


SILVER_EVENTS_SCHEMA = (
    f"{CLICKSTREAM_FIELDS}, device STRING, event_date DATE, _source_file STRING, _ingested_at TIMESTAMP"
)
SILVER_ORDERS_SCHEMA = (
    "order_id BIGINT, customer_id BIGINT, product_id BIGINT, quantity INT, unit_price DOUBLE, amount DOUBLE, "
    "status STRING, order_ts TIMESTAMP, updated_at TIMESTAMP, order_date DATE, _source_file STRING, "
    "_ingested_at TIMESTAMP"
)
DIM_CUSTOMER_SCHEMA = (
    "customer_id BIGINT, first_name STRING, last_name STRING, email STRING, phone STRING, birth_date DATE, "
    "country STRING, city STRING, segment STRING, row_hash STRING, valid_from TIMESTAMP, valid_to TIMESTAMP, "
    "is_current BOOLEAN"
)
SILVER_BATCH_RECORD = (
    "flow STRING, run_id STRING, batch_id BIGINT, rows_in BIGINT, violations MAP<STRING, BIGINT>, "
    "duplicates BIGINT, superseded BIGINT, inserted BIGINT, updated BIGINT, versions_closed BIGINT"
)
SILVER_BATCHES_SCHEMA = f"{SILVER_BATCH_RECORD}, logged_at TIMESTAMP"
QUARANTINE_SCHEMA = (
    "source_table STRING, failed_rule STRING, failed_rules ARRAY<STRING>, record STRING, _source_file STRING, "
    "batch_id BIGINT, quarantined_at TIMESTAMP"
)


def quarantine_rows(df: DataFrame, layout: MedallionLayout, table: str, batch_id: int) -> None:
    """Append failed rows with the rule they failed; idempotent per (flow, batch) on replay."""
    from pyspark.sql import functions as F

    payload = [c for c in df.columns if c not in (FAILED_RULES, "_source_file")]
    (
        df.select(
            F.lit(table).alias("source_table"),
            F.get(FAILED_RULES, 0).alias("failed_rule"),
            F.col(FAILED_RULES).alias("failed_rules"),
            F.to_json(F.struct(*payload)).alias("record"),
            "_source_file",
            F.lit(batch_id).cast("bigint").alias("batch_id"),
            F.current_timestamp().alias("quarantined_at"),
        )
        .write.format("delta")
        .mode("append")
        .option("txnAppId", f"quarantine_{layout.prefix}{table}")
        .option("txnVersion", batch_id)
        .save(layout.table(QUARANTINE))
    )


def merge_rows(
    spark: SparkSession, location: str, rows: DataFrame, on: str, *, update_when: str | None = None
) -> dict[str, int]:
    """MERGE `rows` (alias `s`) into the Delta table at `location` (alias `t`) and return its metrics.

    Unmatched rows are inserted; matched rows are updated only when `update_when` is given and
    holds (e.g. `s.updated_at > t.updated_at`: a replayed or older version changes nothing), so
    every silver upsert is idempotent on replay.
    """
    update = "" if update_when is None else f" WHEN MATCHED AND ({update_when}) THEN UPDATE SET *"
    return merge_into(spark, location, rows, f"ON {on}{update} WHEN NOT MATCHED THEN INSERT *")


SilverBatch = Callable[["SparkSession", MedallionLayout, Sequence[Expectation], "DataFrame", int], SilverTableResult]
"""One silver flow's work on one micro-batch: returns what the batch did (its rows' fates)."""


def _logged_batch(
    flow: str, process: SilverBatch, layout: MedallionLayout, expectations: Sequence[Expectation], run_id: str
) -> Callable[[DataFrame, int], None]:
    """The foreachBatch function of one silver flow: process the batch, then log what it did.

    It uses only the batch's own session and values it carries (no driver-side objects), because
    over Spark Connect / Databricks Connect the function is pickled and run by the server; the
    outcome therefore travels through the `_silver_batches` Delta table, not through Python state.
    The batch is cached while it runs: it is read several times (counts, quarantine, MERGE).
    """

    def run(batch: DataFrame, batch_id: int) -> None:
        from pyspark.sql import functions as F

        spark = batch.sparkSession
        batch.persist()
        try:
            done = process(spark, layout, expectations, batch, batch_id)
        finally:
            batch.unpersist()
        record = (
            flow,
            run_id,
            batch_id,
            done.quality.rows_in,
            done.quality.violations,
            done.duplicates,
            done.superseded,
            done.inserted,
            done.updated,
            done.versions_closed,
        )
        (
            spark.createDataFrame([record], SILVER_BATCH_RECORD)
            .withColumn("logged_at", F.current_timestamp())
            .write.format("delta")
            .mode("append")
            .save(layout.table(SILVER_BATCHES))
        )

    return run


def _silver_events_batch(
    spark: SparkSession, layout: MedallionLayout, expectations: Sequence[Expectation], batch: DataFrame, batch_id: int
) -> SilverTableResult:
    from pyspark.sql import functions as F

    events = batch.withColumn("device", F.get_json_object("_rescued_data", "$.device"))
    split = apply_expectations(events, SILVER_EVENTS, expectations)
    if split.counts.dropped:
        quarantine_rows(split.quarantined, layout, SILVER_EVENTS, batch_id)
    rows = split.valid.dropDuplicates(["event_id", "event_ts"]).select(
        *_field_names(CLICKSTREAM_FIELDS),
        "device",
        F.to_date("event_ts").alias("event_date"),
        "_source_file",
        "_ingested_at",
    )
    metrics = merge_rows(
        spark, layout.table(SILVER_EVENTS), rows, "t.event_id = s.event_id AND t.event_ts = s.event_ts"
    )
    return SilverTableResult(
        SILVER_EVENTS,
        quality=split.counts,
        inserted=metrics["num_inserted_rows"],
        duplicates=split.counts.rows_in - split.counts.dropped - metrics["num_inserted_rows"],
        batches=1,
    )


def _silver_orders_batch(
    spark: SparkSession, layout: MedallionLayout, expectations: Sequence[Expectation], batch: DataFrame, batch_id: int
) -> SilverTableResult:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    split = apply_expectations(batch, SILVER_ORDERS, expectations)
    if split.counts.dropped:
        quarantine_rows(split.quarantined, layout, SILVER_ORDERS, batch_id)
    versions = split.valid.dropDuplicates(["order_id", "updated_at"])
    latest = (
        versions.withColumn("_rank", F.row_number().over(Window.partitionBy("order_id").orderBy(F.desc("updated_at"))))
        .where("_rank = 1")
        .select(
            *_field_names(ORDERS_SCHEMA)[:-1],
            F.to_date("order_ts").alias("order_date"),
            "_source_file",
            "_ingested_at",
        )
    ).cache()
    shape = split.valid.agg(
        F.count(F.lit(1)).alias("rows"),
        F.count_distinct("order_id", "updated_at").alias("versions"),
        F.count_distinct("order_id").alias("keys"),
    ).first()
    assert shape is not None
    metrics = merge_rows(
        spark,
        layout.table(SILVER_ORDERS),
        latest,
        "t.order_id = s.order_id",
        update_when="s.updated_at > t.updated_at",
    )
    latest.unpersist()
    changed = metrics["num_inserted_rows"] + metrics["num_updated_rows"]
    return SilverTableResult(
        SILVER_ORDERS,
        quality=split.counts,
        duplicates=int(shape["rows"]) - int(shape["versions"]) + int(shape["keys"]) - changed,
        superseded=int(shape["versions"]) - int(shape["keys"]),
        inserted=metrics["num_inserted_rows"],
        updated=metrics["num_updated_rows"],
        batches=1,
    )


def _snapshot_number(path_column: str) -> Any:
    from pyspark.sql import functions as F

    return F.regexp_extract(path_column, r"snapshot=(\d+)", 1).cast("int")


def apply_scd2(spark: SparkSession, dimension: str, snapshots: DataFrame) -> dict[str, int]:
    """Merge one or more full customer snapshots into the SCD2 dimension at `dimension`, in ONE MERGE.

    `snapshots` has the customer columns, `updated_at` and `_snapshot` (its order). A version is a
    row whose tracked attributes differ from the customer's previous row (the previous snapshot
    in this batch, or the dimension's current row). Versions chain with `lead()`; the dimension's
    current row of a changed customer is closed by the first new version. The classic staging
    trick does both in one MERGE: changed customers appear once with the join key (to close the
    current row) and every new version appears with a NULL key (never matches, so it inserts).
    Rows not newer than the current version are ignored, so replaying a batch changes nothing.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    current = (
        spark.read.format("delta")
        .load(dimension)
        .where("is_current")
        .select("customer_id", F.col("row_hash").alias("_current_hash"), F.col("valid_from").alias("_current_from"))
    )
    row_hash = F.sha2(F.concat_ws("|", *[F.coalesce(F.col(c).cast("string"), F.lit("∅")) for c in SCD2_TRACKED]), 256)
    by_customer = Window.partitionBy("customer_id").orderBy("_snapshot")
    incoming = (
        snapshots.withColumn("birth_date", F.to_date("birth_date"))
        .select(
            "customer_id",
            *SCD2_TRACKED,
            row_hash.alias("row_hash"),
            F.col("updated_at").alias("valid_from"),
            "_snapshot",
        )
        .join(current, "customer_id", "left")
        .where("_current_from IS NULL OR valid_from > _current_from")
    )
    versions = (
        incoming.withColumn("_previous", F.coalesce(F.lag("row_hash").over(by_customer), F.col("_current_hash")))
        .where("_previous IS NULL OR row_hash <> _previous")
        .withColumn("valid_to", F.lead("valid_from").over(by_customer))
        .withColumn("_first", F.row_number().over(by_customer) == 1)
    )
    columns = ["customer_id", *SCD2_TRACKED, "row_hash", "valid_from", "valid_to"]
    staged = (
        versions.where("_first AND _current_hash IS NOT NULL")
        .select(F.col("customer_id").alias("_merge_key"), *columns)
        .unionByName(versions.select(F.lit(None).cast("bigint").alias("_merge_key"), *columns))
    )
    return merge_into(
        spark,
        dimension,
        staged,
        "ON t.customer_id = s._merge_key AND t.is_current"
        " WHEN MATCHED THEN UPDATE SET is_current = false, valid_to = s.valid_from"
        f" WHEN NOT MATCHED AND s._merge_key IS NULL THEN INSERT ({', '.join(columns)}, is_current)"
        f" VALUES ({', '.join(f's.{c}' for c in columns)}, s.valid_to IS NULL)",
    )


def _dim_customer_batch(
    spark: SparkSession, layout: MedallionLayout, expectations: Sequence[Expectation], batch: DataFrame, batch_id: int
) -> SilverTableResult:
    split = apply_expectations(batch, DIM_CUSTOMER, expectations)
    if split.counts.dropped:
        quarantine_rows(split.quarantined, layout, DIM_CUSTOMER, batch_id)
    snapshots = split.valid.withColumn("_snapshot", _snapshot_number("_source_file"))
    metrics = apply_scd2(spark, layout.table(DIM_CUSTOMER), snapshots)
    return SilverTableResult(
        DIM_CUSTOMER,
        quality=split.counts,
        inserted=metrics["num_inserted_rows"],
        versions_closed=metrics["num_updated_rows"],
        batches=1,
    )


@dataclass(frozen=True)
class SilverFlow:
    """One silver table fed by one bronze table through a per-micro-batch function."""

    source: str
    process: SilverBatch
    expectations: Sequence[Expectation]


def _read_silver_batches(
    spark: SparkSession, layout: MedallionLayout, run_id: str, flows: Mapping[str, SilverFlow]
) -> dict[str, SilverTableResult]:
    """Sum the batch log rows of one silver run per flow (a flow with no new data sums to zeros)."""
    results = {table: SilverTableResult(table) for table in flows}
    logged = spark.read.format("delta").load(layout.table(SILVER_BATCHES)).where(f"run_id = '{run_id}'").collect()
    for row in logged:
        result = results[row["flow"]]
        actions = {e.name: e.action for e in flows[row["flow"]].expectations}
        violations = {rule: int(n) for rule, n in (row["violations"] or {}).items()}
        result.quality.add(QualityCounts(int(row["rows_in"]), violations, {r: actions[r] for r in violations}))
        result.duplicates += int(row["duplicates"])
        result.superseded += int(row["superseded"])
        result.inserted += int(row["inserted"])
        result.updated += int(row["updated"])
        result.versions_closed += int(row["versions_closed"])
        result.batches += 1
    return results


def run_silver_flows(spark: SparkSession, layout: MedallionLayout, flows: Mapping[str, SilverFlow]) -> SilverResult:
    """Run every flow as an availableNow `foreachBatch` stream (concurrently) and report what its batches did.

    The checkpoint makes each flow incremental (only bronze commits not yet processed are read).
    What each batch did is read back from this run's rows of the `_silver_batches` log.
    """
    ensure_table(spark, layout.table(SILVER_BATCHES), SILVER_BATCHES_SCHEMA, {})
    run_id = uuid.uuid4().hex

    def starter(table: str) -> Callable[[], StreamingQuery]:
        flow = flows[table]

        def start() -> StreamingQuery:
            return (
                spark.readStream.format("delta")
                .load(layout.table(flow.source))
                .writeStream.queryName(f"silver_{table}")
                .foreachBatch(_logged_batch(table, flow.process, layout, flow.expectations, run_id))
                .option("checkpointLocation", layout.checkpoint(f"silver_{table}"))
                .trigger(availableNow=True)
                .start()
            )

        return start

    streams = _run_all([starter(t) for t in flows])
    tables = _read_silver_batches(spark, layout, run_id, flows)
    return SilverResult(tables, {table: streams[f"silver_{table}"] for table in flows})


def run_silver(
    spark: SparkSession,
    layout: MedallionLayout,
    *,
    expectations: Mapping[str, Sequence[Expectation]] = DEFAULT_EXPECTATIONS,
) -> SilverResult:
    """Bring every silver table up to date with bronze (foreachBatch streams, availableNow).

    Raises (through the stream) when a `fail` expectation is violated: that micro-batch writes
    nothing and its checkpoint does not advance, so fixing the data and rerunning resumes from the
    same place.
    """
    ensure_table(spark, layout.table(SILVER_EVENTS), SILVER_EVENTS_SCHEMA, CDF)
    ensure_table(spark, layout.table(SILVER_ORDERS), SILVER_ORDERS_SCHEMA, CDF)
    ensure_table(spark, layout.table(DIM_CUSTOMER), DIM_CUSTOMER_SCHEMA, CDF)
    ensure_table(spark, layout.table(QUARANTINE), QUARANTINE_SCHEMA, {})
    flows = {
        SILVER_EVENTS: SilverFlow(BRONZE_TABLES["clickstream"], _silver_events_batch, expectations[SILVER_EVENTS]),
        SILVER_ORDERS: SilverFlow(BRONZE_TABLES["orders"], _silver_orders_batch, expectations[SILVER_ORDERS]),
        DIM_CUSTOMER: SilverFlow(BRONZE_TABLES["customers"], _dim_customer_batch, expectations[DIM_CUSTOMER]),
    }
    return run_silver_flows(spark, layout, flows)


# ---------------------------------------------------------------------------------- gold


@dataclass(frozen=True)
class GoldFlowRun:
    """One gold table's incremental refresh: the silver versions read and the days recomputed."""

    table: str
    source: str
    from_version: int | None
    to_version: int
    days_recomputed: int

    @property
    def skipped(self) -> bool:
        return self.from_version is None


@dataclass(frozen=True)
class GoldResult:
    flows: dict[str, GoldFlowRun]


@dataclass(frozen=True)
class GoldSpec:
    """A gold aggregate: its source, grouping keys (the first is the day it is refreshed by) and measures."""

    table: str
    source: str
    keys: tuple[str, ...]
    measures: Mapping[str, str]
    schema: str


GOLD_SPECS: tuple[GoldSpec, ...] = (
    GoldSpec(
        GOLD_DAILY_SALES,
        SILVER_ORDERS,
        ("order_date",),
        {
            "orders": "count(*)",
            "units": "CAST(sum(quantity) AS BIGINT)",
            "revenue": "CAST(round(sum(amount), 2) AS DECIMAL(18, 2))",
            "customers": "count(DISTINCT customer_id)",
            "returned_orders": "count_if(status = 'returned')",
        },
        "order_date DATE, orders BIGINT, units BIGINT, revenue DECIMAL(18, 2), customers BIGINT, returned_orders BIGINT",
    ),
    GoldSpec(
        GOLD_DAILY_FUNNEL,
        SILVER_EVENTS,
        ("event_date", "channel"),
        {
            "views": "count_if(event_type = 'view')",
            "carts": "count_if(event_type = 'cart')",
            "purchases": "count_if(event_type = 'purchase')",
            "sessions": "count(DISTINCT session_id)",
        },
        "event_date DATE, channel STRING, views BIGINT, carts BIGINT, purchases BIGINT, sessions BIGINT",
    ),
)


def table_version(spark: SparkSession, location: str) -> int:
    """The latest committed version of a Delta table (reads only the log)."""
    version = latest_version(spark, location)
    if version is None:
        raise ValueError(f"no Delta table at {location}")
    return version


def _processed_versions(spark: SparkSession, layout: MedallionLayout) -> dict[str, int]:
    """The last silver version each gold flow has processed (the state table is append-only)."""
    rows = spark.sql(f"SELECT flow, max(source_version) AS v FROM {layout.sql(PIPELINE_STATE)} GROUP BY flow").collect()
    return {str(r["flow"]): int(r["v"]) for r in rows}


def aggregate(spark: SparkSession, layout: MedallionLayout, spec: GoldSpec) -> DataFrame:
    """The gold aggregate computed in full from silver: what incremental refresh must equal."""
    source = spark.read.format("delta").load(layout.table(spec.source))
    from pyspark.sql import functions as F

    return source.groupBy(*spec.keys).agg(*[F.expr(expr).alias(name) for name, expr in spec.measures.items()])


def _refresh_gold(spark: SparkSession, layout: MedallionLayout, spec: GoldSpec, done: int | None) -> GoldFlowRun:
    """Recompute the days touched by silver changes since `done` and replace exactly those days."""
    from pyspark.sql import functions as F

    source = layout.table(spec.source)
    latest = table_version(spark, source)
    start = 0 if done is None else done + 1
    if start > latest:
        return GoldFlowRun(spec.table, spec.source, None, latest, 0)
    day = spec.keys[0]
    touched = [
        r[day]
        for r in spark.read.format("delta")
        .option("readChangeFeed", "true")
        .option("startingVersion", start)
        .option("endingVersion", latest)
        .load(source)
        .select(day)
        .distinct()
        .collect()
        if r[day] is not None
    ]
    if touched:
        days = f"{day} IN ({', '.join(repr(str(d)) for d in sorted(touched))})"
        (
            spark.read.format("delta")
            .option("versionAsOf", latest)
            .load(source)
            .where(days)
            .groupBy(*spec.keys)
            .agg(*[F.expr(expr).alias(name) for name, expr in spec.measures.items()])
            .write.format("delta")
            .mode("overwrite")
            .option("replaceWhere", days)
            .save(layout.table(spec.table))
        )
    return GoldFlowRun(spec.table, spec.source, start, latest, len(touched))


def run_gold(spark: SparkSession, layout: MedallionLayout, *, specs: Sequence[GoldSpec] = GOLD_SPECS) -> GoldResult:
    """Refresh every gold table from the silver change feed since the version it last processed.

    Each refresh reads which days changed (any change type, from the change feed), recomputes those
    days from the silver snapshot at the ending version and swaps them in with one transactional
    `replaceWhere` overwrite (a day with no rows left simply disappears). Crash-safe by
    construction: replaying a version range after a crash before the state append produces the
    same rows. The state table is append-only (one row per refresh). The gold tables refresh
    concurrently (Spark runs jobs from several driver threads side by side).
    """
    ensure_table(spark, layout.table(PIPELINE_STATE), "flow STRING, source_version BIGINT, updated_at TIMESTAMP", {})
    for spec in specs:
        ensure_table(spark, layout.table(spec.table), spec.schema, {})
    done = _processed_versions(spark, layout)
    with ThreadPoolExecutor(max_workers=len(specs)) as pool:
        runs = list(pool.map(lambda spec: _refresh_gold(spark, layout, spec, done.get(spec.table)), specs))
    processed = [(r.table, r.to_version) for r in runs if not r.skipped]
    if processed:
        from pyspark.sql import functions as F

        (
            spark.createDataFrame(processed, "flow STRING, source_version BIGINT")
            .withColumn("updated_at", F.current_timestamp())
            .write.format("delta")
            .mode("append")
            .save(layout.table(PIPELINE_STATE))
        )
    return GoldResult({r.table: r for r in runs})


# ---------------------------------------------------------------------------------- all layers


@dataclass(frozen=True)
class MedallionResult:
    bronze: BronzeResult
    silver: SilverResult
    gold: GoldResult
    seconds: float


def run_medallion(
    spark: SparkSession,
    layout: MedallionLayout,
    *,
    expectations: Mapping[str, Sequence[Expectation]] = DEFAULT_EXPECTATIONS,
    max_files_per_trigger: int | None = None,
) -> MedallionResult:
    """Bronze, silver and gold in order, each incremental; rerunning with no new files changes nothing."""
    started = time.perf_counter()
    bronze = run_bronze(spark, layout, max_files_per_trigger=max_files_per_trigger)
    silver = run_silver(spark, layout, expectations=expectations)
    gold = run_gold(spark, layout)
    return MedallionResult(bronze, silver, gold, time.perf_counter() - started)
