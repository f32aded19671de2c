"""Checks for snowflake/01 (enterprise patterns): the invariants the lesson proves, on unseen data."""

from __future__ import annotations

import contextlib
import inspect
import itertools
import json
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from expert.exercises.context import CheckContext
from expert.exercises.learner import LearnerCode, shown
from expert.exercises.verdict import BadInputError, CheckFailedError, expect
from expert.runtime.data import Dirt, EcommerceWorld, corrupt_lines
from expert.runtime.snowflake import SnowflakeSession

ORDER_COLUMNS = (
    "ORDER_ID",
    "CUSTOMER_ID",
    "PRODUCT_ID",
    "QUANTITY",
    "UNIT_PRICE",
    "AMOUNT",
    "STATUS",
    "ORDER_TS",
    "UPDATED_AT",
)
ADVANCE = {"placed": "shipped", "shipped": "delivered"}


def change_sets(world: EcommerceWorld, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two change sets as a feed delivers them: the first load (redelivered copies, NULL keys), then
    status advances mixed with stale replays of versions older than what the first load applied."""
    first, _ = world.deliver("orders", "order_id")
    keyed = first.dropna(subset=["order_id"]).drop_duplicates("order_id")
    movable = keyed[keyed["status"].isin(list(ADVANCE))]
    advanced = movable.sample(n=max(1, len(movable) // 3), random_state=rng.integers(1 << 31)).copy()
    advanced["status"] = advanced["status"].map(ADVANCE)
    advanced["updated_at"] = advanced["updated_at"] + pd.Timedelta(days=1)
    stale = keyed.drop(advanced.index).sample(n=max(1, len(keyed) // 10), random_state=rng.integers(1 << 31)).copy()
    stale["status"] = "placed"
    stale["updated_at"] = stale["updated_at"] - pd.Timedelta(days=2)
    second = pd.concat([advanced, stale, advanced.head(len(advanced) // 4)], ignore_index=True)
    return first, second.sample(frac=1.0, random_state=rng.integers(1 << 31)).reset_index(drop=True)


@contextlib.contextmanager
def engine_guard(learner: LearnerCode, function: str) -> Iterator[None]:
    """Around running SQL the learner's `function` returned: anything the engine raises (an error, or a
    feature the local engine lacks) is a failed check at that function, not a checker error."""
    try:
        yield
    except (CheckFailedError, BadInputError):
        raise
    except Exception as exc:
        message = str(getattr(exc, "msg", "") or exc).strip().splitlines()
        raise CheckFailedError(
            f"the engine refused the SQL {function} returned",
            f"{type(exc).__name__}: {message[0] if message else ''}",
            learner_where(learner, function),
        ) from exc


def run_learner_sql(
    session: SnowflakeSession,
    learner: LearnerCode,
    function: str,
    sql: str,
    params: Sequence[Any] | Mapping[str, Any] | None = None,
) -> None:
    """Execute a statement built from what the learner's `function` returned."""
    with engine_guard(learner, function):
        session.execute(sql, params)


