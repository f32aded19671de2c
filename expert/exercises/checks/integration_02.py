"""Checks for integration/02 (real-time analytics): exactly once across crashes, and the watermark's arithmetic."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from expert.exercises.context import CheckContext
from expert.exercises.learner import LearnerCode
from expert.exercises.verdict import expect
from expert.lakehouse.delta_log import table_commits
from expert.runtime.snowflake import SnowflakeSession

EVENT_TYPES = ("view", "cart", "purchase")


def event_batches(rng: np.random.Generator, sizes: Sequence[int], first_id: int) -> list[pd.DataFrame]:
    """Batches of events with unique ids (shuffled, so no id range gives a batch away)."""
    ids = first_id + rng.permutation(sum(sizes) * 3)[: sum(sizes)]
    start = pd.Timestamp("2026-11-27 09:00:00")
    frames, used = [], 0
    for size in sizes:
        chunk = ids[used : used + size]
        used += size
        frames.append(
            pd.DataFrame(
                {
                    "EVENT_ID": chunk.astype("int64"),
                    "EVENT_TYPE": rng.choice(EVENT_TYPES, size),
                    "PRICE": np.round(rng.uniform(1, 500, size), 2),
                    "EVENT_TS": start + pd.to_timedelta(np.sort(rng.integers(0, 3_600_000, size)), unit="ms"),
                }
            )
        )
    return frames


# --- integration/02.1: the idempotent foreachBatch sink ------------------------------------------


class InjectedCrashError(RuntimeError):
    """Raised by the check's wrapper right after the learner's sink returned: the process 'dies' there."""


MARKER = "expert-check: injected crash after the sink returned"


def check_idempotent_sink(learner: LearnerCode, ctx: CheckContext) -> str:
    """A file stream through the learner's sink, killed after one batch's write, restarted from its checkpoint."""
    write_batch = learner.function("write_batch", ("batch", "batch_id", "table", "app_id"))
    spark = ctx.spark
    rng = np.random.default_rng(ctx.seed())
    batches = event_batches(rng, [int(n) for n in rng.integers(15, 40, 3)], first_id=int(rng.integers(1, 10**6)))
    landing, table, checkpoint = ctx.workdir / "landing", ctx.workdir / "events", ctx.workdir / "checkpoint"
    landing.mkdir(parents=True)
    for number, frame in enumerate(batches):
        frame.rename(columns=str.lower).to_json(
            landing / f"part-{number}.json", orient="records", lines=True, date_format="iso"
        )
    app_id, crash_after = f"orders-stream-{rng.integers(10**6)}", int(rng.integers(0, len(batches) - 1))
    schema = "event_id BIGINT, event_type STRING, price DOUBLE, event_ts TIMESTAMP"

    def stream(sink: Callable[[Any, int], None], *, dies: bool) -> None:
        query = (
            spark.readStream.schema(schema)
            .option("maxFilesPerTrigger", 1)
            .json(str(landing))
            .writeStream.foreachBatch(sink)
            .option("checkpointLocation", str(checkpoint))
            .trigger(availableNow=True)
            .start()
        )
        try:
            query.awaitTermination()
        except Exception as exc:
            if not dies or MARKER not in str(exc):
                expect(False, "the stream runs the sink on every batch", str(exc).strip().splitlines()[0][:300])
            return
        expect(not dies, "the stream dies where the check kills it", f"batch {crash_after} never reached the sink")

    def crashing(batch: Any, batch_id: int) -> None:
        write_batch(batch, batch_id, str(table), app_id)
        if batch_id == crash_after:
            raise InjectedCrashError(MARKER)

    stream(crashing, dies=True)
    stream(lambda batch, batch_id: write_batch(batch, batch_id, str(table), app_id), dies=False)

    other = spark.createDataFrame(event_batches(rng, [5], first_id=2 * 10**7)[0].rename(columns=str.lower))
    for _ in range(2):
        write_batch(other, 0, str(table), f"{app_id}-backfill")

    stored = Counter(int(r.event_id) for r in spark.read.format("delta").load(str(table)).select("event_id").collect())
    streamed = {int(i) for frame in batches for i in frame["EVENT_ID"]}
    twice = sorted(i for i, n in stored.items() if n > 1)
    replayed = len(batches[crash_after])
    expect(not twice, "a replayed batch is written once",
           f"{len(twice)} events stored more than once (batch {crash_after}, {replayed} events, ran again after "
           f"the restart), e.g. event {twice[:1]}")  # fmt: skip
    missing = sorted(streamed - set(stored))
    expect(not missing, "every streamed event is in the table",
           f"{len(missing)} of {len(streamed)} streamed events missing, e.g. {missing[:3]}")  # fmt: skip
    backfill = set(other.toPandas()["event_id"].astype(int))
    expect(backfill <= set(stored), "another app id's batch 0 is not mistaken for this stream's batch 0",
           f"{len(backfill - set(stored))} of {len(backfill)} rows of app '{app_id}-backfill', batch 0, are missing")  # fmt: skip
    expect(sum(stored.values()) == len(streamed) + len(backfill), "nothing else is written",
           f"{sum(stored.values())} rows for {len(streamed) + len(backfill)} events")  # fmt: skip
    txns = [txn for commit in table_commits(table) for txn in commit.transactions]
    ours = sorted(v for a, v in txns if a == app_id)
    expect(ours == list(range(len(batches))), "each batch commits with txnAppId = app_id and txnVersion = batch_id",
           f"the Delta log records versions {ours} for app id {app_id!r} ({len(batches)} batches); all its "
           f"transactions: {txns}")  # fmt: skip
    return (
        f"{len(streamed)} events in {len(batches)} batches, batch {crash_after} replayed after the crash and "
        f"skipped by Delta; each stored once; app '{app_id}' versions {ours}; another app's batch 0 written once"
    )


# --- integration/02.2: the Snowflake batch ledger -------------------------------------------------


class Crash(BaseException):
    """The loading process dies: not an Exception, so no `except Exception` in the learner's code runs."""


