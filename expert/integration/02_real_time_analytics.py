"""Real-time analytics: Kafka to a live topic in milliseconds, and to Delta and Snowflake exactly once.

Why it matters in production: a live dashboard is only as good as its counts. Streams crash and restart, producers
redeliver, some records arrive broken and some arrive long after their event time; a sink that is merely "at least
once" double-counts revenue after every restart. This pattern runs the seed's pipeline Events → Kafka → Spark
Structured Streaming → Delta → aggregations → Snowflake → dashboard for real, crashes it mid-stream, restarts it
from its checkpoint and proves that every event landed exactly once, with the latency it measured.

Two lanes, as the field splits them. Operational (react: flag, alert, personalise): Real-time Mode, stateless
(parse, filter, a broadcast join), at least once into a Kafka topic, in milliseconds. Analytical (count: revenue,
funnels): micro-batches, stateful dedup, exactly once into tables, in seconds. One run measures both side by side.
Real-time Mode keeps every task of its query running for the whole batch, one per Kafka partition, so the queries
beside it need slots of their own: the local session asks for `local[cores + 4]`, not `local[*]`.

Learning objectives:
- Read Kafka with Structured Streaming from recorded offsets; parse, validate, quarantine
- Run a stateless Real-time Mode query to a live topic, with the task slots it holds
- Deduplicate on the event id within a watermark, and account for events that arrive beyond it
- Make foreachBatch sinks idempotent: Delta txnAppId/txnVersion on every append, and a
  Snowflake batch ledger committed in the same transaction as the data
- Crash mid-stream, restart from the checkpoint, prove exactly-once in silver, gold and Snowflake
- Measure produce→visible latency in both lanes, and the micro-batch throughput
- Query the same Delta tables in batch afterwards, and snapshot the dashboard as one HTML file

Run it:
    python expert/integration/02_real_time_analytics.py [--rows N] [--rate RECORDS_PER_S]
        [--trigger-before SECONDS] [--trigger-after SECONDS]
Locally: a Kafka 4.4 broker (KRaft) on 127.0.0.1, local Spark + Delta with the official Kafka source, fakesnow's
Snowflake server on 127.0.0.1. With .env: KAFKA_BOOTSTRAP_SERVERS (+ SASL) for your cluster, SNOWFLAKE_* for your
account (same batches, same transactions), SPARK_REMOTE for a Connect server. The machinery (event plan, pacing,
crash plan, sink log, live view, latency) is in `expert/streaming/`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from expert.lakehouse.delta_ops import delta_table, history
from expert.runtime.data import EVENT_TYPES
from expert.runtime.kafka import KafkaEndpoint, kafka_endpoint
from expert.runtime.pattern import PatternRun, run_pattern
from expert.streaming.crash import CrashPlan, replay_by_hand
from expert.streaming.dashboard import create_views, write_dashboard
from expert.streaming.driver import StreamOutcome, StreamSetup, drive_stream, report_stream
from expert.streaming.events import EventPlan, normalise_gold, plan_events, revenue_by_minute, show_plan
from expert.streaming.latency import StreamRecord, measure_latency, measure_throughput, read_stream_record
from expert.streaming.monitor import AnalyticalQueries, StreamMonitor
from expert.streaming.producer import Pacing
from expert.streaming.realtime import LiveLane, compare_lanes, live_lane
from expert.streaming.sink_log import InstrumentedSink, create_log
from expert.streaming.topics import end_offsets, ensure_topic

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

    from expert.runtime.snowflake import SnowflakeEndpoint, SnowflakeSession

TOPIC = "expert.ecommerce.events"
PARTITIONS = 3
LIVE_TOPIC = "expert.ecommerce.live"
REAL_TIME_BATCH = "5 minutes"
"""A Real-time Mode batch's length (Spark's default): a checkpoint interval, not a latency. The boundary measured
here paused the output ~0.9 s: short batches pause often, long ones replay more after a failure."""
WINDOW = "1 minute"
WATERMARK = "2 minutes"
EVENT_SCHEMA = (
    "event_id BIGINT, session_id BIGINT, customer_id BIGINT, product_id BIGINT, event_type STRING, "
    "channel STRING, price DECIMAL(10,2), event_ts TIMESTAMP"
)
# One transaction id per writer: Delta skips a write whose (appId, version) it has already committed.
# A new checkpoint restarts batch ids at 0, so it needs new app ids; here both are recreated per run.
BRONZE_APP, QUARANTINE_APP, SILVER_APP = "rta-bronze", "rta-quarantine", "rta-silver"
LEDGER_PIPELINE = "rta-silver-to-snowflake"
BRONZE_TRIGGER_S = 5.0
"""Bronze is the audit copy, not on the dashboard's path: a slower trigger leaves the cores to silver."""
MAX_PER_BATCH = 20_000
"""maxOffsetsPerTrigger: when behind (after an outage), one batch takes up to this many records, so the fixed cost
of a batch (seconds of commits) is paid once per 20,000 records, not once per few hundred, and no batch grows
without bound."""
SILVER_CHECKPOINT_INTERVAL = 100
"""silver's delta.checkpointInterval (default 10): a commit that checkpoints took 1.1-1.8 s, the others ~0.5 s."""
DEFAULT_ROWS = 2_000
DEFAULT_RATE = 100.0
DEFAULT_TRIGGERS = (0.0, 3.0)
"""processingTime seconds before the crash (0: the next batch starts when the last ends) and after the restart."""
WARMUP_ROUNDS, WARMUP_RECORDS = 2, 10
"""First 2 rounds of 10 records, each once silver committed a batch (a cold start measured apart), then --rate."""
CRASH_AFTER_SENT, CRASH_AFTER_STEADY_BATCHES, HOLD_AT = 0.25, 2, 0.5
"""The silver sink crashes once 25% of the records are out and 2 steady batches committed; the producer
waits at 50% until the crash happened, so it is mid-stream even when batches are slow."""


