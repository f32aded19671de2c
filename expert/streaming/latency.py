"""Latency and throughput of the analytical stream, measured from what the stores recorded.

Why from the stores: a figure the sink computed about itself could not be checked. Per event, the
latency runs from its Kafka record timestamp (set at produce time, kept in silver as
`produced_at`) to the moment its batch's commit returned in Delta and in Snowflake (from the sink
log). Batches are grouped into phases with one cause each (a cold start, steady state under a
trigger, the backlog after the restart), because one percentile over all of them describes none.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from expert.lakehouse.delta_ops import history
from expert.streaming.driver import StreamOutcome
from expert.streaming.live_view import percentile
from expert.streaming.sink_log import SinkAttempt, read_attempts

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from expert.runtime.pattern import PatternRun
    from expert.runtime.snowflake import SnowflakeSession


@dataclass
class BatchCommit:
    """When one silver batch first became visible in each store, and when its events were produced."""

    batch_id: int
    query_run: int
    started_at: float
    """When foreachBatch was called for the attempt that committed it: its offsets had just been fixed."""
    delta_at: float | None
    snowflake_at: float | None
    produced_ms: np.ndarray
    stages: dict[str, float] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return len(self.produced_ms)

    @property
    def committed_at(self) -> float:
        """When the batch was committed everywhere (Snowflake commits after Delta)."""
        return self.snowflake_at or self.delta_at or self.started_at


@dataclass
class Replay:
    """A batch that ran again (after the crash, or by hand) and what each sink did with it."""

    batch_id: int
    delta_skipped: bool
    snowflake_skipped: bool


@dataclass
class StreamRecord:
    """The stream as the stores recorded it: every silver batch's commits and its events' produce
    times (from Delta silver), the replays and what each sink did with them, and the crash."""

    commits: dict[int, BatchCommit]
    replays: list[Replay]
    crashed_batch: int | None
    sink_processes: set[str]
    """Where the silver sink ran (host:pid), from its log."""

    def phases(self, outcome: StreamOutcome, *, warmup_batches: int) -> list[Phase]:
        return stream_phases(self, outcome, warmup_batches=warmup_batches)


def read_stream_record(spark: SparkSession, silver_table: str, session: SnowflakeSession) -> StreamRecord:
    """Join the sink log with Delta: per batch, its events' produce times and how many commits it made."""
    from pyspark.sql import functions as F

    attempts = read_attempts(session)
    produced = (
        spark.read.format("delta")
        .load(silver_table)
        .select("batch_id", F.unix_millis("produced_at").alias("produced_ms"))
        .toPandas()
    )
    by_batch = {int(b): g["produced_ms"].to_numpy(dtype=np.int64) for b, g in produced.groupby("batch_id")}
    writes: dict[int, int] = {}
    for commit in history(spark, silver_table, None):
        if commit["operation"] == "WRITE" and commit["userMetadata"]:
            batch_id = int(json.loads(commit["userMetadata"])["batch_id"])
            writes[batch_id] = writes.get(batch_id, 0) + 1
    return stream_record(attempts, by_batch, writes)


def stream_record(attempts: list[SinkAttempt], produced: dict[int, np.ndarray], writes: dict[int, int]) -> StreamRecord:
    """Per batch, the call that first committed it to Delta (and when Snowflake first loaded it); every
    later call is a replay, and what it did follows from the stores: Delta skipped it if the batch was
    already committed and has one WRITE; Snowflake skipped it if the call loaded nothing."""
    commits: dict[int, BatchCommit] = {}
    replays: list[Replay] = []
    seen: set[int] = set()
    for a in attempts:
        commit = commits.get(a.batch_id)
        if a.batch_id in seen:
            committed_before = commit is not None
            replays.append(Replay(a.batch_id, committed_before and writes.get(a.batch_id) == 1, a.snowflake_at is None))
        seen.add(a.batch_id)
        if commit is None and a.delta_at is not None:
            rows = produced.get(a.batch_id, np.array([], dtype=np.int64))
            commits[a.batch_id] = BatchCommit(
                a.batch_id, a.query_run, a.started_at, a.delta_at, a.snowflake_at, rows, a.stages
            )
        elif commit is not None and commit.snowflake_at is None and a.snowflake_at is not None:
            commit.snowflake_at = a.snowflake_at
    crashed = next((a.batch_id for a in attempts if a.crashed), None)
    return StreamRecord(commits, replays, crashed, {a.process for a in attempts})


