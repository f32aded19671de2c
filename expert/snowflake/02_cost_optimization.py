"""Cost optimization: Snowflake's billing model made executable, replayed over a month of query history.

Why it matters in production: a warehouse bills per second while it runs, with a 60-second minimum
every time it resumes, and most of a typical bill is idle time after the last query — paid for
because AUTO_SUSPEND was left at 10 or 30 minutes. Oversized warehouses, repeated queries that miss
the result cache, unclustered large tables and no spending cap are the other usual leaks. Every
one of them is visible in SNOWFLAKE.ACCOUNT_USAGE; this pattern turns that history into savings
computed from the data, each with its formula in the code, and compares the same workload on
Databricks.

Learning objectives:
- Compute credits from warehouse size (X-Small = 1 credit/hour, doubling per size), per-second
  billing and the 60-second minimum per resume
- Replay QUERY_HISTORY under different AUTO_SUSPEND values in SQL (gaps and islands) and measure
  billed credits, idle waste and cold starts; cross-check against WAREHOUSE_METERING_HISTORY
- Right-size warehouses from utilization, queueing and spilling; cap spend with a resource monitor
  and see on which day it would fire
- Find repeated queries that miss the result cache, clustering keys worth their upkeep, and cost
  the same workload on Databricks (fixed, autoscaling, spot with its interruption risk)

Run it:
    python expert/snowflake/02_cost_optimization.py [--rows N] [--apply]
    expert run snowflake/02

Locally, two stand-ins are named where they run: a month of QUERY_HISTORY, WAREHOUSE_METERING_HISTORY
and TABLES is generated (seeded; expert/runtime/usage_history.py) and loaded into the local engine
(fakesnow on DuckDB) as SNOWFLAKE.ACCOUNT_USAGE, with Snowflake's result cache and queueing
simulated as it is generated; it is then analysed with the same SQL an account runs. With
credentials in .env: the same SQL reads your account's SNOWFLAKE.ACCOUNT_USAGE (read-only; needs
IMPORTED PRIVILEGES on the SNOWFLAKE database) and the recommendations are shown; `--apply`
executes them.
"""

from __future__ import annotations

import argparse
import itertools
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from expert.runtime import snowflake_ddl as ddl
from expert.runtime import usage_history
from expert.runtime.databricks_costs import PlatformCost, databricks_costs
from expert.runtime.pattern import PatternRun, run_pattern
from expert.runtime.query_text import filter_columns, written_table
from expert.runtime.result_cache import result_cache_misses
from expert.runtime.snowflake import SnowflakeSession
from expert.runtime.usage_history import DAYS, SIZE_LABELS, WarehouseConfig, seconds_since

# --- The billing model (Snowflake documents these; they are not assumptions) ---------------------
MINIMUM_BILLED_SECONDS = 60
"""Each resume bills at least 60 seconds; after that, per second."""

# --- Prices: change them to yours (the Databricks side is in expert/runtime/databricks_costs.py) -
CREDIT_PRICE_USD = 3.00
"""ASSUMPTION: on-demand Enterprise edition list price per credit (region and contract change it)."""

# --- Rules of thumb the recommendations use (named so they can be argued with) -------------------
CANDIDATE_AUTO_SUSPEND = (1800, 600, 300, 120, 60)
INTERACTIVE_COLD_STARTS_PER_DAY = 40
"""An interactive warehouse may resume at most this often per day (each resume starts with a cold cache)."""
REMOTE_SPILL_SIZE_UP = 0.10
"""Size up when at least this share of execution time spills to remote storage."""
QUEUED_SHARE_MULTI_CLUSTER = 0.01
"""Add clusters (not size) when at least this share of queries queues behind others."""
UTILIZATION_SIZE_DOWN = 0.10
"""Size down when the warehouse is busy less than this share of the time it is billed."""
REMOTE_SPILL_SLOWDOWN = 2.0
"""ASSUMPTION: a query spilling to remote storage runs this much slower than it would in memory."""
MIN_CLUSTERING_BYTES = 1 << 40
"""Snowflake's guidance: clustering pays off on multi-terabyte tables; below ~1 TB pruning rarely hurts."""
POOR_PRUNING_RATIO = 0.30
"""Queries on the candidate column scan more than this share of partitions."""
CLUSTERED_SCAN_RATIO = 0.10
"""ASSUMPTION: share of partitions a date-filtered query scans once the table is clustered by date."""
RECLUSTER_CREDITS_PER_TB_REWRITTEN = 4.0
"""ASSUMPTION: Automatic Clustering credits per TB of table it has to rewrite."""
BUDGET_HEADROOM = 1.15
"""The monthly quota is the optimized spend plus 15%."""
FIRES_ON = "fires on day (today's settings)"


# --- Step 1 · The billing model as code ----------------------------------------------------------


