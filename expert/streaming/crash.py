"""Crashing a streaming sink on purpose, at a chosen point, and recognising that crash afterwards.

Why three points: a `foreachBatch` sink that writes two stores can die before the first commit,
between the two, or after both, and Spark runs the batch again after a restart in every case.
Exactly-once means each replay does only what is missing: both writes, the Snowflake load alone,
or nothing.

The plan is a condition on what the sink itself sees (how many batches it has taken, how far into
the stream the batch's events are), not a callback into the driver: over Spark Connect the sink
runs in a server-side Python worker, where the producer's progress is out of reach.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

import numpy as np

from expert.runtime.errors import ExpertError
from expert.streaming.events import EventPlan

if TYPE_CHECKING:
    from collections.abc import Callable

    from pyspark.sql import DataFrame
    from pyspark.sql.streaming import StreamingQuery

    from expert.runtime.pattern import PatternRun
    from expert.runtime.snowflake import SnowflakeSession


class SimulatedCrashError(RuntimeError):
    """Raised inside the sink at the planned point, before Spark records the batch as done."""


class CrashPoint(StrEnum):
    BEFORE_DELTA = "before the Delta commit"
    BETWEEN_COMMITS = "between the Delta and the Snowflake commits"
    AFTER_BOTH = "after both commits"


@dataclass(frozen=True)
class CrashPlan:
    """The sink fails at `point` of its `after_batches`-th non-empty batch or a later one, on the
    first whose events reach `from_event_id` (event ids grow with the plan's order)."""

    after_batches: int
    from_event_id: int
    point: CrashPoint = CrashPoint.AFTER_BOTH

    @classmethod
    def mid_stream(
        cls,
        plan: EventPlan,
        *,
        after_sent: float,
        steady_batches: int,
        warmup_rounds: int,
        point: CrashPoint = CrashPoint.AFTER_BOTH,
    ) -> CrashPlan:
        """Once `after_sent` of the records are out and `steady_batches` batches after the warm-up
        ones have run: enough steady batches to measure first, enough records still to come."""
        start = int(after_sent * len(plan.deliveries))
        first = next(d.event_id for d in plan.deliveries[start:] if d.kind == "event" and not d.late)
        return cls(warmup_rounds + steady_batches, int(first or 0), point)

    def due(self, batches: int, event_ids: np.ndarray) -> bool:
        """Whether the sink's `batches`-th non-empty batch, holding `event_ids`, is the one to crash."""
        return batches >= self.after_batches and bool(len(event_ids)) and int(event_ids.max()) >= self.from_event_id

    def error(self, batch_id: int) -> SimulatedCrashError:
        what = {
            CrashPoint.BEFORE_DELTA: f"before batch {batch_id} committed anywhere",
            CrashPoint.BETWEEN_COMMITS: f"after batch {batch_id} committed to Delta, before Snowflake",
            CrashPoint.AFTER_BOTH: f"after batch {batch_id} committed everywhere",
        }[self.point]
        return SimulatedCrashError(f"simulated crash {what}")


def expect_simulated_crash(query: StreamingQuery) -> str:
    """The planned crash's message from a stopped query; any other stop is an error with its reason."""
    error = query.exception()
    text = str(error) if error is not None else "stopped without an error"
    if "SimulatedCrashError:" not in text:
        raise ExpertError(
            f"the query {query.name} stopped unexpectedly: {text.splitlines()[0]}", "see the Spark driver log"
        )
    line = next(line for line in text.splitlines() if "SimulatedCrashError:" in line).strip()
    return "SimulatedCrashError:" + line.split("SimulatedCrashError:", 1)[1]


def replay_by_hand(
    run: PatternRun, sink: Callable[[DataFrame, int], None], silver_table: str, batch_id: int, session: SnowflakeSession
) -> None:
    """Run an already-committed batch through a new sink again, as a second crash would: nothing may change
    (silver's Delta version, Snowflake's events, gold and ledger)."""
    from pyspark.sql import functions as F

    from expert.lakehouse.delta_ops import latest_version

    spark = run.spark

    def state() -> tuple[int | None, int, int, int]:
        return (
            latest_version(spark, silver_table),
            int(session.scalar("SELECT COUNT(*) FROM EVENTS")),
            int(session.scalar("SELECT SUM(VIEWS + CARTS + PURCHASES) FROM GOLD_PRODUCT_MINUTE")),
            int(session.scalar("SELECT COUNT(*) FROM BATCH_LEDGER")),
        )

    before = state()
    batch = spark.read.format("delta").load(silver_table).filter(F.col("batch_id") == batch_id).drop("batch_id")
    rows = batch.count()
    try:
        sink(batch, batch_id)
    finally:
        close = getattr(sink, "close", None)
        if close is not None:
            close()
    after = state()
    run.check(
        "re-running a committed batch changes nothing (silver, Snowflake events, gold, ledger)",
        rows > 0 and before == after,
        f"batch {batch_id} ({rows} events) replayed by hand: silver version, Snowflake rows, gold counts, ledger "
        f"unchanged {after}",
    )
