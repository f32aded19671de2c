"""The silver sink's operations log, and the wrapper that times, crashes and logs the sink.

Why a log table: over Spark Connect (and on Databricks) a `foreachBatch` function runs in another
process, so nothing it holds reaches the driver; what it commits does. Every call of the silver
sink (replays too) writes one row to `STREAM_BATCH_LOG` in Snowflake: when it began, when each
store committed, how long each stage took, whether it crashed on purpose, which process it ran in.
A call that loads its batch writes the row inside the batch's own transaction (one Snowflake
commit per batch, not two); a call that loads nothing (a replay the ledger skips, a crash before
the load) writes it alone.
The live view, the producer's warm-up and every latency figure read it. It is not the ledger:
the ledger (`BATCH_LEDGER`) is what makes the load exactly-once; this log only observes.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from expert.runtime.timing import Stopwatch
from expert.streaming.crash import CrashPlan, CrashPoint, SimulatedCrashError

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame

    from expert.runtime.snowflake import SnowflakeSession

COLLECT = "read Kafka, parse, dedup, collect"
DELTA = "Delta silver append"
SNOWFLAKE = "Snowflake: events + gold + ledger + this log row in one transaction"
COLUMNS = (
    "BATCH_ID",
    "QUERY_RUN",
    "STARTED_AT_MS",
    "ROWS_IN",
    "DELTA_AT_MS",
    "SNOWFLAKE_AT_MS",
    "CRASHED",
    "STAGES",
    "PROCESS",
)


def this_process() -> str:
    """host:pid, asked at call time: a module constant would travel in the pickle with the driver's pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class SinkAttempt:
    """One call of the silver sink, as it logged itself after its commits."""

    batch_id: int
    query_run: int
    """1 before the crash, 2 after the restart."""
    started_at: float
    rows: int
    delta_at: float | None
    """Epoch s when the Delta append returned (committed, or skipped because Delta had this
    txnVersion); None when the call crashed before it."""
    snowflake_at: float | None
    """When the Snowflake COMMIT was issued (this row commits in the same transaction); None when the
    ledger already had the batch, or a crash came first."""
    crashed: bool
    stages: dict[str, float]
    process: str
    """host:pid of the Python process the sink ran in (the driver, or a Spark Connect server's worker)."""


def create_log(session: SnowflakeSession) -> None:
    """The log table, recreated with the run (epoch ms: no time zone to argue about)."""
    session.execute(
        "CREATE OR REPLACE TABLE STREAM_BATCH_LOG (BATCH_ID NUMBER(38,0), QUERY_RUN NUMBER(38,0), "
        "STARTED_AT_MS NUMBER(38,0), ROWS_IN NUMBER(38,0), DELTA_AT_MS NUMBER(38,0), SNOWFLAKE_AT_MS NUMBER(38,0), "
        "CRASHED BOOLEAN, STAGES VARCHAR, PROCESS VARCHAR)"
    )


def _ms(at: float | None) -> int | None:
    return None if at is None else int(at * 1000)


def write_attempt(session: SnowflakeSession, attempt: SinkAttempt) -> None:
    session.execute(
        f"INSERT INTO STREAM_BATCH_LOG ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))})",
        (
            attempt.batch_id,
            attempt.query_run,
            _ms(attempt.started_at),
            attempt.rows,
            _ms(attempt.delta_at),
            _ms(attempt.snowflake_at),
            attempt.crashed,
            json.dumps(attempt.stages),
            attempt.process,
        ),
    )


def read_attempts(session: SnowflakeSession) -> list[SinkAttempt]:
    """Every logged call of the silver sink, in the order they began."""

    def seconds(ms: Any) -> float | None:
        return None if ms is None else int(ms) / 1000

    rows = session.fetch(f"SELECT {', '.join(COLUMNS)} FROM STREAM_BATCH_LOG ORDER BY STARTED_AT_MS")
    return [
        SinkAttempt(
            batch_id=int(r["BATCH_ID"]),
            query_run=int(r["QUERY_RUN"]),
            started_at=int(r["STARTED_AT_MS"]) / 1000,
            rows=int(r["ROWS_IN"]),
            delta_at=seconds(r["DELTA_AT_MS"]),
            snowflake_at=seconds(r["SNOWFLAKE_AT_MS"]),
            crashed=bool(r["CRASHED"]),
            stages=json.loads(r["STAGES"]),
            process=r["PROCESS"],
        )
        for r in rows
    ]


class TwoStoreSink(Protocol):
    """What the lesson's silver sink offers: its steps, each one idempotent, and its Snowflake session."""

    def prepare(self, batch: DataFrame, batch_id: int) -> DataFrame: ...
    def collect(self, batch: DataFrame) -> pd.DataFrame: ...
    def write_delta(self, batch: DataFrame, batch_id: int) -> None: ...
    def load_snowflake(
        self, frame: pd.DataFrame, batch_id: int, *, before_commit: Callable[[SnowflakeSession], None] | None = None
    ) -> bool: ...
    @property
    def session(self) -> SnowflakeSession: ...
    def close(self) -> None: ...


class InstrumentedSink:
    """The lesson's sink, run step by step: each stage timed, the planned crash raised at its point,
    and the call logged to STREAM_BATCH_LOG (even when it crashes).

    Picklable as long as the wrapped sink is (Spark Connect ships it to the server's Python
    worker). A new one per query run: its count of batches starts at zero with its query.
    """

    def __init__(self, sink: TwoStoreSink, *, query_run: int, crash: CrashPlan | None = None) -> None:
        self.sink, self.query_run, self.crash = sink, query_run, crash
        self.batches = 0

    def close(self) -> None:
        self.sink.close()

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        started_at, stages = time.time(), {}
        watch = Stopwatch()
        batch = self.sink.prepare(batch, batch_id)
        try:
            frame = self.sink.collect(batch)
            stages[COLLECT] = watch.stop()
            if frame.empty:
                return
            self.batches += 1
            crash = self.crash if self.crash and self.crash.due(self.batches, frame["EVENT_ID"].to_numpy()) else None
            delta_at: float | None = None

            def attempt(snowflake_at: float | None) -> SinkAttempt:
                return SinkAttempt(
                    batch_id,
                    self.query_run,
                    started_at,
                    len(frame),
                    delta_at,
                    snowflake_at,
                    crash is not None,
                    dict(stages),
                    this_process(),
                )

            def log_with_the_batch(session: SnowflakeSession) -> None:
                stages[SNOWFLAKE] = watch.seconds
                write_attempt(session, attempt(time.time()))

            try:
                self._crash_at(crash, CrashPoint.BEFORE_DELTA, batch_id)
                watch = Stopwatch()
                self.sink.write_delta(batch, batch_id)
                delta_at, stages[DELTA] = time.time(), watch.stop()
                self._crash_at(crash, CrashPoint.BETWEEN_COMMITS, batch_id)
                watch = Stopwatch()
                if not self.sink.load_snowflake(frame, batch_id, before_commit=log_with_the_batch):
                    stages[SNOWFLAKE] = watch.stop()
                    write_attempt(self.sink.session, attempt(None))  # a replay the ledger skipped: log it alone
                self._crash_at(crash, CrashPoint.AFTER_BOTH, batch_id)
            except SimulatedCrashError:
                if crash is not None and crash.point != CrashPoint.AFTER_BOTH:
                    write_attempt(self.sink.session, attempt(None))
                raise
        finally:
            batch.unpersist()

    @staticmethod
    def _crash_at(crash: CrashPlan | None, point: CrashPoint, batch_id: int) -> None:
        if crash is not None and crash.point == point:
            raise crash.error(batch_id)
