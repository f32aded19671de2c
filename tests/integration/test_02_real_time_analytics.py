"""integration/02: the local Kafka broker's lifecycle and errors, the idempotent sinks, and the pattern end to end."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyspark.testing import assertDataFrameEqual

from expert.runtime import daemon, kafka
from expert.runtime.config import KAFKA, SNOWFLAKE, ServiceConfig, resolve_service
from expert.runtime.errors import ExpertError
from expert.runtime.pattern import load_module, select_patterns
from expert.streaming import events, topics
from expert.streaming.crash import CrashPlan, SimulatedCrashError
from expert.streaming.latency import BatchCommit, Phase, sustained_rate
from expert.streaming.sink_log import InstrumentedSink, create_log, read_attempts, this_process

(META,) = select_patterns("integration/02")
rta = load_module(META)


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[kafka.KafkaEndpoint]:
    """One real local broker for the whole test session (the pattern finds it running and reuses it)."""
    with kafka.kafka_endpoint(ServiceConfig(KAFKA, "local")) as endpoint:
        yield endpoint


@pytest.fixture
def other_broker_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A separate work root, so a test can start (or fail to start) a second broker without touching the first."""
    monkeypatch.setenv("EXPERT_WORK_ROOT", str(tmp_path / "work"))
    return tmp_path


# --- the broker --------------------------------------------------------------------------


def test_broker_is_real_loopback_only_and_status_tells_the_truth(kafka_broker: kafka.KafkaEndpoint) -> None:
    from confluent_kafka.admin import AdminClient

    status = kafka.broker_status()
    assert status.running and status.state is not None
    assert kafka_broker.bootstrap_servers == status.state.bootstrap_servers
    assert status.state.bootstrap_servers.startswith("127.0.0.1:")
    properties = (kafka.broker_dir() / "server.properties").read_text()
    listeners = next(line for line in properties.splitlines() if line.startswith("listeners="))
    assert listeners.count("127.0.0.1") == 2 and "0.0.0.0" not in properties
    metadata = AdminClient(kafka_broker.client_config()).list_topics(timeout=10)
    assert [b.host for b in metadata.brokers.values()] == ["127.0.0.1"]
    again = kafka.start_broker()
    assert again.already_running and again.state.pid == status.state.pid
    assert kafka.cached_broker_classpath(), "the resolved jar list is remembered for offline starts"


def test_cli_reports_the_running_broker(kafka_broker: kafka.KafkaEndpoint, capsys: pytest.CaptureFixture[str]) -> None:
    from expert.cli import main

    assert main(["kafka", "status"]) == 0
    assert kafka_broker.bootstrap_servers in capsys.readouterr().out


def test_a_broker_started_for_a_run_is_stopped_after_it(other_broker_home: Path) -> None:
    with kafka.kafka_endpoint(ServiceConfig(KAFKA, "local")) as endpoint:
        status = kafka.broker_status()
        assert endpoint.started_here and status.running and status.state is not None
        pid = status.state.pid
    assert daemon.process_command(pid) is None, "the broker JVM is gone: no orphan"
    assert not kafka.broker_status().running


def test_a_broker_whose_run_was_killed_is_adopted_and_stopped_by_the_next_run(other_broker_home: Path) -> None:
    import subprocess
    import sys

    dead_run = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    left = kafka.start_broker(owner_pid=int(dead_run.stdout))
    try:
        status = kafka.broker_status()
        assert status.running and "orphaned" in status.detail
        with kafka.kafka_endpoint(ServiceConfig(KAFKA, "local")) as endpoint:
            assert endpoint.start is not None and endpoint.start.adopted_from == int(dead_run.stdout)
            assert endpoint.started_here and endpoint.start.state.pid == left.state.pid
        assert daemon.process_command(left.state.pid) is None, "the adopting run stopped it"
    finally:
        kafka.stop_broker()


def test_port_in_use_is_a_plain_error(other_broker_home: Path, busy_port: int) -> None:
    with pytest.raises(ExpertError, match=f"port {busy_port} on 127.0.0.1 is already in use") as err:
        kafka.start_broker(port=busy_port)
    assert "--port" in err.value.fix
    assert not kafka.broker_status().running


