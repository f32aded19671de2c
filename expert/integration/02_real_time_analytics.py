"""Real-time analytics: e-commerce events through Kafka, Structured Streaming and Delta into Snowflake, exactly once.

Why it matters in production: a live dashboard is only as good as its counts. Streams crash and
restart, producers redeliver, some records arrive broken and some arrive long after their event
time; a sink that is merely "at least once" double-counts revenue after every restart. This
pattern runs the seed's pipeline Events → Kafka → Spark Structured Streaming → Delta →
aggregations → Snowflake → dashboard for real, crashes it mid-stream, restarts it from its
checkpoint and proves that every event landed exactly once, with the latency it measured.

Learning objectives:
- Produce keyed events to a real Kafka broker with an idempotent producer at a controlled rate
- Parse and validate in Structured Streaming: every record to bronze, malformed ones to quarantine
- Deduplicate on the event id within a watermark, and account for events that arrive beyond it
- Make foreachBatch sinks idempotent: Delta txnAppId/txnVersion on every append, and a
  Snowflake batch ledger committed in the same transaction as the data
- Crash mid-stream, restart from the checkpoint, prove exactly-once in silver, gold and Snowflake
- Measure produce→commit latency percentiles and throughput under two trigger settings
- Query the same Delta tables in batch afterwards, and snapshot the dashboard as one HTML file

Run it:
    python expert/integration/02_real_time_analytics.py [--rows N] [--rate RECORDS_PER_S]
        [--trigger-before SECONDS] [--trigger-after SECONDS]
    expert run integration/02
Locally: a single-node Kafka 4.4 broker (KRaft) on 127.0.0.1, started for the run unless
`expert kafka start` keeps one up; local Spark + Delta Lake with the official Kafka source;
fakesnow's Snowflake server on 127.0.0.1 for Snowflake. With credentials in .env:
KAFKA_BOOTSTRAP_SERVERS (+ SASL keys) points the producer and Spark at your cluster (Confluent
Cloud, MSK, Event Hubs' Kafka endpoint), the SNOWFLAKE_* keys load the same batches, in the same
transactions, into your account, and SPARK_REMOTE runs the queries on a Spark Connect server: the
sinks hold no driver-side state, so they run wherever Spark runs foreachBatch.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from expert.lakehouse.delta_ops import history, latest_version
from expert.runtime.data import EPOCH, EVENT_TYPES, Dirt, EcommerceWorld, corrupt_lines
from expert.runtime.errors import ExpertError
from expert.runtime.kafka import KafkaEndpoint, kafka_endpoint
from expert.runtime.pattern import PatternRun, run_pattern

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery
    from rich.console import RenderableType

    from expert.runtime.snowflake import SnowflakeEndpoint, SnowflakeSession

TOPIC = "expert.ecommerce.events"
PARTITIONS = 3
EVENTS_PER_MINUTE = 200
"""The shop's event clock: 200 events per minute of event time, so windows are comparable across rates."""
WINDOW = "1 minute"
WATERMARK = "2 minutes"
LATE_BY = timedelta(minutes=30)
"""Late events carry an event time this far behind their neighbours (a phone that was offline)."""
DUPLICATE_RATE = 0.02
MALFORMED_RATE = 0.01
LATE_RATE = 0.01
CRASH_AFTER_SENT = 0.25
CRASH_AFTER_STEADY_BATCHES = 2
"""The silver sink crashes after a batch it commits once 25% of the records have been sent and at
least two batches after the warm-up ones have committed: mid-stream, with steady state measured."""
WARMUP_ROUNDS = 2
WARMUP_RECORDS = 10
"""Sent first, in rounds: after each the producer holds until silver has committed a batch, so a cold
JVM's first batches (class loading, the Delta table's creation, the JIT) are measured on their own,
not mixed into steady state."""
DEFAULT_RATE = 100.0
DEFAULT_TRIGGERS = (0.0, 3.0)
"""processingTime seconds before the crash (0: the next batch starts when the last ends) and after the restart."""
DEFAULT_ROWS = 2_000
STREAM_TIMEOUT_S = 180.0
LATE_WAIT_S = 60.0
EVENT_SCHEMA = (
    "event_id BIGINT, session_id BIGINT, customer_id BIGINT, product_id BIGINT, event_type STRING, "
    "channel STRING, price DECIMAL(10,2), event_ts TIMESTAMP"
)
# One transaction id per writer: Delta skips a write whose (appId, version) it has already committed.
# A new checkpoint restarts batch ids at 0, so it needs new app ids; here both are recreated per run.
BRONZE_APP, QUARANTINE_APP, SILVER_APP = "rta-bronze", "rta-quarantine", "rta-silver"
LEDGER_PIPELINE = "rta-silver-to-snowflake"
BY_HAND = 0
"""The run number the silver sink logs when a batch is replayed by hand (the stream's runs are 1 and 2)."""
BRONZE_TRIGGER_S = 2.0
"""Bronze is the audit copy, not on the dashboard's path: a slower trigger leaves the cores to silver."""


class SimulatedCrashError(RuntimeError):
    """Raised inside the sink after every write committed, before Spark records the batch as done."""


# --------------------------------------------------------------------------------------------
# The events: ground truth, planned before a single record is sent
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """One Kafka record as the producer will send it."""

    key: bytes | None
    value: bytes
    event_id: int | None
    kind: str  # "event", "redelivery" or "malformed"
    event_ts_ms: int | None = None
    late: bool = False


@dataclass
class EventPlan:
    """What will be sent, and what a correct pipeline must therefore end up with."""

    deliveries: list[Delivery]
    events: pd.DataFrame
    late_ids: set[int]

    def count(self, kind: str) -> int:
        return sum(d.kind == kind for d in self.deliveries)

    @property
    def expected_silver(self) -> pd.DataFrame:
        """Every distinct, well-formed, on-time event: exactly what silver and Snowflake must hold."""
        return self.events[~self.events["event_id"].isin(self.late_ids)]


def _event_json(record: dict[str, Any]) -> str:
    ts = pd.Timestamp(record["event_ts"]).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    body = {k: int(record[k]) for k in ("event_id", "session_id", "customer_id", "product_id")}
    body |= {"event_type": record["event_type"], "channel": record["channel"], "price": float(record["price"])}
    return json.dumps(body | {"event_ts": ts}, separators=(",", ":"))


def plan_events(rows: int, seed: int) -> EventPlan:
    """Clickstream events on the shop's clock, with redeliveries, malformed lines and late events mixed in."""
    events = EcommerceWorld(rows, seed=seed, dirt=Dirt.clean()).events.copy()
    n = len(events)
    rng = np.random.default_rng([seed, *b"real-time"])
    offsets_ms = np.arange(n, dtype=np.int64) * 60_000 // EVENTS_PER_MINUTE
    events["event_ts"] = pd.Timestamp(EPOCH).tz_localize(None) + pd.to_timedelta(offsets_ms, unit="ms")
    late_pos = np.sort(rng.choice(np.arange(int(n * 0.6), n), max(1, int(n * LATE_RATE)), replace=False))
    events.loc[late_pos, "event_ts"] -= LATE_BY
    late_ids = {int(i) for i in events.loc[late_pos, "event_id"]}
    on_time = np.setdiff1d(np.arange(n - 3), late_pos)
    redelivered = set(rng.choice(on_time, max(1, int(n * DUPLICATE_RATE)), replace=False).tolist())

    lines: list[str] = []
    pending: dict[int, list[str]] = {}
    for pos, record in enumerate(events.to_dict(orient="records")):
        line = _event_json(record)
        lines.append(line)
        if pos in redelivered:
            pending.setdefault(pos + 3, []).append(line)
        lines.extend(pending.pop(pos, []))
    lines, _ = corrupt_lines(lines, MALFORMED_RATE, rng)

    deliveries: list[Delivery] = []
    seen: set[int] = set()
    for line in lines:
        try:
            body = json.loads(line)
        except json.JSONDecodeError:
            deliveries.append(Delivery(None, line.encode(), None, "malformed"))
            continue
        event_id = int(body["event_id"])
        ts_ms = int(pd.Timestamp(body["event_ts"]).timestamp() * 1000)
        kind = "redelivery" if event_id in seen else "event"
        seen.add(event_id)
        deliveries.append(
            Delivery(str(body["session_id"]).encode(), line.encode(), event_id, kind, ts_ms, event_id in late_ids)
        )
    return EventPlan(deliveries, events, late_ids)


# --------------------------------------------------------------------------------------------
# Kafka: the topic and a rate-controlled, idempotent producer
# --------------------------------------------------------------------------------------------


NOT_READY = frozenset({"NOT_LEADER_FOR_PARTITION", "LEADER_NOT_AVAILABLE", "UNKNOWN_TOPIC_OR_PART"})
"""Kafka errors that mean "this partition's leadership is still settling": wait, do not fail."""


def ensure_topic(endpoint: KafkaEndpoint) -> int:
    """Create the topic if it is missing; return its partition count once it can be used.

    Usable means every partition has a leader in the metadata AND that leader answers for the
    partition's offsets: right after creation a fresh broker can list a leader that still
    refuses ListOffsets with NOT_LEADER_FOR_PARTITION (seen once on a fresh CI machine).
    """
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(endpoint.client_config())
    if TOPIC not in admin.list_topics(timeout=10).topics:
        config = {"retention.ms": str(2 * 60 * 60 * 1000)} if endpoint.is_local else {}
        futures = admin.create_topics([NewTopic(TOPIC, PARTITIONS, replication_factor=-1, config=config)])
        try:
            futures[TOPIC].result(timeout=30)
        except Exception as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise ExpertError(
                    f"could not create Kafka topic {TOPIC}: {str(exc).splitlines()[0]}",
                    f"create it yourself ({PARTITIONS} partitions) or grant this user CREATE on the cluster",
                ) from None
    deadline = time.monotonic() + 30
    waiting_for = "a leader for every partition"
    while time.monotonic() < deadline:
        topic = admin.list_topics(topic=TOPIC, timeout=10).topics.get(TOPIC)
        if topic and topic.partitions and all(p.leader >= 0 for p in topic.partitions.values()):
            try:
                end_offsets(endpoint, len(topic.partitions))
            except KafkaException as exc:
                error = exc.args[0]
                if not (error.retriable() or error.name() in NOT_READY):
                    raise
                waiting_for = f"the leaders to answer for offsets (last: {error.name()})"
            else:
                return len(topic.partitions)
        time.sleep(0.2)
    raise ExpertError(f"topic {TOPIC} not ready after 30 s: still waiting for {waiting_for}", "check the broker's log")