def billed_sessions(starts: np.ndarray, ends: np.ndarray, auto_suspend: int) -> list[tuple[float, float]]:
    """Warehouse run intervals (seconds): it resumes for a query and suspends `auto_suspend` s after going idle.

    Billed length of each = max(60, last query end - resume + auto_suspend).
    """
    order = np.lexsort((ends, starts))
    sessions: list[tuple[float, float]] = []
    start, last_end = None, -math.inf
    for s, e in zip(starts[order], ends[order], strict=True):
        if start is None or s - last_end > auto_suspend:
            if start is not None:
                sessions.append((start, max(start + MINIMUM_BILLED_SECONDS, last_end + auto_suspend)))
            start, last_end = s, e
        else:
            last_end = max(last_end, e)
    if start is not None:
        sessions.append((start, max(start + MINIMUM_BILLED_SECONDS, last_end + auto_suspend)))
    return sessions


def billed_credits(starts: np.ndarray, ends: np.ndarray, auto_suspend: int, credits_per_hour: float) -> float:
    """credits = Σ billed seconds of every run × credits per hour / 3600."""
    return sum(b - a for a, b in billed_sessions(starts, ends, auto_suspend)) * credits_per_hour / 3600


def show_billing_model(run: PatternRun) -> None:
    """The price list as code, and the 60-second minimum proven on one short query."""
    run.table(
        [{"size": SIZE_LABELS[s], "credits/hour": s.credits_per_hour, "USD/hour": s.credits_per_hour * CREDIT_PRICE_USD}
         for s in SIZE_LABELS],
        title=f"at {CREDIT_PRICE_USD:.2f} USD/credit (assumption)"
    )  # fmt: skip
    ten_second_query = billed_credits(np.array([0.0]), np.array([10.0]), 0, 1)
    run.check(
        "a 10-second query on a resumed X-Small bills the 60-second minimum",
        math.isclose(ten_second_query, MINIMUM_BILLED_SECONDS / 3600),
        f"{ten_second_query * 3600:.0f} credit-seconds",
    )


# --- Step 2 · A month of ACCOUNT_USAGE -----------------------------------------------------------


@dataclass
class Study:
    """What every step reads: the session, the analysis window, the fleet and its query intervals."""

    run: PatternRun
    session: SnowflakeSession
    window: tuple[datetime, datetime]
    fleet: dict[str, WarehouseConfig]
    intervals: pd.DataFrame
    apply: bool
    avoidable_truth: frozenset[str] | None = None

    @property
    def params(self) -> dict[str, datetime]:
        return {"window_start": self.window[0], "window_end": self.window[1]}

    def propose(self, statement: ddl.CloudStatement, purpose: str) -> None:
        """On an account, change it only when asked (`--apply`); otherwise show it. Locally, record it."""
        if self.apply:
            self.session.cloud_only(statement, purpose)
        else:
            self.session.recommend(statement, purpose, "a recommendation: rerun with --apply to execute it")


def open_history(run: PatternRun, session: SnowflakeSession, *, apply: bool) -> Study:
    """Locally: generate and load ACCOUNT_USAGE. On an account: its last 30 days, read-only."""
    truth = None
    if session.is_local:
        run.stand_in(*usage_history.SIMULATED_ON_THE_WAY)
        generated = usage_history.generate_account_usage(run.rows, run.seed, billing=billed_sessions)
        frames, truth = generated.views, generated.avoidable_misses
        with run.stand_in(*usage_history.GENERATED_HISTORY):
            loaded = usage_history.load_local_account_usage(session, frames)
        window = (usage_history.LOCAL_ORIGIN, usage_history.LOCAL_ORIGIN + timedelta(days=DAYS))
        run.table([{"view": f"SNOWFLAKE.ACCOUNT_USAGE.{v}", "rows": n} for v, n in loaded.items()], title="loaded")
        run.check("every generated row is in the local ACCOUNT_USAGE", all(loaded[v] == len(frames[v]) for v in loaded))
    else:
        now = datetime.now()
        window = (now - timedelta(days=DAYS), now)
    fleet = usage_history.fleet_from_show_warehouses(
        session.cloud_only_fetch(ddl.ShowWarehouses(), purpose="read each warehouse's size and AUTO_SUSPEND")
    )
    run.table(
        [{"warehouse": w.name, "size": SIZE_LABELS[w.size], "AUTO_SUSPEND s": w.auto_suspend} for w in fleet.values()],
        title="fleet today",
    )
    with usage_history.account_usage_access():
        intervals = session.fetch_df(
            "SELECT QUERY_ID, QUERY_TEXT, QUERY_TYPE, ROLE_NAME, WAREHOUSE_NAME, START_TIME, END_TIME, EXECUTION_TIME, "
            "PARTITIONS_SCANNED, PARTITIONS_TOTAL, BYTES_SPILLED_TO_REMOTE_STORAGE, ROWS_UPDATED FROM "
            "SNOWFLAKE.ACCOUNT_USAGE.QUERY_HISTORY WHERE START_TIME >= %(window_start)s AND START_TIME < %(window_end)s",
            {"window_start": window[0], "window_end": window[1]},
        )
    return Study(run, session, window, fleet, intervals, apply, truth)