def connect_kafka(run: PatternRun, endpoint: KafkaEndpoint) -> dict[int, int]:
    """Say which cluster this is, create the topic, and note where this run's records will start."""
    if endpoint.is_local:
        how = f"one Apache Kafka broker (KRaft) on {endpoint.bootstrap_servers}, the same client code"
        run.stand_in("a managed Kafka cluster (Confluent Cloud, MSK, Event Hubs)", how)
        if endpoint.start is not None and endpoint.started_here:
            start = endpoint.start.start_seconds + endpoint.start.format_seconds
            run.figure("broker start", start, "s", how="JVM launch to an admin client seeing the broker")
    partitions = ensure_topic(endpoint, TOPIC, PARTITIONS)
    starting = end_offsets(endpoint, TOPIC, partitions)
    run.say(f"Topic {TOPIC}: {partitions} partitions; this run reads from offsets {starting}.")
    run.check("the topic exists with a leader for every partition", partitions > 0, f"{partitions} partitions")
    return starting


@dataclass(frozen=True)
class Lake:
    """Where the run's Delta tables and checkpoints live."""

    root: Path

    def table(self, name: str) -> str:
        return str(self.root / "delta" / name)

    def checkpoint(self, name: str) -> str:
        return str(self.root / "checkpoints" / name)


