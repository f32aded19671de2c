"""Kafka topics for the streaming lesson: create one, wait until it can be used, read its end offsets.

Why wait: right after creation a broker can list a partition's leader that still refuses
ListOffsets with NOT_LEADER_FOR_PARTITION; a stream started then fails. Usable means every
partition has a leader in the metadata and that leader answers for the partition's offsets.
"""

from __future__ import annotations

import time

from expert.runtime.errors import ExpertError
from expert.runtime.kafka import RETENTION_MS, KafkaEndpoint

NOT_READY = frozenset({"NOT_LEADER_FOR_PARTITION", "LEADER_NOT_AVAILABLE", "UNKNOWN_TOPIC_OR_PART"})
"""Kafka errors that mean "this partition's leadership is still settling": wait, do not fail."""
READY_TIMEOUT_S = 30.0


def ensure_topic(endpoint: KafkaEndpoint, topic: str, partitions: int) -> int:
    """Create `topic` if it is missing; return its partition count once it can be used."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(endpoint.client_config())
    if topic not in admin.list_topics(timeout=10).topics:
        config = {"retention.ms": str(RETENTION_MS)} if endpoint.is_local else {}
        futures = admin.create_topics([NewTopic(topic, partitions, replication_factor=-1, config=config)])
        try:
            futures[topic].result(timeout=READY_TIMEOUT_S)
        except Exception as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise ExpertError(
                    f"could not create Kafka topic {topic}: {str(exc).splitlines()[0]}",
                    f"create it yourself ({partitions} partitions) or grant this user CREATE on the cluster",
                ) from None
    deadline = time.monotonic() + READY_TIMEOUT_S
    waiting_for = "a leader for every partition"
    while time.monotonic() < deadline:
        found = admin.list_topics(topic=topic, timeout=10).topics.get(topic)
        if found and found.partitions and all(p.leader >= 0 for p in found.partitions.values()):
            try:
                end_offsets(endpoint, topic, len(found.partitions))
            except KafkaException as exc:
                error = exc.args[0]
                if not (error.retriable() or error.name() in NOT_READY):
                    raise
                waiting_for = f"the leaders to answer for offsets (last: {error.name()})"
            else:
                return len(found.partitions)
        time.sleep(0.2)
    raise ExpertError(
        f"topic {topic} not ready after {READY_TIMEOUT_S:.0f} s: still waiting for {waiting_for}",
        "check the broker's log",
    )


def end_offsets(endpoint: KafkaEndpoint, topic: str, partitions: int) -> dict[int, int]:
    """The offset the next record of each partition will get (a stream that starts there reads only new records)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(endpoint.client_config(**{"group.id": "expert-offsets", "enable.auto.commit": False}))
    try:
        return {
            p: int(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]) for p in range(partitions)
        }
    finally:
        consumer.close()