# --- Step 3 · Replay AUTO_SUSPEND in SQL (gaps and islands) --------------------------------------


SIZE_CREDITS = (
    "CASE WAREHOUSE_SIZE "
    + " ".join(f"WHEN '{label}' THEN {size.credits_per_hour}" for size, label in SIZE_LABELS.items())
    + " END"
)
"""SQL mapping QUERY_HISTORY's size names to credits per hour (X-Small 1, doubling per size)."""
REPLAY_SQL = f"""
WITH busy AS (
  SELECT WAREHOUSE_NAME, START_TIME AS S, END_TIME AS E, {SIZE_CREDITS} AS CREDITS_PER_HOUR
  FROM SNOWFLAKE.ACCOUNT_USAGE.QUERY_HISTORY
  WHERE EXECUTION_TIME > 0 AND WAREHOUSE_NAME = %(warehouse)s
    AND START_TIME >= %(window_start)s AND START_TIME < %(window_end)s
),
ordered AS (
  SELECT *, MAX(E) OVER (PARTITION BY WAREHOUSE_NAME ORDER BY S, E
                         ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS PREV_END
  FROM busy
),
runs AS (
  SELECT *, SUM(IFF(PREV_END IS NULL OR DATEDIFF('millisecond', PREV_END, S) > %(auto_suspend)s * 1000, 1, 0))
              OVER (PARTITION BY WAREHOUSE_NAME ORDER BY S, E ROWS UNBOUNDED PRECEDING) AS RUN_NO
  FROM ordered
),
billed AS (
  SELECT RUN_NO, MAX(CREDITS_PER_HOUR) AS CREDITS_PER_HOUR,
    GREATEST({MINIMUM_BILLED_SECONDS}, DATEDIFF('millisecond', MIN(S), MAX(E)) / 1000 + %(auto_suspend)s) AS BILLED_SECONDS
  FROM runs GROUP BY RUN_NO
)
SELECT COUNT(*) AS RESUMES, SUM(BILLED_SECONDS) AS BILLED_SECONDS,
  SUM(BILLED_SECONDS * CREDITS_PER_HOUR / 3600) AS CREDITS
FROM billed
"""
"""Gaps and islands: a query starting more than AUTO_SUSPEND seconds after every earlier one ended
starts a new run; each run bills max(60 s, its span + AUTO_SUSPEND) at the size's credits/hour."""

ACTIVE_SQL = """
WITH busy AS (
  SELECT START_TIME AS S, END_TIME AS E FROM SNOWFLAKE.ACCOUNT_USAGE.QUERY_HISTORY
  WHERE EXECUTION_TIME > 0 AND WAREHOUSE_NAME = %(warehouse)s
    AND START_TIME >= %(window_start)s AND START_TIME < %(window_end)s
),
ordered AS (
  SELECT *, MAX(E) OVER (ORDER BY S, E ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS PREV_END FROM busy
),
islands AS (
  SELECT *, SUM(IFF(PREV_END IS NULL OR S > PREV_END, 1, 0)) OVER (ORDER BY S, E ROWS UNBOUNDED PRECEDING) AS ISLAND
  FROM ordered
)
SELECT COALESCE(SUM(SPAN), 0) AS ACTIVE_SECONDS
FROM (SELECT DATEDIFF('millisecond', MIN(S), MAX(E)) / 1000 AS SPAN FROM islands GROUP BY ISLAND)
"""
"""Seconds with at least one query running: the union of the query intervals (gap 0 islands)."""


@dataclass(frozen=True)
class Replay:
    warehouse: str
    auto_suspend: int
    resumes: int
    billed_seconds: float
    credits: float
    active_seconds: float

    @property
    def idle_share(self) -> float:
        return 1 - self.active_seconds / self.billed_seconds if self.billed_seconds else 0.0


def replay(session: SnowflakeSession, warehouse: str, auto_suspend: int, window: tuple[datetime, datetime]) -> Replay:
    params = {"warehouse": warehouse, "auto_suspend": auto_suspend, "window_start": window[0], "window_end": window[1]}
    row = session.fetch(REPLAY_SQL, params)[0]
    active = float(session.scalar(ACTIVE_SQL, params) or 0)
    resumes, billed, credits = int(row["RESUMES"] or 0), float(row["BILLED_SECONDS"] or 0), float(row["CREDITS"] or 0)
    return Replay(warehouse, auto_suspend, resumes, billed, credits, active)


def choose_auto_suspend(warehouse: WarehouseConfig, replays: list[Replay]) -> Replay:
    """Batch warehouses: the lowest setting. Interactive ones: the lowest that keeps cold starts within budget."""
    ordered = sorted(replays, key=lambda r: r.auto_suspend)
    if not warehouse.interactive:
        return ordered[0]
    for candidate in ordered:
        if candidate.resumes / DAYS <= INTERACTIVE_COLD_STARTS_PER_DAY:
            return candidate
    return ordered[-1]