class SnowflakeLoader:
    """Loads one silver batch into Snowflake exactly once: rows, gold windows and ledger row in one transaction.

    `foreachBatch` is at-least-once: after a crash Spark runs the last batch again. The ledger row
    commits with the rows, so a replay finds it and does nothing. The rows travel as one bound JSON
    array flattened by INSERT … SELECT, which (unlike `write_pandas`: PUT + COPY) a transaction holds.
    """

    INSERT_EVENTS = (
        "INSERT INTO EVENTS (EVENT_ID, SESSION_ID, CUSTOMER_ID, PRODUCT_ID, EVENT_TYPE, CHANNEL, PRICE, EVENT_TS, "
        "PRODUCED_AT, BATCH_ID) SELECT e.value:EVENT_ID::NUMBER(38,0), e.value:SESSION_ID::NUMBER(38,0), "
        "e.value:CUSTOMER_ID::NUMBER(38,0), e.value:PRODUCT_ID::NUMBER(38,0), e.value:EVENT_TYPE::VARCHAR, "
        "e.value:CHANNEL::VARCHAR, e.value:PRICE::NUMBER(10,2), TO_TIMESTAMP_NTZ(e.value:EVENT_TS_MS::NUMBER(38,0), 3), "
        "TO_TIMESTAMP_NTZ(e.value:PRODUCED_AT_MS::NUMBER(38,0), 3), %s FROM TABLE(FLATTEN(INPUT => PARSE_JSON(%s))) e"
    )
    TOUCHED = "SELECT DISTINCT DATE_TRUNC('MINUTE', EVENT_TS) FROM EVENTS WHERE BATCH_ID = %s"

    def __init__(self, session: SnowflakeSession) -> None:
        self.session = session

    def create_tables(self) -> None:
        """This run's tables, recreated: the checkpoint is new, so batch ids (and the ledger) start over."""
        for table in (
            "EVENTS (EVENT_ID NUMBER(38,0), SESSION_ID NUMBER(38,0), CUSTOMER_ID NUMBER(38,0), PRODUCT_ID NUMBER(38,0), "
            "EVENT_TYPE VARCHAR, CHANNEL VARCHAR, PRICE NUMBER(10,2), EVENT_TS TIMESTAMP_NTZ, PRODUCED_AT TIMESTAMP_NTZ, "
            "BATCH_ID NUMBER(38,0))",
            "GOLD_PRODUCT_MINUTE (WINDOW_START TIMESTAMP_NTZ, PRODUCT_ID NUMBER(38,0), VIEWS NUMBER(38,0), "
            "CARTS NUMBER(38,0), PURCHASES NUMBER(38,0), REVENUE NUMBER(18,2))",
            "BATCH_LEDGER (PIPELINE VARCHAR, BATCH_ID NUMBER(38,0), ROWS_LOADED NUMBER(38,0), LOADED_AT TIMESTAMP_NTZ)",
        ):
            self.session.execute(f"CREATE OR REPLACE TABLE {table}")

    def load(
        self, frame: pd.DataFrame, batch_id: int, *, before_commit: Callable[[SnowflakeSession], None] | None = None
    ) -> bool:
        """Load the collected batch (`SilverSink.collect`) unless the ledger has it; False when skipped.
        `before_commit(session)` adds statements that must be exactly as durable as the batch."""
        ledger = "SELECT COUNT(*) FROM BATCH_LEDGER WHERE PIPELINE = %s AND BATCH_ID = %s"
        if self.session.scalar(ledger, (LEDGER_PIPELINE, batch_id)):
            return False
        self.session.execute("BEGIN TRANSACTION")
        try:
            events = frame.assign(PRICE=frame["PRICE"].astype(str)).to_json(orient="records")  # exact cents
            self.session.execute(self.INSERT_EVENTS, (batch_id, events))
            # Gold windows touched by this batch are recomputed from EVENTS: a pure function of the data.
            self.session.execute(f"DELETE FROM GOLD_PRODUCT_MINUTE WHERE WINDOW_START IN ({self.TOUCHED})", (batch_id,))
            self.session.execute(
                "INSERT INTO GOLD_PRODUCT_MINUTE SELECT DATE_TRUNC('MINUTE', EVENT_TS) AS WINDOW_START, PRODUCT_ID, "
                "COUNT_IF(EVENT_TYPE = 'view'), COUNT_IF(EVENT_TYPE = 'cart'), COUNT_IF(EVENT_TYPE = 'purchase'), "
                "CAST(SUM(IFF(EVENT_TYPE = 'purchase', PRICE, 0)) AS NUMBER(18,2)) FROM EVENTS "
                f"WHERE DATE_TRUNC('MINUTE', EVENT_TS) IN ({self.TOUCHED}) GROUP BY 1, 2",
                (batch_id,),
            )
            self.session.execute(
                "INSERT INTO BATCH_LEDGER (PIPELINE, BATCH_ID, ROWS_LOADED, LOADED_AT) "
                "VALUES (%s, %s, %s, CURRENT_TIMESTAMP())",
                (LEDGER_PIPELINE, batch_id, len(frame)),
            )
            if before_commit is not None:
                before_commit(self.session)
            self.session.execute("COMMIT")
        except Exception:
            self.session.execute("ROLLBACK")
            raise
        return True


def kafka_source(
    spark: SparkSession, endpoint: KafkaEndpoint, starting: dict[int, int], *, max_per_batch: int | None = None
) -> DataFrame:
    """The official Kafka source, starting at the offsets recorded before this run produced anything."""
    reader = spark.readStream.format("kafka").options(**endpoint.spark_options()).option("subscribe", TOPIC)
    if max_per_batch is not None:  # a micro-batch caps its size; a real-time batch has no size
        reader = reader.option("maxOffsetsPerTrigger", max_per_batch)
    offsets = json.dumps({TOPIC: {str(p): o for p, o in starting.items()}})
    return reader.option("startingOffsets", offsets).option("failOnDataLoss", "true").load()


