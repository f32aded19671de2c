"""Running the analytical queries while the producer sends, through a planned crash and a restart.

Why in the shared layer: the lesson's part is "start the same queries again on the same
checkpoints"; waiting for readiness, pacing the producer, feeding it the watermark, noticing the
crash, collecting progress reports before a query object forgets them, deciding that the stream
has drained, and the live view are machinery every run needs and no learner came for.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from expert.lakehouse.delta_ops import latest_version
from expert.runtime.errors import ExpertError
from expert.runtime.kafka import KafkaEndpoint
from expert.streaming.crash import expect_simulated_crash
from expert.streaming.events import EventPlan
from expert.streaming.live_view import live_view
from expert.streaming.monitor import AnalyticalQueries, StreamMonitor
from expert.streaming.producer import PacedProducer, Pacing
from expert.streaming.sink_log import this_process
from expert.streaming.topics import end_offsets

if TYPE_CHECKING:
    from pyspark.sql.streaming import StreamingQuery

    from expert.runtime.pattern import PatternRun
    from expert.streaming.latency import StreamRecord

STREAM_TIMEOUT_S = 180.0
"""How long the stream may take beyond the time the producer needs to send everything."""

StartQueries = Callable[[int, float], AnalyticalQueries]
"""Starts the lesson's queries for query run 1 or 2 with a processingTime trigger of so many seconds."""


@dataclass
class QueryRun:
    """One run of the two queries (1: until the crash; 2: restarted from the checkpoints)."""

    trigger_s: float
    started: float = 0.0
    ready: float = 0.0
    stopped: float = 0.0
    silver_progress: list[Any] = field(default_factory=list)


@dataclass
class StreamOutcome:
    """The two query runs, the producer that fed them, and the crash as Spark reported it and the driver saw it."""

    runs: list[QueryRun]
    producer: PacedProducer
    crash_error: str
    sent_at_crash: int
    silver_version_at_crash: int


@dataclass
class StreamSetup:
    """What the driver needs: where to send, what, how fast, how to (re)start the queries."""

    endpoint: KafkaEndpoint
    topic: str
    partitions: int
    plan: EventPlan
    pacing: Pacing
    start: StartQueries
    triggers: tuple[float, float]
    silver_table: str
    watch_also: tuple[StreamingQuery, ...] = ()
    """Other queries that must keep running meanwhile (a failure of one ends the run)."""


def drive_stream(run: PatternRun, setup: StreamSetup, monitor: StreamMonitor) -> StreamOutcome:
    """Stream the plan; query run 1's silver sink crashes as planned; restart both from their checkpoints; drain."""
    producer = PacedProducer(setup.endpoint, setup.topic, setup.plan.deliveries, setup.pacing)
    runs = [QueryRun(setup.triggers[0]), QueryRun(setup.triggers[1])]
    crash_error, sent_at_crash, version_at_crash = "", 0, -1
    final: dict[int, int] = {}
    queries: AnalyticalQueries | None = None
    try:
        with live_view(run, monitor, producer) as refresh:
            queries = _start(setup, runs[0], monitor, refresh)
            producer.start()
            deadline = time.monotonic() + STREAM_TIMEOUT_S + len(setup.plan.deliveries) / setup.pacing.rate
            harvested = time.monotonic()
            while time.monotonic() < deadline:
                monitor.poll(queries)
                refresh()
                if producer.errors:
                    break
                producer.batches_committed = monitor.data_batches
                producer.watermark_ms = max(producer.watermark_ms, queries.watermark_ms())
                if time.monotonic() - harvested > 1:
                    collect_progress(queries, runs[monitor.query_run - 1])
                    harvested = time.monotonic()
                for query in (*queries.all(), *setup.watch_also):
                    if query is not queries.silver or monitor.query_run == 2:
                        raise_if_failed(query)
                if monitor.query_run == 1 and not queries.silver.isActive:
                    crash_error, sent_at_crash = expect_simulated_crash(queries.silver), producer.sent
                    version_at_crash = _stop_after_crash(run, setup, queries, runs[0], monitor)
                    queries = _start(setup, runs[1], monitor, refresh)
                    producer.release()
                    continue
                if not producer.is_alive():
                    final = final or end_offsets(setup.endpoint, setup.topic, setup.partitions)
                    if _drained(queries, setup.topic, final, monitor.query_run):
                        break
                time.sleep(0.1)
            else:
                raise ExpertError(
                    f"the stream did not finish within {STREAM_TIMEOUT_S:.0f} s (status: {monitor.status})",
                    "the machine may be overloaded: retry with a lower --rate or fewer --rows",
                )
            runs[1].stopped = time.time()
            queries.stop()
            collect_progress(queries, runs[monitor.query_run - 1])
            monitor.status = "drained: every produced record processed; queries stopped"
            monitor.poll(queries, now=True)
            refresh()
    finally:
        if queries is not None:
            queries.stop()
    if producer.errors:
        raise ExpertError(
            f"the producer reported {len(producer.errors)} error(s): {producer.errors[0]}",
            "see the broker log and the Spark driver log",
        )
    return StreamOutcome(runs, producer, crash_error, sent_at_crash, version_at_crash)