WRITES = {"INSERT", "MERGE", "UPDATE", "DELETE", "COPY"}
CRASH_POINTS = ("between two writes", "just before COMMIT", "just after COMMIT")


class DyingSession:
    """The learner's session, which dies once at `point` of the next load; every statement goes to `session`."""

    def __init__(self, session: SnowflakeSession, point: str | None) -> None:
        self.session, self.point, self.writes, self.fired = session, point, 0, False

    def _run(self, run: Callable[..., Any], sql: str, params: Any) -> Any:
        kind = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
        armed = self.point is not None and not self.fired
        if armed and kind in WRITES:
            self.writes += 1
            if self.point == CRASH_POINTS[0] and self.writes == 2:
                self.fired = True
                raise Crash
        if armed and kind == "COMMIT" and self.point == CRASH_POINTS[1]:
            self.fired = True
            raise Crash
        result = run(sql, params)
        if armed and kind == "COMMIT" and self.point == CRASH_POINTS[2]:
            self.fired = True
            raise Crash
        return result

    def execute(self, sql: str, params: Any = None) -> Any:
        return self._run(self.session.execute, sql, params)

    def scalar(self, sql: str, params: Any = None) -> Any:
        return self._run(self.session.scalar, sql, params)

    def fetch(self, sql: str, params: Any = None) -> Any:
        return self._run(self.session.fetch, sql, params)

    def fetch_df(self, sql: str, params: Any = None) -> Any:
        return self._run(self.session.fetch_df, sql, params)


def create_ledger_tables(session: SnowflakeSession) -> None:
    session.execute(
        "CREATE OR REPLACE TABLE EVENTS (EVENT_ID NUMBER(38,0), EVENT_TYPE VARCHAR, PRICE NUMBER(10,2), "
        "EVENT_TS TIMESTAMP_NTZ, BATCH_ID NUMBER(38,0))"
    )
    session.execute(
        "CREATE OR REPLACE TABLE BATCH_LEDGER (PIPELINE VARCHAR, BATCH_ID NUMBER(38,0), ROWS_LOADED NUMBER(38,0), "
        "LOADED_AT TIMESTAMP_NTZ)"
    )