def tune_auto_suspend(study: Study) -> tuple[dict[str, Replay], dict[str, Replay]]:
    """Replay every candidate setting; check the replay against metering; pick and propose settings."""
    run, session, fleet = study.run, study.session, study.fleet
    replays = {
        name: [replay(session, name, s, study.window) for s in sorted({*CANDIDATE_AUTO_SUSPEND, w.auto_suspend}, reverse=True)]
        for name, w in fleet.items()
    }  # fmt: skip
    run.table(
        [{"warehouse": r.warehouse, "AUTO_SUSPEND s": r.auto_suspend, "resumes": r.resumes, "credits": r.credits,
          "idle share": f"{r.idle_share:.0%}"} for rs in replays.values() for r in rs],
        title="the same queries under each setting", max_rows=40
    )  # fmt: skip
    metered = {
        r["WAREHOUSE_NAME"]: float(r["CREDITS"])
        for r in session.fetch(
            "SELECT WAREHOUSE_NAME, SUM(CREDITS_USED_COMPUTE) AS CREDITS FROM SNOWFLAKE.ACCOUNT_USAGE.WAREHOUSE_METERING_HISTORY "
            "WHERE START_TIME >= %(window_start)s AND START_TIME < %(window_end)s GROUP BY 1",
            {"window_start": study.window[0], "window_end": study.window[1] + timedelta(days=1)},
        )
    }
    current = {name: next(r for r in replays[name] if r.auto_suspend == w.auto_suspend) for name, w in fleet.items()}
    for name, replayed in current.items():
        metering = metered.get(name, 0.0)
        apart = abs(replayed.credits - metering) / max(metering, 1e-9)
        if session.is_local:
            run.check(
                f"{name}: the SQL replay at today's setting reproduces the metered credits",
                apart < 1e-4,
                f"replay {replayed.credits:.3f} vs metering {metering:.3f}",
            )
        else:
            run.figure(f"{name} replay vs metering", apart * 100, "% apart", how="SQL replay vs METERING_HISTORY")
    ladders = [sorted(replays[name], key=lambda r: r.auto_suspend) for name in fleet]
    run.check(
        "a lower AUTO_SUSPEND never bills more for the same queries (settings ≥ 60 s)",
        all(low.credits <= high.credits + 1e-9 for ladder in ladders for low, high in itertools.pairwise(ladder)),
    )
    chosen = {name: choose_auto_suspend(fleet[name], replays[name]) for name in fleet}
    run.table(
        [{"warehouse": n, "today": f"{current[n].auto_suspend} s", "recommended": f"{chosen[n].auto_suspend} s",
          "credits today": current[n].credits, "credits after": chosen[n].credits,
          "cold starts/day after": chosen[n].resumes / DAYS} for n in fleet],
        title="AUTO_SUSPEND recommendation"
    )  # fmt: skip
    saved = sum(current[n].credits - chosen[n].credits for n in fleet)
    total_now = sum(r.credits for r in current.values())
    run.figure("credits saved by the auto-suspend change", saved, "credits/month",
               how="Σ replay(today's AUTO_SUSPEND) − replay(recommended), same queries", key=True)  # fmt: skip
    run.figure("monthly saving at list price", saved * CREDIT_PRICE_USD, "USD",
               how=f"× {CREDIT_PRICE_USD} USD/credit (assumption)", key=True)  # fmt: skip
    run.figure("share of the bill that is idle time",
               sum(r.credits * r.idle_share for r in current.values()) / max(total_now, 1e-9) * 100, "%",
               how="billed − active seconds, credit-weighted")  # fmt: skip
    for name in fleet:
        if chosen[name].auto_suspend != fleet[name].auto_suspend:
            study.propose(
                ddl.AlterWarehouse(name=name, auto_suspend_seconds=chosen[name].auto_suspend),
                f"save {current[name].credits - chosen[name].credits:.1f} credits/month",
            )
    return current, chosen


# --- Step 4 · Right-sizing -----------------------------------------------------------------------


SIZING_SQL = """
SELECT WAREHOUSE_NAME, COUNT(*) AS QUERIES,
  SUM(EXECUTION_TIME) / 1000 AS EXECUTION_SECONDS,
  MEDIAN(EXECUTION_TIME) / 1000 AS MEDIAN_SECONDS,
  COUNT_IF(QUEUED_OVERLOAD_TIME > 0) / COUNT(*) AS QUEUED_SHARE,
  APPROX_PERCENTILE(NULLIF(QUEUED_OVERLOAD_TIME, 0), 0.95) / 1000 AS P95_QUEUED_SECONDS,
  SUM(IFF(BYTES_SPILLED_TO_REMOTE_STORAGE > 0, EXECUTION_TIME, 0)) / NULLIF(SUM(EXECUTION_TIME), 0) AS REMOTE_SPILL_SHARE
FROM SNOWFLAKE.ACCOUNT_USAGE.QUERY_HISTORY
WHERE EXECUTION_TIME > 0 AND START_TIME >= %(window_start)s AND START_TIME < %(window_end)s
GROUP BY WAREHOUSE_NAME ORDER BY WAREHOUSE_NAME
"""