def learner_rows(
    session: SnowflakeSession,
    learner: LearnerCode,
    function: str,
    sql: str,
    params: Sequence[Any] | Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Rows (dicts keyed by upper-case column name) of a query built from the learner's `function`."""
    with engine_guard(learner, function):
        return session.fetch(sql, params)


def learner_frame(session: SnowflakeSession, learner: LearnerCode, function: str, sql: str) -> pd.DataFrame:
    """A query built from the learner's `function`, as a DataFrame with upper-case column names."""
    with engine_guard(learner, function):
        frame = session.fetch_df(sql)
    frame.columns = [str(c).upper() for c in frame.columns]
    return frame


def learner_where(learner: LearnerCode, function: str) -> str:
    """`file:line` of the learner's `function`, for a failure found in what it returned."""
    fn = getattr(learner.module, function, None)
    line = inspect.getsourcelines(fn)[1] if inspect.isfunction(fn) else 0
    return f"{shown(learner.path)}:{line}"


def load_changes(session: SnowflakeSession, frame: pd.DataFrame, first_seq: int) -> None:
    """Replace RAW.CHANGES with `frame`, numbering rows in load order from `first_seq`."""
    table = frame.rename(columns=str.upper)[list(ORDER_COLUMNS)].copy()
    table["ORDER_ID"] = table["ORDER_ID"].astype("Int64")
    for column in ("ORDER_TS", "UPDATED_AT"):
        table[column] = naive_utc(table[column])
    table["_SEQ"] = np.arange(first_seq, first_seq + len(table))
    session.execute("DELETE FROM RAW.CHANGES")
    session.write_pandas(table, "RAW.CHANGES", auto_create_table=False, use_logical_type=True)


def latest_versions(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Ground truth in pandas: per keyed ORDER_ID, the version with the highest UPDATED_AT (then load order)."""
    rows = pd.concat(frames, ignore_index=True).dropna(subset=["order_id"])
    rows = rows.assign(order_id=rows["order_id"].astype("int64"), seq=np.arange(len(rows)))
    latest = rows.sort_values(["order_id", "updated_at", "seq"]).drop_duplicates("order_id", keep="last")
    return latest.set_index("order_id")[["status", "updated_at"]]


def orders_now(session: SnowflakeSession) -> pd.DataFrame:
    frame = session.fetch_df("SELECT ORDER_ID, STATUS, UPDATED_AT FROM CORE.ORDERS")
    frame.columns = [c.lower() for c in frame.columns]
    frame["updated_at"] = naive_utc(frame["updated_at"])
    return frame


def naive_utc(values: pd.Series) -> pd.Series:
    """Timestamps as TIMESTAMP_NTZ holds them: UTC wall time, microseconds."""
    stamps = pd.to_datetime(values)
    if stamps.dt.tz is not None:
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    return stamps.astype("datetime64[us]")


def compare(actual: pd.DataFrame, expected: pd.DataFrame, stage: str) -> None:
    """Every CORE.ORDERS invariant of the lesson, with the numbers when one breaks."""
    expect(actual["order_id"].notna().all(), f"{stage}: rows with a NULL ORDER_ID never land",
           f"{int(actual['order_id'].isna().sum())} NULL keys in CORE.ORDERS")  # fmt: skip
    counts = actual["order_id"].value_counts()
    repeated = counts[counts > 1]
    expect(repeated.empty, f"{stage}: one row per ORDER_ID",
           f"{len(repeated)} ORDER_IDs appear more than once ({len(actual):,} rows for {counts.size:,} orders)")  # fmt: skip
    got = actual.set_index("order_id").sort_index()
    missing = expected.index.difference(got.index)
    extra = got.index.difference(expected.index)
    expect(missing.empty and extra.empty, f"{stage}: every keyed order, and only those",
           f"{len(missing)} orders missing, {len(extra)} unexpected")  # fmt: skip
    want = expected.assign(updated_at=naive_utc(expected["updated_at"])).sort_index()
    wrong = want[(got["status"] != want["status"]) | (got["updated_at"] != want["updated_at"])]
    older = int((got.loc[wrong.index, "updated_at"] < wrong["updated_at"]).sum())
    expect(wrong.empty, f"{stage}: each order holds its latest version",
           f"{len(wrong)} of {len(want):,} orders hold another version ({older} of them an OLDER one: "
           "a stale replay or a duplicate overwrote a newer version)")  # fmt: skip


def check_cdc_merge(learner: LearnerCode, ctx: CheckContext) -> str:
    """Two change sets through the learner's MERGE, then the second again: latest versions, exactly once."""
    merge_orders_sql = learner.function("merge_orders_sql", ("changes",))
    world = EcommerceWorld(1_500, seed=ctx.seed(), dirt=Dirt(duplicate_rate=0.05, null_key_rate=0.02))
    first, second = change_sets(world, np.random.default_rng(ctx.seed(1)))
    columns = ", ".join(f"{c} {_type(c)}" for c in ORDER_COLUMNS)
    with ctx.snowflake(database="SHOP", schema="RAW") as session:
        session.execute("CREATE SCHEMA IF NOT EXISTS CORE")
        session.execute(f"CREATE TABLE RAW.CHANGES ({columns}, _SEQ NUMBER)")
        session.execute(f"CREATE TABLE CORE.ORDERS ({columns})")
        load_changes(session, first, 1)
        run_learner_sql(session, learner, "merge_orders_sql", merge_orders_sql("RAW.CHANGES"))
        compare(orders_now(session), latest_versions([first]), "after the first change set")
        load_changes(session, second, len(first) + 1)
        run_learner_sql(session, learner, "merge_orders_sql", merge_orders_sql("RAW.CHANGES"))
        after = orders_now(session)
        compare(after, latest_versions([first, second]), "after the updates and stale replays")
        run_learner_sql(session, learner, "merge_orders_sql", merge_orders_sql("RAW.CHANGES"))
        rerun = orders_now(session)
    same = (
        after.sort_values("order_id")
        .reset_index(drop=True)
        .equals(rerun.sort_values("order_id").reset_index(drop=True))
    )
    expect(same, "a rerun of the same change set changes nothing", f"{len(after):,} rows before, {len(rerun):,} after")
    return (
        f"{len(rerun):,} orders, one row each, every one at its latest version after "
        f"{len(first):,} + {len(second):,} changes (duplicates, NULL keys and stale replays included); rerun identical"
    )


def _type(column: str) -> str:
    return {"UNIT_PRICE": "NUMBER(12,2)", "AMOUNT": "NUMBER(12,2)", "STATUS": "VARCHAR"}.get(
        column, "TIMESTAMP_NTZ" if column in ("ORDER_TS", "UPDATED_AT") else "NUMBER"
    )


# --- snowflake/01.2 · every landed line judged: typed, or rejected with its reason -----------------

REASONS = ("wrong number of fields", "ORDER_ID is missing", "a number does not parse", "a timestamp does not parse")
FIELDS_DDL = ", ".join(f"{c} {_type(c)}" for c in ORDER_COLUMNS)
NOT_A_NUMBER = ("N/A", "two", "1O", "")
OTHER_LAYOUTS = ("%Y-%m-%d %H:%M:%S", "%d/%m/%Y %H:%M:%S", "%Y-%m-%dT%H:%M:%S")
"""Timestamps a careless writer emits: no zone, day-first, ISO without the Z."""


def defective_feed(
    world: EcommerceWorld, rng: np.random.Generator, files: int
) -> tuple[pd.DataFrame, pd.DataFrame, Counter]:
    """The order feed's CSV lines (no header) in `files` files, with counted defects: truncated copies of
    lines, missing keys (from the generator), unparseable numbers and timestamps in other layouts.

    Returns the lines (FILE_NAME, LINE), the orders that must come out typed, and the rejects by reason."""
    delivered, report = world.deliver("orders", "order_id")
    orders = delivered.reset_index(drop=True)
    text = orders.to_csv(index=False, header=False, date_format="%Y-%m-%dT%H:%M:%SZ")
    lines = text.splitlines()
    keyed = np.flatnonzero(orders["order_id"].notna().to_numpy())
    spoilt = rng.choice(keyed, size=2 * max(2, len(keyed) // 25), replace=False)
    bad_numbers, bad_stamps = np.array_split(spoilt, 2)
    for i in bad_numbers:
        fields = lines[i].split(",")
        fields[int(rng.integers(1, 6))] = NOT_A_NUMBER[int(rng.integers(len(NOT_A_NUMBER)))]
        lines[i] = ",".join(fields)
    for i in bad_stamps:
        fields = lines[i].split(",")
        column = int(rng.integers(7, 9))
        stamp = pd.Timestamp(fields[column].rstrip("Z"))
        fields[column] = stamp.strftime(OTHER_LAYOUTS[int(rng.integers(len(OTHER_LAYOUTS)))])
        lines[i] = ",".join(fields)
    lines, truncated = corrupt_lines(lines, 0.03, rng)
    frame = pd.DataFrame({"LINE": lines})
    frame["FILE_NAME"] = ""
    for part, chunk in enumerate(np.array_split(np.arange(len(frame)), files)):
        frame.loc[chunk, "FILE_NAME"] = f"orders/batch={part:03d}.csv"
    typed = orders.drop(index=[*bad_numbers, *bad_stamps]).dropna(subset=["order_id"])
    rejects = Counter({REASONS[0]: truncated, REASONS[1]: report.null_keys,
                       REASONS[2]: len(bad_numbers), REASONS[3]: len(bad_stamps)})  # fmt: skip
    return frame[["FILE_NAME", "LINE"]], typed, +rejects


def comparable(frame: pd.DataFrame) -> pd.Series:
    """Each order row as one hashable tuple, types normalized (numbers, 2-decimal prices, naive timestamps)."""
    rows = frame.rename(columns=str.upper)[list(ORDER_COLUMNS)].copy()
    for column in ("ORDER_ID", "CUSTOMER_ID", "PRODUCT_ID", "QUANTITY"):
        rows[column] = rows[column].astype("float64").round(0)
    for column in ("UNIT_PRICE", "AMOUNT"):
        rows[column] = rows[column].astype("float64").round(2)
    for column in ("ORDER_TS", "UPDATED_AT"):
        rows[column] = naive_utc(rows[column]).astype("datetime64[s]")
    return pd.Series(list(rows.itertuples(index=False, name=None)))


def check_order_lines(learner: LearnerCode, ctx: CheckContext) -> str:
    """Three feed files through the learner's judging query: every line once, typed or rejected with its reason."""
    order_lines_sql = learner.function("order_lines_sql", ("lines",))
    world = EcommerceWorld(1_200, seed=ctx.seed(), dirt=Dirt(duplicate_rate=0.03, null_key_rate=0.03))
    lines, typed_truth, reject_truth = defective_feed(world, np.random.default_rng(ctx.seed(1)), files=3)
    columns = ", ".join(ORDER_COLUMNS)
    with ctx.snowflake(database="SHOP", schema="RAW") as session:
        session.execute("CREATE TABLE RAW.FILE_LINES (FILE_NAME VARCHAR, LINE VARCHAR)")
        session.write_pandas(lines, "FILE_LINES", auto_create_table=False)
        run_learner_sql(session, learner, "order_lines_sql",
                        f"CREATE VIEW RAW.ORDER_LINES_PARSED AS {order_lines_sql('RAW.FILE_LINES')}")  # fmt: skip
        judged = learner_frame(session, learner, "order_lines_sql",
                               f"SELECT FILE_NAME, LINE, REJECT_REASON, {columns} FROM RAW.ORDER_LINES_PARSED")  # fmt: skip
        session.execute(f"CREATE TABLE RAW.ORDERS_RAW ({FIELDS_DDL}, _FILE VARCHAR)")
        run_learner_sql(session, learner, "order_lines_sql", f"INSERT INTO RAW.ORDERS_RAW SELECT {columns}, FILE_NAME "
                        "FROM RAW.ORDER_LINES_PARSED WHERE REJECT_REASON IS NULL")  # fmt: skip
        typed = session.fetch_df(f"SELECT {columns}, _FILE FROM RAW.ORDERS_RAW")
    seen = Counter(zip(judged["FILE_NAME"], judged["LINE"], strict=True))
    sent = Counter(zip(lines["FILE_NAME"], lines["LINE"], strict=True))
    expect(seen == sent, "every landed line comes out of the judging query exactly once",
           f"{len(judged):,} rows for {len(lines):,} lines: {(sent - seen).total()} lines lost, "
           f"{(seen - sent).total()} extra")  # fmt: skip
    rejected = judged[judged["REJECT_REASON"].notna()]
    unknown = sorted(set(rejected["REJECT_REASON"]) - set(REASONS))
    expect(not unknown, "a rejected line carries one of REASONS", f"other reasons: {unknown}")
    accepted = judged[judged["REJECT_REASON"].isna()]
    holes = accepted[accepted[list(ORDER_COLUMNS)].isna().any(axis=1)]
    expect(holes.empty, "a typed row has every field (a line missing anything is rejected, never half typed)",
           f"{len(holes)} of {len(accepted):,} typed rows hold a NULL, e.g. from the line "
           f"{min(holes['LINE'], default='')!r}")  # fmt: skip
    by_reason = Counter(rejected["REJECT_REASON"])
    expect(by_reason == reject_truth, "rejects by reason match the defects written into the feed",
           "; ".join(f"{r}: {by_reason.get(r, 0)} rejected, {reject_truth.get(r, 0)} written" for r in REASONS))  # fmt: skip
    per_file = {f: (int((judged["FILE_NAME"] == f).sum()), int((typed["_FILE"] == f).sum()),
                    int((rejected["FILE_NAME"] == f).sum())) for f in sorted(set(lines["FILE_NAME"]))}  # fmt: skip
    got, want = Counter(comparable(typed)), Counter(comparable(typed_truth))
    expect(got == want, "the typed rows are the orders the feed delivered, value for value",
           f"{(want - got).total()} delivered orders missing or changed, {(got - want).total()} rows not in the feed")  # fmt: skip
    files = ", ".join(f"{n} = {t} + {r}" for n, t, r in per_file.values())
    return (
        f"{len(lines):,} lines in {len(per_file)} files, each typed or rejected ({files}); rejects by reason "
        f"{dict(sorted(by_reason.items()))} as written; {len(typed):,} typed rows equal the delivered orders"
    )


# --- snowflake/01.3 · the polling loader: each file once, all of it or none of it ----------------


class LoadStepFailedError(Exception):
    """The failure the check arranges in one file's load step (as a judge step that crashed would)."""


def write_order_files(world: EcommerceWorld, folder: Path, rng: np.random.Generator, count: int) -> dict[str, int]:
    """`count` order CSV files (header + lines) cut at random points; returns data lines per "orders/<file>"."""
    orders, _ = world.deliver("orders", "order_id")
    cuts = [round(len(orders) * (k + rng.uniform(-0.25, 0.25)) / count) for k in range(1, count)]
    lines = {}
    bounds = [0, *cuts, len(orders)]
    for part, (start, end) in enumerate(itertools.pairwise(bounds)):
        name, chunk = f"batch={part:03d}.csv", orders.iloc[start:end]
        chunk.to_csv(folder / name, index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
        lines[f"orders/{name}"] = len(chunk)
    return lines


def loader_state(session: SnowflakeSession) -> tuple[dict[str, int], int, dict[str, int]]:
    """(landed lines per file, untagged lines, successful load steps per file)."""
    landed = {r["FILE_NAME"]: int(r["N"]) for r in session.fetch(
        "SELECT FILE_NAME, COUNT(*) AS N FROM RAW.FILE_LINES WHERE FILE_NAME IS NOT NULL GROUP BY 1")}  # fmt: skip
    untagged = int(session.scalar("SELECT COUNT(*) FROM RAW.FILE_LINES WHERE FILE_NAME IS NULL"))
    steps = {
        r["FILE_NAME"]: int(r["N"])
        for r in session.fetch("SELECT FILE_NAME, COUNT(*) AS N FROM RAW.LOAD_STEPS GROUP BY 1")
    }
    return landed, untagged, steps


def expect_loaded(state: tuple[dict[str, int], int, dict[str, int]], files: dict[str, int], stage: str) -> None:
    """Exactly `files` (name → lines) landed, every line tagged, and one successful load step each."""
    landed, untagged, steps = state
    wrong = {f: (landed.get(f, 0), n) for f, n in files.items() if landed.get(f, 0) != n}
    stray = {f: n for f, n in landed.items() if f not in files}
    expect(not wrong and not stray and untagged == 0, f"{stage}: every line of each loaded file landed exactly once",
           "; ".join([*(f"{f}: {got} lines landed, {want} in the file" for f, (got, want) in wrong.items()),
                      *(f"{f}: {n} lines stayed after its load step failed (the COPY must roll back with it, "
                        "or COPY's load metadata skips the file from now on)" for f, n in stray.items()),
                      *([f"{untagged} lines landed without their file's tag"] if untagged else [])]))  # fmt: skip
    twice = {f: n for f, n in steps.items() if n != 1}
    missing = sorted(set(files) - set(steps))
    expect(not twice and not missing, f"{stage}: the load step succeeded exactly once per loaded file",
           "; ".join([*(f"{f}: {n} times (it ran for a file COPY skipped)" for f, n in twice.items()),
                      *(f"{f}: never" for f in missing)]))  # fmt: skip


def check_polling_loader(learner: LearnerCode, ctx: CheckContext) -> str:
    """Three rounds: two files with a load step that fails on the second, then a new file, then nothing new."""
    poll_once = learner.function("poll_once", ("session", "inbox", "after_load"))
    world = EcommerceWorld(1_000, seed=ctx.seed())
    source, inbox = ctx.workdir / "source", ctx.workdir / "inbox"
    source.mkdir()
    inbox.mkdir()
    files = write_order_files(world, source, np.random.default_rng(ctx.seed(1)), count=3)
    first, second, third = files
    fail_once = {second}

    def after_load(session: SnowflakeSession, file_name: str) -> None:
        session.execute("UPDATE RAW.FILE_LINES SET FILE_NAME = %s WHERE FILE_NAME IS NULL", (file_name,))
        if file_name in fail_once:
            fail_once.discard(file_name)
            raise LoadStepFailedError(f"the load step failed on {file_name} (arranged by the check)")
        session.execute(
            "INSERT INTO RAW.LOAD_STEPS SELECT %s, COUNT(*) FROM RAW.FILE_LINES WHERE FILE_NAME = %s",
            (file_name, file_name),
        )

    def poll(session: SnowflakeSession, arriving: Sequence[str]) -> list[str] | None:
        for name in arriving:
            (inbox / Path(name).name).write_bytes((source / Path(name).name).read_bytes())
        try:
            return sorted(poll_once(session, inbox, after_load))
        except CheckFailedError as exc:
            if isinstance(exc.__cause__, LoadStepFailedError):
                return None
            raise

    with ctx.snowflake(database="SHOP", schema="RAW") as session:
        session.execute("CREATE STAGE RAW.LANDING")
        session.execute("CREATE TABLE RAW.FILE_LINES (FILE_NAME VARCHAR, LINE VARCHAR)")
        session.execute("CREATE TABLE RAW.LOAD_STEPS (FILE_NAME VARCHAR, LINES NUMBER)")
        one = poll(session, [first, second])
        expect(one in (None, [first]), "round 1: a file whose load step failed is not reported as loaded",
               f"poll_once returned {one}")  # fmt: skip
        expect_loaded(loader_state(session), {first: files[first]}, "round 1, the load step failed on the second file")
        two = poll(session, [third])
        expect(two == [second, third], "round 2 loads the file that failed before and the new one, nothing else",
               f"poll_once returned {two}, expected {[second, third]}")  # fmt: skip
        expect_loaded(loader_state(session), files, "round 2")
        after_two = loader_state(session)
        three = poll(session, [])
        after_three = loader_state(session)
    expect(three == [], "round 3 (nothing new in the inbox) loads nothing", f"poll_once returned {three}")
    expect(after_three == after_two, "round 3 changes no table", f"before {after_two}, after {after_three}")
    return (
        f"{len(files)} files, {sum(files.values())} lines: the failed load step of {second} rolled its COPY back and "
        f"round 2 loaded it with {third}; every line landed once, one load step per file; round 3 loaded nothing"
    )


# --- snowflake/01.4 · schema drift in VARIANT, found with FLATTEN --------------------------------

NEW_KEYS = ("device", "referrer", "coupon_code", "app_version", "locale")
RENAMED = {"channel": "source", "price": "unit_price", "event_type": "action"}
"""Renames a producer ships: the old key goes missing and the new one is added."""


def drifting_files(world: EcommerceWorld, rng: np.random.Generator) -> tuple[pd.DataFrame, dict[str, set[str]]]:
    """Five clickstream files: a baseline, then (in a seeded order) a new nested key in some objects, a
    renamed key, an always-null key with a baseline key in half the objects only, and a file without
    drift. Returns the lines (FILE_NAME, LINE) and the top-level keys each file carries."""
    events, _ = world.deliver("events", "event_id", "event_ts")
    records = [
        json.loads(line) for line in events.to_json(orient="records", lines=True, date_format="iso").splitlines()
    ]
    chunks = np.array_split(np.arange(len(records)), 5)
    nested, null_key = rng.choice(NEW_KEYS, 2, replace=False).tolist()
    old = str(rng.choice(list(RENAMED)))
    sometimes = str(rng.choice([k for k in ("price", "product_id", "customer_id") if k != old]))
    drift_of = dict(zip(range(1, 5), rng.permutation(["nested", "renamed", "null", "none"]).tolist(), strict=True))
    lines, keys = [], {}
    for part, chunk in enumerate(chunks):
        name = f"clickstream/batch={part:03d}.json"
        kind = drift_of.get(part, "baseline")
        seen: set[str] = set()
        for n, i in enumerate(chunk):
            record = dict(records[i])
            if kind == "nested" and rng.random() < 0.3:
                record[nested] = {"os": str(rng.choice(["ios", "android"])), "build": int(rng.integers(100, 999))}
            elif kind == "renamed":
                record[RENAMED[old]] = record.pop(old)
            elif kind == "null":
                record[null_key] = None
                if n % 2:
                    record.pop(sometimes)
            elif kind == "none":
                record = dict(reversed(list(record.items())))
            seen |= set(record)
            lines.append({"FILE_NAME": name, "LINE": json.dumps(record, separators=(",", ":"))})
        keys[name] = seen
    return pd.DataFrame(lines), keys


def check_schema_drift(learner: LearnerCode, ctx: CheckContext) -> str:
    """The learner's drift report over five files, against the keys the check wrote into each."""
    key_drift_sql = learner.function("key_drift_sql", ("events",))
    world = EcommerceWorld(1_500, seed=ctx.seed())
    lines, keys = drifting_files(world, np.random.default_rng(ctx.seed(1)))
    with ctx.snowflake(database="SHOP", schema="RAW") as session:
        session.execute("CREATE TABLE RAW.CLICKSTREAM_LINES (FILE_NAME VARCHAR, LINE VARCHAR)")
        session.write_pandas(lines, "CLICKSTREAM_LINES", auto_create_table=False)
        session.execute("CREATE TABLE RAW.CLICKSTREAM (FILE_NAME VARCHAR, V VARIANT)")
        session.execute("INSERT INTO RAW.CLICKSTREAM SELECT FILE_NAME, TRY_PARSE_JSON(LINE) FROM RAW.CLICKSTREAM_LINES")
        rows = learner_rows(session, learner, "key_drift_sql", key_drift_sql("RAW.CLICKSTREAM"))
    baseline = keys[min(keys)]
    want = {(f, k, "added") for f, ks in keys.items() for k in ks - baseline} | {
        (f, k, "missing") for f, ks in keys.items() for k in baseline - ks
    }
    got = [(str(r.get("FILE_NAME")), str(r.get("KEY_NAME")), str(r.get("CHANGE"))) for r in rows]
    repeated = sorted({g for g in got if got.count(g) > 1})
    expect(not repeated, "one row per drift", f"{len(repeated)} drifts reported more than once, e.g. {repeated[:2]}")
    missed, wrong = sorted(want - set(got)), sorted(set(got) - want)
    expect(not missed and not wrong, "the report names every key a file added or lost against the first file, and only those",
           f"missed {missed[:4]}{' ...' if len(missed) > 4 else ''}; not drift {wrong[:4]}{' ...' if len(wrong) > 4 else ''}")  # fmt: skip
    quiet = sorted(f for f, ks in keys.items() if ks == baseline)
    found = ", ".join(f"{key} {change} in {file.rsplit('/', 1)[-1]}" for file, key, change in sorted(want))
    return f"{len(lines):,} JSON objects in {len(keys)} files: {len(want)} drifts found exactly ({found}); no row for {quiet}"