def _start(
    setup: StreamSetup, times: QueryRun, monitor: StreamMonitor, refresh: Callable[[], None]
) -> AnalyticalQueries:
    monitor.status = f"query run {monitor.query_run}: starting both queries (trigger {times.trigger_s:g} s)"
    times.started = time.time()
    queries = setup.start(monitor.query_run, times.trigger_s)
    while not queries.ready():
        for query in queries.all():
            raise_if_failed(query)
        refresh()
        time.sleep(0.05)
    times.ready = time.time()
    monitor.status = f"query run {monitor.query_run}: streaming (trigger processingTime={times.trigger_s:g} s)"
    return queries


def _drained(queries: AnalyticalQueries, topic: str, final: dict[int, int], query_run: int) -> bool:
    """Every produced record processed, and only after the restart (before it, the crash never came)."""
    if not queries.caught_up(topic, final):
        return False
    if query_run == 1:
        raise ExpertError(
            "every record was processed before the planned crash point",
            "use more --rows or a lower --rate, so the stream is still running when it crashes",
        )
    return True


def _stop_after_crash(
    run: PatternRun, setup: StreamSetup, queries: AnalyticalQueries, times: QueryRun, monitor: StreamMonitor
) -> int:
    """Stop bronze too, keep query run 1's last progress reports; returns silver's Delta version at the crash."""
    times.stopped = time.time()
    monitor.status = "silver crashed; bronze stopped; restarting both from their checkpoints"
    queries.stop()
    version = latest_version(run.spark, setup.silver_table)
    collect_progress(queries, times)
    monitor.poll(queries, now=True)
    monitor.query_run = 2
    return -1 if version is None else version


def raise_if_failed(query: StreamingQuery) -> None:
    """A query that stopped with an error (other than the planned crash) ends the run with its reason."""
    from expert.runtime.spark import spark_log_path

    error = query.exception() if not query.isActive else None
    if error is not None:
        raise ExpertError(
            f"streaming query {query.name} failed: {str(error).strip().splitlines()[0]}",
            f"see the Spark driver log ({spark_log_path()}) and the broker log",
        )


def collect_progress(queries: AnalyticalQueries, times: QueryRun) -> None:
    """Keep every progress report of the silver query (a query object remembers only its last 100)."""
    seen = {(p.batchId, p.timestamp) for p in times.silver_progress}
    times.silver_progress.extend(p for p in queries.silver.recentProgress if (p.batchId, p.timestamp) not in seen)


def report_stream(run: PatternRun, outcome: StreamOutcome, record: StreamRecord, planned: int) -> None:
    """The two query runs side by side, the crash, the outage, and whether the broker took every record."""
    producer = outcome.producer
    before, after = outcome.runs
    run.table(
        [
            {
                "query run": label,
                "trigger": f"processingTime {times.trigger_s:g} s",
                "query start s": round(times.ready - times.started, 2),
                "silver batches": sum(c.query_run == number for c in record.commits.values()),
                "events committed": sum(c.rows for c in record.commits.values() if c.query_run == number),
            }
            for number, label, times in (
                (1, "1 (before the crash)", before),
                (2, "2 (restarted from the checkpoint)", after),
            )
        ],
        title="the stream, in two query runs",
    )
    run.say(f"Crash: {outcome.crash_error}")
    here = this_process()
    where = ", ".join(
        sorted(f"{p} ({'this process' if p == here else 'another process'})" for p in record.sink_processes)
    )
    run.say(
        f"The silver sink ran in {where}: the driver on local Spark, the server's Python worker over Spark Connect; "
        "it reached Snowflake by itself."
    )
    run.figure("outage (crash detected → restarted queries ready)", after.ready - before.stopped, "s")
    run.figure(
        "producer rate",
        producer.offered_rate,
        "records/s",
        how=f"{producer.sent_paced:,} records in the paced send loop, target {producer.pacing.rate:g}/s",
    )
    run.check(
        "the broker acknowledged every record sent",
        producer.acked == producer.sent == planned,
        f"{producer.acked:,} acknowledged of {planned:,} planned",
    )
    after_restart = sum(c.rows for c in record.commits.values() if c.query_run == 2)
    run.check(
        "the silver query crashed mid-stream, after committing a batch, and the restarted stream carried on",
        record.crashed_batch is not None and outcome.sent_at_crash < planned and after_restart > 0,
        f"crash after batch {record.crashed_batch}, noticed with {outcome.sent_at_crash:,} of {planned:,} "
        f"records sent; {after_restart:,} new events committed after the restart",
    )