def produce_to_commit_ms(commits: Iterable[BatchCommit], store: str) -> np.ndarray:
    """Per event: wall-clock ms from its Kafka record timestamp to its batch's commit in `store`."""
    parts = [
        int(at * 1000) - c.produced_ms
        for c in commits
        if (at := c.delta_at if store == "delta" else c.snowflake_at) is not None
    ]
    return np.concatenate(parts) if parts else np.array([], dtype=np.int64)


@dataclass(frozen=True)
class Phase:
    """Consecutive silver batches whose latency has one cause: a cold start, steady state, or a backlog."""

    label: str
    trigger_s: float
    steady: bool
    commits: list[BatchCommit]
    progress: list[Any]
    since: float
    """When the records of its first batch began to arrive: the previous batch's start (or the run's)."""

    @property
    def events(self) -> int:
        return sum(c.rows for c in self.commits)


def stream_phases(record: StreamRecord, outcome: StreamOutcome, *, warmup_batches: int) -> list[Phase]:
    """Each query run's first batches on their own (the cold start; the outage's backlog), then its steady batches."""
    same = outcome.runs[0].trigger_s == outcome.runs[1].trigger_s
    phases = []
    for number, times in enumerate(outcome.runs, start=1):
        commits = sorted((c for c in record.commits.values() if c.query_run == number), key=lambda c: c.batch_id)
        progress = {p.batchId: p for p in times.silver_progress if p.numInputRows}
        head = warmup_batches if number == 1 else 1
        first = f"start-up: first {head} batches, cold JVM" if number == 1 else "backlog: first batch after the restart"
        steady = f"steady, trigger {times.trigger_s:g} s" + (f", run {number}" if same else "")
        before_steady = commits[head - 1].started_at if len(commits) >= head else times.ready
        for label, part, is_steady, since in (
            (first, commits[:head], False, times.ready),
            (steady, commits[head:], True, before_steady),
        ):
            kept = [progress[c.batch_id] for c in part if c.batch_id in progress]
            phases.append(Phase(label, times.trigger_s, is_steady, part, kept, since))
    return phases


@dataclass(frozen=True)
class Latency:
    label: str
    store: str
    values: np.ndarray

    def row(self) -> dict[str, Any]:
        if not len(self.values):
            return {"events": self.label, "store": self.store, "n": 0}
        return {
            "events": self.label,
            "store": self.store,
            "n": len(self.values),
            "p50 ms": round(percentile(self.values, 50)),
            "p95 ms": round(percentile(self.values, 95)),
            "p99 ms": round(percentile(self.values, 99)),
            "max ms": int(self.values.max()),
        }


def measure_latency(run: PatternRun, phases: list[Phase]) -> list[Latency]:
    """Produce→commit latency per event and phase, in Delta (silver) and in Snowflake."""
    groups = [
        Latency(phase.label, name, produce_to_commit_ms(phase.commits, store))
        for store, name in (("delta", "Delta silver"), ("snowflake", "Snowflake"))
        for phase in phases
    ]
    run.table(
        [g.row() for g in groups],
        title="produce → commit latency per event (wall clock, Kafka record timestamp → COMMIT)",
        columns=["events", "store", "n", "p50 ms", "p95 ms", "p99 ms", "max ms"],
    )
    for group in groups:
        if group.label.startswith("steady") and len(group.values):
            for q in (50, 95, 99):
                run.figure(
                    f"produce→{group.store} p{q} ({group.label})", percentile(group.values, q), "ms", key=q == 50
                )
    steady_p50 = [percentile(g.values, 50) for g in groups if g.store == "Snowflake" and g.label.startswith("steady")]
    if steady_p50 and min(steady_p50) >= 1000:
        run.say(
            f"Not sub-second here: the best steady p50 to Snowflake is {min(steady_p50) / 1000:.1f} s. A micro-batch "
            "cannot commit faster than its own duration (the stage table below shows where it goes), whatever the "
            "trigger; sub-second needs a smaller per-batch floor (more cores, fewer commits per batch) or a "
            "row-level path such as Snowpipe Streaming."
        )
    for phase in phases:
        if phase.steady and not phase.commits:
            run.say(
                f"No steady batch under {phase.label}: the producer finished before the stream reached steady "
                "state. Use more --rows or a lower --rate to measure it."
            )
    return groups


