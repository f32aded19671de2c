"""expert.streaming: the machinery around integration/02, tested apart from Spark and Kafka where it can be."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from expert.runtime.spark import EXTRA_TASK_SLOTS, feature_packages, local_master
from expert.streaming.crash import CrashPlan, CrashPoint, SimulatedCrashError
from expert.streaming.events import normalise_gold, plan_events
from expert.streaming.latency import stream_record
from expert.streaming.measure import RateResult
from expert.streaming.realtime import task_slots
from expert.streaming.sink_log import SinkAttempt


def attempt(batch_id: int, query_run: int, *, delta: bool, snowflake: bool, crashed: bool = False) -> SinkAttempt:
    start = 100.0 * query_run + batch_id
    return SinkAttempt(
        batch_id,
        query_run,
        start,
        2,
        start + 1 if delta else None,
        start + 2 if snowflake else None,
        crashed,
        {},
        "host:1",
    )


PRODUCED = {0: np.array([1, 2]), 1: np.array([3, 4]), 2: np.array([5, 6])}


@pytest.mark.parametrize(
    ("point", "first_call", "delta_skipped", "snowflake_skipped"),
    [
        (CrashPoint.BEFORE_DELTA, {"delta": False, "snowflake": False}, False, False),
        (CrashPoint.BETWEEN_COMMITS, {"delta": True, "snowflake": False}, True, False),
        (CrashPoint.AFTER_BOTH, {"delta": True, "snowflake": True}, True, True),
    ],
)
def test_the_record_says_what_each_store_did_with_the_replay_at_every_crash_point(
    point: CrashPoint, first_call: dict[str, bool], delta_skipped: bool, snowflake_skipped: bool
) -> None:
    attempts = [
        attempt(0, 1, delta=True, snowflake=True),
        attempt(1, 1, **first_call, crashed=True),
        attempt(1, 2, delta=True, snowflake=not snowflake_skipped),
        attempt(2, 2, delta=True, snowflake=True),
    ]
    record = stream_record(attempts, PRODUCED, writes={0: 1, 1: 1, 2: 1})
    assert record.crashed_batch == 1
    assert [(r.batch_id, r.delta_skipped, r.snowflake_skipped) for r in record.replays] == [
        (1, delta_skipped, snowflake_skipped)
    ]
    crashed = record.commits[1]
    assert crashed.delta_at is not None and crashed.snowflake_at is not None, f"{point}: committed in the end"
    assert crashed.query_run == (2 if point == CrashPoint.BEFORE_DELTA else 1), "the call that committed Delta"
    assert sorted(record.commits) == [0, 1, 2] and record.sink_processes == {"host:1"}


def test_a_replay_that_wrote_delta_twice_is_not_a_skip() -> None:
    attempts = [attempt(0, 1, delta=True, snowflake=True, crashed=True), attempt(0, 2, delta=True, snowflake=False)]
    (replay,) = stream_record(attempts, PRODUCED, writes={0: 2}).replays
    assert not replay.delta_skipped and replay.snowflake_skipped


def test_crash_plan_messages_name_the_point() -> None:
    for point, words in (
        (CrashPoint.BEFORE_DELTA, "before batch 4 committed anywhere"),
        (CrashPoint.BETWEEN_COMMITS, "after batch 4 committed to Delta, before Snowflake"),
        (CrashPoint.AFTER_BOTH, "after batch 4 committed everywhere"),
    ):
        error = CrashPlan(1, 0, point).error(4)
        assert isinstance(error, SimulatedCrashError) and words in str(error)


def test_gold_truth_is_normalised_and_counts_every_expected_event() -> None:
    plan = plan_events(300, 5)
    truth = plan.gold_truth()
    assert truth.equals(normalise_gold(truth.assign(revenue=truth["cents"] / 100)))
    assert int(truth[["views", "carts", "purchases"]].to_numpy().sum()) == len(plan.expected_silver)
    assert set(plan.products["product_id"]) >= set(plan.expected_silver["product_id"]), "every event has a product"


def fake_session(master: str, *, remote: bool = False) -> object:
    conf = SimpleNamespace(get=lambda key: master)
    cls = type("SparkSession", (), {"__module__": "pyspark.sql.connect.session" if remote else "pyspark.sql.session"})
    session = cls()
    session.conf = conf  # type: ignore[attr-defined]
    return session


@pytest.mark.parametrize(
    ("master", "remote", "slots"),
    [
        ("local[6]", False, 6),
        ("local[6, 2]", False, 6),
        ("local", False, 1),
        ("local[*]", True, None),
        ("spark://127.0.0.1:7077", False, None),
    ],
)
def test_task_slots_are_read_from_the_master_and_unknown_ones_say_so(master: str, remote: bool, slots: int) -> None:
    assert task_slots(fake_session(master, remote=remote)) == (slots, master)  # type: ignore[arg-type]


def test_the_realtime_feature_asks_for_slots_not_jars() -> None:
    assert local_master([]) == local_master(["kafka"]) == "local[*]"
    assert local_master(["kafka", "realtime"], cores=2) == f"local[{2 + EXTRA_TASK_SLOTS['realtime']}]"
    assert feature_packages(["realtime"]) == []


def test_a_rate_not_sustained_reports_no_latency() -> None:
    kept_up = RateResult(5_000, 4_990, 4_980, 49_000, 0, 3.0, 20.0, 50.0)
    assert kept_up.sustained and kept_up.as_dict()["p95_ms"] == 20.0
    assert not RateResult(10_000, 9_990, 7_000, 60_000, 0).sustained, "the live topic fell behind"
    assert not RateResult(10_000, 8_000, 8_000, 60_000, 0).sustained, "the producer could not offer the rate"
    assert not RateResult(1_000, 1_000, 1_000, 9_000, 3).sustained, "events missing from the live topic"
