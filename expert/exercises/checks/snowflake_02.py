"""Checks for snowflake/02 (cost optimization): the lesson's billing invariants, on a month it has not seen."""

from __future__ import annotations

import itertools
import math
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd

from expert.exercises.checks.snowflake_01 import learner_rows
from expert.exercises.context import CheckContext
from expert.exercises.learner import LearnerCode
from expert.exercises.verdict import expect
from expert.runtime import usage_history
from expert.runtime.usage_history import DAYS, FLEET, LOCAL_ORIGIN, seconds_since

MINIMUM_BILLED_SECONDS = 60
CANDIDATES = (1800, 600, 300, 120, 60, 30)
"""The lesson's candidates, and 30 s: valid, and where the 60-second minimum per resume bites."""
LESSON_COLD_STARTS_PER_DAY = 40
QUERIES = 3_000
"""A month of the generated fleet (its hourly ETL alone is ~2,250 queries)."""
WINDOW = (LOCAL_ORIGIN, LOCAL_ORIGIN + timedelta(days=DAYS))


def billed_runs(starts: np.ndarray, ends: np.ndarray, auto_suspend: int) -> list[tuple[float, float]]:
    """The check's own billing model: a query starting more than `auto_suspend` s after every earlier
    query ended resumes the warehouse; each run bills max(60, last end - resume + auto_suspend)."""
    runs: list[tuple[float, float]] = []
    resumed, last_end = math.nan, -math.inf
    for start, end in sorted(zip(starts.tolist(), ends.tolist(), strict=True)):
        if start - last_end > auto_suspend:
            if last_end > -math.inf:
                runs.append((resumed, max(resumed + MINIMUM_BILLED_SECONDS, last_end + auto_suspend)))
            resumed = start
        last_end = max(last_end, end)
    if last_end > -math.inf:
        runs.append((resumed, max(resumed + MINIMUM_BILLED_SECONDS, last_end + auto_suspend)))
    return runs


def true_replay(history: pd.DataFrame, warehouse: str, auto_suspend: int, window: tuple) -> dict[str, float]:
    """RESUMES, BILLED_SECONDS, CREDITS of `warehouse` under `auto_suspend`, from the check's model."""
    busy = history[
        (history["WAREHOUSE_NAME"] == warehouse)
        & (history["EXECUTION_TIME"] > 0)
        & (history["START_TIME"] >= window[0])
        & (history["START_TIME"] < window[1])
    ]
    runs = billed_runs(seconds_since(busy["START_TIME"]), seconds_since(busy["END_TIME"]), auto_suspend)
    seconds = sum(b - a for a, b in runs)
    per_hour = next(w.credits_per_hour for w in FLEET if w.name == warehouse)
    return {"RESUMES": len(runs), "BILLED_SECONDS": seconds, "CREDITS": seconds * per_hour / 3600}


def true_choice(replays: dict[int, dict[str, float]], interactive: bool, budget: float) -> int:
    """The lesson's rule: batch → cheapest; interactive → cheapest within the cold-start budget, else the highest."""
    ordered = sorted(replays, key=lambda s: (replays[s]["CREDITS"], s))
    within = [s for s in ordered if replays[s]["RESUMES"] / DAYS <= budget]
    return ordered[0] if not interactive else (within[0] if within else max(replays))