@dataclass(frozen=True)
class Sizing:
    warehouse: str
    action: str
    reason: str
    statements: tuple[ddl.CloudStatement, ...]
    credits_before: float
    credits_after: float


def recommend_size(
    evidence: dict, warehouse: WarehouseConfig, chosen: Replay, intervals: pd.DataFrame, origin: datetime
) -> Sizing:
    """One rule per symptom; the credits after are a replay of the same queries under the new size."""
    sizes = list(ddl.WarehouseSize)
    position = sizes.index(warehouse.size)
    utilization = chosen.active_seconds / chosen.billed_seconds if chosen.billed_seconds else 0.0
    mine = intervals[intervals["WAREHOUSE_NAME"] == warehouse.name]
    starts = seconds_since(mine["START_TIME"], origin)
    seconds = mine["EXECUTION_TIME"].to_numpy() / 1000
    spilled = mine["BYTES_SPILLED_TO_REMOTE_STORAGE"].to_numpy() > 0
    before = chosen.credits
    if float(evidence["REMOTE_SPILL_SHARE"] or 0) >= REMOTE_SPILL_SIZE_UP:
        # Size per workload, not per team: only the spilling queries move to a warehouse one size up,
        # where linear scaling halves them and, fitting in memory, they lose the remote-spill slowdown.
        bigger = sizes[position + 1]
        stay = billed_credits(starts[~spilled], starts[~spilled] + seconds[~spilled], chosen.auto_suspend,
                              warehouse.credits_per_hour)  # fmt: skip
        moved = seconds[spilled] / 2 / REMOTE_SPILL_SLOWDOWN
        big = billed_credits(starts[spilled], starts[spilled] + moved, chosen.auto_suspend, bigger.credits_per_hour)
        target = f"{warehouse.name}_{bigger.value}"
        statement = ddl.Warehouse(
            name=target, size=bigger, auto_suspend_seconds=chosen.auto_suspend,
            comment=f"memory-hungry jobs from {warehouse.name}"
        )  # fmt: skip
        reason = (
            f"{float(evidence['REMOTE_SPILL_SHARE']):.0%} of execution time spills to remote storage: "
            f"run those jobs on {SIZE_LABELS[bigger]}"
        )
        return Sizing(warehouse.name, f"split: spilling jobs to {target}", reason, (statement,), before, stay + big)
    if float(evidence["QUEUED_SHARE"] or 0) >= QUEUED_SHARE_MULTI_CLUSTER:
        statement = ddl.AlterWarehouse(
            name=warehouse.name, min_cluster_count=1, max_cluster_count=2, scaling_policy=ddl.ScalingPolicy.STANDARD
        )
        reason = (
            f"{float(evidence['QUEUED_SHARE']):.0%} of queries queue (p95 wait {float(evidence['P95_QUEUED_SECONDS']):.0f} s) "
            "and none spill: more concurrency, not a bigger size"
        )
        return Sizing(warehouse.name, "multi-cluster 1-2", reason, (statement,), before, before)
    quiet = float(evidence["QUEUED_SHARE"] or 0) == 0 and float(evidence["REMOTE_SPILL_SHARE"] or 0) == 0
    if utilization < UTILIZATION_SIZE_DOWN and quiet and position > 0:
        smaller = sizes[position - 1]
        after = billed_credits(starts, starts + seconds * 2, chosen.auto_suspend, smaller.credits_per_hour)
        statement = ddl.AlterWarehouse(name=warehouse.name, size=smaller)
        reason = f"busy {utilization:.0%} of billed time, no queueing or spilling: queries run ≤2× longer"
        return Sizing(warehouse.name, f"size down to {SIZE_LABELS[smaller]}", reason, (statement,), before, after)
    return Sizing(warehouse.name, "keep", "no symptom above its threshold", (), before, before)


def right_size(study: Study, chosen: dict[str, Replay]) -> list[Sizing]:
    """Evidence per warehouse in SQL, one remedy per symptom, credits after by replay."""
    evidence = {r["WAREHOUSE_NAME"]: r for r in study.session.fetch(SIZING_SQL, study.params)}
    sizings = [
        recommend_size(evidence[n], study.fleet[n], chosen[n], study.intervals, study.window[0])
        for n in study.fleet
        if n in evidence
    ]
    study.run.table(
        [{"warehouse": s.warehouse, "action": s.action, "why": s.reason, "credits before": s.credits_before,
          "credits after": s.credits_after} for s in sizings],
        title="right-sizing (credits after = replay of the same queries at the new size)"
    )  # fmt: skip
    for sizing in sizings:
        for statement in sizing.statements:
            study.propose(statement, sizing.reason)
    if study.session.is_local:
        spilling = {n for n, e in evidence.items() if float(e["REMOTE_SPILL_SHARE"] or 0) > 0}
        queueing = {n for n, e in evidence.items() if float(e["QUEUED_SHARE"] or 0) > 0}
        study.run.check(
            "the evidence SQL finds spilling only on ETL_WH and queueing only on BI_WH (where the generator put them)",
            spilling == {"ETL_WH"} and queueing == {"BI_WH"},
            f"spilling {sorted(spilling)}, queueing {sorted(queueing)}",
        )
    study.run.figure("credits saved by right-sizing", sum(s.credits_before - s.credits_after for s in sizings),
                     "credits/month", how="replayed at the new size, linear scaling assumed")  # fmt: skip
    return sizings


