"""Load and fault test of the streaming pattern (integration/02): crash it, kill its broker, lose nothing.

The silver sink is crashed at each of the three points a two-store sink can die (before the Delta
commit, between the Delta and the Snowflake commits, after both), and the broker is SIGKILLed once
mid-stream. Each time the stream is restarted from its checkpoints and every planned event must be
in Delta silver and in Snowflake exactly once, proven from the stores, not from counters. The
pattern's own code runs here: its queries, sinks and loader, the shared driver that crashes and
restarts it. Small data, one Spark session, one private broker for the file.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from expert.runtime import kafka
from expert.runtime.config import KAFKA, SNOWFLAKE, ServiceConfig, load_settings, resolve_service
from expert.runtime.narrate import Narrator
from expert.runtime.pattern import PatternRun, load_module, select_patterns
from expert.runtime.report import RunReport
from expert.runtime.snowflake import SnowflakeEndpoint, SnowflakeSession, snowflake_endpoint
from expert.streaming.crash import CrashPlan, CrashPoint
from expert.streaming.driver import StreamSetup, drive_stream
from expert.streaming.events import EventPlan, plan_events
from expert.streaming.latency import read_stream_record
from expert.streaming.monitor import AnalyticalQueries, StreamMonitor
from expert.streaming.producer import PacedProducer, Pacing
from expert.streaming.sink_log import InstrumentedSink, create_log
from expert.streaming.topics import end_offsets, ensure_topic

(META,) = select_patterns("integration/02")
rta = load_module(META)
EVENTS = 300
RATE = 150.0
RESTART_TIMEOUT_S = 180.0


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[kafka.KafkaEndpoint]:
    """A broker of this file's own (its own work root), so killing it disturbs no other test."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("EXPERT_WORK_ROOT", str(tmp_path_factory.mktemp("fault-broker")))
        with kafka.kafka_endpoint(ServiceConfig(KAFKA, "local")) as endpoint:
            ensure_topic(endpoint, rta.TOPIC, rta.PARTITIONS)
            yield endpoint


@dataclass
class Stream:
    """One scenario's stores: a fresh lake and Snowflake schema, a plan without late events."""

    run: PatternRun
    lake: Any
    plan: EventPlan
    snowflake: SnowflakeEndpoint
    session: SnowflakeSession
    starting: dict[int, int]


@pytest.fixture
def stream(spark, broker: kafka.KafkaEndpoint, workdir: Path) -> Iterator[Stream]:  # type: ignore[no-untyped-def]
    settings = load_settings()
    run = PatternRun(
        META, argparse.Namespace(rate=RATE), settings, workdir, Narrator(quiet=True), RunReport(META.id, "")
    )
    plan = plan_events(EVENTS, seed=3)
    # Late events are dropped by the watermark on purpose (the pattern proves that apart): leave them out.
    plan = replace(plan, deliveries=[d for d in plan.deliveries if not d.late])
    config = resolve_service(SNOWFLAKE, {})
    with (
        snowflake_endpoint(config, db_path=workdir / "snowflake", schema="REALTIME") as snowflake,
        snowflake.session() as session,
    ):
        rta.SnowflakeLoader(session).create_tables()
        create_log(session)
        starting = end_offsets(broker, rta.TOPIC, rta.PARTITIONS)
        yield Stream(run, rta.Lake(workdir), plan, snowflake, session, starting)


def assert_exactly_once(stream: Stream) -> None:
    """Every planned on-time event once in Delta silver and once in Snowflake; the ledger matches silver."""
    expected = sorted(int(i) for i in stream.plan.expected_silver["event_id"])
    silver = stream.run.spark.read.format("delta").load(stream.lake.table("silver")).toPandas()
    in_snowflake = stream.session.fetch_df("SELECT EVENT_ID FROM EVENTS")["EVENT_ID"].astype(int)
    assert sorted(silver["event_id"].astype(int)) == expected, "Delta silver: none lost, none twice"
    assert sorted(in_snowflake) == expected, "Snowflake: none lost, none twice"
    ledger = stream.session.fetch_df("SELECT BATCH_ID, ROWS_LOADED FROM BATCH_LEDGER ORDER BY BATCH_ID")
    per_batch = silver.groupby("batch_id").size()
    assert ledger["BATCH_ID"].astype(int).tolist() == per_batch.index.astype(int).tolist()
    assert ledger["ROWS_LOADED"].astype(int).tolist() == per_batch.astype(int).tolist()


