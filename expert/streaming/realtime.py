"""The operational lane's machinery: task slots, the live-topic consumer, and the rate sweep for `expert bench`.

Why: Real-time Mode keeps every task of its query running for the whole batch, one per Kafka
partition, so it starts only where that many task slots are free beside everything else; the
lesson checks that before starting it. Its latency is measured where a downstream service would
see the record, on the live topic: per event, from the Kafka record timestamp of the source record
(set at produce time) to the moment a consumer received the enriched record.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from expert.runtime.kafka import KafkaEndpoint
from expert.streaming.latency import Latency
from expert.streaming.live_view import percentile

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
    from pyspark.sql.streaming import StreamingQuery

    from expert.runtime.pattern import PatternRun

MIN_MICRO_BATCH_SLOTS = 2
"""Slots the micro-batch queries beside a real-time query need to make progress (bronze and silver)."""
DRAIN_TIMEOUT_S = 15.0
QUIET_S = 1.0


def task_slots(spark: SparkSession) -> tuple[int | None, str]:
    """How many tasks the session's master runs at once, and its master string (None when it cannot be known:
    `local[*]` on a remote server, or a cluster whose executors the client cannot count)."""
    import os

    try:
        master = spark.conf.get("spark.master") or ""
    except Exception:  # a Connect server may not expose it
        master = ""
    found = re.fullmatch(r"local(?:\[(\d+|\*)(?:,\s*\d+)?\])?", master)
    if found is None:
        return None, master or "unknown"
    count = found.group(1)
    if count == "*":
        remote = spark.__class__.__module__.startswith("pyspark.sql.connect")
        return (None if remote else os.cpu_count()), master
    return int(count or 1), master


RECEIVE_WAIT_S = 0.005
"""The consumer's wait per poll: at most 5 ms of each measured latency is the consumer's own."""


class LiveConsumer(threading.Thread):
    """Reads the live topic from `starting` offsets and keeps, per record, its event id, category
    (the enrichment), produce time (epoch ms, carried in the value) and receive time."""

    def __init__(self, endpoint: KafkaEndpoint, topic: str, starting: dict[int, int]) -> None:
        super().__init__(name="expert-live-consumer", daemon=True)
        self.endpoint, self.topic, self.starting = endpoint, topic, starting
        self.event_ids: list[int | None] = []
        self.categories: list[str | None] = []
        self.produced_ms: list[int] = []
        self.received_ms: list[int] = []
        self.errors: list[str] = []
        self._done = threading.Event()

    def run(self) -> None:
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer(
            self.endpoint.client_config(
                **{"group.id": "expert-live-latency", "enable.auto.commit": False, "fetch.wait.max.ms": 5}
            )
        )
        consumer.assign([TopicPartition(self.topic, p, o) for p, o in self.starting.items()])
        try:
            while not self._done.is_set():
                # consume() returns when it has 1000 records or at the timeout: the timeout bounds what
                # the measurement adds to each latency (it stamps the receive time after the call).
                messages = consumer.consume(1000, RECEIVE_WAIT_S)
                now = int(time.time() * 1000)
                for message in messages:
                    if message.error():
                        self.errors.append(str(message.error()))
                        continue
                    body = json.loads(message.value())
                    self.event_ids.append(body.get("event_id"))
                    self.categories.append(body.get("category"))
                    self.produced_ms.append(int(body["produced_ms"]))
                    self.received_ms.append(now)
        except Exception as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            consumer.close()

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=10)

    def wait_for(self, count: int, timeout_s: float = DRAIN_TIMEOUT_S) -> bool:
        """Wait until `count` records have arrived (False if they did not within the timeout)."""
        deadline = time.monotonic() + timeout_s
        while len(self.received_ms) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return len(self.received_ms) >= count

    def latency_ms(self, produced_from_ms: int = 0, produced_until_ms: int | None = None) -> np.ndarray:
        """Produce → live-topic receive, per record produced in [from, until)."""
        produced = np.array(self.produced_ms, dtype=np.int64)
        received = np.array(self.received_ms, dtype=np.int64)
        keep = produced >= produced_from_ms
        if produced_until_ms is not None:
            keep &= produced < produced_until_ms
        return received[keep] - produced[keep]


class LiveLane:
    """The running real-time query and the consumer timing its output; `stop()` ends both."""

    def __init__(self, query: StreamingQuery, consumer: LiveConsumer) -> None:
        self.query, self.consumer = query, consumer

    def stop(self) -> None:
        """Let the consumer read what the query already sent (until a quiet second), then stop both."""
        seen, deadline = -1, time.monotonic() + DRAIN_TIMEOUT_S
        while len(self.consumer.received_ms) != seen and time.monotonic() < deadline:
            seen = len(self.consumer.received_ms)
            time.sleep(QUIET_S)
        if self.query.isActive:
            self.query.stop()
        self.consumer.stop()


@contextlib.contextmanager
def live_lane(
    run: PatternRun, endpoint: KafkaEndpoint, topic: str, partitions: int, start: Callable[[], StreamingQuery]
) -> Iterator[LiveLane | None]:
    """Start the real-time query (with a consumer on its `topic`) if the session has the task slots it
    holds; yields None, having said why, if it has not. Stops both on the way out, whatever happens."""
    from expert.streaming.driver import raise_if_failed
    from expert.streaming.topics import end_offsets, ensure_topic

    slots, master = task_slots(run.spark)
    needed = partitions + MIN_MICRO_BATCH_SLOTS
    if slots is None or slots < needed:
        run.say(
            f"Real-time Mode not started: it holds {partitions} task slots (one per source partition) for its "
            f"whole batch, and the micro-batch queries beside it need {MIN_MICRO_BATCH_SLOTS} more, so it needs "
            f"{needed}; the master {master} offers {slots if slots is not None else 'a number the client cannot see'}. "
            "Run locally (the session asks for cores + 4 slots) or give the cluster that many cores."
        )
        yield None
        return
    ensure_topic(endpoint, topic, 1)
    consumer = LiveConsumer(endpoint, topic, end_offsets(endpoint, topic, 1))
    consumer.start()
    lane = LiveLane(start(), consumer)
    try:
        while lane.query.isActive and lane.query.status["message"] == "Initializing sources":
            time.sleep(0.05)
        raise_if_failed(lane.query)
        run.say(f"Real-time Mode query running on {slots} task slots ({master}); consumer on {topic}.")
        yield lane
    finally:
        lane.stop()


def compare_lanes(run: PatternRun, lane: LiveLane | None, latencies: Sequence[Latency], paced_from: float) -> None:
    """Both lanes' produce → visible latency from one run, side by side (events sent after the warm-up)."""
    if lane is None:
        return
    live = lane.consumer.latency_ms(int(paced_from * 1000))
    rows = [Latency("operational: Real-time Mode, stateless", "Kafka live topic", live)]
    rows += [replace(g, label=f"analytical: micro-batch, {g.label}") for g in latencies if g.label.startswith("steady")]
    run.table(
        [g.row() for g in rows],
        title="produce → visible, per event: the two lanes of one run",
        columns=["events", "store", "n", "p50 ms", "p95 ms", "p99 ms", "max ms"],
    )
    for q in (50, 95, 99):
        run.figure(
            f"produce→live p{q} (Real-time Mode, beside the analytical path)", percentile(live, q), "ms", key=q == 95
        )