# --- Step 5 · A resource monitor -----------------------------------------------------------------


def cap_spend(study: Study, optimized: float) -> None:
    """A monthly quota with NOTIFY / SUSPEND / SUSPEND_IMMEDIATE, and the day each would fire today."""
    quota = math.ceil(optimized * BUDGET_HEADROOM)
    monitor = ddl.ResourceMonitor(name="MONTHLY_FLEET_CAP", credit_quota=quota, triggers=(
        ddl.MonitorTrigger(percent=75, action=ddl.MonitorAction.NOTIFY),
        ddl.MonitorTrigger(percent=100, action=ddl.MonitorAction.SUSPEND),
        ddl.MonitorTrigger(percent=110, action=ddl.MonitorAction.SUSPEND_IMMEDIATE),
    ))  # fmt: skip
    daily = study.session.fetch_df(
        "SELECT TO_DATE(START_TIME) AS DAY, SUM(CREDITS_USED) AS CREDITS FROM SNOWFLAKE.ACCOUNT_USAGE.WAREHOUSE_METERING_HISTORY "
        "WHERE START_TIME >= %(window_start)s AND START_TIME < %(window_end)s GROUP BY 1 ORDER BY 1",
        study.params,
    )
    cumulative = daily["CREDITS"].astype(float).cumsum().to_numpy()
    fired = []
    for trigger in monitor.triggers:
        crossing = np.flatnonzero(cumulative >= quota * trigger.percent / 100)
        day = int(crossing[0]) + 1 if crossing.size else None
        fired.append({"trigger": f"{trigger.percent}% → {trigger.action.value}", "credits": quota * trigger.percent / 100,
                      FIRES_ON: day or "never"})  # fmt: skip
    study.run.table(fired, title=f"quota {quota} credits = ceil(optimized {optimized:.1f} × {BUDGET_HEADROOM})")
    study.propose(monitor, "cap monthly spend; suspend at 100%")
    for name in study.fleet:
        study.propose(ddl.AlterWarehouse(name=name, resource_monitor=monitor.name), "attach the cap")
    if study.session.is_local:
        study.run.check(
            "with today's settings the cap would suspend the fleet before month end",
            isinstance(fired[1][FIRES_ON], int),
            f"SUSPEND on day {fired[1][FIRES_ON]}",
        )


# --- Step 6 · The result cache -------------------------------------------------------------------


def reuse_results(study: Study, chosen: dict[str, Replay]) -> None:
    """Avoidable result-cache misses and the credits reuse would save (replay without them)."""
    misses = result_cache_misses(study.intervals, study.window[0])
    by_reason = Counter(m.why for m in misses)
    ids = {m.query_id for m in misses}
    without = 0.0
    for name, warehouse in study.fleet.items():
        mine = study.intervals[(study.intervals["WAREHOUSE_NAME"] == name) & (study.intervals["EXECUTION_TIME"] > 0)]
        kept = mine[~mine["QUERY_ID"].isin(ids)]
        without += billed_credits(
            seconds_since(kept["START_TIME"], study.window[0]), seconds_since(kept["END_TIME"], study.window[0]),
            chosen[name].auto_suspend, warehouse.credits_per_hour
        )  # fmt: skip
    saving = sum(chosen[n].credits for n in study.fleet) - without
    hits = int((study.intervals["EXECUTION_TIME"] == 0).sum())
    study.run.table(
        [{"why it missed": k, "queries": v, "warehouse seconds": sum(m.execution_seconds for m in misses if m.why == k)}
         for k, v in by_reason.items()],
        title=f"{hits} queries already served from the result cache"
    )  # fmt: skip
    study.run.figure("credits saved by result reuse", saving, "credits/month",
                     how="replay at the recommended AUTO_SUSPEND with vs without the avoidable misses", key=True)  # fmt: skip
    if study.avoidable_truth is not None:
        study.run.check(
            "the SQL-text analysis finds exactly the misses the generator knows were avoidable",
            ids == study.avoidable_truth,
            f"{len(ids)} found, {len(study.avoidable_truth)} generated, {len(ids ^ study.avoidable_truth)} differ",
        )


# --- Step 7 · Clustering -------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusteringAdvice:
    table: str
    size_tb: float
    column: str | None
    filter_share: float
    scan_ratio: float
    verdict: str
    monthly_credits_saved: float
    monthly_recluster_credits: float
    statement: ddl.ClusterBy | None