def median(values: Iterable[float]) -> float:
    values = list(values)
    return float(np.median(values)) if values else float("nan")


def sustained_rate(phase: Phase, paced_from: float, paced_until: float) -> float:
    """Events per second the stream took in while the producer sent at its steady rate.

    A batch holds what arrived between the previous batch's start and its own, so the window runs
    from the phase's `since` (or the start of pacing, if later) to the start of its last batch that
    began before the producer stopped; later batches hold only the tail.
    """
    full = [c for c in phase.commits if c.started_at <= paced_until]
    window = full[-1].started_at - max(phase.since, paced_from) if full else 0.0
    return sum(c.rows for c in full) / window if window > 0 else float("nan")


def measure_throughput(run: PatternRun, phases: list[Phase], outcome: StreamOutcome) -> None:
    """Per phase: batch sizes and durations; steady phases' sustained rate; the backlog's drain rate."""
    producer = outcome.producer
    offered = producer.offered_rate
    rows = []
    for phase in phases:
        if not phase.commits:
            continue
        sustained = sustained_rate(phase, producer.started_at, producer.paced_until) if phase.steady else None
        duration = median(p.durationMs.get("triggerExecution", 0) / 1000 for p in phase.progress)
        rows.append(
            {
                "phase": phase.label,
                "batches": len(phase.commits),
                "events": phase.events,
                "events/s sustained": sustained,
                "events per batch (median)": median(c.rows for c in phase.commits),
                "batch s (median)": duration,
            }
        )
        if phase.steady:
            run.figure(
                f"sustained events/s ({phase.label})",
                sustained,
                "events/s",
                how=f"silver events that arrived while the producer offered {offered:.0f} records/s, per second",
                key=True,
            )
            run.figure(f"silver batch duration ({phase.label}, median)", duration, "s", how="Spark progress")
            if sustained is not None and np.isnan(sustained):
                run.say(
                    f"No batch under {phase.label} began while the producer was still sending, so no sustained "
                    "rate was measured for it: use more --rows or a lower --rate."
                )
            if duration > phase.trigger_s > 0:
                run.say(
                    f"Under {phase.label}: a batch took {duration:.1f} s (median), longer than the trigger "
                    "interval, so each batch started as soon as the last one ended: the trigger added no wait."
                )
        elif phase.label.startswith("backlog"):
            run.figure(
                "backlog drain rate (one batch after the restart)",
                median(float(p.processedRowsPerSecond) for p in phase.progress),
                "records/s",
                how="Spark's processedRowsPerSecond: the ceiling when records are already waiting",
                key=True,
            )
    run.table(rows, title=f"throughput by phase (the producer offered {offered:.0f} records/s)")
    stages = pd.DataFrame([c.stages for phase in phases if phase.steady for c in phase.commits])
    if not stages.empty:
        run.table(
            [
                {"stage of a steady silver batch": name, "median s": stages[name].median(), "max s": stages[name].max()}
                for name in stages.columns
            ],
            title="where a micro-batch spends its time (the floor under latency)",
        )
    commits = [c for phase in phases for c in phase.commits]
    first_produced = min(int(c.produced_ms.min()) for c in commits if c.rows) / 1000
    run.figure(
        "delivered events/s over the whole stream",
        sum(c.rows for c in commits) / max(max(c.committed_at for c in commits) - first_produced, 1e-9),
        "events/s",
        how="every silver event / (last commit − first produce): warm-up, crash and restart included",
    )