@pytest.mark.parametrize("point", list(CrashPoint), ids=lambda p: p.name.lower())
def test_a_crash_at_any_point_of_the_sink_loses_and_duplicates_nothing(
    stream: Stream, broker: kafka.KafkaEndpoint, point: CrashPoint
) -> None:
    crash = CrashPlan.mid_stream(stream.plan, after_sent=0.3, steady_batches=1, warmup_rounds=1, point=point)
    sinks = [
        InstrumentedSink(rta.SilverSink(stream.lake, stream.snowflake), query_run=1, crash=crash),
        InstrumentedSink(rta.SilverSink(stream.lake, stream.snowflake), query_run=2),
    ]

    def start(query_run: int, trigger_s: float) -> AnalyticalQueries:
        sink = sinks[query_run - 1]
        return rta.start_queries(stream.run.spark, broker, stream.starting, stream.lake, sink=sink, trigger_s=trigger_s)

    pacing = Pacing(RATE, warmup_rounds=1, warmup_records=10, late_wait_s=0)
    silver = stream.lake.table("silver")
    setup = StreamSetup(broker, rta.TOPIC, rta.PARTITIONS, stream.plan, pacing, start, (0.0, 0.0), silver)
    try:
        outcome = drive_stream(stream.run, setup, StreamMonitor(stream.session, live=False))
    finally:
        for sink in sinks:
            sink.close()
    assert outcome.crash_error.startswith("SimulatedCrashError: simulated crash"), outcome.crash_error
    record = read_stream_record(stream.run.spark, silver, stream.session)
    (replay,) = [r for r in record.replays if r.batch_id == record.crashed_batch]
    assert replay.delta_skipped == (point != CrashPoint.BEFORE_DELTA), "Delta skips only what it committed"
    assert replay.snowflake_skipped == (point == CrashPoint.AFTER_BOTH), "the ledger skips only what it loaded"
    assert_exactly_once(stream)


def test_a_broker_killed_mid_stream_loses_and_duplicates_nothing(stream: Stream, broker: kafka.KafkaEndpoint) -> None:
    spark, lake = stream.run.spark, stream.lake
    producer = PacedProducer(broker, rta.TOPIC, stream.plan.deliveries, Pacing(RATE))
    sinks = [InstrumentedSink(rta.SilverSink(lake, stream.snowflake), query_run=n) for n in (1, 2)]
    queries = rta.start_queries(spark, broker, stream.starting, lake, sink=sinks[0], trigger_s=0.0)
    try:
        producer.start()
        while producer.sent < len(stream.plan.deliveries) * 0.4:
            time.sleep(0.02)
        killed = kafka.kill_broker()
        time.sleep(2)  # records keep coming: the producer buffers them, the queries wait or fail
        kafka.start_broker(port=killed.port, owner_pid=killed.owner_pid)
        producer.join(RESTART_TIMEOUT_S)
        assert not producer.errors, producer.errors
        final = end_offsets(broker, rta.TOPIC, rta.PARTITIONS)
        deadline = time.monotonic() + RESTART_TIMEOUT_S
        while not queries.caught_up(rta.TOPIC, final):
            if not all(
                q.isActive for q in queries.all()
            ):  # a query the outage failed: restart it, as an operator would
                queries.stop()
                queries = rta.start_queries(spark, broker, stream.starting, lake, sink=sinks[1], trigger_s=0.0)
            assert time.monotonic() < deadline, "the stream did not catch up after the broker came back"
            time.sleep(0.2)
    finally:
        queries.stop()
        for sink in sinks:
            sink.close()
    bronze = spark.read.format("delta").load(lake.table("bronze"))
    assert bronze.count() == bronze.select("kafka_partition", "kafka_offset").distinct().count(), "each record once"
    assert bronze.count() == len(stream.plan.deliveries), "the idempotent producer wrote each record once"
    assert_exactly_once(stream)


def test_a_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    """`kafka-storage format -t -x…` reads an id starting with "-" as an option: the broker never starts."""
    import base64
    import uuid

    leading_dash = uuid.UUID(bytes=bytes([0xF8]) + bytes(15))
    plain = uuid.UUID(bytes=bytes([0x10]) + bytes(15))
    assert base64.urlsafe_b64encode(leading_dash.bytes).decode().startswith("-")
    drawn = iter([leading_dash, leading_dash, plain])
    monkeypatch.setattr(kafka.uuid, "uuid4", lambda: next(drawn))
    cluster_id = kafka._cluster_id()
    assert not cluster_id.startswith("-")
    assert base64.urlsafe_b64decode(cluster_id + "==") == plain.bytes