def clustering_advice(
    history: pd.DataFrame,
    tables: pd.DataFrame,
    fleet: dict[str, WarehouseConfig],
    chosen: dict[str, int],
    origin: datetime,
) -> list[ClusteringAdvice]:
    """Per table: its most-filtered column, how well queries on it prune, and whether clustering pays.

    saved = replayed credits of the queries filtering on it now - with their execution time scaled
    by CLUSTERED_SCAN_RATIO / current scan ratio (time ∝ partitions scanned);
    upkeep = TB rewritten per month by DML × RECLUSTER_CREDITS_PER_TB_REWRITTEN.
    """
    selects = history[(history["QUERY_TYPE"] == "SELECT") & (history["EXECUTION_TIME"] > 0)]
    filters = {text: filter_columns(text) for text in selects["QUERY_TEXT"].unique()}
    churn = daily_churn(history, tables)
    advice = []
    for table in tables.itertuples(index=False):
        name = f"{table.TABLE_CATALOG}.{table.TABLE_SCHEMA}.{table.TABLE_NAME}"
        on_table = selects[selects["QUERY_TEXT"].map(lambda t, n=name: n in filters[t])]
        size_tb = table.BYTES / 1e12
        if on_table.empty:
            advice.append(ClusteringAdvice(name, size_tb, None, 0.0, 0.0, "not queried", 0.0, 0.0, None))
            continue
        counts = Counter(c for t in on_table["QUERY_TEXT"] for c in filters[t][name])
        column, hits = counts.most_common(1)[0]
        filtered = on_table[on_table["QUERY_TEXT"].map(lambda t, n=name, c=column: c in filters[t][n])]
        ratio = float((filtered["PARTITIONS_SCANNED"] / filtered["PARTITIONS_TOTAL"].clip(lower=1)).mean())
        share = hits / len(on_table)
        recluster = size_tb * churn.get(name, 0.0) * DAYS * RECLUSTER_CREDITS_PER_TB_REWRITTEN
        if table.BYTES < MIN_CLUSTERING_BYTES:
            verdict, saved = f"not worth it: {size_tb * 1000:.0f} GB, below ~1 TB pruning rarely matters", 0.0
        elif ratio <= POOR_PRUNING_RATIO:
            verdict, saved = f"not needed: queries already scan {ratio:.1%} (natural load order prunes)", 0.0
        else:
            saved = _clustering_saving(history, filtered, fleet, chosen, ratio=ratio, origin=origin)
            verdict = "cluster" if saved > recluster else "not worth it: upkeep exceeds the saving"
        key = f"TO_DATE({column})" if column.endswith("_TS") else column
        statement = ddl.ClusterBy(table=name, keys=(key,)) if verdict == "cluster" else None
        advice.append(ClusteringAdvice(name, size_tb, column, share, ratio, verdict, saved, recluster, statement))
    return advice


def daily_churn(history: pd.DataFrame, tables: pd.DataFrame) -> dict[str, float]:
    """Share of each table's rows changed per day: Σ ROWS_UPDATED of DML on it / days / ROW_COUNT."""
    rows = {f"{t.TABLE_CATALOG}.{t.TABLE_SCHEMA}.{t.TABLE_NAME}": float(t.ROW_COUNT or 0) for t in tables.itertuples()}
    dml = history[history["QUERY_TYPE"].isin(["INSERT", "MERGE", "UPDATE", "DELETE"])]
    changed: dict[str, float] = defaultdict(float)
    for text, updated in zip(dml["QUERY_TEXT"], dml["ROWS_UPDATED"].fillna(0), strict=True):
        target = written_table(str(text))
        if target:
            changed[target] += float(updated)
    return {name: changed[name] / DAYS / count for name, count in rows.items() if count}


def _clustering_saving(
    history: pd.DataFrame, filtered: pd.DataFrame, fleet: dict[str, WarehouseConfig], chosen: dict[str, int], *,
    ratio: float, origin: datetime
) -> float:  # fmt: skip
    """Credits saved if the queries in `filtered` scanned CLUSTERED_SCAN_RATIO instead of `ratio` of the partitions."""
    factor = CLUSTERED_SCAN_RATIO / ratio
    saved = 0.0
    for name, warehouse in fleet.items():
        busy = history[(history["WAREHOUSE_NAME"] == name) & (history["EXECUTION_TIME"] > 0)]
        starts = seconds_since(busy["START_TIME"], origin)
        seconds = busy["EXECUTION_TIME"].to_numpy() / 1000
        faster = np.where(busy["QUERY_ID"].isin(filtered["QUERY_ID"]).to_numpy(), seconds * factor, seconds)
        suspend = chosen[name]
        saved += billed_credits(starts, starts + seconds, suspend, warehouse.credits_per_hour) - billed_credits(
            starts, starts + faster, suspend, warehouse.credits_per_hour
        )
    return saved