def end_offsets(endpoint: KafkaEndpoint, partitions: int) -> dict[int, int]:
    """The offset the next record of each partition will get (the stream starts exactly there)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(endpoint.client_config(**{"group.id": "expert-rta-offsets", "enable.auto.commit": False}))
    try:
        return {
            p: int(consumer.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10)[1]) for p in range(partitions)
        }
    finally:
        consumer.close()


class RateLimitedProducer(threading.Thread):
    """Sends the planned records at a steady rate; the Kafka record timestamp is the produce time.

    Idempotent (`enable.idempotence`, `acks=all`): the broker drops the producer's own retries, so
    the only duplicates in the topic are the ones planned as redeliveries. First `WARMUP_ROUNDS`
    rounds of `WARMUP_RECORDS` records, each sent once silver has committed a batch per earlier
    round (`batches_committed`, kept current by the caller); then the rest at `rate` per second.
    A late event is sent only once the
    stream's watermark (`watermark_ms`, kept current by the caller) has passed its event time,
    which is what makes it late; until then it waits aside, never holding up the rest.
    """

    def __init__(self, endpoint: KafkaEndpoint, deliveries: list[Delivery], rate: float) -> None:
        super().__init__(name="rta-producer", daemon=True)
        self.endpoint, self.deliveries, self.rate = endpoint, deliveries, rate
        self.warmup = WARMUP_ROUNDS * WARMUP_RECORDS
        self.batches_committed = 0
        self.watermark_ms = 0
        self.sent = self.acked = 0
        self.errors: list[str] = []
        self.started_at = self.paced_until = 0.0
        self.sent_paced = 0

    def run(self) -> None:
        from confluent_kafka import Producer

        producer = Producer(
            self.endpoint.client_config(
                **{"enable.idempotence": True, "acks": "all", "linger.ms": 5, "client.id": "expert-rta-producer"}
            )
        )
        deferred: list[Delivery] = []
        try:
            for round_ in range(WARMUP_ROUNDS):
                for delivery in self.deliveries[round_ * WARMUP_RECORDS : (round_ + 1) * WARMUP_RECORDS]:
                    self._send(producer, delivery)
                producer.flush(30)
                deadline = time.monotonic() + STREAM_TIMEOUT_S
                while self.batches_committed <= round_:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"silver committed no warm-up batch within {STREAM_TIMEOUT_S:.0f} s")
                    time.sleep(0.02)
            self.started_at = time.time()
            for i, delivery in enumerate(self.deliveries[self.warmup :]):
                delay = self.started_at + i / self.rate - time.time()
                if delay > 0:
                    time.sleep(delay)
                if delivery.late:
                    deferred.append(delivery)
                else:
                    self._send(producer, delivery)
                deferred = self._release(producer, deferred)
            self.paced_until, self.sent_paced = time.time(), self.sent - self.warmup
            deadline = time.time() + LATE_WAIT_S
            while deferred and time.time() < deadline:
                time.sleep(0.05)
                deferred = self._release(producer, deferred)
            for delivery in deferred:  # the watermark never passed them: the late-event checks will say so
                self._send(producer, delivery)
            left = producer.flush(30)
            if left:
                self.errors.append(f"{left} record(s) still unacknowledged after 30 s")
        except Exception as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")

    def _release(self, producer: Any, deferred: list[Delivery]) -> list[Delivery]:
        """Send the late events the watermark has passed; keep the others waiting."""
        waiting = []
        for delivery in deferred:
            if self.watermark_ms > (delivery.event_ts_ms or 0):
                self._send(producer, delivery)
            else:
                waiting.append(delivery)
        return waiting

    def _send(self, producer: Any, delivery: Delivery) -> None:
        producer.produce(
            TOPIC,
            value=delivery.value,
            key=delivery.key,
            timestamp=int(time.time() * 1000),
            on_delivery=self._on_delivery,
        )
        producer.poll(0)
        self.sent += 1

    def _on_delivery(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self.errors.append(str(err))
        else:
            self.acked += 1


# --------------------------------------------------------------------------------------------
# Spark: source, parse/validate, and the two queries' sinks
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lake:
    """Where the run's Delta tables and checkpoints live."""

    root: Path

    def table(self, name: str) -> str:
        return str(self.root / "delta" / name)

    def checkpoint(self, name: str) -> str:
        return str(self.root / "checkpoints" / name)


def kafka_source(spark: SparkSession, endpoint: KafkaEndpoint, starting: dict[int, int]) -> DataFrame:
    """The official Kafka source, starting at the offsets recorded before this run produced anything."""
    reader = spark.readStream.format("kafka")
    for key, value in endpoint.spark_options().items():
        reader = reader.option(key, value)
    offsets = json.dumps({TOPIC: {str(p): o for p, o in starting.items()}})
    return reader.option("subscribe", TOPIC).option("startingOffsets", offsets).option("failOnDataLoss", "true").load()


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
    return (
        parsed.filter("invalid_reason IS NULL")
        .select(
            "event_id",
            "session_id",
            "customer_id",
            "product_id",
            "event_type",
            "channel",
            "price",
            "event_ts",
            "produced_at",
        )
        .withWatermark("event_ts", WATERMARK)
        .dropDuplicatesWithinWatermark(["event_id"])
    )


class StageClock:
    """Seconds spent in each stage of one micro-batch (where the latency goes), and when it began."""

    def __init__(self) -> None:
        self.started_at = time.time()
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.laps[stage] = now - self._last
        self._last = now


@dataclass(frozen=True)
class CrashPlan:
    """When run 1's silver sink fails on purpose: after it has committed `after_batches` batches
    (warm-up included), on the first one holding an event at or beyond `from_event_id`.

    A condition on what the sink itself sees, not a callback into the driver: over Spark Connect
    the sink runs in a server-side Python worker, where the producer's progress is out of reach.
    Event ids grow with the plan's order, so `from_event_id` marks how far into the stream it is.
    """

    after_batches: int
    from_event_id: int

    @classmethod
    def mid_stream(cls, plan: EventPlan) -> CrashPlan:
        """Enough steady batches to measure first; enough records still to come after the restart."""
        start = int(CRASH_AFTER_SENT * len(plan.deliveries))
        first = next(d.event_id for d in plan.deliveries[start:] if d.kind == "event" and not d.late)
        return cls(WARMUP_ROUNDS + CRASH_AFTER_STEADY_BATCHES, int(first or 0))

    def due(self, committed: int, event_ids: np.ndarray) -> bool:
        return committed >= self.after_batches and bool(len(event_ids)) and int(event_ids.max()) >= self.from_event_id


@dataclass(frozen=True)
class SinkAttempt:
    """One call of the silver sink, as it logged itself in STREAM_BATCH_LOG after its commits."""

    batch_id: int
    run: int
    """1 or 2 (before / after the restart); BY_HAND for the replay run by hand."""
    started_at: float
    rows: int
    delta_at: float
    """When the Delta append returned: committed, or skipped because Delta had this txnVersion."""
    snowflake_at: float | None
    """When the Snowflake COMMIT returned; None when the ledger already had the batch."""
    crashed: bool
    stages: dict[str, float]
    process: str
    """host:pid of the Python process the sink ran in (the driver, or a Spark Connect server's worker)."""


@dataclass
class BatchCommit:
    """When one silver batch first became visible in each store, and when its events were produced."""

    batch_id: int
    run: int
    started_at: float
    """When foreachBatch was called: the batch's offsets had just been fixed."""
    delta_at: float
    snowflake_at: float | None
    produced_ms: np.ndarray
    stages: dict[str, float] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return len(self.produced_ms)


@dataclass
class Replay:
    """A batch that ran again (after the crash, or by hand) and what each sink did with it."""

    batch_id: int
    delta_skipped: bool
    snowflake_skipped: bool


def produce_to_commit_ms(commits: Iterable[BatchCommit], store: str) -> np.ndarray:
    """Per event: wall-clock ms from its Kafka record timestamp to its batch's commit in `store`."""
    parts = [
        int(at * 1000) - c.produced_ms
        for c in commits
        if (at := c.delta_at if store == "delta" else c.snowflake_at) is not None
    ]
    return np.concatenate(parts) if parts else np.array([], dtype=np.int64)