def parse_and_validate(raw: DataFrame) -> DataFrame:
    """Every record with its Kafka coordinates, parsed fields, and why it is invalid (null if it is not)."""
    from pyspark.sql import functions as F

    value = F.col("value").cast("string")
    parsed = raw.select(
        value.alias("raw_value"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        F.col("timestamp").alias("produced_at"),
        F.from_json(value, EVENT_SCHEMA).alias("e"),
    )
    event_type = F.col("e.event_type")
    reason = (
        F.when(F.col("e.event_id").isNull(), F.lit("unparseable JSON or no event_id"))
        .when(event_type.isNull() | ~event_type.isin(*EVENT_TYPES), F.lit("unknown event_type"))
        .when(F.col("e.event_ts").isNull(), F.lit("no event_ts"))
        .when(F.col("e.price").isNull() | (F.col("e.price") < 0), F.lit("missing or negative price"))
    )
    return parsed.select(
        "raw_value", "kafka_partition", "kafka_offset", "produced_at", "e.*", reason.alias("invalid_reason")
    )


def silver_input(parsed: DataFrame) -> DataFrame:
    """Valid events, deduplicated on event_id within the watermark (older events are dropped, and counted)."""
    columns = ("event_id", "session_id", "customer_id", "product_id", "event_type", "channel", "price", "event_ts")
    return (
        parsed.filter("invalid_reason IS NULL")
        .select(*columns, "produced_at")
        .withWatermark("event_ts", WATERMARK)
        .dropDuplicatesWithinWatermark(["event_id"])
    )


def write_products(spark: SparkSession, lake: Lake, plan: EventPlan) -> None:
    """The static side of the operational lane's join: the shop's product table, in Delta."""
    products = spark.createDataFrame(plan.products[["product_id", "name", "category"]])
    products.write.format("delta").mode("overwrite").save(lake.table("products"))


def start_operational_query(
    spark: SparkSession, endpoint: KafkaEndpoint, starting: dict[int, int], lake: Lake
) -> StreamingQuery:
    """Real-time Mode: every valid event, enriched from the product table, to the live topic.

    Stateless (parse, filter, a stream-static broadcast join; no watermark, no dedup), so each
    record goes out as soon as a task reads it. At least once: after a restart it may send a
    record again, and a redelivered event goes out twice; consumers must tolerate both.
    """
    from pyspark.sql import functions as F

    products = F.broadcast(spark.read.format("delta").load(lake.table("products")))
    valid = parse_and_validate(kafka_source(spark, endpoint, starting)).filter("invalid_reason IS NULL")
    fields = ("event_id", "event_type", "product_id", "category", "name", "price", "event_ts")
    produced = F.unix_millis("produced_at").alias("produced_ms")
    live = valid.join(products, "product_id", "left").select(
        F.col("event_id").cast("string").alias("key"), F.to_json(F.struct(*fields, produced)).alias("value")
    )
    return (
        live.writeStream.format("kafka")
        .queryName("rta_live")
        .options(**endpoint.spark_options())
        .option("topic", LIVE_TOPIC)
        .option("checkpointLocation", lake.checkpoint("live"))
        .outputMode("update")
        .trigger(realTime=REAL_TIME_BATCH)
        .start()
    )


class BronzeSink:
    """foreachBatch of the bronze query: every record to bronze, malformed ones to quarantine, idempotently."""

    def __init__(self, lake: Lake) -> None:
        self.lake = lake

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        from pyspark.sql import functions as F

        batch = batch.withColumn("ingested_at", F.current_timestamp()).persist()
        try:
            rows, quarantined = batch.agg(F.count("*"), F.count("invalid_reason")).first()  # type: ignore[misc]
            if rows == 0:
                return
            append = batch.coalesce(1).write.format("delta").mode("append")
            append.option("txnAppId", BRONZE_APP).option("txnVersion", batch_id).save(self.lake.table("bronze"))
            if quarantined:
                keep = ("raw_value", "invalid_reason", "kafka_partition", "kafka_offset", "produced_at", "ingested_at")
                append = batch.filter("invalid_reason IS NOT NULL").select(*keep).write.format("delta").mode("append")
                append = append.option("txnAppId", QUARANTINE_APP).option("txnVersion", batch_id)
                append.save(self.lake.table("quarantine"))
        finally:
            batch.unpersist()


class SilverSink:
    """foreachBatch of the silver query: silver append (Delta txn), then Snowflake (ledger transaction).

    Delta commits first: it is the system of record. Each step is idempotent, so a batch Spark runs
    again after a crash at any point does only what is missing. It carries only picklable settings
    and opens its own Snowflake session where it runs (the driver, or a Connect server's worker).
    """

    def __init__(self, lake: Lake, snowflake: SnowflakeEndpoint) -> None:
        self.lake, self.snowflake = lake, snowflake
        self._session: SnowflakeSession | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_session": None}  # a connection does not travel; the worker opens its own

    @property
    def session(self) -> SnowflakeSession:
        if self._session is None:
            self._session = self.snowflake.open()
        return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.connection.close()
            self._session = None

    def prepare(self, batch: DataFrame, batch_id: int) -> DataFrame:
        """Tag the rows with their batch and cache them: the batch is read once, written twice."""
        from pyspark.sql import functions as F

        return batch.withColumn("batch_id", F.lit(batch_id).cast("bigint")).persist()

    def collect(self, batch: DataFrame) -> pd.DataFrame:
        """Upper-case columns for Snowflake; PRICE as Decimal, the two timestamps as epoch ms."""
        from pyspark.sql import functions as F

        columns = ("event_id", "session_id", "customer_id", "product_id", "event_type", "channel", "price")
        times = F.unix_millis("event_ts").alias("EVENT_TS_MS"), F.unix_millis("produced_at").alias("PRODUCED_AT_MS")
        return batch.select(*(F.col(c).alias(c.upper()) for c in columns), *times).toPandas()

    def write_delta(self, batch: DataFrame, batch_id: int) -> None:
        (
            batch.coalesce(1)  # one file per micro-batch, not one per shuffle partition
            .write.format("delta")
            .mode("append")
            .option("txnAppId", SILVER_APP)
            .option("txnVersion", batch_id)
            .option("userMetadata", json.dumps({"batch_id": batch_id}))
            .option("delta.checkpointInterval", SILVER_CHECKPOINT_INTERVAL)  # applies when the append creates it
            .save(self.lake.table("silver"))
        )

    def load_snowflake(
        self, frame: pd.DataFrame, batch_id: int, *, before_commit: Callable[[SnowflakeSession], None] | None = None
    ) -> bool:
        return SnowflakeLoader(self.session).load(frame, batch_id, before_commit=before_commit)

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        batch = self.prepare(batch, batch_id)
        try:
            frame = self.collect(batch)
            if not frame.empty:
                self.write_delta(batch, batch_id)
                self.load_snowflake(frame, batch_id)
        finally:
            batch.unpersist()


def start_queries(
    spark: SparkSession,
    endpoint: KafkaEndpoint,
    starting: dict[int, int],
    lake: Lake,
    *,
    sink: InstrumentedSink,
    trigger_s: float,
) -> AnalyticalQueries:
    """The two queries on one topic, each with its own checkpoint: started again, they resume there."""
    from pyspark.sql import functions as F

    # Observed metrics ride on each progress report: the driver counts a batch without the sink's help.
    counted = F.count(F.lit(1)).alias("records"), F.count("invalid_reason").alias("quarantined")
    bronze = (
        parse_and_validate(kafka_source(spark, endpoint, starting, max_per_batch=MAX_PER_BATCH))
        .observe("bronze", *counted)
        .writeStream.queryName("rta_bronze")
        .foreachBatch(BronzeSink(lake))
        .option("checkpointLocation", lake.checkpoint("bronze"))
        .trigger(processingTime=f"{max(trigger_s, BRONZE_TRIGGER_S):g} seconds")
        .start()
    )
    silver = (
        silver_input(parse_and_validate(kafka_source(spark, endpoint, starting, max_per_batch=MAX_PER_BATCH)))
        .writeStream.queryName("rta_silver")
        .foreachBatch(sink)
        .option("checkpointLocation", lake.checkpoint("silver"))
        .trigger(processingTime=f"{trigger_s:g} seconds")
        .start()
    )
    return AnalyticalQueries(bronze, silver)


def stream_crash_and_restart(
    run: PatternRun,
    endpoint: KafkaEndpoint,
    starting: dict[int, int],
    lake: Lake,
    plan: EventPlan,
    *,
    snowflake: SnowflakeEndpoint,
    session: SnowflakeSession,
    lane: LiveLane | None,
) -> StreamOutcome:
    """Stream the plan; query run 1's silver sink crashes after a batch committed everywhere; restart both
    queries on the same checkpoints with new sinks, and let them drain."""
    crash = CrashPlan.mid_stream(
        plan, after_sent=CRASH_AFTER_SENT, steady_batches=CRASH_AFTER_STEADY_BATCHES, warmup_rounds=WARMUP_ROUNDS
    )
    first = InstrumentedSink(SilverSink(lake, snowflake), query_run=1, crash=crash)
    sinks = (first, InstrumentedSink(SilverSink(lake, snowflake), query_run=2))

    def start(query_run: int, trigger_s: float) -> AnalyticalQueries:
        return start_queries(run.spark, endpoint, starting, lake, sink=sinks[query_run - 1], trigger_s=trigger_s)

    pacing = Pacing(run.args.rate, WARMUP_ROUNDS, WARMUP_RECORDS, hold_at=HOLD_AT, hold_timeout_s=60.0)
    triggers = (run.args.trigger_before, run.args.trigger_after)
    watch = (lane.query,) if lane else ()
    setup = StreamSetup(endpoint, TOPIC, len(starting), plan, pacing, start, triggers, lake.table("silver"), watch)
    try:
        return drive_stream(run, setup, StreamMonitor(session, live=not run.narrator.quiet))
    finally:
        for sink in sinks:
            sink.close()


def verify_bronze(run: PatternRun, lake: Lake, plan: EventPlan) -> None:
    """Bronze holds each Kafka record once (even across the crash); quarantine holds exactly the malformed ones."""
    from pyspark.sql import functions as F

    spark = run.spark
    bronze = spark.read.format("delta").load(lake.table("bronze"))
    quarantine = spark.read.format("delta").load(lake.table("quarantine"))
    rows, distinct_records = bronze.agg(F.count("*"), F.count_distinct("kafka_partition", "kafka_offset")).first()  # type: ignore[misc]
    reasons = quarantine.groupBy("invalid_reason").count().toPandas()
    run.table(reasons.rename(columns={"count": "records"}), title="quarantine by reason")
    run.check(
        "bronze holds every Kafka record exactly once",
        rows == distinct_records == len(plan.deliveries),
        f"{rows:,} rows, {distinct_records:,} distinct (partition, offset), {len(plan.deliveries):,} sent",
    )
    run.check(
        "quarantine holds exactly the malformed records",
        int(reasons["count"].sum()) == plan.count("malformed"),
        f"{int(reasons['count'].sum())} quarantined = {plan.count('malformed')} malformed sent",
    )


def verify_exactly_once(
    run: PatternRun, lake: Lake, plan: EventPlan, record: StreamRecord, session: SnowflakeSession
) -> None:
    """Every on-time event exactly once in silver and in Snowflake; the replayed batch changed nothing."""
    spark = run.spark
    silver = spark.read.format("delta").load(lake.table("silver")).select("event_id", "batch_id").toPandas()
    expected = set(plan.expected_silver["event_id"].astype(int))
    snowflake_ids = session.fetch_df("SELECT EVENT_ID FROM EVENTS")["EVENT_ID"].astype(int)
    stores = (("silver", silver["event_id"]), ("Snowflake", snowflake_ids))
    ledger = session.fetch_df("SELECT BATCH_ID, ROWS_LOADED FROM BATCH_LEDGER ORDER BY BATCH_ID")
    per_batch = silver.groupby("batch_id").size().rename("count").reset_index()
    writes = sum(1 for commit in history(spark, lake.table("silver"), None) if commit["operation"] == "WRITE")
    rows = [{"": "distinct events produced", "events": plan.count("event")}]
    rows += [{"": "  of which late (beyond the watermark)", "events": len(plan.late_ids)}]
    rows += [{"": "expected in silver and Snowflake", "events": len(expected)}]
    rows += [
        {"": f"{store} rows / distinct ids", "events": f"{len(ids):,} / {ids.nunique():,}"} for store, ids in stores
    ]
    run.table(rows, title="exactly-once after a crash and a restart")
    for store, ids in stores:
        run.check(
            f"{store} holds every on-time event exactly once",
            len(ids) == ids.nunique() == len(expected) and set(ids) == expected,
            f"{len(ids):,} rows = {len(expected):,} expected, no duplicate, none missing",
        )
    run.check(
        "the Snowflake ledger lists exactly silver's batches, with the same row counts",
        ledger["BATCH_ID"].astype(int).tolist() == per_batch["batch_id"].astype(int).tolist()
        and ledger["ROWS_LOADED"].astype(int).tolist() == per_batch["count"].astype(int).tolist(),
        f"{len(ledger)} batches in the ledger, {len(per_batch)} in silver",
    )
    replay = next((r for r in record.replays if r.batch_id == record.crashed_batch), None)
    run.table([vars(r) for r in record.replays], title="batches that ran twice, and what each sink did")
    run.check(
        "the crashed batch ran again after the restart and every sink skipped it",
        replay is not None and replay.delta_skipped and replay.snowflake_skipped,
        f"batch {record.crashed_batch}: still one Delta commit (txnAppId/txnVersion), and the Snowflake ledger "
        "recognised it",
    )
    run.check(
        "one silver commit per batch: the replay added no Delta commit",
        writes == len(per_batch),
        f"{writes} WRITE commits for {len(per_batch)} batches",
    )


def verify_live(run: PatternRun, plan: EventPlan, lane: LiveLane | None) -> None:
    """The operational lane is at least once: every valid record reached the live topic, enriched; no
    malformed one did; a redelivered event arrives as many times as it was sent."""
    if lane is None:
        return
    sent = [d.event_id for d in plan.deliveries if d.kind != "malformed"]
    ids, valid = lane.consumer.event_ids, set(sent)
    missing, stray = valid - set(ids), [i for i in ids if i not in valid]
    enriched = sum(c is not None for c in lane.consumer.categories)
    how = f"{len(ids):,} live records for {len(set(ids)):,} events; {plan.count('redelivery')} redeliveries planned"
    run.figure("duplicates on the live topic (at least once)", len(ids) - len(set(ids)), "records", how=how)
    run.check(
        "every valid event reached the live topic at least once, enriched",
        not missing and len(ids) >= len(sent) and enriched == len(ids),
        f"{len(valid) - len(missing):,} of {len(valid):,} events, {len(ids):,} records, {enriched:,} enriched",
    )
    run.check("no malformed record reached the live topic", not stray, f"{len(stray)} records with no valid event id")


def reconcile_late_events(run: PatternRun, lake: Lake, plan: EventPlan, outcome: StreamOutcome) -> None:
    """Late events never reach silver; a batch reconciliation finds them in bronze and keeps them for reprocessing."""
    spark = run.spark
    bronze = spark.read.format("delta").load(lake.table("bronze")).filter("invalid_reason IS NULL")
    silver = spark.read.format("delta").load(lake.table("silver"))
    late = (
        bronze.join(silver.select("event_id"), "event_id", "left_anti")
        .dropDuplicates(["event_id"])
        .select("event_id", "event_type", "event_ts", "produced_at", "kafka_partition", "kafka_offset")
    )
    late.write.format("delta").mode("overwrite").save(lake.table("late_events"))
    found = spark.read.format("delta").load(lake.table("late_events")).toPandas()
    progress = [p for r in outcome.runs for p in r.silver_progress]
    dropped = sum(op.numRowsDroppedByWatermark for p in progress for op in (p.stateOperators or []))
    run.table(found.sort_values("event_id").head(5), title="late_events (first 5): kept, not lost")
    run.figure("late events dropped by the watermark (Spark's count)", int(dropped), "events")
    run.check(
        "late events are exactly the planned ones, and all are kept in late_events",
        set(found["event_id"].astype(int)) == plan.late_ids and len(found) == len(plan.late_ids),
        f"{len(found)} found by reconciliation = {len(plan.late_ids)} planned",
    )
    run.check(
        "Spark's dropped-by-watermark count matches",
        dropped == len(plan.late_ids),
        f"numRowsDroppedByWatermark summed over both runs = {dropped}",
    )


def gold_by_minute(events: DataFrame) -> DataFrame:
    """Per minute of event time and product: views, carts, purchases and revenue (the gold grain)."""
    from pyspark.sql import functions as F

    def count(kind: str) -> Any:
        return F.sum((F.col("event_type") == kind).cast("long")).alias(f"{kind}s")

    revenue = F.sum(F.when(F.col("event_type") == "purchase", F.col("price")).otherwise(0)).cast("decimal(18,2)")
    window = F.window("event_ts", WINDOW).getField("start").alias("window_start")
    return events.groupBy(window, "product_id").agg(
        count("view"), count("cart"), count("purchase"), revenue.alias("revenue")
    )


def verify_gold(run: PatternRun, lake: Lake, plan: EventPlan, session: SnowflakeSession) -> None:
    """Gold two ways, streamed into Snowflake batch by batch and rebuilt from Delta silver in batch; both
    must equal the plan's truth to the cent. The Delta job overwrites, so it is rerunnable."""
    spark = run.spark
    silver = spark.read.format("delta").load(lake.table("silver"))
    gold_by_minute(silver).write.format("delta").mode("overwrite").save(lake.table("gold_product_minute"))
    truth = plan.gold_truth()
    in_delta = normalise_gold(spark.read.format("delta").load(lake.table("gold_product_minute")).toPandas())
    in_snowflake = normalise_gold(session.fetch_df("SELECT * FROM GOLD_PRODUCT_MINUTE"))
    by_minute = revenue_by_minute(truth=truth, **{"Delta gold": in_delta, "Snowflake gold": in_snowflake})
    run.table(by_minute.head(6), title="revenue per minute: generator truth vs Delta vs Snowflake (first 6 windows)")
    run.check(
        "Delta gold (batch, from silver) equals the generator's truth (every window, product and cent)",
        in_delta.equals(truth),
        f"{len(in_delta):,} (minute, product) rows, revenue {in_delta['cents'].sum() / 100:,.2f}",
    )
    run.check(
        "Snowflake gold (streamed, per-batch transactions) equals the generator's truth",
        in_snowflake.equals(truth),
        f"{len(in_snowflake):,} rows, revenue {in_snowflake['cents'].sum() / 100:,.2f}",
    )


def size_sink_warehouse(run: PatternRun, session: SnowflakeSession, record: StreamRecord) -> None:
    """What a per-second sink costs in Snowflake: commits closer than AUTO_SUSPEND keep the warehouse up."""
    from expert.runtime.snowflake_ddl import Warehouse, WarehouseSize

    warehouse = Warehouse(name="RTA_SINK_WH", size=WarehouseSize.XSMALL, auto_suspend_seconds=60)
    session.cloud_only(warehouse, purpose="a dedicated, smallest warehouse for the streaming sink")
    times = sorted(c.snowflake_at for c in record.commits.values() if c.snowflake_at is not None)
    gap = float(np.median(np.diff(times))) if len(times) > 1 else float("nan")
    run.figure("median gap between Snowflake commits", gap, "s", how="measured in this run")
    run.note(
        f"A commit every {gap:.1f} s never lets a 60 s AUTO_SUSPEND fire: the sink warehouse runs 24 h a day, "
        f"{WarehouseSize.XSMALL.credits_per_hour * 24} credits/day at X-Small. Longer triggers (or Snowpipe "
        "Streaming) are how teams pay less."
    )


def historical_analytics(run: PatternRun, lake: Lake, record: StreamRecord, outcome: StreamOutcome) -> None:
    """The stream's tables are ordinary Delta tables: query them in batch, and travel back to the crash."""
    spark = run.spark
    silver = lake.table("silver")
    by_channel = spark.sql(
        f"""SELECT channel, count_if(event_type = 'view') AS views, count_if(event_type = 'purchase') AS purchases,
                   round(100 * count_if(event_type = 'purchase') / count_if(event_type = 'view'), 1) AS conversion_pct,
                   sum(CASE WHEN event_type = 'purchase' THEN price END) AS revenue
            FROM {delta_table(silver)} GROUP BY channel ORDER BY revenue DESC"""
    ).toPandas()
    run.table(by_channel, title="historical: conversion and revenue by channel (batch query on silver)")
    version = outcome.silver_version_at_crash
    at_crash = spark.read.format("delta").option("versionAsOf", version).load(silver).count()
    committed_by_crash = sum(c.rows for c in record.commits.values() if c.batch_id <= (record.crashed_batch or -1))
    run.check(
        "time travel to the crash shows exactly what was committed then",
        at_crash == committed_by_crash,
        f"silver as of version {version}: {at_crash:,} events",
    )


def body(run: PatternRun) -> None:
    run.step("Connect to Kafka", why="the topic and its starting offsets are where exactly-once begins")
    with kafka_endpoint(run.settings.kafka) as endpoint:
        starting = connect_kafka(run, endpoint)

        run.step("Plan the event stream", why="every check compares against counts fixed before sending")
        plan = plan_events(run.rows, run.seed)
        show_plan(run, plan)

        run.step("Create the Snowflake tables and the ledger", why="the sinks' targets exist before the first batch")
        lake = Lake(run.workdir)
        with run.snowflake_endpoint(schema="REALTIME") as snowflake, run.snowflake(endpoint=snowflake) as session:
            SnowflakeLoader(session).create_tables()
            create_log(session)
            create_views(session)
            if snowflake.mode == "local":
                run.stand_in(
                    "a Snowflake account", "fakesnow's Snowflake server on 127.0.0.1; the sink connects over TCP"
                )

            run.step("Start the operational lane: Real-time Mode to a live topic", why="milliseconds, not seconds")
            write_products(run.spark, lake, plan)
            operational = partial(start_operational_query, run.spark, endpoint, starting, lake)
            with live_lane(run, endpoint, LIVE_TOPIC, PARTITIONS, operational) as lane:
                run.step("Stream; crash mid-stream; restart from the checkpoints", why="a restart replays a batch")
                outcome = stream_crash_and_restart(
                    run, endpoint, starting, lake, plan, snowflake=snowflake, session=session, lane=lane
                )
            record = read_stream_record(run.spark, lake.table("silver"), session)
            report_stream(run, outcome, record, len(plan.deliveries))

            run.step("Prove exactly-once: bronze, quarantine, silver, Snowflake", why="produced vs stored, per id")
            verify_bronze(run, lake, plan)
            verify_exactly_once(run, lake, plan, record, session)
            replay_by_hand(run, SilverSink(lake, snowflake), lake.table("silver"), min(record.commits), session)
            verify_live(run, plan, lane)

            run.step("Late events: counted and kept, not lost", why="the watermark drops them; the business needs them")
            reconcile_late_events(run, lake, plan, outcome)

            run.step("Gold in Delta and Snowflake against the truth", why="the dashboard must match events to the cent")
            verify_gold(run, lake, plan, session)

            run.step("Latency and throughput, measured", why="what a micro-batch delivers here, and where time goes")
            phases = record.phases(outcome, warmup_batches=WARMUP_ROUNDS)
            latencies = measure_latency(run, phases)
            measure_throughput(run, phases, outcome)
            compare_lanes(run, lane, latencies, paced_from=outcome.producer.started_at)
            size_sink_warehouse(run, session, record)

            run.step("Historical analytics on the same Delta tables", why="streamed tables answer batch questions too")
            historical_analytics(run, lake, record, outcome)

            run.step("Dashboard snapshot", why="the Snowflake views the dashboard reads, as one offline file")
            write_dashboard(run, session, latencies)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE, help=f"records/s (default {DEFAULT_RATE:g})")
    for flag, default, when in zip(
        ("--trigger-before", "--trigger-after"), DEFAULT_TRIGGERS, ("before", "after"), strict=True
    ):
        help_ = f"processingTime seconds {when} the crash (default {default:g})"
        parser.add_argument(flag, type=float, default=default, help=help_)


def main(argv: Sequence[str] | None = None) -> int:
    return run_pattern(__file__, argv, body, default_rows=DEFAULT_ROWS, add_arguments=add_arguments)


if __name__ == "__main__":
    raise SystemExit(main())