def check_batch_ledger(learner: LearnerCode, ctx: CheckContext) -> str:
    """Two pipelines with the same batch ids; one load killed at each of three points; replays after the restart."""
    load_batch = learner.function("load_batch", ("session", "events", "batch_id", "pipeline"))
    rng = np.random.default_rng(ctx.seed())
    first, second = (f"{name}-{rng.integers(1000)}" for name in ("orders", "clicks"))
    with ctx.snowflake(database="STREAM", schema="LANDING") as session:
        for point in CRASH_POINTS:
            a = event_batches(rng, [int(n) for n in rng.integers(5, 20, 4)], first_id=int(rng.integers(1, 10**6)))
            b = event_batches(rng, [int(n) for n in rng.integers(5, 20, 2)], first_id=2 * 10**7)
            create_ledger_tables(session)
            returned = [load_batch(DyingSession(session, None), a[i], i, first) for i in (0, 1)]
            dying = DyingSession(session, point)
            try:
                load_batch(dying, a[2], 2, first)
            except Crash:
                with contextlib.suppress(Exception):  # the server discards a dead session's open transaction
                    session.execute("ROLLBACK")
            restarted = DyingSession(session, None)
            replay = load_batch(restarted, a[2], 2, first)
            again = load_batch(restarted, a[1], 1, first)
            returned += [load_batch(restarted, a[3], 3, first)]
            returned += [load_batch(restarted, b[i], i, second) for i in (0, 1)]
            stored = session.fetch_df("SELECT EVENT_ID, BATCH_ID FROM EVENTS")
            ledger = session.fetch_df("SELECT PIPELINE, BATCH_ID, ROWS_LOADED FROM BATCH_LEDGER")
            where = (
                f"(the load of {first} batch 2 killed {point}, then replayed; batch 1 replayed too)"
                if dying.fired
                else f"(batch 1 replayed; the load of batch 2 never reached a {'second write' if point == CRASH_POINTS[0] else 'COMMIT'})"
            )
            ids = Counter(int(i) for i in stored["EVENT_ID"])
            sent = {int(i) for frame in (*a, *b) for i in frame["EVENT_ID"]}
            twice = sorted(i for i, n in ids.items() if n > 1)
            expect(not twice, f"every event loaded exactly once {where}",
                   f"{len(twice)} events loaded twice, e.g. {twice[:3]}")  # fmt: skip
            missing = sent - set(ids)
            expect(not missing, f"no event lost {where}",
                   f"{len(missing)} of {len(sent)} events missing, in batches "
                   f"{sorted({i for i, f in enumerate(a) if set(f['EVENT_ID']) & missing})} of {first} and "
                   f"{sorted({i for i, f in enumerate(b) if set(f['EVENT_ID']) & missing})} of {second}")  # fmt: skip
            want = Counter(
                {(first, i): len(f) for i, f in enumerate(a)} | {(second, i): len(f) for i, f in enumerate(b)}
            )
            got = Counter({(r.PIPELINE, int(r.BATCH_ID)): int(r.ROWS_LOADED) for r in ledger.itertuples(index=False)})
            expect(len(ledger) == len(want) and got == want,
                   f"the ledger holds each (pipeline, batch) once with its row count {where}",
                   f"{len(ledger)} ledger rows for {len(want)} batches; differing: "
                   f"{sorted(set(got.items()) ^ set(want.items()))[:4]}")  # fmt: skip
            completed = not dying.fired or point == CRASH_POINTS[2]
            expect(replay is (not completed), "load_batch returns True when it loads, False when the ledger had the batch",
                   f"the replay of batch 2 returned {replay!r}; the first load of it had "
                   f"{'committed' if completed else 'died before its commit'}")  # fmt: skip
            expect(again is False and all(r is True for r in returned),
                   "load_batch returns True when it loads, False when the ledger had the batch",
                   f"replaying the loaded batch 1 returned {again!r}; first loads returned {returned}")  # fmt: skip
    return (
        f"killed {', '.join(CRASH_POINTS)}: after each restart every event of {first} (4 batches) and {second} "
        "(2 batches, same ids) loaded exactly once, one ledger row per batch with its count, replays skipped"
    )