def test_missing_java_is_a_plain_error(other_broker_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAVA_HOME", str(other_broker_home / "no-jdk"))
    with pytest.raises(ExpertError, match="Java was not found"):
        kafka.start_broker()


def test_a_broker_not_ready_in_time_is_stopped_and_explained(other_broker_home: Path) -> None:
    with pytest.raises(ExpertError, match=r"did not become ready within 1 s") as err:
        kafka.start_broker(timeout=1)
    assert "--timeout" in err.value.fix
    status = kafka.broker_status()
    assert not status.running and "not running" in status.detail


def test_unresolvable_jars_are_a_plain_error(other_broker_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXPERT_CACHE_DIR", str(other_broker_home / "cache"))
    monkeypatch.setattr(kafka, "BROKER_MODULES", (("org.apache.kafka", "kafka_2.13", "0.0.0-does-not-exist"),))
    with pytest.raises(ExpertError, match="could not resolve the Kafka broker jars") as err:
        kafka.start_broker()
    assert "later starts reuse them offline" in err.value.fix


def test_cloud_settings_reach_both_clients_and_the_secret_stays_hidden() -> None:
    config = resolve_service(
        KAFKA,
        {
            "KAFKA_BOOTSTRAP_SERVERS": "b1.example.com:9092",
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": "PLAIN",
            "KAFKA_SASL_USERNAME": "learner",
            "KAFKA_SASL_PASSWORD": "s3cret-value",
        },
    )
    endpoint = kafka.KafkaEndpoint("b1.example.com:9092", config)
    librdkafka = endpoint.client_config()
    assert librdkafka["sasl.password"] == "s3cret-value" and librdkafka["security.protocol"] == "SASL_SSL"
    spark = endpoint.spark_options()
    assert spark["kafka.sasl.jaas.config"].startswith("org.apache.kafka.common.security.plain.PlainLoginModule")
    assert "s3cret-value" not in repr(endpoint) and "s3cret-value" not in repr(config)


def test_topic_waits_for_leaders_that_answer_for_offsets(
    kafka_broker: kafka.KafkaEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    from confluent_kafka import KafkaError, KafkaException

    answers = iter([KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE, None])
    real = topics.end_offsets

    def settling(endpoint: kafka.KafkaEndpoint, topic: str, partitions: int) -> dict[int, int]:
        code = next(answers)
        if code is not None:
            raise KafkaException(KafkaError(code))
        return real(endpoint, topic, partitions)

    monkeypatch.setattr(topics, "end_offsets", settling)
    assert topics.ensure_topic(kafka_broker, rta.TOPIC, rta.PARTITIONS) == rta.PARTITIONS
    assert next(answers, "drained") == "drained", "it asked until the leaders answered"

    def refused(endpoint: kafka.KafkaEndpoint, topic: str, partitions: int) -> dict[int, int]:
        raise KafkaException(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED))

    monkeypatch.setattr(topics, "end_offsets", refused)
    with pytest.raises(KafkaException):
        topics.ensure_topic(kafka_broker, rta.TOPIC, rta.PARTITIONS)  # not a leadership that is settling: no waiting


# --- the pieces of the pipeline ----------------------------------------------------------


def test_event_plan_counts_its_own_dirt() -> None:
    plan = events.plan_events(1_000, 7)
    valid = [d for d in plan.deliveries if d.kind != "malformed"]
    assert len({d.event_id for d in valid}) == plan.count("event") == 1_000
    assert plan.count("redelivery") == len(valid) - 1_000 > 0
    assert plan.count("malformed") > 0 and all(d.key is None for d in plan.deliveries if d.kind == "malformed")
    assert {d.event_id for d in plan.deliveries if d.late} == plan.late_ids
    assert len(plan.expected_silver) == 1_000 - len(plan.late_ids)


def test_parse_and_validate_sends_only_malformed_records_to_quarantine(spark) -> None:  # type: ignore[no-untyped-def]
    plan = events.plan_events(200, 3)
    raw = spark.createDataFrame(
        [(d.value, i % 3, i, datetime(2026, 1, 1)) for i, d in enumerate(plan.deliveries)],
        "value BINARY, partition INT, offset BIGINT, timestamp TIMESTAMP",
    )
    parsed = rta.parse_and_validate(raw)
    invalid = parsed.filter("invalid_reason IS NOT NULL")
    assert invalid.count() == plan.count("malformed")
    expected = spark.createDataFrame(
        [(d.event_id,) for d in plan.deliveries if d.kind != "malformed"], "event_id BIGINT"
    )
    assertDataFrameEqual(parsed.filter("invalid_reason IS NULL").select("event_id"), expected)


def _silver_frame() -> pd.DataFrame:
    """Three events of one silver batch, as the silver sink collects them."""
    return pd.DataFrame(
        {
            "EVENT_ID": [1, 2, 3],
            "SESSION_ID": [10, 10, 11],
            "CUSTOMER_ID": [5, 5, 6],
            "PRODUCT_ID": [7, 7, 8],
            "EVENT_TYPE": ["view", "purchase", "cart"],
            "CHANNEL": ["web", "web", "ios"],
            "PRICE": [Decimal("9.99"), Decimal("9.99"), Decimal("20.00")],
            "EVENT_TS_MS": [1_767_225_600_000, 1_767_225_630_000, 1_767_225_660_000],
            "PRODUCED_AT_MS": [1_767_225_601_000, 1_767_225_631_000, 1_767_225_661_000],
        }
    )


def test_snowflake_loader_is_atomic_and_idempotent(snowflake_local, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    loader = rta.SnowflakeLoader(snowflake_local)
    loader.create_tables()
    rows = _silver_frame()
    real_execute = snowflake_local.execute

    def fail_on_ledger(sql: str, params=None):  # type: ignore[no-untyped-def]
        if sql.startswith("INSERT INTO BATCH_LEDGER"):
            raise RuntimeError("connection lost before COMMIT")
        return real_execute(sql, params)

    monkeypatch.setattr(snowflake_local, "execute", fail_on_ledger)
    with pytest.raises(RuntimeError, match="connection lost"):
        loader.load(rows, 0)
    monkeypatch.setattr(snowflake_local, "execute", real_execute)
    assert snowflake_local.scalar("SELECT COUNT(*) FROM EVENTS") == 0, "a failed batch leaves no rows behind"
    assert snowflake_local.scalar("SELECT COUNT(*) FROM GOLD_PRODUCT_MINUTE") == 0
    assert loader.load(rows, 0) is True
    assert loader.load(rows, 0) is False, "a replayed batch is recognised by the ledger"
    assert snowflake_local.scalar("SELECT COUNT(*) FROM EVENTS") == 3
    assert snowflake_local.scalar("SELECT MIN(PRODUCED_AT) FROM EVENTS") == datetime(2026, 1, 1, 0, 0, 1)
    gold = snowflake_local.fetch(
        "SELECT SUM(VIEWS) V, SUM(CARTS) C, SUM(PURCHASES) P, SUM(REVENUE) R FROM GOLD_PRODUCT_MINUTE"
    )
    assert (gold[0]["V"], gold[0]["C"], gold[0]["P"], float(gold[0]["R"])) == (1, 1, 1, 9.99)


def test_crash_plan_waits_for_enough_batches_and_far_enough_into_the_stream() -> None:
    plan = events.plan_events(1_000, 7)
    crash = CrashPlan.mid_stream(
        plan,
        after_sent=rta.CRASH_AFTER_SENT,
        steady_batches=rta.CRASH_AFTER_STEADY_BATCHES,
        warmup_rounds=rta.WARMUP_ROUNDS,
    )
    position = next(i for i, d in enumerate(plan.deliveries) if d.event_id == crash.from_event_id and d.kind == "event")
    assert position >= int(rta.CRASH_AFTER_SENT * len(plan.deliveries)) > position - 10
    late = np.array([crash.from_event_id + 5])
    assert not crash.due(crash.after_batches - 1, late), "too few batches committed yet"
    assert not crash.due(crash.after_batches, np.array([crash.from_event_id - 1])), "not far enough into the stream"
    assert crash.due(crash.after_batches, late)
    assert crash.after_batches == rta.WARMUP_ROUNDS + rta.CRASH_AFTER_STEADY_BATCHES


def test_silver_sink_shipped_like_spark_connect_ships_it_commits_logs_and_crashes(spark, workdir: Path) -> None:  # type: ignore[no-untyped-def]
    """The sink is pickled (as a Connect server receives it) and, unpickled, reaches Snowflake on its own."""
    import cloudpickle

    from expert.runtime.snowflake import snowflake_endpoint

    lake = rta.Lake(workdir)
    frame = _silver_frame()
    batch = spark.createDataFrame(
        [
            (*r[:6], r[6], datetime.fromtimestamp(r[7] / 1000, UTC), datetime.fromtimestamp(r[8] / 1000, UTC))
            for r in frame.itertuples(index=False)
        ],
        "event_id BIGINT, session_id BIGINT, customer_id BIGINT, product_id BIGINT, event_type STRING, "
        "channel STRING, price DECIMAL(10,2), event_ts TIMESTAMP, produced_at TIMESTAMP",
    )
    with (
        snowflake_endpoint(resolve_service(SNOWFLAKE, {}), db_path=workdir / "snowflake") as endpoint,
        endpoint.session() as session,
    ):
        rta.SnowflakeLoader(session).create_tables()
        create_log(session)
        crash = CrashPlan(after_batches=2, from_event_id=3)
        sink = InstrumentedSink(rta.SilverSink(lake, endpoint), query_run=1, crash=crash)
        shipped = cloudpickle.loads(cloudpickle.dumps(sink))
        try:
            shipped(batch.filter("event_id < 3"), 0)
            with pytest.raises(SimulatedCrashError, match="after batch 1"):
                shipped(batch.filter("event_id = 3"), 1)
        finally:
            shipped.close()
        attempts = read_attempts(session)
        assert session.scalar("SELECT COUNT(*) FROM EVENTS") == 3, "both batches committed before the crash"
    assert [(a.batch_id, a.query_run, a.rows, a.crashed) for a in attempts] == [(0, 1, 2, False), (1, 1, 1, True)]
    assert all(a.started_at <= (a.delta_at or 0) <= (a.snowflake_at or 0) for a in attempts)
    assert {a.process for a in attempts} == {this_process()}, "on classic Spark the sink runs in the driver"
    silver = spark.read.format("delta").load(lake.table("silver"))
    assert sorted(r.event_id for r in silver.select("event_id").collect()) == [1, 2, 3]


# --- the pattern, end to end -------------------------------------------------------------


@pytest.fixture
def outcome(kafka_broker: kafka.KafkaEndpoint, pattern_run):  # type: ignore[no-untyped-def]
    return pattern_run("integration/02")


def test_pattern_passes_every_invariant(outcome) -> None:  # type: ignore[no-untyped-def]
    assert outcome.exit_code == 0, outcome.report.error
    names = {c.name for c in outcome.report.checks}
    assert all(c.passed for c in outcome.report.checks)
    for must in (
        "silver holds every on-time event exactly once",
        "Snowflake holds every on-time event exactly once",
        "the crashed batch ran again after the restart and every sink skipped it",
        "late events are exactly the planned ones, and all are kept in late_events",
        "re-running a committed batch changes nothing (silver, Snowflake events, gold, ledger)",
        "every valid event reached the live topic at least once, enriched",
        "no malformed record reached the live topic",
    ):
        assert must in names


def test_the_operational_lane_is_measured_beside_the_analytical_one(outcome) -> None:  # type: ignore[no-untyped-def]
    report = outcome.report
    live = [
        float(report.value(f"produce→live p{q} (Real-time Mode, beside the analytical path)")) for q in (50, 95, 99)
    ]
    assert 0 < live[0] <= live[1] <= live[2]
    steady = float(report.value("produce→Delta silver p50 (steady, trigger 0 s)"))
    assert live[0] < steady, "Real-time Mode answers before a micro-batch commits"
    plan = events.plan_events(outcome.arg("--rows", rta.DEFAULT_ROWS), 42)
    duplicates = int(report.value("duplicates on the live topic (at least once)"))
    assert duplicates >= plan.count("redelivery"), "a redelivered event goes out as often as it was sent"


def test_silver_and_snowflake_match_the_generator(outcome, spark) -> None:  # type: ignore[no-untyped-def]
    from expert.runtime.snowflake import snowflake_session

    plan = events.plan_events(outcome.arg("--rows", rta.DEFAULT_ROWS), 42)
    expected = spark.createDataFrame(plan.expected_silver[["event_id"]])
    silver = spark.read.format("delta").load(str(outcome.workdir / "delta" / "silver"))
    assertDataFrameEqual(silver.select("event_id"), expected)
    with snowflake_session(
        resolve_service(SNOWFLAKE, {}), db_path=outcome.workdir / "snowflake", schema="REALTIME"
    ) as session:
        loaded = session.fetch_df("SELECT EVENT_ID FROM EVENTS")
        revenue = float(session.scalar("SELECT SUM(REVENUE) FROM REVENUE_PER_MINUTE"))
    assert sorted(loaded["EVENT_ID"].astype(int)) == sorted(plan.expected_silver["event_id"].astype(int))
    purchases = plan.expected_silver[plan.expected_silver["event_type"] == "purchase"]
    assert revenue == pytest.approx(float(purchases["price"].sum()), abs=0.005)


def test_latency_and_throughput_are_measured_under_both_triggers(outcome) -> None:  # type: ignore[no-untyped-def]
    report = outcome.report
    for trigger in rta.DEFAULT_TRIGGERS:
        phase = f"steady, trigger {trigger:g} s"
        for store in ("Delta silver", "Snowflake"):
            p50, p95, p99 = (float(report.value(f"produce→{store} p{q} ({phase})")) for q in (50, 95, 99))
            assert 0 < p50 <= p95 <= p99
        sustained = float(report.value(f"sustained events/s ({phase})"))
        if trigger == rta.DEFAULT_TRIGGERS[0]:
            assert sustained > 0, "the producer is still sending while the first steady batches run"
        else:
            # After the restart the producer may have finished before a steady batch began (a loaded
            # machine restarts slowly); the pattern then reports no rate (NaN) and says why.
            assert sustained > 0 or math.isnan(sustained)
    assert float(report.value("backlog drain rate (one batch after the restart)")) > 0
    assert report.cloud_only, "the sink warehouse DDL is recorded as cloud-only"


def test_sustained_rate_counts_what_arrived_between_batch_starts_while_the_producer_paced() -> None:
    def phase(since: float, *batches: tuple[float, int]) -> object:
        commits = [
            BatchCommit(i, 1, start, start + 1, None, np.zeros(rows, dtype=np.int64))
            for i, (start, rows) in enumerate(batches)
        ]
        return Phase("steady", 0.0, True, commits, [], since)

    # 200 events arrived in the 2 s before the batch at 12.0 and 250 in the 2.5 s before 14.5;
    # the batch at 16.0 began after the producer stopped at 15.0, so it holds only the tail.
    steady = phase(10.0, (12.0, 200), (14.5, 250), (16.0, 30))
    assert sustained_rate(steady, paced_from=9.0, paced_until=15.0) == pytest.approx(100.0)
    assert sustained_rate(steady, paced_from=11.0, paced_until=15.0) == pytest.approx(450 / 3.5), "pacing began late"
    assert np.isnan(sustained_rate(phase(10.0, (16.0, 30)), paced_from=9.0, paced_until=15.0))


def test_dashboard_snapshot_is_self_contained(outcome) -> None:  # type: ignore[no-untyped-def]
    html = (outcome.workdir / "dashboard.html").read_text()
    assert "<script src=" not in html.split("<body>")[0], "plotly is bundled inline, no CDN"
    assert "Revenue per minute" in html and "Funnel" in html


def test_silver_is_created_with_its_checkpoint_interval(outcome, spark) -> None:  # type: ignore[no-untyped-def]
    """At Delta's default interval of 10, every tenth silver commit also wrote a checkpoint and took 2-3.5x as long.

    Only the table property is checked: a default run makes fewer silver commits than either interval.
    """
    silver = outcome.workdir / "delta" / "silver"
    properties = {r["key"]: r["value"] for r in spark.sql(f"SHOW TBLPROPERTIES delta.`{silver}`").collect()}
    assert properties["delta.checkpointInterval"] == str(rta.SILVER_CHECKPOINT_INTERVAL)
