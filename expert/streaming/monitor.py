"""What the driver knows of a running stream: Spark's progress reports and the sink's log.

Why poll the stores: the sinks may run in another process (a Spark Connect server's Python worker),
so nothing they hold reaches the driver; what they commit does. Polling costs CPU the two cores'
JVMs need, so it is as sparse as the live view allows.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from expert.streaming.sink_log import SinkAttempt, read_attempts

if TYPE_CHECKING:
    from pyspark.sql.streaming import StreamingQuery

    from expert.runtime.snowflake import SnowflakeSession


def observed_metrics(progress: Any, name: str) -> dict[str, Any]:
    """One `observe(name, ...)` result from a progress report, by metric name.

    Classic Spark gives a Row of the metrics; Spark Connect (4.2) gives `Row(values=[...],
    schema={...})` for the same report, so both shapes are read here.
    """
    row = (progress.observedMetrics or {}).get(name)
    if row is None:
        return {}
    fields = row.asDict()
    if set(fields) == {"values", "schema"}:
        return {f["name"]: v for f, v in zip(fields["schema"]["fields"], fields["values"], strict=True)}
    return fields


def epoch_ms(values: pd.Series) -> np.ndarray:
    """Naive UTC timestamps (as Snowflake TIMESTAMP_NTZ returns them) to epoch milliseconds."""
    return ((pd.to_datetime(values) - pd.Timestamp(0)) // pd.Timedelta(milliseconds=1)).to_numpy(dtype=np.int64)


@dataclass
class AnalyticalQueries:
    """The two micro-batch queries on one topic: bronze (every record) and silver (deduplicated events)."""

    bronze: StreamingQuery
    silver: StreamingQuery

    def all(self) -> tuple[StreamingQuery, StreamingQuery]:
        return self.bronze, self.silver

    def ready(self) -> bool:
        return all(q.isActive and q.status["message"] != "Initializing sources" for q in self.all())

    def watermark_ms(self) -> int:
        """The silver query's event-time watermark, from its last progress report (0 before the first)."""
        progress = self.silver.lastProgress
        mark = (progress.eventTime or {}).get("watermark") if progress else None
        return int(pd.Timestamp(mark).timestamp() * 1000) if mark else 0

    def caught_up(self, topic: str, offsets: dict[int, int]) -> bool:
        """Both queries have processed every record up to `offsets` (their last batch's end offsets)."""
        for query in self.all():
            progress = query.lastProgress
            if not query.isActive or progress is None or not progress.sources:
                return False
            done = json.loads(progress.sources[0].endOffset or "{}").get(topic, {})
            if any(int(done.get(str(p), -1)) < o for p, o in offsets.items()):
                return False
        return True

    def stop(self) -> None:
        for query in self.all():
            if query.isActive:
                query.stop()


class StreamMonitor:
    """Polls the sink log every `POLL_S` (the producer's warm-up waits on it) and, for the live view,
    the revenue and latency figures every `DASHBOARD_POLL_S`."""

    POLL_S = 0.5
    DASHBOARD_POLL_S = 2.0

    def __init__(self, session: SnowflakeSession, *, live: bool) -> None:
        self.session, self.live = session, live
        self.query_run = 1
        self.status = "starting"
        self.bronze: dict[int, tuple[int, int]] = {}
        """Batch id → (records, quarantined), from the bronze query's observed metrics; a batch the
        restart runs again keeps its id (the checkpoint is the same), so it is counted once."""
        self.attempts: list[SinkAttempt] = []
        self.revenue: list[tuple[pd.Timestamp, float]] = []
        self.latency: dict[str, np.ndarray] = {"delta": np.array([]), "snowflake": np.array([])}
        self._polled = self._polled_slow = 0.0

    def poll(self, queries: AnalyticalQueries | None, *, now: bool = False) -> None:
        moment = time.monotonic()
        if now or moment - self._polled >= self.POLL_S:
            self._polled = moment
            self.attempts = read_attempts(self.session)
            # The last report is enough: bronze's trigger is slower than this poll.
            progress = queries.bronze.lastProgress if queries is not None else None
            metrics = observed_metrics(progress, "bronze") if progress is not None else {}
            if progress is not None and metrics.get("records"):
                self.bronze.setdefault(progress.batchId, (metrics["records"], metrics["quarantined"]))
        if self.live and (now or moment - self._polled_slow >= self.DASHBOARD_POLL_S):
            self._polled_slow = moment
            self._poll_dashboard()

    def _poll_dashboard(self) -> None:
        self.revenue = [
            (pd.Timestamp(r["WINDOW_START"]), float(r["REVENUE"]))
            for r in self.session.fetch(
                "SELECT WINDOW_START, REVENUE FROM REVENUE_PER_MINUTE ORDER BY WINDOW_START DESC LIMIT 6"
            )
        ][::-1]
        loaded = self.session.fetch_df(
            "SELECT E.PRODUCED_AT, L.DELTA_AT_MS, L.SNOWFLAKE_AT_MS FROM EVENTS E JOIN STREAM_BATCH_LOG L "
            "ON E.BATCH_ID = L.BATCH_ID AND L.SNOWFLAKE_AT_MS IS NOT NULL"
        )
        produced = epoch_ms(loaded["PRODUCED_AT"])
        self.latency = {
            "delta": loaded["DELTA_AT_MS"].to_numpy(dtype=np.int64) - produced,
            "snowflake": loaded["SNOWFLAKE_AT_MS"].to_numpy(dtype=np.int64) - produced,
        }

    def committed(self) -> dict[int, SinkAttempt]:
        """Per batch id, the call that committed it to Snowflake (a replay or a crashed call did not)."""
        first: dict[int, SinkAttempt] = {}
        for attempt in self.attempts:
            if attempt.snowflake_at is not None:
                first.setdefault(attempt.batch_id, attempt)
        return first

    @property
    def data_batches(self) -> int:
        return len(self.committed())