# --- integration/02.3: which events the watermark drops ------------------------------------------


def arrivals(rng: np.random.Generator, batches: int) -> pd.DataFrame:
    """Records in read order: mostly in time, with stragglers, a burst ahead, empty batches and redeliveries."""
    now, rows, event_id = pd.Timestamp("2026-11-27 09:00:00"), [], 10_000 + int(rng.integers(10**5))
    for batch in range(batches):
        if rng.random() < 0.15:
            continue
        now += pd.Timedelta(seconds=int(rng.integers(20, 90)))
        for _ in range(int(rng.integers(3, 12))):
            kind = rng.random()
            if kind < 0.12:
                ts = now - pd.Timedelta(seconds=int(rng.integers(60, 600)))
            elif kind < 0.2:
                ts = now + pd.Timedelta(seconds=int(rng.integers(60, 400)))
            else:
                ts = now - pd.Timedelta(seconds=int(rng.integers(0, 40)))
            event_id += 1
            rows.append({"event_id": event_id, "event_ts": ts, "batch": batch})
            if rng.random() < 0.05:
                rows.append({"event_id": event_id, "event_ts": ts, "batch": batch + int(rng.integers(1, 4))})
    frame = pd.DataFrame(rows)
    return frame.sort_values("batch", kind="stable").reset_index(drop=True)


def dropped_by_watermark(events: pd.DataFrame, delay: pd.Timedelta) -> set[int]:
    """Record by record: the watermark a batch filters with is the previous batches' max event time - delay."""
    late: set[int] = set()
    watermark, seen_max, batch = None, None, None
    for record in events.itertuples(index=False):
        if record.batch != batch:
            if seen_max is not None:
                watermark = max(watermark, seen_max - delay) if watermark is not None else seen_max - delay
            batch = record.batch
        if watermark is not None and record.event_ts < watermark:
            late.add(int(record.event_id))
        seen_max = record.event_ts if seen_max is None else max(seen_max, record.event_ts)
    return late


def check_late_events(learner: LearnerCode, ctx: CheckContext) -> str:
    """Hidden streams and delays: the learner's late set equals the rule's, applied record by record."""
    late_events = learner.function("late_events", ("events", "delay"))
    rng = np.random.default_rng(ctx.seed())
    summary = []
    for variant, seconds in enumerate(sorted(rng.choice([30, 60, 120, 300], 3, replace=False))):
        events, delay = arrivals(np.random.default_rng(ctx.seed(variant + 1)), 40), pd.Timedelta(seconds=int(seconds))
        truth = dropped_by_watermark(events, delay)
        answer = late_events(events.copy(), delay)
        expect(isinstance(answer, set | frozenset | list | tuple), "late_events returns the set of event ids",
               f"got {type(answer).__name__}")  # fmt: skip
        got = {int(i) for i in answer}
        extra, missed = sorted(got - truth), sorted(truth - got)
        example = events[events["event_id"].isin([*(extra[:1] or missed[:1])])].head(1)
        expect(not extra and not missed, f"the ids the watermark drops, with a {seconds} s delay",
               f"{len(got)} ids returned for {len(truth)} dropped: {len(extra)} not dropped by Spark "
               f"(e.g. {extra[:3]}), {len(missed)} dropped but missed (e.g. {missed[:3]}); "
               f"first of them: {example.to_dict('records')}")  # fmt: skip
        summary.append(f"{len(truth)} of {len(events)} records late at {seconds} s")
    return "; ".join(summary) + ": each equal to the watermark's rule applied record by record"