def _epoch_ms(values: pd.Series) -> np.ndarray:
    """Naive UTC timestamps (as Snowflake TIMESTAMP_NTZ returns them) to epoch milliseconds."""
    return ((pd.to_datetime(values) - pd.Timestamp(0)) // pd.Timedelta(milliseconds=1)).to_numpy(dtype=np.int64)


class BronzeSink:
    """foreachBatch of the bronze query: every record to bronze, malformed ones to quarantine, idempotently.

    Its counts reach the driver as the query's observed metrics (see `Pipeline.start`), not
    through this object: it holds nothing but where to write, so Spark Connect can ship it.
    """

    def __init__(self, lake: Lake) -> None:
        self.lake = lake

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        from pyspark.sql import functions as F

        batch = batch.withColumn("ingested_at", F.current_timestamp()).persist()
        try:
            rows, quarantined = batch.agg(F.count("*"), F.count("invalid_reason")).first()  # type: ignore[misc]
            if rows == 0:
                return
            (
                batch.coalesce(1)
                .write.format("delta")
                .mode("append")
                .option("txnAppId", BRONZE_APP)
                .option("txnVersion", batch_id)
                .save(self.lake.table("bronze"))
            )
            if quarantined:
                (
                    batch.filter("invalid_reason IS NOT NULL")
                    .select(
                        "raw_value", "invalid_reason", "kafka_partition", "kafka_offset", "produced_at", "ingested_at"
                    )
                    .write.format("delta")
                    .mode("append")
                    .option("txnAppId", QUARANTINE_APP)
                    .option("txnVersion", batch_id)
                    .save(self.lake.table("quarantine"))
                )
        finally:
            batch.unpersist()


class SnowflakeSink:
    """Loads one silver batch into Snowflake exactly once: rows, gold windows and ledger row in one transaction.

    `foreachBatch` is at-least-once: after a crash Spark runs the last batch again. The ledger
    (PIPELINE, BATCH_ID) is written in the same transaction as the rows, so a batch is either
    fully loaded and recorded, or not at all; a replay finds its ledger row and does nothing.
    The rows travel as one bound JSON array, flattened by one INSERT … SELECT: unlike
    `write_pandas` (PUT + COPY) it runs inside the transaction, and unlike a multi-row VALUES
    list the statement text stays the same size whatever the batch (180 rows through the local
    server, measured: 0.05 s against 0.26–0.44 s).
    """

    INSERT_EVENTS = (
        "INSERT INTO EVENTS (EVENT_ID, SESSION_ID, CUSTOMER_ID, PRODUCT_ID, EVENT_TYPE, CHANNEL, PRICE, EVENT_TS, "
        "PRODUCED_AT, BATCH_ID) SELECT e.value:EVENT_ID::NUMBER(38,0), e.value:SESSION_ID::NUMBER(38,0), "
        "e.value:CUSTOMER_ID::NUMBER(38,0), e.value:PRODUCT_ID::NUMBER(38,0), e.value:EVENT_TYPE::VARCHAR, "
        "e.value:CHANNEL::VARCHAR, e.value:PRICE::NUMBER(10,2), TO_TIMESTAMP_NTZ(e.value:EVENT_TS_MS::NUMBER(38,0), 3), "
        "TO_TIMESTAMP_NTZ(e.value:PRODUCED_AT_MS::NUMBER(38,0), 3), %s FROM TABLE(FLATTEN(INPUT => PARSE_JSON(%s))) e"
    )
    LOG_COLUMNS = (
        "BATCH_ID",
        "RUN",
        "STARTED_AT_MS",
        "ROWS_IN",
        "DELTA_AT_MS",
        "SNOWFLAKE_AT_MS",
        "CRASHED",
        "STAGES",
        "PROCESS",
    )

    def __init__(self, session: SnowflakeSession) -> None:
        self.session = session

    def create_tables(self) -> None:
        """This run's tables, recreated: the checkpoint is new, so batch ids (and the ledger) start over."""
        execute = self.session.execute
        execute(
            "CREATE OR REPLACE TABLE EVENTS (EVENT_ID NUMBER(38,0), SESSION_ID NUMBER(38,0), CUSTOMER_ID NUMBER(38,0), "
            "PRODUCT_ID NUMBER(38,0), EVENT_TYPE VARCHAR, CHANNEL VARCHAR, PRICE NUMBER(10,2), EVENT_TS TIMESTAMP_NTZ, "
            "PRODUCED_AT TIMESTAMP_NTZ, BATCH_ID NUMBER(38,0))"
        )
        execute(
            "CREATE OR REPLACE TABLE GOLD_PRODUCT_MINUTE (WINDOW_START TIMESTAMP_NTZ, PRODUCT_ID NUMBER(38,0), "
            "VIEWS NUMBER(38,0), CARTS NUMBER(38,0), PURCHASES NUMBER(38,0), REVENUE NUMBER(18,2))"
        )
        execute(
            "CREATE OR REPLACE TABLE BATCH_LEDGER (PIPELINE VARCHAR, BATCH_ID NUMBER(38,0), ROWS_LOADED NUMBER(38,0), "
            "LOADED_AT TIMESTAMP_NTZ)"
        )
        # Not the ledger: an operations log of every call of the sink (replays too), written after
        # its commits, that the driver and the live view read. Epoch ms: no time zone to argue about.
        execute(
            "CREATE OR REPLACE TABLE STREAM_BATCH_LOG (BATCH_ID NUMBER(38,0), RUN NUMBER(38,0), "
            "STARTED_AT_MS NUMBER(38,0), ROWS_IN NUMBER(38,0), DELTA_AT_MS NUMBER(38,0), SNOWFLAKE_AT_MS NUMBER(38,0), "
            "CRASHED BOOLEAN, STAGES VARCHAR, PROCESS VARCHAR)"
        )
        execute(
            "CREATE OR REPLACE VIEW REVENUE_PER_MINUTE AS SELECT WINDOW_START, SUM(PURCHASES) AS ORDERS, "
            "SUM(REVENUE) AS REVENUE FROM GOLD_PRODUCT_MINUTE GROUP BY WINDOW_START"
        )
        execute(
            "CREATE OR REPLACE VIEW TOP_PRODUCTS AS SELECT PRODUCT_ID, SUM(PURCHASES) AS UNITS, SUM(REVENUE) AS REVENUE "
            "FROM GOLD_PRODUCT_MINUTE GROUP BY PRODUCT_ID"
        )
        execute(
            "CREATE OR REPLACE VIEW FUNNEL AS SELECT SUM(VIEWS) AS VIEWS, SUM(CARTS) AS CARTS, SUM(PURCHASES) AS PURCHASES "
            "FROM GOLD_PRODUCT_MINUTE"
        )

    def loaded(self, batch_id: int) -> bool:
        return bool(
            self.session.scalar(
                "SELECT COUNT(*) FROM BATCH_LEDGER WHERE PIPELINE = %s AND BATCH_ID = %s", (LEDGER_PIPELINE, batch_id)
            )
        )

    def commit(self, frame: pd.DataFrame, batch_id: int) -> float | None:
        """Load the collected batch unless the ledger has it; return when COMMIT returned (None if skipped).

        `frame` has the upper-case event columns, PRICE as Decimal (as Spark collects DECIMAL) and
        the two timestamps as epoch ms (EVENT_TS_MS, PRODUCED_AT_MS).
        """
        if self.loaded(batch_id):
            return None
        touched = "SELECT DISTINCT DATE_TRUNC('MINUTE', EVENT_TS) FROM EVENTS WHERE BATCH_ID = %s"
        self.session.execute("BEGIN TRANSACTION")
        try:
            events = frame.assign(PRICE=frame["PRICE"].astype(str)).to_json(orient="records")  # exact cents
            self.session.execute(self.INSERT_EVENTS, (batch_id, events))
            # Gold windows touched by this batch are recomputed from EVENTS: a pure function of the data.
            self.session.execute(f"DELETE FROM GOLD_PRODUCT_MINUTE WHERE WINDOW_START IN ({touched})", (batch_id,))
            self.session.execute(
                "INSERT INTO GOLD_PRODUCT_MINUTE SELECT DATE_TRUNC('MINUTE', EVENT_TS) AS WINDOW_START, PRODUCT_ID, "
                "COUNT_IF(EVENT_TYPE = 'view'), COUNT_IF(EVENT_TYPE = 'cart'), COUNT_IF(EVENT_TYPE = 'purchase'), "
                "CAST(SUM(IFF(EVENT_TYPE = 'purchase', PRICE, 0)) AS NUMBER(18,2)) FROM EVENTS "
                f"WHERE DATE_TRUNC('MINUTE', EVENT_TS) IN ({touched}) GROUP BY 1, 2",
                (batch_id,),
            )
            self.session.execute(
                "INSERT INTO BATCH_LEDGER (PIPELINE, BATCH_ID, ROWS_LOADED, LOADED_AT) "
                "VALUES (%s, %s, %s, CURRENT_TIMESTAMP())",
                (LEDGER_PIPELINE, batch_id, len(frame)),
            )
            self.session.execute("COMMIT")
        except Exception:
            self.session.execute("ROLLBACK")
            raise
        return time.time()

    def log(self, attempt: SinkAttempt) -> None:
        self.session.execute(
            f"INSERT INTO STREAM_BATCH_LOG ({', '.join(self.LOG_COLUMNS)}) "
            f"VALUES ({', '.join(['%s'] * len(self.LOG_COLUMNS))})",
            (
                attempt.batch_id,
                attempt.run,
                int(attempt.started_at * 1000),
                attempt.rows,
                int(attempt.delta_at * 1000),
                None if attempt.snowflake_at is None else int(attempt.snowflake_at * 1000),
                attempt.crashed,
                json.dumps(attempt.stages),
                attempt.process,
            ),
        )

    def attempts(self) -> list[SinkAttempt]:
        """Every logged call of the silver sink, in the order they began."""
        rows = self.session.fetch(f"SELECT {', '.join(self.LOG_COLUMNS)} FROM STREAM_BATCH_LOG ORDER BY STARTED_AT_MS")
        return [
            SinkAttempt(
                batch_id=int(r["BATCH_ID"]),
                run=int(r["RUN"]),
                started_at=int(r["STARTED_AT_MS"]) / 1000,
                rows=int(r["ROWS_IN"]),
                delta_at=int(r["DELTA_AT_MS"]) / 1000,
                snowflake_at=None if r["SNOWFLAKE_AT_MS"] is None else int(r["SNOWFLAKE_AT_MS"]) / 1000,
                crashed=bool(r["CRASHED"]),
                stages=json.loads(r["STAGES"]),
                process=r["PROCESS"],
            )
            for r in rows
        ]


class SilverSink:
    """foreachBatch of the silver query: silver append (Delta txn), then Snowflake (ledger transaction).

    Delta commits first: it is the system of record, and a batch that reached Snowflake but not
    Delta cannot exist. Gold is maintained where the dashboard reads it, in Snowflake, inside the
    same transaction as the events; Delta's gold is rebuilt from silver in batch after the stream.

    It carries only picklable things (where the lake is, a `SnowflakeEndpoint`, its run number,
    the crash plan) and opens its own Snowflake session where it runs: in the driver on classic
    Spark, in the Connect server's Python worker over Spark Connect. Each run gets a new sink,
    so its count of committed batches starts at zero with its query.
    """

    def __init__(self, lake: Lake, snowflake: SnowflakeEndpoint, *, run: int, crash: CrashPlan | None = None) -> None:
        self.lake, self.endpoint, self.run, self.crash = lake, snowflake, run, crash
        self.committed = 0
        self._warehouse: SnowflakeSink | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_warehouse": None}  # a connection does not travel; the worker opens its own

    @property
    def warehouse(self) -> SnowflakeSink:
        if self._warehouse is None:
            self._warehouse = SnowflakeSink(self.endpoint.open())
        return self._warehouse

    def close(self) -> None:
        if self._warehouse is not None:
            self._warehouse.session.connection.close()
            self._warehouse = None

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        from pyspark.sql import functions as F

        clock = StageClock()
        batch = batch.withColumn("batch_id", F.lit(batch_id).cast("bigint")).persist()
        try:
            frame = batch.select(
                *(F.col(c).alias(c.upper()) for c in ("event_id", "session_id", "customer_id", "product_id")),
                F.col("event_type").alias("EVENT_TYPE"),
                F.col("channel").alias("CHANNEL"),
                F.col("price").alias("PRICE"),
                F.unix_millis("event_ts").alias("EVENT_TS_MS"),
                F.unix_millis("produced_at").alias("PRODUCED_AT_MS"),
            ).toPandas()
            clock.lap("read Kafka, parse, dedup, collect")
            if frame.empty:
                return
            (
                batch.coalesce(1)  # one file per micro-batch, not one per shuffle partition
                .write.format("delta")
                .mode("append")
                .option("txnAppId", SILVER_APP)
                .option("txnVersion", batch_id)
                .option("userMetadata", json.dumps({"batch_id": batch_id}))
                .save(self.lake.table("silver"))
            )
            delta_at = time.time()
            clock.lap("Delta silver append")
            snowflake_at = self.warehouse.commit(frame, batch_id)
            clock.lap("Snowflake: events + gold + ledger in one transaction")
            self.committed += 1
            crash = self.crash is not None and self.crash.due(self.committed, frame["EVENT_ID"].to_numpy())
            attempt = SinkAttempt(
                batch_id,
                self.run,
                clock.started_at,
                len(frame),
                delta_at,
                snowflake_at,
                crash,
                clock.laps,
                this_process(),
            )
            self.warehouse.log(attempt)
            if crash:
                raise SimulatedCrashError(f"simulated crash after batch {batch_id} committed everywhere")
        finally:
            batch.unpersist()


# --------------------------------------------------------------------------------------------
# Running the stream: start, crash, restart, drain
# --------------------------------------------------------------------------------------------


@dataclass
class RunTimes:
    """One run of the two queries (before the crash, after the restart)."""

    trigger_s: float
    started: float = 0.0
    ready: float = 0.0
    stopped: float = 0.0
    silver_progress: list[Any] = field(default_factory=list)


@dataclass
class StreamOutcome:
    """The two runs, the producer that fed them, and the crash as Spark reported it and the driver saw it."""

    runs: list[RunTimes]
    producer: RateLimitedProducer
    crash_error: str
    sent_at_crash: int
    silver_version_at_crash: int


class Pipeline:
    """The two streaming queries on one topic, each with its own checkpoint."""

    def __init__(
        self, spark: SparkSession, endpoint: KafkaEndpoint, starting: dict[int, int], lake: Lake, *, bronze: BronzeSink
    ) -> None:
        self.spark, self.endpoint, self.starting, self.lake = spark, endpoint, starting, lake
        self.bronze_sink = bronze
        self.bronze: StreamingQuery | None = None
        self.silver: StreamingQuery | None = None

    def start(self, trigger_s: float, silver_sink: SilverSink) -> None:
        from pyspark.sql import functions as F

        # Observed metrics ride on each progress report: how a driver counts what a batch held
        # without the sink telling it (the sink may run in another process).
        parsed = parse_and_validate(kafka_source(self.spark, self.endpoint, self.starting)).observe(
            "bronze", F.count(F.lit(1)).alias("records"), F.count("invalid_reason").alias("quarantined")
        )
        self.bronze = (
            parsed.writeStream.queryName("rta_bronze")
            .foreachBatch(self.bronze_sink)
            .option("checkpointLocation", self.lake.checkpoint("bronze"))
            .trigger(processingTime=f"{max(trigger_s, BRONZE_TRIGGER_S):g} seconds")
            .start()
        )
        self.silver = (
            silver_input(parse_and_validate(kafka_source(self.spark, self.endpoint, self.starting)))
            .writeStream.queryName("rta_silver")
            .foreachBatch(silver_sink)
            .option("checkpointLocation", self.lake.checkpoint("silver"))
            .trigger(processingTime=f"{trigger_s:g} seconds")
            .start()
        )

    def queries(self) -> Iterator[StreamingQuery]:
        yield from (q for q in (self.bronze, self.silver) if q is not None)

    def ready(self) -> bool:
        return all(q.isActive and q.status["message"] != "Initializing sources" for q in self.queries())

    def watermark_ms(self) -> int:
        progress = self.silver.lastProgress if self.silver is not None else None
        mark = (progress.eventTime or {}).get("watermark") if progress else None
        return int(pd.Timestamp(mark).timestamp() * 1000) if mark else 0

    def caught_up(self, offsets: dict[int, int]) -> bool:
        """Both queries have processed every record up to `offsets` (their last batch's end offsets)."""
        for query in self.queries():
            progress = query.lastProgress
            if not query.isActive or progress is None or not progress.sources:
                return False
            done = json.loads(progress.sources[0].endOffset or "{}").get(TOPIC, {})
            if any(int(done.get(str(p), -1)) < o for p, o in offsets.items()):
                return False
        return True

    def stop(self) -> None:
        for query in self.queries():
            if query.isActive:
                query.stop()


def this_process() -> str:
    """host:pid, asked at call time: a module constant would travel in the pickle with the driver's pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def observed_metrics(progress: Any, name: str) -> dict[str, Any]:
    """One `observe(name, ...)` result from a progress report, by metric name.

    Classic Spark gives a Row of the metrics; Spark Connect (4.2) gives `Row(values=[...],
    schema={...})` for the same report, so both shapes are read here.
    """
    row = (progress.observedMetrics or {}).get(name)
    if row is None:
        return {}
    fields = row.asDict()
    if set(fields) == {"values", "schema"}:
        return {f["name"]: v for f, v in zip(fields["schema"]["fields"], fields["values"], strict=True)}
    return fields


class StreamMonitor:
    """What the driver knows of the running stream: Spark's progress reports and the warehouse's log.

    The sinks may run in another process (a Spark Connect server's Python worker), so nothing
    they hold reaches the driver; what they committed does. This polls it: the sink log every
    `POLL_S` (the producer's warm-up waits on it) and, when the live view is shown, its revenue
    and latency figures every `DASHBOARD_POLL_S`. Polling costs CPU the two cores' JVMs need, so
    it is as sparse as the view allows.
    """

    POLL_S = 0.5
    DASHBOARD_POLL_S = 2.0

    def __init__(self, warehouse: SnowflakeSink, *, live: bool) -> None:
        self.warehouse, self.live = warehouse, live
        self.run = 1
        self.status = "starting"
        self.bronze: dict[int, tuple[int, int]] = {}
        """Batch id → (records, quarantined), from the bronze query's observed metrics; a batch the
        restart runs again keeps its id (the checkpoint is the same), so it is counted once."""
        self.attempts: list[SinkAttempt] = []
        self.revenue: list[tuple[pd.Timestamp, float]] = []
        self.latency: dict[str, np.ndarray] = {"delta": np.array([]), "snowflake": np.array([])}
        self._polled = self._polled_slow = 0.0

    def poll(self, pipeline: Pipeline, *, now: bool = False) -> None:
        moment = time.monotonic()
        if now or moment - self._polled >= self.POLL_S:
            self._polled = moment
            self.attempts = self.warehouse.attempts()
            # The last report is enough: bronze's trigger (>= BRONZE_TRIGGER_S) is slower than this poll.
            progress = pipeline.bronze.lastProgress if pipeline.bronze is not None else None
            metrics = observed_metrics(progress, "bronze") if progress is not None else {}
            if progress is not None and metrics.get("records"):
                self.bronze.setdefault(progress.batchId, (metrics["records"], metrics["quarantined"]))
        if self.live and (now or moment - self._polled_slow >= self.DASHBOARD_POLL_S):
            self._polled_slow = moment
            self._poll_dashboard()

    def _poll_dashboard(self) -> None:
        session = self.warehouse.session
        self.revenue = [
            (pd.Timestamp(r["WINDOW_START"]), float(r["REVENUE"]))
            for r in session.fetch(
                "SELECT WINDOW_START, REVENUE FROM REVENUE_PER_MINUTE ORDER BY WINDOW_START DESC LIMIT 6"
            )
        ][::-1]
        loaded = session.fetch_df(
            "SELECT E.PRODUCED_AT, L.DELTA_AT_MS, L.SNOWFLAKE_AT_MS FROM EVENTS E JOIN STREAM_BATCH_LOG L "
            "ON E.BATCH_ID = L.BATCH_ID AND L.SNOWFLAKE_AT_MS IS NOT NULL"
        )
        produced = _epoch_ms(loaded["PRODUCED_AT"])
        self.latency = {
            "delta": loaded["DELTA_AT_MS"].to_numpy(dtype=np.int64) - produced,
            "snowflake": loaded["SNOWFLAKE_AT_MS"].to_numpy(dtype=np.int64) - produced,
        }

    def first_attempts(self) -> dict[int, SinkAttempt]:
        """Per batch id, the call that committed it (later calls are replays)."""
        first: dict[int, SinkAttempt] = {}
        for attempt in self.attempts:
            first.setdefault(attempt.batch_id, attempt)
        return first

    @property
    def data_batches(self) -> int:
        return len(self.first_attempts())


@dataclass
class StreamRecord:
    """The stream as the stores recorded it: every silver batch's commits and its events' produce
    times (from Delta silver), the replays and what each sink did with them, and the crash."""

    commits: dict[int, BatchCommit]
    replays: list[Replay]
    crashed_batch: int | None
    sink_processes: set[str]
    """Where the silver sink ran (host:pid), from its log."""


def record_stream(spark: SparkSession, lake: Lake, sink: SnowflakeSink) -> StreamRecord:
    """Join the sink log with Delta: per batch, its events' produce times and how many commits it made."""
    from pyspark.sql import functions as F

    attempts = sink.attempts()
    produced = (
        spark.read.format("delta")
        .load(lake.table("silver"))
        .select("batch_id", F.unix_millis("produced_at").alias("produced_ms"))
        .toPandas()
    )
    by_batch = {int(b): g["produced_ms"].to_numpy(dtype=np.int64) for b, g in produced.groupby("batch_id")}
    writes: dict[int, int] = {}
    for commit in history(spark, lake.table("silver"), None):
        if commit["operation"] == "WRITE" and commit["userMetadata"]:
            batch_id = int(json.loads(commit["userMetadata"])["batch_id"])
            writes[batch_id] = writes.get(batch_id, 0) + 1
    commits: dict[int, BatchCommit] = {}
    replays: list[Replay] = []
    for a in attempts:
        if a.batch_id in commits:
            replays.append(Replay(a.batch_id, writes.get(a.batch_id) == 1, a.snowflake_at is None))
        else:
            rows = by_batch.get(a.batch_id, np.array([], dtype=np.int64))
            commits[a.batch_id] = BatchCommit(
                a.batch_id, a.run, a.started_at, a.delta_at, a.snowflake_at, rows, a.stages
            )
    crashed = next((a.batch_id for a in attempts if a.crashed), None)
    processes = {a.process for a in attempts}
    return StreamRecord(commits, replays, crashed, processes)


def stream_with_crash(
    run: PatternRun,
    pipeline: Pipeline,
    plan: EventPlan,
    monitor: StreamMonitor,
    sinks: tuple[SilverSink, SilverSink],
    *,
    partitions: int,
    triggers: tuple[float, float],
) -> StreamOutcome:
    """Stream the plan; run 1's silver sink crashes mid-stream; restart both queries from their checkpoints."""
    total = len(plan.deliveries)
    producer = RateLimitedProducer(pipeline.endpoint, plan.deliveries, run.args.rate)
    runs = [RunTimes(triggers[0]), RunTimes(triggers[1])]
    crash_error, sent_at_crash, version_at_crash = "", 0, -1
    final: dict[int, int] = {}
    with _live_view(run, monitor, producer, total) as refresh:
        _start_run(pipeline, runs[0], monitor, sinks[0], refresh)
        producer.start()
        deadline = time.monotonic() + STREAM_TIMEOUT_S + total / run.args.rate
        harvested = time.monotonic()
        while time.monotonic() < deadline:
            monitor.poll(pipeline)
            refresh()
            if producer.errors:
                break
            producer.batches_committed = monitor.data_batches
            producer.watermark_ms = max(producer.watermark_ms, pipeline.watermark_ms())
            if time.monotonic() - harvested > 1:
                _collect_progress(pipeline, runs[monitor.run - 1])
                harvested = time.monotonic()
            for query in pipeline.queries():
                if query is not pipeline.silver or monitor.run == 2:
                    _raise_if_failed(query)
            silver = pipeline.silver
            if monitor.run == 1 and silver is not None and not silver.isActive:
                crash_error = _expect_simulated_crash(silver)
                sent_at_crash = producer.sent
                runs[0].stopped = time.time()
                monitor.status = "silver crashed; bronze stopped; restarting both from their checkpoints"
                pipeline.stop()
                version_at_crash = latest_version(run.spark, pipeline.lake.table("silver")) or -1
                _collect_progress(pipeline, runs[0])
                monitor.poll(pipeline, now=True)
                monitor.run = 2
                _start_run(pipeline, runs[1], monitor, sinks[1], refresh)
                continue
            if not producer.is_alive():
                final = final or end_offsets(pipeline.endpoint, partitions)
                if pipeline.caught_up(final):
                    if monitor.run == 1:
                        raise ExpertError(
                            "every record was processed before the planned crash point",
                            "use more --rows or a lower --rate, so the stream is still running when it crashes",
                        )
                    break
            time.sleep(0.1)
        else:
            pipeline.stop()
            raise ExpertError(
                f"the stream did not finish within {STREAM_TIMEOUT_S:.0f} s (status: {monitor.status})",
                "the machine may be overloaded: retry with a lower --rate or fewer --rows",
            )
        runs[1].stopped = time.time()
        pipeline.stop()
        _collect_progress(pipeline, runs[monitor.run - 1])
        monitor.status = "drained: every produced record processed; queries stopped"
        monitor.poll(pipeline, now=True)
        refresh()
    if producer.errors:
        raise ExpertError(
            f"the producer reported {len(producer.errors)} error(s): {producer.errors[0]}",
            "see the broker log and the Spark driver log",
        )
    return StreamOutcome(runs, producer, crash_error, sent_at_crash, version_at_crash)


def _start_run(
    pipeline: Pipeline, times: RunTimes, monitor: StreamMonitor, sink: SilverSink, refresh: Callable[[], None]
) -> None:
    monitor.status = f"run {monitor.run}: starting both queries (trigger {times.trigger_s:g} s)"
    times.started = time.time()
    pipeline.start(times.trigger_s, sink)
    while not pipeline.ready():
        for query in pipeline.queries():
            _raise_if_failed(query)
        refresh()
        time.sleep(0.05)
    times.ready = time.time()
    monitor.status = f"run {monitor.run}: streaming (trigger processingTime={times.trigger_s:g} s)"


def _raise_if_failed(query: StreamingQuery) -> None:
    """A query that stopped with an error (other than the planned crash) ends the run with its reason."""
    from expert.runtime.spark import spark_log_path

    error = query.exception() if not query.isActive else None
    if error is not None:
        raise ExpertError(
            f"streaming query {query.name} failed: {str(error).strip().splitlines()[0]}",
            f"see the Spark driver log ({spark_log_path()}) and the broker log",
        )


def _expect_simulated_crash(query: StreamingQuery) -> str:
    error = query.exception()
    text = str(error) if error is not None else "stopped without an error"
    if "SimulatedCrashError:" not in text:
        raise ExpertError(f"the silver query stopped unexpectedly: {text.splitlines()[0]}", "see the Spark driver log")
    line = next(line for line in text.splitlines() if "SimulatedCrashError:" in line).strip()
    return "SimulatedCrashError:" + line.split("SimulatedCrashError:", 1)[1]


def _collect_progress(pipeline: Pipeline, times: RunTimes) -> None:
    """Keep every progress report of the silver query (a query object remembers only its last 100)."""
    if pipeline.silver is not None:
        seen = {(p.batchId, p.timestamp) for p in times.silver_progress}
        times.silver_progress.extend(p for p in pipeline.silver.recentProgress if (p.batchId, p.timestamp) not in seen)


@contextlib.contextmanager
def _live_view(
    run: PatternRun, monitor: StreamMonitor, producer: RateLimitedProducer, total: int
) -> Iterator[Callable[[], None]]:
    """A terminal dashboard while the stream runs (nothing in --quiet mode)."""
    if run.narrator.quiet:
        yield lambda: None
        return
    from rich.live import Live

    with Live(_dashboard(monitor, producer, total), console=run.narrator.console, refresh_per_second=4) as live:
        last = [0.0]

        def refresh() -> None:
            if time.monotonic() - last[0] >= 0.25:
                last[0] = time.monotonic()
                live.update(_dashboard(monitor, producer, total))

        yield refresh
        live.update(_dashboard(monitor, producer, total))


def _percentile(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def _dashboard(monitor: StreamMonitor, producer: RateLimitedProducer, total: int) -> RenderableType:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    first = monitor.first_attempts()
    loaded = [a for a in first.values() if a.snowflake_at is not None]
    delta, snowflake = monitor.latency["delta"], monitor.latency["snowflake"]
    table = Table(title="live · Kafka → Spark → Delta → Snowflake", title_justify="left", pad_edge=False)
    for column in ("stage", "batches", "rows", "detail"):
        table.add_column(column, justify="left" if column in ("stage", "detail") else "right")
    table.add_row("producer → Kafka", "", f"{producer.sent:,}/{total:,}", f"acknowledged {producer.acked:,}")
    table.add_row(
        "bronze / quarantine",
        str(len(monitor.bronze)),
        f"{sum(r for r, _ in monitor.bronze.values()):,} / {sum(q for _, q in monitor.bronze.values()):,}",
        "every record / malformed ones (Spark's observed metrics)",
    )
    table.add_row(
        "silver (deduplicated)",
        str(len(first)),
        f"{sum(a.rows for a in first.values()):,}",
        f"replayed batches: {len(monitor.attempts) - len(first)}",
    )
    table.add_row(
        "Snowflake",
        str(len(loaded)),
        f"{sum(a.rows for a in loaded):,}",
        f"produce→commit p50 {_percentile(snowflake, 50):,.0f} ms",
    )
    peak = max((v for _, v in monitor.revenue), default=0.0) or 1.0
    bars = "\n".join(f"  {m:%H:%M}  {'█' * max(1, int(28 * v / peak))} {v:,.0f}" for m, v in monitor.revenue)
    latency = (
        f"produce→Delta p50 {_percentile(delta, 50):,.0f} ms · p95 {_percentile(delta, 95):,.0f} ms   "
        f"produce→Snowflake p50 {_percentile(snowflake, 50):,.0f} ms · p95 {_percentile(snowflake, 95):,.0f} ms"
    )
    return Group(
        Text(monitor.status, style="bold"),
        table,
        Text(latency),
        Text("revenue per minute of event time (latest windows, from Snowflake)\n" + (bars or "  (no purchases yet)")),
    )


# --------------------------------------------------------------------------------------------
# The steps
# --------------------------------------------------------------------------------------------


def connect_kafka(run: PatternRun, endpoint: KafkaEndpoint) -> tuple[int, dict[int, int]]:
    """Say which cluster this is (and what the local broker cost to start), create the topic, note its end."""
    start = endpoint.start
    if not endpoint.is_local:
        run.say(f"Using the Kafka cluster at {endpoint.bootstrap_servers} (KAFKA_BOOTSTRAP_SERVERS).")
    elif start is not None and not endpoint.started_here:
        run.say(f"Reusing the running local broker on {endpoint.bootstrap_servers} (`expert kafka start`).")
    elif start is not None:
        run.say(f"Started a Kafka broker for this run on {endpoint.bootstrap_servers} (KRaft, loopback only).")
        run.figure(
            "broker start",
            start.start_seconds + start.format_seconds,
            "s",
            how="JVM launch to an admin client seeing the broker"
            + (", incl. storage format" if start.formatted_now else ""),
        )
        if start.classpath_resolved_now:
            run.figure("broker jar resolution", start.classpath_seconds, "s", how="Ivy, first start only")
    if endpoint.is_local:
        run.note("Cloud: the same client code talks to Confluent Cloud, MSK or Event Hubs once KAFKA_* keys are set.")
    partitions = ensure_topic(endpoint)
    starting = end_offsets(endpoint, partitions)
    run.table(
        [{"partition": p, "starting offset": o} for p, o in starting.items()],
        title=f"topic {TOPIC}: {partitions} partitions; this run reads from here on",
    )
    run.check("the topic exists with a leader for every partition", partitions > 0, f"{partitions} partitions")
    return partitions, starting


def describe_plan(run: PatternRun, plan: EventPlan) -> None:
    """Show what will be sent: the counts every later check compares against."""
    events = plan.expected_silver
    run.table(
        [
            {"records to send": len(plan.deliveries), "kind": "all", "why": "what bronze must hold"},
            {"records to send": plan.count("event"), "kind": "distinct events", "why": "views, carts, purchases"},
            {"records to send": plan.count("redelivery"), "kind": "redeliveries", "why": "same event id again: dedup"},
            {"records to send": plan.count("malformed"), "kind": "malformed", "why": "truncated JSON: quarantine"},
            {"records to send": len(plan.late_ids), "kind": "late", "why": f"event time {LATE_BY} behind: watermark"},
        ],
        title="the event plan (ground truth for every check below)",
    )
    span = (events["event_ts"].max() - events["event_ts"].min()).total_seconds() / 60
    run.say(
        f"Event time runs on the shop's clock ({EVENTS_PER_MINUTE} events per minute, {span:.0f} minutes); "
        f"latency is measured on the wall clock, from the Kafka record timestamp set at produce time."
    )


def show_stream(run: PatternRun, outcome: StreamOutcome, record: StreamRecord, plan: EventPlan) -> None:
    """The two runs side by side, the crash, the outage, and whether the broker took every record."""
    producer = outcome.producer
    before, after = outcome.runs
    run.table(
        [
            {
                "run": "1 (before the crash)",
                "trigger": f"processingTime {before.trigger_s:g} s",
                "query start s": round(before.ready - before.started, 2),
                "silver batches": sum(c.run == 1 for c in record.commits.values()),
                "events committed": sum(c.rows for c in record.commits.values() if c.run == 1),
            },
            {
                "run": "2 (restarted from the checkpoint)",
                "trigger": f"processingTime {after.trigger_s:g} s",
                "query start s": round(after.ready - after.started, 2),
                "silver batches": sum(c.run == 2 for c in record.commits.values()),
                "events committed": sum(c.rows for c in record.commits.values() if c.run == 2),
            },
        ],
        title="the stream, in two runs",
    )
    run.say(f"Crash: {outcome.crash_error}")
    here = this_process()
    run.say(
        "The silver sink ran in "
        + ", ".join(
            sorted(f"{p} ({'this process' if p == here else 'another process'})" for p in record.sink_processes)
        )
        + ": the driver on local Spark, the server's Python worker over Spark Connect; it reached Snowflake by itself."
    )
    run.figure("outage (crash detected → restarted queries ready)", after.ready - before.stopped, "s")
    run.figure(
        "producer rate",
        producer.sent_paced / max(producer.paced_until - producer.started_at, 1e-9),
        "records/s",
        how=f"{producer.sent_paced:,} records in the paced send loop, target {run.args.rate:g}/s",
    )
    run.check(
        "the broker acknowledged every record sent",
        producer.acked == producer.sent == len(plan.deliveries),
        f"{producer.acked:,} acknowledged of {len(plan.deliveries):,} planned",
    )
    after_restart = sum(c.rows for c in record.commits.values() if c.run == 2)
    run.check(
        "the silver query crashed mid-stream, after committing a batch, and the restarted stream carried on",
        record.crashed_batch is not None and outcome.sent_at_crash < len(plan.deliveries) and after_restart > 0,
        f"crash after batch {record.crashed_batch}, noticed with {outcome.sent_at_crash:,} of {len(plan.deliveries):,} "
        f"records sent; {after_restart:,} new events committed after the restart",
    )


def verify_bronze(run: PatternRun, spark: SparkSession, lake: Lake, plan: EventPlan) -> None:
    """Bronze holds each Kafka record once (even across the crash); quarantine holds exactly the malformed ones."""
    from pyspark.sql import functions as F

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
    run: PatternRun, spark: SparkSession, lake: Lake, plan: EventPlan, *, record: StreamRecord, sink: SnowflakeSink
) -> None:
    """Every on-time event exactly once in silver and in Snowflake; the replayed batch changed nothing."""
    silver = spark.read.format("delta").load(lake.table("silver")).select("event_id", "batch_id").toPandas()
    silver_ids = silver["event_id"]
    expected = set(plan.expected_silver["event_id"].astype(int))
    snowflake_ids = sink.session.fetch_df("SELECT EVENT_ID FROM EVENTS")["EVENT_ID"].astype(int)
    ledger = sink.session.fetch_df("SELECT BATCH_ID, ROWS_LOADED FROM BATCH_LEDGER ORDER BY BATCH_ID")
    per_batch = silver.groupby("batch_id").size().rename("count").reset_index()
    writes = sum(1 for commit in history(spark, lake.table("silver"), None) if commit["operation"] == "WRITE")
    run.table(
        [
            {"": "distinct events produced", "events": plan.count("event")},
            {"": "  of which late (beyond the watermark)", "events": len(plan.late_ids)},
            {"": "expected in silver and Snowflake", "events": len(expected)},
            {"": "silver rows / distinct ids", "events": f"{len(silver_ids):,} / {silver_ids.nunique():,}"},
            {"": "Snowflake rows / distinct ids", "events": f"{len(snowflake_ids):,} / {snowflake_ids.nunique():,}"},
        ],
        title="exactly-once after a crash and a restart",
    )
    run.check(
        "silver holds every on-time event exactly once",
        len(silver_ids) == silver_ids.nunique() == len(expected) and set(silver_ids) == expected,
        f"{len(silver_ids):,} rows = {len(expected):,} expected, no duplicate, none missing",
    )
    run.check(
        "Snowflake holds every on-time event exactly once",
        len(snowflake_ids) == snowflake_ids.nunique() == len(expected) and set(snowflake_ids) == expected,
        f"{len(snowflake_ids):,} rows = {len(expected):,} expected",
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


def replay_by_hand(
    run: PatternRun,
    spark: SparkSession,
    lake: Lake,
    record: StreamRecord,
    *,
    sink: SnowflakeSink,
    endpoint: SnowflakeEndpoint,
) -> None:
    """Run an already-committed batch through a new sink again, as a second crash would: nothing may change."""
    from pyspark.sql import functions as F

    batch_id = min(record.commits)
    silver_path = lake.table("silver")
    session = sink.session

    def state() -> tuple[int | None, int, int, int]:
        return (
            latest_version(spark, silver_path),
            int(session.scalar("SELECT COUNT(*) FROM EVENTS")),
            int(session.scalar("SELECT SUM(VIEWS + CARTS + PURCHASES) FROM GOLD_PRODUCT_MINUTE")),
            int(session.scalar("SELECT COUNT(*) FROM BATCH_LEDGER")),
        )

    before = state()
    batch = spark.read.format("delta").load(silver_path).filter(F.col("batch_id") == batch_id).drop("batch_id")
    replayer = SilverSink(lake, endpoint, run=BY_HAND)
    try:
        replayer(batch, batch_id)
    finally:
        replayer.close()
    after = state()
    logged = sink.attempts()[-1]
    run.check(
        "re-running a committed batch changes nothing (silver, Snowflake events, gold, ledger)",
        before == after and logged.run == BY_HAND and logged.snowflake_at is None,
        f"batch {batch_id} replayed by hand: silver version, Snowflake rows, gold counts, ledger unchanged {after}; "
        "the sink logged the ledger skip",
    )


def reconcile_late_events(
    run: PatternRun, spark: SparkSession, lake: Lake, plan: EventPlan, runs: list[RunTimes]
) -> None:
    """Late events never reach silver; a batch reconciliation finds them in bronze and keeps them for reprocessing."""
    bronze = spark.read.format("delta").load(lake.table("bronze")).filter("invalid_reason IS NULL")
    silver = spark.read.format("delta").load(lake.table("silver"))
    late = (
        bronze.join(silver.select("event_id"), "event_id", "left_anti")
        .dropDuplicates(["event_id"])
        .select("event_id", "event_type", "event_ts", "produced_at", "kafka_partition", "kafka_offset")
    )
    late.write.format("delta").mode("overwrite").save(lake.table("late_events"))
    found = spark.read.format("delta").load(lake.table("late_events")).toPandas()
    dropped = sum(
        op.numRowsDroppedByWatermark for r in runs for p in r.silver_progress for op in (p.stateOperators or [])
    )
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

    return events.groupBy(F.window("event_ts", WINDOW).getField("start").alias("window_start"), "product_id").agg(
        count("view"),
        count("cart"),
        count("purchase"),
        F.sum(F.when(F.col("event_type") == "purchase", F.col("price")).otherwise(0))
        .cast("decimal(18,2)")
        .alias("revenue"),
    )


def _truth_gold(plan: EventPlan) -> pd.DataFrame:
    events = plan.expected_silver
    frame = pd.DataFrame(
        {
            "window_start": events["event_ts"].dt.floor("min"),
            "product_id": events["product_id"].astype("int64"),
            "views": (events["event_type"] == "view").astype("int64"),
            "carts": (events["event_type"] == "cart").astype("int64"),
            "purchases": (events["event_type"] == "purchase").astype("int64"),
            "cents": np.where(events["event_type"] == "purchase", np.round(events["price"] * 100), 0).astype("int64"),
        }
    )
    return frame.groupby(["window_start", "product_id"], as_index=False).sum()


def _as_gold(frame: pd.DataFrame) -> pd.DataFrame:
    """Normalise a gold table from any engine to the truth's columns (revenue in integer cents)."""
    out = frame.rename(columns=str.lower)
    out = out.assign(
        window_start=pd.to_datetime(out["window_start"]).dt.tz_localize(None).astype("datetime64[ns]"),
        cents=np.round(out["revenue"].astype(float) * 100).astype("int64"),
    )
    columns = ["window_start", "product_id", "views", "carts", "purchases", "cents"]
    out = out[columns].astype({c: "int64" for c in columns[1:]})
    return out.sort_values(["window_start", "product_id"]).reset_index(drop=True)


def verify_gold(run: PatternRun, spark: SparkSession, lake: Lake, plan: EventPlan, sink: SnowflakeSink) -> None:
    """Gold two ways: streamed into Snowflake batch by batch, and rebuilt from Delta silver in batch.

    Both must equal the generator's truth to the cent; the Delta job overwrites, so it is rerunnable.
    """
    gold_by_minute(spark.read.format("delta").load(lake.table("silver"))).write.format("delta").mode("overwrite").save(
        lake.table("gold_product_minute")
    )
    delta_gold = spark.read.format("delta").load(lake.table("gold_product_minute"))
    truth = _as_gold(_truth_gold(plan).assign(revenue=lambda f: f["cents"] / 100))
    in_delta = _as_gold(delta_gold.toPandas())
    in_snowflake = _as_gold(sink.session.fetch_df("SELECT * FROM GOLD_PRODUCT_MINUTE"))
    by_minute = (
        truth.groupby("window_start")["cents"].sum().rename("truth")
        .to_frame()
        .join(in_delta.groupby("window_start")["cents"].sum().rename("Delta gold"))
        .join(in_snowflake.groupby("window_start")["cents"].sum().rename("Snowflake gold"))
        .div(100)
        .reset_index()
    )  # fmt: skip
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


@dataclass(frozen=True)
class Phase:
    """Consecutive silver batches whose latency has one cause: a cold start, steady state, or a backlog."""

    label: str
    trigger_s: float
    steady: bool
    commits: list[BatchCommit]
    progress: list[Any]
    since: float
    """When the records of its first batch began to arrive: the previous batch's start (or the run's)."""

    @property
    def events(self) -> int:
        return sum(c.rows for c in self.commits)


def stream_phases(record: StreamRecord, outcome: StreamOutcome) -> list[Phase]:
    """Each run's first batches on their own (the cold start; the outage's backlog), then its steady batches."""
    same = outcome.runs[0].trigger_s == outcome.runs[1].trigger_s
    phases = []
    for number, times in enumerate(outcome.runs, start=1):
        commits = sorted((c for c in record.commits.values() if c.run == number), key=lambda c: c.batch_id)
        progress = {p.batchId: p for p in times.silver_progress if p.numInputRows}
        head = WARMUP_ROUNDS if number == 1 else 1
        first = f"start-up: first {head} batches, cold JVM" if number == 1 else "backlog: first batch after the restart"
        steady = f"steady, trigger {times.trigger_s:g} s" + (f", run {number}" if same else "")
        before_steady = commits[head - 1].started_at if len(commits) >= head else times.ready
        for label, part, is_steady, since in (
            (first, commits[:head], False, times.ready),
            (steady, commits[head:], True, before_steady),
        ):
            kept = [progress[c.batch_id] for c in part if c.batch_id in progress]
            phases.append(Phase(label, times.trigger_s, is_steady, part, kept, since))
    return phases


def _committed_at(commit: BatchCommit) -> float:
    """When the batch was committed everywhere (Snowflake commits after Delta)."""
    return commit.snowflake_at or commit.delta_at


@dataclass(frozen=True)
class Latency:
    label: str
    store: str
    values: np.ndarray

    def row(self) -> dict[str, Any]:
        if not len(self.values):
            return {"events": self.label, "store": self.store, "n": 0}
        return {
            "events": self.label,
            "store": self.store,
            "n": len(self.values),
            "p50 ms": round(_percentile(self.values, 50)),
            "p95 ms": round(_percentile(self.values, 95)),
            "p99 ms": round(_percentile(self.values, 99)),
            "max ms": int(self.values.max()),
        }


def measure_latency(run: PatternRun, phases: list[Phase]) -> list[Latency]:
    """Produce→commit latency per event and phase, in Delta (silver) and in Snowflake."""
    groups = [
        Latency(phase.label, name, produce_to_commit_ms(phase.commits, store))
        for store, name in (("delta", "Delta silver"), ("snowflake", "Snowflake"))
        for phase in phases
    ]
    run.table(
        [g.row() for g in groups],
        title="produce → commit latency per event (wall clock, Kafka record timestamp → COMMIT)",
        columns=["events", "store", "n", "p50 ms", "p95 ms", "p99 ms", "max ms"],
    )
    for group in groups:
        if group.label.startswith("steady") and len(group.values):
            for q in (50, 95, 99):
                run.figure(
                    f"produce→{group.store} p{q} ({group.label})", _percentile(group.values, q), "ms", key=q == 50
                )
    steady_p50 = [_percentile(g.values, 50) for g in groups if g.store == "Snowflake" and g.label.startswith("steady")]
    if steady_p50 and min(steady_p50) >= 1000:
        run.say(
            f"Not sub-second here: the best steady p50 to Snowflake is {min(steady_p50) / 1000:.1f} s. A micro-batch "
            "cannot commit faster than its own duration (the stage table below shows where it goes), whatever the "
            "trigger; sub-second needs a smaller per-batch floor (more cores, fewer commits per batch) or a "
            "row-level path such as Snowpipe Streaming."
        )
    for phase in phases:
        if phase.steady and not phase.commits:
            run.say(
                f"No steady batch under {phase.label}: the producer finished before the stream reached steady "
                "state. Use more --rows or a lower --rate to measure it."
            )
    return groups


def _median(values: Iterable[float]) -> float:
    values = list(values)
    return float(np.median(values)) if values else float("nan")


def _sustained(phase: Phase, paced_from: float, paced_until: float) -> float:
    """Events per second the stream took in while the producer sent at its steady rate.

    A batch holds what arrived between the previous batch's start and its own, so the window runs
    from the phase's `since` (or the start of pacing, if later) to the start of its last batch that
    began before the producer stopped; later batches hold only the tail.
    """
    full = [c for c in phase.commits if c.started_at <= paced_until]
    window = full[-1].started_at - max(phase.since, paced_from) if full else 0.0
    return sum(c.rows for c in full) / window if window > 0 else float("nan")


def measure_throughput(run: PatternRun, phases: list[Phase], outcome: StreamOutcome) -> None:
    """Per phase: batch sizes and durations; steady phases' sustained rate; the backlog's drain rate."""
    producer = outcome.producer
    offered = producer.sent_paced / max(producer.paced_until - producer.started_at, 1e-9)
    rows = []
    for phase in phases:
        if not phase.commits:
            continue
        sustained = _sustained(phase, producer.started_at, producer.paced_until) if phase.steady else None
        duration = _median(p.durationMs.get("triggerExecution", 0) / 1000 for p in phase.progress)
        rows.append(
            {
                "phase": phase.label,
                "batches": len(phase.commits),
                "events": phase.events,
                "events/s sustained": sustained,
                "events per batch (median)": _median(c.rows for c in phase.commits),
                "batch s (median)": duration,
            }
        )
        if phase.steady:
            run.figure(
                f"sustained events/s ({phase.label})",
                sustained,
                "events/s",
                how=f"silver events that arrived while the producer offered {offered:.0f} records/s, per second",
                key=True,
            )
            run.figure(f"silver batch duration ({phase.label}, median)", duration, "s", how="Spark progress")
            if sustained is not None and np.isnan(sustained):
                run.say(
                    f"No batch under {phase.label} began while the producer was still sending, so no sustained "
                    "rate was measured for it: use more --rows or a lower --rate."
                )
            if duration > phase.trigger_s > 0:
                run.say(
                    f"Under {phase.label}: a batch took {duration:.1f} s (median), longer than the trigger "
                    "interval, so each batch started as soon as the last one ended: the trigger added no wait."
                )
        elif phase.label.startswith("backlog"):
            run.figure(
                "backlog drain rate (one batch after the restart)",
                _median(float(p.processedRowsPerSecond) for p in phase.progress),
                "records/s",
                how="Spark's processedRowsPerSecond: the ceiling when records are already waiting",
                key=True,
            )
    run.table(rows, title=f"throughput by phase (the producer offered {offered:.0f} records/s)")
    stages = pd.DataFrame([c.stages for phase in phases if phase.steady for c in phase.commits])
    if not stages.empty:
        run.table(
            [
                {"stage of a steady silver batch": name, "median s": stages[name].median(), "max s": stages[name].max()}
                for name in stages.columns
            ],
            title="where a micro-batch spends its time (the floor under latency)",
        )
    commits = [c for phase in phases for c in phase.commits]
    first_produced = min(int(c.produced_ms.min()) for c in commits) / 1000
    run.figure(
        "delivered events/s over the whole stream",
        sum(c.rows for c in commits) / max(max(_committed_at(c) for c in commits) - first_produced, 1e-9),
        "events/s",
        how="every silver event / (last commit − first produce): warm-up, crash and restart included",
    )


def historical_analytics(
    run: PatternRun, spark: SparkSession, lake: Lake, record: StreamRecord, *, version_at_crash: int
) -> None:
    """The stream's tables are ordinary Delta tables: query them in batch, and travel back to the crash."""
    silver = lake.table("silver")
    by_channel = spark.sql(
        f"""SELECT channel,
                   count_if(event_type = 'view') AS views,
                   count_if(event_type = 'purchase') AS purchases,
                   round(100 * count_if(event_type = 'purchase') / count_if(event_type = 'view'), 1) AS conversion_pct,
                   sum(CASE WHEN event_type = 'purchase' THEN price END) AS revenue
            FROM delta.`{silver}` GROUP BY channel ORDER BY revenue DESC"""
    ).toPandas()
    run.table(by_channel, title="historical: conversion and revenue by channel (batch query on silver)")
    at_crash = spark.read.format("delta").option("versionAsOf", version_at_crash).load(silver).count()
    committed_by_crash = sum(c.rows for c in record.commits.values() if c.batch_id <= (record.crashed_batch or -1))
    run.check(
        "time travel to the crash shows exactly what was committed then",
        at_crash == committed_by_crash,
        f"silver as of version {version_at_crash}: {at_crash:,} events",
    )


def sink_warehouse(run: PatternRun, sink: SnowflakeSink, record: StreamRecord) -> None:
    """What a per-second sink costs in Snowflake: commits closer than AUTO_SUSPEND keep the warehouse up."""
    from expert.runtime.snowflake_ddl import Warehouse, WarehouseSize

    warehouse = Warehouse(name="RTA_SINK_WH", size=WarehouseSize.XSMALL, auto_suspend_seconds=60)
    sink.session.cloud_only(warehouse, purpose="a dedicated, smallest warehouse for the streaming sink")
    times = sorted(c.snowflake_at for c in record.commits.values() if c.snowflake_at is not None)
    gap = float(np.median(np.diff(times))) if len(times) > 1 else float("nan")
    run.figure("median gap between Snowflake commits", gap, "s", how="measured in this run")
    credits = WarehouseSize.XSMALL.credits_per_hour * 24
    run.note(
        f"A commit every {gap:.1f} s never lets a 60 s AUTO_SUSPEND fire: the sink warehouse runs 24 h a day, "
        f"{credits} credits/day at X-Small. Longer triggers (or Snowpipe Streaming) are how teams pay less."
    )


def write_dashboard(run: PatternRun, sink: SnowflakeSink, latencies: list[Latency]) -> Path:
    """A self-contained HTML snapshot (plotly bundled inline, so it opens offline) from the Snowflake views."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    session = sink.session
    per_minute = session.fetch_df("SELECT WINDOW_START, ORDERS, REVENUE FROM REVENUE_PER_MINUTE ORDER BY WINDOW_START")
    top = session.fetch_df(
        "SELECT PRODUCT_ID, UNITS, REVENUE FROM TOP_PRODUCTS ORDER BY REVENUE DESC, PRODUCT_ID LIMIT 10"
    )
    funnel = session.fetch("SELECT VIEWS, CARTS, PURCHASES FROM FUNNEL")[0]
    figure = make_subplots(
        rows=2,
        cols=2,
        subplot_titles=(
            "Revenue per minute (event time)",
            "Top 10 products by revenue",
            "Funnel: views → carts → purchases",
            "Produce → commit latency (ECDF)",
        ),
    )
    figure.add_trace(go.Bar(x=per_minute["WINDOW_START"], y=per_minute["REVENUE"].astype(float), name="revenue"), 1, 1)
    figure.add_trace(
        go.Bar(
            x=top["REVENUE"].astype(float), y=[f"product {p}" for p in top["PRODUCT_ID"]], orientation="h", name="top"
        ),
        1,
        2,
    )
    stages = ["views", "carts", "purchases"]
    figure.add_trace(go.Funnel(y=stages, x=[int(funnel[s.upper()]) for s in stages], name="funnel"), 2, 1)
    for latency in latencies:
        if latency.label.startswith("steady") and len(latency.values):
            values = np.sort(latency.values)
            figure.add_trace(
                go.Scatter(
                    x=values,
                    y=np.arange(1, len(values) + 1) / len(values),
                    mode="lines",
                    name=f"{latency.store}, {latency.label}",
                ),
                2,
                2,
            )
    figure.update_xaxes(title_text="ms", row=2, col=2)
    figure.update_layout(title="Real-time e-commerce dashboard — snapshot after the stream", height=800)
    path = run.workdir / "dashboard.html"
    path.write_text(figure.to_html(full_html=True, include_plotlyjs=True))
    run.figure("dashboard snapshot", path.stat().st_size / 1e6, "MB", how=str(path))
    run.check(
        "the dashboard is one self-contained HTML file with the Snowflake numbers",
        "plotly" in path.read_text()[:200_000] and len(per_minute) > 0,
        f"{len(per_minute)} minutes, {len(top)} products, funnel {funnel}",
    )
    return path


def body(run: PatternRun) -> None:
    run.step("Connect to Kafka")
    with kafka_endpoint(run.settings.kafka) as endpoint:
        partitions, starting = connect_kafka(run, endpoint)

        run.step("Plan the event stream: the ground truth every check uses")
        plan = plan_events(run.rows, run.seed)
        describe_plan(run, plan)

        run.step("Start two streaming queries on the topic: bronze/quarantine and silver → Snowflake")
        spark = run.spark
        lake = Lake(run.workdir)
        with run.snowflake_endpoint(schema="REALTIME") as warehouse, run.snowflake(endpoint=warehouse) as session:
            sink = SnowflakeSink(session)
            sink.create_tables()
            describe_sinks(run, warehouse)
            crash = CrashPlan.mid_stream(plan)
            sinks = (SilverSink(lake, warehouse, run=1, crash=crash), SilverSink(lake, warehouse, run=2))
            pipeline = Pipeline(spark, endpoint, starting, lake, bronze=BronzeSink(lake))
            monitor = StreamMonitor(sink, live=not run.narrator.quiet)

            run.step("Stream; crash mid-stream; restart from the checkpoints")
            triggers = (run.args.trigger_before, run.args.trigger_after)
            try:
                outcome = stream_with_crash(
                    run, pipeline, plan, monitor, sinks, partitions=partitions, triggers=triggers
                )
            finally:
                pipeline.stop()
                for silver_sink in sinks:
                    silver_sink.close()
            record = record_stream(spark, lake, sink)
            show_stream(run, outcome, record, plan)

            run.step("Prove exactly-once: bronze, quarantine, silver, Snowflake")
            verify_bronze(run, spark, lake, plan)
            verify_exactly_once(run, spark, lake, plan, record=record, sink=sink)
            replay_by_hand(run, spark, lake, record, sink=sink, endpoint=warehouse)

            run.step("Late events: counted and kept, not silently lost")
            reconcile_late_events(run, spark, lake, plan, outcome.runs)

            run.step("Gold: windowed aggregates in Delta and Snowflake against the truth")
            verify_gold(run, spark, lake, plan, sink)

            run.step("Latency and throughput, measured")
            phases = stream_phases(record, outcome)
            latencies = measure_latency(run, phases)
            measure_throughput(run, phases, outcome)
            sink_warehouse(run, sink, record)

            run.step("Historical analytics on the same Delta tables")
            historical_analytics(run, spark, lake, record, version_at_crash=outcome.silver_version_at_crash)

            run.step("Dashboard snapshot")
            write_dashboard(run, sink, latencies)


def describe_sinks(run: PatternRun, warehouse: SnowflakeEndpoint) -> None:
    """Say what each query does, and where its sink runs and connects from."""
    run.say(
        f"Silver: parse → valid only → watermark {WATERMARK} on event_ts → dropDuplicatesWithinWatermark(event_id)"
        " → foreachBatch: Delta silver append (txnAppId/txnVersion) → Snowflake: events, the gold windows they"
        " touch and a ledger row, in one transaction. Bronze/quarantine: every record, its own query."
    )
    where = "the local Snowflake server on 127.0.0.1" if warehouse.mode == "local" else "the Snowflake account"
    run.say(
        "The silver sink runs where Spark runs foreachBatch (this process on local Spark; the server's Python worker "
        f"over Spark Connect or Databricks), so it opens its own connection to {where}, and reports back only "
        "through what it commits: a log row per call in STREAM_BATCH_LOG, which the live view and every measurement "
        "below read."
    )
    run.say(
        f"The producer sends {WARMUP_ROUNDS} rounds of {WARMUP_RECORDS} records, each once silver has "
        f"committed the last (a cold JVM's first batches are slow and measured apart), then "
        f"{run.args.rate:g} records/s."
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rate", type=float, default=DEFAULT_RATE, help=f"records per second (default {DEFAULT_RATE:g})"
    )
    before, after = DEFAULT_TRIGGERS
    parser.add_argument(
        "--trigger-before",
        type=float,
        default=before,
        help=f"processingTime seconds before the crash (default {before:g})",
    )
    parser.add_argument(
        "--trigger-after",
        type=float,
        default=after,
        help=f"processingTime seconds after the restart (default {after:g})",
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run_pattern(__file__, argv, body, default_rows=DEFAULT_ROWS, add_arguments=add_arguments)


if __name__ == "__main__":
    raise SystemExit(main())