def by_warehouse(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {str(row.get("WAREHOUSE_NAME")): row for row in rows}


def _close(got: dict, want: dict) -> bool:
    return int(got.get("RESUMES") or 0) == want["RESUMES"] and math.isclose(
        float(got.get("CREDITS") or 0), want["CREDITS"], rel_tol=1e-4, abs_tol=1e-6
    )


def _row(values: dict) -> str:
    return f"{int(values.get('RESUMES') or 0)} resumes, {float(values.get('CREDITS') or 0):.3f} credits"


def check_auto_suspend(learner: LearnerCode, ctx: CheckContext) -> str:
    """Replay every candidate on every warehouse against the check's billing model (the month, and a
    hidden 10-day window), then pick settings under the lesson's cold-start budget and two hidden ones."""
    replay_sql = learner.function("replay_sql", ("candidates",))
    choose = learner.function("choose_auto_suspend", ("replays", "interactive", "max_resumes_per_day"))
    usage = usage_history.generate_account_usage(QUERIES, ctx.seed(), billing=billed_runs)
    history = usage.views["QUERY_HISTORY"]
    metered = usage.views["WAREHOUSE_METERING_HISTORY"].groupby("WAREHOUSE_NAME")["CREDITS_USED_COMPUTE"].sum()
    first_day = int(np.random.default_rng(ctx.seed(1)).integers(1, DAYS - 12))
    part = (LOCAL_ORIGIN + timedelta(days=first_day), LOCAL_ORIGIN + timedelta(days=first_day + 10))
    sql = replay_sql("COSTLAB.PUBLIC.CANDIDATES")
    with ctx.snowflake(database="COSTLAB") as session:
        usage_history.load_local_account_usage(session, usage.views)
        session.execute("CREATE TABLE COSTLAB.PUBLIC.CANDIDATES (AUTO_SUSPEND NUMBER)")
        session.execute(f"INSERT INTO COSTLAB.PUBLIC.CANDIDATES VALUES {', '.join(f'({s})' for s in CANDIDATES)}")

        def replay(window: tuple) -> dict[str, dict[int, dict]]:
            params = {"window_start": window[0], "window_end": window[1]}
            out: dict[str, dict[int, dict]] = {}
            for row in learner_rows(session, learner, "replay_sql", sql, params):
                out.setdefault(str(row.get("WAREHOUSE_NAME")), {})[int(row.get("AUTO_SUSPEND") or 0)] = row
            return out

        month, window = replay(WINDOW), replay(part)
    pairs = [(w.name, s) for w in FLEET for s in CANDIDATES]
    missing = [p for p in pairs if p[1] not in month.get(p[0], {})]
    expect(not missing and all({"RESUMES", "CREDITS"} <= set(r) for rs in month.values() for r in rs.values()),
           "the replay returns RESUMES and CREDITS for every warehouse and candidate setting",
           f"{len(missing)} of {len(pairs)} (warehouse, setting) rows missing, e.g. {missing[:2]}; "
           f"columns {sorted({c for rs in month.values() for r in rs.values() for c in r})}")  # fmt: skip
    today = {w.name: month[w.name][w.auto_suspend] for w in FLEET}
    off = {n: r for n, r in today.items() if not math.isclose(float(r["CREDITS"] or 0), metered[n], rel_tol=1e-4)}
    expect(not off, "at today's settings the replay reproduces WAREHOUSE_METERING_HISTORY",
           "; ".join(f"{n} at {r['AUTO_SUSPEND']} s: replay {float(r['CREDITS'] or 0):.3f} credits, "
                     f"metered {metered[n]:.3f}" for n, r in off.items()))  # fmt: skip
    truth = {w.name: {s: true_replay(history, w.name, s, WINDOW) for s in CANDIDATES} for w in FLEET}
    wrong = [(n, s) for n, s in pairs if not _close(month[n][s], truth[n][s])]
    expect(not wrong, "every candidate setting replays to the billing model's resumes and credits",
           f"{len(wrong)} of {len(pairs)} replays differ, e.g. " + "; ".join(
               f"{n} at {s} s: {_row(month[n][s])}, expected {_row(truth[n][s])}" for n, s in wrong[:2]))  # fmt: skip
    part_truth = {w.name: true_replay(history, w.name, w.auto_suspend, part) for w in FLEET}
    outside = [n for n in part_truth if not _close(window.get(n, {}).get(today[n]["AUTO_SUSPEND"], {}), part_truth[n])]
    expect(not outside, "the replay counts only the queries that started in the window",
           f"days {first_day}-{first_day + 10}: " + "; ".join(
               f"{n}: {_row(window.get(n, {}).get(today[n]['AUTO_SUSPEND'], {}))}, expected {_row(part_truth[n])}"
               for n in outside))  # fmt: skip
    picks = 0
    for warehouse in FLEET:
        ladder = truth[warehouse.name]
        per_day = sorted({ladder[s]["RESUMES"] / DAYS for s in CANDIDATES})
        between = [(a + b) / 2 for a, b in itertools.pairwise(per_day)]
        budgets = [LESSON_COLD_STARTS_PER_DAY, between[len(between) // 2] if between else per_day[0], per_day[0] / 2]
        for budget in budgets:
            got = choose({s: dict(month[warehouse.name][s]) for s in CANDIDATES}, warehouse.interactive, budget)
            want = true_choice(ladder, warehouse.interactive, budget)
            kind = "interactive" if warehouse.interactive else "batch"
            expect(got == want, f"the recommended setting follows the rule ({kind} warehouse)",
                   f"{warehouse.name} with at most {budget:.2f} resumes/day: chose {got} s, expected {want} s "
                   f"(resumes/day by setting: {({s: round(ladder[s]['RESUMES'] / DAYS, 2) for s in CANDIDATES})})")  # fmt: skip
            picks += 1
    chosen = {w.name: true_choice(truth[w.name], w.interactive, LESSON_COLD_STARTS_PER_DAY) for w in FLEET}
    before = sum(metered[w.name] for w in FLEET)
    after = sum(truth[n][s]["CREDITS"] for n, s in chosen.items())
    return (
        f"{len(pairs)} replays over {int((history['EXECUTION_TIME'] > 0).sum()):,} queries match the billing model "
        f"(today's settings = metering, {before:.1f} credits) and a hidden 10-day window; {picks} choices right; "
        f"recommended {chosen} bills {after:.1f} credits"
    )


# --- snowflake/02.2 · right-size from spill and queueing -----------------------------------------

SPILL_SIZE_UP = 0.10
QUEUED_ADD_CLUSTERS = 0.01
IDLE_SIZE_DOWN = 0.10
REMEDIES = ("run the spilling jobs one size up", "add clusters (multi-cluster)", "size down", "keep")
NAMES = ("TRANSFORM_WH", "LOADING_WH", "REPORTING_WH", "DASHBOARD_WH", "ANALYST_WH", "SANDBOX_WH")
"""The fleet is renamed per seed: a rule that keys on a warehouse's name cannot pass."""


def true_evidence(history: pd.DataFrame, window: tuple) -> dict[str, dict[str, float]]:
    """QUERIES, QUEUED_SHARE, REMOTE_SPILL_SHARE per warehouse, in pandas, over the queries that ran."""
    ran = history[
        (history["EXECUTION_TIME"] > 0) & (history["START_TIME"] >= window[0]) & (history["START_TIME"] < window[1])
    ]
    out = {}
    for name, rows in ran.groupby("WAREHOUSE_NAME"):
        spilled = rows["BYTES_SPILLED_TO_REMOTE_STORAGE"] > 0
        out[str(name)] = {
            "QUERIES": len(rows),
            "QUEUED_SHARE": float((rows["QUEUED_OVERLOAD_TIME"] > 0).mean()),
            "REMOTE_SPILL_SHARE": float(rows.loc[spilled, "EXECUTION_TIME"].sum() / rows["EXECUTION_TIME"].sum()),
        }
    return out


def utilization(history: pd.DataFrame, warehouse: str, auto_suspend: int) -> float:
    """Seconds with a query running / seconds billed under `auto_suspend`."""
    ran = history[(history["WAREHOUSE_NAME"] == warehouse) & (history["EXECUTION_TIME"] > 0)]
    starts, ends = seconds_since(ran["START_TIME"]), seconds_since(ran["END_TIME"])
    active = sum(end - start for start, end in _union(starts, ends))
    billed = sum(b - a for a, b in billed_runs(starts, ends, auto_suspend))
    return active / billed if billed else 0.0


def _union(starts: np.ndarray, ends: np.ndarray) -> list[tuple[float, float]]:
    merged: list[list[float]] = []
    for start, end in sorted(zip(starts.tolist(), ends.tolist(), strict=True)):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(a, b) for a, b in merged]


def true_remedy(evidence: dict[str, float], busy_share: float) -> str:
    spill, queued = evidence["REMOTE_SPILL_SHARE"], evidence["QUEUED_SHARE"]
    if spill >= SPILL_SIZE_UP:
        return REMEDIES[0]
    if queued >= QUEUED_ADD_CLUSTERS:
        return REMEDIES[1]
    return REMEDIES[2] if queued == 0 and spill == 0 and busy_share < IDLE_SIZE_DOWN else REMEDIES[3]


def symptom_scenarios(
    history: pd.DataFrame, names: dict[str, str], window: tuple, rng: np.random.Generator
) -> list[tuple[str, pd.DataFrame]]:
    """The month as billed; a mixed month (the queueing warehouse also spills, the idle one has a single
    queued query in the window, the spilling one no longer spills); and the month with every symptom gone."""
    ran = (history["EXECUTION_TIME"] > 0) & (history["START_TIME"] >= window[0]) & (history["START_TIME"] < window[1])
    bi, adhoc, etl = (history["WAREHOUSE_NAME"] == names[n] for n in ("BI_WH", "ADHOC_WH", "ETL_WH"))
    mixed = history.copy()
    spills = (bi & ran).to_numpy() & (rng.random(len(history)) < 0.25)
    mixed.loc[spills, "BYTES_SPILLED_TO_REMOTE_STORAGE"] = mixed.loc[spills, "EXECUTION_TIME"] * 200_000
    mixed.loc[etl, "BYTES_SPILLED_TO_REMOTE_STORAGE"] = 0
    mixed.loc[adhoc, "QUEUED_OVERLOAD_TIME"] = 0
    mixed.loc[mixed.index[(adhoc & ran).to_numpy()][rng.integers((adhoc & ran).sum())], "QUEUED_OVERLOAD_TIME"] = 1_500
    calm = history.assign(BYTES_SPILLED_TO_REMOTE_STORAGE=0, QUEUED_OVERLOAD_TIME=0)
    return [("as billed", history), ("a mixed month", mixed), ("with the symptoms gone", calm)]


def check_right_size(learner: LearnerCode, ctx: CheckContext) -> str:
    """The evidence SQL against pandas on a renamed fleet and a hidden window, and the remedy rule, over
    three months: as billed, mixed symptoms, no symptoms."""
    evidence_sql = learner.function("sizing_evidence_sql", ())
    recommend = learner.function("recommend", ("evidence", "utilization"))
    rng = np.random.default_rng(ctx.seed(1))
    names = dict(zip([w.name for w in FLEET], rng.choice(NAMES, len(FLEET), replace=False).tolist(), strict=True))
    usage = usage_history.generate_account_usage(QUERIES, ctx.seed(), billing=billed_runs)
    history = usage.views["QUERY_HISTORY"].assign(WAREHOUSE_NAME=lambda f: f["WAREHOUSE_NAME"].map(names))
    first_day = int(rng.integers(0, 8))
    window = (LOCAL_ORIGIN + timedelta(days=first_day), LOCAL_ORIGIN + timedelta(days=first_day + 21))
    busy = {names[w.name]: utilization(history, names[w.name], w.auto_suspend) for w in FLEET}
    sql = evidence_sql()
    verdicts = []
    with ctx.snowflake(database="COSTLAB") as session:
        usage_history.load_local_account_usage(session, {**usage.views, "QUERY_HISTORY": history})
        for number, (stage, frame) in enumerate(symptom_scenarios(history, names, window, rng)):
            if number:
                session.execute("DELETE FROM SNOWFLAKE.ACCOUNT_USAGE.QUERY_HISTORY")
                session.execute("USE SCHEMA SNOWFLAKE.ACCOUNT_USAGE")
                session.write_pandas(frame, "QUERY_HISTORY", auto_create_table=False, use_logical_type=True)
            params = {"window_start": window[0], "window_end": window[1]}
            got = by_warehouse(learner_rows(session, learner, "sizing_evidence_sql", sql, params))
            want = true_evidence(frame, window)
            expect(set(got) == set(want), f"{stage}: one evidence row per warehouse that ran queries",
                   f"rows for {sorted(got)}, expected {sorted(want)}")  # fmt: skip
            off = [
                f"{n}: {c} {_number(got[n].get(c))}, expected {_number(want[n][c])}"
                for n in sorted(want)
                for c in ("QUERIES", "QUEUED_SHARE", "REMOTE_SPILL_SHARE")
                if not math.isclose(float(got[n].get(c) or 0), want[n][c], rel_tol=1e-6, abs_tol=1e-9)
            ]
            expect(not off, f"{stage}: the evidence matches the history, query by query",
                   f"days {first_day}-{first_day + 21}: " + "; ".join(off[:3]))  # fmt: skip
            remedies = []
            for name in sorted(want):
                remedy = recommend(dict(got[name]), busy[name])
                right = true_remedy(want[name], busy[name])
                expect(remedy == right, f"{stage}: each symptom gets its remedy",
                       f"{name} (spill {want[name]['REMOTE_SPILL_SHARE']:.1%} of execution time, "
                       f"{want[name]['QUEUED_SHARE']:.1%} queued, busy {busy[name]:.1%} of billed time): "
                       f"{remedy!r}, expected {right!r}")  # fmt: skip
                remedies.append(f"{name} {right}")
            verdicts.append(f"{number + 1}. {stage}: {', '.join(remedies)}")
    return (
        f"evidence for {len(busy)} renamed warehouses over a hidden 21-day window matches pandas in 3 months, and "
        f"each symptom got its remedy ({'; '.join(verdicts)})"
    )


def _number(value: Any) -> str:
    number = float(value or 0)
    return f"{number:,.0f}" if number.is_integer() and number > 1 else f"{number:.4f}"


# --- snowflake/02.3 · the day a resource monitor's triggers would fire ---------------------------

TRIGGERS = ((50, "NOTIFY"), (75, "NOTIFY"), (100, "SUSPEND"), (110, "SUSPEND_IMMEDIATE"))


def metering_cycle(metering: pd.DataFrame, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.Timestamp, list[int]]:
    """The metering history with cloud-services credits added (8-20% of compute), a cycle that starts a
    few days in, and two to four days without any usage early in the cycle (an outage, a holiday)."""
    frame = metering.copy()
    frame["CREDITS_USED_CLOUD_SERVICES"] = frame["CREDITS_USED_COMPUTE"] * rng.uniform(0.08, 0.2, len(frame))
    frame["CREDITS_USED"] = frame["CREDITS_USED_COMPUTE"] + frame["CREDITS_USED_CLOUD_SERVICES"]
    cycle_start = pd.Timestamp(LOCAL_ORIGIN) + pd.Timedelta(days=int(rng.integers(2, 7)))
    first_quiet = int(rng.integers(1, 4))
    quiet = list(range(first_quiet, first_quiet + int(rng.integers(2, 5))))
    day = (frame["START_TIME"] - cycle_start).dt.days
    return frame[~day.isin(quiet)].reset_index(drop=True), cycle_start, [d + 1 for d in quiet]


def true_fire_days(frame: pd.DataFrame, cycle_start: pd.Timestamp, quota: float) -> dict[int, int | None]:
    """In pandas: per trigger percent, the cycle day whose hourly running total first reaches the threshold."""
    hours = frame[frame["START_TIME"] >= cycle_start].groupby("START_TIME")["CREDITS_USED"].sum().sort_index()
    used = hours.cumsum()
    out: dict[int, int | None] = {}
    for percent, _ in TRIGGERS:
        crossed = used[used >= quota * percent / 100]
        out[percent] = None if crossed.empty else int((crossed.index[0] - cycle_start).days) + 1
    return out


def check_resource_monitor(learner: LearnerCode, ctx: CheckContext) -> str:
    """The learner's trigger replay at two quotas (one the fleet overruns, one it never reaches) against pandas."""
    trigger_days_sql = learner.function("trigger_days_sql", ("triggers",))
    usage = usage_history.generate_account_usage(QUERIES, ctx.seed(), billing=billed_runs)
    rng = np.random.default_rng(ctx.seed(1))
    metering, cycle_start, quiet_days = metering_cycle(usage.views["WAREHOUSE_METERING_HISTORY"], rng)
    in_cycle = float(metering.loc[metering["START_TIME"] >= cycle_start, "CREDITS_USED"].sum())
    quotas = (round(in_cycle * rng.uniform(0.55, 0.8)), round(in_cycle * rng.uniform(1.2, 1.6)))
    sql = trigger_days_sql("COSTLAB.PUBLIC.MONITOR_TRIGGERS")
    results = []
    with ctx.snowflake(database="COSTLAB") as session:
        usage_history.load_local_account_usage(session, {**usage.views, "WAREHOUSE_METERING_HISTORY": metering})
        session.execute("CREATE TABLE COSTLAB.PUBLIC.MONITOR_TRIGGERS (PERCENT NUMBER, ACTION VARCHAR)")
        session.execute(
            "INSERT INTO COSTLAB.PUBLIC.MONITOR_TRIGGERS VALUES " + ", ".join(f"({p}, '{a}')" for p, a in TRIGGERS)
        )
        for quota in quotas:
            params = {"cycle_start": cycle_start.to_pydatetime(), "quota": quota}
            rows = learner_rows(session, learner, "trigger_days_sql", sql, params)
            results.append((quota, rows))
    for quota, rows in results:
        want = true_fire_days(metering, cycle_start, quota)
        percents = sorted(int(r.get("PERCENT") or 0) for r in rows)
        expect(percents == sorted(want), "one row per trigger, whether it fires or not",
               f"quota {quota:,} credits: rows for {percents}, triggers {sorted(want)}")  # fmt: skip
        got = {int(r["PERCENT"]): None if r.get("FIRES_ON_DAY") is None else int(r["FIRES_ON_DAY"]) for r in rows}
        wrong = {p: (got[p], want[p]) for p in want if got[p] != want[p]}
        expect(not wrong, "each trigger fires on the cycle day its threshold is first reached",
               f"quota {quota:,} credits from {cycle_start:%Y-%m-%d} (no usage on cycle days {quiet_days}): " + "; ".join(
                   f"{p}% on day {g}, expected {'never' if w is None else f'day {w}'}" for p, (g, w) in wrong.items()))  # fmt: skip
    fired = {q: true_fire_days(metering, cycle_start, q) for q in quotas}
    return (
        f"{in_cycle:,.1f} credits in the cycle from {cycle_start:%Y-%m-%d} (days {quiet_days} without usage): "
        + "; ".join(f"quota {q:,} fires { ({p: d or 'never' for p, d in f.items()}) }" for q, f in fired.items())
    )
