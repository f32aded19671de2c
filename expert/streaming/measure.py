"""Measurement entry points for `expert bench`: the streaming lesson's queries, driven apart from the lesson.

Why apart: the pattern run measures what a learner sees at its default rate, with a crash in the
middle. A benchmark needs one thing at a time and at a size chosen for it: how fast a backlog
drains, and the real-time query's latency at rates far above the pattern's. Each entry point runs the lesson's own query code (loaded from the script), on the local
(or configured) broker and Snowflake, in a fresh temporary workdir, and returns a typed result.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from expert.runtime.errors import ExpertError
from expert.streaming.events import plan_events
from expert.streaming.live_view import percentile
from expert.streaming.producer import PacedProducer, Pacing
from expert.streaming.realtime import MIN_MICRO_BATCH_SLOTS, LiveConsumer, LiveLane, task_slots
from expert.streaming.sink_log import InstrumentedSink, create_log, read_attempts
from expert.streaming.topics import end_offsets, ensure_topic

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from expert.runtime.kafka import KafkaEndpoint

DRAIN_TIMEOUT_S = 600.0
UNPACED = 1e9
"""A rate no producer reaches: the records go out as fast as the client sends them."""
PROBE_EVENTS = 50
"""Sent before the paced run; the run starts once all of them reached the live topic."""
READY_TIMEOUT_S = 180.0
SUSTAINED = 0.95
"""A rate counts as sustained when the producer sent, and the live topic received, at least 95% of it."""
WARMUP_S = 20.0
"""Sent at the offered rate but not measured. Measured here at 5,000/s (per-event latency by second
of produce time): a new query runs up to 2.35 s behind for its first ~8 s, catching up on what
arrived while it started, and its per-second p95 swings up to ~80 ms for ~10 s more before settling
at 13-39 ms. A 10 s warm-up left the end of that inside the measured window in some runs only."""
MEASURED_S = 10.0


def lesson_module() -> ModuleType:
    """The streaming lesson's script, imported without running it."""
    from expert.runtime.pattern import load_module, select_patterns

    return load_module(select_patterns("integration/02")[0])


@dataclass(frozen=True)
class DrainResult:
    """A backlog waiting in Kafka when the analytical queries start, and how fast silver worked through it."""

    backlog: int
    batches: int
    largest_batch: int
    seconds: float
    """From the first silver batch's start to the end of the batch that caught up."""
    stages: dict[str, float]
    """Seconds per stage of the silver sink, summed over the batches (from its log)."""

    @property
    def records_per_s(self) -> float:
        return self.backlog / self.seconds if self.seconds > 0 else float("nan")


def measure_drain(records: int = 20_000, *, lesson: ModuleType | None = None, seed: int = 11) -> DrainResult:
    """Send `records` to the topic first, then start the lesson's bronze and silver queries (trigger 0 s)
    on them and time silver until it has processed every one."""
    from expert.runtime.config import load_settings
    from expert.runtime.kafka import kafka_endpoint
    from expert.runtime.snowflake import snowflake_endpoint
    from expert.runtime.spark import get_spark

    lesson = lesson or lesson_module()
    settings = load_settings()
    spark = get_spark(["kafka"], config=settings.spark)
    with (
        kafka_endpoint(settings.kafka) as endpoint,
        tempfile.TemporaryDirectory(prefix="expert-drain-") as root,
        snowflake_endpoint(settings.snowflake, db_path=Path(root) / "snowflake", schema="REALTIME") as snowflake,
        snowflake.session() as session,
    ):
        lesson.SnowflakeLoader(session).create_tables()
        create_log(session)
        partitions = ensure_topic(endpoint, lesson.TOPIC, lesson.PARTITIONS)
        starting = end_offsets(endpoint, lesson.TOPIC, partitions)
        deliveries = [replace(d, late=False) for d in plan_events(records, seed).deliveries]
        producer = PacedProducer(endpoint, lesson.TOPIC, deliveries, Pacing(UNPACED))
        producer.run()
        final = end_offsets(endpoint, lesson.TOPIC, partitions)
        lake = lesson.Lake(Path(root))
        sink = InstrumentedSink(lesson.SilverSink(lake, snowflake), query_run=1)
        queries = lesson.start_queries(spark, endpoint, starting, lake, sink=sink, trigger_s=0.0)
        try:
            deadline = time.monotonic() + DRAIN_TIMEOUT_S
            while not queries.caught_up(lesson.TOPIC, final):
                if time.monotonic() > deadline or not queries.silver.isActive:
                    raise RuntimeError(f"silver did not drain {len(deliveries):,} records in time")
                time.sleep(0.2)
            progress = [p for p in queries.silver.recentProgress if p.numInputRows]
            stages: dict[str, float] = {}
            for attempt in read_attempts(session):
                for name, seconds in attempt.stages.items():
                    stages[name] = stages.get(name, 0.0) + seconds
        finally:
            queries.stop()
            sink.close()
    started = pd.Timestamp(progress[0].timestamp)
    last = progress[-1]
    ended = pd.Timestamp(last.timestamp) + pd.Timedelta(milliseconds=last.durationMs.get("triggerExecution", 0))
    rows = [int(p.numInputRows) for p in progress]
    return DrainResult(sum(rows), len(rows), max(rows), (ended - started).total_seconds(), stages)


