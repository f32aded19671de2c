"""A producer thread that sends a planned stream at a steady rate, as a real source would.

Idempotent (`enable.idempotence`, `acks=all`): the broker drops the producer's own retries, so the
only duplicates in the topic are the ones planned as redeliveries. The Kafka record timestamp is
the produce time: every latency in the lesson starts there.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from expert.runtime.kafka import KafkaEndpoint
from expert.streaming.events import Delivery


@dataclass(frozen=True)
class Pacing:
    """How the records go out: warm-up rounds first, then a steady rate.

    `warmup_rounds` rounds of `warmup_records` records, each sent once the stream has committed a
    batch per earlier round (so a cold JVM's first batches are measured apart from steady state);
    then the rest at `rate` records per second. A late event waits aside until the stream's
    watermark has passed its event time (which is what makes it late), at most `late_wait_s`
    after the paced records, never holding up the rest. With `hold_at` (a fraction of the paced
    records), the producer pauses there until the caller calls `release()` (or `hold_timeout_s`
    passes): a crash planned mid-stream then happens mid-stream however slow the machine is.
    """

    rate: float
    warmup_rounds: int = 0
    warmup_records: int = 0
    warmup_timeout_s: float = 180.0
    late_wait_s: float = 60.0
    hold_at: float | None = None
    hold_timeout_s: float = 180.0

    @property
    def warmup(self) -> int:
        return self.warmup_rounds * self.warmup_records


class PacedProducer(threading.Thread):
    """Sends `deliveries` to `topic` as `pacing` says; the caller keeps `batches_committed` and
    `watermark_ms` current (they gate the warm-up rounds and the late events)."""

    def __init__(self, endpoint: KafkaEndpoint, topic: str, deliveries: list[Delivery], pacing: Pacing) -> None:
        super().__init__(name="expert-paced-producer", daemon=True)
        self.endpoint, self.topic, self.deliveries, self.pacing = endpoint, topic, deliveries, pacing
        self.batches_committed = 0
        self.watermark_ms = 0
        self.sent = self.acked = 0
        self.errors: list[str] = []
        self.started_at = self.paced_until = 0.0
        """Epoch seconds: when the paced send loop began and ended (the warm-up rounds come before)."""
        self.sent_paced = 0
        self.held_s = 0.0
        """Seconds the paced loop waited at `pacing.hold_at` (left out of `offered_rate`)."""
        self._released = threading.Event()

    def _warm_up(self, producer: Any) -> None:
        """Each warm-up round once the stream has committed a batch per earlier round."""
        pacing = self.pacing
        for round_ in range(pacing.warmup_rounds):
            start = round_ * pacing.warmup_records
            for delivery in self.deliveries[start : start + pacing.warmup_records]:
                self._send(producer, delivery)
            producer.flush(30)
            deadline = time.monotonic() + pacing.warmup_timeout_s
            while self.batches_committed <= round_:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the stream committed no warm-up batch within {pacing.warmup_timeout_s:.0f} s")
                time.sleep(0.02)

    def release(self) -> None:
        """Let a producer held at `pacing.hold_at` go on."""
        self._released.set()

    @property
    def offered_rate(self) -> float:
        """Records per second the paced loop actually sent (what the stream was offered)."""
        return self.sent_paced / max(self.paced_until - self.started_at - self.held_s, 1e-9)

    def run(self) -> None:
        from confluent_kafka import Producer

        producer = Producer(
            self.endpoint.client_config(
                **{"enable.idempotence": True, "acks": "all", "linger.ms": 5, "client.id": "expert-paced-producer"}
            )
        )
        pacing = self.pacing
        deferred: list[Delivery] = []
        try:
            self._warm_up(producer)
            self.started_at = time.time()
            paced = self.deliveries[pacing.warmup :]
            hold = int(len(paced) * pacing.hold_at) if pacing.hold_at is not None else -1
            for i, delivery in enumerate(paced):
                if i == hold:
                    waited = time.time()
                    self._released.wait(pacing.hold_timeout_s)
                    self.held_s = time.time() - waited
                delay = self.started_at + self.held_s + i / pacing.rate - time.time()
                if delay > 0:
                    time.sleep(delay)
                if delivery.late:
                    deferred.append(delivery)
                else:
                    self._send(producer, delivery)
                deferred = self._release(producer, deferred)
            self.paced_until, self.sent_paced = time.time(), self.sent - pacing.warmup
            deadline = time.time() + pacing.late_wait_s
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
            self.topic,
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