def advise_clustering(study: Study, chosen: dict[str, Replay]) -> None:
    tables = study.session.fetch_df(
        "SELECT TABLE_CATALOG, TABLE_SCHEMA, TABLE_NAME, ROW_COUNT, BYTES FROM SNOWFLAKE.ACCOUNT_USAGE.TABLES "
        "WHERE DELETED IS NULL AND BYTES > 0"
    )
    suspend = {n: chosen[n].auto_suspend for n in study.fleet}
    advice = clustering_advice(study.intervals, tables, study.fleet, suspend, study.window[0])
    study.run.table(
        [{"table": a.table, "TB": a.size_tb, "filter column": a.column or "-", "share": f"{a.filter_share:.0%}",
          "scanned": f"{a.scan_ratio:.1%}", "saved cr/mo": a.monthly_credits_saved,
          "upkeep cr/mo": a.monthly_recluster_credits, "verdict": a.verdict} for a in advice],
        title="clustering candidates"
    )  # fmt: skip
    for item in advice:
        if item.statement is not None:
            study.propose(item.statement, item.verdict)
    if study.session.is_local:
        by_table = {a.table: a for a in advice}
        orders, low, high = by_table["SHOP.CORE.ORDERS"], *usage_history.BI_TILES[0].scan_ratio
        study.run.check(
            "pruning measured from the history matches the generator; EVENTS and CUSTOMERS are never clustered",
            low <= orders.scan_ratio <= high
            and by_table["SHOP.CORE.EVENTS"].statement is None
            and by_table["SHOP.CORE.CUSTOMERS"].statement is None,
            f"ORDERS scans {orders.scan_ratio:.0%} (generated {low:.0%}-{high:.0%}); ORDERS verdict: {orders.verdict}",
        )


# --- Step 8 · The same workload on Databricks ----------------------------------------------------


def compare_platforms(study: Study, today: float, optimized: float) -> None:
    costs = [
        PlatformCost("Snowflake, today's settings", "credits", today, today * CREDIT_PRICE_USD, "replay at today's AUTO_SUSPEND"),
        PlatformCost("Snowflake, optimized", "credits", optimized, optimized * CREDIT_PRICE_USD, "AUTO_SUSPEND + right-sizing"),
        *databricks_costs(study.intervals[study.intervals["EXECUTION_TIME"] > 0], study.fleet, study.window[0],
                          sessions=billed_sessions)
    ]  # fmt: skip
    study.run.table(
        [{"option": c.option, "units": f"{c.quantity:,.1f} {c.units}", "USD/month": c.usd, "note": c.note} for c in costs],
        title="one month, list-price assumptions (constants here and in expert/runtime/databricks_costs.py)"
    )  # fmt: skip
    spot = next(c for c in costs if "spot" in c.option)
    autoscaling = next(c for c in costs if c.option.endswith("autoscaling"))
    study.run.check(
        "at these assumptions the spot discount outweighs the expected rework after interruptions",
        spot.usd < autoscaling.usd,
        f"{spot.usd:,.0f} < {autoscaling.usd:,.0f} USD",
    )
    cheapest = min(costs, key=lambda c: c.usd)
    study.run.figure("cheapest option", cheapest.option, how="under the stated assumptions", key=True)


def body(run: PatternRun) -> None:
    with run.snowflake(database="COSTLAB", schema="PUBLIC") as session:
        run.step("The billing model: size → credits/hour, per-second billing, 60 s minimum per resume",
                 why="every saving below is this formula applied to the same queries under other settings")  # fmt: skip
        show_billing_model(run)
        run.step("A month of ACCOUNT_USAGE, queried with the same SQL an account runs",
                 why="the bill is explained by the query history, not by guesses about the workload")  # fmt: skip
        study = open_history(run, session, apply=bool(run.args.apply))
        run.step("Replay AUTO_SUSPEND in SQL: billed credits, idle waste, cold starts",
                 why="idle time after the last query is most of a typical bill, and the cheapest to cut")  # fmt: skip
        current, chosen = tune_auto_suspend(study)
        run.step("Right-size from utilization, queueing and spilling",
                 why="each symptom has its remedy: a smaller size, more clusters, or a bigger size for a few jobs")  # fmt: skip
        sizings = right_size(study, chosen)
        optimized = sum(s.credits_after for s in sizings)
        run.step("A resource monitor: a monthly cap, and the day it would fire",
                 why="a cap turns a runaway workload into an alert and a suspended warehouse, not an invoice")  # fmt: skip
        cap_spend(study, optimized)
        run.step("Result cache: repeated queries that missed it",
                 why="a reused result costs no warehouse time, but only for identical text without run-time functions")  # fmt: skip
        reuse_results(study, chosen)
        run.step("Clustering: keys from the filters in the history, and when it is not worth it",
                 why="clustering saves scans only where queries filter on the key, and costs upkeep on every change")  # fmt: skip
        advise_clustering(study, chosen)
        run.step("The same workload on Databricks",
                 why="the same query intervals priced on the other platform, every assumption named")  # fmt: skip
        compare_platforms(study, sum(r.credits for r in current.values()), optimized)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--apply", action="store_true", help="with a real account: execute the recommended ALTER statements"
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run_pattern(__file__, argv, body, default_rows=12_000, add_arguments=add_arguments)


if __name__ == "__main__":
    raise SystemExit(main())