@dataclass(frozen=True)
class RateResult:
    """One offered rate of the real-time sweep: what was sent and received, and latency only if sustained."""

    offered_per_s: float
    sent_per_s: float
    """What the producer achieved over its paced send loop."""
    live_per_s: float
    """Records that reached the live topic per second of the measured window."""
    measured: int
    """Events produced in the measured window (after the warm-up) that reached the live topic."""
    missing: int
    """Valid events sent that never reached the live topic within the drain timeout."""
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    warmup_s: float = WARMUP_S
    measured_s: float = MEASURED_S
    """How long the producer paces after the warm-up: the measured window runs to its last paced send."""

    @property
    def sustained(self) -> bool:
        kept_up = min(self.sent_per_s, self.live_per_s) >= SUSTAINED * self.offered_per_s
        return kept_up and self.missing == 0 and self.measured > 0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "sustained": self.sustained}


def measure_realtime(
    rates: Sequence[float] = (1_000, 5_000, 10_000), *, seconds: float = MEASURED_S, warmup_s: float = WARMUP_S
) -> list[RateResult]:
    """The lesson's real-time query alone, fed at each offered rate: produce → live latency percentiles.

    A fresh checkpoint and product table per rate; the first `warmup_s` of each rate are sent but
    not measured (a new query's first records wait for its start-up: see `WARMUP_S`). A rate is sustained
    when the producer sent, and the live topic received, at least 95% of it and every event
    arrived; only then are percentiles reported.
    """
    from expert.runtime.config import load_settings
    from expert.runtime.kafka import kafka_endpoint
    from expert.runtime.spark import get_spark

    lesson, settings = lesson_module(), load_settings()
    spark = get_spark(["kafka", "realtime"], config=settings.spark)
    slots, master = task_slots(spark)
    if slots is None or slots < lesson.PARTITIONS + MIN_MICRO_BATCH_SLOTS:
        raise ExpertError(f"Real-time Mode needs more task slots than {master} offers", "run it on a local session")
    with kafka_endpoint(settings.kafka) as endpoint, tempfile.TemporaryDirectory(prefix="expert-rtm-") as root:
        return [
            _measure_rate(lesson, spark, endpoint, Path(root) / f"{rate:g}", Sweep(rate, seconds, warmup_s))
            for rate in rates
        ]


@dataclass(frozen=True)
class Sweep:
    rate: float
    seconds: float
    warmup_s: float


def _measure_rate(
    lesson: ModuleType, spark: SparkSession, endpoint: KafkaEndpoint, root: Path, sweep: Sweep
) -> RateResult:
    partitions = ensure_topic(endpoint, lesson.TOPIC, lesson.PARTITIONS)
    ensure_topic(endpoint, lesson.LIVE_TOPIC, 1)
    plan = plan_events(int(sweep.rate * (sweep.seconds + sweep.warmup_s)), seed=7)
    deliveries = [replace(d, late=False) for d in plan.deliveries if d.kind != "malformed"]
    lake = lesson.Lake(root)
    lesson.write_products(spark, lake, plan)
    starting = end_offsets(endpoint, lesson.TOPIC, partitions)
    consumer = LiveConsumer(endpoint, lesson.LIVE_TOPIC, end_offsets(endpoint, lesson.LIVE_TOPIC, 1))
    consumer.start()
    lane = LiveLane(lesson.start_operational_query(spark, endpoint, starting, lake), consumer)
    probe, deliveries = deliveries[:PROBE_EVENTS], deliveries[PROBE_EVENTS:]
    try:
        # Ready means a record went through end to end, not that the query was started: its first
        # batch plans, reads the product table and opens the Kafka sink first (seconds, cold).
        PacedProducer(endpoint, lesson.TOPIC, probe, Pacing(UNPACED)).run()
        if not consumer.wait_for(len(probe), READY_TIMEOUT_S):
            raise ExpertError(
                f"the real-time query delivered {len(consumer.received_ms)} of {len(probe)} probe records "
                f"in {READY_TIMEOUT_S:.0f} s",
                "see .work/_shared/logs/spark-driver.log",
            )
        producer = PacedProducer(endpoint, lesson.TOPIC, deliveries, Pacing(sweep.rate))
        producer.run()
        consumer.wait_for(len(probe) + len(deliveries))
    finally:
        lane.stop()
    window_from = int((producer.started_at + sweep.warmup_s) * 1000)
    window_until = int(producer.paced_until * 1000)
    window_s = max((window_until - window_from) / 1000, 1e-9)
    latency = consumer.latency_ms(window_from, window_until)
    received = np.array(consumer.received_ms, dtype=np.int64)
    live_per_s = float(((received >= window_from) & (received < window_until)).sum()) / window_s
    missing = len({d.event_id for d in deliveries} - set(consumer.event_ids))
    result = RateResult(
        sweep.rate,
        producer.offered_rate,
        live_per_s,
        len(latency),
        missing,
        warmup_s=sweep.warmup_s,
        measured_s=sweep.seconds,
    )
    if not result.sustained:
        return result  # no latency for a rate that was not reached
    return replace(
        result, p50_ms=percentile(latency, 50), p95_ms=percentile(latency, 95), p99_ms=percentile(latency, 99)
    )


def main() -> None:
    """`python -m expert.streaming.measure [drain|realtime]...`: print each measurement as one JSON line."""
    wanted = sys.argv[1:] or ["drain", "realtime"]
    if "realtime" in wanted:
        print(json.dumps({"realtime": [r.as_dict() for r in measure_realtime()]}), flush=True)
    if "drain" in wanted:
        drain = measure_drain()
        print(json.dumps({"drain": {**asdict(drain), "records_per_s": drain.records_per_s}}), flush=True)


if __name__ == "__main__":
    main()
